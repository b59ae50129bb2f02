//! The KMS v2 envelope transformer: kube-apiserver's `kmsv2` provider.
//!
//! # Bytes
//!
//! A value is `k8s:enc:kms:v2:<name>:` followed by a protobuf `EncryptedObject` (spec §2.6):
//! `encryptedData` (1), `keyID` (2), `encryptedDEKSource` (3), `annotations` (4),
//! `encryptedDEKSourceType` (5). Writes use `HKDF_SHA256_XNONCE_AES_GCM_SEED`, as kube-apiserver
//! does since 1.29: `encryptedData` = info(32, random) ‖ nonce(12, random) ‖ AES-256-GCM
//! ciphertext ‖ tag(16), under the key HKDF-Expand(SHA-256, PRK = seed, info, 32) (Expand only,
//! no Extract), with the storage key as AAD. Reads also accept `AES_GCM_KEY` values (1.27/1.28):
//! `encryptedData` = nonce(12) ‖ ciphertext ‖ tag(16) under the DEK itself.
//!
//! # Seed lifecycle (kube-apiserver's `kmsv2PluginProbe`)
//!
//! - [`KmsV2Envelope::probe`] calls `Status`. When its `key_id` differs from the current seed's,
//!   a new 32-byte seed is drawn and sent to `Encrypt`; the answer must carry the same key ID,
//!   otherwise the old seed stays in use (the envelope "coasts") and the probe fails.
//! - A good `Status` (healthz `ok`, version `v2`/`v2beta1` and unchanged, valid key ID) extends
//!   the write seed's life to 3 minutes after the probe started. Unlike kube-apiserver, a
//!   `Status` that answers but is not healthy does not extend it. Once expired, writes fail until
//!   a good `Status`; reads keep working.
//! - Probes run every minute while healthy and every 10 seconds while not
//!   ([`KmsV2Envelope::start_polling`]); the first one runs before the server starts.
//! - Decrypted DEKs and seeds are cached (at most 1024, for 24 hours) under a hash of the
//!   source type, `encryptedDEKSource`, `keyID` and annotations, so a read calls `Decrypt` once
//!   per DEK source; the current write seed is cached when it is made.
//! - A read is stale when the value's key ID or DEK-source type differs from the current write
//!   seed's. Before any seed exists (plugin never reached), reads still work if the plugin can
//!   decrypt, and are not marked stale.
//!
//! KMS v1 values (`k8s:enc:kms:v1:`) are read, never written, by [`crate::KmsV1Envelope`];
//! [`transformers_from_config`] builds one for each `kms` provider with `apiVersion: v1`.
//!
//! Metrics (kube-apiserver's names, see [`crate::metrics`]): every plugin call's latency, key
//! IDs used for reads and writes and returned by `Status` (hashed), invalid key IDs, the DEK
//! source cache size, cache misses and seed generation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use aes::Aes192;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use hkdf::Hkdf;
use prost::Message as _;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use ward_crypto::{
    BuildError, EncryptionConfig, KmsApiVersion, KmsConfig, KmsFactory, KmsFailure, KmsOpened,
    KmsTransformer, SecretKey32, Transformers,
};
use zeroize::Zeroizing;

use crate::client::GrpcKmsClient;
use crate::clock::{Clock, SystemClock};
use crate::endpoint::KmsEndpoint;
use crate::error::KmsError;
use crate::metrics;
use crate::proto::v2::{EncryptedDekSourceType, EncryptedObject};
use crate::service::{
    KMS_API_VERSIONS, KmsService, MAX_FIELD_LEN, WrappedKey, printable, validate_annotations,
    validate_key_id, validate_wrapped,
};
use crate::v1::{GrpcKmsV1Client, KmsV1Envelope};

