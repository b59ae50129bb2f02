//! Decodes arbitrary bytes as a Kubernetes protobuf body; whatever decodes must encode again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = ward_api::protobuf::decode(data) {
        let _ = ward_api::protobuf::encode(&object);
    }
});
