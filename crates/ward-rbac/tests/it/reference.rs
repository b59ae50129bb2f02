//! Property tests: the indexed authorizer against a naive reference that scans every binding,
//! written from the upstream sources without sharing code with the crate.

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use serde_json::{Value, json};
use ward_rbac::{Attributes, Decision, PolicyRule, RbacIndex, SubjectKind, UserInfo, covers};

// === the model ===

#[derive(Clone, Debug)]
struct Rule {
    verbs: Vec<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
    urls: Vec<String>,
}

#[derive(Clone, Debug)]
struct Subj {
    kind: &'static str,
    name: String,
    namespace: String,
}

#[derive(Clone, Debug)]
struct Binding {
    namespace: String,
    name: String,
    role_kind: &'static str,
    role: String,
    subjects: Vec<Subj>,
}

#[derive(Clone, Debug)]
struct Policy {
    /// (namespace, name, rules); keys unique.
    roles: Vec<(String, String, Vec<Rule>)>,
    /// (name, rules); names unique.
    cluster_roles: Vec<(String, Vec<Rule>)>,
    /// Names unique per namespace.
    role_bindings: Vec<Binding>,
    /// Names unique.
    cluster_role_bindings: Vec<Binding>,
}

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(options).prop_map(str::to_owned)
}

fn subset(options: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    btree_set(pick(options), 0..=max).prop_map(|set| set.into_iter().collect())
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        subset(&["get", "list", "*"], 2),
        subset(&["", "apps", "*"], 2),
        subset(&["secrets", "pods", "pods/status", "*/status", "*"], 2),
        prop_oneof![3 => Just(Vec::new()), 1 => subset(&["a", "b"], 2)],
        prop_oneof![2 => Just(Vec::new()), 1 => subset(&["/api", "/api/*", "*", "/healthz"], 2)],
    )
        .prop_map(|(verbs, groups, resources, names, urls)| Rule {
            verbs,
            groups,
            resources,
            names,
            urls,
        })
}

fn subject() -> impl Strategy<Value = Subj> {
    (
        proptest::sample::select(&["User", "Group", "ServiceAccount"][..]),
        pick(&[
            "alice",
            "bob",
            "g1",
            "g2",
            "sa",
            "system:serviceaccount:ns1:sa",
        ]),
        pick(&["", "ns1", "ns2"]),
    )
        .prop_map(|(kind, name, namespace)| Subj {
            kind,
            name,
            namespace,
        })
}

