//! Escalation prevention: a user may only grant permissions they hold.
//!
//! Follows `component-helpers/auth/rbac/validation/policy_comparator.go` (`Covers`),
//! `pkg/registry/rbac/validation/rule.go` (`ConfirmNoEscalation`),
//! `pkg/registry/rbac/validation/policy_compact.go` (`CompactRules`) and
//! `pkg/registry/rbac/escalation_check.go`.
//!
//! # Policy
//!
//! Writing a Role or ClusterRole is allowed when the user is in `system:masters`
//! ([`escalation_allowed`]), or holds `escalate` on that role
//! ([`RbacIndex::role_escalation_authorized`]), or already holds every rule of the new role in
//! the role's namespace ([`RbacIndex::confirm_no_escalation`]). Setting an `aggregationRule`
//! additionally needs [`full_authority`], since it can gather anything.
//!
//! Writing a RoleBinding or ClusterRoleBinding is allowed when the user is in
//! `system:masters`, or holds `bind` on the referenced role
//! ([`RbacIndex::binding_authorized`]), or already holds every rule of the referenced role
//! ([`RbacIndex::role_ref_rules`] then [`RbacIndex::confirm_no_escalation`]) in the binding's
//! namespace.
//!
//! "Holds" is [`covers`]: every requested rule is broken down into single (group, resource,
//! verb, name) or (URL, verb) tuples, and each tuple must be covered by one owner rule. The
//! comparison is syntactic, like upstream: a requested `*` is covered only by an owned `*`,
//! never by a list that happens to name everything, and a requested rule without resource
//! names is not covered by an owned rule that has some.

use std::collections::{BTreeSet, HashMap};

use crate::evaluation::ALL;
use crate::go_fmt::{quote, quote_list};
use crate::index::RbacIndex;
use crate::policy::{GROUP_NAME, PolicyRule, RoleRef, RoleRefKind};
use crate::request::{Attributes, SYSTEM_PRIVILEGED_GROUP, UserInfo};

/// A user tried to grant permissions they do not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EscalationError {
    /// Some requested rules are not covered by the user's own. The message is upstream's:
    /// `user "bob" (groups=["g1" "system:authenticated"]) is attempting to grant RBAC
    /// permissions not currently held:` followed by one compact rule per line.
    #[error("{}", not_held_message(.user, .groups, .missing, .resolution_errors))]
    NotHeld {
        /// The user name.
        user: String,
        /// The user's groups.
        groups: Vec<String>,
        /// The uncovered rules, compacted (rules differing only by verb merged).
        missing: Vec<PolicyRule>,
        /// Role references that could not be resolved while collecting the user's rules.
        resolution_errors: Vec<String>,
    },
}

/// Whether `owner` covers every rule of `servant` (upstream's `Covers`).
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> bool {
    servant
        .iter()
        .flat_map(breakdown_rule)
        .all(|subrule| owner.iter().any(|o| rule_covers(o, &subrule)))
}

/// The parts of `servant` that `owner` does not cover, broken down into single-verb,
/// single-resource, single-name rules; empty if `owner` covers `servant`.
pub fn uncovered_rules(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown_rule)
        .filter(|subrule| !owner.iter().any(|o| rule_covers(o, subrule)))
        .collect()
}

/// Checks that `owner_rules` (the user's rules, from [`RbacIndex::resolve_rules`]) cover
/// `requested`: upstream's `ConfirmNoEscalation` without the rule lookup.
///
/// # Errors
///
/// [`EscalationError::NotHeld`] listing the uncovered rules.
pub fn confirm_no_escalation(
    user: &UserInfo,
    owner_rules: &[PolicyRule],
    requested: &[PolicyRule],
) -> Result<(), EscalationError> {
    check(user, owner_rules, requested, Vec::new())
}

/// Whether the user is in `system:masters`, which may grant anything (upstream's
/// `EscalationAllowed`).
pub fn escalation_allowed(user: &UserInfo) -> bool {
    user.in_group(SYSTEM_PRIVILEGED_GROUP)
}

/// The rules a user must hold to create or update a ClusterRole with an `aggregationRule`:
/// `*` on every resource and every non-resource URL (upstream's `fullAuthority`; its error is
/// `must have cluster-admin privileges to use the aggregationRule`).
pub fn full_authority() -> Vec<PolicyRule> {
    vec![
        PolicyRule::new([ALL]).groups([ALL]).resources([ALL]),
        PolicyRule::new([ALL]).urls([ALL]),
    ]
}

// === impl RbacIndex ===

