//! The audit policy: which requests are recorded, at which level, in which stages.
//!
//! # Format
//!
//! The file is kube-apiserver's `--audit-policy-file`: `kind: Policy` in `audit.k8s.io/v1`
//! (`audit.k8s.io/v1beta1` is accepted too; its `Policy` has the same fields), as YAML or JSON.
//! It is read in two steps: serde reads the shape (unknown fields are errors, unlike
//! kube-apiserver, which ignores them), then every rule is checked as kube-apiserver's
//! `ValidatePolicy` does and all the violations are reported at once. Errors name the file and
//! the path of the field, e.g. `rules[2].resources[0].group`. A `null` list is an empty list, as
//! in Go.
//!
//! # Matching
//!
//! Exactly upstream's `policy.Checker`: rules are tried in order and the **first match wins**;
//! with no match the level is `None`. Within a rule every non-empty field must match (an empty
//! list means "any"):
//! - `users`: the user name is listed; `userGroups`: one of the user's groups is listed;
//!   `verbs`: the verb is listed;
//! - `namespaces` or `resources` set: only resource requests match. `namespaces` lists the
//!   namespace (`""` is a cluster-scoped request); each `resources[]` entry needs its `group`
//!   equal to the request's (`""` is the core group) and, if `resources` is set, one entry
//!   equal to `resource` or `resource/subresource`, or `*` (anything), `*/sub` (that
//!   subresource of any resource), `resource/*` (that resource and all its subresources);
//!   `resourceNames`, if set, must list the object's name;
//! - otherwise `nonResourceURLs` set: only non-resource requests match, whose path equals an
//!   entry, or starts with an entry's text before a trailing `*`, or the entry is `*`;
//! - a rule with none of these matches every request.
//!
//! `omitStages` of the policy and of the matching rule are united. A rule's `omitManagedFields`
//! overrides the policy's.
//!
//! # Ward's default
//!
//! kube-apiserver records nothing without a policy file. Ward records every request at
//! `Metadata` ([`Policy::default_metadata`]): who did what to which object and with what result,
//! never a body. The `RequestReceived` stage is omitted: every request also produces a
//! `ResponseComplete` (or `Panic`) event carrying the same metadata plus the response code, so
//! the first event would double the log's volume for no information. Long-running requests
//! (watch) still get `ResponseStarted`.
//!
//! # Secrets
//!
//! A policy that records `Request` or `RequestResponse` bodies of secrets would write their
//! values into the audit log. [`Policy::sanitize`] rewrites such a policy so that secrets,
//! configmaps, token reviews and token requests are recorded at `Metadata` at most; the audit
//! [`crate::Event`] also refuses secret bodies and strips secret fields whatever the policy.

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{AuditError, FieldError, FieldErrors};

mod sanitize;

/// How much of a request is recorded (`audit.k8s.io/v1` `Level`).
///
/// The variants are in increasing order of detail, not alphabetical, so that `Ord` compares
/// levels as kube-apiserver's `Level.Less` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Nothing is recorded.
    None,
    /// Request metadata (user, verb, object reference, response code, annotations) but no body.
    Metadata,
    /// Metadata and the request body (resource requests only).
    Request,
    /// Metadata, the request body and the response body (resource requests only).
    RequestResponse,
}

impl Level {
    /// The name used in policies and events, e.g. `"RequestResponse"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Metadata => "Metadata",
            Self::Request => "Request",
            Self::RequestResponse => "RequestResponse",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point in handling a request at which an event can be recorded (`audit.k8s.io/v1` `Stage`).
///
/// The variants are in the order a request passes through them, not alphabetical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// As soon as the request is received, before it is handled.
    RequestReceived,
    /// Once the response headers are sent; only for long-running requests such as watch.
    ResponseStarted,
    /// Once the response body is complete.
    ResponseComplete,
    /// When handling the request panicked.
    Panic,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 4] = [
        Stage::RequestReceived,
        Stage::ResponseStarted,
        Stage::ResponseComplete,
        Stage::Panic,
    ];

    /// The name used in policies and events, e.g. `"ResponseComplete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestReceived => "RequestReceived",
            Self::ResponseStarted => "ResponseStarted",
            Self::ResponseComplete => "ResponseComplete",
            Self::Panic => "Panic",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::RequestReceived => 1,
            Self::ResponseStarted => 2,
            Self::ResponseComplete => 4,
            Self::Panic => 8,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Stage`]s, such as the stages a request's events omit.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StageSet(u8);

impl StageSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether `stage` is in the set.
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }

    /// Adds `stage` to the set.
    pub fn insert(&mut self, stage: Stage) {
        self.0 |= stage.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stages in the set, in [`Stage::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Self {
        let mut set = Self::empty();
        for stage in iter {
            set.insert(stage);
        }
        set
    }
}

