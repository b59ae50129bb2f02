//! The data tables in `tests/vectors`, ported from upstream's tests (`source` names the Go test
//! each row comes from; `ward/` rows are Ward's own).

use serde_json::Value;
use ward_rbac::{PolicyRule, RbacIndex, covers, uncovered_rules};

use crate::{attributes, rules, vector};

#[test]
fn rule_allows_table() {
    let rows = vector("rule_allows.json");
    assert!(rows.len() > 100);
    let mut failures = Vec::new();
    for row in &rows {
        let rule = PolicyRule::from_value(&row["rule"]).unwrap();
        let request = attributes(&row["request"]);
        let expected = row["allowed"].as_bool().unwrap();
        if rule.allows(&request) != expected {
            failures.push(format!(
                "{}: {} {:?}",
                row["source"], row["rule"], row["request"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn covers_table() {
    let rows = vector("covers.json");
    for row in &rows {
        let source = &row["source"];
        let owner = rules(&row["owner"]);
        let servant = rules(&row["servant"]);
        assert_eq!(
            covers(&owner, &servant),
            row["covered"].as_bool().unwrap(),
            "{source}"
        );
        // Upstream compares the uncovered rules as a set.
        let mut got = uncovered_rules(&owner, &servant);
        let mut want = rules(&row["uncovered"]);
        got.sort();
        want.sort();
        assert_eq!(got, want, "{source}");
    }
}

#[test]
fn authorizer_table() {
    let cases = vector("authorizer.json");
    let mut checked = 0;
    for case in &cases {
        let source = &case["source"];
        let list = |key: &str| {
            case.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (index, warnings) = RbacIndex::build(
            &list("roles"),
            &list("clusterRoles"),
            &list("roleBindings"),
            &list("clusterRoleBindings"),
        );
        assert!(
            warnings
                .iter()
                .all(|w| matches!(w, ward_rbac::RbacWarning::RoleNotFound { .. })),
            "{source}: {warnings:?}"
        );
        for request in case["requests"].as_array().unwrap() {
            let decision = index.authorize(&attributes(request));
            assert_eq!(
                decision.is_allow(),
                request["allowed"].as_bool().unwrap(),
                "{source}: {request}: {decision:?}"
            );
            if let Some(reason) = request.get("reason").and_then(Value::as_str) {
                assert_eq!(decision.reason(), reason, "{source}: {request}");
            }
            checked += 1;
        }
    }
    assert!(checked > 50);
}
