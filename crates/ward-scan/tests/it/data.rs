//! `secret-like-configmap` and `legacy-sa-token-secret`.

use base64::Engine as _;
use ward_scan::{Rule, Severity};

use crate::{fires, of, scan_fixtures, silent};

fn config_map(data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: app}}\n{data}")
}

#[test]
fn token_formats_key_names_and_entropy() {
    let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
    let github = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
    let slack = format!("xoxb-{}", "2112487563-5b2e9c1a7d4f");
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjaSIsImlhdCI6MTcwMDAwMDAwMH0.dGhpcy1pcy1ub3QtYS1zaWduYXR1cmU";
    let text = config_map(&format!(
        "\
data:
  aws: {aws}
  notify: \"{github}\"
  slack-bot: {slack}
  session: {jwt}
  tls.key: |
    -----BEGIN EC PRIVATE KEY-----
    MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49
    -----END EC PRIVATE KEY-----
  DB_PASSWORD: hunter2hunter2
  blob: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
  LOG_LEVEL: debug
"
    ));
    let found = fires(&text, Rule::SecretLikeConfigmap, 7);
    let summary: Vec<(&str, Severity)> = found
        .iter()
        .map(|f| (f.path.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            ("data.aws", Severity::High),
            ("data.notify", Severity::High),
            ("data.slack-bot", Severity::High),
            ("data.session", Severity::High),
            ("data['tls.key']", Severity::High),
            ("data.DB_PASSWORD", Severity::Medium),
            ("data.blob", Severity::Low),
        ]
    );
    assert!(found[0].message.contains("AWS access key ID"));
    assert!(found[1].message.contains("GitHub token"));
    assert!(found[2].message.contains("Slack token"));
    assert!(found[3].message.contains("JSON Web Token"));
    assert!(found[4].message.contains("PEM private key"));
    assert_eq!(found[0].line, Some(5));
    for f in &found {
        for value in [
            &aws,
            &github,
            &slack,
            jwt,
            "hunter2",
            "wJalrXUtnFEMI",
            "MHcCAQEE",
        ] {
            assert!(!f.message.contains(value), "{}", f.message);
        }
    }
}

#[test]
fn embedded_config_files_and_base64() {
    let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = config_map(&format!(
        "\
data:
  application.properties: |
    server.port=8080
    spring.datasource.username=shop
    spring.datasource.password=pr0d-passw0rd
  .env: |
    export REDIS_URL=redis://:r3d1s-pw@redis:6379/0
  encoded: {}
binaryData:
  credentials.ini: {}
  logo.png: iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==
",
        b64(&format!("aws_access_key_id = {aws}\n")),
        b64("[default]\nsecret_token = 9a8b7c6d5e4f3a2b1c0d\n"),
    ));
    let found = fires(&text, Rule::SecretLikeConfigmap, 4);
    let summary: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        summary,
        [
            "data['.env']",
            "data.encoded",
            "data['application.properties']",
            "binaryData['credentials.ini']",
        ]
    );
    assert!(found[0].message.contains("URL with an embedded password"));
    assert_eq!(found[0].severity, Severity::High);
    assert!(found[1].message.contains("base64"));
    assert_eq!(found[1].severity, Severity::High);
    assert!(
        found[2].message.contains("line 3 of the embedded file"),
        "{}",
        found[2].message
    );
    assert!(found[2].message.contains("spring.datasource.password"));
    assert_eq!(found[2].severity, Severity::Medium);
    assert!(
        found[3].message.contains("secret_token"),
        "{}",
        found[3].message
    );
}

#[test]
fn ordinary_configmaps_are_silent() {
    silent(
        &config_map(
            "\
data:
  LOG_LEVEL: info
  PASSWORD_MIN_LENGTH: \"12\"
  TOKEN_URL: https://auth.example.com/oauth/token
  secretName: app-tls
  nginx.conf: |
    server {
      listen 8080;
      location / { proxy_pass http://backend; }
    }
  ca.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBszCCAVmgAwIBAgIUQ2Xh
    -----END CERTIFICATE-----
  checksum: 3f786850e387550fdab836ed7e6dc881de23001b
  DATABASE_URL: postgres://shop@db:5432/shop
  REDIS_URL: redis://:${REDIS_PASSWORD}@redis:6379
",
        ),
        Rule::SecretLikeConfigmap,
    );
}

#[test]
fn helm_output_configmap_with_url_password() {
    let report = scan_fixtures(&["helm-output.yaml"]);
    let found = of(&report, Rule::SecretLikeConfigmap);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    assert_eq!(found[0].path, "data.DATABASE_URL");
    assert_eq!(
        found[0].resource.name.as_deref(),
        Some("release-shop-config")
    );
    assert_eq!(found[0].document, 2);
    assert_eq!(found[0].line, Some(33));
    // The chart's Secret is never examined; envFrom on the Deployment is.
    let env = of(&report, Rule::SecretEnvVar);
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].document, 4);
}

#[test]
fn legacy_service_account_token_secret() {
    let text = "\
apiVersion: v1
kind: Secret
metadata:
  name: build-robot-secret
  annotations:
    kubernetes.io/service-account.name: build-robot
type: kubernetes.io/service-account-token
data:
  token: ZXlKaGJHY2lPaUpTVXpJMU5pSjkuZmFrZQ==
---
apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
data: {tls.crt: eA==, tls.key: eA==}
---
apiVersion: v1
kind: Secret
metadata: {name: opaque}
type: Opaque
stringData: {password: not-examined}
";
    let found = fires(text, Rule::LegacySaTokenSecret, 1);
    assert_eq!(found[0].severity, Severity::Medium);
    assert_eq!(found[0].path, "type");
    assert_eq!(found[0].line, Some(7));
    assert!(found[0].message.contains("\"build-robot\""));
}
