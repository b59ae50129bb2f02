//! Kubernetes RBAC for Ward: the authorizer, the rule resolver behind the review APIs,
//! escalation prevention, "who can" queries and the bootstrap roles, with no IO.
//!
//! Roles, ClusterRoles, RoleBindings and ClusterRoleBindings arrive as `serde_json::Value`s in
//! their Kubernetes JSON shape. [`RbacIndex::build`] parses a snapshot of all four into an
//! index keyed by subject (user name, group, service account), computes ClusterRole
//! aggregation, and then answers:
//!
//! - [`RbacIndex::authorize`]: upstream's `RBACAuthorizer.Authorize`, with the same reason text;
//! - [`RbacIndex::rules_for`]: the rules of a user in a namespace (SelfSubjectRulesReview);
//! - [`RbacIndex::confirm_no_escalation`], [`RbacIndex::binding_authorized`] and
//!   [`RbacIndex::role_escalation_authorized`]: the checks made when Roles and bindings are
//!   written;
//! - [`who_can`]: every subject a binding grants a permission to, and through which binding.
//!
//! The semantics follow kube-apiserver (`plugin/pkg/auth/authorizer/rbac/rbac.go`,
//! `pkg/apis/rbac/v1/evaluation_helpers.go`, `pkg/registry/rbac/validation/rule.go`,
//! `component-helpers/auth/rbac/validation/policy_comparator.go` and the ClusterRole
//! aggregation controller); each module names the file it follows.
//!
//! This crate must never depend on a storage backend, an HTTP stack, an async runtime or a
//! crypto crate: it is a pure function of the objects it is given.
//!
//! ```
//! use serde_json::json;
//! use ward_rbac::{Attributes, RbacIndex, UserInfo, bootstrap};
//!
//! let role = json!({
//!     "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
//!     "metadata": {"namespace": "default", "name": "secret-reader"},
//!     "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
//! });
//! let binding = json!({
//!     "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
//!     "metadata": {"namespace": "default", "name": "read-secrets"},
//!     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
//!     "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
//! });
//! let (index, warnings) = RbacIndex::build(
//!     &[role],
//!     &bootstrap::cluster_roles(),
//!     &[binding],
//!     &bootstrap::cluster_role_bindings(),
//! );
//! assert!(warnings.is_empty());
//!
//! let alice = UserInfo::new("alice").with_groups(["system:authenticated"]);
//! let get = Attributes::resource(alice.clone(), "get", "", "secrets")
//!     .in_namespace("default")
//!     .with_name("db-password");
//! let decision = index.authorize(&get);
//! assert!(decision.is_allow());
//! assert_eq!(
//!     decision.reason(),
//!     r#"RBAC: allowed by RoleBinding "read-secrets/default" of Role "secret-reader" to User "alice""#,
//! );
//!
//! // Not in another namespace, and `secrets` does not cover `secrets/status`.
//! assert!(!index.authorize(&get.clone().in_namespace("kube-system")).is_allow());
//! assert!(!index.authorize(&get.with_subresource("status")).is_allow());
//!
//! // Every authenticated user may discover the API.
//! assert!(index.authorize(&Attributes::non_resource(alice, "get", "/apis/apps")).is_allow());
//! ```

#![warn(missing_docs)]

pub mod bootstrap;

mod aggregation;
mod escalation;
mod evaluation;
mod go_fmt;
mod index;
mod policy;
mod request;
mod who_can;

pub use escalation::{
    EscalationError, confirm_no_escalation, covers, escalation_allowed, full_authority,
    uncovered_rules,
};
pub use index::{
    BindingKind, BindingRef, RbacIndex, RbacWarning, ResolvedRules, RoleRefError, RuleSource,
};
pub use policy::{
    AggregationRule, ClusterRole, ClusterRoleBinding, GROUP_NAME, ParseError, PolicyRule, Role,
    RoleBinding, RoleRef, RoleRefKind, Subject, SubjectKind,
};
pub use request::{
    ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, Attributes, Decision,
    SERVICE_ACCOUNT_USERNAME_PREFIX, SYSTEM_PRIVILEGED_GROUP, UserInfo, service_account_username,
};
pub use who_can::{SubjectPath, who_can};
