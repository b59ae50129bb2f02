//! Audit events, serialized exactly as `audit.k8s.io/v1` `Event`.
//!
//! # Policy
//!
//! An [`Event`] is created once per request from the request's metadata and the
//! [`RequestAuditConfig`] the policy decided, then copied for each stage with
//! [`Event::for_stage`]. Its fields are private so that the rules below cannot be bypassed:
//!
//! - **Bodies follow the level.** [`Event::set_request_object`] keeps the body only at
//!   `Request` or above and [`Event::set_response_object`] only at `RequestResponse`, and only
//!   for resource requests (the event has an `objectRef`), as upstream.
//! - **Never a secret's body.** For a request on `secrets` (core group, any subresource) both
//!   bodies are dropped, whatever the level: [`crate::Policy::sanitize`] should already have
//!   capped the level, and this is the second line of defence.
//! - **Secret fields are stripped from every body.** Before a body is kept, every object in it
//!   (at any depth: list items, table rows, watch events) is scrubbed by kind: `Secret` loses
//!   `data` and `stringData`, `ConfigMap` loses `data` and `binaryData`, `TokenRequest` loses
//!   `status.token`, `TokenReview` loses `spec.token`. Items of a `SecretList`,
//!   `ConfigMapList`, ... are scrubbed as their element kind (list items carry no `kind`), and
//!   the top-level body of a request on `configmaps`, `serviceaccounts/token` or `tokenreviews`
//!   is scrubbed as that kind even when it has no `kind` field.
//! - `omitManagedFields` drops `metadata.managedFields` from the body and from its `items`.
//!
//! Serialization follows the Go struct: field order as in `types.go`, empty optional fields
//! omitted, `responseStatus.metadata` always `{}`, timestamps as `MicroTime`
//! (`2006-01-02T15:04:05.000000Z`), annotation and `extra` keys sorted as Go sorts map keys.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::policy::{Level, RequestAuditConfig, Stage};
use crate::timefmt;

/// The annotation key upstream's authorization filter sets to `allow` or `forbid`.
pub const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
/// The annotation key upstream's authorization filter sets to the authorizer's reason.
pub const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

/// A new random audit ID (a UUID v4), for requests without an `Audit-ID` header.
pub fn new_audit_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A user, as `authentication.k8s.io/v1` `UserInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// The user name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// A unique identifier of the user, if the authenticator provides one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The user's groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Additional information from the authenticator.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The object a request targets (`audit.k8s.io/v1` `ObjectReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// The resource, e.g. `secrets`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// The namespace; empty for cluster-scoped resources.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The object name; empty for collections.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's UID, if known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The API group; empty for the core group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// The API version, e.g. `v1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The object's resourceVersion, if known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// The subresource, e.g. `token`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The response status (a `meta/v1` `Status`), as recorded in `responseStatus`.
///
/// For a success upstream records only the code: use [`ResponseStatus::from_code`]. When the
/// response is itself a `Status` (errors, deletes), use [`ResponseStatus::from_status`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseStatus {
    /// `Success` or `Failure`; empty to omit.
    pub status: String,
    /// A human-readable description; empty to omit.
    pub message: String,
    /// A machine-readable reason such as `NotFound`; empty to omit.
    pub reason: String,
    /// The `details` object, if any.
    pub details: Option<Value>,
    /// The HTTP status code; 0 to omit.
    pub code: i32,
}

impl ResponseStatus {
    /// The status of a response that is not a `Status` object: only the code.
    pub fn from_code(code: u16) -> Self {
        Self {
            code: i32::from(code),
            ..Self::default()
        }
    }

    /// The status recorded for a response that is a `meta/v1` `Status` object: its `status`,
    /// `message`, `reason`, `details` and `code`. Fields of the wrong type are ignored; `code`
    /// falls back to `http_code` when absent.
    pub fn from_status(status: &Value, http_code: u16) -> Self {
        let text = |key: &str| {
            status
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let code = status
            .get("code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(i32::from(http_code));
        Self {
            status: text("status"),
            message: text("message"),
            reason: text("reason"),
            details: status.get("details").filter(|d| d.is_object()).cloned(),
            code,
        }
    }
}

impl Serialize for ResponseStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            metadata: EmptyObject,
            #[serde(skip_serializing_if = "str::is_empty")]
            status: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            message: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            reason: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a Value>,
            #[serde(skip_serializing_if = "is_zero")]
            code: i32,
        }
        Wire {
            metadata: EmptyObject {},
            status: &self.status,
            message: &self.message,
            reason: &self.reason,
            details: self.details.as_ref(),
            code: self.code,
        }
        .serialize(serializer)
    }
}

