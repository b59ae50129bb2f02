//! Parsing what a request asks for: the target (from the path), the verb, query parameters, and
//! the media types of the body and the reply.

use std::collections::BTreeMap;

use ward_api::ApiError;
use ward_api::resources::{self, ResourceInfo};
use ward_api::table::IncludeObject;

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/version`.
    Version,
    /// `/metrics` (Prometheus text).
    Metrics,
    /// `/healthz`, `/livez`, `/readyz` (and their sub-paths other than the KMS check).
    Health,
    /// `/healthz/kms-providers` (and `/readyz/...`, `/livez/...`): the KMS plugins' health.
    KmsHealth,
    /// `/api`.
    ApiVersions,
    /// `/apis`.
    ApiGroups,
    /// `/api/v1` or `/apis/<group>/<version>`.
    ResourceList { group: String, version: String },
    /// `/apis/<group>`.
    Group { group: String },
    /// `/openapi/v3`.
    OpenApiRoot,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`.
    OpenApiGroupVersion { group: String, version: String },
    /// A resource collection or object.
    Resource(ResourcePath),
    /// Anything else.
    Unknown,
}

/// A parsed resource path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub(crate) info: &'static ResourceInfo,
    /// The namespace, for namespaced resources addressed within one.
    pub(crate) namespace: Option<String>,
    /// The object name, for item requests.
    pub(crate) name: Option<String>,
    /// A subresource (`status`, `finalize`), not served yet.
    pub(crate) subresource: Option<String>,
}

/// Parses a URL path.
pub(crate) fn parse_path(path: &str) -> Target {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => Target::Version,
        ["metrics"] => Target::Metrics,
        ["healthz" | "livez" | "readyz", "kms-providers"] => Target::KmsHealth,
        ["healthz" | "livez" | "readyz", ..] => Target::Health,
        ["api"] => Target::ApiVersions,
        ["apis"] => Target::ApiGroups,
        ["api", "v1"] => Target::ResourceList {
            group: String::new(),
            version: "v1".into(),
        },
        ["apis", g] => Target::Group {
            group: (*g).to_owned(),
        },
        ["apis", g, v] => Target::ResourceList {
            group: (*g).to_owned(),
            version: (*v).to_owned(),
        },
        ["openapi", "v3"] => Target::OpenApiRoot,
        ["openapi", "v3", "api", "v1"] => Target::OpenApiGroupVersion {
            group: String::new(),
            version: "v1".into(),
        },
        ["openapi", "v3", "apis", g, v] => Target::OpenApiGroupVersion {
            group: (*g).to_owned(),
            version: (*v).to_owned(),
        },
        ["api", "v1", rest @ ..] => resource_path("", "v1", rest),
        ["apis", g, v, rest @ ..] => resource_path(g, v, rest),
        _ => Target::Unknown,
    }
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Target {
    let decoded: Vec<String> = rest.iter().map(|s| percent_decode(s)).collect();
    let rest: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let lookup = |r: &str| resources::lookup(group, version, r);
    let path = |info, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Target::Resource(ResourcePath {
            info,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        })
    };
    match rest.as_slice() {
        ["namespaces", ns, res, tail @ ..] if lookup(res).is_some_and(|i| i.namespaced) => {
            let Some(info) = lookup(res) else {
                return Target::Unknown;
            };
            match tail {
                [] => path(info, Some(ns), None, None),
                [name] => path(info, Some(ns), Some(name), None),
                [name, sub] if KNOWN_SUBRESOURCES.contains(sub) => {
                    path(info, Some(ns), Some(name), Some(sub))
                }
                _ => Target::Unknown,
            }
        }
        [res, tail @ ..] => {
            let Some(info) = lookup(res) else {
                return Target::Unknown;
            };
            match tail {
                [] => path(info, None, None, None),
                [name] if !info.namespaced => path(info, None, Some(name), None),
                [name, sub] if !info.namespaced && KNOWN_SUBRESOURCES.contains(sub) => {
                    path(info, None, Some(name), Some(sub))
                }
                _ => Target::Unknown,
            }
        }
        _ => Target::Unknown,
    }
}

/// Subresource names Kubernetes defines for the served kinds (none is served yet: they get 404
/// NotFound rather than being mistaken for other paths).
const KNOWN_SUBRESOURCES: &[&str] = &["finalize", "status", "token"];

/// Decoded query parameters (the last value wins).
#[derive(Debug, Default)]
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Query {
        let mut map = BTreeMap::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(form_decode(k), form_decode(v));
        }
        Query(map)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    /// A non-negative integer parameter; `Err` 400 when it is not one.
    pub(crate) fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value for {key}: must be a non-negative integer"
                ))
            }),
        }
    }

    /// `dryRun=All` → true; absent → false; anything else is 400.
    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value {other:?}: supported values: \"All\""
            ))),
        }
    }
}

fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (hi, lo) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reply encoding a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Json,
    Yaml,
    Table(IncludeObject),
    PartialMetadata,
    /// Aggregated discovery (`as=APIGroupDiscoveryList`), v2 or v2beta1.
    AggregatedDiscovery(&'static str),
}

