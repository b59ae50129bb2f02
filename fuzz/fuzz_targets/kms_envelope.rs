//! KMS values as the server reads them back, without a plugin: the KMS v2 `EncryptedObject`
//! parser, its checks and both DEK-source layouts (through the real envelope, with an in-process
//! service that unwraps every DEK to one fixed key), and the KMS v1 payload parser with its
//! AES-GCM and AES-CBC data layouts.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ward_crypto::KmsTransformer;
use ward_kms::{KmsError, KmsService, KmsStatus, KmsV2Envelope, SystemClock, WrappedKey};
use zeroize::Zeroizing;

const AAD: &[u8] = b"/registry/secrets/default/fuzz";
const DEK: [u8; 32] = [7; 32];

/// Unwraps anything to [`DEK`]; never wraps (the fuzzer only reads).
#[derive(Debug)]
struct FixedKey;

#[async_trait::async_trait]
impl KmsService for FixedKey {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        Ok(KmsStatus {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id: "fuzz".into(),
        })
    }

    async fn encrypt(&self, _: &str, _: &[u8]) -> Result<WrappedKey, KmsError> {
        Err(KmsError::InvalidResponse {
            method: "Encrypt",
            reason: "the fuzz service does not wrap".into(),
        })
    }

    async fn decrypt(&self, _: &str, _: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Ok(Zeroizing::new(DEK.to_vec()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn envelope() -> &'static KmsV2Envelope {
    static E: OnceLock<KmsV2Envelope> = OnceLock::new();
    E.get_or_init(|| KmsV2Envelope::new("fuzz", Arc::new(FixedKey), Arc::new(SystemClock)))
}

fuzz_target!(|data: &[u8]| {
    let _ = runtime().block_on(envelope().open(data, AAD));
    let _ = ward_kms::stored_key_id(data);
    let _ = ward_kms::open_v1_payload_with_dek(data, &DEK, AAD);
});
