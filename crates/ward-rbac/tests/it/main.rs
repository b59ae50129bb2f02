//! Integration tests for ward-rbac: one binary, one module per topic.

// Helpers outside `#[test]` functions panic on failure too; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod bootstrap;
mod escalation;
mod index;
mod reference;
mod vectors;
mod who_can;

use serde_json::Value;
use ward_rbac::{Attributes, PolicyRule, UserInfo};

/// A JSON file from `tests/vectors`.
fn vector(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn rules(value: &Value) -> Vec<PolicyRule> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| PolicyRule::from_value(rule).unwrap())
        .collect()
}

fn string(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A request row of a vector file: `user`, `groups`, `verb`, `apiGroup`, `resource`,
/// `subresource`, `name`, `namespace`, `path`, `resourceRequest` (default: true unless `path`
/// is set).
fn attributes(row: &Value) -> Attributes {
    let groups: Vec<String> = row
        .get("groups")
        .and_then(Value::as_array)
        .map(|groups| {
            groups
                .iter()
                .map(|g| g.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let resource_request = row
        .get("resourceRequest")
        .and_then(Value::as_bool)
        .unwrap_or_else(|| row.get("path").is_none());
    Attributes {
        user: UserInfo::new(string(row, "user")).with_groups(groups),
        verb: string(row, "verb"),
        namespace: string(row, "namespace"),
        api_group: string(row, "apiGroup"),
        api_version: String::new(),
        resource: string(row, "resource"),
        subresource: string(row, "subresource"),
        name: string(row, "name"),
        resource_request,
        path: string(row, "path"),
    }
}
