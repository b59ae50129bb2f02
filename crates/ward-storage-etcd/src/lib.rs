//! The etcd backend: Ward's [`Storage`] contract on an etcd v3 cluster.
//!
//! [`EtcdStorage`] is a thin layer over etcd's own primitives, so a Ward server can share an etcd
//! with (or take over the etcd of) a kube-apiserver: [`EtcdOptions`] holds what the
//! `--etcd-servers`, `--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile` flags give. This crate
//! must never be a dependency of `ward-storage` or `ward-api`; the server sees it only as a
//! `dyn Storage`, and no etcd type appears in its API or errors.
//!
//! # Mapping
//!
//! | contract | etcd |
//! |---|---|
//! | `get`, `range` | `Range` of `[prefix, prefix_end)` from `start_after + "\0"`; `count` |
//! | `create` | `Txn(create_revision == 0 ? Put : Range)` |
//! | `update` | `Txn(mod_revision == expected && create_revision > 0 ? Put(prev_kv) : Range)` |
//! | `delete` | `Txn([mod_revision == expected &&] create_revision > 0 ? Delete : Range)` |
//! | `watch(after)` | `Watch(start_revision = after + 1, prev_kv, progress_notify)` |
//! | `compact(r)` | `Compact(r + 1)`, not physical (etcd keeps `r + 1` readable) |
//! | `compacted_revision` | a probe, see below |
//! | `current_revision` | the header of a count-only `Range` |
//!
//! A failed write's `Range` gives the current key-value for `AlreadyExists`/`Conflict`, or
//! `NotFound` when there is none; a range's `remaining` is etcd's `count` less the keys returned.
//!
//! etcd's "required revision has been compacted" and "is a future revision" errors become
//! [`StorageError::Compacted`] and [`StorageError::FutureRevision`]. etcd puts neither the
//! compacted nor the current revision in these errors, so the backend asks for them with one more
//! request (the current revision may have moved on by then).
//!
//! etcd has no API that returns the compacted revision. [`Storage::compacted_revision`] finds it
//! exactly with a probe: a count-only `Range` at revision 1 succeeds unless something was
//! compacted; if it fails, a watch from revision 1 is cancelled by etcd with the compacted
//! revision in its reply. So the answer is right even when another client (kube-apiserver, etcd's
//! auto-compaction) compacted, at the cost of one or two round trips.
//!
//! # Differences from the embedded backend
//!
//! - A new etcd starts at revision 1, not 0.
//! - `compact(current)` cannot drop the current revision in etcd; it compacts everything older
//!   instead, so `compacted_revision` then reports `current - 1`.
//! - Watches are not resumed: when the connection to etcd breaks (an etcd restart, a network
//!   failure), the stream yields one [`StorageError::Backend`] and ends. The caller opens a new
//!   watch after the last revision it saw; the client reconnects by itself for that call.
//! - A watch that replays history may start up to about 100 ms later than a live one: etcd syncs
//!   unsynced watchers on a timer.
//! - Progress notifications ([`ward_storage::WatchItem::Progress`]) come at etcd's interval
//!   (`--experimental-watch-progress-notify-interval`, 10 minutes by default).
//!
//! # Keys and values
//!
//! Keys are used as given (kube-apiserver's own keys, e.g. `/registry/secrets/ns/name`), after an
//! optional [`EtcdOptions::prefix`]. Values are opaque bytes, already encrypted by the transformer
//! layer. No error message holds a value.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use ward_storage_etcd::{EtcdOptions, EtcdStorage};
//!
//! let options = EtcdOptions {
//!     // Nothing listens on port 1, so connecting fails after the dial timeout.
//!     endpoints: vec!["http://127.0.0.1:1".into()],
//!     dial_timeout: Duration::from_millis(200),
//!     ..EtcdOptions::default()
//! };
//! let err = EtcdStorage::connect(options).await.unwrap_err();
//! assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::proto::{PbKeyValue, PbRangeResponse, PbResponseHeader, PbTxnOpResponse};
use etcd_client::{
    Certificate, Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions,
    GetOptions, Identity, PutOptions, SortOrder, SortTarget, TlsOptions, Txn, TxnOp,
};
use ward_storage::{
    KeyValue, PrefixSummary, RangePage, RangeRequest, Revision, Storage, StorageError, WatchStream,
};
use zeroize::Zeroizing;

