//! The four PATCH flavours kube-apiserver accepts, applied to objects in their JSON form.
//!
//! - [`merge_patch`]: JSON merge patch (RFC 7386, `application/merge-patch+json`).
//! - [`json_patch()`]: JSON patch (RFC 6902, `application/json-patch+json`), all or nothing.
//! - [`strategic_merge_patch`]: `application/strategic-merge-patch+json`, with the list
//!   semantics of the kinds Ward serves.
//! - [`apply_patch`]: the minimal server-side apply merge (`application/apply-patch+yaml`).
//!
//! # Strategic merge patch policy
//!
//! Upstream reads patch strategies from Go struct tags. Ward serves a handful of kinds, so the
//! tags that matter are written out in one table (`list_strategy`):
//!
//! | list | strategy |
//! |---|---|
//! | `metadata.ownerReferences` (every kind) | merge by `uid` |
//! | `metadata.finalizers` (every kind) | set of strings |
//! | ServiceAccount `secrets`, `imagePullSecrets` | merge by `name` |
//! | Namespace `spec.finalizers` | set of strings |
//! | Namespace `status.conditions` | merge by `type` |
//! | everything else (RBAC `rules`, `subjects`, aggregation selectors, ...) | atomic: replaced |
//!
//! Maps merge recursively and `null` deletes a key, as in a merge patch. The directives follow
//! upstream `k8s.io/apimachinery/pkg/util/strategicpatch`:
//!
//! - `$patch: replace` in a map replaces the map; `$patch: delete` empties it. In an element of
//!   a merge-by-key list, `delete` removes the elements with that key and `replace` makes the
//!   patch's other elements the whole list.
//! - `$retainKeys: [..]` drops keys of the live map that are not listed (and rejects a patch
//!   setting a key it does not list).
//! - `$deleteFromPrimitiveList/<field>: [..]` removes those values from a set list.
//! - `$setElementOrder/<field>: [..]` orders a merged list; without it, patch elements come in
//!   patch order and live-only elements keep their place relative to them, as upstream's
//!   `normalizeElementOrder` does.
//! - Any other `$` key is an error, and no directive is ever left in the result: values that
//!   are new to the object are applied to an empty value, which strips directives and nulls.
//!
//! Every function leaves the target unchanged when it returns an error. Error messages name
//! fields, never values.
//!
//! ```
//! use serde_json::json;
//!
//! let mut account = json!({"metadata": {"name": "sa1"}, "secrets": [{"name": "a"}]});
//! let patch = json!({"secrets": [{"name": "b"}], "metadata": {"labels": {"x": "y"}}});
//! ward_api::patch::strategic_merge_patch(&mut account, &patch, "ServiceAccount")?;
//! assert_eq!(account["secrets"], json!([{"name": "b"}, {"name": "a"}]));
//! assert_eq!(account["metadata"]["labels"]["x"], "y");
//! # Ok::<(), ward_api::patch::PatchError>(())
//! ```

use serde_json::{Map, Value};

/// An error applying a patch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// A `$patch` value, or a `$`-key, that strategic merge patch does not know.
    #[error("invalid patch directive {directive} at {field}")]
    InvalidDirective {
        /// Where the directive was found, e.g. `metadata.labels`.
        field: String,
        /// The directive key, or `$patch: <value>`.
        directive: String,
    },
    /// A directive whose value has the wrong shape, e.g. `$retainKeys` that is not a list of
    /// strings.
    #[error("directive {directive} at {field} must be a list")]
    InvalidDirectiveValue {
        /// Where the directive was found.
        field: String,
        /// The directive key.
        directive: String,
    },
    /// The JSON patch document is not a list of RFC 6902 operations.
    #[error("invalid json patch document: {0}")]
    InvalidJsonPatch(#[source] serde_json::Error),
    /// An element of a list merged by key is not an object.
    #[error("list {field} must hold objects")]
    InvalidList {
        /// The list, e.g. `secrets`.
        field: String,
    },
    /// A JSON patch operation failed (a failed `test`, or a path that does not exist).
    #[error("json patch failed: {0}")]
    JsonPatch(#[source] json_patch::PatchError),
    /// An element of a list merged by key lacks the key.
    #[error("an element of list {field} does not contain the merge key {merge_key}")]
    MissingMergeKey {
        /// The list, e.g. `metadata.ownerReferences`.
        field: String,
        /// The merge key, e.g. `uid`.
        merge_key: &'static str,
    },
    /// A strategic merge patch that is not a JSON object.
    #[error("strategic merge patch must be a json object")]
    NotAnObject,
    /// A patch sets a key that its own `$retainKeys` list leaves out.
    #[error("key {key} at {field} is not present in the $retainKeys list")]
    NotRetained {
        /// Where the directive was found.
        field: String,
        /// The key missing from the list.
        key: String,
    },
}

/// Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` deletes a key,
/// anything else (lists included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies a JSON patch (RFC 6902). Either every operation applies or none does.
///
/// # Errors
///
/// - [`PatchError::InvalidJsonPatch`] if `patch` is not a list of operations.
/// - [`PatchError::JsonPatch`] if an operation fails; `target` is then unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let operations: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(PatchError::InvalidJsonPatch)?;
    json_patch::patch(target, &operations).map_err(PatchError::JsonPatch)
}

