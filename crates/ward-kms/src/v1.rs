//! KMS v1, read only: values kube-apiserver wrote through a deprecated `kms` provider with
//! `apiVersion: v1` (or none).
//!
//! # Bytes (kube-apiserver `encrypt/envelope/envelope.go`, `encryptionconfig/config.go`)
//!
//! ```text
//! k8s:enc:kms:v1:<name>: ‖ u16 BE L ‖ encrypted DEK (L bytes, the plugin's Encrypt output) ‖ data
//! ```
//!
//! kube-apiserver draws a fresh 32-byte DEK for every write and sends it to the plugin's
//! `Encrypt`. `data` is the DEK-encrypted object: since 1.25 the aesgcm layout (nonce 12 ‖
//! ciphertext ‖ tag 16, AAD = the etcd key), before it the aescbc layout (IV 16 ‖ AES-CBC with
//! PKCS#7 padding, no AAD). Reads try GCM, then CBC, as upstream's `unionTransformers` do.
//!
//! # What Ward does with it
//!
//! - **Never writes it.** [`KmsV1Envelope::seal`] fails with [`KmsFailure::ReadOnly`], and a
//!   configuration where a v1 provider would write (first for some resource) is refused at start
//!   ([`ward_crypto::BuildError::KmsReadOnly`]). A v1 read is always *stale*, so `ward rewrite`
//!   moves the value to the first provider.
//! - Encrypted DEKs go to the plugin's `Decrypt` over gRPC (`/v1beta1.KeyManagementService`) on
//!   a unix socket; the plugin's `Version` must answer `v1beta1` (checked once, before the first
//!   `Decrypt`, as upstream). Decrypted DEKs are cached in an LRU of `kms.cachesize` entries
//!   (default 1000; negative disables it), keyed by a hash of the encrypted DEK.
//! - Errors say which step failed (malformed value, plugin unreachable or refusing, wrong DEK or
//!   tampered data) and never hold a DEK, the plaintext or the payload.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use ward_crypto::{KmsFailure, KmsOpened, KmsTransformer};
use zeroize::Zeroizing;

use crate::client::{MAX_MESSAGE_LEN, PluginChannel};
use crate::endpoint::KmsEndpoint;
use crate::envelope::gcm_open;
use crate::error::KmsError;
use crate::metrics;
use crate::proto::v1beta1::key_management_service_client::KeyManagementServiceClient;
use crate::proto::v1beta1::{DecryptRequest, VersionRequest};

/// The API version a KMS v1 plugin must report, and the one Ward sends.
pub const KMS_V1_API_VERSION: &str = "v1beta1";

/// A KMS v1 plugin reached over gRPC on a unix socket (`Version` and `Decrypt` only).
#[derive(Clone)]
pub struct GrpcKmsV1Client {
    plugin: PluginChannel,
    client: KeyManagementServiceClient<Channel>,
    version_checked: Arc<tokio::sync::Mutex<bool>>,
}

impl GrpcKmsV1Client {
    /// A client for provider `provider` that connects on first use. Must be called within a
    /// Tokio runtime.
    pub fn connect_lazy(endpoint: KmsEndpoint, provider: &str, timeout: Duration) -> Self {
        let plugin = PluginChannel::connect_lazy(endpoint, provider, timeout);
        let client = KeyManagementServiceClient::new(plugin.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_LEN)
            .max_encoding_message_size(MAX_MESSAGE_LEN);
        Self {
            plugin,
            client,
            version_checked: Arc::new(tokio::sync::Mutex::new(false)),
        }
    }

    /// Calls `Version` and checks that the plugin speaks `v1beta1`.
    ///
    /// # Errors
    ///
    /// [`KmsError`] when the plugin is unreachable, times out, or reports another version
    /// ([`KmsError::InvalidResponse`]).
    pub async fn version(&self) -> Result<(), KmsError> {
        let mut client = self.client.clone();
        let request = self.request(VersionRequest {
            version: KMS_V1_API_VERSION.to_owned(),
        });
        let response = self
            .call(VERSION_METHOD, "Version", client.version(request))
            .await?;
        if response.version != KMS_V1_API_VERSION {
            return Err(KmsError::InvalidResponse {
                method: "Version",
                reason: format!(
                    "KMS provider api version {:?} is not supported, only {KMS_V1_API_VERSION} is",
                    crate::service::printable(&response.version)
                ),
            });
        }
        Ok(())
    }