use crate::error::Failure;

mod error;
mod watch;

/// How to reach etcd: the kube-apiserver `--etcd-*` flags, plus timeouts and a key prefix.
///
/// `Debug` is safe to log: the options hold file paths, never key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client URLs of the etcd members (`--etcd-servers`), e.g. `https://10.0.0.1:2379`. A URL
    /// without a scheme gets `https://` when TLS files are given, `http://` otherwise.
    pub endpoints: Vec<String>,
    /// PEM file of the CA that signed etcd's serving certificate (`--etcd-cafile`). Needed for
    /// `https://` endpoints: the system roots are not used.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for etcd's `--client-cert-auth` (`--etcd-certfile`). Give it with
    /// `key_file` or not at all.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (`--etcd-keyfile`).
    pub key_file: Option<PathBuf>,
    /// How long [`EtcdStorage::connect`] and each new connection may take.
    pub dial_timeout: Duration,
    /// How long one request may take before it fails with [`StorageError::Backend`]. Watch
    /// streams are not limited, only their creation.
    pub request_timeout: Duration,
    /// Bytes put before every key in etcd and removed from every key read back (like
    /// kube-apiserver's `--etcd-prefix`, but applied below Ward's keys). Empty by default:
    /// Ward's keys already start with `/registry/`.
    pub prefix: String,
    /// A leading part of Ward's keys that `prefix` replaces rather than precedes: with `root`
    /// `/registry` and `prefix` `/k3s`, Ward's `/registry/secrets/a/b` is etcd's
    /// `/k3s/secrets/a/b`, as kube-apiserver with `--etcd-prefix=/k3s` stores it. Empty by
    /// default (nothing replaced).
    pub root: String,
}

impl Default for EtcdOptions {
    /// No endpoints, a 20 s dial timeout (kube-apiserver's), a 30 s request timeout, no TLS and
    /// no prefix.
    fn default() -> Self {
        EtcdOptions {
            endpoints: Vec::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
            prefix: String::new(),
            root: String::new(),
        }
    }
}

/// Ward's [`Storage`] on an etcd v3 cluster; see the [crate docs](crate).
///
/// Cheap to share behind an `Arc`: every call clones the client's connection handle.
#[derive(Clone)]
pub struct EtcdStorage {
    client: Client,
    /// Ward's keys to etcd's and back.
    keys: KeyMap,
    request_timeout: Duration,
    /// For logs and errors.
    endpoints: Vec<String>,
}

impl EtcdStorage {
    /// Connects to etcd and checks that it answers a read.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] when the options are incomplete (no endpoints, a certificate
    /// without its key, an `https://` endpoint without a CA), a TLS file cannot be read or parsed
    /// (the message names the flag and the path, never the file's content), or no endpoint
    /// answers within [`EtcdOptions::dial_timeout`].
    pub async fn connect(options: EtcdOptions) -> Result<EtcdStorage, StorageError> {
        if options.endpoints.is_empty() {
            return Err(StorageError::backend(
                "--etcd-servers: no etcd endpoint given; expected URLs like https://127.0.0.1:2379",
            ));
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.dial_timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        match tls_options(&options)? {
            Some(tls) => connect = connect.with_tls(tls),
            None => {
                if let Some(url) = options
                    .endpoints
                    .iter()
                    .find(|url| url.starts_with("https://"))
                {
                    return Err(StorageError::backend(format!(
                        "--etcd-servers: {url} uses https but --etcd-cafile is not set; give the \
                         CA that signed etcd's certificate"
                    )));
                }
            }
        }
        let endpoints = options.endpoints.join(",");
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(|err| StorageError::backend(format!("etcd at {endpoints}: {err}")))?;
        let store = EtcdStorage {
            client,
            keys: KeyMap {
                prefix: options.prefix.into_bytes(),
                root: options.root.into_bytes(),
            },
            request_timeout: options.request_timeout,
            endpoints: options.endpoints,
        };
        match tokio::time::timeout(options.dial_timeout, store.current_revision()).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(err)) => Err(StorageError::backend(format!("etcd at {endpoints}: {err}"))),
            Err(_) => Err(StorageError::backend(format!(
                "etcd at {endpoints}: no answer within {:?}",
                options.dial_timeout
            ))),
        }
    }
}

