//! High availability on etcd: two `ward serve` replicas over a 3-member etcd cluster under
//! continuous writes while members crash, and `ward etcd audit` on an etcd populated by Ward and
//! by a real kube-apiserver.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ward_server::etcd_audit::{
    AuditOutput, EtcdAuditOptions, EtcdAuditReport, StorageStatus, etcd_audit,
};

use crate::harness::{
    Etcd, EtcdCluster, Server, etcd_put, etcd_revision, event_kinds, json, two_replicas,
};

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const CANARY: &str = "ha-canary-90210";

// === ward etcd audit ===

#[test]
fn etcd_audit_reports_plaintext_stale_and_current_values() {
    let etcd = Etcd::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ward");
    let cfg = tmp.path().join("enc.yaml");
    let start = || {
        Server::start_in(
            &dir,
            &[
                "--etcd-servers",
                &etcd.url,
                "--encryption-provider-config",
                cfg.to_str().expect("utf8"),
            ],
        )
    };

    // Written under key1 ...
    write_config(&cfg, &[("key1", K1)]);
    let mut s = start();
    for name in ["old-a", "old-b", "old-c"] {
        s.kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            &format!("--from-literal=v={CANARY}"),
        ]);
    }
    s.kubectl(&["create", "configmap", "old-cm", "--from-literal=a=b"]);
    s.stop();
    // ... then key2 first: new writes use key2, the key1 values are stale.
    write_config(&cfg, &[("key2", K2), ("key1", K1)]);
    let mut s = start();
    for name in ["new-a", "new-b"] {
        s.kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            &format!("--from-literal=v={CANARY}"),
        ]);
    }
    s.kubectl(&["create", "configmap", "new-cm", "--from-literal=a=b"]);
    s.stop();
    // A kube-apiserver's unencrypted Secret, byte for byte, and a value no key can read.
    etcd_put(
        &etcd.url,
        "/registry/secrets/default/secret-pre-deploy",
        &rke2_secret(),
    );
    let mut garbage = b"k8s:enc:aesgcm:v1:nokey:".to_vec();
    garbage.extend((0u8..48).map(|b| b.wrapping_mul(37)));
    etcd_put(&etcd.url, "/registry/secrets/default/garbage", &garbage);

    let options = EtcdAuditOptions {
        endpoints: vec![etcd.url.clone()],
        encryption_provider_config: Some(cfg.clone()),
        page_size: 3,
        ..EtcdAuditOptions::default()
    };
    let before = etcd_revision(&etcd.url).expect("revision");
    let mut calls = Vec::new();
    let report = audit(&options, &mut calls);
    assert_eq!(
        etcd_revision(&etcd.url),
        Some(before),
        "the audit wrote to etcd"
    );
    let table = report.render(AuditOutput::Table);
    eprintln!("{table}");
    assert_eq!(report.revision, before);
    assert!(report.consistent);

    let status = |name: &str| {
        report
            .objects
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{table}"))
    };
    for name in ["new-a", "new-b", "new-cm"] {
        assert_eq!(status(name).status, StorageStatus::Encrypted, "{name}");
        assert_eq!(status(name).key_name.as_deref(), Some("key2"));
    }
    for name in ["old-a", "old-b", "old-c", "old-cm"] {
        assert_eq!(status(name).status, StorageStatus::Stale, "{name}");
        assert_eq!(status(name).key_name.as_deref(), Some("key1"));
    }
    let rke2 = status("secret-pre-deploy");
    assert_eq!(rke2.status, StorageStatus::Plaintext);
    assert_eq!((rke2.error.as_ref(), rke2.warning.as_ref()), (None, None));
    let bad = status("garbage");
    assert_eq!(bad.status, StorageStatus::Undecryptable);
    assert!(
        bad.error.as_deref().is_some_and(|e| e.contains("nokey")),
        "{bad:?}"
    );

    // Counts: only what this test wrote (Ward creates no secrets or configmaps of its own).
    let [secrets, configmaps] = &report.summary.resources[..] else {
        panic!("two resources: {:?}", report.summary.resources);
    };
    let counts = |c: &ward_server::etcd_audit::StatusCounts| {
        (
            c.objects,
            c.encrypted,
            c.stale,
            c.plaintext,
            c.undecryptable,
            c.unknown_provider,
        )
    };
    assert_eq!(counts(&secrets.counts), (7, 2, 3, 1, 1, 0), "{table}");
    assert_eq!(counts(&configmaps.counts), (2, 1, 1, 0, 0, 0), "{table}");
    assert_eq!(secrets.write_key.as_deref(), Some("key2"));
    let key = |provider: &str, key: Option<&str>, status: StorageStatus| {
        report
            .summary
            .keys
            .iter()
            .find(|k| k.provider == provider && k.key.as_deref() == key && k.status == status)
            .map_or(0, |k| k.objects)
    };
    assert_eq!(key("aesgcm", Some("key2"), StorageStatus::Encrypted), 3);
    assert_eq!(key("aesgcm", Some("key1"), StorageStatus::Stale), 4);
    assert_eq!(key("identity", None, StorageStatus::Plaintext), 1);
    assert_eq!(
        key("aesgcm", Some("nokey"), StorageStatus::Undecryptable),
        1
    );
    assert!(!report.is_clean());
    assert_eq!(calls.first(), Some(&(0, Some(9))));
    assert_eq!(calls.last(), Some(&(9, Some(9))));

    // No value in any output, plain or base64.
    let json = report.render(AuditOutput::Json);
    let parsed = crate::harness::json(&json);
    assert_eq!(parsed["summary"]["total"]["stale"], 4);
    let canary_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
    for out in [&table, &json] {
        for canary in [CANARY, &canary_b64, "mydata", "bXlkYXRh"] {
            assert!(!out.contains(canary), "{canary} leaked");
        }
    }

    // Without a config: prefixes only.
    let report = audit(
        &EtcdAuditOptions {
            encryption_provider_config: None,
            ..options.clone()
        },
        &mut Vec::new(),
    );
    let t = &report.summary.total;
    assert_eq!((t.objects, t.encrypted, t.plaintext), (9, 8, 1));

    // key1 removed: its values can no longer be read.
    write_config(&cfg, &[("key2", K2)]);
    let report = audit(&options, &mut Vec::new());
    assert_eq!(report.summary.total.undecryptable, 5);
    assert!(
        report
            .objects
            .iter()
            .filter(|o| o.status == StorageStatus::Undecryptable)
            .all(|o| o.error.is_some())
    );
}

