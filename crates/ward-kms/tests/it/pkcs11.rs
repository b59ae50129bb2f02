//! `ward kms-plugin` with keys on a PKCS#11 token (SoftHSM): wrap/unwrap inside the token with
//! AES-GCM and with RFC 5649 key wrap (checked against the RFC's vectors), rotation by key
//! label, a refused PIN, tampered and misdirected ciphertexts, and Status following a key
//! object that disappears and comes back, through the real gRPC plugin on a unix socket.
//!
//! SoftHSM reads its configuration (where tokens live) from `SOFTHSM2_CONF` when the module is
//! loaded. Tests never change their own environment, so the test re-runs itself as a child
//! process with that variable set to a temporary configuration.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use ward_kms::{
    GrpcKmsClient, KmsEndpoint, KmsError, Pkcs11KeySpec, Pkcs11Kms, Pkcs11Mechanism, Pkcs11Options,
};

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
    options_with(keys, pin, Pkcs11Mechanism::AesGcm)
}

fn options_with(keys: &[&str], pin: &str, mechanism: Pkcs11Mechanism) -> Pkcs11Options {
    Pkcs11Options {
        mechanism,
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
                        Attribute::Wrap(true),
                        Attribute::Unwrap(true),
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

        key_wrap_pad_matches_rfc_5649(&session).await;
        // A cut-short AES key (what `softhsm2-util --import --aes` makes of a key file with a
        // newline) is refused at start, naming its length, rather than failing every Encrypt.
        import_aes_key(&session, "short", 0x53, &[0x61; 10]);
        let err = Pkcs11Kms::open(options(&["short"], USER_PIN)).unwrap_err();
        assert!(err.to_string().contains("is 10 bytes"), "{err}");
        // A key that may encrypt but not wrap serves aes-gcm and is refused for
        // aes-key-wrap-pad at start, naming the attribute.
        session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(vec![0x77; 32]),
                Attribute::Label(b"no-wrap".to_vec()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
            ])
            .unwrap();
        assert!(Pkcs11Kms::open(options(&["no-wrap"], USER_PIN)).is_ok());
        let err = Pkcs11Kms::open(options_with(
            &["no-wrap"],
            USER_PIN,
            Pkcs11Mechanism::AesKeyWrapPad,
        ))
        .unwrap_err();
        assert!(err.to_string().contains("does not allow CKA_WRAP"), "{err}");
        key_wrap_pad_over_grpc(dir).await;
        status_follows_the_key_object(dir, &session).await;
    });
}

fn grpc(listen: &str) -> GrpcKmsClient {
    GrpcKmsClient::connect_lazy(KmsEndpoint::parse(listen).unwrap(), Duration::from_secs(5))
}

/// Imports an AES key with a known value on the token (as `softhsm2-util --import --aes`
/// would), non-extractable.
fn import_aes_key(session: &Session, label: &str, id: u8, value: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(value.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(vec![id]),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
        ])
        .unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 5649 with the RFC's 192-bit KEK (section 6), through `Pkcs11Kms` with
/// `aes-key-wrap-pad`. The wrap is deterministic, so the plugin's bytes must equal those of an
/// independent implementation: the expected values come from pyca/cryptography 48
/// `aes_key_wrap_with_padding` (RFC 5649 written in Python over AES-ECB). The RFC's own
/// vectors wrap 20 and 7 bytes, lengths SoftHSM 2.6 gets wrong (it zero-pads to a multiple of
/// 8 first), so the plugin refuses them.
async fn key_wrap_pad_matches_rfc_5649(session: &Session) {
    import_aes_key(
        session,
        "rfc5649",
        0x49,
        &unhex("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8"),
    );
    let kek = session
        .find_objects(&[Attribute::Label(b"rfc5649".to_vec())])
        .unwrap()[0];
    // Why the plugin goes through C_WrapKey: SoftHSM 2.6 has no key wrap in C_Encrypt.
    assert!(matches!(
        session.encrypt(&Mechanism::AesKeyWrapPad, kek, &[1u8; 32]),
        Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::MechanismInvalid,
            _
        ))
    ));
    let kms = Pkcs11Kms::open(options_with(
        &["rfc=rfc5649"],
        USER_PIN,
        Pkcs11Mechanism::AesKeyWrapPad,
    ))
    .unwrap();
    for (key, wrapped) in [
        (
            "c37b7e6492584340 bed1220780894115",
            "d618f65d2e5c1d02 b614e2fa03f0af4e 94739d86a8ac4ded",
        ),
        (
            "0001020304050607 08090a0b0c0d0e0f 1011121314151617 18191a1b1c1d1e1f",
            "fe6a0320617d94d5 abcd3cadbb5a15ee 23574ad2a6509b3f 5a2b3b9d96fda766 e6d1204253503895",
        ),
    ] {
        let out = kms.encrypt("u", &unhex(key)).await.unwrap();
        assert_eq!(out.key_id, "rfc");
        assert_eq!(out.ciphertext[0], 2, "format byte of aes-key-wrap-pad");
        assert_eq!(out.ciphertext[1..], unhex(wrapped)[..]);
        assert_eq!(&*kms.decrypt("u", &out).await.unwrap(), &unhex(key)[..]);
    }
    for key in [
        "c37b7e6492584340 bed1220780894115 5068f738",
        "466f7250617369",
    ] {
        let err = kms.encrypt("u", &unhex(key)).await.unwrap_err();
        assert!(matches!(err, KmsError::InvalidRequest(_)), "{err}");
        assert!(err.to_string().contains("multiple of 8"), "{err}");
    }
}

