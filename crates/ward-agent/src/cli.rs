//! The command lines of `ward agent` and `ward run` (clap derive), for the `ward` binary to embed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::connect::ConnectArgs;
use crate::notify::{PidSignal, Signal};
use crate::projection::OnDelete;

/// Deliver Secrets and ConfigMaps as files, updated atomically within a second of a change.
#[derive(clap::Parser, Debug)]
#[command(
    name = "agent",
    after_help = AGENT_EXAMPLES,
    group(clap::ArgGroup::new("what").required(true).args(["config", "from_manifest"])),
)]
pub struct AgentArgs {
    /// Volumes to deliver, in Kubernetes volume syntax with a target each (see the examples)
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Deliver the secret volumes and secret environment variables of this Pod or workload
    /// manifest (Deployment, StatefulSet, DaemonSet, Job, CronJob)
    #[arg(long, value_name = "FILE")]
    pub(crate) from_manifest: Option<PathBuf>,
    /// With --from-manifest: the workload to use when the file holds several
    #[arg(long, value_name = "NAME", requires = "from_manifest")]
    pub(crate) workload: Option<String>,
    /// With --from-manifest: only these containers' mounts (repeatable) [default: all]
    #[arg(long, value_name = "NAME", requires = "from_manifest")]
    pub(crate) container: Vec<String>,
    /// With --from-manifest: prefix every mountPath with this directory
    #[arg(long, value_name = "DIR", requires = "from_manifest")]
    pub(crate) mount_root: Option<PathBuf>,
    /// With --from-manifest: where variables taken from Secrets become files, one per variable
    /// [default: /run/secrets/env, under --mount-root]
    #[arg(long, value_name = "DIR", requires = "from_manifest")]
    pub(crate) env_dir: Option<PathBuf>,
    /// Namespace of the objects [default: the config's or manifest's, then the kubeconfig
    /// context's, then "default"]
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Owner of written files and directories (numeric uid)
    #[arg(long)]
    pub(crate) uid: Option<u32>,
    /// Group of written files and directories (numeric gid); directories become 0750 when a
    /// file mode grants the group access
    #[arg(long)]
    pub(crate) gid: Option<u32>,
    /// Write to targets that are not on tmpfs (values then reach the disk)
    #[arg(long)]
    pub(crate) allow_non_tmpfs: bool,
    /// Accept target directories and file modes that other users can read
    #[arg(long)]
    pub(crate) allow_world_readable: bool,
    /// Mount a tmpfs (mode 0700) on directory targets that are not on one (needs root)
    #[arg(long)]
    pub(crate) mount_tmpfs: bool,
    /// When a Secret or ConfigMap a volume needs is deleted: remove its files, or keep the last
    /// ones
    #[arg(long, value_enum, default_value = "remove")]
    pub(crate) on_delete: OnDelete,
    /// Run this shell command after files change ($WARD_CHANGED lists the changed targets)
    #[arg(long, value_name = "CMD")]
    pub(crate) on_change: Option<String>,
    /// Send SIGNAL to process PID after files change (repeatable), e.g. 1234:HUP
    #[arg(long = "signal", value_name = "PID:SIGNAL")]
    pub(crate) signals: Vec<PidSignal>,
    /// Signal sent to the command given after `--` when its files change
    #[arg(long, value_name = "SIGNAL", default_value = "HUP")]
    pub(crate) reload_signal: Signal,
    /// Longest wait between retries while the API is unreachable
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub(crate) max_backoff: Duration,
    /// Write the files once and exit (for init containers and CI jobs)
    #[arg(long, conflicts_with_all = ["command", "on_change", "signals"])]
    pub(crate) once: bool,
    /// Command to supervise: started once the files are written, signalled when they change;
    /// the agent exits with its status
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<OsString>,
}

/// Run a command with Secret values in its environment (for programs that cannot read files).
#[derive(clap::Parser, Debug)]
#[command(name = "run", after_help = RUN_EXAMPLES)]
pub struct RunArgs {
    /// NAME (every key), NAME/KEY, or NAME/KEY=VARIABLE (repeatable); a key becomes a variable
    /// of the same name
    #[arg(long = "secret", value_name = "NAME[/KEY[=VAR]]", required = true)]
    pub(crate) secrets: Vec<String>,
    /// Namespace of the secrets [default: the kubeconfig context's, then "default"]
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<OsString>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 500ms, 30s)"))?;
    if d < Duration::from_millis(10) {
        return Err(format!("{s:?}: must be at least 10ms"));
    }
    Ok(d)
}

const AGENT_EXAMPLES: &str = "\
Examples:
  # agent.yaml: Kubernetes volume syntax, one target per volume
  #   volumes:
  #     - name: db
  #       target: /run/secrets/db
  #       secret: {secretName: db, defaultMode: 0400}
  #     - name: app
  #       target: /run/secrets/app
  #       projected:
  #         sources:
  #           - secret: {name: api, items: [{key: token, path: api-token}]}
  #           - configMap: {name: settings, optional: true}
  ward agent --config agent.yaml --kubeconfig agent.kubeconfig

  # Supervise the application: start it once files exist, send it SIGHUP on every change
  ward agent --config agent.yaml -- /usr/bin/my-app --config /etc/my-app.yaml

  # Reload a running process, or run a command, after each change
  ward agent --config agent.yaml --signal \"$(cat /run/nginx.pid):HUP\"
  ward agent --config agent.yaml --on-change 'systemctl reload my-app'

  # The secret volumes and secretKeyRef variables of a Deployment, under /srv/my-app
  ward agent --from-manifest deploy.yaml --mount-root /srv/my-app

  # Inside a pod (its ServiceAccount) or with a token: grant get and watch on the names only
  kubectl create role agent-db --verb=get,watch --resource=secrets --resource-name=db
  ward agent --config agent.yaml --server https://10.0.0.1:6443 \\
      --token-file /var/run/agent/token --certificate-authority /var/run/agent/ca.crt

Readers see each version whole: TARGET/..data is swapped in one rename, as the kubelet does.
Targets must be on tmpfs and private (0700) unless --allow-non-tmpfs/--allow-world-readable.";

const RUN_EXAMPLES: &str = "\
Examples:
  # DB_PASSWORD from key `password` of secret `db`, every key of `api` as a variable
  ward run --secret db/password=DB_PASSWORD --secret api -- ./migrate --up

Environment variables leak: other processes of the same user read them in /proc/PID/environ,
every child inherits them, and crash reports and debug dumps capture them. Prefer `ward agent`,
whose files update without a restart.";
