//! RBAC rules, one policy rule at a time: `rbac-secret-read`, `rbac-implied-secret-access` and
//! `rbac-escalation`; plus bindings of the built-in roles that read Secrets (`cluster-admin`,
//! `admin`, `edit`).
//!
//! Matching follows `pkg/apis/rbac/v1/evaluation_helpers.go`: `*` matches any verb, group or
//! resource (subresources included), `*/sub` any resource's subresource, and a rule with
//! `resourceNames` never allows `create` (a create request has no name). This module judges
//! what each rule *grants*; who holds it through which binding is `who-can`'s job. The built-in
//! roles (label `kubernetes.io/bootstrapping: rbac-defaults`) are not reported: they are known,
//! and a binding to them is.

use crate::finding::{Rule, Severity};
use crate::input::Object;
use crate::rules::{At, Ctx, q};
use crate::yaml::Node;

pub(crate) fn check(ctx: &mut Ctx<'_>, object: &Object) {
    let rbac_group = object
        .resource
        .api_version
        .as_deref()
        .is_some_and(|v| v.starts_with("rbac.authorization.k8s.io/"));
    if !rbac_group || is_bootstrap_default(&object.node) {
        return;
    }
    match object.resource.kind.as_str() {
        "Role" | "ClusterRole" => role(ctx, object),
        "RoleBinding" | "ClusterRoleBinding" => binding(ctx, object),
        _ => {}
    }
}

/// One policy rule, as lists.
struct PolicyRule<'a> {
    groups: Vec<&'a str>,
    resources: Vec<&'a str>,
    verbs: Vec<&'a str>,
    names: Vec<&'a str>,
}

impl PolicyRule<'_> {
    fn group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| *g == group || *g == "*")
    }

    fn resource(&self, resource: &str) -> bool {
        let sub = resource.split_once('/').map(|(_, s)| s);
        self.resources.iter().any(|r| {
            *r == resource || *r == "*" || sub.is_some_and(|s| r.strip_prefix("*/") == Some(s))
        })
    }

    fn verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| *v == verb || *v == "*")
    }

    fn wildcards(&self) -> String {
        let mut fields = Vec::new();
        for (field, list) in [
            ("apiGroups", &self.groups),
            ("resources", &self.resources),
            ("verbs", &self.verbs),
        ] {
            if list.contains(&"*") {
                fields.push(field);
            }
        }
        if fields.is_empty() {
            String::new()
        } else {
            format!(" (through `*` in {})", fields.join(" and "))
        }
    }
}

fn role(ctx: &mut Ctx<'_>, object: &Object) {
    let kind = object.resource.kind.as_str();
    let scope = match (&object.resource.namespace, kind) {
        (Some(ns), "Role") => format!("in namespace {}", q(Some(ns))),
        (None, "Role") => "in its namespace".to_owned(),
        _ => "in every namespace it is bound in (all of them through a ClusterRoleBinding)"
            .to_owned(),
    };
    let Some(rules) = object.node.get("rules") else {
        return;
    };
    for (i, rule) in rules.items().iter().enumerate() {
        let list = |key: &str| rule.get(key).map(Node::strings).unwrap_or_default();
        let policy = PolicyRule {
            groups: list("apiGroups"),
            resources: list("resources"),
            verbs: list("verbs"),
            names: list("resourceNames"),
        };
        let at = At::node(rule, format!("rules[{i}]"));
        let bulk_read = secret_read(ctx, object, &policy, at.clone(), kind, &scope);
        if !bulk_read {
            implied_access(ctx, object, &policy, at.clone(), kind, &scope);
        }
        escalation(ctx, object, &policy, at, kind, &scope);
    }
}

