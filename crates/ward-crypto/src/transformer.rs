//! At-rest transformers: turning a value into its stored bytes and back.
//!
//! # Policy
//!
//! The behaviour is kube-apiserver's (`pkg/storage/value/transformer.go`), so that a Ward data
//! directory and an etcd written by kube-apiserver hold the same bytes:
//!
//! - **Choosing the transformer for a resource:** the exact `resource.group` entry (for the core
//!   group, just `secrets`), then `*.group`, then `*.*`, else identity. When a resource appears
//!   in several entries, their provider lists are concatenated in file order.
//! - **Writing** uses the first provider of the list, and within it the first key.
//! - **Reading** tries, in order, every provider and key whose prefix starts the value. A failure
//!   does not stop the search (the same prefix can appear twice with different keys); if nothing
//!   succeeds, every failure is reported. The identity provider has no prefix and refuses values
//!   that start with `k8s:enc:`; that refusal is skipped silently, which is what lets `identity`
//!   come first while migrating away from encryption.
//! - **Stale:** a read that succeeded through any provider or key other than the first is stale;
//!   the caller should rewrite the value.
//! - Identity also refuses to *write* a value that starts with `k8s:enc:` (kube-apiserver does
//!   not), since the value could never be read back.
//!
//! **KMS** providers are built by a [`crate::KmsFactory`] given to
//! [`Transformers::from_config_with_kms`] (`ward-kms` has the KMS v2 one); [`Transformers::from_config`]
//! refuses them ([`BuildError::KmsUnsupported`]) rather than starting a server that would fail on
//! the first read or write of those values. A KMS unit may need a remote call, so it is only
//! usable through the async methods ([`ResourceTransformer::to_storage_async`],
//! [`ResourceTransformer::from_storage_async`]); the synchronous ones report it as
//! [`crate::KmsFailure::NeedsAsync`]. A KMS read is stale when the unit is not the first one, or
//! when the KMS transformer says so (another key ID or DEK-source type than the current one).
//! A read-only KMS unit (KMS v1, [`crate::KmsTransformer::writes`] is `false`) may never be the
//! first unit of a resource: the build fails with [`BuildError::KmsReadOnly`], naming the file
//! and the field, instead of writing through another provider than the file names first.
//!
//! **Secrets in errors.** Error messages name the provider, the key name and what failed. They
//! never hold plaintext, key bytes or payload bytes. For a value that no provider matches, the
//! message describes its prefix only when the key name in it is short printable ASCII.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::config::{EncryptionConfig, GroupResource, ProviderConfig};
use crate::kms::{KmsFactory, KmsFailure, KmsTransformer};
use crate::prefix::{describe_stored, is_encrypted};
use crate::secret::{KeyMaterial, RandomError, fill_random};

mod cipher;

use cipher::Cipher;

/// The transformers of every resource, built from an [`EncryptionConfig`].
#[derive(Debug)]
pub struct Transformers {
    source: Option<ConfigSource>,
    exact: HashMap<String, HashMap<String, ResourceTransformer>>,
    any_in_group: HashMap<String, ResourceTransformer>,
    any: Option<ResourceTransformer>,
    identity: ResourceTransformer,
}

#[derive(Debug)]
struct ConfigSource {
    name: String,
    content_hash: String,
}

impl Transformers {
    /// Builds the transformers of `config`, taking ownership of its keys.
    ///
    /// # Errors
    ///
    /// [`BuildError::KmsUnsupported`] if any entry lists a `kms` provider: use
    /// [`Transformers::from_config_with_kms`] for those.
    pub fn from_config(config: EncryptionConfig) -> Result<Self, BuildError> {
        Self::build(config, None)
    }

    /// Builds the transformers of `config`, turning each `kms` provider into a transformer with
    /// `kms`. The factory must not block; it is called once per `kms` provider, in file order.
    ///
    /// # Errors
    ///
    /// [`BuildError::Kms`] if the factory refuses a `kms` provider.
    pub fn from_config_with_kms(
        config: EncryptionConfig,
        kms: &dyn KmsFactory,
    ) -> Result<Self, BuildError> {
        Self::build(config, Some(kms))
    }

