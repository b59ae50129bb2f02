//! Policy parsing, validation and evaluation. The evaluation table is upstream's
//! `staging/src/k8s.io/apiserver/pkg/audit/policy/checker_test.go`, case for case.

use std::collections::HashMap;

use serde_json::json;
use ward_audit::{
    AuditError, Level, Policy, PolicyRule, RequestAttributes, RequestAuditConfig, Stage, StageSet,
};

use crate::policy;

const TIM_GROUPS: &[&str] = &["humans", "developers"];

fn tim_groups() -> Vec<String> {
    TIM_GROUPS.iter().map(|g| (*g).to_owned()).collect()
}

/// Upstream's `attrs` map.
fn attrs<'a>(name: &str, groups: &'a [String]) -> RequestAttributes<'a> {
    match name {
        "namespaced" => RequestAttributes {
            user: "tim@k8s.io",
            groups,
            verb: "get",
            namespace: "default",
            api_group: "",
            resource: "pods",
            name: "busybox",
            resource_request: true,
            path: "/api/v1/namespaces/default/pods/busybox",
            ..Default::default()
        },
        "cluster" => RequestAttributes {
            user: "tim@k8s.io",
            groups,
            verb: "get",
            api_group: "rbac.authorization.k8s.io",
            resource: "clusterroles",
            name: "edit",
            resource_request: true,
            path: "/apis/rbac.authorization.k8s.io/v1beta1/clusterroles/edit",
            ..Default::default()
        },
        "nonResource" => RequestAttributes {
            user: "tim@k8s.io",
            groups,
            verb: "get",
            resource_request: false,
            path: "/logs/kubelet.log",
            ..Default::default()
        },
        "subresource" => RequestAttributes {
            user: "tim@k8s.io",
            groups,
            verb: "get",
            namespace: "default",
            api_group: "",
            resource: "pods",
            subresource: "log",
            name: "busybox",
            resource_request: true,
            path: "/api/v1/namespaces/default/pods/busybox",
        },
        // No user at all (upstream's nil user); our attributes have an empty name and groups.
        "Unauthorized" => RequestAttributes {
            verb: "get",
            namespace: "default",
            api_group: "",
            resource: "pods",
            name: "busybox",
            resource_request: true,
            path: "/api/v1/namespaces/default/pods/busybox",
            ..Default::default()
        },
        other => panic!("no request {other}"),
    }
}

/// Upstream's `rules` map.
fn rules() -> HashMap<&'static str, PolicyRule> {
    let rule = |v: serde_json::Value| serde_json::from_value::<PolicyRule>(v).unwrap();
    HashMap::from([
        ("default", rule(json!({"level": "Metadata"}))),
        (
            "create",
            rule(json!({"level": "Request", "verbs": ["create"]})),
        ),
        (
            "tims",
            rule(json!({"level": "Metadata", "users": ["tim@k8s.io"]})),
        ),
        (
            "humans",
            rule(json!({"level": "Metadata", "userGroups": ["humans"]})),
        ),
        (
            "serviceAccounts",
            rule(json!({"level": "Request", "userGroups": ["system:serviceaccounts"]})),
        ),
        (
            "getPods",
            rule(json!({"level": "RequestResponse", "verbs": ["get"],
                        "resources": [{"resources": ["pods"]}]})),
        ),
        (
            "getPodLogs",
            rule(json!({"level": "Request", "verbs": ["get"],
                        "resources": [{"resources": ["pods/log"]}]})),
        ),
        (
            "getPodWildcardMatching",
            rule(json!({"level": "Request", "verbs": ["get"],
                        "resources": [{"resources": ["*"]}]})),
        ),
        (
            "getPodResourceWildcardMatching",
            rule(json!({"level": "Request", "verbs": ["get"],
                        "resources": [{"resources": ["*/log"]}]})),
        ),
        (
            "getPodSubResourceWildcardMatching",
            rule(json!({"level": "Request", "verbs": ["get"],
                        "resources": [{"resources": ["pods/*"]}]})),
        ),
        (
            "getClusterRoles",
            rule(json!({"level": "RequestResponse", "verbs": ["get"],
                        "resources": [{"group": "rbac.authorization.k8s.io",
                                       "resources": ["clusterroles"]}],
                        "namespaces": [""]})),
        ),
        (
            "getLogs",
            rule(json!({"level": "RequestResponse", "verbs": ["get"],
                        "nonResourceURLs": ["/logs*"]})),
        ),
        (
            "getMetrics",
            rule(json!({"level": "Request", "verbs": ["get"], "nonResourceURLs": ["/metrics"]})),
        ),
        (
            "clusterRoleEdit",
            rule(json!({"level": "Request",
                        "resources": [{"group": "rbac.authorization.k8s.io",
                                       "resources": ["clusterroles"],
                                       "resourceNames": ["edit"]}]})),
        ),
        (
            "omit RequestReceived",
            rule(json!({"level": "Request", "omitStages": ["RequestReceived"]})),
        ),
        (
            "only audit panic",
            rule(json!({"level": "Request",
                        "omitStages": ["RequestReceived", "ResponseStarted", "ResponseComplete"]})),
        ),
    ])
}

