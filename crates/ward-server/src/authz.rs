//! Authorization: Kubernetes RBAC over the stored Roles, ClusterRoles and bindings.
//!
//! The RBAC index (`ward_rbac::RbacIndex`) is a snapshot rebuilt from storage: at start-up, after
//! every RBAC write through this server (before the reply, so a binding works as soon as it is
//! acknowledged), and on every RBAC change seen by a storage watch (writes through other replicas
//! sharing the etcd). The bootstrap ClusterRoles and ClusterRoleBindings (cluster-admin, admin,
//! edit, view, system:basic-user, system:discovery, ...) are created at start when missing.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::sync::watch;
use tracing::warn;
use ward_api::ApiError;
use ward_api::resources::{self, ResourceInfo};
use ward_api::strategy;
use ward_rbac::{Attributes, Decision, RbacIndex};
use ward_storage::Revision;

use crate::auth::UserInfo;
use crate::request::{ResourcePath, Target};
use crate::store::ObjectStore;

const RBAC: &str = "rbac.authorization.k8s.io";

/// The RBAC authorizer and its index.
pub(crate) struct Authorizer {
    index: RwLock<Arc<RbacIndex>>,
    store: ObjectStore,
    rebuild: tokio::sync::Mutex<()>,
}

fn info(resource: &str) -> Result<&'static ResourceInfo, ApiError> {
    resources::lookup(RBAC, "v1", resource)
        .ok_or_else(|| ApiError::internal(format!("{resource} are not registered")))
}

/// The RBAC view of an authenticated user.
pub(crate) fn rbac_user(u: &UserInfo) -> ward_rbac::UserInfo {
    ward_rbac::UserInfo {
        username: u.username.clone(),
        uid: u.uid.clone(),
        groups: u.groups.clone(),
        extra: u.extra.clone(),
    }
}

impl Authorizer {
    /// Creates missing bootstrap roles and bindings, then builds the index.
    pub(crate) async fn new(store: ObjectStore) -> Result<Arc<Self>, ApiError> {
        let a = Arc::new(Authorizer {
            index: RwLock::new(Arc::new(RbacIndex::build(&[], &[], &[], &[]).0)),
            store,
            rebuild: tokio::sync::Mutex::new(()),
        });
        a.ensure_bootstrap().await?;
        a.rebuild().await?;
        Ok(a)
    }

    async fn ensure_bootstrap(&self) -> Result<(), ApiError> {
        let objects = ward_rbac::bootstrap::cluster_roles()
            .into_iter()
            .map(|o| ("clusterroles", o))
            .chain(
                ward_rbac::bootstrap::cluster_role_bindings()
                    .into_iter()
                    .map(|o| ("clusterrolebindings", o)),
            );
        for (resource, obj) in objects {
            self.store.create_if_missing(info(resource)?, obj).await?;
        }
        Ok(())
    }

    /// Re-reads every RBAC object and swaps in a new index.
    pub(crate) async fn rebuild(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.rebuild.lock().await;
        let mut lists = Vec::with_capacity(4);
        for resource in [
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
        ] {
            lists.push(
                self.store
                    .list(info(resource)?, None, None, 0, None)
                    .await?
                    .items,
            );
        }
        let (index, warnings) = RbacIndex::build(&lists[0], &lists[1], &lists[2], &lists[3]);
        for w in warnings.iter().take(20) {
            warn!(warning = %w, "RBAC");
        }
        if let Ok(mut slot) = self.index.write() {
            *slot = Arc::new(index);
        }
        Ok(())
    }

