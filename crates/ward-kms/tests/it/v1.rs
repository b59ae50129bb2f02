//! KMS v1, read only, against a real in-process `v1beta1.KeyManagementService` gRPC plugin on a
//! unix socket: values laid out as kube-apiserver writes them (GCM since 1.25, CBC before) decode
//! and are stale, tampering and unknown providers fail clearly, the DEK cache saves `Decrypt`
//! calls, a wrong plugin version is refused, and Ward refuses to write through v1.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ward_crypto::{BuildError, EncryptionConfig, KmsFailure, TransformError, Transformers};
use ward_kms::testing::{Wrap, serve};
use ward_kms::{KmsOptions, ManualClock};

use crate::{CANARY, vector_hex, vector_line};

const SECRETBOX_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// secretbox writes; the v1 provider `name` reads.
fn config_text(endpoint: &str, name: &str, v1_first: bool) -> String {
    let secretbox =
        format!("  - secretbox:\n      keys: [{{name: new, secret: {SECRETBOX_KEY}}}]\n");
    let v1 =
        format!("  - kms:\n      name: {name}\n      endpoint: {endpoint}\n      cachesize: 10\n");
    let providers = if v1_first {
        format!("{v1}{secretbox}")
    } else {
        format!("{secretbox}{v1}")
    };
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n{providers}"
    )
}

async fn build(endpoint: &str, name: &str) -> Transformers {
    let config =
        EncryptionConfig::from_bytes(config_text(endpoint, name, false).as_bytes(), "v1.yaml")
            .unwrap();
    let options = KmsOptions {
        clock: Arc::new(ManualClock::new()),
        poll: false,
    };
    let (transformers, v2) = ward_kms::transformers_from_config_with(config, &options)
        .await
        .unwrap();
    assert!(v2.is_empty(), "no v2 envelope");
    transformers
}

const AAD: &[u8] = b"/registry/secrets/default/legacy";

#[tokio::test]
async fn kube_apiserver_v1_values_decode_as_stale_and_rewrite_to_the_first_provider() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = serve(dir.path(), Wrap::Gcm([3; 32]), "v1beta1").await;
    let transformers = build(&plugin.endpoint, "legacy").await;
    let secrets = transformers.for_resource("", "secrets");
    assert_eq!(secrets.provider_name(), "secretbox");
    assert_eq!(
        secrets.describe(),
        "secretbox key \"new\", kms provider \"legacy\""
    );

    for gcm in [true, false] {
        let stored = plugin.kube_value("legacy", CANARY, AAD, gcm).await;
        let read = secrets.from_storage_async(&stored, AAD).await.unwrap();
        assert_eq!(read.plaintext.as_slice(), CANARY, "gcm={gcm}");
        assert!(read.stale, "a v1 read is always stale (gcm={gcm})");
        // Rewriting moves it to the first provider.
        let rewritten = secrets
            .to_storage_async(&read.plaintext, AAD)
            .await
            .unwrap();
        assert!(rewritten.starts_with(b"k8s:enc:secretbox:v1:new:"));
        let again = secrets.from_storage_async(&rewritten, AAD).await.unwrap();
        assert!(!again.stale);
    }
    // CBC (pre-1.25) has no AAD: the value reads under any key. GCM is bound to its key.
    let cbc = plugin.kube_value("legacy", CANARY, AAD, false).await;
    assert!(
        secrets
            .from_storage_async(&cbc, b"/elsewhere")
            .await
            .is_ok()
    );
    let gcm = plugin.kube_value("legacy", CANARY, AAD, true).await;
    let err = secrets
        .from_storage_async(&gcm, b"/registry/secrets/default/other")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("decryption failed"), "{err}");

    // Each DEK is decrypted once, then served from the cache.
    let before = plugin.decrypts.load(Ordering::SeqCst);
    for _ in 0..3 {
        secrets.from_storage_async(&gcm, AAD).await.unwrap();
    }
    assert_eq!(plugin.decrypts.load(Ordering::SeqCst), before);

    // Every plugin call is measured, under upstream's metric and method names.
    let text = ward_kms::metrics::render();
    assert!(
        text.contains(
            "apiserver_envelope_encryption_kms_operations_latency_seconds_count{\
             provider_name=\"legacy\",method_name=\"/v1beta1.KeyManagementService/Decrypt\",\
             grpc_status_code=\"OK\"}"
        ),
        "{text}"
    );
    assert!(text.contains("method_name=\"/v1beta1.KeyManagementService/Version\""));
    assert!(text.contains("apiserver_envelope_encryption_dek_cache_fill_percent "));
    plugin.stop().await;
}

