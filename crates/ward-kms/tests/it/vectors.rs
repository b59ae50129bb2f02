//! kube-apiserver's recorded KMS v2 values decrypt through a real gRPC plugin.

use std::sync::Arc;

use prost::Message as _;
use ward_crypto::KmsTransformer as _;
use ward_kms::proto::v2::{EncryptedDekSourceType, EncryptedObject};

use crate::*;

const V127: &str = "kmsv2-v1.27-aes-gcm-key.txt";
const HKDF: &str = "hkdf-xnonce-gcm-unit-legacy.txt";

#[tokio::test]
async fn kmsv2_v1_27_aes_gcm_key_value_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let plugin = ward_kms::start_plugin(&listen, Arc::new(Base64Kms { key_id: "1".into() }))
        .await
        .unwrap();
    let (transformers, _envelope, _clock) = build(config("kms-provider", &listen, "3s")).await;

    let value = vector_hex(V127, "etcd_value_hex");
    let key = vector_line(V127, "etcd_key");
    let read = transformers
        .for_resource("", "secrets")
        .from_storage_async(&value, key.as_bytes())
        .await
        .unwrap();
    assert_eq!(read.plaintext.as_slice(), vector_hex(V127, "plaintext_hex"));
    // Same key ID, but an AES_GCM_KEY value is stale once writes use the HKDF seed.
    assert!(read.stale);

    // The wrong storage key fails.
    let err = transformers
        .for_resource("", "secrets")
        .from_storage_async(&value, b"/registry/secrets/default/other")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("decryption failed"), "{err}");
    plugin.shutdown().await.unwrap();
}

#[test]
fn encrypted_object_fields_and_bytes_match_upstream() {
    let value = vector_hex(V127, "etcd_value_hex");
    let payload = value
        .strip_prefix(b"k8s:enc:kms:v2:kms-provider:".as_slice())
        .unwrap();
    let object = EncryptedObject::decode(payload).unwrap();
    assert_eq!(object.key_id, "1");
    assert_eq!(
        object.encrypted_dek_source,
        vector_line(V127, "encrypted_dek_source_ascii").into_bytes()
    );
    assert_eq!(
        object.encrypted_dek_source_type,
        EncryptedDekSourceType::AesGcmKey as i32
    );
    assert_eq!(
        object.annotations["local-kek.kms.kubernetes.io"],
        b"encrypted-local-kek"
    );
    assert_eq!(object.encrypted_data.len(), 394);
    // prost writes the same bytes as Go's proto.Marshal (field order, map entries, type 0
    // omitted).
    assert_eq!(object.encode_to_vec(), payload);
    let mut seed = object;
    seed.encrypted_dek_source_type = EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32;
    assert!(seed.encode_to_vec().ends_with(&[0x28, 0x01]));
}

#[tokio::test]
async fn hkdf_seed_payload_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let plugin = ward_kms::start_plugin(&listen, Arc::new(Base64Kms { key_id: "1".into() }))
        .await
        .unwrap();
    let (_transformers, envelope, _clock) = build(config("kms-provider", &listen, "3s")).await;

    use base64::Engine as _;
    let object = EncryptedObject {
        encrypted_data: vector_hex(HKDF, "stored_hex"),
        key_id: "1".into(),
        encrypted_dek_source: base64::engine::general_purpose::STANDARD
            .encode(vector_hex(HKDF, "seed_hex"))
            .into_bytes(),
        annotations: Default::default(),
        encrypted_dek_source_type: EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32,
    };
    let read = envelope
        .open(&object.encode_to_vec(), b"bamboo")
        .await
        .unwrap();
    assert_eq!(read.plaintext.as_slice(), b"pandas are the best");
    assert!(!read.stale);
    assert!(
        envelope
            .open(&object.encode_to_vec(), b"bambo0")
            .await
            .is_err()
    );
    plugin.shutdown().await.unwrap();
}