fn binding(namespaced: bool) -> impl Strategy<Value = Binding> {
    (
        pick(&["ns1", "ns2"]),
        any::<bool>(),
        pick(&["r1", "r2", "c1", "c2", "c3", "missing"]),
        vec(subject(), 0..4),
    )
        .prop_map(
            move |(namespace, role_is_cluster, role, subjects)| Binding {
                namespace: if namespaced { namespace } else { String::new() },
                name: String::new(),
                role_kind: if role_is_cluster || !namespaced {
                    "ClusterRole"
                } else {
                    "Role"
                },
                role,
                subjects,
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        vec(proptest::option::of(vec(rule(), 0..3)), 4),
        vec(proptest::option::of(vec(rule(), 0..3)), 3),
        vec(binding(true), 0..5),
        vec(binding(false), 0..4),
    )
        .prop_map(
            |(roles, cluster_roles, mut role_bindings, mut cluster_role_bindings)| {
                let role_keys = [("ns1", "r1"), ("ns1", "r2"), ("ns2", "r1"), ("ns2", "r2")];
                let roles = roles
                    .into_iter()
                    .zip(role_keys)
                    .filter_map(|(rules, (ns, name))| {
                        rules.map(|r| (ns.to_owned(), name.to_owned(), r))
                    })
                    .collect();
                let cluster_roles = cluster_roles
                    .into_iter()
                    .zip(["c1", "c2", "c3"])
                    .filter_map(|(rules, name)| rules.map(|r| (name.to_owned(), r)))
                    .collect();
                // Unique names, in an order other than the name order.
                let count = role_bindings.len();
                for (i, b) in role_bindings.iter_mut().enumerate() {
                    b.name = format!("b{}", count - i);
                }
                let count = cluster_role_bindings.len();
                for (i, b) in cluster_role_bindings.iter_mut().enumerate() {
                    b.name = format!("crb{}", (i * 7 + 3) % (count + 5));
                }
                cluster_role_bindings.sort_by(|a, b| a.name.cmp(&b.name));
                cluster_role_bindings.dedup_by(|a, b| a.name == b.name);
                cluster_role_bindings.reverse();
                Policy {
                    roles,
                    cluster_roles,
                    role_bindings,
                    cluster_role_bindings,
                }
            },
        )
}

fn user() -> impl Strategy<Value = UserInfo> {
    (
        pick(&[
            "alice",
            "bob",
            "system:serviceaccount:ns1:sa",
            "system:serviceaccount:ns2:sa",
            "",
        ]),
        subset(&["g1", "g2", "alice"], 2),
    )
        .prop_map(|(name, groups)| UserInfo::new(name).with_groups(groups))
}

fn request() -> impl Strategy<Value = Attributes> {
    (
        user(),
        any::<bool>(),
        (
            pick(&["get", "list", "watch"]),
            pick(&["", "ns1", "ns2"]),
            pick(&["", "apps"]),
        ),
        (
            pick(&["secrets", "pods"]),
            pick(&["", "status"]),
            pick(&["", "a", "b"]),
        ),
        pick(&["/api", "/api/v1", "/healthz", "/apis"]),
    )
        .prop_map(
            |(user, resource_request, (verb, namespace, group), (resource, sub, name), path)| {
                Attributes {
                    user,
                    verb,
                    namespace,
                    api_group: group,
                    api_version: String::new(),
                    resource,
                    subresource: sub,
                    name,
                    resource_request,
                    path,
                }
            },
        )
}

// === to JSON, for the index ===

fn rule_json(rule: &Rule) -> Value {
    json!({
        "verbs": rule.verbs, "apiGroups": rule.groups, "resources": rule.resources,
        "resourceNames": rule.names, "nonResourceURLs": rule.urls,
    })
}

fn binding_json(binding: &Binding) -> Value {
    let subjects: Vec<Value> = binding
        .subjects
        .iter()
        .map(|s| json!({"kind": s.kind, "name": s.name, "namespace": s.namespace}))
        .collect();
    json!({
        "metadata": {"namespace": binding.namespace, "name": binding.name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": binding.role_kind, "name": binding.role},
        "subjects": subjects,
    })
}

fn build(policy: &Policy) -> RbacIndex {
    let roles: Vec<Value> = policy
        .roles
        .iter()
        .map(|(ns, name, rules)| {
            let rules: Vec<Value> = rules.iter().map(rule_json).collect();
            json!({"metadata": {"namespace": ns, "name": name}, "rules": rules})
        })
        .collect();
    let cluster_roles: Vec<Value> = policy
        .cluster_roles
        .iter()
        .map(|(name, rules)| {
            let rules: Vec<Value> = rules.iter().map(rule_json).collect();
            json!({"metadata": {"name": name}, "rules": rules})
        })
        .collect();
    let role_bindings: Vec<Value> = policy.role_bindings.iter().map(binding_json).collect();
    let cluster_role_bindings: Vec<Value> = policy
        .cluster_role_bindings
        .iter()
        .map(binding_json)
        .collect();
    let (index, warnings) = RbacIndex::build(
        &roles,
        &cluster_roles,
        &role_bindings,
        &cluster_role_bindings,
    );
    assert!(
        warnings
            .iter()
            .all(|w| matches!(w, ward_rbac::RbacWarning::RoleNotFound { .. })),
        "{warnings:?}"
    );
    index
}

// === the naive reference ===

fn rule_allows(rule: &Rule, a: &Attributes) -> bool {
    let verb = rule.verbs.iter().any(|v| v == "*" || *v == a.verb);
    if !a.resource_request {
        return verb
            && rule.urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || (u.ends_with('*') && a.path.starts_with(u.trim_end_matches('*')))
            });
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let group = rule.groups.iter().any(|g| g == "*" || *g == a.api_group);
    let resource = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
    });
    let name = rule.names.is_empty() || rule.names.contains(&a.name);
    verb && group && resource && name
}

fn applies(subject: &Subj, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind {
        "User" => subject.name == user.username,
        "Group" => user.groups.contains(&subject.name),
        _ => {
            let ns = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                &subject.namespace
            };
            !ns.is_empty()
                && user.username == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
    }
}

fn describe(subject: &Subj, binding_namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let ns = if subject.namespace.is_empty() {
            binding_namespace
        } else {
            &subject.namespace
        };
        format!("ServiceAccount \"{}/{ns}\"", subject.name)
    } else {
        format!("{} \"{}\"", subject.kind, subject.name)
    }
}

/// Every (description, rule) the user gets in the namespace, and the resolution errors.
fn reference_rules(
    policy: &Policy,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<(String, Rule)>, Vec<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut crbs: Vec<&Binding> = policy.cluster_role_bindings.iter().collect();
    crbs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rbs: Vec<&Binding> = policy
        .role_bindings
        .iter()
        .filter(|b| !namespace.is_empty() && b.namespace == namespace)
        .collect();
    rbs.sort_by(|a, b| a.name.cmp(&b.name));
    for (kind, bindings) in [("ClusterRoleBinding", crbs), ("RoleBinding", rbs)] {
        for binding in bindings {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| applies(s, user, &binding.namespace))
            else {
                continue;
            };
            let found = if binding.role_kind == "Role" {
                policy
                    .roles
                    .iter()
                    .find(|(ns, name, _)| *ns == binding.namespace && *name == binding.role)
                    .map(|(_, _, rules)| rules)
            } else {
                policy
                    .cluster_roles
                    .iter()
                    .find(|(name, _)| *name == binding.role)
                    .map(|(_, r)| r)
            };
            let Some(role_rules) = found else {
                errors.push(format!(
                    "{}.rbac.authorization.k8s.io \"{}\" not found",
                    binding.role_kind.to_lowercase(),
                    binding.role
                ));
                continue;
            };
            let name = if kind == "RoleBinding" {
                format!("{}/{}", binding.name, binding.namespace)
            } else {
                binding.name.clone()
            };
            let description = format!(
                "{kind} \"{name}\" of {} \"{}\" to {}",
                binding.role_kind,
                binding.role,
                describe(subject, &binding.namespace)
            );
            rules.extend(role_rules.iter().map(|r| (description.clone(), r.clone())));
        }
    }
    (rules, errors)
}

