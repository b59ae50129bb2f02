//! `ward agent`: load the plan, check the targets, start one watcher per object, and turn every
//! batch of updates into atomic writes and notifications.
//!
//! Life cycle:
//! 1. Parse the config or manifest; resolve the namespace; check and create every target.
//! 2. Start one watcher per distinct object. A volume is first written once every object it
//!    reads has been read (an object the agent may not read holds back only its own volumes);
//!    that first write notifies nobody.
//! 3. Each batch of updates re-projects the volumes that read the changed objects and writes
//!    those whose files differ from what is on disk. A volume that cannot be projected (withheld
//!    values, a missing key) keeps its last files and the problem is logged once.
//! 4. After a batch that changed files: `--signal`s, the supervised command's reload signal and
//!    `--on-change` (which runs in the background; changes that arrive meanwhile are merged into
//!    one more run).
//! 5. The supervised command starts once every volume has been written with all its required
//!    objects present; the agent ends with it, and forwards SIGTERM/SIGINT to it.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Child;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::instrument::WithSubscriber as _;

use crate::AgentArgs;
use crate::config::{self, ManifestOptions, Mode, Target, Volume};
use crate::connect::{Connector, Environment};
use crate::error::AgentError;
use crate::notify::{self, Signal};
use crate::object::{Namespace, ObjectRef, ObjectState};
use crate::projection::{self, OnDelete, Outcome};
use crate::watcher::{self, Update};
use crate::writer::{self, WriteOptions};

