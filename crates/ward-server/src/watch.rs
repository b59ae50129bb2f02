//! Watch: a stream of `{"type": ..., "object": ...}` JSON lines, from the watch cache
//! (`crate::watchcache`) or, for revisions older than it holds, a storage watch.
//!
//! Semantics follow kube-apiserver:
//! - no `resourceVersion` (or `"0"`), or `sendInitialEvents=true`: synthetic `ADDED` events for
//!   every current object, then changes after the list's revision;
//! - `resourceVersion=N`: changes after N; N older than the kept history gives an `ERROR` event
//!   with a 410 `Expired` Status, and clients relist;
//! - selectors filter per event; an object that stops matching is sent as `DELETED`, one that
//!   starts matching as `ADDED`;
//! - `allowWatchBookmarks=true`: periodic `BOOKMARK`s carrying the last revision sent;
//! - the stream ends after `timeoutSeconds` (default 30 min) or on shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Frame;
use serde_json::{Value, json};
use sync_wrapper::SyncWrapper;
use tokio::sync::watch;
use ward_api::ApiError;
use ward_api::resources::ResourceInfo;
use ward_api::selector::{FieldSelector, LabelSelector};
use ward_api::strategy::meta_str;
use ward_api::table;
use ward_storage::{EventKind, Revision, StorageError};

