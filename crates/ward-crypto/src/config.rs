//! Loading and validating an `EncryptionConfiguration` file.
//!
//! # Policy
//!
//! The file format is kube-apiserver's (`--encryption-provider-config`): `kind:
//! EncryptionConfiguration` in `apiserver.config.k8s.io/v1`, or the legacy `kind:
//! EncryptionConfig` in `v1`, as YAML or JSON. It is read in two steps: serde reads the raw shape
//! ([`raw`], `deny_unknown_fields`), then `TryFrom` checks every rule and builds the validated
//! [`EncryptionConfig`]. All rule violations are collected, so one run reports them all.
//!
//! Differences from kube-apiserver, all stricter:
//! - unknown fields are errors (Kubernetes ignores them);
//! - an empty resource name is an error;
//! - a KMS endpoint must have the form `unix:///path` (or `unix:///@abstract`).
//!
//! **Errors never echo a secret.** Validation messages name the file, the path of the field
//! (`resources[0].providers[1].aesgcm.keys[0].secret`) and the expected form, and at most the
//! decoded length of a key. Syntax errors from the YAML parser are rewritten: only the line,
//! column and a fixed description are kept, never the parser's own text or source snippet,
//! since that could quote a `secret:` line (the scanner's fixed messages, which quote at most one
//! character, are kept). An unknown field name is echoed only when it looks
//! like a field name (a short run of ASCII letters), because a mangled flow mapping such as
//! `{name: k, secret:c2VjcmV0...}` turns the secret into a "field name".
//!
//! The bytes of the file are zeroized after parsing. The YAML parser keeps short-lived copies of
//! scalars in its own buffers, which are not zeroized; that is outside this crate's control.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::secret::{KeyMaterial, SecretText};

mod raw;

use raw::{
    RawEncryptionConfiguration, RawKey, RawKeysConfiguration, RawKmsConfiguration,
    RawProviderConfiguration, RawResourceConfiguration,
};

/// Reads and validates the `EncryptionConfiguration` file at `path`.
///
/// On Unix the file must not be readable or writable by group or others (no `0o077` mode bits),
/// because it holds keys; use [`load_encryption_config_with`] and [`ModeCheck::Skip`] to accept
/// such a file anyway.
///
/// # Errors
///
/// - [`ConfigError::Read`] if the file cannot be opened or read;
/// - [`ConfigError::InsecurePermissions`] if the file's mode has `0o077` bits set;
/// - [`ConfigError::Empty`], [`ConfigError::Syntax`] or [`ConfigError::Invalid`] as
///   [`EncryptionConfig::from_bytes`].
pub fn load_encryption_config(path: &Path) -> Result<EncryptionConfig, ConfigError> {
    load_encryption_config_with(path, ModeCheck::Enforce)
}

/// Reads and validates the `EncryptionConfiguration` file at `path`, with an explicit choice
/// about the file-mode check.
///
/// # Errors
///
/// As [`load_encryption_config`]; [`ConfigError::InsecurePermissions`] only with
/// [`ModeCheck::Enforce`].
pub fn load_encryption_config_with(
    path: &Path,
    mode_check: ModeCheck,
) -> Result<EncryptionConfig, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if mode_check == ModeCheck::Enforce {
        check_mode(path, &metadata)?;
    }
    // Reserve the whole file up front (plus one byte to detect EOF) so that the buffer never
    // reallocates and leaves an unzeroized copy behind.
    let capacity = usize::try_from(metadata.len())
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(MAX_CONFIG_BYTES + 1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    (&mut file)
        .take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            source_name: path.display().to_string(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    EncryptionConfig::from_bytes(&bytes, &path.display().to_string())
}

/// Whether [`load_encryption_config_with`] checks the file's permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModeCheck {
    /// Refuse a file whose mode has any `0o077` bit set (the default).
    Enforce,
    /// Accept any mode. The caller should log a warning.
    Skip,
}

/// A validated `EncryptionConfiguration`.
///
/// Every rule of the file format has been checked, including the masking of later entries by
/// earlier `*.group` or `*.*` entries. Turn it into [`crate::Transformers`] to use it.
#[derive(Debug)]
pub struct EncryptionConfig {
    source_name: String,
    content_hash: String,
    rules: Vec<ResourceRule>,
}

