//! What survives closing and reopening the database file.

use ward_storage::{KeyValue, RangeRequest, Revision, Storage, StorageError};

use super::{TestDb, next_event, next_item};
use crate::RedbStorage;

#[tokio::test]
async fn fresh_store_starts_at_revision_zero() {
    let db = TestDb::new();
    let store = db.open(10);
    assert_eq!(store.current_revision().await.unwrap(), Revision(0));
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(0));
    let page = store.range(RangeRequest::default()).await.unwrap();
    assert_eq!((page.kvs.len(), page.revision), (0, Revision(0)));
    let kv = store.create(b"/a", b"v".to_vec()).await.unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (Revision(1), Revision(1))
    );
}

#[tokio::test]
async fn reopen_keeps_data_history_and_revisions() {
    let db = TestDb::new();
    let store = db.open(0);
    store.create(b"/a", b"a1".to_vec()).await.unwrap(); // 1
    store.create(b"/b", b"b1".to_vec()).await.unwrap(); // 2
    store
        .update(b"/a", b"a2".to_vec(), Revision(1))
        .await
        .unwrap(); // 3
    store.delete(b"/b", None).await.unwrap(); // 4
    store.create(b"/c", b"c1".to_vec()).await.unwrap(); // 5
    store.compact(Revision(2)).await.unwrap();
    let mut open_watch = store.watch(b"/", Revision(5)).await.unwrap();
    drop(store);
    assert!(
        matches!(
            next_item(&mut open_watch).await,
            Some(Err(StorageError::Closed))
        ),
        "a watch of a dropped store ends with Closed"
    );
    assert!(next_item(&mut open_watch).await.is_none());

    // The open watch does not keep the file open.
    let store = db.open(0);
    assert_eq!(store.current_revision().await.unwrap(), Revision(5));
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(2));
    assert_eq!(
        store.get(b"/a").await.unwrap(),
        Some(kv(b"/a", b"a2", 1, 3))
    );
    assert_eq!(store.get(b"/b").await.unwrap(), None);

    let at = |revision| RangeRequest {
        revision: Some(Revision(revision)),
        ..Default::default()
    };
    let page = store.range(at(3)).await.unwrap();
    assert_eq!(
        page.kvs,
        vec![kv(b"/a", b"a2", 1, 3), kv(b"/b", b"b1", 2, 2)]
    );
    let page = store.range(at(4)).await.unwrap();
    assert_eq!(page.kvs, vec![kv(b"/a", b"a2", 1, 3)]);
    assert!(matches!(
        store.range(at(2)).await,
        Err(StorageError::Compacted { .. })
    ));

    let mut watch = store.watch(b"/", Revision(2)).await.unwrap();
    for revision in 3..=5 {
        assert_eq!(
            next_event(&mut watch).await.kv.mod_revision,
            Revision(revision)
        );
    }
    let next = store.create(b"/d", b"d1".to_vec()).await.unwrap();
    assert_eq!(
        next.mod_revision,
        Revision(6),
        "the revision counter survives reopen"
    );
    assert_eq!(next_event(&mut watch).await.kv, next);
}

#[tokio::test]
async fn automatic_compaction_keeps_the_last_revisions() {
    let db = TestDb::new();
    let store = db.open(3);
    for i in 0..10u8 {
        store.create(&[b'/', i], vec![i]).await.unwrap();
    }
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(7));
    let at = |revision| RangeRequest {
        revision: Some(Revision(revision)),
        ..Default::default()
    };
    assert!(matches!(
        store.range(at(7)).await,
        Err(StorageError::Compacted { .. })
    ));
    assert_eq!(store.range(at(8)).await.unwrap().kvs.len(), 8);
    assert!(matches!(
        store.watch(b"/", Revision(6)).await,
        Err(StorageError::Compacted { .. })
    ));
    assert!(store.watch(b"/", Revision(7)).await.is_ok());
    drop(store);

    // 0 turns automatic compaction off; the compacted revision is kept.
    let store = db.open(0);
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(7));
    for i in 10..20u8 {
        store.create(&[b'/', i], vec![i]).await.unwrap();
    }
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(7));
    drop(store);

    let store = db.open(2);
    store.create(b"/last", Vec::new()).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(19));
    assert_eq!(store.range(at(20)).await.unwrap().kvs.len(), 20);
}

#[tokio::test]
async fn compact_below_the_compacted_revision_does_nothing() {
    let db = TestDb::new();
    let store = db.open(0);
    for i in 0..4u8 {
        store.create(&[b'/', i], vec![i]).await.unwrap();
    }
    store.compact(Revision(3)).await.unwrap();
    store.compact(Revision(2)).await.unwrap();
    store.compact(Revision(3)).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(3));
    store.compact(Revision(4)).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), Revision(4));
    assert_eq!(store.current_revision().await.unwrap(), Revision(4));
}

#[tokio::test]
async fn open_rejects_a_second_handle_and_a_foreign_format() {
    let db = TestDb::new();
    let store = db.open(0);
    let err = RedbStorage::open(db.path(), Default::default()).unwrap_err();
    assert!(matches!(err, StorageError::Backend { .. }), "{err:?}");
    drop(store);

    {
        let raw = redb::Database::create(db.path()).unwrap();
        let txn = raw.begin_write().unwrap();
        txn.open_table(crate::META)
            .unwrap()
            .insert(crate::META_FORMAT, 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStorage::open(db.path(), Default::default()).unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
}

fn kv(key: &[u8], value: &[u8], create: u64, modified: u64) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        create_revision: Revision(create),
        mod_revision: Revision(modified),
    }
}
