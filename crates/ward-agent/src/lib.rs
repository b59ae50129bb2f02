//! `ward agent` and `ward run`: Secrets (and ConfigMaps) delivered to workloads.
//!
//! `ward agent` watches the objects named by a configuration file in Kubernetes volume syntax
//! (or by the secret volumes of a Pod or Deployment manifest) and writes them as files with the
//! kubelet's atomic layout (a timestamped directory and a `..data` symlink swapped in one
//! rename), within a second of a change instead of the kubelet's minute. It reads each object
//! with `get` and watches it by name (`fieldSelector=metadata.name=...`), so its identity needs
//! only `get` and `watch` restricted by `resourceNames`, never `list`. It resumes from the last
//! resourceVersion, reads again after 410, backs off while the API is unreachable and keeps the
//! last good files meanwhile. It tells the application by `--on-change CMD`, by
//! `--signal PID:SIGNAL`, or by supervising it (`ward agent ... -- CMD ARGS`).
//!
//! `ward run` is the environment-variable path for programs that cannot read files: values are
//! set only in the child's environment, with a warning that explains the leak.
//!
//! This crate speaks only the public Kubernetes API through `ward-client`; it must never depend
//! on Ward's server or storage crates. Secret values are held in zeroizing buffers that print as
//! `[redacted]`; they reach the target files or the child's environment and nothing else: never
//! a log line, an error or a `Debug` output.
//!
//! The `ward` binary embeds the command lines:
//!
//! ```
//! use clap::Parser as _;
//!
//! let args = ward_agent::AgentArgs::try_parse_from([
//!     "agent", "--config", "agent.yaml", "--reload-signal", "USR1", "--", "my-app", "--serve",
//! ])
//! .expect("valid flags");
//! // tokio::runtime::Runtime::new()?.block_on(ward_agent::run_agent(args))?;
//! # drop(args);
//! let run = ward_agent::RunArgs::try_parse_from(["run", "--secret", "db/password=DB_PASSWORD"]);
//! assert!(run.is_err(), "a command after -- is required");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod cli;
mod config;
mod connect;
mod error;
mod notify;
mod object;
mod projection;
mod run;
mod watcher;
mod writer;

pub use cli::{AgentArgs, RunArgs};
pub use error::AgentError;

/// Runs `ward agent` until SIGTERM or SIGINT, or until the supervised command exits.
///
/// `Ok(())` when stopped by a signal without a supervised command, or when the supervised
/// command exited with status 0. `Err(ChildFailed)` carries the command's non-zero status
/// (see [`AgentError::exit_code`]). Other `Err`s are start-up failures: a bad config or
/// manifest, credentials that cannot be used, a refused target; with `--once`, any object that
/// cannot be read or delivered. Once running, API and write errors are logged and retried, and
/// the last good files are kept.
pub async fn run_agent(args: AgentArgs) -> Result<(), AgentError> {
    agent::run(args, &connect::ProcessEnvironment).await
}

/// Runs `ward run`: reads the secrets once, starts the command with them in its environment,
/// forwards SIGTERM and SIGINT to it, and waits for it.
///
/// `Ok` holds the command's exit status (128 + N if signal N killed it). `Err` when a secret
/// cannot be read (absent, forbidden, values withheld), a key is missing or cannot be a
/// variable name, two specs set the same variable, or the command cannot start.
pub async fn run_with_secrets(args: RunArgs) -> Result<i32, AgentError> {
    run::run(args, &connect::ProcessEnvironment).await
}
