//! `meta.k8s.io/v1` Table replies for `kubectl get`, with upstream's columns per kind.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::resources::ResourceInfo;

/// How much of each object a Table row embeds (`includeObject`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter.
    ///
    /// `None` for an unknown value.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "None" => Some(IncludeObject::None),
            "Metadata" | "" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

fn column(name: &str, ty: &str, format: &str, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": 0})
}

/// The column definitions for `info`'s kind.
pub fn columns(info: &ResourceInfo) -> Value {
    let name = column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although \
         some resources may allow a client to request the generation of an appropriate name \
         automatically.",
    );
    let age = column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was \
         created.",
    );
    let cols = match info.kind {
        "Secret" => vec![
            name,
            column(
                "Type",
                "string",
                "",
                "Used to facilitate programmatic handling of secret data.",
            ),
            column("Data", "string", "", "Data contains the secret data."),
            age,
        ],
        "ConfigMap" => vec![
            name,
            column(
                "Data",
                "string",
                "",
                "Data contains the configuration data.",
            ),
            age,
        ],
        "Namespace" => vec![
            name,
            column("Status", "string", "", "The status of the namespace"),
            age,
        ],
        "ServiceAccount" => vec![
            name,
            column(
                "Secrets",
                "string",
                "",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        "Role" | "ClusterRole" => vec![
            name,
            column(
                "Created At",
                "date",
                "",
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ),
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            column(
                "Role",
                "string",
                "",
                "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
            ),
            age,
        ],
        _ => vec![name, age],
    };
    Value::Array(cols)
}

/// The cells of one object's row.
pub fn cells(info: &ResourceInfo, obj: &Value, now: SystemTime) -> Value {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let age = json!(age(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
        now
    ));
    let count = |f: &str| obj.get(f).and_then(Value::as_object).map_or(0, |m| m.len());
    match info.kind {
        "Secret" => json!([
            name,
            obj.get("type").cloned().unwrap_or(json!("")),
            count("data"),
            age
        ]),
        "ConfigMap" => json!([name, count("data") + count("binaryData"), age]),
        "Namespace" => {
            json!([
                name,
                obj.pointer("/status/phase").cloned().unwrap_or(json!("")),
                age
            ])
        }
        "ServiceAccount" => {
            json!([
                name,
                obj.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len),
                age
            ])
        }
        "Role" | "ClusterRole" => {
            json!([
                name,
                obj.pointer("/metadata/creationTimestamp")
                    .cloned()
                    .unwrap_or(json!(""))
            ])
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kind = obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role = obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            json!([name, format!("{kind}/{role}"), age])
        }
        _ => json!([name, age]),
    }
}

/// A `PartialObjectMetadata` of `obj`.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
           "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// A Table of `objects`.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
    now: SystemTime,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(info, o, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                       "rows": rows});
    if with_columns {
        t["columnDefinitions"] = columns(info);
    }
    t
}

/// An RFC 3339 timestamp in whole seconds, as Kubernetes writes `creationTimestamp`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn age(created: Option<&str>, now: SystemTime) -> String {
    let Some(created) = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) else {
        return "<unknown>".to_owned();
    };
    match now.duration_since(created) {
        Ok(d) => human_duration(d),
        Err(_) => "0s".to_owned(),
    }
}

/// kubectl's short human duration (`apimachinery/pkg/util/duration.HumanDuration`).
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 * 2 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 60 * 3 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        let rem = m % 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{rem}h", h / 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    let y = h / (24 * 365);
    if y < 8 {
        let days = (h / 24) % 365;
        return if days == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{days}d")
        };
    }
    format!("{y}y")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
        assert_eq!(human_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "60m");
        assert_eq!(human_duration(Duration::from_secs(5 * 3600 + 60)), "5h1m");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3d");
        assert_eq!(human_duration(Duration::from_secs(400 * 86400)), "400d");
    }

    #[test]
    fn secret_row() {
        let info = lookup("", "v1", "secrets").expect("served");
        let now = SystemTime::now();
        let obj = json!({"metadata":{"name":"s1","namespace":"default",
                                      "creationTimestamp": rfc3339(now)},
                         "type":"Opaque","data":{"a":"","b":""}});
        let t = table(
            info,
            &[obj],
            json!({"resourceVersion":"5"}),
            IncludeObject::Metadata,
            true,
            now,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["s1", "Opaque", 2, "0s"]));
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(4));
        assert!(t["rows"][0]["object"].get("data").is_none());
    }
}
