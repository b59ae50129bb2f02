//! `AuditLog`: JSON lines, 0600 files, lumberjack-style rotation, fail-closed errors.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use ward_audit::{
    AuditError, AuditLog, AuditLogOptions, Event, Level, RequestAuditConfig, RequestMetadata,
    Stage, StageSet,
};

fn event(padding: usize) -> Event {
    let config = RequestAuditConfig {
        level: Level::Metadata,
        omit_stages: StageSet::empty(),
        omit_managed_fields: false,
    };
    let metadata = RequestMetadata {
        request_uri: "/api/v1/namespaces/default/pods".to_owned(),
        verb: "list".to_owned(),
        ..Default::default()
    };
    let mut event = Event::new(metadata, &config, SystemTime::now())
        .for_stage(Stage::ResponseComplete, SystemTime::now());
    if padding > 0 {
        event.annotate("test/padding", "p".repeat(padding));
    }
    event
}

fn options(path: &Path) -> AuditLogOptions {
    AuditLogOptions::new(path)
}

/// Every line of `path`, each parsed as an event.
fn lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn backups(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "audit.log")
        .collect();
    names.sort();
    names
}

#[test]
fn writes_json_lines_to_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("nested/audit");
    let path = log_dir.join("audit.log");
    let log = AuditLog::open(options(&path)).unwrap();
    assert_eq!(log.path(), path);
    let events: Vec<Event> = (0..3).map(|_| event(0)).collect();
    for e in &events {
        log.write(e).unwrap();
    }
    // Not recorded: level None, or an omitted stage.
    let none = RequestAuditConfig {
        level: Level::None,
        omit_stages: StageSet::empty(),
        omit_managed_fields: false,
    };
    log.write(&Event::new(
        RequestMetadata::default(),
        &none,
        SystemTime::now(),
    ))
    .unwrap();
    let omitted = RequestAuditConfig {
        level: Level::Metadata,
        omit_stages: [Stage::ResponseComplete].iter().collect(),
        ..none
    };
    log.write(
        &Event::new(RequestMetadata::default(), &omitted, SystemTime::now())
            .for_stage(Stage::ResponseComplete, SystemTime::now()),
    )
    .unwrap();

    let written = lines(&path);
    assert_eq!(written.len(), 3);
    for (line, e) in written.iter().zip(&events) {
        assert_eq!(line, &serde_json::to_value(e).unwrap());
        assert_eq!(line["kind"], "Event");
    }
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&log_dir), 0o700);

    // Reopening appends.
    drop(log);
    let log = AuditLog::open(options(&path)).unwrap();
    log.write(&event(0)).unwrap();
    assert_eq!(lines(&path).len(), 4);
}

