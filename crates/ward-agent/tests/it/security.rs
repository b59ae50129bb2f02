//! Refused targets, a least-privilege identity, and secret values that never reach the logs.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Agent, Server, config, parse_agent, patch_secret, read, shm_dir, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_readable_and_disk_targets_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;

    // Targets are checked before the agent connects: no server is needed to be refused.
    let shm = shm_dir();
    let refused = |volume: String, extra: &[&str]| {
        let cfg = config(shm.path(), &volume);
        let mut args = vec![
            "--config",
            cfg.to_str().expect("utf8"),
            "--kubeconfig",
            "/nonexistent",
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Agent::start(&args)
                .finish(Duration::from_secs(10))
                .await
                .expect_err("refused")
                .to_string()
        }
    };

    let open = shm.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let volume = |t: &std::path::Path| {
        format!(
            "  - name: v\n    target: {}\n    secret: {{secretName: db}}\n",
            t.display()
        )
    };
    let e = refused(volume(&open), &[]).await;
    assert!(
        e.contains("open to every user") && e.contains("--allow-world-readable"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(&open).expect("ls").count(),
        0,
        "nothing written"
    );

    let e = refused(
        format!(
            "  - name: v\n    target: {}\n    subPath: k\n    \
             secret: {{secretName: db, defaultMode: 0644}}\n",
            shm.path().join("file").display()
        ),
        &[],
    )
    .await;
    assert!(e.contains("readable by every user"), "{e}");

    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("disk tmp");
    let e = refused(volume(&disk.path().join("t")), &[]).await;
    assert!(
        e.contains("not in memory") && e.contains("--allow-non-tmpfs"),
        "{} must be on a disk-backed filesystem for this test: {e}",
        env!("CARGO_TARGET_TMPDIR")
    );
    // Allowed on request: the refusal is gone (the made-up kubeconfig is the next problem).
    let e = refused(volume(&disk.path().join("t")), &["--allow-non-tmpfs"]).await;
    assert!(e.contains("/nonexistent"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privilege_identity_works_and_values_never_reach_the_logs() {
    let canaries = [
        "canary-db-5f1e2d",
        "canary-other-9a7b3c",
        "canary-db-next-44d1",
    ];
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        &format!("--from-literal=password={}", canaries[0]),
    ]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "other",
        &format!("--from-literal=password={}", canaries[1]),
    ]);
    // The agent's identity: get and watch on `db` by name, nothing on `other`.
    server.kubectl(&["create", "serviceaccount", "agent"]);
    server.kubectl(&[
        "create",
        "role",
        "agent-db",
        "--verb=get,watch",
        "--resource=secrets",
        "--resource-name=db",
    ]);
    server.kubectl(&[
        "create",
        "rolebinding",
        "agent-db",
        "--role=agent-db",
        "--serviceaccount=default:agent",
    ]);
    let token = server.kubectl(&["create", "token", "agent"]);
    let shm = shm_dir();
    let token_file = shm.path().join("token");
    std::fs::write(&token_file, token.trim()).expect("token file");
    let (db, other) = (shm.path().join("db"), shm.path().join("other"));
    let cfg = config(
        shm.path(),
        &format!(
            "  - name: db\n    target: {}\n    secret: {{secretName: db}}\n  \
             - name: other\n    target: {}\n    secret: {{secretName: other}}\n",
            db.display(),
            other.display()
        ),
    );
    let ca = server.ca();
    let args = [
        "--config",
        cfg.to_str().expect("utf8"),
        "--server",
        &server.url,
        "--token-file",
        token_file.to_str().expect("utf8"),
        "--certificate-authority",
        ca.to_str().expect("utf8"),
    ];
    let agent = Agent::start(&args);
    wait_until(Duration::from_secs(20), "db delivered", &agent, || {
        read(&db.join("password")).as_deref() == Some(canaries[0])
    });
    wait_until(Duration::from_secs(5), "refusal reported", &agent, || {
        agent.logs().contains("cannot get: Forbidden (403)")
    });
    assert_eq!(
        std::fs::read_dir(&other).expect("ls").count(),
        0,
        "nothing is written for an object the identity cannot read"
    );

    patch_secret(&server.client(), "db", &[("password", Some(canaries[2]))]).await;
    wait_until(
        Duration::from_secs(2),
        "update seen through a by-name watch",
        &agent,
        || read(&db.join("password")).as_deref() == Some(canaries[2]),
    );
    server.kubectl(&["delete", "secret", "db"]);
    wait_until(Duration::from_secs(2), "deletion", &agent, || {
        !db.join("password").exists()
    });

    let mut outputs = vec![
        ("agent logs", agent.logs()),
        ("agent flags", format!("{:?}", parse_agent(&args))),
    ];
    drop(agent);
    // `ward run` is refused `other` too, and prints nothing of it.
    let (result, run_logs) = crate::harness::run(&[
        "--secret",
        "other",
        "--server",
        &server.url,
        "--token-file",
        token_file.to_str().expect("utf8"),
        "--certificate-authority",
        ca.to_str().expect("utf8"),
        "--",
        "true",
    ])
    .await;
    let err = result.expect_err("forbidden");
    assert!(err.to_string().contains("Forbidden (403)"), "{err}");
    outputs.push(("run logs", run_logs));
    outputs.push(("run error", format!("{err} {err:?}")));
    outputs.push(("server logs", server.logs()));
    for (what, text) in &outputs {
        for c in canaries {
            assert!(!text.contains(c), "{what} hold {c}:\n{text}");
            assert!(
                !text.contains(&B64.encode(c)),
                "{what} hold base64 of {c}:\n{text}"
            );
        }
    }
}
