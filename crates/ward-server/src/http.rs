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
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::api::App;
use crate::auth::{self, Authenticator, UserInfo};
use crate::bootstrap::Bootstrap;
use crate::store::ObjectStore;
use crate::{ServeError, ServeOptions};

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

fn tls_config(
    b: &Bootstrap,
    client_ca: Option<&std::path::Path>,
) -> Result<ServerConfig, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(b.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Config(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(b.key_pem.as_bytes())
        .map_err(|e| ServeError::Config(format!("serving key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Config(format!("tls: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| ServeError::io(path, e))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    ServeError::Config(format!(
                        "{}: not a PEM certificate bundle: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    ServeError::Config(format!("{}: unusable CA certificate: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(ServeError::Config(format!(
                    "{}: --client-ca-file holds no certificate",
                    path.display()
                )));
            }
            // Clients without a certificate may still use a bearer token.
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Config(format!("tls: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds `addr` and serves until the handle asks to stop.
pub(crate) async fn listen(
    addr: SocketAddr,
    boot: &Bootstrap,
    opts: &ServeOptions,
    store: ObjectStore,
) -> Result<ServerHandle, ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(boot, opts.client_ca_file.as_deref())?));
    let signer = Arc::new(
        crate::satoken::TokenSigner::from_pkcs8(
            &boot.sa_key_pkcs8,
            &opts.service_account_issuer,
            opts.api_audiences.clone(),
        )
        .map_err(|e| ServeError::Config(format!("service account signing key: {e}")))?,
    );
    let authenticator = Authenticator::new(
        &boot.admin_token,
        opts.token_auth_file.as_deref(),
        opts.anonymous_auth,
        Some(signer.clone()),
    )?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::io(addr.to_string(), e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| ServeError::io(addr.to_string(), e))?;
    let (tx, rx) = watch::channel(false);
    let authorizer = crate::authz::Authorizer::new(store.clone())
        .await
        .map_err(|e| ServeError::Storage(format!("RBAC bootstrap: {}", e.message)))?;
    authorizer.spawn_watch(rx.clone());
    let app = Arc::new(App::new(
        store,
        authenticator,
        authorizer,
        signer,
        opts.list_reveals_values,
        crate::audit::Auditor::new(&opts.audit)?,
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
            // The verified client certificate (if any) names the user for the whole connection.
            let cert_user: Option<Arc<UserInfo>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|leaf| auth::user_from_certificate(leaf))
                .map(Arc::new);
            let service = service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                let cert_user = cert_user.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(serve_one(app, req, peer, cert_user).await)
                }
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

async fn serve_one(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
    cert_user: Option<Arc<UserInfo>>,
) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (verb, group, resource) = crate::request::labels(&method, req.uri());
    let resp = app.handle(req, cert_user.as_deref(), peer).await;
    crate::metrics::request(
        verb,
        group,
        resource,
        resp.status().as_u16(),
        start.elapsed(),
    );
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
