//! One watcher per object: read it (`get`), watch it by name (`fieldSelector=metadata.name=`,
//! which RBAC authorizes against `resourceNames`), resume a dropped stream from the last
//! resourceVersion seen (an event's or a bookmark's), read again after 410 Expired, back off on
//! errors, re-read credentials on 401. The agent's identity needs only `get` and `watch` on the
//! names it delivers, never `list`.
//!
//! A watcher reports states, never errors, to the agent: while the API is unreachable the agent
//! simply hears nothing and keeps the last files. Failures are logged once when they start (at
//! `warn`), then at `debug` while they last, and the recovery at `info`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use http::Method;
use serde_json::Value;
use tokio::sync::mpsc;
use ward_client::{Client, ClientError};

use crate::connect::Connector;
use crate::object::{ObjectRef, ObjectState};

/// A new state of one object.
#[derive(Debug)]
pub(crate) struct Update {
    pub(crate) object: ObjectRef,
    pub(crate) state: ObjectState,
}

/// Follows `object` until `tx` closes.
pub(crate) async fn watch_object(
    object: ObjectRef,
    connector: Arc<Connector>,
    mut client: Client,
    tx: mpsc::Sender<Update>,
    max_backoff: Duration,
) {
    let mut health = Health::new(&object, max_backoff);
    'reread: loop {
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.json(Method::GET, &object.path(), None),
        )
        .await;
        let state = match read.map_err(|_| timeout_error()).and_then(|r| r) {
            Ok(obj) => ObjectState::decode(object.kind, &obj),
            Err(e) if e.code() == Some(404) => ObjectState::Absent,
            Err(e) => {
                health
                    .client_failed("get", &e, &connector, &mut client)
                    .await;
                continue 'reread;
            }
        };
        health.recovered();
        tracing::debug!(%object, "read");
        if tx
            .send(Update {
                object: object.clone(),
                state,
            })
            .await
            .is_err()
        {
            return;
        }
        // No resourceVersion: the watch starts with the object's current state (a synthetic
        // ADDED), so nothing between the read and the watch is missed, whatever the history.
        let mut rv: Option<String> = None;
        loop {
            let started = Instant::now();
            let path = object.watch_path(rv.as_deref(), health.watch_timeout());
            let opened = tokio::time::timeout(REQUEST_TIMEOUT, client.watch(&path)).await;
            let stream = match opened.map_err(|_| timeout_error()).and_then(|r| r) {
                Ok(s) => s,
                Err(e) if e.code() == Some(410) => {
                    tracing::info!(%object, resource_version = rv.as_deref().unwrap_or_default(),
                        "resourceVersion is too old (410 Expired); reading again");
                    continue 'reread;
                }
                Err(e) => {
                    health
                        .client_failed("watch", &e, &connector, &mut client)
                        .await;
                    continue;
                }
            };
            futures_util::pin_mut!(stream);
            let mut events = 0u64;
            loop {
                let item = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
                    Err(_) => {
                        tracing::debug!(%object, "watch silent for too long; reconnecting");
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        tracing::debug!(%object, error = %e, "watch stream broke; reconnecting");
                        break;
                    }
                    Ok(Some(Ok(event))) => event,
                };
                events += 1;
                health.recovered();
                let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
                let obj = item.get("object").unwrap_or(&Value::Null);
                let obj_rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let state = match kind {
                    "ADDED" | "MODIFIED" | "DELETED" => {
                        let name = obj.pointer("/metadata/name").and_then(Value::as_str);
                        if name != Some(object.name.as_str()) {
                            continue; // a server that ignored the field selector
                        }
                        if !obj_rv.is_empty() {
                            rv = Some(obj_rv.to_owned());
                        }
                        if kind == "DELETED" {
                            ObjectState::Absent
                        } else {
                            ObjectState::decode(object.kind, obj)
                        }
                    }
                    "BOOKMARK" => {
                        if !obj_rv.is_empty() {
                            rv = Some(obj_rv.to_owned());
                        }
                        continue;
                    }
                    "ERROR" => {
                        let code = obj.get("code").and_then(Value::as_u64);
                        if code == Some(410) {
                            tracing::info!(%object,
                                resource_version = rv.as_deref().unwrap_or_default(),
                                "resourceVersion is too old (410 Expired); reading again");
                            continue 'reread;
                        }
                        let message = obj
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("error event")
                            .to_owned();
                        health.failed("watch", &message).await;
                        break;
                    }
                    _ => continue,
                };
                tracing::debug!(%object, event = kind, resource_version = obj_rv, "changed");
                if tx
                    .send(Update {
                        object: object.clone(),
                        state,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // A stream that ends at once, again and again, must not spin.
            if events == 0 && started.elapsed() < MIN_WATCH {
                tokio::time::sleep(health.backoff.next()).await;
            }
        }
    }
}