/// Runs the agent; see [`crate::run_agent`].
pub(crate) async fn run(args: AgentArgs, env: &dyn Environment) -> Result<(), AgentError> {
    let plan = match (&args.config, &args.from_manifest) {
        (Some(path), _) => config::load_config(path)?,
        (None, Some(path)) => config::load_manifest(
            path,
            &ManifestOptions {
                workload: args.workload.as_deref(),
                containers: &args.container,
                mount_root: args.mount_root.as_deref(),
                env_dir: args.env_dir.as_deref(),
            },
        )?,
        (None, None) => {
            return Err(AgentError::config(
                "command line",
                "--config",
                "give --config FILE or --from-manifest FILE",
            ));
        }
    };
    let namespace_arg = args
        .namespace
        .as_deref()
        .map(Namespace::parse)
        .transpose()
        .map_err(|e| AgentError::config("command line", "--namespace", e))?;
    for note in &plan.notes {
        tracing::info!("{note}");
    }
    let opts = WriteOptions {
        uid: args.uid,
        gid: args.gid,
        allow_world_readable: args.allow_world_readable,
        allow_non_tmpfs: args.allow_non_tmpfs,
        mount_tmpfs: args.mount_tmpfs,
    };
    if opts.allow_world_readable {
        tracing::warn!("--allow-world-readable: other users of this host may read the files");
    }
    for v in &plan.volumes {
        for note in writer::prepare(&v.target, file_mode(v), &opts)? {
            if note.contains("--allow-non-tmpfs") {
                tracing::warn!("{note}");
            } else {
                tracing::info!("{note}");
            }
        }
    }
    let connector = Arc::new(Connector::from_args(&args.connect, env)?);
    let namespace = namespace_arg
        .or_else(|| plan.namespace.clone())
        .or_else(|| connector.namespace.clone())
        .unwrap_or_else(Namespace::default_namespace);
    let mut objects: Vec<ObjectRef> = plan
        .volumes
        .iter()
        .flat_map(|v| {
            v.sources
                .iter()
                .map(|s| projection::object_of(s, &namespace))
        })
        .collect();
    objects.sort();
    objects.dedup();
    let mut agent = Agent {
        volumes: plan
            .volumes
            .into_iter()
            .map(|volume| VolumeState {
                volume,
                written: false,
                complete: false,
                hold: None,
                absent: BTreeSet::new(),
                dirty: false,
            })
            .collect(),
        namespace,
        states: HashMap::new(),
        on_delete: args.on_delete,
        opts,
    };
    if args.once {
        return agent.once(&connector, &objects).await;
    }

    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let (tx, mut rx) = mpsc::channel::<Update>(CHANNEL_DEPTH);
    let mut watchers = tokio::task::JoinSet::new();
    // One client (one connection pool, HTTP/2 multiplexing the watches) shared by the watchers;
    // a watcher that gets a 401 builds its own from freshly read credentials.
    let client = connector.client()?;
    for object in &objects {
        tracing::info!(%object, "watching");
        watchers.spawn(
            watcher::watch_object(
                object.clone(),
                connector.clone(),
                client.clone(),
                tx.clone(),
                args.max_backoff,
            )
            .with_current_subscriber(),
        );
    }
    drop(tx);
    let on_change = args.on_change.clone().map(|cmd| {
        let (tx, rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
        watchers.spawn(on_change_loop(cmd, rx).with_current_subscriber());
        tx
    });

    let mut synced = false;
    let mut waiting_logged = false;
    let mut child: Option<(Child, String)> = None;
    let mut retry = tokio::time::interval(RETRY_EVERY);
    loop {
        tokio::select! {
            update = rx.recv() => {
                let Some(update) = update else {
                    return Err(AgentError::Sync {
                        object: "watchers".into(),
                        message: "every watcher stopped".into(),
                    });
                };
                let mut changed_objects = BTreeSet::new();
                changed_objects.insert(update.object.clone());
                agent.states.insert(update.object, update.state);
                while let Ok(more) = rx.try_recv() {
                    changed_objects.insert(more.object.clone());
                    agent.states.insert(more.object, more.state);
                }
                let ns = agent.namespace.clone();
                let changed = agent.sync(|v| v.reads_any(&changed_objects, &ns)).await;
                if !changed.is_empty() && (args.command.is_empty() || child.is_some()) {
                    notify(&args, child.as_ref().map(|(c, _)| c), &on_change, changed).await;
                }
                if !synced && objects.iter().all(|o| agent.states.contains_key(o)) {
                    synced = true;
                    tracing::info!(volumes = agent.volumes.len(), objects = objects.len(),
                        "every object read once");
                }
                if child.is_none() && !args.command.is_empty() {
                    if agent.ready() {
                        child = Some(spawn_child(&args.command)?);
                    } else if synced && !waiting_logged {
                        waiting_logged = true;
                        tracing::info!(
                            "waiting for every required object before starting the command"
                        );
                    }
                }
            }
            _ = retry.tick(), if agent.volumes.iter().any(|v| v.dirty) => {
                let changed = agent.sync(|v| v.dirty).await;
                if !changed.is_empty() && (args.command.is_empty() || child.is_some()) {
                    notify(&args, child.as_ref().map(|(c, _)| c), &on_change, changed).await;
                }
            }
            status = wait_child(&mut child) => {
                let program = child.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
                return child_result(&program, status);
            }
            _ = term.recv() => return stop(child, Signal::TERM).await,
            _ = int.recv() => return stop(child, Signal::INT).await,
        }
    }
}

/// The agent's state between batches.
struct Agent {
    volumes: Vec<VolumeState>,
    namespace: Namespace,
    states: HashMap<ObjectRef, ObjectState>,
    on_delete: OnDelete,
    opts: WriteOptions,
}

struct VolumeState {
    volume: Volume,
    /// Written at least once (or found already current).
    written: bool,
    /// The last write had every required object.
    complete: bool,
    /// The reason the volume is held, logged once.
    hold: Option<String>,
    /// Required objects found absent, logged once each.
    absent: BTreeSet<ObjectRef>,
    /// The last write failed; retried on a timer.
    dirty: bool,
}

impl VolumeState {
    fn reads_any(&self, objects: &BTreeSet<ObjectRef>, namespace: &Namespace) -> bool {
        self.volume
            .sources
            .iter()
            .any(|s| objects.contains(&projection::object_of(s, namespace)))
    }
}

impl Agent {
    /// Projects and writes the volumes `pick` selects; returns the targets whose files changed,
    /// leaving out a volume's first write since the agent started (the application is not told
    /// about files it could not have read yet).
    async fn sync(&mut self, pick: impl Fn(&VolumeState) -> bool) -> Vec<PathBuf> {
        let mut changed = Vec::new();
        for vs in self.volumes.iter_mut().filter(|v| pick(v)) {
            let target = vs.volume.target.clone();
            let outcome =
                projection::project(&vs.volume, &self.namespace, &self.states, self.on_delete);
            let (payload, absent) = match outcome {
                Outcome::Waiting => continue,
                Outcome::Hold(reason) => {
                    if vs.hold.as_ref() != Some(&reason) {
                        tracing::error!(volume = %vs.volume.label,
                            target = %target.path().display(), "{reason}; keeping the last files");
                        vs.hold = Some(reason);
                    }
                    vs.dirty = false;
                    continue;
                }
                Outcome::Write { payload, absent } => (payload, absent),
            };
            let absent: BTreeSet<ObjectRef> = absent.into_iter().collect();
            for object in absent.difference(&vs.absent) {
                tracing::warn!(volume = %vs.volume.label, target = %target.path().display(),
                    "{object} does not exist (deleted, or not created yet): its files are removed \
                     (--on-delete remove)");
            }
            for object in vs.absent.difference(&absent) {
                tracing::info!(volume = %vs.volume.label, "{object} exists again");
            }
            let files = payload.0.len();
            let first = !vs.written;
            let opts = self.opts.clone();
            let write_target = target.clone();
            let written = tokio::task::spawn_blocking(move || match &write_target {
                Target::Dir(dir) => writer::write_dir(dir, &payload, &opts),
                Target::File { path, .. } => {
                    writer::write_file(path, payload.0.values().next(), &opts)
                }
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match written {
                Ok(did_change) => {
                    if vs.hold.take().is_some() {
                        tracing::info!(volume = %vs.volume.label, "delivering again");
                    }
                    vs.absent = absent;
                    vs.written = true;
                    vs.complete = vs.absent.is_empty();
                    vs.dirty = false;
                    if did_change {
                        tracing::info!(volume = %vs.volume.label, target = %target.path().display(),
                            files, "updated");
                        if !first {
                            changed.push(target.path().to_owned());
                        }
                    } else {
                        tracing::debug!(volume = %vs.volume.label, "unchanged");
                    }
                }
                Err(e) => {
                    if !vs.dirty {
                        tracing::error!(volume = %vs.volume.label,
                            target = %target.path().display(),
                            "cannot write: {e}; keeping the last files, retrying");
                    }
                    vs.dirty = true;
                }
            }
        }
        changed
    }

    /// Every volume written with all its required objects.
    fn ready(&self) -> bool {
        self.volumes.iter().all(|v| v.written && v.complete)
    }

    /// `--once`: read each object with `get`, write every volume, fail on any problem.
    async fn once(
        &mut self,
        connector: &Connector,
        objects: &[ObjectRef],
    ) -> Result<(), AgentError> {
        let client = connector.client()?;
        for object in objects {
            let state = match client.json(http::Method::GET, &object.path(), None).await {
                Ok(obj) => ObjectState::decode(object.kind, &obj),
                Err(e) if e.code() == Some(404) => ObjectState::Absent,
                Err(e) => {
                    return Err(AgentError::Sync {
                        object: object.to_string(),
                        message: e.to_string(),
                    });
                }
            };
            self.states.insert(object.clone(), state);
        }
        self.sync(|_| true).await;
        for vs in &self.volumes {
            if let Some(reason) = &vs.hold {
                return Err(AgentError::Sync {
                    object: vs.volume.label.clone(),
                    message: reason.clone(),
                });
            }
            if vs.dirty {
                return Err(AgentError::Sync {
                    object: vs.volume.label.clone(),
                    message: format!("cannot write {}", vs.volume.target.path().display()),
                });
            }
            if let Some(object) = vs.absent.first() {
                return Err(AgentError::Sync {
                    object: object.to_string(),
                    message: "does not exist".into(),
                });
            }
        }
        Ok(())
    }
}

/// The mode a single-file target gets: its item's mode, else the volume's default.
fn file_mode(v: &Volume) -> Mode {
    let Target::File { sub_path, .. } = &v.target else {
        return v.default_mode;
    };
    v.sources
        .iter()
        .flat_map(|s| s.items.iter().flatten())
        .find(|i| &i.path == sub_path)
        .and_then(|i| i.mode)
        .unwrap_or(v.default_mode)
}

/// `--signal`s, then the supervised command's reload signal, then `--on-change`.
async fn notify(
    args: &AgentArgs,
    child: Option<&Child>,
    on_change: &Option<mpsc::UnboundedSender<Vec<PathBuf>>>,
    changed: Vec<PathBuf>,
) {
    for ps in &args.signals {
        match ps.signal.send(ps.pid).await {
            Ok(()) => tracing::info!(pid = ps.pid, signal = %ps.signal, "signalled"),
            Err(e) => tracing::warn!(pid = ps.pid, signal = %ps.signal, "cannot signal: {e}"),
        }
    }
    if let Some(pid) = child.and_then(Child::id) {
        match args.reload_signal.send(pid).await {
            Ok(()) => tracing::info!(pid, signal = %args.reload_signal, "signalled the command"),
            Err(e) => tracing::warn!(pid, "cannot signal the command: {e}"),
        }
    }
    if let Some(tx) = on_change {
        let _ = tx.send(changed);
    }
}

/// Runs `--on-change` for each batch, merging batches that arrive while it runs.
async fn on_change_loop(command: String, mut rx: mpsc::UnboundedReceiver<Vec<PathBuf>>) {
    while let Some(mut changed) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            changed.extend(more);
        }
        changed.sort();
        changed.dedup();
        match notify::run_on_change(&command, &changed).await {
            Ok(s) if s.success() => tracing::info!("--on-change command succeeded"),
            Ok(s) => tracing::warn!("--on-change command failed: {s}"),
            Err(e) => tracing::warn!("cannot run the --on-change command: {e}"),
        }
    }
}

fn spawn_child(command: &[OsString]) -> Result<(Child, String), AgentError> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| AgentError::config("command line", "CMD", "is empty"))?;
    let name = program.to_string_lossy().into_owned();
    let child = tokio::process::Command::new(program)
        .args(rest)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| AgentError::ChildSpawn {
            program: name.clone(),
            source,
        })?;
    tracing::info!(program = %name, pid = child.id().unwrap_or_default(), "started the command");
    Ok((child, name))
}