#[test]
fn rotates_like_lumberjack() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(AuditLogOptions {
        max_size_mb: 1,
        max_backups: 2,
        ..options(&path)
    })
    .unwrap();
    // About 100 KiB per event: ten per file, so 45 events rotate four times.
    let mut ids = Vec::new();
    for _ in 0..45 {
        let e = event(100 * 1024);
        ids.push(e.audit_id().to_owned());
        log.write(&e).unwrap();
    }
    let names = backups(dir.path());
    assert_eq!(names.len(), 2, "{names:?}");
    for name in &names {
        // audit-2006-01-02T15-04-05.000.log
        let stamp = name
            .strip_prefix("audit-")
            .and_then(|n| n.strip_suffix(".log"))
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(stamp.len(), 23, "{name}");
        assert_eq!(&stamp[10..11], "T", "{name}");
        assert_eq!(&stamp[19..20], ".", "{name}");
        let backup = dir.path().join(name);
        assert!(fs::metadata(&backup).unwrap().len() <= 1024 * 1024);
        assert_eq!(mode(&backup), 0o600);
        assert_eq!(lines(&backup).len(), 10, "{name}");
    }
    assert!(fs::metadata(&path).unwrap().len() <= 1024 * 1024);
    assert_eq!(mode(&path), 0o600);
    // The newest events are in the current file, the two newest backups hold the ten before
    // each; nothing is split across files.
    let current: Vec<String> = lines(&path)
        .iter()
        .map(|l| l["auditID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(current, ids[40..]);
    let newest_backup: Vec<String> = lines(&dir.path().join(&names[1]))
        .iter()
        .map(|l| l["auditID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(newest_backup, ids[30..40]);
}

#[test]
fn removes_backups_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let old = dir.path().join("audit-2000-01-01T00-00-00.000.log");
    let unrelated = [
        "audit-notes.log",
        "other-2000-01-01T00-00-00.000.log",
        "audit-2000-01-01T00-00-00.000.txt",
    ];
    fs::write(&old, "{}\n").unwrap();
    for name in unrelated {
        fs::write(dir.path().join(name), "{}\n").unwrap();
    }
    let log = AuditLog::open(AuditLogOptions {
        max_size_mb: 1,
        max_age_days: Some(30),
        ..options(&path)
    })
    .unwrap();
    for _ in 0..11 {
        log.write(&event(100 * 1024)).unwrap();
    }
    assert!(!old.exists(), "the 2000 backup is older than 30 days");
    let names = backups(dir.path());
    assert_eq!(names.len(), unrelated.len() + 1, "{names:?}");
    for name in unrelated {
        assert!(names.iter().any(|n| n == name), "{name} was removed");
    }
}

#[test]
fn oversized_event_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let closed = AuditLog::open(AuditLogOptions {
        max_size_mb: 1,
        ..options(&path)
    })
    .unwrap();
    let huge = event(2 * 1024 * 1024);
    let error = closed.write(&huge).unwrap_err();
    assert!(matches!(error, AuditError::Write { .. }), "{error}");
    assert!(
        std::error::Error::source(&error)
            .unwrap()
            .to_string()
            .contains("exceeds the maximum log file size"),
        "{error:?}"
    );

    let open = AuditLog::open(AuditLogOptions {
        max_size_mb: 1,
        fail_closed: false,
        ..options(&path)
    })
    .unwrap();
    open.write(&huge).unwrap();
    assert_eq!(open.dropped_events(), 1);
    open.write(&event(0)).unwrap();
    assert_eq!(open.dropped_events(), 1);
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn fail_closed_when_the_disk_is_full() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return; // Not Linux.
    }
    let closed = AuditLog::open(options(full)).unwrap();
    let error = closed.write(&event(0)).unwrap_err();
    assert!(matches!(error, AuditError::Write { .. }), "{error}");
    assert!(error.to_string().contains("/dev/full"), "{error}");

    let open = AuditLog::open(AuditLogOptions {
        fail_closed: false,
        ..options(full)
    })
    .unwrap();
    for _ in 0..3 {
        open.write(&event(0)).unwrap();
    }
    assert_eq!(open.dropped_events(), 3);
}

#[test]
fn fail_closed_when_the_directory_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let path = log_dir.join("audit.log");
    let closed = AuditLog::open(options(&path)).unwrap();
    let open = AuditLog::open(AuditLogOptions {
        fail_closed: false,
        ..options(&path)
    })
    .unwrap();
    closed.write(&event(0)).unwrap();

    fs::remove_dir_all(&log_dir).unwrap();
    // The open file descriptor still works, but the events would go to an unlinked file: the
    // log notices and fails to reopen.
    let error = closed.write(&event(0)).unwrap_err();
    assert!(matches!(error, AuditError::Write { .. }), "{error}");
    // A fail-open log checks its path at most once a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    open.write(&event(0)).unwrap();
    assert_eq!(open.dropped_events(), 1);

    // Once the directory is back, writing resumes in a new file.
    fs::create_dir(&log_dir).unwrap();
    closed.write(&event(0)).unwrap();
    open.write(&event(0)).unwrap();
    assert_eq!(lines(&path).len(), 2);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn follows_external_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(options(&path)).unwrap();
    log.write(&event(0)).unwrap();
    let moved = dir.path().join("audit.log.1");
    fs::rename(&path, &moved).unwrap();
    log.write(&event(0)).unwrap();
    log.write(&event(0)).unwrap();
    assert_eq!(lines(&moved).len(), 1);
    assert_eq!(lines(&path).len(), 2);
}

#[test]
fn open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    let error = AuditLog::open(options(&file.join("audit.log"))).unwrap_err();
    assert!(matches!(error, AuditError::Open { .. }), "{error}");
    assert!(error.to_string().contains("not-a-dir/audit.log"), "{error}");

    let error = AuditLog::open(options(dir.path())).unwrap_err();
    assert!(matches!(error, AuditError::Open { .. }), "{error}");
}

#[test]
fn concurrent_writers_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = Arc::new(
        AuditLog::open(AuditLogOptions {
            max_size_mb: 1,
            ..options(&path)
        })
        .unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    log.write(&event(2 * 1024)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut ids = HashSet::new();
    let mut files = backups(dir.path());
    assert!(!files.is_empty(), "800 events of 2 KiB rotate a 1 MiB log");
    files.push("audit.log".to_owned());
    for name in files {
        for line in lines(&dir.path().join(name)) {
            assert!(ids.insert(line["auditID"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(ids.len(), 800);
}

#[test]
fn stdout() {
    let log = AuditLog::open(options(Path::new("-"))).unwrap();
    log.write(&event(0)).unwrap();
    assert_eq!(log.dropped_events(), 0);
}
