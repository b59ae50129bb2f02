//! `--from-manifest`: the seed's Deployment, whose secret is an environment variable, delivered
//! as a file; and `--once`.

use std::time::Duration;

use crate::harness::{Agent, Server, patch_secret, read, shm_dir, wait_until};

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/seed-deployment.yaml"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_deployment_gets_its_api_key_as_a_file() {
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "my-api-secret",
        "--from-literal=API_KEY=key-1",
    ]);
    let shm = shm_dir();
    let kubeconfig = server.kubeconfig();
    let root = shm.path().join("root");
    let agent = Agent::start(&[
        "--from-manifest",
        SEED,
        "--mount-root",
        root.to_str().expect("utf8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
    ]);
    let file = root.join("run/secrets/env/API_KEY");
    wait_until(Duration::from_secs(20), "API_KEY delivered", &agent, || {
        read(&file).as_deref() == Some("key-1")
    });
    patch_secret(
        &server.client(),
        "my-api-secret",
        &[("API_KEY", Some("key-2"))],
    )
    .await;
    wait_until(Duration::from_secs(2), "API_KEY updated", &agent, || {
        read(&file).as_deref() == Some("key-2")
    });
    drop(agent);

    // --once: write, then exit.
    let once = shm.path().join("once");
    let env_dir = once.display().to_string();
    Agent::start(&[
        "--from-manifest",
        SEED,
        "--env-dir",
        &env_dir,
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--once",
    ])
    .finish(Duration::from_secs(20))
    .await
    .expect("--once succeeds");
    assert_eq!(read(&once.join("API_KEY")).as_deref(), Some("key-2"));

    // --once fails when a required secret is missing, naming it.
    server.kubectl(&["delete", "secret", "my-api-secret"]);
    let err = Agent::start(&[
        "--from-manifest",
        SEED,
        "--env-dir",
        &env_dir,
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--once",
    ])
    .finish(Duration::from_secs(20))
    .await
    .expect_err("missing secret");
    assert!(
        err.to_string()
            .contains("secret default/my-api-secret: does not exist"),
        "{err}"
    );
}