impl fmt::Debug for EtcdStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStorage")
            .field("endpoints", &self.endpoints)
            .field("prefix", &String::from_utf8_lossy(&self.keys.prefix))
            .field("root", &String::from_utf8_lossy(&self.keys.root))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Storage for EtcdStorage {
    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StorageError> {
        let resp = self
            .range_raw("get", self.etcd_key(key), GetOptions::new())
            .await
            .map_err(|failure| failure.into_error("get"))?;
        resp.kvs
            .into_iter()
            .next()
            .map(|kv| self.key_value(kv))
            .transpose()
    }

    fn stored_key<'a>(&self, key: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        std::borrow::Cow::Owned(self.etcd_key(key))
    }

    async fn prefix_summary(&self, prefix: &[u8]) -> Result<Option<PrefixSummary>, StorageError> {
        const OP: &str = "summarize a prefix";
        let key = self.etcd_key(prefix);
        let end = prefix_end(&key);
        // One key, no value: the newest by mod_revision; `count` counts them all.
        let options = GetOptions::new()
            .with_range(end)
            .with_keys_only()
            .with_limit(1)
            .with_sort(SortTarget::Mod, SortOrder::Descend);
        let resp = self
            .range_raw(OP, key, options)
            .await
            .map_err(|failure| failure.into_error(OP))?;
        let max_mod_revision = match resp.kvs.first() {
            Some(kv) => to_revision(kv.mod_revision, "mod revision")?,
            None => Revision(0),
        };
        Ok(Some(PrefixSummary {
            revision: header_revision(resp.header.as_ref())?,
            count: to_revision(resp.count, "range count")?.0,
            max_mod_revision,
        }))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangePage, StorageError> {
        if request.revision == Some(Revision(0)) {
            // Revision 0 is at or below any compacted revision, as in the embedded backend
            // (etcd itself would read it as "current").
            return Err(StorageError::Compacted {
                requested: Revision(0),
                compacted: self.compacted_revision().await?,
            });
        }
        let prefix = self.etcd_key(&request.prefix);
        let end = prefix_end(&prefix);
        let mut start = prefix;
        if let Some(after) = &request.start_after {
            let mut next = self.etcd_key(after);
            next.push(0);
            start = start.max(next);
        }
        if start.is_empty() {
            // etcd refuses an empty key; "\0" is the smallest key it can hold.
            start.push(0);
        }
        let mut options = GetOptions::new().with_range(end);
        if request.limit > 0 {
            options = options.with_limit(i64::try_from(request.limit).unwrap_or(i64::MAX));
        }
        if let Some(revision) = request.revision {
            options = options.with_revision(etcd_revision(revision));
        }
        let resp = match self.range_raw("range", start, options).await {
            Ok(resp) => resp,
            Err(Failure::Compacted) => {
                let requested = request.revision.unwrap_or_default();
                return Err(StorageError::Compacted {
                    requested,
                    compacted: self.compacted_revision().await?,
                });
            }
            Err(Failure::FutureRevision) => {
                let requested = request.revision.unwrap_or_default();
                return Err(StorageError::FutureRevision {
                    requested,
                    current: self.current_revision().await?,
                });
            }
            Err(Failure::Other(err)) => return Err(err),
        };
        let revision = match request.revision {
            Some(revision) => revision,
            None => header_revision(resp.header.as_ref())?,
        };
        let count = to_revision(resp.count, "range count")?.0;
        let kvs = resp
            .kvs
            .into_iter()
            .map(|kv| self.key_value(kv))
            .collect::<Result<Vec<_>, _>>()?;
        let remaining = if request.limit > 0 {
            count.saturating_sub(kvs.len() as u64)
        } else {
            0
        };
        Ok(RangePage {
            kvs,
            more: remaining > 0,
            remaining,
            revision,
        })
    }

    async fn create(&self, key: &[u8], value: Vec<u8>) -> Result<KeyValue, StorageError> {
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(etcd_key.clone(), value.clone(), None)])
            .or_else([TxnOp::get(etcd_key, None)]);
        let (succeeded, revision, op) = self.txn("create", txn).await?;
        if succeeded {
            return Ok(KeyValue {
                key: key.to_vec(),
                value,
                create_revision: revision,
                mod_revision: revision,
            });
        }
        match self.found(op)? {
            Some(existing) => Err(StorageError::AlreadyExists {
                existing: Box::new(existing),
            }),
            None => Err(inconsistent(
                "create",
                "the key exists but could not be read",
            )),
        }
    }

    async fn update(
        &self,
        key: &[u8],
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<KeyValue, StorageError> {
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when([
                Compare::mod_revision(etcd_key.clone(), CompareOp::Equal, etcd_revision(expected)),
                Compare::create_revision(etcd_key.clone(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(
                etcd_key.clone(),
                value.clone(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key, None)]);
        let (succeeded, revision, op) = self.txn("update", txn).await?;
        if !succeeded {
            return Err(match self.found(op)? {
                Some(current) => StorageError::Conflict {
                    current: Box::new(current),
                },
                None => StorageError::NotFound,
            });
        }
        let prev = match op {
            Some(PbTxnOpResponse::ResponsePut(put)) => put.prev_kv,
            _ => None,
        };
        let prev = prev.ok_or_else(|| inconsistent("update", "no previous key-value"))?;
        Ok(KeyValue {
            key: key.to_vec(),
            value,
            create_revision: to_revision(prev.create_revision, "create_revision")?,
            mod_revision: revision,
        })
    }

    async fn delete(
        &self,
        key: &[u8],
        expected: Option<Revision>,
    ) -> Result<KeyValue, StorageError> {
        let etcd_key = self.etcd_key(key);
        let mut compares = vec![Compare::create_revision(
            etcd_key.clone(),
            CompareOp::Greater,
            0,
        )];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                etcd_revision(expected),
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                etcd_key.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key, None)]);
        let (succeeded, revision, op) = self.txn("delete", txn).await?;
        if !succeeded {
            return Err(match self.found(op)? {
                Some(current) => StorageError::Conflict {
                    current: Box::new(current),
                },
                None => StorageError::NotFound,
            });
        }
        let prev = match op {
            Some(PbTxnOpResponse::ResponseDeleteRange(deleted)) => {
                deleted.prev_kvs.into_iter().next()
            }
            _ => None,
        };
        let prev = prev.ok_or_else(|| inconsistent("delete", "no previous key-value"))?;
        let mut deleted = self.key_value(prev)?;
        deleted.mod_revision = revision;
        Ok(deleted)
    }

    async fn watch(&self, prefix: &[u8], after: Revision) -> Result<WatchStream, StorageError> {
        watch::watch(self, prefix, after).await
    }

    async fn current_revision(&self) -> Result<Revision, StorageError> {
        let options = GetOptions::new().with_count_only();
        let resp = self
            .range_raw("read the current revision", self.probe_key(), options)
            .await
            .map_err(|failure| failure.into_error("read the current revision"))?;
        header_revision(resp.header.as_ref())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        match self.compact_raw(revision.0.saturating_add(1)).await {
            // Compacted: an equal or later compaction is already done.
            Ok(()) | Err(Failure::Compacted) => Ok(()),
            Err(Failure::FutureRevision) => {
                let current = self.current_revision().await?;
                if revision > current {
                    return Err(StorageError::FutureRevision {
                        requested: revision,
                        current,
                    });
                }
                // `revision` is the current one, which etcd keeps readable: compact everything
                // before it (or all that was asked, if writes came in meanwhile).
                match self
                    .compact_raw(revision.0.saturating_add(1).min(current.0))
                    .await
                {
                    Ok(()) | Err(Failure::Compacted) => Ok(()),
                    Err(failure) => Err(failure.into_error("compact")),
                }
            }
            Err(Failure::Other(err)) => Err(err),
        }
    }

    async fn compacted_revision(&self) -> Result<Revision, StorageError> {
        watch::compacted_revision(self).await
    }
}

