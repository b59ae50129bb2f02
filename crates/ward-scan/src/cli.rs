//! `ward scan`: the arguments and the run function the `ward` binary dispatches to.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::progress::Progress;
use crate::{ScanError, Scanner, SecretRef, Severity, SubjectRef, WhoCanOptions, input};

/// Find where Kubernetes Secrets are exposed: in manifests, RBAC, audit policies, encryption
/// configuration and control-plane static pods.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
#[non_exhaustive]
pub struct ScanArgs {
    /// A query instead of a scan.
    #[command(subcommand)]
    pub command: Option<ScanCommand>,
    /// Files or directories to scan; `-` reads standard input. Directories are searched
    /// recursively for *.yaml, *.yml and *.json (hidden directories are skipped). Optional with
    /// --kubeconfig or --context.
    #[arg(value_name = "PATH", required_unless_present_any = ["kubeconfig", "context"])]
    pub paths: Vec<PathBuf>,
    /// Also scan a live cluster, read-only (list only), through this kubeconfig. Kinds the
    /// server does not serve (404) or the credentials may not list (403) are skipped with a
    /// warning.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Scan the live cluster of this kubeconfig context (default: the current context; the
    /// kubeconfig defaults to $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Exit with status 1 when a finding of this severity or worse is reported.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
    /// Never draw the progress bar. It is drawn on stderr only when stderr is a terminal and the
    /// input is large (50 files or 4 MiB and more), and cleared before the report is printed.
    #[arg(long)]
    pub no_progress: bool,
}

/// How `ward scan` prints its findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum OutputFormat {
    /// `{"findings":[...]}`: rule, severity, threat, resource, file, path, message, fix, and
    /// line (1-based), document and item (0-based) locating the evidence in its file.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// A table grouped by severity, worst first.
    Table,
}

/// Queries over the scanned objects.
#[derive(clap::Subcommand, Debug, Clone)]
#[non_exhaustive]
pub enum ScanCommand {
    /// Who can obtain the value of a Secret, and how, from the RBAC objects in the given files.
    #[command(after_help = WHO_CAN_EXAMPLES)]
    WhoCan(WhoCanArgs),
}

/// `ward scan who-can read secret NAMESPACE/NAME PATH...`.
#[derive(clap::Args, Debug, Clone)]
#[non_exhaustive]
pub struct WhoCanArgs {
    /// What the subjects would do.
    #[arg(value_enum)]
    pub action: WhoCanAction,
    /// The kind of object.
    #[arg(value_enum)]
    pub kind: WhoCanKind,
    /// The Secret: NAMESPACE/NAME, or NAMESPACE/* for any Secret of the namespace.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub secret: SecretRef,
    /// Files or directories with Roles, ClusterRoles and their bindings; `-` reads standard
    /// input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Only show the paths of this subject: User:NAME, Group:NAME,
    /// ServiceAccount:NAMESPACE/NAME or system:serviceaccount:NAMESPACE:NAME.
    #[arg(long, value_name = "KIND:NAME")]
    pub subject: Option<SubjectRef>,
    /// Namespace of Roles and RoleBindings that have none (as `kubectl apply -n` would set).
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub default_namespace: String,
    /// Do not add the built-in ClusterRoles and bindings (cluster-admin for system:masters,
    /// admin, edit, view) to the scanned ones.
    #[arg(long)]
    pub no_builtin_roles: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = WhoCanFormat::Table)]
    pub output: WhoCanFormat,
}

/// The action of a who-can query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum WhoCanAction {
    /// Obtain the value, directly or indirectly.
    Read,
}

/// The kind of object of a who-can query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum WhoCanKind {
    /// A Secret.
    #[value(alias = "secrets")]
    Secret,
}

/// How `who-can` prints its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum WhoCanFormat {
    /// `{"secret":{..},"paths":[..],"warnings":[..]}`.
    Json,
    /// One line per subject and binding.
    Table,
}

const WHO_CAN_EXAMPLES: &str = "\
Examples:
  # Everyone who can read Secret db-password in namespace shop, and how
  kubectl get roles,rolebindings,clusterroles,clusterrolebindings -A -o yaml \\
    | ward scan who-can read secret shop/db-password -

  # Can the CI service account get at any Secret of shop?
  ward scan who-can read secret 'shop/*' rbac/ --subject ServiceAccount:ci/deployer

Direct paths are get, list and watch on the Secret. Indirect paths are creating or changing
pods and workloads in the namespace, exec, impersonating a reader, minting a reader's token,
escalate/bind on roles, and nodes/proxy. Groups are shown as groups: who is in them is not
known from manifests.";

const EXAMPLES: &str = "\
Examples:
  # Scan a repository of manifests and a Helm chart's output
  ward scan deploy/
  helm template my-release ./chart | ward scan -

  # Scan a live cluster, read-only (list only; Secret values are never read)
  ward scan --kubeconfig ~/.kube/config --context prod
  ward scan --kubeconfig ~/.kube/config -o json --fail-on high deploy/

  # Scan everything in a cluster, without contacting it from ward
  kubectl get all,configmaps,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings -A -o yaml \\
    | ward scan -

  # A control-plane node: static pods, encryption config and audit policy
  ward scan /etc/kubernetes/manifests /etc/kubernetes/enc.yaml /etc/kubernetes/audit-policy.yaml

  # In CI: SARIF for code scanning, and fail the job on high or critical findings
  ward scan -o sarif --fail-on high deploy/ > ward.sarif

  # A large dump on a terminal shows a progress bar on stderr; turn it off
  ward scan --no-progress -o json cluster-dump/ > findings.json

  # Who can read a Secret, through the scanned RBAC objects
  ward scan who-can read secret shop/db-password rbac/