/// Applies a strategic merge patch to an object of `kind` (e.g. `ServiceAccount`), with the
/// list strategies and directives described in the [module documentation](self).
///
/// Kinds Ward does not serve get the `metadata` strategies only.
///
/// # Errors
///
/// [`PatchError::NotAnObject`], [`PatchError::InvalidDirective`],
/// [`PatchError::InvalidDirectiveValue`], [`PatchError::InvalidList`],
/// [`PatchError::MissingMergeKey`] or [`PatchError::NotRetained`]; `target` is then unchanged.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    kind: &str,
) -> Result<(), PatchError> {
    let patch = patch.as_object().ok_or(PatchError::NotAnObject)?;
    let original = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let merger = Merger { kind };
    let merged = merger.map(original, patch, &mut Vec::new())?;
    *target = Value::Object(merged);
    Ok(())
}

/// Merges an applied configuration into the live object, the minimal form of server-side
/// apply: objects merge recursively, lists and scalars replace, and `null` never deletes (it
/// is skipped, and dropped from anything inserted).
///
/// Field ownership and conflicts (`managedFields`) are not tracked here.
pub fn apply_patch(live: &mut Value, applied: &Value) {
    match (live, applied) {
        (_, Value::Null) => {}
        (Value::Object(live), Value::Object(applied)) => {
            for (key, value) in applied {
                if value.is_null() {
                    continue;
                }
                match live.get_mut(key) {
                    Some(existing) => apply_patch(existing, value),
                    None => {
                        live.insert(key.clone(), without_nulls(value));
                    }
                }
            }
        }
        (live, applied) => *live = without_nulls(applied),
    }
}

// === Strategic merge patch ===

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListStrategy {
    /// The patch list replaces the live one.
    Atomic,
    /// Objects identified by the value of this key merge; others are appended.
    MergeKey(&'static str),
    /// Scalars form a set: the patch's values are added.
    Set,
}

/// The patch strategy of the list at `path` (map keys from the object's root) in `kind`.
fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    match (kind, path) {
        (_, ["metadata", "finalizers"]) => ListStrategy::Set,
        (_, ["metadata", "ownerReferences"]) => ListStrategy::MergeKey("uid"),
        ("ServiceAccount", ["secrets" | "imagePullSecrets"]) => ListStrategy::MergeKey("name"),
        ("Namespace", ["spec", "finalizers"]) => ListStrategy::Set,
        ("Namespace", ["status", "conditions"]) => ListStrategy::MergeKey("type"),
        _ => ListStrategy::Atomic,
    }
}

struct Merger<'k> {
    kind: &'k str,
}

