//! The atomic writer: the kubelet's `AtomicWriter` layout, so that a reader never sees a mix of
//! old and new files.
//!
//! A directory target looks exactly like a kubelet secret volume:
//!
//! ```text
//! TARGET/                                  0700 (0750 if a file is group-readable)
//!   ..2026_11_26_19_00_00.123456789/       one directory per version, same mode
//!     password                             0400 (defaultMode / items[].mode)
//!     api/token
//!   ..data -> ..2026_11_26_19_00_00.123456789
//!   password -> ..data/password
//!   api -> ..data/api
//! ```
//!
//! An update writes a new timestamped directory in full, then points `..data` at it with one
//! `rename(2)` of a fresh symlink over the old one (atomic on POSIX filesystems), then adds the
//! user-visible links of new top-level names, removes those of names that are gone, and removes
//! the previous version. A reader that opens `TARGET/password` resolves `..data` once, so it sees
//! either the old version or the new one; a reader that needs several files to agree resolves
//! `TARGET/..data` once and reads them from that directory, as it would with the kubelet.
//!
//! A single-file target (`subPath`) is written to a temporary file beside it and renamed over it.
//!
//! Before the first write a target is checked: a directory readable by other users is refused
//! (`--allow-world-readable`), and so is one that is not on a memory filesystem (tmpfs, ramfs),
//! because values written to a disk outlive the process in free blocks, snapshots and backups
//! (`--allow-non-tmpfs`, or `--mount-tmpfs` as root).
//!
//! Nothing here logs: callers log what happened, and no function sees a value except to write
//! it or compare it with what is on disk.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::{Mode, Target};
use crate::error::AgentError;
use crate::projection::{FileContent, Payload};

/// How targets are written and which checks are relaxed.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOptions {
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) allow_world_readable: bool,
    pub(crate) allow_non_tmpfs: bool,
    pub(crate) mount_tmpfs: bool,
}

/// Checks a target before the first write and creates a missing directory (0700).
///
/// `file_mode` is the mode a single-file target will get. `Ok` holds notes for the log;
/// `Err(Target)` says why the target is refused and which flag overrides the check.
pub(crate) fn prepare(
    target: &Target,
    file_mode: Mode,
    opts: &WriteOptions,
) -> Result<Vec<String>, AgentError> {
    let mut notes = Vec::new();
    let refuse = |path: &Path, m: String| AgentError::target(path, m);
    let io = |path: &Path, e: io::Error| AgentError::target(path, e.to_string());
    let memory_dir = match target {
        Target::Dir(dir) => {
            match fs::symlink_metadata(dir) {
                Ok(md) if md.file_type().is_symlink() => {
                    return Err(refuse(dir, "is a symbolic link; give the real path".into()));
                }
                Ok(md) if !md.is_dir() => {
                    return Err(refuse(dir, "exists and is not a directory".into()));
                }
                Ok(md) if md.mode() & 0o007 != 0 && !opts.allow_world_readable => {
                    return Err(refuse(
                        dir,
                        format!(
                            "is mode {:04o}, open to every user: chmod 0700 it, or pass \
                             --allow-world-readable",
                            md.mode() & 0o7777
                        ),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| io(dir, e))?;
                    fs::set_permissions(dir, Permissions::from_mode(0o700))
                        .map_err(|e| io(dir, e))?;
                    notes.push(format!("created {} (0700)", dir.display()));
                }
                Err(e) => return Err(io(dir, e)),
            }
            dir.clone()
        }
        Target::File { path, .. } => {
            if file_mode.0 & 0o007 != 0 && !opts.allow_world_readable {
                return Err(refuse(
                    path,
                    format!(
                        "would be mode {:04o}, readable by every user: set defaultMode or \
                         items[].mode (e.g. 0400), or pass --allow-world-readable",
                        file_mode.0
                    ),
                ));
            }
            match fs::symlink_metadata(path) {
                Ok(md) if !md.is_file() => {
                    return Err(refuse(path, "exists and is not a regular file".into()));
                }
                _ => {}
            }
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned();
            if !parent.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&parent)
                    .map_err(|e| io(&parent, e))?;
                notes.push(format!("created {} (0700)", parent.display()));
            }
            let md = fs::metadata(&parent).map_err(|e| io(&parent, e))?;
            if md.mode() & 0o002 != 0 && md.mode() & 0o1000 == 0 {
                return Err(refuse(
                    path,
                    format!(
                        "its directory {} is writable by every user (mode {:04o}), so anyone \
                         could replace the file",
                        parent.display(),
                        md.mode() & 0o7777
                    ),
                ));
            }
            parent
        }
    };
    let fs_type = filesystem_of(&memory_dir).map_err(|e| io(&memory_dir, e))?;
    if !is_memory(&fs_type) {
        if opts.mount_tmpfs && matches!(target, Target::Dir(_)) {
            mount_tmpfs(&memory_dir, opts)?;
            notes.push(format!("mounted a tmpfs on {}", memory_dir.display()));
        } else if opts.allow_non_tmpfs {
            notes.push(format!(
                "{} is on {fs_type}, not in memory: values written there can outlive the agent \
                 in free blocks, snapshots and backups (--allow-non-tmpfs)",
                memory_dir.display()
            ));
        } else {
            return Err(refuse(
                target.path(),
                format!(
                    "{} is on {fs_type}, not in memory: values would outlive the agent in free \
                     blocks, snapshots and backups. Use a tmpfs (under /run or /dev/shm), pass \
                     --mount-tmpfs (as root), or pass --allow-non-tmpfs",
                    memory_dir.display()
                ),
            ));
        }
    }
    if let Target::Dir(dir) = target {
        chown(dir, opts).map_err(|e| io(dir, e))?;
    }
    Ok(notes)
}

