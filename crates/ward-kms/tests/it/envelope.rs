//! The KMS v2 envelope through `ward_crypto` transformers and a real plugin: round trips,
//! rotation, plugin outages, seed expiry, tampering and timeouts.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use ward_crypto::{KmsFailure, TransformError};
use ward_kms::proto::v2::{EncryptedDekSourceType, EncryptedObject};
use ward_kms::{KmsError, KmsService, KmsStatus, WRITE_SEED_TTL, WrappedKey};
use zeroize::Zeroizing;

use crate::*;

const PREFIX: &[u8] = b"k8s:enc:kms:v2:ward-kms:";

fn object(stored: &[u8]) -> EncryptedObject {
    EncryptedObject::decode(stored.strip_prefix(PREFIX).unwrap()).unwrap()
}

fn assert_no_secret(text: &str) {
    let canary = String::from_utf8_lossy(&CANARY[4..]).into_owned();
    assert!(!text.contains(&canary), "plaintext leaked: {text}");
}

#[tokio::test]
async fn round_trip_through_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let key = key_file(dir.path(), "kek-1", 1);
    let (plugin, key_id) = key_file_plugin(&listen, &[&key]).await;
    let (transformers, envelope, _clock) = build(config("ward-kms", &listen, "3s")).await;
    assert_eq!(envelope.current_key_id().as_deref(), Some(key_id.as_str()));
    assert!(transformers.kms_health().is_ok());

    let secrets = transformers.for_resource("", "secrets");
    assert_eq!(secrets.provider_name(), "kms");
    let stored = secrets.to_storage_async(CANARY, AAD).await.unwrap();
    let obj = object(&stored);
    assert_eq!(obj.key_id, key_id);
    assert_eq!(
        obj.encrypted_dek_source_type,
        EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32
    );
    assert_eq!(obj.encrypted_data.len(), 32 + 12 + CANARY.len() + 16);
    let read = secrets.from_storage_async(&stored, AAD).await.unwrap();
    assert_eq!(read.plaintext.as_slice(), CANARY);
    assert!(!read.stale);

    // Two writes share the seed but not info or nonce.
    let again = secrets.to_storage_async(CANARY, AAD).await.unwrap();
    assert_eq!(
        object(&again).encrypted_dek_source,
        obj.encrypted_dek_source
    );
    assert_ne!(
        object(&again).encrypted_data[..44],
        obj.encrypted_data[..44]
    );

    // The sync API refuses kms clearly instead of blocking.
    let err = secrets.to_storage(CANARY, AAD).unwrap_err();
    assert!(err.to_string().contains("async"), "{err}");
    plugin.shutdown().await.unwrap();
}

#[tokio::test]
async fn key_rotation_makes_a_new_seed_and_old_values_stale() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let old_key = key_file(dir.path(), "kek-1", 1);
    let new_key = key_file(dir.path(), "kek-2", 2);
    let (plugin, old_id) = key_file_plugin(&listen, &[&old_key]).await;
    let (transformers, envelope, _clock) = build(config("ward-kms", &listen, "3s")).await;
    let secrets = transformers.for_resource("", "secrets");
    let old_value = secrets.to_storage_async(CANARY, AAD).await.unwrap();

    // Restart the plugin with the new key first and the old one kept for decryption.
    plugin.shutdown().await.unwrap();
    let (plugin, new_id) = key_file_plugin(&listen, &[&new_key, &old_key]).await;
    assert_ne!(old_id, new_id);
    envelope.probe().await.unwrap();
    assert_eq!(envelope.current_key_id().as_deref(), Some(new_id.as_str()));

    let read = secrets.from_storage_async(&old_value, AAD).await.unwrap();
    assert_eq!(read.plaintext.as_slice(), CANARY);
    assert!(read.stale, "a value under the old key ID is stale");

    let new_value = secrets.to_storage_async(CANARY, AAD).await.unwrap();
    assert_eq!(object(&new_value).key_id, new_id);
    assert_ne!(
        object(&new_value).encrypted_dek_source,
        object(&old_value).encrypted_dek_source,
        "a new seed"
    );
    let read = secrets.from_storage_async(&new_value, AAD).await.unwrap();
    assert!(!read.stale);
    plugin.shutdown().await.unwrap();
}

