//! Propagation time, untorn reads, removed keys, modes and single-file targets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::{Agent, Server, config, mode, patch_secret, read, shm_dir, wait_until};

/// Reads `a` and `b` through one resolution of `..data`, as a reader that needs several files to
/// agree does. `None` when the version vanished meanwhile (the reader retries).
fn read_version(dir: &Path) -> Option<(String, String)> {
    let version = std::fs::read_link(dir.join("..data")).ok()?;
    let base = dir.join(version);
    Some((read(&base.join("a"))?, read(&base.join("b"))?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_arrive_within_a_second_and_readers_never_see_a_mix() {
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=a=a:0",
        "--from-literal=b=b:0",
    ]);
    let shm = shm_dir();
    let target = shm.path().join("db");
    let cfg = config(
        shm.path(),
        &format!(
            "  - name: db\n    target: {}\n    secret: {{secretName: db}}\n",
            target.display()
        ),
    );
    let kubeconfig = server.kubeconfig();
    let agent = Agent::start(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
    ]);
    wait_until(Duration::from_secs(20), "initial files", &agent, || {
        read(&target.join("a")).as_deref() == Some("a:0")
    });

    // The kubelet's layout and the agent's modes.
    let version = std::fs::read_link(target.join("..data")).expect("..data is a symlink");
    assert!(version.to_string_lossy().starts_with("..20"), "{version:?}");
    assert_eq!(
        std::fs::read_link(target.join("a")).expect("link"),
        PathBuf::from("..data/a")
    );
    assert_eq!(mode(&target), 0o700);
    assert_eq!(mode(&target.join(&version)), 0o700);
    assert_eq!(mode(&target.join(&version).join("a")), 0o400);

    // Readers: one resolves ..data once and reads both files; one opens the links directly.
    let stop = Arc::new(AtomicBool::new(false));
    let consistent = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (stop, consistent, dir) = (stop.clone(), consistent.clone(), target.clone());
        readers.push(std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) {
                if let Some((a, b)) = read_version(&dir) {
                    let (na, nb) = (a.strip_prefix("a:"), b.strip_prefix("b:"));
                    if na.is_none() || na != nb {
                        return Err(format!("a mix or a torn file: a={a:?} b={b:?}"));
                    }
                    consistent.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(a) = read(&dir.join("a"))
                    && (!a.starts_with("a:") || a[2..].parse::<u32>().is_err())
                {
                    return Err(format!("a torn file through the link: {a:?}"));
                }
            }
            Ok(())
        }));
    }

    let client = server.client();
    let mut latencies = Vec::new();
    for i in 1..=30u32 {
        let (a, b) = (format!("a:{i}"), format!("b:{i}"));
        patch_secret(&client, "db", &[("a", Some(&a)), ("b", Some(&b))]).await;
        let took = wait_until(Duration::from_secs(10), "update", &agent, || {
            read(&target.join("a")).as_deref() == Some(a.as_str())
                && read(&target.join("b")).as_deref() == Some(b.as_str())
        });
        latencies.push(took);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join()
            .expect("reader thread")
            .expect("readers never see a mix");
    }
    assert!(
        consistent.load(Ordering::Relaxed) > 30,
        "the readers read ({} consistent reads)",
        consistent.load(Ordering::Relaxed)
    );
    latencies.sort();
    let (p50, max) = (
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    eprintln!(
        "update to file: p50 {p50:?}, max {max:?} over {} updates",
        latencies.len()
    );
    assert!(max < Duration::from_secs(2), "an update took {max:?}");

    // One version directory at a time; a removed key disappears.
    let versions = std::fs::read_dir(&target)
        .expect("ls")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("..20"))
        })
        .count();
    assert_eq!(versions, 1);
    patch_secret(&client, "db", &[("b", None)]).await;
    wait_until(Duration::from_secs(2), "b removed", &agent, || {
        std::fs::symlink_metadata(target.join("b")).is_err()
    });
    assert_eq!(read(&target.join("a")).as_deref(), Some("a:30"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_modes_owners_and_single_file_targets() {
    use std::os::unix::fs::MetadataExt as _;

    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "app",
        "--from-literal=password=p1",
        "--from-literal=token=t1",
        "--from-literal=unused=u",
    ]);
    server.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=level=debug",
    ]);
    let shm = shm_dir();
    let me = std::fs::metadata(shm.path()).expect("stat");
    let (uid, gid) = (me.uid().to_string(), me.gid().to_string());
    let dir = shm.path().join("app");
    let file = shm.path().join("etc/password");
    let cfg = config(
        shm.path(),
        &format!(
            "  - name: app
    target: {dir}
    projected:
      defaultMode: 0440
      sources:
        - secret:
            name: app
            items: [{{key: password, path: db/password, mode: 0400}}, {{key: token, path: token}}]
        - configMap: {{name: settings}}
        - secret: {{name: absent, optional: true}}
  - name: one-file
    target: {file}
    subPath: password
    secret: {{secretName: app}}
",
            dir = dir.display(),
            file = file.display()
        ),
    );
    let kubeconfig = server.kubeconfig();
    let agent = Agent::start(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--uid",
        &uid,
        "--gid",
        &gid,
    ]);
    wait_until(Duration::from_secs(20), "initial files", &agent, || {
        read(&file).as_deref() == Some("p1")
            && read(&dir.join("db/password")).as_deref() == Some("p1")
    });
    assert_eq!(read(&dir.join("token")).as_deref(), Some("t1"));
    assert_eq!(read(&dir.join("level")).as_deref(), Some("debug"));
    assert!(!dir.join("unused").exists(), "only the listed items");
    let version = dir.join(std::fs::read_link(dir.join("..data")).expect("..data"));
    assert_eq!(mode(&version.join("db/password")), 0o400, "items[].mode");
    assert_eq!(mode(&version.join("token")), 0o440, "defaultMode");
    assert_eq!(
        mode(&dir),
        0o750,
        "group-readable files open the directory to the group"
    );
    assert_eq!(mode(&version.join("db")), 0o750);
    assert_eq!(mode(&file), 0o400);
    let md = std::fs::metadata(version.join("token")).expect("stat");
    assert_eq!((md.uid(), md.gid()), (me.uid(), me.gid()));

    patch_secret(&server.client(), "app", &[("password", Some("p2"))]).await;
    let took = wait_until(
        Duration::from_secs(2),
        "single file updated",
        &agent,
        || read(&file).as_deref() == Some("p2"),
    );
    eprintln!("single file updated in {took:?}");
    wait_until(
        Duration::from_secs(2),
        "projected file updated",
        &agent,
        || read(&dir.join("db/password")).as_deref() == Some("p2"),
    );
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().expect("parent"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("password")],
        "no temporaries"
    );
}