/// Waits for the child, or forever without one.
async fn wait_child(
    child: &mut Option<(Child, String)>,
) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some((c, _)) => c.wait().await,
        None => std::future::pending().await,
    }
}

/// The agent's result for the child's exit status.
pub(crate) fn child_result(
    program: &str,
    status: std::io::Result<std::process::ExitStatus>,
) -> Result<(), AgentError> {
    match exit_code(status) {
        0 => {
            tracing::info!(program, "the command exited");
            Ok(())
        }
        code => Err(AgentError::ChildFailed {
            program: program.to_owned(),
            code,
        }),
    }
}

/// The exit code of a status, 128 + N for a signal as shells report it.
pub(crate) fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(s) => s
            .code()
            .or_else(|| s.signal().map(|n| 128 + n))
            .unwrap_or(1),
        Err(_) => 1,
    }
}

/// SIGTERM/SIGINT: forward to the child and wait for it (killing it after a grace period), or
/// just end.
async fn stop(child: Option<(Child, String)>, sig: Signal) -> Result<(), AgentError> {
    let Some((mut child, program)) = child else {
        tracing::info!(signal = %sig, "stopping");
        return Ok(());
    };
    if let Some(pid) = child.id() {
        tracing::info!(signal = %sig, pid, "stopping: forwarding the signal to the command");
        if let Err(e) = sig.send(pid).await {
            tracing::warn!("cannot forward {sig}: {e}");
        }
    }
    let status = match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            tracing::warn!("the command did not exit within {STOP_GRACE:?}; killing it");
            let _ = child.kill().await;
            child.wait().await
        }
    };
    child_result(&program, status)
}

const CHANNEL_DEPTH: usize = 256;
/// How often a failed write is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How long a supervised command gets to exit after SIGTERM/SIGINT.
const STOP_GRACE: Duration = Duration::from_secs(10);
