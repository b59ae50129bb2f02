//! The PKCS#11 backend of `ward kms-plugin`: key-encryption keys that never leave an HSM.
//!
//! The KEKs are AES keys on a token (found by token label, then by key label; they should be
//! created with `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false). The plugin logs in as the
//! user with a PIN read from a file or the `WARD_KMS_PKCS11_PIN` environment variable, never from
//! a flag. Wrapping runs inside the token with one of two mechanisms ([`Pkcs11Mechanism`],
//! `--pkcs11-mechanism`); the first byte of the wrapped key says which, so Decrypt reads both
//! whatever the flag says now:
//!
//! - `aes-gcm` (default): `0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)` by `CKM_AES_GCM`, AAD
//!   `"ward-kms-plugin:v1:" ‖ key ID`: the key-file backend's format ([`crate::KeyFileKms`]).
//! - `aes-key-wrap-pad`: `0x02 ‖ RFC 5649 AES key wrap with padding` by `CKM_AES_KEY_WRAP_PAD`,
//!   8 bytes longer than the DEK or seed.
//!
//! `CKM_AES_KEY_WRAP_PAD` is for HSMs that wrap keys but offer no AEAD, or whose policy allows
//! only key wrapping. Modules offer it in `C_WrapKey` and `C_UnwrapKey`, often not in
//! `C_Encrypt` (SoftHSM 2.6 answers `CKR_MECHANISM_INVALID` there), so the DEK or seed is
//! imported as a session object (`CKO_SECRET_KEY`, `CKK_GENERIC_SECRET`, not on the token,
//! extractable), wrapped, and the object destroyed at once; Decrypt unwraps into such an object,
//! reads its value and destroys it. The DEK or seed must be a multiple of 8 bytes (KMS v2 sends
//! 32; SoftHSM 2.6 zero-pads other lengths before wrapping, which would change the key). The wrap
//! has no associated data: the key ID is bound only because another key fails the RFC 5649
//! integrity check (64 bits). The KEK needs `CKA_WRAP` and `CKA_UNWRAP` (checked at start for the
//! key that encrypts). SoftHSM's `CKM_AES_KEY_WRAP_PAD` is RFC 5649 (its output equals an
//! independent RFC 5649 implementation's); PKCS#11 3.0 also names RFC 5649
//! `CKM_AES_KEY_WRAP_KWP`, so another module's `_PAD` may differ: values then read back on that
//! module, not on another.
//!
//! Key IDs are configured (`KEY_ID=LABEL`) or derived: `pkcs11:` + the first 16 bytes, in hex,
//! of SHA-256 over a domain tag, the token serial number, the key label and the key's `CKA_ID`,
//! so a key re-created under the same label on another token gets another ID.
//!
//! Several key labels may be given: the first encrypts, all decrypt. Status checks the session and
//! every key object. If the session fails (token removed, HSM restarted, key object deleted) it
//! is dropped, Status reports the error as `healthz` (with the last key ID), and the next call
//! opens a new session, initializing the module again first if that fails, so the plugin
//! recovers when the token or the key returns.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::KmsError;
use crate::keyfile::{MAX_PLAINTEXT_LEN, NONCE_LEN, TAG_LEN, WRAP_AAD_PREFIX, WRAP_FORMAT_V1};
use crate::service::{KmsService, KmsStatus, WrappedKey, printable, validate_key_id};

/// One `--pkcs11-key-label` argument: `LABEL` or `KEY_ID=LABEL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11KeySpec {
    key_id: Option<String>,
    label: String,
}

impl Pkcs11KeySpec {
    /// Parses `LABEL` or `KEY_ID=LABEL`.
    ///
    /// # Errors
    ///
    /// [`KmsError::Usage`] for an empty label or an invalid key ID.
    pub fn parse(arg: &str) -> Result<Self, KmsError> {
        let (key_id, label) = match arg.split_once('=') {
            Some((id, label)) => (Some(id.to_owned()), label.to_owned()),
            None => (None, arg.to_owned()),
        };
        if label.is_empty() {
            return Err(KmsError::Usage(format!(
                "--pkcs11-key-label {arg:?}: expected LABEL or KEY_ID=LABEL"
            )));
        }
        if let Some(id) = &key_id {
            validate_key_id(id)
                .map_err(|e| KmsError::Usage(format!("--pkcs11-key-label {arg:?}: {e}")))?;
        }
        Ok(Self { key_id, label })
    }
}

