//! Deleted secrets, `--on-change`, `--signal` and the supervised command.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Agent, Server, config, patch_secret, read, shm_dir, wait_for, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_removes_its_files_or_keeps_them_on_request() {
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=v1",
    ]);
    let shm = shm_dir();
    let (removed, kept) = (shm.path().join("removed"), shm.path().join("kept"));
    let kubeconfig = server.kubeconfig();
    let start = |target: &std::path::Path, sub: &str, extra: &[&str]| {
        let dir = shm.path().join(sub);
        std::fs::create_dir(&dir).expect("mkdir");
        let cfg = config(
            &dir,
            &format!(
                "  - name: db\n    target: {}\n    secret: {{secretName: db}}\n",
                target.display()
            ),
        );
        let mut args = vec![
            "--config".to_owned(),
            cfg.display().to_string(),
            "--kubeconfig".to_owned(),
            kubeconfig.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Agent::start(&args)
    };
    let remover = start(&removed, "c1", &[]);
    let keeper = start(&kept, "c2", &["--on-delete", "keep"]);
    for (agent, dir) in [(&remover, &removed), (&keeper, &kept)] {
        wait_until(Duration::from_secs(20), "initial file", agent, || {
            read(&dir.join("password")).as_deref() == Some("v1")
        });
    }

    server.kubectl(&["delete", "secret", "db"]);
    wait_until(Duration::from_secs(2), "files removed", &remover, || {
        std::fs::symlink_metadata(removed.join("password")).is_err()
    });
    assert!(removed.join("..data").exists(), "the volume itself stays");
    let logs = remover.logs();
    assert!(
        logs.contains("secret default/db does not exist"),
        "the agent says so:\n{logs}"
    );
    wait_until(Duration::from_secs(2), "keeper logs", &keeper, || {
        keeper.logs().contains("--on-delete keep")
    });
    assert_eq!(read(&kept.join("password")).as_deref(), Some("v1"));

    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=v2",
    ]);
    for (agent, dir) in [(&remover, &removed), (&keeper, &kept)] {
        wait_until(Duration::from_secs(2), "recreated", agent, || {
            read(&dir.join("password")).as_deref() == Some("v2")
        });
    }
    assert!(
        remover.logs().contains("exists again"),
        "{}",
        remover.logs()
    );
}

/// A shell process that appends a line to `log` for each `sig` it receives.
fn trap_process(log: &std::path::Path, sig: &str) -> std::process::Child {
    let script = format!(
        "trap 'echo {sig} >> \"$0\"' {sig}; echo ready >> \"$0\"; while :; do sleep 0.05; done"
    );
    Command::new("sh")
        .args(["-c", &script])
        .arg(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("sh")
}

fn lines(p: &std::path::Path) -> Vec<String> {
    read(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_change_and_signals_follow_each_change_but_not_the_first_sync() {
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=v1",
    ]);
    let shm = shm_dir();
    let target = shm.path().join("db");
    let changes = shm.path().join("changes.log");
    let signals = shm.path().join("signals.log");
    let mut listener = trap_process(&signals, "USR1");
    wait_for(Duration::from_secs(5), || lines(&signals) == ["ready"]).expect("listener ready");
    let cfg = config(
        shm.path(),
        &format!(
            "  - name: db\n    target: {}\n    secret: {{secretName: db}}\n",
            target.display()
        ),
    );
    let kubeconfig = server.kubeconfig();
    let on_change = format!("printf '%s\\n' \"$WARD_CHANGED\" >> {}", changes.display());
    let pid_signal = format!("{}:USR1", listener.id());
    let agent = Agent::start(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--on-change",
        &on_change,
        "--signal",
        &pid_signal,
    ]);
    wait_until(Duration::from_secs(20), "initial file", &agent, || {
        read(&target.join("password")).as_deref() == Some("v1")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        lines(&changes).is_empty(),
        "no notification for the initial sync"
    );
    assert_eq!(lines(&signals), ["ready"]);

    patch_secret(&server.client(), "db", &[("password", Some("v2"))]).await;
    wait_until(Duration::from_secs(2), "on-change ran", &agent, || {
        lines(&changes) == [target.display().to_string()]
    });
    wait_until(Duration::from_secs(2), "signal received", &agent, || {
        lines(&signals) == ["ready", "USR1"]
    });
    // A change that leaves the files as they are notifies nobody.
    server.kubectl(&["label", "secret", "db", "team=a"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lines(&changes).len(), 1, "{}", agent.logs());
    let _ = listener.kill();
    let _ = listener.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_command_starts_after_the_files_and_is_signalled_on_change() {
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=v1",
    ]);
    let shm = shm_dir();
    let target = shm.path().join("db");
    let log = shm.path().join("app.log");
    let cfg = config(
        shm.path(),
        &format!(
            "  - name: db\n    target: {}\n    secret: {{secretName: db}}\n",
            target.display()
        ),
    );
    let kubeconfig = server.kubeconfig();
    // The application records the password it finds at start, then each SIGHUP with the
    // password it reads then.
    let script = format!(
        "p={pw}; echo \"start $(cat $p)\" >> {log}; \
         trap 'echo \"hup $(cat $p)\" >> {log}' HUP; \
         while :; do sleep 0.05; done",
        pw = target.join("password").display(),
        log = log.display()
    );
    let agent = Agent::start(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    wait_until(
        Duration::from_secs(20),
        "the command started",
        &agent,
        || lines(&log) == ["start v1"],
    );
    patch_secret(&server.client(), "db", &[("password", Some("v2"))]).await;
    wait_until(
        Duration::from_secs(2),
        "the command reloaded",
        &agent,
        || lines(&log) == ["start v1", "hup v2"],
    );
    drop(agent); // kills the command with it

    // The agent ends with the command's status.
    let cfg2 = config(
        &{
            let d = shm.path().join("c2");
            std::fs::create_dir(&d).expect("mkdir");
            d
        },
        &format!(
            "  - name: db\n    target: {}\n    secret: {{secretName: db}}\n",
            shm.path().join("db2").display()
        ),
    );
    let agent = Agent::start(&[
        "--config",
        cfg2.to_str().expect("utf8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    let err = agent
        .finish(Duration::from_secs(20))
        .await
        .expect_err("the command failed");
    assert_eq!(err.exit_code(), Some(3), "{err}");
    assert_eq!(err.to_string(), "sh exited with status 3");
}
