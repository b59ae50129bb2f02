//! Byte-compatibility vectors produced by kube-apiserver (copied from the shared vectors, with
//! their source comments, into `tests/vectors/`).

use std::collections::HashMap;

use ward_crypto::{TransformError, Transformers};

use crate::{IDENTITY, b64, config_yaml, from_hex, keyed_provider, transformers};

/// Parses the vector format: `# comment`, `name: value`, or `name_hex:` followed by hex lines.
fn parse_vector(text: &str) -> HashMap<String, Vec<u8>> {
    let mut fields = HashMap::new();
    let mut hex_field: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.split_once(':') {
            // Hex lines never contain ':'.
            Some((name, value)) => {
                let value = value.trim();
                if let Some(stem) = name.strip_suffix("_hex") {
                    fields.insert(stem.to_owned(), Vec::new());
                    hex_field = Some(stem.to_owned());
                } else {
                    fields.insert(name.to_owned(), value.as_bytes().to_vec());
                    hex_field = None;
                }
            }
            None => {
                let field = hex_field.as_ref().expect("hex line outside a _hex field");
                fields.get_mut(field).unwrap().extend(from_hex(line));
            }
        }
    }
    fields
}

const AESGCM_LEGACY: &str = include_str!("../vectors/aesgcm-unit-legacy.txt");
const IDENTITY_RKE2: &str = include_str!("../vectors/identity-rke2-secret-pre-deploy.txt");

fn aesgcm_legacy() -> (HashMap<String, Vec<u8>>, Vec<u8>) {
    let v = parse_vector(AESGCM_LEGACY);
    assert_eq!(v["key"].len(), 16);
    assert_eq!(v["stored"].len(), 47);
    let mut stored = b"k8s:enc:aesgcm:v1:key1:".to_vec();
    stored.extend_from_slice(&v["stored"]);
    (v, stored)
}

fn gcm_transformers(key: &[u8]) -> Transformers {
    transformers(&config_yaml(
        "secrets",
        &keyed_provider("aesgcm", &[("key1", &b64(key))]),
    ))
}

#[test]
fn aesgcm_legacy_vector_decrypts() {
    let (v, stored) = aesgcm_legacy();
    assert_eq!(v["key_ascii"], b"snorlax_awesomes");
    assert_eq!(v["key"], b"snorlax_awesomes");
    let t = gcm_transformers(&v["key"]);
    let read = t
        .for_resource("", "secrets")
        .from_storage(&stored, &v["aad_ascii"])
        .unwrap();
    assert_eq!(read.plaintext.as_slice(), v["plaintext_ascii"].as_slice());
    assert!(!read.stale);
    // The vector's layout: nonce ‖ ciphertext ‖ tag.
    assert_eq!(&v["stored"][..12], v["nonce"].as_slice());
    assert_eq!(&v["stored"][47 - 16..], v["tag"].as_slice());
}

#[test]
fn aesgcm_legacy_vector_fails_with_wrong_aad_tampering_or_wrong_key() {
    let (v, stored) = aesgcm_legacy();
    let t = gcm_transformers(&v["key"]);
    let secrets = t.for_resource("", "secrets");

    let err = secrets.from_storage(&stored, b"bamboo2").unwrap_err();
    assert!(matches!(err, TransformError::Decrypt { .. }), "{err:?}");

    for i in 23..stored.len() {
        let mut tampered = stored.clone();
        tampered[i] ^= 0x01;
        assert!(
            secrets.from_storage(&tampered, b"bamboo").is_err(),
            "byte {i}"
        );
    }
    assert!(
        secrets
            .from_storage(&stored[..stored.len() - 1], b"bamboo")
            .is_err()
    );

    let wrong = gcm_transformers(b"snorlax_awesomez");
    let err = wrong
        .for_resource("", "secrets")
        .from_storage(&stored, b"bamboo")
        .unwrap_err();
    assert!(matches!(err, TransformError::Decrypt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("aesgcm key \"key1\""), "{message}");
    assert!(!message.contains("pandas"), "{message}");
}

#[test]
fn identity_vector_reads_as_is_and_is_stale_behind_encryption() {
    let v = parse_vector(IDENTITY_RKE2);
    let value = &v["etcd_value"];
    assert_eq!(value.len(), 240);
    assert!(value.starts_with(b"k8s\x00"));
    let aad = &v["etcd_key"];

    let plain = Transformers::identity();
    let read = plain
        .for_resource("", "secrets")
        .from_storage(value, aad)
        .unwrap();
    assert_eq!(read.plaintext.as_slice(), value.as_slice());
    assert!(!read.stale);

    // After turning encryption on, the old plaintext is still readable through identity, stale.
    let yaml = config_yaml(
        "secrets",
        &(keyed_provider("secretbox", &[("key1", &b64(&[9; 32]))]) + IDENTITY),
    );
    let t = transformers(&yaml);
    let secrets = t.for_resource("", "secrets");
    let read = secrets.from_storage(value, aad).unwrap();
    assert_eq!(read.plaintext.as_slice(), value.as_slice());
    assert!(read.stale);

    // Rewriting it encrypts it; the next read is fresh.
    let stored = secrets.to_storage(&read.plaintext, aad).unwrap();
    assert!(stored.starts_with(b"k8s:enc:secretbox:v1:key1:"));
    assert_eq!(
        stored.len(),
        "k8s:enc:secretbox:v1:key1:".len() + 24 + 16 + 240
    );
    let again = secrets.from_storage(&stored, aad).unwrap();
    assert_eq!(again.plaintext.as_slice(), value.as_slice());
    assert!(!again.stale);
}