#[tokio::test]
async fn independent_known_answer_vectors_decode() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = serve(dir.path(), Wrap::Base64, "v1beta1").await;
    let transformers = build(&plugin.endpoint, "legacy").await;
    let secrets = transformers.for_resource("", "secrets");
    for file in ["kmsv1-gcm-python.txt", "kmsv1-cbc-python.txt"] {
        let value = vector_hex(file, "etcd_value_hex");
        assert_eq!(
            value.len().to_string(),
            vector_line(file, "etcd_value_len"),
            "{file}"
        );
        let aad = vector_line(file, "etcd_key");
        let read = secrets
            .from_storage_async(&value, aad.as_bytes())
            .await
            .unwrap();
        assert_eq!(read.plaintext.as_slice(), vector_hex(file, "plaintext_hex"));
        assert!(read.stale);
    }
    plugin.stop().await;
}

#[tokio::test]
async fn tampered_values_unknown_providers_and_a_dead_plugin_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = serve(dir.path(), Wrap::Gcm([4; 32]), "v1beta1").await;
    let transformers = build(&plugin.endpoint, "legacy").await;
    let secrets = transformers.for_resource("", "secrets");
    let good = plugin.kube_value("legacy", CANARY, AAD, true).await;
    let prefix_len = b"k8s:enc:kms:v1:legacy:".len();
    let canary = String::from_utf8_lossy(&CANARY[4..]).into_owned();
    let kms_failure = |err: &TransformError| match err {
        TransformError::Decrypt { attempts } => {
            attempts.iter().next().unwrap().kms_failure().cloned()
        }
        other => panic!("{other:?}"),
    };

    // The data after the encrypted DEK altered: wrong tag (GCM) and bad padding (CBC).
    let mut data_flip = good.clone();
    *data_flip.last_mut().unwrap() ^= 1;
    let err = secrets
        .from_storage_async(&data_flip, AAD)
        .await
        .unwrap_err();
    assert_eq!(kms_failure(&err), Some(KmsFailure::Decrypt));
    assert!(err.to_string().contains("kms provider \"legacy\""), "{err}");

    // The encrypted DEK altered: the plugin refuses to unwrap it.
    let mut dek_flip = good.clone();
    dek_flip[prefix_len + 2 + 13] ^= 1;
    let err = secrets
        .from_storage_async(&dek_flip, AAD)
        .await
        .unwrap_err();
    assert!(
        matches!(kms_failure(&err), Some(KmsFailure::Plugin(m)) if m.contains("cannot unwrap")),
        "{err:?}"
    );

    // Truncated: the length prefix points past the end.
    let truncated = &good[..prefix_len + 10];
    let err = secrets
        .from_storage_async(truncated, AAD)
        .await
        .unwrap_err();
    assert!(
        matches!(kms_failure(&err), Some(KmsFailure::Malformed(_))),
        "{err:?}"
    );

    // A v1 provider that is not configured.
    let other = [b"k8s:enc:kms:v1:other:".as_slice(), &good[prefix_len..]].concat();
    let err = secrets.from_storage_async(&other, AAD).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no configured provider can read a value encrypted by kms v1 with key \"other\""
    );
    assert!(!format!("{err}{err:?}").contains(&canary));

    // The plugin gone: nothing cached for a new DEK, so the read fails and health says why.
    let fresh = plugin.kube_value("legacy", CANARY, AAD, true).await;
    plugin.stop().await;
    let err = secrets.from_storage_async(&fresh, AAD).await.unwrap_err();
    assert!(
        matches!(kms_failure(&err), Some(KmsFailure::Plugin(m)) if m.contains("Decrypt")),
        "{err:?}"
    );
    let health = transformers.kms_health().unwrap_err();
    assert!(
        health.contains("kms provider \"legacy\": kms v1 plugin:"),
        "{health}"
    );
    // ... while a value whose DEK is cached still reads.
    assert!(secrets.from_storage_async(&good, AAD).await.is_ok());
    for text in [format!("{err}"), format!("{err:?}"), health] {
        assert!(!text.contains(&canary), "{text}");
    }
}

#[tokio::test]
async fn a_plugin_that_is_not_v1beta1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = serve(dir.path(), Wrap::Base64, "v2").await;
    let transformers = build(&plugin.endpoint, "legacy").await;
    let value = vector_hex("kmsv1-gcm-python.txt", "etcd_value_hex");
    let err = transformers
        .for_resource("", "secrets")
        .from_storage_async(&value, b"/registry/secrets/default/kms-v1-vector")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("api version \"v2\" is not supported"),
        "{err}"
    );
    assert_eq!(
        plugin.decrypts.load(Ordering::SeqCst),
        0,
        "no Decrypt before Version"
    );
    plugin.stop().await;
}

#[tokio::test]
async fn ward_never_writes_kms_v1() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}", dir.path().join("absent.sock").display());
    let config =
        EncryptionConfig::from_bytes(config_text(&endpoint, "legacy", true).as_bytes(), "v1.yaml")
            .unwrap();
    let err = ward_kms::transformers_from_config(config)
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::KmsReadOnly { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "resources[0].providers[0].kms.apiVersion in v1.yaml: kms provider \"legacy\""
        ),
        "{text}"
    );
}