    fn build(config: EncryptionConfig, kms: Option<&dyn KmsFactory>) -> Result<Self, BuildError> {
        let (source_name, content_hash, rules) = config.into_parts();
        let mut lists: Vec<(GroupResource, Vec<Arc<Unit>>)> = Vec::new();
        // The `kms` units that open a rule's provider list, with their paths, to name the field
        // if a read-only one ends up writing for some resource.
        let mut first_units: Vec<(Arc<Unit>, String)> = Vec::new();
        for (i, rule) in rules.into_iter().enumerate() {
            let (resources, providers) = rule.into_parts();
            let mut units = Vec::new();
            for (j, provider) in providers.into_iter().enumerate() {
                let (cipher, keys) = match provider {
                    ProviderConfig::Identity => {
                        units.push(Arc::new(Unit::Identity));
                        continue;
                    }
                    ProviderConfig::AesCbc(keys) => (Cipher::AesCbc, keys),
                    ProviderConfig::AesGcm(keys) => (Cipher::AesGcm, keys),
                    ProviderConfig::Secretbox(keys) => (Cipher::Secretbox, keys),
                    ProviderConfig::Kms(config) => {
                        let path = format!("resources[{i}].providers[{j}].kms");
                        let Some(kms) = kms else {
                            return Err(BuildError::KmsUnsupported { source_name, path });
                        };
                        let unit = kms.build(&config).map_err(|message| BuildError::Kms {
                            source_name: source_name.clone(),
                            path: path.clone(),
                            message,
                        })?;
                        let unit = Arc::new(Unit::Kms(unit));
                        if j == 0 {
                            first_units.push((Arc::clone(&unit), path));
                        }
                        units.push(unit);
                        continue;
                    }
                };
                for key in keys.into_keys() {
                    let (key_name, key) = key.into_parts();
                    units.push(Arc::new(Unit::Keyed(KeyedUnit::new(cipher, key_name, key))));
                }
            }
            for resource in resources {
                match lists.iter_mut().find(|(gr, _)| *gr == resource) {
                    Some((_, list)) => list.extend(units.iter().cloned()),
                    None => lists.push((resource, units.clone())),
                }
            }
        }

        // A read-only provider (KMS v1) must never write: refuse to start rather than write
        // through another provider than the configuration names first.
        for (resource, units) in &lists {
            let Some(first) = units.first() else { continue };
            let Unit::Kms(kms) = &**first else { continue };
            if kms.writes() {
                continue;
            }
            let path = first_units
                .iter()
                .find(|(unit, _)| Arc::ptr_eq(unit, first))
                .map(|(_, path)| path.clone())
                .unwrap_or_default();
            return Err(BuildError::KmsReadOnly {
                source_name,
                path,
                name: kms.name().to_owned(),
                resource: resource.to_string(),
            });
        }

        let mut transformers = Self::identity();
        transformers.source = Some(ConfigSource {
            name: source_name,
            content_hash,
        });
        for (resource, units) in lists {
            let transformer = ResourceTransformer { units };
            match (resource.group(), resource.resource()) {
                ("*", "*") => transformers.any = Some(transformer),
                (group, "*") => {
                    transformers
                        .any_in_group
                        .insert(group.to_owned(), transformer);
                }
                (group, name) => {
                    transformers
                        .exact
                        .entry(group.to_owned())
                        .or_default()
                        .insert(name.to_owned(), transformer);
                }
            }
        }
        Ok(transformers)
    }

    /// Transformers that store every resource unencrypted (no configuration).
    pub fn identity() -> Self {
        Self {
            source: None,
            exact: HashMap::new(),
            any_in_group: HashMap::new(),
            any: None,
            identity: ResourceTransformer {
                units: vec![Arc::new(Unit::Identity)],
            },
        }
    }

