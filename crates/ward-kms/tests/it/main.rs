//! Integration tests of ward-kms: a real gRPC plugin in process on a temporary unix socket.

// Helpers outside `#[test]` functions panic on failure too; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod envelope;
mod metrics;
mod pkcs11;
mod plugin;
mod v1;
mod vectors;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ward_crypto::{EncryptionConfig, Transformers};
use ward_kms::{
    KeyFileKms, KeyFileSpec, KmsError, KmsOptions, KmsService, KmsStatus, KmsV2Envelope,
    PluginHandle, WrappedKey,
};
use zeroize::Zeroizing;

/// The storage key used as AAD.
pub(crate) const AAD: &[u8] = b"/registry/secrets/default/db";
/// A value that must never appear in an error or a debug string.
pub(crate) const CANARY: &[u8] = b"k8s\x00canary-plaintext-7f3a9c";

/// Writes a key file with mode 0600 and returns its path.
pub(crate) fn key_file(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, [byte; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A key-file plugin served on `listen`.
pub(crate) async fn key_file_plugin(listen: &str, keys: &[&Path]) -> (PluginHandle, String) {
    let kms = KeyFileKms::open(
        keys.iter().map(|p| KeyFileSpec::new(*p)).collect(),
        ward_crypto::ModeCheck::Enforce,
    )
    .unwrap();
    let key_id = kms.current_key_id();
    let handle = ward_kms::start_plugin(listen, Arc::new(kms)).await.unwrap();
    (handle, key_id)
}

/// A socket path in `dir`, as a `unix://` endpoint.
pub(crate) fn socket(dir: &Path) -> String {
    format!("unix://{}", dir.join("kms.sock").display())
}

/// An EncryptionConfiguration with one kms v2 provider for secrets.
pub(crate) fn config(name: &str, endpoint: &str, timeout: &str) -> EncryptionConfig {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n  - kms:\n      apiVersion: v2\n      \
         name: {name}\n      endpoint: {endpoint}\n      timeout: {timeout}\n  - identity: {{}}\n"
    );
    EncryptionConfig::from_bytes(yaml.as_bytes(), "test.yaml").unwrap()
}

/// Transformers for `config` with a manual clock and no background polling.
pub(crate) async fn build(
    config: EncryptionConfig,
) -> (Transformers, KmsV2Envelope, Arc<ward_kms::ManualClock>) {
    let clock = Arc::new(ward_kms::ManualClock::new());
    let options = KmsOptions {
        clock: clock.clone(),
        poll: false,
    };
    let (transformers, mut envelopes) = ward_kms::transformers_from_config_with(config, &options)
        .await
        .unwrap();
    assert_eq!(envelopes.len(), 1);
    (transformers, envelopes.remove(0), clock)
}

/// kube-apiserver's integration-test plugin: the "encryption" is base64 (so the DEK of a
/// recorded value is the base64 decoding of its encryptedDEKSource).
#[derive(Debug)]
pub(crate) struct Base64Kms {
    pub(crate) key_id: String,
}

#[async_trait::async_trait]
impl KmsService for Base64Kms {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        Ok(KmsStatus {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id: self.key_id.clone(),
        })
    }

    async fn encrypt(&self, _uid: &str, plaintext: &[u8]) -> Result<WrappedKey, KmsError> {
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "local-kek.kms.kubernetes.io".to_owned(),
            b"encrypted-local-kek".to_vec(),
        );
        Ok(WrappedKey {
            ciphertext: B64.encode(plaintext).into_bytes(),
            key_id: self.key_id.clone(),
            annotations,
        })
    }

    async fn decrypt(
        &self,
        _uid: &str,
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        B64.decode(&wrapped.ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| KmsError::Unwrap(wrapped.key_id.clone()))
    }
}

/// Hex decoding of the vector files' `name_hex:` blocks.
pub(crate) fn vector_hex(file: &str, name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(file),
    )
    .unwrap();
    let mut hex = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix(&format!("{name}:")) {
            inside = true;
            hex.push_str(rest.trim());
        } else if inside && !line.contains(':') {
            hex.push_str(line.trim());
        } else if inside {
            break;
        }
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The value of a `name: value` line.
pub(crate) fn vector_line(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(file),
    )
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap()
        .to_owned()
}
