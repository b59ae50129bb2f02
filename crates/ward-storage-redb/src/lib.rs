//! The embedded storage backend: Ward's [`Storage`] contract on a single [redb] file.
//!
//! [`RedbStorage`] copies etcd v3's semantics (one global revision, conditional writes, reads at
//! an older revision, watch with history replay, compaction), so the API server behaves the same
//! on redb as on etcd. It must never be a dependency of `ward-storage` or `ward-api`; the server
//! sees it only as a `dyn Storage`.
//!
//! # Design
//!
//! Three tables (byte formats in `codec.rs`):
//!
//! - `kv`: key → `create_revision, mod_revision, value` of every live key;
//! - `log`: revision → the event written at that revision (kind, key, new value, previous
//!   key-value). Every revision after the compacted one has exactly one entry;
//! - `meta`: `revision` (the current revision), `compacted` (the compacted revision) and `format`
//!   (the byte format version).
//!
//! A write updates all three in a redb transaction committed with immediate durability (fsync),
//! so an acknowledged write survives a crash and the revision counter, data, history and
//! compacted revision survive a restart. Writes are serialized by one in-process lock held across
//! the commit and the broadcast of the events, so watchers see events in revision order.
//!
//! **Group commit.** Concurrent writes share a transaction: each write is queued, then waits for
//! the writer lock. Whoever takes the lock and finds its own write still queued leads a batch:
//! it stages every queued write (up to [`MAX_BATCH`]) in queue order in one transaction, commits
//! it with one fsync, broadcasts the events, and hands each caller its outcome; callers whose
//! write was in a batch find it done when they get the lock. Each write still gets its own
//! revision and its own precondition check against the state left by the writes before it, as if
//! applied alone; a write whose precondition fails (exists, conflict, not found) is left out of
//! the transaction and only its caller gets the error. A write is acknowledged only after the
//! commit that holds it returned, and a failed commit fails every write of its batch: no caller
//! is told it succeeded and no watcher sees it (as with any failed fsync, such a write may still
//! be found after a crash, which is why it is reported as a backend error, not as "absent"). So
//! batching changes throughput (one fsync for many writes under concurrency) but not what any
//! caller or watcher can observe. A range at an
//! older revision `r` starts from the current keys and undoes the logged changes after `r` (the
//! value of a key at `r` is the `prev` of its first change after `r`). A watch subscribes to the
//! live broadcast before reading the log, and skips what it has already sent, so the replay and the
//! live part join with no gap and no duplicate; a watcher that falls behind the broadcast buffer
//! catches up from the log.
//!
//! History is bounded: after each write, revisions older than the last
//! [`RedbOptions::history`] are compacted, and [`Storage::compact`] compacts explicitly.
//!
//! All redb calls block, so they run on tokio's blocking pool: the methods need a tokio runtime.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ward_storage::{Revision, Storage};
//! use ward_storage_redb::{RedbOptions, RedbStorage};
//!
//! let dir = tempfile::tempdir()?;
//! let store = RedbStorage::open(dir.path().join("ward.redb"), RedbOptions::default())?;
//! let created = store.create(b"/registry/secrets/default/db", b"ciphertext".to_vec()).await?;
//! assert_eq!(created.mod_revision, Revision(1));
//! let updated = store.update(&created.key, b"rotated".to_vec(), created.mod_revision).await?;
//! assert_eq!(updated.mod_revision, Revision(2));
//! assert_eq!(store.current_revision().await?, Revision(2));
//! # Ok(())
//! # }
//! ```
//!
//! [redb]: https://docs.rs/redb

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use redb::{
    AccessGuard, Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
};
use tokio::sync::broadcast;
use ward_storage::{
    Event, EventKind, KeyValue, RangePage, RangeRequest, Revision, Storage, StorageError,
    WatchStream,
};

use crate::codec::{FORMAT_VERSION, decode_event, decode_stored, encode_event, encode_stored};

mod codec;
mod watch;

/// Options of [`RedbStorage::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedbOptions {
    /// How many of the latest revisions stay readable and watchable. After each write, older
    /// revisions are compacted automatically (like etcd's revision auto-compaction). 0 turns
    /// automatic compaction off: history then grows until [`Storage::compact`] is called.
    ///
    /// Defaults to 10 000.
    pub history: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            history: DEFAULT_HISTORY,
        }
    }
}