/// What is known about a request when it arrives: everything in an event but the level,
/// stage, timestamps, status, bodies and annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMetadata {
    /// The audit ID: the client's `Audit-ID` header if it sent one; if empty, [`Event::new`]
    /// generates one.
    pub audit_id: String,
    /// The path and query, as the client sent them.
    pub request_uri: String,
    /// The Kubernetes verb; for non-resource requests the lower-cased HTTP method.
    pub verb: String,
    /// The authenticated user.
    pub user: UserInfo,
    /// The user being impersonated, if any.
    pub impersonated_user: Option<UserInfo>,
    /// `X-Forwarded-For` entries, then `X-Real-Ip`, then the remote address.
    pub source_ips: Vec<String>,
    /// The client's `User-Agent`.
    pub user_agent: String,
    /// The target object of a resource request; `None` for non-resource requests.
    pub object_ref: Option<ObjectReference>,
}

/// One audit event (`audit.k8s.io/v1` `Event`). See the module docs for what it records.
#[derive(Clone, Debug)]
pub struct Event {
    config: RequestAuditConfig,
    stage: Stage,
    metadata: RequestMetadata,
    response_status: Option<ResponseStatus>,
    request_object: Option<Value>,
    response_object: Option<Value>,
    request_received: SystemTime,
    stage_timestamp: SystemTime,
    annotations: BTreeMap<String, String>,
}

impl Event {
    /// The `RequestReceived` event of a request received at `received`, at the level the policy
    /// decided. Generates an audit ID if `metadata.audit_id` is empty.
    pub fn new(
        mut metadata: RequestMetadata,
        config: &RequestAuditConfig,
        received: SystemTime,
    ) -> Self {
        if metadata.audit_id.is_empty() {
            metadata.audit_id = new_audit_id();
        }
        Self {
            config: *config,
            stage: Stage::RequestReceived,
            metadata,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received: received,
            stage_timestamp: received,
            annotations: BTreeMap::new(),
        }
    }

    /// A copy of this event for `stage`, stamped `now`.
    pub fn for_stage(&self, stage: Stage, now: SystemTime) -> Self {
        let mut event = self.clone();
        event.stage = stage;
        event.stage_timestamp = now;
        event
    }

    /// Whether the policy records this event: its level is not `None` and its stage is not
    /// omitted. [`crate::AuditLog::write`] skips events that are not recorded.
    pub fn is_recorded(&self) -> bool {
        self.config.records(self.stage)
    }

    /// The level.
    pub fn level(&self) -> Level {
        self.config.level
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The audit ID (also sent to the client in the `Audit-Id` response header).
    pub fn audit_id(&self) -> &str {
        &self.metadata.audit_id
    }

    /// The request metadata.
    pub fn metadata(&self) -> &RequestMetadata {
        &self.metadata
    }

    /// Records the response status.
    pub fn set_response_status(&mut self, status: ResponseStatus) {
        self.response_status = Some(status);
    }

    /// Adds an annotation. As upstream, an existing key keeps its first value; returns `false`
    /// if the key was already set.
    pub fn annotate(&mut self, key: impl Into<String>, value: impl Into<String>) -> bool {
        match self.annotations.entry(key.into()) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(value.into());
                true
            }
            std::collections::btree_map::Entry::Occupied(_) => false,
        }
    }

    /// Records the request body (JSON), if the level is `Request` or above and the request is a
    /// resource request on anything but secrets; scrubbed as the module docs describe.
    pub fn set_request_object(&mut self, object: Value) {
        self.request_object = self.admit_body(object, Level::Request);
    }

    /// Records the response body (JSON), if the level is `RequestResponse` and the request is
    /// a resource request on anything but secrets; scrubbed as the module docs describe.
    pub fn set_response_object(&mut self, object: Value) {
        self.response_object = self.admit_body(object, Level::RequestResponse);
    }

    /// The recorded request body, if any.
    pub fn request_object(&self) -> Option<&Value> {
        self.request_object.as_ref()
    }

    /// The recorded response body, if any.
    pub fn response_object(&self) -> Option<&Value> {
        self.response_object.as_ref()
    }

    fn admit_body(&self, mut object: Value, min_level: Level) -> Option<Value> {
        if self.config.level < min_level {
            return None;
        }
        let target = self.metadata.object_ref.as_ref()?;
        if target.api_group.is_empty() && target.resource == "secrets" {
            return None;
        }
        if let Some(kind) = implied_kind(target) {
            scrub_as(&mut object, kind);
        }
        scrub(&mut object);
        if self.config.omit_managed_fields {
            drop_managed_fields(&mut object);
        }
        Some(object)
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            kind: &'static str,
            api_version: &'static str,
            level: Level,
            #[serde(rename = "auditID")]
            audit_id: &'a str,
            stage: Stage,
            #[serde(rename = "requestURI")]
            request_uri: &'a str,
            verb: &'a str,
            user: &'a UserInfo,
            #[serde(skip_serializing_if = "Option::is_none")]
            impersonated_user: Option<&'a UserInfo>,
            #[serde(rename = "sourceIPs", skip_serializing_if = "<[String]>::is_empty")]
            source_ips: &'a [String],
            #[serde(skip_serializing_if = "str::is_empty")]
            user_agent: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            object_ref: Option<&'a ObjectReference>,
            #[serde(skip_serializing_if = "Option::is_none")]
            response_status: Option<&'a ResponseStatus>,
            #[serde(skip_serializing_if = "Option::is_none")]
            request_object: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            response_object: Option<&'a Value>,
            request_received_timestamp: String,
            stage_timestamp: String,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            annotations: &'a BTreeMap<String, String>,
        }
        let m = &self.metadata;
        Wire {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: self.config.level,
            audit_id: &m.audit_id,
            stage: self.stage,
            request_uri: &m.request_uri,
            verb: &m.verb,
            user: &m.user,
            impersonated_user: m.impersonated_user.as_ref(),
            source_ips: &m.source_ips,
            user_agent: &m.user_agent,
            object_ref: m.object_ref.as_ref(),
            response_status: self.response_status.as_ref(),
            request_object: self.request_object.as_ref(),
            response_object: self.response_object.as_ref(),
            request_received_timestamp: timefmt::micro_time(self.request_received),
            stage_timestamp: timefmt::micro_time(self.stage_timestamp),
            annotations: &self.annotations,
        }
        .serialize(serializer)
    }
}