impl Merger<'_> {
    /// Merges a patch map into a live map (upstream `mergeMap`).
    fn map<'p>(
        &self,
        mut original: Map<String, Value>,
        patch: &'p Map<String, Value>,
        path: &mut Vec<&'p str>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(PATCH) {
            match directive.as_str() {
                Some("replace") => {
                    let rest: Map<String, Value> = patch
                        .iter()
                        .filter(|(k, _)| *k != PATCH)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    return self.map(Map::new(), &rest, &mut path.clone());
                }
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {}
                _ => {
                    return Err(PatchError::InvalidDirective {
                        field: render(path),
                        directive: format!("{PATCH}: {}", directive_name(directive)),
                    });
                }
            }
        }

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let keys = string_list(retain).ok_or_else(|| PatchError::InvalidDirectiveValue {
                field: render(path),
                directive: RETAIN_KEYS.to_owned(),
            })?;
            for (key, value) in patch {
                if value.is_null() || key.starts_with('$') {
                    continue;
                }
                if !keys.contains(&key.as_str()) {
                    return Err(PatchError::NotRetained {
                        field: render(path),
                        key: key.clone(),
                    });
                }
            }
            original.retain(|key, _| keys.contains(&key.as_str()));
        }

        // `$setElementOrder/<field>`: merge the list now and order it; the main loop then
        // skips the field.
        let mut ordered: Vec<&str> = Vec::new();
        for (key, order) in patch {
            let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let invalid = || PatchError::InvalidDirectiveValue {
                field: render(path),
                directive: key.clone(),
            };
            let order = order.as_array().ok_or_else(invalid)?;
            path.push(field);
            let strategy = list_strategy(self.kind, path);
            let result = self.ordered_list(&original, patch, field, order, strategy, path);
            path.pop();
            if let Some(list) = result? {
                set_in_place(&mut original, field, Value::Array(list));
                ordered.push(field);
            }
        }

        for (key, value) in patch {
            if key.starts_with('$') {
                let known = key == PATCH
                    || key == RETAIN_KEYS
                    || nonempty_suffix(key, SET_ELEMENT_ORDER)
                    || nonempty_suffix(key, DELETE_FROM_PRIMITIVE_LIST);
                if !known {
                    return Err(PatchError::InvalidDirective {
                        field: render(path),
                        directive: key.clone(),
                    });
                }
                continue;
            }
            if ordered.contains(&key.as_str()) {
                continue;
            }
            if value.is_null() {
                original.shift_remove(key);
                continue;
            }
            path.push(key);
            let existing = original.get_mut(key).map(Value::take);
            let merged = self.value(existing, value, path);
            path.pop();
            set_in_place(&mut original, key, merged?);
        }

        // Deletions last, so they win over additions of the same value in this patch (as
        // upstream, which merges `$setElementOrder` lists before its main loop deletes).
        for (key, values) in patch {
            let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
                continue;
            };
            let values = values
                .as_array()
                .ok_or_else(|| PatchError::InvalidDirectiveValue {
                    field: render(path),
                    directive: key.clone(),
                })?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !values.contains(item));
            }
        }
        Ok(original)
    }

    /// Merges a patch value into a live value, or into nothing when the key is new.
    fn value<'p>(
        &self,
        original: Option<Value>,
        patch: &'p Value,
        path: &mut Vec<&'p str>,
    ) -> Result<Value, PatchError> {
        Ok(match (original, patch) {
            (Some(Value::Object(original)), Value::Object(patch)) => {
                Value::Object(self.map(original, patch, path)?)
            }
            (Some(Value::Array(original)), Value::Array(patch)) => {
                Value::Array(self.list(original, patch, list_strategy(self.kind, path), path)?)
            }
            // New keys and type changes: apply to an empty value, which strips directives.
            (_, Value::Object(patch)) => Value::Object(self.map(Map::new(), patch, path)?),
            (_, Value::Array(patch)) => {
                Value::Array(self.list(Vec::new(), patch, list_strategy(self.kind, path), path)?)
            }
            (_, scalar) => scalar.clone(),
        })
    }

    /// Merges a patch list into a live list (upstream `mergeSlice`), including the order.
    fn list<'p>(
        &self,
        original: Vec<Value>,
        patch: &'p [Value],
        strategy: ListStrategy,
        path: &mut Vec<&'p str>,
    ) -> Result<Vec<Value>, PatchError> {
        match strategy {
            ListStrategy::Atomic => patch
                .iter()
                .map(|item| self.value(None, item, path))
                .collect(),
            ListStrategy::Set => {
                let patch: Vec<Value> = patch
                    .iter()
                    .map(|item| self.value(None, item, path))
                    .collect::<Result<_, _>>()?;
                let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
                for item in original.iter().chain(&patch) {
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
                let identity = |item: &Value| Some(item.clone());
                let (patch_items, server_only): (Vec<Value>, Vec<Value>) =
                    merged.into_iter().partition(|item| patch.contains(item));
                Ok(normalize_order(
                    patch_items,
                    server_only,
                    &patch,
                    &original,
                    identity,
                ))
            }
            ListStrategy::MergeKey(merge_key) => {
                let mut original = original;
                let mut plain: Vec<&Map<String, Value>> = Vec::new();
                let mut replace = false;
                for item in patch {
                    let item = item.as_object().ok_or_else(|| PatchError::InvalidList {
                        field: render(path),
                    })?;
                    match item.get(PATCH) {
                        None => plain.push(item),
                        Some(Value::String(d)) if d == "delete" => {
                            let key =
                                item.get(merge_key)
                                    .ok_or_else(|| PatchError::MissingMergeKey {
                                        field: render(path),
                                        merge_key,
                                    })?;
                            original.retain(|o| o.get(merge_key) != Some(key));
                        }
                        Some(Value::String(d)) if d == "replace" => replace = true,
                        Some(directive) => {
                            return Err(PatchError::InvalidDirective {
                                field: render(path),
                                directive: format!("{PATCH}: {}", directive_name(directive)),
                            });
                        }
                    }
                }
                if replace {
                    original.clear();
                }
                let server_order = original.clone();
                for item in &plain {
                    let key = item
                        .get(merge_key)
                        .ok_or_else(|| PatchError::MissingMergeKey {
                            field: render(path),
                            merge_key,
                        })?;
                    let mut found = None;
                    for (i, existing) in original.iter().enumerate() {
                        let existing =
                            existing
                                .as_object()
                                .ok_or_else(|| PatchError::InvalidList {
                                    field: render(path),
                                })?;
                        if existing.get(merge_key) == Some(key) {
                            found = Some(i);
                            break;
                        }
                    }
                    match found {
                        Some(i) => {
                            let existing = match original[i].take() {
                                Value::Object(map) => map,
                                _ => Map::new(),
                            };
                            original[i] = Value::Object(self.map(existing, item, path)?);
                        }
                        None => original.push(Value::Object(self.map(Map::new(), item, path)?)),
                    }
                }
                if replace {
                    return Ok(original);
                }
                let identity = |item: &Value| item.get(merge_key).cloned();
                let patch_keys: Vec<Value> = plain
                    .iter()
                    .filter_map(|item| item.get(merge_key).cloned())
                    .collect();
                let (patch_items, server_only): (Vec<Value>, Vec<Value>) =
                    original.into_iter().partition(|item| {
                        item.get(merge_key)
                            .is_some_and(|key| patch_keys.contains(key))
                    });
                let patch_order: Vec<Value> = plain
                    .iter()
                    .map(|item| Value::Object((*item).clone()))
                    .collect();
                Ok(normalize_order(
                    patch_items,
                    server_only,
                    &patch_order,
                    &server_order,
                    identity,
                ))
            }
        }
    }

    /// Handles `$setElementOrder/<field>` (upstream `mergePatchIntoOriginal`). Returns the
    /// merged, ordered list, or `None` when the main loop should handle the field.
    fn ordered_list<'p>(
        &self,
        original: &Map<String, Value>,
        patch: &'p Map<String, Value>,
        field: &str,
        order: &[Value],
        strategy: ListStrategy,
        path: &mut Vec<&'p str>,
    ) -> Result<Option<Vec<Value>>, PatchError> {
        if strategy == ListStrategy::Atomic {
            return Ok(None);
        }
        let live = match original.get(field) {
            Some(Value::Array(list)) => Some(list),
            None | Some(Value::Null) => None,
            Some(_) => return Ok(None),
        };
        let merged = match (live, patch.get(field)) {
            (_, Some(Value::Null)) => return Ok(None),
            (Some(live), None) => live.clone(),
            (live, Some(Value::Array(items))) => {
                self.list(live.cloned().unwrap_or_default(), items, strategy, path)?
            }
            (None, None) => return Ok(None),
            (_, Some(_)) => return Ok(None),
        };
        let identity = |item: &Value| match strategy {
            ListStrategy::MergeKey(key) => item.get(key).cloned(),
            _ => Some(item.clone()),
        };
        let order_keys: Vec<Value> = order.iter().filter_map(identity).collect();
        let (patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|item| identity(item).is_some_and(|key| order_keys.contains(&key)));
        let live = live.cloned().unwrap_or_default();
        Ok(Some(normalize_order(
            patch_items,
            server_only,
            order,
            &live,
            identity,
        )))
    }
}

