//! Transformers: round trips, resource matching, read order, stale flag, identity rules.

use ward_crypto::{AttemptFailure, ProviderKind, TransformError, Transformers};

use crate::{IDENTITY, b64, config_yaml, keyed_provider, transformers};

const AAD: &[u8] = b"/registry/secrets/default/db";
const VALUE: &[u8] = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret...";

fn secrets(t: &Transformers) -> &ward_crypto::ResourceTransformer {
    t.for_resource("", "secrets")
}

#[test]
fn every_provider_and_key_size_round_trips() {
    let large = vec![0xab; 1 << 20];
    for (provider, sizes) in [
        ("aescbc", &[16, 24, 32][..]),
        ("aesgcm", &[16, 24, 32]),
        ("secretbox", &[32]),
    ] {
        for &size in sizes {
            let key = b64(&vec![size as u8; size]);
            let t = transformers(&config_yaml(
                "secrets",
                &keyed_provider(provider, &[("k1", &key)]),
            ));
            let rt = secrets(&t);
            assert_eq!(rt.provider_name(), provider);
            assert!(rt.is_secure());
            for plaintext in [VALUE, b"", &large[..]] {
                let stored = rt.to_storage(plaintext, AAD).unwrap();
                let prefix = format!("k8s:enc:{provider}:v1:k1:");
                assert!(stored.starts_with(prefix.as_bytes()), "{provider}");
                let payload_len = stored.len() - prefix.len();
                let expected_len = match provider {
                    "aescbc" => 16 + (plaintext.len() / 16 + 1) * 16,
                    "aesgcm" => 12 + plaintext.len() + 16,
                    _ => 24 + 16 + plaintext.len(),
                };
                assert_eq!(payload_len, expected_len, "{provider}-{size}");
                if !plaintext.is_empty() {
                    assert!(
                        !stored
                            .windows(plaintext.len().min(16))
                            .any(|w| w == &plaintext[..plaintext.len().min(16)]),
                        "{provider}: plaintext visible in stored value"
                    );
                }
                let read = rt.from_storage(&stored, AAD).unwrap();
                assert_eq!(read.plaintext.as_slice(), plaintext, "{provider}-{size}");
                assert!(!read.stale);
            }
        }
    }
}

#[test]
fn aad_binds_gcm_only() {
    let other = b"/registry/secrets/default/other";
    for (provider, binds) in [("aesgcm", true), ("aescbc", false), ("secretbox", false)] {
        let t = transformers(&config_yaml(
            "secrets",
            &keyed_provider(provider, &[("k", &b64(&[1; 32]))]),
        ));
        let stored = secrets(&t).to_storage(VALUE, AAD).unwrap();
        let result = secrets(&t).from_storage(&stored, other);
        assert_eq!(result.is_err(), binds, "{provider}");
    }
}

#[test]
fn wrong_key_fails_for_every_provider() {
    for provider in ["aescbc", "aesgcm", "secretbox"] {
        let right = transformers(&config_yaml(
            "secrets",
            &keyed_provider(provider, &[("k", &b64(&[1; 32]))]),
        ));
        let wrong = transformers(&config_yaml(
            "secrets",
            &keyed_provider(provider, &[("k", &b64(&[2; 32]))]),
        ));
        let stored = secrets(&right).to_storage(VALUE, AAD).unwrap();
        let err = match secrets(&wrong).from_storage(&stored, AAD) {
            Err(err) => err,
            // aescbc has no MAC: with probability about 1/256 a wrong key yields garbage that
            // happens to be validly padded.
            Ok(read) if provider == "aescbc" => {
                assert_ne!(read.plaintext.as_slice(), VALUE);
                continue;
            }
            Ok(_) => panic!("{provider}: read with the wrong key"),
        };
        match &err {
            TransformError::Decrypt { attempts } => {
                let attempts: Vec<_> = attempts.iter().collect();
                assert_eq!(attempts.len(), 1);
                assert_eq!(attempts[0].provider(), provider);
                assert_eq!(attempts[0].key_name(), "k");
                // For aescbc, bad padding is reported the same way as a failed MAC.
                assert_eq!(attempts[0].reason(), AttemptFailure::Decrypt);
            }
            other => panic!("{provider}: {other:?}"),
        }
    }
}

