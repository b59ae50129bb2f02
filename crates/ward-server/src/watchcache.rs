//! The watch cache: one storage watch per resource, shared by every API watch of that resource.
//!
//! kube-apiserver keeps one etcd watch per resource and serves its watchers from memory; Ward does
//! the same, on either backend. Each resource has a pump task that follows the storage from the
//! revision at which it started and keeps the recent events in a bounded buffer (by count and by
//! bytes). An API watch "after `r`":
//! - is served from the cache when every change after `r` is still buffered (or yet to come): the
//!   buffered events after `r` first, then live ones through a broadcast channel;
//! - falls back to its own storage watch when `r` is older than the buffer, which then answers
//!   from the backend's history or with 410 `Expired` as before.
//!
//! Events are decoded (decrypted and parsed) at most once, by the first watcher that needs them,
//! and their plain JSON watch lines are encoded once per event type and shared. Decoded objects
//! live only while a change is being sent to the live watchers (tokio's broadcast drops a value
//! once every receiver has taken it); the buffer keeps stored, encrypted bytes, and a replay
//! from it decodes a copy of its own.
//!
//! When the storage watch breaks (etcd restarted, leader changed, connection lost) the pump
//! re-watches from the last revision it saw, with backoff; watchers notice nothing. When that
//! revision has been compacted the cache cannot prove it missed nothing: every cached watcher gets
//! a 410 `Expired` (clients relist) and the cache starts again from the current revision.
//!
//! A watcher that falls more than the channel's depth behind is ended, as kube-apiserver ends slow
//! watchers; its client re-watches from the last revision it received.
//!
//! # Consistent reads
//!
//! On backends where a read is a network round trip (etcd: [`Storage::prefix_summary`] answers),
//! the cache also holds every object of the resource (their stored, still encrypted values:
//! plaintext is not kept), filled by a list at the revision the watch starts from and kept up to
//! date by the events. A GET or the first page of a LIST without a resourceVersion is then
//! served from memory once the cache is proved current: a prefix summary (count and newest
//! `mod_revision`, one small etcd read) taken *after* the request arrived must match the cache, or
//! the cache must have seen an event at or after the summary's revision. Concurrent reads share
//! one summary read (each waits for the first that starts after it arrived), so under load etcd
//! sees one small read per round trip instead of one per request. When the cache cannot be
//! proved current within a second, or the summary fails, the read goes to the store as before.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::sync::{Notify, OnceCell, broadcast, watch};
use tracing::{debug, warn};
use ward_api::ApiError;
use ward_api::resources::{RESOURCES, ResourceInfo};
use ward_storage::{
    EventKind, KeyValue, PrefixSummary, RangeRequest, Revision, Storage, StorageError, WatchItem,
    WatchStream,
};

use crate::store::{ObjectStore, storage_error};

/// Events kept per resource.
const MAX_EVENTS: usize = 4096;
/// Bytes of stored values kept per resource.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// How far a watcher may fall behind the live events before it is ended.
const CHANNEL_DEPTH: usize = 4096;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long a read waits for the cache to be proved current before it goes to the store.
const READ_WAIT: Duration = Duration::from_secs(1);

/// One storage change, decoded on first use.
pub(crate) struct CachedEvent {
    pub(crate) kind: EventKind,
    pub(crate) revision: Revision,
    kv: KeyValue,
    prev: Option<KeyValue>,
    object: OnceCell<Result<Value, ApiError>>,
    prev_object: OnceCell<Option<Value>>,
    /// Plain JSON watch lines, per event type (`ADDED`, `MODIFIED`, `DELETED`).
    lines: [OnceLock<Bytes>; 3],
}

impl CachedEvent {
    pub(crate) fn new(event: ward_storage::Event) -> Self {
        CachedEvent {
            kind: event.kind,
            revision: event.kv.mod_revision,
            kv: event.kv,
            prev: event.prev,
            object: OnceCell::new(),
            prev_object: OnceCell::new(),
            lines: Default::default(),
        }
    }

