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