/// Upstream's `test` helper.
fn check(
    req: &str,
    level: Level,
    policy_stages: &[Stage],
    omit_stages: &[Stage],
    rule_names: &[&str],
) {
    let all = rules();
    let rules = rule_names.iter().map(|n| all[n].clone()).collect();
    let policy = Policy::from_parts(rules, policy_stages.to_vec(), false).unwrap();
    let groups = tim_groups();
    let got = policy.evaluate(&attrs(req, &groups));
    let want = RequestAuditConfig {
        level,
        omit_stages: omit_stages.iter().collect(),
        omit_managed_fields: false,
    };
    assert_eq!(got, want, "request {req} rules {rule_names:?}");
}

/// Upstream's `testAuditLevel`.
fn check_levels(stages: &[Stage]) {
    use Level::{Metadata, None, Request, RequestResponse};
    let s = stages;
    check("namespaced", Metadata, s, s, &["default"]);
    check("namespaced", None, s, s, &["create"]);
    check("namespaced", Metadata, s, s, &["tims"]);
    check("namespaced", Metadata, s, s, &["humans"]);
    check("namespaced", None, s, s, &["serviceAccounts"]);
    check("namespaced", RequestResponse, s, s, &["getPods"]);
    check("namespaced", None, s, s, &["getClusterRoles"]);
    check("namespaced", None, s, s, &["getLogs"]);
    check("namespaced", None, s, s, &["getMetrics"]);
    check(
        "namespaced",
        Metadata,
        s,
        s,
        &["getMetrics", "serviceAccounts", "default"],
    );
    check(
        "namespaced",
        RequestResponse,
        s,
        s,
        &["getMetrics", "getPods", "default"],
    );
    check(
        "namespaced",
        RequestResponse,
        s,
        s,
        &["getPodLogs", "getPods"],
    );

    check("cluster", Metadata, s, s, &["default"]);
    check("cluster", None, s, s, &["create"]);
    check("cluster", Metadata, s, s, &["tims"]);
    check("cluster", Metadata, s, s, &["humans"]);
    check("cluster", None, s, s, &["serviceAccounts"]);
    check("cluster", None, s, s, &["getPods"]);
    check("cluster", RequestResponse, s, s, &["getClusterRoles"]);
    check(
        "cluster",
        Request,
        s,
        s,
        &["clusterRoleEdit", "getClusterRoles"],
    );
    check("cluster", None, s, s, &["getLogs"]);
    check("cluster", None, s, s, &["getMetrics"]);
    check(
        "cluster",
        Metadata,
        s,
        s,
        &["getMetrics", "serviceAccounts", "default"],
    );
    check(
        "cluster",
        RequestResponse,
        s,
        s,
        &["getMetrics", "getClusterRoles", "default"],
    );
    check("cluster", None, s, s, &["getPodLogs", "getPods"]);

    check("nonResource", Metadata, s, s, &["default"]);
    check("nonResource", None, s, s, &["create"]);
    check("nonResource", Metadata, s, s, &["tims"]);
    check("nonResource", Metadata, s, s, &["humans"]);
    check("nonResource", None, s, s, &["serviceAccounts"]);
    check("nonResource", None, s, s, &["getPods"]);
    check("nonResource", None, s, s, &["getClusterRoles"]);
    check("nonResource", RequestResponse, s, s, &["getLogs"]);
    check("nonResource", None, s, s, &["getMetrics"]);
    check(
        "nonResource",
        Metadata,
        s,
        s,
        &["getMetrics", "serviceAccounts", "default"],
    );
    check(
        "nonResource",
        RequestResponse,
        s,
        s,
        &["getLogs", "getClusterRoles", "default"],
    );
    check("nonResource", None, s, s, &["getPodLogs", "getPods"]);

    check("subresource", Request, s, s, &["getPodLogs", "getPods"]);
    check("subresource", Request, s, s, &["getPodWildcardMatching"]);
    check(
        "subresource",
        Request,
        s,
        s,
        &["getPodResourceWildcardMatching"],
    );
    check(
        "subresource",
        Request,
        s,
        s,
        &["getPodSubResourceWildcardMatching"],
    );

    check("Unauthorized", None, s, s, &["tims"]);
    check("Unauthorized", Metadata, s, s, &["tims", "default"]);
    check("Unauthorized", None, s, s, &["humans"]);
    check("Unauthorized", Metadata, s, s, &["humans", "default"]);
}