// === helpers ===

#[derive(Serialize)]
struct EmptyObject {}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

/// A kind whose objects hold credentials, and the fields that hold them.
#[derive(Clone, Copy)]
enum SensitiveKind {
    ConfigMap,
    Secret,
    TokenRequest,
    TokenReview,
}

impl SensitiveKind {
    fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "ConfigMap" => Some(Self::ConfigMap),
            "Secret" => Some(Self::Secret),
            "TokenRequest" => Some(Self::TokenRequest),
            "TokenReview" => Some(Self::TokenReview),
            _ => None,
        }
    }
}

/// The kind of a request's top-level body, from its target, for bodies sent without `kind`.
fn implied_kind(target: &ObjectReference) -> Option<SensitiveKind> {
    match (
        target.api_group.as_str(),
        target.resource.as_str(),
        target.subresource.as_str(),
    ) {
        ("", "configmaps", _) => Some(SensitiveKind::ConfigMap),
        ("", "secrets", _) => Some(SensitiveKind::Secret),
        ("", "serviceaccounts", "token") => Some(SensitiveKind::TokenRequest),
        ("authentication.k8s.io", "tokenreviews", _) => Some(SensitiveKind::TokenReview),
        _ => None,
    }
}

/// Removes the credential fields of `kind` from `value` (if it is an object), and, for a list
/// body, from each of its items. Lists do not nest, so this looks one level down only.
fn scrub_as(value: &mut Value, kind: SensitiveKind) {
    let Some(object) = value.as_object_mut() else {
        return;
    };
    scrub_fields(object, kind);
    scrub_items(object, kind);
}

fn scrub_items(object: &mut serde_json::Map<String, Value>, kind: SensitiveKind) {
    if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            scrub_fields(item, kind);
        }
    }
}

fn scrub_fields(object: &mut serde_json::Map<String, Value>, kind: SensitiveKind) {
    match kind {
        SensitiveKind::ConfigMap => {
            object.remove("data");
            object.remove("binaryData");
        }
        SensitiveKind::Secret => {
            object.remove("data");
            object.remove("stringData");
        }
        SensitiveKind::TokenRequest => {
            if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
                status.remove("token");
            }
        }
        SensitiveKind::TokenReview => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("token");
            }
        }
    }
}

/// Scrubs every object in `value`, at any depth, by its `kind` (and list items by their list's
/// element kind). Iterative, so a deeply nested body cannot overflow the stack.
fn scrub(value: &mut Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                let kind = object.get("kind").and_then(Value::as_str);
                let own = kind.and_then(SensitiveKind::from_kind);
                let element = kind
                    .and_then(|k| k.strip_suffix("List"))
                    .and_then(SensitiveKind::from_kind);
                if let Some(kind) = own {
                    scrub_fields(object, kind);
                }
                if let Some(kind) = element {
                    scrub_items(object, kind);
                }
                stack.extend(object.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// Upstream's `removeManagedFields`: from the object's metadata, and from each list item's.
fn drop_managed_fields(value: &mut Value) {
    let Some(object) = value.as_object_mut() else {
        return;
    };
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if let Some(metadata) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("managedFields");
            }
        }
    }
}
