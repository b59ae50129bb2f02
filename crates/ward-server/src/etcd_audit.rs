//! `ward etcd audit`: how every Secret and ConfigMap in a live etcd is stored.
//!
//! The audit answers an operator's first question about encryption at rest: is every secret
//! actually encrypted, and with which key? It reads an etcd (Ward's or a kube-apiserver's: the
//! keys and bytes are the same) and classifies each stored object:
//!
//! | status | meaning |
//! |---|---|
//! | `encrypted` | a known provider's prefix; with a config, decrypted by its first provider and key |
//! | `plaintext` | no `k8s:enc:` prefix: stored by the identity provider |
//! | `stale` | decrypted, but by a provider or key other than the config's first (rewrite it) |
//! | `undecryptable` | a known provider's prefix that the given config cannot read (the error says why) |
//! | `unknown-provider` | a `k8s:enc:` prefix naming no provider Ward knows, or a malformed one |
//!
//! # Policy
//!
//! - **Read-only.** Only etcd `Range` requests are sent, never a write, lease or compaction; the
//!   audit can run against a production kube-apiserver's etcd while it serves.
//! - **One snapshot.** The first request fixes a revision and every page of every resource is
//!   read at it, so the counts describe one moment. If etcd compacts that revision during a long
//!   audit, the rest is read at the current revision and the report says so
//!   ([`EtcdAuditReport::consistent`] is `false`).
//! - **Without `--encryption-provider-config`** nothing is decrypted: encrypted values are
//!   reported by their prefix (provider and key name, unverified), so `stale` and `undecryptable`
//!   cannot occur. With a config, the value is decrypted as kube-apiserver would (the AAD is the
//!   full etcd key, prefix included), and the plaintext is checked to be a Kubernetes object
//!   (protobuf or JSON) whose name and namespace match its key: a value moved under another key
//!   decrypts fine with aescbc and secretbox, which bind no AAD, and is reported as a warning.
//! - **Values never leave.** Plaintext is held in zeroizing buffers and only its `metadata` is
//!   looked at; the report holds keys, provider and key names, errors and counts. Errors come
//!   from `ward_crypto`, whose messages never contain key material, plaintext or payload bytes.
//!   Names read from etcd are made printable before they reach a table.
//!
//! A `plaintext` value stays `plaintext` even when the config's first provider encrypts (then it
//! also needs a rewrite); when the config cannot read it at all (no `identity` provider), its
//! `error` says so.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), ward_server::etcd_audit::EtcdAuditError> {
//! use ward_server::etcd_audit::{AuditOutput, EtcdAuditOptions, etcd_audit};
//!
//! let options = EtcdAuditOptions {
//!     endpoints: vec!["http://127.0.0.1:2379".into()],
//!     encryption_provider_config: Some("/etc/kubernetes/enc.yaml".into()),
//!     ..EtcdAuditOptions::default()
//! };
//! let report = etcd_audit(&options, &mut |done, total| eprintln!("{done}/{total:?}")).await?;
//! print!("{}", report.render(AuditOutput::Table));
//! assert!(report.summary.total.plaintext == 0 || !report.is_clean());
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use ward_crypto::{ResourceTransformer, Transformers};
use ward_storage::{RangeRequest, Revision, Storage, StorageError};
use ward_storage_etcd::{EtcdOptions, EtcdStorage};
use zeroize::Zeroizing;

/// The one-line description of `ward etcd audit`.
pub const ABOUT: &str = "Report how each Secret and ConfigMap in a live etcd is stored: plaintext, \
                         encrypted (provider and key), stale or undecryptable. Read-only.";

/// Examples shown after `ward etcd audit --help`.
pub const EXAMPLES: &str = "\
Examples:
  # Which secrets and configmaps are encrypted, and with which provider and key (no decryption)
  ward etcd audit --etcd-servers http://127.0.0.1:2379

  # A kubeadm control plane: etcd over TLS, checked against the apiserver's own config
  ward etcd audit --etcd-servers https://127.0.0.1:2379 \\
      --etcd-cafile /etc/kubernetes/pki/etcd/ca.crt \\
      --etcd-certfile /etc/kubernetes/pki/apiserver-etcd-client.crt \\
      --etcd-keyfile /etc/kubernetes/pki/apiserver-etcd-client.key \\
      --encryption-provider-config /etc/kubernetes/enc/enc.yaml

  # Only the counts, or everything as JSON (values are never printed)
  ward etcd audit --etcd-servers http://127.0.0.1:2379 -o summary
  ward etcd audit --etcd-servers http://127.0.0.1:2379 -o json | jq '.summary.total'";

/// What to audit and how to reach etcd.
///
/// `Debug` is safe to log: the options hold URLs and file paths, never key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdAuditOptions {
    /// Client URLs of the etcd members (`--etcd-servers`).
    pub endpoints: Vec<String>,
    /// CA that verifies etcd's serving certificate (`--etcd-cafile`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate for etcd (`--etcd-certfile`).
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate (`--etcd-keyfile`).
    pub key_file: Option<PathBuf>,
    /// kube-apiserver's `--etcd-prefix`; keys are `<prefix>/<resource>/<namespace>/<name>`.
    pub prefix: String,
    /// An `EncryptionConfiguration` to decrypt with; `None` reports prefixes only.
    pub encryption_provider_config: Option<PathBuf>,
    /// Resources to audit, as `resource` (core group) or `resource.group`.
    pub resources: Vec<String>,
    /// Keys per etcd range request.
    pub page_size: usize,
    /// How long connecting to etcd may take.
    pub dial_timeout: Duration,
}

impl Default for EtcdAuditOptions {
    /// No endpoints, no TLS, prefix `/registry`, no config, `secrets` and `configmaps`, pages of
    /// 500 keys, a 10 s dial timeout.
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            encryption_provider_config: None,
            resources: DEFAULT_RESOURCES.iter().map(|&r| r.to_owned()).collect(),
            page_size: DEFAULT_PAGE_SIZE,
            dial_timeout: Duration::from_secs(10),
        }
    }
}

/// The command line of `ward etcd audit`, with kube-apiserver's flag names;
/// [`EtcdAuditArgs::options`] turns it into [`EtcdAuditOptions`].
#[derive(clap::Args, Clone, Debug)]
#[command(about = ABOUT, long_about = None, after_help = EXAMPLES)]
pub struct EtcdAuditArgs {
    /// etcd endpoints (comma-separated), e.g. https://10.0.0.1:2379.
    #[arg(long, value_delimiter = ',', required = true)]
    pub etcd_servers: Vec<String>,
    /// CA that verifies etcd's serving certificate.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Key prefix in etcd (kube-apiserver's --etcd-prefix).
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// kube-apiserver EncryptionConfiguration: decrypt each value and report stale and
    /// undecryptable ones [default: report prefixes only, decrypt nothing]
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    /// Resources to audit (comma-separated; `resource` or `resource.group`).
    #[arg(long, value_delimiter = ',', default_value = "secrets,configmaps")]
    pub resources: Vec<String>,
    /// Output format: every object and the counts, the counts only, or JSON.
    #[arg(short = 'o', long, value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
    /// Keys per etcd range request.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE)]
    pub page_size: usize,
}

