//! Encrypt + decrypt throughput of each local provider, for 1 KiB and 100 KiB values, with the
//! etcd key as AAD, through the same `ResourceTransformer` calls the server makes.
//!
//! Run: `cargo run --release -p ward-crypto --example provider_bench`

use std::time::Instant;

use ward_crypto::{EncryptionConfig, Transformers};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn transformers(provider: &str) -> Transformers {
    let block = if provider == "identity" {
        "      - identity: {}\n".to_owned()
    } else {
        format!(
            "      - {provider}:\n          keys:\n            - name: k1\n              secret: {KEY}\n"
        )
    };
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{block}"
    );
    let config = EncryptionConfig::from_bytes(yaml.as_bytes(), "bench.yaml").expect("config");
    Transformers::from_config(config).expect("transformers")
}

fn main() {
    let aad = b"/registry/secrets/default/bench";
    println!("| provider | value | encrypt+decrypt ops/s | µs per op |");
    println!("|---|---:|---:|---:|");
    for provider in ["identity", "aescbc", "aesgcm", "secretbox"] {
        let t = transformers(provider);
        let r = t.for_resource("", "secrets");
        for size in [1024usize, 100 * 1024] {
            let plain = vec![0x5au8; size];
            let iterations = if size == 1024 { 100_000 } else { 2_000 };
            let started = Instant::now();
            for _ in 0..iterations {
                let stored = r.to_storage(&plain, aad).expect("encrypt");
                let back = r.from_storage(&stored, aad).expect("decrypt");
                assert_eq!(back.plaintext.len(), size);
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "| {provider} | {} KiB | {:.0} | {:.2} |",
                size / 1024,
                iterations as f64 / secs,
                secs * 1e6 / iterations as f64
            );
        }
    }
}
