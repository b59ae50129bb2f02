//! Authentication: who a request comes from.
//!
//! Authenticators, tried in kube-apiserver's order: an x509 client certificate verified against
//! `--client-ca-file` (CN = user, O = groups), then a bearer token (the admin credential, or a
//! line of `--token-auth-file`). With none, the request is anonymous, which is refused unless
//! `--anonymous-auth` is on. Every authenticated user also gets `system:authenticated`.
//!
//! Tokens are compared as SHA-256 digests in constant time, against every known token (no early
//! exit). A 401 never says which part failed. Token values are never logged and never kept in
//! plaintext after start-up.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::ServeError;
use crate::satoken::{TokenSigner, TokenSubject, looks_like_jwt};

/// The group every authenticated user belongs to.
pub(crate) const AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub(crate) const UNAUTHENTICATED: &str = "system:unauthenticated";

/// The authenticated caller, as Kubernetes' `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UserInfo {
    pub(crate) username: String,
    pub(crate) uid: String,
    pub(crate) groups: Vec<String>,
    pub(crate) extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    fn authenticated(mut self) -> Self {
        if !self.groups.iter().any(|g| g == AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.to_owned());
        }
        self
    }

    /// The `userInfo` object of reviews and audit events.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = serde_json::json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = serde_json::json!(self.extra);
        }
        v
    }
}

/// One known bearer token.
struct TokenEntry {
    sha256: [u8; 32],
    user: UserInfo,
}

/// The configured authenticators.
pub(crate) struct Authenticator {
    tokens: Vec<TokenEntry>,
    anonymous: bool,
    sa_tokens: Option<std::sync::Arc<TokenSigner>>,
}

/// What a credential proved.
#[derive(Debug)]
pub(crate) enum Authenticated {
    /// A user, fully known.
    User(UserInfo),
    /// A ServiceAccount token with a valid signature; the caller still checks that the
    /// ServiceAccount exists with this uid.
    ServiceAccount(TokenSubject),
}

/// The user of a ServiceAccount that exists.
pub(crate) fn service_account_user(subject: &TokenSubject) -> UserInfo {
    UserInfo {
        username: format!(
            "system:serviceaccount:{}:{}",
            subject.namespace, subject.name
        ),
        uid: subject.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", subject.namespace),
            AUTHENTICATED.into(),
        ],
        extra: BTreeMap::new(),
    }
}

impl Authenticator {
    /// The admin credential plus the optional static token file.
    ///
    /// `Err` names the file and line of a malformed token file entry (never the token).
    pub(crate) fn new(
        admin_token: &str,
        token_file: Option<&Path>,
        anonymous: bool,
        sa_tokens: Option<std::sync::Arc<TokenSigner>>,
    ) -> Result<Self, ServeError> {
        let mut tokens = vec![TokenEntry {
            sha256: Sha256::digest(admin_token.as_bytes()).into(),
            user: UserInfo {
                username: "ward-admin".into(),
                uid: String::new(),
                groups: vec!["system:masters".into()],
                extra: BTreeMap::new(),
            }
            .authenticated(),
        }];
        if let Some(path) = token_file {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| ServeError::io(path, e))?);
            tokens.extend(parse_token_file(&text, &path.display().to_string())?);
        }
        Ok(Authenticator {
            tokens,
            anonymous,
            sa_tokens,
        })
    }

    /// The user a request proves, from its verified client certificate (`cert_user`) or its
    /// `Authorization` header. `None` means 401.
    pub(crate) fn authenticate(
        &self,
        cert_user: Option<&UserInfo>,
        authorization: Option<&http::HeaderValue>,
    ) -> Option<Authenticated> {
        if let Some(u) = cert_user {
            return Some(Authenticated::User(u.clone().authenticated()));
        }
        match authorization {
            Some(value) => {
                let value = value.as_bytes();
                let token = value
                    .strip_prefix(b"Bearer ")
                    .or_else(|| value.strip_prefix(b"bearer "))?
                    .trim_ascii();
                if token.is_empty() {
                    return None;
                }
                if let Some(signer) = self.sa_tokens.as_ref().filter(|_| looks_like_jwt(token)) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default();
                    let text = std::str::from_utf8(token).ok()?;
                    return signer.verify(text, now).map(Authenticated::ServiceAccount);
                }
                let digest: [u8; 32] = Sha256::digest(token).into();
                // Compare against every token, without stopping at a match.
                let mut found: Option<&UserInfo> = None;
                for entry in &self.tokens {
                    if bool::from(digest.ct_eq(&entry.sha256)) {
                        found = Some(&entry.user);
                    }
                }
                found.cloned().map(Authenticated::User)
            }
            None if self.anonymous => Some(Authenticated::User(UserInfo {
                username: "system:anonymous".into(),
                groups: vec![UNAUTHENTICATED.into()],
                ..UserInfo::default()
            })),
            None => None,
        }
    }
}

/// Parses kube-apiserver's `--token-auth-file`: `token,user,uid[,"group1,group2"]` per line.
fn parse_token_file(text: &str, source: &str) -> Result<Vec<TokenEntry>, ServeError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| ServeError::Config(format!("{source}: line {}: {what}", i + 1));
        let fields = split_csv(line).ok_or_else(|| bad("unbalanced quotes"))?;
        if fields.len() < 3 {
            return Err(bad("expected at least 3 columns: token,user,uid[,groups]"));
        }
        let token = Zeroizing::new(fields[0].clone());
        if token.is_empty() || fields[1].is_empty() {
            return Err(bad("the token and the user name must not be empty"));
        }
        let groups: Vec<String> = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        out.push(TokenEntry {
            sha256: Sha256::digest(token.as_bytes()).into(),
            user: UserInfo {
                username: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
                extra: BTreeMap::new(),
            }
            .authenticated(),
        });
    }
    Ok(out)
}