// === impl EtcdStorage ===

impl EtcdStorage {
    /// `key` as stored in etcd: the configured prefix in front (in place of the root).
    fn etcd_key(&self, key: &[u8]) -> Vec<u8> {
        self.keys.to_etcd(key)
    }

    /// A KV client that accepts replies as large as kube-apiserver's etcd client does (a list of
    /// every Secret can pass tonic's default 4 MiB limit).
    fn kv_client(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_REPLY_BYTES)
    }

    /// A watch client with the same reply limit.
    pub(crate) fn watch_client(&self) -> etcd_client::WatchClient {
        self.client
            .watch_client()
            .max_decoding_message_size(MAX_REPLY_BYTES)
    }

    /// A key that is only read, to learn revisions: the prefix followed by `\0`.
    fn probe_key(&self) -> Vec<u8> {
        self.etcd_key(b"\0")
    }

    /// An etcd key-value as a contract one, with the prefix removed.
    fn key_value(&self, kv: PbKeyValue) -> Result<KeyValue, StorageError> {
        key_value(&self.keys, kv)
    }

    /// A `Range` request, with the request timeout.
    async fn range_raw(
        &self,
        op: &'static str,
        key: Vec<u8>,
        options: GetOptions,
    ) -> Result<PbRangeResponse, Failure> {
        let resp = self
            .retrying(op, || {
                let mut kv = self.kv_client();
                let (key, options) = (key.clone(), options.clone());
                async move { kv.get(key, Some(options)).await }
            })
            .await?;
        Ok(resp.0)
    }

    /// An etcd `Compact` at etcd revision `revision` (etcd keeps `revision` readable).
    async fn compact_raw(&self, revision: u64) -> Result<(), Failure> {
        let mut kv = self.kv_client();
        let revision = i64::try_from(revision).unwrap_or(i64::MAX);
        self.timed(
            "compact",
            kv.compact(revision, Some(CompactionOptions::new())),
        )
        .await?;
        Ok(())
    }

    /// Runs `txn`. Returns whether its comparisons held, the revision of the reply, and the
    /// response of the first operation of the branch taken.
    async fn txn(
        &self,
        op: &'static str,
        txn: Txn,
    ) -> Result<(bool, Revision, Option<PbTxnOpResponse>), StorageError> {
        let resp = self
            .retrying(op, || {
                let mut kv = self.kv_client();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(|failure| failure.into_error(op))?
            .0;
        let revision = header_revision(resp.header.as_ref())?;
        let first = resp.responses.into_iter().next().and_then(|r| r.response);
        Ok((resp.succeeded, revision, first))
    }

    /// The key-value read by the `Range` of a failed transaction, if the key exists.
    fn found(&self, op: Option<PbTxnOpResponse>) -> Result<Option<KeyValue>, StorageError> {
        match op {
            Some(PbTxnOpResponse::ResponseRange(range)) => range
                .kvs
                .into_iter()
                .next()
                .map(|kv| self.key_value(kv))
                .transpose(),
            _ => Err(inconsistent("transaction", "no read in the failure branch")),
        }
    }

    /// Runs an etcd call, retrying (a few times, briefly) when it failed before reaching any
    /// member: the client balances over every endpoint and keeps trying a dead one, whose
    /// connection is refused at once. Such a request was never sent, so even a conditional write
    /// is safe to send again; any other failure is returned as it is.
    async fn retrying<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        const ATTEMPTS: u32 = 8;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tokio::time::timeout(self.request_timeout, call()).await {
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(err)) if attempt < ATTEMPTS && never_sent(&err) => {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Ok(Err(err)) => return Err(Failure::classify(op, &err)),
                Err(_) => {
                    return Err(Failure::Other(StorageError::backend(format!(
                        "etcd {op}: no answer within {:?}",
                        self.request_timeout
                    ))));
                }
            }
        }
    }

    /// Awaits one etcd call, at most [`EtcdOptions::request_timeout`].
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(err)) => Err(Failure::classify(op, &err)),
            Err(_) => Err(Failure::Other(StorageError::backend(format!(
                "etcd {op}: no answer within {:?}",
                self.request_timeout
            )))),
        }
    }
}

