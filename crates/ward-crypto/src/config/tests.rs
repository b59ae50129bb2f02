use super::*;

fn duration(text: &str) -> Option<Duration> {
    match parse_go_duration(text) {
        Some(GoDuration::Positive(d)) => Some(d),
        _ => None,
    }
}

#[test]
fn go_durations() {
    assert_eq!(duration("3s"), Some(Duration::from_secs(3)));
    assert_eq!(duration("+3s"), Some(Duration::from_secs(3)));
    assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(duration(".5s"), Some(Duration::from_millis(500)));
    assert_eq!(duration("1h2m3s"), Some(Duration::from_secs(3723)));
    assert_eq!(duration("10us"), Some(Duration::from_micros(10)));
    assert_eq!(duration("10\u{b5}s"), Some(Duration::from_micros(10)));
    assert_eq!(duration("7ns"), Some(Duration::from_nanos(7)));
    assert_eq!(
        duration("2562047h"),
        Some(Duration::from_secs(2_562_047 * 3600))
    );
    for not_positive in ["0", "-3s", "0s", "0.0h", "-0"] {
        assert!(
            matches!(
                parse_go_duration(not_positive),
                Some(GoDuration::NotPositive)
            ),
            "{not_positive}"
        );
    }
    for invalid in [
        "",
        "3",
        "s",
        "3 s",
        "3x",
        "1.s.",
        "-",
        "3sec",
        "9999999999999999999h",
        ".",
    ] {
        assert!(parse_go_duration(invalid).is_none(), "{invalid}");
    }
}

#[test]
fn unknown_field_names_are_echoed_only_when_they_look_like_names() {
    assert_eq!(quote_field_name("resource"), "`resource`");
    assert_eq!(quote_field_name("apiVersion"), "`apiVersion`");
    assert_eq!(quote_field_name("secret:c2VjcmV0"), "(name not shown)");
    assert_eq!(
        quote_field_name("c2VjcmV0c2VjcmV0c2VjcmV0"),
        "(name not shown)"
    );
    assert_eq!(quote_field_name(""), "(name not shown)");
}

#[test]
fn parser_locations_are_one_based() {
    let err = EncryptionConfig::from_bytes(b"kind: x\nbogus: 1\n", "f.yaml").unwrap_err();
    match err {
        ConfigError::Syntax {
            line,
            column,
            reason,
            ..
        } => {
            assert_eq!((line, column), (2, 1), "{reason}");
            assert!(reason.contains("unknown field `bogus`"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn comment_only_file_is_empty() {
    let err = EncryptionConfig::from_bytes(b"# nothing here\n", "f.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::Empty { .. }), "{err:?}");
    let err = EncryptionConfig::from_bytes(b"---\n", "f.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::Empty { .. }), "{err:?}");
}

#[test]
fn content_hash_is_sha256_hex() {
    // sha256("") is well known.
    assert_eq!(
        content_hash(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn sizes_are_described() {
    assert_eq!(describe_sizes(&[16, 24, 32]), "16, 24 or 32 bytes");
    assert_eq!(describe_sizes(&[32]), "32 bytes");
}

#[test]
fn go_base64_quirks() {
    // Newlines are ignored, as by Go's StdEncoding.
    let text = SecretText::new("c25vcmxheF9h\nd2Vzb21lcw==");
    let key = decode_key(Some(&text), AES_KEY_SIZES).unwrap();
    assert_eq!(key.expose_secret(), b"snorlax_awesomes");
    // Unpadded or URL-safe base64 is not standard base64.
    for bad in [
        "c25vcmxheF9hd2Vzb21lcw",
        "c25vcmxheF9hd2Vzb21lcw=",
        "-_-_c25vcmxheF9hd2Vzb21lcw==",
    ] {
        let text = SecretText::new(bad);
        let message = decode_key(Some(&text), AES_KEY_SIZES).unwrap_err();
        assert!(
            message.contains("not valid standard base64"),
            "{bad}: {message}"
        );
    }
}