/// `aes-key-wrap-pad` over the real socket: round trip, old AES-GCM values still readable,
/// tampering, another key's ID and malformed lengths refused with INVALID_ARGUMENT.
async fn key_wrap_pad_over_grpc(dir: &Path) {
    let listen = format!("unix://{}", dir.join("kwp.sock").display());
    // An AES-GCM value wrapped before the mechanism changed.
    let kms = Pkcs11Kms::open(options(&["k1=kek-1", "k2=kek-2"], USER_PIN)).unwrap();
    let seed = [0x3c; 32];
    let gcm_wrapped = kms.encrypt("u", &seed).await.unwrap();
    assert_eq!(gcm_wrapped.ciphertext[0], 1);
    drop(kms);

    let kms = Pkcs11Kms::open(options_with(
        &["k1=kek-1", "k2=kek-2"],
        USER_PIN,
        Pkcs11Mechanism::AesKeyWrapPad,
    ))
    .unwrap();
    let plugin = ward_kms::start_plugin(&listen, Arc::new(kms))
        .await
        .unwrap();
    let client = grpc(&listen);
    let status = client.status().await.unwrap();
    assert_eq!(
        (status.healthz.as_str(), status.key_id.as_str()),
        ("ok", "k1")
    );

    let wrapped = client.encrypt("uid-1", &seed).await.unwrap();
    assert_eq!(wrapped.key_id, "k1");
    assert_eq!(
        wrapped.ciphertext.len(),
        1 + 32 + 8,
        "RFC 5649 of 32 bytes is 40"
    );
    assert_eq!(wrapped.ciphertext[0], 2);
    assert!(!wrapped.ciphertext.windows(8).any(|w| w == &seed[..8]));
    assert_eq!(&*client.decrypt("uid-2", &wrapped).await.unwrap(), &seed);
    // Not random: the same DEK wraps to the same bytes (RFC 5649 is deterministic).
    assert_eq!(client.encrypt("uid-3", &seed).await.unwrap(), wrapped);
    // A 16-byte DEK (the smallest a multiple of 8 allows) round-trips too.
    let short = client.encrypt("u", &[7u8; 16]).await.unwrap();
    assert_eq!(short.ciphertext.len(), 1 + 24);
    assert_eq!(&*client.decrypt("u", &short).await.unwrap(), &[7u8; 16]);
    // Values wrapped with AES-GCM stay readable.
    assert_eq!(&*client.decrypt("u", &gcm_wrapped).await.unwrap(), &seed);

    let refused = |result: Result<Zeroizing<Vec<u8>>, KmsError>, what: &str| match result {
        Err(KmsError::Rpc { code, message, .. }) => {
            assert_eq!(code, tonic::Code::InvalidArgument, "{what}: {message}");
            assert!(
                message.contains("does not authenticate"),
                "{what}: {message}"
            );
            assert!(!message.contains("3c3c3c"), "{what}: {message}");
        }
        other => panic!("{what}: {other:?}"),
    };
    for i in [1, 20, 40] {
        let mut tampered = wrapped.clone();
        tampered.ciphertext[i] ^= 0x01;
        refused(
            client.decrypt("u", &tampered).await,
            &format!("byte {i} flipped"),
        );
    }
    let mut wrong_key = wrapped.clone();
    wrong_key.key_id = "k2".into();
    refused(client.decrypt("u", &wrong_key).await, "kek-2's key ID");
    let mut truncated = wrapped.clone();
    truncated.ciphertext.truncate(1 + 32);
    refused(client.decrypt("u", &truncated).await, "truncated");
    let mut ragged = wrapped.clone();
    ragged.ciphertext.push(0);
    refused(client.decrypt("u", &ragged).await, "not a multiple of 8");
    let mut unknown_format = wrapped.clone();
    unknown_format.ciphertext[0] = 9;
    refused(client.decrypt("u", &unknown_format).await, "format byte 9");
    // The plugin is still healthy after all that.
    assert_eq!(client.status().await.unwrap().healthz, "ok");
    plugin.shutdown().await.unwrap();
}

