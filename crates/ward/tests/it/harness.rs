//! Starting `ward serve`, running kubectl and curl against it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `ward serve` process with its own data directory and kubectl home.
pub(crate) struct Server {
    child: Option<Child>,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
    pub(crate) data_dir: PathBuf,
    pub(crate) home: tempfile::TempDir,
    pub(crate) url: String,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub(crate) fn start() -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let dir = data.path().join("ward");
        let mut s = Server::start_in(&dir, &[]);
        s._data = Some(data);
        s
    }

    /// Starts a server on `dir` with `WARD_LOG=debug` (every request logged).
    pub(crate) fn start_debug(dir: &Path) -> Server {
        Server::start_with_log(dir, &[], "debug")
    }

    /// Starts a server on `dir` (kept by the caller), with extra flags.
    pub(crate) fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let level = std::env::var("WARD_TEST_LOG").unwrap_or_else(|_| "info".into());
        Server::start_with_log(dir, extra, &level)
    }

    fn start_with_log(dir: &Path, extra: &[&str], level: &str) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
        cmd.args(["serve", "--secure-port", "0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("WARD_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ward serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
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
                // Keep draining so the server never blocks on a full pipe.
                eprintln!("[ward] {line}");
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
        Server {
            child: Some(child),
            logs,
            data_dir: dir.to_path_buf(),
            home: tempfile::tempdir().expect("home"),
            url,
            _data: None,
        }
    }

    /// Keeps `dir` (the parent of the data directory) alive as long as the server.
    pub(crate) fn keep(&mut self, dir: tempfile::TempDir) {
        self._data = Some(dir);
    }

    /// Everything the server has logged so far.
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("admin.kubeconfig")
    }

    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("token")
            .trim()
            .to_owned()
    }

    /// Runs kubectl with `args` and optional stdin.
    pub(crate) fn kubectl_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
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
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and asserts success; returns stdout.
    #[track_caller]
    pub(crate) fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_with(args, None, &[]);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with stdin and asserts success.
    #[track_caller]
    pub(crate) fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_with(args, Some(stdin), &[]);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserts failure; returns stderr.
    #[track_caller]
    pub(crate) fn kubectl_fails(&self, args: &[&str]) -> String {
        let out = self.kubectl_with(args, None, &[]);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A raw HTTPS request with curl. Returns (status, body).
    pub(crate) fn curl(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> (u16, String) {
        self.curl_as(method, path, headers, body, Some(&self.token()))
    }

    pub(crate) fn curl_as(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&[u8]>,
        token: Option<&str>,
    ) -> (u16, String) {
        let ca = self.data_dir.join("pki").join("ca.crt");
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
        ])
        .arg("--cacert")
        .arg(&ca);
        if let Some(t) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        if body.is_some() {
            cmd.args(["--data-binary", "@-"]);
        }
        cmd.arg(format!("{}{}", self.url, path))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn curl");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            if let Some(b) = body {
                stdin.write_all(b).expect("write body");
            }
        }
        let out = child.wait_with_output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// Kills the server with SIGKILL (a crash) and reaps it.
    pub(crate) fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            for _ in 0..200 {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "ward serve exited with {status}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
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

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files under `dir` whose bytes contain `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

/// Two `ward serve` replicas on the etcd at `endpoints`: the second runs on a copy of the first's
/// data directory (same encryption config, CA, serving key and admin token), as an operator would
/// distribute them. The directories live in the returned `TempDir`.
pub(crate) fn two_replicas(endpoints: &str) -> (tempfile::TempDir, Server, Server) {
    let tmp = tempfile::tempdir().expect("tmp");
    let a_dir = tmp.path().join("a");
    let a = Server::start_in(&a_dir, &["--etcd-servers", endpoints]);
    let b_dir = tmp.path().join("b");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&a_dir)
        .arg(&b_dir)
        .status()
        .expect("cp");
    assert!(copied.success(), "copying the data directory failed");
    let b = Server::start_in(&b_dir, &["--etcd-servers", endpoints]);
    (tmp, a, b)
}

/// The `(type, metadata.name)` of each event of a watch reply.
pub(crate) fn event_kinds(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter(|l| !l.is_empty())
        .map(json)
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

pub(crate) fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A single-member etcd on free loopback ports, in a temporary folder, stopped on drop.
pub(crate) struct Etcd {
    child: Child,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub(crate) fn start() -> Etcd {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("etcd is installed (Debian etcd-server; scripts/test-all.sh installs it)");
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tmp");
            let (client, peer) = (free_port(), free_port());
            let url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut child = Command::new(bin)
                .args(["--name", "e2e", "--log-level", "warn", "--data-dir"])
                .arg(dir.path().join("data"))
                .args([
                    "--listen-client-urls",
                    &url,
                    "--advertise-client-urls",
                    &url,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                ])
                .args(["--initial-cluster", &format!("e2e={peer_url}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn etcd");
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let out = Command::new("curl")
                    .args(["-s", "--max-time", "1"])
                    .arg(format!("{url}/health"))
                    .output();
                if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("true")) {
                    return Etcd {
                        child,
                        url,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("etcd did not start");
    }

    /// etcd's data directory.
    pub(crate) fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The raw value stored under `key`, through etcd's JSON gateway.
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = format!(r#"{{"key":"{}"}}"#, b64.encode(key));
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "-X", "POST", "-d", &body])
            .arg(format!("{}/v3/kv/range", self.url))
            .output()
            .expect("curl");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let value = v.pointer("/kvs/0/value")?.as_str()?;
        b64.decode(value).ok()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An etcd cluster of several members on free loopback ports (127.0.0.1 only), each in its own
/// folder of one temporary directory. Members can be killed (SIGKILL) and restarted by index;
/// every member still running is killed by PID on drop.
pub(crate) struct EtcdCluster {
    members: Vec<EtcdMember>,
    initial_cluster: String,
    token: String,
    dir: tempfile::TempDir,
}

struct EtcdMember {
    name: String,
    client_url: String,
    peer_url: String,
    child: Option<Child>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one reports itself healthy (a leader is
    /// elected). Retries with new ports if one was taken meanwhile.
    pub(crate) fn start(size: usize) -> EtcdCluster {
        for attempt in 0..3 {
            let dir = tempfile::tempdir().expect("tmp");
            let members: Vec<EtcdMember> = (0..size)
                .map(|i| EtcdMember {
                    name: format!("m{i}"),
                    client_url: format!("http://127.0.0.1:{}", free_port()),
                    peer_url: format!("http://127.0.0.1:{}", free_port()),
                    child: None,
                })
                .collect();
            let initial_cluster = members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url))
                .collect::<Vec<_>>()
                .join(",");
            let mut cluster = EtcdCluster {
                members,
                initial_cluster,
                token: format!("ward-it-{}-{attempt}", std::process::id()),
                dir,
            };
            for i in 0..size {
                cluster.spawn(i);
            }
            if cluster.wait_healthy(&(0..size).collect::<Vec<_>>(), Duration::from_secs(20)) {
                return cluster;
            }
            // Drop kills what was started; try again on other ports.
        }
        panic!("the etcd cluster did not start");
    }

    /// The client URLs of every member, comma-separated (for `--etcd-servers`).
    pub(crate) fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URL of member `index`.
    pub(crate) fn client_url(&self, index: usize) -> &str {
        &self.members[index].client_url
    }

    /// How many members the cluster has (running or not).
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether member `index` is running (not killed).
    pub(crate) fn is_running(&self, index: usize) -> bool {
        self.members[index].child.is_some()
    }

    /// Kills member `index` with SIGKILL (a crash) and reaps it.
    pub(crate) fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `index` again on its data directory and ports, and waits until it is
    /// healthy (it has rejoined and sees a leader). Returns whether it did within `timeout`.
    pub(crate) fn restart(&mut self, index: usize, timeout: Duration) -> bool {
        self.kill(index);
        self.spawn(index);
        self.wait_healthy(&[index], timeout)
    }

    /// The index of the member that is the leader, as a running member sees it: the one whose
    /// `/v3/maintenance/status` has `leader` equal to its own `header.member_id`.
    pub(crate) fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            self.is_running(i)
                && etcd_status(&self.members[i].client_url).is_some_and(|s| {
                    let id = s.pointer("/header/member_id").map(id_text);
                    let leader = s.get("leader").map(id_text);
                    id.is_some() && id == leader
                })
        })
    }

    /// Polls [`Self::leader`] until a leader is found or `timeout` passes.
    pub(crate) fn wait_for_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                return Some(i);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn(&mut self, index: usize) {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("etcd is installed (Debian etcd-server; scripts/test-all.sh installs it)");
        let m = &self.members[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .expect("etcd log");
        let child = Command::new(bin)
            .args(["--name", &m.name, "--log-level", "warn", "--data-dir"])
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &m.client_url])
            .args(["--advertise-client-urls", &m.client_url])
            .args(["--listen-peer-urls", &m.peer_url])
            .args(["--initial-advertise-peer-urls", &m.peer_url])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.members[index].child = Some(child);
    }

    /// Waits until each of `indexes` answers `/health` with true; false if one exits or time
    /// runs out.
    fn wait_healthy(&mut self, indexes: &[usize], timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut pending: Vec<usize> = indexes.to_vec();
        while !pending.is_empty() {
            for &i in &pending {
                if let Some(child) = self.members[i].child.as_mut()
                    && let Ok(Some(_)) = child.try_wait()
                {
                    self.members[i].child = None;
                    return false;
                }
            }
            pending.retain(|&i| {
                let out = Command::new("curl")
                    .args(["-s", "--max-time", "1"])
                    .arg(format!("{}/health", self.members[i].client_url))
                    .output();
                !out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"true\""))
            });
            if std::time::Instant::now() >= deadline {
                return false;
            }
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        true
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        // A temporary cluster: no graceful stop needed (and a member without quorum takes
        // seconds to honour SIGTERM).
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// etcd's `/v3/maintenance/status` of the member at `client_url`, through its JSON gateway.
pub(crate) fn etcd_status(client_url: &str) -> Option<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2", "-X", "POST", "-d", "{}"])
        .arg(format!("{client_url}/v3/maintenance/status"))
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// The store revision a member reports (`header.revision` of its status).
pub(crate) fn etcd_revision(client_url: &str) -> Option<u64> {
    let status = etcd_status(client_url)?;
    id_text(status.pointer("/header/revision")?).parse().ok()
}

/// Puts `value` under `key` through etcd's JSON gateway (`/v3/kv/put`, base64 key and value),
/// bypassing any server: how a raw value from another kube-apiserver gets into a test etcd.
pub(crate) fn etcd_put(client_url: &str, key: &str, value: &[u8]) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = serde_json::json!({"key": b64.encode(key), "value": b64.encode(value)});
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-X", "POST", "-d"])
        .arg(body.to_string())
        .arg(format!("{client_url}/v3/kv/put"))
        .output()
        .expect("curl");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && reply.contains("\"header\""),
        "put {key}: {reply}"
    );
}

/// etcd's gateway writes 64-bit ids and revisions as JSON strings; this reads either form.
fn id_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
