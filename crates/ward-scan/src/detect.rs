//! Does a key/value pair look like a credential?
//!
//! Three signals, strongest first:
//! 1. the value contains a known token format (AWS key ID, GitHub/GitLab/Slack/npm/Stripe token,
//!    Google API key, PEM private key, JSON Web Token, a URL with a password);
//! 2. the key's name says credential (`DB_PASSWORD`, `apiKey`, `client-secret`) and the value is
//!    a literal, not a reference (`$(VAR)`, `${VAR}`), a path or a placeholder;
//! 3. the value alone looks random (high Shannon entropy over a token alphabet).
//!
//! Only descriptions are returned, never the value or part of it. Matching is hand-written
//! over bytes: linear in the input, no regex engine, no allocation per candidate.

use base64::Engine as _;

/// How sure a detection is; rules map it to a severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Confidence {
    /// The value looks random, nothing else.
    Entropy,
    /// The key name says credential and the value is a literal.
    KeyName,
    /// A known token format.
    Format,
}

/// A detection, described without the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Detection {
    pub(crate) confidence: Confidence,
    /// What looked wrong, e.g. "value contains an AWS access key ID".
    pub(crate) reason: String,
}

/// Classifies one key and its value. `allow_entropy_only` enables signal 3 on its own.
pub(crate) fn assess(key: &str, value: &str, allow_entropy_only: bool) -> Option<Detection> {
    if let Some(format) = find_formats(value).first() {
        return Some(Detection {
            confidence: Confidence::Format,
            reason: format!("value contains {format}"),
        });
    }
    if let Some(format) = base64_wrapped_format(value) {
        return Some(Detection {
            confidence: Confidence::Format,
            reason: format!("value is base64 of text containing {format}"),
        });
    }
    let name = classify_name(key);
    let literal = is_literal_secret(value);
    match name {
        NameHint::Strong if literal => Some(Detection {
            confidence: Confidence::KeyName,
            reason: "key name suggests a credential and the value is a literal".to_owned(),
        }),
        NameHint::Weak if literal && looks_random(value, true) => Some(Detection {
            confidence: Confidence::KeyName,
            reason: "key name ends in `key` and the value looks random".to_owned(),
        }),
        NameHint::Excluded => None,
        _ if allow_entropy_only && literal && looks_random(value, false) => Some(Detection {
            confidence: Confidence::Entropy,
            reason: "value looks random (high entropy)".to_owned(),
        }),
        _ => None,
    }
}

/// Classifies a multi-line value (an embedded config file): token formats anywhere, then
/// `key = value` / `key: value` / `export KEY=value` lines by their key name. Returns the
/// detections with the 0-based line offset inside the text and, for line matches, the inner key.
pub(crate) fn assess_text(text: &str) -> Vec<(usize, Option<String>, Detection)> {
    let mut found = Vec::new();
    for (offset, line) in text.lines().enumerate() {
        let formats = find_formats(line);
        if let Some(format) = formats.first() {
            found.push((
                offset,
                None,
                Detection {
                    confidence: Confidence::Format,
                    reason: format!("embedded text contains {format}"),
                },
            ));
            continue;
        }
        let Some((inner_key, inner_value)) = split_assignment(line) else {
            continue;
        };
        if classify_name(inner_key) == NameHint::Strong && is_literal_secret(inner_value) {
            found.push((
                offset,
                Some(inner_key.to_owned()),
                Detection {
                    confidence: Confidence::KeyName,
                    reason: "embedded setting whose name suggests a credential has a literal \
                             value"
                        .to_owned(),
                },
            ));
        }
    }
    found
}

/// Decodes base64 `binaryData` and looks for token formats or credential settings in it.
pub(crate) fn assess_binary(encoded: &str) -> Option<Detection> {
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()?;
    // DER-encoded PKCS#8/PKCS#1 keys are binary; their PEM form is caught below.
    let text = String::from_utf8_lossy(&bytes);
    let mut formats = find_formats(&text);
    if let Some(format) = formats.drain(..).next() {
        return Some(Detection {
            confidence: Confidence::Format,
            reason: format!("decoded binaryData contains {format}"),
        });
    }
    let settings = assess_text(&text);
    settings.into_iter().next().map(|(_, key, _)| Detection {
        confidence: Confidence::KeyName,
        reason: format!(
            "decoded binaryData has a setting `{}` whose name suggests a credential, with a \
             literal value",
            key.unwrap_or_default()
        ),
    })
}

/// What a key name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameHint {
    /// Names a file, URL, length, switch…: not a credential even if it says "password".
    Excluded,
    /// Nothing credential-like.
    None,
    /// Ends in `key` (`STRIPE_KEY`): a credential only if the value also looks random.
    Weak,
    /// `password`, `token`, `secret`, `apiKey`…
    Strong,
}

