//! What to deliver where: the agent's configuration file, or the secret volumes of a workload
//! manifest, both parsed into one [`Plan`].
//!
//! The configuration file lists volumes in Kubernetes' own Pod volume syntax (`secret`,
//! `configMap`, `projected` with `secret` and `configMap` sources), each with a `target`
//! (a directory, or with `subPath` a single file), as a Pod's `volumeMounts` would place them:
//!
//! ```yaml
//! namespace: prod            # optional: --namespace, then the kubeconfig's namespace
//! volumes:
//!   - name: db
//!     target: /run/secrets/db
//!     secret:
//!       secretName: db
//!       defaultMode: 0400     # YAML 1.1 octal, as in Kubernetes manifests
//!       items: [{key: password, path: password}]
//!   - name: app
//!     target: /run/secrets/app
//!     projected:
//!       sources:
//!         - secret: {name: api, items: [{key: token, path: api/token, mode: 0440}]}
//!         - configMap: {name: app-settings, optional: true}
//!   - name: db-password
//!     target: /etc/app/db-password   # one file, replaced atomically
//!     subPath: password
//!     secret: {secretName: db}
//! ```
//!
//! Differences from the kubelet, on purpose: `defaultMode` defaults to `0400` (not `0644`), and
//! a `subPath` target is updated (the kubelet never updates subPath mounts).
//!
//! `--from-manifest` reads a Pod or a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet,
//! Job, CronJob): each container's `volumeMounts` of secret, configMap and projected volumes
//! become targets (under `--mount-root`), and environment variables taken from Secrets
//! (`env[].valueFrom.secretKeyRef`, `envFrom[].secretRef`) become one file per variable in
//! `--env-dir`, so an application can read them from files instead of its environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::AgentError;
use crate::object::{Kind, Namespace, ObjectName};

/// Everything the agent delivers.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The namespace the file or manifest names, if any.
    pub(crate) namespace: Option<Namespace>,
    pub(crate) volumes: Vec<Volume>,
    /// Parts of a manifest that were skipped, for the log.
    pub(crate) notes: Vec<String>,
}

/// One projection and where it goes.
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    /// For messages: `volume db` or `manifest volume db (container app)`.
    pub(crate) label: String,
    pub(crate) target: Target,
    pub(crate) default_mode: Mode,
    pub(crate) sources: Vec<Source>,
}

/// Where a projection is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A directory managed as the kubelet manages a volume (`..data` and timestamped dirs).
    Dir(PathBuf),
    /// One file of the projection (`sub_path`), replaced by rename.
    File { path: PathBuf, sub_path: RelPath },
}

impl Target {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Target::Dir(p) | Target::File { path: p, .. } => p,
        }
    }
}

/// One object read by a projection.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) kind: Kind,
    pub(crate) name: ObjectName,
    /// `None`: every key, as a file named like the key (after `prefix`).
    pub(crate) items: Option<Vec<Item>>,
    pub(crate) optional: bool,
    /// `envFrom[].prefix` of a manifest; empty otherwise.
    pub(crate) prefix: String,
}

/// `items[]`: one key to one path.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) key: String,
    pub(crate) path: RelPath,
    pub(crate) mode: Option<Mode>,
}

/// A file mode, `0..=0o777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode(pub(crate) u32);

impl Mode {
    /// The agent's default for files: owner read only.
    pub(crate) const DEFAULT: Mode = Mode(0o400);

    fn parse(v: i64) -> Result<Mode, String> {
        u32::try_from(v)
            .ok()
            .filter(|m| *m <= 0o777)
            .map(Mode)
            .ok_or_else(|| {
                format!("must be an octal mode between 0000 and 0777 (decimal 0 to 511), got {v}")
            })
    }
}

/// A relative path inside a projection, checked as the kubelet checks one: not empty, not
/// absolute, no `..` element, not starting with `..` (which would reach `..data`), no empty or
/// `.` elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RelPath(String);

