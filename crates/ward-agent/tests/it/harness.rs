//! A real `ward serve` process, kubectl, an API client for fast updates, and the agent run
//! in-process with its logs captured.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::Parser as _;
use tracing::instrument::WithSubscriber as _;
use ward_agent::{AgentArgs, AgentError, RunArgs};

/// The `ward` binary the tests run as the API server.
pub(crate) fn ward_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let p = target.join("debug/ward");
    assert!(
        p.exists(),
        "{} is missing: the agent's end-to-end tests run against a real `ward serve`; build it \
         first with `cargo build -p ward`",
        p.display()
    );
    p
}

/// A running `ward serve` on its own data directory.
pub(crate) struct Server {
    child: Option<Child>,
    logs: Arc<Mutex<String>>,
    pub(crate) data_dir: PathBuf,
    pub(crate) url: String,
    pub(crate) port: u16,
    home: tempfile::TempDir,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh data directory and a free port.
    pub(crate) fn start(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let dir = data.path().join("ward");
        let mut s = Server::start_in(&dir, 0, extra);
        s._data = Some(data);
        s
    }

    /// A server on `dir` (kept by the caller) and `port` (0: any free one).
    pub(crate) fn start_in(dir: &Path, port: u16, extra: &[&str]) -> Server {
        let mut child = Command::new(ward_bin())
            .args(["serve", "--secure-port", &port.to_string(), "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("WARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ward serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.strip_prefix("ward serve is ready on ") {
                        let _ = tx.send(Ok(rest.trim().to_owned()));
                        sent = true;
                    } else if line.starts_with("error:") {
                        let _ = tx.send(Err(line.clone()));
                        sent = true;
                    }
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => url,
            Ok(Err(e)) => panic!("ward serve failed to start: {e}"),
            Err(_) => {
                let _ = child.kill();
                panic!("ward serve did not become ready in 60 s");
            }
        };
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the URL");
        Server {
            child: Some(child),
            logs,
            data_dir: dir.to_owned(),
            url,
            port,
            home: tempfile::tempdir().expect("home"),
            _data: None,
        }
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("admin.kubeconfig")
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.data_dir.join("pki/ca.crt")
    }

    /// Everything the server logged.
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Runs kubectl (optionally with stdin) and asserts success; returns stdout.
    #[track_caller]
    pub(crate) fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, None)
    }

    #[track_caller]
    pub(crate) fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl (is it installed?)");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let out = child.wait_with_output().expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An admin API client.
    pub(crate) fn client(&self) -> ward_client::Client {
        ward_client::Client::from_kubeconfig(Some(&self.kubeconfig()), None).expect("client")
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("ward serve did not stop within 10 s of SIGTERM");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Replaces the listed keys of a Secret (`None` removes the key) with one merge patch.
pub(crate) async fn patch_secret(
    client: &ward_client::Client,
    name: &str,
    data: &[(&str, Option<&str>)],
) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut map = serde_json::Map::new();
    for (k, v) in data {
        map.insert(
            (*k).to_owned(),
            v.map_or(serde_json::Value::Null, |v| b64.encode(v).into()),
        );
    }
    let body = serde_json::json!({ "data": map }).to_string();
    let (status, reply) = client
        .send(
            http::Method::PATCH,
            &format!("/api/v1/namespaces/default/secrets/{name}"),
            Some(("application/merge-patch+json", body.into())),
        )
        .await
        .expect("patch");
    assert!(status.is_success(), "patch {name}: {status} {reply:?}");
}

/// Logs captured from an in-process agent.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

pub(crate) struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}

fn subscriber(logs: &Logs) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("ward_agent=trace,warn"))
        .finish()
}

/// `ward agent` running in-process (a task on the test's runtime).
pub(crate) struct Agent {
    task: Option<tokio::task::JoinHandle<Result<(), AgentError>>>,
    pub(crate) logs: Logs,
}

impl Agent {
    /// Starts `ward agent ARGS`.
    pub(crate) fn start(args: &[&str]) -> Agent {
        let args = parse_agent(args);
        let logs = Logs::default();
        let task = tokio::spawn(ward_agent::run_agent(args).with_subscriber(subscriber(&logs)));
        Agent {
            task: Some(task),
            logs,
        }
    }

    /// Waits for the agent to end (within `limit`) and returns its result.
    pub(crate) async fn finish(mut self, limit: Duration) -> Result<(), AgentError> {
        let task = self.task.take().expect("running");
        match tokio::time::timeout(limit, task).await {
            Ok(joined) => joined.expect("the agent task panicked"),
            Err(_) => panic!(
                "the agent did not end within {limit:?}:\n{}",
                self.logs.text()
            ),
        }
    }

    pub(crate) fn logs(&self) -> String {
        self.logs.text()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub(crate) fn parse_agent(args: &[&str]) -> AgentArgs {
    AgentArgs::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("agent flags {args:?}: {e}"))
}

/// Runs `ward run ARGS` in-process; returns its result and logs.
pub(crate) async fn run(args: &[&str]) -> (Result<i32, AgentError>, String) {
    let args = RunArgs::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("run flags {args:?}: {e}"));
    let logs = Logs::default();
    let result = ward_agent::run_with_secrets(args)
        .with_subscriber(subscriber(&logs))
        .await;
    (result, logs.text())
}

/// A private directory on tmpfs (/dev/shm), removed on drop.
pub(crate) fn shm_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm")
}

/// Polls `check` every 2 ms until it holds; returns how long it took, or panics after `limit`
/// with the agent's logs.
#[track_caller]
pub(crate) fn wait_until(
    limit: Duration,
    what: &str,
    agent: &Agent,
    check: impl Fn() -> bool,
) -> Duration {
    wait_for(limit, check).unwrap_or_else(|| {
        panic!(
            "{what}: not within {limit:?}; agent logs:\n{}",
            agent.logs()
        )
    })
}

/// Polls `check` every 2 ms until it holds: `Some(time taken)`, or `None` after `limit`.
pub(crate) fn wait_for(limit: Duration, check: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The file's content, or `None` if it cannot be read.
pub(crate) fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// Writes an agent config file with one `volumes` list (YAML) into `dir`.
pub(crate) fn config(dir: &Path, volumes_yaml: &str) -> PathBuf {
    let p = dir.join("agent.yaml");
    std::fs::write(&p, format!("volumes:\n{volumes_yaml}")).expect("write config");
    p
}

/// The permission bits of `p` (not following a final symlink).
pub(crate) fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}
