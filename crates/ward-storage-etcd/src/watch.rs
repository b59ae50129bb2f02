//! Watch streams, and the probe that finds etcd's compacted revision.
//!
//! A contract watch "after `r`" is an etcd watch from `r + 1` with `prev_kv`, so delete events can
//! carry the deleted value as the contract asks. etcd sends a "created" reply first (no events),
//! then events in revision order, possibly several per reply. A reply without events is a
//! progress notification. A reply with `canceled` ends the watch: with a `compact_revision` when
//! the start revision was compacted (etcd reports that asynchronously, after "created"), with a
//! reason otherwise.
//!
//! Because etcd reports a compacted start only after the watch is created, [`watch`] first checks
//! with a count-only `Range` at the start revision, so a compacted `after` fails the call rather
//! than the stream, as in the embedded backend. A compaction between that check and the watch's
//! creation still shows up, as the stream's first item.
//!
//! When the connection breaks, the stream yields one [`StorageError::Backend`] and ends; it does
//! not reconnect (the caller re-watches after the last revision it saw).

use std::collections::VecDeque;

use etcd_client::proto::{PbEvent, PbWatchResponse};
use etcd_client::{GetOptions, WatchOptions};
use ward_storage::{Event, EventKind, KeyValue, Revision, StorageError, WatchItem, WatchStream};

use crate::error::Failure;
use crate::{
    EtcdStorage, KeyMap, etcd_revision, header_revision, inconsistent, key_value, prefix_end,
};

/// Starts a watch of `prefix` after `after`; see [`ward_storage::Storage::watch`].
pub(crate) async fn watch(
    store: &EtcdStorage,
    prefix: &[u8],
    after: Revision,
) -> Result<WatchStream, StorageError> {
    let start = etcd_revision(Revision(after.0.saturating_add(1)));

    // A read at the start revision fails exactly when a watch from it would be cancelled.
    let check = GetOptions::new().with_count_only().with_revision(start);
    match store.range_raw("watch", store.probe_key(), check).await {
        // A future start is fine: the watch waits for it.
        Ok(_) | Err(Failure::FutureRevision) => {}
        Err(Failure::Compacted) => {
            return Err(StorageError::Compacted {
                requested: after,
                compacted: compacted_revision(store).await?,
            });
        }
        Err(Failure::Other(err)) => return Err(err),
    }

    let mut key = store.etcd_key(prefix);
    let end = prefix_end(&key);
    if key.is_empty() {
        key.push(0);
    }
    let options = WatchOptions::new()
        .with_range(end)
        .with_start_revision(start)
        .with_prev_key()
        .with_progress_notify();
    let mut client = store.watch_client();
    let mut watcher = Watcher {
        stream: store
            .timed("watch", client.watch(key, Some(options)))
            .await
            .map_err(|f| f.into_error("watch"))?,
        keys: store.keys.clone(),
        pending: VecDeque::new(),
        position: after,
        done: false,
    };
    // The "created" reply, so a refused watch fails the call.
    let created = store
        .timed("watch", watcher.stream.message())
        .await
        .map_err(|f| f.into_error("watch"))?;
    match created {
        Some(resp) if resp.0.created && !resp.0.canceled => {}
        Some(resp) => watcher.absorb(resp.0)?,
        None => {
            return Err(StorageError::backend(
                "etcd watch: the stream ended at once",
            ));
        }
    }
    Ok(Box::pin(futures_util::stream::unfold(
        watcher,
        Watcher::next,
    )))
}

/// etcd's compacted revision, in contract terms (etcd's minus one); see the crate docs.
pub(crate) async fn compacted_revision(store: &EtcdStorage) -> Result<Revision, StorageError> {
    const OP: &str = "read the compacted revision";
    // etcd's revisions start at 1, so a read at 1 works unless something was compacted.
    let check = GetOptions::new().with_count_only().with_revision(1);
    match store.range_raw(OP, store.probe_key(), check).await {
        Ok(_) => return Ok(Revision(0)),
        Err(Failure::Compacted) => {}
        Err(failure) => return Err(failure.into_error(OP)),
    }
    // A watch from revision 1 is cancelled with the compacted revision.
    let options = WatchOptions::new().with_start_revision(1);
    let mut client = store.watch_client();
    let probe = async {
        let mut stream = client.watch(store.probe_key(), Some(options)).await?;
        while let Some(resp) = stream.message().await? {
            if resp.0.canceled {
                return Ok(Some(resp.0));
            }
        }
        Ok(None)
    };
    match store.timed(OP, probe).await.map_err(|f| f.into_error(OP))? {
        Some(resp) if resp.compact_revision > 0 => Ok(Revision(
            crate::to_revision(resp.compact_revision, "compact revision")?.0 - 1,
        )),
        Some(resp) => Err(StorageError::backend(format!(
            "etcd {OP}: the probe watch was cancelled: {}",
            resp.cancel_reason
        ))),
        None => Err(StorageError::backend(format!(
            "etcd {OP}: the probe watch ended"
        ))),
    }
}

