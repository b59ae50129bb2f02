//! `who-can read secret NS/NAME`: every subject that can obtain a Secret's value from the RBAC
//! objects in the scanned files, and the path for each. The evaluation is `ward-rbac`'s (the
//! same code as Ward's authorizer); this module only asks it the right questions.
//!
//! # The questions
//!
//! - **Direct**: `get`, `list` and `watch` on `secrets` in the namespace (ClusterRoleBindings
//!   included). List and watch count with the name too: a `fieldSelector=metadata.name=` lift
//!   makes rules with `resourceNames` apply to them.
//! - **Through workloads**: `create` pods, `create`/`update`/`patch` any workload kind (its pod
//!   template can mount the Secret), `create`/`get` pods/exec and `update`/`patch`
//!   pods/ephemeralcontainers (entering a pod that mounts it) in the namespace.
//! - **Through other identities**: `impersonate` a direct reader (user, group or service
//!   account), and `create serviceaccounts/token` for a service account that reads it.
//! - **Through privilege escalation**: `escalate` or `bind` on roles of the namespace or on
//!   ClusterRoles (the holder can grant itself read; it also needs to write roles or bindings),
//!   and `nodes/proxy` (the kubelet API runs commands in any pod of the node).
//!
//! A rule limited by `resourceNames` counts only where the request carries that name (`get` of
//! the Secret, impersonating or minting a token for a named subject). Group membership is not
//! known from manifests: a group is reported as a group.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;
use ward_rbac::{RbacIndex, SubjectKind, SubjectPath, bootstrap, who_can};

use crate::ScanError;
use crate::input::Object;

/// The Secret a who-can query is about: `NAMESPACE/NAME`, or `NAMESPACE/*` for every Secret
/// of the namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    /// The namespace.
    pub namespace: String,
    /// The name; `None` for any Secret of the namespace.
    pub name: Option<String>,
}

impl FromStr for SecretRef {
    type Err = String;

    /// Parses `NAMESPACE/NAME` or `NAMESPACE/*`.
    ///
    /// # Errors
    /// A message naming the expected form when there is no `/` or a part is empty.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(Self {
                namespace: namespace.to_owned(),
                name: (name != "*").then(|| name.to_owned()),
            }),
            _ => Err("expected NAMESPACE/NAME (or NAMESPACE/* for any Secret)".to_owned()),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.namespace,
            self.name.as_deref().unwrap_or("*")
        )
    }
}

/// A subject as bindings name it: `User:alice`, `Group:devs`, `ServiceAccount:ns/name` (or the
/// user name `system:serviceaccount:ns:name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SubjectRef {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// The namespace of a service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl FromStr for SubjectRef {
    type Err = String;

    /// Parses `User:NAME`, `Group:NAME`, `ServiceAccount:NAMESPACE/NAME` or
    /// `system:serviceaccount:NAMESPACE:NAME`.
    ///
    /// # Errors
    /// A message naming the expected forms.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || {
            "expected User:NAME, Group:NAME, ServiceAccount:NAMESPACE/NAME or \
             system:serviceaccount:NAMESPACE:NAME"
                .to_owned()
        };
        if let Some(rest) = s.strip_prefix("system:serviceaccount:") {
            let (namespace, name) = rest.split_once(':').ok_or_else(expected)?;
            return Ok(Self::service_account(namespace, name));
        }
        let (kind, name) = s.split_once(':').ok_or_else(expected)?;
        match kind {
            "User" | "Group" if !name.is_empty() => Ok(Self {
                kind: kind.to_owned(),
                namespace: None,
                name: name.to_owned(),
            }),
            "ServiceAccount" => {
                let (namespace, name) = name.split_once('/').ok_or_else(expected)?;
                Ok(Self::service_account(namespace, name))
            }
            _ => Err(expected()),
        }
    }
}

impl SubjectRef {
    fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            kind: "ServiceAccount".to_owned(),
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Whether a path reads the Secret itself or gets there another way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// get, list or watch on the Secret.
    Direct,
    /// Workloads, impersonation, token minting, escalation or the kubelet API.
    Indirect,
}

/// One way a subject can obtain the Secret's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AccessPath {
    /// Who.
    pub subject: SubjectRef,
    /// Direct or indirect.
    pub access: Access,
    /// The permissions used, e.g. `list`, `create pods`, `impersonate User alice`.
    pub how: Vec<String>,
    /// The binding that grants them, e.g. `RoleBinding "read/team-a"`.
    pub binding: String,
    /// The role it binds, e.g. `ClusterRole "edit"`.
    pub role: String,
}

