//! The audit log backend: one JSON event per line, in a file rotated like kube-apiserver's
//! (`--audit-log-path`, `--audit-log-maxsize`, `--audit-log-maxbackup`, `--audit-log-maxage`,
//! which use lumberjack), or on standard output for the path `-`.
//!
//! # Policy
//!
//! - **Durability.** [`AuditLog::write`] returns only once the event's line has been handed to
//!   the operating system in a single `write(2)` (looping on short writes); nothing is buffered
//!   in the process, so a crash after `write` returns loses no event, and an error is reported
//!   to the caller of the request it describes. The file is not `fsync`ed. This is why there is
//!   no `BufWriter`: after a failed write it would keep the failed bytes and replay them later.
//!   A failed write may leave a partial line; the next write starts with a newline so that
//!   every event still sits on a line of its own.
//! - **Fail closed or open.** With `fail_closed` the error goes back to the caller, which must
//!   refuse the request (upstream's log backend only logs the error: that is `fail_closed:
//!   false`, which counts the lost event in [`AuditLog::dropped_events`] and warns once per
//!   run of failures). Ward's default is to fail closed: a secrets server must not serve
//!   requests it cannot account for.
//! - **Rotation, as lumberjack.** When a line would take the file past the maximum size the file
//!   is renamed to `<name>-<UTC time as 2006-01-02T15-04-05.000><.ext>` in the same directory
//!   and a new one is started. Then backups beyond the newest `max_backups` (0 keeps all) and
//!   backups older than `max_age_days` (by the time in their name) are deleted. A line longer
//!   than the maximum size is an error, as in lumberjack.
//! - **Files** are created with mode `0600`, and the log's directory (at open only) with
//!   `0700`, as kube-apiserver does. An existing log file keeps its mode (a warning is logged
//!   if group or others can access it).
//! - **Removed or replaced files.** Before each write the path is checked against the open
//!   file (device and inode, on Unix): if the file was removed or moved away (by an operator
//!   or an external logrotate) it is reopened, so events never go into an unlinked file. If it
//!   cannot be reopened, for instance because its directory is gone, the write fails.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::error::AuditError;
use crate::event::Event;
use crate::timefmt;

/// Where and how to write the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLogOptions {
    /// The log file, or `-` for standard output.
    pub path: PathBuf,
    /// Rotate when the file would exceed this many MiB; 0 means 100 (lumberjack's default).
    pub max_size_mb: u64,
    /// How many rotated files to keep; 0 keeps all of them.
    pub max_backups: usize,
    /// Delete rotated files older than this many days; `None` (or 0) keeps them regardless of
    /// age.
    pub max_age_days: Option<u32>,
    /// Whether [`AuditLog::write`] returns errors (`true`, the default) or drops the event with
    /// a warning (`false`).
    pub fail_closed: bool,
}

impl AuditLogOptions {
    /// Options for `path` with kube-apiserver's defaults (100 MiB files, every backup kept) and
    /// Ward's fail-closed default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_size_mb: 0,
            max_backups: 0,
            max_age_days: None,
            fail_closed: true,
        }
    }
}

/// An open audit log. Shared between request handlers (`&self` methods, internally locked).
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    fail_closed: bool,
    dropped: AtomicU64,
    sink: Mutex<Sink>,
}

impl AuditLog {
    /// Opens (creating if needed) the log described by `options`.
    ///
    /// # Errors
    ///
    /// [`AuditError::Open`] if the log's directory cannot be created, or the file cannot be
    /// created or opened for appending, or its name is not UTF-8.
    pub fn open(options: AuditLogOptions) -> Result<Self, AuditError> {
        let max_size_bytes = match options.max_size_mb {
            0 => DEFAULT_MAX_SIZE_MB * MIB,
            mb => mb.saturating_mul(MIB),
        };
        Self::open_with_max_bytes(options, max_size_bytes)
    }

