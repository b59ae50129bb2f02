//! The PKCS#11 backend of `ward kms-plugin`: key-encryption keys that never leave an HSM.
//!
//! The KEKs are AES keys on a token (found by token label, then by key label; they should be
//! created with `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false). The plugin logs in as the
//! user with a PIN read from a file or the `WARD_KMS_PKCS11_PIN` environment variable, never from
//! a flag. Wrapping is `CKM_AES_GCM` inside the token, in the same wrapped format as the key-file
//! backend ([`crate::KeyFileKms`]): `0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)`, AAD
//! `"ward-kms-plugin:v1:" ‖ key ID`.
//!
//! Key IDs are configured (`KEY_ID=LABEL`) or derived: `pkcs11:` + the first 16 bytes, in hex,
//! of SHA-256 over a domain tag, the token serial number, the key label and the key's `CKA_ID`,
//! so a key re-created under the same label on another token gets another ID.
//!
//! Several key labels may be given: the first encrypts, all decrypt. If the session fails (token
//! removed, HSM restarted) it is dropped, Status reports the error as `healthz`, and the next call
//! opens a new session, so the plugin recovers when the token returns.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

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
}

impl fmt::Debug for Pkcs11Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Options")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("keys", &self.keys)
            .field("pin", &"[redacted]")
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
}

struct OpenToken {
    session: Session,
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
            // Without a session there is no key ID to report: fail the call, which the API
            // server treats as unhealthy.
            Err(e) => Err(KmsError::Unhealthy(e.to_string())),
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
            let mut nonce = [0u8; NONCE_LEN];
            OsRng
                .try_fill_bytes(&mut nonce)
                .map_err(|_| KmsError::Random)?;
            let aad = [WRAP_AAD_PREFIX, key_id.as_bytes()].concat();
            let mut iv = nonce;
            let params = GcmParams::new(&mut iv, &aad, (TAG_LEN as u64 * 8).into())
                .map_err(ck("set up AES-GCM"))?;
            let sealed = open
                .session
                .encrypt(&Mechanism::AesGcm(params), *handle, &plaintext)
                .map_err(ck("encrypt"))?;
            let mut ciphertext = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
            ciphertext.push(WRAP_FORMAT_V1);
            ciphertext.extend_from_slice(&nonce);
            ciphertext.extend_from_slice(&sealed);
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
            let unwrap_error = || KmsError::Unwrap(printable(key_id));
            let Some((&WRAP_FORMAT_V1, rest)) = wrapped.ciphertext.split_first() else {
                return Err(unwrap_error());
            };
            if rest.len() < NONCE_LEN + TAG_LEN {
                return Err(unwrap_error());
            }
            let (nonce, sealed) = rest.split_at(NONCE_LEN);
            let aad = [WRAP_AAD_PREFIX, key_id.as_bytes()].concat();
            let mut iv = [0u8; NONCE_LEN];
            iv.copy_from_slice(nonce);
            let params = GcmParams::new(&mut iv, &aad, (TAG_LEN as u64 * 8).into())
                .map_err(ck("set up AES-GCM"))?;
            // An authentication failure is the caller's ciphertext, not a broken session.
            open.session
                .decrypt(&Mechanism::AesGcm(params), handle, sealed)
                .map(Zeroizing::new)
                .map_err(|_| unwrap_error())
        })
        .await
    }
}

impl State {
    fn ensure_open(&mut self) -> Result<&OpenToken, KmsError> {
        if self.open.is_none() {
            self.open = Some(open_token(&self.context, &self.options)?);
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
        keys.push((key_id, *handle));
    }
    Ok(OpenToken { session, keys })
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

fn ck(operation: &'static str) -> impl Fn(CkError) -> KmsError {
    move |e| KmsError::Pkcs11 {
        operation,
        reason: e.to_string(),
    }
}
