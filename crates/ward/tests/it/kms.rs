//! KMS v2 end to end: `ward kms-plugin` on a unix socket, `ward serve` encrypting through it,
//! plugin outages (reads keep working from the cached seed), health endpoint, key rotation, the
//! envelope metrics on `/metrics`; with key files and with keys on a SoftHSM token (restarts,
//! rotation to another key label and mechanism, `ward rewrite`, `ward storage decode` of the
//! stored values, old key removed); KMS v1 values from a kube-apiserver read, decoded and
//! rewritten.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Etcd, Server, etcd_put, files_containing};

fn write_private(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("open");
    std::io::Write::write_all(&mut f, bytes).expect("write");
}

/// An EncryptionConfiguration for Secrets: KMS v2 provider `name` on `socket` (3 s timeout, the
/// default), then identity.
fn write_kms_v2_config(cfg: &Path, name: &str, socket: &Path) {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n  - kms:\n      apiVersion: v2\n      \
         name: {name}\n      endpoint: unix://{}\n      timeout: 3s\n  - identity: {{}}\n",
        socket.display()
    );
    write_private(cfg, text.as_bytes());
}

struct Plugin(Child);

impl Plugin {
    fn start(socket: &Path, keys: &[&str]) -> Plugin {
        let args: Vec<String> = keys
            .iter()
            .flat_map(|k| ["--key-file".to_owned(), (*k).to_owned()])
            .collect();
        Plugin::start_with(socket, &args, &[])
    }