    /// Decrypts an encrypted DEK, checking the plugin's version first if not done yet.
    ///
    /// # Errors
    ///
    /// [`KmsError`] when the version check fails, or the plugin is unreachable, times out or
    /// refuses.
    pub async fn decrypt(&self, cipher: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        {
            let mut checked = self.version_checked.lock().await;
            if !*checked {
                self.version().await?;
                *checked = true;
            }
        }
        let mut client = self.client.clone();
        let request = self.request(DecryptRequest {
            version: KMS_V1_API_VERSION.to_owned(),
            cipher: cipher.to_vec(),
        });
        let response = self
            .call(DECRYPT_METHOD, "Decrypt", client.decrypt(request))
            .await?;
        Ok(Zeroizing::new(response.plain))
    }

    async fn call<T, F>(
        &self,
        full_method: &'static str,
        method: &'static str,
        call: F,
    ) -> Result<T, KmsError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.plugin.call(full_method, method, call).await
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.plugin.request(message)
    }
}

impl fmt::Debug for GrpcKmsV1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcKmsV1Client")
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// The read-only transformer of one KMS v1 provider. Cheap to clone (shared state).
#[derive(Clone)]
pub struct KmsV1Envelope {
    inner: Arc<V1Inner>,
}

struct V1Inner {
    name: String,
    prefix: Vec<u8>,
    client: GrpcKmsV1Client,
    cache: Mutex<DekCache>,
    last_error: Mutex<Option<String>>,
}

impl KmsV1Envelope {
    /// A read-only envelope for provider `name` over `client`, caching `cache_size` DEKs (0 or
    /// negative: no cache). No IO happens until a read.
    pub fn new(name: &str, client: GrpcKmsV1Client, cache_size: i32) -> Self {
        Self {
            inner: Arc::new(V1Inner {
                name: name.to_owned(),
                prefix: format!("k8s:enc:kms:v1:{name}:").into_bytes(),
                client,
                cache: Mutex::new(DekCache::new(usize::try_from(cache_size).unwrap_or(0))),
                last_error: Mutex::new(None),
            }),
        }
    }

    /// The provider name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The decrypted DEKs currently cached.
    pub fn cached_deks(&self) -> usize {
        self.inner.lock_cache().entries.len()
    }

    async fn dek(&self, encrypted_dek: &[u8]) -> Result<Arc<Dek>, KmsFailure> {
        let key: [u8; 32] = Sha256::digest(encrypted_dek).into();
        let cached = self.inner.lock_cache().get(&key);
        if let Some(dek) = cached {
            return Ok(dek);
        }
        if self.inner.lock_cache().capacity > 0 {
            metrics::cache_miss();
        }
        let plain = match self.inner.client.decrypt(encrypted_dek).await {
            Ok(plain) => {
                *self.inner.lock_error() = None;
                plain
            }
            Err(e) => {
                let message = e.to_string();
                *self.inner.lock_error() = Some(message.clone());
                return Err(KmsFailure::Plugin(message));
            }
        };
        if ![16, 24, 32].contains(&plain.len()) {
            return Err(KmsFailure::Plugin(format!(
                "Decrypt returned {} bytes; a DEK is an AES key of 16, 24 or 32 bytes",
                plain.len()
            )));
        }
        let dek = Arc::new(Dek(plain));
        let mut cache = self.inner.lock_cache();
        cache.insert(key, Arc::clone(&dek));
        if cache.capacity > 0 {
            // As upstream, a ratio (0 to 1) despite the metric's name.
            metrics::dek_cache_fill(cache.entries.len() as f64 / cache.capacity as f64);
        }
        Ok(dek)
    }
}

impl fmt::Debug for KmsV1Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsV1Envelope")
            .field("name", &self.inner.name)
            .field("client", &self.inner.client)
            .field("deks", &"[redacted]")
            .finish()
    }
}

