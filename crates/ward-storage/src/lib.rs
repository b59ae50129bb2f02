//! The storage contract every Ward backend implements, and the conformance suite that proves it.
//!
//! The contract copies etcd v3's primitives, so the etcd backend is thin and the embedded one
//! (redb) behaves the same way:
//!
//! - keys and values are bytes; every successful write bumps **one global revision**, which the
//!   API server uses as `resourceVersion`;
//! - writes are conditional: create-if-absent, update-if-revision, delete-if-revision;
//! - reads are a point `get` or a prefix `range` with a limit, optionally at an older revision
//!   (that is how `continue` tokens stay consistent across pages);
//! - `watch` streams every change under a prefix after a given revision, replaying history first;
//!   history is bounded, and asking for a revision older than the compacted one is an error
//!   ([`StorageError::Compacted`]), which the API maps to `410 Expired`.
//!
//! This crate does no IO and depends on no backend. Values reaching a backend are already
//! encrypted by the transformer layer; a backend never sees plaintext secrets.
//!
//! ```
//! use ward_storage::{KeyValue, Revision};
//! let kv = KeyValue { key: b"/registry/secrets/default/a".to_vec(), value: vec![1, 2],
//!                     create_revision: Revision(3), mod_revision: Revision(5) };
//! assert!(kv.mod_revision > kv.create_revision);
//! ```

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures_util::Stream;

#[cfg(feature = "testing")]
pub mod testing;

/// A global store revision (etcd's `revision`, Kubernetes' `resourceVersion`).
///
/// Revision 0 means "none yet": the first write of a fresh store has revision 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One stored key with its value and revisions.
///
/// `Debug` prints the value's length only: values are ciphertext, but may be plaintext under the
/// identity provider.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/secrets/default/db`.
    pub key: Vec<u8>,
    /// The stored bytes (already passed through the encryption transformer).
    pub value: Vec<u8>,
    /// The revision that created this key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the last write to this key.
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// A page of a prefix range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePage {
    /// Matching keys in ascending byte order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// True when more keys match after the last one returned.
    pub more: bool,
    /// How many matching keys follow the last one returned (0 when `more` is false).
    pub remaining: u64,
    /// The revision the page was read at (the current one when none was asked for).
    pub revision: Revision,
}

/// How the keys under a prefix stand at one revision, in one cheap read: what a cache needs to
/// prove it holds exactly that state (see [`Storage::prefix_summary`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixSummary {
    /// The revision the summary was read at.
    pub revision: Revision,
    /// How many keys exist under the prefix.
    pub count: u64,
    /// The largest `mod_revision` among them (0 when there are none).
    pub max_mod_revision: Revision,
}

/// What a range asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// Only keys starting with these bytes.
    pub prefix: Vec<u8>,
    /// Only keys strictly greater than this one (a `continue` position); `None` = from the start.
    pub start_after: Option<Vec<u8>>,
    /// At most this many keys; 0 = no limit.
    pub limit: usize,
    /// Read as of this revision; `None` = the current revision. A revision at or below the
    /// compacted one gives [`StorageError::Compacted`]; one above the current one gives
    /// [`StorageError::FutureRevision`].
    pub revision: Option<Revision>,
}

/// The kind of change a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated; `kv` holds the new value.
    Put,
    /// The key was deleted; `kv` holds the deleted value and the delete's revision as
    /// `mod_revision`.
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the new key-value. For a delete, the last value, with `mod_revision` set to the
    /// revision of the delete.
    pub kv: KeyValue,
    /// The value before this change, if the key existed (always set for a delete).
    pub prev: Option<KeyValue>,
}

/// An item of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// A change, in revision order.
    Event(Event),
    /// The store has reached this revision and every change up to it has been sent (etcd's
    /// progress notify). The API turns this into a `BOOKMARK`.
    Progress(Revision),
}

/// A stream of watch items. It ends (or yields an error) when the backend can no longer follow,
/// e.g. [`StorageError::Compacted`] when the watcher fell too far behind.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem, StorageError>> + Send>>;