impl EncryptionConfig {
    /// Parses and validates a configuration from its file content. `source_name` (usually the
    /// path) is used only in error messages.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::Empty`] if `bytes` is empty or only whitespace and comments;
    /// - [`ConfigError::TooLarge`] if `bytes` is larger than 1 MiB;
    /// - [`ConfigError::Syntax`] if it is not a YAML or JSON document of the expected shape
    ///   (including unknown fields);
    /// - [`ConfigError::Invalid`] listing every rule that the content breaks.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Self, ConfigError> {
        let source_name = source_name.to_owned();
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                source_name,
                limit: MAX_CONFIG_BYTES,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::Empty { source_name });
        }
        let content_hash = content_hash(bytes);
        let mut options = serde_saphyr::Options::default();
        // Never keep a source snippet in the error: it could quote a `secret:` line.
        options.with_snippet = false;
        let parsed: Option<RawEncryptionConfiguration> =
            serde_saphyr::from_slice_with_options(bytes, options)
                .map_err(|e| syntax_error(&source_name, &e))?;
        let Some(raw) = parsed else {
            return Err(ConfigError::Empty { source_name });
        };
        let rules = Rules::try_from(raw).map_err(|errors| ConfigError::Invalid {
            source_name: source_name.clone(),
            errors,
        })?;
        Ok(Self {
            source_name,
            content_hash,
            rules: rules.0,
        })
    }

    /// The name given when loading (usually the file path).
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// `sha256:<hex>` of the file content, as kube-apiserver computes it to detect changes.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// The entries of `resources`, in file order.
    pub fn rules(&self) -> &[ResourceRule] {
        &self.rules
    }

    pub(crate) fn into_parts(self) -> (String, String, Vec<ResourceRule>) {
        (self.source_name, self.content_hash, self.rules)
    }
}

/// One entry of `resources`: the resources it covers and their providers, in order.
#[derive(Debug)]
pub struct ResourceRule {
    resources: Vec<GroupResource>,
    providers: Vec<ProviderConfig>,
}

impl ResourceRule {
    /// The resources this entry names.
    pub fn resources(&self) -> &[GroupResource] {
        &self.resources
    }

    /// The providers, in order: the first one writes, all of them read.
    pub fn providers(&self) -> &[ProviderConfig] {
        &self.providers
    }

    pub(crate) fn into_parts(self) -> (Vec<GroupResource>, Vec<ProviderConfig>) {
        (self.resources, self.providers)
    }
}

/// A resource name from the file, split as Kubernetes `schema.ParseGroupResource` does.
///
/// `secrets` is `{group: "", resource: "secrets"}`, `deployments.apps` is `{"apps",
/// "deployments"}`, `*.` is every resource of the core group, `*.apps` every resource of `apps`
/// and `*.*` everything.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupResource {
    group: String,
    resource: String,
}

impl GroupResource {
    /// Splits `name` at its first `.`.
    pub fn parse(name: &str) -> Self {
        match name.split_once('.') {
            Some((resource, group)) => Self {
                group: group.to_owned(),
                resource: resource.to_owned(),
            },
            None => Self {
                group: String::new(),
                resource: name.to_owned(),
            },
        }
    }

    /// The API group (`""` for the core group, `*` for every group).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The resource (`*` for every resource of the group).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    fn any_in_group(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: "*".to_owned(),
        }
    }

    fn is_any(&self) -> bool {
        self.group == "*" && self.resource == "*"
    }
}