    /// The log file path (`-` for standard output).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many events were dropped because writing failed with `fail_closed` off.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Appends `event` as one JSON line, unless the policy does not record it
    /// ([`Event::is_recorded`]: level `None`, or an omitted stage), in which case nothing is
    /// written.
    ///
    /// # Errors
    ///
    /// Only with `fail_closed`: [`AuditError::Write`] if the event could not be written (or the
    /// log rotated or reopened to make room for it), [`AuditError::Serialize`] if it could not
    /// be serialized. Without `fail_closed` these are logged, counted and `Ok(())` is returned.
    pub fn write(&self, event: &Event) -> Result<(), AuditError> {
        if !event.is_recorded() {
            return Ok(());
        }
        // Serialize outside the lock.
        let line = serde_json::to_vec(event).map(|mut line| {
            line.push(b'\n');
            line
        });
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match line {
            Ok(line) => sink.write_line(&line).map_err(|source| AuditError::Write {
                path: self.path.clone(),
                source,
            }),
            Err(source) => Err(AuditError::Serialize { source }),
        };
        self.settle(sink.tracker(), result)
    }

    pub(crate) fn open_with_max_bytes(
        options: AuditLogOptions,
        max_size_bytes: u64,
    ) -> Result<Self, AuditError> {
        let sink = if options.path.as_os_str() == "-" {
            Sink::Stdout(Tracker::default())
        } else {
            Sink::File(FileSink::open(&options, max_size_bytes).map_err(|source| {
                AuditError::Open {
                    path: options.path.clone(),
                    source,
                }
            })?)
        };
        if !options.fail_closed {
            tracing::warn!(
                path = %options.path.display(),
                "audit log fails open: events that cannot be written are dropped and requests \
                 are served unaudited"
            );
        }
        Ok(Self {
            path: options.path,
            fail_closed: options.fail_closed,
            dropped: AtomicU64::new(0),
            sink: Mutex::new(sink),
        })
    }

    /// Applies the fail-closed or fail-open rule to the outcome of one write.
    fn settle(
        &self,
        tracker: &mut Tracker,
        result: Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        match result {
            Ok(()) => {
                if std::mem::take(&mut tracker.failing) {
                    tracing::info!(path = %self.path.display(), "audit log writable again");
                }
                Ok(())
            }
            Err(error) if self.fail_closed => {
                if !std::mem::replace(&mut tracker.failing, true) {
                    tracing::error!(
                        path = %self.path.display(),
                        error = %error_chain(&error),
                        "cannot write audit log; requests are being refused (fail closed)"
                    );
                }
                Err(error)
            }
            Err(error) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut tracker.failing, true) {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %error_chain(&error),
                        "cannot write audit log; dropping audit events until it recovers"
                    );
                }
                Ok(())
            }
        }
    }
}

// === impl Sink ===

#[derive(Debug)]
enum Sink {
    File(FileSink),
    Stdout(Tracker),
}

/// State shared by both sinks.
#[derive(Debug, Default)]
struct Tracker {
    /// The last write failed after writing part of its line.
    partial_line: bool,
    /// The last write failed (for logging transitions only).
    failing: bool,
}

impl Sink {
    fn tracker(&mut self) -> &mut Tracker {
        match self {
            Self::File(file) => &mut file.tracker,
            Self::Stdout(tracker) => tracker,
        }
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Self::File(file) => file.write_line(line),
            Self::Stdout(tracker) => {
                let mut out = io::stdout().lock();
                write_tracked(&mut out, tracker, line).map_err(|(_, error)| error)?;
                out.flush()
            }
        }
    }
}

#[derive(Debug)]
struct FileSink {
    path: PathBuf,
    dir: PathBuf,
    /// The file name before its extension, e.g. `audit` for `audit.log`.
    prefix: String,
    /// The extension with its dot, e.g. `.log`, or empty.
    ext: String,
    max_size: u64,
    max_backups: usize,
    max_age: Option<Duration>,
    /// `None` after a failed rotation or reopen; the next write tries again.
    file: Option<OpenFile>,
    tracker: Tracker,
    /// How often the path is checked for an outside rotation or removal: every write when the
    /// log fails closed (a lost event must refuse its request), else at most every
    /// [`PATH_CHECK_INTERVAL`] (one `stat` per event costs a fifth of a GET's time).
    check_every_write: bool,
    last_path_check: std::time::Instant,
}

/// How often a fail-open log checks that its file is still the one at its path.
const PATH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct OpenFile {
    file: File,
    size: u64,
    identity: Option<(u64, u64)>,
}