    /// The transformer for a resource: `group` is `""` for the core group (`secrets`,
    /// `configmaps`), `resource` the plural resource name.
    pub fn for_resource(&self, group: &str, resource: &str) -> &ResourceTransformer {
        self.exact
            .get(group)
            .and_then(|resources| resources.get(resource))
            .or_else(|| self.any_in_group.get(group))
            .or(self.any.as_ref())
            .unwrap_or(&self.identity)
    }

    /// The health of every `kms` provider: `Ok` when each can encrypt new values, otherwise
    /// one line per unhealthy provider (`kms provider "name": why`), for a `healthz` check.
    ///
    /// # Errors
    ///
    /// The aggregated message when any `kms` provider is unhealthy.
    pub fn kms_health(&self) -> Result<(), String> {
        let mut seen: Vec<&str> = Vec::new();
        let mut problems = Vec::new();
        let all = self
            .exact
            .values()
            .flat_map(HashMap::values)
            .chain(self.any_in_group.values())
            .chain(self.any.as_ref());
        for transformer in all {
            for kms in transformer.kms_providers() {
                if seen.contains(&kms.name()) {
                    continue;
                }
                seen.push(kms.name());
                if let Err(why) = kms.health() {
                    problems.push(format!("kms provider {:?}: {why}", kms.name()));
                }
            }
        }
        problems.sort();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// As [`Self::kms_health`], with each provider's [`KmsTransformer::check_health`] (which
    /// may call its plugin when the last answer is old), for `/healthz/kms-providers`.
    pub async fn kms_health_checked(&self) -> Result<(), String> {
        let mut providers: Vec<Arc<dyn KmsTransformer>> = Vec::new();
        let all = self
            .exact
            .values()
            .flat_map(HashMap::values)
            .chain(self.any_in_group.values())
            .chain(self.any.as_ref());
        for transformer in all {
            for kms in transformer.kms_providers() {
                if !providers.iter().any(|p| p.name() == kms.name()) {
                    providers.push(Arc::clone(kms));
                }
            }
        }
        let mut problems = Vec::new();
        for kms in providers {
            if let Err(why) = kms.check_health().await {
                problems.push(format!("kms provider {:?}: {why}", kms.name()));
            }
        }
        problems.sort();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The source name of the configuration, or `None` for [`Transformers::identity`].
    pub fn source_name(&self) -> Option<&str> {
        self.source.as_ref().map(|s| s.name.as_str())
    }

    /// `sha256:<hex>` of the configuration file, or `None` for [`Transformers::identity`].
    pub fn content_hash(&self) -> Option<&str> {
        self.source.as_ref().map(|s| s.content_hash.as_str())
    }
}

impl TryFrom<EncryptionConfig> for Transformers {
    type Error = BuildError;

    fn try_from(config: EncryptionConfig) -> Result<Self, BuildError> {
        Self::from_config(config)
    }
}

/// The ordered providers and keys of one resource.
#[derive(Debug)]
pub struct ResourceTransformer {
    /// Every (provider, key) pair in read order; the first one writes. Never empty.
    units: Vec<Arc<Unit>>,
}

impl ResourceTransformer {
    /// Transforms a value for storage with the first provider and its first key. `aad` is the
    /// full storage key (e.g. `/registry/secrets/default/db`); only aesgcm uses it.
    ///
    /// # Errors
    ///
    /// - [`TransformError::IdentityRefused`] if the first provider is identity and the value
    ///   starts with `k8s:enc:`;
    /// - [`TransformError::Random`] if no random IV or nonce can be drawn;
    /// - [`TransformError::Encrypt`] if the cipher fails (a value too large for it).
    pub fn to_storage(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        match self.write_unit() {
            Unit::Identity => {
                if is_encrypted(plaintext) {
                    return Err(TransformError::IdentityRefused);
                }
                Ok(plaintext.to_vec())
            }
            Unit::Keyed(unit) => {
                let mut nonce = [0u8; MAX_NONCE_LEN];
                let nonce = &mut nonce[..unit.cipher.nonce_len()];
                fill_random(nonce).map_err(|source| TransformError::Random { source })?;
                unit.seal_with_nonce(plaintext, aad, nonce)
            }
            Unit::Kms(kms) => Err(TransformError::Kms {
                name: kms.name().to_owned(),
                failure: KmsFailure::NeedsAsync,
            }),
        }
    }

    /// [`Self::to_storage`] for every provider, `kms` included (which may call its plugin).
    ///
    /// # Errors
    ///
    /// As [`Self::to_storage`], and [`TransformError::Kms`] if the first provider is `kms` and
    /// has no usable write key or fails to encrypt.
    pub async fn to_storage_async(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, TransformError> {
        let Unit::Kms(kms) = self.write_unit() else {
            return self.to_storage(plaintext, aad);
        };
        let payload = kms
            .seal(plaintext, aad)
            .await
            .map_err(|failure| TransformError::Kms {
                name: kms.name().to_owned(),
                failure,
            })?;
        let mut out = Vec::with_capacity(kms.prefix().len() + payload.len());
        out.extend_from_slice(kms.prefix());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Reads a stored value. `aad` must be the storage key the value was written under.
    ///
    /// # Errors
    ///
    /// - [`TransformError::Decrypt`] if some provider's prefix matched but every such attempt
    ///   failed (wrong key, tampered data, wrong `aad`);
    /// - [`TransformError::NoMatchingProvider`] if no provider can read the value at all, e.g.
    ///   a value encrypted with a key that is no longer configured, or an encrypted value for a
    ///   resource whose providers are only identity.
    pub fn from_storage(&self, stored: &[u8], aad: &[u8]) -> Result<Decrypted, TransformError> {
        let mut attempts = Vec::new();
        for (index, unit) in self.units.iter().enumerate() {
            let result = match &**unit {
                Unit::Identity => {
                    if is_encrypted(stored) {
                        // Refusal is not an error here: a later provider may read the value.
                        continue;
                    }
                    Ok(Zeroizing::new(stored.to_vec()))
                }
                Unit::Keyed(unit) => {
                    let Some(payload) = stored.strip_prefix(unit.prefix.as_slice()) else {
                        continue;
                    };
                    unit.cipher
                        .open(&unit.key, payload, aad)
                        .map_err(|reason| AttemptError::keyed(unit, reason))
                }
                Unit::Kms(kms) => {
                    if !stored.starts_with(kms.prefix()) {
                        continue;
                    }
                    Err(AttemptError::kms(&**kms, KmsFailure::NeedsAsync))
                }
            };
            match result {
                Ok(plaintext) => {
                    return Ok(Decrypted {
                        plaintext,
                        stale: index != 0,
                    });
                }
                Err(error) => attempts.push(error),
            }
        }
        Self::read_failed(stored, attempts)
    }

    /// [`Self::from_storage`] for every provider, `kms` included (which may call its plugin to
    /// decrypt a DEK source it has not cached).
    ///
    /// # Errors
    ///
    /// As [`Self::from_storage`]; a failed `kms` attempt is an [`AttemptError`] whose
    /// [`AttemptError::kms_failure`] says why.
    pub async fn from_storage_async(
        &self,
        stored: &[u8],
        aad: &[u8],
    ) -> Result<Decrypted, TransformError> {
        if !self.units.iter().any(|unit| matches!(**unit, Unit::Kms(_))) {
            return self.from_storage(stored, aad);
        }
        let mut attempts = Vec::new();
        for (index, unit) in self.units.iter().enumerate() {
            let result = match &**unit {
                Unit::Identity => {
                    if is_encrypted(stored) {
                        continue;
                    }
                    Ok((Zeroizing::new(stored.to_vec()), false))
                }
                Unit::Keyed(unit) => {
                    let Some(payload) = stored.strip_prefix(unit.prefix.as_slice()) else {
                        continue;
                    };
                    unit.cipher
                        .open(&unit.key, payload, aad)
                        .map(|plaintext| (plaintext, false))
                        .map_err(|reason| AttemptError::keyed(unit, reason))
                }
                Unit::Kms(kms) => {
                    let Some(payload) = stored.strip_prefix(kms.prefix()) else {
                        continue;
                    };
                    kms.open(payload, aad)
                        .await
                        .map(|opened| (opened.plaintext, opened.stale))
                        .map_err(|failure| AttemptError::kms(&**kms, failure))
                }
            };
            match result {
                Ok((plaintext, stale)) => {
                    return Ok(Decrypted {
                        plaintext,
                        stale: stale || index != 0,
                    });
                }
                Err(error) => attempts.push(error),
            }
        }
        Self::read_failed(stored, attempts)
    }

    fn read_failed(
        stored: &[u8],
        attempts: Vec<AttemptError>,
    ) -> Result<Decrypted, TransformError> {
        if attempts.is_empty() {
            Err(TransformError::NoMatchingProvider {
                stored: describe_stored(stored),
            })
        } else {
            Err(TransformError::Decrypt {
                attempts: AttemptErrors(attempts),
            })
        }
    }

    /// The kind of the provider that writes.
    pub fn provider(&self) -> ProviderKind {
        match self.write_unit() {
            Unit::Identity => ProviderKind::Identity,
            Unit::Keyed(unit) => match unit.cipher {
                Cipher::AesCbc => ProviderKind::AesCbc,
                Cipher::AesGcm => ProviderKind::AesGcm,
                Cipher::Secretbox => ProviderKind::Secretbox,
            },
            Unit::Kms(_) => ProviderKind::Kms,
        }
    }

    /// The name of the provider that writes: `identity`, `aescbc`, `aesgcm`, `secretbox` or
    /// `kms`.
    pub fn provider_name(&self) -> &'static str {
        self.provider().name()
    }

    /// Whether new writes are encrypted (the write provider is not identity).
    pub fn is_secure(&self) -> bool {
        self.provider() != ProviderKind::Identity
    }

    /// The name of the key that encrypts new writes (for `kms`, the provider name), or `None`
    /// for identity.
    pub fn write_key_name(&self) -> Option<&str> {
        match self.write_unit() {
            Unit::Identity => None,
            Unit::Keyed(unit) => Some(&unit.key_name),
            Unit::Kms(kms) => Some(kms.name()),
        }
    }

    /// The KMS providers of the read list, in order (for health checks).
    pub fn kms_providers(&self) -> impl Iterator<Item = &Arc<dyn KmsTransformer>> {
        self.units.iter().filter_map(|unit| match &**unit {
            Unit::Kms(kms) => Some(kms),
            _ => None,
        })
    }

    /// A one-line description of the read order for posture output, e.g.
    /// `secretbox key "ward-20261126", identity`. Names keys, never their bytes.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .units
            .iter()
            .map(|unit| match &**unit {
                Unit::Identity => "identity".to_owned(),
                Unit::Keyed(unit) => format!("{} key {:?}", unit.cipher.name(), unit.key_name),
                Unit::Kms(kms) => format!("kms provider {:?}", kms.name()),
            })
            .collect();
        parts.join(", ")
    }

    fn write_unit(&self) -> &Unit {
        // Invariant: `units` is never empty. `Transformers::identity` creates one unit; a
        // configured list comes from a validated rule, which has at least one provider, each
        // keyed provider has at least one key, and a `kms` provider adds one unit or fails the
        // build. Concatenation only adds units. Falling back to identity here would fail open, so this panics instead.
        #[allow(clippy::expect_used)]
        self.units
            .first()
            .expect("a resource transformer has at least one provider")
    }
}

/// A value read from storage.
#[non_exhaustive]
pub struct Decrypted {
    /// The plaintext, wiped when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Whether the value was read by a provider or key other than the first one, so it should
    /// be rewritten.
    pub stale: bool,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext", &"[redacted]")
            .field("stale", &self.stale)
            .finish()
    }
}

/// The provider types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// `aescbc`.
    AesCbc,
    /// `aesgcm`.
    AesGcm,
    /// `identity` (no encryption).
    Identity,
    /// `kms`.
    Kms,
    /// `secretbox`.
    Secretbox,
}

