//! Generates the KMS v2 gRPC client and server (tonic) and the `EncryptedObject` message
//! (prost) from `proto/`. Needs `protoc` (Debian `protobuf-compiler`) or `PROTOC`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .btree_map(".")
        .compile_protos(
            &["proto/kms_v2.proto", "proto/encrypted_object.proto"],
            &["proto"],
        )?;
    Ok(())
}