fn audit(options: &EtcdAuditOptions, calls: &mut Vec<(u64, Option<u64>)>) -> EtcdAuditReport {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(etcd_audit(options, &mut |done, total| {
            calls.push((done, total))
        }))
        .expect("audit")
}

// === HA fault tests ===

/// Two replicas over three etcd members; writers through both replicas while a follower and
/// then the leader are killed with SIGKILL.
#[test]
fn replicas_keep_acknowledged_writes_through_etcd_member_crashes() {
    let test_start = Instant::now();
    let mut cluster = EtcdCluster::start(3);
    let (_tmp, mut a, b) = two_replicas(&cluster.endpoints());
    eprintln!("cluster and replicas up in {:?}", test_start.elapsed());

    let targets = [Target::of("a", &a), Target::of("b", &b)];
    let log = Mutex::new(Vec::<Attempt>::new());
    let stop = AtomicBool::new(false);
    let epoch = Instant::now();
    let mut faults = Vec::new();
    std::thread::scope(|scope| {
        for target in &targets {
            for writer in 0..WRITERS_PER_REPLICA {
                let (log, stop) = (&log, &stop);
                scope.spawn(move || target.write_until(writer, epoch, stop, log));
            }
        }
        let acked = || {
            log.lock()
                .expect("log")
                .iter()
                .filter(|w| w.acked())
                .count()
        };
        wait_until(Duration::from_secs(10), || acked() >= 30);
        eprintln!("{} writes acknowledged before the first fault", acked());

        // 1. A follower crashes: the leader keeps quorum.
        let leader = cluster
            .wait_for_leader(Duration::from_secs(5))
            .expect("leader");
        let follower = (0..cluster.len()).find(|&i| i != leader).expect("follower");
        let at = epoch.elapsed();
        cluster.kill(follower);
        let resumed = resume_after(&log, at, &targets);
        sleep_until(epoch, at + MEMBER_DOWN);
        faults.push(Fault::new("follower", at, resumed, epoch.elapsed()));
        // Bring it back so the cluster can lose another member.
        assert!(
            cluster.restart(follower, Duration::from_secs(15)),
            "killed member did not rejoin"
        );
        std::thread::sleep(Duration::from_millis(500));

        // 2. The leader crashes: the other two elect a new one.
        let leader = cluster
            .wait_for_leader(Duration::from_secs(5))
            .expect("leader");
        let at = epoch.elapsed();
        cluster.kill(leader);
        let resumed = resume_after(&log, at, &targets);
        let new_leader = cluster.wait_for_leader(Duration::from_secs(10));
        assert!(new_leader.is_some_and(|l| l != leader), "no new leader");
        sleep_until(epoch, at + MEMBER_DOWN);
        faults.push(Fault::new("leader", at, resumed, epoch.elapsed()));
        stop.store(true, Ordering::SeqCst);
    });

    // The surviving members agree on the store (the restarted one caught up).
    let alive: Vec<usize> = (0..cluster.len())
        .filter(|&i| cluster.is_running(i))
        .collect();
    let revisions = || -> Vec<Option<u64>> {
        alive
            .iter()
            .map(|&i| etcd_revision(cluster.client_url(i)))
            .collect()
    };
    wait_until(Duration::from_secs(5), || {
        let r = revisions();
        r[0].is_some() && r.iter().all(|x| *x == r[0])
    });
    let r = revisions();
    assert!(r[0].is_some() && r.iter().all(|x| *x == r[0]), "{r:?}");

    let log = log.into_inner().expect("log");
    let acked: Vec<&Attempt> = log.iter().filter(|w| w.acked()).collect();
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    for w in &log {
        *codes.entry(w.code).or_default() += 1;
    }
    eprintln!(
        "{} attempts, {} acknowledged; status codes {codes:?}",
        log.len(),
        acked.len()
    );
    // While a member is down, etcd-client (tonic's balanced channel) still sends some requests
    // to it; they fail at once with "tcp connect error" (etcdv3/etcd-client#39). Such a request
    // never reached a member, so ward-storage-etcd retries it: `report` asserts that writes keep
    // succeeding with a member down.
    for fault in &faults {
        fault.report(&log, &targets);
    }
    for fault in &faults {
        for (target, after) in targets.iter().zip(&fault.resumed) {
            let after = after.unwrap_or_else(|| {
                panic!(
                    "no write through {} after the {} crash",
                    target.name, fault.name
                )
            });
            assert!(
                after < MAX_RESUME,
                "writes through {} resumed {after:?} after the {} crash",
                target.name,
                fault.name
            );
        }
    }
    // Each write's outcome is known: no attempt hit the client timeout.
    assert!(!codes.contains_key(&0), "a request timed out: {codes:?}");

    // Every acknowledged write is there, through both replicas.
    for target in &targets {
        let names = target.secret_names();
        let missing: Vec<&str> = acked
            .iter()
            .map(|w| w.name.as_str())
            .filter(|n| !names.contains(*n))
            .collect();
        assert!(
            missing.is_empty(),
            "{} lost {} acknowledged writes: {missing:?}",
            target.name,
            missing.len()
        );
    }

    // A replica crashes: the other keeps serving reads and writes.
    a.crash();
    let b = &targets[1];
    let code = retry(|| {
        let (code, _) = b.create("after-replica-crash");
        // 409: an earlier attempt that failed late had in fact been written.
        matches!(code, 201 | 409).then_some(code)
    });
    assert!(code.is_some(), "no write through b after a crashed");
    assert!(b.secret_names().contains("after-replica-crash"));
    let path = format!("/api/v1/namespaces/default/secrets/{}", acked[0].name);
    let read = retry(|| {
        let (code, body) = b.request("GET", &path, None);
        (code == 200).then(|| json(&body))
    })
    .expect("read through b");
    assert_eq!(read["metadata"]["name"], acked[0].name.as_str());
    eprintln!("HA test took {:?}", test_start.elapsed());
}

