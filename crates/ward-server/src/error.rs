//! Turning results into HTTP replies: `Status` for errors, JSON/YAML/Table for objects.
//!
//! Every error a handler returns passes through [`status_response`], the one place where an
//! [`ApiError`] becomes an HTTP status and a `Status` body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use ward_api::ApiError;

use crate::http::Body;
use crate::request::Output;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A `Status` reply for `e`, in JSON (what every client understands for errors).
pub(crate) fn status_response(e: &ApiError) -> Response<Body> {
    let body = e.to_status().to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(r) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(r));
    }
    resp
}

/// A reply holding `value` in the negotiated encoding.
pub(crate) fn object_response(code: StatusCode, value: &Value, output: Output) -> Response<Body> {
    let (bytes, ctype): (Vec<u8>, &str) = match output {
        Output::Yaml => match serde_saphyr::to_string(value) {
            Ok(s) => (s.into_bytes(), "application/yaml"),
            Err(_) => return status_response(&ApiError::internal("unable to encode YAML")),
        },
        Output::Table(_) => (
            value.to_string().into_bytes(),
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        ),
        Output::PartialMetadata => (
            value.to_string().into_bytes(),
            "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
        ),
        Output::AggregatedDiscovery(v) => (
            value.to_string().into_bytes(),
            if v == "v2beta1" {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            } else {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            },
        ),
        Output::Json => (value.to_string().into_bytes(), "application/json"),
    };
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// A plain-text reply (health checks).
pub(crate) fn text_response(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_code_matches_body() {
        for e in [
            ApiError::bad_request("x"),
            ApiError::unauthorized(),
            ApiError::not_found("", "secrets", "a"),
            ApiError::already_exists("", "secrets", "a"),
            ApiError::modified("", "secrets", "a"),
            ApiError::expired("too old"),
            ApiError::too_large(1),
            ApiError::unsupported_media_type("text/plain", &["application/json"]),
            ApiError::invalid("", "Secret", "a", vec![]),
            ApiError::internal("x"),
            ApiError::unavailable("x"),
            ApiError::method_not_allowed("PUT", "x"),
            ApiError::not_acceptable("x"),
            ApiError::forbidden(
                "",
                "namespaces",
                "default",
                "this namespace may not be deleted",
            ),
        ] {
            let r = status_response(&e);
            assert_eq!(r.status().as_u16(), e.code, "{e}");
            assert_eq!(e.to_status()["code"], e.code);
            assert_eq!(e.to_status()["kind"], "Status");
        }
    }
}