impl FileSink {
    fn open(options: &AuditLogOptions, max_size: u64) -> io::Result<Self> {
        let path = options.path.clone();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the audit log path must end in a UTF-8 file name",
            ));
        };
        let (prefix, ext) = split_ext(name);
        let (prefix, ext) = (prefix.to_owned(), ext.to_owned());
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        create_dir_private(&dir)?;
        let file = open_append(&path)?;
        warn_if_shared(&path, &file.file);
        Ok(Self {
            path,
            dir,
            prefix,
            ext,
            max_size,
            max_backups: options.max_backups,
            max_age: options
                .max_age_days
                .filter(|days| *days > 0)
                .map(|days| Duration::from_secs(u64::from(days) * 86_400)),
            file: Some(file),
            tracker: Tracker::default(),
            check_every_write: options.fail_closed,
            last_path_check: std::time::Instant::now(),
        })
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if len > self.max_size {
            return Err(io::Error::other(format!(
                "an event of {len} bytes exceeds the maximum log file size of {} bytes",
                self.max_size
            )));
        }
        let due = self.check_every_write || self.last_path_check.elapsed() >= PATH_CHECK_INTERVAL;
        let reopen = match &self.file {
            None => true,
            Some(open) if due => {
                self.last_path_check = std::time::Instant::now();
                !still_at_path(&self.path, open)
            }
            Some(_) => false,
        };
        if reopen {
            self.file = None;
            self.file = Some(open_append(&self.path)?);
        }
        let size = self.file.as_ref().map_or(0, |f| f.size);
        if size.saturating_add(len) > self.max_size {
            self.rotate()?;
        }
        let Some(open) = self.file.as_mut() else {
            // Unreachable: reopened or rotated into a new file above. Fail rather than panic.
            return Err(io::Error::other("audit log file is not open"));
        };
        let written = write_tracked(&mut open.file, &mut self.tracker, line);
        match written {
            Ok(n) => {
                open.size += n;
                Ok(())
            }
            Err((n, error)) => {
                open.size += n;
                Err(error)
            }
        }
    }

    /// Closes the file, moves it to a timestamped backup name, opens a new one and deletes
    /// old backups.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let now = SystemTime::now();
        let backup = self.free_backup_name(now)?;
        match fs::rename(&self.path, &backup) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.file = Some(open_append(&self.path)?);
        if let Err(error) = self.remove_old_backups(now) {
            tracing::warn!(
                path = %self.path.display(),
                %error,
                "cannot remove old audit log backups"
            );
        }
        Ok(())
    }

    /// The backup name for `now`, moved forward a millisecond at a time if a backup of that
    /// name exists (two rotations within one millisecond), so no backup is overwritten.
    fn free_backup_name(&self, now: SystemTime) -> io::Result<PathBuf> {
        for step in 0..1000 {
            let at = now + Duration::from_millis(step);
            let name = format!(
                "{}-{}{}",
                self.prefix,
                timefmt::backup_timestamp(at),
                self.ext
            );
            let candidate = self.dir.join(name);
            if fs::symlink_metadata(&candidate).is_err() {
                return Ok(candidate);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free audit log backup name",
        ))
    }

    fn remove_old_backups(&self, now: SystemTime) -> io::Result<()> {
        if self.max_backups == 0 && self.max_age.is_none() {
            return Ok(());
        }
        let mut backups = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if let Some(time) = self.backup_time(name) {
                backups.push((time, entry.path()));
            }
        }
        // Newest first.
        backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        let cutoff = self.max_age.and_then(|age| now.checked_sub(age));
        let mut first_error = None;
        for (index, (time, path)) in backups.iter().enumerate() {
            let too_many = self.max_backups > 0 && index >= self.max_backups;
            let too_old = cutoff.is_some_and(|cutoff| *time < cutoff);
            if (too_many || too_old)
                && let Err(e) = fs::remove_file(path)
            {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The rotation time of a backup of this log, from its name.
    fn backup_time(&self, name: &str) -> Option<SystemTime> {
        let stamp = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('-')?
            .strip_suffix(self.ext.as_str())?;
        timefmt::parse_backup_timestamp(stamp)
    }
}

// === helpers ===

/// Writes `line` in full, first terminating a partial line left by a failed write. Returns the
/// bytes written, or those written before the error.
fn write_tracked(
    out: &mut impl Write,
    tracker: &mut Tracker,
    line: &[u8],
) -> Result<u64, (u64, io::Error)> {
    let mut written = 0u64;
    if tracker.partial_line {
        write_fully(out, b"\n", &mut written).map_err(|e| (written, e))?;
        tracker.partial_line = false;
    }
    let before = written;
    let result = write_fully(out, line, &mut written);
    if result.is_err() && written > before {
        tracker.partial_line = true;
    }
    result.map(|()| written).map_err(|e| (written, e))
}

/// `write_all` that counts what it wrote, also on error.
fn write_fully(out: &mut impl Write, mut bytes: &[u8], written: &mut u64) -> io::Result<()> {
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                *written += n as u64;
                bytes = &bytes[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Splits a file name as Go's `filepath.Ext` does: the extension starts at the last dot.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) => name.split_at(dot),
        None => (name, ""),
    }
}

fn open_append(path: &Path) -> io::Result<OpenFile> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    Ok(OpenFile {
        identity: identity(&metadata),
        size: metadata.len(),
        file,
    })
}