#[test]
fn checker() {
    use Stage::{RequestReceived, ResponseComplete, ResponseStarted};
    check_levels(&[]);

    let rr = [RequestReceived];
    let panic_only = [RequestReceived, ResponseStarted, ResponseComplete];
    for req in ["namespaced", "cluster", "nonResource"] {
        check(
            req,
            Level::Request,
            &[],
            &rr,
            &["omit RequestReceived", "getPods", "default"],
        );
        check(
            req,
            Level::Request,
            &[],
            &panic_only,
            &["only audit panic", "getPods", "default"],
        );
    }
}

#[test]
fn checker_policy_omit_stages() {
    use Stage::{RequestReceived, ResponseComplete, ResponseStarted};
    let policy_stages = [RequestReceived, ResponseStarted];
    check_levels(&policy_stages);

    let all3 = [RequestReceived, ResponseStarted, ResponseComplete];
    let ps = &policy_stages;
    for req in ["namespaced", "cluster"] {
        check(
            req,
            Level::Request,
            ps,
            ps,
            &["omit RequestReceived", "getPods", "default"],
        );
        check(
            req,
            Level::Request,
            ps,
            &all3,
            &["only audit panic", "getPods", "default"],
        );
    }
    check(
        "nonResource",
        Level::Metadata,
        ps,
        ps,
        &["default", "omit RequestReceived", "getPods"],
    );
    check(
        "nonResource",
        Level::Request,
        ps,
        &all3,
        &["only audit panic", "getPods", "default"],
    );
}

#[test]
fn omit_managed_fields() {
    // Upstream's TestOmitManagedFields: the rule's setting, if any, overrides the policy's.
    let attrs = RequestAttributes {
        verb: "get",
        ..Default::default()
    };
    for (global, rule_setting, want) in [
        (false, None, false),
        (true, None, true),
        (true, Some(false), false),
        (false, Some(true), true),
    ] {
        let mut rule = PolicyRule::new(Level::RequestResponse);
        rule.verbs = vec!["get".to_owned()];
        rule.omit_managed_fields = rule_setting;
        let policy = Policy::from_parts(vec![rule], vec![], global).unwrap();
        assert_eq!(
            policy.evaluate(&attrs).omit_managed_fields,
            want,
            "global {global} rule {rule_setting:?}"
        );
    }
    // No rule matches: the policy's setting.
    let mut rule = PolicyRule::new(Level::Metadata);
    rule.verbs = vec!["list".to_owned()];
    let policy = Policy::from_parts(vec![rule], vec![Stage::Panic], true).unwrap();
    let config = policy.evaluate(&attrs);
    assert_eq!(config.level, Level::None);
    assert!(config.omit_managed_fields);
    assert_eq!(
        config.omit_stages,
        [Stage::Panic].iter().collect::<StageSet>()
    );
}

#[test]
fn default_policy_is_metadata_without_request_received() {
    let policy = Policy::default_metadata();
    let groups = tim_groups();
    for req in [
        "namespaced",
        "cluster",
        "nonResource",
        "subresource",
        "Unauthorized",
    ] {
        let config = policy.evaluate(&attrs(req, &groups));
        assert_eq!(config.level, Level::Metadata, "{req}");
        assert!(!config.records(Stage::RequestReceived));
        assert!(config.records(Stage::ResponseStarted));
        assert!(config.records(Stage::ResponseComplete));
        assert!(config.records(Stage::Panic));
    }
    let mut sanitized = policy.clone();
    assert!(sanitized.sanitize().is_empty());
    assert_eq!(sanitized, policy);
}

