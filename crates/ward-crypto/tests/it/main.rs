//! Integration tests of `ward-crypto`'s public API: one binary, one module per area.

// Helpers outside `#[test]` functions panic on failure too; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod canary;
mod config;
mod default_config;
mod kms;
mod transformers;
mod vectors;

use ward_crypto::{EncryptionConfig, Transformers};

/// Builds transformers from YAML text, panicking on any error.
pub(crate) fn transformers(yaml: &str) -> Transformers {
    let config = EncryptionConfig::from_bytes(yaml.as_bytes(), "test.yaml").unwrap();
    Transformers::from_config(config).unwrap()
}

/// A config with one entry for `resources` and the given provider list (YAML list items, each
/// indented by six spaces as `      - aesgcm: ...`).
pub(crate) fn config_yaml(resources: &str, providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\n\
         kind: EncryptionConfiguration\n\
         resources:\n\
         \x20 - resources: [{resources}]\n\
         \x20   providers:\n{providers}"
    )
}

/// One provider list item with keys: `provider` is `aescbc`, `aesgcm` or `secretbox`.
pub(crate) fn keyed_provider(provider: &str, keys: &[(&str, &str)]) -> String {
    let mut out = format!("      - {provider}:\n          keys:\n");
    for (name, secret) in keys {
        out.push_str(&format!(
            "            - name: {name}\n              secret: {secret}\n"
        ));
    }
    out
}

pub(crate) const IDENTITY: &str = "      - identity: {}\n";

pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn from_hex(hex: &str) -> Vec<u8> {
    let hex: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    hex.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