/// How the token wraps DEKs and seeds (`--pkcs11-mechanism`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pkcs11Mechanism {
    /// `CKM_AES_GCM` with a random nonce and the key ID as AAD (format byte `0x01`).
    #[default]
    AesGcm,
    /// `CKM_AES_KEY_WRAP_PAD`, RFC 5649 (format byte `0x02`).
    AesKeyWrapPad,
}

impl fmt::Display for Pkcs11Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AesGcm => "aes-gcm",
            Self::AesKeyWrapPad => "aes-key-wrap-pad",
        })
    }
}

/// Where the PKCS#11 KEKs are.
pub struct Pkcs11Options {
    /// The PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the token holding the keys.
    pub token_label: String,
    /// The keys; the first encrypts.
    pub keys: Vec<Pkcs11KeySpec>,
    /// The user PIN.
    pub pin: AuthPin,
    /// How Encrypt wraps (Decrypt reads every mechanism).
    pub mechanism: Pkcs11Mechanism,
}

impl fmt::Debug for Pkcs11Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Options")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("keys", &self.keys)
            .field("pin", &"[redacted]")
            .field("mechanism", &self.mechanism)
            .finish()
    }
}

/// KEKs on a PKCS#11 token, as a [`KmsService`].
pub struct Pkcs11Kms {
    state: Arc<Mutex<State>>,
}

struct State {
    options: Pkcs11Options,
    context: Pkcs11,
    open: Option<OpenToken>,
    /// The key ID that encrypted when the token was last open, reported by Status while it
    /// is not.
    last_key_id: Option<String>,
}

struct OpenToken {
    session: Session,
    mechanism: Pkcs11Mechanism,
    /// (key ID, handle); never empty, the first encrypts.
    keys: Vec<(String, ObjectHandle)>,
}

impl Pkcs11Kms {
    /// Loads the module, logs in to the token and finds every key.
    ///
    /// # Errors
    ///
    /// [`KmsError::Usage`] when no key label is given; [`KmsError::Pkcs11`] when the module
    /// cannot be loaded, the token or a key is not found, or the PIN is refused.
    pub fn open(options: Pkcs11Options) -> Result<Self, KmsError> {
        if options.keys.is_empty() {
            return Err(KmsError::Usage(
                "at least one --pkcs11-key-label is required".to_owned(),
            ));
        }
        let context = Pkcs11::new(&options.module).map_err(ck("load the module"))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Another user of the module in this process initialized it first.
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(ck("initialize the module")(e)),
        }
        let mut state = State {
            options,
            context,
            open: None,
            last_key_id: None,
        };
        state.ensure_open()?;
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// The key ID of the key that encrypts, if the token is open.
    pub fn current_key_id(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .open
            .as_ref()
            .and_then(|open| open.keys.first())
            .map(|(id, _)| id.clone())
    }

    /// Runs `work` on the open token in a blocking thread, reopening it first if needed. A
    /// failure drops the session so that the next call starts afresh.
    async fn with_token<T: Send + 'static>(
        &self,
        work: impl FnOnce(&OpenToken) -> Result<T, KmsError> + Send + 'static,
    ) -> Result<T, KmsError> {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let open = state.ensure_open()?;
            let result = work(open);
            if matches!(result, Err(KmsError::Pkcs11 { .. })) {
                state.open = None;
            }
            result
        })
        .await
        .map_err(|_| KmsError::Pkcs11 {
            operation: "run",
            reason: "the PKCS#11 worker panicked".to_owned(),
        })?
    }
}