    fn start_with(socket: &Path, args: &[String], env: &[(&str, &Path)]) -> Plugin {
        let _ = std::fs::remove_file(socket);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
        cmd.args(["kms-plugin", "--listen"])
            .arg(format!("unix://{}", socket.display()))
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let plugin = Plugin(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("kms-plugin"),
        );
        for _ in 0..100 {
            if socket.exists() {
                return plugin;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(plugin);
        panic!("kms-plugin did not create its socket");
    }
}

impl Plugin {
    /// SIGTERM, and wait for a clean exit (the socket file is removed).
    fn stop(mut self, socket: &Path) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.0.try_wait() {
                assert!(status.success(), "kms-plugin exited with {status}");
                assert!(!socket.exists(), "kms-plugin removed its socket");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("kms-plugin did not stop within 5 s of SIGTERM");
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn secrets_through_a_kms_v2_plugin() {
    let tmp = tempfile::tempdir().expect("tmp");
    let socket = tmp.path().join("kms.sock");
    let k1 = tmp.path().join("kek1");
    write_private(&k1, &[7u8; 32]);
    let plugin = Plugin::start(&socket, &[&format!("k1={}", k1.display())]);
    let cfg = tmp.path().join("enc.yaml");
    write_kms_v2_config(&cfg, "wardkms", &socket);
    let dir = tmp.path().join("ward");
    let s = Server::start_in(
        &dir,
        &["--encryption-provider-config", cfg.to_str().expect("utf8")],
    );
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "k",
        "--from-literal=v=kms-canary-3141",
    ]);
    let v = s.kubectl(&["get", "secret", "k", "-o", "jsonpath={.data.v}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), b"kms-canary-3141");
    assert_eq!(
        s.curl_as("GET", "/healthz/kms-providers", &[], None, None)
            .0,
        200
    );
    assert!(files_containing(&dir, b"kms-canary-3141").is_empty());
    assert!(
        !files_containing(&dir, b"k8s:enc:kms:v2:wardkms:").is_empty(),
        "stored as KMS v2"
    );

    // plugin down: reads still work (cached seed)
    drop(plugin);
    let v = s.kubectl(&["get", "secret", "k", "-o", "jsonpath={.data.v}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), b"kms-canary-3141");
    // back up, with a second key added first: new writes use it, old values still read
    let k2 = tmp.path().join("kek2");
    write_private(&k2, &[9u8; 32]);
    let _plugin = Plugin::start(
        &socket,
        &[
            &format!("k2={}", k2.display()),
            &format!("k1={}", k1.display()),
        ],
    );
    let mut created = false;
    for _ in 0..40 {
        if s.kubectl_with(
            &[
                "create",
                "secret",
                "generic",
                "k2",
                "--from-literal=v=after",
            ],
            None,
            &[],
        )
        .status
        .success()
        {
            created = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(created, "writes resume when the plugin is back");
    let v = s.kubectl(&["get", "secret", "k", "-o", "jsonpath={.data.v}"]);
    assert_eq!(B64.decode(v.trim()).expect("b64"), b"kms-canary-3141");
    assert!(!s.logs().contains("kms-canary-3141"));
}

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "ward-e2e";
const USER_PIN: &str = "4711-e2e";

/// A SoftHSM token in its own directory, set up with the real `softhsm2-util`.
struct SoftHsm {
    conf: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl SoftHsm {
    fn init(dir: &Path) -> SoftHsm {
        assert!(
            Path::new(SOFTHSM).exists(),
            "{SOFTHSM} is missing: install Debian's softhsm2 (scripts/test-all.sh does)"
        );
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("tokens dir");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm conf");
        let hsm = SoftHsm {
            conf,
            dir: dir.to_path_buf(),
        };
        hsm.util(&[
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--so-pin",
            "1234",
        ]);
        hsm
    }

    /// Imports a 32-byte AES key (as an operator would bring one: `--import FILE --aes`).
    fn import_aes(&self, label: &str, id: &str, key: &[u8; 32]) {
        let file = self.dir.join(format!("{label}.bin"));
        write_private(&file, key);
        let file = file.to_str().expect("utf8").to_owned();
        self.util(&[
            "--import", &file, "--aes", "--token", TOKEN, "--label", label, "--id", id,
        ]);
        std::fs::remove_file(&file).expect("remove key file");
    }

    fn util(&self, args: &[&str]) {
        let out = Command::new("softhsm2-util")
            .args(args)
            .args(["--pin", USER_PIN])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .expect("softhsm2-util");
        assert!(
            out.status.success(),
            "softhsm2-util {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ward kms-plugin` arguments for these key labels and mechanism.
    fn plugin_args(&self, pin_file: &Path, labels: &[&str], mechanism: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "--pkcs11-module",
            SOFTHSM,
            "--pkcs11-token-label",
            TOKEN,
            "--pkcs11-pin-file",
            pin_file.to_str().expect("utf8"),
            "--pkcs11-mechanism",
            mechanism,
        ]
        .map(str::to_owned)
        .to_vec();
        for label in labels {
            args.extend(["--pkcs11-key-label".to_owned(), (*label).to_owned()]);
        }
        args
    }
}

/// The raw stored values of `keys`, read from the data directory's redb file (the server must
/// be stopped: redb allows one process).
fn stored_values(data_dir: &Path, keys: &[String]) -> Vec<Vec<u8>> {
    use ward_storage::Storage as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = ward_storage_redb::RedbStorage::open(
            data_dir.join("db/ward.redb"),
            ward_storage_redb::RedbOptions::default(),
        )
        .expect("open the store");
        let mut values = Vec::new();
        for key in keys {
            let kv = db.get(key.as_bytes()).await.expect("get").expect(key);
            values.push(kv.value);
        }
        values
    })
}

/// `ward storage decode` of one stored value: (success, stderr, stdout).
fn storage_decode(
    config: &Path,
    key: &str,
    value: &[u8],
    extra: &[&str],
) -> (bool, String, String) {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), value).expect("write value");
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["storage", "decode", "--encryption-provider-config"])
        .arg(config)
        .args(["--key", key, "--value-file"])
        .arg(file.path())
        .args(extra)
        .output()
        .expect("ward storage decode");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn softhsm_plugin_restart_rotation_rewrite_and_old_key_removal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hsm = SoftHsm::init(&tmp.path().join("hsm"));
    hsm.import_aes("kek-1", "01", &[0x31; 32]);
    let pin_file = tmp.path().join("pin");
    write_private(&pin_file, format!("{USER_PIN}\n").as_bytes());
    let env = [("SOFTHSM2_CONF", hsm.conf.as_path())];
    let socket = tmp.path().join("kms.sock");
    let cfg = tmp.path().join("enc.yaml");
    write_kms_v2_config(&cfg, "wardhsm", &socket);
    let serve_args = ["--encryption-provider-config", cfg.to_str().expect("utf8")];
    let dir = tmp.path().join("ward");
    let names: Vec<String> = (0..3).map(|i| format!("hsm-{i}")).collect();
    let canary = |name: &str| format!("hsm-canary-{name}-2718");
    let read = |s: &Server, name: &str| {
        let v = s.kubectl(&["get", "secret", name, "-o", "jsonpath={.data.v}"]);
        String::from_utf8(B64.decode(v.trim()).expect("b64")).expect("utf8")
    };

    // AES-GCM in the token under kek-1.
    let plugin = Plugin::start_with(
        &socket,
        &hsm.plugin_args(&pin_file, &["hsm-1=kek-1"], "aes-gcm"),
        &env,
    );
    let mut s = Server::start_in(&dir, &serve_args);
    for name in &names {
        s.kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            &format!("--from-literal=v={}", canary(name)),
        ]);
    }

    // Both processes restarted: every value reads back.
    s.stop();
    plugin.stop(&socket);
    let plugin = Plugin::start_with(
        &socket,
        &hsm.plugin_args(&pin_file, &["hsm-1=kek-1"], "aes-gcm"),
        &env,
    );
    let mut s = Server::start_in(&dir, &serve_args);
    for name in &names {
        assert_eq!(read(&s, name), canary(name));
    }

    // Rotation: kek-2 is new and first, kek-1 stays for reading; the mechanism changes too.
    hsm.import_aes("kek-2", "02", &[0x32; 32]);
    s.stop();
    plugin.stop(&socket);
    let plugin = Plugin::start_with(
        &socket,
        &hsm.plugin_args(
            &pin_file,
            &["hsm-2=kek-2", "hsm-1=kek-1"],
            "aes-key-wrap-pad",
        ),
        &env,
    );
    let mut s = Server::start_in(&dir, &serve_args);
    for name in &names {
        assert_eq!(
            read(&s, name),
            canary(name),
            "old values read after the rotation"
        );
    }
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "hsm-new",
        "--from-literal=v=hsm-canary-new",
    ]);
    let mut all = names.clone();
    all.push("hsm-new".to_owned());
    let keys: Vec<String> = all
        .iter()
        .map(|n| format!("/registry/secrets/default/{n}"))
        .collect();

    s.stop();
    let before = stored_values(&dir, &keys);
    for (key, value) in keys.iter().zip(&before) {
        assert!(value.starts_with(b"k8s:enc:kms:v2:wardhsm:"), "{key}");
        let (ok, stderr, stdout) = storage_decode(&cfg, key, value, &[]);
        assert!(ok, "decode {key}: {stderr}");
        assert!(stdout.contains("<redacted>"), "{stdout}");
        if key.ends_with("hsm-new") {
            assert!(
                stderr.contains("key_id \"hsm-2\"") && !stderr.contains("stale"),
                "{stderr}"
            );
        } else {
            assert!(stderr.contains("key_id \"hsm-1\" (stale)"), "{stderr}");
        }
    }

    // ward rewrite re-encrypts the stale values through the API under kek-2.
    let s = Server::start_in(&dir, &serve_args);
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["rewrite", "--resources", "secrets", "--kubeconfig"])
        .arg(s.kubeconfig())
        .env("HOME", s.home.path())
        .output()
        .expect("ward rewrite");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every Secret is PUT back (the server skips the write of a value that is not stale).
    let rewritten: u64 = report
        .split("rewritten: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {report:?}"));
    assert!(rewritten >= 4, "{report}");
    let mut s = s;
    s.stop();
    let after = stored_values(&dir, &keys);
    for ((key, value), old) in keys.iter().zip(&after).zip(&before) {
        let (ok, stderr, stdout) = storage_decode(&cfg, key, value, &["--show-values"]);
        assert!(ok, "decode {key}: {stderr}");
        assert!(
            stderr.contains("key_id \"hsm-2\"") && !stderr.contains("stale"),
            "{key}: {stderr}"
        );
        let name = key.rsplit('/').next().expect("name");
        let want = if name == "hsm-new" {
            "hsm-canary-new".to_owned()
        } else {
            canary(name)
        };
        assert!(stdout.contains(&B64.encode(&want)), "{stdout}");
        assert!(!value.windows(want.len()).any(|w| w == want.as_bytes()));
        if name != "hsm-new" {
            assert_ne!(value, old, "{key} was rewritten");
        }
    }

    // The old key removed from the plugin: everything still reads, and writes work.
    plugin.stop(&socket);
    let plugin = Plugin::start_with(
        &socket,
        &hsm.plugin_args(&pin_file, &["hsm-2=kek-2"], "aes-key-wrap-pad"),
        &env,
    );
    let s = Server::start_in(&dir, &serve_args);
    for name in &names {
        assert_eq!(read(&s, name), canary(name), "{name} without kek-1");
    }
    assert_eq!(read(&s, "hsm-new"), "hsm-canary-new");
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "hsm-last",
        "--from-literal=v=x",
    ]);
    let logs = s.logs();
    assert!(
        !logs.contains("hsm-canary") && !logs.contains(USER_PIN),
        "secrets in the logs"
    );
    drop(s);
    plugin.stop(&socket);
}

