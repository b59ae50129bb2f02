//! The known fields of each kind, for `fieldValidation` (Strict, Warn, Ignore) and type checks.
//!
//! Kubernetes decodes bodies into typed Go structs: unknown fields are dropped (or reported under
//! `Strict`/`Warn`), and a value of the wrong JSON type is a 400. This module does the same on
//! JSON values, without a typed model per kind.

use serde_json::{Map, Value};

/// The expected shape of a JSON value.
#[derive(Debug)]
enum Shape {
    /// Anything (e.g. `fieldsV1`, condition details).
    Any,
    Bool,
    Int,
    Str,
    /// An object with string keys and values of one shape.
    MapOf(Box<Shape>),
    /// An object with known fields.
    Object(Vec<(&'static str, Shape)>),
    List(Box<Shape>),
}

use Shape::*;

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Fail with 400 on unknown fields.
    Strict,
    /// Drop unknown fields and warn (the default, as in Kubernetes 1.27+).
    #[default]
    Warn,
}

impl FieldValidation {
    /// Parses the query parameter value.
    ///
    /// `None` for anything but `Ignore`, `Warn`, `Strict` (case as Kubernetes accepts).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "Ignore" | "ignore" => Some(FieldValidation::Ignore),
            "Strict" | "strict" => Some(FieldValidation::Strict),
            "Warn" | "warn" | "" => Some(FieldValidation::Warn),
            _ => None,
        }
    }
}

/// What checking a body found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchemaReport {
    /// Paths of unknown fields (already removed from the value), e.g. `spec.x`.
    pub unknown: Vec<String>,
    /// Type errors, e.g. `data: expected an object`.
    pub type_errors: Vec<String>,
}

fn str_map() -> Shape {
    MapOf(Box::new(Str))
}

fn object_meta() -> Shape {
    Object(vec![
        ("name", Str),
        ("generateName", Str),
        ("namespace", Str),
        ("selfLink", Str),
        ("uid", Str),
        ("resourceVersion", Str),
        ("generation", Int),
        ("creationTimestamp", Any),
        ("deletionTimestamp", Any),
        ("deletionGracePeriodSeconds", Int),
        ("labels", str_map()),
        ("annotations", str_map()),
        (
            "ownerReferences",
            List(Box::new(Object(vec![
                ("apiVersion", Str),
                ("kind", Str),
                ("name", Str),
                ("uid", Str),
                ("controller", Bool),
                ("blockOwnerDeletion", Bool),
            ]))),
        ),
        ("finalizers", List(Box::new(Str))),
        (
            "managedFields",
            List(Box::new(Object(vec![
                ("manager", Str),
                ("operation", Str),
                ("apiVersion", Str),
                ("time", Any),
                ("fieldsType", Str),
                ("fieldsV1", Any),
                ("subresource", Str),
            ]))),
        ),
    ])
}

fn strings() -> Shape {
    List(Box::new(Str))
}

fn policy_rule() -> Shape {
    Object(vec![
        ("verbs", strings()),
        ("apiGroups", strings()),
        ("resources", strings()),
        ("resourceNames", strings()),
        ("nonResourceURLs", strings()),
    ])
}

fn label_selector() -> Shape {
    Object(vec![
        ("matchLabels", str_map()),
        (
            "matchExpressions",
            List(Box::new(Object(vec![
                ("key", Str),
                ("operator", Str),
                ("values", strings()),
            ]))),
        ),
    ])
}

fn shape_of(kind: &str) -> Option<Shape> {
    let mut fields = vec![
        ("apiVersion", Str),
        ("kind", Str),
        ("metadata", object_meta()),
    ];
    match kind {
        "Secret" => fields.extend([
            ("data", str_map()),
            ("stringData", str_map()),
            ("type", Str),
            ("immutable", Bool),
        ]),
        "ConfigMap" => fields.extend([
            ("data", str_map()),
            ("binaryData", str_map()),
            ("immutable", Bool),
        ]),
        "Namespace" => fields.extend([
            ("spec", Object(vec![("finalizers", List(Box::new(Str)))])),
            (
                "status",
                Object(vec![
                    ("phase", Str),
                    (
                        "conditions",
                        List(Box::new(Object(vec![
                            ("type", Str),
                            ("status", Str),
                            ("lastTransitionTime", Any),
                            ("reason", Str),
                            ("message", Str),
                        ]))),
                    ),
                ]),
            ),
        ]),
        "ServiceAccount" => fields.extend([
            (
                "secrets",
                List(Box::new(Object(vec![
                    ("kind", Str),
                    ("namespace", Str),
                    ("name", Str),
                    ("uid", Str),
                    ("apiVersion", Str),
                    ("resourceVersion", Str),
                    ("fieldPath", Str),
                ]))),
            ),
            (
                "imagePullSecrets",
                List(Box::new(Object(vec![("name", Str)]))),
            ),
            ("automountServiceAccountToken", Bool),
        ]),
        "Role" => fields.push(("rules", List(Box::new(policy_rule())))),
        "ClusterRole" => fields.extend([
            ("rules", List(Box::new(policy_rule()))),
            (
                "aggregationRule",
                Object(vec![(
                    "clusterRoleSelectors",
                    List(Box::new(label_selector())),
                )]),
            ),
        ]),
        "RoleBinding" | "ClusterRoleBinding" => fields.extend([
            (
                "subjects",
                List(Box::new(Object(vec![
                    ("kind", Str),
                    ("apiGroup", Str),
                    ("name", Str),
                    ("namespace", Str),
                ]))),
            ),
            (
                "roleRef",
                Object(vec![("apiGroup", Str), ("kind", Str), ("name", Str)]),
            ),
        ]),
        _ => return None,
    }
    Some(Object(fields))
}

