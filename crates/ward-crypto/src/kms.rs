//! The seam between the transformers and a KMS envelope provider.
//!
//! # Policy
//!
//! This crate does no network IO, so it cannot talk to a KMS plugin itself. A `kms` provider of
//! the configuration is turned into a [`KmsTransformer`] by a [`KmsFactory`] handed to
//! [`crate::Transformers::from_config_with_kms`]; `ward-kms` provides the KMS v2 gRPC
//! implementation. [`crate::Transformers::from_config`] has no factory and refuses every `kms`
//! provider ([`crate::BuildError::KmsUnsupported`]), so code paths that cannot reach a plugin fail
//! at build time rather than on the first read.
//!
//! A KMS transformer may need a remote call, so it is async: use
//! [`crate::ResourceTransformer::to_storage_async`] and
//! [`crate::ResourceTransformer::from_storage_async`]. The synchronous methods still work for
//! every other provider and report a KMS unit as [`KmsFailure::NeedsAsync`].
//!
//! **Secrets in errors.** A [`KmsFailure`] never holds plaintext, a DEK, a seed, or key bytes:
//! implementations put only fixed text, field names and the plugin's own error message in it.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::config::KmsConfig;

/// A KMS envelope provider, as one entry of a resource's provider list.
///
/// The prefix (`k8s:enc:kms:v2:<name>:`, or `k8s:enc:kms:v1:<name>:` for a read-only KMS v1
/// provider) is matched and stripped by the caller: [`Self::seal`]
/// returns the payload to put after it and [`Self::open`] receives the payload that follows it.
#[async_trait::async_trait]
pub trait KmsTransformer: Send + Sync + fmt::Debug {
    /// The provider name of the configuration (`kms.name`).
    fn name(&self) -> &str;

    /// The full value prefix, e.g. `k8s:enc:kms:v2:my-kms:`.
    fn prefix(&self) -> &[u8];

    /// Encrypts `plaintext` for storage under the storage key `aad`, returning the payload that
    /// follows the prefix.
    ///
    /// # Errors
    ///
    /// A [`KmsFailure`] when no write key is available (plugin never reached, or the write key
    /// expired) or encryption fails.
    async fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsFailure>;

    /// Decrypts a payload (the bytes after the prefix) stored under `aad`.
    ///
    /// # Errors
    ///
    /// A [`KmsFailure`] when the payload is malformed, the plugin cannot decrypt its DEK source,
    /// or authentication fails (wrong key, tampered data, wrong `aad`).
    async fn open(&self, payload: &[u8], aad: &[u8]) -> Result<KmsOpened, KmsFailure>;

    /// `Ok` when the provider can currently encrypt new values (for a read-only provider: when
    /// its plugin answers); `Err` says why not (for a `healthz` check). Never holds key material.
    fn health(&self) -> Result<(), String>;

    /// The health for `/healthz/kms-providers`: fresh enough to answer a probe. The default is
    /// [`Self::health`]; a transformer that talks to a plugin may ask it first (kube-apiserver's
    /// KMS v2 check calls `Status` when its last answer is older than 20 s, or 3 s after a
    /// failure).
    async fn check_health(&self) -> Result<(), String> {
        self.health()
    }

    /// Whether the provider can write. A read-only provider (KMS v1, kept only to read values
    /// kube-apiserver wrote) must never be the first provider of a resource:
    /// [`crate::Transformers::from_config_with_kms`] refuses such a configuration
    /// ([`crate::BuildError::KmsReadOnly`]), and its [`Self::seal`] fails with
    /// [`KmsFailure::ReadOnly`].
    fn writes(&self) -> bool {
        true
    }
}

/// Builds a [`KmsTransformer`] for each `kms` provider of a configuration.
pub trait KmsFactory {
    /// Builds the transformer of one `kms` provider. Must not block on IO.
    ///
    /// # Errors
    ///
    /// A message (no key material) when the provider cannot be used, e.g. an unsupported
    /// `apiVersion`; it is reported as [`crate::BuildError::Kms`].
    fn build(&self, config: &KmsConfig) -> Result<Arc<dyn KmsTransformer>, String>;
}

/// A value read by a [`KmsTransformer`].
pub struct KmsOpened {
    /// The plaintext, wiped when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Whether the value was written under another key ID or DEK-source type than the current
    /// one, so it should be rewritten.
    pub stale: bool,
}

impl fmt::Debug for KmsOpened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsOpened")
            .field("plaintext", &"[redacted]")
            .field("stale", &self.stale)
            .finish()
    }
}

/// Why a KMS transformer failed. Never holds plaintext, DEK, seed or key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsFailure {
    /// Authentication failed: wrong DEK, tampered data, or a wrong storage key (AAD).
    #[error("decryption failed (wrong key, or the value or its storage key was altered)")]
    Decrypt,
    /// The value could not be encrypted (it is too large for AES-GCM).
    #[error("failed to encrypt the value")]
    Encrypt,
    /// The stored `EncryptedObject` is malformed; the message names the field.
    #[error("the stored EncryptedObject is invalid: {0}")]
    Malformed(String),
    /// The provider was used through a synchronous method.
    #[error("the kms provider needs the async transformer methods")]
    NeedsAsync,
    /// No write DEK or seed is available; the message says why (plugin never reached, key ID
    /// mismatch, or expired after the plugin stopped answering).
    #[error("kms provider is not ready for writes: {0}")]
    NotReady(String),
    /// The KMS plugin failed or answered something invalid.
    #[error("kms plugin: {0}")]
    Plugin(String),
    /// No random bytes could be drawn.
    #[error("failed to draw random bytes")]
    Random,
    /// The provider only reads (KMS v1); Ward never writes its format.
    #[error("kms v1 is read-only in Ward: values are written through the first provider")]
    ReadOnly,
}
