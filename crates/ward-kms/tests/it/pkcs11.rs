//! `ward kms-plugin` with keys on a PKCS#11 token (SoftHSM): wrap/unwrap inside the token,
//! rotation by key label, a refused PIN, through the real gRPC plugin and the envelope.
//!
//! SoftHSM reads its configuration (where tokens live) from `SOFTHSM2_CONF` when the module is
//! loaded. Tests never change their own environment, so the test re-runs itself as a child
//! process with that variable set to a temporary configuration.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use ward_kms::{KmsError, Pkcs11KeySpec, Pkcs11Kms, Pkcs11Options};

use crate::*;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const CHILD: &str = "WARD_KMS_PKCS11_TEST_DIR";
const TOKEN: &str = "ward-test";
const USER_PIN: &str = "5678";

#[test]
fn pkcs11_plugin_on_softhsm() {
    if let Ok(dir) = std::env::var(CHILD) {
        return child(Path::new(&dir));
    }
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} is missing: install Debian's softhsm2 (scripts/test-all.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--so-pin", "1234", "--pin", USER_PIN])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["pkcs11::pkcs11_plugin_on_softhsm", "--exact", "--nocapture"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{stderr}"
    );
}

fn options(keys: &[&str], pin: &str) -> Pkcs11Options {
    Pkcs11Options {
        module: MODULE.into(),
        token_label: TOKEN.into(),
        keys: keys
            .iter()
            .map(|k| Pkcs11KeySpec::parse(k).unwrap())
            .collect(),
        pin: AuthPin::from(pin.to_owned()),
    }
}

fn child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // A wrong PIN is refused, and the message does not hold it.
        let err = Pkcs11Kms::open(options(&["kek-1"], "0000-wrong")).unwrap_err();
        assert!(
            matches!(
                err,
                KmsError::Pkcs11 {
                    operation: "log in",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("0000-wrong"), "{err}");
        assert!(!format!("{:?}", options(&["kek-1"], "0000-wrong")).contains("0000-wrong"));

        // Two non-extractable AES-256 keys on the token.
        let context = Pkcs11::new(MODULE).unwrap();
        context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        let slot = context
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| context.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
            .unwrap();
        let session = context.open_rw_session(slot).unwrap();
        session
            .login(UserType::User, Some(&AuthPin::from(USER_PIN.to_owned())))
            .unwrap();
        for (label, id) in [("kek-1", 1u8), ("kek-2", 2)] {
            let key = session
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::ValueLen(32.into()),
                        Attribute::Label(label.as_bytes().to_vec()),
                        Attribute::Id(vec![id]),
                        Attribute::Token(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Encrypt(true),
                        Attribute::Decrypt(true),
                    ],
                )
                .unwrap();
            let attrs = session
                .get_attributes(key, &[AttributeType::Extractable])
                .unwrap();
            assert!(matches!(attrs[..], [Attribute::Extractable(false)]));
        }

        // Serve kek-1 and write through the envelope.
        let listen = socket(dir);
        let kms = Pkcs11Kms::open(options(&["kek-1"], USER_PIN)).unwrap();
        let old_id = kms.current_key_id().unwrap();
        assert!(old_id.starts_with("pkcs11:"), "{old_id}");
        let plugin = ward_kms::start_plugin(&listen, Arc::new(kms))
            .await
            .unwrap();
        let (transformers, envelope, _clock) = build(config("hsm", &listen, "3s")).await;
        let secrets = transformers.for_resource("", "secrets");
        let old_value = secrets.to_storage_async(CANARY, AAD).await.unwrap();
        let read = secrets.from_storage_async(&old_value, AAD).await.unwrap();
        assert_eq!(read.plaintext.as_slice(), CANARY);
        assert!(!read.stale);

        // Rotate: kek-2 (configured key ID) first, kek-1 kept for reading.
        plugin.shutdown().await.unwrap();
        let kms = Pkcs11Kms::open(options(&["kek-2-id=kek-2", "kek-1"], USER_PIN)).unwrap();
        let plugin = ward_kms::start_plugin(&listen, Arc::new(kms))
            .await
            .unwrap();
        envelope.probe().await.unwrap();
        assert_eq!(envelope.current_key_id().as_deref(), Some("kek-2-id"));
        let read = secrets.from_storage_async(&old_value, AAD).await.unwrap();
        assert_eq!(read.plaintext.as_slice(), CANARY);
        assert!(read.stale);
        let new_value = secrets.to_storage_async(CANARY, AAD).await.unwrap();
        assert!(
            !secrets
                .from_storage_async(&new_value, AAD)
                .await
                .unwrap()
                .stale
        );
        plugin.shutdown().await.unwrap();
    });
}
