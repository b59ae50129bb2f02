//! Known-answer tests with fixed IVs and nonces, through the internal `seal_with_nonce` hook.
//!
//! The expected values were computed independently with Python (`cryptography` 48.0.0 for
//! AES-CBC with PKCS#7 and AES-GCM, `pynacl` 1.6.2 `SecretBox.encrypt(plaintext, nonce)` for
//! secretbox), prefix included; see the comments on each table. No real aescbc or secretbox
//! ciphertext with a published key exists (shared/vectors/README.md), hence these.

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut as _, KeyIvInit as _};
use zeroize::Zeroizing;

use super::*;

const PLAINTEXT: &[u8] = b"pandas are the best";
const KEY_16: &[u8] = b"snorlax_awesomes";
/// bytes 0x00..=0x17.
const KEY_24: [u8; 24] = byte_range::<24>(0);
/// bytes 0x00..=0x1f.
const KEY_32: [u8; 32] = byte_range::<32>(0);
/// bytes 0xa0..=0xaf.
const CBC_IV: [u8; 16] = byte_range::<16>(0xa0);
/// bytes 0xc0..=0xcb.
const GCM_NONCE: [u8; 12] = byte_range::<12>(0xc0);
/// bytes 0x40..=0x57.
const SECRETBOX_NONCE: [u8; 24] = byte_range::<24>(0x40);
const AAD: &[u8] = b"/registry/secrets/default/db";

/// Python: `iv + Cipher(AES(key), CBC(iv)).encryptor()` over `PKCS7(128).padder()` output.
const CBC_VECTORS: &[(usize, &[u8], &str)] = &[
    (
        16,
        PLAINTEXT,
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         c27584b46965dbfd9dbd9e6daa6fe7aef82e958e81a11475d9cdf20a34f1b9f7",
    ),
    (
        16,
        b"",
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         e42715f4831eb3e70a3077fa24d99c13",
    ),
    (
        16,
        b"0123456789abcdef",
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         554fcffcb3382ea5737f69ed4097723cc76843f442e90e0d712f757074b86a54",
    ),
    (
        24,
        PLAINTEXT,
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         644a4532ca8bb23b17ec15b3633420891fc2116088203dba51a3535478e416e0",
    ),
    (
        24,
        b"",
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         73ee240742a2255b5cafa898b8c7b098",
    ),
    (
        24,
        b"0123456789abcdef",
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         9b5884f05b02892f1cdc6d16a859fea7845de89a7ac26f8f66c61bd99fafc54f",
    ),
    (
        32,
        PLAINTEXT,
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         2dff7dd97b09c7d84e550834736cd0acfea2d6b33f129d470f30b2fd028885e3",
    ),
    (
        32,
        b"",
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         600d07a3b9b2c4e4082153d6d1707aa6",
    ),
    (
        32,
        b"0123456789abcdef",
        "6b38733a656e633a6165736362633a76313a6b6579313aa0a1a2a3a4a5a6a7a8a9aaabacadaeaf\
         ce1cf3a4e3b87b139ba3cff10ace35b606d96b2e184bf22b73d31ba4be14d8c9",
    ),
];

/// Python: `nonce + AESGCM(key).encrypt(nonce, PLAINTEXT, AAD)`.
const GCM_VECTORS: &[(usize, &str)] = &[
    (
        16,
        "6b38733a656e633a61657367636d3a76313a6b6579313ac0c1c2c3c4c5c6c7c8c9cacb\
         6a8f2991d7144921f81d2d1eea2f62e81e20b7fe325cf39cdf16be01e558204b59702b",
    ),
    (
        24,
        "6b38733a656e633a61657367636d3a76313a6b6579313ac0c1c2c3c4c5c6c7c8c9cacb\
         c8bf2296b20ab416793bea26eae5d409fefef7f80bc6445ee4864258ca0c6d6bc45064",
    ),
    (
        32,
        "6b38733a656e633a61657367636d3a76313a6b6579313ac0c1c2c3c4c5c6c7c8c9cacb\
         70294903160bb63feabcddd65ac9c8342900976c0e2cf57ffefe29f1061e7185625e6d",
    ),
];

/// Python (pynacl): `SecretBox(KEY_32).encrypt(plaintext, SECRETBOX_NONCE)`, which returns
/// nonce ‖ tag ‖ ciphertext, the NaCl layout that Go's `secretbox.Seal` also writes.
const SECRETBOX_VECTORS: &[(&[u8], &str)] = &[
    (
        PLAINTEXT,
        "6b38733a656e633a736563726574626f783a76313a6b6579313a\
         404142434445464748494a4b4c4d4e4f5051525354555657\
         dd42ce76943d5016ea0879d7da32ffb8\
         3a763b1d5b229b4bb43c511500ec7a93ab4432",
    ),
    (
        b"",
        "6b38733a656e633a736563726574626f783a76313a6b6579313a\
         404142434445464748494a4b4c4d4e4f5051525354555657\
         25ad7f4489ddd636717f1a6bbc7daf99",
    ),
];

#[test]
fn aescbc_known_answers() {
    for &(key_len, plaintext, expected) in CBC_VECTORS {
        let unit = keyed(Cipher::AesCbc, key(key_len));
        let stored = unit.seal_with_nonce(plaintext, AAD, &CBC_IV).unwrap();
        assert_eq!(
            to_hex(&stored),
            expected,
            "AES-{} {plaintext:?}",
            key_len * 8
        );
        // CBC has no AAD: any storage key reads it.
        let read = single(unit).from_storage(&stored, b"other").unwrap();
        assert_eq!(read.plaintext.as_slice(), plaintext);
    }
}

