//! KMS v2 end to end: `ward kms-plugin` on a unix socket, `ward serve` encrypting through it,
//! plugin outages (reads keep working from the cached seed), health endpoint, key rotation.

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
