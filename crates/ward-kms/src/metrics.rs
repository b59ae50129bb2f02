//! kube-apiserver's envelope-encryption metrics, recorded by the KMS envelopes and rendered in
//! the Prometheus text format by [`render`] (the API server appends it to `/metrics`).
//!
//! # Policy
//!
//! Names, labels and buckets are kube-apiserver's (`pkg/storage/value/encrypt/envelope/metrics`
//! and `pkg/storage/value/metrics.go`), so dashboards and alerts written for it work unchanged:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `apiserver_envelope_encryption_kms_operations_latency_seconds` | histogram (0.1 ms ·2ⁿ, 20) | `provider_name`, `method_name` (full gRPC method), `grpc_status_code` (Go names: `OK`, `Unavailable`, …) |
//! | `apiserver_envelope_encryption_key_id_hash_total` | counter | `transformation_type`, `provider_name`, `key_id_hash`, `apiserver_id_hash` |
//! | `apiserver_envelope_encryption_key_id_hash_last_timestamp_seconds` | gauge | as above |
//! | `apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds` | gauge | `provider_name`, `key_id_hash`, `apiserver_id_hash` |
//! | `apiserver_envelope_encryption_invalid_key_id_from_status_total` | counter | `provider_name`, `error` (`empty`, `too_long`) |
//! | `apiserver_envelope_encryption_dek_source_cache_size` | gauge | `provider_name` (KMS v2) |
//! | `apiserver_envelope_encryption_dek_cache_fill_percent` | gauge | none (KMS v1) |
//! | `apiserver_envelope_encryption_dek_cache_inter_arrival_time_seconds` | histogram (60 s ·2ⁿ, 10) | `transformation_type` (KMS v1) |
//! | `apiserver_storage_envelope_transformation_cache_misses_total` | counter | none |
//! | `apiserver_storage_data_key_generation_duration_seconds` | histogram (5 µs ·2ⁿ, 14) | none |
//! | `apiserver_storage_data_key_generation_failures_total` | counter | none |
//!
//! **Never a key ID in clear.** Key IDs and the server identity appear only as `sha256:<hex>`
//! of their bytes, as kube-apiserver exposes them; at most [`MAX_KEY_ID_SERIES`] key-ID label
//! sets are kept per metric (the least recently used are dropped, like upstream's LRU). No DEK,
//! seed, ciphertext or plaintext is ever a label. Recording takes one short mutex.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// `transformation_type` of a read.
pub(crate) const FROM_STORAGE: &str = "from_storage";
/// `transformation_type` of a write.
pub(crate) const TO_STORAGE: &str = "to_storage";

/// Key-ID label sets kept per metric before the least recently used is dropped (upstream: 100).
pub const MAX_KEY_ID_SERIES: usize = 100;

/// Records one call to a KMS plugin: `method` is the full gRPC method
/// (`/v2.KeyManagementService/Decrypt`), `code` the gRPC status ([`grpc_code_name`]).
pub(crate) fn kms_operation(
    provider: &str,
    method: &'static str,
    code: &'static str,
    took: Duration,
) {
    with(|r| {
        r.operations
            .entry((provider.to_owned(), method, code))
            .or_default()
            .observe(&KMS_LATENCY_BUCKETS, took.as_secs_f64());
    });
}

/// Records that a value was written or read under `key_id` (KMS v2).
pub(crate) fn key_id_used(transformation_type: &'static str, provider: &str, key_id: &str) {
    let hash = hash_label(key_id);
    let now = unix_now();
    with(|r| {
        let tick = r.next_tick();
        let entry = r
            .key_id_uses
            .entry((transformation_type, provider.to_owned(), hash))
            .or_default();
        entry.count += 1;
        entry.last_seconds = now;
        entry.tick = tick;
        evict_oldest(&mut r.key_id_uses, |e| e.tick);
    });
}

