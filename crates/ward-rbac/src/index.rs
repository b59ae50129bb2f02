//! The RBAC snapshot and the authorizer: upstream's `DefaultRuleResolver`
//! (`pkg/registry/rbac/validation/rule.go`) and `RBACAuthorizer`
//! (`plugin/pkg/auth/authorizer/rbac/rbac.go`).
//!
//! # Policy
//!
//! - **Which bindings apply.** A request in namespace `N` is checked against every
//!   ClusterRoleBinding and then every RoleBinding in `N`; a cluster-scoped request (empty
//!   namespace) against the ClusterRoleBindings only. A RoleBinding may reference a Role of
//!   its namespace or a ClusterRole, whose rules then apply only in that namespace.
//! - **Subjects.** `User` matches the user name exactly, `Group` one of the user's groups,
//!   `ServiceAccount` the user name `system:serviceaccount:<namespace>:<name>`, where an empty
//!   subject namespace means the RoleBinding's namespace (and, in a ClusterRoleBinding,
//!   matches nobody). `*` is not a wildcard.
//! - **Rules are additive.** Evaluation stops at the first rule that allows; there are no deny
//!   rules. The reason names that binding, its role and the *first* subject of the binding that
//!   applies to the user, in upstream's words. If nothing allows, the decision is
//!   [`Decision::NoOpinion`] (a denial), whose reason lists the bindings whose role could not
//!   be found.
//! - **Order.** Upstream walks its informer cache, whose order is unspecified. Ward walks the
//!   bindings by name (ClusterRoleBindings, then RoleBindings), so the reason is deterministic.
//!   When two objects share a key, the first one given wins and a warning is returned.
//! - **Speed.** Bindings are indexed by user name (service accounts included, by their user
//!   name) and by group, so a decision costs a few hash lookups plus the rules of the bindings
//!   that apply to the user, not a scan of every binding. Role references are resolved once,
//!   when the index is built.

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;

use serde_json::Value;

use crate::go_fmt::{aggregate, quote};
use crate::policy::{
    ClusterRole, ClusterRoleBinding, ParseError, PolicyRule, Role, RoleBinding, RoleRef,
    RoleRefKind, Subject, SubjectKind,
};
use crate::request::{Attributes, Decision, UserInfo, service_account_username};

/// An immutable snapshot of the RBAC objects, indexed for authorization.
///
/// Build a new one whenever a Role, ClusterRole or binding changes; building is linear in the
/// number of objects (plus aggregation), and a decision does not scan the bindings.
#[derive(Clone, Debug, Default)]
pub struct RbacIndex {
    pub(crate) roles: Vec<Role>,
    /// Namespace → name → index into `roles`.
    role_names: HashMap<String, HashMap<String, usize>>,
    /// Sorted by name; aggregated rules already computed.
    pub(crate) cluster_roles: Vec<ClusterRole>,
    cluster_role_names: HashMap<String, usize>,
    pub(crate) cluster_bindings: BindingSet,
    /// Namespace → its RoleBindings.
    pub(crate) namespaces: HashMap<String, BindingSet>,
}

/// Something worth telling the operator about the objects an index was built from. None of
/// these stop the index from being built; each one can only take permissions away.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RbacWarning {
    /// Aggregation did not settle. Not expected to happen (see the aggregation module); the
    /// rules reached so far are used.
    #[error("aggregation of ClusterRoles {names:?} did not settle")]
    AggregationNotSettled {
        /// The aggregated ClusterRoles.
        names: Vec<String>,
    },
    /// Two objects share a kind, namespace and name; the first one is used.
    #[error("{kind} {} appears more than once, the first one is used", describe(.namespace, .name))]
    Duplicate {
        /// `Role`, `ClusterRole`, `RoleBinding` or `ClusterRoleBinding`.
        kind: &'static str,
        /// The namespace, empty for cluster-scoped kinds.
        namespace: String,
        /// The name.
        name: String,
    },
    /// A binding references a role that does not exist; it grants nothing until the role is
    /// created.
    #[error("{binding} references a missing role: {source}")]
    RoleNotFound {
        /// The binding.
        binding: BindingRef,
        /// What is missing.
        #[source]
        source: RoleRefError,
    },
    /// An object does not parse and is left out of the index.
    #[error("{kind} {} is ignored: {source}", describe(.namespace, .name))]
    Skipped {
        /// `Role`, `ClusterRole`, `RoleBinding` or `ClusterRoleBinding`.
        kind: &'static str,
        /// The namespace, if one could be read.
        namespace: String,
        /// The name, if one could be read.
        name: String,
        /// Why it does not parse.
        #[source]
        source: ParseError,
    },
}

