//! Encrypt and Decrypt calls per second against a running KMS v2 plugin, over its real unix
//! socket, with the client kube-apiserver's envelope uses in Ward ([`GrpcKmsClient`]).
//!
//! Each phase runs `CONCURRENCY` callers for `SECONDS`: first Encrypt of a 32-byte seed (what
//! the API server sends at every key rotation), then Decrypt of one wrapped seed (what it sends
//! on a DEK-cache miss). Prints one line per phase:
//! `encrypt ops_s=... p50_us=... p99_us=... errors=...`.
//!
//! Run: `cargo run --release -p ward-kms --example kms_bench -- unix:///tmp/kms.sock 5 4`
//! (`bench/kms-plugin.sh` starts the plugins and runs it for each backend).

// A benchmark binary: a failure is reported by the panic message and a non-zero exit.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ward_kms::{GrpcKmsClient, KmsEndpoint, KmsService as _, WrappedKey};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, seconds, concurrency] = args.as_slice() else {
        eprintln!("usage: kms_bench ENDPOINT SECONDS CONCURRENCY");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY is a number");
    let client = GrpcKmsClient::connect_lazy(
        KmsEndpoint::parse(endpoint).expect("a unix:// endpoint"),
        Duration::from_secs(5),
    );
    let status = client.status().await.expect("Status");
    assert_eq!(status.healthz, "ok", "the plugin is not healthy");
    let seed = [0x5a; 32];
    let wrapped = Arc::new(client.encrypt("bench", &seed).await.expect("Encrypt"));
    let duration = Duration::from_secs(seconds);

    for phase in [Phase::Encrypt, Phase::Decrypt] {
        // A short warm-up (connections, caches), not counted.
        run(
            &client,
            phase,
            &wrapped,
            concurrency,
            Duration::from_millis(300),
        )
        .await;
        let (latencies, errors, elapsed) =
            run(&client, phase, &wrapped, concurrency, duration).await;
        let ops = latencies.len() as f64 / elapsed.as_secs_f64();
        println!(
            "{} ops_s={ops:.0} p50_us={} p99_us={} errors={errors}",
            phase.name(),
            percentile(&latencies, 50),
            percentile(&latencies, 99),
        );
    }
}

#[derive(Clone, Copy)]
enum Phase {
    Decrypt,
    Encrypt,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Decrypt => "decrypt",
            Phase::Encrypt => "encrypt",
        }
    }
}

/// Runs `concurrency` callers for `duration`; returns every latency in µs (sorted), the error
/// count and the elapsed time.
async fn run(
    client: &GrpcKmsClient,
    phase: Phase,
    wrapped: &Arc<WrappedKey>,
    concurrency: usize,
    duration: Duration,
) -> (Vec<u64>, u64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (client, wrapped, stop) = (client.clone(), Arc::clone(wrapped), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let seed = [worker as u8; 32];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let uid = format!("bench-{worker}-{i}");
                i += 1;
                let t0 = Instant::now();
                let ok = match phase {
                    Phase::Encrypt => client.encrypt(&uid, &seed).await.is_ok(),
                    Phase::Decrypt => client.decrypt(&uid, &wrapped).await.is_ok(),
                };
                if ok {
                    latencies.push(t0.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    (all, errors, elapsed)
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}
