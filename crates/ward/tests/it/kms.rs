//! KMS v2 end to end: `ward kms-plugin` on a unix socket, `ward serve` encrypting through it,
//! plugin outages (reads keep working from the cached seed), health endpoint, key rotation;
//! with key files and with keys on a SoftHSM token (restarts, rotation to another key label and
//! mechanism, `ward rewrite`, `ward storage decode` of the stored values, old key removed).

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Server, files_containing};

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
    write_private(&cfg, format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms:\n      apiVersion: v2\n      name: wardhsm\n      endpoint: unix://{}\n      timeout: 3s\n  - identity: {{}}\n",
        socket.display()
    ).as_bytes());
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