/// A role reference that cannot be resolved. The message is kube-apiserver's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleRefError {
    /// The referenced Role or ClusterRole does not exist (a ClusterRoleBinding that references
    /// a Role is reported this way too, as upstream's lister would).
    #[error("{}.rbac.authorization.k8s.io {} not found", kind_singular(*.kind), quote(.name))]
    NotFound {
        /// The kind referenced.
        kind: RoleRefKind,
        /// The namespace searched, empty for ClusterRoles.
        namespace: String,
        /// The name referenced.
        name: String,
    },
}

/// The kind of a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindingKind {
    /// A ClusterRoleBinding.
    ClusterRoleBinding,
    /// A RoleBinding.
    RoleBinding,
}

/// Which binding: kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingRef {
    /// The kind.
    pub kind: BindingKind,
    /// The namespace, empty for a ClusterRoleBinding.
    pub namespace: String,
    /// The name.
    pub name: String,
}

/// Where a rule comes from: the binding, its role and the subject that matched. `Display`
/// gives upstream's description, e.g. `RoleBinding "rb/ns" of Role "r" to User "alice"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSource<'a> {
    /// The binding's kind.
    pub kind: BindingKind,
    /// The binding's namespace, empty for a ClusterRoleBinding.
    pub namespace: &'a str,
    /// The binding's name.
    pub name: &'a str,
    /// The role the binding grants.
    pub role_ref: &'a RoleRef,
    /// The first subject of the binding that applies to the user.
    pub subject: &'a Subject,
}

/// The rules of a user in a namespace, and the role references that could not be resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedRules {
    /// Every rule of every binding that applies, in evaluation order, duplicates kept.
    pub rules: Vec<PolicyRule>,
    /// The bindings whose role is missing.
    pub errors: Vec<RoleRefError>,
}

/// The bindings of one scope (all ClusterRoleBindings, or the RoleBindings of a namespace),
/// sorted by name and indexed by subject.
#[derive(Clone, Debug, Default)]
pub(crate) struct BindingSet {
    pub(crate) bindings: Vec<Binding>,
    /// User name (users and service accounts) → (binding, subject) pairs, sorted.
    by_username: HashMap<String, Vec<(usize, usize)>>,
    /// Group name → (binding, subject) pairs, sorted.
    by_group: HashMap<String, Vec<(usize, usize)>>,
}

/// A binding with its role reference resolved.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub(crate) kind: BindingKind,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) role_ref: RoleRef,
    pub(crate) subjects: Vec<Subject>,
    pub(crate) target: Result<Target, RoleRefError>,
}

/// A resolved role reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    ClusterRole(usize),
    Role(usize),
}

// === impl RbacIndex ===

impl RbacIndex {
    /// Parses and indexes a snapshot of every Role, ClusterRole, RoleBinding and
    /// ClusterRoleBinding, in their Kubernetes JSON shape.
    ///
    /// Never fails: objects that do not parse are left out and reported, with duplicates and
    /// bindings to missing roles, in the returned warnings.
    pub fn build(
        roles: &[Value],
        cluster_roles: &[Value],
        role_bindings: &[Value],
        cluster_role_bindings: &[Value],
    ) -> (Self, Vec<RbacWarning>) {
        let mut warnings = Vec::new();
        let roles = parse_all(roles, "Role", Role::from_value, &mut warnings);
        let cluster_roles = parse_all(
            cluster_roles,
            "ClusterRole",
            ClusterRole::from_value,
            &mut warnings,
        );
        let role_bindings = parse_all(
            role_bindings,
            "RoleBinding",
            RoleBinding::from_value,
            &mut warnings,
        );
        let cluster_role_bindings = parse_all(
            cluster_role_bindings,
            "ClusterRoleBinding",
            ClusterRoleBinding::from_value,
            &mut warnings,
        );
        let (index, more) =
            Self::from_objects(roles, cluster_roles, role_bindings, cluster_role_bindings);
        warnings.extend(more);
        (index, warnings)
    }

