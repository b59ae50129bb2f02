//! `ward kms-plugin`: a KMS v2 plugin that kube-apiserver (and Ward) can use unchanged.
//!
//! It serves `v2.KeyManagementService` (Status, Encrypt, Decrypt) over gRPC on a unix socket,
//! with keys from files ([`crate::KeyFileKms`]; format and rotation are described there) or on a
//! PKCS#11 token ([`crate::Pkcs11Kms`]). The
//! socket file is created with mode 0600 (put it in a directory only the API server's user can
//! enter: the mode is set right after `bind`). Abstract sockets (`@name`) have no permissions at
//! all; use them only inside a private network namespace.
//!
//! Requests are checked against the KMS v2 limits (ciphertext and key ID ≤ 1 KiB, annotations
//! ≤ 32 KiB) and refused with `INVALID_ARGUMENT`; an unknown key ID gives `NOT_FOUND`. Logs carry
//! the request `uid` and the key ID, never a DEK, a seed or a key.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{info, warn};
use ward_crypto::ModeCheck;
use zeroize::Zeroize as _;

use crate::client::MAX_MESSAGE_LEN;
use crate::endpoint::KmsEndpoint;
use crate::error::KmsError;
use crate::keyfile::{KeyFileKms, KeyFileSpec};
use crate::pkcs11::{Pkcs11KeySpec, Pkcs11Kms, Pkcs11Mechanism, Pkcs11Options};
use crate::proto::v2;
use crate::proto::v2::key_management_service_server::{
    KeyManagementService, KeyManagementServiceServer,
};
use crate::service::{KmsService, MAX_FIELD_LEN, WrappedKey, validate_annotations};

/// The arguments of `ward kms-plugin`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = PLUGIN_EXAMPLES)]
pub struct KmsPluginArgs {
    /// Where to listen: unix:///PATH.sock, or unix:///@NAME / @NAME for a Linux abstract socket.
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: String,
    /// A 32-byte AES-256 key-encryption key (raw or base64, mode 0600), as PATH or KEY_ID=PATH.
    /// Repeat for rotation: the first encrypts, all decrypt. The key ID defaults to a hash of
    /// the key.
    #[arg(
        long = "key-file",
        value_name = "[KEY_ID=]PATH",
        required_unless_present = "pkcs11_module"
    )]
    pub key_files: Vec<String>,
    /// Accept key and PIN files that group or others can access (logs a warning).
    #[arg(long)]
    pub allow_insecure_key_file_mode: bool,
    /// PKCS#11 module holding the keys instead of key files, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so. The user PIN comes from --pkcs11-pin-file or the
    /// WARD_KMS_PKCS11_PIN environment variable.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "key_files",
        requires = "pkcs11_token_label",
        requires = "pkcs11_key_labels"
    )]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token.
    #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
    pub pkcs11_token_label: Option<String>,
    /// Label of an AES key on the token, as LABEL or KEY_ID=LABEL. Repeat for rotation: the
    /// first encrypts, all decrypt.
    #[arg(
        long = "pkcs11-key-label",
        value_name = "[KEY_ID=]LABEL",
        requires = "pkcs11_module"
    )]
    pub pkcs11_key_labels: Vec<String>,
    /// File holding the token's user PIN (mode 0600).
    #[arg(long, value_name = "PATH", requires = "pkcs11_module")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// How the token wraps DEKs and seeds: aes-gcm (CKM_AES_GCM) or aes-key-wrap-pad
    /// (CKM_AES_KEY_WRAP_PAD, RFC 5649; the key needs CKA_WRAP and CKA_UNWRAP). Values wrapped
    /// with either stay readable after a change.
    #[arg(
        long,
        value_enum,
        value_name = "MECHANISM",
        default_value_t = Pkcs11Mechanism::AesGcm,
        requires = "pkcs11_module"
    )]
    pub pkcs11_mechanism: Pkcs11Mechanism,
}

/// The environment variable that may hold the PKCS#11 user PIN.
pub const PKCS11_PIN_ENV: &str = "WARD_KMS_PKCS11_PIN";