/// Records the key ID a `Status` call returned (KMS v2).
pub(crate) fn key_id_from_status(provider: &str, key_id: &str) {
    let hash = hash_label(key_id);
    let now = unix_now();
    with(|r| {
        let tick = r.next_tick();
        r.status_key_ids
            .insert((provider.to_owned(), hash), (now, tick));
        evict_oldest(&mut r.status_key_ids, |(_, tick)| *tick);
    });
}

/// Counts an invalid key ID from `Status`: `error` is `empty` or `too_long`.
pub(crate) fn invalid_key_id_from_status(provider: &str, error: &'static str) {
    with(|r| {
        *r.invalid_key_ids
            .entry((provider.to_owned(), error))
            .or_default() += 1
    });
}

/// Sets the number of cached DEK sources of a KMS v2 provider.
pub(crate) fn dek_source_cache_size(provider: &str, size: usize) {
    with(|r| {
        r.dek_source_cache_size.insert(provider.to_owned(), size);
    });
}

/// Sets the fill ratio (0 to 1, as upstream despite the name) of a KMS v1 DEK cache.
pub(crate) fn dek_cache_fill(ratio: f64) {
    with(|r| r.dek_cache_fill = Some(ratio));
}

/// Records the arrival of a KMS v1 transformation (time since the previous one of its type).
pub(crate) fn arrival(transformation_type: &'static str) {
    let now = std::time::Instant::now();
    with(|r| {
        let last = r
            .last_arrival
            .insert(transformation_type, now)
            .unwrap_or(now);
        r.inter_arrivals
            .entry(transformation_type)
            .or_default()
            .observe(
                &INTER_ARRIVAL_BUCKETS,
                now.duration_since(last).as_secs_f64(),
            );
    });
}

/// Counts a DEK (source) cache miss on a read.
pub(crate) fn cache_miss() {
    with(|r| r.cache_misses += 1);
}

/// Records the generation of a DEK or seed: how long it took and whether it failed.
pub(crate) fn data_key_generation(took: Duration, ok: bool) {
    with(|r| {
        r.key_generation
            .observe(&KEY_GENERATION_BUCKETS, took.as_secs_f64());
        if !ok {
            r.key_generation_failures += 1;
        }
    });
}

/// The gRPC status code name as Go's `codes.Code.String()` prints it (the label upstream uses).
pub(crate) fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "Canceled",
        C::Unknown => "Unknown",
        C::InvalidArgument => "InvalidArgument",
        C::DeadlineExceeded => "DeadlineExceeded",
        C::NotFound => "NotFound",
        C::AlreadyExists => "AlreadyExists",
        C::PermissionDenied => "PermissionDenied",
        C::ResourceExhausted => "ResourceExhausted",
        C::FailedPrecondition => "FailedPrecondition",
        C::Aborted => "Aborted",
        C::OutOfRange => "OutOfRange",
        C::Unimplemented => "Unimplemented",
        C::Internal => "Internal",
        C::Unavailable => "Unavailable",
        C::DataLoss => "DataLoss",
        C::Unauthenticated => "Unauthenticated",
    }
}

