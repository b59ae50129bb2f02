//! The payload formats of the keyed providers, byte for byte as kube-apiserver writes them.
//!
//! | provider  | payload after the prefix                         | AAD          |
//! |-----------|--------------------------------------------------|--------------|
//! | aescbc    | IV(16) ‖ AES-CBC(plaintext ‖ PKCS#7 padding)     | none         |
//! | aesgcm    | nonce(12) ‖ ciphertext ‖ tag(16)                 | the etcd key |
//! | secretbox | nonce(24) ‖ Poly1305 tag(16) ‖ XSalsa20 ciphertext | none       |
//!
//! Plaintext is only ever handled in zeroizing buffers: sealing encrypts in place inside the
//! output buffer, which is wiped if anything fails, and opening decrypts into a
//! `Zeroizing<Vec<u8>>`.
//!
//! aescbc has no MAC; a failed padding check and a wrong key give the same
//! [`AttemptFailure::Decrypt`] so that callers cannot tell them apart.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadCore, AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;
use zeroize::Zeroizing;

use super::AttemptFailure;
use crate::secret::KeyMaterial;

/// The keyed payload formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cipher {
    AesCbc,
    AesGcm,
    Secretbox,
}

/// Sealing failed (only for plaintexts too large for the cipher, or an impossible key length).
#[derive(Debug)]
pub(crate) struct SealError;

impl Cipher {
    /// The length of the random IV or nonce that starts the payload.
    pub(crate) fn nonce_len(self) -> usize {
        match self {
            Self::AesCbc => CBC_IV_LEN,
            Self::AesGcm => GCM_NONCE_LEN,
            Self::Secretbox => SECRETBOX_NONCE_LEN,
        }
    }

    /// The provider name used in prefixes and messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::AesCbc => "aescbc",
            Self::AesGcm => "aesgcm",
            Self::Secretbox => "secretbox",
        }
    }

    /// Appends the payload for `plaintext` to `out`, using `nonce` (exactly
    /// [`Cipher::nonce_len`] bytes) as IV or nonce. `aad` is used by aesgcm only.
    ///
    /// `out` must be a zeroizing buffer: on error it may hold plaintext.
    pub(crate) fn seal_with_nonce(
        self,
        key: &KeyMaterial,
        nonce: &[u8],
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        if nonce.len() != self.nonce_len() {
            return Err(SealError);
        }
        let key = key.expose_secret();
        match self {
            Self::AesCbc => {
                let pad = BLOCK_LEN - plaintext.len() % BLOCK_LEN;
                out.reserve(nonce.len() + plaintext.len() + pad);
                out.extend_from_slice(nonce);
                let start = out.len();
                out.extend_from_slice(plaintext);
                // PKCS#7: `pad` bytes of value `pad`, 1..=16 (a full block when aligned).
                out.resize(out.len() + pad, pad as u8);
                let body = &mut out[start..];
                match key.len() {
                    16 => cbc_encrypt::<cbc::Encryptor<Aes128>>(key, nonce, body),
                    24 => cbc_encrypt::<cbc::Encryptor<Aes192>>(key, nonce, body),
                    32 => cbc_encrypt::<cbc::Encryptor<Aes256>>(key, nonce, body),
                    _ => Err(SealError),
                }
            }
            Self::AesGcm => {
                let nonce: [u8; GCM_NONCE_LEN] = nonce.try_into().map_err(|_| SealError)?;
                out.reserve(GCM_NONCE_LEN + plaintext.len() + TAG_LEN);
                out.extend_from_slice(&nonce);
                let start = out.len();
                out.extend_from_slice(plaintext);
                let body = &mut out[start..];
                let tag = match key.len() {
                    16 => gcm_seal::<Aes128Gcm>(key, nonce, aad, body),
                    24 => gcm_seal::<AesGcm<Aes192, U12>>(key, nonce, aad, body),
                    32 => gcm_seal::<Aes256Gcm>(key, nonce, aad, body),
                    _ => Err(SealError),
                }?;
                out.extend_from_slice(&tag);
                Ok(())
            }
            Self::Secretbox => {
                let nonce: [u8; SECRETBOX_NONCE_LEN] = nonce.try_into().map_err(|_| SealError)?;
                out.reserve(SECRETBOX_NONCE_LEN + TAG_LEN + plaintext.len());
                out.extend_from_slice(&nonce);
                let tag_start = out.len();
                // Placeholder for the tag, which NaCl puts before the ciphertext.
                out.resize(tag_start + TAG_LEN, 0);
                out.extend_from_slice(plaintext);
                let cipher = XSalsa20Poly1305::new_from_slice(key).map_err(|_| SealError)?;
                let tag = cipher
                    .encrypt_in_place_detached(
                        &GenericArray::from(nonce),
                        &[],
                        &mut out[tag_start + TAG_LEN..],
                    )
                    .map_err(|_| SealError)?;
                out[tag_start..tag_start + TAG_LEN].copy_from_slice(&tag);
                Ok(())
            }
        }
    }

    /// Decrypts a payload (the bytes after the prefix). `aad` is used by aesgcm only.
    pub(crate) fn open(
        self,
        key: &KeyMaterial,
        payload: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AttemptFailure> {
        let key = key.expose_secret();
        match self {
            Self::AesCbc => {
                let (iv, body) = payload
                    .split_at_checked(CBC_IV_LEN)
                    .ok_or(AttemptFailure::Malformed)?;
                if body.is_empty() || body.len() % BLOCK_LEN != 0 {
                    return Err(AttemptFailure::Malformed);
                }
                let mut buf = Zeroizing::new(body.to_vec());
                match key.len() {
                    16 => cbc_decrypt::<cbc::Decryptor<Aes128>>(key, iv, &mut buf),
                    24 => cbc_decrypt::<cbc::Decryptor<Aes192>>(key, iv, &mut buf),
                    32 => cbc_decrypt::<cbc::Decryptor<Aes256>>(key, iv, &mut buf),
                    _ => Err(AttemptFailure::Decrypt),
                }?;
                let len = unpad_pkcs7(&buf).ok_or(AttemptFailure::Decrypt)?;
                buf.truncate(len);
                Ok(buf)
            }
            Self::AesGcm => {
                if payload.len() < GCM_NONCE_LEN + TAG_LEN {
                    return Err(AttemptFailure::Malformed);
                }
                let (nonce, rest) = payload.split_at(GCM_NONCE_LEN);
                let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
                let nonce: [u8; GCM_NONCE_LEN] =
                    nonce.try_into().map_err(|_| AttemptFailure::Malformed)?;
                let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| AttemptFailure::Malformed)?;
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                match key.len() {
                    16 => gcm_open::<Aes128Gcm>(key, nonce, aad, &mut buf, tag),
                    24 => gcm_open::<AesGcm<Aes192, U12>>(key, nonce, aad, &mut buf, tag),
                    32 => gcm_open::<Aes256Gcm>(key, nonce, aad, &mut buf, tag),
                    _ => Err(AttemptFailure::Decrypt),
                }?;
                Ok(buf)
            }
            Self::Secretbox => {
                if payload.len() < SECRETBOX_NONCE_LEN + TAG_LEN {
                    return Err(AttemptFailure::Malformed);
                }
                let (nonce, rest) = payload.split_at(SECRETBOX_NONCE_LEN);
                let (tag, ciphertext) = rest.split_at(TAG_LEN);
                let nonce: [u8; SECRETBOX_NONCE_LEN] =
                    nonce.try_into().map_err(|_| AttemptFailure::Malformed)?;
                let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| AttemptFailure::Malformed)?;
                let cipher =
                    XSalsa20Poly1305::new_from_slice(key).map_err(|_| AttemptFailure::Decrypt)?;
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                cipher
                    .decrypt_in_place_detached(
                        &GenericArray::from(nonce),
                        &[],
                        buf.as_mut_slice(),
                        &GenericArray::from(tag),
                    )
                    .map_err(|_| AttemptFailure::Decrypt)?;
                Ok(buf)
            }
        }
    }
}

