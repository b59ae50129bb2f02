//! The bootstrap roles behave as on a fresh kube-apiserver.

use serde_json::{Value, json};
use ward_rbac::{
    ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, Attributes, ClusterRole, RbacIndex,
    UserInfo, bootstrap,
};

/// The bootstrap policy plus `viewer`, `editor` and `nsadmin` bound in `ns1` to `view`, `edit`
/// and `admin`, and `root` in `system:masters`.
fn index() -> RbacIndex {
    let binding = |role: &str, user: &str| {
        json!({
            "kind": "RoleBinding",
            "metadata": {"namespace": "ns1", "name": format!("{user}-{role}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
        })
    };
    let (index, warnings) = RbacIndex::build(
        &[],
        &bootstrap::cluster_roles(),
        &[
            binding("view", "viewer"),
            binding("edit", "editor"),
            binding("admin", "nsadmin"),
        ],
        &bootstrap::cluster_role_bindings(),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    index
}

fn user(name: &str) -> UserInfo {
    UserInfo::new(name).with_groups([ALL_AUTHENTICATED])
}

fn can(
    index: &RbacIndex,
    user: &UserInfo,
    verb: &str,
    group: &str,
    resource: &str,
    ns: &str,
) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let attributes = Attributes::resource(user.clone(), verb, group, resource)
        .with_subresource(subresource)
        .in_namespace(ns)
        .with_name("x");
    index.authorize(&attributes).is_allow()
}

#[test]
fn view_cannot_read_secrets_edit_and_admin_can() {
    let index = index();
    let (viewer, editor, nsadmin) = (user("viewer"), user("editor"), user("nsadmin"));
    for verb in ["get", "list", "watch"] {
        assert!(
            !can(&index, &viewer, verb, "", "secrets", "ns1"),
            "view {verb} secrets"
        );
        assert!(
            can(&index, &editor, verb, "", "secrets", "ns1"),
            "edit {verb} secrets"
        );
        assert!(
            can(&index, &nsadmin, verb, "", "secrets", "ns1"),
            "admin {verb} secrets"
        );
    }
    for verb in ["create", "update", "patch", "delete", "deletecollection"] {
        assert!(!can(&index, &viewer, verb, "", "secrets", "ns1"));
        assert!(can(&index, &editor, verb, "", "secrets", "ns1"));
        assert!(can(&index, &nsadmin, verb, "", "secrets", "ns1"));
    }
    // Only in the namespace of the binding.
    assert!(!can(&index, &editor, "get", "", "secrets", "ns2"));
    assert!(!can(&index, &editor, "list", "", "secrets", ""));
    // Everyone in ns1 reads configmaps; only edit writes them.
    assert!(can(&index, &viewer, "list", "", "configmaps", "ns1"));
    assert!(!can(&index, &viewer, "update", "", "configmaps", "ns1"));
    assert!(can(&index, &editor, "update", "", "configmaps", "ns1"));
    // view reads the namespace but nothing of RBAC; admin writes Roles and RoleBindings.
    assert!(can(&index, &viewer, "get", "", "namespaces", "ns1"));
    for (role, user) in [("view", &viewer), ("edit", &editor)] {
        assert!(
            !can(
                &index,
                user,
                "get",
                "rbac.authorization.k8s.io",
                "roles",
                "ns1"
            ),
            "{role}"
        );
        assert!(!can(
            &index,
            user,
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            "ns1"
        ));
    }
    assert!(can(
        &index,
        &nsadmin,
        "create",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "ns1"
    ));
    assert!(can(
        &index,
        &nsadmin,
        "create",
        "authorization.k8s.io",
        "localsubjectaccessreviews",
        "ns1"
    ));
    // No one below cluster-admin touches the namespace object or resource quotas.
    assert!(!can(&index, &nsadmin, "delete", "", "namespaces", "ns1"));
    assert!(!can(
        &index,
        &nsadmin,
        "update",
        "",
        "resourcequotas",
        "ns1"
    ));
    // edit may mint tokens for service accounts, view may not.
    assert!(can(
        &index,
        &editor,
        "create",
        "",
        "serviceaccounts/token",
        "ns1"
    ));
    assert!(!can(
        &index,
        &viewer,
        "create",
        "",
        "serviceaccounts/token",
        "ns1"
    ));
}

#[test]
fn cluster_admin_can_do_everything() {
    let index = index();
    let root = UserInfo::new("root").with_groups(["system:masters", ALL_AUTHENTICATED]);
    for (verb, group, resource, ns) in [
        ("get", "", "secrets", "ns1"),
        ("list", "", "secrets", ""),
        ("deletecollection", "", "secrets", "kube-system"),
        ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("impersonate", "", "users", ""),
        ("anything", "made.up", "widgets/status", "ns"),
    ] {
        assert!(
            can(&index, &root, verb, group, resource, ns),
            "{verb} {resource}"
        );
    }
    for path in ["/metrics", "/version", "/debug/pprof/"] {
        assert!(
            index
                .authorize(&Attributes::non_resource(root.clone(), "get", path))
                .is_allow()
        );
    }
    let decision = index.authorize(&Attributes::non_resource(root, "delete", "/"));
    assert_eq!(
        decision.reason(),
        r#"RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters""#
    );
    // Without the group, nothing of the sort.
    assert!(!can(&index, &user("root"), "get", "", "secrets", "ns1"));
}

#[test]
fn discovery_and_self_reviews() {
    let index = index();
    let alice = user("alice");
    let anonymous = UserInfo::new(ANONYMOUS).with_groups([ALL_UNAUTHENTICATED]);
    let get = |user: &UserInfo, path: &str| {
        index
            .authorize(&Attributes::non_resource(user.clone(), "get", path))
            .is_allow()
    };
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/openapi/v3",
        "/version",
        "/healthz",
    ] {
        assert!(get(&alice, path), "{path}");
    }
    assert!(!get(&alice, "/metrics"));
    assert!(
        !index
            .authorize(&Attributes::non_resource(alice.clone(), "post", "/api"))
            .is_allow()
    );
    for path in ["/version", "/version/", "/healthz", "/livez", "/readyz"] {
        assert!(get(&anonymous, path), "{path}");
    }
    for path in ["/api", "/apis", "/openapi/v2", "/healthz/etcd"] {
        assert!(!get(&anonymous, path), "{path}");
    }
    for (group, resource) in [
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    ] {
        assert!(
            can(&index, &alice, "create", group, resource, ""),
            "{resource}"
        );
        assert!(
            !can(&index, &anonymous, "create", group, resource, ""),
            "{resource}"
        );
    }
    assert!(!can(
        &index,
        &alice,
        "create",
        "authorization.k8s.io",
        "subjectaccessreviews",
        ""
    ));
    assert!(!can(&index, &alice, "list", "", "namespaces", ""));
    let decision = index.authorize(&Attributes::non_resource(anonymous, "get", "/version"));
    assert_eq!(
        decision.reason(),
        r#"RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" of ClusterRole "system:public-info-viewer" to Group "system:unauthenticated""#
    );
}

#[test]
fn aggregation_builds_view_into_edit_into_admin() {
    let index = index();
    let rules = |name: &str| index.cluster_role(name).unwrap().rules.clone();
    let stored = |name: &str| {
        let value = bootstrap::cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap();
        ClusterRole::from_value(&value).unwrap().rules
    };
    let (to_view, to_edit, to_admin) = (
        stored("system:aggregate-to-view"),
        stored("system:aggregate-to-edit"),
        stored("system:aggregate-to-admin"),
    );
    assert_eq!(rules("view"), to_view);
    // Sources by name: system:aggregate-to-edit, then view.
    assert_eq!(rules("edit"), [to_edit.clone(), to_view.clone()].concat());
    // Sources by name: edit, then system:aggregate-to-admin.
    assert_eq!(rules("admin"), [to_edit, to_view, to_admin].concat());
    // The stored objects keep `rules: null`.
    let admin = bootstrap::cluster_roles()
        .into_iter()
        .find(|r| r["metadata"]["name"] == "admin");
    assert_eq!(admin.unwrap()["rules"], Value::Null);
}

#[test]
fn objects_have_upstream_shape() {
    let roles = bootstrap::cluster_roles();
    let names: Vec<&str> = roles
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "admin",
            "cluster-admin",
            "edit",
            "system:aggregate-to-admin",
            "system:aggregate-to-edit",
            "system:aggregate-to-view",
            "system:basic-user",
            "system:discovery",
            "system:public-info-viewer",
            "view",
        ]
    );
    for object in roles.iter().chain(&bootstrap::cluster_role_bindings()) {
        assert_eq!(object["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(
            object["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        assert_eq!(
            object["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
            "true"
        );
    }
    let bindings = bootstrap::cluster_role_bindings();
    let subjects = |name: &str| -> Vec<Value> {
        let binding = bindings
            .iter()
            .find(|b| b["metadata"]["name"] == name)
            .unwrap();
        assert_eq!(binding["roleRef"]["name"], name);
        binding["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].clone())
            .collect()
    };
    assert_eq!(subjects("cluster-admin"), [json!("system:masters")]);
    assert_eq!(
        subjects("system:basic-user"),
        [json!("system:authenticated")]
    );
    assert_eq!(
        subjects("system:discovery"),
        [json!("system:authenticated")]
    );
    assert_eq!(
        subjects("system:public-info-viewer"),
        [
            json!("system:authenticated"),
            json!("system:unauthenticated")
        ]
    );
    let view = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "view")
        .unwrap();
    assert_eq!(
        view["aggregationRule"],
        json!({"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]})
    );
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
}
