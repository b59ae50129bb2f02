//! `ward serve` on a real etcd: the kubectl basics, values encrypted in etcd, and two replicas
//! sharing one etcd (writes through one are read and watched through the other).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Etcd, Server, json, two_replicas};

/// Reads served from replica B's watch cache are linearizable with writes acknowledged by
/// replica A: each GET and LIST through B right after a write through A sees that write (B's
/// cache proves itself current with a prefix summary read after the request arrived), and most
/// of them come from the cache, not from etcd.
#[test]
fn cached_reads_see_every_acknowledged_write_of_the_other_replica() {
    let etcd = Etcd::start();
    let (_tmp, a, b) = two_replicas(&etcd.url);
    let base = "/api/v1/namespaces/default/secrets";
    let (code, body) = a.curl(
        "POST",
        base,
        &["Content-Type: application/json"],
        Some(br#"{"metadata":{"name":"lin"},"data":{"k":"dg=="}}"#),
    );
    assert_eq!(code, 201, "{body}");
    // In-process clients on kept-alive connections: each read follows the write's
    // acknowledgement by well under a millisecond, faster than etcd's watch reaches B.
    const ROUNDS: usize = 300;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ca =
            ward_client::Client::from_kubeconfig(Some(&a.kubeconfig()), None).expect("client a");
        let cb =
            ward_client::Client::from_kubeconfig(Some(&b.kubeconfig()), None).expect("client b");
        for i in 0..ROUNDS {
            let patch = format!(r#"{{"metadata":{{"labels":{{"round":"r{i}"}}}}}}"#);
            let (code, body) = ca
                .send(
                    http::Method::PATCH,
                    &format!("{base}/lin"),
                    Some(("application/merge-patch+json", patch.into())),
                )
                .await
                .expect("patch");
            assert_eq!(code, 200, "{body:?}");
            let written: serde_json::Value = serde_json::from_slice(&body).expect("json");
            let got = cb
                .json(http::Method::GET, &format!("{base}/lin"), None)
                .await
                .expect("get");
            assert_eq!(
                got["metadata"]["labels"]["round"],
                format!("r{i}"),
                "GET after write {i}"
            );
            assert_eq!(
                got["metadata"]["resourceVersion"],
                written["metadata"]["resourceVersion"]
            );
            let list = cb
                .json(
                    http::Method::GET,
                    &format!("{base}?labelSelector=round%3Dr{i}"),
                    None,
                )
                .await
                .expect("list");
            assert_eq!(
                list["items"].as_array().map(Vec::len),
                Some(1),
                "LIST after write {i}: {list}"
            );
        }
    });
    let (code, _) = a.curl("DELETE", &format!("{base}/lin"), &[], None);
    assert_eq!(code, 200);
    let (code, _) = b.curl("GET", &format!("{base}/lin"), &[], None);
    assert_eq!(code, 404, "GET after delete");
    let (_, metrics) = b.curl("GET", "/metrics", &[], None);
    let cached: usize = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"ward_watch_cache_reads_total{resource="secrets",source="cache"} "#)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        cached >= ROUNDS,
        "only {cached} reads from the cache:\n{metrics}"
    );
}

/// Lists larger than gRPC's default 4 MiB reply limit work on etcd, and after a restart the watch
/// cache fills itself from such a collection (in pages) and serves reads from memory.
#[test]
fn lists_beyond_four_mebibytes_and_a_cache_filled_from_them() {
    let etcd = Etcd::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let mut s = Server::start_in(&dir, &["--etcd-servers", &etcd.url]);
    let base = "/api/v1/namespaces/default/secrets";
    // 6 Secrets of ~900 KB each (etcd's default request limit is 1.5 MiB): ~5.4 MB in all.
    let blob = B64.encode(vec![b'x'; 900 * 1024]);
    for i in 0..6 {
        let body = format!(r#"{{"metadata":{{"name":"big-{i}"}},"data":{{"k":"{blob}"}}}}"#);
        let (code, reply) = s.curl(
            "POST",
            base,
            &["Content-Type: application/json"],
            Some(body.as_bytes()),
        );
        assert_eq!(code, 201, "{}", &reply[..reply.len().min(300)]);
    }
    let count = |s: &Server| {
        let (code, body) = s.curl("GET", base, &[], None);
        assert_eq!(code, 200, "{}", &body[..body.len().min(300)]);
        json(&body)["items"].as_array().map(Vec::len)
    };
    assert_eq!(count(&s), Some(6));
    s.stop();
    let s = Server::start_in(&dir, &["--etcd-servers", &etcd.url]);
    assert_eq!(count(&s), Some(6));
    let (code, _) = s.curl("GET", &format!("{base}/big-3"), &[], None);
    assert_eq!(code, 200);
    let (_, metrics) = s.curl("GET", "/metrics", &[], None);
    assert!(
        metrics.contains(r#"apiserver_watch_cache_initializations_total{resource="secrets"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"ward_watch_cache_reads_total{resource="secrets",source="cache"} 0"#),
        "reads were not served from the cache:\n{metrics}"
    );
}

#[test]
fn two_replicas_on_one_etcd() {
    let etcd = Etcd::start();
    // The second replica shares the first one's encryption config (same keys) and PKI/tokens.
    let (_tmp, a, b) = two_replicas(&etcd.url);

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

/// `--etcd-prefix`: keys live under the prefix instead of `/registry`, exactly where
/// kube-apiserver with the same flag puts them, and each value is bound (AES-GCM's AAD) to its
/// full etcd key, so `ward storage decode` with that key reads it and with the `/registry` key
/// does not.
#[test]
fn a_custom_etcd_prefix_places_and_binds_keys_as_kube_apiserver_does() {
    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let etcd = Etcd::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("enc.yaml");
    write_config(&cfg, &[("k1", K1)]);
    let s = Server::start_in(
        &tmp.path().join("ward"),
        &[
            "--etcd-servers",
            &etcd.url,
            "--etcd-prefix",
            "/custom/",
            "--encryption-provider-config",
            cfg.to_str().expect("utf8"),
        ],
    );
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "p1",
        "--from-literal=k=prefixed-77",
    ]);
    let v = s.kubectl(&["get", "secret", "p1", "-o", "jsonpath={.data.k}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), b"prefixed-77");
    assert_eq!(
        s.kubectl(&["get", "secrets", "-o", "name"]).trim(),
        "secret/p1"
    );
    assert!(etcd.get("/registry/secrets/default/p1").is_none());
    let raw = etcd
        .get("/custom/secrets/default/p1")
        .expect("stored under the prefix");
    assert!(raw.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
    let value = tmp.path().join("value");
    std::fs::write(&value, &raw).expect("write");
    let decode = |key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
            .args(["storage", "decode", "--encryption-provider-config"])
            .arg(&cfg)
            .args(["--key", key, "--value-file"])
            .arg(&value)
            .args(["--show-values", "-o", "json"])
            .output()
            .expect("decode")
    };
    let out = decode("/custom/secrets/default/p1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let obj = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(obj["data"]["k"], B64.encode("prefixed-77"));
    assert!(
        !decode("/registry/secrets/default/p1").status.success(),
        "the value is bound to its full key"
    );
    // A prefix that is not a path is refused with the flag's name.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["serve", "--secure-port", "0", "--data-dir"])
        .arg(tmp.path().join("bad"))
        .args(["--etcd-servers", &etcd.url, "--etcd-prefix", "custom"])
        .output()
        .expect("serve");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--etcd-prefix"));
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
