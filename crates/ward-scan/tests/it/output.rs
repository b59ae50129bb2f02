//! The three formats: JSON shape, SARIF 2.1.0 against the official schema, and the table as a
//! golden file.

use std::path::Path;

use serde_json::Value;
use ward_scan::{Report, Rule, Scanner};

use crate::fixtures;

/// The fixture set behind the output tests, scanned with paths relative to the fixtures
/// directory so the outputs do not depend on where the repository is checked out.
fn report() -> Report {
    let mut scanner = Scanner::new();
    for name in [
        "seed-deployment.yaml",
        "helm-output.yaml",
        "control-plane/encryption.yaml",
        "control-plane/audit-policy.yaml",
        "control-plane/manifests/kube-apiserver.yaml",
        "control-plane/manifests/etcd.yaml",
    ] {
        let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
        scanner.add_str(name, &text).unwrap();
    }
    scanner.finish()
}

fn json_of(write: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut out = Vec::new();
    write(&mut out);
    serde_json::from_slice(&out).expect("valid JSON")
}

#[test]
fn json_has_exactly_the_documented_shape() {
    let report = report();
    let json = json_of(|out| report.write_json(out).unwrap());
    let top: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(top, ["findings"]);
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), report.findings.len());
    assert!(!findings.is_empty());
    for finding in findings {
        let keys: Vec<&String> = finding.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "rule", "severity", "threat", "resource", "file", "path", "message", "fix", "line",
                "document", "item"
            ]
        );
        let resource: Vec<&String> = finding["resource"].as_object().unwrap().keys().collect();
        assert_eq!(resource, ["apiVersion", "kind", "namespace", "name"]);
        assert!(Rule::ALL.iter().any(|r| r.id() == finding["rule"]));
        assert!(
            ["critical", "high", "medium", "low", "info"]
                .contains(&finding["severity"].as_str().unwrap())
        );
        assert!(
            ["at-rest", "in-transit", "api", "node"].contains(&finding["threat"].as_str().unwrap())
        );
        for key in ["file", "path", "message", "fix"] {
            assert!(finding[key].is_string(), "{key}");
        }
        assert!(
            finding["line"].as_u64().is_some_and(|l| l >= 1),
            "{finding}"
        );
        assert!(finding["document"].is_u64());
        assert!(finding["item"].is_null() || finding["item"].is_u64());
    }
    let seed = findings
        .iter()
        .find(|f| f["rule"] == "secret-env-var" && f["file"] == "seed-deployment.yaml")
        .unwrap();
    assert_eq!(seed["severity"], "medium");
    assert_eq!(seed["threat"], "node");
    assert_eq!(
        seed["resource"],
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "my-app"})
    );
    assert_eq!(
        seed["path"],
        "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef"
    );
    assert_eq!(seed["line"], 24);
    assert_eq!(seed["document"], 0);
    assert!(seed["item"].is_null());
    // Config files have no metadata: namespace and name are null.
    let enc = findings
        .iter()
        .find(|f| f["resource"]["kind"] == "EncryptionConfiguration")
        .unwrap();
    assert!(enc["resource"]["name"].is_null() && enc["resource"]["namespace"].is_null());
}

#[test]
fn empty_json_report() {
    let report = Scanner::new().finish();
    let json = json_of(|out| report.write_json(out).unwrap());
    assert_eq!(json, serde_json::json!({"findings": []}));
}

