//! EncryptionConfiguration files (YAML or JSON): parsing and validation never panic, and errors
//! never echo key material.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = ward_crypto::EncryptionConfig::from_bytes(data, "fuzz.yaml") {
        let _ = ward_crypto::Transformers::from_config(config);
    }
});
