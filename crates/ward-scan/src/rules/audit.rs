//! `audit-logs-secret-values`: an audit policy (`audit.k8s.io/v1` `Policy`) whose first
//! matching rule for some Secret request logs bodies.
//!
//! Audit rules are ordered and the first match wins (apiserver `pkg/audit/policy/checker.go`).
//! Resource matching is exact on the group (`""` is core; there is no group wildcard), and
//! `secrets`, `*` and `secrets/*` all match a request on `secrets`; an empty `resources` list
//! (and no `nonResourceURLs`) matches every resource, so a catch-all rule matches Secrets. A rule
//! with `nonResourceURLs` never matches a resource request.
//!
//! A rule is shadowed for Secrets when an earlier rule matching Secrets is at least as broad on
//! every dimension (users, userGroups, verbs, namespaces, resourceNames): then no Secret request
//! reaches it. A narrower earlier Metadata rule (only `kube-system`, say) protects only part of
//! the traffic, so the later rule is still reported. `Request` leaks only on verbs with a body
//! (create, update, patch); `RequestResponse` leaks on every verb, since responses carry the
//! object.

use std::collections::BTreeSet;

use crate::finding::{Rule, Severity};
use crate::input::Object;
use crate::rules::{At, Ctx};
use crate::yaml::Node;

pub(crate) fn check(ctx: &mut Ctx<'_>, object: &Object) {
    let is_policy = object.resource.kind == "Policy"
        && object
            .resource
            .api_version
            .as_deref()
            .is_some_and(|v| v.starts_with("audit.k8s.io/"));
    if !is_policy {
        return;
    }
    let rules = object
        .node
        .get("rules")
        .map(Node::items)
        .unwrap_or_default();
    let mut earlier: Vec<(usize, Scope)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let Some(scope) = secret_scope(rule) else {
            continue;
        };
        let shadowed = earlier.iter().any(|(_, e)| e.covers(&scope));
        if shadowed {
            continue;
        }
        let level = rule.get("level").and_then(Node::as_str).unwrap_or_default();
        let leaking_verbs = match level {
            "RequestResponse" => Some(scope.verbs.as_ref().map_or_else(
                || "every verb".to_owned(),
                |v| v.iter().cloned().collect::<Vec<_>>().join(", "),
            )),
            "Request" => match &scope.verbs {
                None => Some("create, update, patch".to_owned()),
                Some(verbs) => {
                    let body: Vec<&str> = verbs
                        .iter()
                        .map(String::as_str)
                        .filter(|v| matches!(*v, "create" | "update" | "patch" | "*"))
                        .collect();
                    (!body.is_empty()).then(|| body.join(", "))
                }
            },
            _ => None,
        };
        if let Some(verbs) = leaking_verbs {
            let catch_all = rule
                .get("resources")
                .map(Node::items)
                .unwrap_or_default()
                .is_empty();
            let protection = if earlier.is_empty() {
                "no earlier rule sets Secrets to Metadata or None".to_owned()
            } else {
                let list: Vec<String> = earlier.iter().map(|(j, _)| format!("{j}")).collect();
                format!(
                    "earlier rules matching Secrets (rules[{}]) cover only part of these requests",
                    list.join("], rules[")
                )
            };
            let severity = if scope.names.is_some() {
                Severity::Medium
            } else {
                Severity::High
            };
            ctx.report(
                object,
                Rule::AuditLogsSecretValues,
                severity,
                At::node(rule, format!("rules[{i}]")),
                format!(
                    "{}rule at level {level} matches Secrets, so Secret values (data, \
                     stringData) are written to the audit log on {verbs}; {protection}",
                    if catch_all { "catch-all " } else { "" }
                ),
                "Add `- level: Metadata` with `resources: [{group: \"\", resources: [secrets]}]` \
                 (and configmaps, serviceaccounts/token, tokenreviews) as the first rule of \
                 the policy."
                    .to_owned(),
            );
        }
        earlier.push((i, scope));
    }
}

/// The part of Secret traffic a rule matches. `None` on a dimension means "any".
#[derive(Debug)]
struct Scope {
    users: Option<BTreeSet<String>>,
    groups: Option<BTreeSet<String>>,
    verbs: Option<BTreeSet<String>>,
    namespaces: Option<BTreeSet<String>>,
    names: Option<BTreeSet<String>>,
}

impl Scope {
    fn covers(&self, other: &Scope) -> bool {
        fn dim(outer: &Option<BTreeSet<String>>, inner: &Option<BTreeSet<String>>) -> bool {
            match (outer, inner) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(o), Some(i)) => i.is_subset(o),
            }
        }
        dim(&self.users, &other.users)
            && dim(&self.groups, &other.groups)
            && dim(&self.verbs, &other.verbs)
            && dim(&self.namespaces, &other.namespaces)
            && dim(&self.names, &other.names)
    }
}

/// The Secret requests a rule matches, or `None` if it matches none.
fn secret_scope(rule: &Node) -> Option<Scope> {
    let set = |key: &str| -> Option<BTreeSet<String>> {
        let items: BTreeSet<String> = rule
            .get(key)
            .map(Node::strings)
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect();
        (!items.is_empty()).then_some(items)
    };
    if set("nonResourceURLs").is_some() {
        return None;
    }
    let resources = rule.get("resources").map(Node::items).unwrap_or_default();
    let names = if resources.is_empty() {
        None
    } else {
        let mut any_name = false;
        let mut names = BTreeSet::new();
        let mut matched = false;
        for group_resources in resources {
            let group = group_resources
                .get("group")
                .and_then(Node::as_str)
                .unwrap_or("");
            if !group.is_empty() {
                continue;
            }
            let listed = group_resources
                .get("resources")
                .map(Node::strings)
                .unwrap_or_default();
            let hit = listed.is_empty()
                || listed
                    .iter()
                    .any(|r| matches!(*r, "secrets" | "*" | "secrets/*"));
            if !hit {
                continue;
            }
            matched = true;
            let resource_names = group_resources
                .get("resourceNames")
                .map(Node::strings)
                .unwrap_or_default();
            if resource_names.is_empty() {
                any_name = true;
            }
            names.extend(resource_names.into_iter().map(str::to_owned));
        }
        if !matched {
            return None;
        }
        (!any_name).then_some(names)
    };
    Some(Scope {
        users: set("users"),
        groups: set("userGroups"),
        verbs: set("verbs"),
        namespaces: set("namespaces"),
        names,
    })
}