/// Formats the resource as it is written in the file (`secrets`, `*.`, `*.apps`, `*.*`).
impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() && self.resource != "*" {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One validated element of `providers`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProviderConfig {
    /// `aescbc`: AES-CBC with PKCS#7 padding, 16/24/32-byte keys.
    AesCbc(KeySet),
    /// `aesgcm`: AES-GCM with the etcd key as AAD, 16/24/32-byte keys.
    AesGcm(KeySet),
    /// `identity`: no encryption.
    Identity,
    /// `kms`: envelope encryption through a KMS plugin (parsed, not yet usable).
    Kms(KmsConfig),
    /// `secretbox`: XSalsa20-Poly1305, 32-byte keys.
    Secretbox(KeySet),
}

impl ProviderConfig {
    /// The provider's field name in the file: `aescbc`, `aesgcm`, `identity`, `kms` or
    /// `secretbox`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AesCbc(_) => "aescbc",
            Self::AesGcm(_) => "aesgcm",
            Self::Identity => "identity",
            Self::Kms(_) => "kms",
            Self::Secretbox(_) => "secretbox",
        }
    }
}

/// The non-empty `keys` of an `aescbc`, `aesgcm` or `secretbox` provider, in order.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<NamedKey>,
}

impl KeySet {
    /// The keys: the first one encrypts, all of them decrypt.
    pub fn keys(&self) -> &[NamedKey] {
        &self.keys
    }

    pub(crate) fn into_keys(self) -> Vec<NamedKey> {
        self.keys
    }
}

/// A named key. Its `Debug` shows the name and length only.
#[derive(Debug)]
pub struct NamedKey {
    name: String,
    secret: KeyMaterial,
}

impl NamedKey {
    /// The key's name, written into the prefix of every value it encrypts.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's length in bytes.
    pub fn key_len(&self) -> usize {
        self.secret.len()
    }

    pub(crate) fn into_parts(self) -> (String, KeyMaterial) {
        (self.name, self.secret)
    }
}

/// A validated `kms` provider, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    api_version: KmsApiVersion,
    name: String,
    endpoint: String,
    timeout: Duration,
    cache_size: Option<i32>,
}

impl KmsConfig {
    /// `v1` (the default) or `v2`.
    pub fn api_version(&self) -> KmsApiVersion {
        self.api_version
    }

    /// The provider name, written into the prefix of every value.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint as written, e.g. `unix:///var/run/kms.sock`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The socket path: `/var/run/kms.sock`, or `@name` for a Linux abstract socket written
    /// `unix:///@name`.
    pub fn socket_path(&self) -> &str {
        let path = self
            .endpoint
            .strip_prefix("unix://")
            .unwrap_or(&self.endpoint);
        match path.strip_prefix("/@") {
            Some(_) => &path[1..],
            None => path,
        }
    }

    /// The call timeout (default 3 s).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// KMS v1 DEK cache size: `Some(n)` with `n > 0` (default 1000), `Some(n)` with `n < 0`
    /// when the cache is disabled. `None` for KMS v2, which has no such setting.
    pub fn cache_size(&self) -> Option<i32> {
        self.cache_size
    }
}

/// The KMS plugin API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KmsApiVersion {
    /// KMS v1 (deprecated in Kubernetes).
    V1,
    /// KMS v2.
    V2,
}

/// An error loading an encryption configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is empty (or holds only whitespace and comments).
    #[error("encryption configuration {source_name} is empty")]
    Empty {
        /// The file path or name given when loading.
        source_name: String,
    },
    /// The file's mode lets group or others access it.
    #[error(
        "encryption configuration {} has mode {mode:o}, but it holds keys and must not be \
         accessible by group or others (expected no 0o077 bits, e.g. mode 600)",
        path.display()
    )]
    InsecurePermissions {
        /// The file path.
        path: PathBuf,
        /// The permission bits found.
        mode: u32,
    },
    /// The content breaks one or more rules.
    #[error("encryption configuration {source_name} is invalid: {errors}")]
    Invalid {
        /// The file path or name given when loading.
        source_name: String,
        /// Every rule broken, with the path of its field.
        errors: FieldErrors,
    },
    /// The file could not be opened or read.
    #[error("failed to read encryption configuration {}", path.display())]
    Read {
        /// The file path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a YAML or JSON document of the expected shape.
    #[error(
        "encryption configuration {source_name} could not be parsed at line {line}, column \
         {column}: {reason}"
    )]
    Syntax {
        /// The file path or name given when loading.
        source_name: String,
        /// The line of the problem (1-based; 0 if unknown).
        line: u64,
        /// The column of the problem (1-based; 0 if unknown).
        column: u64,
        /// What was expected. Never quotes the file content.
        reason: String,
    },
    /// The file is larger than any sensible configuration.
    #[error("encryption configuration {source_name} is larger than {limit} bytes")]
    TooLarge {
        /// The file path or name given when loading.
        source_name: String,
        /// The limit in bytes.
        limit: usize,
    },
}