#[test]
fn tampered_secretbox_and_gcm_values_fail() {
    for provider in ["aesgcm", "secretbox"] {
        let t = transformers(&config_yaml(
            "secrets",
            &keyed_provider(provider, &[("k", &b64(&[1; 32]))]),
        ));
        let stored = secrets(&t).to_storage(VALUE, AAD).unwrap();
        let prefix_len = format!("k8s:enc:{provider}:v1:k:").len();
        for i in prefix_len..stored.len() {
            let mut tampered = stored.clone();
            tampered[i] ^= 0x80;
            assert!(
                secrets(&t).from_storage(&tampered, AAD).is_err(),
                "{provider} byte {i}"
            );
        }
    }
}

#[test]
fn resource_matching_order() {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         \x20 - resources: [secrets, deployments.apps]\n    providers:\n{}\
         \x20 - resources: ['*.apps']\n    providers:\n{}\
         \x20 - resources: ['*.']\n    providers:\n{}\
         \x20 - resources: ['*.*']\n    providers:\n{}",
        keyed_provider("secretbox", &[("exact", &b64(&[1; 32]))]),
        keyed_provider("aesgcm", &[("apps", &b64(&[2; 32]))]),
        keyed_provider("aescbc", &[("core", &b64(&[3; 32]))]),
        keyed_provider("aesgcm", &[("everything", &b64(&[4; 32]))]),
    );
    let t = transformers(&yaml);
    let key = |group: &str, resource: &str| {
        t.for_resource(group, resource)
            .write_key_name()
            .map(str::to_owned)
    };
    assert_eq!(key("", "secrets").as_deref(), Some("exact"));
    assert_eq!(key("apps", "deployments").as_deref(), Some("exact"));
    assert_eq!(key("apps", "statefulsets").as_deref(), Some("apps"));
    assert_eq!(key("", "configmaps").as_deref(), Some("core"));
    assert_eq!(key("batch", "jobs").as_deref(), Some("everything"));
    assert_eq!(
        key("stable.example.com", "crontabs").as_deref(),
        Some("everything")
    );
    // "secrets" in a named group is not core secrets.
    assert_eq!(key("example.com", "secrets").as_deref(), Some("everything"));
    assert_eq!(
        t.for_resource("apps", "statefulsets").provider(),
        ProviderKind::AesGcm
    );
    assert_eq!(
        t.for_resource("", "configmaps").provider(),
        ProviderKind::AesCbc
    );
}

#[test]
fn unconfigured_resources_use_identity() {
    let t = transformers(&config_yaml(
        "secrets",
        &keyed_provider("aesgcm", &[("k", &b64(&[1; 16]))]),
    ));
    let rt = t.for_resource("", "configmaps");
    assert_eq!(rt.provider_name(), "identity");
    assert!(!rt.is_secure());
    assert_eq!(rt.write_key_name(), None);
    assert_eq!(rt.to_storage(VALUE, AAD).unwrap(), VALUE);

    let plain = Transformers::identity();
    assert_eq!(plain.source_name(), None);
    assert_eq!(plain.for_resource("", "secrets").describe(), "identity");
    assert!(t.source_name().is_some() && t.content_hash().is_some());
}

