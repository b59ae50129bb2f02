use std::collections::BTreeMap;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn hkdf_expand_only_matches_the_vector() {
    // vectors/hkdf-xnonce-gcm-unit-legacy.txt
    let seed = SecretKey32::from_slice(&hex(
        "5d40323a820ff95561675e3b95e81867c5fdd561d35a88a2d08b08aa9d4fcf5c",
    ))
    .unwrap();
    let info = hex("2442759e33945fbad709db577a0f037fd8a709fc76979b8942209debcecb9d57");
    let key = derive_key(&seed, &info).unwrap();
    assert_eq!(
        key.as_slice(),
        hex("6e58b7659c304b0c382f42f16bd700465def1dead80bf6f1bf1d52073bdb0c00")
    );
}

#[test]
fn cache_is_bounded_and_expires() {
    let mut cache = SourceCache::default();
    let now = Instant::now();
    for i in 0..(CACHE_CAPACITY + 10) {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let source = Arc::new(DekSource::AesGcmKey(Zeroizing::new(vec![0; 16])));
        cache.insert(key, source, now + Duration::from_millis(i as u64));
    }
    assert_eq!(cache.entries.len(), CACHE_CAPACITY);
    let mut first = [0u8; 32];
    first[..8].copy_from_slice(&0u64.to_be_bytes());
    assert!(
        cache.get(&first, now).is_none(),
        "the oldest entry was evicted"
    );
    let mut last = [0u8; 32];
    last[..8].copy_from_slice(&((CACHE_CAPACITY + 9) as u64).to_be_bytes());
    assert!(cache.get(&last, now).is_some());
    assert!(cache.get(&last, now + 2 * CACHE_TTL).is_none());
}

#[test]
fn cache_keys_cover_every_field() {
    let base = WrappedKey {
        ciphertext: vec![1, 2],
        key_id: "k".into(),
        annotations: BTreeMap::new(),
    };
    let seed = EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed;
    let key = cache_key(seed, &base);
    assert_ne!(key, cache_key(EncryptedDekSourceType::AesGcmKey, &base));
    let mut other = base.clone();
    other.key_id = "k2".into();
    assert_ne!(key, cache_key(seed, &other));
    let mut other = base;
    other.annotations.insert("a.b".into(), vec![]);
    assert_ne!(key, cache_key(seed, &other));
    // Length prefixes keep field boundaries apart.
    let shifted = WrappedKey {
        ciphertext: vec![1, 2, 1],
        key_id: String::new(),
        annotations: BTreeMap::new(),
    };
    assert_ne!(key, cache_key(seed, &shifted));
}

#[test]
fn validate_object_names_the_field() {
    let good = EncryptedObject {
        encrypted_data: vec![1],
        key_id: "1".into(),
        encrypted_dek_source: vec![1],
        annotations: BTreeMap::new(),
        encrypted_dek_source_type: 1,
    };
    assert!(validate_object(&good).is_ok());
    type Breaker = fn(&mut EncryptedObject);
    let cases: [(&str, Breaker); 5] = [
        ("encryptedData", |o| o.encrypted_data.clear()),
        ("keyID", |o| o.key_id.clear()),
        ("encryptedDEKSource", |o| o.encrypted_dek_source.clear()),
        ("annotations", |o| {
            o.annotations.insert("Bad Name".into(), vec![]);
        }),
        ("encryptedDEKSourceType", |o| {
            o.encrypted_dek_source_type = 7
        }),
    ];
    for (field, break_it) in cases {
        let mut object = good.clone();
        break_it(&mut object);
        let err = validate_object(&object).unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}
