//! RBAC objects from arbitrary JSON: building the index and authorizing never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_rbac::{Attributes, RbacIndex, UserInfo};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let objects = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    let (index, _) = RbacIndex::build(&objects, &objects, &objects, &objects);
    let user = UserInfo::new("alice").with_groups(["system:authenticated"]);
    let get = Attributes::resource(user.clone(), "get", "", "secrets").in_namespace("default").with_name("db");
    let _ = index.authorize(&get);
    let _ = index.rules_for(&user, "default");
});
