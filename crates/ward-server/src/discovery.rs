//! Discovery (`/api`, `/apis`, `/api/v1`, aggregated v2), `/version` and a minimal OpenAPI v3.
//!
//! All documents are derived from `ward_api::resources::RESOURCES`.

use std::net::SocketAddr;

use serde_json::{Value, json};
use ward_api::resources::{RESOURCES, ResourceInfo};

/// `/version`: minor 32, so kubectl's dispatcher runs kubectl 1.32.
pub(crate) fn version() -> Value {
    json!({"major": "1", "minor": "32", "gitVersion": concat!("v1.32.0-ward.", env!("CARGO_PKG_VERSION")),
           "gitCommit": "ward", "gitTreeState": "clean", "buildDate": "2026-11-26T00:00:00Z",
           "goVersion": "go1.23.3", "compiler": "gc", "platform": "linux/amd64"})
}

fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = RESOURCES
        .iter()
        .map(|r| r.group)
        .filter(|g| !g.is_empty())
        .collect();
    g.dedup();
    g
}

/// Legacy `/api`.
pub(crate) fn api_versions(addr: SocketAddr) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}]})
}

/// Legacy `/apis`.
pub(crate) fn api_groups() -> Value {
    let groups: Vec<Value> = groups().into_iter().map(group_doc).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, `None` if not served.
pub(crate) fn api_group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let mut g = group_doc(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn group_doc(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv], "preferredVersion": gv})
}

/// `/api/v1` or `/apis/<g>/<v>` (`APIResourceList`), `None` if not served.
pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let mut v = json!({"name": r.resource, "singularName": r.singular,
                               "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs});
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            v
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}),
    )
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut v = json!({"resource": r.resource,
                       "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                       "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                       "singularResource": r.singular, "verbs": r.verbs});
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    v
}

/// Aggregated discovery for `/api` (core) or `/apis` (groups).
pub(crate) fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        let resources: Vec<Value> = RESOURCES
            .iter()
            .filter(|r| r.group.is_empty())
            .map(aggregated_resource)
            .collect();
        vec![json!({"metadata": {"creationTimestamp": null},
                    "versions": [{"version": "v1", "freshness": "Current", "resources": resources}]})]
    } else {
        groups()
            .into_iter()
            .map(|g| {
                let resources: Vec<Value> =
                    RESOURCES.iter().filter(|r| r.group == g).map(aggregated_resource).collect();
                json!({"metadata": {"name": g, "creationTimestamp": null},
                       "versions": [{"version": "v1", "freshness": "Current", "resources": resources}]})
            })
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"),
           "metadata": {}, "items": items})
}

const OPENAPI_HASH: &str = concat!("ward-", env!("CARGO_PKG_VERSION"));

/// `/openapi/v3`: one entry per served group-version.
pub(crate) fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={OPENAPI_HASH}")}),
    );
    for g in groups() {
        if !RESOURCES.iter().any(|r| r.group == g && r.persisted) {
            continue;
        }
        paths.insert(
            format!("apis/{g}/v1"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/v1?hash={OPENAPI_HASH}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<gv>`: PATCH operations that declare `fieldValidation`, so kubectl leaves
/// validation to the server (which enforces it), `None` if not served.
pub(crate) fn openapi_group_version(group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && r.persisted)
    {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.resource)
        } else {
            format!("{base}/{}/{{name}}", r.resource)
        };
        let params = json!([{"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                            {"name": "force", "in": "query", "schema": {"type": "boolean"}}]);
        paths.insert(
            path,
            json!({"patch": {"operationId": format!("patch{}", r.kind), "x-kubernetes-action": "patch",
                   "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                   "parameters": params, "responses": {"200": {"description": "OK"}}}}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
                "components": {"schemas": {}}, "paths": paths}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_served_resources() {
        let l = resource_list("", "v1").expect("core");
        let names: Vec<&str> = l["resources"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"secrets") && names.contains(&"namespaces"));
        assert!(resource_list("nope", "v1").is_none());
        let agg = aggregated(true, "v2");
        assert_eq!(
            agg["items"][0]["versions"][0]["resources"]
                .as_array()
                .map(Vec::len),
            Some(names.len())
        );
        let oa = openapi_group_version("", "v1").expect("core");
        assert!(oa["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"].is_object());
    }
}
