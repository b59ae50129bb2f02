//! The HTTPS listener: rustls (TLS 1.2+, h2 and http/1.1), one task per connection, graceful
//! shutdown. Plain HTTP is never served: a client that does not speak TLS is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::ServeError;
use crate::api::App;
use crate::bootstrap::Bootstrap;
use crate::store::ObjectStore;

/// Body type of every reply.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, ends watches, waits for in-flight requests (at most 10 s).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.done.await;
    }
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserInfo {
    pub(crate) username: String,
    pub(crate) groups: Vec<String>,
}

/// Bearer-token authentication. For now only the admin credential exists; users, groups and
/// ServiceAccounts plug in here (issue: authentication and RBAC).
pub(crate) struct Authenticator {
    admin_token_sha256: [u8; 32],
}

impl Authenticator {
    fn new(token: &str) -> Self {
        Authenticator {
            admin_token_sha256: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// The user a request's `Authorization` header proves, or `None` (reply 401, never saying
    /// why).
    pub(crate) fn authenticate(&self, header: Option<&http::HeaderValue>) -> Option<UserInfo> {
        let value = header?.as_bytes();
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        if bool::from(digest.ct_eq(&self.admin_token_sha256)) {
            Some(UserInfo {
                username: "ward-admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            })
        } else {
            None
        }
    }
}

fn tls_config(b: &Bootstrap) -> Result<ServerConfig, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(b.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Config(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(b.key_pem.as_bytes())
        .map_err(|e| ServeError::Config(format!("serving key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Config(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Config(format!("tls: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds `addr` and serves until the handle asks to stop.
pub(crate) async fn listen(
    addr: SocketAddr,
    boot: &Bootstrap,
    store: ObjectStore,
) -> Result<ServerHandle, ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(boot)?));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::io(addr.to_string(), e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| ServeError::io(addr.to_string(), e))?;
    let (tx, rx) = watch::channel(false);
    let app = Arc::new(App::new(
        store,
        Authenticator::new(&boot.admin_token),
        rx.clone(),
        local_addr,
    ));
    app.resume_namespace_deletions();
    let done = tokio::spawn(accept_loop(listener, acceptor, app, rx));
    Ok(ServerHandle {
        local_addr,
        shutdown: tx,
        done,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "tls handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                async move { Ok::<_, std::convert::Infallible>(serve_one(app, req, peer).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            let _ = watcher.watch(conn.into_owned()).await;
        });
    }
    info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}

async fn serve_one(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = app.handle(req).await;
    debug!(
        %peer,
        %method,
        %path,
        status = resp.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    resp
}
