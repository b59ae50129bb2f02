//! `Event`: the exact `audit.k8s.io/v1` JSON shape, bodies by level, and secret scrubbing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use ward_audit::{
    DECISION_ANNOTATION, Event, Level, ObjectReference, REASON_ANNOTATION, RequestAuditConfig,
    RequestMetadata, ResponseStatus, Stage, StageSet, UserInfo,
};

/// Appears in every secret value below; must never reach the output.
const CANARY: &str = "CANARY-s3cr3t-value-0xdeadbeef";
/// `CANARY` in base64, as it sits in a Secret's `data`.
const CANARY_B64: &str = "Q0FOQVJZLXMzY3IzdC12YWx1ZS0weGRlYWRiZWVm";

fn config(level: Level) -> RequestAuditConfig {
    RequestAuditConfig {
        level,
        omit_stages: StageSet::empty(),
        omit_managed_fields: false,
    }
}

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn target(group: &str, resource: &str, subresource: &str) -> ObjectReference {
    ObjectReference {
        resource: resource.to_owned(),
        namespace: "default".to_owned(),
        name: "x".to_owned(),
        api_group: group.to_owned(),
        api_version: "v1".to_owned(),
        subresource: subresource.to_owned(),
        ..Default::default()
    }
}

fn event(level: Level, object_ref: Option<ObjectReference>) -> Event {
    let metadata = RequestMetadata {
        request_uri: "/x".to_owned(),
        verb: "create".to_owned(),
        object_ref,
        ..Default::default()
    };
    Event::new(metadata, &config(level), at(1, 0))
}

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap().trim_end().to_owned()
}

#[test]
fn metadata_event_matches_golden() {
    let metadata = RequestMetadata {
        audit_id: "7e0b5a3c-1f2d-4c1e-9a57-3b8f6d2e4a10".to_owned(),
        request_uri: "/api/v1/namespaces/default/secrets/s1".to_owned(),
        verb: "get".to_owned(),
        user: UserInfo {
            username: "alice".to_owned(),
            groups: vec!["devs".to_owned(), "system:authenticated".to_owned()],
            ..Default::default()
        },
        source_ips: vec!["127.0.0.1".to_owned()],
        user_agent: "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07".to_owned(),
        object_ref: Some(ObjectReference {
            resource: "secrets".to_owned(),
            namespace: "default".to_owned(),
            name: "s1".to_owned(),
            api_version: "v1".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let received = Event::new(metadata, &config(Level::Metadata), at(1_735_689_600, 0));
    let mut done = received.for_stage(Stage::ResponseComplete, at(1_735_689_600, 2_000_000));
    done.set_response_status(ResponseStatus::from_code(200));
    // Set in the opposite order to the output: keys are sorted as Go sorts map keys.
    done.annotate(
        REASON_ANNOTATION,
        "RBAC: allowed by RoleBinding \"devs/default\" of Role \"secret-reader\" to Group \"devs\"",
    );
    done.annotate(DECISION_ANNOTATION, "allow");
    assert_eq!(
        serde_json::to_string(&done).unwrap(),
        golden("event_metadata.json")
    );

    // The RequestReceived copy: same ID and received time, its own stage and no status.
    let json: Value = serde_json::to_value(&received).unwrap();
    assert_eq!(json["stage"], "RequestReceived");
    assert_eq!(json["auditID"], "7e0b5a3c-1f2d-4c1e-9a57-3b8f6d2e4a10");
    assert_eq!(json["stageTimestamp"], "2025-01-01T00:00:00.000000Z");
    assert!(json.get("responseStatus").is_none());
    assert!(json.get("annotations").is_none());
}

#[test]
fn full_event_matches_golden() {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified",
        "reason": "Conflict", "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 409
    });
    let metadata = RequestMetadata {
        audit_id: "0c8bc986-b74c-4392-8756-7bdbaf3cc63e".to_owned(),
        request_uri: "/apis/apps/v1/namespaces/prod/deployments/web/scale?fieldManager=kubectl"
            .to_owned(),
        verb: "update".to_owned(),
        user: UserInfo {
            username: "system:serviceaccount:ci:deployer".to_owned(),
            uid: "5a1f".to_owned(),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                "system:serviceaccounts:ci".to_owned(),
                "system:authenticated".to_owned(),
            ],
            extra: BTreeMap::from([
                (
                    "authentication.kubernetes.io/pod-name".to_owned(),
                    vec!["runner-0".to_owned()],
                ),
                (
                    "authentication.kubernetes.io/credential-id".to_owned(),
                    vec!["JTI=abc".to_owned()],
                ),
            ]),
        },
        impersonated_user: Some(UserInfo {
            username: "bob".to_owned(),
            groups: vec!["ops".to_owned()],
            ..Default::default()
        }),
        source_ips: vec!["10.0.0.7".to_owned(), "192.168.1.2".to_owned()],
        user_agent: "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07".to_owned(),
        object_ref: Some(ObjectReference {
            resource: "deployments".to_owned(),
            namespace: "prod".to_owned(),
            name: "web".to_owned(),
            uid: "d3c1".to_owned(),
            api_group: "apps".to_owned(),
            api_version: "v1".to_owned(),
            resource_version: "42".to_owned(),
            subresource: "scale".to_owned(),
        }),
    };
    let mut event = Event::new(
        metadata,
        &config(Level::RequestResponse),
        at(1_751_327_999, 999_999_999),
    )
    .for_stage(Stage::ResponseComplete, at(1_751_328_000, 1_999));
    event.set_request_object(json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "prod"}, "spec": {"replicas": 3}
    }));
    event.set_response_status(ResponseStatus::from_status(&status, 500));
    event.set_response_object(status);
    event.annotate(DECISION_ANNOTATION, "allow");
    event.annotate(REASON_ANNOTATION, "RBAC: allowed");
    assert!(
        !event.annotate(DECISION_ANNOTATION, "forbid"),
        "first value wins"
    );
    assert_eq!(
        serde_json::to_string(&event).unwrap(),
        golden("event_full.json")
    );
}

