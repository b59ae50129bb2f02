//! `ward-agent`: the same program as `ward agent`, in a binary of its own for sidecars and small
//! hosts. It links only what delivering files needs (no API server, storage, KMS or scanner),
//! so it maps less code into memory; see docs/benchmarks.md.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Delivers Secrets and ConfigMaps to files, atomically, following changes by watch (the same
/// options as `ward agent`).
#[derive(Parser)]
#[command(
    name = "ward-agent",
    version,
    after_help = "Examples:\n  \
        ward-agent --config agent.yaml --kubeconfig agent.kubeconfig\n  \
        ward-agent --from-manifest deploy.yaml --mount-root /srv/my-app -- /usr/bin/my-app\n\n\
        See `ward agent --help` for the full description of every option."
)]
struct Cli {
    #[command(flatten)]
    agent: ward_agent::AgentArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WARD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // One worker and few blocking threads: the agent waits on a few watches and writes small
    // files; each extra thread would cost a stack's worth of resident memory.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ward_agent::run_agent(cli.agent)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.exit_code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
