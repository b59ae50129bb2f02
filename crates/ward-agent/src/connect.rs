//! Where the agent's identity comes from: a kubeconfig, a ServiceAccount token file with the
//! cluster's CA (as in a pod), or the pod's own mounted ServiceAccount.
//!
//! The token file is read again whenever the API answers 401, so projected ServiceAccount
//! tokens that the kubelet rotates keep working.

use std::path::{Path, PathBuf};

use ward_client::Client;
use zeroize::Zeroizing;

use crate::error::AgentError;
use crate::object::Namespace;

/// The environment, read through a trait so tests can pass a map (no `set_var`).
pub(crate) trait Environment: Send + Sync {
    /// The variable's value, if set and Unicode.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub(crate) struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Connection flags shared by `ward agent` and `ward run`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ConnectArgs {
    /// kubeconfig to read [default: $KUBECONFIG or ~/.kube/config; in a pod, its
    /// ServiceAccount]
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// kubeconfig context [default: the current context]
    #[arg(long, value_name = "NAME", conflicts_with = "server")]
    pub(crate) context: Option<String>,
    /// API server URL, with --token-file and --certificate-authority instead of a kubeconfig
    #[arg(long, value_name = "URL", requires = "token_file")]
    pub(crate) server: Option<String>,
    /// File holding a bearer token (read again when the server answers 401)
    #[arg(long, value_name = "FILE", requires = "server")]
    pub(crate) token_file: Option<PathBuf>,
    /// CA bundle (PEM) that signed the API server's certificate
    #[arg(long, value_name = "FILE", requires = "server")]
    pub(crate) certificate_authority: Option<PathBuf>,
}

/// Builds clients from one credential source.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    source: CredentialSource,
    /// The namespace of the kubeconfig context or of the pod.
    pub(crate) namespace: Option<Namespace>,
}

#[derive(Debug, Clone)]
enum CredentialSource {
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    Token {
        server: String,
        token_file: PathBuf,
        ca_file: PathBuf,
    },
}

impl Connector {
    /// Picks the credential source: `--server` with `--token-file`, else `--kubeconfig`, else
    /// the pod's ServiceAccount when `KUBERNETES_SERVICE_HOST` is set and its token exists, else
    /// the default kubeconfig. Builds one client to check the source works.
    ///
    /// `Ok` with the connector; `Err(Config)` for incomplete flags, `Err(Client)` or
    /// `Err(Read)` when the kubeconfig, token or CA cannot be used.
    pub(crate) fn from_args(args: &ConnectArgs, env: &dyn Environment) -> Result<Self, AgentError> {
        let pod_dir = Path::new(SERVICE_ACCOUNT_DIR);
        let (source, namespace) = if let Some(server) = &args.server {
            let token_file = args.token_file.clone().ok_or_else(|| {
                AgentError::config("command line", "--token-file", "is needed with --server")
            })?;
            let ca_file = args.certificate_authority.clone().ok_or_else(|| {
                AgentError::config(
                    "command line",
                    "--certificate-authority",
                    "is needed with --server (the server's CA, PEM)",
                )
            })?;
            if !server.starts_with("https://") {
                return Err(AgentError::config(
                    "command line",
                    "--server",
                    format!("{server:?} must be an https:// URL"),
                ));
            }
            let source = CredentialSource::Token {
                server: server.clone(),
                token_file,
                ca_file,
            };
            (source, None)
        } else if args.kubeconfig.is_none()
            && let Some(host) = env.var("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty())
            && pod_dir.join("token").exists()
        {
            let port = env
                .var("KUBERNETES_SERVICE_PORT")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "443".into());
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            let namespace = std::fs::read_to_string(pod_dir.join("namespace"))
                .ok()
                .and_then(|n| Namespace::parse(n.trim()).ok());
            let source = CredentialSource::Token {
                server: format!("https://{host}:{port}"),
                token_file: pod_dir.join("token"),
                ca_file: pod_dir.join("ca.crt"),
            };
            (source, namespace)
        } else {
            let source = CredentialSource::Kubeconfig {
                path: args.kubeconfig.clone(),
                context: args.context.clone(),
            };
            (source, None)
        };
        let mut connector = Connector { source, namespace };
        let client = connector.client()?;
        if connector.namespace.is_none()
            && matches!(connector.source, CredentialSource::Kubeconfig { .. })
        {
            connector.namespace = Namespace::parse(client.default_namespace()).ok();
        }
        Ok(connector)
    }

