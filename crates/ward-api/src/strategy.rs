//! Per-kind rules applied on create and update: defaults, `stringData`, validation, immutability.
//!
//! The server calls [`prepare_create`] / [`prepare_update`] after decoding and after
//! [`crate::schema::check`], and before anything is stored. Messages never hold data values.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::resources::ResourceInfo;
use crate::status::{ApiError, FieldError};
use crate::validation;

/// The largest total size of a Secret's or ConfigMap's decoded data, in bytes.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// Characters used for `generateName` suffixes (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const GENERATED_SUFFIX_LEN: usize = 5;

/// Fills server-owned metadata of a new object: name (from `generateName` if needed),
/// namespace, uid, creationTimestamp; clears resourceVersion, selfLink and deletion fields.
///
/// `Err` 422 if neither name nor generateName is given; 400 if the body's namespace differs from
/// the URL's.
pub fn fill_create_metadata(
    info: &ResourceInfo,
    obj: &mut Value,
    namespace: Option<&str>,
    uid: &str,
    now: &str,
) -> Result<(), ApiError> {
    let meta = metadata_mut(obj);
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                info.group,
                info.kind,
                "",
                vec![FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        let generated = format!("{prefix}{}", random_suffix());
        meta.insert("name".into(), json!(generated));
    }
    if info.namespaced {
        let ns = namespace.unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request",
                ));
            }
            _ => {}
        }
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(now));
    for f in [
        "resourceVersion",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        meta.remove(f);
    }
    Ok(())
}

/// A random `generateName` suffix.
pub fn random_suffix() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..GENERATED_SUFFIX_LEN)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

/// Applies defaults and validates a new object of `info`'s kind.
///
/// `Err` 422 Invalid (with causes) or 400 BadRequest (undecodable data).
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    set_type_meta(info, obj);
    match info.kind {
        "Secret" => {
            merge_string_data(info, obj)?;
            let t = obj.get("type").and_then(Value::as_str).unwrap_or_default();
            if t.is_empty() {
                obj["type"] = json!("Opaque");
            }
        }
        "Namespace" => {
            let spec = obj
                .as_object_mut()
                .map(|m| m.entry("spec").or_insert_with(|| json!({})));
            if let Some(Value::Object(spec)) = spec {
                spec.entry("finalizers")
                    .or_insert_with(|| json!(["kubernetes"]));
            }
            obj["status"] = json!({"phase": "Active"});
        }
        _ => {}
    }
    let causes = validate(info, obj)?;
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(info, obj, causes))
    }
}

/// Applies defaults and validates an update of `old` into `new`: immutability of `type`,
/// `immutable` and data; server-owned metadata carried over from `old`.
///
/// `Err` 422 Invalid or 400 BadRequest.
pub fn prepare_update(info: &ResourceInfo, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    set_type_meta(info, new);
    {
        let old_meta = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let meta = metadata_mut(new);
        for f in [
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "generation",
        ] {
            match old_meta.get(f) {
                Some(v) => {
                    meta.insert(f.into(), v.clone());
                }
                None => {
                    meta.remove(f);
                }
            }
        }
        meta.remove("selfLink");
    }
    let mut causes = Vec::new();
    match info.kind {
        "Secret" => {
            merge_string_data(info, new)?;
            let old_type = old.get("type").and_then(Value::as_str).unwrap_or_default();
            let new_type = new.get("type").and_then(Value::as_str).unwrap_or_default();
            if new_type.is_empty() {
                new["type"] = json!(old_type);
            } else if new_type != old_type {
                causes.push(FieldError::invalid(
                    "type",
                    Some(new_type),
                    "field is immutable",
                ));
            }
            immutability(old, new, &["data"], &mut causes);
        }
        "ConfigMap" => immutability(old, new, &["data", "binaryData"], &mut causes),
        "RoleBinding" | "ClusterRoleBinding" if old.get("roleRef") != new.get("roleRef") => {
            causes.push(FieldError::invalid(
                "roleRef",
                None,
                "cannot change roleRef",
            ));
        }
        "Namespace" => {
            // status is owned by the server; spec.finalizers only changes through /finalize.
            new["status"] = old.get("status").cloned().unwrap_or_else(|| json!({}));
            new["spec"] = old.get("spec").cloned().unwrap_or_else(|| json!({}));
        }
        _ => {}
    }
    causes.extend(validate(info, new)?);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(info, new, causes))
    }
}

/// The object's `metadata` map, created if missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Value::Object(map) = obj else {
        unreachable!("just made an object")
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let Value::Object(m) = meta else {
        unreachable!("just made an object")
    };
    m
}