// === helpers ===

/// Whether an etcd call failed while connecting, before its request reached a member.
fn never_sent(err: &etcd_client::Error) -> bool {
    let text = match err {
        etcd_client::Error::GRpcStatus(status) => status.message().to_owned(),
        etcd_client::Error::TransportError(e) => e.to_string(),
        _ => return false,
    };
    let text = text.to_ascii_lowercase();
    text.contains("connect") && (text.contains("refused") || text.contains("tcp connect"))
}

/// The TLS settings of `options`, or `None` when no TLS file is given.
fn tls_options(options: &EtcdOptions) -> Result<Option<TlsOptions>, StorageError> {
    let EtcdOptions {
        ca_file,
        cert_file,
        key_file,
        ..
    } = options;
    if ca_file.is_none() && cert_file.is_none() && key_file.is_none() {
        return Ok(None);
    }
    let mut tls = TlsOptions::new();
    if let Some(path) = ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(
            &read_file("--etcd-cafile", path)?[..],
        ));
    }
    match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem = read_file("--etcd-certfile", cert)?;
            let key_pem = read_file("--etcd-keyfile", key)?;
            // tonic parses these only when connecting, and its errors name neither file.
            check_pem("--etcd-certfile", cert, &cert_pem, "CERTIFICATE")?;
            check_pem("--etcd-keyfile", key, &key_pem, "PRIVATE KEY")?;
            tls = tls.identity(Identity::from_pem(&cert_pem[..], &key_pem[..]));
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(StorageError::backend(
                "--etcd-certfile is set but --etcd-keyfile is not; give both or neither",
            ));
        }
        (None, Some(_)) => {
            return Err(StorageError::backend(
                "--etcd-keyfile is set but --etcd-certfile is not; give both or neither",
            ));
        }
    }
    Ok(Some(tls))
}

