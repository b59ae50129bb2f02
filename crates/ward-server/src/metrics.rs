//! Prometheus metrics on `/metrics`, with kube-apiserver's names where one exists.
//!
//! - `apiserver_request_total{verb,group,resource,code}` and
//!   `apiserver_request_duration_seconds{verb,group,resource}` (histogram);
//! - `apiserver_storage_transformation_operations_total{resource,transformation_type,
//!   transformer_prefix,status}` and `apiserver_storage_transformation_duration_seconds`
//!   (histogram), as in kube-apiserver's `pkg/storage/value/metrics.go`;
//! - `apiserver_longrunning_requests{verb,resource}` (open watches);
//! - `apiserver_encryption_config_controller_automatic_reloads_total{status}` and
//!   `..._automatic_reload_last_timestamp_seconds{status}`;
//! - the KMS envelope metrics (`apiserver_envelope_encryption_*`, DEK cache and key generation),
//!   recorded and rendered by [`ward_kms::metrics`].
//!
//! Labels hold only names from fixed sets (`&'static str`: verbs, resources, codes, provider
//! prefixes), never object names or values; recording allocates nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const TRANSFORM_BUCKETS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01,
];

#[derive(Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, buckets: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; buckets.len()];
        }
        if let Some(i) = buckets.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

type RequestKey = (&'static str, &'static str, &'static str);
type TransformKey = (&'static str, bool, &'static str, bool);

#[derive(Default)]
struct Registry {
    requests: HashMap<(RequestKey, u16), u64>,
    request_latency: HashMap<RequestKey, Histogram>,
    transforms: HashMap<TransformKey, u64>,
    transform_latency: HashMap<bool, Histogram>,
    longrunning: HashMap<(&'static str, &'static str), i64>,
    reloads: HashMap<&'static str, (u64, u64)>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    f(&mut REGISTRY.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Records one finished API request.
pub(crate) fn request(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    code: u16,
    took: Duration,
) {
    let key = (verb, group, resource);
    with(|r| {
        *r.requests.entry((key, code)).or_default() += 1;
        r.request_latency
            .entry(key)
            .or_default()
            .observe(REQUEST_BUCKETS, took.as_secs_f64());
    });
}

/// Records one pass through the encryption transformer.
pub(crate) fn transformation(
    resource: &'static str,
    to_storage: bool,
    prefix: &'static str,
    ok: bool,
    took: Duration,
) {
    with(|r| {
        *r.transforms
            .entry((resource, to_storage, prefix, ok))
            .or_default() += 1;
        r.transform_latency
            .entry(to_storage)
            .or_default()
            .observe(TRANSFORM_BUCKETS, took.as_secs_f64());
    });
}

/// Records an automatic reload of the encryption configuration (`success` or `failure`).
pub(crate) fn encryption_reload(ok: bool, unix_seconds: u64) {
    let status = if ok { "success" } else { "failure" };
    with(|r| {
        let e = r.reloads.entry(status).or_default();
        e.0 += 1;
        e.1 = unix_seconds;
    });
}

/// Counts an open long-running request (watch) up or down.
pub(crate) fn longrunning(verb: &'static str, resource: &'static str, delta: i64) {
    with(|r| *r.longrunning.entry((verb, resource)).or_default() += delta);
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

fn histogram(out: &mut String, name: &str, pairs: &[(&str, &str)], buckets: &[f64], h: &Histogram) {
    let mut cumulative = 0;
    for (i, b) in buckets.iter().enumerate() {
        cumulative += h.counts.get(i).copied().unwrap_or_default();
        let le = b.to_string();
        let mut p = pairs.to_vec();
        p.push(("le", &le));
        let _ = writeln!(out, "{name}_bucket{} {cumulative}", labels(&p));
    }
    let mut p = pairs.to_vec();
    p.push(("le", "+Inf"));
    let _ = writeln!(out, "{name}_bucket{} {}", labels(&p), h.count);
    let _ = writeln!(out, "{name}_sum{} {}", labels(pairs), h.sum);
    let _ = writeln!(out, "{name}_count{} {}", labels(pairs), h.count);
}

fn sorted<K: Ord + Clone, V: Clone>(m: &HashMap<K, V>) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The Prometheus text exposition of every metric.
pub(crate) fn render() -> String {
    let (requests, latency, transforms, t_latency, longrunning, reloads) = with(|r| {
        (
            sorted(&r.requests),
            sorted(&r.request_latency),
            sorted(&r.transforms),
            sorted(&r.transform_latency),
            sorted(&r.longrunning),
            sorted(&r.reloads),
        )
    });
    let mut out = String::new();
    out.push_str("# TYPE apiserver_request_total counter\n");
    for (((verb, group, resource), code), n) in &requests {
        let code = code.to_string();
        let l = labels(&[
            ("verb", verb),
            ("group", group),
            ("resource", resource),
            ("code", &code),
        ]);
        let _ = writeln!(out, "apiserver_request_total{l} {n}");
    }
    out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
    for ((verb, group, resource), h) in &latency {
        let p = [("verb", *verb), ("group", *group), ("resource", *resource)];
        histogram(
            &mut out,
            "apiserver_request_duration_seconds",
            &p,
            REQUEST_BUCKETS,
            h,
        );
    }
    out.push_str("# TYPE apiserver_storage_transformation_operations_total counter\n");
    for ((resource, to_storage, prefix, ok), n) in &transforms {
        let kind = if *to_storage {
            "to_storage"
        } else {
            "from_storage"
        };
        let status = if *ok { "OK" } else { "Unknown" };
        let l = labels(&[
            ("resource", resource),
            ("transformation_type", kind),
            ("transformer_prefix", prefix),
            ("status", status),
        ]);
        let _ = writeln!(
            out,
            "apiserver_storage_transformation_operations_total{l} {n}"
        );
    }
    out.push_str("# TYPE apiserver_storage_transformation_duration_seconds histogram\n");
    for (to_storage, h) in &t_latency {
        let kind = if *to_storage {
            "to_storage"
        } else {
            "from_storage"
        };
        let p = [("transformation_type", kind)];
        histogram(
            &mut out,
            "apiserver_storage_transformation_duration_seconds",
            &p,
            TRANSFORM_BUCKETS,
            h,
        );
    }
    out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
    for ((verb, resource), n) in &longrunning {
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{} {n}",
            labels(&[("verb", verb), ("resource", resource)])
        );
    }
    if !reloads.is_empty() {
        out.push_str(
            "# TYPE apiserver_encryption_config_controller_automatic_reloads_total counter\n",
        );
        for (status, (n, _)) in &reloads {
            let l = labels(&[("status", status)]);
            let _ = writeln!(
                out,
                "apiserver_encryption_config_controller_automatic_reloads_total{l} {n}"
            );
        }
        out.push_str(
            "# TYPE apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds gauge\n",
        );
        for (status, (_, ts)) in &reloads {
            let l = labels(&[("status", status)]);
            let _ = writeln!(
                out,
                "apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds{l} {ts}"
            );
        }
    }
    crate::watchcache::render_metrics(&mut out);
    out.push_str(&ward_kms::metrics::render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        request("get", "", "secrets", 200, Duration::from_millis(2));
        request("get", "", "secrets", 200, Duration::from_millis(20));
        transformation(
            "secrets",
            true,
            "k8s:enc:secretbox:v1:",
            true,
            Duration::from_micros(7),
        );
        let text = render();
        assert!(
            text.contains("# TYPE apiserver_request_total counter"),
            "{text}"
        );
        assert!(text.contains(
            "apiserver_request_total{verb=\"get\",group=\"\",resource=\"secrets\",code=\"200\"}"
        ));
        // buckets are cumulative: the 2 ms request is in le=0.0025, both are in le=0.025
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"get\",group=\"\",resource=\"secrets\",le=\"0.025\"} 2"), "{text}");
        assert!(text.contains("transformer_prefix=\"k8s:enc:secretbox:v1:\""));
        assert!(text.contains(
            "apiserver_storage_transformation_duration_seconds_count{transformation_type=\"to_storage\"}"
        ));
        // The KMS envelope families follow (`ward_kms::metrics`).
        assert!(text.contains(
            "# TYPE apiserver_storage_envelope_transformation_cache_misses_total counter"
        ));
    }
}