/// Builds the transformers of `config`, connecting each `kms` v2 provider to its plugin.
///
/// Like kube-apiserver, an unreachable plugin does not stop the start: the first `Status` runs
/// here (bounded by `kms.timeout`) and a failure is logged; writes through that provider fail
/// until the plugin answers (probed every 10 s), and [`Transformers::kms_health`] reports it.
/// Must be called within a Tokio runtime; the probes run on it.
///
/// # Errors
///
/// [`BuildError::Kms`] for an invalid endpoint, and [`BuildError::KmsReadOnly`] when a `kms`
/// provider with `apiVersion: v1` would write (it is first for some resource): Ward only reads
/// KMS v1 values.
pub async fn transformers_from_config(
    config: EncryptionConfig,
) -> Result<Transformers, BuildError> {
    let (transformers, _) = transformers_from_config_with(config, &KmsOptions::default()).await?;
    Ok(transformers)
}

/// [`transformers_from_config`] with options; also returns the envelopes it built, in file
/// order, so that tests can probe them and servers can report their health.
///
/// # Errors
///
/// As [`transformers_from_config`].
pub async fn transformers_from_config_with(
    config: EncryptionConfig,
    options: &KmsOptions,
) -> Result<(Transformers, Vec<KmsV2Envelope>), BuildError> {
    let factory = GrpcKmsFactory {
        clock: Arc::clone(&options.clock),
        built: Mutex::new(Vec::new()),
    };
    let transformers = Transformers::from_config_with_kms(config, &factory)?;
    let envelopes = factory
        .built
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    for envelope in &envelopes {
        if let Err(e) = envelope.probe().await {
            warn!(
                provider = envelope.name(),
                error = %e,
                "kms plugin is not ready; writes through this provider fail until it is"
            );
        }
        if options.poll {
            envelope.start_polling();
        }
    }
    Ok((transformers, envelopes))
}

/// The key ID a stored KMS v2 value (`k8s:enc:kms:v2:<name>:` + `EncryptedObject`) was
/// written under, read without any plugin: the key ID is stored in plain text. Used by
/// `ward storage decode` to show which key protects a value.
///
/// `None` when the value is not a KMS v2 value or its `EncryptedObject` does not parse or has
/// no key ID.
pub fn stored_key_id(value: &[u8]) -> Option<String> {
    let rest = value.strip_prefix(b"k8s:enc:kms:v2:")?;
    let name_end = rest.iter().position(|&b| b == b':')?;
    let object = EncryptedObject::decode(rest.get(name_end + 1..)?).ok()?;
    (!object.key_id.is_empty()).then_some(object.key_id)
}

/// Options of [`transformers_from_config_with`].
#[derive(Clone, Debug)]
pub struct KmsOptions {
    /// The clock that times the write seed's expiry.
    pub clock: Arc<dyn Clock>,
    /// Whether to poll each plugin's `Status` in the background (1 min / 10 s).
    pub poll: bool,
}

impl Default for KmsOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            poll: true,
        }
    }
}

/// The KMS v2 transformer of one `kms` provider. Cheap to clone (shared state).
#[derive(Clone)]
pub struct KmsV2Envelope {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    prefix: Vec<u8>,
    service: Arc<dyn KmsService>,
    clock: Arc<dyn Clock>,
    write: RwLock<Option<WriteState>>,
    probe_state: Mutex<ProbeState>,
    /// Serializes probes, so that two never rotate the seed at once.
    probe_lock: tokio::sync::Mutex<()>,
    cache: Mutex<SourceCache>,
}

struct WriteState {
    key: Arc<WriteKey>,
    expires_at: Instant,
}

struct WriteKey {
    source: Arc<DekSource>,
    wrapped: WrappedKey,
}

/// How long `/healthz/kms-providers` trusts the last `Status` when it was good, and when it was
/// not (kube-apiserver's `kmsv2PluginProbe` TTLs).
const HEALTHZ_POSITIVE_TTL: Duration = Duration::from_secs(20);
const HEALTHZ_NEGATIVE_TTL: Duration = Duration::from_secs(3);

#[derive(Default)]
struct ProbeState {
    /// The message of the last failed probe; `None` after a good one.
    last_error: Option<String>,
    /// When the last probe finished.
    checked_at: Option<Instant>,
    /// The version of the first good Status; it must not change.
    version: Option<String>,
}

