//! "Who can read this secret?"

use serde_json::json;
use ward_rbac::{
    Attributes, BindingKind, BindingRef, PolicyRule, RbacIndex, RoleRef, Subject, SubjectPath,
    UserInfo, bootstrap, who_can,
};

fn index() -> RbacIndex {
    let (index, warnings) = RbacIndex::build(
        &[json!({
            "metadata": {"namespace": "prod", "name": "db-reader"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]}],
        })],
        &bootstrap::cluster_roles(),
        &[
            json!({
                "metadata": {"namespace": "prod", "name": "app"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "db-reader"},
                "subjects": [
                    {"kind": "ServiceAccount", "name": "app"},
                    {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                ],
            }),
            json!({
                "metadata": {"namespace": "prod", "name": "devs-edit"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}],
            }),
            json!({
                "metadata": {"namespace": "prod", "name": "auditors"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "auditor"}],
            }),
            json!({
                "metadata": {"namespace": "staging", "name": "devs-edit"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "intern"}],
            }),
        ],
        &[
            bootstrap::cluster_role_bindings(),
            vec![json!({
                "metadata": {"name": "sa-anywhere"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                // No namespace: in a ClusterRoleBinding this matches nobody.
                "subjects": [{"kind": "ServiceAccount", "name": "ghost"}],
            })],
        ]
        .concat(),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    index
}

fn describe(paths: &[SubjectPath]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            format!(
                "{} {}/{} via {} ({})",
                p.subject.kind, p.subject.namespace, p.subject.name, p.binding, p.role_ref.name
            )
        })
        .collect()
}

#[test]
fn who_can_read_a_secret() {
    let index = index();
    let paths = who_can(&index, "get", "", "secrets", "prod", "db");
    assert_eq!(
        describe(&paths),
        [
            r#"Group /system:masters via ClusterRoleBinding "cluster-admin" (cluster-admin)"#,
            r#"ServiceAccount prod/app via RoleBinding "app/prod" (db-reader)"#,
            r#"ServiceAccount tools/ci via RoleBinding "app/prod" (db-reader)"#,
            r#"Group /devs via RoleBinding "devs-edit/prod" (edit)"#,
        ]
    );
    assert_eq!(
        paths[1],
        SubjectPath {
            subject: Subject::service_account("prod", "app"),
            binding: BindingRef {
                kind: BindingKind::RoleBinding,
                namespace: "prod".into(),
                name: "app".into(),
            },
            role_ref: RoleRef::role("db-reader"),
            rule: PolicyRule::new(["get"])
                .groups([""])
                .resources(["secrets"])
                .names(["db"]),
        }
    );
    // Another secret: the named rule no longer applies; view never reads secrets.
    let paths = who_can(&index, "get", "", "secrets", "prod", "other");
    assert_eq!(paths.len(), 2);
    // Listing all secrets cluster-wide: only cluster-admin.
    let paths = who_can(&index, "list", "", "secrets", "", "");
    assert_eq!(
        describe(&paths),
        [r#"Group /system:masters via ClusterRoleBinding "cluster-admin" (cluster-admin)"#]
    );
    // Subresources: edit may mint service account tokens.
    let paths = who_can(
        &index,
        "create",
        "",
        "serviceaccounts/token",
        "staging",
        "app",
    );
    assert_eq!(
        describe(&paths)[1..],
        [r#"User /intern via RoleBinding "devs-edit/staging" (edit)"#]
    );
}

#[test]
fn who_can_agrees_with_authorize() {
    let index = index();
    let paths = who_can(&index, "get", "", "configmaps", "prod", "cm");
    assert!(describe(&paths).iter().any(|p| p.contains("auditor")));
    for path in &paths {
        let user = match path.subject.kind {
            ward_rbac::SubjectKind::User => UserInfo::new(&path.subject.name),
            ward_rbac::SubjectKind::Group => {
                UserInfo::new("someone").with_groups([&path.subject.name])
            }
            ward_rbac::SubjectKind::ServiceAccount => UserInfo::new(
                ward_rbac::service_account_username(&path.subject.namespace, &path.subject.name),
            ),
        };
        let request = Attributes::resource(user, "get", "", "configmaps")
            .in_namespace("prod")
            .with_name("cm");
        assert!(index.authorize(&request).is_allow(), "{path:?}");
    }
    // Non-resource requests through the method form.
    let request = Attributes::non_resource(UserInfo::default(), "get", "/version");
    let groups: Vec<String> = index
        .allowed_subjects(&request)
        .into_iter()
        .map(|p| p.subject.name)
        .collect();
    assert_eq!(
        groups,
        [
            "system:masters",
            "system:authenticated",
            "system:authenticated",
            "system:unauthenticated"
        ]
    );
}