/// The rules an [`EncryptionConfig`] breaks, in file order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// The individual errors.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: an `Invalid` error holds at least one field error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// One broken rule: the path of the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    path: String,
    message: String,
}

impl FieldError {
    /// The path of the field, e.g. `resources[0].providers[1].aesgcm.keys[0].secret`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong and what was expected. Never contains a secret value.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

// === validation ===

/// The validated list of rules (the `TryFrom` target of the raw document).
struct Rules(Vec<ResourceRule>);

impl TryFrom<RawEncryptionConfiguration> for Rules {
    type Error = FieldErrors;

    fn try_from(raw: RawEncryptionConfiguration) -> Result<Self, FieldErrors> {
        let mut errors = Errors::default();
        validate_type_meta(raw.api_version.as_deref(), raw.kind.as_deref(), &mut errors);
        if raw.resources.is_empty() {
            errors.push("resources", "at least one entry is required");
        }
        let mut kms_names = HashSet::new();
        let mut rules = Vec::with_capacity(raw.resources.len());
        for (i, entry) in raw.resources.into_iter().enumerate() {
            if let Some(rule) = validate_rule(i, entry, &mut kms_names, &mut errors) {
                rules.push(rule);
            }
        }
        if errors.0.is_empty() {
            // Masking is only meaningful once every name is valid.
            check_masking(&rules, &mut errors);
        }
        if errors.0.is_empty() {
            Ok(Self(rules))
        } else {
            Err(FieldErrors(errors.0))
        }
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn validate_type_meta(api_version: Option<&str>, kind: Option<&str>, errors: &mut Errors) {
    match (api_version, kind) {
        (Some(API_VERSION), Some(KIND)) | (Some(LEGACY_API_VERSION), Some(LEGACY_KIND)) => {}
        (None | Some(""), _) => errors.push(
            "apiVersion",
            format!("required; expected {API_VERSION} (or the legacy {LEGACY_API_VERSION})"),
        ),
        (Some(API_VERSION), _) => {
            errors.push("kind", format!("expected {KIND} for apiVersion {API_VERSION}"));
        }
        (Some(LEGACY_API_VERSION), _) => errors.push(
            "kind",
            format!("expected {LEGACY_KIND} for apiVersion {LEGACY_API_VERSION}"),
        ),
        // The value is not echoed: a key pasted into the wrong field must not leak.
        (Some(_), _) => errors.push(
            "apiVersion",
            format!("unsupported apiVersion; expected {API_VERSION} (or the legacy {LEGACY_API_VERSION})"),
        ),
    }
}

fn validate_rule(
    i: usize,
    raw: RawResourceConfiguration,
    kms_names: &mut HashSet<String>,
    errors: &mut Errors,
) -> Option<ResourceRule> {
    let before = errors.0.len();
    let resources_path = format!("resources[{i}].resources");
    if raw.resources.is_empty() {
        errors.push(&resources_path, "at least one resource is required");
    }
    let mut resources = Vec::with_capacity(raw.resources.len());
    for (j, name) in raw.resources.iter().enumerate() {
        if let Err(message) = validate_resource_name(name) {
            errors.push(format!("{resources_path}[{j}]"), message);
        } else {
            resources.push(GroupResource::parse(name));
        }
    }
    check_overlap(&resources, &resources_path, errors);

    let providers_path = format!("resources[{i}].providers");
    if raw.providers.is_empty() {
        errors.push(&providers_path, "at least one provider is required");
    }
    let mut providers = Vec::with_capacity(raw.providers.len());
    for (j, provider) in raw.providers.into_iter().enumerate() {
        let path = format!("{providers_path}[{j}]");
        if let Some(provider) = validate_provider(&path, provider, kms_names, errors) {
            providers.push(provider);
        }
    }
    (errors.0.len() == before).then_some(ResourceRule {
        resources,
        providers,
    })
}

/// The checks of Kubernetes `validateResourceNames`, plus a non-empty name.
fn validate_resource_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("resource name must not be empty".to_owned());
    }
    if name.chars().any(char::is_uppercase) {
        return Err(format!(
            "resource name {name:?} must be lower case; use {:?}",
            name.to_lowercase()
        ));
    }
    if name == "*" {
        return Err(
            "'*' is not a valid resource; use '*.' for every resource of the core group or '*.*' \
             for every resource"
                .to_owned(),
        );
    }
    if NON_REST_RESOURCES.contains(&name) {
        return Err(format!(
            "{name:?} is not a REST resource and cannot be encrypted"
        ));
    }
    let gr = GroupResource::parse(name);
    if gr.group == "events.k8s.io" {
        return Err(format!(
            "{name:?}: events.k8s.io objects are stored with the core group; use 'events' instead"
        ));
    }
    if gr.group == "extensions" {
        return Err(format!(
            "{name:?}: the extensions group was removed and cannot be used for encryption"
        ));
    }
    if gr.group == "*" && gr.resource != "*" {
        return Err(format!(
            "{name:?}: encrypting one resource across every group is not supported; name the \
             group, or use '*.*'"
        ));
    }
    Ok(())
}

/// Kubernetes `validateResourceOverlap`: no duplicates, and no `*.group`/`*.*` together with
/// anything it covers, within one list.
fn check_overlap(resources: &[GroupResource], path: &str, errors: &mut Errors) {
    let mut duplicate = false;
    let mut overlap = false;
    for (i, a) in resources.iter().enumerate() {
        for b in &resources[i + 1..] {
            if a == b {
                duplicate = true;
            } else if a.is_any()
                || b.is_any()
                || (a.group == b.group && (a.resource == "*" || b.resource == "*"))
            {
                overlap = true;
            }
        }
    }
    if duplicate {
        errors.push(path, "duplicate resource names in the list");
    }
    if overlap {
        errors.push(
            path,
            "'*.group' or '*.*' overlaps another resource of the same list; list it once",
        );
    }
}

/// config.go: an entry may not name a resource that an earlier `*.group` or `*.*` entry covers.
fn check_masking(rules: &[ResourceRule], errors: &mut Errors) {
    let mut seen: HashSet<&GroupResource> = HashSet::new();
    let any = GroupResource::any_in_group("*");
    for (i, rule) in rules.iter().enumerate() {
        for (j, gr) in rule.resources.iter().enumerate() {
            let group_rule = GroupResource::any_in_group(&gr.group);
            let masked_by = if seen.contains(&group_rule) {
                Some(group_rule)
            } else if seen.contains(&any) {
                Some(any.clone())
            } else {
                None
            };
            if let Some(earlier) = masked_by {
                errors.push(
                    format!("resources[{i}].resources[{j}]"),
                    format!("resource \"{gr}\" is masked by earlier rule \"{earlier}\""),
                );
            }
        }
        seen.extend(rule.resources.iter());
    }
}

fn validate_provider(
    path: &str,
    raw: RawProviderConfiguration,
    kms_names: &mut HashSet<String>,
    errors: &mut Errors,
) -> Option<ProviderConfig> {
    let RawProviderConfiguration {
        aescbc,
        aesgcm,
        identity,
        kms,
        secretbox,
    } = raw;
    let present: Vec<&str> = [
        ("aescbc", aescbc.is_some()),
        ("aesgcm", aesgcm.is_some()),
        ("identity", identity.is_some()),
        ("kms", kms.is_some()),
        ("secretbox", secretbox.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if present.len() != 1 {
        let found = if present.is_empty() {
            "none".to_owned()
        } else {
            present.join(", ")
        };
        errors.push(
            path,
            format!(
                "exactly one of aescbc, aesgcm, identity, kms, secretbox is required; found {found}"
            ),
        );
        return None;
    }
    if let Some(keys) = aescbc {
        let keys = validate_keys(&format!("{path}.aescbc"), keys, AES_KEY_SIZES, errors)?;
        Some(ProviderConfig::AesCbc(keys))
    } else if let Some(keys) = aesgcm {
        let keys = validate_keys(&format!("{path}.aesgcm"), keys, AES_KEY_SIZES, errors)?;
        Some(ProviderConfig::AesGcm(keys))
    } else if let Some(keys) = secretbox {
        let keys = validate_keys(
            &format!("{path}.secretbox"),
            keys,
            SECRETBOX_KEY_SIZES,
            errors,
        )?;
        Some(ProviderConfig::Secretbox(keys))
    } else if let Some(kms) = kms {
        validate_kms(&format!("{path}.kms"), kms, kms_names, errors).map(ProviderConfig::Kms)
    } else {
        Some(ProviderConfig::Identity)
    }
}

fn validate_keys(
    path: &str,
    raw: RawKeysConfiguration,
    sizes: &[usize],
    errors: &mut Errors,
) -> Option<KeySet> {
    let before = errors.0.len();
    if raw.keys.is_empty() {
        errors.push(format!("{path}.keys"), "at least one key is required");
    }
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (k, RawKey { name, secret }) in raw.keys.into_iter().enumerate() {
        let key_path = format!("{path}.keys[{k}]");
        let name = match name {
            Some(name) if !name.is_empty() => Some(name),
            _ => {
                errors.push(format!("{key_path}.name"), "required; must not be empty");
                None
            }
        };
        let secret = match decode_key(secret.as_ref(), sizes) {
            Ok(secret) => Some(secret),
            Err(message) => {
                errors.push(format!("{key_path}.secret"), message);
                None
            }
        };
        if let (Some(name), Some(secret)) = (name, secret) {
            keys.push(NamedKey { name, secret });
        }
    }
    (errors.0.len() == before).then_some(KeySet { keys })
}

/// Decodes a key's standard (padded) base64 `secret` and checks its length. The error message
/// describes the expected form and at most the decoded length, never the value.
fn decode_key(secret: Option<&SecretText>, sizes: &[usize]) -> Result<KeyMaterial, String> {
    let expected = describe_sizes(sizes);
    let Some(secret) = secret
        .map(SecretText::expose_secret)
        .filter(|s| !s.is_empty())
    else {
        return Err(format!("required; expected standard base64 of {expected}"));
    };
    // Go's base64.StdEncoding ignores '\r' and '\n' and accepts non-zero trailing bits.
    let mut stripped = Zeroizing::new(String::new());
    let text = if secret.contains(['\r', '\n']) {
        // Reserve first so that the copy never reallocates and leaves unzeroized fragments.
        stripped.reserve_exact(secret.len());
        stripped.extend(secret.chars().filter(|c| !matches!(c, '\r' | '\n')));
        stripped.as_str()
    } else {
        secret
    };
    let mut buf = Zeroizing::new([0u8; MAX_DECODED_KEY]);
    let len = match BASE64_GO_STD.decode_slice(text, buf.as_mut_slice()) {
        Ok(len) => len,
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            return Err(format!(
                "expected standard base64 of {expected}; it decodes to more than \
                 {MAX_DECODED_KEY} bytes"
            ));
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => {
            return Err(format!(
                "expected standard base64 of {expected}; it is not valid standard base64"
            ));
        }
    };
    if !sizes.contains(&len) {
        return Err(format!(
            "expected standard base64 of {expected}; it decodes to {len} bytes"
        ));
    }
    Ok(KeyMaterial::new(Zeroizing::new(buf[..len].to_vec())))
}

fn describe_sizes(sizes: &[usize]) -> String {
    match sizes {
        [one] => format!("{one} bytes"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(usize::to_string).collect();
            format!("{} or {last} bytes", init.join(", "))
        }
        [] => "a key".to_owned(),
    }
}

fn validate_kms(
    path: &str,
    raw: RawKmsConfiguration,
    kms_names: &mut HashSet<String>,
    errors: &mut Errors,
) -> Option<KmsConfig> {
    let before = errors.0.len();
    let api_version = match raw.api_version.as_deref() {
        None | Some("" | "v1") => KmsApiVersion::V1,
        Some("v2") => KmsApiVersion::V2,
        Some(other) => {
            errors.push(
                format!("{path}.apiVersion"),
                format!("unsupported kms apiVersion {other:?}; expected v1 or v2"),
            );
            KmsApiVersion::V1
        }
    };

    let name = raw.name.unwrap_or_default();
    if name.is_empty() {
        errors.push(format!("{path}.name"), "required; must not be empty");
    } else {
        if api_version == KmsApiVersion::V2 && name.contains(':') {
            errors.push(
                format!("{path}.name"),
                format!("kms v2 provider name {name:?} must not contain ':'"),
            );
        }
        // As Kubernetes without automatic reload: a v2 name must differ from every earlier kms
        // name; v1 names may repeat.
        if api_version == KmsApiVersion::V2 && kms_names.contains(&name) {
            errors.push(
                format!("{path}.name"),
                format!("duplicate kms provider name {name:?}; kms v2 names must be unique"),
            );
        }
        kms_names.insert(name.clone());
    }

    let endpoint = raw.endpoint.unwrap_or_default();
    if endpoint.is_empty() {
        errors.push(
            format!("{path}.endpoint"),
            "required; expected unix:///path/to/socket",
        );
    } else if !endpoint
        .strip_prefix("unix:///")
        .is_some_and(|rest| !rest.is_empty() && rest != "@")
    {
        errors.push(
            format!("{path}.endpoint"),
            format!(
                "unsupported endpoint {endpoint:?}; expected unix:///path/to/socket or \
                 unix:///@abstract-name"
            ),
        );
    }

    let timeout = match raw.timeout.as_deref() {
        None => DEFAULT_KMS_TIMEOUT,
        Some(text) => match parse_go_duration(text) {
            Some(GoDuration::Positive(d)) => d,
            Some(GoDuration::NotPositive) => {
                errors.push(format!("{path}.timeout"), "must be greater than 0");
                DEFAULT_KMS_TIMEOUT
            }
            None => {
                errors.push(
                    format!("{path}.timeout"),
                    format!("invalid duration {text:?}; expected a duration such as 3s or 500ms"),
                );
                DEFAULT_KMS_TIMEOUT
            }
        },
    };

    let cache_size = match (api_version, raw.cache_size) {
        (KmsApiVersion::V2, None) => None,
        (KmsApiVersion::V2, Some(_)) => {
            errors.push(
                format!("{path}.cachesize"),
                "cachesize is not supported for kms v2; remove it",
            );
            None
        }
        (KmsApiVersion::V1, None) => Some(DEFAULT_KMS_V1_CACHE_SIZE),
        (KmsApiVersion::V1, Some(0)) => {
            errors.push(
                format!("{path}.cachesize"),
                "0 is invalid; expected a positive size, or a negative value to disable the cache",
            );
            None
        }
        (KmsApiVersion::V1, Some(n)) => match i32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(format!("{path}.cachesize"), "expected a 32-bit integer");
                None
            }
        },
    };

    (errors.0.len() == before).then_some(KmsConfig {
        api_version,
        name,
        endpoint,
        timeout,
        cache_size,
    })
}

enum GoDuration {
    NotPositive,
    Positive(Duration),
}

/// Parses Go `time.ParseDuration` syntax (`300ms`, `1.5h`, `2h45m`, `-3s`, `0`).
///
/// Returns `None` when the text is not a Go duration or overflows.
fn parse_go_duration(text: &str) -> Option<GoDuration> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(GoDuration::NotPositive);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after) => {
                let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(frac_len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut nanos = int_value.checked_mul(unit_nanos)?;
        // Fraction: take at most 18 digits, enough for nanosecond precision of hours.
        let mut scale: u128 = 1;
        let mut frac_value: u128 = 0;
        for digit in frac_part.bytes().take(18) {
            frac_value = frac_value * 10 + u128::from(digit - b'0');
            scale *= 10;
        }
        nanos = nanos.checked_add(frac_value * unit_nanos / scale)?;
        total_nanos = total_nanos.checked_add(nanos)?;
        rest = after;
    }
    // Go durations are int64 nanoseconds.
    if total_nanos > i64::MAX as u128 {
        return None;
    }
    if negative || total_nanos == 0 {
        return Some(GoDuration::NotPositive);
    }
    let nanos = u64::try_from(total_nanos).ok()?;
    Some(GoDuration::Positive(Duration::from_nanos(nanos)))
}

