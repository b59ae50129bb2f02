//! `audit-logs-secret-values`: rule order, catch-alls, partial protection.

use ward_scan::{Rule, Severity, Threat};

use crate::{fires, scan_fixtures, silent};

fn policy(rules: &str) -> String {
    format!("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n{rules}")
}

#[test]
fn catch_all_request_response_leaks() {
    let found = fires(
        &policy("  - level: RequestResponse\n"),
        Rule::AuditLogsSecretValues,
        1,
    );
    assert_eq!(found[0].severity, Severity::High);
    assert_eq!(found[0].threat, Threat::AtRest);
    assert_eq!(found[0].path, "rules[0]");
    assert!(
        found[0]
            .message
            .starts_with("catch-all rule at level RequestResponse")
    );
    assert!(found[0].message.contains("on every verb"));
    assert!(found[0].message.contains("no earlier rule"));
}

#[test]
fn an_earlier_metadata_rule_for_secrets_protects() {
    for first in [
        "  - level: Metadata\n    resources: [{group: \"\", resources: [secrets]}]\n",
        "  - level: None\n    resources: [{group: \"\", resources: [\"*\"]}]\n",
        "  - level: Metadata\n    resources: [{group: \"\"}]\n",
        "  - level: Metadata\n    resources: [{group: \"\", resources: [secrets/*]}]\n",
    ] {
        let text = policy(&format!(
            "{first}  - level: RequestResponse\n    resources: [{{group: \"\", resources: [secrets, configmaps]}}]\n  - level: Request\n"
        ));
        silent(&text, Rule::AuditLogsSecretValues);
    }
}

#[test]
fn a_later_metadata_rule_does_not_protect() {
    let text = policy(
        "  - level: Request\n  - level: Metadata\n    resources: [{group: \"\", resources: [secrets]}]\n",
    );
    let found = fires(&text, Rule::AuditLogsSecretValues, 1);
    assert!(found[0].message.contains("on create, update, patch"));
}

#[test]
fn narrower_earlier_rules_protect_only_part() {
    let text = policy(
        "
  - level: Metadata
    namespaces: [kube-system]
    resources: [{group: \"\", resources: [secrets]}]
  - level: None
    users: [\"system:kube-controller-manager\"]
    verbs: [get, list, watch]
  - level: RequestResponse
    users: [\"system:kube-controller-manager\"]
    verbs: [get]
    resources: [{group: \"\", resources: [secrets]}]
  - level: RequestResponse
    resources: [{group: \"\", resources: [secrets]}]
",
    );
    let found = fires(&text, Rule::AuditLogsSecretValues, 1);
    assert_eq!(found[0].path, "rules[3]");
    assert!(
        found[0].message.contains("rules[0], rules[1]"),
        "{}",
        found[0].message
    );
}

#[test]
fn request_level_on_read_verbs_only_logs_no_bodies() {
    let text = policy(
        "  - level: Request\n    verbs: [get, list, watch]\n    resources: [{group: \"\", resources: [secrets]}]\n",
    );
    silent(&text, Rule::AuditLogsSecretValues);
    let text = policy(
        "  - level: Request\n    verbs: [get, update]\n    resources: [{group: \"\", resources: [secrets]}]\n",
    );
    let found = fires(&text, Rule::AuditLogsSecretValues, 1);
    assert!(
        found[0].message.contains("on update;"),
        "{}",
        found[0].message
    );
}

#[test]
fn other_groups_non_resource_urls_and_named_secrets() {
    // Audit groups are exact: "apps" does not match core secrets.
    silent(
        &policy("  - level: RequestResponse\n    resources: [{group: apps}]\n"),
        Rule::AuditLogsSecretValues,
    );
    silent(
        &policy("  - level: RequestResponse\n    nonResourceURLs: [\"/api*\"]\n"),
        Rule::AuditLogsSecretValues,
    );
    let found = fires(
        &policy(
            "  - level: RequestResponse\n    resources: [{group: \"\", resources: [secrets], resourceNames: [app-config]}]\n",
        ),
        Rule::AuditLogsSecretValues,
        1,
    );
    assert_eq!(found[0].severity, Severity::Medium);
}

#[test]
fn docs_policy_with_reordered_secret_rule() {
    let report = scan_fixtures(&["control-plane/audit-policy.yaml"]);
    let found: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == Rule::AuditLogsSecretValues)
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "rules[4]");
    assert_eq!(found[0].line, Some(30));
}