impl KmsV2Envelope {
    /// An envelope for provider `name` over `service`. No IO happens until [`Self::probe`] or
    /// a read; until a probe succeeds, writes fail.
    pub fn new(name: &str, service: Arc<dyn KmsService>, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                prefix: format!("k8s:enc:kms:v2:{name}:").into_bytes(),
                service,
                clock,
                write: RwLock::new(None),
                probe_state: Mutex::new(ProbeState::default()),
                probe_lock: tokio::sync::Mutex::new(()),
                cache: Mutex::new(SourceCache::default()),
            }),
        }
    }

    /// The provider name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Calls `Status` now and, when the key ID changed, makes and wraps a new write seed.
    ///
    /// # Errors
    ///
    /// [`KmsError`] when the plugin is unreachable or times out, or [`KmsError::Unhealthy`]
    /// when it answers but is not healthy or the new seed could not be wrapped; the write seed
    /// then keeps its current expiry.
    pub async fn probe(&self) -> Result<(), KmsError> {
        self.inner.probe().await
    }

    /// Starts polling `Status` in the background: every minute while healthy, every 10 seconds
    /// while not. The task ends when the last clone of this envelope is dropped.
    pub fn start_polling(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let interval = match weak.upgrade() {
                    Some(inner) if inner.healthy() => HEALTHY_POLL_INTERVAL,
                    Some(_) => UNHEALTHY_POLL_INTERVAL,
                    None => return,
                };
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.probe().await {
                    warn!(provider = %inner.name, error = %e, "kms plugin health check failed");
                }
            }
        });
    }

    /// The key ID of the current write seed, if there is one.
    pub fn current_key_id(&self) -> Option<String> {
        self.inner
            .current()
            .map(|(key, _)| key.wrapped.key_id.clone())
    }
}

impl fmt::Debug for KmsV2Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsV2Envelope")
            .field("name", &self.inner.name)
            .field("service", &self.inner.service)
            .field("seed", &"[redacted]")
            .finish()
    }
}

#[async_trait::async_trait]
impl KmsTransformer for KmsV2Envelope {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn prefix(&self) -> &[u8] {
        &self.inner.prefix
    }

    async fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsFailure> {
        let key = self.inner.write_key()?;
        let DekSource::Seed(seed) = &*key.source else {
            // Invariant: write keys are only made by `rotate`, which makes a seed.
            return Err(KmsFailure::NotReady(
                "the write key is not a seed".to_owned(),
            ));
        };
        let mut random = [0u8; INFO_LEN + NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut random)
            .map_err(|_| KmsFailure::Random)?;
        let (info, nonce) = random.split_at(INFO_LEN);
        let dek = derive_key(seed, info)?;
        let mut data = Zeroizing::new(Vec::with_capacity(
            INFO_LEN + NONCE_LEN + plaintext.len() + TAG_LEN,
        ));
        data.extend_from_slice(info);
        gcm_seal(dek.as_slice(), nonce, plaintext, aad, &mut data)?;
        let object = EncryptedObject {
            encrypted_data: std::mem::take(&mut *data),
            key_id: key.wrapped.key_id.clone(),
            encrypted_dek_source: key.wrapped.ciphertext.clone(),
            annotations: key.wrapped.annotations.clone(),
            encrypted_dek_source_type: EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32,
        };
        metrics::key_id_used(metrics::TO_STORAGE, &self.inner.name, &key.wrapped.key_id);
        Ok(object.encode_to_vec())
    }

