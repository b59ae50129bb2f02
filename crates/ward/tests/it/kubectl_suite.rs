//! The kubectl commands of the API spec (§2.2) that concern Secrets, ConfigMaps and Namespaces,
//! against a real `ward serve`: every test runs twice, on the embedded store (`on_redb`) and on a
//! real etcd (`on_etcd`, `--etcd-servers`).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Etcd, Server, files_containing, json};

/// A server on one backend; the etcd, when there is one, lives as long as the server.
struct Suite {
    server: Server,
    etcd: Option<Etcd>,
}

impl Suite {
    fn redb() -> Suite {
        Suite {
            server: Server::start(),
            etcd: None,
        }
    }

    fn etcd() -> Suite {
        let etcd = Etcd::start();
        let dir = tempfile::tempdir().expect("tmp");
        let mut server = Server::start_in(&dir.path().join("ward"), &["--etcd-servers", &etcd.url]);
        server.keep(dir);
        Suite {
            server,
            etcd: Some(etcd),
        }
    }

    /// Files of the server's data directory and of etcd's that contain `needle`.
    fn files_containing(&self, needle: &[u8]) -> Vec<std::path::PathBuf> {
        let mut found = files_containing(&self.server.data_dir, needle);
        if let Some(etcd) = &self.etcd {
            found.extend(files_containing(etcd.dir(), needle));
        }
        found
    }
}

impl std::ops::Deref for Suite {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_redb {
            $(#[test]
            fn $name() {
                super::$name(&super::Suite::redb());
            })*
        }
        mod on_etcd {
            $(#[test]
            fn $name() {
                super::$name(&super::Suite::etcd());
            })*
        }
    };
}

on_both_backends!(
    the_readme_example_verbatim,
    secrets_crud_with_kubectl,
    configmaps_namespaces_and_discovery,
    kubectl_watch_sees_changes,
    rbac_objects_and_service_accounts,
    managed_fields_and_server_side_apply_conflicts,
);

const EXAMPLE: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: my-api-secret
type: Opaque
data:
  API_KEY: aHVudGVyMg==
";

fn the_readme_example_verbatim(s: &Suite) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], EXAMPLE);
    assert!(out.contains("secret/my-api-secret created"), "{out}");
    let b64 = s.kubectl(&[
        "get",
        "secret",
        "my-api-secret",
        "-o",
        "jsonpath={.data.API_KEY}",
    ]);
    let plain = B64.decode(b64.trim()).expect("base64");
    assert_eq!(plain, b"hunter2");
    // Applying again is a no-op update through strategic merge patch.
    let again = s.kubectl_stdin(&["apply", "-f", "-"], EXAMPLE);
    assert!(
        again.contains("unchanged") || again.contains("configured"),
        "{again}"
    );
    assert_eq!(
        s.files_containing(b"hunter2"),
        Vec::<std::path::PathBuf>::new(),
        "plaintext on disk"
    );
    assert_eq!(
        s.files_containing(b"aHVudGVyMg=="),
        Vec::<std::path::PathBuf>::new()
    );
}