impl ProviderKind {
    /// The provider's name in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCbc => "aescbc",
            Self::AesGcm => "aesgcm",
            Self::Identity => "identity",
            Self::Kms => "kms",
            Self::Secretbox => "secretbox",
        }
    }
}

/// An error building [`Transformers`] from a valid configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The KMS factory refused a `kms` provider.
    #[error("{path} in {source_name}: {message}")]
    Kms {
        /// The configuration's source name.
        source_name: String,
        /// The path of the provider, e.g. `resources[0].providers[1].kms`.
        path: String,
        /// Why (never key material).
        message: String,
    },
    /// A read-only `kms` provider (`apiVersion: v1`) is the first provider of a resource, so it
    /// would have to encrypt new writes; Ward only reads KMS v1 values.
    #[error(
        "{path}.apiVersion in {source_name}: kms provider {name:?} uses KMS v1, which Ward only \
         reads (it is deprecated in Kubernetes), but it is the first provider for {resource:?} \
         and would encrypt new writes; put a writing provider first (kms with apiVersion: v2, \
         aesgcm, aescbc or secretbox), keep the v1 provider after it to read old values, and \
         run `ward rewrite` to move them"
    )]
    KmsReadOnly {
        /// The configuration's source name.
        source_name: String,
        /// The path of the provider, e.g. `resources[0].providers[0].kms`.
        path: String,
        /// The provider name.
        name: String,
        /// The resource it would write, as written in the file (`secrets`, `*.*`).
        resource: String,
    },
    /// A `kms` provider is configured but the transformers were built without a KMS client
    /// ([`Transformers::from_config`]).
    #[error(
        "kms provider needs a KMS client: build the transformers with ward-kms ({path} in \
         {source_name})"
    )]
    KmsUnsupported {
        /// The configuration's source name.
        source_name: String,
        /// The path of the provider, e.g. `resources[0].providers[1].kms`.
        path: String,
    },
}