// === helpers ===

#[cfg(unix)]
fn check_mode(path: &Path, metadata: &std::fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;

    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), ConfigError> {
    Ok(())
}

fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xf)] as char);
    }
    out
}

/// Rewrites a YAML parser error without quoting the input (see the module docs).
fn syntax_error(source_name: &str, error: &serde_saphyr::Error) -> ConfigError {
    let (line, column) = error
        .location()
        .map_or((0, 0), |location| (location.line(), location.column()));
    ConfigError::Syntax {
        source_name: source_name.to_owned(),
        line,
        column,
        reason: safe_reason(error),
    }
}

fn safe_reason(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;

    match error {
        E::WithSnippet { error, .. } | E::AliasError { error, .. } => safe_reason(error),
        E::SerdeUnknownField {
            field, expected, ..
        } => format!(
            "unknown field {}; expected one of: {}",
            quote_field_name(field),
            expected.join(", ")
        ),
        E::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        E::SerdeInvalidType { expected, .. } => format!("invalid type; expected {expected}"),
        E::SerdeInvalidValue { expected, .. } => format!("invalid value; expected {expected}"),
        E::SerdeInvalidLength { expected, .. } => format!("invalid length; expected {expected}"),
        E::DuplicateMappingKey { key, .. } => match key {
            Some(key) => format!("duplicate key {}", quote_field_name(key)),
            None => "duplicate key".to_owned(),
        },
        E::Unexpected { expected, .. } => format!("expected {expected}"),
        E::NullIntoString { .. } => "expected a string, found null".to_owned(),
        E::InvalidScalar { ty, .. } => format!("invalid value; expected {ty}"),
        E::UnknownAnchor { .. } => "alias references an unknown anchor".to_owned(),
        E::Eof { .. } => "unexpected end of document".to_owned(),
        E::MultipleDocuments { .. } => {
            "expected a single document, found several separated by ---".to_owned()
        }
        E::InvalidUtf8Input => "the file is not valid UTF-8".to_owned(),
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            "the document exceeds the parser's size or alias limits".to_owned()
        }
        // The YAML scanner's messages are fixed texts that quote at most one character.
        E::ExternalMessage { msg, .. } if msg.len() <= MAX_PARSER_MESSAGE => {
            format!("malformed YAML or JSON: {msg}")
        }
        _ => "malformed YAML or JSON".to_owned(),
    }
}