fn secrets_crud_with_kubectl(s: &Suite) {
    // create (protobuf body from kubectl 1.32), get table, yaml, json
    let out = s.kubectl(&[
        "create",
        "secret",
        "generic",
        "x1",
        "--from-literal=a=b",
        "--from-literal=c=d",
    ]);
    assert!(out.contains("secret/x1 created"), "{out}");
    let table = s.kubectl(&["get", "secrets"]);
    assert!(
        table.contains("NAME") && table.contains("TYPE") && table.contains("DATA"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("x1"))
        .expect("row for x1");
    assert!(
        row.contains("Opaque") && row.split_whitespace().nth(2) == Some("2"),
        "{row}"
    );
    let obj = json(&s.kubectl(&["get", "secret", "x1", "-o", "json"]));
    assert_eq!(obj["type"], "Opaque");
    assert_eq!(obj["data"]["a"], "Yg==");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert!(
        obj["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    let yaml = s.kubectl(&["get", "secret", "x1", "-o", "yaml"]);
    assert!(yaml.contains("name: x1"), "{yaml}");

    // already exists
    let err = s.kubectl_fails(&["create", "secret", "generic", "x1", "--from-literal=a=b"]);
    assert!(err.contains("secrets \"x1\" already exists"), "{err}");

    // dry-run=server persists nothing
    let out = s.kubectl(&[
        "create",
        "secret",
        "generic",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ]);
    assert!(out.contains("secret/dry created (server dry run)"), "{out}");
    let err = s.kubectl_fails(&["get", "secret", "dry"]);
    assert!(
        err.contains("NotFound") && err.contains("secrets \"dry\" not found"),
        "{err}"
    );

    // label, annotate, selectors
    assert!(
        s.kubectl(&["label", "secret", "x1", "tier=db"])
            .contains("secret/x1 labeled")
    );
    assert!(
        s.kubectl(&["annotate", "secret", "x1", "owner=team-a"])
            .contains("annotated")
    );
    s.kubectl(&["create", "secret", "generic", "x2", "--from-literal=k=v"]);
    let by_label = s.kubectl(&["get", "secrets", "-l", "tier=db", "-o", "name"]);
    assert_eq!(by_label.trim(), "secret/x1");
    let not_label = s.kubectl(&["get", "secrets", "-l", "tier!=db", "-o", "name"]);
    assert!(
        not_label.contains("secret/x2") && !not_label.contains("secret/x1"),
        "{not_label}"
    );
    let by_field = s.kubectl(&[
        "get",
        "secrets",
        "--field-selector",
        "type=Opaque,metadata.name=x2",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "secret/x2");
    let err = s.kubectl_fails(&["get", "secrets", "--field-selector", "spec.foo=bar"]);
    assert!(err.contains("BadRequest"), "{err}");
    let err = s.kubectl_fails(&["get", "secrets", "-l", "a in (b"]);
    assert!(!err.is_empty());

    // patches: merge, json, strategic (default)
    s.kubectl(&[
        "patch",
        "secret",
        "x1",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"m":"bQ=="}}"#,
    ]);
    s.kubectl(&[
        "patch",
        "secret",
        "x1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/data/c"}]"#,
    ]);
    s.kubectl(&[
        "patch",
        "secret",
        "x1",
        "-p",
        r#"{"stringData":{"s":"plain"}}"#,
    ]);
    let obj = json(&s.kubectl(&["get", "secret", "x1", "-o", "json"]));
    assert_eq!(obj["data"]["m"], "bQ==");
    assert!(obj["data"].get("c").is_none());
    assert_eq!(obj["data"]["s"], B64.encode("plain"));
    assert!(
        obj.get("stringData").is_none(),
        "stringData is never returned"
    );
    assert_eq!(obj["metadata"]["labels"]["tier"], "db");
    assert_eq!(obj["metadata"]["annotations"]["owner"], "team-a");

    // replace with a stale resourceVersion conflicts; with the current one succeeds
    let mut stale = obj.clone();
    stale["metadata"]["resourceVersion"] = serde_json::json!("1");
    let out = s.kubectl_with(&["replace", "-f", "-"], Some(&stale.to_string()), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Conflict"), "{err}");
    let mut fresh = obj;
    fresh["data"]["r"] = serde_json::json!("cg==");
    let out = s.kubectl_stdin(&["replace", "-f", "-"], &fresh.to_string());
    assert!(out.contains("secret/x1 replaced"), "{out}");

    // edit through an editor script
    let editor = s.home.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/tier: db/tier: web/' \"$1\"\n",
    )
    .expect("editor");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .expect("chmod");
    let out = s.kubectl_with(
        &["edit", "secret", "x1"],
        None,
        &[("KUBE_EDITOR", editor.to_str().expect("utf8"))],
    );
    assert!(
        out.status.success(),
        "edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let labels = s.kubectl(&[
        "get",
        "secret",
        "x1",
        "-o",
        "jsonpath={.metadata.labels.tier}",
    ]);
    assert_eq!(labels, "web");

    // server-side apply: create and update
    let ssa = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa\nstringData:\n  k: v1\n";
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], ssa);
    assert!(out.contains("secret/ssa serverside-applied"), "{out}");
    let out = s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &ssa.replace("k: v1", "k: v2"),
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let v = s.kubectl(&["get", "secret", "ssa", "-o", "jsonpath={.data.k}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), b"v2");

    // typed secrets
    let dir = s.home.path();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=e2e",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl made a test certificate");
    let crt = format!("--cert={}", dir.join("tls.crt").display());
    let key = format!("--key={}", dir.join("tls.key").display());
    s.kubectl(&["create", "secret", "tls", "t1", &crt, &key]);
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "d1",
        "--docker-server=r.io",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    let types = s.kubectl(&[
        "get",
        "secrets",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.type}{\"\\n\"}{end}",
    ]);
    assert!(
        types.contains("t1=kubernetes.io/tls")
            && types.contains("d1=kubernetes.io/dockerconfigjson"),
        "{types}"
    );
    let bad_tls = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: badtls\ntype: kubernetes.io/tls\ndata:\n  tls.crt: eA==\n";
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(bad_tls), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is invalid") && err.contains("data[tls.key]"),
        "{err}"
    );

    // immutable secrets
    let imm =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: imm\nimmutable: true\ndata:\n  k: dg==\n";
    s.kubectl_stdin(&["create", "-f", "-"], imm);
    let err = s.kubectl_fails(&[
        "patch",
        "secret",
        "imm",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"k":"dw=="}}"#,
    ]);
    assert!(
        err.contains("field is immutable when `immutable` is set"),
        "{err}"
    );
    s.kubectl(&["label", "secret", "imm", "still=ok"]);

    // delete one, then by label, then --all
    assert!(
        s.kubectl(&["delete", "secret", "x2"])
            .contains("secret \"x2\" deleted")
    );
    s.kubectl(&["label", "secret", "t1", "d1", "group=typed"]);
    let out = s.kubectl(&["delete", "secrets", "-l", "group=typed"]);
    assert!(out.contains("t1") && out.contains("d1"), "{out}");
    s.kubectl(&["delete", "secrets", "--all"]);
    let rest = s.kubectl(&["get", "secrets", "-o", "name"]);
    assert_eq!(rest.trim(), "", "all secrets deleted");
}