/// A [`Storage`] backed by one redb file.
///
/// Cheap to share behind an `Arc`; all methods take `&self`. Dropping it closes the file once
/// in-flight operations finish; open watch streams then end with [`StorageError::Closed`].
pub struct RedbStorage {
    shared: Arc<Shared>,
}

impl RedbStorage {
    /// Opens the database at `path`, creating the file and its tables if it does not exist.
    ///
    /// This blocks on file IO (redb may repair the file after a crash); from async code call it
    /// through `tokio::task::spawn_blocking`.
    ///
    /// `Err(Backend)` if the file cannot be opened or created, is held by another process, is not
    /// a redb file, or was written by an incompatible version of this crate.
    pub fn open(path: impl AsRef<Path>, options: RedbOptions) -> Result<Self, StorageError> {
        Self::open_with_capacity(path.as_ref(), options, WATCH_BUFFER)
    }

    pub(crate) fn open_with_capacity(
        path: &Path,
        options: RedbOptions,
        watch_buffer: usize,
    ) -> Result<Self, StorageError> {
        let db = Database::create(path).map_err(|err| {
            StorageError::backend(format!("redb: open {}: {err}", path.display()))
        })?;
        Self::from_database(db, options, watch_buffer, path)
    }

    /// A store over an opened database (tests pass one over a fault-injecting backend).
    pub(crate) fn from_database(
        db: Database,
        options: RedbOptions,
        watch_buffer: usize,
        path: &Path,
    ) -> Result<Self, StorageError> {
        let meta = initialize(&db)?;
        tracing::debug!(
            path = %path.display(),
            revision = meta.revision,
            compacted = meta.compacted,
            "opened redb storage"
        );
        let (events, _) = broadcast::channel(watch_buffer.max(1));
        let shared = Shared {
            db: Arc::new(db),
            writer: Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            events,
            revision: AtomicU64::new(meta.revision),
            compacted: AtomicU64::new(meta.compacted),
            history: u64::try_from(options.history).unwrap_or(u64::MAX),
            commits: AtomicU64::new(0),
        };
        Ok(RedbStorage {
            shared: Arc::new(shared),
        })
    }

    async fn write(&self, key: &[u8], op: WriteOp) -> Result<Event, StorageError> {
        let shared = Arc::clone(&self.shared);
        let key = key.to_vec();
        blocking(move || shared.write(key, op)).await
    }
}

impl fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStorage")
            .field("revision", &self.shared.revision.load(Ordering::Acquire))
            .field("compacted", &self.shared.compacted.load(Ordering::Acquire))
            .field("history", &self.shared.history)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Storage for RedbStorage {
    fn name(&self) -> &'static str {
        "redb"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StorageError> {
        // A point read is a few microseconds against redb's page cache: it runs inline, which
        // costs less than handing it to the blocking pool (the hottest path of the API server).
        let txn = self.shared.db.begin_read().context("begin read")?;
        let kv = txn.open_table(KV).context("open kv table")?;
        let found = kv.get(key).context("read kv table")?;
        found
            .map(|value| decode_stored(key, value.value()))
            .transpose()
    }

    async fn range(&self, request: RangeRequest) -> Result<RangePage, StorageError> {
        let db = Arc::clone(&self.shared.db);
        blocking(move || {
            let txn = db.begin_read().context("begin read")?;
            range_in(&txn, &request)
        })
        .await
    }

    async fn create(&self, key: &[u8], value: Vec<u8>) -> Result<KeyValue, StorageError> {
        Ok(self.write(key, WriteOp::Create(value)).await?.kv)
    }

    async fn update(
        &self,
        key: &[u8],
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<KeyValue, StorageError> {
        Ok(self.write(key, WriteOp::Update(value, expected)).await?.kv)
    }

    async fn delete(
        &self,
        key: &[u8],
        expected: Option<Revision>,
    ) -> Result<KeyValue, StorageError> {
        Ok(self.write(key, WriteOp::Delete(expected)).await?.kv)
    }

    async fn watch(&self, prefix: &[u8], after: Revision) -> Result<WatchStream, StorageError> {
        watch::watch(&self.shared, prefix.to_vec(), after).await
    }

    async fn current_revision(&self) -> Result<Revision, StorageError> {
        Ok(Revision(self.shared.revision.load(Ordering::Acquire)))
    }

    /// Compacting at or below the already compacted revision does nothing.
    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.compact(revision)).await
    }

    async fn compacted_revision(&self) -> Result<Revision, StorageError> {
        Ok(Revision(self.shared.compacted.load(Ordering::Acquire)))
    }
}

