//! `Policy::sanitize`: no rule may record bodies of secrets, configmaps, token reviews or token
//! requests; everything else keeps the level its author chose.

use ward_audit::{Level, Policy, RequestAttributes};

use crate::policy;

const HEADER: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";

fn sanitized(rules: &str) -> (Policy, Vec<String>) {
    let mut policy = policy(&format!("{HEADER}{rules}"));
    let warnings = policy.sanitize();
    // Sanitizing is idempotent.
    let mut again = policy.clone();
    assert!(
        again.sanitize().is_empty(),
        "second sanitize changed {again:?}"
    );
    assert_eq!(again, policy);
    (policy, warnings)
}

/// The level for `verb` on `group`/`resource`/`subresource` by `user` in `groups`.
fn level(
    policy: &Policy,
    (user, groups): (&str, &[String]),
    verb: &str,
    (group, resource, subresource): (&str, &str, &str),
    namespace: &str,
) -> Level {
    policy
        .evaluate(&RequestAttributes {
            user,
            groups,
            verb,
            api_group: group,
            resource,
            subresource,
            namespace,
            name: "n",
            resource_request: true,
            path: "/x",
        })
        .level
}

const SENSITIVE: &[(&str, &str, &str)] = &[
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("", "serviceaccounts", "token"),
    ("authentication.k8s.io", "tokenreviews", ""),
];

const ORDINARY: &[(&str, &str, &str)] = &[
    ("", "pods", ""),
    ("", "pods", "log"),
    ("", "serviceaccounts", ""),
    ("apps", "deployments", "scale"),
    ("rbac.authorization.k8s.io", "roles", ""),
    // A secrets resource in another group is not a core Secret.
    ("example.com", "secrets", ""),
];

#[test]
fn catch_all_request_response_keeps_other_resources() {
    let (policy, warnings) = sanitized("rules:\n- level: RequestResponse\n");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("rules[0]"), "{warnings:?}");
    assert!(warnings[0].contains("secrets"), "{warnings:?}");
    assert!(
        warnings[0].contains("tokenreviews.authentication.k8s.io"),
        "{warnings:?}"
    );
    let no_groups: &[String] = &[];
    for target in SENSITIVE {
        for verb in [
            "get", "list", "create", "update", "patch", "delete", "watch",
        ] {
            assert_eq!(
                level(&policy, ("alice", no_groups), verb, *target, "default"),
                Level::Metadata,
                "{verb} {target:?}"
            );
        }
    }
    for target in ORDINARY {
        assert_eq!(
            level(&policy, ("alice", no_groups), "get", *target, "default"),
            Level::RequestResponse,
            "{target:?}"
        );
    }
    // Non-resource requests are untouched.
    let healthz = RequestAttributes {
        verb: "get",
        path: "/healthz",
        ..Default::default()
    };
    assert_eq!(policy.evaluate(&healthz).level, Level::RequestResponse);
    // The guard is a plain Metadata rule inserted first.
    let guard = &policy.rules()[0];
    assert_eq!(guard.level, Level::Metadata);
    assert_eq!(policy.rules().len(), 2);
    let json = serde_json::to_string(guard).unwrap();
    assert_eq!(
        json,
        r#"{"level":"Metadata","resources":[{"resources":["secrets","configmaps","serviceaccounts/token"]},{"group":"authentication.k8s.io","resources":["tokenreviews"]}]}"#
    );
}

#[test]
fn earlier_metadata_rule_is_left_alone() {
    let rules = "rules:\n\
                 - level: Metadata\n  resources:\n  - group: ''\n    resources: [secrets, configmaps, serviceaccounts/token]\n  - group: authentication.k8s.io\n    resources: [tokenreviews]\n\
                 - level: RequestResponse\n";
    let (policy, warnings) = sanitized(rules);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(policy, crate::policy(&format!("{HEADER}{rules}")));

    // A `None` rule caps as well; a narrower earlier rule does not.
    let rules = "rules:\n\
                 - level: None\n  resources:\n  - group: ''\n    resources: [secrets]\n\
                 - level: Metadata\n  namespaces: [kube-system]\n  resources:\n  - group: ''\n    resources: [configmaps]\n\
                 - level: Request\n  resources:\n  - group: ''\n";
    let (policy, warnings) = sanitized(rules);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("rules[2]"), "{warnings:?}");
    assert!(!warnings[0].contains("secrets"), "{warnings:?}");
    assert!(warnings[0].contains("configmaps"), "{warnings:?}");
    let no_groups: &[String] = &[];
    let who = ("bob", no_groups);
    assert_eq!(
        level(&policy, who, "get", ("", "secrets", ""), "a"),
        Level::None
    );
    assert_eq!(
        level(&policy, who, "get", ("", "configmaps", ""), "a"),
        Level::Metadata
    );
    assert_eq!(
        level(&policy, who, "get", ("", "configmaps", ""), "kube-system"),
        Level::Metadata
    );
    assert_eq!(
        level(&policy, who, "get", ("", "pods", ""), "a"),
        Level::Request
    );
}