impl EtcdAuditArgs {
    /// The audit options these flags describe.
    pub fn options(&self) -> EtcdAuditOptions {
        EtcdAuditOptions {
            endpoints: self.etcd_servers.clone(),
            ca_file: self.etcd_cafile.clone(),
            cert_file: self.etcd_certfile.clone(),
            key_file: self.etcd_keyfile.clone(),
            prefix: self.etcd_prefix.clone(),
            encryption_provider_config: self.encryption_provider_config.clone(),
            resources: self.resources.clone(),
            page_size: self.page_size,
            ..EtcdAuditOptions::default()
        }
    }
}

/// How [`EtcdAuditReport::render`] prints a report.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditOutput {
    /// Pretty-printed JSON of the whole report.
    Json,
    /// The summary tables only.
    Summary,
    /// One row per object, then the summary tables (kubectl style).
    #[default]
    Table,
}

/// How one object is stored. Serialized as `encrypted`, `plaintext`, `stale`, `undecryptable`
/// and `unknown-provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageStatus {
    /// Encrypted by a known provider; with a config, by its first provider and key.
    Encrypted,
    /// Stored without encryption (the identity provider).
    Plaintext,
    /// Decrypted by a provider or key other than the config's first one.
    Stale,
    /// Encrypted by a known provider, but the config cannot decrypt it.
    Undecryptable,
    /// A `k8s:enc:` prefix naming no known provider, or a malformed one.
    UnknownProvider,
}

impl StorageStatus {
    /// Every status, in report order.
    pub const ALL: [StorageStatus; 5] = [
        StorageStatus::Encrypted,
        StorageStatus::Stale,
        StorageStatus::Plaintext,
        StorageStatus::Undecryptable,
        StorageStatus::UnknownProvider,
    ];

    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encrypted => "encrypted",
            Self::Plaintext => "plaintext",
            Self::Stale => "stale",
            Self::Undecryptable => "undecryptable",
            Self::UnknownProvider => "unknown-provider",
        }
    }
}

impl fmt::Display for StorageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of an audit. Holds no values; serialize it for `-o json`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdAuditReport {
    /// The key prefix audited (kube-apiserver's `--etcd-prefix`).
    pub prefix: String,
    /// The etcd revision the snapshot was read at.
    pub revision: u64,
    /// `true` when every object was read at [`Self::revision`]; `false` when etcd compacted it
    /// during the audit and the rest was read at the current revision.
    pub consistent: bool,
    /// The configuration values were decrypted with, if any.
    pub encryption_provider_config: Option<PathBuf>,
    /// The counts.
    pub summary: AuditSummary,
    /// Every object, in resource order, then key order.
    pub objects: Vec<AuditedObject>,
}

/// Counts of an audit.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditSummary {
    /// Over every resource.
    pub total: StatusCounts,
    /// Per resource, in the order asked for.
    pub resources: Vec<ResourceSummary>,
    /// Per provider, key and status, most objects first.
    pub keys: Vec<KeyCount>,
}

/// How many objects have each status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// All objects.
    pub objects: u64,
    /// `encrypted` objects.
    pub encrypted: u64,
    /// `stale` objects.
    pub stale: u64,
    /// `plaintext` objects.
    pub plaintext: u64,
    /// `undecryptable` objects.
    pub undecryptable: u64,
    /// `unknown-provider` objects.
    #[serde(rename = "unknown-provider")]
    pub unknown_provider: u64,
}

impl StatusCounts {
    /// The count of one status.
    pub fn of(&self, status: StorageStatus) -> u64 {
        match status {
            StorageStatus::Encrypted => self.encrypted,
            StorageStatus::Plaintext => self.plaintext,
            StorageStatus::Stale => self.stale,
            StorageStatus::Undecryptable => self.undecryptable,
            StorageStatus::UnknownProvider => self.unknown_provider,
        }
    }

    fn add(&mut self, status: StorageStatus) {
        self.objects += 1;
        let slot = match status {
            StorageStatus::Encrypted => &mut self.encrypted,
            StorageStatus::Plaintext => &mut self.plaintext,
            StorageStatus::Stale => &mut self.stale,
            StorageStatus::Undecryptable => &mut self.undecryptable,
            StorageStatus::UnknownProvider => &mut self.unknown_provider,
        };
        *slot += 1;
    }
}

/// The counts of one resource, and what the config writes it with.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    /// The resource as asked for (`secrets`, or `resource.group`).
    pub resource: String,
    /// The counts.
    #[serde(flatten)]
    pub counts: StatusCounts,
    /// The provider new writes use under the given config (`None` without a config).
    pub write_provider: Option<String>,
    /// The key new writes use under the given config (`None` for identity or no config).
    pub write_key: Option<String>,
}

/// How many objects one provider and key hold with one status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyCount {
    /// `identity`, `aescbc`, `aesgcm`, `secretbox`, `kms`, or an unknown provider's name.
    pub provider: String,
    /// The key name in the prefix (for `kms`, the provider name); `None` for identity.
    pub key: Option<String>,
    /// The status of these objects.
    pub status: StorageStatus,
    /// How many.
    pub objects: u64,
}

/// One audited object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditedObject {
    /// The resource as asked for.
    pub resource: String,
    /// The namespace from the key; `None` for a cluster-scoped key.
    pub namespace: Option<String>,
    /// The name from the key.
    pub name: String,
    /// The full etcd key.
    pub key: String,
    /// The etcd revision of its last write.
    pub mod_revision: u64,
    /// How it is stored.
    pub status: StorageStatus,
    /// The provider named by its prefix (`identity` for plaintext); `None` for a malformed
    /// prefix.
    pub provider: Option<String>,
    /// The provider version in the prefix (`v1`, `v2`); `None` for plaintext.
    pub version: Option<String>,
    /// The key name in the prefix (for `kms`, the provider name); `None` for plaintext.
    pub key_name: Option<String>,
    /// Why it could not be read (`undecryptable`, `unknown-provider`, or plaintext the config
    /// cannot read).
    pub error: Option<String>,
    /// A problem with the decrypted object: not a Kubernetes object, or its metadata names
    /// another key.
    pub warning: Option<String>,
}

impl EtcdAuditReport {
    /// Whether every object is encrypted (with the config's first key, if a config was given)
    /// and nothing was odd about it.
    pub fn is_clean(&self) -> bool {
        self.objects.iter().all(|o| {
            o.status == StorageStatus::Encrypted && o.error.is_none() && o.warning.is_none()
        })
    }