/// An error transforming a value to or from storage. Never holds plaintext or key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// Every provider whose prefix matched the value failed to read it.
    #[error("failed to decrypt the stored value: {attempts}")]
    Decrypt {
        /// One entry per provider and key tried, in order.
        attempts: AttemptErrors,
    },
    /// The cipher failed to encrypt (the value is too large for it).
    #[error("{provider} failed to encrypt the value with key {key_name:?}")]
    Encrypt {
        /// The provider name.
        provider: &'static str,
        /// The key name.
        key_name: String,
    },
    /// The `kms` provider could not encrypt the value.
    // `failure` is shown in the message (server logs print only the top error), so it is not
    // also a `#[source]`, which would print it twice in a chain.
    #[error("kms provider {name:?} failed to encrypt the value: {failure}")]
    Kms {
        /// The provider name.
        name: String,
        /// Why.
        failure: KmsFailure,
    },
    /// The identity provider was asked to store a value that starts with `k8s:enc:`.
    #[error("identity provider refuses to store a value that starts with \"k8s:enc:\"")]
    IdentityRefused,
    /// No configured provider can read the stored value.
    #[error("no configured provider can read {stored}")]
    NoMatchingProvider {
        /// A description of the value's prefix (provider and key name), never its content.
        stored: String,
    },
    /// No random IV or nonce could be drawn.
    #[error("failed to draw a random nonce")]
    Random {
        /// The random number generator's error.
        #[source]
        source: RandomError,
    },
}