fn cbc_encrypt<E>(key: &[u8], iv: &[u8], body: &mut [u8]) -> Result<(), SealError>
where
    E: KeyIvInit + BlockEncryptMut,
{
    let encryptor = E::new_from_slices(key, iv).map_err(|_| SealError)?;
    let len = body.len();
    encryptor
        .encrypt_padded_mut::<NoPadding>(body, len)
        .map_err(|_| SealError)?;
    Ok(())
}

fn cbc_decrypt<D>(key: &[u8], iv: &[u8], body: &mut [u8]) -> Result<(), AttemptFailure>
where
    D: KeyIvInit + BlockDecryptMut,
{
    let decryptor = D::new_from_slices(key, iv).map_err(|_| AttemptFailure::Decrypt)?;
    decryptor
        .decrypt_padded_mut::<NoPadding>(body)
        .map_err(|_| AttemptFailure::Malformed)?;
    Ok(())
}

/// Go's check (aes.go `cbc.TransformFromStorage`): the last byte `c` must be in `1..=len` and the
/// last `c` bytes must all equal `c`. Like Go, it does not require `c <= 16`.
///
/// Returns the unpadded length, or `None` for bad padding. The comparison runs over all candidate
/// bytes without an early exit.
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

fn gcm_seal<A>(
    key: &[u8],
    nonce: [u8; GCM_NONCE_LEN],
    aad: &[u8],
    body: &mut [u8],
) -> Result<[u8; TAG_LEN], SealError>
where
    A: KeyInit + AeadInPlace + AeadCore<NonceSize = U12, TagSize = U16>,
{
    let cipher = A::new_from_slice(key).map_err(|_| SealError)?;
    let tag = cipher
        .encrypt_in_place_detached(&GenericArray::from(nonce), aad, body)
        .map_err(|_| SealError)?;
    Ok(tag.into())
}

fn gcm_open<A>(
    key: &[u8],
    nonce: [u8; GCM_NONCE_LEN],
    aad: &[u8],
    body: &mut [u8],
    tag: [u8; TAG_LEN],
) -> Result<(), AttemptFailure>
where
    A: KeyInit + AeadInPlace + AeadCore<NonceSize = U12, TagSize = U16>,
{
    let cipher = A::new_from_slice(key).map_err(|_| AttemptFailure::Decrypt)?;
    cipher
        .decrypt_in_place_detached(
            &GenericArray::from(nonce),
            aad,
            body,
            &GenericArray::from(tag),
        )
        .map_err(|_| AttemptFailure::Decrypt)
}

const BLOCK_LEN: usize = 16;
const CBC_IV_LEN: usize = 16;
const GCM_NONCE_LEN: usize = 12;
const SECRETBOX_NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
