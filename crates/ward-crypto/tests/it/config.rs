//! `EncryptionConfiguration` loading: every rule, and errors that name the file and the field.

use std::io::Write;
use std::time::Duration;

use ward_crypto::{
    BuildError, ConfigError, EncryptionConfig, KmsApiVersion, ModeCheck, ProviderConfig,
    Transformers, load_encryption_config, load_encryption_config_with,
};

use crate::{IDENTITY, b64, config_yaml, keyed_provider};

const KEY16: &str = "c25vcmxheF9hd2Vzb21lcw=="; // "snorlax_awesomes"

fn key(len: usize) -> String {
    b64(&vec![0x5a; len])
}

fn parse(yaml: &str) -> Result<EncryptionConfig, ConfigError> {
    EncryptionConfig::from_bytes(yaml.as_bytes(), "/etc/ward/encryption.yaml")
}

/// Asserts the config is invalid and returns `(path, message)` for every field error, after
/// checking that the overall message names the file.
fn field_errors(yaml: &str) -> Vec<(String, String)> {
    let err = parse(yaml).expect_err("config should be invalid");
    let message = err.to_string();
    assert!(message.contains("/etc/ward/encryption.yaml"), "{message}");
    match err {
        ConfigError::Invalid { errors, .. } => {
            assert!(!errors.is_empty());
            errors
                .iter()
                .map(|e| (e.path().to_owned(), e.message().to_owned()))
                .collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Asserts exactly one field error at `path` whose message contains `needle`.
fn assert_one_error(yaml: &str, path: &str, needle: &str) {
    let errors = field_errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, path, "{errors:?}");
    assert!(errors[0].1.contains(needle), "{errors:?}");
}

fn one_provider(provider_item: &str) -> String {
    config_yaml("secrets", provider_item)
}

const FULL: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
      - pandas.awesome.bears.example
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZQ==
            - name: key2
              secret: dGhpcyBpcyBwYXNzd29yZA==
      - aescbc:
          keys:
            - name: key1
              secret: c25vcmxheF9hd2Vzb21lcw==
      - secretbox:
          keys:
            - name: key1
              secret: YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=
      - kms:
          name: legacy
          endpoint: unix:///tmp/kms-v1.socket
      - kms:
          apiVersion: v2
          name: myKmsPlugin
          endpoint: unix:///@abstract-kms
          timeout: 1.5s
      - identity: {}
  - resources: ["*.apps", "*."]
    providers:
      - identity: {}
"#;

#[test]
fn full_config_parses_with_defaults() {
    let config = parse(FULL).unwrap();
    assert_eq!(config.source_name(), "/etc/ward/encryption.yaml");
    assert!(config.content_hash().starts_with("sha256:"));
    assert_eq!(config.content_hash().len(), 7 + 64);
    let rules = config.rules();
    assert_eq!(rules.len(), 2);
    let names: Vec<String> = rules[0]
        .resources()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        names,
        ["secrets", "configmaps", "pandas.awesome.bears.example"]
    );
    assert_eq!(rules[0].resources()[2].group(), "awesome.bears.example");
    assert_eq!(rules[0].resources()[2].resource(), "pandas");
    let kinds: Vec<&str> = rules[0]
        .providers()
        .iter()
        .map(ProviderConfig::name)
        .collect();
    assert_eq!(
        kinds,
        ["aesgcm", "aescbc", "secretbox", "kms", "kms", "identity"]
    );
    match &rules[0].providers()[0] {
        ProviderConfig::AesGcm(keys) => {
            let names: Vec<&str> = keys.keys().iter().map(|k| k.name()).collect();
            assert_eq!(names, ["key1", "key2"]);
            assert_eq!(keys.keys()[0].key_len(), 16);
        }
        other => panic!("{other:?}"),
    }
    match &rules[0].providers()[3] {
        ProviderConfig::Kms(kms) => {
            assert_eq!(kms.api_version(), KmsApiVersion::V1);
            assert_eq!(kms.timeout(), Duration::from_secs(3));
            assert_eq!(kms.cache_size(), Some(1000));
            assert_eq!(kms.socket_path(), "/tmp/kms-v1.socket");
        }
        other => panic!("{other:?}"),
    }
    match &rules[0].providers()[4] {
        ProviderConfig::Kms(kms) => {
            assert_eq!(kms.api_version(), KmsApiVersion::V2);
            assert_eq!(kms.name(), "myKmsPlugin");
            assert_eq!(kms.endpoint(), "unix:///@abstract-kms");
            assert_eq!(kms.socket_path(), "@abstract-kms");
            assert_eq!(kms.timeout(), Duration::from_millis(1500));
            assert_eq!(kms.cache_size(), None);
        }
        other => panic!("{other:?}"),
    }
    let names: Vec<String> = rules[1]
        .resources()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["*.apps", "*."]);
}

