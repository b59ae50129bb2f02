//! No secret value from the input may appear in any output format, in `Debug`, or in errors.

use base64::Engine as _;
use ward_scan::Scanner;

const CANARY: &str = "c4n4ry-Zq81xWv0pLm7Ty2";

fn inputs() -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let aws = format!("AKIA{}", "CANARYCANARY2345");
    format!(
        "\
apiVersion: v1
kind: Secret
metadata:
  name: canary
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{\"stringData\":{{\"password\":\"{CANARY}\"}}}}'
type: kubernetes.io/service-account-token
data:
  password: {data}
stringData:
  token: {CANARY}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: leaky}}
data:
  DB_PASSWORD: {CANARY}
  AWS_KEY: {aws}
  application.properties: |
    db.password={CANARY}
  encoded: {data_aws}
binaryData:
  creds.env: {data_env}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  template:
    spec:
      containers:
        - name: app
          image: a
          env:
            - {{name: API_TOKEN, value: {CANARY}}}
            - {{name: AWS_ACCESS_KEY_ID, value: {aws}}}
---
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc: {{keys: [{{name: k1, secret: {data}}}]}}
      - identity: {{}}
",
        data = b64(CANARY),
        data_aws = b64(&format!("key={aws}")),
        data_env = b64(&format!("SECRET_TOKEN={CANARY}\n")),
    )
}

fn forbidden() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        CANARY.to_owned(),
        b64(CANARY),
        "CANARYCANARY2345".to_owned(),
        b64(&format!("SECRET_TOKEN={CANARY}\n")),
    ]
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for value in forbidden() {
        assert!(
            !text.contains(&value),
            "{what} leaks a secret value:\n{text}"
        );
    }
}

#[test]
fn no_output_format_contains_a_secret_value() {
    let mut scanner = Scanner::new();
    scanner.add_str("canary.yaml", &inputs()).unwrap();
    assert_clean("Scanner Debug", &format!("{scanner:?}"));
    let report = scanner.finish();
    assert!(report.findings.len() >= 8, "{:#?}", report.findings);
    for (name, write) in [
        (
            "table",
            ward_scan::Report::write_table as fn(&_, &mut dyn std::io::Write) -> _,
        ),
        ("json", ward_scan::Report::write_json),
        ("sarif", ward_scan::Report::write_sarif),
    ] {
        let mut out = Vec::new();
        write(&report, &mut out).unwrap();
        assert_clean(name, &String::from_utf8(out).unwrap());
    }
    assert_clean("Report Debug", &format!("{report:?}"));
}

#[test]
fn errors_do_not_contain_secret_values() {
    for broken in [
        format!("kind: Secret\nstringData:\n  password: [{CANARY}\n"),
        format!("kind: ConfigMap\ndata:\n  a: \"{CANARY}\n"),
        format!("kind: ConfigMap\ndata: {{{CANARY}: x: y}}\n"),
        format!("{{\"kind\": \"Secret\", \"data\": {{\"a\": \"{CANARY}\"\n"),
    ] {
        let err = Scanner::new().add_str("broken.yaml", &broken).unwrap_err();
        assert_clean("error Display", &err.to_string());
        assert_clean("error Debug", &format!("{err:?}"));
    }
}
