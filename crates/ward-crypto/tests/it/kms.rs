//! The `kms` seam: a [`KmsFactory`] turns each `kms` provider into a [`KmsTransformer`], used
//! through the async transformer methods. The transformer here is a test double (no crypto);
//! `ward-kms` tests the real KMS v2 envelope against a gRPC plugin.

use std::sync::Arc;

use ward_crypto::{
    AttemptFailure, BuildError, EncryptionConfig, KmsApiVersion, KmsConfig, KmsFactory, KmsFailure,
    KmsOpened, KmsTransformer, ProviderKind, TransformError, Transformers,
};
use zeroize::Zeroizing;

const AAD: &[u8] = b"/registry/secrets/default/db";

#[derive(Debug)]
struct Tagging {
    name: String,
    prefix: Vec<u8>,
    stale: bool,
    healthy: bool,
    read_only: bool,
}

#[async_trait::async_trait]
impl KmsTransformer for Tagging {
    fn name(&self) -> &str {
        &self.name
    }
    fn prefix(&self) -> &[u8] {
        &self.prefix
    }
    async fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsFailure> {
        if self.read_only {
            return Err(KmsFailure::ReadOnly);
        }
        if !self.healthy {
            return Err(KmsFailure::NotReady("plugin down".into()));
        }
        Ok([aad, b"|", plaintext].concat())
    }
    async fn open(&self, payload: &[u8], aad: &[u8]) -> Result<KmsOpened, KmsFailure> {
        let plaintext = payload
            .strip_prefix(aad)
            .and_then(|rest| rest.strip_prefix(b"|"))
            .ok_or(KmsFailure::Decrypt)?;
        Ok(KmsOpened {
            plaintext: Zeroizing::new(plaintext.to_vec()),
            stale: self.stale,
        })
    }
    fn health(&self) -> Result<(), String> {
        if self.healthy {
            Ok(())
        } else {
            Err("plugin down".into())
        }
    }
    fn writes(&self) -> bool {
        !self.read_only
    }
}

struct Factory {
    stale: bool,
    healthy: bool,
}

impl KmsFactory for Factory {
    fn build(&self, config: &KmsConfig) -> Result<Arc<dyn KmsTransformer>, String> {
        if config.name() == "refused" {
            return Err("refused by the factory".into());
        }
        let read_only = config.api_version() == KmsApiVersion::V1;
        let version = if read_only { "v1" } else { "v2" };
        Ok(Arc::new(Tagging {
            name: config.name().to_owned(),
            prefix: format!("k8s:enc:kms:{version}:{}:", config.name()).into_bytes(),
            stale: self.stale,
            healthy: self.healthy,
            read_only,
        }))
    }
}

fn config(providers: &str) -> EncryptionConfig {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n{providers}"
    );
    EncryptionConfig::from_bytes(yaml.as_bytes(), "kms.yaml").unwrap()
}

const KMS_FIRST: &str = "  - kms: {apiVersion: v2, name: one, endpoint: unix:///tmp/one.sock}\n  - aesgcm:\n      keys: [{name: k1, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]\n  - identity: {}\n";

#[tokio::test]
async fn kms_writes_first_and_reads_through_the_async_methods() {
    let t = Transformers::from_config_with_kms(
        config(KMS_FIRST),
        &Factory {
            stale: false,
            healthy: true,
        },
    )
    .unwrap();
    let rt = t.for_resource("", "secrets");
    assert_eq!(rt.provider(), ProviderKind::Kms);
    assert_eq!(rt.write_key_name(), Some("one"));
    assert_eq!(
        rt.describe(),
        "kms provider \"one\", aesgcm key \"k1\", identity"
    );
    let stored = rt.to_storage_async(b"value", AAD).await.unwrap();
    assert!(stored.starts_with(b"k8s:enc:kms:v2:one:"));
    let read = rt.from_storage_async(&stored, AAD).await.unwrap();
    assert_eq!(read.plaintext.as_slice(), b"value");
    assert!(!read.stale);
    assert!(t.kms_health().is_ok());

    // The other providers still read through the async path, as stale.
    let plain = rt.from_storage_async(b"k8s\x00plain", AAD).await.unwrap();
    assert!(plain.stale);

    // The sync methods refuse kms without blocking.
    assert!(matches!(
        rt.to_storage(b"value", AAD),
        Err(TransformError::Kms {
            failure: KmsFailure::NeedsAsync,
            ..
        })
    ));
    let err = rt.from_storage(&stored, AAD).unwrap_err();
    assert!(err.to_string().contains("needs the async"), "{err}");

    // A failed kms read is an attempt error that names the provider.
    let err = rt.from_storage_async(&stored, b"/other").await.unwrap_err();
    let TransformError::Decrypt { attempts } = &err else {
        panic!("{err:?}")
    };
    let attempt = attempts.iter().next().unwrap();
    assert_eq!(attempt.reason(), AttemptFailure::Decrypt);
    assert_eq!(attempt.kms_failure(), Some(&KmsFailure::Decrypt));
    assert!(err.to_string().contains("kms provider \"one\""), "{err}");
}

