//! ServiceAccount tokens: bound, expiring, audience-scoped JWTs signed with ES256, as
//! kube-apiserver's TokenRequest issues them, and their verification.
//!
//! Claims follow upstream (`pkg/serviceaccount/claims.go`):
//! `{"aud":[...],"exp":N,"iat":N,"nbf":N,"iss":ISSUER,"sub":"system:serviceaccount:NS:NAME",
//!   "kubernetes.io":{"namespace":NS,"serviceaccount":{"name":NAME,"uid":UID}}}`.
//! A token is accepted only if its signature, issuer, audience and time window are valid *and*
//! the ServiceAccount it names still exists with the same uid (checked by the caller).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

/// The default issuer and audience (kube-apiserver's in-cluster name).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc";
/// Default token lifetime (1 h) and the shortest allowed (10 min), as upstream.
pub(crate) const DEFAULT_EXPIRATION_SECONDS: u64 = 3600;
pub(crate) const MIN_EXPIRATION_SECONDS: u64 = 600;
/// The longest lifetime Ward issues (48 h; upstream's default max is unbounded).
pub(crate) const MAX_EXPIRATION_SECONDS: u64 = 48 * 3600;
/// Clock skew tolerated on `nbf`/`exp`.
const LEEWAY_SECONDS: u64 = 60;

/// What a verified token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenSubject {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    /// `exp` of the token (seconds since the epoch); 0 when unknown.
    pub(crate) expires: u64,
}

/// Signs and verifies ServiceAccount tokens.
pub(crate) struct TokenSigner {
    key: EcdsaKeyPair,
    public: Vec<u8>,
    rng: SystemRandom,
    issuer: String,
    api_audiences: Vec<String>,
}