/// One member crash and what the writers saw.
struct Fault {
    name: &'static str,
    /// When the member was killed, since the epoch.
    at: Duration,
    /// Per replica: how long after `at` the first write started after it was acknowledged.
    resumed: Vec<Option<Duration>>,
    /// When the member was brought back (or the writers stopped).
    until: Duration,
}

impl Fault {
    fn new(
        name: &'static str,
        at: Duration,
        resumed: Vec<Option<Duration>>,
        until: Duration,
    ) -> Fault {
        Fault {
            name,
            at,
            resumed,
            until,
        }
    }

    /// Prints the measurements: time to the first acknowledged write, and how many writes
    /// still failed after that while the member was down.
    fn report(&self, log: &[Attempt], targets: &[Target]) {
        for (target, resumed) in targets.iter().zip(&self.resumed) {
            let from = self.at + resumed.unwrap_or(MAX_RESUME);
            let after: Vec<&Attempt> = log
                .iter()
                .filter(|w| w.replica == target.name && w.started >= from && w.started < self.until)
                .collect();
            let failed = after.iter().filter(|w| !w.acked()).count();
            eprintln!(
                "kill -9 {} at {:?}: writes through {} resumed after {resumed:?}; then {failed} of \
                 {} writes failed while the member was down ({:?})",
                self.name,
                self.at,
                target.name,
                after.len(),
                self.until - self.at,
            );
            // ward-storage-etcd retries requests refused by the dead member, so once writes
            // resumed, (almost) none fail while the cluster has quorum.
            assert!(
                failed * 20 <= after.len(),
                "{failed} of {} writes through {} failed with a member down",
                after.len(),
                target.name
            );
        }
    }
}

