//! etcd restarting under an open watch: the stream fails (it does not resume), and the same
//! store reconnects by itself for the next calls, so the server can re-watch from the last
//! revision it saw.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ward_storage::{Storage, StorageError, WatchItem};

use crate::kit::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_fails_when_etcd_restarts_and_the_store_reconnects() {
    let mut etcd = Etcd::start().await;
    let store = etcd.connect().await;
    let first = store
        .create(b"/restart/a", b"v".to_vec())
        .await
        .expect("create");
    let mut watch = store
        .watch(b"/restart/", first.mod_revision)
        .await
        .expect("watch");

    etcd.stop();
    let item = loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
            Ok(item) => break item,
            Err(_) => panic!("the watch did not notice that etcd stopped"),
        }
    };
    assert!(
        matches!(item, Some(Err(StorageError::Backend { .. }))),
        "a broken connection ends the watch with a backend error: {item:?}"
    );
    let after = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
    assert!(
        matches!(after, Ok(None)),
        "the stream ends after its error: {after:?}"
    );

    etcd.restart().await;
    // The same store, with no reconnect call: the client dials again by itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        match store.create(b"/restart/b", b"v".to_vec()).await {
            Ok(kv) => break kv,
            Err(err) if Instant::now() < deadline => {
                eprintln!("waiting for the store to reconnect: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("the store did not reconnect: {err}"),
        }
    };
    let mut watch = store
        .watch(b"/restart/", first.mod_revision)
        .await
        .expect("watch again after the last revision seen");
    let event = loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(WatchItem::Event(event)))) => break event,
            Ok(Some(Ok(WatchItem::Progress(_)))) => {}
            other => panic!("watch after the restart: {other:?}"),
        }
    };
    assert_eq!(event.kv, second, "nothing is lost across the restart");
}