    /// The same change, not decoded yet: what the buffer keeps, so that decrypted objects live
    /// only while watchers are being sent the change (a replay decodes its own copy).
    fn undecoded_copy(&self) -> Self {
        CachedEvent {
            kind: self.kind,
            revision: self.revision,
            kv: self.kv.clone(),
            prev: self.prev.clone(),
            object: OnceCell::new(),
            prev_object: OnceCell::new(),
            lines: Default::default(),
        }
    }

    fn size(&self) -> usize {
        self.kv.key.len()
            + self.kv.value.len()
            + self
                .prev
                .as_ref()
                .map_or(0, |p| p.key.len() + p.value.len())
    }

    /// The object after the change (for a delete: its last state, at the delete's revision).
    pub(crate) async fn object(
        &self,
        store: &ObjectStore,
        info: &ResourceInfo,
    ) -> &Result<Value, ApiError> {
        self.object
            .get_or_init(|| store.decode(info, &self.kv, self.revision))
            .await
    }

    /// The object before the change, when there was one and it decodes.
    pub(crate) async fn prev_object(
        &self,
        store: &ObjectStore,
        info: &ResourceInfo,
    ) -> Option<&Value> {
        self.prev_object
            .get_or_init(|| async {
                match &self.prev {
                    Some(prev) => store.decode(info, prev, prev.mod_revision).await.ok(),
                    None => None,
                }
            })
            .await
            .as_ref()
    }

    pub(crate) fn had_prev(&self) -> bool {
        self.prev.is_some()
    }

    /// The plain JSON line for `kind`, encoded once by `encode`.
    pub(crate) fn line(&self, kind: &str, encode: impl FnOnce() -> Bytes) -> Bytes {
        let slot = match kind {
            "ADDED" => &self.lines[0],
            "MODIFIED" => &self.lines[1],
            _ => &self.lines[2],
        };
        slot.get_or_init(encode).clone()
    }
}

/// What the pump broadcasts.
#[derive(Clone)]
pub(crate) enum Msg {
    Event(Arc<CachedEvent>),
    Progress(Revision),
    /// The cache lost continuity; watchers end with this error.
    Reset(ApiError),
}

/// The cached state of one resource.
struct State {
    events: VecDeque<Arc<CachedEvent>>,
    bytes: usize,
    /// Every change after this revision is in `events` or yet to come; `None` while the pump has
    /// not started (watchers then use their own storage watch).
    since: Option<Revision>,
    /// The last revision the pump has seen.
    position: Revision,
    /// Every object, when reads are served from the cache.
    objects: Option<Objects>,
}

/// The objects of one resource, as stored, at revision `at`.
struct Objects {
    by_key: std::collections::BTreeMap<Vec<u8>, KeyValue>,
    /// The `mod_revision`s of `by_key`, for the newest one.
    mods: std::collections::BTreeSet<Revision>,
    /// The state is exact at this revision: the list's, then each event's.
    at: Revision,
}

impl Objects {
    fn new(kvs: Vec<KeyValue>, at: Revision) -> Self {
        let mods = kvs.iter().map(|kv| kv.mod_revision).collect();
        let by_key = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        Objects { by_key, mods, at }
    }

    fn apply(&mut self, event: &CachedEvent) {
        let old = match event.kind {
            EventKind::Put => self.by_key.insert(event.kv.key.clone(), event.kv.clone()),
            EventKind::Delete => self.by_key.remove(&event.kv.key),
        };
        if let Some(old) = old {
            self.mods.remove(&old.mod_revision);
        }
        if event.kind == EventKind::Put {
            self.mods.insert(event.kv.mod_revision);
        }
        self.at = self.at.max(event.revision);
    }

    /// The revision at which the cache is proved to hold `summary`'s state (or a later one).
    fn current_as_of(&self, summary: &PrefixSummary) -> Option<Revision> {
        if self.at >= summary.revision {
            return Some(self.at);
        }
        let newest = self.mods.last().copied().unwrap_or_default();
        (self.by_key.len() as u64 == summary.count && newest == summary.max_mod_revision)
            .then_some(summary.revision)
    }
}

