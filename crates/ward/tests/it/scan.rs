//! `ward scan` as a user runs it: the seed Deployment, output formats, exit codes, and a dump of
//! a live `ward serve` (`kubectl get ... -A -o yaml`).

use std::process::{Command, Stdio};

use crate::harness::{Server, json};

const SEED: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: example/api:1
        env:
        - name: API_KEY
          valueFrom:
            secretKeyRef:
              name: my-api-secret
              key: API_KEY
";

fn scan(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("scan")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ward scan");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn seed_deployment_and_formats() {
    let (code, table) = scan(&["-"], SEED);
    assert_eq!(code, Some(0));
    assert!(table.contains("secret-env-var"), "{table}");
    let (_, out) = scan(&["-o", "json", "-"], SEED);
    let v = json(&out);
    let f = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "secret-env-var")
        .expect("finding");
    assert_eq!(f["resource"]["kind"], "Deployment");
    assert_eq!(f["resource"]["name"], "api");
    let (_, sarif) = scan(&["-o", "sarif", "-"], SEED);
    let s = json(&sarif);
    assert_eq!(s["version"], "2.1.0");
    assert!(
        s["runs"][0]["results"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    let (code, _) = scan(&["--fail-on", "low", "-"], SEED);
    assert_eq!(code, Some(1), "--fail-on makes findings an exit status");
}

#[test]
fn scans_a_dump_of_a_live_server_without_printing_values() {
    let s = Server::start();
    s.kubectl(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=aws_key=AKIAIOSFODNN7EXAMPLE",
        "--from-literal=mode=fast",
    ]);
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=scan-canary-1234",
    ]);
    s.kubectl(&[
        "create",
        "clusterrole",
        "reader",
        "--verb=list",
        "--resource=secrets",
    ]);
    s.kubectl(&[
        "create",
        "clusterrolebinding",
        "reader",
        "--clusterrole=reader",
        "--group=devs",
    ]);
    let dump = s.kubectl(&[
        "get",
        "configmaps,secrets,clusterroles,clusterrolebindings",
        "-A",
        "-o",
        "yaml",
    ]);
    let (code, out) = scan(&["-o", "json", "-"], &dump);
    assert_eq!(code, Some(0), "{out}");
    let v = json(&out);
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(rules.contains(&"secret-like-configmap"), "{rules:?}");
    assert!(rules.contains(&"rbac-secret-read"), "{rules:?}");
    assert!(
        !out.contains("AKIAIOSFODNN7EXAMPLE") && !out.contains("scan-canary-1234"),
        "a value in the report"
    );
    // who can read the secret: the group bound to the custom role
    let path = s.home.path().join("dump.yaml");
    std::fs::write(&path, &dump).expect("dump");
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["scan", "who-can", "read", "secret", "default/db"])
        .arg(&path)
        .output()
        .expect("who-can");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("devs"), "{text}");
}

/// A directory of 60 manifests: large enough (by file count) for the progress bar.
fn many_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..60 {
        std::fs::write(
            dir.path().join(format!("cm-{i:02}.yaml")),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\ndata: {{a: b}}\n"
            ),
        )
        .expect("write");
    }
    dir
}

/// Runs `ward scan ARGS` on a pseudo-terminal (util-linux `script`) with stdout discarded, and
/// returns what was drawn on the terminal: stderr only.
fn on_a_terminal(args: &str) -> String {
    let command = format!("'{}' scan {args} >/dev/null", env!("CARGO_BIN_EXE_ward"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_only_on_a_terminal_for_large_inputs() {
    let dir = many_files();
    let path = dir.path().to_str().expect("utf-8 path");

    // On a terminal: the bar is drawn (then cleared), with counts, never file contents.
    let drawn = on_a_terminal(path);
    assert!(drawn.contains("scanning"), "{drawn:?}");
    assert!(drawn.contains("/60 files"), "{drawn:?}");
    assert!(!drawn.contains("ConfigMap"), "{drawn:?}");
    // --no-progress, or a small input: nothing on the terminal.
    assert_eq!(on_a_terminal(&format!("--no-progress {path}")), "");
    let small = dir.path().join("cm-00.yaml");
    assert_eq!(on_a_terminal(small.to_str().expect("utf-8")), "");

    // Piped stderr (CI, tests, `2>log`): no bar whatever the size.
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["scan", "-o", "json", path])
        .stdin(Stdio::null())
        .output()
        .expect("ward scan");
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json(&String::from_utf8_lossy(&out.stdout))["findings"],
        serde_json::json!([])
    );
}
