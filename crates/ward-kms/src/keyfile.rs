//! The key-file backend of `ward kms-plugin`: AES-256 key-encryption keys (KEKs) read from files.
//!
//! # Key files
//!
//! A key file holds exactly 32 bytes, either raw or as standard base64 (a trailing newline is
//! trimmed). Its mode must have no `0o077` bits (e.g. 0600) unless the check is skipped; the
//! content is never echoed in errors. Each key has a key ID: the one given as `KEY_ID=PATH`, or
//! else `sha256:` + the first 16 bytes, in hex, of SHA-256(`"ward-kms key id\0"` ‖ key). The
//! hash is one-way, so the key ID (stored in plain text next to every value) reveals nothing of
//! the key.
//!
//! The first key encrypts; every key decrypts. Rotation: start the plugin with the new key first
//! and the old ones after it; Status then reports the new key ID, the API server makes a new
//! seed, and old values stay readable (and are reported stale) until they are rewritten.
//!
//! The files are read again on every `Status` call. If one cannot be read, Status reports
//! `healthz` as the reason and the keys loaded last keep working; when the file is restored,
//! Status is healthy again.
//!
//! # Wrapped format (`EncryptResponse.ciphertext`)
//!
//! | offset | length | content |
//! |---|---|---|
//! | 0 | 1 | format version, `0x01` |
//! | 1 | 12 | nonce, random |
//! | 13 | n | AES-256-GCM ciphertext of the DEK or seed under the KEK |
//! | 13+n | 16 | GCM tag |
//!
//! The AAD is `"ward-kms-plugin:v1:"` ‖ key ID, so a ciphertext cannot be presented under
//! another key's ID. Annotations are not used (none are returned).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use ward_crypto::{ModeCheck, SecretKey32};
use zeroize::{Zeroize, Zeroizing};

use crate::error::KmsError;
use crate::service::{KmsService, KmsStatus, MAX_FIELD_LEN, WrappedKey, validate_key_id};

/// One `--key-file` argument: `PATH` or `KEY_ID=PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFileSpec {
    key_id: Option<String>,
    path: PathBuf,
}