impl RelPath {
    /// `Err` says what is wrong with `s`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.starts_with('/') {
            return Err(format!("{s:?} must be a relative path"));
        }
        if s.len() > MAX_PATH {
            return Err(format!("must be at most {MAX_PATH} bytes"));
        }
        if s.starts_with("..") {
            return Err(format!("{s:?} must not start with '..'"));
        }
        for part in s.split('/') {
            match part {
                "" | "." => return Err(format!("{s:?} has an empty or '.' element")),
                ".." => return Err(format!("{s:?} must not contain '..'")),
                p if p.len() > MAX_NAME => {
                    return Err(format!("{s:?} has an element longer than {MAX_NAME} bytes"));
                }
                p if p.contains('\0') => return Err("must not contain a NUL byte".into()),
                _ => {}
            }
        }
        Ok(RelPath(s.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The first element: the name the user sees at the top of the target.
    pub(crate) fn first(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

/// Options of `--from-manifest`.
pub(crate) struct ManifestOptions<'a> {
    pub(crate) workload: Option<&'a str>,
    pub(crate) containers: &'a [String],
    pub(crate) mount_root: Option<&'a Path>,
    pub(crate) env_dir: Option<&'a Path>,
}

/// Reads the agent's configuration file.
///
/// `Err(Read)` if it cannot be read; `Err(Config)` naming the field for YAML errors, unknown
/// fields, bad names, paths and modes, and targets that collide.
pub(crate) fn load_config(path: &Path) -> Result<Plan, AgentError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value: Value = serde_saphyr::from_str_with_options(&text, yaml_options())
        .map_err(|e| AgentError::config(&name, "(document)", format!("not valid YAML: {e}")))?;
    let raw: RawConfig = serde_path_to_error::deserialize(value)
        .map_err(|e| AgentError::config(&name, e.path().to_string(), e.inner().to_string()))?;
    let namespace = raw
        .namespace
        .as_deref()
        .map(Namespace::parse)
        .transpose()
        .map_err(|e| AgentError::config(&name, "namespace", e))?;
    if raw.volumes.is_empty() {
        return Err(AgentError::config(&name, "volumes", "lists no volume"));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut volumes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, v) in raw.volumes.into_iter().enumerate() {
        let at = |f: &str| format!("volumes[{i}]{f}");
        if !names.insert(v.name.clone()) {
            return Err(AgentError::config(
                &name,
                at(".name"),
                format!("{:?} is used twice", v.name),
            ));
        }
        let target = absolute(base, &v.target);
        let target = match v.sub_path {
            Some(sp) => Target::File {
                path: target,
                sub_path: RelPath::parse(&sp)
                    .map_err(|e| AgentError::config(&name, at(".subPath"), e))?,
            },
            None => Target::Dir(target),
        };
        let label = format!("volume {}", v.name);
        let source = RawVolumeSource {
            secret: v.secret,
            config_map: v.config_map,
            projected: v.projected,
        };
        let (default_mode, sources) = source
            .into_sources(&at(""))
            .map_err(|(field, msg)| AgentError::config(&name, field, msg))?;
        volumes.push(Volume {
            label,
            target,
            default_mode,
            sources,
        });
    }
    check_targets(&volumes).map_err(|m| AgentError::config(&name, "volumes", m))?;
    Ok(Plan {
        namespace,
        volumes,
        notes: Vec::new(),
    })
}

/// Reads the secret volumes and secret environment variables of a Pod or workload manifest.
///
/// `Err(Read)` if the file cannot be read; `Err(Config)` naming the document and field when
/// it holds no workload, several without `--workload`, or malformed volumes; or when nothing in
/// it reads a Secret or ConfigMap.
pub(crate) fn load_manifest(path: &Path, opts: &ManifestOptions<'_>) -> Result<Plan, AgentError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
        path: path.to_owned(),
        source,
    })?;
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, yaml_options())
        .map_err(|e| AgentError::config(&name, "(document)", format!("not valid YAML: {e}")))?;
    let mut workloads = Vec::new();
    for doc in docs {
        collect_workloads(doc, &mut workloads);
    }
    let names: Vec<String> = workloads.iter().map(|w| w.describe()).collect();
    let mut chosen: Vec<Workload> = workloads
        .into_iter()
        .filter(|w| opts.workload.is_none_or(|n| w.name == n))
        .collect();
    if chosen.len() > 1 {
        return Err(AgentError::config(
            &name,
            "metadata.name",
            format!(
                "holds several workloads ({}); pick one with --workload NAME",
                names.join(", ")
            ),
        ));
    }
    let Some(workload) = chosen.pop() else {
        return Err(if names.is_empty() {
            AgentError::config(
                &name,
                "kind",
                "holds no Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob",
            )
        } else {
            AgentError::config(
                &name,
                "metadata.name",
                format!(
                    "no workload named {:?}; it holds {}",
                    opts.workload.unwrap_or_default(),
                    names.join(", ")
                ),
            )
        });
    };
    workload.into_plan(&name, opts)
}