/// Status over the socket while the key object is deleted and then restored with the same
/// value, label and ID: unhealthy (with the reason) while it is gone, healthy again after, and
/// values wrapped before decrypt again.
async fn status_follows_the_key_object(dir: &Path, session: &Session) {
    let value = [0x6b; 32];
    let key = import_aes_key(session, "kek-h", 0x68, &value);
    let listen = format!("unix://{}", dir.join("health.sock").display());
    let kms = Pkcs11Kms::open(options_with(
        &["kek-h"],
        USER_PIN,
        Pkcs11Mechanism::AesKeyWrapPad,
    ))
    .unwrap();
    let plugin = ward_kms::start_plugin(&listen, Arc::new(kms))
        .await
        .unwrap();
    let client = grpc(&listen);
    let healthy = client.status().await.unwrap();
    assert_eq!(healthy.healthz, "ok");
    let seed = [0x11; 32];
    let wrapped = client.encrypt("u", &seed).await.unwrap();
    // pyca/cryptography's RFC 5649 of this seed under this key.
    assert_eq!(
        wrapped.ciphertext[1..],
        unhex(
            "15ab7628214ecb29 743e3ce2feb28753 d356d9b3d50870a4 adb3382f72866140 \
             09ed4a49dac9e80d"
        )[..]
    );

    session.destroy_object(key).unwrap();
    for _ in 0..2 {
        // Twice: the first call finds the handle gone, the second fails to reopen.
        let status = client.status().await.unwrap();
        assert_ne!(status.healthz, "ok");
        assert!(status.healthz.contains("pkcs11"), "{}", status.healthz);
        assert_eq!(
            status.key_id, healthy.key_id,
            "the last key ID is still reported"
        );
    }
    match client.encrypt("u", &seed).await {
        Err(KmsError::Rpc { code, message, .. }) => {
            assert_eq!(code, tonic::Code::Unavailable, "{message}");
            assert!(message.contains("kek-h"), "{message}");
        }
        other => panic!("encrypt without the key: {other:?}"),
    }

    import_aes_key(session, "kek-h", 0x68, &value);
    let status = client.status().await.unwrap();
    assert_eq!(status.healthz, "ok");
    assert_eq!(
        status.key_id, healthy.key_id,
        "same token, label and CKA_ID"
    );
    assert_eq!(&*client.decrypt("u", &wrapped).await.unwrap(), &seed);
    plugin.shutdown().await.unwrap();

    // The token directory moved away and back (a token pulled out and put back): SoftHSM
    // keeps the lost token broken until the module is initialized again, which the plugin does.
    // This ends every session of this process, so it comes last.
    let plugin = ward_kms::start_plugin(
        &listen,
        Arc::new(Pkcs11Kms::open(options(&["kek-1"], USER_PIN)).unwrap()),
    )
    .await
    .unwrap();
    let before = client.status().await.unwrap();
    assert_eq!(before.healthz, "ok");
    let wrapped = client.encrypt("u", &seed).await.unwrap();
    let tokens = dir.join("tokens");
    let away = dir.join("tokens-away");
    std::fs::rename(&tokens, &away).unwrap();
    for _ in 0..2 {
        let status = client.status().await.unwrap();
        assert!(
            status.healthz.starts_with("pkcs11: cannot"),
            "{}",
            status.healthz
        );
        assert_eq!(status.key_id, before.key_id);
    }
    assert!(client.decrypt("u", &wrapped).await.is_err());
    std::fs::rename(&away, &tokens).unwrap();
    let after = client.status().await.unwrap();
    assert_eq!(
        (after.healthz.as_str(), after.key_id),
        ("ok", before.key_id)
    );
    assert_eq!(&*client.decrypt("u", &wrapped).await.unwrap(), &seed);
    plugin.shutdown().await.unwrap();
}