/// One prefix-summary read at a time per resource, shared by every read waiting for it.
#[derive(Default)]
struct ProbeState {
    /// Summaries started so far (the one running, if any, is number `started`).
    started: u64,
    /// The highest summary number a reader waits for.
    wanted: u64,
    running: bool,
}

struct ResourceCache {
    info: &'static ResourceInfo,
    state: Mutex<State>,
    tx: broadcast::Sender<Msg>,
    /// Woken after each event, for reads waiting for the cache to catch up.
    changed: Notify,
    probe: Mutex<ProbeState>,
    /// The last finished summary: its number and result.
    probed: watch::Sender<(u64, Option<PrefixSummary>)>,
}

/// Every resource's cache.
#[derive(Clone)]
pub(crate) struct WatchCache {
    store: ObjectStore,
    resources: Arc<HashMap<&'static str, Arc<ResourceCache>>>,
}

/// The source of one API watch's items.
pub(crate) enum Feed {
    Cached {
        backlog: VecDeque<Arc<CachedEvent>>,
        rx: broadcast::Receiver<Msg>,
        prefix: Vec<u8>,
        after: Revision,
    },
    Direct(WatchStream),
}

/// One item of a [`Feed`].
pub(crate) enum FeedItem {
    Event(Arc<CachedEvent>),
    Progress(Revision),
    /// Send this error and end.
    Error(ApiError),
    /// End quietly (the client re-watches).
    End,
}

impl Feed {
    pub(crate) async fn next(&mut self, info: &ResourceInfo) -> FeedItem {
        match self {
            Feed::Cached {
                backlog,
                rx,
                prefix,
                after,
            } => {
                if let Some(ev) = backlog.pop_front() {
                    return FeedItem::Event(ev);
                }
                loop {
                    match rx.recv().await {
                        Ok(Msg::Event(ev)) => {
                            if ev.revision > *after && ev.kv.key.starts_with(prefix) {
                                return FeedItem::Event(ev);
                            }
                        }
                        Ok(Msg::Progress(rev)) => return FeedItem::Progress(rev),
                        Ok(Msg::Reset(e)) => return FeedItem::Error(e),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            debug!(
                                resource = info.resource,
                                missed = n,
                                "ending a slow watcher"
                            );
                            return FeedItem::End;
                        }
                        Err(broadcast::error::RecvError::Closed) => return FeedItem::End,
                    }
                }
            }
            Feed::Direct(stream) => match stream.next().await {
                None => FeedItem::End,
                Some(Ok(WatchItem::Progress(rev))) => FeedItem::Progress(rev),
                Some(Ok(WatchItem::Event(ev))) => FeedItem::Event(Arc::new(CachedEvent::new(ev))),
                Some(Err(e)) => FeedItem::Error(storage_error(info, "", e)),
            },
        }
    }
}

impl WatchCache {
    /// Starts one pump per persisted resource; they stop when `shutdown` turns true.
    pub(crate) fn start(store: ObjectStore, shutdown: watch::Receiver<bool>) -> Self {
        let mut resources = HashMap::new();
        for info in RESOURCES.iter().filter(|r| r.persisted) {
            let (tx, _) = broadcast::channel(CHANNEL_DEPTH);
            let cache = Arc::new(ResourceCache {
                info,
                state: Mutex::new(State {
                    events: VecDeque::new(),
                    bytes: 0,
                    since: None,
                    position: Revision(0),
                    objects: None,
                }),
                tx,
                changed: Notify::new(),
                probe: Mutex::new(ProbeState::default()),
                probed: watch::Sender::new((0, None)),
            });
            tokio::spawn(pump(cache.clone(), store.clone(), shutdown.clone()));
            resources.insert(info.resource, cache);
        }
        WatchCache {
            store,
            resources: Arc::new(resources),
        }
    }