#[tokio::test]
async fn plugin_down_reads_keep_working_and_writes_expire() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let key = key_file(dir.path(), "kek-1", 1);
    let (plugin, _) = key_file_plugin(&listen, &[&key]).await;
    let (transformers, envelope, clock) = build(config("ward-kms", &listen, "1s")).await;
    let secrets = transformers.for_resource("", "secrets");
    let stored = secrets.to_storage_async(CANARY, AAD).await.unwrap();
    plugin.shutdown().await.unwrap();

    // Status fails; the seed is still good for up to 3 minutes after the last good Status.
    assert!(envelope.probe().await.is_err());
    assert!(transformers.kms_health().is_err());
    clock.advance(WRITE_SEED_TTL - Duration::from_secs(1));
    let written_while_down = secrets.to_storage_async(CANARY, AAD).await.unwrap();

    clock.advance(Duration::from_secs(2));
    let err = secrets.to_storage_async(CANARY, AAD).await.unwrap_err();
    match &err {
        TransformError::Kms {
            failure: KmsFailure::NotReady(why),
            ..
        } => assert!(why.contains("expired"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_no_secret(&err.to_string());

    // Cached seeds still read.
    for value in [&stored, &written_while_down] {
        let read = secrets.from_storage_async(value, AAD).await.unwrap();
        assert_eq!(read.plaintext.as_slice(), CANARY);
    }

    // The plugin comes back: the next good Status revives writes with the same seed.
    let (plugin, _) = key_file_plugin(&listen, &[&key]).await;
    envelope.probe().await.unwrap();
    let revived = secrets.to_storage_async(CANARY, AAD).await.unwrap();
    assert_eq!(
        object(&revived).encrypted_dek_source,
        object(&stored).encrypted_dek_source
    );
    assert!(transformers.kms_health().is_ok());
    plugin.shutdown().await.unwrap();
}

/// `/healthz/kms-providers` (through `Transformers::kms_health_checked`) trusts a good Status
/// for 20 s and a failed one for 3 s, then asks the plugin again, as kube-apiserver's probe does.
#[tokio::test]
async fn the_health_check_asks_the_plugin_once_its_last_answer_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let key = key_file(dir.path(), "kek-1", 1);
    let (plugin, _) = key_file_plugin(&listen, &[&key]).await;
    let (transformers, _envelope, clock) = build(config("ward-kms", &listen, "1s")).await;
    assert!(transformers.kms_health_checked().await.is_ok());
    plugin.shutdown().await.unwrap();
    // Within 20 s of the last good Status the answer stands, without a call.
    clock.advance(Duration::from_secs(19));
    assert!(transformers.kms_health_checked().await.is_ok());
    // Older: the plugin is asked, and it is gone.
    clock.advance(Duration::from_secs(2));
    let why = transformers.kms_health_checked().await.unwrap_err();
    assert!(why.contains("ward-kms"), "{why}");
    // It comes back: a failure is trusted for 3 s only.
    let (plugin, _) = key_file_plugin(&listen, &[&key]).await;
    clock.advance(Duration::from_secs(1));
    assert!(transformers.kms_health_checked().await.is_err());
    clock.advance(Duration::from_secs(3));
    assert!(transformers.kms_health_checked().await.is_ok());
    plugin.shutdown().await.unwrap();
}

#[tokio::test]
async fn tampering_wrong_aad_and_wrong_key_id_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let key = key_file(dir.path(), "kek-1", 1);
    let (plugin, _) = key_file_plugin(&listen, &[&key]).await;
    let (transformers, _envelope, _clock) = build(config("ward-kms", &listen, "3s")).await;
    let secrets = transformers.for_resource("", "secrets");
    let stored = secrets.to_storage_async(CANARY, AAD).await.unwrap();
    let encode = |obj: &EncryptedObject| [PREFIX, &obj.encode_to_vec()].concat();

    let mut cases: Vec<(&str, Vec<u8>, &[u8], &str)> = Vec::new();
    cases.push((
        "wrong aad",
        stored.clone(),
        b"/registry/secrets/default/x",
        "decryption failed",
    ));
    let mut obj = object(&stored);
    let last = obj.encrypted_data.len() - 1;
    obj.encrypted_data[last] ^= 1;
    cases.push(("tampered data", encode(&obj), AAD, "decryption failed"));
    let mut obj = object(&stored);
    obj.key_id = "kek-that-does-not-exist".into();
    cases.push(("unknown key id", encode(&obj), AAD, "unknown key_id"));
    let mut obj = object(&stored);
    obj.encrypted_dek_source[3] ^= 1;
    cases.push((
        "tampered DEK source",
        encode(&obj),
        AAD,
        "does not authenticate",
    ));
    let mut obj = object(&stored);
    obj.encrypted_dek_source_type = 9;
    cases.push(("unknown type", encode(&obj), AAD, "encryptedDEKSourceType"));
    cases.push((
        "truncated",
        stored[..stored.len() / 2].to_vec(),
        AAD,
        "EncryptedObject",
    ));
    cases.push((
        "garbage",
        [PREFIX, b"\xff\xff\xff"].concat(),
        AAD,
        "EncryptedObject",
    ));

    for (what, value, aad, expected) in cases {
        let err = secrets.from_storage_async(&value, aad).await.unwrap_err();
        let text = format!("{err} / {err:?}");
        assert!(text.contains(expected), "{what}: {text}");
        assert!(text.contains("kms provider \"ward-kms\""), "{what}: {text}");
        assert_no_secret(&text);
    }
    plugin.shutdown().await.unwrap();
}

