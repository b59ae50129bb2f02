//! Objects over the storage contract: keys as kube-apiserver lays them out, values as it writes
//! them (`k8s\0` + protobuf), passed through the encryption transformer with the key as AAD.
//!
//! `resourceVersion` is never stored: it is the key's `mod_revision`, set on the way out.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tracing::{error, warn};
use ward_api::ApiError;
use ward_api::resources::{self, ResourceInfo};
use ward_api::strategy;
use ward_crypto::Transformers;
use ward_storage::{KeyValue, RangePage, RangeRequest, Revision, Storage, StorageError};

/// Namespaces that always exist and cannot be deleted.
pub(crate) const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Typed access to stored objects.
#[derive(Clone)]
pub(crate) struct ObjectStore {
    pub(crate) storage: Arc<dyn Storage>,
    transformers: Arc<std::sync::RwLock<Arc<Transformers>>>,
}

/// One page of a list.
pub(crate) struct ListPage {
    pub(crate) items: Vec<Value>,
    pub(crate) revision: Revision,
    /// The last key examined, when more keys remain.
    pub(crate) continue_key: Option<String>,
    pub(crate) remaining: u64,
}

impl ObjectStore {
    /// `Err` says why a KMS provider cannot be used (for `/healthz/kms-providers`).
    pub(crate) fn kms_health(&self) -> Result<(), String> {
        self.transformers().kms_health()
    }

