//! Restarts: data, keys and credentials survive; plaintext never reaches the data directory.

use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Server, files_containing, files_under};

#[test]
fn data_survives_restart_and_plaintext_never_hits_disk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let canary = "canary-7f3a9c-hunter2";
    let mut s = Server::start_in(&dir, &[]);
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "keep",
        &format!("--from-literal=password={canary}"),
    ]);
    s.kubectl(&[
        "create",
        "configmap",
        "cm",
        &format!("--from-literal=note={canary}"),
    ]);
    let rv_before = s.kubectl(&[
        "get",
        "secret",
        "keep",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let token = s.token();
    let ca = std::fs::read(dir.join("pki/ca.crt")).expect("ca");
    let enc = std::fs::read(dir.join("encryption-config.yaml")).expect("encryption config");
    s.stop();
    let logs = s.logs();
    assert!(
        logs.contains("object written"),
        "the server logged its writes: {logs}"
    );
    assert!(
        !logs.contains(canary) && !logs.contains(&B64.encode(canary)),
        "value in logs"
    );
    assert!(!logs.contains(&token), "admin token in logs");

    // modes: private files 0600, directories 0700
    for f in [
        "admin.kubeconfig",
        "admin.token",
        "encryption-config.yaml",
        "pki/ca.key",
        "pki/server.key",
    ] {
        let mode = std::fs::metadata(dir.join(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    assert_eq!(
        std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );

    let s = Server::start_in(&dir, &[]);
    assert_eq!(s.token(), token, "admin credential reused");
    assert_eq!(
        std::fs::read(dir.join("pki/ca.crt")).expect("ca"),
        ca,
        "CA reused"
    );
    assert_eq!(
        std::fs::read(dir.join("encryption-config.yaml")).expect("enc"),
        enc,
        "key reused"
    );
    let v = s.kubectl(&["get", "secret", "keep", "-o", "jsonpath={.data.password}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), canary.as_bytes());
    let rv_after = s.kubectl(&[
        "get",
        "secret",
        "keep",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv_before, rv_after);
    let note = s.kubectl(&["get", "cm", "cm", "-o", "jsonpath={.data.note}"]);
    assert_eq!(note, canary);

    assert!(!files_under(&dir).is_empty());
    let leaks = files_containing(&dir, canary.as_bytes());
    assert!(leaks.is_empty(), "plaintext found in {leaks:?}");
    let leaks = files_containing(&dir, B64.encode(canary).as_bytes());
    assert!(leaks.is_empty(), "base64 plaintext found in {leaks:?}");
    let db = std::fs::read(dir.join("db/ward.redb")).expect("db");
    assert!(
        db.windows(26).any(|w| w == b"k8s:enc:secretbox:v1:ward-"),
        "values are secretbox-encrypted"
    );
}

#[test]
fn a_crash_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let mut s = Server::start_in(&dir, &[]);
    let path = "/api/v1/namespaces/default/secrets";
    let acked = std::sync::Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for w in 0..3 {
            let (s, acked, stop) = (&s, &acked, &stop);
            scope.spawn(move || {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("crash-{w}-{i}");
                    let body = format!(
                        r#"{{"metadata":{{"name":"{name}"}},"stringData":{{"k":"v{i}"}}}}"#
                    );
                    let (code, _) = s.curl(
                        "POST",
                        path,
                        &["Content-Type: application/json"],
                        Some(body.as_bytes()),
                    );
                    match code {
                        201 => acked.lock().expect("lock").push(name),
                        0 => break, // the server is gone
                        other => panic!("unexpected status {other}"),
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SIGKILL while writers are mid-request.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &s.pid().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    s.crash();
    let acked = acked.into_inner().expect("lock");
    assert!(
        acked.len() > 10,
        "too few writes before the crash: {}",
        acked.len()
    );

    let s = Server::start_in(&dir, &[]);
    let names = s.kubectl(&[
        "get",
        "secrets",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ]);
    let present: std::collections::BTreeSet<&str> = names.lines().collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|n| !present.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost in the crash: {lost:?}"
    );
    // The store is still writable and consistent after the crash.
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "after-crash",
        "--from-literal=a=b",
    ]);
}

#[test]
fn tls_sans_are_in_the_serving_certificate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let s = Server::start_in(
        &dir,
        &["--tls-san", "ward.example.test", "--tls-san", "10.9.8.7"],
    );
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dir.join("pki/server.crt"))
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "DNS:ward.example.test",
        "IP Address:10.9.8.7",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    // and kubectl verifies the chain against the generated CA
    s.kubectl(&["get", "namespaces"]);
}

#[test]
fn storage_encode_and_decode_cli() {
    let s = Server::start();
    let cfg = s.data_dir.join("encryption-config.yaml");
    let secret = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(secret.path(), "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\n").expect("write");
    let key = "/registry/secrets/default/db";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["storage", "encode", "--encryption-provider-config"])
        .arg(&cfg)
        .args(["--key", key, "-f"])
        .arg(secret.path())
        .output()
        .expect("encode");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"k8s:enc:secretbox:v1:ward-"));
    assert!(!out.stdout.windows(7).any(|w| w == b"hunter2"));
    let value = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(value.path(), &out.stdout).expect("write");
    let decode = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
            .args(["storage", "decode", "--encryption-provider-config"])
            .arg(&cfg)
            .args(["--key", key, "--value-file"])
            .arg(value.path())
            .args(extra)
            .output()
            .expect("decode")
    };
    let redacted = decode(&[]);
    let text = String::from_utf8_lossy(&redacted.stdout);
    assert!(
        redacted.status.success() && text.contains("<redacted>") && !text.contains("aHVudGVyMg=="),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&redacted.stderr).contains("decrypted by secretbox"));
    let shown = decode(&["--show-values", "-o", "yaml"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("password: aHVudGVyMg=="));
    // a wrong key (AAD/path) or a tampered value is a clear error
    let mut bad = out.stdout;
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(value.path(), &bad).expect("write");
    let failed = decode(&[]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains(key));
}