#[tokio::test]
async fn starts_without_the_plugin_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    // Like kube-apiserver: building succeeds, the provider is unhealthy and writes fail.
    let (transformers, envelope, _clock) = build(config("ward-kms", &listen, "500ms")).await;
    let health = transformers.kms_health().unwrap_err();
    assert!(health.contains("ward-kms"), "{health}");
    let secrets = transformers.for_resource("", "secrets");
    let err = secrets.to_storage_async(CANARY, AAD).await.unwrap_err();
    assert!(err.to_string().contains("no write seed yet"), "{err}");
    // Unencrypted data (identity is listed second) still reads.
    let read = secrets.from_storage_async(CANARY, AAD).await.unwrap();
    assert!(read.stale);

    let key = key_file(dir.path(), "kek-1", 1);
    let (plugin, _) = key_file_plugin(&listen, &[&key]).await;
    envelope.probe().await.unwrap();
    assert!(secrets.to_storage_async(CANARY, AAD).await.is_ok());
    plugin.shutdown().await.unwrap();
}

/// A plugin that never answers Status in time.
#[derive(Debug)]
struct Stuck;

#[async_trait::async_trait]
impl KmsService for Stuck {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Err(KmsError::Random)
    }
    async fn encrypt(&self, _: &str, _: &[u8]) -> Result<WrappedKey, KmsError> {
        Err(KmsError::Random)
    }
    async fn decrypt(&self, _: &str, _: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Err(KmsError::Random)
    }
}

#[tokio::test]
async fn calls_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let plugin = ward_kms::start_plugin(&listen, Arc::new(Stuck))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (_transformers, envelope, _clock) = build(config("ward-kms", &listen, "200ms")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = envelope.probe().await.unwrap_err();
    assert!(
        matches!(
            err,
            KmsError::Timeout {
                method: "Status",
                ..
            }
        ),
        "{err}"
    );
    drop(plugin);
}

/// A plugin whose Encrypt answers another key ID than Status.
#[derive(Debug)]
struct Inconsistent;

#[async_trait::async_trait]
impl KmsService for Inconsistent {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        Ok(KmsStatus {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id: "a".into(),
        })
    }
    async fn encrypt(&self, _: &str, _: &[u8]) -> Result<WrappedKey, KmsError> {
        Ok(WrappedKey {
            ciphertext: vec![1],
            key_id: "b".into(),
            annotations: Default::default(),
        })
    }
    async fn decrypt(&self, _: &str, _: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Err(KmsError::Random)
    }
}

#[tokio::test]
async fn encrypt_key_id_must_match_status() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let plugin = ward_kms::start_plugin(&listen, Arc::new(Inconsistent))
        .await
        .unwrap();
    let (_transformers, envelope, _clock) = build(config("ward-kms", &listen, "3s")).await;
    let err = envelope.probe().await.unwrap_err().to_string();
    assert!(err.contains("differs from Status key_id"), "{err}");
    assert_eq!(envelope.current_key_id(), None);
    plugin.shutdown().await.unwrap();
}

#[tokio::test]
async fn kms_v1_as_the_writing_provider_is_refused_with_a_clear_message() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms:\n      name: old\n      endpoint: unix:///tmp/nope.sock\n";
    let config = EncryptionConfig::from_bytes(yaml.as_bytes(), "v1.yaml").unwrap();
    let err = ward_kms::transformers_from_config(config)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("v1.yaml") && text.contains("uses KMS v1, which Ward only reads"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn polling_runs_every_minute_when_healthy_and_every_10s_when_not() {
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);
    #[async_trait::async_trait]
    impl KmsService for Counting {
        async fn status(&self) -> Result<KmsStatus, KmsError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(KmsError::Random)
        }
        async fn encrypt(&self, _: &str, _: &[u8]) -> Result<WrappedKey, KmsError> {
            Err(KmsError::Random)
        }
        async fn decrypt(&self, _: &str, _: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
            Err(KmsError::Random)
        }
    }
    let service = Arc::new(Counting::default());
    let envelope = KmsV2Envelope::new("p", service.clone(), Arc::new(ward_kms::SystemClock));
    envelope.start_polling();
    // Unhealthy (never reached): every 10 s.
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(service.0.load(std::sync::atomic::Ordering::SeqCst), 3);
    drop(envelope);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        service.0.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "polling stops with the envelope"
    );
}
