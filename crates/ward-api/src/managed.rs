//! `metadata.managedFields`: which manager set which fields, and server-side apply conflicts.
//!
//! A simplified field manager, close to upstream's for the kinds Ward serves:
//! - field sets are `FieldsV1` trees (`{"f:data":{".":{},"f:key":{}},"f:type":{}}`), with maps and
//!   structs walked key by key and lists treated as atomic (RBAC `rules`/`subjects` are atomic
//!   upstream too);
//! - an `Update` (create, replace, patch) gives its manager the fields it changed and takes them
//!   from every other manager;
//! - an `Apply` gives its manager exactly the fields of the applied configuration; a field owned
//!   by another manager with a different value is a conflict (409) unless `force=true`, which
//!   takes it over.
//!
//! Server-owned metadata (name, namespace, uid, resourceVersion, timestamps, managedFields) is
//! never tracked.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// A set of leaf field paths, each a list of keys (`["data", "API_KEY"]`).
pub type FieldSet = BTreeSet<Vec<String>>;

/// The fields an object sets.
pub fn fields_of(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if UNTRACKED_METADATA.contains(&mk.as_str()) {
                            continue;
                        }
                        walk(mv, vec!["metadata".into(), mk.clone()], &mut out);
                    }
                }
                continue;
            }
            walk(v, vec![k.clone()], &mut out);
        }
    }
    out
}

