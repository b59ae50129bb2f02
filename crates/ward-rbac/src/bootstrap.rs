//! The bootstrap ClusterRoles and ClusterRoleBindings kube-apiserver creates at startup, as
//! JSON objects ready to store.
//!
//! # Policy
//!
//! The user-facing roles and the discovery roles are copied verbatim from upstream's
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/cluster-roles.yaml` and
//! `cluster-role-bindings.yaml` (generated from `policy.go`), rules and order included, even
//! where they name resources Ward does not serve (pods, deployments, …): clients and
//! scanners compare them with a real cluster's. The controller and node roles
//! (`system:node`, `system:kube-scheduler`, …) are left out, as Ward runs none of those
//! components.
//!
//! - `cluster-admin`: everything, bound to the group `system:masters`.
//! - `admin`, `edit`, `view`: aggregated from the ClusterRoles labelled
//!   `rbac.authorization.k8s.io/aggregate-to-admin|edit|view: "true"`. `view` aggregates into
//!   `edit` and `edit` into `admin`. `view` cannot read Secrets; `edit` and `admin` can. Their
//!   stored `rules` are `null`; [`crate::RbacIndex`] computes them.
//! - `system:aggregate-to-admin|edit|view`: the rules the three roles are made of.
//! - `system:basic-user` (self reviews) and `system:discovery` (`/api`, `/apis`, `/version`,
//!   health, OpenAPI): bound to `system:authenticated`.
//! - `system:public-info-viewer` (`/version` and health): bound to `system:authenticated` and
//!   `system:unauthenticated`.
//!
//! Every object carries the label `kubernetes.io/bootstrapping: rbac-defaults` and the
//! annotation `rbac.authorization.kubernetes.io/autoupdate: "true"`, as upstream.

use serde_json::{Value, json};

/// The label every bootstrap object carries.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// The annotation that lets the apiserver reconcile a bootstrap object at startup.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label that aggregates a ClusterRole into `admin`.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// The label that aggregates a ClusterRole into `edit`.
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// The label that aggregates a ClusterRole into `view`.
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The bootstrap ClusterRoles, sorted by name as in upstream's testdata.
pub fn cluster_roles() -> Vec<Value> {
    let read = ["get", "list", "watch"];
    let write = ["create", "delete", "deletecollection", "patch", "update"];
    let read_write = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    vec![
        aggregated_role("admin", AGGREGATE_TO_ADMIN, &[]),
        cluster_role(
            "cluster-admin",
            &[],
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        aggregated_role("edit", AGGREGATE_TO_EDIT, &[AGGREGATE_TO_ADMIN]),
        cluster_role(
            "system:aggregate-to-admin",
            &[AGGREGATE_TO_ADMIN],
            json!([
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["localsubjectaccessreviews"],
                    "verbs": ["create"],
                },
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["rolebindings", "roles"],
                    "verbs": read_write,
                },
            ]),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[AGGREGATE_TO_EDIT],
            json!([
                {
                    "apiGroups": [""],
                    "resources": [
                        "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                        "services/proxy",
                    ],
                    "verbs": read,
                },
                {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
                {
                    "apiGroups": [""],
                    "resources": [
                        "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy",
                    ],
                    "verbs": write,
                },
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                {
                    "apiGroups": [""],
                    "resources": [
                        "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                        "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                        "services/proxy",
                    ],
                    "verbs": write,
                },
                {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
                {
                    "apiGroups": ["apps"],
                    "resources": [
                        "daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                        "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale",
                    ],
                    "verbs": write,
                },
                {
                    "apiGroups": ["autoscaling"],
                    "resources": ["horizontalpodautoscalers"],
                    "verbs": write,
                },
                {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": write},
                {
                    "apiGroups": ["extensions"],
                    "resources": [
                        "daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                        "ingresses", "networkpolicies", "replicasets", "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                    "verbs": write,
                },
                {
                    "apiGroups": ["policy"],
                    "resources": ["poddisruptionbudgets"],
                    "verbs": write,
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["ingresses", "networkpolicies"],
                    "verbs": write,
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": read_write,
                },
            ]),
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[AGGREGATE_TO_VIEW],
            json!([
                {
                    "apiGroups": [""],
                    "resources": [
                        "configmaps", "endpoints", "persistentvolumeclaims",
                        "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                        "replicationcontrollers/scale", "serviceaccounts", "services",
                        "services/status",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": [""],
                    "resources": [
                        "bindings", "events", "limitranges", "namespaces/status", "pods/log",
                        "pods/status", "replicationcontrollers/status", "resourcequotas",
                        "resourcequotas/status",
                    ],
                    "verbs": read,
                },
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": read},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
                {
                    "apiGroups": ["apps"],
                    "resources": [
                        "controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                        "deployments/scale", "deployments/status", "replicasets",
                        "replicasets/scale", "replicasets/status", "statefulsets",
                        "statefulsets/scale", "statefulsets/status",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": ["autoscaling"],
                    "resources": ["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
                    "verbs": read,
                },
                {
                    "apiGroups": ["batch"],
                    "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    "verbs": read,
                },
                {
                    "apiGroups": ["extensions"],
                    "resources": [
                        "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                        "deployments/status", "ingresses", "ingresses/status", "networkpolicies",
                        "replicasets", "replicasets/scale", "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": ["policy"],
                    "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    "verbs": read,
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["ingresses", "ingresses/status", "networkpolicies"],
                    "verbs": read,
                },
            ]),
        ),
        cluster_role(
            "system:basic-user",
            &[],
            json!([
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["selfsubjectreviews"],
                    "verbs": ["create"],
                },
            ]),
        ),
        cluster_role(
            "system:discovery",
            &[],
            json!([{
                "nonResourceURLs": [
                    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                    "/openapi/*", "/readyz", "/version", "/version/",
                ],
                "verbs": ["get"],
            }]),
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            json!([{
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }]),
        ),
        aggregated_role("view", AGGREGATE_TO_VIEW, &[AGGREGATE_TO_EDIT]),
    ]
}

/// The bootstrap ClusterRoleBindings, sorted by name.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", &["system:masters"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding("system:discovery", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

fn metadata(name: &str, aggregate_to: &[&str]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(BOOTSTRAPPING_LABEL.to_owned(), json!("rbac-defaults"));
    for label in aggregate_to {
        labels.insert((*label).to_owned(), json!("true"));
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    })
}

fn cluster_role(name: &str, aggregate_to: &[&str], rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, aggregate_to),
        "rules": rules,
    })
}

fn aggregated_role(name: &str, selector_label: &str, aggregate_to: &[&str]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, aggregate_to),
        "aggregationRule": {
            "clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}],
        },
        "rules": null,
    })
}

fn binding(role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|group| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(role, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}
