//! Who is asking and what for: upstream's `user.Info`, `authorizer.Attributes` and
//! `authorizer.Decision`.

use std::collections::BTreeMap;

/// The group every authenticated request carries, `system:authenticated`.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests, `system:unauthenticated`.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user name of anonymous requests, `system:anonymous`.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group that may do anything and grant anything, `system:masters`.
pub const SYSTEM_PRIVILEGED_GROUP: &str = "system:masters";
/// The prefix of service account user names, `system:serviceaccount:`.
pub const SERVICE_ACCOUNT_USERNAME_PREFIX: &str = "system:serviceaccount:";

/// The user name of the service account `namespace/name`:
/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USERNAME_PREFIX}{namespace}:{name}")
}

/// An authenticated (or anonymous) user, as the authenticators produced it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name, e.g. `alice` or `system:serviceaccount:default:sa1`.
    pub username: String,
    /// The UID, possibly empty. Not used by RBAC.
    pub uid: String,
    /// The groups, including `system:authenticated` where it applies.
    pub groups: Vec<String>,
    /// Extra attributes from the authenticator. Not used by RBAC.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// What a request asks to do: upstream's `authorizer.AttributesRecord`.
///
/// Empty strings mean "not set", as upstream. A resource request uses `verb`, `namespace`,
/// `api_group`, `resource`, `subresource` and `name`; a non-resource request uses `verb` (the
/// lower-cased HTTP method) and `path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// The user making the request.
    pub user: UserInfo,
    /// The verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or another (`bind`, `escalate`, `impersonate`, …).
    pub verb: String,
    /// The namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// The API group, `""` for the core group.
    pub api_group: String,
    /// The API version. Not used by RBAC.
    pub api_version: String,
    /// The resource, e.g. `secrets`.
    pub resource: String,
    /// The subresource, e.g. `status` or `token`.
    pub subresource: String,
    /// The object name, empty for list, watch, create and deletecollection (unless lifted from
    /// a `metadata.name` field selector).
    pub name: String,
    /// Whether this is a resource request (`true`) or a non-resource one.
    pub resource_request: bool,
    /// The URL path of a non-resource request, e.g. `/version`.
    pub path: String,
}

/// An authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A rule allows the request; the reason names the binding, role and subject.
    Allow {
        /// E.g. `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`.
        reason: String,
    },
    /// No rule allows the request (RBAC never denies); the reason is empty unless some
    /// bindings could not be resolved.
    NoOpinion {
        /// Empty, or `RBAC: ` followed by the resolution errors.
        reason: String,
    },
}

// === impl UserInfo ===

impl UserInfo {
    /// A user with this name and nothing else.
    pub fn new(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            ..Self::default()
        }
    }

    /// Sets the groups.
    #[must_use]
    pub fn with_groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the user carries `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

// === impl Attributes ===

impl Attributes {
    /// A cluster-scoped resource request with no name; add the rest with the builder methods.
    pub fn resource(user: UserInfo, verb: &str, api_group: &str, resource: &str) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            resource_request: true,
            ..Self::default()
        }
    }

    /// A non-resource request for `path`.
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Self::default()
        }
    }

    /// Sets the namespace.
    #[must_use]
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// Sets the object name.
    #[must_use]
    pub fn with_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Sets the subresource.
    #[must_use]
    pub fn with_subresource(mut self, subresource: &str) -> Self {
        subresource.clone_into(&mut self.subresource);
        self
    }
}

// === impl Decision ===

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The reason, possibly empty.
    pub fn reason(&self) -> &str {
        match self {
            Self::Allow { reason } | Self::NoOpinion { reason } => reason,
        }
    }
}
