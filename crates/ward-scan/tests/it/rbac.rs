//! `rbac-secret-read`, `rbac-implied-secret-access`, `rbac-escalation`.

use ward_scan::{Rule, Severity, Threat};

use crate::{fires, scan_one, silent};

fn role(kind: &str, rules: &str) -> String {
    let namespace = if kind == "Role" {
        "\n  namespace: team-a"
    } else {
        ""
    };
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: r{namespace}\nrules:\n{rules}"
    )
}

#[test]
fn secret_read_verbs_wildcards_and_names() {
    let rules = "
  - apiGroups: [\"\"]
    resources: [secrets]
    verbs: [list]
  - apiGroups: [\"\"]
    resources: [secrets]
    verbs: [get]
  - apiGroups: [\"\"]
    resources: [secrets]
    resourceNames: [app-tls]
    verbs: [get, watch]
  - apiGroups: [\"*\"]
    resources: [\"*\"]
    verbs: [\"*\"]
  - apiGroups: [\"\"]
    resources: [\"secrets\"]
    verbs: [create, update, delete]
  - apiGroups: [\"\"]
    resources: [configmaps, pods]
    verbs: [get, list, watch]
  - apiGroups: [apps]
    resources: [\"*\"]
    verbs: [\"*\"]
";
    let found = fires(&role("ClusterRole", rules), Rule::RbacSecretRead, 4);
    let summary: Vec<(&str, Severity)> = found
        .iter()
        .map(|f| (f.path.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            ("rules[0]", Severity::High),
            ("rules[3]", Severity::High),
            ("rules[1]", Severity::Medium),
            ("rules[2]", Severity::Low),
        ]
    );
    assert!(
        found[0]
            .message
            .contains("list and watch return every Secret with its values")
    );
    assert!(
        found[1]
            .message
            .contains("through `*` in apiGroups and resources and verbs")
    );
    assert!(found[3].message.contains("only the Secrets named app-tls"));
    assert!(found[0].message.contains("every namespace it is bound in"));
    assert_eq!(found[0].threat, Threat::Api);

    let namespaced = fires(
        &role(
            "Role",
            "  - {apiGroups: [\"\"], resources: [secrets], verbs: [watch]}\n",
        ),
        Rule::RbacSecretRead,
        1,
    );
    assert!(namespaced[0].message.contains("in namespace \"team-a\""));
}

#[test]
fn bindings_of_builtin_secret_readers() {
    let text = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-edit, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects:
  - {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
  - {kind: ServiceAccount, name: ci, namespace: tools}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: Group, name: everyone, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: cluster-admin
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: \"system:masters\", apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: admin
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
rules: [{apiGroups: [\"\"], resources: [secrets], verbs: [get, list, watch]}]
";
    let found = fires(text, Rule::RbacSecretRead, 1);
    assert_eq!(found[0].resource.name.as_deref(), Some("devs-edit"));
    assert_eq!(found[0].path, "roleRef");
    assert!(
        found[0]
            .message
            .contains("Group \"devs\", ServiceAccount tools/\"ci\""),
        "{}",
        found[0].message
    );
}

#[test]
fn implied_secret_access_through_workloads() {
    let rules = "
  - apiGroups: [\"\"]
    resources: [pods]
    verbs: [get, list, create]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [patch]
  - apiGroups: [batch]
    resources: [cronjobs]
    resourceNames: [nightly]
    verbs: [create, update]
  - apiGroups: [\"\"]
    resources: [pods/exec]
    verbs: [create]
  - apiGroups: [apps, batch]
    resources: [deployments, jobs]
    verbs: [get, list, watch, delete]
  - apiGroups: [\"\"]
    resources: [configmaps]
    verbs: [create]
";
    let found = fires(&role("Role", rules), Rule::RbacImpliedSecretAccess, 4);
    let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages[0].starts_with("Role grants create pods,"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].starts_with("Role grants patch deployments.apps,"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].starts_with("Role grants update cronjobs.batch,"),
        "{}",
        messages[2]
    );
    assert!(
        messages[3].starts_with("Role grants create pods/exec,"),
        "{}",
        messages[3]
    );
    assert!(found.iter().all(|f| f.severity == Severity::Medium));
}

#[test]
fn wildcard_rule_reports_read_and_escalation_but_not_the_implied_access() {
    let text = role(
        "ClusterRole",
        "  - {apiGroups: [\"*\"], resources: [\"*\"], verbs: [\"*\"]}\n",
    );
    let report = scan_one(&text);
    let rules: Vec<Rule> = report.findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules, [Rule::RbacEscalation, Rule::RbacSecretRead]);
}

#[test]
fn escalation_paths() {
    let rules = "
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [clusterroles]
    verbs: [bind, escalate]
  - apiGroups: [\"\"]
    resources: [users, groups, serviceaccounts]
    verbs: [impersonate]
  - apiGroups: [\"\"]
    resources: [serviceaccounts/token]
    verbs: [create]
  - apiGroups: [\"\"]
    resources: [nodes/proxy]
    verbs: [get]
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [roles]
    resourceNames: [view-only]
    verbs: [bind]
  - apiGroups: [authentication.k8s.io]
    resources: [userextras/scopes]
    verbs: [impersonate]
";
    let found = fires(&role("ClusterRole", rules), Rule::RbacEscalation, 6);
    let summary: Vec<(&str, Severity)> = found
        .iter()
        .map(|f| (f.path.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            ("rules[0]", Severity::High),
            ("rules[1]", Severity::High),
            ("rules[2]", Severity::High),
            ("rules[3]", Severity::High),
            ("rules[5]", Severity::High),
            ("rules[4]", Severity::Medium),
        ]
    );
    assert!(
        found[0]
            .message
            .contains("escalate on roles; bind on roles")
    );
    assert!(
        found[1]
            .message
            .contains("impersonate users, groups, serviceaccounts")
    );
    assert!(found[3].message.contains("nodes/proxy"));
    assert!(found[5].message.contains("limited to view-only"));
}

#[test]
fn harmless_roles_are_silent() {
    let rules = "
  - apiGroups: [\"\"]
    resources: [configmaps, services, pods, pods/log]
    verbs: [get, list, watch]
  - apiGroups: [\"\"]
    resources: [secrets/status]
    verbs: [get]
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [roles, rolebindings]
    verbs: [get, list]
  - apiGroups: [\"\"]
    resources: [serviceaccounts]
    verbs: [get, create]
  - nonResourceURLs: [\"/healthz\"]
    verbs: [get]
";
    let text = role("ClusterRole", rules);
    for rule in [
        Rule::RbacSecretRead,
        Rule::RbacImpliedSecretAccess,
        Rule::RbacEscalation,
    ] {
        silent(&text, rule);
    }
}
