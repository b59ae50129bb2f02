//! Watchers that fall behind the broadcast buffer, and watch replay across log pages.

use std::time::Duration;

use futures_util::StreamExt;
use ward_storage::{Revision, Storage, StorageError};

use super::{TestDb, next_event, next_item};
use crate::{RedbOptions, RedbStorage};

#[tokio::test]
async fn a_lagging_watcher_catches_up_from_the_log() {
    let db = TestDb::new();
    let store = RedbStorage::open_with_capacity(db.path(), RedbOptions::default(), 2).unwrap();
    let mut watch = store.watch(b"/a/", Revision(0)).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..40u8 {
        // Half the writes are outside the watched prefix.
        let key = if i % 2 == 0 {
            vec![b'/', b'a', b'/', i]
        } else {
            vec![b'/', b'b', b'/', i]
        };
        let kv = store.create(&key, vec![i]).await.unwrap();
        if i % 2 == 0 {
            expected.push(kv);
        }
    }
    for kv in &expected {
        assert_eq!(&next_event(&mut watch).await.kv, kv);
    }
    // The events still in the broadcast buffer were replayed from the log: not again.
    let quiet = tokio::time::timeout(Duration::from_millis(100), watch.next()).await;
    assert!(quiet.is_err(), "no event after catching up: {quiet:?}");
    let live = store.create(b"/a/live", Vec::new()).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await.kv,
        live,
        "live again after catching up"
    );
}

#[tokio::test]
async fn a_watcher_behind_compaction_fails() {
    let db = TestDb::new();
    let store = RedbStorage::open_with_capacity(db.path(), RedbOptions { history: 5 }, 2).unwrap();
    let mut watch = store.watch(b"/", Revision(0)).await.unwrap();
    for i in 0..30u8 {
        store.create(&[b'/', i], Vec::new()).await.unwrap();
    }
    match next_item(&mut watch).await {
        Some(Err(StorageError::Compacted {
            requested,
            compacted,
        })) => {
            assert_eq!((requested, compacted), (Revision(0), Revision(25)));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(
        next_item(&mut watch).await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test]
async fn replay_spans_many_log_pages() {
    let db = TestDb::new();
    let store = db.open(0);
    let writes = 3 * crate::watch::PAGE + 2;
    let mut expected = Vec::new();
    for i in 0..writes {
        let i = u8::try_from(i).unwrap();
        let kv = store.create(&[b'/', i % 3, i], Vec::new()).await.unwrap();
        if i % 3 == 1 {
            expected.push(kv.mod_revision);
        }
    }
    let mut watch = store.watch(&[b'/', 1], Revision(0)).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        seen.push(next_event(&mut watch).await.kv.mod_revision);
    }
    assert_eq!(seen, expected);
}
