//! Errors of a scan.
//!
//! Reading and parsing errors name the file and, for parse errors, the line and column; they
//! never contain input text, because the input is full of secrets. A directory walk skips files
//! it cannot parse (with a warning through `tracing`) instead of failing, since a repository
//! often holds Helm templates and other YAML that is not a manifest; a file named on the command
//! line, or standard input, must parse.

use std::io;
use std::path::PathBuf;

/// Why a scan could not run to the end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The argument names no file or directory, or it could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path as given or found.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{file}: not UTF-8 text")]
    NotUtf8 {
        /// The file (`-` for standard input).
        file: String,
    },
    /// The file is larger than the scanner accepts.
    #[error("{file}: larger than {limit} bytes")]
    TooLarge {
        /// The file (`-` for standard input).
        file: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is neither YAML nor JSON.
    #[error("{file}:{line}:{column}: not valid YAML or JSON: {message}")]
    Parse {
        /// The file (`-` for standard input).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected; never the input text.
        message: String,
    },
    /// The async runtime for `--kubeconfig` could not be started.
    #[error("cannot start the runtime for the cluster client")]
    Runtime {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The kubeconfig (or its context) cannot be used to reach the cluster.
    #[error("cannot use the kubeconfig")]
    Connect {
        /// The cause: names the file and the field, never a credential.
        #[source]
        source: ward_client::ClientError,
    },
    /// A list could not be read from the cluster (other than 404 or 403, which are skipped).
    #[error("cannot list {path} from the cluster")]
    Cluster {
        /// The API path, such as `/api/v1/configmaps`.
        path: String,
        /// The cause.
        #[source]
        source: ward_client::ClientError,
    },
    /// The report could not be written.
    #[error("cannot write the report")]
    Write {
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl From<io::Error> for ScanError {
    fn from(source: io::Error) -> Self {
        ScanError::Write { source }
    }
}