    async fn open(&self, payload: &[u8], aad: &[u8]) -> Result<KmsOpened, KmsFailure> {
        let object = EncryptedObject::decode(payload)
            .map_err(|_| KmsFailure::Malformed("not a protobuf EncryptedObject".to_owned()))?;
        let source_type = validate_object(&object)?;
        metrics::key_id_used(metrics::FROM_STORAGE, &self.inner.name, &object.key_id);
        let wrapped = WrappedKey {
            ciphertext: object.encrypted_dek_source,
            key_id: object.key_id,
            annotations: object.annotations,
        };
        let source = self.inner.dek_source(source_type, &wrapped).await?;
        let data = object.encrypted_data.as_slice();
        let plaintext = match (&*source, source_type) {
            (DekSource::Seed(seed), EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed) => {
                if data.len() < INFO_LEN + NONCE_LEN + TAG_LEN {
                    return Err(KmsFailure::Malformed(
                        "encryptedData is truncated".to_owned(),
                    ));
                }
                let (info, rest) = data.split_at(INFO_LEN);
                let dek = derive_key(seed, info)?;
                gcm_open(dek.as_slice(), rest, aad)?
            }
            (DekSource::AesGcmKey(dek), EncryptedDekSourceType::AesGcmKey) => {
                gcm_open(dek, data, aad)?
            }
            // Invariant: `dek_source` builds the source of the type asked for.
            _ => return Err(KmsFailure::Decrypt),
        };
        let stale = match self.inner.current() {
            Some((key, _)) => {
                key.wrapped.key_id != wrapped.key_id
                    || source_type != EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed
            }
            None => false,
        };
        Ok(KmsOpened { plaintext, stale })
    }

    fn health(&self) -> Result<(), String> {
        self.inner.health()
    }

    async fn check_health(&self) -> Result<(), String> {
        let fresh = {
            let state = self
                .inner
                .probe_state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ttl = if state.last_error.is_none() {
                HEALTHZ_POSITIVE_TTL
            } else {
                HEALTHZ_NEGATIVE_TTL
            };
            state
                .checked_at
                .is_some_and(|t| self.inner.clock.now().saturating_duration_since(t) < ttl)
        };
        if !fresh && let Err(e) = self.inner.probe().await {
            warn!(provider = %self.inner.name, error = %e, "kms plugin health check failed");
        }
        self.inner.health()
    }
}

// === impl Inner ===

impl Inner {
    fn current(&self) -> Option<(Arc<WriteKey>, Instant)> {
        let write = self.write.read().unwrap_or_else(|e| e.into_inner());
        write
            .as_ref()
            .map(|state| (Arc::clone(&state.key), state.expires_at))
    }

    fn last_error(&self) -> Option<String> {
        self.probe_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error
            .clone()
    }

    fn healthy(&self) -> bool {
        self.health().is_ok()
    }

    fn health(&self) -> Result<(), String> {
        if let Some(error) = self.last_error() {
            return Err(error);
        }
        match self.current() {
            None => Err("no write seed yet: the plugin has not been reached".to_owned()),
            Some((_, expires_at)) if self.clock.now() > expires_at => {
                Err("the write seed expired: no good Status from the plugin for 3m".to_owned())
            }
            Some(_) => Ok(()),
        }
    }

    fn write_key(&self) -> Result<Arc<WriteKey>, KmsFailure> {
        let because = || match self.last_error() {
            Some(error) => format!(" (last error: {error})"),
            None => String::new(),
        };
        match self.current() {
            None => Err(KmsFailure::NotReady(format!(
                "no write seed yet: the plugin has not answered Status and Encrypt{}",
                because()
            ))),
            Some((_, expires_at)) if self.clock.now() > expires_at => {
                let ago = self.clock.now().saturating_duration_since(expires_at);
                Err(KmsFailure::NotReady(format!(
                    "the write seed expired {}s ago: no good Status from the plugin for more \
                     than {}s{}",
                    ago.as_secs(),
                    WRITE_SEED_TTL.as_secs(),
                    because()
                )))
            }
            Some((key, _)) => Ok(key),
        }
    }

    async fn probe(&self) -> Result<(), KmsError> {
        let _serial = self.probe_lock.lock().await;
        // The expiry counts from before the network calls, as kube-apiserver's does.
        let started = self.clock.now();
        let result = self.check(started).await;
        let mut state = self.probe_state.lock().unwrap_or_else(|e| e.into_inner());
        state.last_error = result.as_ref().err().map(ToString::to_string);
        state.checked_at = Some(self.clock.now());
        result
    }