/// The envelope metrics in the Prometheus text format (one `# TYPE` line per family, only the
/// families with a sample).
pub fn render() -> String {
    let r = with(|r| r.snapshot());
    let apiserver_id = &*APISERVER_ID_HASH;
    let mut out = String::new();

    if !r.operations.is_empty() {
        let name = "apiserver_envelope_encryption_kms_operations_latency_seconds";
        let _ = writeln!(out, "# TYPE {name} histogram");
        for ((provider, method, code), h) in sorted(&r.operations) {
            let labels = [
                ("provider_name", provider.as_str()),
                ("method_name", method),
                ("grpc_status_code", code),
            ];
            h.render(&mut out, name, &labels, &KMS_LATENCY_BUCKETS);
        }
    }
    if !r.key_id_uses.is_empty() {
        let uses = sorted(&r.key_id_uses);
        for (name, kind) in [
            ("apiserver_envelope_encryption_key_id_hash_total", "counter"),
            (
                "apiserver_envelope_encryption_key_id_hash_last_timestamp_seconds",
                "gauge",
            ),
        ] {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((transformation_type, provider, hash), use_) in &uses {
                let l = labels(&[
                    ("transformation_type", transformation_type),
                    ("provider_name", provider),
                    ("key_id_hash", hash),
                    ("apiserver_id_hash", apiserver_id),
                ]);
                if kind == "counter" {
                    let _ = writeln!(out, "{name}{l} {}", use_.count);
                } else {
                    let _ = writeln!(out, "{name}{l} {}", use_.last_seconds);
                }
            }
        }
    }
    if !r.status_key_ids.is_empty() {
        let name = "apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds";
        let _ = writeln!(out, "# TYPE {name} gauge");
        for ((provider, hash), (seconds, _)) in sorted(&r.status_key_ids) {
            let l = labels(&[
                ("provider_name", &provider),
                ("key_id_hash", &hash),
                ("apiserver_id_hash", apiserver_id),
            ]);
            let _ = writeln!(out, "{name}{l} {seconds}");
        }
    }
    if !r.invalid_key_ids.is_empty() {
        let name = "apiserver_envelope_encryption_invalid_key_id_from_status_total";
        let _ = writeln!(out, "# TYPE {name} counter");
        for ((provider, error), n) in sorted(&r.invalid_key_ids) {
            let l = labels(&[("provider_name", &provider), ("error", error)]);
            let _ = writeln!(out, "{name}{l} {n}");
        }
    }
    if !r.dek_source_cache_size.is_empty() {
        let name = "apiserver_envelope_encryption_dek_source_cache_size";
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (provider, size) in sorted(&r.dek_source_cache_size) {
            let _ = writeln!(
                out,
                "{name}{} {size}",
                labels(&[("provider_name", &provider)])
            );
        }
    }
    if let Some(ratio) = r.dek_cache_fill {
        let name = "apiserver_envelope_encryption_dek_cache_fill_percent";
        let _ = writeln!(out, "# TYPE {name} gauge\n{name} {ratio}");
    }
    if !r.inter_arrivals.is_empty() {
        let name = "apiserver_envelope_encryption_dek_cache_inter_arrival_time_seconds";
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (kind, h) in sorted(&r.inter_arrivals) {
            h.render(
                &mut out,
                name,
                &[("transformation_type", kind)],
                &INTER_ARRIVAL_BUCKETS,
            );
        }
    }
    let name = "apiserver_storage_envelope_transformation_cache_misses_total";
    let _ = writeln!(out, "# TYPE {name} counter\n{name} {}", r.cache_misses);
    if r.key_generation.count > 0 {
        let name = "apiserver_storage_data_key_generation_duration_seconds";
        let _ = writeln!(out, "# TYPE {name} histogram");
        r.key_generation
            .render(&mut out, name, &[], &KEY_GENERATION_BUCKETS);
    }
    let name = "apiserver_storage_data_key_generation_failures_total";
    let _ = writeln!(
        out,
        "# TYPE {name} counter\n{name} {}",
        r.key_generation_failures
    );
    out
}

// === registry ===