impl KeyFileSpec {
    /// A key file whose key ID is derived from the key.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            key_id: None,
            path: path.into(),
        }
    }

    /// A key file with a configured key ID.
    pub fn with_key_id(key_id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            key_id: Some(key_id.into()),
            path: path.into(),
        }
    }

    /// Parses `PATH` or `KEY_ID=PATH` (a key ID has no `/`).
    ///
    /// # Errors
    ///
    /// [`KmsError::Usage`] for an empty path or an empty or over-long key ID.
    pub fn parse(arg: &str) -> Result<Self, KmsError> {
        let spec = match arg.split_once('=') {
            Some((id, path)) if !id.contains('/') => Self::with_key_id(id, path),
            _ => Self::new(arg),
        };
        if spec.path.as_os_str().is_empty() {
            return Err(KmsError::Usage(format!(
                "--key-file {arg:?}: expected PATH or KEY_ID=PATH"
            )));
        }
        if let Some(id) = &spec.key_id {
            validate_key_id(id).map_err(|e| KmsError::Usage(format!("--key-file {arg:?}: {e}")))?;
        }
        Ok(spec)
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// KEKs from key files, as a [`KmsService`] (used in process, or served by the plugin).
pub struct KeyFileKms {
    specs: Vec<KeyFileSpec>,
    mode_check: ModeCheck,
    ring: RwLock<Arc<KeyRing>>,
    /// The error of the last reload, shown as `healthz`.
    reload_error: Mutex<Option<String>>,
}

impl KeyFileKms {
    /// Loads the key files; the first one encrypts.
    ///
    /// # Errors
    ///
    /// [`KmsError::Usage`] when no key file is given or two keys share a key ID;
    /// [`KmsError::KeyFile`] when a file's mode is too open or its content is not 32 bytes (raw
    /// or base64); [`KmsError::Io`] when a file cannot be read.
    pub fn open(specs: Vec<KeyFileSpec>, mode_check: ModeCheck) -> Result<Self, KmsError> {
        let ring = KeyRing::load(&specs, mode_check)?;
        Ok(Self {
            specs,
            mode_check,
            ring: RwLock::new(Arc::new(ring)),
            reload_error: Mutex::new(None),
        })
    }

    /// The key ID of the key that encrypts.
    pub fn current_key_id(&self) -> String {
        self.ring().current().key_id.clone()
    }

    /// Reads the key files again. On failure the keys loaded last stay in use.
    ///
    /// # Errors
    ///
    /// As [`Self::open`].
    pub fn reload(&self) -> Result<(), KmsError> {
        let result = KeyRing::load(&self.specs, self.mode_check);
        let mut reload_error = self.reload_error.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(ring) => {
                *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
                *reload_error = None;
                Ok(())
            }
            Err(e) => {
                *reload_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl fmt::Debug for KeyFileKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileKms")
            .field("specs", &self.specs)
            .field("keys", &"[redacted]")
            .finish()
    }
}

#[async_trait::async_trait]
impl KmsService for KeyFileKms {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        let healthz = match self.reload() {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        Ok(KmsStatus {
            version: "v2".to_owned(),
            healthz,
            key_id: self.current_key_id(),
        })
    }

    async fn encrypt(&self, _uid: &str, plaintext: &[u8]) -> Result<WrappedKey, KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(KmsError::InvalidRequest(format!(
                "plaintext must be 1 to {MAX_PLAINTEXT_LEN} bytes, got {}",
                plaintext.len()
            )));
        }
        let ring = self.ring();
        let key = ring.current();
        Ok(WrappedKey {
            ciphertext: key.wrap(plaintext)?,
            key_id: key.key_id.clone(),
            annotations: BTreeMap::new(),
        })
    }

    async fn decrypt(
        &self,
        _uid: &str,
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if wrapped.ciphertext.is_empty() || wrapped.ciphertext.len() > MAX_FIELD_LEN {
            return Err(KmsError::InvalidRequest(format!(
                "ciphertext must be 1 to {MAX_FIELD_LEN} bytes, got {}",
                wrapped.ciphertext.len()
            )));
        }
        validate_key_id(&wrapped.key_id).map_err(KmsError::InvalidRequest)?;
        let ring = self.ring();
        let key = ring
            .keys
            .iter()
            .find(|k| k.key_id == wrapped.key_id)
            .ok_or_else(|| KmsError::UnknownKeyId(crate::service::printable(&wrapped.key_id)))?;
        key.unwrap(&wrapped.ciphertext)
    }
}

// === impl KeyRing ===

struct KeyRing {
    /// Never empty; the first key encrypts.
    keys: Vec<Kek>,
}

struct Kek {
    key_id: String,
    key: SecretKey32,
}

impl KeyRing {
    fn load(specs: &[KeyFileSpec], mode_check: ModeCheck) -> Result<Self, KmsError> {
        if specs.is_empty() {
            return Err(KmsError::Usage(
                "at least one --key-file is required".to_owned(),
            ));
        }
        let mut keys: Vec<Kek> = Vec::with_capacity(specs.len());
        for spec in specs {
            let key = read_key_file(&spec.path, mode_check)?;
            let key_id = spec.key_id.clone().unwrap_or_else(|| derived_key_id(&key));
            if keys.iter().any(|k| k.key_id == key_id) {
                return Err(KmsError::Usage(format!(
                    "key file {}: key ID {key_id:?} is used by an earlier key file",
                    spec.path.display()
                )));
            }
            keys.push(Kek { key_id, key });
        }
        Ok(Self { keys })
    }

    fn current(&self) -> &Kek {
        // Invariant: `load` refuses an empty list, and a ring is only built by `load`.
        &self.keys[0]
    }
}