    /// Indexes already-parsed objects. ClusterRole aggregation is computed here: the stored
    /// rules of an aggregated ClusterRole are replaced.
    pub fn from_objects(
        mut roles: Vec<Role>,
        mut cluster_roles: Vec<ClusterRole>,
        role_bindings: Vec<RoleBinding>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
    ) -> (Self, Vec<RbacWarning>) {
        let mut warnings = Vec::new();

        roles.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        dedup(
            &mut roles,
            "Role",
            |r| (&r.namespace, &r.name),
            &mut warnings,
        );
        let mut role_names: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for (i, role) in roles.iter().enumerate() {
            role_names
                .entry(role.namespace.clone())
                .or_default()
                .insert(role.name.clone(), i);
        }

        cluster_roles.sort_by(|a, b| a.name.cmp(&b.name));
        dedup(
            &mut cluster_roles,
            "ClusterRole",
            |r| ("", &r.name),
            &mut warnings,
        );
        crate::aggregation::aggregate(&mut cluster_roles, &mut warnings);
        let cluster_role_names = cluster_roles
            .iter()
            .enumerate()
            .map(|(i, role)| (role.name.clone(), i))
            .collect();

        let mut index = Self {
            roles,
            role_names,
            cluster_roles,
            cluster_role_names,
            ..Self::default()
        };

        let mut cluster_bindings: Vec<Binding> = cluster_role_bindings
            .into_iter()
            .map(|b| {
                index.binding(
                    BindingKind::ClusterRoleBinding,
                    String::new(),
                    b.name,
                    b.role_ref,
                    b.subjects,
                )
            })
            .collect();
        cluster_bindings.sort_by(|a, b| a.name.cmp(&b.name));
        dedup(
            &mut cluster_bindings,
            "ClusterRoleBinding",
            |b| ("", &b.name),
            &mut warnings,
        );

        let mut namespaced: HashMap<String, Vec<Binding>> = HashMap::new();
        for b in role_bindings {
            let binding = index.binding(
                BindingKind::RoleBinding,
                b.namespace,
                b.name,
                b.role_ref,
                b.subjects,
            );
            namespaced
                .entry(binding.namespace.clone())
                .or_default()
                .push(binding);
        }
        let mut namespaces: Vec<(String, Vec<Binding>)> = namespaced.into_iter().collect();
        namespaces.sort_by(|a, b| a.0.cmp(&b.0));

        index.cluster_bindings = BindingSet::new(cluster_bindings, &mut warnings);
        for (namespace, mut bindings) in namespaces {
            bindings.sort_by(|a, b| a.name.cmp(&b.name));
            dedup(
                &mut bindings,
                "RoleBinding",
                |b| (&b.namespace, &b.name),
                &mut warnings,
            );
            index
                .namespaces
                .insert(namespace, BindingSet::new(bindings, &mut warnings));
        }
        (index, warnings)
    }

    /// Authorizes a request: upstream's `RBACAuthorizer.Authorize`.
    ///
    /// Returns [`Decision::Allow`] with a reason such as
    /// `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to Group "z"`, or
    /// [`Decision::NoOpinion`] (which means denied) with an empty reason, or `RBAC: ` and the
    /// role references that could not be resolved.
    pub fn authorize(&self, attributes: &Attributes) -> Decision {
        let mut errors = Vec::new();
        let mut allowed = None;
        self.visit_rules_for(&attributes.user, &attributes.namespace, |source, rule| {
            match rule {
                Ok(rule) if rule.allows(attributes) => {
                    allowed = Some(format!("RBAC: allowed by {source}"));
                    return ControlFlow::Break(());
                }
                Ok(_) => {}
                Err(error) => errors.push(error.to_string()),
            }
            ControlFlow::Continue(())
        });
        match allowed {
            Some(reason) => Decision::Allow { reason },
            None if errors.is_empty() => Decision::NoOpinion {
                reason: String::new(),
            },
            None => Decision::NoOpinion {
                reason: format!("RBAC: {}", aggregate(&errors)),
            },
        }
    }