impl<'a> FromIterator<&'a Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = &'a Stage>>(iter: I) -> Self {
        iter.into_iter().copied().collect()
    }
}

impl fmt::Debug for StageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Resources of one API group that a rule matches (`audit.k8s.io/v1` `GroupResources`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupResources {
    /// The API group; `""` is the core group.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub group: String,
    /// Resources, `resource/subresource`, `*`, `*/subresource` or `resource/*`; empty matches
    /// every resource of the group.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    /// Object names; empty matches every name. Requires `resources`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_names: Vec<String>,
}

/// One rule of a policy (`audit.k8s.io/v1` `PolicyRule`). See the module docs for matching.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyRule {
    /// The level of the requests this rule matches.
    pub level: Level,
    /// User names; empty matches every user.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub users: Vec<String>,
    /// Groups, any of which the user must be in; empty matches every user.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub user_groups: Vec<String>,
    /// Verbs; empty matches every verb.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub verbs: Vec<String>,
    /// Resources; empty matches every resource (and, with `namespaces` empty too, non-resource
    /// requests).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<GroupResources>,
    /// Namespaces; `""` matches cluster-scoped requests; empty matches every namespace.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub namespaces: Vec<String>,
    /// Non-resource URL paths, each `*`, an exact path, or a path prefix ending in `*`.
    #[serde(
        rename = "nonResourceURLs",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
    /// Stages for which no event is recorded, in addition to the policy's.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub omit_stages: Vec<Stage>,
    /// Whether to drop `metadata.managedFields` from recorded bodies; `None` uses the
    /// policy's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_managed_fields: Option<bool>,
}

impl PolicyRule {
    /// A rule at `level` that matches every request.
    pub fn new(level: Level) -> Self {
        Self {
            level,
            users: Vec::new(),
            user_groups: Vec::new(),
            verbs: Vec::new(),
            resources: Vec::new(),
            namespaces: Vec::new(),
            non_resource_urls: Vec::new(),
            omit_stages: Vec::new(),
            omit_managed_fields: None,
        }
    }

    /// Whether this rule matches a request, exactly as upstream's `ruleMatches`.
    pub fn matches(&self, attrs: &RequestAttributes<'_>) -> bool {
        if !self.users.is_empty() && !contains(&self.users, attrs.user) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !attrs.groups.iter().any(|g| contains(&self.user_groups, g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !contains(&self.verbs, attrs.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(attrs);
        }
        if !self.non_resource_urls.is_empty() {
            return !attrs.resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(attrs.path, spec));
        }
        true
    }

    fn matches_resource(&self, attrs: &RequestAttributes<'_>) -> bool {
        if !attrs.resource_request {
            return false;
        }
        if !self.namespaces.is_empty() && !contains(&self.namespaces, attrs.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        self.resources.iter().any(|gr| {
            gr.group == attrs.api_group
                && (gr.resources.is_empty()
                    || ((gr.resource_names.is_empty() || contains(&gr.resource_names, attrs.name))
                        && gr.resources.iter().any(|pattern| {
                            resource_matches(pattern, attrs.resource, attrs.subresource)
                        })))
        })
    }

    /// Whether the rule can match only non-resource requests.
    fn non_resource_only(&self) -> bool {
        self.namespaces.is_empty()
            && self.resources.is_empty()
            && !self.non_resource_urls.is_empty()
    }
}

/// The request attributes a policy is evaluated against (upstream's `authorizer.Attributes`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestAttributes<'a> {
    /// The authenticated user name (`""` if none).
    pub user: &'a str,
    /// The authenticated user's groups.
    pub groups: &'a [String],
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, ...); for non-resource requests
    /// the lower-cased HTTP method.
    pub verb: &'a str,
    /// The API group; `""` is the core group.
    pub api_group: &'a str,
    /// The resource, e.g. `pods`.
    pub resource: &'a str,
    /// The subresource, e.g. `log`, or `""`.
    pub subresource: &'a str,
    /// The namespace; `""` for cluster-scoped requests.
    pub namespace: &'a str,
    /// The object name; `""` for collections.
    pub name: &'a str,
    /// Whether this is a request for an API resource (rather than e.g. `/healthz`).
    pub resource_request: bool,
    /// The URL path.
    pub path: &'a str,
}