/// Reads a TLS file into a buffer zeroed on drop (it may be a private key). Errors name the flag
/// and the path, never the content.
fn read_file(flag: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, StorageError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|err| StorageError::backend(format!("{flag} {}: {err}", path.display())))
}

/// Checks that `pem` looks like a PEM file holding a `label` (e.g. `PRIVATE KEY`, which also
/// matches `RSA PRIVATE KEY` and `EC PRIVATE KEY`), so a wrong file is named before connecting.
fn check_pem(flag: &str, path: &Path, pem: &[u8], label: &str) -> Result<(), StorageError> {
    let contains = |needle: &[u8]| pem.windows(needle.len()).any(|window| window == needle);
    if contains(b"-----BEGIN ") && contains(format!("{label}-----").as_bytes()) {
        return Ok(());
    }
    Err(StorageError::backend(format!(
        "{flag} {}: expected a PEM file holding a {label}",
        path.display()
    )))
}

/// The largest etcd reply accepted: kube-apiserver's `MaxCallRecvMsgSize` (`math.MaxInt32`).
const MAX_REPLY_BYTES: usize = i32::MAX as usize;

/// How Ward's keys map to etcd's: [`EtcdOptions::prefix`] in front, in place of
/// [`EtcdOptions::root`].
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyMap {
    pub(crate) prefix: Vec<u8>,
    pub(crate) root: Vec<u8>,
}

impl KeyMap {
    pub(crate) fn to_etcd(&self, key: &[u8]) -> Vec<u8> {
        let rest = if self.root.is_empty() {
            key
        } else {
            key.strip_prefix(self.root.as_slice()).unwrap_or(key)
        };
        let mut etcd_key = Vec::with_capacity(self.prefix.len() + rest.len());
        etcd_key.extend_from_slice(&self.prefix);
        etcd_key.extend_from_slice(rest);
        etcd_key
    }

    /// `None` for a key outside the prefix.
    fn ward_key(&self, mut key: Vec<u8>) -> Option<Vec<u8>> {
        if !key.starts_with(&self.prefix) {
            return None;
        }
        key.drain(..self.prefix.len());
        if self.root.is_empty() {
            return Some(key);
        }
        let mut ward_key = Vec::with_capacity(self.root.len() + key.len());
        ward_key.extend_from_slice(&self.root);
        ward_key.extend_from_slice(&key);
        Some(ward_key)
    }
}