    /// The report as JSON (what `-o json` prints).
    pub fn to_json(&self) -> Value {
        // Serializing plain strings, numbers and paths cannot fail; a path that is not UTF-8
        // would, so fall back to a message rather than panic.
        serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({ "error": format!("cannot serialize: {e}") }))
    }

    /// The report in `output` form, ending with a newline.
    pub fn render(&self, output: AuditOutput) -> String {
        match output {
            AuditOutput::Json => {
                let mut text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
                text.push('\n');
                text
            }
            AuditOutput::Summary => self.render_summary(),
            AuditOutput::Table => {
                let mut text = self.render_objects();
                text.push('\n');
                text.push_str(&self.render_summary());
                text
            }
        }
    }

    /// One row per object, kubectl style.
    pub fn render_objects(&self) -> String {
        if self.objects.is_empty() {
            return format!("No objects found under {}.\n", self.prefix);
        }
        let rows = self
            .objects
            .iter()
            .map(|o| {
                let detail = match (&o.error, &o.warning) {
                    (Some(e), _) => e.clone(),
                    (None, Some(w)) => format!("warning: {w}"),
                    (None, None) => String::new(),
                };
                vec![
                    o.resource.clone(),
                    o.namespace.clone().unwrap_or_default(),
                    o.name.clone(),
                    o.status.to_string(),
                    o.provider.clone().unwrap_or_else(|| "?".to_owned()),
                    o.key_name.clone().unwrap_or_default(),
                    detail,
                ]
            })
            .collect();
        table(
            &[
                "RESOURCE",
                "NAMESPACE",
                "NAME",
                "STATUS",
                "PROVIDER",
                "KEY",
                "DETAIL",
            ],
            rows,
        )
    }

    /// The counts per resource and per provider and key, kubectl style.
    pub fn render_summary(&self) -> String {
        let mut out = String::new();
        let config = match &self.encryption_provider_config {
            Some(path) => format!("checked against {}", path.display()),
            None => "no --encryption-provider-config: prefixes only, nothing decrypted".to_owned(),
        };
        let snapshot = if self.consistent {
            format!("at revision {}", self.revision)
        } else {
            format!(
                "from revision {} on (compacted during the audit; not one snapshot)",
                self.revision
            )
        };
        out.push_str(&format!(
            "{} objects under {} {snapshot}; {config}\n\n",
            self.summary.total.objects, self.prefix
        ));
        let counts_row = |name: String, c: &StatusCounts, writes: String| {
            let mut row = vec![name, c.objects.to_string()];
            row.extend(StorageStatus::ALL.iter().map(|&s| c.of(s).to_string()));
            row.push(writes);
            row
        };
        let mut rows: Vec<Vec<String>> = self
            .summary
            .resources
            .iter()
            .map(|r| {
                let writes = match (&r.write_provider, &r.write_key) {
                    (Some(p), Some(k)) => format!("{p} key {k:?}"),
                    (Some(p), None) => p.clone(),
                    (None, _) => "-".to_owned(),
                };
                counts_row(r.resource.clone(), &r.counts, writes)
            })
            .collect();
        rows.push(counts_row(
            "TOTAL".to_owned(),
            &self.summary.total,
            String::new(),
        ));
        let mut headers = vec!["RESOURCE", "OBJECTS"];
        headers.extend([
            "ENCRYPTED",
            "STALE",
            "PLAINTEXT",
            "UNDECRYPTABLE",
            "UNKNOWN-PROVIDER",
        ]);
        headers.push("WRITES WITH");
        out.push_str(&table(&headers, rows));
        if !self.summary.keys.is_empty() {
            out.push('\n');
            let rows = self
                .summary
                .keys
                .iter()
                .map(|k| {
                    vec![
                        k.provider.clone(),
                        k.key.clone().unwrap_or_else(|| "-".to_owned()),
                        k.status.to_string(),
                        k.objects.to_string(),
                    ]
                })
                .collect();
            out.push_str(&table(&["PROVIDER", "KEY", "STATUS", "OBJECTS"], rows));
        }
        out
    }
}

/// Errors of an audit. Messages name flags, files and endpoints, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdAuditError {
    /// The encryption configuration could not be loaded or built.
    #[error("--encryption-provider-config {path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong (names fields, never key material).
        message: String,
    },
    /// etcd could not be reached, or refused the TLS files.
    #[error("cannot connect to etcd")]
    Connect {
        /// The cause; it names the endpoints.
        #[source]
        source: StorageError,
    },
    /// An option is missing or malformed.
    #[error("{flag}: {message}")]
    Options {
        /// The flag, e.g. `--resources`.
        flag: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// An etcd range read failed.
    #[error("reading {prefix} from etcd")]
    Read {
        /// The key prefix being read.
        prefix: String,
        /// The cause.
        #[source]
        source: StorageError,
    },
}

