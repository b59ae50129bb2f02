//! The command line of `ward`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Ward: a Kubernetes-compatible secrets system.
#[derive(Parser, Debug)]
#[command(name = "ward", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the Kubernetes-API-compatible server for Secrets, ConfigMaps and Namespaces.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  # First start: creates a CA, a serving certificate, an admin kubeconfig and an encryption key
  ward serve
  export KUBECONFIG=~/.local/share/ward/admin.kubeconfig
  kubectl create secret generic db --from-literal=password=s3cret

  # Another data directory and port, reachable by name
  ward serve --data-dir /var/lib/ward --secure-port 8443 --tls-san ward.example.com

  # Bring your own kube-apiserver EncryptionConfiguration
  ward serve --encryption-provider-config /etc/ward/encryption.yaml";

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Directory for the store, PKI, admin credential and generated keys
    /// [default: $XDG_DATA_HOME/ward or ~/.local/share/ward]
    #[arg(long, env = "WARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Extra DNS name or IP for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// kube-apiserver EncryptionConfiguration file; default: the one generated on first start.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Revisions of history kept for watches.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// Static bearer tokens, kube-apiserver's CSV format: token,user,uid[,"group1,group2"].
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// CA bundle for client certificates (CN = user name, O = groups).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Serve requests without credentials as system:anonymous (off by default).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// PKCS#8 PEM ECDSA P-256 key that signs ServiceAccount tokens [default: generated]
    #[arg(long)]
    service_account_signing_key_file: Option<PathBuf>,
    /// Issuer (iss) of ServiceAccount tokens.
    #[arg(long, default_value = ward_server::DEFAULT_SERVICE_ACCOUNT_ISSUER)]
    service_account_issuer: String,
    /// Audiences the API accepts in tokens (comma-separated) [default: the issuer]
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WARD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("ward"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/ward")),
        None => anyhow::bail!(
            "cannot pick a data directory: neither XDG_DATA_HOME nor HOME is set; pass --data-dir"
        ),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let handle = ward_server::start(ward_server::ServeOptions {
        data_dir: data_dir.clone(),
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        tls_sans: args.tls_san,
        encryption_provider_config: args.encryption_provider_config,
        history_revisions: args.watch_history,
        token_auth_file: args.token_auth_file,
        client_ca_file: args.client_ca_file,
        anonymous_auth: args.anonymous_auth,
        service_account_signing_key_file: args.service_account_signing_key_file,
        service_account_issuer: args.service_account_issuer,
        api_audiences: args.api_audiences,
    })
    .await?;
    eprintln!(
        "ward serve is ready on https://{}\n  export KUBECONFIG={}\n  kubectl get namespaces",
        handle.local_addr(),
        data_dir.join("admin.kubeconfig").display()
    );
    shutdown_signal().await;
    tracing::info!("signal received; shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
