//! Encryption at rest for Ward: the `EncryptionConfiguration` file and the transformers that turn
//! values into stored bytes and back, byte-compatible with kube-apiserver.
//!
//! - [`load_encryption_config`] / [`EncryptionConfig::from_bytes`] read and validate the file
//!   (YAML or JSON, `apiserver.config.k8s.io/v1` `EncryptionConfiguration` or the legacy `v1`
//!   `EncryptionConfig`).
//! - [`Transformers::from_config`] builds one [`ResourceTransformer`] per resource;
//!   [`ResourceTransformer::to_storage`] and [`ResourceTransformer::from_storage`] apply the
//!   `identity`, `aescbc`, `aesgcm` and `secretbox` providers.
//! - `kms` providers are built by a [`KmsFactory`] given to
//!   [`Transformers::from_config_with_kms`] (the KMS v2 one lives in `ward-kms`, since this crate
//!   does no network IO); they are used through the async
//!   [`ResourceTransformer::to_storage_async`] / [`ResourceTransformer::from_storage_async`].
//! - [`generate_default_config`] produces the configuration written on Ward's first start:
//!   secretbox for `secrets` and `configmaps`, then identity.
//!
//! # Stored bytes
//!
//! A stored value is an ASCII prefix followed by the provider's payload, exactly as
//! kube-apiserver writes it:
//!
//! | provider  | prefix                          | payload                                      | AAD          |
//! |-----------|---------------------------------|----------------------------------------------|--------------|
//! | identity  | none                            | the plaintext; never starts with `k8s:enc:`  | —            |
//! | aescbc    | `k8s:enc:aescbc:v1:<key>:`      | IV(16) ‖ AES-CBC(plaintext ‖ PKCS#7 padding) | none         |
//! | aesgcm    | `k8s:enc:aesgcm:v1:<key>:`      | nonce(12) ‖ ciphertext ‖ tag(16)             | the etcd key |
//! | secretbox | `k8s:enc:secretbox:v1:<key>:`   | nonce(24) ‖ Poly1305 tag(16) ‖ ciphertext    | none         |
//! | kms v2    | `k8s:enc:kms:v2:<name>:`        | protobuf `EncryptedObject` (`ward-kms`)      | the etcd key |
//! | kms v1    | `k8s:enc:kms:v1:<name>:`        | u16 BE len ‖ encrypted DEK ‖ aesgcm or aescbc payload under the DEK (read only, `ward-kms`) | GCM: the etcd key |
//!
//! IVs and nonces come from the operating system's random number generator on every write.
//! Writes use the first provider and its first key; reads try every provider and key whose
//! prefix matches, in order, and report a value read by any other than the first as
//! [`Decrypted::stale`].
//!
//! # Secrets
//!
//! Keys are held only in zeroizing types whose `Debug` prints `[redacted]` and that do not
//! implement `Clone`; plaintext is returned in a `Zeroizing<Vec<u8>>`. No error message contains
//! a key, a plaintext or a payload, and config errors never echo the value of a `secret` field.
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
mod kms;
mod prefix;
mod secret;
mod transformer;

pub use config::{
    ConfigError, EncryptionConfig, FieldError, FieldErrors, GroupResource, KeySet, KmsApiVersion,
    KmsConfig, ModeCheck, NamedKey, ProviderConfig, ResourceRule, load_encryption_config,
    load_encryption_config_with,
};
pub use default_config::{default_config_yaml, generate_default_config};
pub use kms::{KmsFactory, KmsFailure, KmsOpened, KmsTransformer};
pub use prefix::{StoredPrefix, parse_prefix};
pub use secret::{RandomError, SecretKey32};
pub use transformer::{
    AttemptError, AttemptErrors, AttemptFailure, BuildError, Decrypted, ProviderKind,
    ResourceTransformer, TransformError, Transformers,
};