    /// The rules of `user` in `namespace` (empty: cluster scope), split as
    /// SelfSubjectRulesReview does: rules with resources, and rules with non-resource URLs (a
    /// rule with both appears in both). Duplicates are kept, as upstream.
    pub fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Vec<PolicyRule>) {
        self.resolve_rules(user, namespace).split()
    }

    /// Every rule of `user` in `namespace`, unsplit, and the role references that could not be
    /// resolved: upstream's `RulesFor`. This is what escalation checks compare against.
    pub fn resolve_rules(&self, user: &UserInfo, namespace: &str) -> ResolvedRules {
        let mut resolved = ResolvedRules::default();
        self.visit_rules_for(user, namespace, |_, rule| {
            match rule {
                Ok(rule) => resolved.rules.push(rule.clone()),
                Err(error) => resolved.errors.push(error.clone()),
            }
            ControlFlow::Continue(())
        });
        resolved
    }

    /// Calls `visitor` with each rule that applies to `user` in `namespace`, and with each
    /// role reference that cannot be resolved, in evaluation order, until it breaks: upstream's
    /// `VisitRulesFor`.
    pub fn visit_rules_for<F>(&self, user: &UserInfo, namespace: &str, mut visitor: F)
    where
        F: FnMut(&RuleSource<'_>, Result<&PolicyRule, &RoleRefError>) -> ControlFlow<()>,
    {
        if self
            .visit_set(&self.cluster_bindings, user, &mut visitor)
            .is_break()
        {
            return;
        }
        if namespace.is_empty() {
            return;
        }
        if let Some(set) = self.namespaces.get(namespace) {
            let _ = self.visit_set(set, user, &mut visitor);
        }
    }

    /// The ClusterRole `name`, with aggregated rules computed.
    pub fn cluster_role(&self, name: &str) -> Option<&ClusterRole> {
        self.cluster_role_names
            .get(name)
            .map(|&i| &self.cluster_roles[i])
    }

    /// The Role `namespace/name`.
    pub fn role(&self, namespace: &str, name: &str) -> Option<&Role> {
        self.role_names
            .get(namespace)
            .and_then(|names| names.get(name))
            .map(|&i| &self.roles[i])
    }

    /// The rules a binding in `namespace` (empty for a ClusterRoleBinding) with this role
    /// reference would grant: upstream's `GetRoleReferenceRules`.
    ///
    /// # Errors
    ///
    /// [`RoleRefError::NotFound`] if the role does not exist, or a Role is referenced from the
    /// cluster scope.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<&[PolicyRule], RoleRefError> {
        self.resolve(role_ref, namespace)
            .map(|target| self.target_rules(target))
    }

    // --- helpers ---

    fn binding(
        &self,
        kind: BindingKind,
        namespace: String,
        name: String,
        role_ref: RoleRef,
        subjects: Vec<Subject>,
    ) -> Binding {
        let target = self.resolve(&role_ref, &namespace);
        Binding {
            kind,
            namespace,
            name,
            role_ref,
            subjects,
            target,
        }
    }

    fn resolve(&self, role_ref: &RoleRef, namespace: &str) -> Result<Target, RoleRefError> {
        let found = match role_ref.kind {
            RoleRefKind::ClusterRole => self
                .cluster_role_names
                .get(&role_ref.name)
                .map(|&i| Target::ClusterRole(i)),
            RoleRefKind::Role if namespace.is_empty() => None,
            RoleRefKind::Role => self
                .role_names
                .get(namespace)
                .and_then(|names| names.get(&role_ref.name))
                .map(|&i| Target::Role(i)),
        };
        found.ok_or_else(|| RoleRefError::NotFound {
            kind: role_ref.kind,
            namespace: match role_ref.kind {
                RoleRefKind::ClusterRole => String::new(),
                RoleRefKind::Role => namespace.to_owned(),
            },
            name: role_ref.name.clone(),
        })
    }

    pub(crate) fn target_rules(&self, target: Target) -> &[PolicyRule] {
        match target {
            Target::ClusterRole(i) => &self.cluster_roles[i].rules,
            Target::Role(i) => &self.roles[i].rules,
        }
    }

    fn visit_set<F>(&self, set: &BindingSet, user: &UserInfo, visitor: &mut F) -> ControlFlow<()>
    where
        F: FnMut(&RuleSource<'_>, Result<&PolicyRule, &RoleRefError>) -> ControlFlow<()>,
    {
        for (b, s) in set.applicable(user) {
            let binding = &set.bindings[b];
            let source = RuleSource {
                kind: binding.kind,
                namespace: &binding.namespace,
                name: &binding.name,
                role_ref: &binding.role_ref,
                subject: &binding.subjects[s],
            };
            match &binding.target {
                Ok(target) => {
                    for rule in self.target_rules(*target) {
                        visitor(&source, Ok(rule))?;
                    }
                }
                Err(error) => visitor(&source, Err(error))?,
            }
        }
        ControlFlow::Continue(())
    }
}