impl Kek {
    fn aad(&self) -> Vec<u8> {
        [WRAP_AAD_PREFIX, self.key_id.as_bytes()].concat()
    }

    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| KmsError::Random)?;
        let cipher = Aes256Gcm::new(GenericArray::from_slice(self.key.expose_secret()));
        // Zeroizing: the buffer holds the DEK until it is encrypted in place.
        let mut out = Zeroizing::new(Vec::with_capacity(
            1 + NONCE_LEN + plaintext.len() + TAG_LEN,
        ));
        out.push(WRAP_FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_in_place_detached(
                GenericArray::from_slice(&nonce),
                &self.aad(),
                &mut out[1 + NONCE_LEN..],
            )
            .map_err(|_| KmsError::InvalidRequest("plaintext too large".to_owned()))?;
        out.extend_from_slice(&tag);
        Ok(std::mem::take(&mut *out))
    }

    fn unwrap(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let unwrap_error = || KmsError::Unwrap(crate::service::printable(&self.key_id));
        let Some((&WRAP_FORMAT_V1, rest)) = ciphertext.split_first() else {
            return Err(unwrap_error());
        };
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(unwrap_error());
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let cipher = Aes256Gcm::new(GenericArray::from_slice(self.key.expose_secret()));
        let mut out = Zeroizing::new(body.to_vec());
        cipher
            .decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                &self.aad(),
                &mut out,
                GenericArray::from_slice(tag),
            )
            .map_err(|_| unwrap_error())?;
        Ok(out)
    }
}

/// `sha256:` + hex of the first 16 bytes of SHA-256(`"ward-kms key id\0"` ‖ key).
fn derived_key_id(key: &SecretKey32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(KEY_ID_DOMAIN);
    hasher.update(key.expose_secret());
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn read_key_file(path: &Path, mode_check: ModeCheck) -> Result<SecretKey32, KmsError> {
    let key_error = |reason: String| KmsError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let io = |e| KmsError::io(path.display().to_string(), e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(key_error("not a regular file".to_owned()));
    }
    if mode_check == ModeCheck::Enforce {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_error(format!(
                "mode {mode:o} lets group or others access the key; expected no 0o077 bits \
                 (chmod 600), or pass --allow-insecure-key-file-mode"
            )));
        }
    }
    let mut content = Zeroizing::new(Vec::new());
    file.by_ref()
        .take(MAX_KEY_FILE_LEN as u64 + 1)
        .read_to_end(&mut content)
        .map_err(io)?;
    if content.len() > MAX_KEY_FILE_LEN {
        return Err(key_error(format!(
            "larger than {MAX_KEY_FILE_LEN} bytes; expected 32 raw bytes or their base64"
        )));
    }
    if let Some(key) = SecretKey32::from_slice(&content) {
        return Ok(key);
    }
    let text = content.trim_ascii();
    let mut decoded = Zeroizing::new(vec![0u8; 48]);
    let len = B64.decode_slice(text, &mut decoded).map_err(|_| {
        key_error("expected 32 raw bytes or their standard base64 encoding".to_owned())
    })?;
    let key = decoded.get(..len).and_then(SecretKey32::from_slice);
    // Clear intermediates
    decoded.zeroize();
    key.ok_or_else(|| {
        key_error(format!(
            "the base64 content decodes to {len} bytes; an AES-256 key is 32 bytes"
        ))
    })
}