#[tokio::test]
async fn kms_staleness_and_health_are_passed_through() {
    let t = Transformers::from_config_with_kms(
        config(KMS_FIRST),
        &Factory {
            stale: true,
            healthy: false,
        },
    )
    .unwrap();
    let rt = t.for_resource("", "secrets");
    let err = rt.to_storage_async(b"value", AAD).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "kms provider \"one\" failed to encrypt the value: kms provider is not ready for \
         writes: plugin down"
    );
    let stored = [b"k8s:enc:kms:v2:one:".as_slice(), AAD, b"|value"].concat();
    assert!(rt.from_storage_async(&stored, AAD).await.unwrap().stale);
    assert_eq!(
        t.kms_health().unwrap_err(),
        "kms provider \"one\": plugin down"
    );
}

#[tokio::test]
async fn non_kms_transformers_behave_the_same_through_the_async_methods() {
    let providers = format!(
        "{}      - identity: {{}}\n",
        crate::keyed_provider(
            "aesgcm",
            &[("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")]
        )
    );
    let t = crate::transformers(&crate::config_yaml("secrets", &providers));
    let rt = t.for_resource("", "secrets");
    let stored = rt.to_storage_async(b"value", AAD).await.unwrap();
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
    assert_eq!(
        rt.from_storage(&stored, AAD).unwrap().plaintext.as_slice(),
        rt.from_storage_async(&stored, AAD)
            .await
            .unwrap()
            .plaintext
            .as_slice()
    );
    assert!(t.kms_health().is_ok());
}

#[test]
fn factory_refusal_names_the_file_and_path() {
    let err = Transformers::from_config_with_kms(
        config("  - identity: {}\n  - kms: {apiVersion: v2, name: refused, endpoint: unix:///x.sock}\n"),
        &Factory {
            stale: false,
            healthy: true,
        },
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::Kms { .. }));
    assert_eq!(
        err.to_string(),
        "resources[0].providers[1].kms in kms.yaml: refused by the factory"
    );
}

const FACTORY: Factory = Factory {
    stale: false,
    healthy: true,
};

const AESGCM: &str =
    "  - aesgcm:\n      keys: [{name: k1, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]\n";
const KMS_V1: &str = "  - kms: {name: legacy, endpoint: unix:///tmp/v1.sock}\n";

#[test]
fn a_read_only_kms_v1_provider_first_is_refused_with_file_and_field() {
    let err = Transformers::from_config_with_kms(config(&format!("{KMS_V1}{AESGCM}")), &FACTORY)
        .unwrap_err();
    let BuildError::KmsReadOnly {
        source_name,
        path,
        name,
        resource,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (
            source_name.as_str(),
            path.as_str(),
            name.as_str(),
            resource.as_str()
        ),
        (
            "kms.yaml",
            "resources[0].providers[0].kms",
            "legacy",
            "secrets"
        )
    );
    let text = err.to_string();
    assert!(
        text.starts_with("resources[0].providers[0].kms.apiVersion in kms.yaml: "),
        "{text}"
    );
    assert!(text.contains("apiVersion: v2"), "{text}");

    // A later entry whose resources are all written by an earlier one is only read.
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n{AESGCM}\
         - resources: [secrets]\n  providers:\n{KMS_V1}"
    );
    let config_ok = EncryptionConfig::from_bytes(yaml.as_bytes(), "two.yaml").unwrap();
    Transformers::from_config_with_kms(config_ok, &FACTORY).unwrap();
    // ... but one that also names another resource makes v1 its writer.
    let yaml = yaml.replace(
        "- resources: [secrets]\n  providers:\n  - kms",
        "- resources: [secrets, configmaps]\n  providers:\n  - kms",
    );
    let config_bad = EncryptionConfig::from_bytes(yaml.as_bytes(), "two.yaml").unwrap();
    let err = Transformers::from_config_with_kms(config_bad, &FACTORY).unwrap_err();
    assert!(
        matches!(&err, BuildError::KmsReadOnly { path, resource, .. }
            if path == "resources[1].providers[0].kms" && resource == "configmaps"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_read_only_kms_v1_provider_after_the_writer_reads_as_stale() {
    let t =
        Transformers::from_config_with_kms(config(&format!("{AESGCM}{KMS_V1}")), &FACTORY).unwrap();
    let rt = t.for_resource("", "secrets");
    assert_eq!(rt.provider(), ProviderKind::AesGcm);
    let stored = [b"k8s:enc:kms:v1:legacy:".as_slice(), AAD, b"|old"].concat();
    let read = rt.from_storage_async(&stored, AAD).await.unwrap();
    assert_eq!(read.plaintext.as_slice(), b"old");
    assert!(read.stale);
    let written = rt.to_storage_async(b"new", AAD).await.unwrap();
    assert!(written.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
}