    async fn check(&self, started: Instant) -> Result<(), KmsError> {
        let status = self.service.status().await?;
        let mut problems = Vec::new();
        if status.healthz != "ok" {
            problems.push(format!("healthz is {:?}", printable(&status.healthz)));
        }
        if KMS_API_VERSIONS.contains(&status.version.as_str()) {
            let mut state = self.probe_state.lock().unwrap_or_else(|e| e.into_inner());
            match &state.version {
                None => state.version = Some(status.version.clone()),
                Some(first) if *first != status.version => problems.push(format!(
                    "version changed from {first:?} to {:?}",
                    printable(&status.version)
                )),
                Some(_) => {}
            }
        } else {
            problems.push(format!(
                "expected version \"v2\", got {:?}",
                printable(&status.version)
            ));
        }
        if let Err(e) = validate_key_id(&status.key_id) {
            let code = if status.key_id.is_empty() {
                "empty"
            } else {
                "too_long"
            };
            metrics::invalid_key_id_from_status(&self.name, code);
            problems.push(format!("invalid key ID: {e}"));
        } else {
            metrics::key_id_from_status(&self.name, &status.key_id);
        }
        if problems.is_empty()
            && let Err(e) = self.rotate_if_needed(&status.key_id, started).await
        {
            problems.push(e.to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(KmsError::Unhealthy(problems.join("; ")))
        }
    }

    async fn rotate_if_needed(&self, key_id: &str, started: Instant) -> Result<(), KmsError> {
        let expires_at = started + WRITE_SEED_TTL;
        {
            let mut write = self.write.write().unwrap_or_else(|e| e.into_inner());
            if let Some(state) = write.as_mut()
                && state.key.wrapped.key_id == key_id
            {
                state.expires_at = expires_at;
                return Ok(());
            }
        }
        let generating = Instant::now();
        let seed = SecretKey32::generate();
        metrics::data_key_generation(generating.elapsed(), seed.is_ok());
        let seed = seed.map_err(|_| KmsError::Random)?;
        let uid = uuid::Uuid::new_v4().to_string();
        let wrapped = self.service.encrypt(&uid, seed.expose_secret()).await?;
        validate_wrapped(&wrapped).map_err(|reason| KmsError::InvalidResponse {
            method: "Encrypt",
            reason,
        })?;
        if wrapped.key_id != key_id {
            return Err(KmsError::InvalidResponse {
                method: "Encrypt",
                reason: format!(
                    "key_id {:?} differs from Status key_id {:?}",
                    printable(&wrapped.key_id),
                    printable(key_id)
                ),
            });
        }
        let source = Arc::new(DekSource::Seed(seed));
        let cache_key = cache_key(EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed, &wrapped);
        self.cache_insert(cache_key, Arc::clone(&source), self.clock.now());
        let old = self
            .current()
            .map(|(key, _)| key_id_hash(&key.wrapped.key_id));
        *self.write.write().unwrap_or_else(|e| e.into_inner()) = Some(WriteState {
            key: Arc::new(WriteKey { source, wrapped }),
            expires_at,
        });
        info!(
            provider = %self.name,
            uid = %uid,
            new_key_id_hash = %key_id_hash(key_id),
            old_key_id_hash = ?old,
            "kms: new write seed"
        );
        Ok(())
    }

    async fn dek_source(
        &self,
        source_type: EncryptedDekSourceType,
        wrapped: &WrappedKey,
    ) -> Result<Arc<DekSource>, KmsFailure> {
        let key = cache_key(source_type, wrapped);
        let now = self.clock.now();
        if let Some(source) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key, now)
        {
            return Ok(source);
        }
        metrics::cache_miss();
        let uid = uuid::Uuid::new_v4().to_string();
        let plaintext = self
            .service
            .decrypt(&uid, wrapped)
            .await
            .map_err(|e| KmsFailure::Plugin(e.to_string()))?;
        let source = match source_type {
            EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed => {
                SecretKey32::from_slice(&plaintext)
                    .map(DekSource::Seed)
                    .ok_or_else(|| {
                        KmsFailure::Plugin(format!(
                            "Decrypt returned {} bytes; a seed is 32 bytes",
                            plaintext.len()
                        ))
                    })?
            }
            EncryptedDekSourceType::AesGcmKey => {
                if ![16, 24, 32].contains(&plaintext.len()) {
                    return Err(KmsFailure::Plugin(format!(
                        "Decrypt returned {} bytes; an AES key is 16, 24 or 32 bytes",
                        plaintext.len()
                    )));
                }
                DekSource::AesGcmKey(plaintext)
            }
        };
        let source = Arc::new(source);
        self.cache_insert(key, Arc::clone(&source), now);
        Ok(source)
    }

