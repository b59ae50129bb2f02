//! Stored values as the server reads them back: the encryption transformer's prefix parsing and
//! decryption for every provider, then the `k8s\0` protobuf decoder on whatever decrypts.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ward_crypto::{EncryptionConfig, Transformers};

const CONFIG: &[u8] = br#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys: [{name: g, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]
      - aescbc:
          keys: [{name: c, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]
      - secretbox:
          keys: [{name: s, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]
      - identity: {}
"#;

fn transformers() -> &'static Transformers {
    static T: OnceLock<Transformers> = OnceLock::new();
    T.get_or_init(|| {
        let config = EncryptionConfig::from_bytes(CONFIG, "fuzz.yaml").expect("valid config");
        Transformers::from_config(config).expect("transformers")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = ward_crypto::parse_prefix(data);
    let t = transformers().for_resource("", "secrets");
    if let Ok(d) = t.from_storage(data, b"/registry/secrets/default/fuzz") {
        let _ = ward_api::protobuf::decode(&d.plaintext);
    }
    // Valid ciphertexts around fuzzed plaintexts reach the decoder too.
    if let Ok(stored) = t.to_storage(data, b"/registry/secrets/default/fuzz") {
        if let Ok(d) = t.from_storage(&stored, b"/registry/secrets/default/fuzz") {
            let _ = ward_api::protobuf::decode(&d.plaintext);
        }
    }
});
