//! The first-start configuration.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use ward_crypto::{
    EncryptionConfig, ProviderConfig, Transformers, generate_default_config, load_encryption_config,
};

#[test]
fn default_config_encrypts_secrets_and_configmaps_with_secretbox() {
    let yaml = generate_default_config().unwrap();
    let config = EncryptionConfig::from_bytes(yaml.as_bytes(), "default.yaml").unwrap();
    let rule = &config.rules()[0];
    let names: Vec<String> = rule.resources().iter().map(ToString::to_string).collect();
    assert_eq!(names, ["secrets", "configmaps"]);
    match rule.providers() {
        [ProviderConfig::Secretbox(keys), ProviderConfig::Identity] => {
            assert_eq!(keys.keys().len(), 1);
            let name = keys.keys()[0].name();
            assert!(
                name.starts_with("ward-20") && name.len() == "ward-20261126".len(),
                "{name}"
            );
            assert_eq!(keys.keys()[0].key_len(), 32);
        }
        other => panic!("{other:?}"),
    }

    let t = Transformers::from_config(config).unwrap();
    for resource in ["secrets", "configmaps"] {
        let rt = t.for_resource("", resource);
        assert_eq!(rt.provider_name(), "secretbox");
        assert!(rt.is_secure());
        // Plaintext from before is readable, and stale.
        let read = rt.from_storage(b"k8s\x00old", b"/registry/x/ns/n").unwrap();
        assert!(read.stale);
    }
    assert!(!t.for_resource("apps", "deployments").is_secure());
}

#[test]
fn every_generated_config_has_a_fresh_key() {
    let a = generate_default_config().unwrap();
    let b = generate_default_config().unwrap();
    assert_ne!(*a, *b);
}

#[test]
fn written_to_a_0600_file_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption.yaml");
    let yaml = generate_default_config().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    drop(file);
    let config = load_encryption_config(&path).unwrap();
    let t = Transformers::from_config(config).unwrap();
    let stored = t
        .for_resource("", "secrets")
        .to_storage(b"k8s\x00new", b"/k")
        .unwrap();
    assert!(stored.starts_with(b"k8s:enc:secretbox:v1:ward-"));
}