// === impl Shared ===

/// What the store and its blocking tasks share.
pub(crate) struct Shared {
    /// Watch streams hold only a `Weak` to this, so dropping the store closes the file.
    pub(crate) db: Arc<Database>,
    /// Held across commit and broadcast, so events are sent in revision order.
    writer: Mutex<()>,
    /// Writes waiting to be committed, in arrival order (see "Group commit").
    queue: Mutex<Vec<Queued>>,
    pub(crate) events: broadcast::Sender<Arc<Event>>,
    /// Caches of `meta`, updated after each commit.
    revision: AtomicU64,
    compacted: AtomicU64,
    /// Revisions kept by automatic compaction; 0 = off.
    history: u64,
    /// Write transactions committed (each one fsync), for tests of the batching.
    commits: AtomicU64,
}

/// A conditional write.
enum WriteOp {
    Create(Vec<u8>),
    Update(Vec<u8>, Revision),
    Delete(Option<Revision>),
}

impl Shared {
    /// Queues one write and returns once a durable commit holds it (or it failed); see "Group
    /// commit" in the crate docs.
    fn write(&self, key: Vec<u8>, op: WriteOp) -> Result<Event, StorageError> {
        let outcome = Arc::new(Outcome::default());
        self.lock_queue().push(Queued {
            key,
            op,
            outcome: Arc::clone(&outcome),
        });
        let _writer = self.lock_writer();
        loop {
            if let Some(result) = outcome.take() {
                return result;
            }
            // Still queued: every batch hands out its outcomes before the writer lock is
            // released, so this write is in the queue and this thread leads the next batch.
            let batch: Vec<Queued> = {
                let mut queue = self.lock_queue();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                return Err(StorageError::backend("redb: a queued write was lost"));
            }
            self.commit_batch(batch);
        }
    }

    /// Stages `batch` in one transaction, commits it, broadcasts its events and hands every
    /// caller its outcome. Must be called with the writer lock held.
    fn commit_batch(&self, batch: Vec<Queued>) {
        let (writes, outcomes): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|queued| ((queued.key, queued.op), queued.outcome))
            .unzip();
        let results = match self.apply_batch(writes) {
            Ok((results, meta)) => {
                self.revision.store(meta.revision, Ordering::Release);
                self.compacted.store(meta.compacted, Ordering::Release);
                if self.events.receiver_count() > 0 {
                    for event in results.iter().flatten() {
                        // An error means every receiver is gone, which is fine.
                        let _ = self.events.send(Arc::new(event.clone()));
                    }
                }
                results
            }
            Err(err) => {
                // Nothing of the batch was committed: every write in it failed.
                let message = err.to_string();
                outcomes
                    .iter()
                    .map(|_| Err(StorageError::backend(message.clone())))
                    .collect()
            }
        };
        for (outcome, result) in outcomes.iter().zip(results) {
            outcome.put(result);
        }
    }

    /// Stages each write in order in one transaction and commits it (unless no write succeeded).
    /// Returns each write's outcome and the new meta. `Err` when the transaction failed: then
    /// nothing was committed.
    fn apply_batch(
        &self,
        writes: Vec<(Vec<u8>, WriteOp)>,
    ) -> Result<(Vec<Result<Event, StorageError>>, Meta), StorageError> {
        let txn = self.db.begin_write().context("begin write")?;
        let mut results = Vec::with_capacity(writes.len());
        let meta = {
            let mut meta_table = txn.open_table(META).context("open meta table")?;
            let mut kv = txn.open_table(KV).context("open kv table")?;
            let mut log = txn.open_table(LOG).context("open log table")?;
            let mut meta = Meta::read(&meta_table)?;
            for (key, op) in writes {
                // A failed check stages nothing, so it fails only its own write.
                let event = match plan(&kv, meta.revision, &key, op) {
                    Ok(event) => event,
                    Err(err) => {
                        results.push(Err(err));
                        continue;
                    }
                };
                stage(&mut kv, &mut log, &event)?;
                meta.revision = event.kv.mod_revision.0;
                results.push(Ok(event));
            }
            if !results.iter().any(Result::is_ok) {
                // Nothing to write: drop (abort) the transaction instead of an empty fsync.
                return Ok((results, meta));
            }
            meta_table
                .insert(META_REVISION, meta.revision)
                .context("write meta table")?;
            if self.history > 0 && meta.revision > self.history {
                let target = meta.revision - self.history;
                if target > meta.compacted {
                    truncate_log(&mut log, &mut meta_table, target)?;
                    meta.compacted = target;
                }
            }
            meta
        };
        txn.commit().context("commit")?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok((results, meta))
    }

    /// Drops history at or below `revision`; see [`Storage::compact`].
    fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        let _writer = self.lock_writer();
        let txn = self.db.begin_write().context("begin write")?;
        let compacted = {
            let mut meta_table = txn.open_table(META).context("open meta table")?;
            let mut log = txn.open_table(LOG).context("open log table")?;
            let meta = Meta::read(&meta_table)?;
            if revision.0 > meta.revision {
                return Err(StorageError::FutureRevision {
                    requested: revision,
                    current: Revision(meta.revision),
                });
            }
            if revision.0 <= meta.compacted {
                return Ok(());
            }
            truncate_log(&mut log, &mut meta_table, revision.0)?;
            revision.0
        };
        txn.commit().context("commit")?;
        self.compacted.store(compacted, Ordering::Release);
        Ok(())
    }

    fn lock_queue(&self) -> MutexGuard<'_, Vec<Queued>> {
        // Pushing and draining a Vec cannot leave it half-done, so a poisoned lock is usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        // Poisoned only if a writer panicked; its transaction was dropped (aborted) then, so
        // nothing guarded by the lock is half-done and the lock can be taken over.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A write waiting in the queue.