// === impl BindingSet ===

impl BindingSet {
    /// Indexes `bindings` (sorted by name, names unique) by subject, and warns about the ones
    /// whose role is missing.
    fn new(bindings: Vec<Binding>, warnings: &mut Vec<RbacWarning>) -> Self {
        let mut set = Self::default();
        for (b, binding) in bindings.iter().enumerate() {
            if let Err(source) = &binding.target {
                warnings.push(RbacWarning::RoleNotFound {
                    binding: binding.reference(),
                    source: source.clone(),
                });
            }
            for (s, subject) in binding.subjects.iter().enumerate() {
                match subject.kind {
                    SubjectKind::Group => set
                        .by_group
                        .entry(subject.name.clone())
                        .or_default()
                        .push((b, s)),
                    SubjectKind::User => set
                        .by_username
                        .entry(subject.name.clone())
                        .or_default()
                        .push((b, s)),
                    SubjectKind::ServiceAccount => {
                        if let Some(username) = binding.service_account_username(subject) {
                            set.by_username.entry(username).or_default().push((b, s));
                        }
                    }
                }
            }
        }
        set.bindings = bindings;
        set
    }

    /// The bindings that apply to `user`, in order, each with the first subject that applies
    /// (upstream's `appliesTo`).
    fn applicable(&self, user: &UserInfo) -> Vec<(usize, usize)> {
        let mut hits: Vec<(usize, usize)> = Vec::new();
        if let Some(found) = self.by_username.get(&user.username) {
            hits.extend_from_slice(found);
        }
        for group in &user.groups {
            if let Some(found) = self.by_group.get(group) {
                hits.extend_from_slice(found);
            }
        }
        hits.sort_unstable();
        hits.dedup_by_key(|(b, _)| *b);
        hits
    }
}

// === impl Binding ===

