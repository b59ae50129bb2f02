//! ClusterRole aggregation, as the `clusterrole-aggregation-controller`
//! (`pkg/controller/clusterroleaggregation`) would leave it once settled.
//!
//! # Policy
//!
//! For a ClusterRole with an `aggregationRule`, upstream's controller sets `rules` to: for each
//! selector in order, for each other ClusterRole whose labels match (sorted by name, the role
//! itself skipped), each of its rules not already present. It reruns whenever any ClusterRole
//! changes, so roles that aggregate aggregated roles (`admin` ← `edit` ← `view`) settle on a
//! fixed point.
//!
//! Ward has no controller: the index computes that fixed point when it is built. The stored
//! `rules` of an aggregated role are ignored and the computation starts from empty rules, so
//! the result is the least fixed point: stale rules left in a stored object, or rules that
//! only a selector cycle could keep alive, grant nothing. Rules only grow from round to round,
//! so the loop ends; each round settles at least one more level of nesting, so
//! `aggregated roles + 1` rounds are enough, and a failure to settle within them is reported
//! rather than looped on.

use std::collections::HashSet;

use crate::index::RbacWarning;
use crate::policy::{ClusterRole, PolicyRule};

/// Replaces the rules of every aggregated role in `roles` (sorted by name, names unique) with
/// the aggregated rules.
pub(crate) fn aggregate(roles: &mut [ClusterRole], warnings: &mut Vec<RbacWarning>) {
    let aggregated: Vec<usize> = roles
        .iter()
        .enumerate()
        .filter(|(_, role)| role.aggregation_rule.is_some())
        .map(|(i, _)| i)
        .collect();
    if aggregated.is_empty() {
        return;
    }
    for &i in &aggregated {
        roles[i].rules.clear();
    }
    let max_rounds = aggregated.len() + 1;
    for _ in 0..max_rounds {
        let mut changed = false;
        for &i in &aggregated {
            let rules = aggregated_rules(roles, i);
            if rules != roles[i].rules {
                roles[i].rules = rules;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
    // Unreachable by the argument in the module docs; reported rather than trusted.
    warnings.push(RbacWarning::AggregationNotSettled {
        names: aggregated.iter().map(|&i| roles[i].name.clone()).collect(),
    });
}

/// One controller sync of `roles[target]`.
fn aggregated_rules(roles: &[ClusterRole], target: usize) -> Vec<PolicyRule> {
    let Some(rule) = &roles[target].aggregation_rule else {
        return roles[target].rules.clone();
    };
    let mut rules = Vec::new();
    let mut seen: HashSet<&PolicyRule> = HashSet::new();
    for selector in &rule.cluster_role_selectors {
        for (i, source) in roles.iter().enumerate() {
            if i == target || !selector.matches(&source.labels) {
                continue;
            }
            for rule in &source.rules {
                if seen.insert(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ward_api::selector::LabelSelector;

    use super::*;
    use crate::policy::AggregationRule;

    fn role(name: &str, labels: &[(&str, &str)], selects: Option<&str>, verb: &str) -> ClusterRole {
        ClusterRole {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            aggregation_rule: selects.map(|s| AggregationRule {
                cluster_role_selectors: vec![LabelSelector::parse(s).unwrap()],
            }),
            rules: vec![PolicyRule::new([verb]).groups([""]).resources(["pods"])],
        }
    }

    #[test]
    fn settles_nested_aggregation_in_any_name_order() {
        // a ← b ← c ← d, with names in the order that needs the most rounds.
        let mut roles = vec![
            role("a", &[], Some("to-a"), "stale"),
            role("b", &[("to-a", "")], Some("to-b"), "stale"),
            role("c", &[("to-b", "")], Some("to-c"), "stale"),
            role("d", &[("to-c", "")], None, "get"),
        ];
        let mut warnings = Vec::new();
        aggregate(&mut roles, &mut warnings);
        assert!(warnings.is_empty());
        for role in &roles {
            assert_eq!(
                role.rules,
                vec![PolicyRule::new(["get"]).groups([""]).resources(["pods"])]
            );
        }
    }

    #[test]
    fn a_cycle_keeps_only_real_rules() {
        let mut roles = vec![
            role("a", &[("x", "")], Some("y"), "stale-a"),
            role("b", &[("y", "")], Some("x"), "stale-b"),
        ];
        let mut warnings = Vec::new();
        aggregate(&mut roles, &mut warnings);
        assert!(warnings.is_empty());
        assert!(roles.iter().all(|r| r.rules.is_empty()));
    }

    #[test]
    fn deduplicates_and_skips_itself() {
        let mut roles = vec![
            role("agg", &[("x", "")], Some("x"), "stale"),
            role("one", &[("x", "")], None, "get"),
            role("two", &[("x", "")], None, "get"),
            role("three", &[("x", "")], None, "list"),
        ];
        aggregate(&mut roles, &mut Vec::new());
        let verbs: Vec<&str> = roles[0].rules.iter().map(|r| r.verbs[0].as_str()).collect();
        // Sources in name order: one, three, two.
        assert_eq!(verbs, ["get", "list"]);
    }
}
