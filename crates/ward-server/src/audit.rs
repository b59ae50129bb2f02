//! Auditing requests: `audit.k8s.io/v1` events to a rotating JSON-lines log.
//!
//! The policy (`--audit-policy-file`, default: every request at Metadata) is sanitized at start so
//! that nothing can log Secret values: rules that would record bodies of secrets, configmaps,
//! token requests or token reviews are downgraded to Metadata for them, with a warning. Bodies
//! that are recorded are scrubbed again by `ward_audit` whatever the level.
//!
//! With `--audit-fail-closed`, each request's `RequestReceived` event is written before the
//! request runs, and a request whose event cannot be written is refused (503).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use http::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use tracing::{error, warn};
use ward_api::ApiError;
use ward_audit::{
    AuditLog, AuditLogOptions, Event, ObjectReference, Policy, RequestAttributes, RequestMetadata,
    ResponseStatus, Stage,
};

use crate::ServeError;
use crate::auth::UserInfo;
use crate::http::Body;
use crate::request::Target;

/// Audit settings, named as kube-apiserver's flags.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// `--audit-policy-file`; `None` = every request at Metadata.
    pub policy_file: Option<PathBuf>,
    /// `--audit-log-path`; `None` = no audit log; `-` = standard output.
    pub log_path: Option<PathBuf>,
    /// `--audit-log-maxsize` in MiB (0 = 100).
    pub max_size_mb: u64,
    /// `--audit-log-maxbackup` (0 = keep all).
    pub max_backups: usize,
    /// `--audit-log-maxage` in days.
    pub max_age_days: Option<u32>,
    /// Refuse requests whose audit event cannot be written.
    pub fail_closed: bool,
}

pub(crate) struct Auditor {
    policy: Policy,
    log: AuditLog,
    fail_closed: bool,
}

fn audit_user(u: &UserInfo) -> ward_audit::UserInfo {
    ward_audit::UserInfo {
        username: u.username.clone(),
        uid: u.uid.clone(),
        groups: u.groups.clone(),
        extra: u.extra.clone(),
    }
}

impl Auditor {
    /// `Ok(None)` when no audit log is configured.
    pub(crate) fn new(opts: &AuditOptions) -> Result<Option<Self>, ServeError> {
        let Some(path) = &opts.log_path else {
            return Ok(None);
        };
        let mut policy = match &opts.policy_file {
            Some(p) => Policy::load(p).map_err(|e| ServeError::Config(e.to_string()))?,
            None => Policy::default_metadata(),
        };
        for w in policy.sanitize() {
            warn!(warning = %w, "audit policy changed so that secret values are never logged");
        }
        let mut o = AuditLogOptions::new(path.clone());
        o.max_size_mb = opts.max_size_mb;
        o.max_backups = opts.max_backups;
        o.max_age_days = opts.max_age_days;
        o.fail_closed = opts.fail_closed;
        let log = AuditLog::open(o).map_err(|e| ServeError::Config(e.to_string()))?;
        Ok(Some(Auditor {
            policy,
            log,
            fail_closed: opts.fail_closed,
        }))
    }

    /// Starts the event of an authenticated request (or of a refused one, with an empty user),
    /// writing `RequestReceived` when the policy records it or fail-closed mode asks for it.
    ///
    /// `Err` 503 when fail-closed and the event cannot be written.
    #[allow(clippy::too_many_arguments)] // one request's facts, gathered once
    pub(crate) fn begin(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
        user: &UserInfo,
        impersonated: Option<&UserInfo>,
        target: &Target,
        verb: &str,
        received: SystemTime,
    ) -> Result<Option<Event>, ApiError> {
        let (group, resource, subresource, namespace, name, version) = match target {
            Target::Resource(p) => (
                p.info.group,
                p.info.resource,
                p.subresource.as_deref().unwrap_or_default(),
                if p.info.namespaced {
                    p.namespace.as_deref().unwrap_or_default()
                } else {
                    ""
                },
                p.name.as_deref().unwrap_or_default(),
                p.info.version,
            ),
            _ => ("", "", "", "", "", ""),
        };
        let effective = impersonated.unwrap_or(user);
        let attrs = RequestAttributes {
            user: &effective.username,
            groups: &effective.groups,
            verb,
            api_group: group,
            resource,
            subresource,
            namespace,
            name,
            resource_request: matches!(target, Target::Resource(_)),
            path: parts.uri.path(),
        };
        let mut config = self.policy.evaluate(&attrs);
        if config.level == ward_audit::Level::None {
            return Ok(None);
        }
        if self.fail_closed {
            config.omit_stages = ward_audit::StageSet::empty();
        }
        let header = |h: &str| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let object_ref = matches!(target, Target::Resource(_)).then(|| ObjectReference {
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            api_group: group.to_owned(),
            api_version: version.to_owned(),
            subresource: subresource.to_owned(),
            ..ObjectReference::default()
        });
        let (user_json, imp_json) = match impersonated {
            Some(i) => (audit_user(user), Some(audit_user(i))),
            None => (audit_user(user), None),
        };
        let metadata = RequestMetadata {
            audit_id: header("audit-id"),
            request_uri: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            verb: verb.to_owned(),
            user: user_json,
            impersonated_user: imp_json,
            source_ips: vec![peer.ip().to_string()],
            user_agent: header("user-agent"),
            object_ref,
        };
        let event = Event::new(metadata, &config, received);
        self.write(&event)?;
        Ok(Some(event))
    }