/// The failed read attempts of a [`TransformError::Decrypt`], in order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptErrors(Vec<AttemptError>);

impl AttemptErrors {
    /// The individual attempts.
    pub fn iter(&self) -> impl Iterator<Item = &AttemptError> {
        self.0.iter()
    }

    /// The number of attempts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for AttemptErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{attempt}")?;
        }
        Ok(())
    }
}

/// One provider and key that matched the value's prefix but could not read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    provider: &'static str,
    key_name: String,
    reason: AttemptFailure,
    kms: Option<KmsFailure>,
}

impl AttemptError {
    fn keyed(unit: &KeyedUnit, reason: AttemptFailure) -> Self {
        Self {
            provider: unit.cipher.name(),
            key_name: unit.key_name.clone(),
            reason,
            kms: None,
        }
    }

    fn kms(kms: &dyn KmsTransformer, failure: KmsFailure) -> Self {
        let reason = match failure {
            KmsFailure::Decrypt => AttemptFailure::Decrypt,
            KmsFailure::Malformed(_) => AttemptFailure::Malformed,
            _ => AttemptFailure::Kms,
        };
        Self {
            provider: "kms",
            key_name: kms.name().to_owned(),
            reason,
            kms: Some(failure),
        }
    }

    /// For a `kms` attempt, the detailed failure.
    pub fn kms_failure(&self) -> Option<&KmsFailure> {
        self.kms.as_ref()
    }

