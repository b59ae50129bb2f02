//! The file shape of an `EncryptionConfiguration`, as serde reads it.
//!
//! Everything that a rule constrains is optional or defaulted here, so that the rule is checked
//! in `TryFrom` with a precise field path instead of failing inside serde with only a line number.

use serde::{Deserialize, Deserializer};

use crate::secret::SecretText;

/// The whole document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawEncryptionConfiguration {
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) resources: Vec<RawResourceConfiguration>,
}

/// One element of `resources`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResourceConfiguration {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) resources: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) providers: Vec<RawProviderConfiguration>,
}

/// One element of `providers`: exactly one field must be set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProviderConfiguration {
    #[serde(default)]
    pub(crate) aescbc: Option<RawKeysConfiguration>,
    #[serde(default)]
    pub(crate) aesgcm: Option<RawKeysConfiguration>,
    #[serde(default)]
    pub(crate) identity: Option<RawIdentityConfiguration>,
    #[serde(default)]
    pub(crate) kms: Option<RawKmsConfiguration>,
    #[serde(default)]
    pub(crate) secretbox: Option<RawKeysConfiguration>,
}

/// `aescbc`, `aesgcm` and `secretbox`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeysConfiguration {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) keys: Vec<RawKey>,
}

/// One element of `keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKey {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) secret: Option<SecretText>,
}

/// `identity: {}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentityConfiguration {}

/// `kms`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawKmsConfiguration {
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// Go `metav1.Duration` text, e.g. `3s`.
    #[serde(default)]
    pub(crate) timeout: Option<String>,
    /// Spelled `cachesize` in the file (all lower case), as in Kubernetes.
    #[serde(default, rename = "cachesize")]
    pub(crate) cache_size: Option<i64>,
}

/// Reads `field:` with no value (YAML null) as an empty list, so that the "at least one" rule
/// reports it with its field path.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}