#[test]
fn aesgcm_known_answers() {
    for &(key_len, expected) in GCM_VECTORS {
        let unit = keyed(Cipher::AesGcm, key(key_len));
        let stored = unit.seal_with_nonce(PLAINTEXT, AAD, &GCM_NONCE).unwrap();
        assert_eq!(to_hex(&stored), expected, "AES-{}-GCM", key_len * 8);
        let read = single(unit).from_storage(&stored, AAD).unwrap();
        assert_eq!(read.plaintext.as_slice(), PLAINTEXT);
    }
}

#[test]
fn secretbox_known_answers_have_the_nacl_layout() {
    for &(plaintext, expected) in SECRETBOX_VECTORS {
        let unit = keyed(Cipher::Secretbox, KEY_32.to_vec());
        let stored = unit
            .seal_with_nonce(plaintext, AAD, &SECRETBOX_NONCE)
            .unwrap();
        assert_eq!(to_hex(&stored), expected, "{plaintext:?}");
        let read = single(unit).from_storage(&stored, b"other").unwrap();
        assert_eq!(read.plaintext.as_slice(), plaintext);
    }
}

#[test]
fn wrong_nonce_length_is_an_error_not_a_panic() {
    for cipher in [Cipher::AesCbc, Cipher::AesGcm, Cipher::Secretbox] {
        let unit = keyed(cipher, KEY_32.to_vec());
        let err = unit.seal_with_nonce(PLAINTEXT, AAD, &[0; 5]).unwrap_err();
        assert!(matches!(err, TransformError::Encrypt { .. }), "{err:?}");
    }
}

#[test]
fn cbc_padding_is_checked_like_go() {
    let unit = keyed(Cipher::AesCbc, KEY_32.to_vec());
    // Encrypt raw blocks (no padding added) to control the last bytes.
    let raw = |body: &[u8]| {
        let mut out = unit.prefix.clone();
        out.extend_from_slice(&CBC_IV);
        let mut buf = body.to_vec();
        let len = buf.len();
        cbc::Encryptor::<aes::Aes256>::new_from_slices(&KEY_32, &CBC_IV)
            .unwrap()
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .unwrap();
        out.extend_from_slice(&buf);
        out
    };
    let transformer = single(keyed(Cipher::AesCbc, KEY_32.to_vec()));

    // Go accepts padding longer than one block, as long as it is consistent.
    let mut body = b"0123456789abcdef".to_vec();
    body.extend_from_slice(&[32; 32]);
    let read = transformer.from_storage(&raw(&body), AAD).unwrap();
    assert_eq!(read.plaintext.as_slice(), b"0123456789abcdef");

    for bad in [
        [0u8; 16].to_vec(),                         // padding byte 0
        [17u8; 16].to_vec(),                        // longer than the body
        [&[1u8; 14][..], &[2, 3]].concat(),         // inconsistent
        [&b"abcdefghijklmn"[..], &[1, 2]].concat(), // inconsistent
    ] {
        let err = transformer.from_storage(&raw(&bad), AAD).unwrap_err();
        assert_eq!(only_failure(&err), AttemptFailure::Decrypt, "{bad:?}");
    }
}

#[test]
fn short_or_misaligned_payloads_are_malformed() {
    let cases: &[(Cipher, &[usize])] = &[
        (Cipher::AesCbc, &[0, 15, 16, 17, 31, 33]),
        (Cipher::AesGcm, &[0, 11, 12, 27]),
        (Cipher::Secretbox, &[0, 23, 24, 39]),
    ];
    for &(cipher, lens) in cases {
        let unit = keyed(cipher, KEY_32.to_vec());
        let prefix = unit.prefix.clone();
        let transformer = single(unit);
        for &len in lens {
            let mut stored = prefix.clone();
            stored.resize(prefix.len() + len, 0xaa);
            let err = transformer.from_storage(&stored, AAD).unwrap_err();
            assert_eq!(
                only_failure(&err),
                AttemptFailure::Malformed,
                "{cipher:?} {len}"
            );
        }
    }
}

#[test]
fn nonces_are_fresh_on_every_write() {
    for cipher in [Cipher::AesCbc, Cipher::AesGcm, Cipher::Secretbox] {
        let transformer = single(keyed(cipher, KEY_32.to_vec()));
        let a = transformer.to_storage(PLAINTEXT, AAD).unwrap();
        let b = transformer.to_storage(PLAINTEXT, AAD).unwrap();
        assert_ne!(a, b, "{cipher:?}");
    }
}

// === helpers ===

fn key(len: usize) -> Vec<u8> {
    match len {
        16 => KEY_16.to_vec(),
        24 => KEY_24.to_vec(),
        _ => KEY_32.to_vec(),
    }
}

fn keyed(cipher: Cipher, key: Vec<u8>) -> KeyedUnit {
    KeyedUnit::new(
        cipher,
        "key1".to_owned(),
        KeyMaterial::new(Zeroizing::new(key)),
    )
}

fn single(unit: KeyedUnit) -> ResourceTransformer {
    ResourceTransformer {
        units: vec![Arc::new(Unit::Keyed(unit))],
    }
}

fn only_failure(err: &TransformError) -> AttemptFailure {
    match err {
        TransformError::Decrypt { attempts } => {
            assert_eq!(attempts.len(), 1);
            attempts.iter().next().unwrap().reason()
        }
        other => panic!("{other:?}"),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const fn byte_range<const N: usize>(start: u8) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = start + i as u8;
        i += 1;
    }
    out
}