impl RbacIndex {
    /// Checks that `user` holds every rule of `requested` in `namespace` (the namespace of the
    /// Role or RoleBinding being written, empty for cluster-scoped objects): upstream's
    /// `ConfirmNoEscalation`.
    ///
    /// # Errors
    ///
    /// [`EscalationError::NotHeld`] listing the uncovered rules, and any role references that
    /// could not be resolved while collecting the user's rules.
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        requested: &[PolicyRule],
    ) -> Result<(), EscalationError> {
        let resolved = self.resolve_rules(user, namespace);
        let errors = resolved.errors.iter().map(ToString::to_string).collect();
        check(user, &resolved.rules, requested, errors)
    }

    /// Whether `user` may bind `role_ref` in a binding in `binding_namespace` (empty for a
    /// ClusterRoleBinding) without holding its rules: the `bind` verb on the role (upstream's
    /// `BindingAuthorized`).
    pub fn binding_authorized(
        &self,
        user: &UserInfo,
        role_ref: &RoleRef,
        binding_namespace: &str,
    ) -> bool {
        let resource = role_ref.kind.resource();
        let attributes = Attributes::resource(user.clone(), "bind", &role_ref.api_group, resource)
            .in_namespace(binding_namespace)
            .with_name(&role_ref.name);
        self.authorize(&attributes).is_allow()
    }

    /// Whether `user` may write the role `namespace/name` of this kind without holding its
    /// rules: the `escalate` verb on it (upstream's `RoleEscalationAuthorized`).
    pub fn role_escalation_authorized(
        &self,
        user: &UserInfo,
        kind: RoleRefKind,
        namespace: &str,
        name: &str,
    ) -> bool {
        let attributes =
            Attributes::resource(user.clone(), "escalate", GROUP_NAME, kind.resource())
                .in_namespace(namespace)
                .with_name(name);
        self.authorize(&attributes).is_allow()
    }
}

// === helpers ===

fn check(
    user: &UserInfo,
    owner_rules: &[PolicyRule],
    requested: &[PolicyRule],
    resolution_errors: Vec<String>,
) -> Result<(), EscalationError> {
    let missing = uncovered_rules(owner_rules, requested);
    if missing.is_empty() {
        return Ok(());
    }
    Err(EscalationError::NotHeld {
        user: user.username.clone(),
        groups: user.groups.clone(),
        missing: compact_rules(&missing),
        resolution_errors,
    })
}

fn not_held_message(
    user: &str,
    groups: &[String],
    missing: &[PolicyRule],
    resolution_errors: &[String],
) -> String {
    // `sets.NewString` then `List()`: sorted and de-duplicated.
    let descriptions: BTreeSet<String> = missing.iter().map(PolicyRule::compact_string).collect();
    let mut message = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        quote(user),
        quote_list(groups),
        descriptions.into_iter().collect::<Vec<_>>().join("\n"),
    );
    if !resolution_errors.is_empty() {
        // `fmt.Sprintf("%v", []error{aggregate})`.
        message.push_str(&format!(
            "; resolution errors: [{}]",
            crate::go_fmt::aggregate(resolution_errors)
        ));
    }
    message
}

/// Upstream's `BreakdownRule`: one rule per (group, resource, verb[, name]) and per
/// (URL, verb).
pub(crate) fn breakdown_rule(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut subrules = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule::new([verb.as_str()])
                    .groups([group.as_str()])
                    .resources([resource.as_str()]);
                if rule.resource_names.is_empty() {
                    subrules.push(base);
                } else {
                    for name in &rule.resource_names {
                        subrules.push(base.clone().names([name.as_str()]));
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            subrules.push(PolicyRule::new([verb.as_str()]).urls([url.as_str()]));
        }
    }
    subrules
}

/// Upstream's `ruleCovers`: whether `owner` covers `subrule` (one verb, resource, name).
fn rule_covers(owner: &PolicyRule, subrule: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &subrule.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &subrule.api_groups);
    let resources = resource_covers_all(&owner.resources, &subrule.resources);
    let urls = non_resource_urls_cover_all(&owner.non_resource_urls, &subrule.non_resource_urls);
    let names = if subrule.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &subrule.resource_names)
    };
    verbs && groups && resources && names && urls
}

fn has(set: &[String], element: &str) -> bool {
    set.iter().any(|s| s == element)
}

fn has_all(set: &[String], contains: &[String]) -> bool {
    contains.iter().all(|c| has(set, c))
}

fn resource_covers_all(set: &[String], covers: &[String]) -> bool {
    if has(set, ALL) || has_all(set, covers) {
        return true;
    }
    covers.iter().all(|path| {
        has(set, path)
            || path
                .split_once('/')
                .is_some_and(|(_, subresource)| has(set, &format!("*/{subresource}")))
    })
}