#[test]
fn generates_audit_ids_and_follows_stages() {
    let a = event(Level::Metadata, None);
    let b = event(Level::Metadata, None);
    assert_eq!(a.audit_id().len(), 36);
    assert_ne!(a.audit_id(), b.audit_id());
    assert!(uuid_like(a.audit_id()), "{}", a.audit_id());

    let omit = RequestAuditConfig {
        level: Level::Metadata,
        omit_stages: [Stage::RequestReceived].iter().collect(),
        omit_managed_fields: false,
    };
    let received = Event::new(RequestMetadata::default(), &omit, at(5, 0));
    assert!(!received.is_recorded());
    let done = received.for_stage(Stage::ResponseComplete, at(6, 0));
    assert!(done.is_recorded());
    assert_eq!(done.audit_id(), received.audit_id());
    assert_eq!(done.stage(), Stage::ResponseComplete);
    assert_eq!(done.level(), Level::Metadata);
    assert!(!event(Level::None, None).is_recorded());
}

fn uuid_like(s: &str) -> bool {
    s.bytes().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}

#[test]
fn bodies_follow_the_level() {
    let pods = || Some(target("", "pods", ""));
    let body = || json!({"kind": "Pod", "metadata": {"name": "x"}});
    for (level, want_request, want_response) in [
        (Level::None, false, false),
        (Level::Metadata, false, false),
        (Level::Request, true, false),
        (Level::RequestResponse, true, true),
    ] {
        let mut e = event(level, pods());
        e.set_request_object(body());
        e.set_response_object(body());
        assert_eq!(e.request_object().is_some(), want_request, "{level}");
        assert_eq!(e.response_object().is_some(), want_response, "{level}");
        let json: Value = serde_json::to_value(&e).unwrap();
        assert_eq!(json.get("requestObject").is_some(), want_request, "{level}");
        assert_eq!(
            json.get("responseObject").is_some(),
            want_response,
            "{level}"
        );
    }
    // Non-resource requests never carry bodies.
    let mut e = event(Level::RequestResponse, None);
    e.set_request_object(body());
    e.set_response_object(body());
    assert!(e.request_object().is_none() && e.response_object().is_none());
}