    /// A fresh client: the kubeconfig, token file and CA are read again.
    ///
    /// `Err(Client)` or `Err(Read)` when they cannot be read or used.
    pub(crate) fn client(&self) -> Result<Client, AgentError> {
        match &self.source {
            CredentialSource::Kubeconfig { path, context } => Ok(Client::from_kubeconfig(
                path.as_deref(),
                context.as_deref(),
            )?),
            CredentialSource::Token {
                server,
                token_file,
                ca_file,
            } => {
                let read = |p: &Path| {
                    std::fs::read(p).map_err(|source| AgentError::Read {
                        path: p.to_owned(),
                        source,
                    })
                };
                let raw = Zeroizing::new(read(token_file)?);
                let text = std::str::from_utf8(&raw).map_err(|_| {
                    AgentError::config(
                        token_file.display().to_string(),
                        "(token)",
                        "is not UTF-8 text",
                    )
                })?;
                let token = Zeroizing::new(text.trim().to_owned());
                if token.is_empty() {
                    return Err(AgentError::config(
                        token_file.display().to_string(),
                        "(token)",
                        "is empty",
                    ));
                }
                let ca = read(ca_file)?;
                if !ca.windows(PEM_CERT.len()).any(|w| w == PEM_CERT) {
                    return Err(AgentError::config(
                        ca_file.display().to_string(),
                        "(certificate authority)",
                        "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    ));
                }
                Ok(Client::from_token(server, token, Some(ca))?)
            }
        }
    }
}

const PEM_CERT: &[u8] = b"-----BEGIN CERTIFICATE-----";
/// Where a pod's ServiceAccount credentials are mounted.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct MapEnvironment(HashMap<&'static str, &'static str>);

    impl Environment for MapEnvironment {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    fn args(server: Option<&str>, token: Option<&Path>, ca: Option<&Path>) -> ConnectArgs {
        ConnectArgs {
            kubeconfig: None,
            context: None,
            server: server.map(str::to_owned),
            token_file: token.map(Path::to_owned),
            certificate_authority: ca.map(Path::to_owned),
        }
    }

    #[test]
    fn token_sources_are_checked_and_never_printed() {
        let dir = tempfile::tempdir().expect("tmp");
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-canary-51\n").expect("write");
        let env = MapEnvironment(HashMap::new());
        let e = Connector::from_args(&args(Some("http://x"), Some(&token), Some(&token)), &env)
            .expect_err("http");
        assert!(e.to_string().contains("https://"), "{e}");
        let e = Connector::from_args(&args(Some("https://x"), Some(&token), None), &env)
            .expect_err("no CA");
        assert!(e.to_string().contains("--certificate-authority"), "{e}");
        // The token is read; the "CA" (here the token file itself) is not a certificate.
        let e = Connector::from_args(&args(Some("https://x"), Some(&token), Some(&token)), &env)
            .expect_err("bad CA");
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        assert!(!format!("{e} {e:?}").contains("tok-canary-51"), "{e:?}");
        std::fs::write(&token, "  \n").expect("write");
        let e = Connector::from_args(&args(Some("https://x"), Some(&token), Some(&token)), &env)
            .expect_err("empty token");
        assert!(e.to_string().contains("is empty"), "{e}");
    }

    #[test]
    fn outside_a_pod_the_kubeconfig_is_used() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = MapEnvironment(HashMap::from([("KUBERNETES_SERVICE_HOST", "10.0.0.1")]));
        let mut a = args(None, None, None);
        a.kubeconfig = Some(dir.path().join("missing"));
        let e = Connector::from_args(&a, &env).expect_err("missing kubeconfig");
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
