//! Raw protocol checks with curl: error shapes, bad input, pagination, watch semantics.

use crate::harness::{Server, event_kinds, json};

const NS: &str = "/api/v1/namespaces/default/secrets";
const JSON: &str = "Content-Type: application/json";

fn secret(name: &str, value_b64: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}"}},"data":{{"k":"{value_b64}"}}}}"#
    )
}

#[track_caller]
fn assert_status(code: u16, body: &str, want_code: u16, want_reason: &str) -> serde_json::Value {
    assert_eq!(code, want_code, "{body}");
    let v = json(body);
    assert_eq!(v["kind"], "Status", "{body}");
    assert_eq!(v["code"], want_code, "{body}");
    assert_eq!(v["reason"], want_reason, "{body}");
    v
}

#[test]
fn bad_input_gets_a_status_and_changes_nothing() {
    let s = Server::start();
    let canary = "Y2FuYXJ5LXNlY3JldC12YWx1ZQ=="; // "canary-secret-value"

    // no credentials / wrong credentials
    let (c, b) = s.curl_as("GET", NS, &[], None, None);
    assert_status(c, &b, 401, "Unauthorized");
    let (c, b) = s.curl_as("GET", NS, &[], None, Some("nope"));
    assert_status(c, &b, 401, "Unauthorized");
    // health and version need none
    assert_eq!(s.curl_as("GET", "/healthz", &[], None, None).0, 200);
    assert_eq!(s.curl_as("GET", "/readyz", &[], None, None).0, 200);
    assert_eq!(s.curl_as("GET", "/livez", &[], None, None).0, 200);
    let (c, b) = s.curl_as("GET", "/version", &[], None, None);
    assert_eq!((c, json(&b)["minor"].as_str()), (200, Some("32")));

    // malformed bodies
    let bad = format!(r#"{{"metadata":{{"name":"x"}},"data":{{"k":"{canary}"}}"#); // truncated
    let (c, b) = s.curl("POST", NS, &[JSON], Some(bad.as_bytes()));
    assert_status(c, &b, 400, "BadRequest");
    assert!(!b.contains(canary), "error echoes the body: {b}");
    let (c, b) = s.curl(
        "POST",
        NS,
        &["Content-Type: application/yaml"],
        Some(b"metadata: [unclosed\n  data: {k: Y2FuYXJ5"),
    );
    assert_status(c, &b, 400, "BadRequest");
    assert!(!b.contains("Y2FuYXJ5"), "{b}");
    let (c, b) = s.curl(
        "POST",
        NS,
        &["Content-Type: application/vnd.kubernetes.protobuf"],
        Some(b"k8s\0\x0a\xff\xff\xff\xff\x0f"),
    );
    assert_status(c, &b, 400, "BadRequest");
    let (c, b) = s.curl("POST", NS, &["Content-Type: text/plain"], Some(b"hello"));
    assert_status(c, &b, 415, "UnsupportedMediaType");
    let (c, b) = s.curl("POST", NS, &[JSON], Some(b"[1,2]"));
    assert_status(c, &b, 400, "BadRequest");
    let (c, b) = s.curl(
        "POST",
        NS,
        &[JSON],
        Some(br#"{"metadata":{"name":"x"},"data":"c2VjcmV0"}"#),
    );
    assert_status(c, &b, 400, "BadRequest");

    // invalid base64 / names / keys / sizes
    let (c, b) = s.curl("POST", NS, &[JSON], Some(secret("x", "!!!").as_bytes()));
    assert_status(c, &b, 400, "BadRequest");
    let (c, b) = s.curl(
        "POST",
        NS,
        &[JSON],
        Some(secret("Bad_Name", canary).as_bytes()),
    );
    let v = assert_status(c, &b, 422, "Invalid");
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");
    assert!(!b.contains(canary));
    let (c, b) = s.curl(
        "POST",
        NS,
        &[JSON],
        Some(br#"{"metadata":{"name":"k"},"data":{"bad/key":"eA=="}}"#),
    );
    assert_status(c, &b, 422, "Invalid");
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"stringData":{{"k":"{}"}}}}"#,
        "a".repeat(1024 * 1024 + 1)
    );
    let (c, b) = s.curl("POST", NS, &[JSON], Some(big.as_bytes()));
    let v = assert_status(c, &b, 422, "Invalid");
    assert_eq!(v["details"]["causes"][0]["reason"], "FieldValueTooLong");
    let huge = vec![b' '; 4 * 1024 * 1024];
    let (c, b) = s.curl("POST", NS, &[JSON], Some(&huge));
    assert_status(c, &b, 413, "RequestEntityTooLarge");

    // unknown fields: Strict rejects, Warn warns, Ignore drops
    let body = br#"{"metadata":{"name":"fv"},"data":{},"spec":{"x":1}}"#;
    let (c, b) = s.curl(
        "POST",
        &format!("{NS}?fieldValidation=Strict"),
        &[JSON],
        Some(body),
    );
    let v = assert_status(c, &b, 400, "BadRequest");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown field \"spec\""),
        "{b}"
    );
    let (c, b) = s.curl(
        "POST",
        &format!("{NS}?fieldValidation=Ignore"),
        &[JSON],
        Some(body),
    );
    assert_eq!(c, 201, "{b}");
    assert!(json(&b).get("spec").is_none());
    let (c, b) = s.curl(
        "POST",
        &format!("{NS}?fieldValidation=Bogus"),
        &[JSON],
        Some(body),
    );
    assert_status(c, &b, 400, "BadRequest");

    // bad selectors and parameters
    let (c, b) = s.curl("GET", &format!("{NS}?labelSelector=a%20in%20(b"), &[], None);
    assert_status(c, &b, 400, "BadRequest");
    let (c, b) = s.curl("GET", &format!("{NS}?fieldSelector=data.k%3Dv"), &[], None);
    assert_status(c, &b, 400, "BadRequest");
    let (c, b) = s.curl("GET", &format!("{NS}?limit=abc"), &[], None);
    assert_status(c, &b, 400, "BadRequest");
    let (c, b) = s.curl("GET", &format!("{NS}?continue=garbage"), &[], None);
    assert_status(c, &b, 400, "BadRequest");
    let (c, b) = s.curl("GET", "/api/v1/namespaces/default/pods", &[], None);
    assert_status(c, &b, 404, "NotFound");
    let (c, b) = s.curl("PUT", NS, &[JSON], Some(b"{}"));
    assert_status(c, &b, 405, "MethodNotAllowed");
    let (c, b) = s.curl(
        "GET",
        NS,
        &["Accept: application/vnd.kubernetes.protobuf"],
        None,
    );
    assert_status(c, &b, 406, "NotAcceptable");

    // nothing but the Ignore'd object was created
    let (c, b) = s.curl("GET", NS, &[], None);
    assert_eq!(c, 200);
    let names: Vec<String> = json(&b)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(names, vec!["fv".to_owned()]);
    let logs = s.logs();
    assert!(
        !logs.contains(canary) && !logs.contains("canary-secret-value"),
        "canary in logs"
    );
}