    /// Follows RBAC changes made elsewhere (other replicas on the same etcd).
    pub(crate) fn spawn_watch(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let from = match me.store.storage.current_revision().await {
                    Ok(r) => r,
                    Err(_) => Revision(0),
                };
                if me.rebuild().await.is_err() {
                    warn!("RBAC index rebuild failed; retrying");
                }
                let mut streams = Vec::new();
                for resource in [
                    "roles",
                    "clusterroles",
                    "rolebindings",
                    "clusterrolebindings",
                ] {
                    let Ok(info) = info(resource) else { return };
                    match me
                        .store
                        .storage
                        .watch(info.key_prefix(None).as_bytes(), from)
                        .await
                    {
                        Ok(s) => streams.push(s),
                        Err(e) => warn!(error = %e, "RBAC watch failed"),
                    }
                }
                let mut merged = futures_util::stream::select_all(streams);
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        item = merged.next() => match item {
                            Some(Ok(ward_storage::WatchItem::Event(_))) => {
                                if me.rebuild().await.is_err() {
                                    warn!("RBAC index rebuild failed");
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => break,
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The current index.
    pub(crate) fn index(&self) -> Arc<RbacIndex> {
        match self.index.read() {
            Ok(i) => i.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// RBAC's answer, with upstream's privileged-group shortcut: `system:masters` is always
    /// allowed (so deleting the cluster-admin binding cannot lock the admin out).
    pub(crate) fn authorize(&self, attributes: &Attributes) -> Decision {
        if attributes.user.in_group(ward_rbac::SYSTEM_PRIVILEGED_GROUP) {
            return Decision::Allow {
                reason: String::new(),
            };
        }
        self.index().authorize(attributes)
    }

    /// Authorizes a request; `Err` is the 403 in upstream's wording.
    pub(crate) fn check(&self, attributes: &Attributes) -> Result<String, ApiError> {
        match self.authorize(attributes) {
            Decision::Allow { reason } => Ok(reason),
            Decision::NoOpinion { .. } => Err(forbidden(attributes)),
        }
    }

    /// Refuses a Role/ClusterRole/binding write that would grant what the user does not hold
    /// (unless the user may `escalate`/`bind`, or is in `system:masters`).
    pub(crate) fn check_escalation(
        &self,
        user: &UserInfo,
        info: &ResourceInfo,
        obj: &Value,
    ) -> Result<(), ApiError> {
        if info.group != RBAC {
            return Ok(());
        }
        let user = rbac_user(user);
        if ward_rbac::escalation_allowed(&user) {
            return Ok(());
        }
        let index = self.index();
        let ns = if info.namespaced {
            strategy::meta_str(obj, "namespace")
        } else {
            ""
        };
        let name = strategy::meta_str(obj, "name");
        let refuse = |e: &dyn std::fmt::Display| {
            ApiError::forbidden(info.group, info.resource, name, &e.to_string())
        };
        match info.kind {
            "Role" | "ClusterRole" => {
                let kind = if info.kind == "Role" {
                    ward_rbac::RoleRefKind::Role
                } else {
                    ward_rbac::RoleRefKind::ClusterRole
                };
                if index.role_escalation_authorized(&user, kind, ns, name) {
                    return Ok(());
                }
                let rules = parse_rules(obj).map_err(|e| refuse(&e))?;
                index
                    .confirm_no_escalation(&user, ns, &rules)
                    .map_err(|e| refuse(&e))
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let role_ref = if info.kind == "RoleBinding" {
                    ward_rbac::RoleBinding::from_value(obj).map(|b| b.role_ref)
                } else {
                    ward_rbac::ClusterRoleBinding::from_value(obj).map(|b| b.role_ref)
                }
                .map_err(|e| refuse(&e))?;
                if index.binding_authorized(&user, &role_ref, ns) {
                    return Ok(());
                }
                let rules = index
                    .role_ref_rules(&role_ref, ns)
                    .map_err(|e| refuse(&e))?
                    .to_vec();
                index
                    .confirm_no_escalation(&user, ns, &rules)
                    .map_err(|e| refuse(&e))
            }
            _ => Ok(()),
        }
    }
}

fn parse_rules(obj: &Value) -> Result<Vec<ward_rbac::PolicyRule>, ward_rbac::ParseError> {
    let empty = Vec::new();
    obj.get("rules")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .map(ward_rbac::PolicyRule::from_value)
        .collect()
}

/// The RBAC attributes of a request.
pub(crate) fn attributes(
    user: &UserInfo,
    target: &Target,
    verb: &str,
    path: &str,
    field_selector_name: Option<&str>,
) -> Attributes {
    let user = rbac_user(user);
    match target {
        Target::Resource(p) => resource_attributes(user, p, verb, field_selector_name),
        _ => Attributes::non_resource(user, verb, path),
    }
}

fn resource_attributes(
    user: ward_rbac::UserInfo,
    p: &ResourcePath,
    verb: &str,
    field_selector_name: Option<&str>,
) -> Attributes {
    let mut a = Attributes::resource(user, verb, p.info.group, p.info.resource);
    a.api_version = p.info.version.to_owned();
    if let Some(ns) = p.namespace.as_deref().filter(|_| p.info.namespaced) {
        a = a.in_namespace(ns);
    }
    // A namespace object is "in" its own namespace, as upstream's request info has it.
    if p.info.kind == "Namespace"
        && let Some(name) = &p.name
    {
        a = a.in_namespace(name);
    }
    match (&p.name, field_selector_name) {
        (Some(name), _) => a = a.with_name(name),
        (None, Some(name)) if verb == "list" || verb == "watch" => a = a.with_name(name),
        _ => {}
    }
    if let Some(sub) = &p.subresource {
        a = a.with_subresource(sub);
    }
    a
}

/// Upstream's 403 message (`responsewriters.forbiddenMessage`).
pub(crate) fn forbidden(a: &Attributes) -> ApiError {
    let who = format!("User {:?}", a.user.username);
    if !a.resource_request {
        return ApiError::forbidden(
            "",
            "",
            "",
            &format!("{who} cannot {} path {:?}", a.verb, a.path),
        );
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    let why = format!(
        "{who} cannot {} resource {resource:?} in API group {:?} {scope}",
        a.verb, a.api_group
    );
    ApiError::forbidden(&a.api_group, &resource, &a.name, &why)
}

/// The annotation marking a Secret whose values were withheld from a list or watch.
pub(crate) const VALUES_OMITTED: &str = "ward.dev/values-omitted";

/// Withholds Secret values from list and watch replies for callers who may not `get` that
/// Secret: they see its metadata, type and key names, with every value empty and
/// [`VALUES_OMITTED`] set to `"true"`. Upstream reveals every value to anyone who may list.
pub(crate) struct SecretFilter {
    authz: Arc<Authorizer>,
    user: ward_rbac::UserInfo,
    active: bool,
}

impl SecretFilter {
    pub(crate) fn new(
        authz: Arc<Authorizer>,
        user: &UserInfo,
        info: &ResourceInfo,
        reveal: bool,
    ) -> Self {
        let active = info.kind == "Secret" && info.group.is_empty() && !reveal;
        SecretFilter {
            authz,
            user: rbac_user(user),
            active,
        }
    }

    /// Whether this filter can change anything (Secrets, and not turned off).
    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// Redacts `obj` in place unless the caller may `get` it.
    pub(crate) fn apply(&self, obj: &mut Value) {
        if !self.active {
            return;
        }
        let ns = strategy::meta_str(obj, "namespace").to_owned();
        let name = strategy::meta_str(obj, "name").to_owned();
        let get = Attributes::resource(self.user.clone(), "get", "", "secrets")
            .in_namespace(&ns)
            .with_name(&name);
        if self.authz.authorize(&get).is_allow() {
            return;
        }
        redact_values(obj);
    }
}

/// Empties every value of a Secret (and kubectl's last-applied copy), keeping key names, and
/// marks it.
pub(crate) fn redact_values(obj: &mut Value) {
    for field in ["data", "stringData"] {
        if let Some(map) = obj.get_mut(field).and_then(Value::as_object_mut) {
            for v in map.values_mut() {
                *v = Value::String(String::new());
            }
        }
    }
    let meta = strategy::metadata_mut(obj);
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(ann) = ann {
        ann.remove(crate::admin::LAST_APPLIED);
        ann.insert(VALUES_OMITTED.into(), Value::String("true".into()));
    }
}