#[test]
fn parses_upstream_example_policy() {
    // The example policy from the Kubernetes auditing documentation.
    let policy = policy(
        r#"
apiVersion: audit.k8s.io/v1 # This is required.
kind: Policy
# Don't generate audit events for all requests in RequestReceived stage.
omitStages:
  - "RequestReceived"
rules:
  # Log pod changes at RequestResponse level
  - level: RequestResponse
    resources:
    - group: ""
      # Resource "pods" doesn't match requests to any subresource of pods,
      # which is consistent with the RBAC policy.
      resources: ["pods"]
  # Log "pods/log", "pods/status" at Metadata level
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]

  # Don't log requests to a configmap called "controller-leader"
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["controller-leader"]

  # Don't log watch requests by the "system:kube-proxy" on endpoints or services
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: "" # core API group
      resources: ["endpoints", "services"]

  # Don't log authenticated requests to certain non-resource URL paths.
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs:
    - "/api*" # Wildcard matching.
    - "/version"

  # Log the request body of configmap changes in kube-system.
  - level: Request
    resources:
    - group: "" # core API group
      resources: ["configmaps"]
    # This rule only applies to resources in the "kube-system" namespace.
    # The empty string "" can be used to select non-namespaced resources.
    namespaces: ["kube-system"]

  # Log configmap and secret changes in all other namespaces at the Metadata level.
  - level: Metadata
    resources:
    - group: "" # core API group
      resources: ["secrets", "configmaps"]

  # Log all other resources in core and extensions at the Request level.
  - level: Request
    resources:
    - group: "" # core API group
    - group: "extensions" # Version of group should NOT be included.

  # A catch-all rule to log all other requests at the Metadata level.
  - level: Metadata
    # Long-running requests like watches that fall under this rule will not
    # generate an audit event in RequestReceived.
    omitStages:
      - "RequestReceived"
"#,
    );
    assert_eq!(policy.rules().len(), 9);
    assert_eq!(policy.omit_stages(), [Stage::RequestReceived]);
    assert_eq!(
        policy.rules()[2].resources[0].resource_names,
        ["controller-leader"]
    );
    let groups = vec!["system:authenticated".to_owned()];
    let version = RequestAttributes {
        user: "bob",
        groups: &groups,
        verb: "get",
        path: "/version",
        ..Default::default()
    };
    assert_eq!(policy.evaluate(&version).level, Level::None);
    let healthz = RequestAttributes {
        path: "/healthz",
        ..version
    };
    assert_eq!(policy.evaluate(&healthz).level, Level::Metadata);
    let leader = RequestAttributes {
        user: "bob",
        groups: &groups,
        verb: "update",
        resource: "configmaps",
        namespace: "kube-system",
        name: "controller-leader",
        resource_request: true,
        ..Default::default()
    };
    assert_eq!(policy.evaluate(&leader).level, Level::None);
    let other_cm = RequestAttributes {
        name: "other",
        ..leader
    };
    assert_eq!(policy.evaluate(&other_cm).level, Level::Request);
}

#[test]
fn accepts_json_v1beta1_and_null_lists() {
    let json = r#"{"apiVersion":"audit.k8s.io/v1beta1","kind":"Policy",
        "metadata":{"name":"p"},"omitManagedFields":true,
        "rules":[{"level":"Request","users":null,"resources":[{"group":"apps","resources":null}]}]}"#;
    let policy = Policy::from_bytes(json.as_bytes(), "p.json").unwrap();
    assert!(policy.omit_managed_fields());
    assert!(policy.rules()[0].users.is_empty());
    assert_eq!(policy.rules()[0].resources[0].group, "apps");

    let yaml =
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages:\nrules:\n- level: None\n  verbs:\n";
    let policy = crate::policy(yaml);
    assert!(policy.omit_stages().is_empty());
}

#[test]
fn plain_scalars_stay_strings() {
    // sigs.k8s.io/yaml reads a plain scalar into a string field as its text, so YAML 1.1
    // booleans and numbers in string lists are names, not errors.
    let policy = policy(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  users: [123, no]\n  namespaces: [yes, ~x]\n  resources:\n  - resources: [secrets]\n    resourceNames: [n, 0x1F]\n",
    );
    let rule = &policy.rules()[0];
    assert_eq!(rule.users, ["123", "no"]);
    assert_eq!(rule.namespaces, ["yes", "~x"]);
    assert_eq!(rule.resources[0].resource_names, ["n", "0x1F"]);
}

#[test]
fn to_json_round_trips() {
    let mut policy = Policy::default_metadata();
    policy.sanitize();
    let json = serde_json::to_vec(&policy).unwrap();
    let again = Policy::from_bytes(&json, "round-trip").unwrap();
    assert_eq!(again, policy);
    assert_eq!(
        serde_json::to_string(&policy).unwrap(),
        r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Metadata"}],"omitStages":["RequestReceived"],"omitManagedFields":false}"#
    );
}

/// Loads `text` from a file and returns the error message.
fn load_error(text: &str) -> (AuditError, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit-policy.yaml");
    std::fs::write(&path, text).unwrap();
    let error = Policy::load(&path).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "error does not name the file: {message}"
    );
    (error, message)
}

