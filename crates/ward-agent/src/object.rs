//! The objects the agent delivers: references (kind, namespace, name), their decoded data, and
//! the wrapper that keeps values out of logs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use zeroize::Zeroizing;

/// The annotation `ward serve` sets on a Secret whose values it withheld from a list or watch
/// because the caller may not `get` it.
pub(crate) const VALUES_OMITTED: &str = "ward.dev/values-omitted";

/// Bytes of a secret value (or of a file about to be written). No `Display`; `Debug` prints
/// `[redacted]`; the buffer is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }

    /// The value. Callers write it to a target file or into a child's environment, nowhere else.
    pub(crate) fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The two kinds of object a projection reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    /// The REST resource (`secrets`).
    pub(crate) fn resource(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
        }
    }

    /// The noun used in messages, as kubectl prints it (`secret`).
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }
}

/// A namespace name: a DNS-1123 label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Namespace(String);

impl Namespace {
    /// `Err` holds what is wrong with `s` (never the rest of the input).
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let errs = ward_api::validation::dns1123_label(s);
        if errs.is_empty() {
            Ok(Namespace(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not a namespace name: {}",
                errs.join("; ")
            ))
        }
    }

    /// `default`, where objects go when nothing names a namespace.
    pub(crate) fn default_namespace() -> Self {
        Namespace("default".to_owned())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// An object name: a DNS-1123 subdomain, which both Secret and ConfigMap names are.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectName(String);

impl ObjectName {
    /// `Err` holds what is wrong with `s`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let errs = ward_api::validation::dns1123_subdomain(s);
        if errs.is_empty() {
            Ok(ObjectName(s.to_owned()))
        } else {
            Err(format!("{s:?} is not an object name: {}", errs.join("; ")))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// One object the agent watches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectRef {
    pub(crate) kind: Kind,
    pub(crate) namespace: Namespace,
    pub(crate) name: ObjectName,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.kind.noun(),
            self.namespace.as_str(),
            self.name.as_str()
        )
    }
}

impl ObjectRef {
    /// The object's own URL path (`GET` needs only the `get` verb).
    pub(crate) fn path(&self) -> String {
        format!(
            "/api/v1/namespaces/{}/{}/{}",
            self.namespace.as_str(),
            self.kind.resource(),
            self.name.as_str()
        )
    }

    /// A watch of exactly this object: the collection with `fieldSelector=metadata.name=NAME`,
    /// which RBAC authorizes against `resourceNames`. Without `resource_version` the watch starts
    /// with the object's current state.
    pub(crate) fn watch_path(
        &self,
        resource_version: Option<&str>,
        timeout_seconds: u64,
    ) -> String {
        let mut path = format!(
            "/api/v1/namespaces/{}/{}?fieldSelector=metadata.name%3D{}&watch=1&\
             allowWatchBookmarks=true&timeoutSeconds={timeout_seconds}",
            self.namespace.as_str(),
            self.kind.resource(),
            self.name.as_str()
        );
        if let Some(rv) = resource_version {
            path.push_str("&resourceVersion=");
            path.push_str(&percent_encode(rv));
        }
        path
    }
}

/// What the agent knows of one object.
#[derive(Clone, Debug)]
pub(crate) enum ObjectState {
    /// The object does not exist (never created, or deleted).
    Absent,
    /// The object and its values.
    Present(Arc<ObjectData>),
    /// The object exists but its values cannot be used; the reason names no value.
    Unusable(String),
}

/// The decoded data of a Secret or ConfigMap: key to value.
#[derive(Debug)]
pub(crate) struct ObjectData {
    pub(crate) keys: BTreeMap<String, SecretBytes>,
}