/// `metadata.<field>` as a string, or `""`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn set_type_meta(info: &ResourceInfo, obj: &mut Value) {
    if let Value::Object(m) = obj {
        m.insert("apiVersion".into(), json!(info.api_version()));
        m.insert("kind".into(), json!(info.kind));
    }
}

fn invalid(info: &ResourceInfo, obj: &Value, causes: Vec<FieldError>) -> ApiError {
    ApiError::invalid(info.group, info.kind, meta_str(obj, "name"), causes)
}

/// Merges `stringData` into `data` (a stringData value wins) and drops `stringData`.
fn merge_string_data(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    let Some(string_data) = map.remove("stringData") else {
        return Ok(());
    };
    let Value::Object(string_data) = string_data else {
        return Err(ApiError::bad_request(format!(
            "{}: stringData must be an object",
            info.kind
        )));
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Value::Object(data) = data {
        for (k, v) in string_data {
            let text = match &v {
                Value::String(s) => s.as_str(),
                Value::Null => "",
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "{}: stringData[{k}] must be a string",
                        info.kind
                    )));
                }
            };
            data.insert(k, json!(B64.encode(text.as_bytes())));
        }
    }
    Ok(())
}

fn immutability(old: &Value, new: &Value, fields: &[&str], causes: &mut Vec<FieldError>) {
    let old_immutable = old
        .get("immutable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !old_immutable {
        return;
    }
    let new_immutable = new
        .get("immutable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !new_immutable {
        causes.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        let empty = json!({});
        let o = old.get(*f).unwrap_or(&empty);
        let n = new.get(*f).unwrap_or(&empty);
        if o != n {
            causes.push(FieldError::forbidden(
                *f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

/// Validates metadata and kind-specific fields. `Err` only for undecodable input (400).
fn validate(info: &ResourceInfo, obj: &Value) -> Result<Vec<FieldError>, ApiError> {
    let mut causes = validate_metadata(info, obj);
    match info.kind {
        "Secret" => causes.extend(validate_secret(obj)?),
        "ConfigMap" => causes.extend(validate_config_map(obj)?),
        "Role" | "ClusterRole" => causes.extend(validate_rules(obj, info.kind == "Role")),
        "RoleBinding" | "ClusterRoleBinding" => {
            causes.extend(validate_binding(obj, info.kind == "RoleBinding"));
        }
        _ => {}
    }
    Ok(causes)
}

/// Name, label and annotation syntax.
pub fn validate_metadata(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut causes = Vec::new();
    let name = meta_str(obj, "name");
    for e in info.validate_name(name) {
        causes.push(FieldError::invalid("metadata.name", Some(name), &e));
    }
    if let Some(labels) = obj
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            for e in validation::qualified_name(k) {
                causes.push(FieldError::invalid("metadata.labels", Some(k), &e));
            }
            let v = v.as_str().unwrap_or_default();
            for e in validation::label_value(v) {
                causes.push(FieldError::invalid(
                    format!("metadata.labels[{k}]"),
                    Some(v),
                    &e,
                ));
            }
        }
    }
    if let Some(ann) = obj
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in ann {
            for e in validation::qualified_name(&k.to_ascii_lowercase()) {
                causes.push(FieldError::invalid("metadata.annotations", Some(k), &e));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > validation::TOTAL_ANNOTATION_SIZE_LIMIT {
            causes.push(FieldError::too_long(
                "metadata.annotations",
                validation::TOTAL_ANNOTATION_SIZE_LIMIT,
            ));
        }
    }
    causes
}

/// Decodes one base64 data value. The error names the key, never the value.
fn decode_value(field: &str, key: &str, v: &Value) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let s = v.as_str().unwrap_or_default();
    B64.decode(s.as_bytes()).map(Zeroizing::new).map_err(|_| {
        ApiError::bad_request(format!("{field}[{key}]: illegal base64 data in the value"))
    })
}

fn validate_secret(obj: &Value) -> Result<Vec<FieldError>, ApiError> {
    let mut causes = Vec::new();
    let empty = Map::new();
    let data = obj.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let mut total = 0usize;
    let mut decoded: Vec<(&str, Zeroizing<Vec<u8>>)> = Vec::new();
    for (k, v) in data {
        for e in validation::config_map_key(k) {
            causes.push(FieldError::invalid("data", Some(k), &e));
        }
        let bytes = decode_value("data", k, v)?;
        total += bytes.len();
        decoded.push((k.as_str(), bytes));
    }
    if total > MAX_SECRET_SIZE {
        causes.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let get = |k: &str| decoded.iter().find(|(name, _)| *name == k).map(|(_, v)| v);
    let t = obj.get("type").and_then(Value::as_str).unwrap_or_default();
    match t {
        "kubernetes.io/service-account-token" => {
            let has = obj
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !has {
                causes.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if t == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match get(key) {
                None => causes.push(FieldError::required(format!("data[{key}]"), "")),
                Some(v) => {
                    if serde_json::from_slice::<serde::de::IgnoredAny>(v).is_err() {
                        causes.push(FieldError::invalid(
                            format!("data[{key}]"),
                            Some("<secret contents redacted>"),
                            "must be valid JSON",
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if get("username").is_none() && get("password").is_none() => {
            causes.push(FieldError::required(
                "data[username]",
                "either username or password is required",
            ));
        }
        "kubernetes.io/ssh-auth" if get("ssh-privatekey").is_none_or(|v| v.is_empty()) => {
            causes.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if get(key).is_none() {
                    causes.push(FieldError::required(format!("data[{key}]"), ""));
                }
            }
        }
        _ => {}
    }
    Ok(causes)
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn strings<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// PolicyRule checks, as upstream's `ValidatePolicyRule`.
fn validate_rules(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut causes = Vec::new();
    let empty = Vec::new();
    let rules = obj.get("rules").and_then(Value::as_array).unwrap_or(&empty);
    for (i, rule) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if strings(rule, "verbs").is_empty() {
            causes.push(FieldError::required(
                at("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = strings(rule, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                causes.push(FieldError::invalid(
                    at("nonResourceURLs"),
                    None,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !strings(rule, "apiGroups").is_empty() || !strings(rule, "resources").is_empty() {
                causes.push(FieldError::invalid(
                    at("nonResourceURLs"),
                    None,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if strings(rule, "apiGroups").is_empty() {
            causes.push(FieldError::required(
                at("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if strings(rule, "resources").is_empty() {
            causes.push(FieldError::required(
                at("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    causes
}

/// RoleBinding / ClusterRoleBinding checks, as upstream's `ValidateRoleBinding`.
fn validate_binding(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut causes = Vec::new();
    let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
    let s = |f: &str| {
        role_ref
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if s("apiGroup") != RBAC_GROUP {
        causes.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &s("apiGroup"),
            &[RBAC_GROUP],
        ));
    }
    if !kinds.contains(&s("kind").as_str()) {
        causes.push(FieldError::not_supported("roleRef.kind", &s("kind"), kinds));
    }
    if s("name").is_empty() {
        causes.push(FieldError::required("roleRef.name", ""));
    }
    let empty = Vec::new();
    let subjects = obj
        .get("subjects")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, subject) in subjects.iter().enumerate() {
        let at = |f: &str| format!("subjects[{i}].{f}");
        let get = |f: &str| subject.get(f).and_then(Value::as_str).unwrap_or_default();
        if get("name").is_empty() {
            causes.push(FieldError::required(at("name"), ""));
        }
        match get("kind") {
            "ServiceAccount" => {
                if !get("apiGroup").is_empty() {
                    causes.push(FieldError::not_supported(
                        at("apiGroup"),
                        get("apiGroup"),
                        &[""],
                    ));
                }
                if !namespaced && get("namespace").is_empty() {
                    causes.push(FieldError::required(at("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if get("apiGroup") != RBAC_GROUP {
                    causes.push(FieldError::not_supported(
                        at("apiGroup"),
                        get("apiGroup"),
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => causes.push(FieldError::not_supported(
                at("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    causes
}

fn validate_config_map(obj: &Value) -> Result<Vec<FieldError>, ApiError> {
    let mut causes = Vec::new();
    let empty = Map::new();
    let data = obj.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let binary = obj
        .get("binaryData")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut total = 0usize;
    for (k, v) in data {
        for e in validation::config_map_key(k) {
            causes.push(FieldError::invalid("data", Some(k), &e));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary {
        for e in validation::config_map_key(k) {
            causes.push(FieldError::invalid("binaryData", Some(k), &e));
        }
        if data.contains_key(k) {
            causes.push(FieldError::invalid(
                "data",
                Some(k),
                "duplicate of key present in binaryData",
            ));
        }
        total += k.len() + decode_value("binaryData", k, v)?.len();
    }
    if total > MAX_SECRET_SIZE {
        causes.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    Ok(causes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    fn secret() -> &'static ResourceInfo {
        lookup("", "v1", "secrets").expect("served")
    }

    #[test]
    fn string_data_merges_and_type_defaults() {
        let mut s = json!({"metadata":{"name":"a"},"data":{"k":"b2xk","x":"eA=="},
                           "stringData":{"k":"new"}});
        prepare_create(secret(), &mut s).expect("valid");
        assert_eq!(s["data"]["k"], "bmV3");
        assert_eq!(s["data"]["x"], "eA==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        assert_eq!(s["kind"], "Secret");
    }

    #[test]
    fn tls_requires_both_keys() {
        let mut s = json!({"metadata":{"name":"t"},"type":"kubernetes.io/tls","data":{}});
        let e = prepare_create(secret(), &mut s).expect_err("invalid");
        assert_eq!(e.code, 422);
        assert_eq!(e.causes.len(), 2);
    }

    #[test]
    fn bad_base64_is_400_without_value() {
        let mut s = json!({"metadata":{"name":"a"},"data":{"k":"!!hunter2!!"}});
        let e = prepare_create(secret(), &mut s).expect_err("bad");
        assert_eq!(e.code, 400);
        assert!(!e.message.contains("hunter2"));
    }

    #[test]
    fn size_limit() {
        let big = B64.encode(vec![0u8; MAX_SECRET_SIZE + 1]);
        let mut s = json!({"metadata":{"name":"a"},"data":{"k": big}});
        let e = prepare_create(secret(), &mut s).expect_err("too big");
        assert_eq!(e.causes[0].reason, "FieldValueTooLong");
    }

    #[test]
    fn immutable_secret_rules() {
        let old = json!({"metadata":{"name":"a","uid":"u"},"type":"Opaque","immutable":true,
                         "data":{"k":"dg=="}});
        let mut changed = json!({"metadata":{"name":"a"},"type":"Opaque","immutable":true,
                                 "data":{"k":"dw=="}});
        let e = prepare_update(secret(), &old, &mut changed).expect_err("immutable");
        assert!(e.message.contains("data: Forbidden"), "{}", e.message);
        let mut unset = json!({"metadata":{"name":"a"},"type":"Opaque","data":{"k":"dg=="}});
        assert!(prepare_update(secret(), &old, &mut unset).is_err());
        let mut relabel = json!({"metadata":{"name":"a","labels":{"x":"y"}},"immutable":true,
                                 "data":{"k":"dg=="}});
        prepare_update(secret(), &old, &mut relabel).expect("labels may change");
        assert_eq!(relabel["type"], "Opaque");
        assert_eq!(relabel["metadata"]["uid"], "u");
    }

    #[test]
    fn type_is_immutable() {
        let old = json!({"metadata":{"name":"a"},"type":"Opaque"});
        let mut new = json!({"metadata":{"name":"a"},"type":"kubernetes.io/basic-auth",
                             "data":{"username":"dQ=="}});
        let e = prepare_update(secret(), &old, &mut new).expect_err("type changed");
        assert!(e.message.contains("type: Invalid value"), "{}", e.message);
    }

    #[test]
    fn generate_name() {
        let mut s = json!({"metadata":{"generateName":"db-"}});
        fill_create_metadata(
            secret(),
            &mut s,
            Some("default"),
            "uid",
            "2026-01-01T00:00:00Z",
        )
        .expect("ok");
        let name = meta_str(&s, "name");
        assert!(name.starts_with("db-") && name.len() == 8, "{name}");
        let mut none = json!({"metadata":{}});
        assert_eq!(
            fill_create_metadata(secret(), &mut none, Some("default"), "u", "t")
                .expect_err("no name")
                .code,
            422
        );
    }

    #[test]
    fn rbac_objects_are_validated() {
        let role = lookup("rbac.authorization.k8s.io", "v1", "roles").expect("roles");
        let mut bad = json!({"metadata":{"name":"r"},"rules":[{"verbs":[],"resources":["secrets"]},
                             {"verbs":["get"],"nonResourceURLs":["/x"]}]});
        let e = prepare_create(role, &mut bad).expect_err("invalid");
        let fields: Vec<&str> = e.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "rules[0].verbs",
                "rules[0].apiGroups",
                "rules[1].nonResourceURLs"
            ]
        );
        let mut good = json!({"metadata":{"name":"system:r"},
                              "rules":[{"verbs":["get"],"apiGroups":[""],"resources":["secrets"]}]});
        prepare_create(role, &mut good).expect("valid");

        let crb = lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings").expect("crb");
        let mut b = json!({"metadata":{"name":"b"},
                           "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"},
                           "subjects":[{"kind":"ServiceAccount","name":"sa"},{"kind":"Robot","name":"x"}]});
        let e = prepare_create(crb, &mut b).expect_err("invalid");
        let fields: Vec<&str> = e.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["roleRef.kind", "subjects[0].namespace", "subjects[1].kind"]
        );

        let rb = lookup("rbac.authorization.k8s.io", "v1", "rolebindings").expect("rb");
        let old = json!({"metadata":{"name":"b"},
                         "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"}});
        let mut new = json!({"metadata":{"name":"b"},
                             "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"other"}});
        let e = prepare_update(rb, &old, &mut new).expect_err("roleRef is immutable");
        assert_eq!(e.causes[0].field, "roleRef");
    }
}
