//! A small Kubernetes API client for Ward's tools (`ward rewrite`, the agent, live scans): reads a
//! kubeconfig, talks HTTPS (rustls with ring, HTTP/2 or HTTP/1.1, connection pooling through
//! hyper-util), sends JSON, reads JSON or a `Status`, and follows watches as JSON lines.
//!
//! It works against `ward serve` and any Kubernetes API server. Credentials (bearer tokens,
//! client keys) are kept in zeroizing buffers and never appear in `Debug` output or errors.
//!
//! It must never depend on Ward's server crates: it only speaks the public API.

pub mod rewrite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use zeroize::Zeroizing;

/// Errors of the client. Messages name files and fields, never credentials or values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The kubeconfig is missing, unreadable or incomplete.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(String),
    /// The request could not be sent or the reply not read.
    #[error("{method} {path}: {message}")]
    Transport {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// What failed.
        message: String,
    },
    /// The server answered with a `Status` error.
    #[error("{reason} ({code}): {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// `Status.reason`.
        reason: String,
        /// `Status.message`.
        message: String,
        /// `Status.metadata.continue`: on a 410 for a continued list, the server's inconsistent
        /// continue token for the rest of the list.
        continue_token: Option<String>,
    },
    /// The reply was not the JSON expected.
    #[error("{0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP code of an API error (`None` for other errors).
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The continue token a 410 `Status` carries for the rest of an expired list, if any.
    pub fn continue_token(&self) -> Option<&str> {
        match self {
            ClientError::Api { continue_token, .. } => continue_token.as_deref(),
            _ => None,
        }
    }
}

/// A connected client.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    server: String,
    token: Option<Arc<Zeroizing<String>>>,
    namespace: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// The parts of a kubeconfig a client needs, resolved for one context.
struct Resolved {
    server: String,
    ca: Option<Vec<u8>>,
    insecure: bool,
    token: Option<Zeroizing<String>>,
    client_cert: Option<Vec<u8>>,
    client_key: Option<Zeroizing<Vec<u8>>>,
    namespace: String,
}