#[test]
fn stale_when_read_by_a_later_key_or_provider() {
    let old = transformers(&config_yaml(
        "secrets",
        &keyed_provider("aesgcm", &[("old", &b64(&[1; 32]))]),
    ));
    let stored_old = secrets(&old).to_storage(VALUE, AAD).unwrap();

    // Rotation step: new key first, old key second, same provider.
    let rotated = transformers(&config_yaml(
        "secrets",
        &keyed_provider(
            "aesgcm",
            &[("new", &b64(&[2; 32])), ("old", &b64(&[1; 32]))],
        ),
    ));
    let read = secrets(&rotated).from_storage(&stored_old, AAD).unwrap();
    assert_eq!(read.plaintext.as_slice(), VALUE);
    assert!(read.stale, "read by the second key");
    let rewritten = secrets(&rotated).to_storage(&read.plaintext, AAD).unwrap();
    assert!(rewritten.starts_with(b"k8s:enc:aesgcm:v1:new:"));
    assert!(
        !secrets(&rotated)
            .from_storage(&rewritten, AAD)
            .unwrap()
            .stale
    );

    // Provider change: secretbox first, the old aesgcm provider second.
    let migrated = transformers(&config_yaml(
        "secrets",
        &(keyed_provider("secretbox", &[("sb", &b64(&[3; 32]))])
            + &keyed_provider("aesgcm", &[("old", &b64(&[1; 32]))])),
    ));
    let read = secrets(&migrated).from_storage(&stored_old, AAD).unwrap();
    assert!(read.stale, "read by the second provider");
    assert_eq!(
        secrets(&migrated).describe(),
        "secretbox key \"sb\", aesgcm key \"old\""
    );
}

#[test]
fn provider_lists_of_repeated_resources_are_concatenated() {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         \x20 - resources: [secrets]\n    providers:\n{}\
         \x20 - resources: [configmaps, secrets]\n    providers:\n{}",
        keyed_provider("aesgcm", &[("first", &b64(&[1; 32]))]),
        keyed_provider("aesgcm", &[("second", &b64(&[2; 32]))]),
    );
    let t = transformers(&yaml);
    assert_eq!(
        secrets(&t).describe(),
        "aesgcm key \"first\", aesgcm key \"second\""
    );
    assert_eq!(
        t.for_resource("", "configmaps").describe(),
        "aesgcm key \"second\""
    );
    let by_second = t
        .for_resource("", "configmaps")
        .to_storage(VALUE, AAD)
        .unwrap();
    let read = secrets(&t).from_storage(&by_second, AAD).unwrap();
    assert!(read.stale);
}