/// The YAML options: Kubernetes manifests write modes as YAML 1.1 octal (`0400`); booleans are
/// only `true`/`false`, so a name such as `y` or `on` stays a string.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        strict_booleans: true,
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Two volumes may not write the same path, nor one inside another's directory.
fn check_targets(volumes: &[Volume]) -> Result<(), String> {
    for (i, a) in volumes.iter().enumerate() {
        for b in &volumes[i + 1..] {
            let (pa, pb) = (a.target.path(), b.target.path());
            let inside = |outer: &Target, inner: &Path| {
                matches!(outer, Target::Dir(_)) && inner.starts_with(outer.path())
            };
            if pa == pb || inside(&a.target, pb) || inside(&b.target, pa) {
                return Err(format!(
                    "{} and {} both write {} and {}: give each its own target",
                    a.label,
                    b.label,
                    pa.display(),
                    pb.display()
                ));
            }
        }
    }
    Ok(())
}

// === raw configuration ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    volumes: Vec<RawVolume>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVolume {
    name: String,
    target: PathBuf,
    #[serde(default)]
    sub_path: Option<String>,
    #[serde(default)]
    secret: Option<RawSecretVolume>,
    #[serde(default)]
    config_map: Option<RawConfigMapVolume>,
    #[serde(default)]
    projected: Option<RawProjected>,
}