impl TokenSigner {
    /// A signer from a PKCS#8 P-256 private key.
    ///
    /// `Err` when the key is not an ECDSA P-256 PKCS#8 key.
    pub(crate) fn from_pkcs8(
        pkcs8: &[u8],
        issuer: &str,
        api_audiences: Vec<String>,
    ) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| "not an ECDSA P-256 PKCS#8 private key".to_owned())?;
        let public = key.public_key().as_ref().to_vec();
        let api_audiences = if api_audiences.is_empty() {
            vec![issuer.to_owned()]
        } else {
            api_audiences
        };
        Ok(TokenSigner {
            key,
            public,
            rng,
            issuer: issuer.to_owned(),
            api_audiences,
        })
    }

    /// The audiences the API server accepts (`--api-audiences`, default: the issuer).
    pub(crate) fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// Issues a token for ServiceAccount `ns/name` (uid `uid`), valid for `seconds` from `now`.
    pub(crate) fn issue(
        &self,
        subject: &TokenSubject,
        audiences: &[String],
        now: u64,
        seconds: u64,
    ) -> Result<String, String> {
        let header = json!({"alg": "ES256", "kid": self.key_id(), "typ": "JWT"});
        let claims = json!({
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sub": format!("system:serviceaccount:{}:{}", subject.namespace, subject.name),
            "kubernetes.io": {"namespace": subject.namespace,
                              "serviceaccount": {"name": subject.name, "uid": subject.uid}},
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| "signing failed".to_owned())?;
        Ok(format!("{signing_input}.{}", B64URL.encode(sig.as_ref())))
    }

    /// Verifies signature, issuer, audience and time window. `None` for any failure (the
    /// caller answers 401 without saying which).
    pub(crate) fn verify(&self, token: &str, now: u64) -> Option<TokenSubject> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || token.len() > 16 * 1024 {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64URL.decode(h).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" {
            return None;
        }
        let sig = B64URL.decode(s).ok()?;
        let signing_input = &token[..h.len() + 1 + c.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(signing_input.as_bytes(), &sig)
            .ok()?;
        let claims: Value = serde_json::from_slice(&B64URL.decode(c).ok()?).ok()?;
        if claims.get("iss")?.as_str()? != self.issuer {
            return None;
        }
        let aud_ok = match claims.get("aud")? {
            Value::String(a) => self.api_audiences.iter().any(|x| x == a),
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.api_audiences.iter().any(|x| x == a)),
            _ => false,
        };
        let exp = claims.get("exp")?.as_u64()?;
        let nbf = claims.get("nbf").and_then(Value::as_u64).unwrap_or(0);
        if !aud_ok || now > exp + LEEWAY_SECONDS || now + LEEWAY_SECONDS < nbf {
            return None;
        }
        let k8s = claims.get("kubernetes.io")?;
        let subject = TokenSubject {
            namespace: k8s.get("namespace")?.as_str()?.to_owned(),
            name: k8s.pointer("/serviceaccount/name")?.as_str()?.to_owned(),
            uid: k8s.pointer("/serviceaccount/uid")?.as_str()?.to_owned(),
            expires: exp,
        };
        let sub = claims.get("sub")?.as_str()?;
        if sub
            != format!(
                "system:serviceaccount:{}:{}",
                subject.namespace, subject.name
            )
        {
            return None;
        }
        Some(subject)
    }

    /// A key id: the base64url SHA-256 of the public key, as upstream derives `kid`.
    fn key_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.public);
        B64URL.encode(digest.as_ref())
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts).
pub(crate) fn looks_like_jwt(token: &[u8]) -> bool {
    token.iter().filter(|b| **b == b'.').count() == 2 && token.first().is_some_and(|b| *b == b'e')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(issuer: &str) -> TokenSigner {
        let key = rcgen::KeyPair::generate().expect("key");
        TokenSigner::from_pkcs8(&key.serialize_der(), issuer, vec![]).expect("signer")
    }

    fn subject() -> TokenSubject {
        TokenSubject {
            namespace: "default".into(),
            name: "sa1".into(),
            uid: "u-1".into(),
            expires: 1_000_000 + 3600,
        }
    }

    #[test]
    fn issue_and_verify() {
        let s = signer(DEFAULT_ISSUER);
        let t = s
            .issue(&subject(), &[DEFAULT_ISSUER.to_owned()], 1_000_000, 3600)
            .expect("token");
        assert!(looks_like_jwt(t.as_bytes()));
        assert_eq!(s.verify(&t, 1_000_100), Some(subject()));
        // expired, not yet valid
        assert_eq!(s.verify(&t, 1_000_000 + 3600 + LEEWAY_SECONDS + 1), None);
        assert_eq!(s.verify(&t, 1_000_000 - LEEWAY_SECONDS - 1), None);
    }

    #[test]
    fn wrong_audience_issuer_key_or_tampering_fail() {
        let s = signer(DEFAULT_ISSUER);
        let t = s
            .issue(&subject(), &["vault".to_owned()], 1_000_000, 3600)
            .expect("token");
        assert_eq!(
            s.verify(&t, 1_000_001),
            None,
            "audience not accepted by the API server"
        );
        let other = signer("https://other.example");
        let t = other
            .issue(&subject(), &[DEFAULT_ISSUER.to_owned()], 1_000_000, 3600)
            .expect("t");
        assert_eq!(s.verify(&t, 1_000_001), None, "other issuer and key");
        let t = s
            .issue(&subject(), &[DEFAULT_ISSUER.to_owned()], 1_000_000, 3600)
            .expect("t");
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let claims = String::from_utf8(B64URL.decode(&parts[1]).expect("b64"))
            .expect("utf8")
            .replace("sa1", "sa2");
        parts[1] = B64URL.encode(claims);
        assert_eq!(
            s.verify(&parts.join("."), 1_000_001),
            None,
            "tampered claims"
        );
        for garbage in ["", "a.b.c", "e..", "eyJ.eyJ.", "x.y", "e.e.e.e"] {
            assert_eq!(s.verify(garbage, 1), None);
        }
        let none_alg = format!("{}.{}.", B64URL.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(s.verify(&none_alg, 1_000_001), None);
    }
}