fn configmaps_namespaces_and_discovery(s: &Suite) {
    let ns = s.kubectl(&["get", "namespaces", "-o", "name"]);
    for n in ["default", "kube-system", "kube-public"] {
        assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
    }
    let table = s.kubectl(&["get", "ns"]);
    assert!(
        table.contains("STATUS") && table.contains("Active"),
        "{table}"
    );

    s.kubectl(&["create", "namespace", "team-a"]);
    s.kubectl(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "team-a",
        "--from-literal=mode=fast",
    ]);
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "team-a",
        "--from-literal=k=v",
    ]);
    let cm = json(&s.kubectl(&["get", "cm", "cfg", "-n", "team-a", "-o", "json"]));
    assert_eq!(cm["data"]["mode"], "fast");
    let all = s.kubectl(&["get", "secrets", "-A"]);
    assert!(all.contains("NAMESPACE") && all.contains("team-a"), "{all}");

    let err = s.kubectl_fails(&[
        "create",
        "secret",
        "generic",
        "x",
        "-n",
        "missing",
        "--from-literal=a=b",
    ]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
    let err = s.kubectl_fails(&["delete", "namespace", "default"]);
    assert!(err.contains("Forbidden"), "{err}");

    let out = s.kubectl(&["delete", "namespace", "team-a", "--timeout=30s"]);
    assert!(out.contains("namespace \"team-a\" deleted"), "{out}");
    let err = s.kubectl_fails(&["get", "namespace", "team-a"]);
    assert!(err.contains("NotFound"), "{err}");
    let left = s.kubectl(&["get", "secrets,configmaps", "-A", "-o", "name"]);
    assert!(
        !left.contains("team-a") && left.trim().is_empty(),
        "contents deleted: {left}"
    );

    let resources = s.kubectl(&["api-resources"]);
    for r in ["secrets", "configmaps", "namespaces"] {
        assert!(resources.contains(r), "{resources}");
    }
    assert!(resources.contains("cm") && resources.contains("ns"));
    let versions = s.kubectl(&["api-versions"]);
    assert!(versions.lines().any(|l| l.trim() == "v1"), "{versions}");

    // a wrong token is refused
    let kc = std::fs::read_to_string(s.kubeconfig()).expect("kubeconfig");
    let bad = s.home.path().join("bad.kubeconfig");
    std::fs::write(&bad, kc.replace(&s.token(), "not-the-token")).expect("write");
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&bad)
        .args(["get", "secrets"])
        .env("HOME", s.home.path())
        .output()
        .expect("kubectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Unauthorized"),
        "{err}"
    );
}

