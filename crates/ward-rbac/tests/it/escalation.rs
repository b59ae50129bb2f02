//! Escalation checks through the index, as the Role and binding registries make them.

use serde_json::json;
use ward_rbac::{
    ClusterRole, EscalationError, PolicyRule, RbacIndex, Role, RoleRef, RoleRefKind, UserInfo,
    bootstrap, escalation_allowed, full_authority,
};

/// The bootstrap policy; `alice` is `admin` in `ns1`; `binder` may bind the ClusterRole
/// `view` in `ns2` and escalate the Role `special` in `ns2`.
fn index() -> RbacIndex {
    let binding = |ns: &str, name: &str, role_kind: &str, role: &str, user: &str| {
        json!({
            "kind": "RoleBinding",
            "metadata": {"namespace": ns, "name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
        })
    };
    let delegate = json!({
        "kind": "Role",
        "metadata": {"namespace": "ns2", "name": "delegate"},
        "rules": [
            {"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["view"]},
            {"verbs": ["escalate"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "resourceNames": ["special"]},
        ],
    });
    let (index, warnings) = RbacIndex::build(
        &[delegate],
        &bootstrap::cluster_roles(),
        &[
            binding("ns1", "alice-admin", "ClusterRole", "admin", "alice"),
            binding("ns2", "binder", "Role", "delegate", "binder"),
        ],
        &bootstrap::cluster_role_bindings(),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    index
}

fn alice() -> UserInfo {
    UserInfo::new("alice").with_groups(["devs", "system:authenticated"])
}

#[test]
fn a_role_within_held_rules_may_be_written() {
    let index = index();
    let role = Role::from_value(&json!({
        "metadata": {"namespace": "ns1", "name": "secret-reader"},
        "rules": [
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]},
            {"verbs": ["create"], "apiGroups": [""], "resources": ["serviceaccounts/token"]},
        ],
    }))
    .unwrap();
    assert!(
        index
            .confirm_no_escalation(&alice(), "ns1", &role.rules)
            .is_ok()
    );
    // The same role in a namespace where alice holds nothing is an escalation.
    let err = index
        .confirm_no_escalation(&alice(), "ns2", &role.rules)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "user \"alice\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC \
         permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], ResourceNames:[\"db\"], Verbs:[\"get\" \"list\"]}\n\
         {APIGroups:[\"\"], Resources:[\"serviceaccounts/token\"], Verbs:[\"create\"]}"
    );
}

#[test]
fn admin_cannot_grant_what_admin_lacks() {
    let index = index();
    let EscalationError::NotHeld { missing, .. } = index
        .confirm_no_escalation(
            &alice(),
            "ns1",
            &[
                PolicyRule::new(["*"]).groups([""]).resources(["secrets"]),
                PolicyRule::new(["update"])
                    .groups([""])
                    .resources(["resourcequotas", "configmaps"]),
                PolicyRule::new(["get"]).urls(["/metrics"]),
            ],
        )
        .unwrap_err()
    else {
        unreachable!()
    };
    let mut missing: Vec<String> = missing.iter().map(PolicyRule::compact_string).collect();
    missing.sort();
    assert_eq!(
        missing,
        [
            r#"{APIGroups:[""], Resources:["resourcequotas"], Verbs:["update"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["*"]}"#,
            r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#,
        ]
    );
}

#[test]
fn binding_needs_the_role_rules_or_bind() {
    let index = index();
    let view = RoleRef::cluster_role("view");
    let edit = RoleRef::cluster_role("edit");
    // alice holds everything edit holds in ns1 (admin ⊇ edit), so may bind it there.
    let edit_rules = index.role_ref_rules(&edit, "ns1").unwrap();
    assert!(
        index
            .confirm_no_escalation(&alice(), "ns1", edit_rules)
            .is_ok()
    );
    // ... but not cluster-wide, and she has no `bind`.
    assert!(
        index
            .confirm_no_escalation(&alice(), "", edit_rules)
            .is_err()
    );
    assert!(!index.binding_authorized(&alice(), &edit, ""));
    // binder holds nothing of view, but may bind it in ns2 only, and nothing else.
    let binder = UserInfo::new("binder").with_groups(["system:authenticated"]);
    let view_rules = index.role_ref_rules(&view, "ns2").unwrap();
    assert!(
        index
            .confirm_no_escalation(&binder, "ns2", view_rules)
            .is_err()
    );
    assert!(index.binding_authorized(&binder, &view, "ns2"));
    assert!(!index.binding_authorized(&binder, &view, "ns1"));
    assert!(!index.binding_authorized(&binder, &view, ""));
    assert!(!index.binding_authorized(&binder, &edit, "ns2"));
    assert!(!index.binding_authorized(&binder, &RoleRef::role("view"), "ns2"));
}

#[test]
fn escalate_verb_and_system_masters() {
    let index = index();
    let binder = UserInfo::new("binder");
    assert!(index.role_escalation_authorized(&binder, RoleRefKind::Role, "ns2", "special"));
    assert!(!index.role_escalation_authorized(&binder, RoleRefKind::Role, "ns2", "other"));
    assert!(!index.role_escalation_authorized(&binder, RoleRefKind::ClusterRole, "", "special"));
    assert!(!index.role_escalation_authorized(&alice(), RoleRefKind::Role, "ns1", "special"));

    let root = UserInfo::new("root").with_groups(["system:masters"]);
    assert!(escalation_allowed(&root));
    assert!(!escalation_allowed(&alice()));
    // system:masters holds full authority through cluster-admin, so may also aggregate.
    assert!(
        index
            .confirm_no_escalation(&root, "", &full_authority())
            .is_ok()
    );
    assert!(
        index
            .confirm_no_escalation(&alice(), "ns1", &full_authority())
            .is_err()
    );
    assert!(index.role_escalation_authorized(&root, RoleRefKind::ClusterRole, "", "x"));
    assert!(index.binding_authorized(&root, &RoleRef::cluster_role("cluster-admin"), ""));
}

#[test]
fn aggregated_cluster_roles_are_checked_by_their_aggregated_rules() {
    let index = index();
    let admin = ClusterRole::from_value(&bootstrap::cluster_roles()[0]).unwrap();
    assert_eq!(admin.name, "admin");
    // As stored, admin has no rules; the grant check uses the aggregated ones.
    assert!(admin.rules.is_empty());
    let rules = index
        .role_ref_rules(&RoleRef::cluster_role("admin"), "ns1")
        .unwrap();
    assert!(rules.len() > 20);
    assert!(index.confirm_no_escalation(&alice(), "ns1", rules).is_ok());
    assert!(index.confirm_no_escalation(&alice(), "ns3", rules).is_err());
}

#[test]
fn resolution_errors_are_appended() {
    let (index, _) = RbacIndex::build(
        &[],
        &[],
        &[],
        &[json!({
            "metadata": {"name": "dangling"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gone"},
            "subjects": [{"kind": "User", "name": "bob"}],
        })],
    );
    let err = index
        .confirm_no_escalation(
            &UserInfo::new("bob"),
            "",
            &[PolicyRule::new(["get"]).urls(["/x"])],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "user \"bob\" (groups=[]) is attempting to grant RBAC permissions not currently held:\n\
         {NonResourceURLs:[\"/x\"], Verbs:[\"get\"]}; resolution errors: \
         [clusterrole.rbac.authorization.k8s.io \"gone\" not found]"
    );
}