/// How long writes may take to come back after a member crash.
const MAX_RESUME: Duration = Duration::from_secs(15);
/// How long a killed member stays down.
const MEMBER_DOWN: Duration = Duration::from_secs(3);
/// Writer threads per replica: while one waits on a request stuck on a dead member, another
/// can show that service is back.
const WRITERS_PER_REPLICA: usize = 2;
/// Bounds on the writers, whatever happens.
const MAX_WRITES_PER_WRITER: usize = 1_000;
const MAX_WRITE_TIME: Duration = Duration::from_secs(45);
/// curl's limit per request; a write that hits it has an unknown outcome (code 0).
const REQUEST_TIMEOUT_SECS: &str = "12";

/// One create request and its outcome.
struct Attempt {
    name: String,
    replica: &'static str,
    /// Since the test's epoch.
    started: Duration,
    finished: Duration,
    /// HTTP status; 0 when curl got no answer.
    code: u16,
}

impl Attempt {
    fn acked(&self) -> bool {
        self.code == 201
    }
}

/// What a writer needs to reach one replica with curl.
struct Target {
    name: &'static str,
    url: String,
    ca: std::path::PathBuf,
    token: String,
}

impl Target {
    fn of(name: &'static str, server: &Server) -> Target {
        Target {
            name,
            url: server.url.clone(),
            ca: server.data_dir.join("pki").join("ca.crt"),
            token: server.token(),
        }
    }

    /// Creates Secrets `w-<replica>-<writer>-<n>` one after another until `stop`, or a bound.
    fn write_until(
        &self,
        writer: usize,
        epoch: Instant,
        stop: &AtomicBool,
        log: &Mutex<Vec<Attempt>>,
    ) {
        for n in 0..MAX_WRITES_PER_WRITER {
            if stop.load(Ordering::SeqCst) || epoch.elapsed() > MAX_WRITE_TIME {
                return;
            }
            let name = format!("w-{}-{writer}-{n}", self.name);
            let started = epoch.elapsed();
            let (code, _) = self.create(&name);
            let finished = epoch.elapsed();
            log.lock().expect("log").push(Attempt {
                name,
                replica: self.name,
                started,
                finished,
                code,
            });
            if code != 201 {
                // Don't spin on a replica that is failing fast.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn create(&self, name: &str) -> (u16, String) {
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {"v": format!("{CANARY}-{name}")},
        });
        self.request(
            "POST",
            "/api/v1/namespaces/default/secrets",
            Some(&body.to_string()),
        )
    }

    /// The names of the Secrets in `default`, read through this replica.
    fn secret_names(&self) -> std::collections::HashSet<String> {
        let body = retry(|| {
            let (code, body) = self.request("GET", "/api/v1/namespaces/default/secrets", None);
            (code == 200).then_some(body)
        })
        .unwrap_or_else(|| panic!("no list through {} in 5 s", self.name));
        json(&body)["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", REQUEST_TIMEOUT_SECS, "-o", "-"])
            .args(["-w", "\n%{http_code}", "-X", method, "--cacert"])
            .arg(&self.ca)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .args(["-H", "Content-Type: application/json"]);
        if let Some(body) = body {
            cmd.args(["--data-binary", body]);
        }
        let out = cmd
            .arg(format!("{}{path}", self.url))
            .stdin(Stdio::null())
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
}

