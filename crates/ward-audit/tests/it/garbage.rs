//! Untrusted input never panics, and sanitizing is checked against its definition on random
//! policies.

use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{Value, json};
use ward_audit::{
    Event, GroupResources, Level, ObjectReference, Policy, PolicyRule, RequestAttributes,
    RequestAuditConfig, RequestMetadata, StageSet,
};

const VALID: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: ""
      resources: ["endpoints", "services/*", "*/scale"]
      resourceNames: ["a"]
  - level: Request
    namespaces: ["kube-system", ""]
  - level: None
    nonResourceURLs: ["/healthz*", "*"]
  - level: RequestResponse
    omitManagedFields: true
"#;

fn strings(options: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    subsequence(options, 0..=options.len()).prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![
        Just(Level::None),
        Just(Level::Metadata),
        Just(Level::Request),
        Just(Level::RequestResponse),
    ]
}

const GROUPS: &[&str] = &["", "apps", "authentication.k8s.io"];
const RESOURCES: &[&str] = &[
    "secrets",
    "configmaps",
    "pods",
    "pods/log",
    "*",
    "*/token",
    "serviceaccounts",
    "serviceaccounts/*",
    "serviceaccounts/token",
    "tokenreviews",
];

fn group_resources() -> impl Strategy<Value = GroupResources> {
    (
        prop::sample::select(GROUPS),
        strings(RESOURCES),
        strings(&["a", "b"]),
    )
        .prop_map(|(group, resources, names)| GroupResources {
            group: group.to_owned(),
            resource_names: if resources.is_empty() {
                Vec::new()
            } else {
                names
            },
            resources,
        })
}

fn rule() -> impl Strategy<Value = PolicyRule> {
    (
        level(),
        strings(&["alice", "bob"]),
        strings(&["g1", "g2"]),
        strings(&["get", "create"]),
        prop::collection::vec(group_resources(), 0..3),
        strings(&["", "ns"]),
        strings(&["/healthz", "*", "/api*"]),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(level, users, user_groups, verbs, resources, namespaces, urls, omf)| PolicyRule {
                level,
                users,
                user_groups,
                verbs,
                non_resource_urls: if resources.is_empty() && namespaces.is_empty() {
                    urls
                } else {
                    Vec::new()
                },
                resources,
                namespaces,
                omit_stages: Vec::new(),
                omit_managed_fields: omf,
            },
        )
}

const TARGETS: &[(&str, &str, &str)] = &[
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("", "serviceaccounts", "token"),
    ("authentication.k8s.io", "tokenreviews", ""),
    ("", "pods", ""),
    ("", "pods", "log"),
    ("", "serviceaccounts", ""),
    ("apps", "secrets", ""),
    ("apps", "deployments", "scale"),
];
const SENSITIVE: usize = 4;

#[derive(Debug, Clone)]
struct Request {
    user: &'static str,
    groups: Vec<String>,
    verb: &'static str,
    target: usize,
    namespace: &'static str,
    name: &'static str,
    resource_request: bool,
    path: &'static str,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(&["alice", "bob", ""][..]),
        strings(&["g1", "g2"]),
        prop::sample::select(&["get", "create", "list"][..]),
        0..TARGETS.len(),
        prop::sample::select(&["", "ns", "other"][..]),
        prop::sample::select(&["a", "b", ""][..]),
        any::<bool>(),
        prop::sample::select(&["/healthz", "/api/v1", "/metrics"][..]),
    )
        .prop_map(
            |(user, groups, verb, target, namespace, name, resource_request, path)| Request {
                user,
                groups,
                verb,
                target,
                namespace,
                name,
                resource_request,
                path,
            },
        )
}

fn attributes(r: &Request) -> RequestAttributes<'_> {
    let (api_group, resource, subresource) = TARGETS[r.target];
    RequestAttributes {
        user: r.user,
        groups: &r.groups,
        verb: r.verb,
        api_group,
        resource,
        subresource,
        namespace: r.namespace,
        name: r.name,
        resource_request: r.resource_request,
        path: r.path,
    }
}

