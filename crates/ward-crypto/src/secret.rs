//! Wrapper types for key material.
//!
//! Policy (STYLE.md "Secrets in memory"): every byte of key material lives in a type that
//! zeroizes on drop, has a `Debug` that prints `[redacted]`, implements neither `Clone`,
//! `Display` nor `Serialize`, and is read only through a visible `expose_secret()`.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::{Zeroize, Zeroizing};

/// A 32-byte symmetric key, e.g. a secretbox or AES-256 key.
///
/// The bytes live on the heap (so moves do not leave copies on the stack) and are zeroized when
/// the value is dropped. `Debug` prints `SecretKey32([redacted])`.
pub struct SecretKey32(Box<[u8; 32]>);

impl SecretKey32 {
    /// Generates a fresh key from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`RandomError`] if the operating system cannot provide random bytes.
    pub fn generate() -> Result<Self, RandomError> {
        let mut key = Box::new([0u8; 32]);
        fill_random(key.as_mut_slice())?;
        Ok(Self(key))
    }

    /// Copies a key from `bytes`.
    ///
    /// Returns `None` if `bytes` is not exactly 32 bytes long. The caller still owns (and should
    /// zeroize) its own copy.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let mut key = Box::new([0u8; 32]);
        key.copy_from_slice(bytes);
        Some(Self(key))
    }

    /// Returns the raw key bytes. Every call site is a place where key material is read.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for SecretKey32 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretKey32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey32([redacted])")
    }
}

/// The operating system's random number generator failed.
#[derive(Debug)]
pub struct RandomError(rand::rand_core::OsError);

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operating system random number generator failed")
    }
}

impl std::error::Error for RandomError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

// === impl KeyMaterial ===

/// Decoded key bytes of a validated length (16, 24 or 32), held for a provider.
///
/// Crate-internal: the public surface only ever shows its length.
pub(crate) struct KeyMaterial(Zeroizing<Vec<u8>>);

impl KeyMaterial {
    /// Takes ownership of already-decoded key bytes.
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// Returns the raw key bytes.
    pub(crate) fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The key length in bytes (not secret).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial({} bytes, [redacted])", self.0.len())
    }
}

// === impl SecretText ===

/// A secret string read from a config file (e.g. the base64 `secret` of a key).
///
/// Deserializes from a string only; a value of another type is rejected without echoing it.
pub(crate) struct SecretText(Zeroizing<String>);

impl SecretText {
    /// Wraps a string (tests build config values directly).
    #[cfg(test)]
    pub(crate) fn new(text: &str) -> Self {
        Self(Zeroizing::new(text.to_owned()))
    }

    /// Returns the text.
    pub(crate) fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

impl<'de> serde::Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = SecretText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v)))
            }
        }

        deserializer.deserialize_string(Visitor)
    }
}

// === helpers ===

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    OsRng.try_fill_bytes(buf).map_err(RandomError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = SecretKey32::from_slice(&[0x41; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey32([redacted])");
        let material = KeyMaterial::new(Zeroizing::new(vec![0x41; 16]));
        assert_eq!(format!("{material:?}"), "KeyMaterial(16 bytes, [redacted])");
    }

    #[test]
    fn generate_gives_distinct_keys() {
        let a = SecretKey32::generate().unwrap();
        let b = SecretKey32::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(SecretKey32::from_slice(&[0; 31]).is_none());
    }
}