/// The state of one watch stream.
struct Watcher {
    stream: etcd_client::WatchStream,
    /// Maps etcd's keys back to Ward's.
    keys: KeyMap,
    /// Items received and not yet yielded.
    pending: VecDeque<WatchItem>,
    /// Every change up to this revision has been yielded.
    position: Revision,
    /// Set once the stream failed or was cancelled: nothing more is read.
    done: bool,
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<WatchItem, StorageError>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some((Ok(item), self));
            }
            if self.done {
                return None;
            }
            let failed = match self.stream.message().await {
                Ok(Some(resp)) => match self.absorb(resp.0) {
                    Ok(()) => continue,
                    Err(err) => err,
                },
                Ok(None) => StorageError::backend("etcd watch: etcd closed the stream"),
                Err(err) => Failure::classify("watch", &err).into_error("watch"),
            };
            self.done = true;
            return Some((Err(failed), self));
        }
    }

    /// Queues the items of one etcd reply. An error ends the stream; events queued before it are
    /// dropped with it (the caller re-watches after the last revision it saw).
    fn absorb(&mut self, resp: PbWatchResponse) -> Result<(), StorageError> {
        if resp.canceled {
            self.done = true;
            if resp.compact_revision > 0 {
                let compacted = crate::to_revision(resp.compact_revision, "compact revision")?;
                return Err(StorageError::Compacted {
                    requested: self.position,
                    compacted: Revision(compacted.0 - 1),
                });
            }
            return Err(StorageError::backend(format!(
                "etcd watch: cancelled by etcd: {}",
                resp.cancel_reason
            )));
        }
        if resp.created {
            return Ok(());
        }
        if resp.events.is_empty() {
            // etcd sends progress only to watchers that have sent everything up to it.
            let revision = header_revision(resp.header.as_ref())?;
            self.position = self.position.max(revision);
            self.pending.push_back(WatchItem::Progress(revision));
            return Ok(());
        }
        for event in resp.events {
            let event = event_from_etcd(&self.keys, event)?;
            self.position = event.kv.mod_revision;
            self.pending.push_back(WatchItem::Event(event));
        }
        Ok(())
    }
}

/// An etcd event as a contract one. A delete takes its value and `create_revision` from
/// `prev_kv`, and the delete's revision as `mod_revision`.
fn event_from_etcd(keys: &KeyMap, event: PbEvent) -> Result<Event, StorageError> {
    let PbEvent {
        r#type: kind,
        kv,
        prev_kv,
    } = event;
    let kv = kv.ok_or_else(|| inconsistent("watch", "an event without a key-value"))?;
    let prev = prev_kv.map(|prev| key_value(keys, prev)).transpose()?;
    match kind {
        PUT => Ok(Event {
            kind: EventKind::Put,
            kv: key_value(keys, kv)?,
            prev,
        }),
        DELETE => {
            // etcd leaves prev_kv out when the previous revision was compacted meanwhile.
            let prev = prev.ok_or_else(|| {
                StorageError::backend(
                    "etcd watch: a delete event without the deleted value (compacted meanwhile)",
                )
            })?;
            let deleted = KeyValue {
                mod_revision: crate::to_revision(kv.mod_revision, "mod_revision")?,
                ..prev.clone()
            };
            Ok(Event {
                kind: EventKind::Delete,
                kv: deleted,
                prev: Some(prev),
            })
        }
        _ => Err(inconsistent("watch", "an event of unknown type")),
    }
}

/// `mvccpb.Event.EventType` values.
const PUT: i32 = 0;
const DELETE: i32 = 1;