Rules: secret-env-var, secret-like-configmap, literal-credential-env, rbac-secret-read,
rbac-implied-secret-access, rbac-escalation, hostpath-mount, privileged-node-access,
encryption-missing, encryption-identity-first, encryption-resource-uncovered,
encryption-weak-provider, encryption-key-colocated, etcd-transport-insecure,
audit-logs-secret-values, secret-file-mode, secret-subpath-mount, sa-token-automount,
legacy-sa-token-secret.

Exit status: 0, or 1 when --fail-on is given and a finding at or above it was reported.
Findings never contain secret values: only names, paths and what looked wrong.";

/// Runs `ward scan` (or `ward scan who-can`): reads every path (`-` is standard input) and,
/// with `--kubeconfig` or `--context`, the lists of a live cluster (one `GET` each, on a
/// current-thread runtime built here), writes the report to `out`, and returns the exit status.
///
/// # Returns
/// - `Ok(0)`: the scan ran; no `--fail-on`, or no finding at or above it; or who-can answered.
/// - `Ok(1)`: a finding at or above `--fail-on` was reported.
///
/// # Errors
/// - [`ScanError::Read`], [`ScanError::NotUtf8`], [`ScanError::TooLarge`]: a named path or
///   standard input could not be read (files found in a directory walk that fail to parse are
///   skipped and listed in the report instead);
/// - [`ScanError::Parse`]: a named file or standard input is not YAML or JSON;
/// - [`ScanError::Connect`], [`ScanError::Runtime`]: the cluster client could not be set up;
/// - [`ScanError::Cluster`]: a list failed other than with 404 or 403 (those are skipped);
/// - [`ScanError::Write`]: `out` failed.
///
/// The caller should print the error and exit with status 2, so that 1 keeps meaning "findings".
pub fn run(args: ScanArgs, out: &mut dyn Write) -> Result<u8, ScanError> {
    if let Some(ScanCommand::WhoCan(who)) = args.command {
        return who_can(who, out);
    }
    let (mut scanner, progress) = scan_paths(&args.paths, !args.no_progress)?;
    if args.kubeconfig.is_some() || args.context.is_some() {
        crate::cluster::add_cluster(
            &mut scanner,
            args.kubeconfig.as_deref(),
            args.context.as_deref(),
        )?;
    }
    progress.checking(scanner.object_count());
    let report = scanner.finish();
    progress.finish();
    match args.output {
        OutputFormat::Json => report.write_json(out)?,
        OutputFormat::Sarif => report.write_sarif(out)?,
        OutputFormat::Table => report.write_table(out)?,
    }
    out.flush()?;
    let failed = args
        .fail_on
        .is_some_and(|threshold| report.findings.iter().any(|f| f.severity >= threshold));
    Ok(u8::from(failed))
}

/// `who-can`: always exit status 0 once answered.
fn who_can(args: WhoCanArgs, out: &mut dyn Write) -> Result<u8, ScanError> {
    let (scanner, progress) = scan_paths(&args.paths, true)?;
    progress.finish();
    let options = WhoCanOptions {
        builtin_roles: !args.no_builtin_roles,
        default_namespace: args.default_namespace,
        subject: args.subject,
    };
    let report = scanner.who_can_read(&args.secret, &options);
    match args.output {
        WhoCanFormat::Json => report.write_json(out)?,
        WhoCanFormat::Table => report.write_table(out)?,
    }
    out.flush()?;
    Ok(0)
}

/// Reads every path into a scanner, with a progress bar over the files' bytes when the input is
/// large and stderr a terminal (see `progress.rs`). Directories are walked first, so that the
/// bar knows the total.
fn scan_paths(paths: &[PathBuf], progress: bool) -> Result<(Scanner, Progress), ScanError> {
    let inputs = plan(paths)?;
    let files = inputs.iter().filter(|i| !matches!(i, Input::Stdin)).count();
    let bytes = inputs.iter().map(Input::len).sum();
    let mut bar = Progress::new(progress, files, bytes);
    let mut scanner = Scanner::new();
    for input in &inputs {
        match input {
            Input::Stdin => scanner.add_reader("-", io::stdin().lock())?,
            Input::Named { path, len } => {
                scanner.add_path(path)?;
                bar.file_done(path, *len, scanner.object_count());
            }
            Input::Found { path, len } => {
                scanner.add_found_file(path)?;
                bar.file_done(path, *len, scanner.object_count());
            }
        }
    }
    Ok((scanner, bar))
}

/// One thing to read, in command-line order.
enum Input {
    /// `-`.
    Stdin,
    /// A file named on the command line: an error if it is not a manifest.
    Named { path: PathBuf, len: u64 },
    /// A file found in a directory walk: skipped if it is not a manifest.
    Found { path: PathBuf, len: u64 },
}

impl Input {
    fn len(&self) -> u64 {
        match self {
            Input::Stdin => 0,
            Input::Named { len, .. } | Input::Found { len, .. } => *len,
        }
    }
}

/// Expands directories into the files they hold, with sizes (0 when unknown: the read that
/// follows reports the error).
fn plan(paths: &[PathBuf]) -> Result<Vec<Input>, ScanError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                for file in input::walk(path)? {
                    let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                    inputs.push(Input::Found { path: file, len });
                }
            }
            meta => inputs.push(Input::Named {
                path: path.clone(),
                len: meta.map(|m| m.len()).unwrap_or(0),
            }),
        }
    }
    Ok(inputs)
}