/// Checks `value` against the known fields of `kind`, removing unknown fields and reporting them
/// and any type errors. `null` is accepted anywhere (Go decodes it as the zero value) and removed.
///
/// `None` when the kind has no schema here.
pub fn check(kind: &str, value: &mut Value) -> Option<SchemaReport> {
    let shape = shape_of(kind)?;
    let mut report = SchemaReport::default();
    walk(&shape, value, "", &mut report);
    Some(report)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn walk(shape: &Shape, value: &mut Value, path: &str, report: &mut SchemaReport) {
    match (shape, value) {
        (Any, _) => {}
        (Bool, Value::Bool(_)) | (Str, Value::String(_)) => {}
        (Int, Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        (MapOf(inner), Value::Object(map)) => {
            map.retain(|_, v| !v.is_null() || matches!(**inner, Str));
            for (k, v) in map.iter_mut() {
                if v.is_null() {
                    // Go decodes a null map value of a string map as "".
                    *v = Value::String(String::new());
                    continue;
                }
                walk(inner, v, &format!("{path}[{k}]"), report);
            }
        }
        (Object(fields), Value::Object(map)) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                match fields.iter().find(|(name, _)| *name == key) {
                    Some((_, inner)) => {
                        let remove = map.get(&key).is_some_and(Value::is_null);
                        if remove {
                            map.remove(&key);
                        } else if let Some(v) = map.get_mut(&key) {
                            walk(inner, v, &join(path, &key), report);
                        }
                    }
                    None => {
                        report.unknown.push(join(path, &key));
                        map.remove(&key);
                    }
                }
            }
        }
        (List(inner), Value::Array(items)) => {
            for (i, v) in items.iter_mut().enumerate() {
                walk(inner, v, &format!("{path}[{i}]"), report);
            }
        }
        (shape, v) => {
            let expected = match shape {
                Bool => "a boolean",
                Int => "an integer",
                Str => "a string",
                MapOf(_) | Object(_) => "an object",
                List(_) => "an array",
                Any => "anything",
            };
            let got = match v {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            };
            let field = if path.is_empty() { "<root>" } else { path };
            report
                .type_errors
                .push(format!("{field}: expected {expected}, got {got}"));
        }
    }
}

/// Removes `null` members of an object (top level only), as Go's decoder would ignore them.
pub fn drop_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_and_removed() {
        let mut v = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","bogus":1},
                           "data":{"k":"dg=="},"extra":{"x":1}});
        let r = check("Secret", &mut v).expect("schema");
        assert_eq!(
            r.unknown,
            vec!["metadata.bogus".to_owned(), "extra".to_owned()]
        );
        assert!(r.type_errors.is_empty());
        assert!(v.get("extra").is_none());
        assert!(v["metadata"].get("bogus").is_none());
    }

    #[test]
    fn type_errors_name_the_field_not_the_value() {
        let mut v = json!({"metadata":{"name":"a","labels":{"x":5}},"data":"c2VjcmV0"});
        let r = check("Secret", &mut v).expect("schema");
        assert_eq!(r.type_errors.len(), 2, "{r:?}");
        assert!(r.type_errors.iter().all(|e| !e.contains("c2VjcmV0")));
        assert!(
            r.type_errors
                .iter()
                .any(|e| e.starts_with("metadata.labels[x]"))
        );
    }

    #[test]
    fn nulls_are_dropped() {
        let mut v = json!({"metadata":{"name":"a","labels":null},"data":null});
        let r = check("ConfigMap", &mut v).expect("schema");
        assert_eq!(r, SchemaReport::default());
        assert_eq!(v, json!({"metadata":{"name":"a"}}));
    }
}