/// The `--help` examples of `ward kms-plugin`.
pub const PLUGIN_EXAMPLES: &str = "\
Examples:
  # Make a key-encryption key and serve it
  (umask 077; head -c 32 /dev/urandom > /etc/ward/kek-1.key)
  ward kms-plugin --listen unix:///var/run/ward-kms.sock --key-file /etc/ward/kek-1.key

  # Use it from Ward or kube-apiserver (EncryptionConfiguration)
  #   - kms: {apiVersion: v2, name: ward-kms, endpoint: unix:///var/run/ward-kms.sock}

  # Rotate: new key first, old key kept for reading; then rewrite stale values
  (umask 077; head -c 32 /dev/urandom > /etc/ward/kek-2.key)
  ward kms-plugin --listen unix:///var/run/ward-kms.sock \\
      --key-file /etc/ward/kek-2.key --key-file /etc/ward/kek-1.key

  # Keys in an HSM (PKCS#11), PIN from a file
  ward kms-plugin --listen unix:///var/run/ward-kms.sock \\
      --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token-label ward \\
      --pkcs11-key-label kek-1 --pkcs11-pin-file /etc/ward/pkcs11.pin

  # The same with RFC 5649 key wrapping (C_WrapKey) instead of AES-GCM; PIN from the environment
  WARD_KMS_PKCS11_PIN=\"$PIN\" ward kms-plugin --listen unix:///var/run/ward-kms.sock \\
      --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token-label ward \\
      --pkcs11-key-label kek-1 --pkcs11-mechanism aes-key-wrap-pad";

/// Runs the plugin until SIGINT or SIGTERM, then removes the socket file.
///
/// # Errors
///
/// [`KmsError`] when a key file is unusable, the endpoint is invalid, the socket cannot be bound,
/// or the server fails.
pub async fn run_plugin(args: KmsPluginArgs) -> Result<(), KmsError> {
    let kms = backend(&args, &|name| std::env::var(name).ok())?;
    let handle = start_plugin(&args.listen, kms).await?;
    info!(endpoint = %handle.endpoint(), "kms plugin: listening");
    let stopped = shutdown_signal().await;
    if let Err(e) = stopped {
        warn!(error = %e, "cannot wait for signals; stopping");
    }
    handle.shutdown().await
}

