//! Offline admin tools over stored values: `ward storage decode` and `ward storage encode`.
//!
//! They read and write the exact bytes kube-apiserver keeps in etcd (and Ward keeps in redb):
//! `<provider prefix><payload>` around `k8s\0` + protobuf, with the etcd key as AAD.
//!
//! A `kms` v2 provider is reached through its plugin (`ward_kms`), so the work is async
//! ([`decode_async`], [`encode_async`]); [`decode`] and [`encode`] run it on a private
//! single-threaded runtime on their own thread, so they can be called from anywhere.

use std::future::Future;
use std::path::Path;

use serde_json::{Value, json};

/// What `decode` found.
#[derive(Debug)]
pub struct Decoded {
    /// The object, in Kubernetes JSON, with Secret values redacted unless asked otherwise.
    pub object: Value,
    /// The provider that decrypted it (`identity`, `aesgcm`, `kms`, ...).
    pub provider: String,
    /// The provider's format version in the prefix (`v1`, or `v2` for KMS v2; empty for
    /// identity).
    pub version: String,
    /// The key name in the value's prefix (empty for identity).
    pub key_name: String,
    /// Whether the value would be rewritten (not the first provider and key).
    pub stale: bool,
    /// For a KMS v2 value, the plugin's key ID it was written under (stored in plain text).
    pub kms_key_id: Option<String>,
}

/// Errors of the storage tools. Messages name files and keys, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The encryption configuration could not be loaded.
    #[error("{0}")]
    Config(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The value could not be decrypted with any configured provider.
    #[error("key {key}: {message}")]
    Transform {
        /// The etcd key.
        key: String,
        /// What failed.
        message: String,
    },
    /// The plaintext is not a Kubernetes object Ward can decode.
    #[error("key {key}: {message}")]
    Decode {
        /// The etcd key.
        key: String,
        /// What failed.
        message: String,
    },
}

/// Group and resource of an etcd key `/registry/<resource>/...` (core group; `rbac` objects are
/// under their plain names, as kube-apiserver lays them out).
fn resource_of(key: &str) -> (&'static str, String) {
    let resource = key
        .trim_start_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let group = match resource.as_str() {
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => {
            "rbac.authorization.k8s.io"
        }
        _ => "",
    };
    (group, resource)
}

async fn transformers(config: &Path) -> Result<ward_crypto::Transformers, AdminError> {
    let cfg = ward_crypto::load_encryption_config_with(config, ward_crypto::ModeCheck::Skip)
        .map_err(|e| AdminError::Config(e.to_string()))?;
    // A one-shot tool: probe each kms plugin once, no background polling.
    let options = ward_kms::KmsOptions {
        poll: false,
        ..Default::default()
    };
    ward_kms::transformers_from_config_with(cfg, &options)
        .await
        .map(|(transformers, _)| transformers)
        .map_err(|e| AdminError::Config(e.to_string()))
}

/// Runs `work` to completion on a fresh current-thread runtime on a scoped thread (safe inside
/// or outside another runtime).
fn block_on<T: Send>(
    work: impl Future<Output = Result<T, AdminError>> + Send,
) -> Result<T, AdminError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| AdminError::Config(format!("cannot start a runtime: {e}")))?
                    .block_on(work)
            })
            .join()
            .unwrap_or_else(|_| Err(AdminError::Config("the storage tool panicked".into())))
    })
}

/// Decrypts and decodes one stored value; [`decode_async`] on a private runtime.
///
/// `Err` names the key and what failed: no provider could decrypt, or the plaintext is not a
/// known Kubernetes object.
pub fn decode(
    config: &Path,
    key: &str,
    value: &[u8],
    show_values: bool,
) -> Result<Decoded, AdminError> {
    block_on(decode_async(config, key, value, show_values))
}

