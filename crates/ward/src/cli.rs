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
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Run the Kubernetes-API-compatible server for Secrets, ConfigMaps and Namespaces.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Read or write stored values offline (kube-apiserver's etcd bytes, or Ward's).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Re-encrypt stored objects through the API with the server's current first key.
    #[command(after_help = REWRITE_EXAMPLES)]
    Rewrite(RewriteArgs),
    /// Find where Secrets are exposed: manifests, dumps, encryption configs, audit policies.
    Scan(ward_scan::ScanArgs),
    /// A KMS v2 plugin (gRPC on a unix socket) for Ward or kube-apiserver: keys in files or in a
    /// PKCS#11 token.
    KmsPlugin(ward_kms::KmsPluginArgs),
    /// Deliver Secrets and ConfigMaps to a workload as files: atomic updates, tight modes,
    /// following changes by watch.
    Agent(ward_agent::AgentArgs),
    /// Run a command with secrets in its environment (prefer `ward agent`'s files).
    Run(ward_agent::RunArgs),
    /// Inspect a live etcd (read-only).
    #[command(subcommand)]
    Etcd(EtcdCommand),
}

#[derive(Subcommand, Debug)]
enum EtcdCommand {
    /// Report how each Secret and ConfigMap in a live etcd is stored (read-only).
    Audit(ward_server::etcd_audit::EtcdAuditArgs),
}

const REWRITE_EXAMPLES: &str = "\
Key rotation, step by step (one server; with several, restart them all at each step):
  1. Add the new key as the SECOND key of the provider in the encryption config; restart.
  2. Make it the FIRST key (the old one second); restart.
  3. ward rewrite --kubeconfig admin.kubeconfig        # every secret and configmap
  4. Remove the old key; restart.

Examples:
  ward rewrite --resources secrets --namespace prod
  ward rewrite --state-file rewrite.state   # re-run the same command to resume";

#[derive(clap::Args, Debug)]
struct RewriteArgs {
    /// kubeconfig of an admin [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// kubeconfig context [default: the current context]
    #[arg(long)]
    context: Option<String>,
    /// Resources to rewrite (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "secrets,configmaps")]
    resources: Vec<String>,
    /// Only this namespace [default: all namespaces]
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Save progress here so an interrupted run resumes.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Objects per list page.
    #[arg(long, default_value_t = 500)]
    page_size: usize,
}

#[derive(Subcommand, Debug)]
enum StorageCommand {
    /// Decrypt and decode one stored value; Secret values are redacted unless --show-values.
    #[command(after_help = DECODE_EXAMPLES)]
    Decode(DecodeArgs),
    /// Encode an object (JSON or YAML) as kube-apiserver stores it, through the first provider.
    #[command(after_help = ENCODE_EXAMPLES)]
    Encode(EncodeArgs),
}

const DECODE_EXAMPLES: &str = "\
Examples:
  # A value read from a kube-apiserver's etcd
  ETCDCTL_API=3 etcdctl get /registry/secrets/default/db --print-value-only > db.bin
  ward storage decode --encryption-provider-config /etc/kubernetes/enc.yaml \\
      --key /registry/secrets/default/db --value-file db.bin -o yaml";

const ENCODE_EXAMPLES: &str = "\
Examples:
  ward storage encode --encryption-provider-config enc.yaml \\
      --key /registry/secrets/default/db -f secret.yaml > db.bin";

#[derive(clap::Args, Debug)]
struct DecodeArgs {
    /// kube-apiserver EncryptionConfiguration that can decrypt the value.
    #[arg(long)]
    encryption_provider_config: PathBuf,
    /// The etcd key (the AAD of GCM-based providers), e.g. /registry/secrets/NS/NAME.
    #[arg(long)]
    key: String,
    /// File holding the raw stored bytes.
    #[arg(long)]
    value_file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, default_value = "json", value_parser = ["json", "yaml"])]
    output: String,
    /// Print Secret values instead of `<redacted>`.
    #[arg(long)]
    show_values: bool,
}

#[derive(clap::Args, Debug)]
struct EncodeArgs {
    /// kube-apiserver EncryptionConfiguration whose first provider encrypts.
    #[arg(long)]
    encryption_provider_config: PathBuf,
    /// The etcd key the value will be stored under.
    #[arg(long)]
    key: String,
    /// The object, JSON or YAML ("-" for stdin).
    #[arg(short = 'f', long)]
    filename: PathBuf,
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
  ward serve --encryption-provider-config /etc/ward/encryption.yaml

