//! `ward serve`: a Kubernetes-API-compatible HTTPS server for Secrets, ConfigMaps and Namespaces.
//!
//! A request flows: TLS (rustls, ring) → authentication → routing → body decoding (JSON, YAML,
//! Kubernetes protobuf) → per-kind strategy (`ward_api::strategy`) → storage codec (kube-apiserver
//! bytes) → encryption transformer (`ward_crypto`) → revisioned storage (`ward_storage`). Replies
//! are JSON, YAML or `Table`; every error is a Kubernetes `Status`.
//!
//! This crate maps domain errors to HTTP in one place (the private `error` module); it never logs request bodies.

pub mod admin;
mod api;
mod audit;
mod auth;
mod authz;
mod bootstrap;
mod discovery;
mod error;
pub mod etcd_audit;
mod http;
mod metrics;
mod request;
mod satoken;
mod store;
mod watch;
mod watchcache;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

pub use audit::AuditOptions;
pub use http::ServerHandle;
pub use satoken::DEFAULT_ISSUER as DEFAULT_SERVICE_ACCOUNT_ISSUER;

/// Options of `ward serve`, named as kube-apiserver names its flags.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where the store, PKI, admin credential and generated keys live.
    pub data_dir: PathBuf,
    /// The address to listen on (`--bind-address`).
    pub bind_address: IpAddr,
    /// The HTTPS port (`--secure-port`); 0 picks a free port.
    pub secure_port: u16,
    /// Extra subject alternative names for the serving certificate (`--tls-san`).
    pub tls_sans: Vec<String>,
    /// kube-apiserver's EncryptionConfiguration file (`--encryption-provider-config`); `None`
    /// uses the one generated in the data directory on first start.
    pub encryption_provider_config: Option<PathBuf>,
    /// How many revisions of history the store keeps for watches.
    pub history_revisions: usize,
    /// kube-apiserver's static token file (`--token-auth-file`): `token,user,uid[,"groups"]`.
    pub token_auth_file: Option<PathBuf>,
    /// CA bundle that verifies client certificates (`--client-ca-file`); CN = user, O = groups.
    pub client_ca_file: Option<PathBuf>,
    /// Serve unauthenticated requests as `system:anonymous` (`--anonymous-auth`; off by default).
    pub anonymous_auth: bool,
    /// PKCS#8 PEM ECDSA P-256 key that signs ServiceAccount tokens
    /// (`--service-account-signing-key-file`); default: generated in the data directory.
    pub service_account_signing_key_file: Option<PathBuf>,
    /// `iss` of ServiceAccount tokens (`--service-account-issuer`).
    pub service_account_issuer: String,
    /// Audiences the API accepts in tokens (`--api-audiences`); default: the issuer.
    pub api_audiences: Vec<String>,
    /// Store in etcd instead of the embedded database (`--etcd-servers` and friends).
    pub etcd: Option<EtcdConfig>,
    /// List and watch return Secret values to anyone who may list, as upstream does
    /// (`--list-reveals-values`). Off by default: values go only to callers who may `get`.
    pub list_reveals_values: bool,
    /// The audit policy and log.
    pub audit: AuditOptions,
    /// How often the encryption configuration file is checked for changes
    /// (`--encryption-provider-config-automatic-reload`: kube-apiserver polls every minute);
    /// zero turns reloading off.
    pub encryption_config_reload_interval: std::time::Duration,
}

/// The etcd connection, with kube-apiserver's flag names.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// `--etcd-servers`: endpoints such as `https://10.0.0.1:2379`.
    pub servers: Vec<String>,
    /// `--etcd-cafile`.
    pub ca_file: Option<PathBuf>,
    /// `--etcd-certfile`.
    pub cert_file: Option<PathBuf>,
    /// `--etcd-keyfile`.
    pub key_file: Option<PathBuf>,
    /// `--etcd-prefix` (default `/registry`): keys are `<prefix>/<resource>/<namespace>/<name>`.
    pub prefix: String,
}

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A configuration file or flag is wrong.
    #[error("{0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or address involved.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("storage: {0}")]
    Storage(String),
}

