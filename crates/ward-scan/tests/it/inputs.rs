//! Inputs: directories, JSON, lists, errors.

use std::fs;

use ward_scan::{Rule, ScanError, Scanner};

use crate::{fixture, of, scan_one};

#[test]
fn directory_walk_finds_manifests_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("apps/nested")).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::copy(
        fixture("seed-deployment.yaml"),
        root.join("apps/nested/deploy.YML"),
    )
    .unwrap();
    fs::write(
        root.join(".git/config.yaml"),
        "kind: ConfigMap\ndata: {password: hunter22}\n",
    )
    .unwrap();
    fs::write(root.join("apps/README.md"), "kind: Pod\n").unwrap();
    fs::write(
        root.join("apps/values.yaml"),
        "replicaCount: 2\nimage: {tag: latest}\n",
    )
    .unwrap();
    fs::write(
        root.join("apps/template.yaml"),
        "kind: Pod\nspec: {{ .Values.spec | toYaml }\n  x: [\n",
    )
    .unwrap();
    fs::write(
        root.join("apps/pod.json"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"hostPID":true,"automountServiceAccountToken":false,"containers":[{"name":"a","image":"a"}]}}"#,
    )
    .unwrap();
    let mut scanner = Scanner::new();
    scanner.add_path(root).unwrap();
    let report = scanner.finish();
    assert_eq!(
        report.files, 3,
        "deploy.YML, pod.json and values.yaml are read"
    );
    assert_eq!(report.objects, 2);
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].ends_with("template.yaml"));
    assert_eq!(of(&report, Rule::SecretEnvVar).len(), 1);
    let privileged = of(&report, Rule::PrivilegedNodeAccess);
    assert_eq!(privileged.len(), 1);
    assert!(privileged[0].file.ends_with("apps/pod.json"));
    assert_eq!(privileged[0].line, Some(1));
}

#[test]
fn named_files_must_parse() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    fs::write(
        &bad,
        "kind: Secret\nstringData:\n  password: [unclosed-canary-value\n",
    )
    .unwrap();
    let err = Scanner::new().add_path(&bad).unwrap_err();
    assert!(matches!(err, ScanError::Parse { line: 3, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("bad.yaml:3:"), "{text}");
    assert!(!text.contains("canary"), "{text}");
    let missing = Scanner::new()
        .add_path(&dir.path().join("nope.yaml"))
        .unwrap_err();
    assert!(matches!(missing, ScanError::Read { .. }));
    fs::write(
        dir.path().join("latin1.yaml"),
        b"kind: ConfigMap\ndata: {a: \xe9}\n",
    )
    .unwrap();
    let err = Scanner::new()
        .add_path(&dir.path().join("latin1.yaml"))
        .unwrap_err();
    assert!(matches!(err, ScanError::NotUtf8 { .. }));
}

#[test]
fn json_list_from_the_api_and_yaml11_booleans() {
    let json = r#"{
  "apiVersion": "v1",
  "kind": "PodList",
  "items": [
    {
      "metadata": {"name": "a", "namespace": "x"},
      "spec": {"hostPID": true, "automountServiceAccountToken": false,
               "containers": [{"name": "c", "image": "i"}]}
    }
  ]
}"#;
    let report = scan_one(json);
    let f = of(&report, Rule::PrivilegedNodeAccess);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].resource.kind, "Pod");
    assert_eq!(f[0].resource.api_version.as_deref(), Some("v1"));
    assert_eq!(f[0].item, Some(0));
    assert_eq!(f[0].line, Some(7));

    // go-yaml v2 (what kubectl uses) reads `yes` and `on` as true.
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostPID: on\n  automountServiceAccountToken: no\n  containers:\n  - {name: a, image: a, securityContext: {privileged: yes}}\n";
    let report = scan_one(yaml);
    assert_eq!(of(&report, Rule::PrivilegedNodeAccess).len(), 2);
    assert!(of(&report, Rule::SaTokenAutomount).is_empty());
}

#[test]
fn standard_input_name_and_reader() {
    let text = fs::read(fixture("seed-deployment.yaml")).unwrap();
    let mut scanner = Scanner::new();
    scanner.add_reader("-", text.as_slice()).unwrap();
    let report = scanner.finish();
    let f = of(&report, Rule::SecretEnvVar);
    assert_eq!(f[0].file, "-");
}

#[test]
fn hostile_input_is_an_error_not_a_hang() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for name in ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] {
        bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = name;
    }
    bomb.push_str("kind: ConfigMap\n");
    let err = Scanner::new().add_str("bomb.yaml", &bomb).unwrap_err();
    assert!(matches!(err, ScanError::Parse { .. }));
    let deep = format!(
        "kind: Pod\nspec: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(Scanner::new().add_str("deep.yaml", &deep).is_err());
}