impl ObjectState {
    /// Decodes an object of `kind` from its JSON. `Present` with every key; `Unusable` when the
    /// server withheld its values (the `ward.dev/values-omitted` annotation) or a value is not
    /// base64. The JSON itself is not zeroized (see docs/design.md, "Objects in flight").
    pub(crate) fn decode(kind: Kind, obj: &Value) -> ObjectState {
        let omitted = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(VALUES_OMITTED))
            .and_then(Value::as_str)
            == Some("true");
        if omitted {
            return ObjectState::Unusable(format!(
                "the server withheld its values ({VALUES_OMITTED}): this identity may list or \
                 watch the {noun} but not get it; grant `get` on it (resourceNames)",
                noun = kind.noun()
            ));
        }
        let mut keys = BTreeMap::new();
        let b64_field = match kind {
            Kind::Secret => "data",
            Kind::ConfigMap => "binaryData",
        };
        if let Some(map) = obj.get(b64_field).and_then(Value::as_object) {
            for (k, v) in map {
                let decoded = v.as_str().map(|s| B64.decode(s).map(Zeroizing::new));
                match decoded {
                    Some(Ok(bytes)) => {
                        keys.insert(k.clone(), SecretBytes::new(bytes));
                    }
                    _ => {
                        return ObjectState::Unusable(format!(
                            "{b64_field}.{k} is not a base64 string"
                        ));
                    }
                }
            }
        }
        if kind == Kind::ConfigMap
            && let Some(map) = obj.get("data").and_then(Value::as_object)
        {
            for (k, v) in map {
                let Some(s) = v.as_str() else {
                    return ObjectState::Unusable(format!("data.{k} is not a string"));
                };
                if keys
                    .insert(
                        k.clone(),
                        SecretBytes::new(Zeroizing::new(s.as_bytes().to_vec())),
                    )
                    .is_some()
                {
                    return ObjectState::Unusable(format!(
                        "key {k:?} is in both data and binaryData"
                    ));
                }
            }
        }
        ObjectState::Present(Arc::new(ObjectData { keys }))
    }
}

/// Percent-encodes a query value (resource versions are opaque strings).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_secrets_and_configmaps_and_spots_withheld_values() {
        let s = json!({"metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}});
        let ObjectState::Present(d) = ObjectState::decode(Kind::Secret, &s) else {
            panic!("present")
        };
        assert_eq!(d.keys["password"].expose_secret(), b"hunter2");
        assert_eq!(
            format!("{d:?}"),
            r#"ObjectData { keys: {"password": [redacted]} }"#
        );

        let cm = json!({"data": {"a": "x"}, "binaryData": {"b": "AAE="}});
        let ObjectState::Present(d) = ObjectState::decode(Kind::ConfigMap, &cm) else {
            panic!("present")
        };
        assert_eq!(d.keys["a"].expose_secret(), b"x");
        assert_eq!(d.keys["b"].expose_secret(), [0, 1]);

        let withheld = json!({"metadata": {"annotations": {VALUES_OMITTED: "true"}},
            "data": {"password": ""}});
        assert!(matches!(
            ObjectState::decode(Kind::Secret, &withheld),
            ObjectState::Unusable(m) if m.contains("grant `get`")
        ));
        let bad = json!({"data": {"password": "hunter2!!"}});
        let ObjectState::Unusable(m) = ObjectState::decode(Kind::Secret, &bad) else {
            panic!("unusable")
        };
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn paths_select_one_object() {
        let o = ObjectRef {
            kind: Kind::Secret,
            namespace: Namespace::parse("prod").expect("ns"),
            name: ObjectName::parse("db.main").expect("name"),
        };
        assert_eq!(o.to_string(), "secret prod/db.main");
        assert_eq!(
            o.watch_path(Some("12"), 300),
            "/api/v1/namespaces/prod/secrets?fieldSelector=metadata.name%3Ddb.main&watch=1&\
             allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=12"
        );
        assert!(!o.watch_path(None, 300).contains("resourceVersion"));
        assert_eq!(o.path(), "/api/v1/namespaces/prod/secrets/db.main");
        assert!(Namespace::parse("Bad_NS").is_err());
        assert!(ObjectName::parse("../etc").is_err());
    }
}