#[test]
fn kms_is_refused_when_building_transformers() {
    let err = Transformers::from_config(parse(FULL).unwrap()).unwrap_err();
    assert!(matches!(err, BuildError::KmsUnsupported { .. }));
    assert_eq!(
        err.to_string(),
        "kms provider needs a KMS client: build the transformers with ward-kms \
         (resources[0].providers[3].kms in /etc/ward/encryption.yaml)"
    );
}

#[test]
fn json_and_legacy_kind_are_accepted() {
    let json = format!(
        r#"{{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1",
            "resources":[{{"resources":["secrets"],"providers":[
              {{"aesgcm":{{"keys":[{{"name":"k","secret":"{KEY16}"}}]}}}},{{"identity":{{}}}}]}}]}}"#
    );
    let config = parse(&json).unwrap();
    assert_eq!(config.rules()[0].providers().len(), 2);

    let legacy = "kind: EncryptionConfig\napiVersion: v1\nresources:\n  - resources: [secrets]\n    \
                  providers:\n      - identity: {}\n";
    parse(legacy).unwrap();
}

#[test]
fn empty_file_is_an_error() {
    for empty in ["", "\n  \n", "# just a comment\n"] {
        let err = parse(empty).unwrap_err();
        assert!(matches!(err, ConfigError::Empty { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "encryption configuration /etc/ward/encryption.yaml is empty"
        );
    }
}

#[test]
fn type_meta_is_checked() {
    let body = "resources:\n  - resources: [secrets]\n    providers:\n      - identity: {}\n";
    assert_one_error(body, "apiVersion", "required");
    assert_one_error(
        &format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfig\n{body}"),
        "kind",
        "expected EncryptionConfiguration",
    );
    assert_one_error(
        &format!("apiVersion: v1\nkind: EncryptionConfiguration\n{body}"),
        "kind",
        "expected EncryptionConfig for apiVersion v1",
    );
    assert_one_error(
        &format!("apiVersion: apiserver.config.k8s.io/v2\nkind: EncryptionConfiguration\n{body}"),
        "apiVersion",
        "unsupported apiVersion",
    );
}

#[test]
fn resources_list_is_required() {
    assert_one_error(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n",
        "resources",
        "at least one entry",
    );
    assert_one_error(
        &config_yaml("", IDENTITY),
        "resources[0].resources",
        "at least one",
    );
}

#[test]
fn resource_names_are_checked() {
    for (name, needle) in [
        ("Secrets", "must be lower case; use \\\"secrets\\\""),
        ("'*'", "'*' is not a valid resource"),
        ("'secrets.*'", "across every group"),
        ("events.events.k8s.io", "use 'events' instead"),
        ("'*.events.k8s.io'", "use 'events' instead"),
        ("deployments.extensions", "extensions group was removed"),
        ("apiserveripinfo", "not a REST resource"),
        ("serviceipallocations", "not a REST resource"),
        ("servicenodeportallocations", "not a REST resource"),
        ("''", "must not be empty"),
    ] {
        let errors = field_errors(&config_yaml(name, IDENTITY));
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert_eq!(errors[0].0, "resources[0].resources[0]", "{name}");
        let shown = format!("{:?}", errors[0].1);
        assert!(shown.contains(needle), "{name}: {shown}");
    }
    for ok in [
        "secrets",
        "'*.'",
        "'*.apps'",
        "'*.*'",
        "pandas.awesome.bears.example",
        "events",
    ] {
        parse(&config_yaml(ok, IDENTITY)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn duplicates_and_overlaps_in_one_list_are_rejected() {
    assert_one_error(
        &config_yaml("secrets, configmaps, secrets", IDENTITY),
        "resources[0].resources",
        "duplicate resource names",
    );
    for overlapping in [
        "'*.', secrets",
        "'*.*', deployments.apps",
        "'*.apps', deployments.apps",
    ] {
        assert_one_error(
            &config_yaml(overlapping, IDENTITY),
            "resources[0].resources",
            "overlaps",
        );
    }
    // Different groups do not overlap.
    parse(&config_yaml("'*.apps', secrets, jobs.batch", IDENTITY)).unwrap();
}

#[test]
fn earlier_wildcards_mask_later_entries() {
    let two = |first: &str, second: &str| {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             \x20 - resources: [{first}]\n    providers: [{{identity: {{}}}}]\n\
             \x20 - resources: [{second}]\n    providers: [{{identity: {{}}}}]\n"
        )
    };
    assert_one_error(
        &two("'*.'", "configmaps"),
        "resources[1].resources[0]",
        "resource \"configmaps\" is masked by earlier rule \"*.\"",
    );
    assert_one_error(
        &two("'*.apps'", "deployments.apps"),
        "resources[1].resources[0]",
        "masked by earlier rule \"*.apps\"",
    );
    assert_one_error(
        &two("'*.*'", "secrets"),
        "resources[1].resources[0]",
        "masked by earlier rule \"*.*\"",
    );
    assert_one_error(
        &two("'*.*'", "'*.*'"),
        "resources[1].resources[0]",
        "masked",
    );
    // The other way round is fine: specific first, wildcard after.
    parse(&two("secrets", "'*.'")).unwrap();
    parse(&two("deployments.apps", "'*.*'")).unwrap();
    // The same resource twice is allowed (providers are concatenated).
    parse(&two("secrets", "secrets")).unwrap();
}

#[test]
fn each_provider_element_has_exactly_one_provider() {
    assert_one_error(
        &config_yaml("secrets", ""),
        "resources[0].providers",
        "at least one provider",
    );
    assert_one_error(
        &config_yaml("secrets", "      - {}\n"),
        "resources[0].providers[0]",
        "exactly one of aescbc, aesgcm, identity, kms, secretbox is required; found none",
    );
    let two = format!(
        "      - identity: {{}}\n        aesgcm:\n          keys: [{{name: k, secret: {KEY16}}}]\n"
    );
    assert_one_error(
        &config_yaml("secrets", &two),
        "resources[0].providers[0]",
        "found aesgcm, identity",
    );
}

#[test]
fn keys_are_checked() {
    assert_one_error(
        &one_provider("      - aesgcm:\n          keys: []\n"),
        "resources[0].providers[0].aesgcm.keys",
        "at least one key",
    );
    assert_one_error(
        &one_provider("      - secretbox: {}\n"),
        "resources[0].providers[0].secretbox.keys",
        "at least one key",
    );
    assert_one_error(
        &one_provider(&keyed_provider("aescbc", &[("''", KEY16)])),
        "resources[0].providers[0].aescbc.keys[0].name",
        "must not be empty",
    );
    assert_one_error(
        &one_provider("      - aesgcm:\n          keys: [{name: k}]\n"),
        "resources[0].providers[0].aesgcm.keys[0].secret",
        "required; expected standard base64 of 16, 24 or 32 bytes",
    );
    assert_one_error(
        &one_provider(&keyed_provider(
            "aesgcm",
            &[("k", KEY16), ("k2", "not*base64")],
        )),
        "resources[0].providers[0].aesgcm.keys[1].secret",
        "not valid standard base64",
    );
    assert_one_error(
        &one_provider(&keyed_provider("aesgcm", &[("k", &key(20))])),
        "resources[0].providers[0].aesgcm.keys[0].secret",
        "expected standard base64 of 16, 24 or 32 bytes; it decodes to 20 bytes",
    );
    assert_one_error(
        &one_provider(&keyed_provider("secretbox", &[("k", KEY16)])),
        "resources[0].providers[0].secretbox.keys[0].secret",
        "expected standard base64 of 32 bytes; it decodes to 16 bytes",
    );
    assert_one_error(
        &one_provider(&keyed_provider("aescbc", &[("k", &key(100))])),
        "resources[0].providers[0].aescbc.keys[0].secret",
        "more than 64 bytes",
    );
    for len in [16, 24, 32] {
        for provider in ["aescbc", "aesgcm"] {
            parse(&one_provider(&keyed_provider(
                provider,
                &[("k", &key(len))],
            )))
            .unwrap();
        }
    }
    parse(&one_provider(&keyed_provider(
        "secretbox",
        &[("k", &key(32))],
    )))
    .unwrap();
}

#[test]
fn all_errors_are_reported_at_once() {
    let yaml = config_yaml(
        "Secrets",
        &(keyed_provider("aesgcm", &[("", KEY16), ("k", "AAAA")]) + "      - {}\n"),
    );
    let paths: Vec<String> = field_errors(&yaml).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "resources[0].resources[0]",
            "resources[0].providers[0].aesgcm.keys[0].name",
            "resources[0].providers[0].aesgcm.keys[1].secret",
            "resources[0].providers[1]",
        ]
    );
}

fn kms(fields: &str) -> String {
    one_provider(&format!("      - kms:\n{fields}"))
}

#[test]
fn kms_fields_are_checked() {
    let p = "resources[0].providers[0].kms";
    let ok = "          name: k\n          endpoint: unix:///run/kms.sock\n";
    parse(&kms(ok)).unwrap();
    assert_one_error(
        &kms(&format!("          apiVersion: v3\n{ok}")),
        &format!("{p}.apiVersion"),
        "expected v1 or v2",
    );
    assert_one_error(
        &kms("          endpoint: unix:///run/kms.sock\n"),
        &format!("{p}.name"),
        "required",
    );
    assert_one_error(
        &kms("          apiVersion: v2\n          name: a:b\n          endpoint: unix:///k\n"),
        &format!("{p}.name"),
        "must not contain ':'",
    );
    assert_one_error(
        &kms("          name: k\n"),
        &format!("{p}.endpoint"),
        "required",
    );
    for bad in [
        "tcp://localhost:8080",
        "unix://",
        "unix:///",
        "/run/kms.sock",
        "unix://host/x",
    ] {
        assert_one_error(
            &kms(&format!("          name: k\n          endpoint: '{bad}'\n")),
            &format!("{p}.endpoint"),
            "expected unix:///path/to/socket",
        );
    }
    for (timeout, needle) in [
        ("0s", "greater than 0"),
        ("-1s", "greater than 0"),
        ("3", "invalid duration"),
        ("soon", "invalid duration"),
    ] {
        assert_one_error(
            &kms(&format!("{ok}          timeout: '{timeout}'\n")),
            &format!("{p}.timeout"),
            needle,
        );
    }
    assert_one_error(
        &kms(&format!("{ok}          cachesize: 0\n")),
        &format!("{p}.cachesize"),
        "0 is invalid",
    );
    assert_one_error(
        &kms(&format!(
            "{ok}          apiVersion: v2\n          cachesize: 10\n"
        )),
        &format!("{p}.cachesize"),
        "not supported for kms v2",
    );
    let config = parse(&kms(&format!("{ok}          cachesize: -1\n"))).unwrap();
    match &config.rules()[0].providers()[0] {
        ProviderConfig::Kms(kms) => assert_eq!(kms.cache_size(), Some(-1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn kms_v2_names_are_unique() {
    let item = |version: &str| {
        format!(
            "      - kms:\n          apiVersion: {version}\n          name: same\n          endpoint: unix:///k\n"
        )
    };
    assert_one_error(
        &one_provider(&(item("v2") + &item("v2"))),
        "resources[0].providers[1].kms.name",
        "duplicate kms provider name",
    );
    assert_one_error(
        &one_provider(&(item("v1") + &item("v2"))),
        "resources[0].providers[1].kms.name",
        "duplicate kms provider name",
    );
    // v1 names may repeat (as in Kubernetes without automatic reload).
    parse(&one_provider(&(item("v1") + &item("v1")))).unwrap();
}

#[test]
fn unknown_fields_and_wrong_types_are_syntax_errors_with_a_location() {
    let yaml = config_yaml("secrets", "      - identity: {}\n        colour: blue\n");
    match parse(&yaml).unwrap_err() {
        ConfigError::Syntax {
            source_name,
            line,
            reason,
            ..
        } => {
            assert_eq!(source_name, "/etc/ward/encryption.yaml");
            assert_eq!(line, 7);
            assert!(reason.contains("unknown field `colour`"), "{reason}");
            assert!(
                reason.contains("aescbc, aesgcm, identity, kms, secretbox"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let yaml = config_yaml("secrets", "      - aesgcm:\n          keys: {name: k}\n");
    let err = parse(&yaml).unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 7, .. }),
        "{err:?}"
    );
    let err = parse("apiVersion: [unclosed\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
}

#[test]
fn loading_from_a_file_checks_its_mode() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption.yaml");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(config_yaml("secrets", IDENTITY).as_bytes())
        .unwrap();
    drop(file);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = load_encryption_config(&path).unwrap();
    assert_eq!(config.source_name(), path.display().to_string());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_encryption_config(&path).unwrap_err();
    assert!(
        matches!(err, ConfigError::InsecurePermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("has mode 644"), "{err}");
    load_encryption_config_with(&path, ModeCheck::Skip).unwrap();

    let missing = dir.path().join("missing.yaml");
    let err = load_encryption_config(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.yaml"), "{err}");

    let empty = dir.path().join("empty.yaml");
    std::fs::File::create(&empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = load_encryption_config(&empty).unwrap_err();
    assert!(matches!(err, ConfigError::Empty { .. }), "{err:?}");
}
