//! Group commit: concurrent writes share a transaction (one fsync) but keep their own revision,
//! precondition and error, and a watcher sees exactly the committed writes, in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::future::join_all;
use ward_storage::{EventKind, Revision, Storage, StorageError};

use super::{TestDb, next_event};
use crate::RedbStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_keep_their_own_outcome() {
    let db = TestDb::new();
    let store = Arc::new(db.open(0));
    // 0..32 exist at revisions 1..=32, one write per commit.
    for i in 0..32u64 {
        store
            .create(format!("/k/{i:03}").as_bytes(), b"v0".to_vec())
            .await
            .unwrap();
    }
    assert_eq!(store.shared.commits.load(Ordering::Relaxed), 32);
    let mut watch = store.watch(b"/k/", Revision(32)).await.unwrap();

    // 128 writes at once: creates of new keys, creates of existing keys (AlreadyExists), updates
    // with the right and a wrong revision, and deletes of present and absent keys.
    let ops = (0..128u64).map(|i| {
        let store = Arc::clone(&store);
        async move {
            let n = i % 32;
            let key = format!("/k/{n:03}");
            let result = match i / 32 {
                0 => store
                    .create(format!("/k/new-{i:03}").as_bytes(), b"new".to_vec())
                    .await
                    .map(|kv| ("created", kv)),
                1 => store
                    .create(key.as_bytes(), b"dup".to_vec())
                    .await
                    .map(|kv| ("created", kv)),
                2 => {
                    // Right revision for even keys, wrong for odd ones.
                    let expected = if n % 2 == 0 { n + 1 } else { n + 2 };
                    store
                        .update(key.as_bytes(), b"v1".to_vec(), Revision(expected))
                        .await
                        .map(|kv| ("updated", kv))
                }
                _ => store
                    .delete(format!("/k/none-{i:03}").as_bytes(), None)
                    .await
                    .map(|kv| ("deleted", kv)),
            };
            (i, result)
        }
    });
    let results = join_all(ops).await;

    let mut revisions = Vec::new();
    for (i, result) in &results {
        let n = i % 32;
        match (i / 32, result) {
            (0, Ok((_, kv))) => revisions.push(kv.mod_revision.0),
            (1, Err(StorageError::AlreadyExists { existing })) => {
                assert_eq!(existing.mod_revision, Revision(n + 1));
            }
            (2, Ok((_, kv))) if n % 2 == 0 => {
                assert_eq!(kv.create_revision, Revision(n + 1));
                revisions.push(kv.mod_revision.0);
            }
            (2, Err(StorageError::Conflict { current })) if n % 2 == 1 => {
                assert_eq!(current.mod_revision, Revision(n + 1));
            }
            (3, Err(StorageError::NotFound)) => {}
            (_, other) => panic!("write {i}: unexpected {other:?}"),
        }
    }
    // 32 creates and 16 updates succeeded, at exactly the next 48 revisions.
    revisions.sort_unstable();
    assert_eq!(revisions, (33..=80).collect::<Vec<_>>());
    assert_eq!(store.current_revision().await.unwrap(), Revision(80));
    let commits = store.shared.commits.load(Ordering::Relaxed) - 32;
    assert!(
        commits < 48,
        "48 concurrent successful writes took {commits} commits: no batching"
    );

    // The watcher sees the 48 committed writes once each, in revision order, and nothing else.
    let mut seen = BTreeMap::new();
    for expected in 33..=80u64 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.kv.mod_revision, Revision(expected));
        assert_eq!(event.kind, EventKind::Put);
        seen.insert(event.kv.key.clone(), event.kv.value.clone());
    }
    assert_eq!(seen.len(), 48);
    assert!(seen.values().all(|v| v == b"new" || v == b"v1"));

    // And the file holds exactly that after a reopen.
    drop(watch);
    drop(Arc::into_inner(store).expect("last reference"));
    let store: RedbStorage = db.open(0);
    assert_eq!(store.current_revision().await.unwrap(), Revision(80));
    for n in 0..32u64 {
        let kv = store
            .get(format!("/k/{n:03}").as_bytes())
            .await
            .unwrap()
            .unwrap();
        let value: &[u8] = if n % 2 == 0 { b"v1" } else { b"v0" };
        assert_eq!(kv.value, value, "key {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_one_key_in_one_batch_see_each_other() {
    let db = TestDb::new();
    let store = Arc::new(db.open(0));
    store.create(b"/c", b"0".to_vec()).await.unwrap();
    // Every writer retries on conflict, as the API server does: the final count is exact.
    let writers = (0..16).map(|_| {
        let store = Arc::clone(&store);
        async move {
            loop {
                let current = store.get(b"/c").await.unwrap().unwrap();
                let n: u64 = std::str::from_utf8(&current.value)
                    .unwrap()
                    .parse()
                    .unwrap();
                match store
                    .update(
                        b"/c",
                        (n + 1).to_string().into_bytes(),
                        current.mod_revision,
                    )
                    .await
                {
                    Ok(_) => return,
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
    });
    join_all(writers).await;
    let kv = store.get(b"/c").await.unwrap().unwrap();
    assert_eq!(kv.value, b"16");
    assert_eq!(kv.mod_revision, Revision(17));
}

/// A file backend whose fsync fails on demand.
#[derive(Debug)]
struct FailingSync {
    inner: redb::backends::FileBackend,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl redb::StorageBackend for FailingSync {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write(offset, data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_every_write_of_its_batch_and_nobody_hangs() {
    let db = TestDb::new();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db.path())
        .unwrap();
    let backend = FailingSync {
        inner: redb::backends::FileBackend::new(file).unwrap(),
        fail: Arc::clone(&fail),
    };
    let database = redb::Database::builder()
        .create_with_backend(backend)
        .unwrap();
    let store = Arc::new(
        RedbStorage::from_database(database, crate::RedbOptions { history: 0 }, 16, db.path())
            .unwrap(),
    );
    store.create(b"/before", b"v".to_vec()).await.unwrap();
    let mut watch = store.watch(b"/", Revision(1)).await.unwrap();

    fail.store(true, Ordering::SeqCst);
    let writes = (0..24).map(|i| {
        let store = Arc::clone(&store);
        async move {
            tokio::time::timeout(
                std::time::Duration::from_secs(20),
                store.create(format!("/w/{i:02}").as_bytes(), b"v".to_vec()),
            )
            .await
            .expect("every caller gets an answer")
        }
    });
    for result in join_all(writes).await {
        match result {
            Err(StorageError::Backend { message }) => {
                assert!(message.contains("redb"), "{message}");
            }
            other => panic!("a write acknowledged or failed oddly: {other:?}"),
        }
    }
    // Nothing was reported as written: the revision stands and no watcher saw an event.
    assert_eq!(store.current_revision().await.unwrap(), Revision(1));
    use futures_util::StreamExt as _;
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), watch.next())
            .await
            .is_err(),
        "no event for a failed write"
    );
}
