//! The KMS v2 operations as a trait, so the envelope runs the same over gRPC
//! ([`crate::GrpcKmsClient`]) or in process ([`crate::KeyFileKms`], the plugin's own backend).
//!
//! Limits are kube-apiserver's (spec §4.1): ciphertext and key ID at most 1 KiB and non-empty;
//! annotation keys are DNS names (RFC 1123 subdomains); keys plus values at most 32 KiB.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::error::KmsError;

/// A KMS v2 plugin.
#[async_trait::async_trait]
pub trait KmsService: Send + Sync + fmt::Debug {
    /// `Status`: health, API version and current key ID.
    ///
    /// # Errors
    ///
    /// [`KmsError`] when the plugin cannot be reached or fails.
    async fn status(&self) -> Result<KmsStatus, KmsError>;

    /// `Encrypt`: wraps a DEK or seed under the current key.
    ///
    /// # Errors
    ///
    /// [`KmsError`] when the plugin cannot be reached or refuses.
    async fn encrypt(&self, uid: &str, plaintext: &[u8]) -> Result<WrappedKey, KmsError>;

    /// `Decrypt`: unwraps what [`Self::encrypt`] returned (possibly under an older key).
    ///
    /// # Errors
    ///
    /// [`KmsError`] when the plugin cannot be reached, does not know the key ID, or the
    /// ciphertext does not authenticate.
    async fn decrypt(
        &self,
        uid: &str,
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError>;
}

/// A `StatusResponse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsStatus {
    /// `v2` (or `v2beta1`).
    pub version: String,
    /// `ok` when healthy, otherwise why not.
    pub healthz: String,
    /// The current key ID.
    pub key_id: String,
}

/// A DEK or seed as the plugin wrapped it: `EncryptResponse`, and the inputs of `Decrypt`.
/// None of it is secret (it is stored in plain text next to every value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrappedKey {
    /// The plugin's ciphertext.
    pub ciphertext: Vec<u8>,
    /// The key ID it was wrapped under.
    pub key_id: String,
    /// The plugin's annotations.
    pub annotations: BTreeMap<String, Vec<u8>>,
}

/// The `version` values kube-apiserver accepts from `Status`.
pub const KMS_API_VERSIONS: [&str; 2] = ["v2", "v2beta1"];
/// The largest ciphertext and key ID, in bytes.
pub const MAX_FIELD_LEN: usize = 1024;
/// The largest total size of annotation keys and values, in bytes.
pub const MAX_ANNOTATIONS_LEN: usize = 32 * 1024;

/// Checks a key ID: non-empty, at most [`MAX_FIELD_LEN`] bytes.
pub(crate) fn validate_key_id(key_id: &str) -> Result<(), String> {
    if key_id.is_empty() {
        return Err("key_id is empty".to_owned());
    }
    if key_id.len() > MAX_FIELD_LEN {
        return Err(format!(
            "key_id is {} bytes, more than {MAX_FIELD_LEN}",
            key_id.len()
        ));
    }
    Ok(())
}

/// Checks a wrapped key's ciphertext, key ID and annotations.
pub(crate) fn validate_wrapped(wrapped: &WrappedKey) -> Result<(), String> {
    if wrapped.ciphertext.is_empty() {
        return Err("ciphertext is empty".to_owned());
    }
    if wrapped.ciphertext.len() > MAX_FIELD_LEN {
        return Err(format!(
            "ciphertext is {} bytes, more than {MAX_FIELD_LEN}",
            wrapped.ciphertext.len()
        ));
    }
    validate_key_id(&wrapped.key_id)?;
    validate_annotations(&wrapped.annotations)
}

/// Checks annotations: keys are DNS subdomains, keys plus values at most 32 KiB.
pub(crate) fn validate_annotations(annotations: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let mut total = 0usize;
    for (key, value) in annotations {
        if !is_dns_subdomain(key) {
            return Err(format!(
                "annotation key {:?} is not a fully qualified domain name",
                printable(key)
            ));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > MAX_ANNOTATIONS_LEN {
        return Err(format!(
            "annotations total {total} bytes, more than {MAX_ANNOTATIONS_LEN}"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain, as Kubernetes checks it: at most 253 characters, dot-separated labels of
/// lower-case letters, digits and `-`, each starting and ending with a letter or digit.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// A short, printable form of a plugin-supplied string for messages.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_rules() {
        let mut a = BTreeMap::new();
        a.insert("local-kek.kms.kubernetes.io".to_owned(), b"x".to_vec());
        assert!(validate_annotations(&a).is_ok());
        a.insert("Not_A_Name".to_owned(), vec![]);
        assert!(validate_annotations(&a).is_err());
        let mut big = BTreeMap::new();
        big.insert("a.example.com".to_owned(), vec![0; MAX_ANNOTATIONS_LEN]);
        assert!(validate_annotations(&big).is_err());
    }

    #[test]
    fn wrapped_limits() {
        let ok = WrappedKey {
            ciphertext: vec![1],
            key_id: "k".into(),
            annotations: BTreeMap::new(),
        };
        assert!(validate_wrapped(&ok).is_ok());
        let mut w = ok.clone();
        w.ciphertext = vec![];
        assert!(validate_wrapped(&w).is_err());
        let mut w = ok.clone();
        w.ciphertext = vec![0; MAX_FIELD_LEN + 1];
        assert!(validate_wrapped(&w).is_err());
        let mut w = ok;
        w.key_id = String::new();
        assert!(validate_wrapped(&w).is_err());
    }
}
