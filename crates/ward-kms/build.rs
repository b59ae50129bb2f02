//! Generates the KMS v2 and KMS v1 (`v1beta1`) gRPC clients and servers (tonic) and the
//! `EncryptedObject` message (prost) from `proto/`. Needs `protoc` (Debian `protobuf-compiler`)
//! or `PROTOC`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .btree_map(".")
        .compile_protos(
            &[
                "proto/kms_v2.proto",
                "proto/encrypted_object.proto",
                "proto/kms_v1beta1.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
