//! The audit log: every request, no value, policies sanitized, fail-closed.

use crate::harness::{Server, json};

fn events(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(json)
        .collect()
}

#[test]
fn default_policy_logs_every_request_without_values() {
    let s = Server::start();
    let canary = "audit-canary-5521";
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "a",
        &format!("--from-literal=k={canary}"),
    ]);
    s.kubectl(&["get", "secret", "a", "-o", "yaml"]);
    let _ = s.kubectl_with(&["get", "secret", "missing"], None, &[]);
    let (c, _) = s.curl_as(
        "GET",
        "/api/v1/namespaces/default/secrets",
        &[],
        None,
        Some("bad-token"),
    );
    assert_eq!(c, 401);
    let log = s.data_dir.join("audit.log");
    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(
        !text.contains(canary) && !text.contains("YXVkaXQtY2FuYXJ5LTU1MjE="),
        "value in audit log"
    );
    let evs = events(&log);
    let create = evs
        .iter()
        .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "secrets")
        .expect("create event");
    assert_eq!(create["kind"], "Event");
    assert_eq!(create["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(create["level"], "Metadata");
    assert_eq!(create["stage"], "ResponseComplete");
    assert_eq!(create["user"]["username"], "ward-admin");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(create.get("requestObject").is_none());
    assert!(evs.iter().any(|e| e["verb"] == "get"
        && e["objectRef"]["name"] == "missing"
        && e["responseStatus"]["code"] == 404));
    assert!(
        evs.iter().any(|e| e["responseStatus"]["code"] == 401),
        "refused requests are audited"
    );
    assert_eq!(
        std::fs::metadata(&log)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .expect("mode"),
        0o600
    );
}

#[test]
fn request_response_policies_never_record_secret_values() {
    let tmp = tempfile::tempdir().expect("tmp");
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n",
    )
    .expect("policy");
    let log = tmp.path().join("audit.log");
    let s = Server::start_in(
        &tmp.path().join("ward"),
        &[
            "--audit-policy-file",
            policy.to_str().expect("utf8"),
            "--audit-log-path",
            log.to_str().expect("utf8"),
        ],
    );
    assert!(
        s.logs().contains("audit policy changed"),
        "the downgrade is announced"
    );
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "b",
        "--from-literal=k=rr-canary-77",
    ]);
    s.kubectl(&["create", "configmap", "c", "--from-literal=k=cm-canary-78"]);
    s.kubectl(&["create", "namespace", "recorded"]);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        !text.contains("rr-canary-77") && !text.contains("cnItY2FuYXJ5LTc3"),
        "secret value in audit log"
    );
    assert!(
        !text.contains("cm-canary-78"),
        "configmap value in audit log"
    );
    let evs = events(&log);
    let secret = evs
        .iter()
        .find(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "secrets"
                && e["stage"] == "ResponseComplete"
        })
        .expect("secret event");
    assert_eq!(secret["level"], "Metadata");
    let ns = evs
        .iter()
        .find(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "namespaces"
                && e["stage"] == "ResponseComplete"
        })
        .expect("namespace event");
    assert_eq!(ns["level"], "RequestResponse");
    assert!(
        ns.get("requestObject").is_some(),
        "other resources keep their level: {ns}"
    );
    // The reply is recorded too, as the server sent it (with its uid), in JSON whatever the
    // wire encoding (kubectl sends and receives protobuf here).
    assert_eq!(ns["responseObject"]["kind"], "Namespace", "{ns}");
    assert_eq!(ns["responseObject"]["metadata"]["name"], "recorded");
    assert!(ns["responseObject"]["metadata"]["uid"].is_string(), "{ns}");
    assert!(secret.get("responseObject").is_none());
    let cm = evs
        .iter()
        .find(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "configmaps"
                && e["stage"] == "ResponseComplete"
        })
        .expect("configmap event");
    assert!(
        cm["responseObject"].get("data").is_none(),
        "configmap data scrubbed: {cm}"
    );
    // A failed request records the Status it answered.
    let _ = s.kubectl_with(&["get", "namespace", "absent"], None, &[]);
    // A watch: ResponseStarted when it begins, ResponseComplete when it ends.
    let (code, _) = s.curl(
        "GET",
        "/api/v1/namespaces?watch=1&timeoutSeconds=1",
        &[],
        None,
    );
    assert_eq!(code, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let evs = events(&log);
    let missing = evs
        .iter()
        .find(|e| {
            e["verb"] == "get"
                && e["objectRef"]["name"] == "absent"
                && e["stage"] == "ResponseComplete"
        })
        .expect("404 event");
    assert_eq!(missing["responseObject"]["kind"], "Status", "{missing}");
    assert_eq!(missing["responseObject"]["code"], 404);
    let watch_stages: Vec<&str> = evs
        .iter()
        .filter(|e| e["verb"] == "watch" && e["objectRef"]["resource"] == "namespaces")
        .filter_map(|e| e["stage"].as_str())
        .collect();
    assert_eq!(
        watch_stages,
        ["RequestReceived", "ResponseStarted", "ResponseComplete"],
        "{evs:?}"
    );
}