    /// The transformers in force (swapped by the encryption-config reload).
    pub(crate) fn transformers(&self) -> Arc<Transformers> {
        match self.transformers.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the transformers (automatic reload of the encryption configuration).
    pub(crate) fn set_transformers(&self, t: Transformers) {
        match self.transformers.write() {
            Ok(mut slot) => *slot = Arc::new(t),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(t),
        }
    }

    pub(crate) fn new(storage: Arc<dyn Storage>, transformers: Transformers) -> Self {
        ObjectStore {
            storage,
            transformers: Arc::new(std::sync::RwLock::new(Arc::new(transformers))),
        }
    }

    /// Encodes and encrypts `obj` for `key` (a `kms` provider may call its plugin).
    pub(crate) async fn encode(
        &self,
        info: &ResourceInfo,
        key: &str,
        obj: &Value,
    ) -> Result<Vec<u8>, ApiError> {
        let mut obj = obj.clone();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let plain = ward_api::protobuf::encode(&obj).map_err(|e| {
            error!(key, error = %e, "encoding an object for storage failed");
            ApiError::internal("unable to encode the object for storage")
        })?;
        let transformers = self.transformers();
        let t = transformers.for_resource(info.group, info.resource);
        let started = std::time::Instant::now();
        let aad = self.storage.stored_key(key.as_bytes());
        let result = t.to_storage_async(&plain, &aad).await;
        crate::metrics::transformation(
            info.resource,
            true,
            prefix_label(result.as_deref().unwrap_or_default()),
            result.is_ok(),
            started.elapsed(),
        );
        result.map_err(|e| {
            error!(key, error = %e, "encrypting an object failed");
            ApiError::internal("unable to transform the object for storage")
        })
    }

    /// Decrypts and decodes a stored key-value, setting `metadata.resourceVersion` to `rv` (a
    /// `kms` provider may call its plugin for a DEK source it has not cached).
    pub(crate) async fn decode(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        rv: Revision,
    ) -> Result<Value, ApiError> {
        self.decode_with_stale(info, kv, rv).await.map(|(v, _)| v)
    }

    /// Decodes a stored value; the flag says whether it was read through a provider or key other
    /// than the first (so writing it back would re-encrypt it).
    pub(crate) async fn decode_with_stale(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        rv: Revision,
    ) -> Result<(Value, bool), ApiError> {
        let key = String::from_utf8_lossy(&kv.key);
        let started = std::time::Instant::now();
        let transformers = self.transformers();
        let decrypted = transformers
            .for_resource(info.group, info.resource)
            .from_storage_async(&kv.value, &self.storage.stored_key(&kv.key))
            .await;
        crate::metrics::transformation(
            info.resource,
            false,
            prefix_label(&kv.value),
            decrypted.is_ok(),
            started.elapsed(),
        );
        let decrypted = decrypted.map_err(|e| {
            error!(key = %key, error = %e, "decrypting a stored object failed");
            ApiError::internal(format!("unable to transform key {key:?} from storage"))
        })?;
        let mut obj = ward_api::protobuf::decode(&decrypted.plaintext).map_err(|e| {
            error!(key = %key, error = %e, "decoding a stored object failed");
            ApiError::internal(format!("unable to decode key {key:?} from storage"))
        })?;
        strategy::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.0.to_string()));
        Ok((obj, decrypted.stale))
    }

    pub(crate) async fn get(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<(Value, Revision)>, ApiError> {
        Ok(self
            .get_with_stale(info, namespace, name)
            .await?
            .map(|(v, r, _)| (v, r)))
    }

    /// As [`Self::get`], with whether the stored value is stale.
    pub(crate) async fn get_with_stale(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<(Value, Revision, bool)>, ApiError> {
        let key = info.key(namespace, name);
        match self.storage.get(key.as_bytes()).await {
            Ok(Some(kv)) => {
                let rev = kv.mod_revision;
                let (v, stale) = self.decode_with_stale(info, &kv, rev).await?;
                Ok(Some((v, rev, stale)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(storage_error(info, name, e)),
        }
    }

    /// Reads up to `limit` keys (0 = all) after `start_after`, at `revision` (None = current).
    pub(crate) async fn list(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        start_after: Option<String>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListPage, ApiError> {
        let prefix = info.key_prefix(namespace);
        let page = self
            .storage
            .range(RangeRequest {
                prefix: prefix.clone().into_bytes(),
                start_after: start_after.map(String::into_bytes),
                limit,
                revision,
            })
            .await
            .map_err(|e| storage_error(info, "", e))?;
        self.decode_page(info, page).await
    }

    /// Decodes a page of stored objects.
    pub(crate) async fn decode_page(
        &self,
        info: &ResourceInfo,
        page: RangePage,
    ) -> Result<ListPage, ApiError> {
        let mut items = Vec::with_capacity(page.kvs.len());
        for kv in &page.kvs {
            items.push(self.decode(info, kv, kv.mod_revision).await?);
        }
        let continue_key = if page.more {
            page.kvs
                .last()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        } else {
            None
        };
        Ok(ListPage {
            items,
            revision: page.revision,
            continue_key,
            remaining: page.remaining,
        })
    }

    pub(crate) async fn create(&self, info: &ResourceInfo, obj: &Value) -> Result<Value, ApiError> {
        let ns = strategy::meta_str(obj, "namespace");
        let name = strategy::meta_str(obj, "name");
        let key = info.key(Some(ns), name);
        let value = self.encode(info, &key, obj).await?;
        let kv = self
            .storage
            .create(key.as_bytes(), value)
            .await
            .map_err(|e| storage_error(info, name, e))?;
        let mut out = obj.clone();
        strategy::metadata_mut(&mut out).insert(
            "resourceVersion".into(),
            json!(kv.mod_revision.0.to_string()),
        );
        Ok(out)
    }

    pub(crate) async fn update(
        &self,
        info: &ResourceInfo,
        obj: &Value,
        expected: Revision,
    ) -> Result<Value, StoreWriteError> {
        let ns = strategy::meta_str(obj, "namespace");
        let name = strategy::meta_str(obj, "name");
        let key = info.key(Some(ns), name);
        let value = self
            .encode(info, &key, obj)
            .await
            .map_err(StoreWriteError::Api)?;
        match self.storage.update(key.as_bytes(), value, expected).await {
            Ok(kv) => {
                let mut out = obj.clone();
                strategy::metadata_mut(&mut out).insert(
                    "resourceVersion".into(),
                    json!(kv.mod_revision.0.to_string()),
                );
                Ok(out)
            }
            Err(StorageError::Conflict { .. }) => Err(StoreWriteError::Conflict),
            Err(e) => Err(StoreWriteError::Api(storage_error(info, name, e))),
        }
    }

    pub(crate) async fn delete(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        expected: Option<Revision>,
    ) -> Result<Value, StoreWriteError> {
        let key = info.key(namespace, name);
        match self.storage.delete(key.as_bytes(), expected).await {
            Ok(kv) => self
                .decode(info, &kv, kv.mod_revision)
                .await
                .map_err(StoreWriteError::Api),
            Err(StorageError::Conflict { .. }) => Err(StoreWriteError::Conflict),
            Err(e) => Err(StoreWriteError::Api(storage_error(info, name, e))),
        }
    }

    /// Creates `default`, `kube-system` and `kube-public` when missing.
    pub(crate) async fn ensure_default_namespaces(&self) -> Result<(), ApiError> {
        let Some(info) = resources::lookup("", "v1", "namespaces") else {
            return Err(ApiError::internal("namespaces are not registered"));
        };
        for ns in SYSTEM_NAMESPACES {
            let obj =
                json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
            self.create_if_missing(info, obj).await?;
        }
        Ok(())
    }

    /// Creates a cluster-scoped object the server itself owns (default namespaces, bootstrap
    /// RBAC) unless an object of that name exists; an existing one is left as it is.
    pub(crate) async fn create_if_missing(
        &self,
        info: &ResourceInfo,
        mut obj: Value,
    ) -> Result<(), ApiError> {
        let name = strategy::meta_str(&obj, "name").to_owned();
        if self.get(info, None, &name).await?.is_some() {
            return Ok(());
        }
        let now = ward_api::table::rfc3339(SystemTime::now());
        let uid = uuid::Uuid::new_v4().to_string();
        strategy::fill_create_metadata(info, &mut obj, None, &uid, &now)?;
        strategy::prepare_create(info, &mut obj)?;
        match self.create(info, &obj).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A write that failed.
pub(crate) enum StoreWriteError {
    /// The stored revision differs from the expected one.
    Conflict,
    /// Any other failure, as a Status.
    Api(ApiError),
}

/// The `transformer_prefix` metric label of a stored value: `k8s:enc:<provider>:v1:` or
/// `identity` (key names are left out).
fn prefix_label(stored: &[u8]) -> &'static str {
    match ward_crypto::parse_prefix(stored).map(|p| (p.provider(), p.version())) {
        None => "identity",
        Some(("aescbc", "v1")) => "k8s:enc:aescbc:v1:",
        Some(("aesgcm", "v1")) => "k8s:enc:aesgcm:v1:",
        Some(("secretbox", "v1")) => "k8s:enc:secretbox:v1:",
        Some(("kms", "v1")) => "k8s:enc:kms:v1:",
        Some(("kms", "v2")) => "k8s:enc:kms:v2:",
        Some(_) => "unknown",
    }
}

/// Maps a storage error to a `Status`, in one place.
pub(crate) fn storage_error(info: &ResourceInfo, name: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::AlreadyExists { .. } => {
            ApiError::already_exists(info.group, info.resource, name)
        }
        StorageError::NotFound => ApiError::not_found(info.group, info.resource, name),
        StorageError::Conflict { .. } => ApiError::modified(info.group, info.resource, name),
        StorageError::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {} ({})",
            requested.0, compacted.0
        )),
        StorageError::FutureRevision { requested, current } => ApiError::unavailable(format!(
            "Too large resource version: {}, current: {}",
            requested.0, current.0
        )),
        StorageError::Closed => ApiError::unavailable("storage is shutting down"),
        other => {
            warn!(error = %other, "storage failure");
            ApiError::internal("storage failure")
        }
    }
}

/// A `continue` token, shaped like kube-apiserver's (base64 JSON with `rv` and `start`).
pub(crate) fn encode_continue(rev: Revision, last_key: &str, prefix: &str) -> String {
    let start = format!(
        "{}\u{0000}",
        last_key.strip_prefix(prefix).unwrap_or(last_key)
    );
    B64.encode(json!({"v": "meta.k8s.io/v1", "rv": rev.0, "start": start}).to_string())
}

/// Decodes a `continue` token into (revision, key to start after). `Err` 400 when malformed.
pub(crate) fn decode_continue(token: &str, prefix: &str) -> Result<(Revision, String), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = B64.decode(token.as_bytes()).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0000}').unwrap_or(start);
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((Revision(rv), format!("{prefix}{start}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets stored through a `kms` v2 provider: the async encode/decode path end to end, with
    /// a real plugin on a temporary socket and the embedded store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secrets_round_trip_through_a_kms_plugin() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let kek = dir.path().join("kek");
        std::fs::write(&kek, [5u8; 32]).expect("write");
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let kms = ward_kms::KeyFileKms::open(
            vec![ward_kms::KeyFileSpec::new(&kek)],
            ward_crypto::ModeCheck::Enforce,
        )
        .expect("keys");
        let listen = format!("unix://{}", dir.path().join("kms.sock").display());
        let plugin = ward_kms::start_plugin(&listen, Arc::new(kms))
            .await
            .expect("plugin");
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [secrets]\n  providers:\n  - kms:\n      apiVersion: v2\n      \
             name: ward-kms\n      endpoint: {listen}\n"
        );
        let config =
            ward_crypto::EncryptionConfig::from_bytes(yaml.as_bytes(), "enc.yaml").expect("config");
        let transformers = ward_kms::transformers_from_config(config)
            .await
            .expect("transformers");
        let storage = ward_storage_redb::RedbStorage::open(
            dir.path().join("db.redb"),
            ward_storage_redb::RedbOptions { history: 100 },
        )
        .expect("store");
        let store = ObjectStore::new(Arc::new(storage), transformers);
        let info = resources::lookup("", "v1", "secrets").expect("secrets");
        let obj = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default", "uid": "u1",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "type": "Opaque", "data": {"p": "aHVudGVyMg=="}});
        store.create(info, &obj).await.expect("create");
        let raw = store
            .storage
            .get(b"/registry/secrets/default/db")
            .await
            .expect("get")
            .expect("stored");
        assert!(raw.value.starts_with(b"k8s:enc:kms:v2:ward-kms:"));
        let (read, _) = store
            .get(info, Some("default"), "db")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(read["data"]["p"], "aHVudGVyMg==");
        plugin.shutdown().await.expect("shutdown");
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(
            Revision(42),
            "/registry/secrets/default/b",
            "/registry/secrets/",
        );
        let (rv, key) = decode_continue(&t, "/registry/secrets/").expect("valid");
        assert_eq!(rv, Revision(42));
        assert_eq!(key, "/registry/secrets/default/b");
        assert!(decode_continue("!!", "/p/").is_err());
        let evil = B64.encode(r#"{"rv":1,"start":"../x"}"#);
        assert!(decode_continue(&evil, "/p/").is_err());
    }
}
