//! `ward serve` on a real etcd: the kubectl basics, values encrypted in etcd, and two replicas
//! sharing one etcd (writes through one are read and watched through the other).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Etcd, Server, json};

#[test]
fn two_replicas_on_one_etcd() {
    let etcd = Etcd::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let a_dir = tmp.path().join("a");
    let a = Server::start_in(&a_dir, &["--etcd-servers", &etcd.url]);
    // The second replica shares the first one's encryption config (same keys) and PKI/tokens
    // by using a copy of its data directory, as an operator would distribute them.
    let b_dir = tmp.path().join("b");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&a_dir)
        .arg(&b_dir)
        .status()
        .expect("cp");
    assert!(status.success());
    let b = Server::start_in(&b_dir, &["--etcd-servers", &etcd.url]);

    let out = a.kubectl(&[
        "create",
        "secret",
        "generic",
        "shared",
        "--from-literal=password=etcd-canary-4711",
    ]);
    assert!(out.contains("created"), "{out}");
    let v = b.kubectl(&["get", "secret", "shared", "-o", "jsonpath={.data.password}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), b"etcd-canary-4711");

    // stored encrypted under kube-apiserver's key layout
    let raw = etcd
        .get("/registry/secrets/default/shared")
        .expect("key in etcd");
    assert!(
        raw.starts_with(b"k8s:enc:secretbox:v1:ward-"),
        "{:?}",
        String::from_utf8_lossy(&raw[..30.min(raw.len())])
    );
    assert!(!raw.windows(16).any(|w| w == b"etcd-canary-4711"));

    // a watch on B sees a change made through A
    let rv = b.kubectl(&[
        "get",
        "secret",
        "shared",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    a.kubectl(&["label", "secret", "shared", "via=a"]);
    let (c, body) = b.curl(
        "GET",
        &format!(
            "/api/v1/namespaces/default/secrets?watch=1&resourceVersion={rv}&timeoutSeconds=2"
        ),
        &[],
        None,
    );
    assert_eq!(c, 200, "{body}");
    let ev = json(body.lines().next().expect("an event"));
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["metadata"]["labels"]["via"], "a");

    // conflicts across replicas: a stale resourceVersion through B is refused
    let mut obj = json(&b.kubectl(&["get", "secret", "shared", "-o", "json"]));
    obj["metadata"]["resourceVersion"] = serde_json::json!(rv);
    let out = b.kubectl_with(&["replace", "-f", "-"], Some(&obj.to_string()), &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Conflict"));

    // namespaces and deletion work through either
    b.kubectl(&["create", "namespace", "shared-ns"]);
    a.kubectl(&[
        "create",
        "configmap",
        "c",
        "-n",
        "shared-ns",
        "--from-literal=a=b",
    ]);
    a.kubectl(&["delete", "namespace", "shared-ns", "--timeout=30s"]);
    let err = b.kubectl_fails(&["get", "namespace", "shared-ns"]);
    assert!(err.contains("NotFound"), "{err}");
    drop(a);
    // one replica gone: the other keeps serving
    assert!(
        b.kubectl(&["get", "secrets", "-o", "name"])
            .contains("secret/shared")
    );
}

pub(crate) fn write_config(path: &std::path::Path, keys: &[(&str, &str)]) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut text = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, configmaps]\n  providers:\n  - aesgcm:\n      keys:\n",
    );
    for (name, secret) in keys {
        text.push_str(&format!("      - name: {name}\n        secret: {secret}\n"));
    }
    text.push_str("  - identity: {}\n");
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("config");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
}

