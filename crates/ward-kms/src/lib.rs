//! KMS for Ward: the KMS v2 plugin protocol, the envelope transformer that uses it, and
//! `ward kms-plugin`.
//!
//! - [`proto::v2`]: the `v2.KeyManagementService` gRPC client and server and the stored
//!   `EncryptedObject`, generated from `proto/` with exactly upstream's field numbers.
//! - [`transformers_from_config`]: builds `ward_crypto` transformers whose `kms` (v2) providers
//!   talk to their plugin over a unix socket ([`GrpcKmsClient`]) through a [`KmsV2Envelope`]
//!   (seed rotation on key ID change, Status polling, write-seed expiry, DEK-source cache).
//! - [`KmsV1Envelope`]: reads (never writes) values kube-apiserver wrote through a deprecated
//!   KMS v1 provider, over the `v1beta1.KeyManagementService` gRPC API ([`GrpcKmsV1Client`]).
//! - [`metrics`]: kube-apiserver's `apiserver_envelope_encryption_*` metrics.
//! - [`run_plugin`] / [`start_plugin`]: the plugin server, with AES-256 key-encryption keys from
//!   files ([`KeyFileKms`]) or on a PKCS#11 token ([`Pkcs11Kms`]).
//!
//! [`KmsService`] is the seam: the envelope runs over the gRPC client or, in process, over a key
//! backend (key files or PKCS#11).
//!
//! This crate depends on `ward-crypto` (configuration, transformer seam, key types) and never on
//! storage or the HTTP server. It never logs or returns a DEK, a seed or a key; key IDs are
//! logged hashed.
//!
//! ```
//! use std::sync::Arc;
//! use ward_crypto::KmsTransformer as _;
//! use ward_kms::{KeyFileKms, KeyFileSpec, KmsV2Envelope, SystemClock};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("kek.key");
//! # std::fs::write(&path, [7u8; 32])?;
//! # std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
//! // A plugin backend used in process (a real deployment serves it with `ward kms-plugin`).
//! let kms = KeyFileKms::open(vec![KeyFileSpec::new(&path)], ward_crypto::ModeCheck::Enforce)?;
//! let envelope = KmsV2Envelope::new("my-kms", Arc::new(kms), Arc::new(SystemClock));
//! envelope.probe().await?; // Status, then Encrypt of a fresh seed
//!
//! let aad = b"/registry/secrets/default/db";
//! let payload = envelope.seal(b"k8s\x00...", aad).await?;
//! let read = envelope.open(&payload, aad).await?;
//! assert_eq!(read.plaintext.as_slice(), b"k8s\x00...");
//! assert!(!read.stale);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod client;
mod clock;
mod endpoint;
mod envelope;
mod error;
mod keyfile;
pub mod metrics;
mod pkcs11;
mod plugin;
pub mod proto;
mod service;
#[cfg(feature = "testing")]
pub mod testing;
mod v1;

pub use client::GrpcKmsClient;
pub use clock::{Clock, ManualClock, SystemClock};
pub use endpoint::KmsEndpoint;
pub use envelope::{
    HEALTHY_POLL_INTERVAL, KmsOptions, KmsV2Envelope, UNHEALTHY_POLL_INTERVAL, WRITE_SEED_TTL,
    stored_key_id, transformers_from_config, transformers_from_config_with,
};
pub use error::KmsError;
pub use keyfile::{KeyFileKms, KeyFileSpec};
pub use pkcs11::{Pkcs11KeySpec, Pkcs11Kms, Pkcs11Mechanism, Pkcs11Options};
pub use plugin::{
    KmsPluginArgs, PKCS11_PIN_ENV, PLUGIN_EXAMPLES, PluginHandle, run_plugin, start_plugin,
};
pub use service::{
    KMS_API_VERSIONS, KmsService, KmsStatus, MAX_ANNOTATIONS_LEN, MAX_FIELD_LEN, WrappedKey,
};
#[doc(hidden)]
pub use v1::open_payload_with_dek as open_v1_payload_with_dek;
pub use v1::{GrpcKmsV1Client, KMS_V1_API_VERSION, KmsV1Envelope};
