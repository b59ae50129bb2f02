//! Watch fan-out: N watchers of one Secret, one update, and how long until each has it.
//!
//! Run by `bench/watch-fanout.sh`, which starts etcd and `ward serve`:
//!
//! ```text
//! watch_fanout ward --kubeconfig DIR/admin.kubeconfig --watchers 10000
//! watch_fanout etcd --endpoint http://127.0.0.1:2379 --watchers 10000
//! ```
//!
//! `ward` opens the watches over `--connections` HTTP/2 connections (each a separate client, so
//! streams spread evenly), `GET .../secrets?watch=1&fieldSelector=metadata.name=NAME` from the
//! current resourceVersion; `etcd` opens them with etcd-client over as many gRPC connections.
//! When every watch is established, one update is written (through ward, or with a put) and each
//! watcher records when it received it, staying connected until the end. Prints one JSON line: watchers, p50, p99 and max latency
//! in milliseconds, and how many watchers never saw the event within the timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::sync::{Barrier, mpsc};

const NS: &str = "default";
const NAME: &str = "fanout";

struct Args {
    target: String,
    kubeconfig: Option<String>,
    endpoint: Option<String>,
    watchers: usize,
    connections: usize,
    timeout: Duration,
}

fn parse() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let target = it
        .next()
        .context("usage: watch_fanout ward|etcd [options]")?;
    let mut args = Args {
        target,
        kubeconfig: None,
        endpoint: None,
        watchers: 10_000,
        connections: 100,
        timeout: Duration::from_secs(30),
    };
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--kubeconfig" => args.kubeconfig = Some(value),
            "--endpoint" => args.endpoint = Some(value),
            "--watchers" => args.watchers = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            "--timeout-seconds" => args.timeout = Duration::from_secs(value.parse()?),
            _ => bail!("unknown flag {flag}"),
        }
    }
    if args.connections == 0 || args.watchers < args.connections {
        bail!("--connections must be between 1 and --watchers");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let (latencies, missed, setup) = match args.target.as_str() {
        "ward" => ward(&args).await?,
        "etcd" => etcd(&args).await?,
        other => bail!("unknown target {other:?}: ward or etcd"),
    };
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| -> f64 {
        if ms.is_empty() {
            return f64::NAN;
        }
        let i = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    println!(
        "{}",
        json!({
            "target": args.target,
            "watchers": args.watchers,
            "connections": args.connections,
            "received": ms.len(),
            "missed": missed,
            "setup_seconds": setup.as_secs_f64(),
            "p50_ms": pick(0.50),
            "p99_ms": pick(0.99),
            "max_ms": pick(1.0),
        })
    );
    Ok(())
}

type Outcome = (Vec<Duration>, usize, Duration);

/// Collects each watcher's arrival time after `start` is known.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Instant>,
    watchers: usize,
    start: Instant,
    timeout: Duration,
) -> (Vec<Duration>, usize) {
    let mut got = Vec::with_capacity(watchers);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while got.len() < watchers {
        tokio::select! {
            _ = &mut deadline => break,
            t = rx.recv() => match t {
                Some(t) => got.push(t.saturating_duration_since(start)),
                None => break,
            },
        }
    }
    let missed = watchers - got.len();
    (got, missed)
}

async fn ward(args: &Args) -> anyhow::Result<Outcome> {
    let kubeconfig = args
        .kubeconfig
        .as_deref()
        .context("--kubeconfig is required")?;
    let admin = ward_client::Client::from_kubeconfig(Some(kubeconfig.as_ref()), None)?;
    let base = format!("/api/v1/namespaces/{NS}/secrets");
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": NAME}, "data": {"v": "MA=="}});
    let created = match admin.json(http::Method::POST, &base, Some(&secret)).await {
        Ok(v) => v,
        Err(_) => {
            admin
                .json(http::Method::GET, &format!("{base}/{NAME}"), None)
                .await?
        }
    };
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion")?
        .to_owned();
    let path = format!(
        "{base}?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3D{NAME}&timeoutSeconds=300"
    );
    let clients: Vec<ward_client::Client> = (0..args.connections)
        .map(|_| ward_client::Client::from_kubeconfig(Some(kubeconfig.as_ref()), None))
        .collect::<Result<_, _>>()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let ready = Arc::new(Barrier::new(args.watchers + 1));
    let setup = Instant::now();
    for i in 0..args.watchers {
        let client = clients[i % clients.len()].clone();
        let (tx, ready, path) = (tx.clone(), ready.clone(), path.clone());
        tokio::spawn(async move {
            let stream = client.watch_lines(&path).await;
            ready.wait().await;
            let Ok(stream) = stream else { return };
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(line)) = stream.next().await {
                // Only the event type is needed: no JSON parse in the client's hot loop.
                // (serde_json orders keys: "type" comes first or last.)
                if line.starts_with(br#"{"type":"MODIFIED""#)
                    || line.ends_with(br#""type":"MODIFIED"}"#)
                {
                    let _ = tx.send(Instant::now());
                    // Stay connected: a watcher that hangs up makes the server do its
                    // end-of-watch work (audit event, stream reset) during the measurement.
                    std::future::pending::<()>().await;
                }
            }
        });
    }
    drop(tx);
    ready.wait().await;
    let setup = setup.elapsed();
    // Let the last streams' first frames settle before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let (status, body) = admin
        .send(
            http::Method::PATCH,
            &format!("{base}/{NAME}"),
            Some((
                "application/merge-patch+json",
                bytes::Bytes::from_static(br#"{"data":{"v":"MQ=="}}"#),
            )),
        )
        .await?;
    if !status.is_success() {
        bail!(
            "the update answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (got, missed) = collect(rx, args.watchers, start, args.timeout).await;
    Ok((got, missed, setup))
}

async fn etcd(args: &Args) -> anyhow::Result<Outcome> {
    let endpoint = args.endpoint.as_deref().context("--endpoint is required")?;
    // Not under /registry: ward (on the same etcd) must not read these raw bytes as a Secret.
    let key = format!("/bench/fanout/{NS}/{NAME}");
    let mut writer = etcd_client::Client::connect([endpoint], None).await?;
    writer.put(key.as_str(), vec![0u8; 300], None).await?;
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        clients.push(etcd_client::Client::connect([endpoint], None).await?);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let ready = Arc::new(Barrier::new(args.watchers + 1));
    let setup = Instant::now();
    for i in 0..args.watchers {
        let mut watch = clients[i % clients.len()].watch_client();
        let (tx, ready, key) = (tx.clone(), ready.clone(), key.clone());
        tokio::spawn(async move {
            let stream = watch.watch(key, None).await;
            ready.wait().await;
            let Ok(mut stream) = stream else { return };
            while let Ok(Some(resp)) = stream.message().await {
                if !resp.events().is_empty() {
                    let _ = tx.send(Instant::now());
                    std::future::pending::<()>().await;
                }
            }
        });
    }
    drop(tx);
    ready.wait().await;
    let setup = setup.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    writer.put(key.as_str(), vec![1u8; 300], None).await?;
    let (got, missed) = collect(rx, args.watchers, start, args.timeout).await;
    Ok((got, missed, setup))
}
