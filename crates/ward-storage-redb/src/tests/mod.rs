//! Tests of the redb backend: the shared conformance suite, a model-based property test,
//! persistence across reopen, and watch catch-up.

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use ward_storage::{Event, StorageError, WatchItem, WatchStream};

use crate::{RedbOptions, RedbStorage};

mod group_commit;
mod model;
mod persistence;
mod watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let dir = TempDir::new().unwrap();
    let mut n = 0;
    ward_storage::testing::suite(|| {
        n += 1;
        RedbStorage::open(dir.path().join(format!("{n}.redb")), RedbOptions::default()).unwrap()
    })
    .await;
}

/// A temporary directory holding one database file.
struct TestDb {
    _dir: TempDir,
    path: PathBuf,
}

impl TestDb {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("ward.redb");
        TestDb { _dir: dir, path }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self, history: usize) -> RedbStorage {
        RedbStorage::open(&self.path, RedbOptions { history }).unwrap()
    }
}

/// The next item of `watch`, or `None` if it ended; panics after a few seconds of silence.
async fn next_item(watch: &mut WatchStream) -> Option<Result<WatchItem, StorageError>> {
    use futures_util::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .expect("watch item within 10s")
}

async fn next_event(watch: &mut WatchStream) -> Event {
    match next_item(watch).await {
        Some(Ok(WatchItem::Event(event))) => event,
        other => panic!("expected a watch event, got {other:?}"),
    }
}