#[test]
fn wildcards_are_caught() {
    for (resources, caught) in [
        (
            "['*']",
            vec!["secrets", "configmaps", "serviceaccounts/token"],
        ),
        ("['*/token']", vec!["serviceaccounts/token"]),
        ("['serviceaccounts/*']", vec!["serviceaccounts/token"]),
        ("[secrets]", vec!["secrets"]),
        ("[configmaps, pods]", vec!["configmaps"]),
        ("[]", vec!["secrets", "configmaps", "serviceaccounts/token"]),
    ] {
        let rules = format!(
            "rules:\n- level: Request\n  resources:\n  - group: ''\n    resources: {resources}\n"
        );
        let (policy, warnings) = sanitized(&rules);
        assert_eq!(warnings.len(), 1, "{resources}: {warnings:?}");
        let guard = &policy.rules()[0];
        assert_eq!(guard.level, Level::Metadata);
        assert_eq!(guard.resources.len(), 1, "{resources}");
        assert_eq!(guard.resources[0].resources, caught, "{resources}");
    }
    // Rules that cannot match sensitive resources are left alone.
    for rules in [
        "rules:\n- level: RequestResponse\n  resources:\n  - group: apps\n",
        "rules:\n- level: RequestResponse\n  resources:\n  - group: ''\n    resources: [pods, '*/scale', serviceaccounts]\n",
        "rules:\n- level: RequestResponse\n  nonResourceURLs: ['*']\n",
        "rules:\n- level: Metadata\n",
        "rules:\n- level: None\n  resources:\n  - group: ''\n    resources: [secrets]\n",
    ] {
        let (_, warnings) = sanitized(rules);
        assert!(warnings.is_empty(), "{rules}: {warnings:?}");
    }
    // A namespaces-only rule matches every resource request in those namespaces.
    let (policy, warnings) = sanitized("rules:\n- level: Request\n  namespaces: [prod]\n");
    assert_eq!(warnings.len(), 1);
    let no_groups: &[String] = &[];
    assert_eq!(
        level(
            &policy,
            ("u", no_groups),
            "get",
            ("", "secrets", ""),
            "prod"
        ),
        Level::Metadata
    );
    assert_eq!(
        level(&policy, ("u", no_groups), "get", ("", "secrets", ""), "dev"),
        Level::None
    );
    assert_eq!(
        level(&policy, ("u", no_groups), "get", ("", "pods", ""), "prod"),
        Level::Request
    );
}

#[test]
fn guard_keeps_the_rules_conditions() {
    let rules = "rules:\n\
                 - level: RequestResponse\n  users: [alice]\n  userGroups: [admins]\n  verbs: [create]\n  namespaces: [prod]\n  omitStages: [RequestReceived]\n  resources:\n  - group: ''\n    resources: [secrets]\n    resourceNames: [n]\n\
                 - level: Request\n";
    let (policy, warnings) = sanitized(rules);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("rules[0]") && warnings[1].contains("rules[1]"));
    let guard = &policy.rules()[0];
    assert_eq!(guard.users, ["alice"]);
    assert_eq!(guard.user_groups, ["admins"]);
    assert_eq!(guard.verbs, ["create"]);
    assert_eq!(guard.namespaces, ["prod"]);
    assert_eq!(guard.omit_stages, [ward_audit::Stage::RequestReceived]);
    assert_eq!(guard.resources[0].resources, ["secrets"]);
    assert_eq!(guard.resources[0].resource_names, ["n"]);
    assert_eq!(policy.rules().len(), 4);

    let admins = vec!["admins".to_owned()];
    let others: &[String] = &[];
    // The guarded request: Metadata.
    assert_eq!(
        level(
            &policy,
            ("alice", &admins),
            "create",
            ("", "secrets", ""),
            "prod"
        ),
        Level::Metadata
    );
    // Requests the first rule never matched reach the catch-all, which is guarded too.
    assert_eq!(
        level(
            &policy,
            ("bob", others),
            "create",
            ("", "secrets", ""),
            "prod"
        ),
        Level::Metadata
    );
    assert_eq!(
        level(
            &policy,
            ("alice", &admins),
            "create",
            ("", "pods", ""),
            "prod"
        ),
        Level::Request
    );
}
