//! audit.k8s.io Policy files: parsing, sanitizing and evaluating never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut policy) = ward_audit::Policy::from_bytes(data, "fuzz.yaml") {
        let _ = policy.sanitize();
        let groups = vec!["system:authenticated".to_owned()];
        let attrs = ward_audit::RequestAttributes {
            user: "alice",
            groups: &groups,
            verb: "get",
            resource: "secrets",
            namespace: "default",
            name: "db",
            resource_request: true,
            path: "/api/v1/namespaces/default/secrets/db",
            ..Default::default()
        };
        let _ = policy.evaluate(&attrs);
    }
});