/// The volume sources a Pod volume may name (one of them), as Kubernetes spells them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVolumeSource {
    #[serde(default)]
    secret: Option<RawSecretVolume>,
    #[serde(default)]
    config_map: Option<RawConfigMapVolume>,
    #[serde(default)]
    projected: Option<RawProjected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSecretVolume {
    secret_name: String,
    #[serde(default)]
    items: Option<Vec<RawKeyToPath>>,
    #[serde(default)]
    default_mode: Option<i64>,
    #[serde(default)]
    optional: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfigMapVolume {
    name: String,
    #[serde(default)]
    items: Option<Vec<RawKeyToPath>>,
    #[serde(default)]
    default_mode: Option<i64>,
    #[serde(default)]
    optional: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProjected {
    sources: Vec<RawProjection>,
    #[serde(default)]
    default_mode: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProjection {
    #[serde(default)]
    secret: Option<RawObjectProjection>,
    #[serde(default)]
    config_map: Option<RawObjectProjection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawObjectProjection {
    name: String,
    #[serde(default)]
    items: Option<Vec<RawKeyToPath>>,
    #[serde(default)]
    optional: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKeyToPath {
    key: String,
    path: String,
    #[serde(default)]
    mode: Option<i64>,
}

type FieldError = (String, String);

impl RawVolumeSource {
    /// The default mode and sources. `Err((field, message))`.
    fn into_sources(self, at: &str) -> Result<(Mode, Vec<Source>), FieldError> {
        let mode = |m: Option<i64>, field: String| -> Result<Mode, FieldError> {
            m.map(Mode::parse)
                .transpose()
                .map(|m| m.unwrap_or(Mode::DEFAULT))
                .map_err(|e| (field, e))
        };
        match (self.secret, self.config_map, self.projected) {
            (Some(s), None, None) => {
                let f = format!("{at}.secret");
                let source = source(
                    Kind::Secret,
                    &s.secret_name,
                    s.items,
                    s.optional,
                    &f,
                    "secretName",
                )?;
                Ok((
                    mode(s.default_mode, format!("{f}.defaultMode"))?,
                    vec![source],
                ))
            }
            (None, Some(c), None) => {
                let f = format!("{at}.configMap");
                let source = source(Kind::ConfigMap, &c.name, c.items, c.optional, &f, "name")?;
                Ok((
                    mode(c.default_mode, format!("{f}.defaultMode"))?,
                    vec![source],
                ))
            }
            (None, None, Some(p)) => {
                let f = format!("{at}.projected");
                if p.sources.is_empty() {
                    return Err((format!("{f}.sources"), "lists no source".into()));
                }
                let mut sources = Vec::new();
                for (j, s) in p.sources.into_iter().enumerate() {
                    let sf = format!("{f}.sources[{j}]");
                    match (s.secret, s.config_map) {
                        (Some(o), None) => sources.push(source(
                            Kind::Secret,
                            &o.name,
                            o.items,
                            o.optional,
                            &format!("{sf}.secret"),
                            "name",
                        )?),
                        (None, Some(o)) => sources.push(source(
                            Kind::ConfigMap,
                            &o.name,
                            o.items,
                            o.optional,
                            &format!("{sf}.configMap"),
                            "name",
                        )?),
                        _ => {
                            return Err((sf, "needs exactly one of secret or configMap".into()));
                        }
                    }
                }
                Ok((mode(p.default_mode, format!("{f}.defaultMode"))?, sources))
            }
            _ => Err((
                at.to_owned(),
                "needs exactly one of secret, configMap or projected".into(),
            )),
        }
    }
}

fn source(
    kind: Kind,
    name: &str,
    items: Option<Vec<RawKeyToPath>>,
    optional: Option<bool>,
    at: &str,
    name_field: &str,
) -> Result<Source, FieldError> {
    let name = ObjectName::parse(name).map_err(|e| (format!("{at}.{name_field}"), e))?;
    let items = items
        .map(|items| {
            let mut paths = BTreeSet::new();
            items
                .into_iter()
                .enumerate()
                .map(|(k, it)| {
                    let f = format!("{at}.items[{k}]");
                    let key_errs = ward_api::validation::config_map_key(&it.key);
                    if !key_errs.is_empty() {
                        return Err((format!("{f}.key"), key_errs.join("; ")));
                    }
                    let path = RelPath::parse(&it.path).map_err(|e| (format!("{f}.path"), e))?;
                    if !paths.insert(path.clone()) {
                        return Err((format!("{f}.path"), format!("{:?} is used twice", it.path)));
                    }
                    let mode = it
                        .mode
                        .map(Mode::parse)
                        .transpose()
                        .map_err(|e| (format!("{f}.mode"), e))?;
                    Ok(Item {
                        key: it.key,
                        path,
                        mode,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Source {
        kind,
        name,
        items,
        optional: optional.unwrap_or(false),
        prefix: String::new(),
    })
}

// === manifests ===

/// A Pod spec found in a manifest document.
struct Workload {
    kind: String,
    name: String,
    namespace: Option<String>,
    pod_spec: Value,
}

impl Workload {
    fn describe(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    fn into_plan(self, file: &str, opts: &ManifestOptions<'_>) -> Result<Plan, AgentError> {
        let at = self.describe();
        let err =
            |field: String, msg: String| AgentError::config(file, format!("{at}: {field}"), msg);
        let namespace = self
            .namespace
            .as_deref()
            .map(Namespace::parse)
            .transpose()
            .map_err(|e| err("metadata.namespace".into(), e))?;
        let spec = &self.pod_spec;
        let mut notes = Vec::new();
        let mut by_name: BTreeMap<String, (usize, Value)> = BTreeMap::new();
        for (i, v) in spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(n) = v.get("name").and_then(Value::as_str) {
                by_name.insert(n.to_owned(), (i, v.clone()));
            }
        }
        let mut containers: Vec<(String, &Value)> = Vec::new();
        for list in ["initContainers", "containers"] {
            for (i, c) in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let cname = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if opts.containers.is_empty() || opts.containers.contains(&cname) {
                    containers.push((format!("{list}[{i}]"), c));
                }
            }
        }
        if containers.is_empty() {
            return Err(err(
                "spec.containers".into(),
                if opts.containers.is_empty() {
                    "lists no container".into()
                } else {
                    format!("has no container named {}", opts.containers.join(" or "))
                },
            ));
        }
        let root = |mount_path: &str| -> PathBuf {
            match opts.mount_root {
                Some(r) => r.join(mount_path.trim_start_matches('/')),
                None => PathBuf::from(mount_path),
            }
        };
        let mut volumes: Vec<Volume> = Vec::new();
        let mut env_sources: Vec<(String, Vec<Source>)> = Vec::new();
        for (cat, c) in &containers {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
            for (m, mount) in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let mf = format!("spec.{cat}.volumeMounts[{m}]");
                let vname = mount
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let Some((vi, vol)) = by_name.get(vname) else {
                    return Err(err(
                        format!("{mf}.name"),
                        format!("no volume named {vname:?}"),
                    ));
                };
                let vf = format!("spec.volumes[{vi}]");
                let Some(raw) =
                    manifest_volume_source(vol, &vf, &mut notes).map_err(|(f, m)| err(f, m))?
                else {
                    continue;
                };
                let Some(mount_path) = mount.get("mountPath").and_then(Value::as_str) else {
                    return Err(err(format!("{mf}.mountPath"), "is missing".into()));
                };
                if mount.get("subPathExpr").is_some() {
                    notes.push(format!(
                        "{at}: {mf}: subPathExpr needs the Downward API; mount skipped"
                    ));
                    continue;
                }
                let target = match mount.get("subPath").and_then(Value::as_str) {
                    Some(sp) if !sp.is_empty() => Target::File {
                        path: root(mount_path),
                        sub_path: RelPath::parse(sp)
                            .map_err(|e| err(format!("{mf}.subPath"), e))?,
                    },
                    _ => Target::Dir(root(mount_path)),
                };
                if volumes.iter().any(|v| v.target == target) {
                    continue; // the same volume, mounted at the same place by another container
                }
                let (default_mode, sources) = raw.into_sources(&vf).map_err(|(f, m)| err(f, m))?;
                volumes.push(Volume {
                    label: format!("manifest volume {vname} (container {cname})"),
                    target,
                    default_mode,
                    sources,
                });
            }
            let sources = env_secret_sources(c, &format!("spec.{cat}"), &mut notes)
                .map_err(|(f, m)| err(f, m))?;
            if !sources.is_empty() {
                env_sources.push((cname.to_owned(), sources));
            }
        }
        let env_root = match (opts.env_dir, opts.mount_root) {
            (Some(d), _) => d.to_owned(),
            (None, Some(r)) => r.join(DEFAULT_ENV_DIR.trim_start_matches('/')),
            (None, None) => PathBuf::from(DEFAULT_ENV_DIR),
        };
        let several = env_sources.len() > 1;
        for (cname, sources) in env_sources {
            let dir = if several {
                env_root.join(&cname)
            } else {
                env_root.clone()
            };
            volumes.push(Volume {
                label: format!("environment of container {cname}"),
                target: Target::Dir(dir),
                default_mode: Mode::DEFAULT,
                sources,
            });
        }
        if volumes.is_empty() {
            return Err(err(
                "spec".into(),
                "mounts no secret, configMap or projected volume and takes no environment \
                 variable from a Secret: nothing to deliver"
                    .into(),
            ));
        }
        check_targets(&volumes).map_err(|m| err("spec".into(), m))?;
        Ok(Plan {
            namespace,
            volumes,
            notes,
        })
    }
}

/// Finds the Pod specs in one document (a `List` is opened).
fn collect_workloads(doc: Value, out: &mut Vec<Workload>) {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind == "List" {
        if let Some(Value::Array(items)) = doc.get("items") {
            for item in items {
                collect_workloads(item.clone(), out);
            }
        }
        return;
    }
    let pointer = match kind.as_str() {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => "/spec/template/spec",
        _ => return,
    };
    let Some(pod_spec) = doc.pointer(pointer).cloned() else {
        return;
    };
    let meta = |k: &str| {
        doc.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    out.push(Workload {
        name: meta("name").unwrap_or_default(),
        namespace: meta("namespace"),
        kind,
        pod_spec,
    });
}

/// A Pod volume's secret, configMap or projected source, with projected sources the agent
/// cannot serve (downwardAPI, serviceAccountToken, ...) dropped into `notes`. `Ok(None)` for
/// other volume types.
fn manifest_volume_source(
    vol: &Value,
    at: &str,
    notes: &mut Vec<String>,
) -> Result<Option<RawVolumeSource>, FieldError> {
    let parse = |v: &Value, f: &str| -> Result<RawVolumeSource, FieldError> {
        let mut map = serde_json::Map::new();
        map.insert(f.to_owned(), v.clone());
        serde_path_to_error::deserialize(Value::Object(map))
            .map_err(|e| (format!("{at}.{}", e.path()), e.inner().to_string()))
    };
    if let Some(s) = vol.get("secret") {
        return parse(s, "secret").map(Some);
    }
    if let Some(c) = vol.get("configMap") {
        return parse(c, "configMap").map(Some);
    }
    if let Some(p) = vol.get("projected") {
        let mut p = p.clone();
        if let Some(Value::Array(sources)) = p.get_mut("sources") {
            sources.retain(|s| {
                let keep = s.get("secret").is_some() || s.get("configMap").is_some();
                if !keep {
                    let what = s
                        .as_object()
                        .and_then(|o| o.keys().next().cloned())
                        .unwrap_or_default();
                    notes.push(format!(
                        "{at}.projected: the {what} source is not delivered by the agent"
                    ));
                }
                keep
            });
            if sources.is_empty() {
                return Ok(None);
            }
        }
        return parse(&p, "projected").map(Some);
    }
    Ok(None)
}

/// `env[].valueFrom.secretKeyRef` and `envFrom[].secretRef` of one container, as sources whose
/// files are named like the variables.
fn env_secret_sources(
    c: &Value,
    at: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<Source>, FieldError> {
    let mut out: Vec<Source> = Vec::new();
    for (i, e) in c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(r) = e.pointer("/valueFrom/secretKeyRef") else {
            continue;
        };
        let f = format!("{at}.env[{i}]");
        let var = e.get("name").and_then(Value::as_str).unwrap_or_default();
        let path = RelPath::parse(var).map_err(|m| (format!("{f}.name"), m))?;
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let name =
            ObjectName::parse(name).map_err(|m| (format!("{f}.valueFrom.secretKeyRef.name"), m))?;
        let key = r
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let key_errs = ward_api::validation::config_map_key(&key);
        if !key_errs.is_empty() {
            return Err((
                format!("{f}.valueFrom.secretKeyRef.key"),
                key_errs.join("; "),
            ));
        }
        let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
        let item = Item {
            key,
            path,
            mode: None,
        };
        match out.iter_mut().find(|s| {
            s.name == name && s.optional == optional && s.items.is_some() && s.prefix.is_empty()
        }) {
            Some(s) => s.items.get_or_insert_with(Vec::new).push(item),
            None => out.push(Source {
                kind: Kind::Secret,
                name,
                items: Some(vec![item]),
                optional,
                prefix: String::new(),
            }),
        }
    }
    for (i, e) in c
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = format!("{at}.envFrom[{i}]");
        let Some(r) = e.get("secretRef") else {
            if e.get("configMapRef").is_some() {
                notes.push(format!("{f}: configMapRef is not a secret; not delivered"));
            }
            continue;
        };
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let name = ObjectName::parse(name).map_err(|m| (format!("{f}.secretRef.name"), m))?;
        let prefix = e
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !prefix.is_empty() {
            RelPath::parse(&prefix).map_err(|m| (format!("{f}.prefix"), m))?;
        }
        out.push(Source {
            kind: Kind::Secret,
            name,
            items: None,
            optional: r.get("optional").and_then(Value::as_bool).unwrap_or(false),
            prefix,
        });
    }
    Ok(out)
}

const MAX_PATH: usize = 4096;
const MAX_NAME: usize = 255;
/// Where `--from-manifest` writes environment variables taken from Secrets, by default.
pub(crate) const DEFAULT_ENV_DIR: &str = "/run/secrets/env";

#[cfg(test)]
mod tests;