#[test]
fn a_failed_match_does_not_stop_the_search() {
    // The same provider twice with the same key name but different secrets: the value written
    // by the second one has a prefix that the first one matches too.
    let yaml = config_yaml(
        "secrets",
        &(keyed_provider("aesgcm", &[("k", &b64(&[1; 32]))])
            + &keyed_provider("aesgcm", &[("k", &b64(&[2; 32]))])),
    );
    let t = transformers(&yaml);
    let second_only = transformers(&config_yaml(
        "secrets",
        &keyed_provider("aesgcm", &[("k", &b64(&[2; 32]))]),
    ));
    let stored = secrets(&second_only).to_storage(VALUE, AAD).unwrap();
    let read = secrets(&t).from_storage(&stored, AAD).unwrap();
    assert_eq!(read.plaintext.as_slice(), VALUE);
    assert!(read.stale);

    // When both fail, both failures are reported, in order.
    let err = secrets(&t)
        .from_storage(&stored, b"/wrong/aad")
        .unwrap_err();
    match err {
        TransformError::Decrypt { attempts } => assert_eq!(attempts.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn identity_refuses_encrypted_looking_values() {
    let plain = Transformers::identity();
    let rt = plain.for_resource("", "secrets");
    let err = rt.to_storage(b"k8s:enc:aesgcm:v1:k:xxxx", AAD).unwrap_err();
    assert!(matches!(err, TransformError::IdentityRefused), "{err:?}");

    let err = rt
        .from_storage(b"k8s:enc:aesgcm:v1:key1:0123456789abcdefghijklmn", AAD)
        .unwrap_err();
    match &err {
        TransformError::NoMatchingProvider { stored } => {
            assert_eq!(stored, "a value encrypted by aesgcm v1 with key \"key1\"");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "no configured provider can read a value encrypted by aesgcm v1 with key \"key1\""
    );
}

#[test]
fn identity_first_reads_both_plaintext_and_encrypted_values() {
    // Decryption migration: identity first (writes plaintext), the old key after it.
    let encrypted = transformers(&config_yaml(
        "secrets",
        &keyed_provider("secretbox", &[("k", &b64(&[1; 32]))]),
    ));
    let stored = secrets(&encrypted).to_storage(VALUE, AAD).unwrap();
    let t = transformers(&config_yaml(
        "secrets",
        &(IDENTITY.to_owned() + &keyed_provider("secretbox", &[("k", &b64(&[1; 32]))])),
    ));
    let rt = secrets(&t);
    assert!(!rt.is_secure());
    let read = rt.from_storage(&stored, AAD).unwrap();
    assert_eq!(read.plaintext.as_slice(), VALUE);
    assert!(read.stale);
    let read = rt.from_storage(VALUE, AAD).unwrap();
    assert!(!read.stale);
    assert_eq!(rt.to_storage(VALUE, AAD).unwrap(), VALUE);
}

#[test]
fn values_under_a_removed_key_are_reported_by_name() {
    let old = transformers(&config_yaml(
        "secrets",
        &keyed_provider("aesgcm", &[("removed", &b64(&[1; 32]))]),
    ));
    let stored = secrets(&old).to_storage(VALUE, AAD).unwrap();
    let t = transformers(&config_yaml(
        "secrets",
        &(keyed_provider("aesgcm", &[("current", &b64(&[2; 32]))]) + IDENTITY),
    ));
    let err = secrets(&t).from_storage(&stored, AAD).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no configured provider can read a value encrypted by aesgcm v1 with key \"removed\""
    );
}

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Transformers>();
    assert_send_sync::<ward_crypto::ResourceTransformer>();
    assert_send_sync::<ward_crypto::EncryptionConfig>();
    assert_send_sync::<TransformError>();
    assert_send_sync::<ward_crypto::ConfigError>();
}

/// Every provider, with two keys, then identity; shared by the property tests.
fn all_providers() -> Transformers {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         \x20 - resources: [secrets]\n    providers:\n{}{}{}{IDENTITY}\
         \x20 - resources: [configmaps]\n    providers:\n{}\
         \x20 - resources: [pods]\n    providers:\n{}",
        keyed_provider("aesgcm", &[("g1", &b64(&[1; 16])), ("g2", &b64(&[2; 32]))]),
        keyed_provider("aescbc", &[("c1", &b64(&[3; 24])), ("c2", &b64(&[4; 32]))]),
        keyed_provider(
            "secretbox",
            &[("s1", &b64(&[5; 32])), ("s2", &b64(&[6; 32]))]
        ),
        keyed_provider("aescbc", &[("c", &b64(&[7; 32]))]),
        keyed_provider("secretbox", &[("s", &b64(&[8; 32]))]),
    );
    transformers(&yaml)
}

proptest::proptest! {
    #[test]
    fn round_trip_any_value(
        plaintext in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
        aad in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
    ) {
        let t = all_providers();
        for resource in ["secrets", "configmaps", "pods"] {
            let rt = t.for_resource("", resource);
            let stored = rt.to_storage(&plaintext, &aad).unwrap();
            let read = rt.from_storage(&stored, &aad).unwrap();
            proptest::prop_assert_eq!(read.plaintext.as_slice(), plaintext.as_slice());
            proptest::prop_assert!(!read.stale);
            // Other resources' lists hold other keys: they must refuse it, not misread it.
            if resource != "secrets" {
                proptest::prop_assert!(t.for_resource("", "secrets").from_storage(&stored, &aad).is_err());
            }
        }
    }

    /// Arbitrary stored bytes, with or without a known prefix, never panic.
    #[test]
    fn reading_garbage_never_panics(
        prefix in proptest::sample::select(vec![
            "", "k8s:enc:", "k8s:enc:aesgcm:v1:g1:", "k8s:enc:aesgcm:v1:g2:",
            "k8s:enc:aescbc:v1:c1:", "k8s:enc:secretbox:v1:s2:", "k8s:enc:kms:v2:x:",
        ]),
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..128),
    ) {
        let t = all_providers();
        let stored = [prefix.as_bytes(), &payload].concat();
        for resource in ["secrets", "configmaps", "pods", "nodes"] {
            let _ = t.for_resource("", resource).from_storage(&stored, b"/k");
        }
        let _ = ward_crypto::parse_prefix(&stored);
    }
}