/// An etcd key-value as a contract one, with its key mapped back by `keys`.
pub(crate) fn key_value(keys: &KeyMap, kv: PbKeyValue) -> Result<KeyValue, StorageError> {
    let PbKeyValue {
        key,
        value,
        create_revision,
        mod_revision,
        ..
    } = kv;
    let Some(key) = keys.ward_key(key) else {
        return Err(inconsistent("read", "a key outside the configured prefix"));
    };
    Ok(KeyValue {
        key,
        value,
        create_revision: to_revision(create_revision, "create_revision")?,
        mod_revision: to_revision(mod_revision, "mod_revision")?,
    })
}

/// The first key after every key that starts with `prefix`, as etcd's `range_end`; `"\0"` (etcd's
/// "to the end") when there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A contract revision as an etcd one. Revisions past `i64::MAX` become `i64::MAX`, which etcd
/// reports as a future revision.
pub(crate) fn etcd_revision(revision: Revision) -> i64 {
    i64::try_from(revision.0).unwrap_or(i64::MAX)
}

/// An etcd revision (or count) as a contract one.
pub(crate) fn to_revision(revision: i64, what: &str) -> Result<Revision, StorageError> {
    u64::try_from(revision)
        .map(Revision)
        .map_err(|_| inconsistent("read", &format!("a negative {what}")))
}

/// The store revision in a response header.
pub(crate) fn header_revision(header: Option<&PbResponseHeader>) -> Result<Revision, StorageError> {
    let header = header.ok_or_else(|| inconsistent("read", "a reply without a header"))?;
    to_revision(header.revision, "header revision")
}

/// A reply that breaks etcd's own guarantees.
pub(crate) fn inconsistent(op: &str, what: &str) -> StorageError {
    StorageError::backend(format!("etcd {op}: unexpected reply: {what}"))
}

/// HTTP/2 pings while a request or watch is open, so a dead etcd is noticed. etcd answers pings
/// no more often than every 5 s (`--grpc-keepalive-min-time`).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_replaces_the_root_with_the_prefix_and_back() {
        let keys = KeyMap {
            prefix: b"/k3s".to_vec(),
            root: b"/registry".to_vec(),
        };
        assert_eq!(keys.to_etcd(b"/registry/secrets/a/b"), b"/k3s/secrets/a/b");
        assert_eq!(
            keys.ward_key(b"/k3s/secrets/a/b".to_vec()).as_deref(),
            Some(&b"/registry/secrets/a/b"[..])
        );
        assert_eq!(keys.ward_key(b"/registry/secrets/a/b".to_vec()), None);
        // Without a root, the prefix only goes in front.
        let plain = KeyMap {
            prefix: b"/t1".to_vec(),
            root: Vec::new(),
        };
        assert_eq!(plain.to_etcd(b"/registry/x"), b"/t1/registry/x");
        assert_eq!(
            plain.ward_key(b"/t1/registry/x".to_vec()).as_deref(),
            Some(&b"/registry/x"[..])
        );
    }

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn key_value_strips_the_prefix_and_checks_revisions() {
        let kv = |key: &[u8], revision: i64| PbKeyValue {
            key: key.to_vec(),
            value: b"v".to_vec(),
            create_revision: revision,
            mod_revision: revision,
            ..PbKeyValue::default()
        };
        let keys = |prefix: &[u8]| KeyMap {
            prefix: prefix.to_vec(),
            root: Vec::new(),
        };
        let stripped = key_value(&keys(b"/p"), kv(b"/p/registry/x", 3)).expect("in prefix");
        assert_eq!(stripped.key, b"/registry/x");
        assert_eq!(stripped.mod_revision, Revision(3));
        assert!(key_value(&keys(b"/p"), kv(b"/q/x", 3)).is_err());
        assert!(key_value(&keys(b""), kv(b"/x", -1)).is_err());
    }

    #[test]
    fn revisions_past_i64_saturate() {
        assert_eq!(etcd_revision(Revision(u64::MAX)), i64::MAX);
        assert_eq!(etcd_revision(Revision(7)), 7);
    }
}
