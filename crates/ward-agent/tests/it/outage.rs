//! The API goes away and comes back: the files stay, the agent backs off, reconnects, finds its
//! resourceVersion compacted (410 Expired) and lists again.

use std::time::Duration;

use crate::harness::{Agent, Server, config, patch_secret, read, shm_dir, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_the_files_then_a_410_relists_and_updates_resume() {
    let data = tempfile::tempdir().expect("tmp");
    let dir = data.path().join("ward");
    // Five revisions of history: a resourceVersion older than that is 410 Expired.
    let mut server = Server::start_in(&dir, 0, &["--watch-history", "5"]);
    let port = server.port;
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=v1",
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
        "--max-backoff",
        "500ms",
    ]);
    let password = target.join("password");
    wait_until(Duration::from_secs(20), "initial file", &agent, || {
        read(&password).as_deref() == Some("v1")
    });

    // Other objects move the store well past the agent's resourceVersion.
    for i in 0..10 {
        server.kubectl(&[
            "create",
            "configmap",
            &format!("noise-{i}"),
            "--from-literal=k=v",
        ]);
    }
    server.stop();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        read(&password).as_deref(),
        Some("v1"),
        "the last good file stays"
    );
    let logs = agent.logs();
    assert!(logs.contains("keeping the last files"), "{logs}");

    let server = Server::start_in(&dir, port, &["--watch-history", "5"]);
    patch_secret(&server.client(), "db", &[("password", Some("v2"))]).await;
    let took = wait_until(
        Duration::from_secs(10),
        "update after the outage",
        &agent,
        || read(&password).as_deref() == Some("v2"),
    );
    eprintln!("first update after the restart arrived in {took:?}");
    let logs = agent.logs();
    assert!(
        logs.contains("410 Expired"),
        "the agent relisted after 410:\n{logs}"
    );
    assert!(logs.contains("reading again after"), "{logs}");

    // And it keeps following changes on the new watch.
    patch_secret(&server.client(), "db", &[("password", Some("v3"))]).await;
    wait_until(Duration::from_secs(2), "next update", &agent, || {
        read(&password).as_deref() == Some("v3")
    });
}
