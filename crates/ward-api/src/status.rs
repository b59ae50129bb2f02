//! Kubernetes `Status` errors: one type, [`ApiError`], that every failing request ends in.
//!
//! Policy: the message a client sees is built here from names and field paths only. It never
//! holds a value from a request body (a secret's `data` could be in it); field errors say
//! *what* is wrong with a field, not what the field held. Log detail stays with the caller.

use serde_json::{Map, Value, json};

/// One failing field, as `details.causes[]` of a `Status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The machine-readable cause, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: &'static str,
    /// The path of the field, e.g. `data[tls.crt]` or `metadata.name`.
    pub field: String,
    /// The human-readable part, e.g. `Required value` or `Invalid value: "x": ...`.
    pub message: String,
}

impl FieldError {
    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// A field has an invalid value. `shown` is the value to echo (never a secret's value: pass
    /// `None` to print `<redacted>`-free text without it).
    pub fn invalid(field: impl Into<String>, shown: Option<&str>, detail: &str) -> Self {
        let message = match shown {
            Some(v) => format!("Invalid value: {}: {detail}", Value::String(v.to_owned())),
            None => format!("Invalid value: {detail}"),
        };
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message,
        }
    }

    /// A field may not be set or changed.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    /// A field is longer than allowed.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: must have at most {max} bytes"),
        }
    }

    /// A field holds an unsupported value among a known set.
    pub fn not_supported(field: impl Into<String>, shown: &str, allowed: &[&str]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                Value::String(shown.to_owned()),
                allowed.join(", ")
            ),
        }
    }

    /// `field: message`, as Kubernetes prints each cause.
    pub fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// The object a `Status` is about (`details.{name,group,kind}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectDetails {
    /// `details.name` (empty = absent).
    pub name: String,
    /// `details.group` (empty = absent).
    pub group: String,
    /// `details.kind`: the resource, e.g. `secrets`.
    pub kind: String,
}

/// A failed API request, convertible to a Kubernetes `Status` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code (equal to `Status.code`).
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `details.name`, `details.group` and `details.kind` (boxed to keep the error small).
    pub object: Option<Box<ObjectDetails>>,
    /// `details.causes`.
    pub causes: Vec<FieldError>,
    /// `details.retryAfterSeconds`.
    pub retry_after: Option<u32>,
    /// `metadata.continue`: on a 410 for a continued list whose snapshot was compacted,
    /// kube-apiserver's *inconsistent* continue token, which lists the rest at the latest
    /// revision.
    pub continue_token: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `<resource>[.<group>]`, as Kubernetes names a resource in messages.
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            object: None,
            causes: Vec::new(),
            retry_after: None,
            continue_token: None,
        }
    }

    /// Sets `metadata.continue` (see [`ApiError::continue_token`]).
    pub fn with_continue(mut self, token: String) -> Self {
        self.continue_token = Some(token);
        self
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.object = Some(Box::new(ObjectDetails {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
        }));
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized. Never says which part of the credential failed.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden with a prepared message.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qr = qualified_resource(group, resource);
        let message = if resource.is_empty() {
            format!("forbidden: {why}")
        } else if name.is_empty() {
            format!("{qr} is forbidden: {why}")
        } else {
            format!("{qr} \"{name}\" is forbidden: {why}")
        };
        Self::new(403, "Forbidden", message).with_details(group, resource, name)
    }

    /// 404 NotFound for a named object.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qr = qualified_resource(group, resource);
        Self::new(404, "NotFound", format!("{qr} \"{name}\" not found"))
            .with_details(group, resource, name)
    }

    /// 404 NotFound for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(accepted: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: {accepted}"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qr = qualified_resource(group, resource);
        Self::new(
            409,
            "AlreadyExists",
            format!("{qr} \"{name}\" already exists"),
        )
        .with_details(group, resource, name)
    }

    /// 409 Conflict for a stale resourceVersion or failed precondition.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qr = qualified_resource(group, resource);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qr} \"{name}\": {why}"),
        )
        .with_details(group, resource, name)
    }

    /// The standard "object has been modified" conflict.
    pub fn modified(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 410 Expired: a resourceVersion fell out of the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(got: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({got}) - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 422 Invalid with field causes: `Kind "name" is invalid: [a, b]`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldError>) -> Self {
        let rendered: Vec<String> = causes.iter().map(FieldError::render).collect();
        let list = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {list}"),
        )
        .with_details(group, kind, name);
        e.causes = causes;
        e
    }

    /// 500 InternalError. `message` must not hold secret material.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut details = Map::new();
        if let Some(o) = &self.object {
            if !o.name.is_empty() {
                details.insert("name".into(), json!(o.name));
            }
            if !o.group.is_empty() {
                details.insert("group".into(), json!(o.group));
            }
            details.insert("kind".into(), json!(o.kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        if let Some(token) = &self.continue_token {
            status["metadata"]["continue"] = json!(token);
        }
        status
    }
}

/// A success `Status`, as a DELETE of a collection or namespace may return.
pub fn success_status(group: &str, kind: &str, name: &str, uid: Option<&str>) -> Value {
    let mut details = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    if let Some(uid) = uid {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_list_can_carry_a_continue_token() {
        let s = ApiError::expired("too old").to_status();
        assert_eq!(s["metadata"], json!({}));
        let s = ApiError::expired("too old")
            .with_continue("token".into())
            .to_status();
        assert_eq!(
            (s["code"].clone(), s["reason"].clone()),
            (json!(410), json!("Expired"))
        );
        assert_eq!(s["metadata"]["continue"], "token");
    }

    #[test]
    fn not_found_matches_kubernetes_shape() {
        let s = ApiError::not_found("", "secrets", "nope").to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "secrets \"nope\" not found");
        assert_eq!(s["details"]["kind"], "secrets");
        assert_eq!(s["details"]["name"], "nope");
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "",
            "Secret",
            "x",
            vec![
                FieldError::required("data[tls.crt]", ""),
                FieldError::required("data[tls.key]", ""),
            ],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Secret \"x\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]"
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][1]["field"], "data[tls.key]");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
    }

    #[test]
    fn group_qualifies_resource() {
        let e = ApiError::already_exists("rbac.authorization.k8s.io", "roles", "r");
        assert_eq!(
            e.message,
            "roles.rbac.authorization.k8s.io \"r\" already exists"
        );
    }
}