impl Client {
    /// A client from a kubeconfig file (`$KUBECONFIG` or `~/.kube/config` when `path` is
    /// `None`), for `context` (or the current context).
    ///
    /// `Err` names the file and the missing or malformed field.
    pub fn from_kubeconfig(
        path: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, ClientError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_kubeconfig()?,
        };
        let resolved = resolve(&path, context)?;
        Self::build(resolved)
    }

    /// A client for `server` with a bearer token and a CA bundle (PEM), as a pod would use its
    /// ServiceAccount token and `ca.crt`.
    pub fn from_token(
        server: &str,
        token: Zeroizing<String>,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, ClientError> {
        Self::build(Resolved {
            server: server.trim_end_matches('/').to_owned(),
            ca: ca_pem,
            insecure: false,
            token: Some(token),
            client_cert: None,
            client_key: None,
            namespace: "default".into(),
        })
    }

    fn build(r: Resolved) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let builder = if r.insecure {
            return Err(ClientError::Tls(
                "insecure-skip-tls-verify is not supported: give the cluster's CA".into(),
            ));
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let pem = r.ca.ok_or_else(|| {
                ClientError::Tls("no certificate authority for the server in the kubeconfig".into())
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ClientError::Tls(format!("CA bundle: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("CA bundle: {e}")))?;
            }
            builder.with_root_certificates(roots)
        };
        let config = match (r.client_cert, r.client_key) {
            (Some(cert), Some(key)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
                    .collect::<Result<_, _>>()
                    .map_err(|e| ClientError::Tls(format!("client certificate: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(&key)
                    .map_err(|_| ClientError::Tls("client key: not a PEM private key".into()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| ClientError::Tls(format!("client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        // Small requests on a kept-alive connection stall ~40 ms each on Nagle's algorithm and
        // delayed ACKs unless TCP_NODELAY is set.
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Client {
            http,
            server: r.server,
            token: r.token.map(Arc::new),
            namespace: r.namespace,
        })
    }

    /// The kubeconfig context's namespace (`default` when unset).
    pub fn default_namespace(&self) -> &str {
        &self.namespace
    }

    /// Sends a request; `Ok` holds the status and body of any reply.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let resp = self.start(method.clone(), path, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(&method, path, e))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Sends a request and decodes the JSON reply; a non-2xx reply becomes [`ClientError::Api`].
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let body = body.map(|b| ("application/json", Bytes::from(b.to_string())));
        let (status, bytes) = self.send(method, path, body).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("{path}: reply is not JSON: {e}")))
    }

    /// Follows a watch (`path` must include `watch=1`): each item is one event object
    /// (`{"type": ..., "object": ...}`). The stream ends when the server closes it.
    pub async fn watch(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Result<Value, ClientError>> + use<>, ClientError> {
        let lines = self.watch_lines(path).await?;
        Ok(lines.map(|line| {
            line.and_then(|l| {
                serde_json::from_slice::<Value>(&l)
                    .map_err(|e| ClientError::Decode(format!("watch event is not JSON: {e}")))
            })
        }))
    }

    /// As [`Self::watch`], with each event as its raw JSON line (without the newline), for
    /// callers that look at a few bytes before paying for a parse.
    pub async fn watch_lines(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + use<>, ClientError> {
        let resp = self.start(Method::GET, path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(api_error(status, &bytes));
        }
        let body = resp.into_body().into_data_stream();
        let lines = futures_util::stream::unfold(
            (body, bytes::BytesMut::new()),
            |(mut body, mut buf)| async move {
                loop {
                    if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line = buf.split_to(pos + 1).freeze();
                        let line = line.slice(..pos);
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        return Some((Ok(line), (body, buf)));
                    }
                    match body.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        Some(Err(e)) => {
                            let err = ClientError::Decode(format!("watch stream failed: {e}"));
                            return Some((Err(err), (body, bytes::BytesMut::new())));
                        }
                        None => return None,
                    }
                }
            },
        );
        Ok(lines)
    }

    async fn start(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let uri = format!("{}{path}", self.server);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", t.as_str()));
        }
        let req = match body {
            Some((ct, bytes)) => req.header(header::CONTENT_TYPE, ct).body(Full::new(bytes)),
            None => req.body(Full::new(Bytes::new())),
        }
        .map_err(|e| transport(&method, path, e))?;
        self.http
            .request(req)
            .await
            .map_err(|e| transport(&method, path, e))
    }
}

fn transport(method: &Method, path: &str, e: impl fmt::Display) -> ClientError {
    ClientError::Transport {
        method: method.to_string(),
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ClientError::Api {
        code: status.as_u16(),
        reason: if s("reason").is_empty() {
            status.canonical_reason().unwrap_or_default().to_owned()
        } else {
            s("reason")
        },
        message: s("message"),
        continue_token: v
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    }
}

fn default_kubeconfig() -> Result<PathBuf, ClientError> {
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        let first = std::env::split_paths(&k).next().unwrap_or_default();
        return Ok(first);
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".kube").join("config")),
        None => Err(ClientError::Kubeconfig {
            path: "~/.kube/config".into(),
            message: "HOME is not set; pass --kubeconfig".into(),
        }),
    }
}

/// Reads the kubeconfig and resolves one context.
fn resolve(path: &Path, context: Option<&str>) -> Result<Resolved, ClientError> {
    let bad = |message: String| ClientError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let text = Zeroizing::new(std::fs::read(path).map_err(|e| bad(e.to_string()))?);
    let doc: Value = serde_saphyr::from_slice(&text).map_err(|_| bad("not valid YAML".into()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let find = |list: &str, name: &str, inner: &str| -> Result<Value, ClientError> {
        doc.get(list)
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
            })
            .and_then(|e| e.get(inner))
            .cloned()
            .ok_or_else(|| bad(format!("{list}: no entry named {name:?}")))
    };
    let ctx_name = match context {
        Some(c) => c.to_owned(),
        None => doc
            .get("current-context")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("current-context is not set; pass --context".into()))?
            .to_owned(),
    };
    let ctx = find("contexts", &ctx_name, "context")?;
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let cluster_name = field(&ctx, "cluster")
        .ok_or_else(|| bad(format!("contexts[{ctx_name}].context.cluster is missing")))?;
    let cluster = find("clusters", &cluster_name, "cluster")?;
    let user = match field(&ctx, "user") {
        Some(u) => find("users", &u, "user").unwrap_or(Value::Null),
        None => Value::Null,
    };
    let read = |p: &str| -> Result<Vec<u8>, ClientError> {
        let p = base.join(p);
        std::fs::read(&p).map_err(|e| bad(format!("{}: {e}", p.display())))
    };
    let data =
        |v: &Value, data_key: &str, file_key: &str| -> Result<Option<Vec<u8>>, ClientError> {
            if let Some(d) = field(v, data_key) {
                return B64
                    .decode(d.trim())
                    .map(Some)
                    .map_err(|_| bad(format!("{data_key} is not base64")));
            }
            field(v, file_key).map(|f| read(&f)).transpose()
        };
    let server = field(&cluster, "server").ok_or_else(|| {
        bad(format!(
            "clusters[{cluster_name}].cluster.server is missing"
        ))
    })?;
    if !server.starts_with("https://") {
        return Err(bad(format!(
            "clusters[{cluster_name}].cluster.server must be https://"
        )));
    }
    let token = match (field(&user, "token"), field(&user, "tokenFile")) {
        (Some(t), _) => Some(Zeroizing::new(t)),
        (None, Some(f)) => Some(Zeroizing::new(
            String::from_utf8(read(&f)?)
                .map_err(|_| bad("tokenFile is not UTF-8".into()))?
                .trim()
                .to_owned(),
        )),
        _ => None,
    };
    Ok(Resolved {
        server: server.trim_end_matches('/').to_owned(),
        ca: data(
            &cluster,
            "certificate-authority-data",
            "certificate-authority",
        )?,
        insecure: cluster
            .get("insecure-skip-tls-verify")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        token,
        client_cert: data(&user, "client-certificate-data", "client-certificate")?,
        client_key: data(&user, "client-key-data", "client-key")?.map(Zeroizing::new),
        namespace: field(&ctx, "namespace").unwrap_or_else(|| "default".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_410_status_keeps_its_continue_token() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{"continue":"eyJydiI6LTF9"},"status":"Failure","message":"too old","reason":"Expired","code":410}"#;
        let e = api_error(StatusCode::GONE, body);
        assert_eq!(e.code(), Some(410));
        assert_eq!(e.continue_token(), Some("eyJydiI6LTF9"));
        let e = api_error(StatusCode::GONE, br#"{"metadata":{},"reason":"Expired"}"#);
        assert_eq!(e.continue_token(), None);
        assert_eq!(
            api_error(StatusCode::BAD_GATEWAY, b"<html>").continue_token(),
            None
        );
    }

    #[test]
    fn kubeconfig_errors_name_the_field_and_hide_the_token() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("kc");
        std::fs::write(&p, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://x\nusers:\n- name: u\n  user:\n    token: very-secret-token\ncontexts:\n- name: k\n  context: {cluster: c, user: u}\ncurrent-context: k\n").expect("write");
        let e = Client::from_kubeconfig(Some(&p), None).expect_err("http is refused");
        assert!(e.to_string().contains("must be https://"), "{e}");
        assert!(!e.to_string().contains("very-secret-token"));
        let e = Client::from_kubeconfig(Some(&p), Some("nope")).expect_err("no context");
        assert!(
            e.to_string().contains("contexts: no entry named \"nope\""),
            "{e}"
        );
    }

    #[test]
    fn debug_redacts_the_token() {
        let c = Client::from_token(
            "https://127.0.0.1:1",
            Zeroizing::new("tok-123".into()),
            Some(b"".to_vec()),
        );
        // An empty CA bundle is allowed to build (no roots); the token never shows.
        if let Ok(c) = c {
            assert!(!format!("{c:?}").contains("tok-123"));
        }
    }
}