/// Splits one CSV line, honouring double quotes (`""` is a literal quote).
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(cur);
    Some(fields.into_iter().map(|f| f.trim().to_owned()).collect())
}

/// The user named by a verified client certificate: CN = user, each O = a group.
///
/// `None` if the certificate cannot be parsed or has no CN.
pub(crate) fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let username = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    if username.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(UserInfo {
        username,
        uid: String::new(),
        groups,
        extra: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Authenticated {
        fn user(self) -> Option<UserInfo> {
            match self {
                Authenticated::User(u) => Some(u),
                Authenticated::ServiceAccount(_) => None,
            }
        }
    }

    fn bearer(t: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(&format!("Bearer {t}")).expect("header")
    }

    #[test]
    fn token_file_users_and_groups() {
        let text = "# comment\nt0k3n-alice,alice,u-1,\"devs,ops\"\nt0k3n-bob,bob,u-2\n";
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, text).expect("write");
        let a = Authenticator::new(
            "admin-token-0123456789abcdef0123456789",
            Some(&path),
            false,
            None,
        )
        .expect("parse");
        let alice = a
            .authenticate(None, Some(&bearer("t0k3n-alice")))
            .and_then(Authenticated::user)
            .expect("alice");
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.uid, "u-1");
        assert_eq!(alice.groups, vec!["devs", "ops", AUTHENTICATED]);
        let bob = a
            .authenticate(None, Some(&bearer("t0k3n-bob")))
            .and_then(Authenticated::user)
            .expect("bob");
        assert_eq!(bob.groups, vec![AUTHENTICATED]);
        assert!(a.authenticate(None, Some(&bearer("t0k3n-alicE"))).is_none());
        assert!(a.authenticate(None, Some(&bearer(""))).is_none());
        assert!(
            a.authenticate(None, None).is_none(),
            "anonymous is off by default"
        );
        let admin = a
            .authenticate(
                None,
                Some(&bearer("admin-token-0123456789abcdef0123456789")),
            )
            .and_then(Authenticated::user)
            .expect("admin");
        assert!(admin.groups.contains(&"system:masters".to_owned()));
    }

    #[test]
    fn token_file_errors_name_the_line_not_the_token() {
        let e = parse_token_file("secret-token-xyz,onlyuser\n", "tokens.csv")
            .err()
            .expect("error");
        let msg = e.to_string();
        assert!(msg.contains("tokens.csv: line 1"), "{msg}");
        assert!(!msg.contains("secret-token-xyz"), "{msg}");
        assert!(parse_token_file("\"unbalanced,u,1\n", "f").is_err());
    }

    #[test]
    fn anonymous_when_enabled() {
        let a = Authenticator::new("x".repeat(40).as_str(), None, true, None).expect("ok");
        let anon = a
            .authenticate(None, None)
            .and_then(Authenticated::user)
            .expect("anonymous");
        assert_eq!(anon.username, "system:anonymous");
        assert_eq!(anon.groups, vec![UNAUTHENTICATED]);
        // A wrong token is still refused, not downgraded to anonymous.
        assert!(a.authenticate(None, Some(&bearer("wrong"))).is_none());
    }

    #[test]
    fn certificate_subject_maps_to_user_and_groups() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jbeda");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "app1");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let user = user_from_certificate(cert.der()).expect("user");
        assert_eq!(user.username, "jbeda");
        assert_eq!(user.groups, vec!["app1"]);
        assert!(user_from_certificate(b"garbage").is_none());
    }
}

/// Verified ServiceAccount tokens, for a few seconds: checking an ES256 signature and looking
/// the ServiceAccount up on every request would cost more than the rest of a GET. An entry lives
/// at most [`TokenCache::TTL`] and never past the token's `exp`; any ServiceAccount write through
/// this server clears the cache (so deleting a ServiceAccount revokes its tokens at once here).
/// Keys are SHA-256 digests of the tokens, never the tokens.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries:
        std::sync::Mutex<std::collections::HashMap<[u8; 32], (UserInfo, std::time::Instant, u64)>>,
}

impl TokenCache {
    /// How long a verified token is trusted without checking again.
    pub(crate) const TTL: std::time::Duration = std::time::Duration::from_secs(5);
    const MAX_ENTRIES: usize = 10_000;

    fn key(authorization: Option<&http::HeaderValue>) -> Option<[u8; 32]> {
        let value = authorization?.as_bytes();
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))?
            .trim_ascii();
        looks_like_jwt(token).then(|| Sha256::digest(token).into())
    }

    /// The user of a recently verified token; `None` for a client certificate (which wins).
    pub(crate) fn lookup(
        &self,
        cert_user: Option<&UserInfo>,
        authorization: Option<&http::HeaderValue>,
    ) -> Option<UserInfo> {
        if cert_user.is_some() {
            return None;
        }
        let key = Self::key(authorization)?;
        let now = unix_now();
        let entries = self.entries.lock().ok()?;
        let (user, at, exp) = entries.get(&key)?;
        (at.elapsed() < Self::TTL && now <= *exp).then(|| user.clone())
    }

    pub(crate) fn insert(
        &self,
        authorization: Option<&http::HeaderValue>,
        user: &UserInfo,
        exp: u64,
    ) {
        let Some(key) = Self::key(authorization) else {
            return;
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::MAX_ENTRIES {
                entries.retain(|_, (_, at, _)| at.elapsed() < Self::TTL);
                if entries.len() >= Self::MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(key, (user.clone(), std::time::Instant::now(), exp));
        }
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