struct Queued {
    key: Vec<u8>,
    op: WriteOp,
    outcome: Arc<Outcome>,
}

/// Where the leader of a batch leaves a write's result for its caller.
#[derive(Default)]
struct Outcome(Mutex<Option<Result<Event, StorageError>>>);

impl Outcome {
    fn put(&self, result: Result<Event, StorageError>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    }

    fn take(&self) -> Option<Result<Event, StorageError>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Checks `op` against the key's current state (after the writes staged before it) and builds
/// its event at the next revision. Reads only, so an `Err` leaves the transaction untouched.
fn plan(
    kv: &redb::Table<'_, &[u8], &[u8]>,
    current_revision: u64,
    key: &[u8],
    op: WriteOp,
) -> Result<Event, StorageError> {
    let existing = kv
        .get(key)
        .context("read kv table")?
        .map(|value| decode_stored(key, value.value()))
        .transpose()?;
    let revision = Revision(
        current_revision
            .checked_add(1)
            .ok_or_else(|| StorageError::backend("revision counter overflow"))?,
    );
    let event = match (op, existing) {
        (WriteOp::Create(value), None) => Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.to_vec(),
                value,
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        },
        (WriteOp::Create(_), Some(existing)) => {
            return Err(StorageError::AlreadyExists {
                existing: Box::new(existing),
            });
        }
        (WriteOp::Update(value, expected), Some(current)) if current.mod_revision == expected => {
            let kv = KeyValue {
                key: key.to_vec(),
                value,
                create_revision: current.create_revision,
                mod_revision: revision,
            };
            Event {
                kind: EventKind::Put,
                kv,
                prev: Some(current),
            }
        }
        (WriteOp::Delete(expected), Some(current))
            if expected.is_none_or(|expected| expected == current.mod_revision) =>
        {
            let kv = KeyValue {
                mod_revision: revision,
                ..current.clone()
            };
            Event {
                kind: EventKind::Delete,
                kv,
                prev: Some(current),
            }
        }
        (WriteOp::Update(..) | WriteOp::Delete(_), Some(current)) => {
            return Err(StorageError::Conflict {
                current: Box::new(current),
            });
        }
        (WriteOp::Update(..) | WriteOp::Delete(_), None) => return Err(StorageError::NotFound),
    };
    Ok(event)
}