/// Errors of the storage contract. Backends map their own errors into these; callers never see a
/// backend's types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A create found the key present.
    #[error("key already exists")]
    AlreadyExists {
        /// The existing key-value.
        existing: Box<KeyValue>,
    },
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (oldest kept is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compacted revision; history after it is kept.
        compacted: Revision,
    },
    /// A conditional update or delete found a different `mod_revision`.
    #[error("revision mismatch")]
    Conflict {
        /// The key-value as it is now.
        current: Box<KeyValue>,
    },
    /// The requested revision is newer than the store's.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The key does not exist.
    #[error("key not found")]
    NotFound,
    /// The backend failed (IO, corruption, connection). The message never holds values.
    #[error("storage backend error: {message}")]
    Backend {
        /// What failed, for logs.
        message: String,
    },
    /// The store is shutting down or the operation was cancelled.
    #[error("storage is closed")]
    Closed,
}

impl StorageError {
    /// A backend error from any displayable cause.
    pub fn backend(cause: impl fmt::Display) -> Self {
        StorageError::Backend {
            message: cause.to_string(),
        }
    }
}

/// A revisioned key-value store with watch, as etcd v3 provides.
///
/// Every method that writes returns only after the write is durable.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A short name for logs and metrics, e.g. `redb` or `etcd`.
    fn name(&self) -> &'static str;

    /// Reads one key at the current revision.
    ///
    /// `Ok(None)` when the key does not exist.
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StorageError>;

    /// Reads keys under a prefix, in key order, optionally as of an older revision.
    async fn range(&self, request: RangeRequest) -> Result<RangePage, StorageError>;

    /// Creates `key` if it does not exist.
    ///
    /// `Ok` holds the stored key-value (with its new revision); `AlreadyExists` otherwise.
    async fn create(&self, key: &[u8], value: Vec<u8>) -> Result<KeyValue, StorageError>;

    /// Replaces the value of `key` if its `mod_revision` is `expected`.
    ///
    /// `NotFound` if the key is absent; `Conflict` if its revision differs.
    async fn update(
        &self,
        key: &[u8],
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<KeyValue, StorageError>;

    /// Deletes `key`, if `expected` is `None` or equals its `mod_revision`.
    ///
    /// `Ok` holds the deleted key-value with `mod_revision` set to the delete's revision.
    /// `NotFound` if absent; `Conflict` if the revision differs.
    async fn delete(
        &self,
        key: &[u8],
        expected: Option<Revision>,
    ) -> Result<KeyValue, StorageError>;

    /// Streams every change under `prefix` with a revision greater than `after`, replaying
    /// retained history first, then following live. `after` below the compacted revision is
    /// `Compacted`.
    async fn watch(&self, prefix: &[u8], after: Revision) -> Result<WatchStream, StorageError>;

    /// The current revision (the revision of the last write; 0 for an empty new store).
    async fn current_revision(&self) -> Result<Revision, StorageError>;

    /// Drops history at or below `revision`: older revisions can no longer be read or watched.
    async fn compact(&self, revision: Revision) -> Result<(), StorageError>;

    /// The compacted revision (0 when nothing has been compacted).
    async fn compacted_revision(&self) -> Result<Revision, StorageError>;

    /// `key` as the backend stores it (etcd: with its `--etcd-prefix`). Encryption binds values
    /// to this key (the AAD), as kube-apiserver binds them to the full etcd key.
    fn stored_key<'a>(&self, key: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        std::borrow::Cow::Borrowed(key)
    }

    /// The [`PrefixSummary`] of `prefix` at the current revision, for backends where a read
    /// costs a network round trip; `Ok(None)` (the default) where reads are cheap enough that
    /// nothing should be cached in front of them.
    ///
    /// A cache whose state of the prefix came from an earlier revision's state plus every
    /// change it has seen since holds exactly the state at `revision` when it has seen a change
    /// at or after `revision`, or when its key count and largest `mod_revision` equal the
    /// summary's: any change it missed that still shows would carry a larger `mod_revision`,
    /// and missed deletes of keys it holds would lower the count.
    async fn prefix_summary(&self, prefix: &[u8]) -> Result<Option<PrefixSummary>, StorageError> {
        let _ = prefix;
        Ok(None)
    }
}
