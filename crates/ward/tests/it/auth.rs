//! Authentication: static tokens, client certificates, anonymous requests, `auth whoami`.

use std::path::Path;
use std::process::Command;

use crate::harness::{Server, json};

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

/// A client CA and a client certificate for CN=carol, O=auditors.
fn client_pki(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=test-client-ca",
            "-days",
            "1",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=carol/O=auditors",
            "-keyout",
            "carol.key",
            "-out",
            "carol.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "carol.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "client.ext",
            "-out",
            "carol.crt",
        ],
        dir,
    );
    // A certificate from another CA must not authenticate.
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=mallory/O=system:masters",
            "-days",
            "1",
            "-keyout",
            "evil.key",
            "-out",
            "evil.crt",
        ],
        dir,
    );
}

#[test]
fn tokens_certificates_and_whoami() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).expect("mkdir");
    client_pki(&pki);
    let tokens = tmp.path().join("tokens.csv");
    std::fs::write(&tokens, "alice-token-0001,alice,u-100,\"devs,ops\"\n").expect("tokens");
    let s = Server::start_in(
        &tmp.path().join("ward"),
        &[
            "--token-auth-file",
            tokens.to_str().expect("utf8"),
            "--client-ca-file",
            pki.join("ca.crt").to_str().expect("utf8"),
        ],
    );

    // admin
    let who = s.kubectl(&["auth", "whoami", "-o", "json"]);
    let v = json(&who);
    assert_eq!(v["status"]["userInfo"]["username"], "ward-admin");

    // a static token user
    let out = s.kubectl(&["--token", "alice-token-0001", "auth", "whoami"]);
    assert!(
        out.contains("alice") && out.contains("devs") && out.contains("system:authenticated"),
        "{out}"
    );
    // ... who may not read secrets until RBAC grants it
    let err = s.kubectl_fails(&["--token", "alice-token-0001", "get", "secrets"]);
    assert!(err.contains("Forbidden"), "{err}");

    // a client certificate
    let cert = format!("--client-certificate={}", pki.join("carol.crt").display());
    let key = format!("--client-key={}", pki.join("carol.key").display());
    let kc = tmp.path().join("nouser.kubeconfig");
    let text = std::fs::read_to_string(s.kubeconfig()).expect("kubeconfig");
    let without_token: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("token:"))
        .map(|l| {
            if l.trim() == "user:" {
                "  user: {}".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&kc, without_token).expect("write");
    let run = |args: &[&str]| {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .env("HOME", s.home.path())
            .output()
            .expect("kubectl")
    };
    let out = run(&[&cert, &key, "auth", "whoami"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("carol") && text.contains("auditors"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // a certificate from an unknown CA fails the handshake
    let evil_cert = format!("--client-certificate={}", pki.join("evil.crt").display());
    let evil_key = format!("--client-key={}", pki.join("evil.key").display());
    let out = run(&[&evil_cert, &evil_key, "get", "secrets"]);
    assert!(!out.status.success(), "foreign client certificate accepted");

    // no credentials at all: 401 (anonymous is off)
    let (c, b) = s.curl_as("GET", "/api/v1/namespaces/default/secrets", &[], None, None);
    assert_eq!(c, 401, "{b}");
    // a wrong token: 401, same message
    let (c, b) = s.curl_as(
        "GET",
        "/api/v1/namespaces/default/secrets",
        &[],
        None,
        Some("alice-token-0002"),
    );
    assert_eq!(c, 401, "{b}");
    assert_eq!(json(&b)["message"], "Unauthorized");
    let logs = s.logs();
    assert!(!logs.contains("alice-token-0001"), "token in logs");
}

#[test]
fn service_account_tokens() {
    let s = Server::start();
    s.kubectl(&["create", "serviceaccount", "robot"]);
    let token = s.kubectl(&["create", "token", "robot"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let who = s.kubectl(&["--token", token, "auth", "whoami"]);
    assert!(who.contains("system:serviceaccount:default:robot"), "{who}");
    assert!(who.contains("system:serviceaccounts:default"), "{who}");
    // too short a lifetime is refused; an audience the API does not accept is not usable here
    let err = s.kubectl_fails(&["create", "token", "robot", "--duration=1m"]);
    assert!(err.contains("10 minutes"), "{err}");
    let vault = s.kubectl(&["create", "token", "robot", "--audience=vault"]);
    let (c, _) = s.curl_as("GET", "/api", &[], None, Some(vault.trim()));
    assert_eq!(
        c, 401,
        "a token for another audience authenticates nothing here"
    );
    // tampering breaks it
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_sig = "A".repeat(parts[2].len());
    parts[2] = &forged_sig;
    let (c, _) = s.curl_as("GET", "/api", &[], None, Some(&parts.join(".")));
    assert_eq!(c, 401);
    // deleting the ServiceAccount revokes its tokens
    s.kubectl(&["delete", "serviceaccount", "robot"]);
    let (c, b) = s.curl_as("GET", "/api", &[], None, Some(token));
    assert_eq!(c, 401, "{b}");
    // ... and a new ServiceAccount with the same name does not revive them (uid differs)
    s.kubectl(&["create", "serviceaccount", "robot"]);
    let (c, _) = s.curl_as("GET", "/api", &[], None, Some(token));
    assert_eq!(c, 401);
    let err = s.kubectl_fails(&["create", "token", "ghost"]);
    assert!(err.contains("not found"), "{err}");
    assert!(!s.logs().contains(token), "token in logs");
}