/// The answer to a who-can query.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WhoCanReport {
    /// The Secret asked about.
    pub secret: SecretRef,
    /// Every path, direct ones first, then by subject.
    pub paths: Vec<AccessPath>,
    /// RBAC objects that could not be used (missing role, malformed object), by description.
    pub warnings: Vec<String>,
}

/// Options of a who-can query.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WhoCanOptions {
    /// Add the built-in ClusterRoles and ClusterRoleBindings (`cluster-admin` for
    /// `system:masters`, `admin`, `edit`, `view`…) unless the scan has objects of the same name.
    pub builtin_roles: bool,
    /// Namespace for Roles and RoleBindings that have none (Helm output, plain manifests).
    pub default_namespace: String,
    /// Keep only the paths of this subject.
    pub subject: Option<SubjectRef>,
}

impl Default for WhoCanOptions {
    fn default() -> Self {
        Self {
            builtin_roles: true,
            default_namespace: "default".to_owned(),
            subject: None,
        }
    }
}

/// Answers `who-can read secret` over the RBAC objects among `objects`.
pub(crate) fn who_can_read(
    objects: &[Object],
    secret: &SecretRef,
    options: &WhoCanOptions,
) -> WhoCanReport {
    let index = Index::build(objects, options);
    let namespace = secret.namespace.as_str();
    let name = secret.name.as_deref().unwrap_or("");
    let mut rows = Rows::default();

    let mut readers = Vec::new();
    for verb in ["get", "list", "watch"] {
        for path in who_can(&index.rbac, verb, "", "secrets", namespace, name) {
            readers.push(path.subject.clone());
            rows.add(path, Access::Direct, verb.to_owned());
        }
    }
    for (verbs, group, resource, label) in WORKLOAD_QUESTIONS {
        for verb in *verbs {
            for path in who_can(&index.rbac, verb, group, resource, namespace, "") {
                rows.add(path, Access::Indirect, format!("{verb} {label}"));
            }
        }
    }
    readers.sort();
    readers.dedup();
    for reader in &readers {
        let (resource, reader_namespace) = match reader.kind {
            SubjectKind::User => ("users", ""),
            SubjectKind::Group => ("groups", ""),
            SubjectKind::ServiceAccount => ("serviceaccounts", reader.namespace.as_str()),
        };
        let label = subject_ref(reader);
        for path in who_can(
            &index.rbac,
            "impersonate",
            "",
            resource,
            reader_namespace,
            &reader.name,
        ) {
            rows.add(path, Access::Indirect, format!("impersonate {label}"));
        }
        if reader.kind == SubjectKind::ServiceAccount {
            for path in who_can(
                &index.rbac,
                "create",
                "",
                "serviceaccounts/token",
                &reader.namespace,
                &reader.name,
            ) {
                rows.add(
                    path,
                    Access::Indirect,
                    format!("create a token for {label}"),
                );
            }
        }
    }
    for (verb, resource, scope) in [
        ("escalate", "roles", namespace),
        ("bind", "roles", namespace),
        ("escalate", "clusterroles", ""),
        ("bind", "clusterroles", ""),
    ] {
        for path in who_can(
            &index.rbac,
            verb,
            "rbac.authorization.k8s.io",
            resource,
            scope,
            "",
        ) {
            rows.add(path, Access::Indirect, format!("{verb} {resource}"));
        }
    }
    for verb in ["get", "create"] {
        for path in who_can(&index.rbac, verb, "", "nodes/proxy", "", "") {
            rows.add(
                path,
                Access::Indirect,
                "nodes/proxy (kubelet API)".to_owned(),
            );
        }
    }

    let mut paths = rows.finish();
    if let Some(subject) = &options.subject {
        paths.retain(|p| &p.subject == subject);
    }
    WhoCanReport {
        secret: secret.clone(),
        paths,
        warnings: index.warnings,
    }
}

/// (verbs, group, resource, label) asked in the Secret's namespace.
const WORKLOAD_QUESTIONS: &[(&[&str], &str, &str, &str)] = &[
    (&["create"], "", "pods", "pods"),
    (&["create", "get"], "", "pods/exec", "pods/exec"),
    (
        &["update", "patch"],
        "",
        "pods/ephemeralcontainers",
        "pods/ephemeralcontainers",
    ),
    (
        &["create", "update", "patch"],
        "",
        "replicationcontrollers",
        "replicationcontrollers",
    ),
    (
        &["create", "update", "patch"],
        "apps",
        "deployments",
        "deployments.apps",
    ),
    (
        &["create", "update", "patch"],
        "apps",
        "statefulsets",
        "statefulsets.apps",
    ),
    (
        &["create", "update", "patch"],
        "apps",
        "daemonsets",
        "daemonsets.apps",
    ),
    (
        &["create", "update", "patch"],
        "apps",
        "replicasets",
        "replicasets.apps",
    ),
    (
        &["create", "update", "patch"],
        "batch",
        "jobs",
        "jobs.batch",
    ),
    (
        &["create", "update", "patch"],
        "batch",
        "cronjobs",
        "cronjobs.batch",
    ),
];

