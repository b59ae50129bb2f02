//! Kubernetes wire types and semantics for Ward, with no IO.
//!
//! Objects travel through Ward as JSON values (`serde_json::Value`) in their Kubernetes JSON
//! shape; this crate converts them to and from the other encodings (protobuf, YAML), parses
//! selectors, applies patches, validates names and builds `Status` errors.
//!
//! It must never depend on a storage backend, an HTTP stack or a crypto crate.

pub mod managed;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod status;
pub mod strategy;
pub mod table;
pub mod validation;

pub use resources::ResourceInfo;
pub use status::{ApiError, FieldError};