impl fmt::Debug for Pkcs11Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Pkcs11Kms")
            .field("options", &state.options)
            .field("open", &state.open.is_some())
            .finish()
    }
}

#[async_trait::async_trait]
impl KmsService for Pkcs11Kms {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        let result = self
            .with_token(|open| {
                open.session
                    .get_session_info()
                    .map_err(ck("check the session"))?;
                // Each key object must still be there (deleted, or its token gone, it fails).
                for (_, handle) in &open.keys {
                    open.session
                        .get_attributes(*handle, &[AttributeType::Class])
                        .map_err(ck("check the keys"))?;
                }
                // Invariant: `open_token` fails unless every one of the (non-empty) key
                // labels was found, so `keys` is never empty.
                Ok(open.keys[0].0.clone())
            })
            .await;
        match result {
            Ok(key_id) => Ok(KmsStatus {
                version: "v2".to_owned(),
                healthz: "ok".to_owned(),
                key_id,
            }),
            Err(e) => match self.last_key_id() {
                // The API server shows `healthz` as the reason and keeps polling.
                Some(key_id) => Ok(KmsStatus {
                    version: "v2".to_owned(),
                    healthz: e.to_string(),
                    key_id,
                }),
                // Never opened: there is no key ID to report, so the call fails, which the
                // API server treats as unhealthy too.
                None => Err(KmsError::Unhealthy(e.to_string())),
            },
        }
    }

    async fn encrypt(&self, _uid: &str, plaintext: &[u8]) -> Result<WrappedKey, KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(KmsError::InvalidRequest(format!(
                "plaintext must be 1 to {MAX_PLAINTEXT_LEN} bytes, got {}",
                plaintext.len()
            )));
        }
        let plaintext = Zeroizing::new(plaintext.to_vec());
        self.with_token(move |open| {
            // Invariant: `keys` is never empty (see `status`); the first key encrypts.
            let (key_id, handle) = &open.keys[0];
            let ciphertext = match open.mechanism {
                Pkcs11Mechanism::AesGcm => gcm_wrap(&open.session, *handle, key_id, &plaintext)?,
                Pkcs11Mechanism::AesKeyWrapPad => kwp_wrap(&open.session, *handle, &plaintext)?,
            };
            Ok(WrappedKey {
                ciphertext,
                key_id: key_id.clone(),
                annotations: Default::default(),
            })
        })
        .await
    }

    async fn decrypt(
        &self,
        _uid: &str,
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        validate_key_id(&wrapped.key_id).map_err(KmsError::InvalidRequest)?;
        let wrapped = wrapped.clone();
        self.with_token(move |open| {
            let key_id = &wrapped.key_id;
            let handle = open
                .keys
                .iter()
                .find(|(id, _)| id == key_id)
                .map(|(_, handle)| *handle)
                .ok_or_else(|| KmsError::UnknownKeyId(printable(key_id)))?;
            match wrapped.ciphertext.split_first() {
                Some((&WRAP_FORMAT_V1, rest)) => gcm_unwrap(&open.session, handle, key_id, rest),
                Some((&WRAP_FORMAT_KWP, rest)) => kwp_unwrap(&open.session, handle, key_id, rest),
                _ => Err(KmsError::Unwrap(printable(key_id))),
            }
        })
        .await
    }
}

impl Pkcs11Kms {
    fn last_key_id(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.last_key_id.clone()
    }
}