/// Random JSON with keys that matter to scrubbing.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(&["Secret", "ConfigMap", "List", "SecretList", "x", ""][..])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(
                        &[
                            "kind", "items", "data", "metadata", "status", "spec", "token"
                        ][..]
                    ),
                    inner
                ),
                0..5
            )
            .prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

/// Puts `secret` somewhere inside `value`, following `path` choices.
fn embed(value: &mut Value, path: &[usize], secret: Value) {
    let Some((step, rest)) = path.split_first() else {
        return place(value, secret);
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            let i = step % items.len();
            embed(&mut items[i], rest, secret);
        }
        Value::Object(map) if !map.is_empty() => {
            let i = step % map.len();
            embed(map.values_mut().nth(i).unwrap(), rest, secret);
        }
        other => place(other, secret),
    }
}

fn place(value: &mut Value, secret: Value) {
    match value {
        Value::Array(items) => items.push(secret),
        Value::Object(map) => {
            map.insert("embedded".to_owned(), secret);
        }
        other => *other = secret,
    }
}

const CANARY: &str = "CANARY-0f-the-audit-log";

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Policy::from_bytes(&bytes, "fuzz.yaml");
    }

    #[test]
    fn mutated_policies_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = VALID.as_bytes().to_vec();
        for (index, byte) in edits {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(mut policy) = Policy::from_bytes(&bytes, "fuzz.yaml") {
            policy.sanitize();
            let groups = vec!["g".to_owned()];
            policy.evaluate(&RequestAttributes {
                user: "u",
                groups: &groups,
                verb: "get",
                resource: "secrets",
                resource_request: true,
                path: "/",
                ..Default::default()
            });
        }
    }

    /// Sanitizing caps sensitive requests at Metadata and changes nothing else.
    #[test]
    fn sanitize_matches_its_definition(
        rules in prop::collection::vec(rule(), 1..5),
        requests in prop::collection::vec(request(), 1..16),
    ) {
        let Ok(original) = Policy::from_parts(rules, Vec::new(), false) else {
            return Ok(());
        };
        let mut sanitized = original.clone();
        sanitized.sanitize();
        for r in &requests {
            let attrs = attributes(r);
            let before = original.evaluate(&attrs);
            let after = sanitized.evaluate(&attrs);
            let sensitive = r.resource_request && r.target < SENSITIVE;
            let want = if sensitive { before.level.min(Level::Metadata) } else { before.level };
            prop_assert_eq!(after.level, want, "{:?}\n{:#?}", r, sanitized.rules());
            prop_assert_eq!(after.omit_stages, before.omit_stages);
            prop_assert_eq!(after.omit_managed_fields, before.omit_managed_fields);
        }
        let mut twice = sanitized.clone();
        prop_assert!(twice.sanitize().is_empty());
    }

    /// A Secret hidden anywhere in any body never reaches the event.
    #[test]
    fn embedded_secrets_are_scrubbed(
        mut body in json_value(),
        path in prop::collection::vec(any::<usize>(), 0..6),
        kind in prop::sample::select(&["Secret", "ConfigMap", "SecretList"][..]),
    ) {
        let secret = match kind {
            "SecretList" => json!({"kind": "SecretList",
                                   "items": [{"data": {"k": CANARY}, "stringData": {"k": CANARY}}]}),
            "Secret" => json!({"kind": "Secret", "data": {"k": CANARY}, "stringData": {"k": CANARY}}),
            _ => json!({"kind": "ConfigMap", "data": {"k": CANARY}, "binaryData": {"k": CANARY}}),
        };
        embed(&mut body, &path, secret);
        let config = RequestAuditConfig {
            level: Level::RequestResponse,
            omit_stages: StageSet::empty(),
            omit_managed_fields: true,
        };
        let metadata = RequestMetadata {
            object_ref: Some(ObjectReference {
                resource: "widgets".to_owned(),
                api_group: "example.com".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut event = Event::new(metadata, &config, std::time::SystemTime::now());
        event.set_request_object(body.clone());
        event.set_response_object(body);
        let text = serde_json::to_string(&event).unwrap();
        prop_assert!(!text.contains(CANARY), "{}", text);
    }
}