    /// The provider name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The key name (for `kms`, the provider name).
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Why it failed.
    pub fn reason(&self) -> AttemptFailure {
        self.reason
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kms {
            Some(failure) => write!(f, "kms provider {:?}: {failure}", self.key_name),
            None => write!(
                f,
                "{} key {:?}: {}",
                self.provider, self.key_name, self.reason
            ),
        }
    }
}

/// Why one read attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// Authentication failed (wrong key, tampered data or wrong AAD), or, for aescbc, the
    /// padding was invalid; the two are deliberately not told apart.
    #[error("decryption failed (wrong key, or the value or its storage key was altered)")]
    Decrypt,
    /// A `kms` provider failed for another reason (plugin unreachable or refusing); see
    /// [`AttemptError::kms_failure`].
    #[error("the kms provider failed")]
    Kms,
    /// The payload is too short, or for aescbc not a whole number of blocks.
    #[error("the stored payload is truncated or malformed")]
    Malformed,
}

// === impl Unit ===

/// One (provider, key) pair of a read list.
#[derive(Debug)]
enum Unit {
    Identity,
    Keyed(KeyedUnit),
    Kms(Arc<dyn KmsTransformer>),
}

struct KeyedUnit {
    cipher: Cipher,
    key_name: String,
    /// `k8s:enc:<provider>:v1:<key name>:`.
    prefix: Vec<u8>,
    key: KeyMaterial,
}

impl KeyedUnit {
    fn new(cipher: Cipher, key_name: String, key: KeyMaterial) -> Self {
        let prefix = format!("k8s:enc:{}:v1:{key_name}:", cipher.name()).into_bytes();
        Self {
            cipher,
            key_name,
            prefix,
            key,
        }
    }

    /// Builds the stored value with a caller-chosen IV or nonce. Production code passes fresh
    /// random bytes; tests pass fixed ones for known-answer vectors.
    fn seal_with_nonce(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        nonce: &[u8],
    ) -> Result<Vec<u8>, TransformError> {
        let capacity = self.prefix.len() + nonce.len() + plaintext.len() + MAX_OVERHEAD;
        // Zeroizing: the buffer holds plaintext until it is encrypted in place, and if
        // encryption fails it is wiped on drop.
        let mut out = Zeroizing::new(Vec::with_capacity(capacity));
        out.extend_from_slice(&self.prefix);
        self.cipher
            .seal_with_nonce(&self.key, nonce, plaintext, aad, &mut out)
            .map_err(|_| TransformError::Encrypt {
                provider: self.cipher.name(),
                key_name: self.key_name.clone(),
            })?;
        // The buffer now holds only prefix and ciphertext; move it out (leaving an empty Vec).
        Ok(std::mem::take(&mut *out))
    }
}

impl fmt::Debug for KeyedUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedUnit")
            .field("provider", &self.cipher.name())
            .field("key_name", &self.key_name)
            .field("key", &self.key)
            .finish()
    }
}

const MAX_NONCE_LEN: usize = 24;
/// Padding or tag: at most 16 bytes for every provider.
const MAX_OVERHEAD: usize = 16;

#[cfg(test)]
mod tests;