impl State {
    /// `C_Finalize` then `C_Initialize`: every session of this process on the module ends,
    /// which is fine for the plugin (its only user) and called only when no session is open.
    fn reinitialize(&mut self) -> Result<(), KmsError> {
        self.open = None;
        // A failure means it was not initialized; initializing is what matters.
        let _ = self.context.clone().finalize();
        match self
            .context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(ck("initialize the module again")(e)),
        }
    }

    fn ensure_open(&mut self) -> Result<&OpenToken, KmsError> {
        if self.open.is_none() {
            let open = match open_token(&self.context, &self.options) {
                Ok(open) => open,
                // A module may keep a token it lost as broken until it is initialized again
                // (SoftHSM does after its token directory comes back), so start it afresh and
                // try once more; the first error is the one worth reporting. A missing key or
                // a refused PIN is not the module's state and does not end other sessions.
                Err(
                    first @ KmsError::Pkcs11 {
                        operation:
                            "list the slots" | "read a token" | "find the token" | "open a session",
                        ..
                    },
                ) => {
                    self.reinitialize().map_err(|_| first)?;
                    open_token(&self.context, &self.options)?
                }
                Err(e) => return Err(e),
            };
            self.last_key_id = open.keys.first().map(|(id, _)| id.clone());
            self.open = Some(open);
        }
        // Invariant: set just above when it was `None`.
        self.open.as_ref().ok_or(KmsError::Pkcs11 {
            operation: "open the token",
            reason: "no session".to_owned(),
        })
    }
}

fn open_token(context: &Pkcs11, options: &Pkcs11Options) -> Result<OpenToken, KmsError> {
    let mut found = None;
    for slot in context
        .get_slots_with_token()
        .map_err(ck("list the slots"))?
    {
        let info = context.get_token_info(slot).map_err(ck("read a token"))?;
        if info.label().trim_end() == options.token_label {
            found = Some((slot, info.serial_number().trim_end().to_owned()));
            break;
        }
    }
    let Some((slot, serial)) = found else {
        return Err(KmsError::Pkcs11 {
            operation: "find the token",
            reason: format!("no token labelled {:?}", options.token_label),
        });
    };
    let session = context
        .open_ro_session(slot)
        .map_err(ck("open a session"))?;
    match session.login(UserType::User, Some(&options.pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(ck("log in")(e)),
    }
    let mut keys: Vec<(String, ObjectHandle)> = Vec::with_capacity(options.keys.len());
    for spec in &options.keys {
        let handles = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(spec.label.as_bytes().to_vec()),
            ])
            .map_err(ck("find the key"))?;
        let [handle] = handles.as_slice() else {
            return Err(KmsError::Pkcs11 {
                operation: "find the key",
                reason: format!(
                    "{} secret keys labelled {:?} on token {:?}; expected exactly one",
                    handles.len(),
                    spec.label,
                    options.token_label
                ),
            });
        };
        let key_id = match &spec.key_id {
            Some(id) => id.clone(),
            None => derived_key_id(&session, *handle, &serial, &spec.label)?,
        };
        if keys.iter().any(|(id, _)| *id == key_id) {
            return Err(KmsError::Usage(format!(
                "key label {:?}: key ID {key_id:?} is used by an earlier key",
                spec.label
            )));
        }
        if keys.is_empty() {
            check_can_wrap(&session, *handle, &spec.label, options.mechanism)?;
        }
        keys.push((key_id, *handle));
    }
    Ok(OpenToken {
        session,
        mechanism: options.mechanism,
        keys,
    })
}

