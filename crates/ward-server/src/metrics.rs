//! Prometheus metrics on `/metrics`, with kube-apiserver's names where one exists.
//!
//! - `apiserver_request_total{verb,group,resource,code}` and
//!   `apiserver_request_duration_seconds{verb,group,resource}` (histogram);
//! - `apiserver_storage_transformation_operations_total{resource,transformation_type,
//!   transformer_prefix,status}` and `apiserver_storage_transformation_duration_seconds`
//!   (histogram), as in kube-apiserver's `pkg/storage/value/metrics.go`;
//! - `apiserver_longrunning_requests{verb,resource}` (open watches).
//!
//! Labels hold only names from a fixed set (verbs, resources, codes, provider prefixes), never
//! object names or values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const TRANSFORM_BUCKETS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01,
];

/// Labels, in the order written.
type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
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
        for (i, b) in buckets.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), i64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> Option<T> {
    REGISTRY.lock().ok().map(|mut r| f(&mut r))
}

/// Records one finished API request.
pub(crate) fn request(verb: &str, group: &str, resource: &str, code: u16, took: Duration) {
    let labels: Labels = vec![
        ("verb", verb.to_owned()),
        ("group", group.to_owned()),
        ("resource", resource.to_owned()),
    ];
    let mut with_code = labels.clone();
    with_code.push(("code", code.to_string()));
    with(|r| {
        *r.counters
            .entry(("apiserver_request_total", with_code))
            .or_default() += 1;
        r.histograms
            .entry(("apiserver_request_duration_seconds", labels))
            .or_default()
            .observe(REQUEST_BUCKETS, took.as_secs_f64());
    });
}

/// Records one pass through the encryption transformer.
pub(crate) fn transformation(
    resource: &str,
    to_storage: bool,
    prefix: &str,
    ok: bool,
    took: Duration,
) {
    let kind = if to_storage {
        "to_storage"
    } else {
        "from_storage"
    };
    let labels: Labels = vec![("transformation_type", kind.to_owned())];
    let op: Labels = vec![
        ("resource", resource.to_owned()),
        ("transformation_type", kind.to_owned()),
        ("transformer_prefix", prefix.to_owned()),
        ("status", if ok { "OK" } else { "Unknown" }.to_owned()),
    ];
    with(|r| {
        *r.counters
            .entry(("apiserver_storage_transformation_operations_total", op))
            .or_default() += 1;
        r.histograms
            .entry(("apiserver_storage_transformation_duration_seconds", labels))
            .or_default()
            .observe(TRANSFORM_BUCKETS, took.as_secs_f64());
    });
}

/// Records an automatic reload of the encryption configuration (`success` or `failure`).
pub(crate) fn encryption_reload(ok: bool, unix_seconds: u64) {
    let status = if ok { "success" } else { "failure" };
    with(|r| {
        *r.counters
            .entry((
                "apiserver_encryption_config_controller_automatic_reloads_total",
                vec![("status", status.to_owned())],
            ))
            .or_default() += 1;
        r.gauges.insert(
            (
                "apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds",
                vec![("status", status.to_owned())],
            ),
            i64::try_from(unix_seconds).unwrap_or(i64::MAX),
        );
    });
}

/// Counts an open long-running request (watch) up or down.
pub(crate) fn longrunning(verb: &str, resource: &str, delta: i64) {
    let labels: Labels = vec![("verb", verb.to_owned()), ("resource", resource.to_owned())];
    with(|r| {
        *r.gauges
            .entry(("apiserver_longrunning_requests", labels))
            .or_default() += delta
    });
}

fn write_labels(out: &mut String, labels: &Labels, extra: Option<(&str, String)>) {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if !parts.is_empty() {
        let _ = write!(out, "{{{}}}", parts.join(","));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of every metric.
pub(crate) fn render() -> String {
    let mut out = String::new();
    with(|r| {
        let mut last = "";
        for ((name, labels), v) in &r.counters {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            out.push_str(name);
            write_labels(&mut out, labels, None);
            let _ = writeln!(out, " {v}");
        }
        for ((name, labels), v) in &r.gauges {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} gauge");
                last = name;
            }
            out.push_str(name);
            write_labels(&mut out, labels, None);
            let _ = writeln!(out, " {v}");
        }
        for ((name, labels), h) in &r.histograms {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            let buckets = if name.contains("transformation") {
                TRANSFORM_BUCKETS
            } else {
                REQUEST_BUCKETS
            };
            for (i, b) in buckets.iter().enumerate() {
                let _ = write!(out, "{name}_bucket");
                write_labels(&mut out, labels, Some(("le", b.to_string())));
                let _ = writeln!(out, " {}", h.counts.get(i).copied().unwrap_or_default());
            }
            let _ = write!(out, "{name}_bucket");
            write_labels(&mut out, labels, Some(("le", "+Inf".to_owned())));
            let _ = writeln!(out, " {}", h.count);
            let _ = write!(out, "{name}_sum");
            write_labels(&mut out, labels, None);
            let _ = writeln!(out, " {}", h.sum);
            let _ = write!(out, "{name}_count");
            write_labels(&mut out, labels, None);
            let _ = writeln!(out, " {}", h.count);
        }
    });
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
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"get\",group=\"\",resource=\"secrets\",le=\"0.0025\"}"));
        assert!(text.contains("transformer_prefix=\"k8s:enc:secretbox:v1:\""));
        assert!(text.contains("apiserver_storage_transformation_duration_seconds_count{transformation_type=\"to_storage\"}"));
    }
}