#[test]
fn fail_closed_refuses_unauditable_requests() {
    let tmp = tempfile::tempdir().expect("tmp");
    let log_dir = tmp.path().join("audit");
    std::fs::create_dir(&log_dir).expect("mkdir");
    let log = log_dir.join("audit.log");
    let s = Server::start_in(
        &tmp.path().join("ward"),
        &[
            "--audit-log-path",
            log.to_str().expect("utf8"),
            "--audit-fail-closed",
        ],
    );
    s.kubectl(&["get", "ns"]);
    std::fs::remove_dir_all(&log_dir).expect("rm");
    let (c, b) = s.curl(
        "POST",
        "/api/v1/namespaces/default/secrets",
        &["Content-Type: application/json"],
        Some(br#"{"metadata":{"name":"unaudited"},"data":{}}"#),
    );
    assert_eq!(c, 503, "{b}");
    std::fs::create_dir(&log_dir).expect("mkdir");
    let (c, _) = s.curl(
        "GET",
        "/api/v1/namespaces/default/secrets/unaudited",
        &[],
        None,
    );
    assert_eq!(c, 404, "the refused create changed nothing");
}

#[test]
fn canary_never_reaches_logs_audit_or_disk_on_any_path() {
    use base64::Engine as _;
    let canary = "canary-debug-4f1e9b27";
    let b64 = base64::engine::general_purpose::STANDARD.encode(canary);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let s = Server::start_debug(&dir);
    let ns = "/api/v1/namespaces/default/secrets";
    let json_ct = "Content-Type: application/json";
    // create through protobuf (kubectl create), JSON, YAML and apply
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "c1",
        &format!("--from-literal=k={canary}"),
    ]);
    s.curl(
        "POST",
        ns,
        &[json_ct],
        Some(
            format!(r#"{{"metadata":{{"name":"c2"}},"stringData":{{"k":"{canary}"}}}}"#).as_bytes(),
        ),
    );
    s.curl(
        "POST",
        ns,
        &["Content-Type: application/yaml"],
        Some(format!("metadata:\n  name: c3\nstringData:\n  k: {canary}\n").as_bytes()),
    );
    s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: c4\nstringData:\n  k: {canary}\n"
        ),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: c5\ndata:\n  k: {b64}\n"),
    );
    // reads: get, list, table, watch
    s.kubectl(&["get", "secret", "c1", "-o", "yaml"]);
    s.kubectl(&["get", "secrets"]);
    s.curl("GET", &format!("{ns}?watch=1&timeoutSeconds=1"), &[], None);
    // updates: every patch type, replace
    s.kubectl(&[
        "patch",
        "secret",
        "c1",
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"stringData":{{"m":"{canary}"}}}}"#),
    ]);
    s.kubectl(&[
        "patch",
        "secret",
        "c1",
        "--type",
        "json",
        "-p",
        &format!(r#"[{{"op":"add","path":"/data/j","value":"{b64}"}}]"#),
    ]);
    s.kubectl(&[
        "patch",
        "secret",
        "c1",
        "-p",
        &format!(r#"{{"data":{{"s":"{b64}"}}}}"#),
    ]);
    let obj = s.kubectl(&["get", "secret", "c2", "-o", "json"]);
    s.kubectl_stdin(&["replace", "-f", "-"], &obj);
    // error paths carrying the value: bad JSON, bad key, conflict, immutable, wrong type, 413-ish
    s.curl(
        "POST",
        ns,
        &[json_ct],
        Some(format!(r#"{{"metadata":{{"name":"e1"}},"data":{{"k":"{canary}"#).as_bytes()),
    );
    s.curl(
        "POST",
        ns,
        &[json_ct],
        Some(format!(r#"{{"metadata":{{"name":"e2"}},"data":{{"bad/key":"{b64}"}}}}"#).as_bytes()),
    );
    s.curl(
        "POST",
        ns,
        &[json_ct],
        Some(format!(r#"{{"metadata":{{"name":"c1"}},"data":{{"k":"{b64}"}}}}"#).as_bytes()),
    );
    s.curl(
        "POST",
        ns,
        &[json_ct],
        Some(format!(r#"{{"metadata":{{"name":"e3"}},"data":{{"k":"!{canary}"}}}}"#).as_bytes()),
    );
    s.curl("POST", ns, &[json_ct], Some(format!(r#"{{"metadata":{{"name":"e4"}},"type":"kubernetes.io/dockerconfigjson","data":{{".dockerconfigjson":"{b64}"}}}}"#).as_bytes()));
    s.curl(
        "PUT",
        &format!("{ns}/c2"),
        &[json_ct],
        Some(
            format!(
                r#"{{"metadata":{{"name":"c2","resourceVersion":"1"}},"data":{{"k":"{b64}"}}}}"#
            )
            .as_bytes(),
        ),
    );
    s.curl_as(
        "POST",
        ns,
        &[json_ct],
        Some(format!(r#"{{"metadata":{{"name":"e5"}},"data":{{"k":"{b64}"}}}}"#).as_bytes()),
        Some("wrong-token"),
    );
    s.kubectl(&["delete", "secret", "c3"]);
    let logs = s.logs();
    assert!(logs.contains("DEBUG"), "debug logging is on");
    for needle in [canary, b64.as_str()] {
        assert!(
            !logs.contains(needle),
            "{needle} in the server's debug logs"
        );
        let leaks = crate::harness::files_containing(&dir, needle.as_bytes());
        assert!(
            leaks.is_empty(),
            "{needle} found on disk in {leaks:?} (audit log included)"
        );
    }
}