/// A watch opened on one replica, served by its watch cache, follows writes through the other
/// replica while etcd's leader is killed and comes back: no event is lost, none is repeated, and
/// the client sees no error (the cache re-watches etcd from the last revision it saw).
#[test]
fn watches_follow_writes_through_an_etcd_leader_crash() {
    let mut cluster = EtcdCluster::start(3);
    let (_tmp, a, b) = two_replicas(&cluster.endpoints());
    let path = "/api/v1/namespaces/default/secrets";
    let create = |name: &str| {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}"}},"data":{{"k":"dg=="}}}}"#
        );
        retry(|| {
            let (code, reply) = a.curl(
                "POST",
                path,
                &["Content-Type: application/json"],
                Some(body.as_bytes()),
            );
            match code {
                201 => Some(reply),
                // a retried create whose first attempt was applied
                409 => Some(a.curl("GET", &format!("{path}/{name}"), &[], None).1),
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("create {name} never succeeded"))
    };
    let rv = json(&create("w-0"))["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let events = std::thread::scope(|scope| {
        let watch = scope.spawn(|| {
            b.curl(
                "GET",
                &format!("{path}?watch=1&resourceVersion={rv}&timeoutSeconds=15"),
                &[],
                None,
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        create("w-1");
        let leader = cluster
            .wait_for_leader(Duration::from_secs(5))
            .expect("leader");
        cluster.kill(leader);
        let new_leader = cluster.wait_for_leader(Duration::from_secs(10));
        assert!(new_leader.is_some_and(|l| l != leader), "no new leader");
        create("w-2");
        assert!(
            cluster.restart(leader, Duration::from_secs(15)),
            "killed member did not rejoin"
        );
        create("w-3");
        let (code, body) = watch.join().expect("watch thread");
        assert_eq!(code, 200, "{body}");
        body
    });
    let seen = event_kinds(&events);
    let expected: Vec<(String, String)> = ["w-1", "w-2", "w-3"]
        .iter()
        .map(|n| ("ADDED".to_owned(), (*n).to_owned()))
        .collect();
    assert_eq!(seen, expected, "{events}");
    // Served by the cache, not by a storage watch of its own.
    let (_, metrics) = b.curl("GET", "/metrics", &[], None);
    assert!(
        metrics.contains(r#"ward_watch_cache_watches_total{resource="secrets",source="cache"} 1"#),
        "{metrics}"
    );
}

/// For each target, how long after `fault` (since the epoch) the first write that started after
/// it was acknowledged; `None` if none was within [`MAX_RESUME`] plus a margin.
fn resume_after(
    log: &Mutex<Vec<Attempt>>,
    fault: Duration,
    targets: &[Target],
) -> Vec<Option<Duration>> {
    let first = |replica: &str| {
        log.lock()
            .expect("log")
            .iter()
            .filter(|w| w.replica == replica && w.acked() && w.started >= fault)
            .map(|w| w.finished - fault)
            .min()
    };
    wait_until(MAX_RESUME + Duration::from_secs(2), || {
        targets.iter().all(|t| first(t.name).is_some())
    });
    targets.iter().map(|t| first(t.name)).collect()
}

/// Retries `attempt` for up to 5 s. With one etcd member down, ward's etcd client still sends
/// some requests to it, and they fail at once ("tcp connect error"): a failed read is not lost
/// data, so verification reads retry.
fn retry<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = attempt() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sleep_until(epoch: Instant, at: Duration) {
    if let Some(left) = at.checked_sub(epoch.elapsed()) {
        std::thread::sleep(left);
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_config(path: &Path, keys: &[(&str, &str)]) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut text = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets, configmaps]\n  providers:\n  - aesgcm:\n      keys:\n",
    );
    for (name, secret) in keys {
        text.push_str(&format!("      - name: {name}\n        secret: {secret}\n"));
    }
    text.push_str("  - identity: {}\n");
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("config");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
}

/// The etcd value a real kube-apiserver (RKE2) stored for an unencrypted Secret.
fn rke2_secret() -> Vec<u8> {
    let vector =
        include_str!("../../../ward-api/tests/vectors/identity-rke2-secret-pre-deploy.txt");
    let hex: String = vector
        .lines()
        .skip_while(|l| !l.starts_with("etcd_value_hex:"))
        .skip(1)
        .take_while(|l| !l.contains(':') && !l.starts_with('#'))
        .map(str::trim)
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}