/// Classifies a key name by its words (`DB_PASSWORD`, `apiKey`, `client-secret`).
pub(crate) fn classify_name(key: &str) -> NameHint {
    let words = split_words(key);
    if words.is_empty() {
        return NameHint::None;
    }
    if words.iter().any(|w| EXCLUDED_WORDS.contains(&w.as_str())) {
        return NameHint::Excluded;
    }
    let strong = words.iter().any(|w| STRONG_WORDS.contains(&w.as_str()))
        || words
            .windows(2)
            .any(|pair| STRONG_PAIRS.contains(&(pair[0].as_str(), pair[1].as_str())));
    if strong {
        NameHint::Strong
    } else if words.last().is_some_and(|w| w == "key") {
        NameHint::Weak
    } else {
        NameHint::None
    }
}

/// Every token format found in `text`, by name (no duplicates, in a fixed order).
pub(crate) fn find_formats(text: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    let b = text.as_bytes();
    let mut check = |name: &'static str, hit: bool| {
        if hit && !found.contains(&name) {
            found.push(name);
        }
    };
    check("a PEM private key", has_pem_private_key(text));
    check(
        "an AWS access key ID",
        ["AKIA", "ASIA", "ABIA", "ACCA"]
            .iter()
            .any(|p| prefixed_token(b, p.as_bytes(), 16, 16, is_upper_digit)),
    );
    check(
        "a GitHub token",
        ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]
            .iter()
            .any(|p| prefixed_token(b, p.as_bytes(), 36, 255, is_alnum))
            || prefixed_token(b, b"github_pat_", 22, 255, is_word),
    );
    check(
        "a GitLab token",
        prefixed_token(b, b"glpat-", 20, 255, is_token),
    );
    check(
        "a Slack token",
        ["xoxb-", "xoxa-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"]
            .iter()
            .any(|p| prefixed_token(b, p.as_bytes(), 10, 255, is_token)),
    );
    check(
        "a Slack webhook URL",
        text.contains("hooks.slack.com/services/T"),
    );
    check(
        "a Google API key",
        prefixed_token(b, b"AIza", 35, 35, is_token),
    );
    check(
        "a Stripe secret key",
        ["sk_live_", "rk_live_"]
            .iter()
            .any(|p| prefixed_token(b, p.as_bytes(), 16, 255, is_alnum)),
    );
    check("an npm token", prefixed_token(b, b"npm_", 36, 36, is_alnum));
    check("a JSON Web Token", has_jwt(b));
    check("a URL with an embedded password", has_url_password(text));
    found
}

// === helpers ===

/// Splits `DB_PASSWORD`, `apiKey`, `APIKey`, `client-secret.txt` into lower-case words.
fn split_words(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// A value that could be a credential: not empty, not a reference, a path, a switch or a
/// placeholder.
fn is_literal_secret(value: &str) -> bool {
    let v = value.trim();
    if v.chars().count() < 4 || v.contains('\n') {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    if PLACEHOLDERS.contains(&lower.as_str()) {
        return false;
    }
    let references = (v.starts_with("$(") && v.ends_with(')'))
        || (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with("{{") && v.ends_with("}}"))
        || (v.starts_with('<') && v.ends_with('>'))
        || v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("file:")
        || v.starts_with("vault:")
        || v.starts_with("ref+")
        || v.starts_with("arn:");
    if references {
        return false;
    }
    // `*****`, `xxxxxx`: one repeated character is a mask.
    let mut chars = v.chars();
    let first = chars.next();
    !chars.all(|c| Some(c) == first)
}

/// A token of at least 20 characters from a key alphabet with high Shannon entropy, that is not
/// a UUID, a path, a host name or a URL. Hex strings count only with `allow_hex`: alone they are
/// far more often digests and commit ids than keys.
fn looks_random(value: &str, allow_hex: bool) -> bool {
    let v = value.trim();
    let len = v.len();
    if !(20..=4096).contains(&len) {
        return false;
    }
    if !v
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"+/=_-.~".contains(&c))
    {
        return false;
    }
    if is_uuid(v) || v.contains("://") || v.starts_with('/') {
        return false;
    }
    let has_upper = v.bytes().any(|c| c.is_ascii_uppercase());
    let has_lower = v.bytes().any(|c| c.is_ascii_lowercase());
    let has_digit = v.bytes().any(|c| c.is_ascii_digit());
    let entropy = shannon_entropy(v);
    if v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return allow_hex && len >= 32 && entropy >= 3.5 && has_digit;
    }
    // Dotted lower-case names (`my-svc.ns.svc.cluster.local`) are not tokens.
    if v.contains('.') && !has_upper {
        return false;
    }
    has_upper && has_lower && has_digit && entropy >= 4.0
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

fn is_uuid(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// A single-line value that is base64 of text containing a known token format.
fn base64_wrapped_format(value: &str) -> Option<&'static str> {
    let v = value.trim();
    if v.len() < 16 || !v.len().is_multiple_of(4) || v.contains(char::is_whitespace) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_bytes())
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    find_formats(text).first().copied()
}