impl ServeError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        ServeError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Starts the server and returns once it listens. The handle tells the address and stops it.
///
/// `Err` when the data directory, certificates, encryption config or store cannot be prepared,
/// or the address cannot be bound.
pub async fn start(opts: ServeOptions) -> Result<ServerHandle, ServeError> {
    let dir = opts.data_dir.clone();
    let sans = opts.tls_sans.clone();
    let enc = opts.encryption_provider_config.clone();
    let sa_key = opts.service_account_signing_key_file.clone();
    let boot = tokio::task::spawn_blocking(move || {
        bootstrap::prepare(&dir, &sans, enc.as_deref(), sa_key.as_deref())
    })
    .await
    .map_err(|e| ServeError::Config(format!("start-up task failed: {e}")))??;

    let config = ward_crypto::load_encryption_config(&boot.encryption_config)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let config_hash = config.content_hash().to_owned();
    // `kms` providers connect to their plugin here. As kube-apiserver does, an unreachable
    // plugin does not stop the start: it is logged, writes through it fail until it answers
    // (probed every 10 s), and `Transformers::kms_health` reports it.
    let transformers = ward_kms::transformers_from_config(config)
        .await
        .map_err(|e| ServeError::Config(e.to_string()))?;
    for res in ["secrets", "configmaps"] {
        let t = transformers.for_resource("", res);
        if t.provider_name() == "identity" {
            warn!(
                resource = res,
                "encryption at rest is OFF for this resource (identity provider)"
            );
        } else {
            info!(
                resource = res,
                provider = t.provider_name(),
                "encryption at rest"
            );
        }
    }

    let storage: Arc<dyn ward_storage::Storage> = match &opts.etcd {
        Some(etcd) => {
            // kube-apiserver joins the prefix and the key as paths: "/k3s/" is "/k3s".
            let prefix = etcd.prefix.trim_end_matches('/');
            if prefix.is_empty() || !prefix.starts_with('/') {
                return Err(ServeError::Config(format!(
                    "--etcd-prefix {:?}: expected a path such as /registry (the default)",
                    etcd.prefix
                )));
            }
            let storage = ward_storage_etcd::EtcdStorage::connect(ward_storage_etcd::EtcdOptions {
                endpoints: etcd.servers.clone(),
                ca_file: etcd.ca_file.clone(),
                cert_file: etcd.cert_file.clone(),
                key_file: etcd.key_file.clone(),
                // Ward's keys start with /registry; etcd's with the prefix instead.
                prefix: prefix.to_owned(),
                root: "/registry".to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| ServeError::Storage(e.to_string()))?;
            info!(servers = ?etcd.servers, "storage: etcd");
            Arc::new(storage)
        }
        None => {
            let db_path = boot.db_path.clone();
            let history = opts.history_revisions;
            let storage = tokio::task::spawn_blocking(move || {
                ward_storage_redb::RedbStorage::open(
                    &db_path,
                    ward_storage_redb::RedbOptions { history },
                )
            })
            .await
            .map_err(|e| ServeError::Storage(format!("open task failed: {e}")))?
            .map_err(|e| ServeError::Storage(e.to_string()))?;
            Arc::new(storage)
        }
    };

    let store = store::ObjectStore::new(storage, transformers);
    if opts.encryption_config_reload_interval > std::time::Duration::ZERO {
        spawn_encryption_reload(
            store.clone(),
            boot.encryption_config.clone(),
            config_hash,
            opts.encryption_config_reload_interval,
        );
    }
    store
        .ensure_default_namespaces()
        .await
        .map_err(|e| ServeError::Storage(e.to_string()))?;

    let addr = SocketAddr::new(opts.bind_address, opts.secure_port);
    let handle = http::listen(addr, &boot, &opts, store).await?;
    let host = match opts.bind_address {
        a if a.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    let url = format!("https://{host}:{}", handle.local_addr().port());
    bootstrap::write_kubeconfig(&boot, &url)?;
    if boot.first_start {
        info!(data_dir = %opts.data_dir.display(), "first start: created CA, admin credential and encryption key");
    }
    info!(%url, kubeconfig = %boot.kubeconfig.display(), "ward serve is listening");
    Ok(handle)
}

/// Polls the encryption configuration; when its content changes (sha256) and the new file is
/// valid, swaps the transformers atomically. A bad file keeps the old configuration and says why.
fn spawn_encryption_reload(
    store: store::ObjectStore,
    path: PathBuf,
    mut hash: String,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let config = match ward_crypto::load_encryption_config(&path) {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "encryption configuration reload failed; keeping the current one");
                    metrics::encryption_reload(false, now);
                    continue;
                }
            };
            if config.content_hash() == hash {
                continue;
            }
            let new_hash = config.content_hash().to_owned();
            match ward_kms::transformers_from_config(config).await {
                Ok(t) => {
                    store.set_transformers(t);
                    hash = new_hash;
                    metrics::encryption_reload(true, now);
                    info!(config = %path.display(), %hash, "encryption configuration reloaded");
                }
                Err(e) => {
                    warn!(error = %e, "encryption configuration reload failed; keeping the current one");
                    metrics::encryption_reload(false, now);
                }
            }
        }
    });
}