    fn cache_insert(&self, key: [u8; 32], source: Arc<DekSource>, now: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key, source, now);
        metrics::dek_source_cache_size(&self.name, cache.entries.len());
    }
}

// === impl GrpcKmsFactory ===

/// Builds a [`KmsV2Envelope`] over a lazily connected [`GrpcKmsClient`] per `kms` provider.
struct GrpcKmsFactory {
    clock: Arc<dyn Clock>,
    built: Mutex<Vec<KmsV2Envelope>>,
}

impl KmsFactory for GrpcKmsFactory {
    fn build(&self, config: &KmsConfig) -> Result<Arc<dyn KmsTransformer>, String> {
        let endpoint = KmsEndpoint::parse(config.endpoint()).map_err(|e| e.to_string())?;
        if config.api_version() == KmsApiVersion::V1 {
            // Read only; `Transformers` refuses a configuration where it would write.
            let client = GrpcKmsV1Client::connect_lazy(endpoint, config.name(), config.timeout());
            let cache_size = config.cache_size().unwrap_or(DEFAULT_V1_CACHE_SIZE);
            return Ok(Arc::new(KmsV1Envelope::new(
                config.name(),
                client,
                cache_size,
            )));
        }
        let client = GrpcKmsClient::connect_lazy(endpoint, config.timeout())
            .with_provider_name(config.name());
        let envelope = KmsV2Envelope::new(config.name(), Arc::new(client), Arc::clone(&self.clock));
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(envelope.clone());
        Ok(Arc::new(envelope))
    }
}

// === DEK sources and their cache ===

/// A decrypted DEK source.
enum DekSource {
    /// `AES_GCM_KEY`: the AES key itself (16, 24 or 32 bytes).
    AesGcmKey(Zeroizing<Vec<u8>>),
    /// `HKDF_SHA256_XNONCE_AES_GCM_SEED`: the HKDF PRK.
    Seed(SecretKey32),
}

#[derive(Default)]
struct SourceCache {
    entries: HashMap<[u8; 32], (Arc<DekSource>, Instant)>,
}

impl SourceCache {
    fn get(&self, key: &[u8; 32], now: Instant) -> Option<Arc<DekSource>> {
        let (source, inserted) = self.entries.get(key)?;
        (now.saturating_duration_since(*inserted) < CACHE_TTL).then(|| Arc::clone(source))
    }

    fn insert(&mut self, key: [u8; 32], source: Arc<DekSource>, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, (_, inserted)| now.saturating_duration_since(*inserted) < CACHE_TTL);
            if self.entries.len() >= CACHE_CAPACITY {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, inserted))| *inserted)
                    .map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key, (source, now));
    }
}

/// SHA-256 of `u32(type) ‖ u32 len ‖ encryptedDEKSource ‖ u32 len ‖ keyID ‖ u32 count ‖ (u32 len
/// ‖ key ‖ u32 len ‖ value)…` with annotations in key order: unambiguous, like kube-apiserver's.
fn cache_key(source_type: EncryptedDekSourceType, wrapped: &WrappedKey) -> [u8; 32] {
    fn field(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u32).to_be_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Sha256::new();
    hasher.update((source_type as i32 as u32).to_be_bytes());
    field(&mut hasher, &wrapped.ciphertext);
    field(&mut hasher, wrapped.key_id.as_bytes());
    hasher.update((wrapped.annotations.len() as u32).to_be_bytes());
    for (key, value) in &wrapped.annotations {
        field(&mut hasher, key.as_bytes());
        field(&mut hasher, value);
    }
    hasher.finalize().into()
}