/// Writes a planned event into the `kv` and `log` tables. An `Err` fails the whole batch.
fn stage(
    kv: &mut redb::Table<'_, &[u8], &[u8]>,
    log: &mut redb::Table<'_, u64, &[u8]>,
    event: &Event,
) -> Result<(), StorageError> {
    match event.kind {
        EventKind::Put => {
            kv.insert(event.kv.key.as_slice(), encode_stored(&event.kv).as_slice())
                .context("write kv table")?;
        }
        EventKind::Delete => {
            kv.remove(event.kv.key.as_slice())
                .context("write kv table")?;
        }
    }
    log.insert(event.kv.mod_revision.0, encode_event(event).as_slice())
        .context("write log table")?;
    Ok(())
}

// === tables ===

const KV: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

const META_FORMAT: &str = "format";
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// The `meta` table as of one transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub(crate) revision: u64,
    pub(crate) compacted: u64,
}

impl Meta {
    pub(crate) fn read(
        table: &impl ReadableTable<&'static str, u64>,
    ) -> Result<Self, StorageError> {
        let read = |name| {
            Ok::<_, StorageError>(
                table
                    .get(name)
                    .context("read meta table")?
                    .map_or(0, |v| v.value()),
            )
        };
        Ok(Meta {
            revision: read(META_REVISION)?,
            compacted: read(META_COMPACTED)?,
        })
    }
}

/// Creates the tables of a new database, or checks the format of an existing one.
fn initialize(db: &Database) -> Result<Meta, StorageError> {
    let txn = db.begin_write().context("begin write")?;
    let meta = {
        let mut meta_table = txn.open_table(META).context("open meta table")?;
        txn.open_table(KV).context("open kv table")?;
        txn.open_table(LOG).context("open log table")?;
        let format = meta_table
            .get(META_FORMAT)
            .context("read meta table")?
            .map(|v| v.value());
        let meta = Meta::read(&meta_table)?;
        match format {
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(StorageError::backend(format!(
                    "redb storage format {other} is not supported (expected {FORMAT_VERSION})"
                )));
            }
            None if meta.revision == 0 => {
                meta_table
                    .insert(META_FORMAT, FORMAT_VERSION)
                    .context("write meta table")?;
            }
            None => return Err(StorageError::backend("redb storage has no format version")),
        }
        meta
    };
    txn.commit().context("commit")?;
    Ok(meta)
}

/// Removes log entries at or below `revision` and records it as the compacted revision.
fn truncate_log(
    log: &mut redb::Table<'_, u64, &[u8]>,
    meta_table: &mut redb::Table<'_, &str, u64>,
    revision: u64,
) -> Result<(), StorageError> {
    log.retain_in::<u64, _>(..=revision, |_, _| false)
        .context("compact log table")?;
    meta_table
        .insert(META_COMPACTED, revision)
        .context("write meta table")?;
    Ok(())
}

// === range ===

/// Reads one page of `request` in the snapshot `txn`.
fn range_in(txn: &ReadTransaction, request: &RangeRequest) -> Result<RangePage, StorageError> {
    let meta = Meta::read(&txn.open_table(META).context("open meta table")?)?;
    let revision = match request.revision {
        None => meta.revision,
        Some(requested) if requested.0 > meta.revision => {
            return Err(StorageError::FutureRevision {
                requested,
                current: Revision(meta.revision),
            });
        }
        Some(requested) if requested.0 <= meta.compacted => {
            return Err(StorageError::Compacted {
                requested,
                compacted: Revision(meta.compacted),
            });
        }
        Some(requested) => requested.0,
    };
    let prefix = request.prefix.as_slice();
    let lower = match &request.start_after {
        Some(after) if after.as_slice() >= prefix => Bound::Excluded(after.as_slice()),
        _ => Bound::Included(prefix),
    };
    // The value at `revision` of every key changed since, when reading the past.
    let undo = if revision < meta.revision {
        undo_since(txn, prefix, revision)?
    } else {
        BTreeMap::new()
    };

    let kv = txn.open_table(KV).context("open kv table")?;
    let mut live = kv
        .range::<&[u8]>((lower, Bound::Unbounded))
        .context("read kv table")?;
    let mut live_next = next_with_prefix(&mut live, prefix)?;
    let mut past = undo.range::<[u8], _>((lower, Bound::Unbounded));
    let mut past_next = past.next();
    let mut page = PageBuilder::new(request.limit);
    // Merge the live keys with the undone ones; an undone key hides its live value.
    loop {
        let order = match (&live_next, &past_next) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((key, _)), Some((past_key, _))) => key.value().cmp(past_key.as_slice()),
        };
        if order.is_le() {
            let (key, value) = live_next.take().ok_or_else(unreachable_merge)?;
            if order.is_lt() {
                page.push_with(|| decode_stored(key.value(), value.value()))?;
            }
            live_next = next_with_prefix(&mut live, prefix)?;
        }
        if order.is_ge() {
            let (_, past_kv) = past_next.take().ok_or_else(unreachable_merge)?;
            if let Some(past_kv) = past_kv {
                page.push_with(|| Ok(past_kv.clone()))?;
            }
            past_next = past.next();
        }
    }
    Ok(page.finish(Revision(revision)))
}