/// Writes `payload` into the directory `dir` with the kubelet's layout.
///
/// `Ok(true)` if the files changed, `Ok(false)` if they were already exactly these (content,
/// modes, owner). `Err` leaves the previous version in place.
pub(crate) fn write_dir(dir: &Path, payload: &Payload, opts: &WriteOptions) -> io::Result<bool> {
    let dir_mode = dir_mode(payload, opts);
    let tops: BTreeSet<&str> = payload.0.keys().map(|p| p.first()).collect();
    let current = fs::read_link(dir.join(DATA)).ok();
    if let Some(cur) = &current
        && is_current(dir, cur, payload, &tops, dir_mode, opts)?
    {
        return Ok(false);
    }
    let version = create_version_dir(dir)?;
    let version_path = dir.join(&version);
    let written = (|| -> io::Result<()> {
        for (path, content) in &payload.0 {
            let full = version_path.join(path.as_str());
            if let Some(parent) = full.parent()
                && parent != version_path
            {
                create_dirs(&version_path, parent, dir_mode, opts)?;
            }
            write_new_file(&full, content, opts)?;
        }
        chown(&version_path, opts)?;
        fs::set_permissions(&version_path, Permissions::from_mode(dir_mode))?;
        let tmp = dir.join(DATA_TMP);
        remove_if_exists(&tmp)?;
        std::os::unix::fs::symlink(&version, &tmp)?;
        fs::rename(&tmp, dir.join(DATA))
    })();
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&version_path);
        return Err(e);
    }
    for top in &tops {
        ensure_link(dir, top)?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("..") {
            if is_version_name(name) && name != version {
                fs::remove_dir_all(entry.path())?;
            }
            continue;
        }
        if !tops.contains(name) && is_our_link(&entry.path()) {
            fs::remove_file(entry.path())?;
        }
    }
    let md = fs::metadata(dir)?;
    if md.mode() & 0o777 != dir_mode {
        fs::set_permissions(dir, Permissions::from_mode(dir_mode))?;
    }
    chown(dir, opts)?;
    Ok(true)
}

/// Writes one file (`Some`) or removes it (`None`), by rename.
///
/// `Ok(true)` if the file changed; `Ok(false)` if it already held exactly this (or was already
/// absent).
pub(crate) fn write_file(
    path: &Path,
    content: Option<&FileContent>,
    opts: &WriteOptions,
) -> io::Result<bool> {
    let Some(content) = content else {
        return match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        };
    };
    if file_matches(path, content, opts)? {
        return Ok(false);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.ward-{}", unique_suffix()));
    let written = write_new_file(&tmp, content, opts).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(true)
}