  # Store in an etcd cluster (TLS with a client certificate), as kube-apiserver does
  ward serve --etcd-servers https://10.0.0.1:2379,https://10.0.0.2:2379 \\
      --etcd-cafile ca.crt --etcd-certfile client.crt --etcd-keyfile client.key";

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
    /// Store in etcd (comma-separated endpoints) instead of the embedded database.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// CA that verifies etcd's serving certificate.
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    etcd_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long)]
    etcd_keyfile: Option<PathBuf>,
    /// Key prefix in etcd, as kube-apiserver's --etcd-prefix: keys are
    /// PREFIX/RESOURCE/NAMESPACE/NAME (e.g. /registry/secrets/default/db). Encryption binds each
    /// value to its full key, so data moves between Ward and kube-apiserver only with the same
    /// prefix.
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// Let list and watch return Secret values to anyone who may list them (upstream's
    /// behaviour). By default values go only to callers who may `get` that Secret.
    #[arg(long)]
    list_reveals_values: bool,
    /// audit.k8s.io/v1 Policy file [default: every request at Metadata]; rules that would log
    /// secret values are downgraded to Metadata.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// Audit log file ("-" for standard output) [default: DATA_DIR/audit.log].
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Rotate the audit log at this size, in MiB.
    #[arg(long, default_value_t = 100)]
    audit_log_maxsize: u64,
    /// Rotated audit logs to keep (0 = all).
    #[arg(long, default_value_t = 10)]
    audit_log_maxbackup: usize,
    /// Days to keep rotated audit logs.
    #[arg(long)]
    audit_log_maxage: Option<u32>,
    /// Refuse a request when its audit event cannot be written.
    #[arg(long)]
    audit_fail_closed: bool,
    /// Re-read the encryption configuration when it changes (checked every minute).
    #[arg(long)]
    encryption_provider_config_automatic_reload: bool,
    /// How often the automatic reload checks the file, in seconds (for tests and impatient
    /// operators).
    #[arg(long, default_value_t = 60, hide = true)]
    encryption_provider_config_reload_seconds: u64,
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
    if let Command::Scan(args) = cli.command {
        // Exit 0 clean, 1 findings at --fail-on or worse, 2 for errors.
        return match ward_scan::run(args, &mut std::io::stdout().lock()) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Storage(StorageCommand::Decode(args)) => storage_decode(args),
        Command::Storage(StorageCommand::Encode(args)) => storage_encode(args),
        Command::Rewrite(args) => runtime.block_on(rewrite(args)),
        Command::Scan(_) => Ok(()),
        Command::KmsPlugin(args) => runtime
            .block_on(ward_kms::run_plugin(args))
            .map_err(Into::into),
        Command::Agent(args) => match runtime.block_on(ward_agent::run_agent(args)) {
            Ok(()) => Ok(()),
            Err(e) => match e.exit_code() {
                Some(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
                None => Err(e.into()),
            },
        },
        Command::Etcd(EtcdCommand::Audit(args)) => runtime.block_on(etcd_audit(args)),
        Command::Run(args) => match runtime.block_on(ward_agent::run_with_secrets(args)) {
            Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => Err(e.into()),
        },
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
        etcd: (!args.etcd_servers.is_empty()).then_some(ward_server::EtcdConfig {
            servers: args.etcd_servers,
            ca_file: args.etcd_cafile,
            cert_file: args.etcd_certfile,
            key_file: args.etcd_keyfile,
            prefix: args.etcd_prefix,
        }),
        list_reveals_values: args.list_reveals_values,
        audit: ward_server::AuditOptions {
            policy_file: args.audit_policy_file,
            log_path: Some(
                args.audit_log_path
                    .unwrap_or_else(|| data_dir.join("audit.log")),
            ),
            max_size_mb: args.audit_log_maxsize,
            max_backups: args.audit_log_maxbackup,
            max_age_days: args.audit_log_maxage,
            fail_closed: args.audit_fail_closed,
        },
        encryption_config_reload_interval: if args.encryption_provider_config_automatic_reload {
            std::time::Duration::from_secs(args.encryption_provider_config_reload_seconds.max(1))
        } else {
            std::time::Duration::ZERO
        },
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

fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn storage_decode(args: DecodeArgs) -> anyhow::Result<()> {
    let value = read_input(&args.value_file)?;
    let d = ward_server::admin::decode(
        &args.encryption_provider_config,
        &args.key,
        &value,
        args.show_values,
    )?;
    let key = if d.key_name.is_empty() {
        String::new()
    } else {
        format!(" key {:?}", d.key_name)
    };
    let kms_key_id = match &d.kms_key_id {
        Some(id) => format!(" key_id {id:?}"),
        None => String::new(),
    };
    let version = if d.version.is_empty() {
        String::new()
    } else {
        format!(" {}", d.version)
    };
    eprintln!(
        "# decrypted by {}{version}{key}{kms_key_id}{}",
        d.provider,
        if d.stale { " (stale)" } else { "" }
    );
    let text = match args.output.as_str() {
        "yaml" => serde_saphyr::to_string(&d.object)?,
        _ => format!("{}\n", serde_json::to_string_pretty(&d.object)?),
    };
    print!("{text}");
    Ok(())
}

fn storage_encode(args: EncodeArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let object = read_input(&args.filename)?;
    let bytes = ward_server::admin::encode(&args.encryption_provider_config, &args.key, &object)?;
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}

struct Bar(Option<indicatif::ProgressBar>);

impl ward_client::rewrite::Progress for Bar {
    fn start(&mut self, resource: &str, total: u64) {
        if let Some(b) = self.0.take() {
            b.finish();
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(resource.to_owned());
        self.0 = Some(bar);
    }

    fn done(&mut self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }
}

async fn rewrite(args: RewriteArgs) -> anyhow::Result<()> {
    let client =
        ward_client::Client::from_kubeconfig(args.kubeconfig.as_deref(), args.context.as_deref())?;
    let opts = ward_client::rewrite::RewriteOptions {
        resources: args.resources,
        namespace: args.namespace,
        state_file: args.state_file,
        page_size: args.page_size,
    };
    let mut bar = Bar(None);
    let report = ward_client::rewrite::rewrite(&client, &opts, &mut bar).await?;
    if let Some(b) = bar.0.take() {
        b.finish();
    }
    println!(
        "rewritten: {}  changed meanwhile: {}  deleted meanwhile: {}  done by an earlier run: {}",
        report.rewritten, report.conflicts, report.gone, report.resumed
    );
    Ok(())
}

async fn etcd_audit(args: ward_server::etcd_audit::EtcdAuditArgs) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    let report = ward_server::etcd_audit::etcd_audit(&args.options(), &mut |done, total| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    print!("{}", report.render(args.output));
    Ok(())
}