/// Audits a live etcd, read-only: every object of `opts.resources` under `opts.prefix`.
///
/// `progress(done, total)` is called once the objects are counted (`done` = 0) and after each
/// page; `total` is the count at the snapshot revision.
///
/// # Errors
///
/// - [`EtcdAuditError::Options`] for no endpoints, no resources, a malformed resource or a zero
///   page size;
/// - [`EtcdAuditError::Config`] when the encryption configuration cannot be loaded or its `kms`
///   providers cannot be built;
/// - [`EtcdAuditError::Connect`] when etcd cannot be reached within `opts.dial_timeout`;
/// - [`EtcdAuditError::Read`] when a range request fails.
///
/// An object that cannot be decrypted is not an error: it is reported as `undecryptable`.
pub async fn etcd_audit(
    opts: &EtcdAuditOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<EtcdAuditReport, EtcdAuditError> {
    if opts.endpoints.is_empty() {
        return Err(EtcdAuditError::Options {
            flag: "--etcd-servers",
            message: "no etcd endpoint given; expected URLs like https://127.0.0.1:2379".into(),
        });
    }
    let plan = AuditPlan::new(opts)?;
    let transformers = match &opts.encryption_provider_config {
        Some(path) => Some(load_transformers(path).await?),
        None => None,
    };
    let storage = EtcdStorage::connect(EtcdOptions {
        endpoints: opts.endpoints.clone(),
        ca_file: opts.ca_file.clone(),
        cert_file: opts.cert_file.clone(),
        key_file: opts.key_file.clone(),
        dial_timeout: opts.dial_timeout,
        ..EtcdOptions::default()
    })
    .await
    .map_err(|source| EtcdAuditError::Connect { source })?;
    let mut report = audit_storage(&storage, &plan, transformers.as_ref(), progress).await?;
    report.encryption_provider_config = opts.encryption_provider_config.clone();
    Ok(report)
}

// === impl AuditPlan ===

/// Validated options: the resources and their key prefixes.
#[derive(Debug)]
struct AuditPlan {
    /// The prefix without a trailing `/`.
    prefix: String,
    resources: Vec<AuditedResource>,
    page_size: usize,
}

#[derive(Debug)]
struct AuditedResource {
    /// As asked for: `secrets` or `roles.rbac.authorization.k8s.io`.
    display: String,
    group: String,
    resource: String,
    /// `<prefix>/<resource>/`.
    key_prefix: String,
}

impl AuditPlan {
    fn new(opts: &EtcdAuditOptions) -> Result<Self, EtcdAuditError> {
        let prefix = opts.prefix.trim_end_matches('/').to_owned();
        if !prefix.is_empty() && !prefix.starts_with('/') {
            return Err(EtcdAuditError::Options {
                flag: "--etcd-prefix",
                message: format!("{:?} must start with \"/\", like /registry", opts.prefix),
            });
        }
        if opts.page_size == 0 {
            return Err(EtcdAuditError::Options {
                flag: "--page-size",
                message: "must be at least 1".into(),
            });
        }
        if opts.resources.is_empty() {
            return Err(EtcdAuditError::Options {
                flag: "--resources",
                message: "no resource given; expected e.g. secrets,configmaps".into(),
            });
        }
        let mut resources = Vec::new();
        for item in &opts.resources {
            let item = item.trim();
            let (resource, group) = item.split_once('.').unwrap_or((item, ""));
            let valid = |s: &str| {
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
            };
            if resource.is_empty() || !valid(resource) || !valid(group) {
                return Err(EtcdAuditError::Options {
                    flag: "--resources",
                    message: format!(
                        "{item:?} is not a resource; expected lower-case `resource` or \
                         `resource.group`, e.g. secrets"
                    ),
                });
            }
            if resources
                .iter()
                .any(|r: &AuditedResource| r.display == item)
            {
                continue;
            }
            resources.push(AuditedResource {
                display: item.to_owned(),
                group: group.to_owned(),
                resource: resource.to_owned(),
                key_prefix: format!("{prefix}/{resource}/"),
            });
        }
        Ok(Self {
            prefix,
            resources,
            page_size: opts.page_size,
        })
    }
}

async fn load_transformers(path: &std::path::Path) -> Result<Transformers, EtcdAuditError> {
    let config_error = |message: String| EtcdAuditError::Config {
        path: path.display().to_string(),
        message,
    };
    // A read-only tool that never writes the file: the mode check is for servers.
    let config = ward_crypto::load_encryption_config_with(path, ward_crypto::ModeCheck::Skip)
        .map_err(|e| config_error(e.to_string()))?;
    // One probe per kms plugin, no background polling.
    let options = ward_kms::KmsOptions {
        poll: false,
        ..Default::default()
    };
    ward_kms::transformers_from_config_with(config, &options)
        .await
        .map(|(transformers, _)| transformers)
        .map_err(|e| config_error(e.to_string()))
}

/// Reads every resource of `plan` from `storage` at one revision and classifies each value.
async fn audit_storage(
    storage: &dyn Storage,
    plan: &AuditPlan,
    transformers: Option<&Transformers>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<EtcdAuditReport, EtcdAuditError> {
    let read_error = |prefix: &str, source| EtcdAuditError::Read {
        prefix: prefix.to_owned(),
        source,
    };
    // Count first (limit 1: etcd returns the count), fixing the snapshot revision.
    let mut snapshot: Option<Revision> = None;
    let mut total = 0u64;
    for r in &plan.resources {
        let page = storage
            .range(RangeRequest {
                prefix: r.key_prefix.clone().into_bytes(),
                start_after: None,
                limit: 1,
                revision: snapshot,
            })
            .await
            .map_err(|e| read_error(&r.key_prefix, e))?;
        snapshot.get_or_insert(page.revision);
        total += page.kvs.len() as u64 + page.remaining;
    }
    let revision = snapshot.unwrap_or_default();
    progress(0, Some(total));

    let mut report = EtcdAuditReport {
        prefix: plan.prefix.clone(),
        revision: revision.0,
        consistent: true,
        encryption_provider_config: None,
        summary: AuditSummary::default(),
        objects: Vec::new(),
    };
    let mut at = Some(revision);
    let mut done = 0u64;
    for r in &plan.resources {
        let transformer = transformers.map(|t| t.for_resource(&r.group, &r.resource));
        let mut counts = StatusCounts::default();
        let mut start_after: Option<Vec<u8>> = None;
        loop {
            let request = RangeRequest {
                prefix: r.key_prefix.clone().into_bytes(),
                start_after: start_after.clone(),
                limit: plan.page_size,
                revision: at,
            };
            let page = match storage.range(request).await {
                Ok(page) => page,
                Err(StorageError::Compacted { .. }) if at.is_some() => {
                    // etcd (or kube-apiserver's periodic compaction) dropped the snapshot: go on
                    // from the same key at the current revision.
                    at = None;
                    report.consistent = false;
                    continue;
                }
                Err(e) => return Err(read_error(&r.key_prefix, e)),
            };
            start_after = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                // Plaintext values hold secrets: wipe our copy when done.
                let value = Zeroizing::new(kv.value);
                let (namespace, name) = split_key(&key, &r.key_prefix);
                let found = classify(&value, kv.key.as_slice(), transformer).await;
                let warning = found
                    .plaintext
                    .as_deref()
                    .and_then(|p| check_object(p, namespace.as_deref(), &name));
                counts.add(found.status);
                report.summary.total.add(found.status);
                report.objects.push(AuditedObject {
                    resource: r.display.clone(),
                    namespace,
                    name,
                    key,
                    mod_revision: kv.mod_revision.0,
                    status: found.status,
                    provider: found.provider,
                    version: found.version,
                    key_name: found.key_name,
                    error: found.error,
                    warning,
                });
                done += 1;
            }
            progress(done, Some(total.max(done)));
            if !page.more || start_after.is_none() {
                break;
            }
        }
        report.summary.resources.push(ResourceSummary {
            resource: r.display.clone(),
            counts,
            write_provider: transformer.map(|t| t.provider_name().to_owned()),
            write_key: transformer.and_then(|t| t.write_key_name().map(str::to_owned)),
        });
    }
    report.summary.keys = key_counts(&report.objects);
    Ok(report)
}

// === classification ===

/// What [`classify`] found out about one value.
struct Found {
    status: StorageStatus,
    provider: Option<String>,
    version: Option<String>,
    key_name: Option<String>,
    error: Option<String>,
    /// The plaintext, when it could be had: always for identity, after decryption otherwise.
    plaintext: Option<Zeroizing<Vec<u8>>>,
}

async fn classify(value: &[u8], key: &[u8], transformer: Option<&ResourceTransformer>) -> Found {
    let mut found = Found {
        status: StorageStatus::Plaintext,
        provider: None,
        version: None,
        key_name: None,
        error: None,
        plaintext: None,
    };
    if !value.starts_with(ENCRYPTED_PREFIX) {
        found.provider = Some("identity".to_owned());
        match transformer {
            None => found.plaintext = Some(Zeroizing::new(value.to_vec())),
            Some(t) => match t.from_storage_async(value, key).await {
                Ok(d) => found.plaintext = Some(d.plaintext),
                Err(e) => found.error = Some(e.to_string()),
            },
        }
        return found;
    }
    let Some(prefix) = ward_crypto::parse_prefix(value) else {
        found.status = StorageStatus::UnknownProvider;
        found.error = Some("malformed k8s:enc: prefix".to_owned());
        return found;
    };
    found.provider = Some(printable(prefix.provider()));
    found.version = Some(printable(prefix.version()));
    found.key_name = Some(printable(&String::from_utf8_lossy(prefix.name())));
    if !KNOWN_PROVIDERS.contains(&(prefix.provider(), prefix.version())) {
        found.status = StorageStatus::UnknownProvider;
        found.error = Some(format!(
            "provider {} {} is not one Ward or kube-apiserver knows",
            printable(prefix.provider()),
            printable(prefix.version())
        ));
        return found;
    }
    let Some(t) = transformer else {
        found.status = StorageStatus::Encrypted;
        return found;
    };
    match t.from_storage_async(value, key).await {
        Ok(d) => {
            found.status = if d.stale {
                StorageStatus::Stale
            } else {
                StorageStatus::Encrypted
            };
            found.plaintext = Some(d.plaintext);
        }
        Err(e) => {
            found.status = StorageStatus::Undecryptable;
            found.error = Some(e.to_string());
        }
    }
    found
}

/// Checks that a plaintext is a Kubernetes object stored under its own key; `Some` says what is
/// wrong. Looks only at `metadata.name` and `metadata.namespace`.
fn check_object(plaintext: &[u8], namespace: Option<&str>, name: &str) -> Option<String> {
    let object = if plaintext.starts_with(PROTOBUF_MAGIC) {
        match ward_api::protobuf::decode(plaintext) {
            Ok(object) => object,
            // A kind Ward does not convert: cannot look inside, nothing wrong with it.
            Err(ward_api::protobuf::ProtobufError::UnsupportedKind { .. }) => return None,
            Err(e) => return Some(format!("not a valid kubernetes object: {e}")),
        }
    } else if plaintext.first() == Some(&b'{') {
        match serde_json::from_slice::<Value>(plaintext) {
            Ok(object) => object,
            // serde_json's messages give a line and column, never the input.
            Err(e) => return Some(format!("not valid json: {e}")),
        }
    } else {
        return Some("neither kubernetes protobuf nor json".to_owned());
    };
    let meta = |field: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (meta_ns, meta_name) = (meta("namespace"), meta("name"));
    // Clear intermediates: the decoded object holds the values.
    drop(object);
    if meta_name.as_deref() != Some(name) || meta_ns.as_deref() != namespace {
        let shown = match (&meta_ns, &meta_name) {
            (Some(ns), Some(n)) => format!("{}/{}", printable(ns), printable(n)),
            (None, Some(n)) => printable(n),
            (_, None) => "no name".to_owned(),
        };
        return Some(format!(
            "the object inside names {shown}, not its key: the value was moved or copied"
        ));
    }
    None
}

/// `(namespace, name)` of a key under `key_prefix`: `ns/name` or `name`.
fn split_key(key: &str, key_prefix: &str) -> (Option<String>, String) {
    let rest = key.strip_prefix(key_prefix).unwrap_or(key);
    match rest.split_once('/') {
        Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
        None => (None, rest.to_owned()),
    }
}

fn key_counts(objects: &[AuditedObject]) -> Vec<KeyCount> {
    let mut counts: BTreeMap<(String, Option<String>, StorageStatus), u64> = BTreeMap::new();
    for o in objects {
        let provider = o.provider.clone().unwrap_or_else(|| "?".to_owned());
        *counts
            .entry((provider, o.key_name.clone(), o.status))
            .or_default() += 1;
    }
    let mut keys: Vec<KeyCount> = counts
        .into_iter()
        .map(|((provider, key, status), objects)| KeyCount {
            provider,
            key,
            status,
            objects,
        })
        .collect();
    // Most objects first; ties keep the (provider, key, status) order.
    keys.sort_by_key(|k| std::cmp::Reverse(k.objects));
    keys
}

/// Makes a name read from etcd safe for a terminal: control characters become `?`, and long
/// names are cut.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX_SHOWN_CHARS {
        out.push('…');
    }
    out
}

