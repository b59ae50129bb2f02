//! Encryption at rest for Ward: the `EncryptionConfiguration` file and the transformers that turn
//! values into stored bytes and back, byte-compatible with kube-apiserver.
//!
//! - [`load_encryption_config`] / [`EncryptionConfig::from_bytes`] read and validate the file
//!   (YAML or JSON, `apiserver.config.k8s.io/v1` `EncryptionConfiguration` or the legacy `v1`
//!   `EncryptionConfig`).
//! - [`Transformers::from_config`] builds one [`ResourceTransformer`] per resource;
//!   [`ResourceTransformer::to_storage`] and [`ResourceTransformer::from_storage`] apply the
//!   `identity`, `aescbc`, `aesgcm` and `secretbox` providers. `kms` is parsed and validated but
//!   not implemented yet: building transformers from a config that uses it fails.
//! - [`generate_default_config`] produces the configuration written on Ward's first start:
//!   secretbox for `secrets` and `configmaps`, then identity.
//!
//! The byte formats are in `docs/design.md` and in the `transformer` module's docs. Keys are held
//! only in zeroizing types whose `Debug` prints `[redacted]`, and no error message contains a
//! key, a plaintext or a payload.
//!
//! This crate does no network IO and must never depend on a storage backend, an HTTP stack or
//! `ward-api`: storage calls it with bytes and the storage key (used as AAD).
//!
//! ```
//! use ward_crypto::{EncryptionConfig, Transformers};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let yaml = br#"
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets]
//!     providers:
//!       - secretbox:
//!           keys:
//!             - name: key1
//!               secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
//!       - identity: {}
//! "#;
//! let config = EncryptionConfig::from_bytes(yaml, "example.yaml")?;
//! let transformers = Transformers::from_config(config)?;
//!
//! let secrets = transformers.for_resource("", "secrets");
//! assert_eq!(secrets.provider_name(), "secretbox");
//! let aad = b"/registry/secrets/default/db";
//! let stored = secrets.to_storage(b"k8s\x00...", aad)?;
//! assert!(stored.starts_with(b"k8s:enc:secretbox:v1:key1:"));
//!
//! let read = secrets.from_storage(&stored, aad)?;
//! assert_eq!(read.plaintext.as_slice(), b"k8s\x00...");
//! assert!(!read.stale);
//!
//! // Resources without an entry are stored as they are.
//! assert!(!transformers.for_resource("apps", "deployments").is_secure());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod config;
mod default_config;
mod prefix;
mod secret;
mod transformer;

pub use config::{
    ConfigError, EncryptionConfig, FieldError, FieldErrors, GroupResource, KeySet, KmsApiVersion,
    KmsConfig, ModeCheck, NamedKey, ProviderConfig, ResourceRule, load_encryption_config,
    load_encryption_config_with,
};
pub use default_config::{default_config_yaml, generate_default_config};
pub use prefix::{StoredPrefix, parse_prefix};
pub use secret::{RandomError, SecretKey32};
pub use transformer::{
    AttemptError, AttemptErrors, AttemptFailure, BuildError, Decrypted, ProviderKind,
    ResourceTransformer, TransformError, Transformers,
};