/// Decrypts and decodes one stored value.
///
/// `Err` names the key and what failed: no provider could decrypt (for `kms`, also an
/// unreachable plugin), or the plaintext is not a known Kubernetes object.
pub async fn decode_async(
    config: &Path,
    key: &str,
    value: &[u8],
    show_values: bool,
) -> Result<Decoded, AdminError> {
    let t = transformers(config).await?;
    let (group, resource) = resource_of(key);
    let out = t
        .for_resource(group, &resource)
        .from_storage_async(value, key.as_bytes())
        .await
        .map_err(|e| AdminError::Transform {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    let mut object =
        ward_api::protobuf::decode(&out.plaintext).map_err(|e| AdminError::Decode {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    if !show_values {
        redact(&mut object);
    }
    let (provider, version, key_name) = match ward_crypto::parse_prefix(value) {
        Some(p) => (
            p.provider().to_owned(),
            p.version().to_owned(),
            String::from_utf8_lossy(p.name()).into_owned(),
        ),
        None => ("identity".to_owned(), String::new(), String::new()),
    };
    Ok(Decoded {
        object,
        provider,
        version,
        key_name,
        stale: out.stale,
        kms_key_id: ward_kms::stored_key_id(value),
    })
}

/// Encodes an object (JSON or YAML) as kube-apiserver would store it under `key`, through the
/// first provider of the configuration; [`encode_async`] on a private runtime.
pub fn encode(config: &Path, key: &str, object: &[u8]) -> Result<Vec<u8>, AdminError> {
    block_on(encode_async(config, key, object))
}

/// Encodes an object (JSON or YAML) as kube-apiserver would store it under `key`, through the
/// first provider of the configuration (for `kms`, a fresh seed wrapped by the plugin).
pub async fn encode_async(config: &Path, key: &str, object: &[u8]) -> Result<Vec<u8>, AdminError> {
    let t = transformers(config).await?;
    let mut obj: Value = serde_json::from_slice(object)
        .or_else(|_| serde_saphyr::from_slice(object))
        .map_err(|_| AdminError::Decode {
            key: key.to_owned(),
            message: "the object is neither JSON nor YAML".into(),
        })?;
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let plain = ward_api::protobuf::encode(&obj).map_err(|e| AdminError::Decode {
        key: key.to_owned(),
        message: e.to_string(),
    })?;
    let (group, resource) = resource_of(key);
    t.for_resource(group, &resource)
        .to_storage_async(&plain, key.as_bytes())
        .await
        .map_err(|e| AdminError::Transform {
            key: key.to_owned(),
            message: e.to_string(),
        })
}

/// Replaces a Secret's values (and the copy kubectl keeps in the last-applied annotation) with
/// `<redacted>`, keeping the key names.
pub fn redact(object: &mut Value) {
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(map) = object.get_mut(field).and_then(Value::as_object_mut) {
            for v in map.values_mut() {
                *v = json!("<redacted>");
            }
        }
    }
    if let Some(ann) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        && ann.contains_key(LAST_APPLIED)
    {
        ann.insert(LAST_APPLIED.into(), json!("<redacted>"));
    }
}

/// kubectl's copy of the applied manifest, values included.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_redaction() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("enc.yaml");
        std::fs::write(
            &cfg,
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: k1\n        secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n  - identity: {}\n",
        )
        .expect("write");
        let key = "/registry/secrets/default/db";
        let obj = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"default","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"p\":\"aHVudGVyMg==\"}}"}},"type":"Opaque","data":{"p":"aHVudGVyMg=="}}"#;
        let stored = encode(&cfg, key, obj).expect("encode");
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
        let d = decode(&cfg, key, &stored, false).expect("decode");
        assert_eq!(
            (d.provider.as_str(), d.key_name.as_str(), d.stale),
            ("aesgcm", "k1", false)
        );
        let text = d.object.to_string();
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert_eq!(d.object["data"]["p"], "<redacted>");
        let shown = decode(&cfg, key, &stored, true).expect("decode");
        assert_eq!(shown.object["data"]["p"], "aHVudGVyMg==");
        // the AAD binds the value to its key
        let e = decode(&cfg, "/registry/secrets/default/other", &stored, false).expect_err("aad");
        assert!(e.to_string().contains("/registry/secrets/default/other"));
        assert!(!e.to_string().contains("aHVudGVyMg=="));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kms_v2_round_trip_through_a_plugin() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let kek = dir.path().join("kek");
        std::fs::write(&kek, [9u8; 32]).expect("write");
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let kms = ward_kms::KeyFileKms::open(
            vec![ward_kms::KeyFileSpec::new(&kek)],
            ward_crypto::ModeCheck::Enforce,
        )
        .expect("keys");
        let listen = format!("unix://{}", dir.path().join("kms.sock").display());
        let plugin = ward_kms::start_plugin(&listen, std::sync::Arc::new(kms))
            .await
            .expect("plugin");
        let cfg = dir.path().join("enc.yaml");
        std::fs::write(
            &cfg,
            format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms:\n      apiVersion: v2\n      name: ward-kms\n      endpoint: {listen}\n  - identity: {{}}\n"),
        )
        .expect("write");
        let key = "/registry/secrets/default/db";
        let obj = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"default"},"type":"Opaque","data":{"p":"aHVudGVyMg=="}}"#;
        let stored = encode_async(&cfg, key, obj).await.expect("encode");
        assert!(stored.starts_with(b"k8s:enc:kms:v2:ward-kms:"));
        // The blocking wrapper works from inside a runtime too.
        let d = decode(&cfg, key, &stored, true).expect("decode");
        assert_eq!(
            (d.provider.as_str(), d.key_name.as_str()),
            ("kms", "ward-kms")
        );
        assert_eq!(d.object["data"]["p"], "aHVudGVyMg==");
        plugin.shutdown().await.expect("shutdown");
        let e = decode(&cfg, key, &stored, false).expect_err("plugin down, nothing cached");
        assert!(e.to_string().contains("kms"), "{e}");
        assert!(!e.to_string().contains("aHVudGVyMg=="));
    }

    #[test]
    fn decodes_a_real_kube_apiserver_value() {
        let vector = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ward-api/tests/vectors/identity-rke2-secret-pre-deploy.txt"
        ))
        .expect("vector");
        let mut hex = String::new();
        let mut in_value = false;
        for line in vector.lines() {
            if line.starts_with("etcd_value_hex:") {
                in_value = true;
            } else if in_value && !line.contains(':') && !line.starts_with('#') {
                hex.push_str(line.trim());
            } else {
                in_value = false;
            }
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("enc.yaml");
        std::fs::write(&cfg, "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n").expect("write");
        let d = decode(
            &cfg,
            "/registry/secrets/default/secret-pre-deploy",
            &bytes,
            true,
        )
        .expect("decode");
        assert_eq!(d.provider, "identity");
        assert_eq!(d.object["metadata"]["name"], "secret-pre-deploy");
        assert_eq!(d.object["data"]["mykey"], "bXlkYXRh");
    }
}