/// Builds the key backend of `args`; `env` reads environment variables (tests pass a map).
pub(crate) fn backend(
    args: &KmsPluginArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn KmsService>, KmsError> {
    let mode_check = if args.allow_insecure_key_file_mode {
        warn!("--allow-insecure-key-file-mode: key and PIN files readable by others are accepted");
        ModeCheck::Skip
    } else {
        ModeCheck::Enforce
    };
    let Some(module) = &args.pkcs11_module else {
        let specs = args
            .key_files
            .iter()
            .map(|arg| KeyFileSpec::parse(arg))
            .collect::<Result<Vec<_>, _>>()?;
        let kms = KeyFileKms::open(specs, mode_check)?;
        info!(key_id = %kms.current_key_id(), "kms plugin: key files loaded");
        return Ok(Arc::new(kms));
    };
    let pin = match (&args.pkcs11_pin_file, env(PKCS11_PIN_ENV)) {
        (Some(_), Some(_)) => {
            return Err(KmsError::Usage(format!(
                "the PKCS#11 PIN is given twice: use --pkcs11-pin-file or {PKCS11_PIN_ENV}, \
                 not both"
            )));
        }
        (Some(path), None) => crate::pkcs11::read_pin_file(path, mode_check)?,
        (None, Some(pin)) if !pin.is_empty() => pin.into(),
        (None, _) => {
            return Err(KmsError::Usage(format!(
                "the PKCS#11 user PIN is missing: give --pkcs11-pin-file or set {PKCS11_PIN_ENV}"
            )));
        }
    };
    let keys = args
        .pkcs11_key_labels
        .iter()
        .map(|arg| Pkcs11KeySpec::parse(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let kms = Pkcs11Kms::open(Pkcs11Options {
        module: module.clone(),
        token_label: args.pkcs11_token_label.clone().unwrap_or_default(),
        keys,
        pin,
        mechanism: args.pkcs11_mechanism,
    })?;
    info!(
        key_id = ?kms.current_key_id(),
        mechanism = %args.pkcs11_mechanism,
        "kms plugin: PKCS#11 token opened"
    );
    Ok(Arc::new(kms))
}

/// Serves `kms` as a KMS v2 plugin on `listen` until the handle is shut down. Used by
/// [`run_plugin`] and by tests (an in-process plugin on a temporary socket).
///
/// # Errors
///
/// [`KmsError::Endpoint`] or [`KmsError::Io`] when the endpoint is invalid or cannot be bound.
pub async fn start_plugin(
    listen: &str,
    kms: Arc<dyn KmsService>,
) -> Result<PluginHandle, KmsError> {
    let endpoint = KmsEndpoint::parse(listen)?;
    let listener = endpoint.bind()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let service = KeyManagementServiceServer::new(PluginService { kms })
        .max_decoding_message_size(MAX_MESSAGE_LEN)
        .max_encoding_message_size(MAX_MESSAGE_LEN);
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    let task = tokio::spawn(server);
    Ok(PluginHandle {
        endpoint,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// A running plugin server.
#[derive(Debug)]
pub struct PluginHandle {
    endpoint: KmsEndpoint,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl PluginHandle {
    /// The endpoint it listens on.
    pub fn endpoint(&self) -> &KmsEndpoint {
        &self.endpoint
    }

    /// Stops accepting, lets in-flight calls finish, and removes the socket file.
    ///
    /// # Errors
    ///
    /// [`KmsError::Serve`] if the server had failed.
    pub async fn shutdown(mut self) -> Result<(), KmsError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(KmsError::Serve),
                Err(_) => Ok(()),
            },
            None => Ok(()),
        };
        self.endpoint.remove();
        result
    }
}

impl Drop for PluginHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

// === impl PluginService ===

/// The gRPC face of a [`KmsService`].
struct PluginService {
    kms: Arc<dyn KmsService>,
}

#[tonic::async_trait]
impl KeyManagementService for PluginService {
    async fn status(
        &self,
        _request: tonic::Request<v2::StatusRequest>,
    ) -> Result<tonic::Response<v2::StatusResponse>, tonic::Status> {
        let status = self.kms.status().await.map_err(|e| e.to_status())?;
        Ok(tonic::Response::new(v2::StatusResponse {
            version: status.version,
            healthz: status.healthz,
            key_id: status.key_id,
        }))
    }

    async fn decrypt(
        &self,
        request: tonic::Request<v2::DecryptRequest>,
    ) -> Result<tonic::Response<v2::DecryptResponse>, tonic::Status> {
        let request = request.into_inner();
        check_uid(&request.uid)?;
        if request.ciphertext.is_empty() || request.ciphertext.len() > MAX_FIELD_LEN {
            return Err(tonic::Status::invalid_argument(format!(
                "ciphertext must be 1 to {MAX_FIELD_LEN} bytes, got {}",
                request.ciphertext.len()
            )));
        }
        validate_annotations(&request.annotations).map_err(tonic::Status::invalid_argument)?;
        let wrapped = WrappedKey {
            ciphertext: request.ciphertext,
            key_id: request.key_id,
            annotations: request.annotations,
        };
        let mut plaintext = match self.kms.decrypt(&request.uid, &wrapped).await {
            Ok(plaintext) => plaintext,
            Err(e) => {
                warn!(uid = %request.uid, error = %e, "kms plugin: decrypt refused");
                return Err(e.to_status());
            }
        };
        Ok(tonic::Response::new(v2::DecryptResponse {
            plaintext: std::mem::take(&mut *plaintext),
        }))
    }

    async fn encrypt(
        &self,
        request: tonic::Request<v2::EncryptRequest>,
    ) -> Result<tonic::Response<v2::EncryptResponse>, tonic::Status> {
        let mut request = request.into_inner();
        check_uid(&request.uid)?;
        let result = self.kms.encrypt(&request.uid, &request.plaintext).await;
        // Clear intermediates
        request.plaintext.zeroize();
        let wrapped = result.map_err(|e| {
            warn!(uid = %request.uid, error = %e, "kms plugin: encrypt refused");
            e.to_status()
        })?;
        Ok(tonic::Response::new(v2::EncryptResponse {
            ciphertext: wrapped.ciphertext,
            key_id: wrapped.key_id,
            annotations: wrapped.annotations,
        }))
    }
}

fn check_uid(uid: &str) -> Result<(), tonic::Status> {
    if uid.len() > MAX_UID_LEN {
        return Err(tonic::Status::invalid_argument(format!(
            "uid is {} bytes, more than {MAX_UID_LEN}",
            uid.len()
        )));
    }
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// A uid is a UUID; anything much longer is not one.
const MAX_UID_LEN: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    fn pkcs11_args(pin_file: Option<PathBuf>) -> KmsPluginArgs {
        KmsPluginArgs {
            listen: "@unused".into(),
            key_files: vec![],
            allow_insecure_key_file_mode: false,
            pkcs11_module: Some("/nonexistent/module.so".into()),
            pkcs11_token_label: Some("t".into()),
            pkcs11_key_labels: vec!["k".into()],
            pkcs11_pin_file: pin_file,
            pkcs11_mechanism: Pkcs11Mechanism::AesGcm,
        }
    }

    #[test]
    fn the_pkcs11_pin_comes_from_exactly_one_source() {
        let env_pin = |name: &str| (name == PKCS11_PIN_ENV).then(|| "1234".to_owned());
        let no_env = |_: &str| None;
        let err = backend(&pkcs11_args(Some("/p".into())), &env_pin).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        let err = backend(&pkcs11_args(None), &no_env).unwrap_err();
        assert!(err.to_string().contains(PKCS11_PIN_ENV), "{err}");
        // With a PIN, the next problem is the module, named without the PIN.
        let err = backend(&pkcs11_args(None), &env_pin).unwrap_err();
        assert!(matches!(err, KmsError::Pkcs11 { .. }), "{err}");
        assert!(!err.to_string().contains("1234"), "{err}");
    }
}
