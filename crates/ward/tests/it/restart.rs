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