/// Orders a merged list as upstream's `normalizeElementOrder`: patch items sorted by
/// `patch_order`, server-only items by `server_order`, then interleaved so that a server-only
/// item goes before a patch item only when the live list had it before that item.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    identity: impl Fn(&Value) -> Option<Value>,
) -> Vec<Value> {
    let position = |list: &[Value], item: &Value| -> Option<usize> {
        let key = identity(item)?;
        list.iter()
            .position(|candidate| identity(candidate).as_ref() == Some(&key))
    };
    patch_items.sort_by_key(|item| position(patch_order, item).unwrap_or(usize::MAX));
    server_only.sort_by_key(|item| position(server_order, item).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                matches!((position(server_order, l), position(server_order, r)), (Some(li), Some(ri)) if li < ri)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Replaces a key's value without moving it (or appends a new key).
fn set_in_place(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_owned(), value);
        }
    }
}

fn string_list(value: &Value) -> Option<Vec<&str>> {
    value.as_array()?.iter().map(Value::as_str).collect()
}

fn nonempty_suffix(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|field| !field.is_empty())
}

/// A `$patch` value for an error message: the string itself, else its JSON type.
fn directive_name(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "<boolean>".to_owned(),
        Value::Number(_) => "<number>".to_owned(),
        Value::Array(_) => "<array>".to_owned(),
        Value::Object(_) => "<object>".to_owned(),
    }
}

fn render(path: &[&str]) -> String {
    if path.is_empty() {
        "<root>".to_owned()
    } else {
        path.join(".")
    }
}

/// A copy of a value with `null` object members removed, at every depth.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

#[cfg(test)]
mod tests;