#[derive(Clone, Default)]
struct Registry {
    operations: HashMap<(String, &'static str, &'static str), Histogram>,
    key_id_uses: HashMap<(&'static str, String, String), KeyIdUse>,
    status_key_ids: HashMap<(String, String), (f64, u64)>,
    invalid_key_ids: HashMap<(String, &'static str), u64>,
    dek_source_cache_size: HashMap<String, usize>,
    dek_cache_fill: Option<f64>,
    last_arrival: HashMap<&'static str, std::time::Instant>,
    inter_arrivals: HashMap<&'static str, Histogram>,
    cache_misses: u64,
    key_generation: Histogram,
    key_generation_failures: u64,
    /// A logical clock for least-recently-used eviction of key-ID series.
    tick: u64,
}

impl Registry {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn snapshot(&self) -> Self {
        self.clone()
    }
}

#[derive(Clone, Copy, Default)]
struct KeyIdUse {
    count: u64,
    last_seconds: f64,
    tick: u64,
}

#[derive(Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, buckets: &[f64], v: f64) {
        if self.counts.len() != buckets.len() {
            self.counts = vec![0; buckets.len()];
        }
        if let Some(i) = buckets.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, pairs: &[(&str, &str)], buckets: &[f64]) {
        let mut cumulative = 0;
        for (i, b) in buckets.iter().enumerate() {
            cumulative += self.counts.get(i).copied().unwrap_or_default();
            let le = b.to_string();
            let mut p = pairs.to_vec();
            p.push(("le", &le));
            let _ = writeln!(out, "{name}_bucket{} {cumulative}", labels(&p));
        }
        let mut p = pairs.to_vec();
        p.push(("le", "+Inf"));
        let _ = writeln!(out, "{name}_bucket{} {}", labels(&p), self.count);
        let _ = writeln!(out, "{name}_sum{} {}", labels(pairs), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", labels(pairs), self.count);
    }
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// `sha256:<hex>` of this process's identity (`ward-<uuid v4>`), like upstream's
/// `apiserver_id_hash`.
static APISERVER_ID_HASH: LazyLock<String> =
    LazyLock::new(|| hash_label(&format!("ward-{}", uuid::Uuid::new_v4())));

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    f(&mut REGISTRY.lock().unwrap_or_else(PoisonError::into_inner))
}

fn evict_oldest<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    tick: impl Fn(&V) -> u64,
) {
    while map.len() > MAX_KEY_ID_SERIES {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| tick(v))
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        map.remove(&oldest);
    }
}

/// `sha256:<hex>` of `data`, or `""` for empty data (upstream `getHash`).
fn hash_label(data: &str) -> String {
    if data.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(data.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn sorted<K: Ord + Clone, V: Clone>(m: &HashMap<K, V>) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// `ExponentialBuckets(0.0001, 2, 20)`: 0.1 ms to about 52 s.
static KMS_LATENCY_BUCKETS: LazyLock<Vec<f64>> = LazyLock::new(|| exponential(0.0001, 20));
/// `ExponentialBuckets(60, 2, 10)`.
static INTER_ARRIVAL_BUCKETS: LazyLock<Vec<f64>> = LazyLock::new(|| exponential(60.0, 10));
/// `ExponentialBuckets(5e-6, 2, 14)`.
static KEY_GENERATION_BUCKETS: LazyLock<Vec<f64>> = LazyLock::new(|| exponential(5e-6, 14));

fn exponential(start: f64, count: usize) -> Vec<f64> {
    let mut buckets = Vec::with_capacity(count);
    let mut b = start;
    for _ in 0..count {
        buckets.push(b);
        b *= 2.0;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_hashed_and_series_are_bounded() {
        key_id_used(TO_STORAGE, "metrics-unit", "secret-key-id-123");
        let text = render();
        assert!(!text.contains("secret-key-id-123"), "{text}");
        assert!(text.contains(&format!(
            "key_id_hash=\"{}\"",
            hash_label("secret-key-id-123")
        )));
        for i in 0..(MAX_KEY_ID_SERIES + 10) {
            key_id_used(FROM_STORAGE, "metrics-unit-bound", &format!("k{i}"));
        }
        let series = with(|r| r.key_id_uses.len());
        assert!(series <= MAX_KEY_ID_SERIES, "{series}");
        assert_eq!(hash_label(""), "");
        assert_eq!(KMS_LATENCY_BUCKETS.len(), 20);
        assert_eq!(grpc_code_name(tonic::Code::Cancelled), "Canceled");
    }
}
