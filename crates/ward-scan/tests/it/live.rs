//! `ward scan --kubeconfig`: a live `ward serve`, objects created with kubectl, scanned
//! read-only through ward-client.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ward_scan::{ScanArgs, run};

/// The canary value: it is created in the cluster and must never reach the report.
const CANARY: &str = "AKIAIOSFODNN7EXAMPLE";

#[derive(Parser, Debug)]
#[command(name = "ward")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    Scan(ScanArgs),
}

/// A running `ward serve` on a temporary data directory; killed on drop.
struct Server {
    child: Child,
    data: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(ward_bin())
            .args(["serve", "--secure-port", "0", "--data-dir"])
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ward serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps draining stderr after the ready line so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("ward serve is ready on https://") || line.starts_with("error:")
                {
                    let _ = tx.send(line);
                }
            }
        });
        let server = Server {
            child,
            data,
            home: tempfile::tempdir().unwrap(),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("ward serve is ready") => server,
            Ok(line) => panic!("ward serve failed to start: {line}"),
            Err(_) => panic!("ward serve did not become ready in 60 s"),
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("admin.kubeconfig")
    }

    /// Runs kubectl against the server and asserts it succeeds.
    #[track_caller]
    fn kubectl(&self, args: &[&str]) {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("spawn kubectl (is it installed?)");
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ward` binary that runs the API server.
fn ward_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("debug/ward");
    assert!(
        bin.exists(),
        "{} is missing: the live-scan test runs against a real `ward serve`; build it first \
         with `cargo build -p ward`",
        bin.display()
    );
    bin
}

fn parse(args: &[&str]) -> Result<ScanArgs, clap::Error> {
    let mut argv = vec!["ward", "scan"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).map(|cli| match cli.command {
        Cmd::Scan(args) => args,
    })
}

#[test]
fn scans_a_live_cluster_read_only() {
    let server = Server::start();
    server.kubectl(&[
        "create",
        "configmap",
        "app-config",
        "-n",
        "default",
        &format!("--from-literal=aws_key={CANARY}"),
    ]);
    server.kubectl(&[
        "create",
        "clusterrole",
        "secret-lister",
        "--verb=list",
        "--resource=secrets",
    ]);
    server.kubectl(&[
        "create",
        "clusterrolebinding",
        "secret-listers",
        "--clusterrole=secret-lister",
        "--group=auditors",
    ]);

    let kubeconfig = server.kubeconfig();
    let args = parse(&["--kubeconfig", kubeconfig.to_str().unwrap(), "-o", "json"]).unwrap();
    let mut out = Vec::new();
    // Ward serves no pods: that list answers 404 and is skipped, not an error.
    let code = run(args, &mut out).expect("live scan runs");
    assert_eq!(code, 0);
    let json = String::from_utf8(out).unwrap();
    assert!(!json.contains(CANARY), "the canary leaked: {json}");

    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let has = |rule: &str, kind: &str, name: &str, file: &str| {
        findings.iter().any(|f| {
            f["rule"] == rule
                && f["resource"]["kind"] == kind
                && f["resource"]["name"] == name
                && f["file"] == file
        })
    };
    assert!(
        has(
            "secret-like-configmap",
            "ConfigMap",
            "app-config",
            "cluster:/api/v1/configmaps"
        ),
        "{json}"
    );
    assert!(
        has(
            "rbac-secret-read",
            "ClusterRole",
            "secret-lister",
            "cluster:/apis/rbac.authorization.k8s.io/v1/clusterroles"
        ),
        "{json}"
    );
    // Objects read from the API have no file to open: no line, whatever the reply's layout.
    assert!(findings.iter().all(|f| f["line"].is_null()), "{json}");
}

#[test]
fn paths_are_optional_with_a_cluster() {
    assert!(parse(&["--kubeconfig", "k"]).is_ok());
    assert!(parse(&["--context", "prod"]).is_ok());
    assert_eq!(
        parse(&[]).unwrap_err().kind(),
        clap::error::ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn unusable_kubeconfig_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.kubeconfig");
    let args = parse(&["--kubeconfig", missing.to_str().unwrap()]).unwrap();
    let err = run(args, &mut Vec::new()).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("absent.kubeconfig"), "{chain}");
}