    /// A feed of the changes under `prefix` after `after`: from the cache when it covers
    /// `after`, else from a storage watch of its own.
    pub(crate) async fn watch(
        &self,
        info: &'static ResourceInfo,
        prefix: &[u8],
        after: Revision,
    ) -> Result<Feed, StorageError> {
        if let Some(cache) = self.resources.get(info.resource)
            && let Some(feed) = cache.subscribe(prefix, after)
        {
            count(info.resource, |c| c.served_cached += 1);
            return Ok(feed);
        }
        count(info.resource, |c| c.served_storage += 1);
        self.store
            .storage
            .watch(prefix, after)
            .await
            .map(Feed::Direct)
    }
}

/// A page of objects read from the cache.
pub(crate) struct CachedPage {
    pub(crate) kvs: Vec<KeyValue>,
    pub(crate) revision: Revision,
    pub(crate) remaining: u64,
}

impl WatchCache {
    /// A consistent GET of `key` from the cache: `Some(None)` when it does not exist; `None`
    /// when the cache cannot answer (the caller reads the store).
    pub(crate) async fn get(&self, info: &ResourceInfo, key: &[u8]) -> Option<Option<KeyValue>> {
        let cache = self.resources.get(info.resource)?;
        let found = cache
            .read(&self.store.storage, |objects, _| {
                objects.by_key.get(key).cloned()
            })
            .await;
        count(info.resource, |c| match found {
            Some(_) => c.reads_cached += 1,
            None => c.reads_storage += 1,
        });
        found
    }

    /// A consistent first page (`limit` 0 = all) of the keys under `prefix`; `None` when the
    /// cache cannot answer.
    pub(crate) async fn list(
        &self,
        info: &ResourceInfo,
        prefix: &[u8],
        limit: usize,
    ) -> Option<CachedPage> {
        let cache = self.resources.get(info.resource)?;
        let page = cache
            .read(&self.store.storage, |objects, revision| {
                let mut under = objects
                    .by_key
                    .range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, kv)| kv);
                let kvs: Vec<KeyValue> = match limit {
                    0 => under.by_ref().cloned().collect(),
                    n => under.by_ref().take(n).cloned().collect(),
                };
                CachedPage {
                    kvs,
                    revision,
                    remaining: under.count() as u64,
                }
            })
            .await;
        count(info.resource, |c| match page {
            Some(_) => c.reads_cached += 1,
            None => c.reads_storage += 1,
        });
        page
    }
}