/// Quotes an unknown key from the input only if it looks like a field name; see the module docs.
fn quote_field_name(field: &str) -> String {
    if (1..=MAX_ECHOED_FIELD_NAME).contains(&field.len())
        && field.bytes().all(|b| b.is_ascii_alphabetic())
    {
        format!("`{field}`")
    } else {
        "(name not shown)".to_owned()
    }
}

/// Go's `base64.StdEncoding`: standard alphabet, padding required, non-zero trailing bits
/// accepted.
const BASE64_GO_STD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

const API_VERSION: &str = "apiserver.config.k8s.io/v1";
const KIND: &str = "EncryptionConfiguration";
const LEGACY_API_VERSION: &str = "v1";
const LEGACY_KIND: &str = "EncryptionConfig";
const NON_REST_RESOURCES: &[&str] = &[
    "apiserveripinfo",
    "serviceipallocations",
    "servicenodeportallocations",
];
const AES_KEY_SIZES: &[usize] = &[16, 24, 32];
const SECRETBOX_KEY_SIZES: &[usize] = &[32];
/// Bigger than any valid key, so that an oversized key is reported with its length.
const MAX_DECODED_KEY: usize = 64;
const DEFAULT_KMS_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_KMS_V1_CACHE_SIZE: i32 = 1000;
/// Valid base64 of a 16-byte key is 24 characters, so no real secret fits.
const MAX_ECHOED_FIELD_NAME: usize = 20;
const MAX_PARSER_MESSAGE: usize = 80;
const MAX_CONFIG_BYTES: usize = 1 << 20;
const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests;
