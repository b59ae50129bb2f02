//! The envelope metrics as `/metrics` shows them (`ward_kms::metrics::render`), after real
//! operations through the KMS v2 envelope: upstream's names and labels, plausible values, key IDs
//! only hashed.

use std::sync::Arc;

use ward_crypto::KmsTransformer as _;
use ward_kms::{KmsError, KmsService, KmsStatus, KmsV2Envelope, ManualClock, WrappedKey};
use zeroize::Zeroizing;

use crate::{AAD, Base64Kms, CANARY};

/// A plugin whose `Status` returns the given key ID (possibly invalid).
#[derive(Debug)]
struct StatusKeyId(String);

#[async_trait::async_trait]
impl KmsService for StatusKeyId {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        Ok(KmsStatus {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id: self.0.clone(),
        })
    }
    async fn encrypt(&self, _uid: &str, _plaintext: &[u8]) -> Result<WrappedKey, KmsError> {
        Err(KmsError::Unhealthy("no".into()))
    }
    async fn decrypt(&self, _: &str, _: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Err(KmsError::Unhealthy("no".into()))
    }
}

fn value_of(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[tokio::test]
async fn invalid_key_ids_from_status_are_counted_by_error() {
    let clock = Arc::new(ManualClock::new());
    for (name, key_id) in [
        ("metrics-empty", String::new()),
        ("metrics-long", "k".repeat(1025)),
    ] {
        let envelope = KmsV2Envelope::new(name, Arc::new(StatusKeyId(key_id)), clock.clone());
        assert!(envelope.probe().await.is_err());
        assert!(envelope.probe().await.is_err());
    }
    let text = ward_kms::metrics::render();
    let series = "apiserver_envelope_encryption_invalid_key_id_from_status_total";
    assert_eq!(
        value_of(
            &text,
            &format!("{series}{{provider_name=\"metrics-empty\",error=\"empty\"}}")
        ),
        2.0
    );
    assert_eq!(
        value_of(
            &text,
            &format!("{series}{{provider_name=\"metrics-long\",error=\"too_long\"}}")
        ),
        2.0
    );
    assert!(
        !text.contains(&"k".repeat(64)),
        "the key ID itself is never shown"
    );
}

#[tokio::test]
async fn reads_writes_and_status_are_recorded_with_hashed_key_ids() {
    let key_id = "metrics-key-id-visible-only-hashed";
    let envelope = KmsV2Envelope::new(
        "metrics-v2",
        Arc::new(Base64Kms {
            key_id: key_id.to_owned(),
        }),
        Arc::new(ManualClock::new()),
    );
    envelope.probe().await.unwrap();
    let payload = envelope.seal(CANARY, AAD).await.unwrap();
    for _ in 0..3 {
        envelope.open(&payload, AAD).await.unwrap();
    }
    let text = ward_kms::metrics::render();
    assert!(!text.contains(key_id), "{text}");
    let total = "apiserver_envelope_encryption_key_id_hash_total{";
    let write = format!("{total}transformation_type=\"to_storage\",provider_name=\"metrics-v2\"");
    let read = format!("{total}transformation_type=\"from_storage\",provider_name=\"metrics-v2\"");
    assert_eq!(value_of(&text, &write), 1.0);
    assert_eq!(value_of(&text, &read), 3.0);
    let line = text.lines().find(|l| l.starts_with(&write)).unwrap();
    assert!(line.contains("key_id_hash=\"sha256:"), "{line}");
    assert!(line.contains("apiserver_id_hash=\"sha256:"), "{line}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let status_at = value_of(
        &text,
        "apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{provider_name=\"metrics-v2\"",
    );
    assert!((now - status_at).abs() < 60.0, "{status_at} vs {now}");
    // The new seed is cached when made, so the reads miss nothing for this provider.
    assert_eq!(
        value_of(
            &text,
            "apiserver_envelope_encryption_dek_source_cache_size{provider_name=\"metrics-v2\"}"
        ),
        1.0
    );
    assert!(
        value_of(
            &text,
            "apiserver_storage_data_key_generation_duration_seconds_count"
        ) >= 1.0
    );
}
