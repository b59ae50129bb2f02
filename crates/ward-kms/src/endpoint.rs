//! KMS plugin endpoints: `unix:///path/to.sock`, `unix:///@name` (Linux abstract socket, as
//! kube-apiserver writes it) or `@name`.
//!
//! Abstract sockets have no file and so no permissions: any process in the same network
//! namespace can connect. Prefer a path in a directory only the API server's user can enter.

use std::fmt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use crate::error::KmsError;

/// A parsed KMS endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct KmsEndpoint {
    target: Target,
}

#[derive(Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    Abstract(String),
}

impl KmsEndpoint {
    /// Parses `unix:///path`, `unix:///@name`, `@name` or a plain absolute path.
    ///
    /// # Errors
    ///
    /// [`KmsError::Endpoint`] for another scheme, a relative path or an empty name.
    pub fn parse(endpoint: &str) -> Result<Self, KmsError> {
        let bad = |reason| KmsError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let rest = match endpoint.strip_prefix("unix://") {
            Some(rest) => rest,
            None if endpoint.contains("://") => {
                return Err(bad(
                    "only the unix scheme is supported (unix:///path/to.sock)",
                ));
            }
            None => endpoint,
        };
        let name = rest.strip_prefix("/@").or_else(|| rest.strip_prefix('@'));
        let target = match name {
            Some("") => return Err(bad("the abstract socket name is empty")),
            Some(name) => Target::Abstract(name.to_owned()),
            None if rest.starts_with('/') && rest.len() > 1 => Target::Path(PathBuf::from(rest)),
            None => {
                return Err(bad(
                    "expected an absolute socket path (unix:///path/to.sock)",
                ));
            }
        };
        Ok(Self { target })
    }

    /// The socket file, or `None` for an abstract socket.
    pub fn path(&self) -> Option<&Path> {
        match &self.target {
            Target::Path(path) => Some(path),
            Target::Abstract(_) => None,
        }
    }

    /// Connects to the plugin.
    pub(crate) async fn connect(&self) -> std::io::Result<UnixStream> {
        match &self.target {
            Target::Path(path) => UnixStream::connect(path).await,
            Target::Abstract(name) => {
                let addr = abstract_addr(name)?;
                // A unix-domain connect completes or fails at once; it does not wait on a peer.
                let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                stream.set_nonblocking(true)?;
                UnixStream::from_std(stream)
            }
        }
    }

    /// Binds a listener. A socket file is created with mode 0600, replacing a stale socket left
    /// by an earlier run; any other file at the path is an error.
    pub(crate) fn bind(&self) -> Result<UnixListener, KmsError> {
        let io = |e| KmsError::io(self.to_string(), e);
        let listener = match &self.target {
            Target::Path(path) => {
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_socket() => {
                        std::fs::remove_file(path).map_err(io)?;
                    }
                    Ok(_) => {
                        return Err(KmsError::io(
                            self.to_string(),
                            std::io::Error::new(
                                std::io::ErrorKind::AlreadyExists,
                                "a file that is not a socket is in the way",
                            ),
                        ));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
                let listener = std::os::unix::net::UnixListener::bind(path).map_err(io)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
                listener
            }
            Target::Abstract(name) => {
                let addr = abstract_addr(name).map_err(io)?;
                std::os::unix::net::UnixListener::bind_addr(&addr).map_err(io)?
            }
        };
        listener.set_nonblocking(true).map_err(io)?;
        UnixListener::from_std(listener).map_err(io)
    }

    /// Removes the socket file (nothing for an abstract socket).
    pub(crate) fn remove(&self) {
        if let Target::Path(path) = &self.target {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl fmt::Display for KmsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Path(path) => write!(f, "unix://{}", path.display()),
            Target::Abstract(name) => write!(f, "unix:///@{name}"),
        }
    }
}

impl fmt::Debug for KmsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KmsEndpoint({self})")
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_endpoint_forms() {
        let e = KmsEndpoint::parse("unix:///var/run/kms.sock").unwrap();
        assert_eq!(e.path(), Some(Path::new("/var/run/kms.sock")));
        assert_eq!(e.to_string(), "unix:///var/run/kms.sock");
        for abstract_form in ["unix:///@kms", "@kms"] {
            let e = KmsEndpoint::parse(abstract_form).unwrap();
            assert_eq!(e.path(), None);
            assert_eq!(e.to_string(), "unix:///@kms");
        }
        assert!(KmsEndpoint::parse("/tmp/k.sock").is_ok());
        for bad in [
            "tcp://1.2.3.4:5",
            "unix://relative",
            "unix:///@",
            "@",
            "k.sock",
            "",
        ] {
            assert!(KmsEndpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