fn kubectl_watch_sees_changes(s: &Suite) {
    s.kubectl(&["create", "secret", "generic", "w0", "--from-literal=a=b"]);
    let kubeconfig = s.kubeconfig();
    let home = s.home.path().to_path_buf();
    let watcher = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "secrets", "-w", "--request-timeout=8s", "-o", "name"])
        .env("HOME", &home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl -w");
    std::thread::sleep(Duration::from_secs(2));
    s.kubectl(&["create", "secret", "generic", "w1", "--from-literal=a=b"]);
    s.kubectl(&["label", "secret", "w1", "x=y"]);
    s.kubectl(&["delete", "secret", "w1"]);
    let out = watcher.wait_with_output().expect("watch output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("secret/w0"), "initial list: {text}");
    assert!(
        text.matches("secret/w1").count() >= 2,
        "watch events: {text}"
    );
}

fn rbac_objects_and_service_accounts(s: &Suite) {
    assert!(
        s.kubectl(&["create", "serviceaccount", "sa1"])
            .contains("serviceaccount/sa1 created")
    );
    assert!(s.kubectl(&["get", "sa"]).contains("sa1"));
    s.kubectl(&[
        "create",
        "role",
        "r1",
        "--verb=get,list",
        "--resource=secrets",
        "--resource-name=s1",
    ]);
    s.kubectl(&[
        "create",
        "rolebinding",
        "rb1",
        "--role=r1",
        "--user=bob",
        "--group=g1",
        "--serviceaccount=default:sa1",
    ]);
    s.kubectl(&[
        "create",
        "clusterrole",
        "cr1",
        "--verb=get",
        "--resource=configmaps",
    ]);
    s.kubectl(&[
        "create",
        "clusterrolebinding",
        "crb1",
        "--clusterrole=cr1",
        "--group=devs",
    ]);
    let role = json(&s.kubectl(&["get", "role", "r1", "-o", "json"]));
    assert_eq!(role["rules"][0]["resourceNames"][0], "s1");
    let rb = json(&s.kubectl(&["get", "rolebinding", "rb1", "-o", "json"]));
    assert_eq!(rb["roleRef"]["name"], "r1");
    assert_eq!(rb["subjects"].as_array().map(Vec::len), Some(3));
    let table = s.kubectl(&["get", "rolebindings"]);
    assert!(
        table.contains("ROLE") && table.contains("Role/r1"),
        "{table}"
    );
    assert!(
        s.kubectl(&["get", "clusterroles", "-o", "name"])
            .contains("clusterrole.rbac.authorization.k8s.io/cr1")
    );
    let err = s.kubectl_fails(&[
        "patch",
        "rolebinding",
        "rb1",
        "--type",
        "merge",
        "-p",
        r#"{"roleRef":{"name":"other"}}"#,
    ]);
    assert!(err.contains("cannot change roleRef"), "{err}");
    let bad = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: bad\nrules:\n- verbs: [get]\n  nonResourceURLs: [/healthz]\n";
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(bad), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("non-resource URLs"),
        "{err}"
    );
    s.kubectl(&["delete", "clusterrolebinding", "crb1"]);
    s.kubectl(&["delete", "role", "r1"]);
    assert!(!s.kubectl(&["get", "roles", "-o", "name"]).contains("r1"));
}

fn managed_fields_and_server_side_apply_conflicts(s: &Suite) {
    s.kubectl(&["create", "configmap", "owned", "--from-literal=mode=fast"]);
    let cm = json(&s.kubectl(&["get", "cm", "owned", "-o", "json", "--show-managed-fields"]));
    let mf = cm["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    assert_eq!(mf[0]["manager"], "kubectl-create");
    assert_eq!(mf[0]["operation"], "Update");
    assert_eq!(mf[0]["fieldsV1"]["f:data"]["f:mode"], serde_json::json!({}));

    let applied =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  mode: slow\n";
    let out = s.kubectl_with(&["apply", "--server-side", "-f", "-"], Some(applied), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("conflict") && err.contains("kubectl-create"),
        "{err}"
    );
    let out = s.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        applied,
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let cm = json(&s.kubectl(&["get", "cm", "owned", "-o", "json", "--show-managed-fields"]));
    assert_eq!(cm["data"]["mode"], "slow");
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .expect("mf")
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert_eq!(managers, vec!["kubectl"], "the applier took the field over");
}