/// `key = value`, `key: value`, `export KEY="value"`, from one line of a config file.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.starts_with('#') || line.starts_with("//") || line.starts_with(';') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let split = line.find(['=', ':'])?;
    let key = line[..split].trim().trim_matches(['"', '\'']);
    let value = line[split + 1..]
        .trim()
        .trim_end_matches(',')
        .trim_matches(['"', '\'']);
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    Some((key, value))
}

fn has_pem_private_key(text: &str) -> bool {
    text.match_indices("-----BEGIN ").any(|(i, _)| {
        let rest = &text[i + "-----BEGIN ".len()..];
        let line = rest.split('\n').next().unwrap_or_default();
        line.len() <= 40 && line.trim_end().ends_with("PRIVATE KEY-----")
    })
}

/// `prefix` followed by `min..=max` characters of `class`, not preceded by a word character.
fn prefixed_token(b: &[u8], prefix: &[u8], min: usize, max: usize, class: fn(u8) -> bool) -> bool {
    let mut start = 0;
    while let Some(pos) = find(&b[start..], prefix) {
        let at = start + pos;
        let preceded = at > 0 && is_alnum(b[at - 1]);
        let body = &b[at + prefix.len()..];
        let n = body.iter().take_while(|c| class(**c)).count();
        if !preceded && n >= min && n <= max {
            return true;
        }
        start = at + 1;
    }
    false
}

/// `eyJ<base64url>.eyJ<base64url>.<base64url>`: a JWT whose header and payload are JSON objects.
fn has_jwt(b: &[u8]) -> bool {
    let mut start = 0;
    while let Some(pos) = find(&b[start..], b"eyJ") {
        let at = start + pos;
        let header = b[at..].iter().take_while(|c| is_token(**c)).count();
        let rest = &b[at + header..];
        if header >= 10 && rest.first() == Some(&b'.') && rest[1..].starts_with(b"eyJ") {
            let payload = rest[1..].iter().take_while(|c| is_token(**c)).count();
            let after = &rest[1 + payload..];
            if payload >= 10 && after.first() == Some(&b'.') {
                return true;
            }
        }
        start = at + 1;
    }
    false
}

/// `scheme://user:password@host`, where the password is not a template reference.
fn has_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(i, _)| {
        let rest = &text[i + 3..];
        let authority_end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'' || c == '?')
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let Some(at) = authority.rfind('@') else {
            return false;
        };
        let userinfo = &authority[..at];
        let Some((_, password)) = userinfo.split_once(':') else {
            return false;
        };
        !password.is_empty()
            && !password.starts_with('$')
            && !password.starts_with('{')
            && !password.starts_with('<')
            && !password.starts_with('%')
            && password != "*****"
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}
fn is_upper_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

const STRONG_WORDS: &[&str] = &[
    "apikey",
    "apitoken",
    "auth",
    "credential",
    "credentials",
    "creds",
    "passphrase",
    "passwd",
    "password",
    "passwords",
    "pass",
    "privatekey",
    "pwd",
    "secret",
    "secrets",
    "token",
    "tokens",
    "dsn",
];

const STRONG_PAIRS: &[(&str, &str)] = &[
    ("access", "key"),
    ("account", "key"),
    ("api", "key"),
    ("app", "key"),
    ("encryption", "key"),
    ("master", "key"),
    ("private", "key"),
    ("session", "key"),
    ("signing", "key"),
    ("storage", "key"),
];

/// Words that make a key a reference or a setting about a credential, not a credential.
const EXCLUDED_WORDS: &[&str] = &[
    "algorithm",
    "audience",
    "count",
    "dir",
    "directory",
    "disabled",
    "duration",
    "enable",
    "enabled",
    "endpoint",
    "expiry",
    "expires",
    "expiration",
    "field",
    "file",
    "filename",
    "format",
    "header",
    "host",
    "id",
    "interval",
    "issuer",
    "len",
    "length",
    "location",
    "max",
    "method",
    "min",
    "mode",
    "mount",
    "name",
    "names",
    "path",
    "period",
    "policy",
    "port",
    "prefix",
    "provider",
    "ref",
    "required",
    "scope",
    "size",
    "strength",
    "suffix",
    "timeout",
    "ttl",
    "type",
    "uri",
    "url",
    "user",
    "username",
    "version",
];

const PLACEHOLDERS: &[&str] = &[
    "disabled",
    "enabled",
    "false",
    "none",
    "null",
    "redacted",
    "replace_me",
    "todo",
    "true",
    "unset",
];