/// Checks the SARIF 2.1.0 requirements a consumer (GitHub code scanning, the SARIF validator)
/// relies on: required properties, enum values, and consistency between results and rules.
fn validate_sarif(sarif: &Value) {
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = sarif["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let driver = &run["tool"]["driver"];
    assert!(driver["name"].as_str().is_some_and(|n| !n.is_empty()));
    let rules = driver["rules"].as_array().expect("driver.rules");
    assert_eq!(rules.len(), Rule::ALL.len());
    let mut ids = Vec::new();
    for rule in rules {
        let id = rule["id"].as_str().expect("rule id");
        ids.push(id);
        assert!(
            rule["shortDescription"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert!(rule["fullDescription"]["text"].is_string());
        assert!(
            ["none", "note", "warning", "error"]
                .contains(&rule["defaultConfiguration"]["level"].as_str().unwrap())
        );
        let score: f64 = rule["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..=10.0).contains(&score));
    }
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "rule ids are unique");
    let results = run["results"].as_array().expect("results is an array");
    for result in results {
        let rule_id = result["ruleId"].as_str().expect("ruleId");
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(ids[index], rule_id, "ruleIndex points at ruleId");
        assert!(["none", "note", "warning", "error"].contains(&result["level"].as_str().unwrap()));
        assert!(
            result["message"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        let locations = result["locations"].as_array().expect("locations");
        assert!(!locations.is_empty());
        for location in locations {
            let physical = &location["physicalLocation"];
            let uri = physical["artifactLocation"]["uri"].as_str().expect("uri");
            assert!(!uri.is_empty() && !uri.contains(' ') && !uri.contains('\\'));
            if let Some(region) = physical.get("region") {
                assert!(region["startLine"].as_u64().expect("startLine") >= 1);
            }
        }
    }
}

#[test]
fn sarif_is_structurally_valid() {
    let report = report();
    let sarif = json_of(|out| report.write_sarif(out).unwrap());
    validate_sarif(&sarif);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    let seed = results
        .iter()
        .find(|r| {
            r["ruleId"] == "secret-env-var"
                && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    == "seed-deployment.yaml"
        })
        .unwrap();
    assert_eq!(seed["level"], "warning");
    assert_eq!(
        seed["locations"][0]["physicalLocation"]["region"]["startLine"],
        24
    );
    assert_eq!(
        seed["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "default/Deployment/my-app#spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef"
    );
    let critical = results.iter().filter(|r| r["level"] == "error").count();
    assert!(critical > 0);

    let empty = json_of(|out| Scanner::new().finish().write_sarif(out).unwrap());
    validate_sarif(&empty);
    assert_eq!(empty["runs"][0]["results"], serde_json::json!([]));
}

/// The SARIF 2.1.0 JSON schema of the OASIS sarif-spec repository, vendored unchanged (source in
/// tests/fixtures/README.md), compiled with format checks on (`uri`, `uri-reference`).
///
/// The upstream file has one defect that makes it fail its own meta-schema: the `anyOf` that
/// requires a region to have `startLine`, `charOffset` or `byteOffset` (SARIF §3.30.2) sits inside
/// `region.properties`, where it would name a property. It is moved up to `region`, where the
/// standard puts it; that only makes the check stricter.
fn sarif_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(fixtures().join("sarif-schema-2.1.0.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    let region = &mut schema["definitions"]["region"];
    let misplaced = region["properties"]
        .as_object_mut()
        .unwrap()
        .remove("anyOf")
        .expect("the upstream defect is still there; drop this repair if the schema was updated");
    region["anyOf"] = misplaced;
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, sarif: &Value) -> Vec<String> {
    validator
        .iter_errors(sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn sarif_validates_against_the_official_schema() {
    let validator = sarif_schema();
    let report = report();
    let sarif = json_of(|out| report.write_sarif(out).unwrap());
    assert_eq!(schema_errors(&validator, &sarif), Vec::<String>::new());
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());

    // Every kind of input: a directory walk with absolute paths, a List dump, stdin.
    let mut scanner = Scanner::new();
    scanner.add_path(&fixtures().join("control-plane")).unwrap();
    scanner
        .add_path(&fixtures().join("kubectl-dump.yaml"))
        .unwrap();
    scanner
        .add_reader(
            "-",
            std::fs::read(fixtures().join("rbac-multi-role.yaml"))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
    let sarif = json_of(|out| scanner.finish().write_sarif(out).unwrap());
    assert_eq!(schema_errors(&validator, &sarif), Vec::<String>::new());

    let empty = json_of(|out| Scanner::new().finish().write_sarif(out).unwrap());
    assert_eq!(schema_errors(&validator, &empty), Vec::<String>::new());
}

/// The schema check is not vacuous: logs that break SARIF 2.1.0 are rejected.
#[test]
fn the_schema_rejects_invalid_sarif() {
    let validator = sarif_schema();
    let report = report();
    let valid = json_of(|out| report.write_sarif(out).unwrap());
    type Breakage = fn(&mut Value);
    let breakages: [(&str, Breakage); 5] = [
        ("version", |s| s["version"] = "2.2.0".into()),
        ("level", |s| {
            s["runs"][0]["results"][0]["level"] = "fatal".into()
        }),
        ("startLine", |s| {
            s["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
                0.into()
        }),
        ("driver name", |s| {
            s["runs"][0]["tool"]["driver"]
                .as_object_mut()
                .unwrap()
                .remove("name");
        }),
        ("unknown property", |s| {
            s["runs"][0]["results"][0]["severity"] = "high".into()
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = valid.clone();
        breakage(&mut broken);
        assert!(
            !schema_errors(&validator, &broken).is_empty(),
            "a log with a bad {what} passed the schema"
        );
    }
}

#[test]
fn table_matches_golden_file() {
    let report = report();
    let mut out = Vec::new();
    report.write_table(&mut out).unwrap();
    let table = String::from_utf8(out).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/table.txt");
    if std::env::var_os("WARD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &table).unwrap();
    }
    let expected = std::fs::read_to_string(&golden)
        .expect("tests/golden/table.txt exists (WARD_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        table, expected,
        "run with WARD_UPDATE_GOLDEN=1 and review the diff"
    );
}

#[test]
fn empty_table() {
    let mut out = Vec::new();
    Scanner::new().finish().write_table(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "No findings in 0 objects in 0 files.\n"
    );
}

/// Locations: `line`, `document` and `item` in JSON for a list item in the second document,
/// and SARIF regions only where the input is a file.
#[test]
fn locations_in_json_and_sarif() {
    let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
data: {color: blue}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: quiet, namespace: shop}
  automountServiceAccountToken: false
- apiVersion: v1
  kind: Pod
  metadata: {name: web, namespace: shop}
  spec:
    serviceAccountName: default
    containers:
    - name: app
      image: shop/web:1
      securityContext:
        privileged: true
";
    let mut scanner = Scanner::new();
    scanner.add_str("dump.yaml", text).unwrap();
    scanner.add_reader("-", text.as_bytes()).unwrap();
    let report = scanner.finish();
    let json = json_of(|out| report.write_json(out).unwrap());
    let privileged: Vec<&Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "privileged-node-access")
        .collect();
    assert_eq!(privileged.len(), 2, "{json:#}");
    for f in &privileged {
        assert_eq!(f["document"], 1);
        assert_eq!(f["item"], 1);
        assert_eq!(f["line"], 22);
    }
    let files: Vec<&str> = privileged
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["-", "dump.yaml"]);

    let sarif = json_of(|out| report.write_sarif(out).unwrap());
    validate_sarif(&sarif);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let physical = |uri: &str| {
        results
            .iter()
            .find(|r| {
                r["ruleId"] == "privileged-node-access"
                    && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri
            })
            .map(|r| r["locations"][0]["physicalLocation"].clone())
            .unwrap()
    };
    assert_eq!(physical("dump.yaml")["region"]["startLine"], 22);
    assert!(physical("-").get("region").is_none(), "stdin has no region");
}