impl Binding {
    pub(crate) fn reference(&self) -> BindingRef {
        BindingRef {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// The namespace a service account subject lives in: its own, or the RoleBinding's.
    /// `None` (matches nobody) for a ClusterRoleBinding subject without a namespace.
    pub(crate) fn service_account_namespace<'a>(&'a self, subject: &'a Subject) -> Option<&'a str> {
        let namespace = if subject.namespace.is_empty() {
            &self.namespace
        } else {
            &subject.namespace
        };
        (!namespace.is_empty()).then_some(namespace.as_str())
    }

    fn service_account_username(&self, subject: &Subject) -> Option<String> {
        self.service_account_namespace(subject)
            .map(|namespace| service_account_username(namespace, &subject.name))
    }
}

// === impl ResolvedRules ===

impl ResolvedRules {
    /// Splits the rules as [`RbacIndex::rules_for`] does.
    pub fn split(self) -> (Vec<PolicyRule>, Vec<PolicyRule>) {
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        for rule in self.rules {
            match (rule.resources.is_empty(), rule.non_resource_urls.is_empty()) {
                (false, false) => {
                    non_resource_rules.push(rule.clone());
                    resource_rules.push(rule);
                }
                (false, true) => resource_rules.push(rule),
                (true, false) => non_resource_rules.push(rule),
                (true, true) => {}
            }
        }
        (resource_rules, non_resource_rules)
    }

    /// The `status.evaluationError` of a SelfSubjectRulesReview: empty, or the resolution
    /// errors as upstream's aggregate error prints them.
    pub fn evaluation_error(&self) -> String {
        let errors: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        aggregate(&errors)
    }
}

// === Display ===

impl fmt::Display for BindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClusterRoleBinding => "ClusterRoleBinding",
            Self::RoleBinding => "RoleBinding",
        })
    }
}

/// `ClusterRoleBinding "name"` or, as upstream writes it, `RoleBinding "name/namespace"`.
impl fmt::Display for BindingRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_binding(f, self.kind, &self.namespace, &self.name)
    }
}

/// Upstream's `clusterRoleBindingDescriber` and `roleBindingDescriber`.
impl fmt::Display for RuleSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_binding(f, self.kind, self.namespace, self.name)?;
        write!(
            f,
            " of {} {} to {} ",
            self.role_ref.kind,
            quote(&self.role_ref.name),
            self.subject.kind
        )?;
        match self.subject.kind {
            SubjectKind::ServiceAccount => {
                let namespace = if self.subject.namespace.is_empty() {
                    self.namespace
                } else {
                    &self.subject.namespace
                };
                f.write_str(&quote(&format!("{}/{namespace}", self.subject.name)))
            }
            SubjectKind::Group | SubjectKind::User => f.write_str(&quote(&self.subject.name)),
        }
    }
}

fn write_binding(
    f: &mut fmt::Formatter<'_>,
    kind: BindingKind,
    namespace: &str,
    name: &str,
) -> fmt::Result {
    match kind {
        BindingKind::ClusterRoleBinding => write!(f, "{kind} {}", quote(name)),
        BindingKind::RoleBinding => write!(f, "{kind} {}", quote(&format!("{name}/{namespace}"))),
    }
}

fn describe(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        quote(name)
    } else {
        quote(&format!("{namespace}/{name}"))
    }
}

fn kind_singular(kind: RoleRefKind) -> &'static str {
    match kind {
        RoleRefKind::ClusterRole => "clusterrole",
        RoleRefKind::Role => "role",
    }
}

// === building helpers ===

fn parse_all<T>(
    values: &[Value],
    kind: &'static str,
    parse: fn(&Value) -> Result<T, ParseError>,
    warnings: &mut Vec<RbacWarning>,
) -> Vec<T> {
    let mut parsed = Vec::with_capacity(values.len());
    for value in values {
        match parse(value) {
            Ok(object) => parsed.push(object),
            Err(source) => {
                let metadata_field = |key: &str| {
                    value
                        .pointer(&format!("/metadata/{key}"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                warnings.push(RbacWarning::Skipped {
                    kind,
                    namespace: metadata_field("namespace"),
                    name: metadata_field("name"),
                    source,
                });
            }
        }
    }
    parsed
}

/// Drops every element whose key equals the previous one's (`items` is sorted stably by key,
/// so the first one given is kept), with a warning.
fn dedup<T>(
    items: &mut Vec<T>,
    kind: &'static str,
    key: impl Fn(&T) -> (&str, &str),
    warnings: &mut Vec<RbacWarning>,
) {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if let Some(last) = kept.last()
            && key(last) == key(&item)
        {
            let (namespace, name) = key(&item);
            warnings.push(RbacWarning::Duplicate {
                kind,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
            continue;
        }
        kept.push(item);
    }
    *items = kept;
}