impl ResourceCache {
    /// Runs `read` on the objects once they are proved current as of a summary taken after this
    /// call began; `None` when the cache holds no objects or cannot be proved current in time.
    async fn read<T>(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        read: impl FnOnce(&Objects, Revision) -> T,
    ) -> Option<T> {
        self.lock().objects.as_ref()?;
        let summary = self.fresh_summary(storage).await?;
        let deadline = tokio::time::Instant::now() + READ_WAIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                let objects = state.objects.as_ref()?;
                if let Some(revision) = objects.current_as_of(&summary) {
                    return Some(read(objects, revision));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                debug!(
                    resource = self.info.resource,
                    "watch cache not current in time; reading the store"
                );
                return None;
            }
        }
    }

    /// A prefix summary read after this call began, shared with concurrent callers.
    async fn fresh_summary(self: &Arc<Self>, storage: &Arc<dyn Storage>) -> Option<PrefixSummary> {
        let mut done = self.probed.subscribe();
        let need = {
            let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
            let need = probe.started + 1;
            probe.wanted = probe.wanted.max(need);
            if !probe.running {
                probe.running = true;
                probe.started = need;
                tokio::spawn(probe_loop(self.clone(), storage.clone()));
            }
            need
        };
        loop {
            let (number, summary) = *done.borrow_and_update();
            if number >= need {
                return summary;
            }
            done.changed().await.ok()?;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribe(&self, prefix: &[u8], after: Revision) -> Option<Feed> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let since = state.since?;
        if after < since {
            return None;
        }
        let backlog = state
            .events
            .iter()
            .filter(|e| e.revision > after && e.kv.key.starts_with(prefix))
            .map(|e| Arc::new(e.undecoded_copy()))
            .collect();
        // Subscribing under the lock: no event falls between the backlog and the channel.
        let rx = self.tx.subscribe();
        Some(Feed::Cached {
            backlog,
            rx,
            prefix: prefix.to_vec(),
            after,
        })
    }

    fn push(&self, event: CachedEvent) {
        let event = Arc::new(event);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.position = state.position.max(event.revision);
        if let Some(objects) = state.objects.as_mut() {
            objects.apply(&event);
        }
        state.bytes += event.size();
        // The broadcast copy is decoded by the first live watcher and freed once every watcher
        // has taken it; the buffer keeps the stored (encrypted) bytes only.
        state.events.push_back(Arc::new(event.undecoded_copy()));
        while state.events.len() > MAX_EVENTS || state.bytes > MAX_BYTES {
            let Some(old) = state.events.pop_front() else {
                break;
            };
            state.bytes -= old.size();
            state.since = Some(old.revision);
        }
        let rev = event.revision;
        let _ = self.tx.send(Msg::Event(event));
        drop(state);
        self.changed.notify_waiters();
        count(self.info.resource, |c| {
            c.received += 1;
            c.revision = rev.0;
        });
    }

    fn progress(&self, rev: Revision) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.position = state.position.max(rev);
        let _ = self.tx.send(Msg::Progress(rev));
    }

    /// Forgets everything: watchers get 410 and the pump starts again from the current revision.
    fn reset(&self, error: ApiError) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.events.clear();
        state.bytes = 0;
        state.since = None;
        state.objects = None;
        let _ = self.tx.send(Msg::Reset(error));
    }

    fn begin(&self, rev: Revision, objects: Option<Objects>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.since = Some(rev);
        state.position = rev;
        state.objects = objects;
        drop(state);
        count(self.info.resource, |c| {
            c.initializations += 1;
            c.revision = rev.0;
        });
    }

    fn position(&self) -> Option<Revision> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.since.map(|_| state.position)
    }
}

/// Follows one resource's storage watch for the life of the server.
async fn pump(cache: Arc<ResourceCache>, store: ObjectStore, mut shutdown: watch::Receiver<bool>) {
    let info = cache.info;
    let prefix = info.key_prefix(None).into_bytes();
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let follow = async {
            let position = match cache.position() {
                Some(p) => p,
                // Where reads are worth caching, start from a list of every object.
                None => match store.storage.prefix_summary(&prefix).await? {
                    Some(_) => {
                        let (kvs, revision) = list_all(&store, &prefix).await?;
                        cache.begin(revision, Some(Objects::new(kvs, revision)));
                        revision
                    }
                    None => {
                        let rev = store.storage.current_revision().await?;
                        cache.begin(rev, None);
                        rev
                    }
                },
            };
            let mut stream = store.storage.watch(&prefix, position).await?;
            backoff = BACKOFF_MIN;
            while let Some(item) = stream.next().await {
                match item? {
                    WatchItem::Event(ev) => cache.push(CachedEvent::new(ev)),
                    WatchItem::Progress(rev) => cache.progress(rev),
                }
            }
            Err(StorageError::backend("the storage watch ended"))
        };
        let result: Result<(), StorageError> = tokio::select! {
            r = follow => r,
            _ = shutdown.changed() => return,
        };
        match result {
            Err(e @ StorageError::Compacted { .. }) => {
                warn!(resource = info.resource, error = %e, "watch cache fell behind compaction; watchers must relist");
                cache.reset(storage_error(info, "", e));
                backoff = BACKOFF_MIN;
            }
            Err(e) => {
                debug!(resource = info.resource, error = %e, "watch cache: re-watching");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Ok(()) => {}
        }
    }
}