/// The filesystem type (`tmpfs`, `ext4`, ...) of the mount holding `path` (or its nearest
/// existing ancestor), from `/proc/self/mountinfo`.
pub(crate) fn filesystem_of(path: &Path) -> io::Result<String> {
    let mut p = std::path::absolute(path)?;
    let existing = loop {
        match fs::canonicalize(&p) {
            Ok(c) => break c,
            Err(_) if p.pop() => {}
            Err(e) => return Err(e),
        }
    };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    fs_type_in(&mountinfo, &existing).ok_or_else(|| {
        io::Error::other(format!(
            "no mount holds {} in /proc/self/mountinfo",
            existing.display()
        ))
    })
}

/// Whether a filesystem type keeps its files in memory only.
pub(crate) fn is_memory(fs_type: &str) -> bool {
    matches!(fs_type, "tmpfs" | "ramfs")
}

// === helpers ===

/// The mount point (field 5) that is the longest prefix of `path`, later lines winning ties
/// (over-mounts), and its type (the first field after ` - `).
fn fs_type_in(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let Some(fs_type) = right.split(' ').next() else {
            continue;
        };
        let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
        if path.starts_with(&mount_point) {
            let depth = mount_point.components().count();
            if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                best = Some((depth, fs_type.to_owned()));
            }
        }
    }
    best.map(|(_, t)| t)
}

/// mountinfo escapes space, tab, newline and backslash as `\NNN` octal.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_tmpfs(dir: &Path, opts: &WriteOptions) -> Result<(), AgentError> {
    let mut options = String::from("mode=0700,nosuid,nodev,noexec,size=16m");
    if let Some(uid) = opts.uid {
        options.push_str(&format!(",uid={uid}"));
    }
    if let Some(gid) = opts.gid {
        options.push_str(&format!(",gid={gid}"));
    }
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "ward-agent"])
        .arg(dir)
        .output()
        .map_err(|e| AgentError::target(dir, format!("--mount-tmpfs: cannot run mount: {e}")))?;
    if !out.status.success() {
        return Err(AgentError::target(
            dir,
            format!(
                "--mount-tmpfs: mount failed ({}): {} (it needs root)",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// Directories get owner access, group read if a file is group-readable, and other read only
/// with `--allow-world-readable` and a world-readable file.
fn dir_mode(payload: &Payload, opts: &WriteOptions) -> u32 {
    let mut mode = 0o700;
    for c in payload.0.values() {
        if c.mode.0 & 0o070 != 0 {
            mode |= 0o050;
        }
        if opts.allow_world_readable && c.mode.0 & 0o007 != 0 {
            mode |= 0o005;
        }
    }
    mode
}

/// Whether the version `..data` points at holds exactly `payload`, and the links and modes are
/// in place.
fn is_current(
    dir: &Path,
    version: &Path,
    payload: &Payload,
    tops: &BTreeSet<&str>,
    dir_mode: u32,
    opts: &WriteOptions,
) -> io::Result<bool> {
    let version_path = dir.join(version);
    let Ok(md) = fs::symlink_metadata(&version_path) else {
        return Ok(false);
    };
    if !md.is_dir() || md.mode() & 0o777 != dir_mode || !owner_matches(&md, opts) {
        return Ok(false);
    }
    if fs::metadata(dir)?.mode() & 0o777 != dir_mode {
        return Ok(false);
    }
    // A version left behind by a crash holds old values: rewrite, which removes it.
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if name.to_str().is_some_and(is_version_name) && Path::new(&name) != version {
            return Ok(false);
        }
    }
    let mut found = Vec::new();
    list_files(&version_path, &version_path, &mut found)?;
    if found.len() != payload.0.len() {
        return Ok(false);
    }
    for (path, content) in &payload.0 {
        if !found.iter().any(|f| f == Path::new(path.as_str())) {
            return Ok(false);
        }
        if !file_matches(&version_path.join(path.as_str()), content, opts)? {
            return Ok(false);
        }
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("..") && !tops.contains(name) && is_our_link(&entry.path()) {
            return Ok(false);
        }
    }
    for top in tops {
        if fs::read_link(dir.join(top)).ok().as_deref() != Some(&Path::new(DATA).join(top)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every file under `dir`, relative to `root`; a symlink or special file is reported as a file
/// (and then fails the comparison).
fn list_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            list_files(root, &entry.path(), out)?;
        } else {
            let p = entry.path();
            out.push(p.strip_prefix(root).map(Path::to_owned).unwrap_or(p));
        }
    }
    Ok(())
}

/// Whether `path` is a regular file with exactly this content, mode and owner.
fn file_matches(path: &Path, content: &FileContent, opts: &WriteOptions) -> io::Result<bool> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !md.is_file() || md.mode() & 0o7777 != content.mode.0 || !owner_matches(&md, opts) {
        return Ok(false);
    }
    if md.len() != content.bytes.expose_secret().len() as u64 {
        return Ok(false);
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(content.bytes.expose_secret().len()));
    File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf.as_slice() == content.bytes.expose_secret())
}

fn owner_matches(md: &fs::Metadata, opts: &WriteOptions) -> bool {
    opts.uid.is_none_or(|u| md.uid() == u) && opts.gid.is_none_or(|g| md.gid() == g)
}

/// Creates `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` (0700 until filled); returns its name.
fn create_version_dir(dir: &Path) -> io::Result<String> {
    let now = time::OffsetDateTime::now_utc();
    let base = format!(
        "..{:04}_{:02}_{:02}_{:02}_{:02}_{:02}.{:09}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.nanosecond()
    );
    for attempt in 0..100u32 {
        let name = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}_{attempt}")
        };
        match fs::DirBuilder::new().mode(0o700).create(dir.join(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "cannot pick a fresh version directory name",
    ))
}

