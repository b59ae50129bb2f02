//! A throwaway single-member etcd for one test: the Debian `etcd` binary (etcd-server 3.4) on free
//! loopback ports, with its data in a temporary folder (on tmpfs when there is one, so fsync is
//! cheap), stopped by PID when dropped: SIGTERM, then SIGKILL after a few seconds.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use ward_storage_etcd::{EtcdOptions, EtcdStorage};

/// A running etcd member, stopped on drop.
pub(crate) struct Etcd {
    child: Option<Child>,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<Pki>,
}

/// PEM files of a test PKI: a CA, etcd's serving certificate and a client certificate.
#[derive(Clone, Debug)]
pub(crate) struct Pki {
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
}

impl Etcd {
    /// Starts etcd serving plain HTTP and waits until it answers.
    pub(crate) async fn start() -> Etcd {
        Etcd::start_with(false).await
    }

    /// Starts etcd serving TLS with client-certificate authentication (certificates from a fresh
    /// CA, see [`Etcd::pki`]) and waits until it answers.
    pub(crate) async fn start_tls() -> Etcd {
        Etcd::start_with(true).await
    }

    async fn start_with(tls: bool) -> Etcd {
        let mut dir = match Path::new("/dev/shm").is_dir() {
            true => tempfile::Builder::new()
                .prefix("ward-etcd-")
                .tempdir_in("/dev/shm"),
            false => tempfile::Builder::new().prefix("ward-etcd-").tempdir(),
        }
        .expect("temporary folder for etcd");
        let mut tls = tls.then(|| generate_pki(dir.path()));
        // Ports are picked free, then bound by etcd: another process may take one in between,
        // so a start that fails early is retried on new ports.
        for attempt in 1..=3 {
            let mut etcd = Etcd {
                child: None,
                client_port: free_port(),
                peer_port: free_port(),
                dir,
                tls,
            };
            etcd.spawn();
            if etcd.wait_ready().await {
                return etcd;
            }
            eprintln!("etcd start attempt {attempt} failed:\n{}", etcd.log_tail());
            etcd.stop();
            dir = etcd.take_dir();
            tls = etcd.tls.take();
        }
        panic!("etcd did not start after 3 attempts");
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The test PKI of a TLS etcd.
    pub(crate) fn pki(&self) -> &Pki {
        self.tls.as_ref().expect("etcd was started with TLS")
    }

    /// Options that reach this etcd (with the client certificate when it serves TLS).
    pub(crate) fn options(&self) -> EtcdOptions {
        let tls = self.tls.as_ref();
        EtcdOptions {
            endpoints: vec![self.url()],
            ca_file: tls.map(|pki| pki.ca.clone()),
            cert_file: tls.map(|pki| pki.client_cert.clone()),
            key_file: tls.map(|pki| pki.client_key.clone()),
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            ..EtcdOptions::default()
        }
    }

    /// A store on this etcd.
    pub(crate) async fn connect(&self) -> EtcdStorage {
        EtcdStorage::connect(self.options())
            .await
            .expect("connect to the test etcd")
    }

    /// Stops etcd: SIGTERM, then SIGKILL if it is still running after [`STOP_GRACE`].
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the stopped etcd again, with the same data and ports, and waits until it answers.
    pub(crate) async fn restart(&mut self) {
        self.stop();
        self.spawn();
        assert!(
            self.wait_ready().await,
            "etcd did not come back:\n{}",
            self.log_tail()
        );
    }

    fn spawn(&mut self) {
        let binary = etcd_binary();
        let dir = self.dir.path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("etcd.log"))
            .expect("etcd log file");
        let client_url = self.url();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(binary);
        command
            .args(["--name", "ward-test"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("ward-test={peer_url}")])
            .args(["--initial-cluster-token", "ward-test"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            // Frequent progress notifications, so tests see them (etcd's default is 10 min).
            .args(["--experimental-watch-progress-notify-interval", "1s"]);
        if let Some(pki) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&pki.server_cert)
                .arg("--key-file")
                .arg(&pki.server_key)
                .arg("--trusted-ca-file")
                .arg(&pki.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", binary.display()));
        self.child = Some(child);
    }

    /// Waits until etcd answers a read; false if it exits or stays silent for [`START_TIMEOUT`].
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        let options = EtcdOptions {
            dial_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            ..self.options()
        };
        while Instant::now() < deadline {
            let exited = match self.child.as_mut() {
                Some(child) => !matches!(child.try_wait(), Ok(None)),
                None => true,
            };
            if exited {
                return false;
            }
            if EtcdStorage::connect(options.clone()).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Moves the folder out, leaving a fresh empty one (used between start attempts).
    fn take_dir(&mut self) -> TempDir {
        let empty = tempfile::tempdir().expect("temporary folder");
        std::mem::replace(&mut self.dir, empty)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The etcd binary: `/usr/bin/etcd` (Debian's etcd-server), else `etcd` on `PATH`.
fn etcd_binary() -> &'static Path {
    let debian = Path::new("/usr/bin/etcd");
    if debian.is_file() {
        return debian;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|path| path.is_file())
    });
    match found {
        Some(path) => Box::leak(path.into_boxed_path()),
        None => panic!(
            "no etcd binary: install Debian's etcd-server (scripts/test-all.sh does) to run the \
             etcd backend tests"
        ),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}

/// Writes a CA, a serving certificate for `127.0.0.1`/`localhost` and a client certificate.
fn generate_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ward test etcd CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    };
    let leaf = |name: &str, sans: &[&str], usages: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().expect("leaf key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        (
            write(&format!("{name}.crt"), cert.pem()),
            write(&format!("{name}.key"), key.serialize_pem()),
        )
    };
    // etcd's own gRPC gateway dials etcd with the serving certificate, so it also does client auth.
    let (server_cert, server_key) = leaf(
        "server",
        &["127.0.0.1", "localhost"],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let (client_cert, client_key) = leaf(
        "ward-client",
        &[],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    Pki {
        ca: write("ca.crt", ca_cert.pem()),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// How long etcd may take to answer after it is started (it took about 1 s on the dev machines).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long etcd may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