/// Counters of one resource's cache, for `/metrics`.
#[derive(Clone, Copy, Default)]
struct Counters {
    received: u64,
    initializations: u64,
    revision: u64,
    served_cached: u64,
    served_storage: u64,
    reads_cached: u64,
    reads_storage: u64,
}

static COUNTERS: std::sync::LazyLock<Mutex<HashMap<&'static str, Counters>>> =
    std::sync::LazyLock::new(Default::default);

fn count(resource: &'static str, f: impl FnOnce(&mut Counters)) {
    let mut all = COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
    f(all.entry(resource).or_default());
}

/// Appends the watch cache's metrics, with kube-apiserver's names where one exists:
/// `apiserver_watch_cache_events_received_total`, `apiserver_watch_cache_initializations_total`,
/// `apiserver_watch_cache_resource_version`, and `ward_watch_cache_watches_total{source}` (API
/// watches served from the cache or from a storage watch of their own).
pub(crate) fn render_metrics(out: &mut String) {
    use std::fmt::Write as _;
    let mut all: Vec<(&'static str, Counters)> = COUNTERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    all.sort_by_key(|(k, _)| *k);
    type Series = (
        &'static str,
        &'static str,
        Option<&'static str>,
        fn(&Counters) -> u64,
    );
    // (name, type, `source` label, value); a series without a source has one line per resource.
    let series: [Series; 7] = [
        (
            "apiserver_watch_cache_events_received_total",
            "counter",
            None,
            |c| c.received,
        ),
        (
            "apiserver_watch_cache_initializations_total",
            "counter",
            None,
            |c| c.initializations,
        ),
        (
            "apiserver_watch_cache_resource_version",
            "gauge",
            None,
            |c| c.revision,
        ),
        (
            "ward_watch_cache_reads_total",
            "counter",
            Some("cache"),
            |c| c.reads_cached,
        ),
        (
            "ward_watch_cache_reads_total",
            "counter",
            Some("storage"),
            |c| c.reads_storage,
        ),
        (
            "ward_watch_cache_watches_total",
            "counter",
            Some("cache"),
            |c| c.served_cached,
        ),
        (
            "ward_watch_cache_watches_total",
            "counter",
            Some("storage"),
            |c| c.served_storage,
        ),
    ];
    let mut typed = std::collections::HashSet::new();
    for (name, kind, source, value) in series {
        if typed.insert(name) {
            let _ = writeln!(out, "# TYPE {name} {kind}");
        }
        for (resource, c) in &all {
            let source = source
                .map(|s| format!(",source=\"{s}\""))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{name}{{resource=\"{resource}\"{source}}} {}",
                value(c)
            );
        }
    }
}

/// Every key under `prefix` at one revision, in pages (as kube-apiserver's cache lists).
async fn list_all(
    store: &ObjectStore,
    prefix: &[u8],
) -> Result<(Vec<KeyValue>, Revision), StorageError> {
    const PAGE: usize = 1000;
    let (mut kvs, mut start_after, mut revision) = (Vec::new(), None, None);
    loop {
        let page = store
            .storage
            .range(RangeRequest {
                prefix: prefix.to_vec(),
                start_after: start_after.take(),
                limit: PAGE,
                revision,
            })
            .await?;
        revision = Some(page.revision);
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        kvs.extend(page.kvs);
        if !page.more {
            return Ok((kvs, page.revision));
        }
    }
}

/// Reads summaries while readers want newer ones.
async fn probe_loop(cache: Arc<ResourceCache>, storage: Arc<dyn Storage>) {
    let prefix = cache.info.key_prefix(None).into_bytes();
    loop {
        let number = cache
            .probe
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .started;
        let summary = match storage.prefix_summary(&prefix).await {
            Ok(s) => s,
            Err(e) => {
                debug!(resource = cache.info.resource, error = %e, "prefix summary failed");
                None
            }
        };
        cache.probed.send_replace((number, summary));
        let mut probe = cache.probe.lock().unwrap_or_else(|p| p.into_inner());
        if probe.wanted > number {
            probe.started = number + 1;
        } else {
            probe.running = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, rev: u64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: Vec::new(),
            create_revision: Revision(rev),
            mod_revision: Revision(rev),
        }
    }

    fn event(kind: EventKind, key: &str, rev: u64) -> CachedEvent {
        CachedEvent::new(ward_storage::Event {
            kind,
            kv: kv(key, rev),
            prev: None,
        })
    }

    fn summary(revision: u64, count: u64, max: u64) -> PrefixSummary {
        PrefixSummary {
            revision: Revision(revision),
            count,
            max_mod_revision: Revision(max),
        }
    }

    fn resource_cache() -> ResourceCache {
        let info = RESOURCES
            .iter()
            .find(|r| r.resource == "secrets")
            .expect("secrets");
        ResourceCache {
            info,
            state: Mutex::new(State {
                events: VecDeque::new(),
                bytes: 0,
                since: Some(Revision(1)),
                position: Revision(1),
                objects: None,
            }),
            tx: broadcast::channel(CHANNEL_DEPTH).0,
            changed: Notify::new(),
            probe: Mutex::new(ProbeState::default()),
            probed: watch::Sender::new((0, None)),
        }
    }

    /// Decoded objects (plaintext for secrets) are never kept by the buffer: the live copy a
    /// watcher decodes is not the buffered one, and a replay gets a fresh, undecoded copy.
    #[tokio::test]
    async fn the_buffer_keeps_no_decoded_object() {
        let cache = resource_cache();
        let mut live = cache.tx.subscribe();
        cache.push(event(EventKind::Put, "/registry/secrets/default/a", 2));
        let Ok(Msg::Event(received)) = live.recv().await else {
            panic!("no event");
        };
        // A watcher decodes it (here: fills the cell as decoding would).
        assert!(
            received
                .object
                .set(Ok(serde_json::json!({"data": {"k": "cGxhaW4="}})))
                .is_ok()
        );
        let buffered = cache.lock().events[0].clone();
        assert!(!Arc::ptr_eq(&buffered, &received));
        assert!(
            buffered.object.get().is_none(),
            "the buffer holds a decoded object"
        );
        let Some(Feed::Cached { backlog, .. }) =
            cache.subscribe(b"/registry/secrets/", Revision(1))
        else {
            panic!("not served from the cache");
        };
        assert_eq!(backlog.len(), 1);
        assert!(backlog[0].object.get().is_none());
        assert!(!Arc::ptr_eq(&backlog[0], &buffered));
    }

    #[test]
    fn current_only_when_nothing_that_still_shows_was_missed() {
        // Listed at 10 with a@5, b@7.
        let mut o = Objects::new(vec![kv("a", 5), kv("b", 7)], Revision(10));
        // Nothing happened since: current as of the summary's revision.
        assert_eq!(o.current_as_of(&summary(12, 2, 7)), Some(Revision(12)));
        // A missed update of a (a@11): the newest mod_revision differs.
        assert_eq!(o.current_as_of(&summary(12, 2, 11)), None);
        // A missed delete of b: the count differs.
        assert_eq!(o.current_as_of(&summary(12, 1, 5)), None);
        // A missed create of c then delete of c leaves the same state: current.
        assert_eq!(o.current_as_of(&summary(13, 2, 7)), Some(Revision(13)));
        // Once the cache has seen an event at or after the summary, it is current as of it.
        o.apply(&event(EventKind::Put, "a", 11));
        assert_eq!(o.current_as_of(&summary(11, 2, 11)), Some(Revision(11)));
        assert_eq!(o.current_as_of(&summary(9, 5, 99)), Some(Revision(11)));
        o.apply(&event(EventKind::Delete, "b", 12));
        assert_eq!(o.by_key.len(), 1);
        assert_eq!(o.mods.last(), Some(&Revision(11)));
        assert_eq!(o.current_as_of(&summary(14, 1, 11)), Some(Revision(14)));
        assert_eq!(o.current_as_of(&summary(14, 2, 13)), None);
    }
}
