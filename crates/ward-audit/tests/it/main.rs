//! Integration tests of `ward-audit`'s public API: one binary, one module per area.

// Helpers outside `#[test]` functions panic on failure too; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod event;
mod garbage;
mod log;
mod policy;
mod sanitize;

use ward_audit::Policy;

/// Parses a policy from YAML text, panicking on any error.
pub(crate) fn policy(yaml: &str) -> Policy {
    Policy::from_bytes(yaml.as_bytes(), "test.yaml").unwrap()
}