#[async_trait::async_trait]
impl KmsTransformer for KmsV1Envelope {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn prefix(&self) -> &[u8] {
        &self.inner.prefix
    }

    async fn seal(&self, _plaintext: &[u8], _aad: &[u8]) -> Result<Vec<u8>, KmsFailure> {
        metrics::arrival(metrics::TO_STORAGE);
        Err(KmsFailure::ReadOnly)
    }

    async fn open(&self, payload: &[u8], aad: &[u8]) -> Result<KmsOpened, KmsFailure> {
        metrics::arrival(metrics::FROM_STORAGE);
        let (encrypted_dek, data) = split_payload(payload)?;
        let dek = self.dek(encrypted_dek).await?;
        let plaintext = open_data(&dek.0, data, aad)?;
        // Ward never writes KMS v1, so every value read through it is to be rewritten.
        Ok(KmsOpened {
            plaintext,
            stale: true,
        })
    }

    /// `Err` when the last call to the plugin failed; a v1 provider never encrypts, so there is
    /// nothing else to be healthy for.
    fn health(&self) -> Result<(), String> {
        match &*self.inner.lock_error() {
            Some(error) => Err(format!("kms v1 plugin: {error}")),
            None => Ok(()),
        }
    }

    fn writes(&self) -> bool {
        false
    }
}

impl V1Inner {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, DekCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Parses a KMS v1 payload (after the `k8s:enc:kms:v1:NAME:` prefix) and opens its data with
/// `dek`, as a read does once the plugin has returned the DEK: for fuzzing the parser and both
/// data layouts without a plugin.
///
/// # Errors
///
/// [`KmsFailure`] for a malformed payload or data that `dek` does not open.
#[doc(hidden)]
pub fn open_payload_with_dek(
    payload: &[u8],
    dek: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KmsFailure> {
    let (_, data) = split_payload(payload)?;
    open_data(dek, data, aad)
}

/// Splits a payload (after the prefix) into the encrypted DEK and the DEK-encrypted data.
fn split_payload(payload: &[u8]) -> Result<(&[u8], &[u8]), KmsFailure> {
    let malformed = || {
        KmsFailure::Malformed(
            "a kms v1 value starts with a 2-byte big-endian length and the encrypted DEK"
                .to_owned(),
        )
    };
    let (len, rest) = payload.split_first_chunk::<2>().ok_or_else(malformed)?;
    let len = usize::from(u16::from_be_bytes(*len));
    let (encrypted_dek, data) = rest.split_at_checked(len).ok_or_else(malformed)?;
    if encrypted_dek.is_empty() {
        return Err(KmsFailure::Malformed(
            "the encrypted DEK of a kms v1 value is empty".to_owned(),
        ));
    }
    Ok((encrypted_dek, data))
}

/// Opens the DEK-encrypted data: GCM (written since 1.25) first, then CBC (older writes).
fn open_data(dek: &[u8], data: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsFailure> {
    match gcm_open(dek, data, aad) {
        Ok(plaintext) => Ok(plaintext),
        Err(gcm) => cbc_open(dek, data).map_err(|cbc| match (gcm, cbc) {
            // Too short for both layouts: say so rather than "wrong key".
            (KmsFailure::Malformed(_), KmsFailure::Malformed(_)) => KmsFailure::Malformed(
                "the data after the encrypted DEK is neither an AES-GCM nor an AES-CBC payload"
                    .to_owned(),
            ),
            _ => KmsFailure::Decrypt,
        }),
    }
}

/// IV(16) ‖ AES-CBC ciphertext of plaintext ‖ PKCS#7 padding, checked as Go's aes.go does.
fn cbc_open(dek: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsFailure> {
    let malformed = || KmsFailure::Malformed("truncated AES-CBC payload".to_owned());
    let (iv, body) = data.split_at_checked(BLOCK_LEN).ok_or_else(malformed)?;
    if body.is_empty() || body.len() % BLOCK_LEN != 0 {
        return Err(malformed());
    }
    let mut buf = Zeroizing::new(body.to_vec());
    let decrypted = match dek.len() {
        16 => cbc_decrypt::<cbc::Decryptor<Aes128>>(dek, iv, &mut buf),
        24 => cbc_decrypt::<cbc::Decryptor<Aes192>>(dek, iv, &mut buf),
        32 => cbc_decrypt::<cbc::Decryptor<Aes256>>(dek, iv, &mut buf),
        _ => false,
    };
    if !decrypted {
        return Err(KmsFailure::Decrypt);
    }
    let len = unpad_pkcs7(&buf).ok_or(KmsFailure::Decrypt)?;
    buf.truncate(len);
    Ok(buf)
}

fn cbc_decrypt<D: KeyIvInit + BlockDecryptMut>(key: &[u8], iv: &[u8], body: &mut [u8]) -> bool {
    D::new_from_slices(key, iv)
        .ok()
        .and_then(|d| d.decrypt_padded_mut::<NoPadding>(body).ok())
        .is_some()
}

/// Go's check: the last byte `c` is in `1..=len` and the last `c` bytes all equal `c`, compared
/// without an early exit. Returns the unpadded length.
fn unpad_pkcs7(buf: &[u8]) -> Option<usize> {
    let &last = buf.last()?;
    let pad = usize::from(last);
    if pad == 0 || pad > buf.len() {
        return None;
    }
    let start = buf.len() - pad;
    let mismatch = buf[start..].iter().fold(0u8, |acc, &b| acc | (b ^ last));
    (mismatch == 0).then_some(start)
}

// === DEK cache ===

/// A decrypted DEK (an AES key), wiped when the last reference goes.
struct Dek(Zeroizing<Vec<u8>>);

/// A least-recently-used cache of decrypted DEKs, keyed by SHA-256 of the encrypted DEK.
struct DekCache {
    capacity: usize,
    entries: HashMap<[u8; 32], (Arc<Dek>, u64)>,
    tick: u64,
}

impl DekCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            tick: 0,
        }
    }

    fn get(&mut self, key: &[u8; 32]) -> Option<Arc<Dek>> {
        self.tick += 1;
        let tick = self.tick;
        let (dek, used) = self.entries.get_mut(key)?;
        *used = tick;
        Some(Arc::clone(dek))
    }

    fn insert(&mut self, key: [u8; 32], dek: Arc<Dek>) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (dek, self.tick));
    }
}

