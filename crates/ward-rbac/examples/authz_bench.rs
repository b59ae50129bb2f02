//! Authorization cost with 10,000 Roles and RoleBindings (plus 1,000 ClusterRoleBindings and the
//! bootstrap policy): index build time and per-decision latency (p50, p99, max).
//!
//! Run: `cargo run --release -p ward-rbac --example authz_bench`

use std::time::{Duration, Instant};

use serde_json::json;
use ward_rbac::{Attributes, RbacIndex, UserInfo, bootstrap};

fn main() {
    const N: usize = 10_000;
    let roles: Vec<_> = (0..N)
        .map(|i| {
            json!({"metadata": {"namespace": format!("ns{}", i % 100), "name": format!("role{i}")},
                   "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                              "resourceNames": [format!("secret{i}")]},
                             {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
        })
        .collect();
    let bindings: Vec<_> = (0..N)
        .map(|i| {
            json!({"metadata": {"namespace": format!("ns{}", i % 100), "name": format!("rb{i}")},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("role{i}")},
                   "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": format!("user{i}")},
                                {"kind": "ServiceAccount", "name": format!("sa{i}"), "namespace": format!("ns{}", i % 100)}]})
        })
        .collect();
    let mut crbs = bootstrap::cluster_role_bindings();
    for i in 0..1_000 {
        crbs.push(json!({"metadata": {"name": format!("crb{i}")},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                         "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": format!("group{i}")}]}));
    }
    let started = Instant::now();
    let (index, warnings) = RbacIndex::build(&roles, &bootstrap::cluster_roles(), &bindings, &crbs);
    let build = started.elapsed();
    assert!(warnings.is_empty(), "{warnings:?}");

    let mut samples = Vec::with_capacity(200_000);
    let mut allowed = 0;
    for round in 0..200_000usize {
        let i = (round * 7919) % N;
        let user =
            UserInfo::new(format!("user{i}")).with_groups(["system:authenticated", "group7"]);
        // Alternate an allowed GET and a denied one (another user's secret).
        let name = if round % 2 == 0 {
            format!("secret{i}")
        } else {
            format!("secret{}", (i + 1) % N)
        };
        let a = Attributes::resource(user, "get", "", "secrets")
            .in_namespace(&format!("ns{}", i % 100))
            .with_name(&name);
        let t = Instant::now();
        let d = index.authorize(&a);
        samples.push(t.elapsed());
        allowed += usize::from(d.is_allow());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "roles: {N}, rolebindings: {N}, clusterrolebindings: {}",
        crbs.len()
    );
    println!("index build: {:.1} ms", build.as_secs_f64() * 1e3);
    println!(
        "decisions: {} ({} allowed), p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        samples.len(),
        allowed,
        us(pct(0.50)),
        us(pct(0.99)),
        us(pct(1.0))
    );
    assert_eq!(allowed, samples.len() / 2, "half the requests are allowed");
}
