//! Kubernetes-compatible auditing for Ward: the audit policy, `audit.k8s.io/v1` events and the
//! rotating JSON-lines audit log.
//!
//! - [`Policy`] reads kube-apiserver's `--audit-policy-file` ([`Policy::load`],
//!   [`Policy::from_bytes`]), decides each request's [`Level`] and omitted [`Stage`]s
//!   ([`Policy::evaluate`]) exactly as upstream, and [`Policy::sanitize`] rewrites it so that
//!   secret values can never be recorded. [`Policy::default_metadata`] is Ward's default.
//! - [`Event`] is one audit event, serialized byte for byte as kube-apiserver's; it refuses and
//!   scrubs secret bodies whatever the level.
//! - [`AuditLog`] appends events as JSON lines to a file rotated like kube-apiserver's
//!   `--audit-log-*` options, failing closed by default.
//!
//! This crate does no network IO and must never depend on the HTTP stack, storage or
//! `ward-api`: the server hands it plain request attributes and JSON bodies.
//!
//! ```
//! use std::time::SystemTime;
//! use ward_audit::{
//!     AuditLog, AuditLogOptions, Event, Level, ObjectReference, Policy, RequestAttributes,
//!     RequestMetadata, ResponseStatus, Stage, UserInfo,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut policy = Policy::from_bytes(
//!     br#"
//! apiVersion: audit.k8s.io/v1
//! kind: Policy
//! omitStages: [RequestReceived]
//! rules:
//!   - level: RequestResponse
//! "#,
//!     "policy.yaml",
//! )?;
//! // The catch-all rule would record secret bodies: a Metadata rule now precedes it.
//! let warnings = policy.sanitize();
//! assert_eq!(warnings.len(), 1);
//!
//! let groups = vec!["system:authenticated".to_owned()];
//! let attrs = RequestAttributes {
//!     user: "alice",
//!     groups: &groups,
//!     verb: "get",
//!     resource: "secrets",
//!     namespace: "default",
//!     name: "s1",
//!     resource_request: true,
//!     path: "/api/v1/namespaces/default/secrets/s1",
//!     ..Default::default()
//! };
//! let config = policy.evaluate(&attrs);
//! assert_eq!(config.level, Level::Metadata);
//!
//! let metadata = RequestMetadata {
//!     request_uri: "/api/v1/namespaces/default/secrets/s1".to_owned(),
//!     verb: "get".to_owned(),
//!     user: UserInfo { username: "alice".to_owned(), groups, ..Default::default() },
//!     source_ips: vec!["127.0.0.1".to_owned()],
//!     object_ref: Some(ObjectReference {
//!         resource: "secrets".to_owned(),
//!         namespace: "default".to_owned(),
//!         name: "s1".to_owned(),
//!         api_version: "v1".to_owned(),
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! };
//! let received = Event::new(metadata, &config, SystemTime::now());
//! let mut done = received.for_stage(Stage::ResponseComplete, SystemTime::now());
//! done.set_response_status(ResponseStatus::from_code(200));
//!
//! let dir = tempfile::tempdir()?;
//! let log = AuditLog::open(AuditLogOptions::new(dir.path().join("audit.log")))?;
//! log.write(&received)?; // omitted stage: nothing written
//! log.write(&done)?;
//! let text = std::fs::read_to_string(dir.path().join("audit.log"))?;
//! assert_eq!(text.lines().count(), 1);
//! assert!(text.contains(r#""stage":"ResponseComplete""#));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod error;
mod event;
mod log;
mod policy;
mod timefmt;

pub use error::{AuditError, FieldError, FieldErrors};
pub use event::{
    DECISION_ANNOTATION, Event, ObjectReference, REASON_ANNOTATION, RequestMetadata,
    ResponseStatus, UserInfo, new_audit_id,
};
pub use log::{AuditLog, AuditLogOptions};
pub use policy::{
    GroupResources, Level, Policy, PolicyRule, RequestAttributes, RequestAuditConfig, Stage,
    StageSet,
};