type KvEntry = (
    AccessGuard<'static, &'static [u8]>,
    AccessGuard<'static, &'static [u8]>,
);

fn next_with_prefix(
    range: &mut redb::Range<'static, &'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<Option<KvEntry>, StorageError> {
    match range.next() {
        None => Ok(None),
        Some(entry) => {
            let (key, value) = entry.context("read kv table")?;
            Ok(key.value().starts_with(prefix).then_some((key, value)))
        }
    }
}

fn unreachable_merge() -> StorageError {
    // The merge only takes a side it has just seen to be `Some`.
    StorageError::backend("range merge out of step")
}

/// For every key under `prefix` changed after `revision`, its key-value at `revision` (`None` =
/// absent then): the `prev` of its first logged change after `revision`.
fn undo_since(
    txn: &ReadTransaction,
    prefix: &[u8],
    revision: u64,
) -> Result<BTreeMap<Vec<u8>, Option<KeyValue>>, StorageError> {
    let log = txn.open_table(LOG).context("open log table")?;
    let mut undo = BTreeMap::new();
    for entry in log
        .range::<u64>((Bound::Excluded(revision), Bound::Unbounded))
        .context("read log table")?
    {
        let (at, bytes) = entry.context("read log table")?;
        let event = decode_event(at.value(), bytes.value())?;
        if event.kv.key.starts_with(prefix) {
            undo.entry(event.kv.key).or_insert(event.prev);
        }
    }
    Ok(undo)
}

/// Collects the first `limit` keys of a range and counts the rest.
struct PageBuilder {
    limit: usize,
    kvs: Vec<KeyValue>,
    remaining: u64,
}

impl PageBuilder {
    fn new(limit: usize) -> Self {
        PageBuilder {
            limit,
            kvs: Vec::new(),
            remaining: 0,
        }
    }

    /// Adds the next key, decoding it with `kv` only if it lands on the page.
    fn push_with(
        &mut self,
        kv: impl FnOnce() -> Result<KeyValue, StorageError>,
    ) -> Result<(), StorageError> {
        if self.limit == 0 || self.kvs.len() < self.limit {
            self.kvs.push(kv()?);
        } else {
            self.remaining += 1;
        }
        Ok(())
    }

    fn finish(self, revision: Revision) -> RangePage {
        RangePage {
            kvs: self.kvs,
            more: self.remaining > 0,
            remaining: self.remaining,
            revision,
        }
    }
}

// === helpers ===

/// Runs blocking redb work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(err) if err.is_cancelled() => Err(StorageError::Closed),
        Err(_) => Err(StorageError::backend("redb storage task panicked")),
    }
}

/// Maps a redb error into [`StorageError::Backend`], naming what was being done. redb's messages
/// name tables, sizes and IO causes, never stored bytes.
pub(crate) trait Context<T> {
    fn context(self, what: &str) -> Result<T, StorageError>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, StorageError> {
        self.map_err(|err| StorageError::backend(format_args!("redb: {what}: {err}")))
    }
}

/// The default of [`RedbOptions::history`].
const DEFAULT_HISTORY: usize = 10_000;

/// The most writes committed in one transaction (see "Group commit"): enough to amortize the
/// fsync over every write a busy server has in flight, small enough to bound a batch's memory
/// and the latency of its first write.
pub const MAX_BATCH: usize = 256;

/// Events buffered per watcher before it has to catch up from the log.
const WATCH_BUFFER: usize = 1024;

#[cfg(test)]
mod tests;