fn walk(v: &Value, path: Vec<String>, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.insert(
                path.iter()
                    .cloned()
                    .chain(["."].map(str::to_owned))
                    .collect(),
            );
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                walk(child, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for k in path {
        if k == "." {
            return Some(cur);
        }
        cur = cur.get(k)?;
    }
    Some(cur)
}

/// Encodes a field set as `FieldsV1` JSON.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for (i, k) in path.iter().enumerate() {
            let key = if k == "." {
                ".".to_owned()
            } else {
                format!("f:{k}")
            };
            let entry = node.entry(key).or_insert_with(|| json!({}));
            if i + 1 == path.len() {
                break;
            }
            let Value::Object(next) = entry else { break };
            node = next;
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1` JSON into a field set (unknown key forms are skipped).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn rec(v: &Value, path: &mut Vec<String>, out: &mut FieldSet) {
        let Value::Object(m) = v else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            let key = if k == "." {
                ".".to_owned()
            } else if let Some(f) = k.strip_prefix("f:") {
                f.to_owned()
            } else {
                continue;
            };
            path.push(key);
            rec(child, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    rec(v, &mut Vec::new(), &mut out);
    out
}

/// Leaf fields whose values differ between `old` and `new` (added, changed or removed).
pub fn changed_fields(old: &Value, new: &Value) -> FieldSet {
    let a = fields_of(old);
    let b = fields_of(new);
    a.symmetric_difference(&b)
        .cloned()
        .chain(
            a.intersection(&b)
                .filter(|p| value_at(old, p) != value_at(new, p))
                .cloned(),
        )
        .filter(|p| p.last().is_some_and(|k| k != "."))
        .collect()
}

/// One conflict of an apply: the field and the manager that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The field path, upstream's form (`.data.API_KEY`).
    pub field: String,
    /// The manager owning it.
    pub manager: String,
}

fn entries(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn entry_fields(e: &Value) -> FieldSet {
    e.get("fieldsV1").map(from_fields_v1).unwrap_or_default()
}

fn set_entries(obj: &mut Value, list: Vec<Value>) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records an `Update` by `manager` that turned `old` (None for a create) into `new`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
) {
    let changed = match old {
        Some(o) => changed_fields(o, new),
        None => fields_of(new),
    };
    if changed.is_empty() {
        // A no-op write keeps the managed fields (and their times) as they were.
        if let Some(o) = old {
            set_entries(new, entries(o));
        }
        return;
    }
    let mut list = match old {
        Some(o) => entries(o),
        None => Vec::new(),
    };
    record(
        &mut list,
        &changed,
        manager,
        "Update",
        None,
        api_version,
        now,
    );
    set_entries(new, list);
}

/// Records an `Apply` of `applied` by `manager` onto `live` (already merged into `merged`).
///
/// `Err` lists the conflicts when fields owned by other managers would change and `force` is
/// false.
pub fn record_apply(
    live: Option<&Value>,
    merged: &mut Value,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    now: &str,
) -> Result<(), Vec<Conflict>> {
    let mine = fields_of(applied);
    let mut list = live.map(entries).unwrap_or_default();
    if let Some(live) = live {
        let mut conflicts = Vec::new();
        for e in &list {
            let owner = e.get("manager").and_then(Value::as_str).unwrap_or_default();
            if owner == manager {
                continue;
            }
            for path in entry_fields(e).intersection(&mine) {
                if path.last().is_some_and(|k| k == ".") {
                    continue;
                }
                if value_at(live, path) != value_at(applied, path) {
                    conflicts.push(Conflict {
                        field: format!(".{}", path.join(".")),
                        manager: owner.to_owned(),
                    });
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflicts);
        }
    }
    record(
        &mut list,
        &mine,
        manager,
        "Apply",
        Some(true),
        api_version,
        now,
    );
    set_entries(merged, list);
    Ok(())
}

fn record(
    list: &mut Vec<Value>,
    fields: &FieldSet,
    manager: &str,
    operation: &str,
    replace: Option<bool>,
    api_version: &str,
    now: &str,
) {
    // Take the fields away from every other manager (and other operations of this one).
    for e in list.iter_mut() {
        let same = e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some(operation);
        if same {
            continue;
        }
        let rest: FieldSet = entry_fields(e).difference(fields).cloned().collect();
        e["fieldsV1"] = to_fields_v1(&rest);
    }
    let pos = list.iter().position(|e| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some(operation)
    });
    let owned: FieldSet = match (pos, replace) {
        (Some(i), None) => entry_fields(&list[i]).union(fields).cloned().collect(),
        _ => fields.clone(),
    };
    let entry = json!({"manager": manager, "operation": operation, "apiVersion": api_version,
                       "time": now, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&owned)});
    match pos {
        Some(i) => list[i] = entry,
        None => list.push(entry),
    }
    list.retain(|e| {
        e.get("fieldsV1")
            .is_some_and(|f| f.as_object().is_some_and(|m| !m.is_empty()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_matches_upstream_shape() {
        let s = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"x","labels":{"app":"a"}},
                       "data":{"API_KEY":"eA=="},"type":"Opaque"});
        let v = to_fields_v1(&fields_of(&s));
        assert_eq!(
            v,
            json!({"f:data":{".":{},"f:API_KEY":{}},
                             "f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:type":{}})
        );
        assert_eq!(from_fields_v1(&v), fields_of(&s));
    }

    #[test]
    fn updates_move_ownership_and_apply_conflicts() {
        let mut s = json!({"metadata":{"name":"x"},"data":{"a":"MQ==","b":"Mg=="},"type":"Opaque"});
        record_update(None, &mut s, "kubectl-create", "v1", "t0");
        let old = s.clone();
        let mut patched = s.clone();
        patched["data"]["a"] = json!("Mw==");
        record_update(Some(&old), &mut patched, "kubectl-edit", "v1", "t1");
        let mf = patched["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .clone();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[1]["manager"], "kubectl-edit");
        assert_eq!(mf[1]["fieldsV1"], json!({"f:data":{"f:a":{}}}));
        assert!(
            mf[0]["fieldsV1"]["f:data"].get("f:a").is_none(),
            "taken from the creator"
        );

        // applying a different value for a field kubectl-edit owns conflicts
        let applied = json!({"metadata":{"name":"x"},"data":{"a":"NA=="}});
        let mut merged = patched.clone();
        let e = record_apply(
            Some(&patched),
            &mut merged,
            &applied,
            "ssa",
            false,
            "v1",
            "t2",
        )
        .expect_err("conflict");
        assert_eq!(
            e,
            vec![Conflict {
                field: ".data.a".into(),
                manager: "kubectl-edit".into()
            }]
        );
        record_apply(
            Some(&patched),
            &mut merged,
            &applied,
            "ssa",
            true,
            "v1",
            "t2",
        )
        .expect("force");
        let mf = merged["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        assert!(
            mf.iter()
                .any(|e| e["manager"] == "ssa" && e["operation"] == "Apply")
        );
        assert!(
            !mf.iter().any(|e| e["manager"] == "kubectl-edit"),
            "lost its only field"
        );
        // the same value is no conflict
        let same = json!({"metadata":{"name":"x"},"data":{"b":"Mg=="}});
        let mut m2 = patched.clone();
        record_apply(Some(&patched), &mut m2, &same, "other", false, "v1", "t3")
            .expect("no conflict");
    }
}