#[test]
fn optimistic_concurrency_pagination_and_generate_name() {
    let s = Server::start();
    for i in 0..7 {
        let (c, b) = s.curl(
            "POST",
            NS,
            &[JSON],
            Some(secret(&format!("p{i}"), "eA==").as_bytes()),
        );
        assert_eq!(c, 201, "{b}");
    }
    // limit/continue across pages, consistent at the first page's revision
    let (_, b) = s.curl("GET", &format!("{NS}?limit=3"), &[], None);
    let page1 = json(&b);
    assert_eq!(page1["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(page1["metadata"]["remainingItemCount"], 4);
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_owned();
    let rv = page1["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    // a write between pages is not seen by the continued list
    let (c, _) = s.curl("POST", NS, &[JSON], Some(secret("p99", "eA==").as_bytes()));
    assert_eq!(c, 201);
    let mut names: Vec<String> = page1["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let mut next = Some(token);
    while let Some(t) = next.take() {
        let (c, b) = s.curl("GET", &format!("{NS}?limit=3&continue={t}"), &[], None);
        assert_eq!(c, 200, "{b}");
        let page = json(&b);
        assert_eq!(
            page["metadata"]["resourceVersion"].as_str(),
            Some(rv.as_str())
        );
        names.extend(page["items"].as_array().expect("items").iter().map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }));
        next = page["metadata"]["continue"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
    }
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());

    // PUT with a stale resourceVersion conflicts
    let (_, b) = s.curl("GET", &format!("{NS}/p0"), &[], None);
    let mut obj = json(&b);
    let current = obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    obj["metadata"]["resourceVersion"] = serde_json::json!("2");
    let (c, b) = s.curl(
        "PUT",
        &format!("{NS}/p0"),
        &[JSON],
        Some(obj.to_string().as_bytes()),
    );
    let v = assert_status(c, &b, 409, "Conflict");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the object has been modified")
    );
    obj["metadata"]["resourceVersion"] = serde_json::json!(current);
    // an update that changes nothing is not written (same resourceVersion), as upstream
    let (c, b) = s.curl(
        "PUT",
        &format!("{NS}/p0"),
        &[JSON],
        Some(obj.to_string().as_bytes()),
    );
    assert_eq!(c, 200, "{b}");
    assert_eq!(
        json(&b)["metadata"]["resourceVersion"].as_str(),
        Some(current.as_str())
    );
    obj["metadata"]["labels"] = serde_json::json!({"changed": "yes"});
    let (c, b) = s.curl(
        "PUT",
        &format!("{NS}/p0"),
        &[JSON],
        Some(obj.to_string().as_bytes()),
    );
    assert_eq!(c, 200, "{b}");
    let newer = json(&b)["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    assert!(newer.parse::<u64>().expect("n") > current.parse::<u64>().expect("n"));
    // the name in the body must match the URL
    let (c, b) = s.curl(
        "PUT",
        &format!("{NS}/p1"),
        &[JSON],
        Some(obj.to_string().as_bytes()),
    );
    assert_status(c, &b, 400, "BadRequest");

    // generateName
    let (c, b) = s.curl(
        "POST",
        NS,
        &[JSON],
        Some(br#"{"metadata":{"generateName":"gen-"},"data":{}}"#),
    );
    assert_eq!(c, 201, "{b}");
    let name = json(&b)["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // deletecollection with a selector
    let (c, _) = s.curl(
        "PATCH",
        &format!("{NS}/p1"),
        &["Content-Type: application/merge-patch+json"],
        Some(br#"{"metadata":{"labels":{"drop":"yes"}}}"#),
    );
    assert_eq!(c, 200);
    let (c, b) = s.curl(
        "DELETE",
        &format!("{NS}?labelSelector=drop%3Dyes"),
        &[],
        None,
    );
    assert_eq!(c, 200, "{b}");
    assert_eq!(json(&b)["items"].as_array().map(Vec::len), Some(1));
    let (c, b) = s.curl("GET", &format!("{NS}/p1"), &[], None);
    assert_status(c, &b, 404, "NotFound");
    // delete with a uid precondition that does not match
    let (c, b) = s.curl(
        "DELETE",
        &format!("{NS}/p2"),
        &[JSON],
        Some(br#"{"preconditions":{"uid":"wrong"}}"#),
    );
    assert_status(c, &b, 409, "Conflict");
}

#[test]
fn watch_semantics() {
    let s = Server::start();
    let (_, b) = s.curl("POST", NS, &[JSON], Some(secret("w1", "eA==").as_bytes()));
    let rv1: u64 = json(&b)["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("n");
    for i in 2..5 {
        s.curl(
            "POST",
            NS,
            &[JSON],
            Some(secret(&format!("w{i}"), "eA==").as_bytes()),
        );
    }
    s.curl("DELETE", &format!("{NS}/w2"), &[], None);
    // from rv1: replay of later changes, in order
    let (c, b) = s.curl(
        "GET",
        &format!("{NS}?watch=true&resourceVersion={rv1}&timeoutSeconds=1"),
        &[],
        None,
    );
    assert_eq!(c, 200, "{b}");
    let kinds = event_kinds(&b);
    assert_eq!(
        kinds,
        vec![
            ("ADDED".into(), "w2".into()),
            ("ADDED".into(), "w3".into()),
            ("ADDED".into(), "w4".into()),
            ("DELETED".into(), "w2".into())
        ]
    );
    // no resourceVersion: synthetic ADDED for the current objects, label-filtered
    s.curl(
        "PATCH",
        &format!("{NS}/w3"),
        &["Content-Type: application/merge-patch+json"],
        Some(br#"{"metadata":{"labels":{"a":"b"}}}"#),
    );
    let (_, b) = s.curl(
        "GET",
        &format!("{NS}?watch=1&labelSelector=a%3Db&timeoutSeconds=1"),
        &[],
        None,
    );
    let events: Vec<serde_json::Value> = b.lines().filter(|l| !l.is_empty()).map(json).collect();
    assert_eq!(events.len(), 1, "{b}");
    assert_eq!(events[0]["object"]["metadata"]["name"], "w3");
    // sendInitialEvents with bookmarks ends the initial list with a marked bookmark
    let (_, b) = s.curl("GET", &format!("{NS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"), &[], None);
    let events: Vec<serde_json::Value> = b.lines().filter(|l| !l.is_empty()).map(json).collect();
    let last = events
        .iter()
        .rfind(|e| e["type"] == "BOOKMARK")
        .expect("bookmark");
    assert_eq!(
        last["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[test]
fn watch_from_compacted_revision_is_410() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_in(&dir.path().join("ward"), &["--watch-history", "5"]);
    for i in 0..20 {
        s.curl(
            "POST",
            NS,
            &[JSON],
            Some(secret(&format!("c{i}"), "eA==").as_bytes()),
        );
    }
    let (c, b) = s.curl(
        "GET",
        &format!("{NS}?watch=true&resourceVersion=1&timeoutSeconds=2"),
        &[],
        None,
    );
    assert_eq!(c, 200, "{b}");
    let ev = json(b.lines().next().expect("one event"));
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
}

/// A continued list whose snapshot was compacted gets 410 with kube-apiserver's inconsistent
/// continue token, which lists the rest (after the last key sent) at the latest revision.
#[test]
fn expired_continue_gets_an_inconsistent_continue_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_in(&dir.path().join("ward"), &["--watch-history", "5"]);
    let create = |name: &str| {
        let (c, b) = s.curl("POST", NS, &[JSON], Some(secret(name, "eA==").as_bytes()));
        assert_eq!(c, 201, "{b}");
    };
    for i in 0..6 {
        create(&format!("p{i}"));
    }
    let (c, b) = s.curl("GET", &format!("{NS}?limit=2"), &[], None);
    assert_eq!(c, 200, "{b}");
    let first = json(&b);
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_owned();
    // Enough writes to compact the first page's snapshot away; p6 appears meanwhile.
    create("p6");
    for i in 0..8 {
        create(&format!("q{i}"));
    }
    let (c, b) = s.curl(
        "GET",
        &format!("{NS}?limit=100&continue={token}"),
        &[],
        None,
    );
    assert_eq!(c, 410, "{b}");
    let status = json(&b);
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("inconsistent list")),
        "{b}"
    );
    let rest = status["metadata"]["continue"]
        .as_str()
        .expect("inconsistent token");
    let (c, b) = s.curl("GET", &format!("{NS}?limit=100&continue={rest}"), &[], None);
    assert_eq!(c, 200, "{b}");
    let names: Vec<String> = json(&b)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    // The rest after p1, read now: p2..p6 and the q's, nothing from the first page.
    assert_eq!(&names[..5], ["p2", "p3", "p4", "p5", "p6"], "{names:?}");
    assert_eq!(names.len(), 13, "{names:?}");
}

/// `ward rewrite` on a small history: list snapshots are compacted under it again and again,
/// and it goes on with the inconsistent continue tokens instead of starting over.
#[test]
fn rewrite_goes_on_across_compacted_list_snapshots() {
    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let cfg = tmp.path().join("enc.yaml");
    let flags = [
        "--watch-history",
        "10",
        "--encryption-provider-config",
        cfg.to_str().expect("utf8"),
    ];
    crate::etcd::write_config(&cfg, &[("key1", K1)]);
    let mut s = Server::start_in(&dir, &flags);
    for i in 0..40 {
        let (c, b) = s.curl(
            "POST",
            NS,
            &[JSON],
            Some(secret(&format!("r{i:02}"), "eA==").as_bytes()),
        );
        assert_eq!(c, 201, "{b}");
    }
    s.stop();
    crate::etcd::write_config(&cfg, &[("key2", K2), ("key1", K1)]);
    let mut s = Server::start_in(&dir, &flags);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args([
            "rewrite",
            "--resources",
            "secrets",
            "--page-size",
            "5",
            "--kubeconfig",
        ])
        .arg(s.kubeconfig())
        .output()
        .expect("ward rewrite");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rewritten: 40 "), "{text}");
    // The walk hit expired snapshots and followed the 410s' continue tokens.
    let audit = std::fs::read_to_string(dir.join("audit.log")).expect("audit log");
    let expired = audit
        .lines()
        .filter(|l| l.contains("\"verb\":\"list\"") && l.contains("\"code\":410"))
        .count();
    assert!(expired >= 1, "no expired list page");
    s.stop();
    // Every value is under key2 now: key1 removed, all 40 still read.
    crate::etcd::write_config(&cfg, &[("key2", K2)]);
    let s = Server::start_in(&dir, &flags);
    let (c, b) = s.curl("GET", NS, &[], None);
    assert_eq!(c, 200, "{b}");
    assert_eq!(json(&b)["items"].as_array().map(Vec::len), Some(40));
}

#[test]
fn plain_http_is_never_served() {
    let s = Server::start();
    let http_url = s.url.replace("https://", "http://");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("{http_url}/version"))
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout);
    assert!(
        code.trim() == "000" || code.trim() == "400",
        "plain HTTP answered: {code}"
    );
    assert_ne!(code.trim(), "200");
}

#[test]
fn prometheus_metrics() {
    let s = Server::start();
    s.curl(
        "POST",
        NS,
        &[JSON],
        Some(secret("m1", "bWV0cmljcy1jYW5hcnk=").as_bytes()),
    );
    s.curl("GET", &format!("{NS}/m1"), &[], None);
    let (c, body) = s.curl("GET", "/metrics", &[], None);
    assert_eq!(c, 200, "{body}");
    assert!(body.contains("apiserver_request_total{verb=\"create\",group=\"\",resource=\"secrets\",code=\"201\"} 1"), "{body}");
    assert!(body.contains("apiserver_storage_transformation_operations_total{resource=\"secrets\",transformation_type=\"to_storage\",transformer_prefix=\"k8s:enc:secretbox:v1:\",status=\"OK\"}"), "{body}");
    assert!(body.contains("apiserver_request_duration_seconds_bucket"));
    assert!(
        !body.contains("m1") && !body.contains("bWV0cmljcy1jYW5hcnk="),
        "names or values in metrics"
    );
    // not for anonymous callers
    assert_eq!(s.curl_as("GET", "/metrics", &[], None, None).0, 401);
}