/// Returns whether the rule lets its holder list or watch every Secret in scope.
fn secret_read(
    ctx: &mut Ctx<'_>,
    object: &Object,
    rule: &PolicyRule<'_>,
    at: At,
    kind: &str,
    scope: &str,
) -> bool {
    if !(rule.group("") && rule.resource("secrets")) {
        return false;
    }
    let verbs: Vec<&str> = ["get", "list", "watch"]
        .into_iter()
        .filter(|v| rule.verb(v))
        .collect();
    if verbs.is_empty() {
        return false;
    }
    let bulk = rule.verb("list") || rule.verb("watch");
    let (severity, what) = if !rule.names.is_empty() {
        (
            Severity::Low,
            format!("only the Secrets named {}", rule.names.join(", ")),
        )
    } else if bulk {
        (
            Severity::High,
            "Secrets; list and watch return every Secret with its values, not just names"
                .to_owned(),
        )
    } else {
        (
            Severity::Medium,
            "any Secret whose name is known".to_owned(),
        )
    };
    ctx.report(
        object,
        Rule::RbacSecretRead,
        severity,
        at,
        format!(
            "{kind} grants {}{} on {what}, {scope}",
            verbs.join(", "),
            rule.wildcards()
        ),
        "Remove secrets from the rule, or grant only get with resourceNames for the Secrets \
         the subject needs; never list or watch."
            .to_owned(),
    );
    bulk && rule.names.is_empty()
}

/// Workload kinds whose creation (or template change) runs a pod of the creator's choosing.
const WORKLOADS: &[(&str, &str, &str)] = &[
    ("", "pods", "pods"),
    ("", "replicationcontrollers", "replicationcontrollers"),
    ("apps", "deployments", "deployments.apps"),
    ("apps", "statefulsets", "statefulsets.apps"),
    ("apps", "daemonsets", "daemonsets.apps"),
    ("apps", "replicasets", "replicasets.apps"),
    ("batch", "jobs", "jobs.batch"),
    ("batch", "cronjobs", "cronjobs.batch"),
];

fn implied_access(
    ctx: &mut Ctx<'_>,
    object: &Object,
    rule: &PolicyRule<'_>,
    at: At,
    kind: &str,
    scope: &str,
) {
    let mut grants = Vec::new();
    for (group, resource, label) in WORKLOADS {
        if !(rule.group(group) && rule.resource(resource)) {
            continue;
        }
        // Create cannot be limited by name, so a rule with resourceNames never allows it.
        let verbs: Vec<&str> = ["create", "update", "patch"]
            .into_iter()
            .filter(|v| rule.verb(v) && (*v != "create" || rule.names.is_empty()))
            .collect();
        if !verbs.is_empty() {
            grants.push(format!("{} {label}", verbs.join("/")));
        }
    }
    if rule.group("") && rule.resource("pods/exec") && rule.verb("create") {
        grants.push("create pods/exec".to_owned());
    }
    if rule.group("")
        && rule.resource("pods/ephemeralcontainers")
        && (rule.verb("update") || rule.verb("patch"))
    {
        grants.push("update pods/ephemeralcontainers".to_owned());
    }
    if grants.is_empty() {
        return;
    }
    ctx.report(
        object,
        Rule::RbacImpliedSecretAccess,
        Severity::Medium,
        at,
        format!(
            "{kind} grants {}{}, {scope}: its holders can run a pod that mounts any Secret of \
             the namespace, or enter one that has them, and act as any ServiceAccount there",
            grants.join(", "),
            rule.wildcards()
        ),
        "Grant workload creation only to deployers (CI, GitOps controllers), in namespaces that \
         hold no Secrets they should not read; treat it as Secret read access."
            .to_owned(),
    );
}