const VERSION_METHOD: &str = "/v1beta1.KeyManagementService/Version";
const DECRYPT_METHOD: &str = "/v1beta1.KeyManagementService/Decrypt";
const BLOCK_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_split_never_panics_and_checks_lengths() {
        assert!(split_payload(b"").is_err());
        assert!(split_payload(b"\x00").is_err());
        assert!(split_payload(b"\x00\x00rest").is_err(), "empty DEK");
        assert!(
            split_payload(b"\x00\x05abc").is_err(),
            "length past the end"
        );
        let (dek, data) = split_payload(b"\x00\x03abcdata").unwrap();
        assert_eq!((dek, data), (&b"abc"[..], &b"data"[..]));
        for n in 0..40 {
            let bytes = vec![0x01; n];
            let _ = split_payload(&bytes);
            let _ = cbc_open(&[7; 32], &bytes);
            let _ = open_data(&[7; 32], &bytes, b"aad");
        }
    }

    #[test]
    fn cache_is_bounded_and_least_recently_used() {
        let dek = || Arc::new(Dek(Zeroizing::new(vec![1; 32])));
        let mut cache = DekCache::new(2);
        cache.insert([1; 32], dek());
        cache.insert([2; 32], dek());
        assert!(cache.get(&[1; 32]).is_some());
        cache.insert([3; 32], dek());
        assert_eq!(cache.entries.len(), 2);
        assert!(
            cache.get(&[2; 32]).is_none(),
            "the least recently used went"
        );
        assert!(cache.get(&[1; 32]).is_some());
        let mut off = DekCache::new(0);
        off.insert([1; 32], dek());
        assert!(off.get(&[1; 32]).is_none());
    }
}
