//! Code generated from `proto/` by `tonic-prost-build` (see `build.rs`): the KMS v2 service
//! (`v2.KeyManagementService` client and server), the stored `EncryptedObject`, and the
//! deprecated KMS v1 service (`v1beta1.KeyManagementService`), which Ward only reads through.

/// Protobuf package `v2`.
// Generated code: its style is tonic-prost-build's, not ours.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    clippy::all,
    clippy::pedantic
)]
pub mod v2 {
    tonic::include_proto!("v2");
}

/// Protobuf package `v1beta1` (KMS v1).
// Generated code: its style is tonic-prost-build's, not ours.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    clippy::all,
    clippy::pedantic
)]
pub mod v1beta1 {
    tonic::include_proto!("v1beta1");
}