/// The value of the first sample of `name` whose labels contain every `label`, from a
/// Prometheus text exposition.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        if !labels.iter().all(|l| rest.contains(l)) {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}

#[test]
fn kms_v2_envelope_metrics_on_the_metrics_endpoint() {
    let tmp = tempfile::tempdir().expect("tmp");
    let socket = tmp.path().join("kms.sock");
    let k1 = tmp.path().join("kek1");
    write_private(&k1, &[7u8; 32]);
    let _plugin = Plugin::start(&socket, &[&format!("metrics-key={}", k1.display())]);
    let cfg = tmp.path().join("enc.yaml");
    write_kms_v2_config(&cfg, "metricskms", &socket);
    let s = Server::start_in(
        &tmp.path().join("ward"),
        &["--encryption-provider-config", cfg.to_str().expect("utf8")],
    );
    s.kubectl(&["create", "secret", "generic", "m", "--from-literal=v=x"]);
    s.kubectl(&["get", "secret", "m", "-o", "json"]);
    let (code, metrics) = s.curl("GET", "/metrics", &[], None);
    assert_eq!(code, 200);
    let provider = "provider_name=\"metricskms\"";
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();

    // Status and Encrypt at start, each once or more, answered OK, in plausible time.
    for method in ["Status", "Encrypt"] {
        let labels = [
            provider,
            &format!("method_name=\"/v2.KeyManagementService/{method}\"")[..],
            "grpc_status_code=\"OK\"",
        ];
        let n = sample(
            &metrics,
            "apiserver_envelope_encryption_kms_operations_latency_seconds_count",
            &labels,
        );
        assert!(n.is_some_and(|n| n >= 1.0), "{method}: {metrics}");
        let sum = sample(
            &metrics,
            "apiserver_envelope_encryption_kms_operations_latency_seconds_sum",
            &labels,
        )
        .expect("sum");
        assert!(sum > 0.0 && sum < 10.0, "{method} took {sum} s");
    }
    // The write and the read counted under the hash of the key ID, never the ID itself.
    for kind in ["to_storage", "from_storage"] {
        let labels = [&format!("transformation_type=\"{kind}\"")[..], provider];
        let n = sample(
            &metrics,
            "apiserver_envelope_encryption_key_id_hash_total",
            &labels,
        );
        assert!(n.is_some_and(|n| n >= 1.0), "{kind}: {metrics}");
        let at = sample(
            &metrics,
            "apiserver_envelope_encryption_key_id_hash_last_timestamp_seconds",
            &labels,
        )
        .expect("timestamp");
        assert!((started - at).abs() < 600.0, "{at} vs {started}");
    }
    assert!(
        !metrics.contains("metrics-key\""),
        "a key ID in clear: {metrics}"
    );
    let hashed = metrics
        .lines()
        .find(|l| l.starts_with("apiserver_envelope_encryption_key_id_hash_total{"))
        .expect("series");
    let hash = hashed
        .split("key_id_hash=\"sha256:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("hashed key ID");
    assert_eq!(hash.len(), 64, "{hashed}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hashed}");
    let status_at = sample(
        &metrics,
        "apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds",
        &[provider],
    )
    .expect("status key ID");
    assert!((started - status_at).abs() < 600.0);
    // One seed generated and cached.
    let cached = sample(
        &metrics,
        "apiserver_envelope_encryption_dek_source_cache_size",
        &[provider],
    )
    .expect("cache size");
    assert!((1.0..=1024.0).contains(&cached), "{cached}");
    let generated = sample(
        &metrics,
        "apiserver_storage_data_key_generation_duration_seconds_count",
        &[],
    )
    .expect("key generation");
    assert!(generated >= 1.0);
    assert_eq!(
        sample(
            &metrics,
            "apiserver_storage_data_key_generation_failures_total",
            &[]
        ),
        Some(0.0)
    );
    assert!(
        metrics.contains(
            "# TYPE apiserver_storage_envelope_transformation_cache_misses_total counter"
        )
    );
}

/// A KMS v1 value as kube-apiserver wrote it, put straight into etcd: `ward storage decode`
/// names the provider, `ward serve` reads it (stale) through a real v1 plugin, `ward rewrite`
/// moves it to the first provider, and a config where v1 would write is refused at start.
#[test]
fn kms_v1_values_from_kube_apiserver_are_read_and_rewritten() {
    const SECRETBOX: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    let plugin = rt.block_on(ward_kms::testing::serve(
        tmp.path(),
        ward_kms::testing::Wrap::Gcm([5; 32]),
        "v1beta1",
    ));
    let ward = env!("CARGO_BIN_EXE_ward");
    let key = "/registry/secrets/default/legacy";

    // The plaintext kube-apiserver hands its transformer: `ward storage encode` through identity.
    let identity = tmp.path().join("identity.yaml");
    write_private(&identity, b"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n");
    let object = tmp.path().join("legacy.json");
    let canary = B64.encode("kms-v1-canary-2718");
    std::fs::write(&object, format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"legacy","namespace":"default","uid":"3f1c2a9e-0000-4000-8000-000000000001","creationTimestamp":"2024-01-01T00:00:00Z"}},"type":"Opaque","data":{{"v":"{canary}"}}}}"#
    )).expect("object");
    let out = Command::new(ward)
        .args([
            "storage",
            "encode",
            "--key",
            key,
            "--encryption-provider-config",
        ])
        .arg(&identity)
        .arg("-f")
        .arg(&object)
        .output()
        .expect("encode");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"k8s\x00"));
    let value = rt.block_on(plugin.kube_value("legacy", &out.stdout, key.as_bytes(), true));
    let value_file = tmp.path().join("legacy.bin");
    std::fs::write(&value_file, &value).expect("value");

    let config = |v1_first: bool| {
        let secretbox =
            format!("  - secretbox:\n      keys: [{{name: new, secret: {SECRETBOX}}}]\n");
        let v1 = format!(
            "  - kms:\n      name: legacy\n      endpoint: {}\n",
            plugin.endpoint
        );
        let providers = if v1_first {
            v1 + &secretbox
        } else {
            secretbox + &v1
        };
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
        )
    };
    let cfg = tmp.path().join("enc.yaml");
    write_private(&cfg, config(false).as_bytes());

    // `ward storage decode` names the provider, its version and name, and says it is stale.
    let out = Command::new(ward)
        .args([
            "storage",
            "decode",
            "--key",
            key,
            "--encryption-provider-config",
        ])
        .arg(&cfg)
        .arg("--value-file")
        .arg(&value_file)
        .output()
        .expect("decode");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("# decrypted by kms v1 key \"legacy\" (stale)"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"name\": \"legacy\"") && stdout.contains("<redacted>"),
        "{stdout}"
    );
    assert!(!stdout.contains(&canary));

    // On etcd, beside a kube-apiserver's data.
    let etcd = Etcd::start();
    etcd_put(&etcd.url, key, &value);
    let dir = tmp.path().join("ward");
    let s = Server::start_in(
        &dir,
        &[
            "--etcd-servers",
            &etcd.url,
            "--encryption-provider-config",
            cfg.to_str().expect("utf8"),
        ],
    );
    let v = s.kubectl(&["get", "secret", "legacy", "-o", "jsonpath={.data.v}"]);
    assert_eq!(v.trim(), canary);
    let (_, metrics) = s.curl("GET", "/metrics", &[], None);
    let decrypts = sample(
        &metrics,
        "apiserver_envelope_encryption_kms_operations_latency_seconds_count",
        &[
            "provider_name=\"legacy\"",
            "method_name=\"/v1beta1.KeyManagementService/Decrypt\"",
            "grpc_status_code=\"OK\"",
        ],
    );
    assert!(decrypts.is_some_and(|n| n >= 1.0), "{metrics}");
    let fill = sample(
        &metrics,
        "apiserver_envelope_encryption_dek_cache_fill_percent",
        &[],
    )
    .expect("fill");
    assert!(fill > 0.0 && fill <= 1.0, "{fill}");
    let misses = sample(
        &metrics,
        "apiserver_storage_envelope_transformation_cache_misses_total",
        &[],
    )
    .expect("misses");
    assert!(misses >= 1.0);
    assert!(
        sample(
            &metrics,
            "apiserver_storage_transformation_operations_total",
            &["transformer_prefix=\"k8s:enc:kms:v1:\"", "status=\"OK\""],
        )
        .is_some_and(|n| n >= 1.0)
    );

    // A v1 read is stale: `ward rewrite` moves the value to secretbox.
    let out = Command::new(ward)
        .args(["rewrite", "--resources", "secrets", "--kubeconfig"])
        .arg(s.kubeconfig())
        .output()
        .expect("ward rewrite");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rewritten: 1 "), "{text}");
    let stored = etcd.get(key).expect("stored");
    assert!(
        stored.starts_with(b"k8s:enc:secretbox:v1:new:"),
        "{:?}",
        &stored[..24]
    );
    drop(s);

    // Ward never writes KMS v1: v1 first fails the start, naming the file and the field.
    write_private(&cfg, config(true).as_bytes());
    let out = Command::new(ward)
        .args([
            "serve",
            "--secure-port",
            "0",
            "--etcd-servers",
            &etcd.url,
            "--data-dir",
        ])
        .arg(&dir)
        .arg("--encryption-provider-config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .expect("serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "resources[0].providers[0].kms.apiVersion in {}",
            cfg.display()
        )),
        "{stderr}"
    );
    rt.block_on(plugin.stop());
}