#[test]
fn errors_name_file_and_field() {
    let header = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";
    let cases: &[(&str, &str)] = &[
        // Shape errors: the path of the field.
        ("rules:\n- level: Metadata\n  userGroup: [a]\n", "rules[0]"),
        ("rules:\n- level: Metadata\n  userGroup: [a]\n", "userGroup"),
        (
            "rules:\n- level: Metadata\n- level: Everything\n",
            "rules[1].level",
        ),
        (
            "rules:\n- level: Metadata\n- level: Everything\n",
            "RequestResponse",
        ),
        ("rules:\n- verbs: [get]\n", "missing field `level`"),
        (
            "rules:\n- level: Request\n  resources:\n  - group: ''\n    resources: pods\n",
            "rules[0].resources[0].resources",
        ),
        (
            "rules:\n- level: Request\n  resources:\n  - group: ''\n    resource: [pods]\n",
            "rules[0].resources[0]",
        ),
        (
            "rules:\n- level: Request\n  omitStages: [Done]\n",
            "rules[0].omitStages[0]",
        ),
        (
            "omitStages: [Done]\nrules:\n- level: Request\n",
            "omitStages[0]",
        ),
        (
            "rules:\n- level: Request\nextra: 1\n",
            "unknown field `extra`",
        ),
        (
            "rules:\n- level: Request\n  omitManagedFields: maybe\n",
            "rules[0].omitManagedFields",
        ),
        // Validation errors: the path of the field and the expected form.
        ("rules: []\n", "rules: a policy needs at least one rule"),
        (
            "rules:\n- level: Request\n  nonResourceURLs: [metrics]\n",
            "rules[0].nonResourceURLs[0]: \"metrics\": non-resource URL rules must begin with a '/'",
        ),
        (
            "rules:\n- level: Request\n  nonResourceURLs: ['/a*/b']\n",
            "rules[0].nonResourceURLs[0]: \"/a*/b\": non-resource URL wildcards '*' must be the final",
        ),
        (
            "rules:\n- level: Request\n  namespaces: [a]\n  nonResourceURLs: ['/a']\n",
            "rules[0].nonResourceURLs: rules cannot apply to both",
        ),
        (
            "rules:\n- level: Request\n- level: Request\n  resources:\n  - group: apps/v1\n",
            "rules[1].resources[0].group: \"apps/v1\"",
        ),
        (
            "rules:\n- level: Request\n  resources:\n  - group: apps\n    resourceNames: [x]\n",
            "rules[0].resources[0].resourceNames: using resourceNames requires",
        ),
    ];
    for (body, needle) in cases {
        let (_, message) = load_error(&format!("{header}{body}"));
        assert!(
            message.contains(needle),
            "{body:?}: {message:?} lacks {needle:?}"
        );
    }

    let (error, message) = load_error("apiVersion: audit.k8s.io/v2\nkind: Pol\nrules: []\n");
    let AuditError::Invalid { errors, .. } = error else {
        panic!("{message}");
    };
    let paths: Vec<_> = errors.iter().map(|e| e.path().to_owned()).collect();
    assert_eq!(paths, ["apiVersion", "kind", "rules"], "{message}");

    let (_, message) = load_error("rules:\n- level: None\n");
    assert!(message.contains("apiVersion: required"), "{message}");

    let (error, message) = load_error("apiVersion: [unclosed\n");
    assert!(
        matches!(&error, AuditError::Shape { field, line: 1, .. } if field == "apiVersion"),
        "{message}"
    );
    for text in [
        "{ unclosed",
        "kind: Policy\n---\nkind: Policy\n",
        "\u{0}\u{1}",
        "]",
    ] {
        let (error, message) = load_error(text);
        assert!(
            matches!(error, AuditError::Syntax { line: 1.., .. }),
            "{text:?}: {message}"
        );
    }
    let (error, _) = load_error("# only a comment\n");
    assert!(matches!(error, AuditError::Empty { .. }));
    let (error, _) = load_error("  \n");
    assert!(matches!(error, AuditError::Empty { .. }));
    let (_, message) = load_error("just a string");
    assert!(message.contains("expected mapping"), "{message}");
}

#[test]
fn missing_file_is_a_read_error() {
    let error = Policy::load(std::path::Path::new("/nonexistent/audit-policy.yaml")).unwrap_err();
    assert!(matches!(error, AuditError::Read { .. }), "{error}");
    assert!(error.to_string().contains("/nonexistent/audit-policy.yaml"));
}

#[test]
fn too_large_policy_is_refused() {
    let big = vec![b'#'; (4 << 20) + 1];
    let error = Policy::from_bytes(&big, "big.yaml").unwrap_err();
    assert!(matches!(error, AuditError::TooLarge { .. }), "{error}");
}
