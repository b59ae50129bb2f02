//! The resources Ward serves, described once: names, kinds, scope, verbs, selectable fields.
//!
//! Discovery documents, routing, storage keys and RBAC names all come from this table, so a new
//! resource is added here and nowhere else.

/// How a resource's object names are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 label (namespaces).
    Dns1123Label,
    /// DNS-1123 subdomain (secrets, configmaps, serviceaccounts).
    Dns1123Subdomain,
    /// Any path segment (RBAC objects).
    PathSegment,
}

/// One served resource.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version, e.g. `v1`.
    pub version: &'static str,
    /// Plural resource name, e.g. `secrets`.
    pub resource: &'static str,
    /// Singular name, e.g. `secret`.
    pub singular: &'static str,
    /// Kind, e.g. `Secret`.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`cm`, `ns`).
    pub short_names: &'static [&'static str],
    /// Verbs served.
    pub verbs: &'static [&'static str],
    /// Fields usable in a field selector besides `metadata.name` and `metadata.namespace`.
    pub extra_selectable_fields: &'static [&'static str],
    /// Name syntax.
    pub name_rule: NameRule,
    /// Whether objects are stored. Review APIs (`SelfSubjectReview`, access reviews) are not:
    /// a `create` computes an answer and returns it.
    pub persisted: bool,
}

const NAMESPACED_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const CREATE_ONLY: &[&str] = &["create"];
const RBAC: &str = "rbac.authorization.k8s.io";

/// A stored resource with every verb but `deletecollection` on cluster-scoped ones.
#[allow(clippy::too_many_arguments)] // a table row
const fn stored(
    group: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    extra_selectable_fields: &'static [&'static str],
    name_rule: NameRule,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        resource,
        singular,
        kind,
        namespaced,
        short_names,
        verbs: NAMESPACED_VERBS,
        extra_selectable_fields,
        name_rule,
        persisted: true,
    }
}

/// A review API: create-only, computed, never stored.
const fn review(
    group: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        resource,
        singular,
        kind,
        namespaced: false,
        short_names: &[],
        verbs: CREATE_ONLY,
        extra_selectable_fields: &[],
        name_rule: NameRule::PathSegment,
        persisted: false,
    }
}

/// Every resource Ward serves, in discovery order (each group's resources together).
pub static RESOURCES: &[ResourceInfo] = &[
    stored(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        &[],
        NameRule::Dns1123Subdomain,
    ),
    ResourceInfo {
        verbs: NAMESPACE_VERBS,
        ..stored(
            "",
            "namespaces",
            "namespace",
            "Namespace",
            false,
            &["ns"],
            &["status.phase"],
            NameRule::Dns1123Label,
        )
    },
    stored(
        "",
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        &["type"],
        NameRule::Dns1123Subdomain,
    ),
    stored(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
        NameRule::Dns1123Subdomain,
    ),
    review(
        "authentication.k8s.io",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
    ),
    ResourceInfo {
        namespaced: true,
        ..review(
            "authorization.k8s.io",
            "localsubjectaccessreviews",
            "localsubjectaccessreview",
            "LocalSubjectAccessReview",
        )
    },
    review(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
    ),
    review(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
    ),
    stored(
        RBAC,
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
        NameRule::PathSegment,
    ),
    stored(
        RBAC,
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        &[],
        NameRule::PathSegment,
    ),
    stored(
        RBAC,
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        &[],
        NameRule::PathSegment,
    ),
    stored(
        RBAC,
        "roles",
        "role",
        "Role",
        true,
        &[],
        &[],
        NameRule::PathSegment,
    ),
];

impl ResourceInfo {
    /// `apiVersion` of objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The list kind, e.g. `SecretList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `field` may appear in a field selector for this resource.
    pub fn selectable_fields(&self) -> Vec<&'static str> {
        let mut v = vec!["metadata.name", "metadata.namespace"];
        v.extend_from_slice(self.extra_selectable_fields);
        v
    }

    /// Problems with `name` under this resource's name rule (empty = valid).
    pub fn validate_name(&self, name: &str) -> Vec<String> {
        match self.name_rule {
            NameRule::Dns1123Label => crate::validation::dns1123_label(name),
            NameRule::Dns1123Subdomain => crate::validation::dns1123_subdomain(name),
            NameRule::PathSegment => crate::validation::path_segment_name(name),
        }
    }

    /// The storage key prefix for a namespace (or every namespace / cluster scope with `None`),
    /// with a trailing `/`: `/registry/secrets/default/`.
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.resource),
            _ => format!("/registry/{}/", self.resource),
        }
    }

    /// The storage key of one object: `/registry/secrets/default/db`.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }
}

/// The resource served at `group/version/resource`.
///
/// `None` when Ward does not serve it.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The resource whose kind is `kind` in `group`.
pub fn lookup_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kube_apiserver_layout() {
        let s = lookup("", "v1", "secrets").expect("served");
        assert_eq!(s.key(Some("default"), "db"), "/registry/secrets/default/db");
        assert_eq!(s.key_prefix(None), "/registry/secrets/");
        let ns = lookup("", "v1", "namespaces").expect("served");
        assert_eq!(ns.key(Some("ignored"), "dev"), "/registry/namespaces/dev");
        assert!(lookup("", "v1", "pods").is_none());
    }
}
