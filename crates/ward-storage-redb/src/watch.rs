//! Watch streams: history replay from the log, then live events, joined with no gap.
//!
//! A stream subscribes to the store's broadcast *before* it reads the log. Every event committed
//! after the log snapshot is therefore also in its broadcast receiver, and every event in the
//! snapshot is skipped when it arrives live, because the stream remembers the highest revision it
//! has handled (`position`). The log is read in pages of [`PAGE`] revisions, so replaying a long
//! history holds only one page in memory.
//!
//! When the receiver lags (the broadcast buffer overflowed), the stream goes back to reading the
//! log from `position`. If that revision has been compacted meanwhile, it yields
//! [`StorageError::Compacted`] and ends, as etcd cancels a watcher that fell behind compaction.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::{Arc, Weak};

use redb::{Database, ReadableDatabase};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use ward_storage::{Event, Revision, StorageError, WatchItem, WatchStream};

use crate::codec::decode_event;
use crate::{Context, LOG, META, Meta, Shared, blocking};

/// Starts a watch of `prefix` after `after`; see [`ward_storage::Storage::watch`].
pub(crate) async fn watch(
    shared: &Arc<Shared>,
    prefix: Vec<u8>,
    after: Revision,
) -> Result<WatchStream, StorageError> {
    // Subscribe first: see the module docs.
    let live = shared.events.subscribe();
    let mut watcher = Watcher {
        db: Arc::downgrade(&shared.db),
        prefix,
        live,
        pending: VecDeque::new(),
        position: after,
        caught_up: false,
        done: false,
    };
    // The first page is read now, so a compacted `after` fails the call, not the stream.
    watcher.read_page().await?;
    Ok(Box::pin(futures_util::stream::unfold(
        watcher,
        Watcher::next,
    )))
}

/// The state of one watch stream.
struct Watcher {
    db: Weak<Database>,
    prefix: Vec<u8>,
    live: broadcast::Receiver<Arc<Event>>,
    /// Events read from the log and not yet yielded.
    pending: VecDeque<Event>,
    /// Every revision up to this one has been yielded or filtered out.
    position: Revision,
    /// The log has been read up to the revision current at the time of the read.
    caught_up: bool,
    /// The stream has yielded its final error.
    done: bool,
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<WatchItem, StorageError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(WatchItem::Event(event)), self));
            }
            if !self.caught_up {
                if let Err(err) = self.read_page().await {
                    self.done = true;
                    return Some((Err(err), self));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    let revision = event.kv.mod_revision;
                    if revision <= self.position {
                        continue;
                    }
                    self.position = revision;
                    if event.kv.key.starts_with(&self.prefix) {
                        let event = Event::clone(&event);
                        return Some((Ok(WatchItem::Event(event)), self));
                    }
                }
                Err(RecvError::Lagged(_)) => self.caught_up = false,
                Err(RecvError::Closed) => {
                    self.done = true;
                    return Some((Err(StorageError::Closed), self));
                }
            }
        }
    }

    /// Reads the next page of the log after `position` into `pending`.
    ///
    /// `Err(Compacted)` if `position` is below the compacted revision; `Err(Closed)` if the store
    /// was dropped.
    async fn read_page(&mut self) -> Result<(), StorageError> {
        let db = self.db.upgrade().ok_or(StorageError::Closed)?;
        let prefix = self.prefix.clone();
        let after = self.position;
        let page = blocking(move || read_log(&db, &prefix, after)).await?;
        self.pending.extend(page.events);
        self.position = page.position;
        self.caught_up = page.caught_up;
        Ok(())
    }
}

/// Up to [`PAGE`] revisions of the log.
struct LogPage {
    /// The events under the prefix, in revision order.
    events: Vec<Event>,
    /// The last revision read (or `after` if none was).
    position: Revision,
    /// `position` is the current revision of the snapshot.
    caught_up: bool,
}

fn read_log(db: &Database, prefix: &[u8], after: Revision) -> Result<LogPage, StorageError> {
    let txn = db.begin_read().context("begin read")?;
    let meta = Meta::read(&txn.open_table(META).context("open meta table")?)?;
    if after.0 < meta.compacted {
        return Err(StorageError::Compacted {
            requested: after,
            compacted: Revision(meta.compacted),
        });
    }
    let log = txn.open_table(LOG).context("open log table")?;
    let mut events = Vec::new();
    let mut position = after;
    for entry in log
        .range::<u64>((Bound::Excluded(after.0), Bound::Unbounded))
        .context("read log table")?
        .take(PAGE)
    {
        let (revision, bytes) = entry.context("read log table")?;
        let event = decode_event(revision.value(), bytes.value())?;
        position = event.kv.mod_revision;
        if event.kv.key.starts_with(prefix) {
            events.push(event);
        }
    }
    Ok(LogPage {
        events,
        position,
        caught_up: position.0 >= meta.revision,
    })
}

/// Log revisions read per page while replaying or catching up (small in tests, to cross pages).
pub(crate) const PAGE: usize = if cfg!(test) { 4 } else { 512 };
