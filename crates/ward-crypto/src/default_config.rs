//! The configuration Ward writes on its first start, so that encryption needs no setup.
//!
//! It encrypts `secrets` and `configmaps` with secretbox under one fresh 32-byte key named
//! `ward-<YYYYMMDD>` (the UTC creation date), followed by `identity: {}` so that values stored in
//! plaintext before encryption was turned on stay readable (and are reported stale, so they get
//! rewritten encrypted).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use zeroize::Zeroizing;

use crate::secret::{RandomError, SecretKey32};

/// Generates a fresh key and returns the default configuration text for today's date.
///
/// The caller should write it to a file of mode 0600 and load that file with
/// [`crate::load_encryption_config`].
///
/// # Errors
///
/// [`RandomError`] if the operating system cannot provide random bytes.
pub fn generate_default_config() -> Result<Zeroizing<String>, RandomError> {
    let key = SecretKey32::generate()?;
    Ok(default_config_yaml(&key, SystemTime::now()))
}

/// Returns the default configuration text for `key`, naming the key after the UTC date of
/// `created` (`ward-20261126`). A time before 1970 is taken as 1970-01-01.
pub fn default_config_yaml(key: &SecretKey32, created: SystemTime) -> Zeroizing<String> {
    let days = created
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (year, month, day) = civil_from_days(days);
    let before = format!(
        "# Encryption at rest for Ward, generated on first start on {year:04}-{month:02}-{day:02}.\n\
         # Format: kube-apiserver's EncryptionConfiguration. This file holds a key: keep it\n\
         # private (mode 0600) and back it up; without it, encrypted values cannot be read.\n\
         # The first provider encrypts new writes; identity keeps values that were stored in\n\
         # plaintext before encryption was enabled readable until they are rewritten.\n\
         apiVersion: apiserver.config.k8s.io/v1\n\
         kind: EncryptionConfiguration\n\
         resources:\n\
         \x20 - resources:\n\
         \x20     - secrets\n\
         \x20     - configmaps\n\
         \x20   providers:\n\
         \x20     - secretbox:\n\
         \x20         keys:\n\
         \x20           - name: ward-{year:04}{month:02}{day:02}\n\
         \x20             secret: \""
    );
    let after = "\"\n      - identity: {}\n";

    // Encode into a zeroizing buffer, and reserve the whole text up front so that the output
    // never reallocates and leaves a copy of the key behind.
    let mut encoded = Zeroizing::new([0u8; BASE64_KEY_LEN]);
    let len = base64::engine::general_purpose::STANDARD
        .encode_slice(key.expose_secret(), encoded.as_mut_slice())
        .unwrap_or(0);
    let mut out = Zeroizing::new(String::with_capacity(before.len() + len + after.len()));
    out.push_str(&before);
    // Base64 output is ASCII, so each byte is one char.
    for &b in &encoded[..len] {
        out.push(char::from(b));
    }
    out.push_str(after);
    out
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Length of the padded base64 of 32 bytes.
const BASE64_KEY_LEN: usize = 44;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // 2026-11-26 is day 20_783.
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
    }

    #[test]
    fn yaml_names_the_key_after_the_date() {
        let key = SecretKey32::from_slice(&[7; 32]).unwrap();
        let created = UNIX_EPOCH + Duration::from_secs(20_783 * 86_400 + 3600);
        let yaml = default_config_yaml(&key, created);
        assert!(yaml.contains("- name: ward-20261126\n"), "{}", *yaml);
        assert!(yaml.contains("generated on first start on 2026-11-26."));
        let encoded = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(yaml.contains(&format!("secret: \"{encoded}\"\n")));
        assert!(yaml.ends_with("      - identity: {}\n"));
        assert_eq!(yaml.capacity(), yaml.len(), "the buffer never grew");
    }
}