/// Creates the directories between `root` and `dir` with `mode` and the configured owner.
fn create_dirs(root: &Path, dir: &Path, mode: u32, opts: &WriteOptions) -> io::Result<()> {
    let rel = dir.strip_prefix(root).map_err(io::Error::other)?;
    let mut cur = root.to_owned();
    for part in rel.components() {
        cur.push(part);
        match fs::DirBuilder::new().mode(0o700).create(&cur) {
            Ok(()) => {
                chown(&cur, opts)?;
                fs::set_permissions(&cur, Permissions::from_mode(mode))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates a new file (`O_CREAT|O_EXCL`: never through a symlink, never reusing a file) with
/// `content`, then sets the owner and mode on the open handle.
fn write_new_file(path: &Path, content: &FileContent, opts: &WriteOptions) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.bytes.expose_secret())?;
    if opts.uid.is_some() || opts.gid.is_some() {
        std::os::unix::fs::fchown(&f, opts.uid, opts.gid)?;
    }
    f.set_permissions(Permissions::from_mode(content.mode.0))?;
    Ok(())
}

fn chown(path: &Path, opts: &WriteOptions) -> io::Result<()> {
    if opts.uid.is_some() || opts.gid.is_some() {
        std::os::unix::fs::chown(path, opts.uid, opts.gid)?;
    }
    Ok(())
}

/// Makes `dir/top` the link `..data/top`, replacing another link by rename. A file or directory
/// the agent did not make is left alone and reported.
fn ensure_link(dir: &Path, top: &str) -> io::Result<()> {
    let link = dir.join(top);
    let want = Path::new(DATA).join(top);
    match fs::read_link(&link) {
        Ok(t) if t == want => Ok(()),
        Ok(_) => {
            let tmp = dir.join(LINK_TMP);
            remove_if_exists(&tmp)?;
            std::os::unix::fs::symlink(&want, &tmp)?;
            fs::rename(&tmp, &link)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::os::unix::fs::symlink(&want, &link),
        Err(_) => Err(io::Error::other(format!(
            "{} exists and is not a link the agent made; remove it",
            link.display()
        ))),
    }
}

/// A user-visible link of ours: a symlink into `..data/`.
fn is_our_link(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|t| t.starts_with(DATA))
}

/// `..` followed by a digit: a version directory (`..data`, `..data_tmp` are not).
fn is_version_name(name: &str) -> bool {
    name.strip_prefix("..")
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_ascii_digit())
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn unique_suffix() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}{:09}-{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    )
}

/// The kubelet's names.
const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";
const LINK_TMP: &str = "..link_tmp";

#[cfg(test)]
mod tests;
