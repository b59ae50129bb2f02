//! `ward kms-plugin` over real gRPC: the KMS v2 service, its limits, key files and sockets.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use ward_kms::{GrpcKmsClient, KmsEndpoint, KmsError, KmsPluginArgs, KmsService, WrappedKey};

use crate::*;

fn client(listen: &str) -> GrpcKmsClient {
    GrpcKmsClient::connect_lazy(KmsEndpoint::parse(listen).unwrap(), Duration::from_secs(3))
}

#[tokio::test]
async fn status_encrypt_decrypt_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let key = key_file(dir.path(), "kek-1", 1);
    let (plugin, key_id) = key_file_plugin(&listen, &[&key]).await;

    let meta = std::fs::metadata(dir.path().join("kms.sock")).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let kms = client(&listen);
    let status = kms.status().await.unwrap();
    assert_eq!(
        (status.version.as_str(), status.healthz.as_str()),
        ("v2", "ok")
    );
    assert_eq!(status.key_id, key_id);
    assert!(
        key_id.starts_with("sha256:") && key_id.len() == 7 + 32,
        "{key_id}"
    );

    let seed = [0x5a; 32];
    let wrapped = kms.encrypt("uid-1", &seed).await.unwrap();
    assert_eq!(wrapped.key_id, key_id);
    assert!(!wrapped.ciphertext.windows(32).any(|w| w == seed));
    assert_eq!(&*kms.decrypt("uid-2", &wrapped).await.unwrap(), &seed);

    // Bad input gets a gRPC error with a clear message, never a panic.
    let mut unknown = wrapped.clone();
    unknown.key_id = "kek-unknown".into();
    match kms.decrypt("u", &unknown).await {
        Err(KmsError::Rpc { code, message, .. }) => {
            assert_eq!(code, tonic::Code::NotFound);
            assert!(message.contains("unknown key_id"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let mut tampered = wrapped.clone();
    tampered.ciphertext[5] ^= 0x80;
    match kms.decrypt("u", &tampered).await {
        Err(KmsError::Rpc { code, message, .. }) => {
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert!(message.contains("does not authenticate"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let oversized = WrappedKey {
        ciphertext: vec![1; 2048],
        ..wrapped.clone()
    };
    assert!(matches!(
        kms.decrypt("u", &oversized).await,
        Err(KmsError::Rpc {
            code: tonic::Code::InvalidArgument,
            ..
        })
    ));
    let mut bad_annotation = wrapped.clone();
    bad_annotation
        .annotations
        .insert("NOT A DNS NAME".into(), vec![]);
    assert!(matches!(
        kms.decrypt("u", &bad_annotation).await,
        Err(KmsError::Rpc {
            code: tonic::Code::InvalidArgument,
            ..
        })
    ));
    assert!(matches!(
        kms.encrypt("u", &[]).await,
        Err(KmsError::Rpc {
            code: tonic::Code::InvalidArgument,
            ..
        })
    ));
    assert!(matches!(
        kms.encrypt(&"u".repeat(1000), &seed).await,
        Err(KmsError::Rpc {
            code: tonic::Code::InvalidArgument,
            ..
        })
    ));

    plugin.shutdown().await.unwrap();
    assert!(!dir.path().join("kms.sock").exists(), "socket removed");
}

#[tokio::test]
async fn abstract_socket_works() {
    let name = format!("@ward-kms-test-{}-{}", std::process::id(), rand_suffix());
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "kek", 3);
    let (plugin, key_id) = key_file_plugin(&name, &[&key]).await;
    // kube-apiserver's spelling of the same socket.
    let endpoint = format!("unix:///{name}");
    assert_eq!(client(&endpoint).status().await.unwrap().key_id, key_id);

    let (transformers, _envelope, _clock) = build(config("abs", &endpoint, "3s")).await;
    let secrets = transformers.for_resource("", "secrets");
    let stored = secrets.to_storage_async(CANARY, AAD).await.unwrap();
    assert!(stored.starts_with(b"k8s:enc:kms:v2:abs:"));
    // The key ID is readable from the stored value alone (`ward storage decode` shows it).
    assert_eq!(ward_kms::stored_key_id(&stored), Some(key_id.clone()));
    assert_eq!(ward_kms::stored_key_id(b"k8s:enc:kms:v2:abs:garbage"), None);
    assert_eq!(ward_kms::stored_key_id(b"k8s:enc:aesgcm:v1:k:xx"), None);
    let read = secrets.from_storage_async(&stored, AAD).await.unwrap();
    assert_eq!(read.plaintext.as_slice(), CANARY);
    plugin.shutdown().await.unwrap();
}

#[tokio::test]
async fn refuses_a_key_file_with_mode_0644() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "kek", 4);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let listen = socket(dir.path());
    let args = KmsPluginArgs {
        listen: listen.clone(),
        key_files: vec![key.display().to_string()],
        allow_insecure_key_file_mode: false,
        pkcs11_module: None,
        pkcs11_token_label: None,
        pkcs11_key_labels: vec![],
        pkcs11_pin_file: None,
        pkcs11_mechanism: ward_kms::Pkcs11Mechanism::AesGcm,
    };
    let err = ward_kms::run_plugin(args).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, KmsError::KeyFile { .. }), "{message}");
    assert!(
        message.contains("mode 644") && message.contains("chmod 600"),
        "{message}"
    );
    assert!(!dir.path().join("kms.sock").exists(), "nothing was bound");
}

#[test]
fn help_shows_examples_and_flags() {
    #[derive(clap::Parser)]
    #[command(name = "ward")]
    enum Cli {
        /// Run the KMS v2 plugin.
        KmsPlugin(KmsPluginArgs),
    }
    let Err(err) = Cli::try_parse_from(["ward", "kms-plugin", "--help"]) else {
        panic!("--help parses")
    };
    let help = err.to_string();
    for needle in [
        "--listen",
        "--key-file",
        "[KEY_ID=]PATH",
        "Examples:",
        "umask 077",
        "--pkcs11-mechanism <MECHANISM>",
        "aes-key-wrap-pad",
        "[default: aes-gcm]",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let Cli::KmsPlugin(args) = Cli::try_parse_from([
        "ward",
        "kms-plugin",
        "--listen",
        "unix:///run/kms.sock",
        "--key-file",
        "new=/k/2",
        "--key-file",
        "/k/1",
    ])
    .unwrap();
    assert_eq!(args.key_files, ["new=/k/2", "/k/1"]);
    assert!(Cli::try_parse_from(["ward", "kms-plugin", "--listen", "@x"]).is_err());
    let pkcs11 = |mechanism: &str| {
        Cli::try_parse_from([
            "ward",
            "kms-plugin",
            "--listen",
            "@x",
            "--pkcs11-module",
            "/m.so",
            "--pkcs11-token-label",
            "t",
            "--pkcs11-key-label",
            "k",
            "--pkcs11-mechanism",
            mechanism,
        ])
    };
    let Ok(Cli::KmsPlugin(args)) = pkcs11("aes-key-wrap-pad") else {
        panic!("aes-key-wrap-pad parses")
    };
    assert_eq!(
        args.pkcs11_mechanism,
        ward_kms::Pkcs11Mechanism::AesKeyWrapPad
    );
    let Err(err) = pkcs11("des") else {
        panic!("an unknown mechanism is refused")
    };
    assert!(err.to_string().contains("aes-gcm"), "{err}");
    // Only with a PKCS#11 module.
    assert!(
        Cli::try_parse_from([
            "ward",
            "kms-plugin",
            "--listen",
            "@x",
            "--key-file",
            "/k",
            "--pkcs11-mechanism",
            "aes-gcm",
        ])
        .is_err()
    );
}

/// Status over the socket follows the key files: a removed key file makes the plugin unhealthy
/// (with the reason, naming the file), restoring it makes it healthy again, and the keys loaded
/// last keep wrapping and unwrapping meanwhile.
#[tokio::test]
async fn status_follows_a_key_file_removed_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let listen = socket(dir.path());
    let key = key_file(dir.path(), "kek-1", 0x21);
    let (plugin, key_id) = key_file_plugin(&listen, &[&key]).await;
    let kms = client(&listen);
    assert_eq!(kms.status().await.unwrap().healthz, "ok");
    let seed = [0x42; 32];
    let wrapped = kms.encrypt("u", &seed).await.unwrap();

    let away = dir.path().join("kek-1.away");
    std::fs::rename(&key, &away).unwrap();
    let status = kms.status().await.unwrap();
    assert_ne!(status.healthz, "ok");
    assert!(status.healthz.contains("kek-1"), "{}", status.healthz);
    assert_eq!(status.key_id, key_id);
    assert_eq!(&*kms.decrypt("u", &wrapped).await.unwrap(), &seed);

    // Restored, but readable by others: still unhealthy, and the reason says why.
    std::fs::rename(&away, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let status = kms.status().await.unwrap();
    assert!(status.healthz.contains("mode 644"), "{}", status.healthz);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let status = kms.status().await.unwrap();
    assert_eq!(
        (status.healthz.as_str(), status.key_id.as_str()),
        ("ok", key_id.as_str())
    );
    assert_eq!(&*kms.decrypt("u", &wrapped).await.unwrap(), &seed);
    plugin.shutdown().await.unwrap();
}

#[test]
fn debug_output_never_shows_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "kek", 0x41);
    let kms = KeyFileKms::open(
        vec![KeyFileSpec::new(&key)],
        ward_crypto::ModeCheck::Enforce,
    )
    .unwrap();
    let text = format!("{kms:?}");
    assert!(!text.contains("AAAA") && !text.contains("65, 65"), "{text}");
    let envelope = KmsV2Envelope::new("p", Arc::new(kms), Arc::new(ward_kms::SystemClock));
    assert!(format!("{envelope:?}").contains("[redacted]"));
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}