fn create_dir_private(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(unix)]
fn identity(metadata: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_metadata: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Whether `path` still names the open file. Without file identities (non-Unix) only checks
/// that the path exists.
fn still_at_path(path: &Path, open: &OpenFile) -> bool {
    match fs::metadata(path) {
        Ok(metadata) => open.identity.is_none() || identity(&metadata) == open.identity,
        Err(_) => false,
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, file: &File) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = file.metadata() {
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "audit log is accessible by group or others; expected mode 600"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _file: &File) {}

fn error_chain(error: &AuditError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

const DEFAULT_MAX_SIZE_MB: u64 = 100;
const MIB: u64 = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `budget` bytes, then fails every write.
    struct Flaky {
        out: Vec<u8>,
        budget: usize,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn torn_lines_are_terminated_before_the_next_event() {
        let mut out = Flaky {
            out: Vec::new(),
            budget: 5,
        };
        let mut tracker = Tracker::default();
        assert_eq!(
            write_tracked(&mut out, &mut tracker, b"{\"a\":1}\n")
                .unwrap_err()
                .0,
            5
        );
        assert!(tracker.partial_line);
        // Nothing written: still torn.
        assert_eq!(
            write_tracked(&mut out, &mut tracker, b"{\"b\":2}\n")
                .unwrap_err()
                .0,
            0
        );
        assert!(tracker.partial_line);
        out.budget = usize::MAX;
        assert_eq!(
            write_tracked(&mut out, &mut tracker, b"{\"c\":3}\n").unwrap(),
            9
        );
        assert!(!tracker.partial_line);
        assert_eq!(out.out, b"{\"a\":\n{\"c\":3}\n");

        // A write that fails before writing anything leaves no torn line.
        let mut out = Flaky {
            out: Vec::new(),
            budget: 0,
        };
        let mut tracker = Tracker::default();
        assert!(write_tracked(&mut out, &mut tracker, b"x\n").is_err());
        assert!(!tracker.partial_line);
    }

    #[test]
    fn splits_extensions_as_go() {
        assert_eq!(split_ext("audit.log"), ("audit", ".log"));
        assert_eq!(split_ext("audit.json.log"), ("audit.json", ".log"));
        assert_eq!(split_ext("audit"), ("audit", ""));
        assert_eq!(split_ext(".audit"), ("", ".audit"));
    }

    #[test]
    fn rotates_at_the_byte_limit_without_a_name_clash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit");
        let mut sink = FileSink::open(&AuditLogOptions::new(&path), 10).unwrap();
        // Many rotations within the same millisecond: each gets its own backup.
        for i in 0..20 {
            sink.write_line(format!("line{i:02}\n").as_bytes()).unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 20, "{names:?}");
        let mut all = String::new();
        for name in &names[1..] {
            // audit-<stamp>, no extension.
            assert!(sink.backup_time(name).is_some(), "{name}");
            all.push_str(&fs::read_to_string(dir.path().join(name)).unwrap());
        }
        all.push_str(&fs::read_to_string(&path).unwrap());
        let expected: String = (0..20).map(|i| format!("line{i:02}\n")).collect();
        assert_eq!(all, expected);
        assert!(sink.write_line(b"eleven bytes").is_err());
    }
}
