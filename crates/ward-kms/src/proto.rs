//! Code generated from `proto/` by `tonic-prost-build` (see `build.rs`): the KMS v2 service
//! (`v2.KeyManagementService` client and server) and the stored `EncryptedObject`.

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