/// Key IDs are logged only as `sha256:<first 8 bytes hex>`, as kube-apiserver logs them hashed.
fn key_id_hash(key_id: &str) -> String {
    let digest = Sha256::digest(key_id.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Checks a stored `EncryptedObject` as kube-apiserver's `ValidateEncryptedObject` does.
fn validate_object(object: &EncryptedObject) -> Result<EncryptedDekSourceType, KmsFailure> {
    let malformed = |what: String| Err(KmsFailure::Malformed(what));
    if object.encrypted_data.is_empty() {
        return malformed("encryptedData is empty".to_owned());
    }
    if let Err(e) = validate_key_id(&object.key_id) {
        return malformed(format!("keyID: {e}"));
    }
    if object.encrypted_dek_source.is_empty() || object.encrypted_dek_source.len() > MAX_FIELD_LEN {
        return malformed(format!(
            "encryptedDEKSource must be 1 to {MAX_FIELD_LEN} bytes, got {}",
            object.encrypted_dek_source.len()
        ));
    }
    if let Err(e) = validate_annotations(&object.annotations) {
        return malformed(format!("annotations: {e}"));
    }
    EncryptedDekSourceType::try_from(object.encrypted_dek_source_type).or_else(|_| {
        malformed(format!(
            "unknown encryptedDEKSourceType {}",
            object.encrypted_dek_source_type
        ))
    })
}

/// HKDF-Expand(SHA-256, PRK = seed, info, 32): Expand only, no Extract.
fn derive_key(seed: &SecretKey32, info: &[u8]) -> Result<Zeroizing<[u8; 32]>, KmsFailure> {
    let hkdf = Hkdf::<Sha256>::from_prk(seed.expose_secret()).map_err(|_| KmsFailure::Decrypt)?;
    let mut key = Zeroizing::new([0u8; 32]);
    hkdf.expand(info, key.as_mut_slice())
        .map_err(|_| KmsFailure::Decrypt)?;
    Ok(key)
}

/// Appends `nonce ‖ ciphertext ‖ tag` of `plaintext` under a 32-byte key to `out` (a zeroizing
/// buffer).
fn gcm_seal(
    key: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), KmsFailure> {
    out.extend_from_slice(nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KmsFailure::Encrypt)?;
    let tag = cipher
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut out[start..])
        .map_err(|_| KmsFailure::Encrypt)?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Opens `nonce(12) ‖ ciphertext ‖ tag(16)` under an AES-128/192/256 key.
pub(crate) fn gcm_open(
    key: &[u8],
    data: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KmsFailure> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(KmsFailure::Malformed(
            "encryptedData is truncated".to_owned(),
        ));
    }
    let (nonce, rest) = data.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce = GenericArray::from_slice(nonce);
    let tag = GenericArray::from_slice(tag);
    let mut out = Zeroizing::new(body.to_vec());
    let result = match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .map_err(|_| aes_gcm::Error)
            .and_then(|c| c.decrypt_in_place_detached(nonce, aad, &mut out, tag)),
        24 => AesGcm::<Aes192, U12>::new_from_slice(key)
            .map_err(|_| aes_gcm::Error)
            .and_then(|c| c.decrypt_in_place_detached(nonce, aad, &mut out, tag)),
        _ => Aes256Gcm::new_from_slice(key)
            .map_err(|_| aes_gcm::Error)
            .and_then(|c| c.decrypt_in_place_detached(nonce, aad, &mut out, tag)),
    };
    result.map_err(|_| KmsFailure::Decrypt)?;
    Ok(out)
}

/// kube-apiserver's `kmsv2PluginWriteDEKSourceMaxTTL`.
pub const WRITE_SEED_TTL: Duration = Duration::from_secs(3 * 60);
/// kube-apiserver's `kmsv2PluginHealthzPositiveInterval`.
pub const HEALTHY_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// kube-apiserver's `kmsv2PluginHealthzNegativeInterval`.
pub const UNHEALTHY_POLL_INTERVAL: Duration = Duration::from_secs(10);
const CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
const CACHE_CAPACITY: usize = 1024;
/// kube-apiserver's default `kms.cachesize` for v1 (the config loader applies it too).
const DEFAULT_V1_CACHE_SIZE: i32 = 1000;
const INFO_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[cfg(test)]
mod tests;