struct Index {
    rbac: RbacIndex,
    warnings: Vec<String>,
}

impl Index {
    fn build(objects: &[Object], options: &WhoCanOptions) -> Self {
        let mut roles = Vec::new();
        let mut cluster_roles = Vec::new();
        let mut role_bindings = Vec::new();
        let mut cluster_role_bindings = Vec::new();
        for object in objects {
            let rbac = object
                .resource
                .api_version
                .as_deref()
                .is_some_and(|v| v.starts_with("rbac.authorization.k8s.io/"));
            if !rbac {
                continue;
            }
            let mut value = object.node.to_json();
            let list = match object.resource.kind.as_str() {
                "Role" => &mut roles,
                "RoleBinding" => &mut role_bindings,
                "ClusterRole" => &mut cluster_roles,
                "ClusterRoleBinding" => &mut cluster_role_bindings,
                _ => continue,
            };
            if matches!(object.resource.kind.as_str(), "Role" | "RoleBinding")
                && object.resource.namespace.is_none()
                && let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut)
            {
                metadata.insert(
                    "namespace".to_owned(),
                    Value::String(options.default_namespace.clone()),
                );
            }
            list.push(value);
        }
        let (builtin_roles, builtin_bindings) = if options.builtin_roles {
            (
                not_scanned(bootstrap::cluster_roles(), &cluster_roles),
                not_scanned(bootstrap::cluster_role_bindings(), &cluster_role_bindings),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        cluster_roles.extend(builtin_roles);
        cluster_role_bindings.extend(builtin_bindings);
        let (rbac, warnings) = RbacIndex::build(
            &roles,
            &cluster_roles,
            &role_bindings,
            &cluster_role_bindings,
        );
        Self {
            rbac,
            warnings: warnings.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The built-in objects whose name no scanned object of the same kind has.
fn not_scanned(builtin: Vec<Value>, scanned: &[Value]) -> Vec<Value> {
    builtin
        .into_iter()
        .filter(|b| {
            let name = b.pointer("/metadata/name");
            !scanned.iter().any(|s| s.pointer("/metadata/name") == name)
        })
        .collect()
}

/// Paths grouped by (subject, access, binding, role), each with the permissions used.
#[derive(Default)]
struct Rows {
    rows: BTreeMap<(Access, SubjectRef, String, String), Vec<String>>,
}

impl Rows {
    fn add(&mut self, path: SubjectPath, access: Access, how: String) {
        let role = format!("{} \"{}\"", path.role_ref.kind, path.role_ref.name);
        let key = (
            access,
            subject_ref(&path.subject),
            path.binding.to_string(),
            role,
        );
        let list = self.rows.entry(key).or_default();
        if !list.contains(&how) {
            list.push(how);
        }
    }

    fn finish(self) -> Vec<AccessPath> {
        self.rows
            .into_iter()
            .map(|((access, subject, binding, role), how)| AccessPath {
                subject,
                access,
                how,
                binding,
                role,
            })
            .collect()
    }
}

fn subject_ref(subject: &ward_rbac::Subject) -> SubjectRef {
    SubjectRef {
        kind: subject.kind.as_str().to_owned(),
        namespace: (subject.kind == SubjectKind::ServiceAccount).then(|| subject.namespace.clone()),
        name: subject.name.clone(),
    }
}

/// `get, list` → `get/list`; `create pods, create pods/exec, get pods/exec` →
/// `create pods; create/get pods/exec`; every workload kind at once →
/// `create/update/patch any workload`.
fn compact_how(how: &[String]) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for entry in how {
        let (verb, object) = match entry.split_once(' ') {
            Some((verb, object))
                if matches!(
                    verb,
                    "create" | "get" | "update" | "patch" | "escalate" | "bind"
                ) =>
            {
                (verb, object.to_owned())
            }
            // A bare verb (`get`) is on the Secret itself.
            None => (entry.as_str(), String::new()),
            _ => ("", entry.clone()),
        };
        match groups.iter_mut().find(|(o, _)| *o == object) {
            Some((_, verbs)) => verbs.push(verb),
            None => groups.push((object, vec![verb])),
        }
    }
    let workloads: Vec<&str> = WORKLOAD_QUESTIONS
        .iter()
        .filter(|(verbs, ..)| verbs.contains(&"patch") && verbs.contains(&"create"))
        .map(|(.., label)| *label)
        .collect();
    let all_workloads = workloads
        .iter()
        .all(|w| groups.iter().any(|(o, verbs)| o == w && verbs.len() == 3));
    let mut parts = Vec::new();
    let mut workloads_written = false;
    for (object, verbs) in &groups {
        if all_workloads && workloads.contains(&object.as_str()) {
            if !workloads_written {
                parts.push("create/update/patch any workload".to_owned());
                workloads_written = true;
            }
            continue;
        }
        let verbs: Vec<&str> = verbs.iter().copied().filter(|v| !v.is_empty()).collect();
        if verbs.is_empty() {
            parts.push(object.clone());
        } else if object.is_empty() {
            parts.push(verbs.join("/"));
        } else {
            parts.push(format!("{} {object}", verbs.join("/")));
        }
    }
    parts.join("; ")
}

// === impl WhoCanReport ===

impl WhoCanReport {
    /// Writes a table: one line per subject and binding, direct paths first.
    ///
    /// # Errors
    /// [`ScanError::Write`] if `out` fails.
    pub fn write_table(&self, out: &mut dyn Write) -> Result<(), ScanError> {
        let subjects = {
            let mut s: Vec<&SubjectRef> = self.paths.iter().map(|p| &p.subject).collect();
            s.sort();
            s.dedup();
            s.len()
        };
        if self.paths.is_empty() {
            writeln!(
                out,
                "No subject in the scanned RBAC objects can read Secret {}.",
                self.secret
            )?;
        } else {
            writeln!(
                out,
                "Secret {} can be read by {subjects} subject{} ({} path{}):\n",
                self.secret,
                if subjects == 1 { "" } else { "s" },
                self.paths.len(),
                if self.paths.len() == 1 { "" } else { "s" },
            )?;
            let header = ["SUBJECT", "ACCESS", "GRANTED BY", "HOW"].map(String::from);
            let rows: Vec<[String; 4]> = self
                .paths
                .iter()
                .map(|p| {
                    [
                        p.subject.to_string(),
                        match p.access {
                            Access::Direct => "direct",
                            Access::Indirect => "indirect",
                        }
                        .to_owned(),
                        format!("{} of {}", p.binding, p.role),
                        compact_how(&p.how),
                    ]
                })
                .collect();
            crate::output::write_columns(out, &header, &rows)?;
        }
        if !self.warnings.is_empty() {
            writeln!(out, "\nWarnings:")?;
            for warning in &self.warnings {
                writeln!(out, "  {warning}")?;
            }
        }
        Ok(())
    }

    /// Writes `{"secret":{"namespace","name"},"paths":[{"subject":{"kind","namespace"?,
    /// "name"},"access","how":[..],"binding","role"}],"warnings":[..]}`.
    ///
    /// # Errors
    /// [`ScanError::Write`] if `out` fails.
    pub fn write_json(&self, out: &mut dyn Write) -> Result<(), ScanError> {
        #[derive(Serialize)]
        struct Json<'a> {
            secret: &'a SecretRef,
            paths: &'a [AccessPath],
            warnings: &'a [String],
        }
        let json = Json {
            secret: &self.secret,
            paths: &self.paths,
            warnings: &self.warnings,
        };
        serde_json::to_writer_pretty(&mut *out, &json)
            .map_err(|e| ScanError::Write { source: e.into() })?;
        writeln!(out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refs() {
        assert_eq!(
            "team-a/db".parse::<SecretRef>(),
            Ok(SecretRef {
                namespace: "team-a".into(),
                name: Some("db".into())
            })
        );
        assert_eq!("team-a/*".parse::<SecretRef>().unwrap().name, None);
        assert!("db".parse::<SecretRef>().is_err());
        assert!("/db".parse::<SecretRef>().is_err());
        let sa: SubjectRef = "system:serviceaccount:ci:deployer".parse().unwrap();
        assert_eq!(sa, "ServiceAccount:ci/deployer".parse().unwrap());
        assert_eq!(sa.to_string(), "ServiceAccount ci/deployer");
        assert_eq!(
            "User:alice".parse::<SubjectRef>().unwrap().to_string(),
            "User alice"
        );
        assert!("Robot:r2".parse::<SubjectRef>().is_err());
        assert!("User:".parse::<SubjectRef>().is_err());
    }
}
