//! Reading the provider prefix of a stored value without any key.

/// The `k8s:enc:<provider>:<version>:<name>:` prefix of a stored value.
///
/// Key names may themselves contain `:`, and the read path matches configured prefixes byte by
/// byte, so [`StoredPrefix::name`] is only the part up to the first `:`. Use it for diagnostics,
/// never to pick a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredPrefix<'a> {
    provider: &'a str,
    version: &'a str,
    name: &'a [u8],
    payload: &'a [u8],
}

impl<'a> StoredPrefix<'a> {
    /// The provider segment, e.g. `aesgcm`, `secretbox` or `kms`.
    pub fn provider(&self) -> &'a str {
        self.provider
    }

    /// The version segment, e.g. `v1` (or `v2` for KMS v2).
    pub fn version(&self) -> &'a str {
        self.version
    }

    /// The key or KMS provider name, up to the first `:`.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// The bytes after the prefix.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Splits a stored value into its provider prefix and payload.
///
/// Returns `None` if the value does not start with `k8s:enc:` (an unencrypted value), or if the
/// provider and version segments are not lower-case ASCII letters and digits each ended by `:`, or
/// if no `:` ends the name. Never panics, whatever the input.
pub fn parse_prefix(stored: &[u8]) -> Option<StoredPrefix<'_>> {
    let rest = stored.strip_prefix(ENCRYPTED_PREFIX)?;
    let (provider, rest) = split_segment(rest)?;
    let (version, rest) = split_segment(rest)?;
    let end = rest.iter().position(|&b| b == b':')?;
    let (name, rest) = rest.split_at(end);
    Some(StoredPrefix {
        provider,
        version,
        name,
        payload: rest.get(1..)?,
    })
}

/// Whether a value carries an encryption prefix; the identity provider refuses such values.
pub(crate) fn is_encrypted(value: &[u8]) -> bool {
    value.starts_with(ENCRYPTED_PREFIX)
}

/// Describes the prefix of a stored value for an error message: the provider, and the key name
/// only if it is short printable ASCII (see `TransformError::NoMatchingProvider`).
pub(crate) fn describe_stored(stored: &[u8]) -> String {
    if !is_encrypted(stored) {
        return "an unencrypted value".to_owned();
    }
    let Some(prefix) = parse_prefix(stored) else {
        return "a value with a malformed k8s:enc: prefix".to_owned();
    };
    let name = prefix.name();
    let name_is_printable = (1..=MAX_SHOWN_NAME).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match std::str::from_utf8(name) {
        Ok(name) if name_is_printable => format!(
            "a value encrypted by {} {} with key \"{name}\"",
            prefix.provider(),
            prefix.version()
        ),
        _ => format!(
            "a value encrypted by {} {}",
            prefix.provider(),
            prefix.version()
        ),
    }
}

fn split_segment(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = bytes.iter().position(|&b| b == b':')?;
    let (segment, rest) = bytes.split_at(end);
    if segment.is_empty()
        || !segment
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let segment = std::str::from_utf8(segment).ok()?;
    Some((segment, rest.get(1..)?))
}

pub(crate) const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
const MAX_SHOWN_NAME: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_provider_version_and_name() {
        let p = parse_prefix(b"k8s:enc:aesgcm:v1:key1:\x00\x01").unwrap();
        assert_eq!(p.provider(), "aesgcm");
        assert_eq!(p.version(), "v1");
        assert_eq!(p.name(), b"key1");
        assert_eq!(p.payload(), b"\x00\x01");
        let p = parse_prefix(b"k8s:enc:kms:v2:my:kms:").unwrap();
        assert_eq!(p.name(), b"my");
        assert_eq!(p.payload(), b"kms:");
    }

    #[test]
    fn rejects_what_is_not_a_prefix() {
        for value in [
            &b""[..],
            b"k8s\x00\x0a",
            b"{\"kind\":\"Secret\"}",
            b"k8s:enc:",
            b"k8s:enc:aesgcm",
            b"k8s:enc:aesgcm:v1",
            b"k8s:enc:aesgcm:v1:",
            b"k8s:enc:aesgcm:v1:key",
            b"k8s:enc::v1:key:",
            b"k8s:enc:AES:v1:key:",
            b"k8s:enc:\xff:v1:key:",
        ] {
            assert_eq!(parse_prefix(value), None, "{value:?}");
        }
    }

    #[test]
    fn never_panics_on_short_or_odd_input() {
        let prefix = b"k8s:enc:secretbox:v1:k:payload";
        for end in 0..=prefix.len() {
            let _ = parse_prefix(&prefix[..end]);
            let _ = describe_stored(&prefix[..end]);
        }
    }

    #[test]
    fn describe_hides_odd_names() {
        assert_eq!(
            describe_stored(b"k8s:enc:aesgcm:v1:key1:xx"),
            "a value encrypted by aesgcm v1 with key \"key1\""
        );
        assert_eq!(
            describe_stored(b"k8s:enc:aesgcm:v1:k\ney:xx"),
            "a value encrypted by aesgcm v1"
        );
        assert_eq!(describe_stored(b"k8s\x00"), "an unencrypted value");
    }
}
