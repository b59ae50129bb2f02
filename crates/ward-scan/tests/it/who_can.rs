//! `who-can read secret` on a multi-role fixture.

use std::collections::BTreeSet;

use ward_scan::{Access, Scanner, SecretRef, SubjectRef, WhoCanOptions, WhoCanReport};

use crate::fixture;

fn ask(secret: &str, options: &WhoCanOptions) -> WhoCanReport {
    let mut scanner = Scanner::new();
    scanner.add_path(&fixture("rbac-multi-role.yaml")).unwrap();
    scanner.who_can_read(&secret.parse::<SecretRef>().unwrap(), options)
}

fn subjects(report: &WhoCanReport, access: Access) -> BTreeSet<String> {
    report
        .paths
        .iter()
        .filter(|p| p.access == access)
        .map(|p| p.subject.to_string())
        .collect()
}

fn how(report: &WhoCanReport, subject: &str) -> Vec<String> {
    report
        .paths
        .iter()
        .filter(|p| p.subject.to_string() == subject)
        .flat_map(|p| p.how.clone())
        .collect()
}

#[test]
fn every_direct_and_indirect_reader_with_its_path() {
    let report = ask("shop/db-password", &WhoCanOptions::default());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        subjects(&report, Access::Direct),
        BTreeSet::from(
            [
                "Group devs",
                "Group shop-oncall",
                "Group system:masters",
                "ServiceAccount shop/app",
                "User alice",
            ]
            .map(String::from)
        )
    );
    let indirect = subjects(&report, Access::Indirect);
    for expected in [
        "ServiceAccount ci/deployer",
        "User mallory",
        "User bob",
        "Group monitoring",
        "User carol",
        "Group devs",
        "Group system:masters",
    ] {
        assert!(
            indirect.contains(expected),
            "{expected} missing from {indirect:?}"
        );
    }
    for absent in ["User dave", "User erin", "Group viewers"] {
        assert!(
            !report.paths.iter().any(|p| p.subject.to_string() == absent),
            "{absent} must not be able to read it"
        );
    }

    let alice = report
        .paths
        .iter()
        .find(|p| p.subject.to_string() == "User alice")
        .unwrap();
    assert_eq!(alice.how, ["get"]);
    assert_eq!(alice.binding, "RoleBinding \"alice-reads/shop\"");
    assert_eq!(alice.role, "Role \"secret-reader\"");
    // The binding leaves the service account's namespace empty: it is the binding's.
    assert_eq!(how(&report, "ServiceAccount shop/app"), ["get"]);
    assert_eq!(how(&report, "Group shop-oncall"), ["list", "watch"]);
    assert_eq!(
        how(&report, "ServiceAccount ci/deployer"),
        [
            "create pods",
            "create deployments.apps",
            "update deployments.apps",
            "patch deployments.apps"
        ]
    );
    assert_eq!(
        how(&report, "User mallory"),
        ["impersonate User alice"],
        "impersonating users, of whom alice reads it"
    );
    assert_eq!(
        how(&report, "User bob"),
        ["create a token for ServiceAccount shop/app"]
    );
    assert_eq!(
        how(&report, "Group monitoring"),
        ["nodes/proxy (kubelet API)"]
    );
    assert_eq!(
        how(&report, "User carol"),
        ["escalate clusterroles", "bind clusterroles"]
    );
    let devs = how(&report, "Group devs");
    for expected in ["get", "list", "watch", "create pods", "create pods/exec"] {
        assert!(
            devs.contains(&expected.to_owned()),
            "{expected} missing from {devs:?}"
        );
    }
}

#[test]
fn any_secret_of_the_namespace_ignores_name_limited_rules() {
    let report = ask("shop/*", &WhoCanOptions::default());
    let direct = subjects(&report, Access::Direct);
    assert!(!direct.contains("User alice"), "{direct:?}");
    assert!(direct.contains("Group shop-oncall"));
    // Without a name, the named token rule cannot be used either.
    assert!(how(&report, "User bob").is_empty());
}

#[test]
fn subject_filter_and_no_builtin_roles() {
    let mut options = WhoCanOptions::default();
    options.subject = Some("User:alice".parse::<SubjectRef>().unwrap());
    let report = ask("shop/db-password", &options);
    assert_eq!(report.paths.len(), 1);

    let mut options = WhoCanOptions::default();
    options.builtin_roles = false;
    let report = ask("shop/db-password", &options);
    assert!(!subjects(&report, Access::Direct).contains("Group system:masters"));
    // devs-edit now points at a missing ClusterRole: a warning, and no path.
    assert!(!subjects(&report, Access::Direct).contains("Group devs"));
    assert!(
        report.warnings.iter().any(|w| w.contains("devs-edit")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn roles_without_namespace_take_the_default_one() {
    let text = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [\"\"], resources: [secrets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: User, name: helm-user, apiGroup: rbac.authorization.k8s.io}]
";
    let mut scanner = Scanner::new();
    scanner.add_str("chart.yaml", text).unwrap();
    let mut options = WhoCanOptions::default();
    options.default_namespace = "release-ns".to_owned();
    options.builtin_roles = false;
    let report = scanner.who_can_read(&"release-ns/x".parse().unwrap(), &options);
    assert_eq!(
        subjects(&report, Access::Direct),
        BTreeSet::from(["User helm-user".to_owned()])
    );
}

#[test]
fn table_and_json_output() {
    let report = ask("shop/db-password", &WhoCanOptions::default());
    let mut out = Vec::new();
    report.write_table(&mut out).unwrap();
    let table = String::from_utf8(out).unwrap();
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/who-can.txt");
    if std::env::var_os("WARD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &table).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        table, expected,
        "run with WARD_UPDATE_GOLDEN=1 and review the diff"
    );

    let mut out = Vec::new();
    report.write_json(&mut out).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        json["secret"],
        serde_json::json!({"namespace": "shop", "name": "db-password"})
    );
    let alice = json["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["subject"]["name"] == "alice")
        .unwrap();
    assert_eq!(
        *alice,
        serde_json::json!({
            "subject": {"kind": "User", "name": "alice"},
            "access": "direct",
            "how": ["get"],
            "binding": "RoleBinding \"alice-reads/shop\"",
            "role": "Role \"secret-reader\"",
        })
    );
}