/// What a policy decided for one request (upstream's `RequestAuditConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestAuditConfig {
    /// The level to record the request at.
    pub level: Level,
    /// The stages for which no event is recorded (the policy's and the rule's, united).
    pub omit_stages: StageSet,
    /// Whether to drop `metadata.managedFields` from recorded bodies.
    pub omit_managed_fields: bool,
}

impl RequestAuditConfig {
    /// Whether an event is recorded at `stage`: the level is not `None` and the stage is not
    /// omitted.
    pub fn records(&self, stage: Stage) -> bool {
        self.level != Level::None && !self.omit_stages.contains(stage)
    }
}

/// A validated audit policy (`audit.k8s.io/v1` `Policy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<PolicyRule>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

impl Policy {
    /// Reads and validates the policy file at `path`.
    ///
    /// # Errors
    ///
    /// - [`AuditError::Read`] if the file cannot be opened or read;
    /// - the errors of [`Policy::from_bytes`], naming `path`.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let read_error = |source| AuditError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_POLICY_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses and validates a policy from its file content (YAML or JSON). `source_name`
    /// (usually the path) is used only in error messages.
    ///
    /// # Errors
    ///
    /// - [`AuditError::TooLarge`] if `bytes` is larger than 4 MiB;
    /// - [`AuditError::Empty`] if it holds no document;
    /// - [`AuditError::Syntax`] if it is not a YAML or JSON mapping (or holds several
    ///   documents);
    /// - [`AuditError::Shape`] if a field is unknown, has the wrong type or bad syntax, or is a
    ///   level or stage that does not exist, or `level` is missing;
    /// - [`AuditError::Invalid`] listing every rule the policy breaks: wrong `apiVersion` or
    ///   `kind`, no rules, malformed `nonResourceURLs`, a rule with both resources and
    ///   non-resource URLs, a group that is not a DNS subdomain, `resourceNames` without
    ///   `resources`.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Self, AuditError> {
        let source_name = source_name.to_owned();
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(AuditError::TooLarge {
                source_name,
                limit: MAX_POLICY_BYTES,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(AuditError::Empty { source_name });
        }
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        // Deserialize straight into the typed structs, so that a plain scalar meant as a string
        // stays a string (`resourceNames: [n]` is "n", not `false`), as sigs.k8s.io/yaml does;
        // `track` records the path of the field being read when an error happens.
        let mut track = serde_path_to_error::Track::new();
        let parsed = serde_saphyr::with_deserializer_from_slice_with_options(
            bytes,
            options,
            |deserializer| {
                Option::<RawPolicy>::deserialize(serde_path_to_error::Deserializer::new(
                    deserializer,
                    &mut track,
                ))
            },
        );
        let raw = match parsed {
            Ok(Some(raw)) => raw,
            Ok(None) => return Err(AuditError::Empty { source_name }),
            Err(error) => return Err(parse_error(source_name, &track.path(), &error)),
        };

        let mut errors = Vec::new();
        match raw.api_version.as_deref() {
            Some(API_VERSION | API_VERSION_V1BETA1) => {}
            Some(other) => errors.push(FieldError::new(
                "apiVersion",
                format!("unsupported value {other:?}; expected {API_VERSION:?} or {API_VERSION_V1BETA1:?}"),
            )),
            None => errors.push(FieldError::new(
                "apiVersion",
                format!("required; expected {API_VERSION:?}"),
            )),
        }
        match raw.kind.as_deref() {
            Some(KIND) => {}
            Some(other) => errors.push(FieldError::new(
                "kind",
                format!("unsupported value {other:?}; expected {KIND:?}"),
            )),
            None => errors.push(FieldError::new(
                "kind",
                format!("required; expected {KIND:?}"),
            )),
        }
        let policy = Self {
            rules: raw.rules,
            omit_stages: raw.omit_stages,
            omit_managed_fields: raw.omit_managed_fields.unwrap_or(false),
        };
        policy.validate(&mut errors);
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(AuditError::Invalid {
                source_name,
                errors: FieldErrors(errors),
            })
        }
    }

    /// Builds a policy from rules made in code, validating them as [`Policy::from_bytes`] does.
    ///
    /// # Errors
    ///
    /// [`AuditError::Invalid`] (with source name `<policy>`) listing every rule broken.
    pub fn from_parts(
        rules: Vec<PolicyRule>,
        omit_stages: Vec<Stage>,
        omit_managed_fields: bool,
    ) -> Result<Self, AuditError> {
        let policy = Self {
            rules,
            omit_stages,
            omit_managed_fields,
        };
        let mut errors = Vec::new();
        policy.validate(&mut errors);
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(AuditError::Invalid {
                source_name: "<policy>".to_owned(),
                errors: FieldErrors(errors),
            })
        }
    }

    /// Ward's default policy: every request at `Metadata`, the `RequestReceived` stage omitted
    /// (see the module docs for why). Records no body, so it needs no sanitizing.
    pub fn default_metadata() -> Self {
        Self {
            rules: vec![PolicyRule::new(Level::Metadata)],
            omit_stages: vec![Stage::RequestReceived],
            omit_managed_fields: false,
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// The stages omitted for every request.
    pub fn omit_stages(&self) -> &[Stage] {
        &self.omit_stages
    }

    /// Whether `metadata.managedFields` is dropped from bodies, unless a rule says otherwise.
    pub fn omit_managed_fields(&self) -> bool {
        self.omit_managed_fields
    }

    /// Decides the level, omitted stages and managed-fields handling of a request: the first
    /// matching rule's, or `None` with the policy's stages if no rule matches.
    pub fn evaluate(&self, attrs: &RequestAttributes<'_>) -> RequestAuditConfig {
        let policy_stages: StageSet = self.omit_stages.iter().collect();
        for rule in &self.rules {
            if rule.matches(attrs) {
                let mut omit_stages = policy_stages;
                rule.omit_stages.iter().for_each(|s| omit_stages.insert(*s));
                return RequestAuditConfig {
                    level: rule.level,
                    omit_stages,
                    omit_managed_fields: rule
                        .omit_managed_fields
                        .unwrap_or(self.omit_managed_fields),
                };
            }
        }
        RequestAuditConfig {
            level: Level::None,
            omit_stages: policy_stages,
            omit_managed_fields: self.omit_managed_fields,
        }
    }

    /// The policy as `audit.k8s.io/v1` JSON, e.g. to log the policy in force after
    /// [`Policy::sanitize`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "rules": self.rules,
            "omitStages": self.omit_stages,
            "omitManagedFields": self.omit_managed_fields,
        })
    }

    /// Checks every rule as upstream's `ValidatePolicy` does, plus "at least one rule" (upstream's
    /// policy reader) and valid policy-level stages (guaranteed by the type).
    fn validate(&self, errors: &mut Vec<FieldError>) {
        if self.rules.is_empty() {
            errors.push(FieldError::new(
                "rules",
                "a policy needs at least one rule (kube-apiserver refuses a policy with none)",
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let path = format!("rules[{i}]");
            for (j, url) in rule.non_resource_urls.iter().enumerate() {
                if url == "*" {
                    continue;
                }
                if !url.starts_with('/') {
                    errors.push(FieldError::new(
                        format!("{path}.nonResourceURLs[{j}]"),
                        format!("{url:?}: non-resource URL rules must begin with a '/' character"),
                    ));
                }
                let bytes = url.as_bytes();
                if bytes.len() > 1 && bytes[..bytes.len() - 1].contains(&b'*') {
                    errors.push(FieldError::new(
                        format!("{path}.nonResourceURLs[{j}]"),
                        format!(
                            "{url:?}: non-resource URL wildcards '*' must be the final character \
                             of the rule"
                        ),
                    ));
                }
            }
            if !rule.non_resource_urls.is_empty()
                && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
            {
                errors.push(FieldError::new(
                    format!("{path}.nonResourceURLs"),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            for (j, gr) in rule.resources.iter().enumerate() {
                if !gr.group.is_empty() && !is_dns_subdomain(&gr.group) {
                    errors.push(FieldError::new(
                        format!("{path}.resources[{j}].group"),
                        format!(
                            "{:?}: an API group must be a lower-case DNS subdomain such as \
                             \"rbac.authorization.k8s.io\" (no version)",
                            gr.group
                        ),
                    ));
                }
                if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                    errors.push(FieldError::new(
                        format!("{path}.resources[{j}].resourceNames"),
                        "using resourceNames requires at least one resource",
                    ));
                }
            }
        }
    }
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

// === helpers ===

/// The document as serde reads it, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    /// `ObjectMeta`, accepted for compatibility and ignored.
    #[serde(default, rename = "metadata")]
    _metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    rules: Vec<PolicyRule>,
    #[serde(default, deserialize_with = "nullable")]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

/// A parse error: [`AuditError::Shape`] naming the field if the parser was inside one,
/// [`AuditError::Syntax`] otherwise.
fn parse_error(
    source_name: String,
    path: &serde_path_to_error::Path,
    error: &serde_saphyr::Error,
) -> AuditError {
    let (line, column) = error
        .location()
        .map_or((0, 0), |location| (location.line(), location.column()));
    let reason = match error {
        // The parser's own text suggests a function of its API.
        serde_saphyr::Error::MultipleDocuments { .. } => {
            "expected a single document, found several separated by ---".to_owned()
        }
        _ => error.to_string(),
    };
    // The location is reported separately.
    let reason = match reason.strip_suffix(&format!(" at line {line}, column {column}")) {
        Some(stripped) => stripped.to_owned(),
        None => reason,
    };
    let field = path.to_string();
    if field == "." {
        AuditError::Syntax {
            source_name,
            line,
            column,
            reason,
        }
    } else {
        AuditError::Shape {
            source_name,
            field,
            line,
            column,
            reason,
        }
    }
}

/// Reads `null` as the default value, as Go's JSON decoder does for slices and strings.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

fn contains(list: &[String], value: &str) -> bool {
    list.iter().any(|s| s == value)
}

/// Upstream's `pathMatches`.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || (spec.ends_with('*') && path.starts_with(spec.trim_end_matches('*')))
}

/// Upstream's matching of one `resources` entry against `resource` and `subresource`.
pub(crate) fn resource_matches(pattern: &str, resource: &str, subresource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let exact = if subresource.is_empty() {
        pattern == resource
    } else {
        pattern
            .strip_prefix(resource)
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(subresource)
    };
    exact
        || (!subresource.is_empty() && pattern.strip_prefix("*/") == Some(subresource))
        || pattern.strip_suffix("/*") == Some(resource)
}

/// Kubernetes' `IsDNS1123Subdomain`: at most 253 characters, dot-separated labels of lower-case
/// letters, digits and `-`, each starting and ending with a letter or digit.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

const API_VERSION: &str = "audit.k8s.io/v1";
const API_VERSION_V1BETA1: &str = "audit.k8s.io/v1beta1";
const KIND: &str = "Policy";
const MAX_POLICY_BYTES: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_patterns_match_as_upstream() {
        let cases = [
            ("pods", "pods", "", true),
            ("pods", "pods", "log", false),
            ("pods/log", "pods", "log", true),
            ("pods/log", "pods", "", false),
            ("*", "pods", "log", true),
            ("*/log", "pods", "log", true),
            ("*/log", "pods", "", false),
            ("*/", "pods", "", false),
            ("pods/*", "pods", "log", true),
            // Upstream compares only the resource for `resource/*`, so it matches the bare
            // resource too.
            ("pods/*", "pods", "", true),
            ("pods/*", "podsx", "log", false),
            ("*/*", "pods", "log", false),
            ("podslog", "pods", "log", false),
            ("pods-log", "pods", "log", false),
        ];
        for (pattern, resource, subresource, want) in cases {
            assert_eq!(
                resource_matches(pattern, resource, subresource),
                want,
                "{pattern} vs {resource}/{subresource}"
            );
        }
    }

    #[test]
    fn paths_match_as_upstream() {
        assert!(path_matches("/logs/kubelet.log", "/logs*"));
        assert!(path_matches("/logs", "/logs*"));
        assert!(path_matches("/anything", "*"));
        assert!(path_matches("/metrics", "/metrics"));
        assert!(!path_matches("/metricsx", "/metrics"));
        assert!(!path_matches("/log", "/logs*"));
    }

    #[test]
    fn dns_subdomains() {
        for good in ["apps", "rbac.authorization.k8s.io", "a-b.c1"] {
            assert!(is_dns_subdomain(good), "{good}");
        }
        for bad in [
            "",
            "Apps",
            "rbac.authorization.k8s.io/v1",
            "-a",
            "a-",
            "a..b",
            "*",
        ] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn stage_set() {
        let mut set = StageSet::empty();
        assert!(set.is_empty());
        set.insert(Stage::Panic);
        set.insert(Stage::RequestReceived);
        assert!(set.contains(Stage::Panic));
        assert!(!set.contains(Stage::ResponseComplete));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Stage::RequestReceived, Stage::Panic]
        );
        assert_eq!(format!("{set:?}"), "{RequestReceived, Panic}");
    }
}