#[test]
fn managed_fields_are_omitted_on_request() {
    let body = json!({
        "kind": "PodList",
        "metadata": {"managedFields": [{"manager": "m"}]},
        "items": [{"metadata": {"name": "a", "managedFields": [{"manager": "m"}]}}]
    });
    let mut keep = event(Level::RequestResponse, Some(target("", "pods", "")));
    keep.set_response_object(body.clone());
    assert_eq!(keep.response_object(), Some(&body));

    let metadata = RequestMetadata {
        object_ref: Some(target("", "pods", "")),
        ..Default::default()
    };
    let omit = RequestAuditConfig {
        omit_managed_fields: true,
        ..config(Level::RequestResponse)
    };
    let mut e = Event::new(metadata, &omit, at(1, 0));
    e.set_response_object(body);
    let text = serde_json::to_string(&e).unwrap();
    assert!(!text.contains("managedFields"), "{text}");
    assert!(text.contains(r#""name":"a""#), "{text}");
}

fn secret(kind: bool) -> Value {
    let mut secret = json!({
        "apiVersion": "v1",
        "metadata": {"name": "db", "namespace": "default",
                     "annotations": {"note": "kept"}},
        "type": "Opaque",
        "data": {"password": CANARY_B64},
        "stringData": {"password": CANARY}
    });
    if kind {
        secret["kind"] = json!("Secret");
    }
    secret
}

fn config_map(kind: bool) -> Value {
    let mut cm = json!({
        "apiVersion": "v1",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"token": CANARY},
        "binaryData": {"blob": CANARY_B64}
    });
    if kind {
        cm["kind"] = json!("ConfigMap");
    }
    cm
}

/// Checks that neither the event's JSON nor its `Debug` form holds the canary.
fn assert_clean(what: &str, event: &Event) {
    let json = serde_json::to_string(event).unwrap();
    let debug = format!("{event:?}");
    for text in [&json, &debug] {
        assert!(!text.contains(CANARY), "{what} leaks the canary: {text}");
        assert!(
            !text.contains(CANARY_B64),
            "{what} leaks the base64 canary: {text}"
        );
        assert!(
            !text.contains("Q0FOQVJZ"),
            "{what} leaks part of the canary: {text}"
        );
    }
}

#[test]
fn secret_bodies_are_never_recorded() {
    for subresource in ["", "status", "anything"] {
        let mut e = event(
            Level::RequestResponse,
            Some(target("", "secrets", subresource)),
        );
        e.set_request_object(secret(true));
        e.set_request_object(secret(false));
        e.set_response_object(json!({"kind": "SecretList", "items": [secret(false)]}));
        assert!(e.request_object().is_none(), "{subresource}");
        assert!(e.response_object().is_none(), "{subresource}");
        assert_clean("secret request", &e);
    }
}

#[test]
fn sensitive_fields_are_scrubbed_everywhere() {
    let cases: Vec<(&str, ObjectReference, Value, Value)> = vec![
        (
            "configmap body without kind",
            target("", "configmaps", ""),
            config_map(false),
            json!({"kind": "ConfigMapList", "items": [config_map(false), config_map(false)]}),
        ),
        (
            "configmap body with kind",
            target("", "configmaps", ""),
            config_map(true),
            config_map(true),
        ),
        (
            "secret inside a generic List",
            target("", "pods", ""),
            json!({"kind": "List", "items": [secret(true), config_map(true)]}),
            json!({"kind": "List", "items": [{"kind": "SecretList", "items": [secret(false)]}]}),
        ),
        (
            "secret in a table row and a watch event",
            target("", "pods", ""),
            json!({"type": "ADDED", "object": secret(true)}),
            json!({"kind": "Table", "rows": [{"cells": ["db"], "object": secret(true)}]}),
        ),
        (
            "token request",
            target("", "serviceaccounts", "token"),
            json!({"spec": {"audiences": ["api"]}}),
            json!({"status": {"token": CANARY, "expirationTimestamp": "2025-01-01T00:00:00Z"}}),
        ),
        (
            "token review",
            target("authentication.k8s.io", "tokenreviews", ""),
            json!({"spec": {"token": CANARY}}),
            json!({"kind": "TokenReview", "spec": {"token": CANARY},
                   "status": {"authenticated": true, "user": {"username": "u"}}}),
        ),
        (
            "token review nested in a custom resource",
            target("example.com", "widgets", ""),
            json!({"kind": "Widget", "spec": {"embedded": {"kind": "TokenReview",
                                                           "spec": {"token": CANARY}}}}),
            json!({"kind": "Widget", "status": {"issued": {"kind": "TokenRequest",
                                                           "status": {"token": CANARY}}}}),
        ),
    ];
    for (what, object_ref, request, response) in cases {
        let mut e = event(Level::RequestResponse, Some(object_ref));
        e.set_request_object(request);
        e.set_response_object(response);
        assert!(
            e.request_object().is_some(),
            "{what}: request dropped entirely"
        );
        assert!(
            e.response_object().is_some(),
            "{what}: response dropped entirely"
        );
        assert_clean(what, &e);
        for stage in [
            Stage::ResponseStarted,
            Stage::ResponseComplete,
            Stage::Panic,
        ] {
            assert_clean(what, &e.for_stage(stage, at(2, 0)));
        }
    }

    // What is not secret stays: names, annotations, non-secret status.
    let mut e = event(Level::RequestResponse, Some(target("", "pods", "")));
    e.set_request_object(json!({"kind": "List", "items": [secret(true)]}));
    let kept = e.request_object().unwrap();
    assert_eq!(kept["items"][0]["metadata"]["annotations"]["note"], "kept");
    assert_eq!(kept["items"][0]["type"], "Opaque");
    assert!(kept["items"][0].get("data").is_none());

    let mut e = event(
        Level::RequestResponse,
        Some(target("", "serviceaccounts", "token")),
    );
    e.set_response_object(json!({"status": {"token": CANARY, "expirationTimestamp": "t"}}));
    assert_eq!(
        e.response_object().unwrap()["status"],
        json!({"expirationTimestamp": "t"})
    );
}

#[test]
fn response_status_from_status_object() {
    let s = ResponseStatus::from_status(&json!({"kind": "Status", "status": "Success"}), 200);
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        r#"{"metadata":{},"status":"Success","code":200}"#
    );
    let garbage = ResponseStatus::from_status(
        &json!({"status": 1, "code": 99999999999i64, "details": "x"}),
        404,
    );
    assert_eq!(
        serde_json::to_string(&garbage).unwrap(),
        r#"{"metadata":{},"code":404}"#
    );
    assert_eq!(
        serde_json::to_string(&ResponseStatus::default()).unwrap(),
        r#"{"metadata":{}}"#
    );
}