fn timeout_error() -> ClientError {
    ClientError::Decode(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))
}

/// Failure bookkeeping and backoff of one watcher.
struct Health {
    object: String,
    failures: u32,
    backoff: Backoff,
}

impl Health {
    fn new(object: &ObjectRef, max_backoff: Duration) -> Self {
        let seed = object
            .to_string()
            .bytes()
            .fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
            });
        Health {
            object: object.to_string(),
            failures: 0,
            backoff: Backoff::new(max_backoff, seed),
        }
    }

    /// A watch timeout between 4 and 5 minutes, so many agents do not reconnect in step.
    fn watch_timeout(&mut self) -> u64 {
        240 + self.backoff.random() % 60
    }

    /// Logs a failure (the first at warn) and sleeps the backoff.
    async fn failed(&mut self, what: &str, error: &str) {
        self.failures += 1;
        let delay = self.backoff.next();
        if self.failures == 1 {
            tracing::warn!(object = %self.object, "cannot {what}: {error}; keeping the last files, \
                retrying in {delay:?}");
        } else {
            tracing::debug!(object = %self.object, attempt = self.failures,
                "cannot {what}: {error}; retrying in {delay:?}");
        }
        tokio::time::sleep(delay).await;
    }

    /// As `failed`, and re-reads the credentials after a 401.
    async fn client_failed(
        &mut self,
        what: &str,
        error: &ClientError,
        connector: &Connector,
        client: &mut Client,
    ) {
        if error.code() == Some(401) {
            match connector.client() {
                Ok(c) => *client = c,
                Err(e) => tracing::warn!(object = %self.object, "cannot read the credentials \
                    again: {e}"),
            }
        }
        self.failed(what, &error.to_string()).await;
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            tracing::info!(object = %self.object, "reading again after {} failed attempts",
                self.failures);
            self.failures = 0;
        }
        self.backoff.reset();
    }
}

/// Exponential backoff with ±20% jitter.
struct Backoff {
    next: Duration,
    max: Duration,
    state: u64,
}

impl Backoff {
    fn new(max: Duration, seed: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or_default();
        Backoff {
            next: INITIAL_BACKOFF.min(max),
            max,
            state: (seed ^ nanos) | 1,
        }
    }

    fn reset(&mut self) {
        self.next = INITIAL_BACKOFF.min(self.max);
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let permille = 800 + self.random() % 401;
        base * u32::try_from(permille).unwrap_or(1000) / 1000
    }

    /// xorshift64: jitter only, not for anything secret.
    fn random(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// A read or the start of a watch that takes longer than this is a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// With bookmarks every 30 s (Ward) or 60 s (kube-apiserver), this much silence means a dead
/// connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
/// A watch that ends sooner than this without an event counts towards the backoff.
const MIN_WATCH: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2), 7);
        let first = b.next();
        assert!(first >= Duration::from_millis(160) && first <= Duration::from_millis(240));
        for _ in 0..10 {
            assert!(b.next() <= Duration::from_millis(2400));
        }
        b.reset();
        assert!(b.next() <= Duration::from_millis(240));
    }
}