pub(crate) const WRAP_FORMAT_V1: u8 = 1;
pub(crate) const WRAP_AAD_PREFIX: &[u8] = b"ward-kms-plugin:v1:";
const KEY_ID_DOMAIN: &[u8] = b"ward-kms key id\0";
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
/// 1 KiB ciphertext limit minus the format byte, nonce and tag.
pub(crate) const MAX_PLAINTEXT_LEN: usize = MAX_FIELD_LEN - 1 - NONCE_LEN - TAG_LEN;
const MAX_KEY_FILE_LEN: usize = 1024;

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn key_file(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[tokio::test]
    async fn wraps_and_unwraps_under_each_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = key_file(dir.path(), "a", &[7u8; 32], 0o600);
        let b = key_file(dir.path(), "b", B64.encode([9u8; 32]).as_bytes(), 0o400);
        let old = KeyFileKms::open(vec![KeyFileSpec::new(&a)], ModeCheck::Enforce).unwrap();
        let wrapped = old.encrypt("u", &[1; 32]).await.unwrap();
        assert_eq!(wrapped.ciphertext.len(), 1 + 12 + 32 + 16);
        assert!(wrapped.key_id.starts_with("sha256:"));

        let rotated = KeyFileKms::open(
            vec![KeyFileSpec::with_key_id("new", &b), KeyFileSpec::new(&a)],
            ModeCheck::Enforce,
        )
        .unwrap();
        assert_eq!(rotated.current_key_id(), "new");
        assert_eq!(&*rotated.decrypt("u", &wrapped).await.unwrap(), &[1; 32]);

        let mut wrong_id = wrapped.clone();
        wrong_id.key_id = "new".into();
        assert!(matches!(
            rotated.decrypt("u", &wrong_id).await,
            Err(KmsError::Unwrap(_))
        ));
        let mut unknown = wrapped.clone();
        unknown.key_id = "nope".into();
        assert!(matches!(
            rotated.decrypt("u", &unknown).await,
            Err(KmsError::UnknownKeyId(_))
        ));
        let mut tampered = wrapped;
        tampered.ciphertext[20] ^= 1;
        assert!(matches!(
            rotated.decrypt("u", &tampered).await,
            Err(KmsError::Unwrap(_))
        ));
    }

    #[test]
    fn refuses_open_modes_and_bad_content_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let open = key_file(dir.path(), "open", &[7u8; 32], 0o644);
        let err = KeyFileKms::open(vec![KeyFileSpec::new(&open)], ModeCheck::Enforce).unwrap_err();
        assert!(err.to_string().contains("mode 644"), "{err}");
        assert!(KeyFileKms::open(vec![KeyFileSpec::new(&open)], ModeCheck::Skip).is_ok());

        let canary = "c2VjcmV0LWNhbmFyeS12YWx1ZQ==";
        let short = key_file(dir.path(), "short", canary.as_bytes(), 0o600);
        let err = KeyFileKms::open(vec![KeyFileSpec::new(&short)], ModeCheck::Enforce).unwrap_err();
        assert!(!err.to_string().contains(canary), "{err}");
        assert!(err.to_string().contains("32 bytes"), "{err}");

        let dup = key_file(dir.path(), "dup", &[7u8; 32], 0o600);
        let a = key_file(dir.path(), "a", &[7u8; 32], 0o600);
        assert!(matches!(
            KeyFileKms::open(
                vec![KeyFileSpec::new(&a), KeyFileSpec::new(&dup)],
                ModeCheck::Enforce
            ),
            Err(KmsError::Usage(_))
        ));
    }

    #[test]
    fn parses_key_file_args() {
        assert_eq!(
            KeyFileSpec::parse("/k/a.key").unwrap(),
            KeyFileSpec::new("/k/a.key")
        );
        assert_eq!(
            KeyFileSpec::parse("kek-2=/k/b.key").unwrap(),
            KeyFileSpec::with_key_id("kek-2", "/k/b.key")
        );
        assert_eq!(
            KeyFileSpec::parse("/k/x=y").unwrap(),
            KeyFileSpec::new("/k/x=y")
        );
        assert!(KeyFileSpec::parse("=/k/b.key").is_err());
        assert!(KeyFileSpec::parse("").is_err());
    }

    #[tokio::test]
    async fn status_reports_a_missing_key_file_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let a = key_file(dir.path(), "a", &[7u8; 32], 0o600);
        let kms = KeyFileKms::open(vec![KeyFileSpec::new(&a)], ModeCheck::Enforce).unwrap();
        assert_eq!(kms.status().await.unwrap().healthz, "ok");
        std::fs::rename(&a, dir.path().join("moved")).unwrap();
        let status = kms.status().await.unwrap();
        assert_ne!(status.healthz, "ok");
        // The keys loaded last keep working.
        assert!(kms.encrypt("u", &[1; 32]).await.is_ok());
        std::fs::rename(dir.path().join("moved"), &a).unwrap();
        assert_eq!(kms.status().await.unwrap().healthz, "ok");
    }
}