/// kubectl's table layout: columns padded to the widest cell plus three spaces.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| row.iter().map(|cell| printable_cell(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or_default();
            text.push_str(cell);
            text.extend(std::iter::repeat_n(
                ' ',
                width.saturating_sub(cell.chars().count()) + 3,
            ));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn printable_cell(cell: &str) -> String {
    cell.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

const DEFAULT_PREFIX: &str = "/registry";
const DEFAULT_RESOURCES: [&str; 2] = ["secrets", "configmaps"];
const DEFAULT_PAGE_SIZE: usize = 500;
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
const PROTOBUF_MAGIC: &[u8] = b"k8s\0";
/// `(provider, version)` pairs kube-apiserver writes.
const KNOWN_PROVIDERS: [(&str, &str); 5] = [
    ("aescbc", "v1"),
    ("aesgcm", "v1"),
    ("kms", "v1"),
    ("kms", "v2"),
    ("secretbox", "v1"),
];
const MAX_SHOWN_CHARS: usize = 64;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser as _;
    use ward_crypto::EncryptionConfig;
    use ward_storage_redb::{RedbOptions, RedbStorage};

    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    const RKE2_KEY: &str = "/registry/secrets/default/secret-pre-deploy";

    /// Transformers for secrets and configmaps: `provider` with `keys` in order, then identity
    /// when asked.
    fn transformers(provider: &str, keys: &[(&str, &str)], identity: bool) -> Transformers {
        let mut yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [secrets, configmaps]\n  providers:\n  - {provider}:\n      keys:\n"
        );
        for (name, secret) in keys {
            yaml.push_str(&format!("      - name: {name}\n        secret: {secret}\n"));
        }
        if identity {
            yaml.push_str("  - identity: {}\n");
        }
        let config = EncryptionConfig::from_bytes(yaml.as_bytes(), "test.yaml").expect("config");
        Transformers::from_config(config).expect("transformers")
    }

    /// The bytes a real kube-apiserver (RKE2) stored for an unencrypted Secret.
    fn rke2_secret() -> Vec<u8> {
        let vector =
            include_str!("../../ward-api/tests/vectors/identity-rke2-secret-pre-deploy.txt");
        let hex: String = vector
            .lines()
            .skip_while(|l| !l.starts_with("etcd_value_hex:"))
            .skip(1)
            .take_while(|l| !l.contains(':') && !l.starts_with('#'))
            .map(str::trim)
            .collect();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn secret(ns: &str, name: &str, value: &str) -> Vec<u8> {
        let object = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ns},
            "data": {"v": value},
        });
        ward_api::protobuf::encode(&object)
            .expect("encode")
            .to_vec()
    }

    fn configmap(ns: &str, name: &str) -> Vec<u8> {
        let object = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": {"a": "b"},
        });
        ward_api::protobuf::encode(&object)
            .expect("encode")
            .to_vec()
    }

    fn store() -> (tempfile::TempDir, Arc<RedbStorage>) {
        let dir = tempfile::tempdir().expect("tmp");
        let storage =
            RedbStorage::open(dir.path().join("db"), RedbOptions { history: 0 }).expect("open");
        (dir, Arc::new(storage))
    }

    fn plan(resources: &[&str], page_size: usize) -> AuditPlan {
        AuditPlan::new(&EtcdAuditOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            resources: resources.iter().map(|&r| r.to_owned()).collect(),
            page_size,
            ..EtcdAuditOptions::default()
        })
        .expect("plan")
    }

    /// A store with one value of each kind, written as Ward and kube-apiserver write them.
    async fn mixed_store() -> (tempfile::TempDir, Arc<RedbStorage>) {
        let (dir, storage) = store();
        let old = transformers("aesgcm", &[("key1", K1)], true);
        let new = transformers("aesgcm", &[("key2", K2), ("key1", K1)], true);
        let put = |key: &str, value: Vec<u8>| {
            let storage = Arc::clone(&storage);
            let key = key.to_owned();
            async move { storage.create(key.as_bytes(), value).await.expect("create") }
        };
        for (name, t) in [("current", &new), ("old-1", &old), ("old-2", &old)] {
            let key = format!("/registry/secrets/default/{name}");
            let value = t
                .for_resource("", "secrets")
                .to_storage(&secret("default", name, "Y2FuYXJ5LTQ3MTE="), key.as_bytes())
                .expect("seal");
            put(&key, value).await;
        }
        put(RKE2_KEY, rke2_secret()).await;
        let mut garbage = b"k8s:enc:aesgcm:v1:nokey:".to_vec();
        garbage.extend([7u8; 40]);
        put("/registry/secrets/default/garbage", garbage).await;
        put(
            "/registry/secrets/kube-system/rot13",
            b"k8s:enc:rot13:v1:k:abcdef".to_vec(),
        )
        .await;
        put(
            "/registry/secrets/kube-system/torn",
            b"k8s:enc:aesgcm".to_vec(),
        )
        .await;
        let key = "/registry/configmaps/default/cm";
        let value = new
            .for_resource("", "configmaps")
            .to_storage(&configmap("default", "cm"), key.as_bytes())
            .expect("seal");
        put(key, value).await;
        // Not audited: another resource, and a key that only shares a prefix.
        put("/registry/namespaces/default", b"x".to_vec()).await;
        put("/registry/secretsx/default/a", b"x".to_vec()).await;
        (dir, storage)
    }

    fn by_name<'a>(report: &'a EtcdAuditReport, name: &str) -> &'a AuditedObject {
        report
            .objects
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("{name} not in the report"))
    }

    #[tokio::test]
    async fn classifies_every_status_with_a_config() {
        let (_dir, storage) = mixed_store().await;
        let config = transformers("aesgcm", &[("key2", K2), ("key1", K1)], true);
        let mut calls = Vec::new();
        let report = audit_storage(
            &*storage,
            &plan(&["secrets", "configmaps"], 500),
            Some(&config),
            &mut |done, total| calls.push((done, total)),
        )
        .await
        .expect("audit");

        let secrets = &report.summary.resources[0];
        assert_eq!(secrets.resource, "secrets");
        assert_eq!(
            (
                secrets.counts.objects,
                secrets.counts.encrypted,
                secrets.counts.stale
            ),
            (7, 1, 2)
        );
        assert_eq!(
            (
                secrets.counts.plaintext,
                secrets.counts.undecryptable,
                secrets.counts.unknown_provider
            ),
            (1, 1, 2)
        );
        assert_eq!(
            (
                secrets.write_provider.as_deref(),
                secrets.write_key.as_deref()
            ),
            (Some("aesgcm"), Some("key2"))
        );
        let cms = &report.summary.resources[1];
        assert_eq!((cms.counts.objects, cms.counts.encrypted), (1, 1));
        assert_eq!(report.summary.total.objects, 8);
        assert_eq!(report.summary.total.encrypted, 2);
        assert!(report.consistent);
        assert_eq!(calls.first(), Some(&(0, Some(8))));
        assert_eq!(calls.last(), Some(&(8, Some(8))));

        let current = by_name(&report, "current");
        assert_eq!(current.status, StorageStatus::Encrypted);
        assert_eq!(
            (current.provider.as_deref(), current.key_name.as_deref()),
            (Some("aesgcm"), Some("key2"))
        );
        assert_eq!(current.namespace.as_deref(), Some("default"));
        assert_eq!(
            (current.error.as_ref(), current.warning.as_ref()),
            (None, None)
        );
        assert_eq!(by_name(&report, "old-1").status, StorageStatus::Stale);
        assert_eq!(by_name(&report, "old-1").key_name.as_deref(), Some("key1"));

        // The real kube-apiserver value: plaintext, decoded, its name matches its key.
        let rke2 = by_name(&report, "secret-pre-deploy");
        assert_eq!(rke2.status, StorageStatus::Plaintext);
        assert_eq!(rke2.provider.as_deref(), Some("identity"));
        assert_eq!((rke2.error.as_ref(), rke2.warning.as_ref()), (None, None));

        let garbage = by_name(&report, "garbage");
        assert_eq!(garbage.status, StorageStatus::Undecryptable);
        assert_eq!(garbage.key_name.as_deref(), Some("nokey"));
        let error = garbage.error.as_deref().expect("an error");
        assert!(error.contains("no configured provider"), "{error}");

        let rot13 = by_name(&report, "rot13");
        assert_eq!(rot13.status, StorageStatus::UnknownProvider);
        assert_eq!(rot13.provider.as_deref(), Some("rot13"));
        assert_eq!(rot13.namespace.as_deref(), Some("kube-system"));
        let torn = by_name(&report, "torn");
        assert_eq!(torn.status, StorageStatus::UnknownProvider);
        assert_eq!(torn.provider, None);

        assert!(!report.is_clean());
        let keys: Vec<(&str, Option<&str>, StorageStatus, u64)> = report
            .summary
            .keys
            .iter()
            .map(|k| (k.provider.as_str(), k.key.as_deref(), k.status, k.objects))
            .collect();
        assert_eq!(keys[0], ("aesgcm", Some("key1"), StorageStatus::Stale, 2));
        assert!(keys.contains(&("aesgcm", Some("key2"), StorageStatus::Encrypted, 2)));
        assert!(keys.contains(&("identity", None, StorageStatus::Plaintext, 1)));
        assert!(keys.contains(&("aesgcm", Some("nokey"), StorageStatus::Undecryptable, 1)));
    }

    #[tokio::test]
    async fn without_a_config_reports_prefixes_only() {
        let (_dir, storage) = mixed_store().await;
        let report = audit_storage(
            &*storage,
            &plan(&["secrets", "configmaps"], 3),
            None,
            &mut |_, _| {},
        )
        .await
        .expect("audit");
        let total = &report.summary.total;
        // current, old-1, old-2, garbage and cm carry a known prefix: nothing is decrypted.
        assert_eq!(
            (
                total.objects,
                total.encrypted,
                total.plaintext,
                total.unknown_provider
            ),
            (8, 5, 1, 2)
        );
        assert_eq!((total.stale, total.undecryptable), (0, 0));
        assert_eq!(by_name(&report, "garbage").status, StorageStatus::Encrypted);
        assert_eq!(report.summary.resources[0].write_provider, None);
        let names: Vec<&str> = report.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "current",
                "garbage",
                "old-1",
                "old-2",
                "secret-pre-deploy",
                "rot13",
                "torn",
                "cm"
            ]
        );
    }

    #[tokio::test]
    async fn a_removed_key_makes_its_values_undecryptable() {
        let (_dir, storage) = mixed_store().await;
        let config = transformers("aesgcm", &[("key2", K2)], false);
        let report = audit_storage(
            &*storage,
            &plan(&["secrets"], 500),
            Some(&config),
            &mut |_, _| {},
        )
        .await
        .expect("audit");
        assert_eq!(
            by_name(&report, "old-2").status,
            StorageStatus::Undecryptable
        );
        assert_eq!(report.summary.total.undecryptable, 3);
        // No identity provider: the plaintext value is still plaintext, and unreadable.
        let rke2 = by_name(&report, "secret-pre-deploy");
        assert_eq!(rke2.status, StorageStatus::Plaintext);
        assert!(rke2.error.is_some(), "{rke2:?}");
    }

    #[tokio::test]
    async fn a_moved_secretbox_value_is_flagged() {
        let (_dir, storage) = store();
        let config = transformers("secretbox", &[("sb", K1)], false);
        let t = config.for_resource("", "secrets");
        let a = t
            .to_storage(
                &secret("default", "a", "eA=="),
                b"/registry/secrets/default/a",
            )
            .expect("seal");
        storage
            .create(b"/registry/secrets/default/a", a.clone())
            .await
            .expect("a");
        // secretbox binds no AAD: a copy under another key still decrypts.
        storage
            .create(b"/registry/secrets/default/b", a)
            .await
            .expect("b");
        let not_an_object = t.to_storage(b"hello", b"").expect("seal");
        storage
            .create(b"/registry/secrets/default/c", not_an_object)
            .await
            .expect("c");
        let report = audit_storage(
            &*storage,
            &plan(&["secrets"], 500),
            Some(&config),
            &mut |_, _| {},
        )
        .await
        .expect("audit");
        assert_eq!(by_name(&report, "a").warning, None);
        let b = by_name(&report, "b");
        assert_eq!(b.status, StorageStatus::Encrypted);
        let warning = b.warning.as_deref().expect("a warning");
        assert!(warning.contains("default/a"), "{warning}");
        assert!(by_name(&report, "c").warning.is_some());
        assert!(!report.is_clean());
    }

    #[tokio::test]
    async fn a_clean_store_is_clean() {
        let (_dir, storage) = store();
        let config = transformers("aesgcm", &[("key2", K2)], true);
        let key = "/registry/configmaps/ns1/c";
        let value = config
            .for_resource("", "configmaps")
            .to_storage(&configmap("ns1", "c"), key.as_bytes())
            .expect("seal");
        storage.create(key.as_bytes(), value).await.expect("create");
        let report = audit_storage(
            &*storage,
            &plan(&["secrets", "configmaps"], 500),
            Some(&config),
            &mut |_, _| {},
        )
        .await
        .expect("audit");
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.summary.total.encrypted, 1);
        assert_eq!(report.summary.resources[0].counts, StatusCounts::default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_one_snapshot_and_falls_back_when_it_is_compacted() {
        let (_dir, storage) = mixed_store().await;
        let config = transformers("aesgcm", &[("key2", K2), ("key1", K1)], true);
        // Written after the count: not part of the snapshot.
        let late = |storage: &RedbStorage, name: &str| {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let key = format!("/registry/secrets/default/{name}");
                    storage
                        .create(key.as_bytes(), b"late".to_vec())
                        .await
                        .expect("create")
                })
            })
        };
        let report = audit_storage(
            &*storage,
            &plan(&["secrets", "configmaps"], 2),
            Some(&config),
            &mut |done, _| {
                if done == 0 {
                    late(&storage, "zz-late");
                }
            },
        )
        .await
        .expect("audit");
        assert!(report.consistent);
        assert_eq!(report.summary.total.objects, 8);
        assert!(report.objects.iter().all(|o| o.name != "zz-late"));

        // Now compact the snapshot away right after the count.
        let report = audit_storage(
            &*storage,
            &plan(&["secrets", "configmaps"], 2),
            Some(&config),
            &mut |done, _| {
                if done == 0 {
                    let kv = late(&storage, "zz-later");
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current()
                            .block_on(storage.compact(Revision(kv.mod_revision.0 - 1)))
                            .expect("compact")
                    });
                }
            },
        )
        .await
        .expect("audit");
        assert!(!report.consistent);
        assert_eq!(
            report.summary.total.objects, 10,
            "read at the current revision"
        );
        assert!(
            report
                .render(AuditOutput::Summary)
                .contains("not one snapshot")
        );
    }

    #[tokio::test]
    async fn renders_tables_and_json_without_values() {
        let (_dir, storage) = mixed_store().await;
        let config = transformers("aesgcm", &[("key2", K2), ("key1", K1)], true);
        let mut report = audit_storage(
            &*storage,
            &plan(&["secrets", "configmaps"], 500),
            Some(&config),
            &mut |_, _| {},
        )
        .await
        .expect("audit");
        report.encryption_provider_config = Some("/etc/kubernetes/enc.yaml".into());

        let table = report.render(AuditOutput::Table);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "RESOURCE",
                "NAMESPACE",
                "NAME",
                "STATUS",
                "PROVIDER",
                "KEY",
                "DETAIL"
            ]
        );
        assert!(
            rows.contains(&vec![
                "secrets", "default", "old-1", "stale", "aesgcm", "key1"
            ]),
            "{table}"
        );
        assert!(
            rows.contains(&vec![
                "secrets", "7", "1", "2", "1", "1", "2", "aesgcm", "key", "\"key2\""
            ]),
            "{table}"
        );
        assert!(
            rows.contains(&vec!["aesgcm", "nokey", "undecryptable", "1"]),
            "{table}"
        );
        assert!(
            table.contains("8 objects under /registry at revision"),
            "{table}"
        );
        assert!(
            table.contains("checked against /etc/kubernetes/enc.yaml"),
            "{table}"
        );
        assert!(table.contains("aesgcm key \"key2\""), "{table}");
        assert!(table.contains("UNKNOWN-PROVIDER"), "{table}");
        let summary = report.render(AuditOutput::Summary);
        assert!(!summary.contains("old-1"), "{summary}");
        assert!(table.ends_with(&summary));

        let json = report.to_json();
        assert_eq!(json["summary"]["total"]["unknown-provider"], 2);
        assert_eq!(json["summary"]["resources"][0]["stale"], 2);
        assert_eq!(json["summary"]["resources"][0]["writeKey"], "key2");
        assert_eq!(json["objects"][0]["status"], "encrypted");
        assert_eq!(json["objects"][0]["keyName"], "key2");
        assert_eq!(json["revision"], report.revision);
        let text = report.render(AuditOutput::Json);
        assert_eq!(serde_json::from_str::<Value>(&text).expect("json"), json);

        // No value, plaintext or base64, in any output.
        for out in [table, text, format!("{report:?}")] {
            for canary in ["mydata", "bXlkYXRh", "Y2FuYXJ5LTQ3MTE=", "canary-4711"] {
                assert!(!out.contains(canary), "{canary} leaked");
            }
        }
    }

    #[test]
    fn an_empty_report_says_so() {
        let report = EtcdAuditReport {
            prefix: "/registry".into(),
            revision: 1,
            consistent: true,
            encryption_provider_config: None,
            summary: AuditSummary::default(),
            objects: Vec::new(),
        };
        let text = report.render(AuditOutput::Table);
        assert!(
            text.starts_with("No objects found under /registry.\n"),
            "{text}"
        );
        assert!(text.contains("prefixes only"), "{text}");
        assert!(report.is_clean());
    }

    #[test]
    fn options_are_checked() {
        let base = EtcdAuditOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ..EtcdAuditOptions::default()
        };
        let plan = AuditPlan::new(&base).expect("defaults are valid");
        let prefixes: Vec<&str> = plan
            .resources
            .iter()
            .map(|r| r.key_prefix.as_str())
            .collect();
        assert_eq!(prefixes, ["/registry/secrets/", "/registry/configmaps/"]);

        let with = |f: &dyn Fn(&mut EtcdAuditOptions)| {
            let mut o = base.clone();
            f(&mut o);
            AuditPlan::new(&o)
                .map(|p| p.resources)
                .map_err(|e| e.to_string())
        };
        let rbac = with(&|o| {
            o.prefix = "/k3s/registry/".into();
            o.resources = vec!["roles.rbac.authorization.k8s.io".into(), "secrets".into()];
        })
        .expect("valid");
        assert_eq!(rbac[0].key_prefix, "/k3s/registry/roles/");
        assert_eq!(
            (rbac[0].group.as_str(), rbac[0].resource.as_str()),
            ("rbac.authorization.k8s.io", "roles")
        );
        for (f, want) in [
            (
                &(|o: &mut EtcdAuditOptions| o.resources.clear()) as &dyn Fn(&mut EtcdAuditOptions),
                "--resources: no resource",
            ),
            (
                &|o: &mut EtcdAuditOptions| o.resources = vec!["Secrets".into()],
                "--resources: \"Secrets\" is not",
            ),
            (
                &|o: &mut EtcdAuditOptions| o.resources = vec!["a/b".into()],
                "--resources",
            ),
            (&|o: &mut EtcdAuditOptions| o.page_size = 0, "--page-size"),
            (
                &|o: &mut EtcdAuditOptions| o.prefix = "registry".into(),
                "--etcd-prefix",
            ),
        ] {
            let err = with(f).expect_err(want);
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[tokio::test]
    async fn errors_name_the_flag_or_endpoint() {
        let mut progress = |_: u64, _: Option<u64>| {};
        let err = etcd_audit(&EtcdAuditOptions::default(), &mut progress)
            .await
            .expect_err("no endpoints");
        assert!(err.to_string().starts_with("--etcd-servers"), "{err}");

        let opts = EtcdAuditOptions {
            // Nothing listens on port 1.
            endpoints: vec!["http://127.0.0.1:1".into()],
            dial_timeout: Duration::from_millis(300),
            ..EtcdAuditOptions::default()
        };
        let err = etcd_audit(&opts, &mut progress).await.expect_err("refused");
        assert!(matches!(err, EtcdAuditError::Connect { .. }), "{err:?}");
        let chain = format!(
            "{err}: {}",
            std::error::Error::source(&err).expect("source")
        );
        assert!(chain.contains("127.0.0.1:1"), "{chain}");

        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("enc.yaml");
        let canary = "c2VjcmV0LWNhbmFyeS0xMjM0NTY3ODkwMTIzNDU2Nzg5MA==";
        std::fs::write(
            &cfg,
            format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
                 resources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n\
                 \x20     - name: k\n        secret: {canary}\n"
            ),
        )
        .expect("write");
        let opts = EtcdAuditOptions {
            encryption_provider_config: Some(cfg),
            ..opts
        };
        let err = etcd_audit(&opts, &mut progress)
            .await
            .expect_err("bad key size");
        let text = format!("{err} {err:?}");
        assert!(text.starts_with("--encryption-provider-config "), "{text}");
        assert!(!text.contains(canary), "{text}");
        assert!(!format!("{opts:?}").contains(canary));
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: EtcdAuditArgs,
    }

    #[test]
    fn parses_the_command_line() {
        let cli = Cli::try_parse_from(["audit", "--etcd-servers", "http://a:2379,http://b:2379"])
            .expect("parse");
        let opts = cli.args.options();
        assert_eq!(opts.endpoints, ["http://a:2379", "http://b:2379"]);
        assert_eq!(opts.resources, ["secrets", "configmaps"]);
        assert_eq!(opts.prefix, "/registry");
        assert_eq!(opts.page_size, 500);
        assert_eq!(cli.args.output, AuditOutput::Table);

        let cli = Cli::try_parse_from([
            "audit",
            "--etcd-servers=https://e:2379",
            "--etcd-cafile=ca.crt",
            "--etcd-certfile=c.crt",
            "--etcd-keyfile=c.key",
            "--etcd-prefix=/k3s",
            "--encryption-provider-config=enc.yaml",
            "--resources=secrets",
            "-o",
            "json",
        ])
        .expect("parse");
        let opts = cli.args.options();
        assert_eq!(opts.ca_file, Some(PathBuf::from("ca.crt")));
        assert_eq!(opts.key_file, Some(PathBuf::from("c.key")));
        assert_eq!(
            opts.encryption_provider_config,
            Some(PathBuf::from("enc.yaml"))
        );
        assert_eq!((opts.prefix.as_str(), opts.resources.len()), ("/k3s", 1));
        assert_eq!(cli.args.output, AuditOutput::Json);

        assert!(
            Cli::try_parse_from(["audit"]).is_err(),
            "--etcd-servers is required"
        );
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("Examples:"), "{help}");
        assert!(help.contains("--encryption-provider-config"), "{help}");
    }

    /// The lead's wiring in `ward`: `ward etcd audit` as a nested subcommand.
    #[derive(clap::Parser, Debug)]
    #[command(name = "ward")]
    struct Ward {
        #[command(subcommand)]
        command: WardCommand,
    }

    #[derive(clap::Subcommand, Debug)]
    enum WardCommand {
        #[command(subcommand)]
        Etcd(EtcdCommand),
    }

    #[derive(clap::Subcommand, Debug)]
    enum EtcdCommand {
        Audit(EtcdAuditArgs),
    }

    #[test]
    fn works_as_a_subcommand() {
        let ward = Ward::try_parse_from(["ward", "etcd", "audit", "--etcd-servers=http://e:1"])
            .expect("parse");
        let WardCommand::Etcd(EtcdCommand::Audit(args)) = ward.command;
        assert_eq!(args.options().endpoints, ["http://e:1"]);
        let help = Ward::try_parse_from(["ward", "etcd", "audit", "--help"])
            .expect_err("help")
            .to_string();
        assert!(help.contains("Read-only."), "{help}");
        assert!(help.contains("ward etcd audit --etcd-servers"), "{help}");
        assert!(help.contains("Usage: ward etcd audit"), "{help}");
        let short = Ward::try_parse_from(["ward", "etcd", "--help"])
            .expect_err("help")
            .to_string();
        assert!(short.contains("audit  Report how each Secret"), "{short}");
    }

    #[test]
    fn names_are_made_printable() {
        assert_eq!(printable("a\x1b[2Jb"), "a?[2Jb");
        assert_eq!(
            printable(&"x".repeat(70)).chars().count(),
            MAX_SHOWN_CHARS + 1
        );
        assert_eq!(
            split_key("/registry/secrets/ns/a/b", "/registry/secrets/"),
            (Some("ns".to_owned()), "a/b".to_owned())
        );
        assert_eq!(
            split_key("/registry/namespaces/ns", "/registry/namespaces/"),
            (None, "ns".to_owned())
        );
        let t = table(
            &["A", "BB"],
            vec![vec!["xyz".into(), "1".into(), "extra".into()]],
        );
        assert_eq!(t, "A     BB\nxyz   1    extra\n");
    }
}