#[test]
fn key_rotation_with_ward_rewrite() {
    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let etcd = Etcd::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let cfg = tmp.path().join("enc.yaml");
    let start = |dir: &std::path::Path| {
        Server::start_in(
            dir,
            &[
                "--etcd-servers",
                &etcd.url,
                "--encryption-provider-config",
                cfg.to_str().expect("utf8"),
            ],
        )
    };
    write_config(&cfg, &[("key1", K1)]);
    let mut s = start(&dir);
    for i in 0..25 {
        s.kubectl(&[
            "create",
            "secret",
            "generic",
            &format!("r{i}"),
            &format!("--from-literal=v=value-{i}"),
        ]);
    }
    s.kubectl(&["create", "configmap", "cm", "--from-literal=a=b"]);
    let prefix_of = |name: &str| {
        let raw = etcd
            .get(&format!("/registry/secrets/default/{name}"))
            .expect("stored");
        String::from_utf8_lossy(&raw[..raw.len().min(24)]).into_owned()
    };
    assert!(prefix_of("r0").starts_with("k8s:enc:aesgcm:v1:key1:"));
    s.stop();

    // key2 first, key1 still readable; rewrite everything
    write_config(&cfg, &[("key2", K2), ("key1", K1)]);
    let s = start(&dir);
    let state = tmp.path().join("rewrite.state");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["rewrite", "--page-size", "7", "--kubeconfig"])
        .arg(s.kubeconfig())
        .arg("--state-file")
        .arg(&state)
        .output()
        .expect("ward rewrite");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rewritten: 26"), "{text}");
    assert!(
        !state.exists(),
        "the state file is removed after a complete run"
    );
    for i in 0..25 {
        assert!(
            prefix_of(&format!("r{i}")).starts_with("k8s:enc:aesgcm:v1:key2:"),
            "r{i} not rotated"
        );
    }
    drop(s);

    // the old key removed: everything still reads
    write_config(&cfg, &[("key2", K2)]);
    let s = start(&dir);
    let v = s.kubectl(&["get", "secret", "r24", "-o", "jsonpath={.data.v}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), b"value-24");
    assert_eq!(
        s.kubectl(&["get", "secrets", "-o", "name"]).lines().count(),
        25
    );
}

#[test]
fn automatic_reload_and_stale_only_rewrites() {
    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let etcd = Etcd::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("enc.yaml");
    write_config(&cfg, &[("key1", K1)]);
    let s = Server::start_in(
        &tmp.path().join("ward"),
        &[
            "--etcd-servers",
            &etcd.url,
            "--encryption-provider-config",
            cfg.to_str().expect("utf8"),
            "--encryption-provider-config-automatic-reload",
            "--encryption-provider-config-reload-seconds",
            "1",
        ],
    );
    let prefix_of = |name: &str| {
        let raw = etcd
            .get(&format!("/registry/secrets/default/{name}"))
            .expect("stored");
        String::from_utf8_lossy(&raw[..raw.len().min(24)]).into_owned()
    };
    let rv = |name: &str| {
        s.kubectl(&[
            "get",
            "secret",
            name,
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
    };
    s.kubectl(&["create", "secret", "generic", "old", "--from-literal=a=1"]);
    // a broken file is refused and the old configuration kept
    std::fs::write(&cfg, "kind: Nonsense\n").expect("write");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "still-key1",
        "--from-literal=a=1",
    ]);
    assert!(prefix_of("still-key1").starts_with("k8s:enc:aesgcm:v1:key1:"));
    // the rotated file is picked up without a restart
    write_config(&cfg, &[("key2", K2), ("key1", K1)]);
    let mut rotated = None;
    for i in 0..20 {
        let name = format!("new{i}");
        s.kubectl(&["create", "secret", "generic", &name, "--from-literal=a=2"]);
        if prefix_of(&name).starts_with("k8s:enc:aesgcm:v1:key2:") {
            rotated = Some(name);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let fresh = rotated.expect("new writes use key2 after the reload");
    let (_, metrics) = s.curl("GET", "/metrics", &[], None);
    assert!(
        metrics.contains(
            "apiserver_encryption_config_controller_automatic_reloads_total{status=\"success\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "apiserver_encryption_config_controller_automatic_reloads_total{status=\"failure\"}"
    ));

    // writing an object back unchanged: a no-op when current, a re-encryption when stale
    let fresh_before = rv(&fresh);
    let stale_before = rv("old");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["rewrite", "--resources", "secrets", "--kubeconfig"])
        .arg(s.kubeconfig())
        .output()
        .expect("rewrite");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rv(&fresh), fresh_before, "a current value is not rewritten");
    assert_ne!(rv("old"), stale_before, "a stale value is rewritten");
    assert!(prefix_of("old").starts_with("k8s:enc:aesgcm:v1:key2:"));
}