fn reference_authorize(policy: &Policy, a: &Attributes) -> Decision {
    let (rules, errors) = reference_rules(policy, &a.user, &a.namespace);
    if let Some((description, _)) = rules.iter().find(|(_, rule)| rule_allows(rule, a)) {
        return Decision::Allow {
            reason: format!("RBAC: allowed by {description}"),
        };
    }
    // Errors met before the first allowing rule are all of them here, since nothing allowed.
    let mut unique: Vec<&String> = Vec::new();
    for e in &errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    let reason = match unique.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!(
            "RBAC: [{}]",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Decision::NoOpinion { reason }
}

fn to_policy_rule(rule: &Rule) -> PolicyRule {
    PolicyRule::new(rule.verbs.iter().map(String::as_str))
        .groups(rule.groups.iter().map(String::as_str))
        .resources(rule.resources.iter().map(String::as_str))
        .names(rule.names.iter().map(String::as_str))
        .urls(rule.urls.iter().map(String::as_str))
}

fn user_for(subject: &ward_rbac::Subject) -> UserInfo {
    match subject.kind {
        SubjectKind::User => UserInfo::new(&subject.name),
        SubjectKind::Group => UserInfo::new("nobody-in-particular").with_groups([&subject.name]),
        SubjectKind::ServiceAccount => UserInfo::new(ward_rbac::service_account_username(
            &subject.namespace,
            &subject.name,
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn authorize_matches_the_reference(policy in policy(), requests in vec(request(), 1..24)) {
        let index = build(&policy);
        for request in &requests {
            prop_assert_eq!(index.authorize(request), reference_authorize(&policy, request), "{:?}", request);
        }
    }

    #[test]
    fn rules_for_matches_the_reference(policy in policy(), user in user(), namespace in pick(&["", "ns1", "ns2"])) {
        let index = build(&policy);
        let resolved = index.resolve_rules(&user, &namespace);
        let (rules, errors) = reference_rules(&policy, &user, &namespace);
        let rules: Vec<PolicyRule> = rules.iter().map(|(_, r)| to_policy_rule(r)).collect();
        prop_assert_eq!(&resolved.rules, &rules);
        let got: Vec<String> = resolved.errors.iter().map(ToString::to_string).collect();
        prop_assert_eq!(got, errors);
    }

    /// Every subject `allowed_subjects` reports is allowed, and every allowed user from the
    /// universe is matched by a reported subject.
    #[test]
    fn allowed_subjects_agree_with_authorize(policy in policy(), request in request()) {
        let index = build(&policy);
        let paths = index.allowed_subjects(&request);
        for path in &paths {
            let probe = Attributes { user: user_for(&path.subject), ..request.clone() };
            prop_assert!(index.authorize(&probe).is_allow(), "{:?}", path);
        }
        let users = ["alice", "bob", "system:serviceaccount:ns1:sa", "system:serviceaccount:ns2:sa", ""];
        for name in users {
            for groups in [&[][..], &["g1"][..], &["g2"][..], &["alice"][..]] {
                let user = UserInfo::new(name).with_groups(groups.iter().copied());
                let probe = Attributes { user: user.clone(), ..request.clone() };
                if index.authorize(&probe).is_allow() {
                    let matched = paths.iter().any(|p| match p.subject.kind {
                        SubjectKind::User => p.subject.name == user.username,
                        SubjectKind::Group => user.in_group(&p.subject.name),
                        SubjectKind::ServiceAccount => user.username
                            == ward_rbac::service_account_username(&p.subject.namespace, &p.subject.name),
                    });
                    prop_assert!(matched, "{:?} allowed but not reported", user);
                }
            }
        }
    }

    /// `covers` is sound: whatever the servant rule allows, the owner rules allow.
    #[test]
    fn covers_is_sound(owner in vec(rule(), 0..4), servant in rule(), requests in vec(request(), 32)) {
        let owner: Vec<PolicyRule> = owner.iter().map(to_policy_rule).collect();
        let servant = to_policy_rule(&servant);
        if covers(&owner, std::slice::from_ref(&servant)) {
            for request in &requests {
                if servant.allows(request) {
                    prop_assert!(owner.iter().any(|o| o.allows(request)), "{:?}", request);
                }
            }
        }
        // Reflexive, except for upstream's quirk: a URL subrule carries no resource names, and
        // an owner rule with names covers no URL (see `covers.json`).
        if servant.resource_names.is_empty() || servant.non_resource_urls.is_empty() {
            prop_assert!(covers(std::slice::from_ref(&servant), std::slice::from_ref(&servant)));
        }
    }
}
