//! KMS v2 end to end: `ward kms-plugin` on a unix socket, `ward serve` encrypting through it,
//! plugin outages (reads keep working from the cached seed), health endpoint, key rotation, the
//! envelope metrics on `/metrics`; KMS v1 values from a kube-apiserver read, decoded and rewritten.

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

struct Plugin(Child);

impl Plugin {
    fn start(socket: &Path, keys: &[&str]) -> Plugin {
        let _ = std::fs::remove_file(socket);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
        cmd.args(["kms-plugin", "--listen"])
            .arg(format!("unix://{}", socket.display()));
        for k in keys {
            cmd.args(["--key-file", k]);
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
    write_private(&cfg, format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms:\n      apiVersion: v2\n      name: wardkms\n      endpoint: unix://{}\n      timeout: 3s\n  - identity: {{}}\n",
        socket.display()
    ).as_bytes());
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
    write_private(&cfg, format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms:\n      apiVersion: v2\n      name: metricskms\n      endpoint: unix://{}\n  - identity: {{}}\n",
        socket.display()
    ).as_bytes());
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
