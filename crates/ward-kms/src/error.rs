//! Errors of the KMS client, the plugin and its key files.
//!
//! # Policy
//!
//! Messages name the endpoint, the file, the RPC and what was expected. They never hold a DEK, a
//! seed, a key-encryption key or any plaintext: gRPC errors carry only the status code and the
//! peer's message, and a plugin never puts secret bytes in its messages.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the KMS v2 client or plugin. Never holds key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The KMS endpoint is not `unix:///path`, `unix:///@name` or `@name`.
    #[error("kms endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file or socket operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or socket.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file is unusable (mode, size or encoding); the message never echoes its content.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong, e.g. the mode found and the mode expected.
        reason: String,
    },
    /// A `--key-file` argument or other option is invalid.
    #[error("{0}")]
    Usage(String),
    /// The plugin answered a call with a gRPC error.
    #[error("kms {method} failed: {code}: {message}")]
    Rpc {
        /// `Status`, `Encrypt` or `Decrypt`.
        method: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The plugin's message.
        message: String,
    },
    /// The plugin did not answer within the configured timeout.
    #[error("kms {method} timed out after {timeout:?}")]
    Timeout {
        /// `Status`, `Encrypt` or `Decrypt`.
        method: &'static str,
        /// The per-call timeout.
        timeout: Duration,
    },
    /// The plugin's answer breaks the KMS v2 rules (size limits, empty fields, key ID mismatch).
    #[error("kms {method}: invalid response: {reason}")]
    InvalidResponse {
        /// `Status`, `Encrypt` or `Decrypt`.
        method: &'static str,
        /// The broken rule.
        reason: String,
    },
    /// The plugin answered `Status` but is not healthy (healthz not `ok`, unexpected version,
    /// invalid key ID), or a new write seed could not be made; the message says which.
    #[error("kms plugin is not healthy: {0}")]
    Unhealthy(String),
    /// A request to the plugin breaks the KMS v2 rules.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Decrypt named a key ID the plugin does not hold.
    #[error("unknown key_id {0:?}")]
    UnknownKeyId(String),
    /// The ciphertext did not authenticate under the key named by its key ID.
    #[error("the ciphertext does not authenticate under key_id {0:?} (tampered or wrong key)")]
    Unwrap(String),
    /// A PKCS#11 operation failed (module, token, session, key or PIN); the message is the
    /// module's error code, never a PIN or key.
    #[error("pkcs11: cannot {operation}: {reason}")]
    Pkcs11 {
        /// What was being done, e.g. `log in`.
        operation: &'static str,
        /// The module's error or what was not found.
        reason: String,
    },
    /// The gRPC server failed.
    #[error("kms plugin server: {0}")]
    Serve(#[source] tonic::transport::Error),
    /// No random bytes could be drawn.
    #[error("failed to draw random bytes")]
    Random,
}

impl KmsError {
    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The gRPC status a plugin returns for this error.
    pub(crate) fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            Self::InvalidRequest(_) => tonic::Status::invalid_argument(message),
            Self::UnknownKeyId(_) => tonic::Status::not_found(message),
            Self::Unwrap(_) => tonic::Status::invalid_argument(message),
            Self::Rpc { code, .. } => tonic::Status::new(*code, message),
            Self::Timeout { .. } => tonic::Status::deadline_exceeded(message),
            _ => tonic::Status::unavailable(message),
        }
    }
}