use crate::authz::SecretFilter;
use crate::http::Body;
use crate::request::{Output, Query, ResourcePath};
use crate::store::{ObjectStore, storage_error};
use crate::watchcache::{CachedEvent, Feed, FeedItem, WatchCache};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Label and field selectors of a list or watch.
pub(crate) struct Filter {
    label: Option<LabelSelector>,
    field: Option<FieldSelector>,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`. `Err` 400 on bad syntax or unsupported fields.
    pub(crate) fn from_query(info: &ResourceInfo, query: &Query) -> Result<Self, ApiError> {
        let label =
            match query.get("labelSelector").filter(|s| !s.trim().is_empty()) {
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let field = match query.get("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
                f.validate_fields(&info.selectable_fields())
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(f)
            }
            None => None,
        };
        Ok(Filter { label, field })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.label.is_none() && self.field.is_none()
    }

    /// Whether `obj` passes both selectors.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.label {
            let empty = serde_json::Map::new();
            let labels = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if !l.matches(labels) {
                return false;
            }
        }
        if let Some(f) = &self.field {
            let get = |field: &str| -> Option<String> {
                let v = match field {
                    "metadata.name" => obj.pointer("/metadata/name"),
                    "metadata.namespace" => obj.pointer("/metadata/namespace"),
                    "type" => obj.get("type"),
                    "status.phase" => obj.pointer("/status/phase"),
                    _ => None,
                };
                Some(v.and_then(Value::as_str).unwrap_or_default().to_owned())
            };
            if !f.matches(get) {
                return false;
            }
        }
        true
    }
}

/// Starts a watch and returns the streaming reply.
pub(crate) async fn serve(
    store: &ObjectStore,
    cache: &WatchCache,
    shutdown: watch::Receiver<bool>,
    p: &ResourcePath,
    query: &Query,
    output: Output,
    secrets: SecretFilter,
) -> Result<Response<Body>, ApiError> {
    let info = p.info;
    let ns = if info.namespaced {
        p.namespace.clone()
    } else {
        None
    };
    let filter = Filter::from_query(info, query)?;
    let timeout = query
        .number("timeoutSeconds")?
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = query.flag("allowWatchBookmarks") && !matches!(output, Output::Table(_));
    let send_initial = query.get("sendInitialEvents").map(|v| v == "true");
    let rv = query
        .get("resourceVersion")
        .filter(|r| !r.is_empty() && *r != "0");

    let mut initial = Vec::new();
    let start = match (rv, send_initial) {
        (Some(rv), None | Some(false)) => Revision(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
        _ => {
            let page = store.list(info, ns.as_deref(), None, 0, None).await?;
            initial = page
                .items
                .into_iter()
                .filter(|o| filter.matches(o))
                .collect();
            page.revision
        }
    };
    let prefix = info.key_prefix(ns.as_deref());
    let mut state = Stream {
        info,
        store: store.clone(),
        filter,
        secrets,
        enc: Encoder {
            info,
            output,
            columns_sent: false,
        },
        last: start,
        bookmarks,
        feed: None,
        pending: VecDeque::new(),
        deadline: Box::pin(tokio::time::sleep(timeout)),
        ticker: tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_EVERY,
            BOOKMARK_EVERY,
        ),
        // One future for the watch's life: registering with the shutdown signal on every event
        // would make 10,000 watchers contend for its lock.
        shutdown: Box::pin(async move {
            let mut shutdown = shutdown;
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    // The server is gone: never fires.
                    std::future::pending::<()>().await;
                }
            }
        }),
        _open: Open::new(info.resource),
    };
    match cache.watch(info, prefix.as_bytes(), start).await {
        Ok(feed) => {
            state.feed = Some(feed);
            for obj in &initial {
                state.send("ADDED", obj);
            }
            if send_initial == Some(true) && state.bookmarks {
                state.bookmark(true);
            }
        }
        Err(e @ StorageError::Compacted { .. }) => {
            let status = storage_error(info, "", e).to_status();
            state.send("ERROR", &status);
        }
        Err(e) => return Err(storage_error(info, "", e)),
    }
    // The reply's body drives the watch: no task or channel of its own per watcher. When the
    // client goes away, hyper drops the body and with it the feed.
    let lines = futures_util::stream::unfold(state, |mut st| async move {
        st.next_line().await.map(|b| (b, st))
    });
    let body = BodyExt::boxed(WatchBody(SyncWrapper::new(Box::pin(lines))));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let ctype = match output {
        Output::Table(_) => "application/json;as=Table;v=v1;g=meta.k8s.io",
        _ => "application/json",
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(resp)
}

/// The body of a watch reply. hyper's boxed bodies must be `Sync`; the stream is only ever
/// polled through `&mut`, which `SyncWrapper` turns into a `Sync` type without a lock.
struct WatchBody(SyncWrapper<Pin<Box<dyn futures_util::Stream<Item = Bytes> + Send>>>);

impl hyper::body::Body for WatchBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.get_mut()
            .0
            .get_mut()
            .as_mut()
            .poll_next(cx)
            .map(|line| line.map(|b| Ok(Frame::data(b))))
    }
}

/// Encodes watch events in the negotiated form.
struct Encoder {
    info: &'static ResourceInfo,
    output: Output,
    columns_sent: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.output {
            Output::Table(include) if kind != "ERROR" && kind != "BOOKMARK" => {
                let meta = json!({"resourceVersion": meta_str(obj, "resourceVersion")});
                let with_columns = !self.columns_sent;
                self.columns_sent = true;
                table::table(
                    self.info,
                    std::slice::from_ref(obj),
                    meta,
                    include,
                    with_columns,
                    SystemTime::now(),
                )
            }
            Output::PartialMetadata if kind != "ERROR" && kind != "BOOKMARK" => {
                table::partial_metadata(obj)
            }
            _ => obj.clone(),
        };
        let mut s = json!({"type": kind, "object": object}).to_string();
        s.push('\n');
        Bytes::from(s)
    }
}

/// Counts an open watch in `apiserver_longrunning_requests` while it lives.
struct Open(&'static str);

impl Open {
    fn new(resource: &'static str) -> Self {
        crate::metrics::longrunning("watch", resource, 1);
        Open(resource)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        crate::metrics::longrunning("watch", self.0, -1);
    }
}

/// One running watch.
struct Stream {
    info: &'static ResourceInfo,
    store: ObjectStore,
    filter: Filter,
    secrets: SecretFilter,
    enc: Encoder,
    last: Revision,
    bookmarks: bool,
    /// `None` once the watch has ended (or never started).
    feed: Option<Feed>,
    /// Lines ready to send.
    pending: VecDeque<Bytes>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    ticker: tokio::time::Interval,
    /// Completes when the server shuts down.
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    _open: Open,
}

impl Stream {
    /// Queues a change; its plain JSON line is encoded once per event and shared by watchers.
    fn send_event(&mut self, kind: &str, ev: &CachedEvent, obj: &Value) {
        if matches!(self.enc.output, Output::Json) && !self.secrets.is_active() {
            let enc = &mut self.enc;
            let line = ev.line(kind, || enc.line(kind, obj));
            self.pending.push_back(line);
        } else {
            self.send(kind, obj);
        }
    }

    fn send(&mut self, kind: &str, obj: &Value) {
        let line = if self.secrets.is_active() && matches!(kind, "ADDED" | "MODIFIED" | "DELETED") {
            let mut shown = obj.clone();
            self.secrets.apply(&mut shown);
            self.enc.line(kind, &shown)
        } else {
            self.enc.line(kind, obj)
        };
        self.pending.push_back(line);
    }

    fn bookmark(&mut self, initial_end: bool) {
        let mut meta = json!({"resourceVersion": self.last.0.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta});
        self.send("BOOKMARK", &obj);
    }

    /// The next line to send; `None` when the watch is over (timeout, shutdown, an error sent,
    /// or the feed ended).
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            let feed = self.feed.as_mut()?;
            let info = self.info;
            tokio::select! {
                _ = &mut self.deadline => self.feed = None,
                () = &mut self.shutdown => self.feed = None,
                _ = self.ticker.tick() => {
                    if self.bookmarks {
                        self.bookmark(false);
                    }
                }
                item = feed.next(info) => match item {
                    FeedItem::End => self.feed = None,
                    FeedItem::Progress(rev) => self.last = self.last.max(rev),
                    FeedItem::Event(ev) => {
                        self.last = self.last.max(ev.revision);
                        if !self.event(&ev).await {
                            self.feed = None;
                        }
                    }
                    FeedItem::Error(e) => {
                        self.send("ERROR", &e.to_status());
                        self.feed = None;
                    }
                }
            }
        }
    }

    /// Queues one storage event, translated through the selectors. False when the stream must
    /// end.
    async fn event(&mut self, ev: &CachedEvent) -> bool {
        let store = self.store.clone();
        let new = match ev.object(&store, self.info).await {
            Ok(v) => v,
            Err(e) => {
                self.send("ERROR", &e.to_status());
                return false;
            }
        };
        match ev.kind {
            EventKind::Delete => {
                if self.filter.matches(new) {
                    self.send_event("DELETED", ev, new);
                }
            }
            EventKind::Put => {
                let now = self.filter.matches(new);
                let before = if !ev.had_prev() {
                    false
                } else if self.filter.is_empty() {
                    true
                } else {
                    ev.prev_object(&store, self.info)
                        .await
                        .is_some_and(|o| self.filter.matches(o))
                };
                match (before, now) {
                    (true, true) => self.send_event("MODIFIED", ev, new),
                    (false, true) => self.send_event("ADDED", ev, new),
                    (true, false) => self.send_event("DELETED", ev, new),
                    (false, false) => {}
                }
            }
        }
        true
    }
}
