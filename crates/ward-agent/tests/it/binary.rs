//! The agent-only `ward-agent` binary, as a process: same options as `ward agent`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Server, config, read, shm_dir, wait_for};

#[test]
fn the_ward_agent_binary_delivers_and_follows_a_secret() {
    let help = Command::new(env!("CARGO_BIN_EXE_ward-agent"))
        .arg("--help")
        .output()
        .expect("ward-agent --help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--from-manifest") && text.contains("Examples:"),
        "{text}"
    );

    let server = Server::start(&[]);
    server.kubectl(&["create", "secret", "generic", "bin", "--from-literal=k=v1"]);
    let shm = shm_dir();
    let target = shm.path().join("bin");
    let cfg = config(
        shm.path(),
        &format!(
            "  - name: bin\n    target: {}\n    secret: {{secretName: bin}}\n",
            target.display()
        ),
    );
    let mut agent = Command::new(env!("CARGO_BIN_EXE_ward-agent"))
        .arg("--config")
        .arg(&cfg)
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ward-agent");
    let file = target.join("k");
    let first = wait_for(Duration::from_secs(20), || {
        read(&file).as_deref() == Some("v1")
    });
    server.kubectl(&[
        "patch",
        "secret",
        "bin",
        "-p",
        r#"{"stringData":{"k":"v2"}}"#,
    ]);
    let second = wait_for(Duration::from_secs(5), || {
        read(&file).as_deref() == Some("v2")
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(first.is_some(), "the first version never arrived");
    assert!(second.is_some(), "the update never arrived");
}

/// `--mount-tmpfs` on a directory target on disk mounts a private tmpfs there before writing,
/// and `--uid`/`--gid` own what is written (on the tmpfs too). Root only: other users get the
/// clear refusal instead.
#[test]
fn mount_tmpfs_and_ownership_as_root() {
    use std::os::unix::fs::MetadataExt as _;
    let server = Server::start(&[]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "owned",
        "--from-literal=k=v1",
    ]);
    // /var/tmp is on disk here (ext4), so the agent must mount a tmpfs itself.
    let disk = tempfile::tempdir_in("/var/tmp").expect("a directory on disk");
    let target = disk.path().join("owned");
    std::fs::create_dir(&target).expect("target");
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let cfg = config(
        disk.path(),
        &format!(
            "  - name: owned\n    target: {}\n    secret: {{secretName: owned, defaultMode: 0440}}\n",
            target.display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ward-agent"))
        .arg("--config")
        .arg(&cfg)
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["--mount-tmpfs", "--uid", "4242", "--gid", "4343", "--once"])
        .output()
        .expect("ward-agent --once");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !is_root {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("it needs root"));
        return;
    }
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[1] == target.to_string_lossy() && f[2] == "tmpfs"
        });
    let file = target.join("k");
    let meta = std::fs::metadata(&file);
    let _ = Command::new("umount").arg(&target).status();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mounted, "no tmpfs mounted on {}", target.display());
    let meta = meta.expect("the file was written");
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    assert_eq!(meta.mode() & 0o777, 0o440);
    // After the unmount nothing was left on the disk below.
    assert!(std::fs::read_dir(&target).expect("dir").next().is_none());
}