fn non_resource_urls_cover_all(set: &[String], covers: &[String]) -> bool {
    covers
        .iter()
        .all(|path| set.iter().any(|owner| non_resource_url_covers(owner, path)))
}

pub(crate) fn non_resource_url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

/// Upstream's `CompactRules`: merges rules with one group, one resource, at most one name and
/// no URLs that differ only by verb. Other rules are kept as they are. Upstream returns the
/// merged rules in map order; here they follow the order of first appearance.
pub(crate) fn compact_rules(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut compacted: Vec<PolicyRule> = Vec::with_capacity(rules.len());
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut positions: HashMap<(&str, &str, Option<&str>), usize> = HashMap::new();
    for rule in rules {
        match simple_resource(rule) {
            Some(key) => match positions.get(&key) {
                Some(&i) => simple[i].verbs.extend(rule.verbs.iter().cloned()),
                None => {
                    positions.insert(key, simple.len());
                    simple.push(rule.clone());
                }
            },
            None => compacted.push(rule.clone()),
        }
    }
    compacted.extend(simple);
    compacted
}

/// Upstream's `isSimpleResourceRule`: the (group, resource, name) key of a rule with exactly
/// one group and one resource, at most one name and no non-resource URLs.
fn simple_resource(rule: &PolicyRule) -> Option<(&str, &str, Option<&str>)> {
    if rule.resource_names.len() > 1 || !rule.non_resource_urls.is_empty() {
        return None;
    }
    match (rule.api_groups.as_slice(), rule.resources.as_slice()) {
        ([group], [resource]) => Some((
            group.as_str(),
            resource.as_str(),
            rule.resource_names.first().map(String::as_str),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Ported from `policy_compact_test.go` (`TestCompactRules`, `TestIsSimpleResourceRule`)
    //! and `policy_comparator_test.go` (`TestNonResourceURLCovers`). The `Covers` cases are
    //! in `tests/vectors/covers.json`.

    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        PolicyRule::new(verbs.iter().copied())
            .groups(groups.iter().copied())
            .resources(resources.iter().copied())
            .names(names.iter().copied())
    }

    fn sorted(mut rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
        rules.sort_by_key(ToString::to_string);
        rules
    }

    #[test]
    fn compact_rules_upstream_cases() {
        let cases: Vec<(&str, Vec<PolicyRule>, Vec<PolicyRule>)> = vec![
            ("empty", vec![], vec![]),
            (
                "simple",
                vec![
                    rule(&["get"], &[""], &["builds"], &[]),
                    rule(&["list"], &[""], &["builds"], &[]),
                    rule(&["update", "patch"], &[""], &["builds"], &[]),
                    rule(&["create"], &["extensions"], &["daemonsets"], &[]),
                    rule(&["delete"], &["extensions"], &["daemonsets"], &[]),
                    rule(&["patch"], &["extensions"], &["daemonsets"], &[""]),
                    rule(&["get"], &["extensions"], &["daemonsets"], &["foo"]),
                    rule(&["list"], &["extensions"], &["daemonsets"], &["foo"]),
                    rule(&["educate"], &[""], &["dolphins"], &[]),
                    rule(&[], &[""], &["pirates"], &[]),
                    rule(&[], &[""], &["pods"], &[]),
                    rule(&["create"], &[""], &["pods"], &[]),
                ],
                vec![
                    rule(&["create", "delete"], &["extensions"], &["daemonsets"], &[]),
                    rule(&["patch"], &["extensions"], &["daemonsets"], &[""]),
                    rule(&["get", "list"], &["extensions"], &["daemonsets"], &["foo"]),
                    rule(&["get", "list", "update", "patch"], &[""], &["builds"], &[]),
                    rule(&["educate"], &[""], &["dolphins"], &[]),
                    rule(&[], &[""], &["pirates"], &[]),
                    rule(&["create"], &[""], &["pods"], &[]),
                ],
            ),
            (
                "complex multi-group",
                vec![
                    rule(&["get"], &["", "builds.openshift.io"], &["builds"], &[]),
                    rule(&["list"], &["", "builds.openshift.io"], &["builds"], &[]),
                ],
                vec![
                    rule(&["get"], &["", "builds.openshift.io"], &["builds"], &[]),
                    rule(&["list"], &["", "builds.openshift.io"], &["builds"], &[]),
                ],
            ),
            (
                "complex multi-resource",
                vec![
                    rule(&["get"], &[""], &["builds", "images"], &[]),
                    rule(&["list"], &[""], &["builds", "images"], &[]),
                ],
                vec![
                    rule(&["get"], &[""], &["builds", "images"], &[]),
                    rule(&["list"], &[""], &["builds", "images"], &[]),
                ],
            ),
            (
                "complex named-resource",
                vec![
                    rule(&["get"], &[""], &["builds"], &["mybuild"]),
                    rule(&["list"], &[""], &["builds"], &["mybuild2"]),
                ],
                vec![
                    rule(&["get"], &[""], &["builds"], &["mybuild"]),
                    rule(&["list"], &[""], &["builds"], &["mybuild2"]),
                ],
            ),
            (
                "complex non-resource",
                vec![
                    rule(&["get"], &[""], &["builds"], &[]).urls(["/"]),
                    rule(&["get"], &[""], &["builds"], &[]).urls(["/foo"]),
                ],
                vec![
                    rule(&["get"], &[""], &["builds"], &[]).urls(["/"]),
                    rule(&["get"], &[""], &["builds"], &[]).urls(["/foo"]),
                ],
            ),
        ];
        for (name, rules, expected) in cases {
            let compacted = compact_rules(&rules);
            assert!(
                covers(&compacted, &rules),
                "{name}: compacted does not cover original"
            );
            assert!(
                covers(&rules, &compacted),
                "{name}: original does not cover compacted"
            );
            assert_eq!(sorted(compacted), sorted(expected), "{name}");
        }
    }

    #[test]
    fn is_simple_resource_rule_upstream_cases() {
        type Key<'a> = Option<(&'a str, &'a str, Option<&'a str>)>;
        let cases: Vec<(&str, PolicyRule, Key<'_>)> = vec![
            (
                "simple, no verbs",
                rule(&[], &[""], &["builds"], &[]),
                Some(("", "builds", None)),
            ),
            (
                "simple, one verb",
                rule(&["get"], &[""], &["builds"], &[]),
                Some(("", "builds", None)),
            ),
            (
                "simple, one empty resource name",
                rule(&["get"], &[""], &["builds"], &[""]),
                Some(("", "builds", Some(""))),
            ),
            (
                "simple, one resource name",
                rule(&["get"], &[""], &["builds"], &["foo"]),
                Some(("", "builds", Some("foo"))),
            ),
            (
                "simple, multi verb",
                rule(&["get", "list"], &[""], &["builds"], &[]),
                Some(("", "builds", None)),
            ),
            ("complex, empty", PolicyRule::default(), None),
            (
                "complex, no group",
                rule(&["get"], &[], &["builds"], &[]),
                None,
            ),
            (
                "complex, multi group",
                rule(&["get"], &["a", "b"], &["builds"], &[]),
                None,
            ),
            (
                "complex, no resource",
                rule(&["get"], &[""], &[], &[]),
                None,
            ),
            (
                "complex, multi resource",
                rule(&["get"], &[""], &["builds", "images"], &[]),
                None,
            ),
            (
                "complex, resource names",
                rule(&["get"], &[""], &["builds"], &["foo", "bar"]),
                None,
            ),
            (
                "complex, non-resource urls",
                rule(&["get"], &[""], &["builds"], &[]).urls(["/"]),
                None,
            ),
        ];
        for (name, rule, expected) in cases {
            assert_eq!(simple_resource(&rule), expected, "{name}");
        }
    }

    #[test]
    fn non_resource_url_covers_upstream_cases() {
        let cases = [
            ("*", "", true),
            ("*", "/", true),
            ("*", "/api", true),
            ("/*", "", false),
            ("/*", "/", true),
            ("/*", "/foo", true),
            ("/api", "/api", true),
            ("/apis", "/api", false),
            ("/api/v1", "/api", false),
            ("/api/v1", "/api/v1", true),
            ("/api/*", "/api/v1", true),
            ("/api/*", "/api", false),
            ("/api/*/*", "/api/v1", false),
            ("/*/v1/*", "/api/v1", false),
        ];
        for (owner, requested, want) in cases {
            assert_eq!(
                non_resource_url_covers(owner, requested),
                want,
                "{owner} {requested}"
            );
        }
    }

    #[test]
    fn error_message_is_upstream_format() {
        let user = UserInfo::new("bob").with_groups(["g1", "system:authenticated"]);
        let owner = [rule(&["get"], &[""], &["pods"], &[])];
        let requested = [
            rule(
                &["get", "delete", "update"],
                &[""],
                &["pods", "secrets"],
                &[],
            ),
            PolicyRule::new(["get"]).urls(["/metrics"]),
        ];
        let err = confirm_no_escalation(&user, &owner, &requested).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user \"bob\" (groups=[\"g1\" \"system:authenticated\"]) is attempting to grant RBAC \
             permissions not currently held:\n\
             {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\" \"update\"]}\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\" \"update\"]}\n\
             {NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
        );
        assert!(confirm_no_escalation(&user, &owner, &owner).is_ok());
        assert!(confirm_no_escalation(&user, &owner, &[]).is_ok());
    }
}
