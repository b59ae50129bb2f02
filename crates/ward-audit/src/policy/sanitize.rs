//! Keeping secret values out of the audit log, whatever the policy says.
//!
//! # Policy
//!
//! At `Request` or `RequestResponse`, kube-apiserver writes request and response bodies into the
//! log. For the resources below those bodies are credentials: Secret `data`/`stringData`,
//! ConfigMap `data`/`binaryData` (often used for credentials in practice), a TokenReview's
//! bearer token, a TokenRequest's issued token. Upstream leaves this to the policy author (its
//! example policy starts with a `Metadata` rule for secrets and configmaps); Ward enforces it.
//!
//! [`Policy::sanitize`] walks the rules in order. A rule at `Request` or above that can match
//! a request for a sensitive resource (by its `resources`, including `*`, `*/token` and
//! `serviceaccounts/*` wildcards, or because it has no `resources` filter and so matches every
//! resource request) gets a new `Metadata` rule inserted before it. The new rule has the same
//! `users`, `userGroups`, `verbs`, `namespaces`, `omitStages` and `omitManagedFields` and is
//! restricted to the sensitive resources the rule matched (with the rule's `resourceNames`), so
//! every other resource keeps the level the author chose. Nothing is inserted when an earlier
//! rule at `Metadata` or `None` already catches every such request (it is at least as broad in
//! each field), so a policy that already follows upstream's advice is left alone, and
//! sanitizing twice changes nothing.
//!
//! Group matching is exact in audit policies (there is no group wildcard), so a rule for group
//! `apps` never matches secrets. [`crate::Event`] adds a second line of defence for anything a
//! policy cannot express, such as secrets embedded in other responses.

use super::{GroupResources, Level, Policy, PolicyRule, resource_matches};

/// A resource whose bodies hold credentials.
struct Sensitive {
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    /// The `resources` entry that names it in a policy.
    pattern: &'static str,
}

const SENSITIVE: &[Sensitive] = &[
    Sensitive {
        group: "",
        resource: "secrets",
        subresource: "",
        pattern: "secrets",
    },
    Sensitive {
        group: "",
        resource: "configmaps",
        subresource: "",
        pattern: "configmaps",
    },
    Sensitive {
        group: "",
        resource: "serviceaccounts",
        subresource: "token",
        pattern: "serviceaccounts/token",
    },
    Sensitive {
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        subresource: "",
        pattern: "tokenreviews",
    },
];

impl Policy {
    /// Rewrites the policy so that no rule records bodies of secrets, configmaps, token reviews
    /// or token requests (`serviceaccounts/token`), inserting a `Metadata` rule for those
    /// resources before each rule that would (see the module docs of `sanitize`). Returns one
    /// warning per rule that was guarded, naming its index in the policy as loaded.
    pub fn sanitize(&mut self) -> Vec<String> {
        let original = std::mem::take(&mut self.rules);
        let mut rules = Vec::with_capacity(original.len());
        let mut warnings = Vec::new();
        for (index, rule) in original.into_iter().enumerate() {
            if let Some(guard) = guard_for(&rules, &rule) {
                let mut names: Vec<String> = Vec::new();
                for gr in &guard.resources {
                    for r in &gr.resources {
                        let name = if gr.group.is_empty() {
                            r.clone()
                        } else {
                            format!("{r}.{}", gr.group)
                        };
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                warnings.push(format!(
                    "audit policy rules[{index}] (level {}) would record request or response \
                     bodies of {}; inserted a Metadata rule for them before it",
                    rule.level,
                    names.join(", ")
                ));
                rules.push(guard);
            }
            rules.push(rule);
        }
        self.rules = rules;
        warnings
    }
}

/// The `Metadata` rule to insert before `rule`, if `rule` can record bodies of a sensitive
/// resource that no rule in `earlier` already caps at `Metadata`.
fn guard_for(earlier: &[PolicyRule], rule: &PolicyRule) -> Option<PolicyRule> {
    if rule.level < Level::Request || rule.non_resource_only() {
        return None;
    }
    let mut resources: Vec<GroupResources> = Vec::new();
    for target in SENSITIVE {
        for names in matched_names(rule, target) {
            if earlier.iter().any(|e| caps(e, rule, target, &names)) {
                continue;
            }
            match resources
                .iter_mut()
                .find(|gr| gr.group == target.group && gr.resource_names == names)
            {
                Some(gr) => {
                    if !gr.resources.iter().any(|r| r == target.pattern) {
                        gr.resources.push(target.pattern.to_owned());
                    }
                }
                None => resources.push(GroupResources {
                    group: target.group.to_owned(),
                    resources: vec![target.pattern.to_owned()],
                    resource_names: names,
                }),
            }
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(PolicyRule {
        level: Level::Metadata,
        users: rule.users.clone(),
        user_groups: rule.user_groups.clone(),
        verbs: rule.verbs.clone(),
        resources,
        namespaces: rule.namespaces.clone(),
        non_resource_urls: Vec::new(),
        omit_stages: rule.omit_stages.clone(),
        omit_managed_fields: rule.omit_managed_fields,
    })
}

/// The `resourceNames` restrictions under which `rule`'s resource filter matches `target`: one
/// entry per matching `resources[]` item (an empty list is "every name"); empty if none match.
fn matched_names(rule: &PolicyRule, target: &Sensitive) -> Vec<Vec<String>> {
    if rule.resources.is_empty() {
        return vec![Vec::new()];
    }
    rule.resources
        .iter()
        .filter(|gr| group_resources_match(gr, target))
        .map(|gr| gr.resource_names.clone())
        .collect()
}

fn group_resources_match(gr: &GroupResources, target: &Sensitive) -> bool {
    gr.group == target.group
        && (gr.resources.is_empty()
            || gr
                .resources
                .iter()
                .any(|p| resource_matches(p, target.resource, target.subresource)))
}

/// Whether `earlier`, at `Metadata` or `None`, matches every request for `target` (with one of
/// `names`, or any name if `names` is empty) that `rule` matches.
fn caps(earlier: &PolicyRule, rule: &PolicyRule, target: &Sensitive, names: &[String]) -> bool {
    if earlier.level > Level::Metadata || earlier.non_resource_only() {
        return false;
    }
    let at_least_as_broad = |wide: &[String], narrow: &[String]| {
        wide.is_empty() || (!narrow.is_empty() && narrow.iter().all(|n| wide.contains(n)))
    };
    at_least_as_broad(&earlier.users, &rule.users)
        && at_least_as_broad(&earlier.user_groups, &rule.user_groups)
        && at_least_as_broad(&earlier.verbs, &rule.verbs)
        && at_least_as_broad(&earlier.namespaces, &rule.namespaces)
        && (earlier.resources.is_empty()
            || earlier.resources.iter().any(|gr| {
                group_resources_match(gr, target) && at_least_as_broad(&gr.resource_names, names)
            }))
}