#[cfg(test)]
mod tests {
    use super::*;

    // Assembled at run time so the repository holds no string that secret scanners flag.
    fn aws() -> String {
        format!("AKIA{}", "IOSFODNN7EXAMPLE")
    }
    fn github() -> String {
        format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")
    }

    #[test]
    fn words() {
        assert_eq!(split_words("DB_PASSWORD"), ["db", "password"]);
        assert_eq!(split_words("apiKey"), ["api", "key"]);
        assert_eq!(split_words("APIKey"), ["api", "key"]);
        assert_eq!(
            split_words("client-secret.txt"),
            ["client", "secret", "txt"]
        );
    }

    #[test]
    fn names() {
        assert_eq!(classify_name("DB_PASSWORD"), NameHint::Strong);
        assert_eq!(classify_name("api_key"), NameHint::Strong);
        assert_eq!(classify_name("AWS_SECRET_ACCESS_KEY"), NameHint::Strong);
        assert_eq!(classify_name("STRIPE_KEY"), NameHint::Weak);
        assert_eq!(classify_name("PASSWORD_FILE"), NameHint::Excluded);
        assert_eq!(classify_name("secretName"), NameHint::Excluded);
        assert_eq!(classify_name("TOKEN_URL"), NameHint::Excluded);
        assert_eq!(classify_name("author"), NameHint::None);
        assert_eq!(classify_name("LOG_LEVEL"), NameHint::None);
    }

    #[test]
    fn formats() {
        assert_eq!(find_formats(&aws()), ["an AWS access key ID"]);
        assert_eq!(find_formats(&format!("x{}", aws())), Vec::<&str>::new());
        assert_eq!(find_formats(&github()), ["a GitHub token"]);
        assert_eq!(
            find_formats("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"),
            ["a PEM private key"]
        );
        assert!(find_formats("-----BEGIN CERTIFICATE-----\n").is_empty());
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl";
        assert_eq!(find_formats(jwt), ["a JSON Web Token"]);
        assert_eq!(
            find_formats("postgres://app:pw0rd@db:5432/app"),
            ["a URL with an embedded password"]
        );
        assert!(find_formats("postgres://app:${PW}@db/app").is_empty());
        assert!(find_formats("https://example.com/a@b").is_empty());
        assert_eq!(
            find_formats(&format!("xoxb-{}", "1234567890-abcdefghij")),
            ["a Slack token"]
        );
    }

    #[test]
    fn assessments_never_echo_the_value() {
        let value = aws();
        let d = assess("anything", &value, false).unwrap();
        assert_eq!(d.confidence, Confidence::Format);
        assert!(!d.reason.contains(&value));
        let d = assess("DB_PASSWORD", "hunter22", false).unwrap();
        assert_eq!(d.confidence, Confidence::KeyName);
        assert!(!d.reason.contains("hunter22"));
    }

    #[test]
    fn references_and_placeholders_are_not_credentials() {
        for v in [
            "$(DB_PASS)",
            "${DB_PASS}",
            "/run/secrets/db",
            "",
            "true",
            "*****",
            "<pw>",
        ] {
            assert_eq!(assess("DB_PASSWORD", v, true), None, "{v}");
        }
        assert_eq!(assess("LOG_LEVEL", "debug", true), None);
        assert_eq!(assess("STRIPE_KEY", "short", true), None);
    }

    #[test]
    fn entropy() {
        assert!(looks_random(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            false
        ));
        assert!(!looks_random(
            "my-service.my-namespace.svc.cluster.local",
            false
        ));
        assert!(!looks_random("123e4567-e89b-12d3-a456-426614174000", true));
        assert!(!looks_random("aaaaaaaaaaaaaaaaaaaaaaaaaaaa", false));
        let sha1 = "3f786850e387550fdab836ed7e6dc881de23001b";
        assert!(!looks_random(sha1, false));
        assert!(looks_random(sha1, true));
        assert_eq!(
            assess("blob", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", true)
                .unwrap()
                .confidence,
            Confidence::Entropy
        );
        assert_eq!(
            assess("blob", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", false),
            None
        );
    }

    #[test]
    fn embedded_files_and_base64() {
        let text = "spring.datasource.url=jdbc:postgresql://db/app\nspring.datasource.password=s3cr3t!\n# password=commented\n";
        let found = assess_text(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 1);
        assert_eq!(found[0].1.as_deref(), Some("spring.datasource.password"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("key={}\n", aws()));
        assert!(assess_binary(&b64).is_some());
        assert_eq!(
            assess("blob", &b64, false).unwrap().confidence,
            Confidence::Format
        );
        let plain = base64::engine::general_purpose::STANDARD.encode("hello world, nothing here");
        assert_eq!(assess_binary(&plain), None);
    }
}