fn derived_key_id(
    session: &Session,
    handle: ObjectHandle,
    serial: &str,
    label: &str,
) -> Result<String, KmsError> {
    let attributes = session
        .get_attributes(handle, &[AttributeType::Id])
        .map_err(ck("read the key's CKA_ID"))?;
    let id = attributes
        .iter()
        .find_map(|a| match a {
            Attribute::Id(id) => Some(id.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(b"ward-kms pkcs11 key id\0");
    for part in [serial.as_bytes(), label.as_bytes(), &id] {
        hasher.update((part.len() as u32).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("pkcs11:{hex}"))
}

/// Reads a PIN file (mode checked like key files, trailing newline trimmed).
///
/// # Errors
///
/// [`KmsError::KeyFile`] for an open mode or an empty PIN; [`KmsError::Io`] if unreadable.
pub(crate) fn read_pin_file(
    path: &Path,
    mode_check: ward_crypto::ModeCheck,
) -> Result<AuthPin, KmsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |e| KmsError::io(path.display().to_string(), e);
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode_check == ward_crypto::ModeCheck::Enforce && mode & 0o077 != 0 {
        return Err(KmsError::KeyFile {
            path: path.to_owned(),
            reason: format!(
                "mode {mode:o} lets group or others read the PIN; expected no 0o077 bits \
                 (chmod 600)"
            ),
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    let pin = text.trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        return Err(KmsError::KeyFile {
            path: path.to_owned(),
            reason: "the PIN file is empty".to_owned(),
        });
    }
    Ok(AuthPin::from(pin.to_owned()))
}

// === wrapping ===

/// `0x01 ‖ nonce ‖ AES-GCM(plaintext)`, AAD `"ward-kms-plugin:v1:" ‖ key ID`.
fn gcm_wrap(
    session: &Session,
    kek: ObjectHandle,
    key_id: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|_| KmsError::Random)?;
    let aad = [WRAP_AAD_PREFIX, key_id.as_bytes()].concat();
    let mut iv = nonce;
    let params =
        GcmParams::new(&mut iv, &aad, (TAG_LEN as u64 * 8).into()).map_err(ck("set up AES-GCM"))?;
    let sealed = session
        .encrypt(&Mechanism::AesGcm(params), kek, plaintext)
        .map_err(ck("encrypt"))?;
    let mut ciphertext = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    ciphertext.push(WRAP_FORMAT_V1);
    ciphertext.extend_from_slice(&nonce);
    ciphertext.extend_from_slice(&sealed);
    Ok(ciphertext)
}

/// Opens what [`gcm_wrap`] made (`rest` follows the format byte).
fn gcm_unwrap(
    session: &Session,
    kek: ObjectHandle,
    key_id: &str,
    rest: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let unwrap_error = || KmsError::Unwrap(printable(key_id));
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(unwrap_error());
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let aad = [WRAP_AAD_PREFIX, key_id.as_bytes()].concat();
    let mut iv = [0u8; NONCE_LEN];
    iv.copy_from_slice(nonce);
    let params =
        GcmParams::new(&mut iv, &aad, (TAG_LEN as u64 * 8).into()).map_err(ck("set up AES-GCM"))?;
    // An authentication failure is the caller's ciphertext, not a broken session.
    session
        .decrypt(&Mechanism::AesGcm(params), kek, sealed)
        .map(Zeroizing::new)
        .map_err(|_| unwrap_error())
}

/// `0x02 ‖ RFC 5649 wrap(plaintext)`: the plaintext becomes a short-lived session object that
/// `C_WrapKey` wraps, and is destroyed whatever the outcome.
///
/// Only lengths that are a multiple of 8 are accepted: SoftHSM 2.6 zero-pads a key to a multiple
/// of 8 before the RFC 5649 wrap and records the padded length, so the key would come back
/// longer than it went in. KMS v2 DEKs and seeds are 32 bytes.
fn kwp_wrap(session: &Session, kek: ObjectHandle, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
    if !plaintext.len().is_multiple_of(8) {
        return Err(KmsError::InvalidRequest(format!(
            "--pkcs11-mechanism aes-key-wrap-pad wraps keys of a multiple of 8 bytes, got {}",
            plaintext.len()
        )));
    }
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Value(plaintext.to_vec()),
    ];
    let created = session.create_object(&template);
    // Clear intermediates
    for attribute in &mut template {
        if let Attribute::Value(value) = attribute {
            value.zeroize();
        }
    }
    let object = created.map_err(ck("import the key to wrap"))?;
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, kek, object);
    let destroyed = session.destroy_object(object);
    let wrapped = wrapped.map_err(ck("wrap with CKM_AES_KEY_WRAP_PAD"))?;
    destroyed.map_err(ck("destroy the imported key"))?;
    let mut ciphertext = Vec::with_capacity(1 + wrapped.len());
    ciphertext.push(WRAP_FORMAT_KWP);
    ciphertext.extend_from_slice(&wrapped);
    Ok(ciphertext)
}

/// Opens what [`kwp_wrap`] made (`rest` follows the format byte): `C_UnwrapKey` into a
/// session object, read its value, destroy it.
fn kwp_unwrap(
    session: &Session,
    kek: ObjectHandle,
    key_id: &str,
    rest: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let unwrap_error = || KmsError::Unwrap(printable(key_id));
    // RFC 5649: at least two 64-bit blocks, a whole number of them.
    if rest.len() < 16 || !rest.len().is_multiple_of(8) {
        return Err(unwrap_error());
    }
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    // A failed integrity check is the caller's ciphertext (tampered, or another key's), not
    // a broken session.
    let object = session
        .unwrap_key(&Mechanism::AesKeyWrapPad, kek, rest, &template)
        .map_err(|_| unwrap_error())?;
    let read = session.get_attributes(object, &[AttributeType::Value]);
    let destroyed = session.destroy_object(object);
    let mut attributes = read.map_err(ck("read the unwrapped key"))?;
    let value = attributes.iter_mut().find_map(|a| match a {
        Attribute::Value(value) => Some(Zeroizing::new(std::mem::take(value))),
        _ => None,
    });
    destroyed.map_err(ck("destroy the unwrapped key"))?;
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| KmsError::Pkcs11 {
            operation: "read the unwrapped key",
            reason: "the module returned no CKA_VALUE".to_owned(),
        })
}

/// Checks that the key that encrypts is an AES key of 16, 24 or 32 bytes that allows the
/// configured mechanism.
fn check_can_wrap(
    session: &Session,
    handle: ObjectHandle,
    label: &str,
    mechanism: Pkcs11Mechanism,
) -> Result<(), KmsError> {
    let shape = session
        .get_attributes(handle, &[AttributeType::KeyType, AttributeType::ValueLen])
        .map_err(ck("read the key's type and length"))?;
    let key_type = shape.iter().find_map(|a| match a {
        Attribute::KeyType(t) => Some(*t),
        _ => None,
    });
    let len = shape.iter().find_map(|a| match a {
        Attribute::ValueLen(len) => Some(usize::from(*len)),
        _ => None,
    });
    if key_type != Some(KeyType::AES) {
        return Err(KmsError::Pkcs11 {
            operation: "check the key",
            reason: format!("key {label:?} is not an AES key (CKK_AES)"),
        });
    }
    if let Some(len) = len
        && !matches!(len, 16 | 24 | 32)
    {
        return Err(KmsError::Pkcs11 {
            operation: "check the key",
            reason: format!(
                "key {label:?} is {len} bytes; an AES key is 16, 24 or 32 (softhsm2-util \
                 --import --aes cuts a key file at its first newline or NUL byte)"
            ),
        });
    }
    let needed = match mechanism {
        Pkcs11Mechanism::AesGcm => [AttributeType::Encrypt, AttributeType::Decrypt],
        Pkcs11Mechanism::AesKeyWrapPad => [AttributeType::Wrap, AttributeType::Unwrap],
    };
    let attributes = session
        .get_attributes(handle, &needed)
        .map_err(ck("read the key's usage attributes"))?;
    let allowed = |wanted: AttributeType| {
        attributes.iter().any(|a| {
            a.attribute_type() == wanted
                && matches!(
                    a,
                    Attribute::Encrypt(true)
                        | Attribute::Decrypt(true)
                        | Attribute::Wrap(true)
                        | Attribute::Unwrap(true)
                )
        })
    };
    for wanted in needed {
        if !allowed(wanted) {
            return Err(KmsError::Pkcs11 {
                operation: "check the key",
                reason: format!(
                    "key {label:?} does not allow {wanted} (needed by --pkcs11-mechanism \
                     {mechanism}); create it with that attribute true or pick the other mechanism"
                ),
            });
        }
    }
    Ok(())
}

/// The format byte of [`kwp_wrap`]'s output.
const WRAP_FORMAT_KWP: u8 = 2;

fn ck(operation: &'static str) -> impl Fn(CkError) -> KmsError {
    move |e| KmsError::Pkcs11 {
        operation,
        reason: e.to_string(),
    }
}
