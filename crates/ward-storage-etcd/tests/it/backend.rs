//! What the conformance suite leaves out: the key prefix, progress notifications, compaction at
//! the current revision, and errors that must not show values. One etcd serves the whole test;
//! each part writes under its own keys.

use std::time::Duration;

use futures_util::StreamExt;
use ward_storage::{RangeRequest, Revision, Storage, StorageError, WatchItem};
use ward_storage_etcd::{EtcdOptions, EtcdStorage};

use crate::kit::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_specific_behaviour() {
    let etcd = Etcd::start().await;
    let store = etcd.connect().await;
    prefix_option_is_added_and_removed(&etcd, &store).await;
    progress_notifications_become_progress_items(&store).await;
    compact_at_the_current_revision_keeps_it_readable(&etcd, &store).await;
    errors_and_debug_never_show_values(&store).await;
}

async fn prefix_option_is_added_and_removed(etcd: &Etcd, plain: &EtcdStorage) {
    let tenant = EtcdStorage::connect(EtcdOptions {
        prefix: "/tenant-a".into(),
        ..etcd.options()
    })
    .await
    .expect("connect with a prefix");
    let key = b"/registry/secrets/default/db".as_slice();
    let start = tenant.current_revision().await.expect("current revision");
    let mut watch = tenant
        .watch(b"/registry/secrets/", start)
        .await
        .expect("watch");
    let created = tenant.create(key, b"v1".to_vec()).await.expect("create");
    assert_eq!(created.key, key, "keys come back without the prefix");

    let raw = plain
        .get(b"/tenant-a/registry/secrets/default/db")
        .await
        .expect("get");
    assert_eq!(
        raw.map(|kv| kv.value),
        Some(b"v1".to_vec()),
        "etcd holds the prefixed key"
    );
    assert_eq!(
        plain.get(key).await.expect("get"),
        None,
        "nothing outside the prefix"
    );

    let page = tenant
        .range(RangeRequest {
            prefix: b"/registry/".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range");
    assert_eq!(page.kvs, vec![created.clone()]);
    let deleted = tenant.delete(key, None).await.expect("delete");
    assert_eq!(deleted.key, key);

    let mut events = Vec::new();
    while events.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(WatchItem::Event(event)))) => events.push(event),
            Ok(Some(Ok(WatchItem::Progress(_)))) => {}
            other => panic!("watch with a prefix: {other:?}"),
        }
    }
    assert_eq!(
        events[0].kv, created,
        "watched keys come back without the prefix"
    );
    assert_eq!(events[1].kv.key, key);
}

async fn progress_notifications_become_progress_items(store: &EtcdStorage) {
    let now = store.current_revision().await.expect("current revision");
    let mut watch = store.watch(b"/progress/", now).await.expect("watch");
    // The test etcd notifies every second (etcd's default is every 10 minutes).
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
        Ok(Some(Ok(WatchItem::Progress(revision)))) => assert!(revision >= now),
        other => panic!("expected a progress notification, got {other:?}"),
    }
}

async fn compact_at_the_current_revision_keeps_it_readable(etcd: &Etcd, store: &EtcdStorage) {
    let kv = store
        .create(b"/compact-current/a", b"v".to_vec())
        .await
        .expect("create");
    let current = store.current_revision().await.expect("current revision");
    assert_eq!(current, kv.mod_revision);
    store
        .compact(current)
        .await
        .expect("compact at the current revision");
    // etcd cannot drop its current revision: everything before it is compacted instead.
    let other = etcd.connect().await;
    assert_eq!(
        other
            .compacted_revision()
            .await
            .expect("compacted revision"),
        Revision(current.0 - 1),
        "another client sees the compaction"
    );
    let at_current = store
        .range(RangeRequest {
            prefix: b"/compact-current/".to_vec(),
            revision: Some(current),
            ..Default::default()
        })
        .await
        .expect("the current revision stays readable");
    assert_eq!(at_current.kvs, vec![kv]);
    match store.compact(Revision(current.0 + 5)).await {
        Err(StorageError::FutureRevision {
            requested,
            current: now,
        }) => {
            assert_eq!((requested, now), (Revision(current.0 + 5), current));
        }
        other => panic!("compact in the future: {other:?}"),
    }
}

async fn errors_and_debug_never_show_values(store: &EtcdStorage) {
    const CANARY: &str = "CANARY-5e1f0d-secret-value";
    let key = b"/canary/a".as_slice();
    let created = store
        .create(key, CANARY.as_bytes().to_vec())
        .await
        .expect("create");
    let errors = [
        store.create(key, CANARY.as_bytes().to_vec()).await.err(),
        store
            .update(key, CANARY.as_bytes().to_vec(), Revision(1))
            .await
            .err(),
        store.delete(key, Some(Revision(1))).await.err(),
    ];
    for err in errors {
        let err = err.expect("the write fails");
        for shown in [format!("{err}"), format!("{err:?}")] {
            assert!(
                !shown.contains(CANARY),
                "a value leaked into an error: {shown}"
            );
        }
    }
    for shown in [format!("{created:?}"), format!("{store:?}")] {
        assert!(
            !shown.contains(CANARY),
            "a value leaked into Debug: {shown}"
        );
    }
}
