//! Errors of the agent and of `ward run`.
//!
//! Policy: every message names the file, the field or the object and says what was expected; no
//! message ever carries a secret value (values only live in [`crate::object::SecretBytes`], which
//! has no `Display` and a redacting `Debug`). Errors after start-up (an unreachable API, a
//! withheld value, a failed write) are not returned: the agent logs them, keeps the last good
//! files and retries. Only what stops the agent from starting, or ends it, is an [`AgentError`].

use std::path::PathBuf;

/// Why the agent or `ward run` stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The supervised command exited with a non-zero status (128 + N when killed by signal N).
    #[error("{program} exited with status {code}")]
    ChildFailed {
        /// The program.
        program: String,
        /// Its exit status.
        code: i32,
    },
    /// The supervised command (`ward agent ... -- CMD`, `ward run ... -- CMD`) could not start.
    #[error("cannot start {program}: {source}")]
    ChildSpawn {
        /// The program (its arguments are never logged: they may hold credentials).
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A connection to the API could not be set up (kubeconfig, token file, CA).
    #[error("{0}")]
    Client(#[source] ward_client::ClientError),
    /// The configuration file, the manifest or a command-line value is invalid.
    #[error("{source_name}: {field}: {message}")]
    Config {
        /// The file (or `command line`).
        source_name: String,
        /// The field, as a path (`volumes[0].secret.items[1].path`).
        field: String,
        /// What was expected.
        message: String,
    },
    /// A file the agent reads (configuration, manifest, token, CA) could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(#[source] std::io::Error),
    /// `--once`, or `ward run`: an object could not be read or delivered.
    #[error("{object}: {message}")]
    Sync {
        /// The object (`secret default/db`).
        object: String,
        /// What went wrong.
        message: String,
    },
    /// A target directory or file is refused (world-readable, not in memory, not a directory)
    /// or could not be prepared.
    #[error("target {path}: {message}")]
    Target {
        /// The target.
        path: PathBuf,
        /// Why, and the flag that overrides it when there is one.
        message: String,
    },
}

impl AgentError {
    /// The exit status the process should end with: the supervised command's own status for
    /// [`AgentError::ChildFailed`], `None` (meaning "a failure", 1) for every other error.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            AgentError::ChildFailed { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn config(
        source_name: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AgentError::Config {
            source_name: source_name.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn target(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        AgentError::Target {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<ward_client::ClientError> for AgentError {
    fn from(e: ward_client::ClientError) -> Self {
        AgentError::Client(e)
    }
}