/// Picks the reply encoding from `Accept`. `Err` 406 when nothing acceptable is offered.
pub(crate) fn negotiate(accept: Option<&str>, include: IncludeObject) -> Result<Output, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: BTreeMap<String, String> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let as_ = params.get("as").map(String::as_str);
        match (media.as_str(), as_) {
            ("application/json", Some("Table")) => return Ok(Output::Table(include)),
            ("application/json", Some("PartialObjectMetadata" | "PartialObjectMetadataList")) => {
                return Ok(Output::PartialMetadata);
            }
            ("application/json", Some("APIGroupDiscoveryList")) => {
                let v = if params.get("v").map(String::as_str) == Some("v2beta1") {
                    "v2beta1"
                } else {
                    "v2"
                };
                return Ok(Output::AggregatedDiscovery(v));
            }
            ("application/json", Some(_)) => continue,
            ("application/json" | "*/*" | "application/*", None) => return Ok(Output::Json),
            ("application/yaml", None) => return Ok(Output::Yaml),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(
        "application/json, application/yaml",
    ))
}

/// Media types of request bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyType {
    Json,
    Yaml,
    Protobuf,
    MergePatch,
    JsonPatch,
    StrategicMergePatch,
    ApplyPatch,
}

/// The accepted body media types, for 415 messages.
pub(crate) const ACCEPTED_BODY_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

pub(crate) const ACCEPTED_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// The body's media type; a missing `Content-Type` is JSON (the Python client sends none).
pub(crate) fn body_type(content_type: Option<&str>) -> Option<BodyType> {
    let media = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match media.as_str() {
        "" | "application/json" => Some(BodyType::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Some(BodyType::Yaml),
        "application/vnd.kubernetes.protobuf" => Some(BodyType::Protobuf),
        "application/merge-patch+json" => Some(BodyType::MergePatch),
        "application/json-patch+json" => Some(BodyType::JsonPatch),
        "application/strategic-merge-patch+json" => Some(BodyType::StrategicMergePatch),
        "application/apply-patch+yaml" => Some(BodyType::ApplyPatch),
        _ => None,
    }
}

/// `(verb, group, resource)` of a request, for metrics and logs: the Kubernetes verb for resource
/// requests, the lower-case method for others (resource `""`).
pub(crate) fn labels(
    method: &http::Method,
    uri: &http::Uri,
) -> (&'static str, &'static str, &'static str) {
    match parse_path(uri.path()) {
        Target::Resource(p) => {
            let item = p.name.is_some();
            let watch = Query::parse(uri.query()).flag("watch");
            let verb = match (method.as_str(), item) {
                ("GET" | "HEAD", true) => "get",
                ("GET" | "HEAD", false) if watch => "watch",
                ("GET" | "HEAD", false) => "list",
                ("POST", _) => "create",
                ("PUT", _) => "update",
                ("PATCH", _) => "patch",
                ("DELETE", true) => "delete",
                ("DELETE", false) => "deletecollection",
                _ => "other",
            };
            (verb, p.info.group, p.info.resource)
        }
        _ => {
            let verb = match method.as_str() {
                "GET" => "get",
                "HEAD" => "head",
                "POST" => "post",
                "PUT" => "put",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "other",
            };
            (verb, "", "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let Target::Resource(p) = parse_path("/api/v1/namespaces/default/secrets/db") else {
            panic!("resource")
        };
        assert_eq!(
            (p.info.resource, p.namespace.as_deref(), p.name.as_deref()),
            ("secrets", Some("default"), Some("db"))
        );
        let Target::Resource(p) = parse_path("/api/v1/namespaces/dev") else {
            panic!("ns")
        };
        assert_eq!(
            (p.info.resource, p.name.as_deref()),
            ("namespaces", Some("dev"))
        );
        let Target::Resource(p) = parse_path("/api/v1/secrets") else {
            panic!("all")
        };
        assert_eq!((p.namespace, p.name), (None, None));
        let Target::Resource(p) = parse_path("/api/v1/namespaces/dev/finalize") else {
            panic!("sub")
        };
        assert_eq!(p.subresource.as_deref(), Some("finalize"));
        assert_eq!(
            parse_path("/api/v1/namespaces/default/pods"),
            Target::Unknown
        );
        assert_eq!(parse_path("/api/v1/secrets/x"), Target::Unknown);
        assert_eq!(parse_path("/version"), Target::Version);
    }

    #[test]
    fn queries_decode() {
        let q = Query::parse(Some("labelSelector=tier%3Ddb&limit=500&watch=1&x=a+b"));
        assert_eq!(q.get("labelSelector"), Some("tier=db"));
        assert_eq!(q.number("limit").expect("ok"), Some(500));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some("a b"));
        assert!(Query::parse(Some("limit=-1")).number("limit").is_err());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn accept_headers() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(kubectl_get), IncludeObject::Metadata).expect("ok"),
            Output::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                IncludeObject::Metadata
            )
            .expect("ok"),
            Output::Json
        );
        assert!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf"),
                IncludeObject::Metadata
            )
            .is_err()
        );
        assert_eq!(
            negotiate(None, IncludeObject::Metadata).expect("ok"),
            Output::Json
        );
    }
}
