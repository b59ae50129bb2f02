//! The canary rule (STYLE.md): format every config, transformer and error type with `{:?}` and
//! `{}`, through the error paths, and check that a known key never appears in any form.

use ward_crypto::{EncryptionConfig, SecretKey32, Transformers, default_config_yaml};

use crate::{IDENTITY, b64, config_yaml, keyed_provider};

/// 32 bytes of recognisable key material.
const CANARY_KEY: &[u8; 32] = b"CANARY-key-material-0123456789ab";
const PLAINTEXT_CANARY: &[u8] = b"PLAINTEXT-CANARY-pandas-are-the-best";

/// Every form in which the key (or plaintext) could leak.
fn forbidden() -> Vec<String> {
    let hex: String = CANARY_KEY.iter().map(|b| format!("{b:02x}")).collect();
    let debug_bytes = format!("{:?}", &CANARY_KEY[..8]);
    let debug_bytes = debug_bytes
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    vec![
        b64(CANARY_KEY),
        b64(CANARY_KEY)[..16].to_owned(),
        b64(&CANARY_KEY[..20]),
        String::from_utf8_lossy(CANARY_KEY).into_owned(),
        "CANARY-key".to_owned(),
        hex[..32].to_owned(),
        debug_bytes,
        String::from_utf8_lossy(PLAINTEXT_CANARY).into_owned(),
        "PLAINTEXT-CANARY".to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for needle in forbidden() {
        assert!(!text.contains(&needle), "{what} leaks {needle:?}:\n{text}");
    }
}

fn check<T: std::fmt::Debug>(what: &str, value: &T) {
    assert_clean(what, &format!("{value:?}"));
    assert_clean(what, &format!("{value:#?}"));
}

fn check_error<E: std::error::Error>(what: &str, error: &E) {
    assert_clean(what, &format!("{error:?}"));
    assert_clean(what, &error.to_string());
    let mut source = error.source();
    while let Some(inner) = source {
        assert_clean(what, &inner.to_string());
        source = inner.source();
    }
}

#[test]
fn configs_and_transformers_never_show_the_key() {
    let key = b64(CANARY_KEY);
    for provider in ["aescbc", "aesgcm", "secretbox"] {
        let yaml = config_yaml(
            "secrets, configmaps",
            &(keyed_provider(provider, &[("canary", &key)]) + IDENTITY),
        );
        let config = EncryptionConfig::from_bytes(yaml.as_bytes(), "canary.yaml").unwrap();
        check("EncryptionConfig", &config);
        check("ResourceRule", &config.rules()[0]);
        check("ProviderConfig", &config.rules()[0].providers()[0]);
        let transformers = Transformers::from_config(config).unwrap();
        check("Transformers", &transformers);
        let rt = transformers.for_resource("", "secrets");
        check("ResourceTransformer", rt);
        assert_clean("describe", &rt.describe());

        let stored = rt
            .to_storage(PLAINTEXT_CANARY, b"/registry/secrets/a/b")
            .unwrap();
        let read = rt.from_storage(&stored, b"/registry/secrets/a/b").unwrap();
        check("Decrypted", &read);
        assert_eq!(read.plaintext.as_slice(), PLAINTEXT_CANARY);

        // Error paths of the read side: wrong AAD (GCM), tampering, truncation, unknown key.
        let mut tampered = stored.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let renamed = String::from_utf8_lossy(&stored).replace(":canary:", ":other:");
        for (what, value, aad) in [
            ("wrong aad", stored.clone(), &b"/x"[..]),
            ("tampered", tampered, b"/registry/secrets/a/b"),
            (
                "truncated",
                stored[..stored.len() - 20].to_vec(),
                b"/registry/secrets/a/b",
            ),
            (
                "unknown key",
                renamed.into_bytes(),
                b"/registry/secrets/a/b",
            ),
        ] {
            if let Err(err) = rt.from_storage(&value, aad) {
                check_error(what, &err);
            }
        }
        let err = Transformers::identity()
            .for_resource("", "secrets")
            .to_storage(&[b"k8s:enc:", PLAINTEXT_CANARY].concat(), b"/k")
            .unwrap_err();
        check_error("identity refused", &err);
    }
}

#[test]
fn config_errors_never_show_the_key() {
    let key = b64(CANARY_KEY);
    let key20 = b64(&CANARY_KEY[..20]);
    let cases = [
        // Wrong sizes and encodings.
        config_yaml("secrets", &keyed_provider("secretbox", &[("k", &key20)])),
        config_yaml(
            "secrets",
            &keyed_provider("aesgcm", &[("k", &format!("{key}{key}"))]),
        ),
        config_yaml(
            "secrets",
            &keyed_provider("aesgcm", &[("k", &format!("'{key}!'"))]),
        ),
        config_yaml("secrets", &keyed_provider("aesgcm", &[("k", &key[..43])])),
        // A valid key next to other errors.
        config_yaml("Secrets", &keyed_provider("aesgcm", &[("", &key)])),
        // A secret that YAML turns into something else.
        config_yaml(
            "secrets",
            &format!("      - aesgcm:\n          keys: [{{name: k, secret:{key}}}]\n"),
        ),
        config_yaml(
            "secrets",
            &format!("      - aesgcm:\n          keys: [{{name: k, secret: [{key}]}}]\n"),
        ),
        config_yaml(
            "secrets",
            &format!("      - aesgcm:\n          keys: [{{name: k, secret: {{{key}: 1}}}}]\n"),
        ),
        config_yaml(
            "secrets",
            &format!("      - aesgcm:\n          keys: [{{name: k, {key}: x}}]\n"),
        ),
        config_yaml(
            "secrets",
            &format!(
                "      - aesgcm:\n          keys: [{{name: k, secret: {key}, secret: {key}}}]\n"
            ),
        ),
        // Broken YAML around the secret line.
        config_yaml(
            "secrets",
            &format!(
                "      - aesgcm:\n          keys:\n            - name: k\n              secret: \"{key}\n"
            ),
        ),
        config_yaml(
            "secrets",
            &format!(
                "      - aesgcm:\n          keys:\n            - name: k\n\t      secret: {key}\n"
            ),
        ),
        config_yaml(
            "secrets",
            &format!(
                "      - aesgcm:\n          keys:\n            - name: k\n              secret: {key}\n             bad: [\n"
            ),
        ),
        format!("{}---\nsecret: {key}\n", config_yaml("secrets", IDENTITY)),
        format!("secret: {key}\n"),
        format!("{key}\n"),
        format!("[{key}]\n"),
        format!("{{\"{key}\": 1}}\n"),
        format!("apiVersion: {key}\nkind: EncryptionConfiguration\nresources: []\n"),
        format!("kind: {key}\napiVersion: v1\nresources: []\n"),
    ];
    for (i, yaml) in cases.iter().enumerate() {
        match EncryptionConfig::from_bytes(yaml.as_bytes(), "canary.yaml") {
            Ok(config) => panic!("case {i} should fail: {config:?}"),
            Err(err) => check_error(&format!("case {i}"), &err),
        }
    }
}

#[test]
fn generated_default_config_never_shows_the_key() {
    let key = SecretKey32::from_slice(CANARY_KEY).unwrap();
    check("SecretKey32", &key);
    let yaml = default_config_yaml(&key, std::time::SystemTime::now());
    let config = EncryptionConfig::from_bytes(yaml.as_bytes(), "default.yaml").unwrap();
    check("default EncryptionConfig", &config);
    check(
        "default Transformers",
        &Transformers::from_config(config).unwrap(),
    );
}