fn escalation(
    ctx: &mut Ctx<'_>,
    object: &Object,
    rule: &PolicyRule<'_>,
    at: At,
    kind: &str,
    scope: &str,
) {
    let mut grants = Vec::new();
    if rule.group("rbac.authorization.k8s.io")
        && (rule.resource("roles") || rule.resource("clusterroles"))
    {
        for verb in ["escalate", "bind"] {
            if rule.verb(verb) {
                grants.push(format!("{verb} on roles"));
            }
        }
    }
    if rule.verb("impersonate") {
        let targets: Vec<&str> = [
            ("", "users"),
            ("", "groups"),
            ("", "serviceaccounts"),
            ("authentication.k8s.io", "userextras/*"),
            ("authentication.k8s.io", "uids"),
        ]
        .into_iter()
        .filter(|(g, r)| {
            let extras =
                *r == "userextras/*" && rule.resources.iter().any(|x| x.starts_with("userextras/"));
            rule.group(g) && (rule.resource(r) || extras)
        })
        .map(|(_, r)| r)
        .collect();
        if !targets.is_empty() {
            grants.push(format!("impersonate {}", targets.join(", ")));
        }
    }
    if rule.group("") && rule.resource("serviceaccounts/token") && rule.verb("create") {
        grants.push("create serviceaccounts/token".to_owned());
    }
    if rule.group("") && rule.resource("nodes/proxy") && (rule.verb("get") || rule.verb("create")) {
        grants.push("nodes/proxy (the kubelet API)".to_owned());
    }
    if grants.is_empty() {
        return;
    }
    let severity = if rule.names.is_empty() {
        Severity::High
    } else {
        Severity::Medium
    };
    let named = if rule.names.is_empty() {
        String::new()
    } else {
        format!(" (limited to {})", rule.names.join(", "))
    };
    ctx.report(
        object,
        Rule::RbacEscalation,
        severity,
        at,
        format!(
            "{kind} grants {}{}{named}, {scope}: a path to permissions the holder does not \
             have, including reading Secrets",
            grants.join("; "),
            rule.wildcards()
        ),
        "Remove escalate, bind, impersonate, serviceaccounts/token and nodes/proxy from roles \
         held by people and workloads; keep them for the few controllers that need them, with \
         resourceNames."
            .to_owned(),
    );
}

/// Built-in ClusterRoles that read every Secret in their scope.
const SECRET_READING_ROLES: &[&str] = &["cluster-admin", "admin", "edit"];

fn binding(ctx: &mut Ctx<'_>, object: &Object) {
    let Some(role_ref) = object.node.get("roleRef") else {
        return;
    };
    let role_kind = role_ref.get("kind").and_then(Node::as_str);
    let role_name = role_ref.get("name").and_then(Node::as_str);
    let Some(role_name) = role_name.filter(|n| SECRET_READING_ROLES.contains(n)) else {
        return;
    };
    if role_kind != Some("ClusterRole") {
        return;
    }
    let subjects: Vec<String> = object
        .node
        .get("subjects")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let kind = s.get("kind").and_then(Node::as_str).unwrap_or("?");
            let name = s.get("name").and_then(Node::as_str);
            match s.get("namespace").and_then(Node::as_str) {
                Some(ns) if kind == "ServiceAccount" => format!("{kind} {ns}/{}", q(name)),
                _ => format!("{kind} {}", q(name)),
            }
        })
        .collect();
    if subjects.is_empty() {
        return;
    }
    let scope = match (&object.resource.kind[..], &object.resource.namespace) {
        ("RoleBinding", Some(ns)) => format!("in namespace {}", q(Some(ns))),
        ("RoleBinding", None) => "in its namespace".to_owned(),
        _ => "in every namespace".to_owned(),
    };
    ctx.report(
        object,
        Rule::RbacSecretRead,
        Severity::High,
        At::key(&object.node, "", "roleRef"),
        format!(
            "binds ClusterRole {} to {} {scope}; that role can list and read every Secret",
            q(Some(role_name)),
            subjects.join(", ")
        ),
        "Bind `view` plus a narrow Role instead (get on named Secrets), or bind to a group \
         reviewed for Secret access."
            .to_owned(),
    );
}

fn is_bootstrap_default(node: &Node) -> bool {
    node.at(&["metadata", "labels", "kubernetes.io/bootstrapping"])
        .and_then(Node::as_str)
        == Some("rbac-defaults")
}
