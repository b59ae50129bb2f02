//! `ward run`: values in the child's environment only, with the warning; exit statuses.

use crate::harness::{Server, read, run, shm_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_run_sets_variables_in_the_child_and_warns() {
    let canary = "canary-run-3c9e81";
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        &format!("--from-literal=password={canary}"),
    ]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "api",
        "--from-literal=TOKEN=t-1",
        "--from-literal=URL=https://api",
    ]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "dotted",
        "--from-literal=a.b=x",
    ]);
    let shm = shm_dir();
    let out = shm.path().join("out");
    let kubeconfig = server.kubeconfig();
    let kc = kubeconfig.to_str().expect("utf8");
    let script = format!(
        "printf '%s|%s|%s' \"$DB_PASSWORD\" \"$TOKEN\" \"$URL\" > {}; exit 7",
        out.display()
    );
    let (result, logs) = run(&[
        "--kubeconfig",
        kc,
        "--secret",
        "db/password=DB_PASSWORD",
        "--secret",
        "api",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .await;
    assert_eq!(result.expect("ran"), 7, "the command's status");
    assert_eq!(
        read(&out).as_deref(),
        Some(format!("{canary}|t-1|https://api").as_str())
    );
    assert!(logs.contains("Environments leak"), "{logs}");
    assert!(logs.contains("DB_PASSWORD,TOKEN,URL"), "{logs}");
    assert!(!logs.contains(canary), "{logs}");
    assert!(
        std::env::var_os("DB_PASSWORD").is_none(),
        "only the child has it"
    );

    for (args, expect) in [
        (vec!["--secret", "nope"], "secret default/nope"),
        (vec!["--secret", "db/nokey"], "has no key \"nokey\""),
        (vec!["--secret", "dotted"], "not a valid variable name"),
        (
            vec!["--secret", "api/TOKEN", "--secret", "api/URL=TOKEN"],
            "would come from both",
        ),
    ] {
        let mut full = vec!["--kubeconfig", kc];
        full.extend(args);
        full.extend(["--", "true"]);
        let (result, logs) = run(&full).await;
        let e = result.expect_err("refused").to_string();
        assert!(e.contains(expect), "{full:?}: {e}");
        assert!(!e.contains(canary) && !logs.contains(canary));
    }
}