    /// Records the request body (kept only at Request level and above; scrubbed of values).
    pub(crate) fn request_body(event: &mut Event, content_type: Option<&str>, body: &[u8]) {
        if body.is_empty() || event.level() < ward_audit::Level::Request {
            return;
        }
        let decoded = match crate::request::body_type(content_type) {
            Some(crate::request::BodyType::Protobuf) => ward_api::protobuf::decode(body).ok(),
            Some(crate::request::BodyType::Yaml | crate::request::BodyType::ApplyPatch) => {
                serde_json::from_slice::<Value>(body)
                    .ok()
                    .or_else(|| serde_saphyr::from_slice::<Value>(body).ok())
            }
            _ => serde_json::from_slice::<Value>(body).ok(),
        };
        if let Some(v) = decoded {
            event.set_request_object(v);
        }
    }

    /// Completes the event with the reply: `ResponseComplete`, with the response body at
    /// `RequestResponse` level; for a watch, `ResponseStarted` now and `ResponseComplete` when
    /// its stream ends (the returned reply carries that duty in its body).
    pub(crate) async fn finish(
        self: &Arc<Self>,
        mut event: Event,
        resp: Response<Body>,
        status: Option<&Value>,
        decision: Option<&str>,
        long_running: bool,
    ) -> Response<Body> {
        let code = resp.status().as_u16();
        if let Some(reason) = decision {
            event.annotate(ward_audit::DECISION_ANNOTATION, "allow");
            if !reason.is_empty() {
                event.annotate(ward_audit::REASON_ANNOTATION, reason);
            }
        } else if code == 403 {
            event.annotate(ward_audit::DECISION_ANNOTATION, "forbid");
        }
        event.set_response_status(match status {
            Some(s) => ResponseStatus::from_status(s, code),
            None => ResponseStatus::from_code(code),
        });
        if long_running && resp.status().is_success() {
            self.log_stage(&event, Stage::ResponseStarted);
            let (parts, body) = resp.into_parts();
            let body = CompleteOnEnd {
                inner: body,
                pending: Some((self.clone(), event)),
            };
            return Response::from_parts(parts, BodyExt::boxed(body));
        }
        let resp = if event.level() >= ward_audit::Level::RequestResponse {
            record_response(&mut event, resp).await
        } else {
            resp
        };
        self.log_stage(&event, Stage::ResponseComplete);
        resp
    }

    fn log_stage(&self, event: &Event, stage: Stage) {
        let done = event.for_stage(stage, SystemTime::now());
        if let Err(e) = self.log.write(&done) {
            error!(error = %e, "audit event lost");
        }
    }

    fn write(&self, event: &Event) -> Result<(), ApiError> {
        match self.log.write(event) {
            Ok(()) => Ok(()),
            Err(e) if self.fail_closed => {
                error!(error = %e, "audit log unavailable; refusing the request");
                Err(ApiError::unavailable("the audit log cannot be written"))
            }
            Err(e) => {
                error!(error = %e, "audit event lost");
                Ok(())
            }
        }
    }
}

/// Keeps the reply's body as the event's `responseObject` (`ward_audit` drops it below
/// `RequestResponse` and for secrets, and scrubs secret fields from whatever it keeps).
async fn record_response(event: &mut Event, resp: Response<Body>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            error!(error = %e, "reading a reply for the audit log failed");
            bytes::Bytes::new()
        }
    };
    let ctype = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let decoded = if ctype.starts_with("application/vnd.kubernetes.protobuf") {
        ward_api::protobuf::decode(&bytes).ok()
    } else if ctype.starts_with("application/yaml") {
        serde_saphyr::from_slice::<Value>(&bytes).ok()
    } else {
        serde_json::from_slice::<Value>(&bytes).ok()
    };
    if let Some(v) = decoded {
        event.set_response_object(v);
    }
    Response::from_parts(parts, crate::error::full(bytes))
}

/// A watch reply's body that writes the `ResponseComplete` event when the watch ends (its
/// stream finished, or the client went away and the body was dropped).
struct CompleteOnEnd {
    inner: Body,
    pending: Option<(Arc<Auditor>, Event)>,
}

impl hyper::body::Body for CompleteOnEnd {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CompleteOnEnd {
    fn drop(&mut self) {
        if let Some((auditor, event)) = self.pending.take() {
            auditor.log_stage(&event, Stage::ResponseComplete);
        }
    }
}
