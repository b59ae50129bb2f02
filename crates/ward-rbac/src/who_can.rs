//! "Who can do this?": every subject a binding grants a permission to, with the path that
//! grants it. Upstream's `SubjectAccessEvaluator.AllowedSubjects`
//! (`plugin/pkg/auth/authorizer/rbac/subject_locator.go`), keeping the binding and role of each
//! subject so the scanner and the posture report can explain it.
//!
//! # Policy
//!
//! - The bindings considered are those [`RbacIndex::authorize`] would consider for the
//!   request: every ClusterRoleBinding, plus the RoleBindings of the request's namespace. An
//!   empty namespace asks about the cluster scope (e.g. listing secrets across all
//!   namespaces), which only ClusterRoleBindings grant.
//! - A service account subject is reported with its namespace filled in (a RoleBinding's
//!   own, when the subject leaves it empty). A ClusterRoleBinding subject that matches nobody
//!   (a service account without a namespace) is left out.
//! - Groups are reported as groups: `system:authenticated` means every authenticated user.
//!   Nothing is implied: unlike upstream, `system:masters` is not added, since Ward only grants
//!   it what its bindings grant (the bootstrap `cluster-admin` binding).
//! - Bindings whose role is missing grant nothing and are skipped.

use std::collections::HashMap;

use crate::index::{BindingRef, BindingSet, RbacIndex, Target};
use crate::policy::{PolicyRule, RoleRef, Subject, SubjectKind};
use crate::request::{Attributes, UserInfo};

/// One subject that holds a permission, and how.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectPath {
    /// The subject, as written in the binding (a service account's namespace filled in).
    pub subject: Subject,
    /// The binding that grants the permission.
    pub binding: BindingRef,
    /// The role the binding grants.
    pub role_ref: RoleRef,
    /// The first rule of that role that allows the request.
    pub rule: PolicyRule,
}

/// Every subject allowed to `verb` the resource `group`/`resource` named `name` (empty: any
/// name, i.e. rules with `resourceNames` do not count) in `namespace` (empty: the cluster
/// scope). `resource` may carry a subresource: `pods/exec`, `serviceaccounts/token`.
///
/// Paths come in evaluation order: ClusterRoleBindings by name, then RoleBindings by name,
/// subjects in binding order.
pub fn who_can(
    index: &RbacIndex,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Vec<SubjectPath> {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let attributes = Attributes::resource(UserInfo::default(), verb, group, resource)
        .with_subresource(subresource)
        .in_namespace(namespace)
        .with_name(name);
    index.allowed_subjects(&attributes)
}

impl RbacIndex {
    /// Every subject allowed to make the request described by `attributes` (whose `user` is
    /// ignored), resource or non-resource; see [`who_can`].
    pub fn allowed_subjects(&self, attributes: &Attributes) -> Vec<SubjectPath> {
        let mut paths = Vec::new();
        self.collect_subjects(&self.cluster_bindings, attributes, &mut paths);
        if !attributes.namespace.is_empty()
            && let Some(set) = self.namespaces.get(&attributes.namespace)
        {
            self.collect_subjects(set, attributes, &mut paths);
        }
        paths
    }

    fn collect_subjects(
        &self,
        set: &BindingSet,
        attributes: &Attributes,
        paths: &mut Vec<SubjectPath>,
    ) {
        // Many bindings share a role: decide each role once.
        let mut allowing_rule: HashMap<Target, Option<&PolicyRule>> = HashMap::new();
        for binding in &set.bindings {
            let Ok(target) = binding.target else {
                continue;
            };
            let rule = *allowing_rule.entry(target).or_insert_with(|| {
                self.target_rules(target)
                    .iter()
                    .find(|rule| rule.allows(attributes))
            });
            let Some(rule) = rule else {
                continue;
            };
            for subject in &binding.subjects {
                let subject = match subject.kind {
                    SubjectKind::ServiceAccount => match binding.service_account_namespace(subject)
                    {
                        Some(namespace) => Subject {
                            namespace: namespace.to_owned(),
                            ..subject.clone()
                        },
                        None => continue,
                    },
                    SubjectKind::Group | SubjectKind::User => subject.clone(),
                };
                paths.push(SubjectPath {
                    subject,
                    binding: binding.reference(),
                    role_ref: binding.role_ref.clone(),
                    rule: rule.clone(),
                });
            }
        }
    }
}
