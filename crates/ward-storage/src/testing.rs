//! The storage conformance suite: the cases every [`Storage`] backend must pass.
//!
//! Each backend runs it from its own tests (redb with a temporary file, etcd against a real
//! server), so both implement the contract in [the crate docs](crate) the same way:
//!
//! ```text
//! #[tokio::test]
//! async fn conformance() {
//!     let dir = tempfile::tempdir().unwrap();
//!     let mut n = 0;
//!     ward_storage::testing::suite(|| {
//!         n += 1;
//!         MyStorage::open(dir.path().join(format!("{n}.db"))).unwrap()
//!     })
//!     .await;
//! }
//! ```
//!
//! [`suite`] runs every case of [`cases`] on a store made for it; a failing case panics with a
//! message that names the case and what was expected. Backends whose stores are made
//! asynchronously iterate [`cases`] themselves.
//!
//! # What a case may assume
//!
//! A case needs a store that nothing else writes to while it runs. The store need not be new:
//! a case writes only under its own prefix (`/conformance/<case>/`) and checks revisions relative
//! to the revision it found at its start, so one etcd can serve every case in turn. It compacts
//! only revisions it wrote itself, and never the current revision. Cases use tokio timers and
//! spawn tasks, so they must run inside a tokio runtime with time enabled (`#[tokio::test]`).
//!
//! # What is not covered
//!
//! Durability across a crash or restart, and automatic compaction, depend on how a backend is
//! opened and configured; each backend tests them itself.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};

use crate::{
    Event, EventKind, KeyValue, RangePage, RangeRequest, Revision, Storage, StorageError,
    WatchItem, WatchStream,
};

/// Runs every conformance case, each on a store returned by `make`.
///
/// Panics, naming the case, when the store breaks the contract.
pub async fn suite<S: Storage>(mut make: impl FnMut() -> S) {
    for case in cases() {
        case.run(Arc::new(make())).await;
    }
}

/// All conformance cases, in a fixed order.
pub fn cases() -> Vec<Case> {
    macro_rules! case {
        ($name:ident) => {
            Case {
                name: stringify!($name),
                run: |store| Box::pin($name(store)),
            }
        };
    }
    vec![
        case!(write_revisions),
        case!(create_existing_key),
        case!(update_conditions),
        case!(delete_conditions),
        case!(failed_writes_leave_no_trace),
        case!(values_are_bytes),
        case!(range_order_and_prefix),
        case!(range_pagination),
        case!(range_at_old_revision),
        case!(range_pages_at_one_revision),
        case!(range_revision_errors),
        case!(compact),
        case!(watch_replays_then_follows),
        case!(watch_prefix_filter),
        case!(watch_delete_events),
        case!(watch_compacted),
        case!(watch_while_writing),
        case!(concurrent_creates),
        case!(concurrent_conditional_writes),
    ]
}

/// One conformance case.
pub struct Case {
    name: &'static str,
    run: fn(Arc<dyn Storage>) -> CaseFuture,
}

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Case {
    /// The case's name, e.g. `range_pagination`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the case on `store`.
    ///
    /// Panics, naming the case, if the store breaks the contract.
    pub async fn run(&self, store: Arc<dyn Storage>) {
        let backend = store.name();
        if let Err(panic) = AssertUnwindSafe((self.run)(store)).catch_unwind().await {
            eprintln!(
                "storage conformance case `{}` failed on {backend}",
                self.name
            );
            std::panic::resume_unwind(panic);
        }
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

// === cases: writes ===

async fn write_revisions(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "write_revisions").await;
    let (a, b) = (cx.key("a"), cx.key("b"));

    let created = cx.create(&a, b"a1").await;
    assert_eq!(
        created,
        kv(&a, b"a1", cx.rev(1), cx.rev(1)),
        "create returns the stored key-value"
    );
    assert_eq!(
        cx.current().await,
        cx.rev(1),
        "a create bumps the revision by one"
    );

    let updated = cx
        .store
        .update(&a, b"a2".to_vec(), cx.rev(1))
        .await
        .expect("update");
    assert_eq!(
        updated,
        kv(&a, b"a2", cx.rev(1), cx.rev(2)),
        "update keeps create_revision"
    );
    assert_eq!(
        cx.current().await,
        cx.rev(2),
        "an update bumps the revision by one"
    );

    cx.create(&b, b"b1").await;
    let deleted = cx.store.delete(&a, None).await.expect("delete");
    assert_eq!(
        deleted,
        kv(&a, b"a2", cx.rev(1), cx.rev(4)),
        "delete returns the last value with the delete's revision as mod_revision"
    );
    assert_eq!(
        cx.current().await,
        cx.rev(4),
        "a delete bumps the revision by one"
    );

    assert_eq!(cx.get(&a).await, None, "a deleted key is gone");
    assert_eq!(
        cx.get(&b).await,
        Some(kv(&b, b"b1", cx.rev(3), cx.rev(3))),
        "get after create"
    );
    assert_eq!(
        cx.get(&cx.key("never")).await,
        None,
        "get of a key never written"
    );

    let again = cx.create(&a, b"a3").await;
    assert_eq!(
        again,
        kv(&a, b"a3", cx.rev(5), cx.rev(5)),
        "a re-created key starts afresh"
    );
}

async fn create_existing_key(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "create_existing_key").await;
    let a = cx.key("a");
    let first = cx.create(&a, b"first").await;
    match cx.store.create(&a, b"second".to_vec()).await {
        Err(StorageError::AlreadyExists { existing }) => {
            assert_eq!(
                *existing, first,
                "AlreadyExists carries the existing key-value"
            );
        }
        other => panic!("create of an existing key: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        cx.current().await,
        cx.rev(1),
        "a failed create does not bump the revision"
    );
    assert_eq!(
        cx.get(&a).await,
        Some(first),
        "a failed create leaves the value alone"
    );
}

async fn update_conditions(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "update_conditions").await;
    let a = cx.key("a");

    let missing = cx.store.update(&a, b"x".to_vec(), Revision(0)).await;
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "update of a missing key: {missing:?}"
    );

    let first = cx.create(&a, b"v1").await;
    let second = cx
        .store
        .update(&a, b"v2".to_vec(), cx.rev(1))
        .await
        .expect("update");
    assert_eq!(second.mod_revision, cx.rev(2));

    for stale in [cx.rev(1), Revision(0), cx.rev(3)] {
        match cx.store.update(&a, b"v3".to_vec(), stale).await {
            Err(StorageError::Conflict { current }) => {
                assert_eq!(*current, second, "Conflict carries the current key-value");
            }
            other => panic!("update expecting revision {stale}: expected Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        cx.current().await,
        cx.rev(2),
        "failed updates do not bump the revision"
    );
    assert_eq!(
        cx.get(&a).await,
        Some(second.clone()),
        "failed updates leave the value alone"
    );

    cx.store.delete(&a, None).await.expect("delete");
    let after_delete = cx
        .store
        .update(&a, b"v4".to_vec(), second.mod_revision)
        .await;
    assert!(
        matches!(after_delete, Err(StorageError::NotFound)),
        "update of a deleted key: {after_delete:?}"
    );
    let recreated = cx.create(&a, b"v5").await;
    let stale_incarnation = cx
        .store
        .update(&a, b"v6".to_vec(), first.mod_revision)
        .await;
    assert!(
        matches!(stale_incarnation, Err(StorageError::Conflict { .. })),
        "update expecting a revision of an earlier incarnation: {stale_incarnation:?}"
    );
    assert_eq!(cx.get(&a).await, Some(recreated));
}

async fn delete_conditions(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "delete_conditions").await;
    let (a, b) = (cx.key("a"), cx.key("b"));

    for expected in [None, Some(Revision(0))] {
        let missing = cx.store.delete(&a, expected).await;
        assert!(
            matches!(missing, Err(StorageError::NotFound)),
            "delete of a missing key ({expected:?}): {missing:?}"
        );
    }

    let created = cx.create(&a, b"v1").await;
    match cx.store.delete(&a, Some(cx.rev(7))).await {
        Err(StorageError::Conflict { current }) => {
            assert_eq!(*current, created, "Conflict carries the current key-value");
        }
        other => panic!("delete with a wrong revision: expected Conflict, got {other:?}"),
    }
    assert_eq!(
        cx.current().await,
        cx.rev(1),
        "a failed delete does not bump the revision"
    );
    assert_eq!(
        cx.get(&a).await,
        Some(created.clone()),
        "a failed delete leaves the key alone"
    );

    let deleted = cx
        .store
        .delete(&a, Some(cx.rev(1)))
        .await
        .expect("delete at its revision");
    assert_eq!(deleted, kv(&a, b"v1", cx.rev(1), cx.rev(2)));
    let twice = cx.store.delete(&a, None).await;
    assert!(
        matches!(twice, Err(StorageError::NotFound)),
        "second delete: {twice:?}"
    );

    cx.create(&b, b"v1").await;
    let deleted = cx
        .store
        .delete(&b, None)
        .await
        .expect("unconditional delete");
    assert_eq!(deleted, kv(&b, b"v1", cx.rev(3), cx.rev(4)));
    assert_eq!(cx.current().await, cx.rev(4));
}

async fn failed_writes_leave_no_trace(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "failed_writes_leave_no_trace").await;
    let (a, missing) = (cx.key("a"), cx.key("missing"));
    cx.create(&a, b"v1").await;
    assert!(cx.store.create(&a, b"v2".to_vec()).await.is_err());
    assert!(
        cx.store
            .update(&a, b"v2".to_vec(), cx.rev(9))
            .await
            .is_err()
    );
    assert!(
        cx.store
            .update(&missing, b"v2".to_vec(), cx.rev(1))
            .await
            .is_err()
    );
    assert!(cx.store.delete(&a, Some(cx.rev(9))).await.is_err());
    assert!(cx.store.delete(&missing, None).await.is_err());
    assert_eq!(
        cx.current().await,
        cx.rev(1),
        "failed writes do not bump the revision"
    );
    cx.create(&cx.key("b"), b"v1").await;
    assert_eq!(
        cx.current().await,
        cx.rev(2),
        "the next write takes the next revision"
    );

    let mut watch = cx.watch(&cx.prefix, cx.base).await;
    let revisions = [next_event(&mut watch).await, next_event(&mut watch).await]
        .map(|event| event.kv.mod_revision);
    assert_eq!(
        revisions,
        [cx.rev(1), cx.rev(2)],
        "failed writes leave no events"
    );
}

async fn values_are_bytes(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "values_are_bytes").await;
    let all_bytes: Vec<u8> = (0..=255).collect();
    let large: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut odd_key = cx.key("odd/");
    odd_key.extend_from_slice(&[0x00, 0xff, 0x80, b'\n']);
    let cases = [
        (cx.key("empty"), Vec::new()),
        (cx.key("all"), all_bytes),
        (cx.key("large"), large),
        (odd_key, b"v".to_vec()),
    ];

    for (key, value) in &cases {
        let created = cx.store.create(key, value.clone()).await.expect("create");
        assert_eq!(&created.value, value, "create returns the value as given");
        let read = cx.get(key).await.expect("created key is readable");
        assert_eq!(&read.value, value, "get returns the value as written");
    }
    let page = cx
        .range(RangeRequest {
            prefix: cx.prefix.clone(),
            ..Default::default()
        })
        .await;
    let mut expected: Vec<_> = cases.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    expected.sort();
    let got: Vec<_> = page
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert!(
        got == expected,
        "range returns every key and value byte for byte"
    );

    let mut watch = cx.watch(&cx.prefix, cx.base).await;
    for (key, value) in &cases {
        let event = next_event(&mut watch).await;
        assert!(
            &event.kv.key == key && &event.kv.value == value,
            "watch returns bytes as written"
        );
    }
}

// === cases: range ===

async fn range_order_and_prefix(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "range_order_and_prefix").await;
    let suffixes: [&[u8]; 9] = [
        b"a/2", b"a/10", b"a/1", b"ab/1", b"a", b"a/\xff", b"a/\x00", b"b/1", b"a/1/x",
    ];
    for suffix in suffixes {
        cx.create(&cx.key_bytes(suffix), b"v").await;
    }
    let keys_under = |suffix: &[u8]| {
        let prefix = cx.key_bytes(suffix);
        let mut keys: Vec<Vec<u8>> = suffixes
            .iter()
            .map(|s| cx.key_bytes(s))
            .filter(|k| k.starts_with(&prefix))
            .collect();
        keys.sort();
        (prefix, keys)
    };

    for suffix in [&b"a/"[..], b"ab/", b"a", b"b/", b"a/1", b"", b"c/"] {
        let (prefix, expected) = keys_under(suffix);
        let page = cx
            .range(RangeRequest {
                prefix: prefix.clone(),
                ..Default::default()
            })
            .await;
        assert_eq!(
            keys(&page),
            expected,
            "range of prefix {:?}: exactly the keys under it, in byte order",
            String::from_utf8_lossy(&prefix)
        );
        assert!(
            !page.more && page.remaining == 0,
            "an unlimited range has nothing more: {page:?}"
        );
        assert_eq!(
            page.revision,
            cx.rev(suffixes.len() as u64),
            "page revision is the current one"
        );
    }
    let exact = cx
        .range(RangeRequest {
            prefix: cx.key("a/2"),
            ..Default::default()
        })
        .await;
    assert_eq!(
        keys(&exact),
        vec![cx.key("a/2")],
        "a full key as prefix matches itself"
    );
}

async fn range_pagination(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "range_pagination").await;
    let all: Vec<Vec<u8>> = (0..7).map(|i| cx.key(&format!("k{i}"))).collect();
    for key in all.iter().rev() {
        cx.create(key, b"v").await;
    }
    cx.create(&cx.key_outside("k9"), b"v").await;

    let page = |start_after: Option<Vec<u8>>, limit: usize| {
        let request = RangeRequest {
            prefix: cx.prefix.clone(),
            start_after,
            limit,
            revision: None,
        };
        cx.range(request)
    };
    let expect = |page: &RangePage, keys_: &[Vec<u8>], remaining: u64, what: &str| {
        assert_eq!(keys(page), keys_, "{what}: keys");
        assert_eq!(page.remaining, remaining, "{what}: remaining");
        assert_eq!(page.more, remaining > 0, "{what}: more");
        assert_eq!(page.revision, cx.rev(8), "{what}: revision");
    };

    expect(&page(None, 3).await, &all[0..3], 4, "first page of 3");
    expect(
        &page(Some(all[2].clone()), 3).await,
        &all[3..6],
        1,
        "second page of 3",
    );
    expect(
        &page(Some(all[5].clone()), 3).await,
        &all[6..7],
        0,
        "last page of 3",
    );
    expect(&page(None, 0).await, &all, 0, "limit 0 is unlimited");
    expect(&page(None, 7).await, &all, 0, "limit equal to the count");
    expect(&page(None, 100).await, &all, 0, "limit above the count");
    expect(&page(None, 1).await, &all[0..1], 6, "limit 1");

    let mut between = all[2].clone();
    between.push(b'x');
    expect(
        &page(Some(between), 2).await,
        &all[3..5],
        2,
        "start_after between two keys",
    );
    expect(
        &page(Some(b"/".to_vec()), 2).await,
        &all[0..2],
        5,
        "start_after before the prefix",
    );
    expect(
        &page(Some(all[6].clone()), 2).await,
        &[],
        0,
        "start_after the last key",
    );
    let mut past_end = cx.prefix.clone();
    past_end.push(0xff);
    expect(
        &page(Some(past_end), 0).await,
        &[],
        0,
        "start_after past the prefix",
    );

    let walked = walk(&cx, cx.prefix.clone(), None, 2).await;
    assert_eq!(
        walked.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        all,
        "walk by 2"
    );
}

async fn range_at_old_revision(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "range_at_old_revision").await;
    let (a, b, c) = (cx.key("a"), cx.key("b"), cx.key("c"));
    let mut state: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
    let mut snapshots = vec![state.clone()]; // snapshots[n] = state at cx.rev(n)
    let mut record = |state: &mut BTreeMap<Vec<u8>, KeyValue>,
                      result: Result<KeyValue, StorageError>,
                      deleted: bool| {
        let kv = result.expect("write");
        if deleted {
            state.remove(&kv.key);
        } else {
            state.insert(kv.key.clone(), kv);
        }
        snapshots.push(state.clone());
    };

    record(&mut state, cx.store.create(&a, b"a1".to_vec()).await, false); // 1
    record(&mut state, cx.store.create(&b, b"b1".to_vec()).await, false); // 2
    record(
        &mut state,
        cx.store.update(&a, b"a2".to_vec(), cx.rev(1)).await,
        false,
    ); // 3
    record(&mut state, cx.store.delete(&b, None).await, true); // 4
    record(&mut state, cx.store.create(&c, b"c1".to_vec()).await, false); // 5
    record(&mut state, cx.store.create(&b, b"b2".to_vec()).await, false); // 6
    record(&mut state, cx.store.delete(&a, Some(cx.rev(3))).await, true); // 7
    record(
        &mut state,
        cx.store.update(&c, b"c2".to_vec(), cx.rev(5)).await,
        false,
    ); // 8
    // A write outside the prefix must not show up, at any revision.
    cx.create(&cx.key_outside("a"), b"x").await; // 9

    for n in 1..=9 {
        let at = cx.rev(n);
        let expected: Vec<KeyValue> = snapshots[(n as usize).min(8)].values().cloned().collect();
        let request = RangeRequest {
            prefix: cx.prefix.clone(),
            revision: Some(at),
            ..Default::default()
        };
        let page = cx.range(request).await;
        assert_eq!(
            page.kvs, expected,
            "range at revision {at} (case revision {n})"
        );
        assert_eq!(page.revision, at, "page revision is the one asked for");
        assert!(!page.more && page.remaining == 0);

        let walked = walk(&cx, cx.prefix.clone(), Some(at), 1).await;
        assert_eq!(
            walked, expected,
            "range walked one by one at case revision {n}"
        );
    }

    let only_b = |n: u64| RangeRequest {
        prefix: b.clone(),
        revision: Some(cx.rev(n)),
        ..Default::default()
    };
    assert_eq!(
        cx.range(only_b(3)).await.kvs,
        vec![kv(&b, b"b1", cx.rev(2), cx.rev(2))]
    );
    assert_eq!(cx.range(only_b(5)).await.kvs, vec![], "b was deleted at 4");
    assert_eq!(
        cx.range(only_b(6)).await.kvs,
        vec![kv(&b, b"b2", cx.rev(6), cx.rev(6))]
    );

    let limited = RangeRequest {
        prefix: cx.prefix.clone(),
        limit: 1,
        revision: Some(cx.rev(5)),
        ..Default::default()
    };
    let page = cx.range(limited).await;
    assert_eq!(keys(&page), vec![a.clone()], "first key at case revision 5");
    assert!(
        page.more && page.remaining == 1,
        "a and c existed at case revision 5: {page:?}"
    );
}

async fn range_pages_at_one_revision(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "range_pages_at_one_revision").await;
    let all: Vec<Vec<u8>> = (0..6).map(|i| cx.key(&format!("k{i}"))).collect();
    for key in &all {
        cx.create(key, b"v1").await;
    }
    let first = cx
        .range(RangeRequest {
            prefix: cx.prefix.clone(),
            limit: 2,
            ..Default::default()
        })
        .await;
    assert_eq!(first.revision, cx.rev(6));
    assert_eq!(keys(&first), &all[0..2]);

    // Writes between pages, as other clients would make them.
    cx.store.delete(&all[3], None).await.expect("delete");
    cx.store
        .update(&all[4], b"v2".to_vec(), cx.rev(5))
        .await
        .expect("update");
    let mut inserted = all[2].clone();
    inserted.push(b'x');
    cx.create(&inserted, b"v1").await;

    let rest = RangeRequest {
        prefix: cx.prefix.clone(),
        start_after: Some(all[1].clone()),
        limit: 0,
        revision: Some(first.revision),
    };
    let second = cx.range(rest.clone()).await;
    assert_eq!(
        keys(&second),
        &all[2..6],
        "a continued list sees the first page's revision"
    );
    assert_eq!(
        second.kvs[2].value, b"v1",
        "values as of the first page's revision"
    );
    assert_eq!(second.revision, first.revision);

    let latest = cx
        .range(RangeRequest {
            revision: None,
            ..rest
        })
        .await;
    assert_eq!(
        keys(&latest),
        vec![all[2].clone(), inserted, all[4].clone(), all[5].clone()],
        "a new list sees the writes"
    );
    assert_eq!(latest.revision, cx.rev(9));
}

async fn range_revision_errors(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "range_revision_errors").await;
    for i in 0..4 {
        cx.create(&cx.key(&format!("k{i}")), b"v").await;
    }
    let at = |n: u64| RangeRequest {
        prefix: cx.prefix.clone(),
        revision: Some(cx.rev(n)),
        ..Default::default()
    };
    match cx.store.range(at(5)).await {
        Err(StorageError::FutureRevision { requested, current }) => {
            assert_eq!(
                (requested, current),
                (cx.rev(5), cx.rev(4)),
                "FutureRevision fields"
            );
        }
        other => panic!("range at a future revision: expected FutureRevision, got {other:?}"),
    }

    cx.store.compact(cx.rev(2)).await.expect("compact");
    for n in [1, 2] {
        match cx.store.range(at(n)).await {
            Err(StorageError::Compacted {
                requested,
                compacted,
            }) => {
                assert_eq!(
                    (requested, compacted),
                    (cx.rev(n), cx.rev(2)),
                    "Compacted fields"
                );
            }
            other => {
                panic!("range at compacted case revision {n}: expected Compacted, got {other:?}")
            }
        }
    }
    assert_eq!(
        cx.range(at(3)).await.kvs.len(),
        3,
        "the revision after the compacted one is kept"
    );
    assert_eq!(cx.range(at(4)).await.kvs.len(), 4);
}

async fn compact(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "compact").await;
    let a = cx.key("a");
    cx.create(&a, b"v1").await;
    for n in 1..5 {
        cx.store
            .update(&a, format!("v{}", n + 1).into_bytes(), cx.rev(n))
            .await
            .expect("update");
    }
    cx.store.compact(cx.rev(3)).await.expect("compact");
    assert_eq!(
        cx.store
            .compacted_revision()
            .await
            .expect("compacted_revision"),
        cx.rev(3),
        "compacted_revision after compact"
    );
    assert_eq!(
        cx.current().await,
        cx.rev(5),
        "compaction does not bump the revision"
    );
    match cx.store.compact(cx.rev(6)).await {
        Err(StorageError::FutureRevision { requested, .. }) => assert_eq!(requested, cx.rev(6)),
        other => panic!("compact at a future revision: expected FutureRevision, got {other:?}"),
    }

    let old = RangeRequest {
        prefix: a.clone(),
        revision: Some(cx.rev(4)),
        ..Default::default()
    };
    assert_eq!(
        cx.range(old).await.kvs,
        vec![kv(&a, b"v4", cx.rev(1), cx.rev(4))],
        "kept history"
    );
    assert_eq!(
        cx.get(&a).await,
        Some(kv(&a, b"v5", cx.rev(1), cx.rev(5))),
        "current value kept"
    );
    let next = cx
        .store
        .update(&a, b"v6".to_vec(), cx.rev(5))
        .await
        .expect("update after compact");
    assert_eq!(
        next.mod_revision,
        cx.rev(6),
        "writes go on after compaction"
    );
}

// === cases: watch ===

async fn watch_replays_then_follows(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "watch_replays_then_follows").await;
    let keys_: Vec<Vec<u8>> = (0..3).map(|i| cx.key(&format!("k{i}"))).collect();
    for key in &keys_ {
        cx.create(key, b"v").await;
    }

    let mut from_start = cx.watch(&cx.prefix, cx.base).await;
    let mut from_middle = cx.watch(&cx.prefix, cx.rev(2)).await;
    let mut from_now = cx.watch(&cx.prefix, cx.rev(3)).await;
    for n in 1..=3 {
        let event = next_event(&mut from_start).await;
        assert_eq!(event.kv.mod_revision, cx.rev(n), "replay in revision order");
        assert_eq!(event.kv.key, keys_[n as usize - 1]);
        assert_eq!(
            (event.kind, event.prev),
            (EventKind::Put, None),
            "a create has no prev"
        );
    }
    assert_eq!(
        next_event(&mut from_middle).await.kv.mod_revision,
        cx.rev(3),
        "replay after 2"
    );

    let live = cx.create(&cx.key("live"), b"v").await;
    for (watch, what) in [
        (&mut from_start, "start"),
        (&mut from_middle, "middle"),
        (&mut from_now, "now"),
    ] {
        let event = next_event(watch).await;
        assert_eq!(
            event.kv, live,
            "the live event follows the replay (watch from {what})"
        );
    }
    let updated = cx
        .store
        .update(&live.key, b"v2".to_vec(), live.mod_revision)
        .await
        .expect("update");
    for watch in [&mut from_start, &mut from_middle, &mut from_now] {
        let event = next_event(watch).await;
        assert_eq!(event.kv, updated, "live events arrive once each, in order");
        assert_eq!(
            event.prev.as_ref(),
            Some(&live),
            "an update's prev is the old value"
        );
    }
}

async fn watch_prefix_filter(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "watch_prefix_filter").await;
    let writes = ["ab/1", "a/1", "b", "a", "a/2", "ab/2"];
    for key in writes {
        cx.create(&cx.key(key), b"v").await;
    }
    let mut watch = cx.watch(&cx.key("a/"), cx.base).await;
    assert_eq!(next_event(&mut watch).await.kv.key, cx.key("a/1"));
    assert_eq!(next_event(&mut watch).await.kv.key, cx.key("a/2"));

    for key in ["ab/3", "b/1", "a"] {
        let current = cx.get(&cx.key(key)).await;
        match current {
            Some(kv) => {
                cx.store.delete(&kv.key, None).await.expect("delete");
            }
            None => {
                cx.create(&cx.key(key), b"v").await;
            }
        }
    }
    let marker = cx.create(&cx.key("a/3"), b"v").await;
    let event = next_event(&mut watch).await;
    assert_eq!(
        event.kv, marker,
        "no event from outside the prefix /a/ (e.g. /ab/ or /a)"
    );
}

async fn watch_delete_events(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "watch_delete_events").await;
    let a = cx.key("a");
    let v1 = cx.create(&a, b"v1").await;
    let v2 = cx
        .store
        .update(&a, b"v2".to_vec(), v1.mod_revision)
        .await
        .expect("update");
    cx.store
        .delete(&a, Some(v2.mod_revision))
        .await
        .expect("delete");
    let expected = [
        Event {
            kind: EventKind::Put,
            kv: v1.clone(),
            prev: None,
        },
        Event {
            kind: EventKind::Put,
            kv: v2.clone(),
            prev: Some(v1.clone()),
        },
        Event {
            kind: EventKind::Delete,
            kv: kv(&a, b"v2", cx.rev(1), cx.rev(3)),
            prev: Some(v2.clone()),
        },
    ];
    let mut replay = cx.watch(&cx.prefix, cx.base).await;
    for (n, expected) in expected.iter().enumerate() {
        assert_eq!(
            &next_event(&mut replay).await,
            expected,
            "replayed event {}",
            n + 1
        );
    }

    // The same, live.
    let mut live = cx.watch(&cx.prefix, cx.rev(3)).await;
    let v3 = cx.create(&a, b"v3").await;
    assert_eq!(v3.create_revision, cx.rev(4));
    cx.store.delete(&a, None).await.expect("delete");
    let expected = [
        Event {
            kind: EventKind::Put,
            kv: v3.clone(),
            prev: None,
        },
        Event {
            kind: EventKind::Delete,
            kv: kv(&a, b"v3", cx.rev(4), cx.rev(5)),
            prev: Some(v3),
        },
    ];
    for (n, expected) in expected.iter().enumerate() {
        assert_eq!(
            &next_event(&mut live).await,
            expected,
            "live event {}",
            n + 1
        );
        assert_eq!(
            &next_event(&mut replay).await,
            expected,
            "followed event {}",
            n + 1
        );
    }
}

async fn watch_compacted(store: Arc<dyn Storage>) {
    let cx = Cx::new(store, "watch_compacted").await;
    for i in 0..4 {
        cx.create(&cx.key(&format!("k{i}")), b"v").await;
    }
    cx.store.compact(cx.rev(2)).await.expect("compact");
    for n in [0, 1] {
        match cx.store.watch(&cx.prefix, cx.rev(n)).await {
            Err(StorageError::Compacted {
                requested,
                compacted,
            }) => {
                assert_eq!(
                    (requested, compacted),
                    (cx.rev(n), cx.rev(2)),
                    "Compacted fields"
                );
            }
            Err(other) => panic!("watch after compacted case revision {n}: got {other:?}"),
            Ok(_) => panic!("watch after compacted case revision {n}: expected Compacted"),
        }
    }
    let mut watch = cx.watch(&cx.prefix, cx.rev(2)).await;
    assert_eq!(
        next_event(&mut watch).await.kv.mod_revision,
        cx.rev(3),
        "history after compaction"
    );
    assert_eq!(next_event(&mut watch).await.kv.mod_revision, cx.rev(4));
}

async fn watch_while_writing(store: Arc<dyn Storage>) {
    const WRITES: u64 = 60;
    let cx = Cx::new(store, "watch_while_writing").await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let writer = {
        let store = Arc::clone(&cx.store);
        let prefix = cx.prefix.clone();
        tokio::spawn(async move {
            let mut started = Some(started_tx);
            for i in 0..WRITES {
                let mut key = prefix.clone();
                key.extend_from_slice(format!("k{i:03}").as_bytes());
                store.create(&key, b"v".to_vec()).await.expect("create");
                if i == WRITES / 3
                    && let Some(started) = started.take()
                {
                    let _ = started.send(());
                }
            }
        })
    };
    started_rx.await.expect("writer started");
    // Watches opened while writes are going on: part replay, part live.
    let mut watches = Vec::new();
    for after in [0, 5] {
        watches.push((after, cx.watch(&cx.prefix, cx.rev(after)).await));
        tokio::task::yield_now().await;
    }
    let now = cx.current().await;
    watches.push((now.0 - cx.base.0, cx.watch(&cx.prefix, now).await));
    writer.await.expect("writer task");

    for (after, mut watch) in watches {
        for n in after + 1..=WRITES {
            let event = next_event(&mut watch).await;
            assert_eq!(
                event.kv.mod_revision,
                cx.rev(n),
                "watch after case revision {after}: every revision once, in order"
            );
        }
    }
}

// === cases: concurrency ===

async fn concurrent_creates(store: Arc<dyn Storage>) {
    const TASKS: usize = 8;
    const PER_TASK: usize = 16;
    let cx = Cx::new(store, "concurrent_creates").await;
    let mut watch = cx.watch(&cx.prefix, cx.base).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&cx.store);
            let prefix = cx.prefix.clone();
            tokio::spawn(async move {
                let mut created = Vec::new();
                for i in 0..PER_TASK {
                    let mut key = prefix.clone();
                    key.extend_from_slice(format!("t{t}/{i:02}").as_bytes());
                    created.push(store.create(&key, b"v".to_vec()).await.expect("create"));
                }
                created
            })
        })
        .collect();
    let mut by_revision = BTreeMap::new();
    for task in tasks {
        for kv in task.await.expect("writer task") {
            assert_eq!(kv.create_revision, kv.mod_revision);
            let duplicate = by_revision.insert(kv.mod_revision, kv);
            assert!(
                duplicate.is_none(),
                "two writes got the same revision: {duplicate:?}"
            );
        }
    }
    let total = (TASKS * PER_TASK) as u64;
    let revisions: Vec<Revision> = by_revision.keys().copied().collect();
    let expected: Vec<Revision> = (1..=total).map(|n| cx.rev(n)).collect();
    assert_eq!(
        revisions, expected,
        "concurrent writes get consecutive revisions"
    );
    assert_eq!(cx.current().await, cx.rev(total));

    for (revision, kv) in &by_revision {
        let event = next_event(&mut watch).await;
        assert_eq!(
            event.kv.mod_revision, *revision,
            "the watch sees writes in revision order"
        );
        assert_eq!(&event.kv, kv, "the watch sees what each write returned");
    }
}

async fn concurrent_conditional_writes(store: Arc<dyn Storage>) {
    const TASKS: usize = 8;
    let cx = Cx::new(store, "concurrent_conditional_writes").await;
    let a = cx.key("a");
    let created = cx.create(&a, b"v0").await;

    let spawn_all = |op: fn(Arc<dyn Storage>, Vec<u8>, usize, Revision) -> CaseWrite,
                     expected: Revision| {
        (0..TASKS)
            .map(|t| tokio::spawn(op(Arc::clone(&cx.store), a.clone(), t, expected)))
            .collect::<Vec<_>>()
    };
    let updates = spawn_all(
        |store, key, t, expected| {
            Box::pin(async move {
                store
                    .update(&key, format!("v{t}").into_bytes(), expected)
                    .await
            })
        },
        created.mod_revision,
    );
    let mut winners = Vec::new();
    for task in updates {
        match task.await.expect("update task") {
            Ok(kv) => winners.push(kv),
            Err(StorageError::Conflict { current }) => {
                assert_eq!(
                    current.mod_revision,
                    cx.rev(2),
                    "losers see the winner's revision"
                );
            }
            Err(other) => panic!("concurrent update: expected Ok or Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one update expecting the same revision wins"
    );
    assert_eq!(winners[0].mod_revision, cx.rev(2));
    assert_eq!(
        cx.current().await,
        cx.rev(2),
        "only the winner bumps the revision"
    );

    let deletes = spawn_all(
        |store, key, _, expected| Box::pin(async move { store.delete(&key, Some(expected)).await }),
        cx.rev(2),
    );
    let mut deleted = 0;
    for task in deletes {
        match task.await.expect("delete task") {
            Ok(_) => deleted += 1,
            Err(StorageError::NotFound) => {}
            Err(other) => panic!("concurrent delete: expected Ok or NotFound, got {other:?}"),
        }
    }
    assert_eq!(deleted, 1, "exactly one delete wins");
    assert_eq!(cx.current().await, cx.rev(3));
}

type CaseWrite = Pin<Box<dyn Future<Output = Result<KeyValue, StorageError>> + Send>>;

// === helpers ===

/// A case's store, key prefix and starting revision.
struct Cx {
    store: Arc<dyn Storage>,
    /// The revision when the case started; the case's n-th write has revision `base + n`.
    base: Revision,
    /// `/conformance/<case>/`.
    prefix: Vec<u8>,
}

impl Cx {
    async fn new(store: Arc<dyn Storage>, case: &str) -> Self {
        let base = store.current_revision().await.expect("current_revision");
        Cx {
            store,
            base,
            prefix: format!("/conformance/{case}/").into_bytes(),
        }
    }

    fn key(&self, suffix: &str) -> Vec<u8> {
        self.key_bytes(suffix.as_bytes())
    }

    fn key_bytes(&self, suffix: &[u8]) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(suffix);
        key
    }

    /// A key just outside the case prefix (the prefix without its slash, then `-`).
    fn key_outside(&self, suffix: &str) -> Vec<u8> {
        let mut key = self.prefix[..self.prefix.len() - 1].to_vec();
        key.push(b'-');
        key.extend_from_slice(suffix.as_bytes());
        key
    }

    fn rev(&self, n: u64) -> Revision {
        Revision(self.base.0 + n)
    }

    async fn current(&self) -> Revision {
        self.store
            .current_revision()
            .await
            .expect("current_revision")
    }

    async fn create(&self, key: &[u8], value: &[u8]) -> KeyValue {
        self.store
            .create(key, value.to_vec())
            .await
            .expect("create")
    }

    async fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.store.get(key).await.expect("get")
    }

    async fn range(&self, request: RangeRequest) -> RangePage {
        let page = self.store.range(request.clone()).await;
        page.unwrap_or_else(|err| panic!("range {request:?}: {err}"))
    }

    async fn watch(&self, prefix: &[u8], after: Revision) -> WatchStream {
        let watch = self.store.watch(prefix, after).await;
        watch.unwrap_or_else(|err| panic!("watch after {after}: {err}"))
    }
}

fn kv(key: &[u8], value: &[u8], create_revision: Revision, mod_revision: Revision) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
    }
}

fn keys(page: &RangePage) -> Vec<Vec<u8>> {
    page.kvs.iter().map(|kv| kv.key.clone()).collect()
}

/// Reads a whole prefix `limit` keys at a time, checking each page's counts and revision.
async fn walk(cx: &Cx, prefix: Vec<u8>, revision: Option<Revision>, limit: usize) -> Vec<KeyValue> {
    let mut all: Vec<KeyValue> = Vec::new();
    let mut expected_remaining: Option<u64> = None;
    let mut page_revision = revision;
    loop {
        let start_after = all.last().map(|kv| kv.key.clone());
        let request = RangeRequest {
            prefix: prefix.clone(),
            start_after,
            limit,
            revision: page_revision,
        };
        let page = cx.range(request).await;
        assert!(
            page.kvs.len() <= limit,
            "a page holds at most `limit` keys: {page:?}"
        );
        assert_eq!(
            page.more,
            page.remaining > 0,
            "more is remaining > 0: {page:?}"
        );
        if let Some(expected) = expected_remaining {
            assert_eq!(
                page.kvs.len() as u64 + page.remaining,
                expected,
                "page counts add up: {page:?}"
            );
        }
        if let Some(revision) = page_revision {
            assert_eq!(
                page.revision, revision,
                "every page is read at the same revision"
            );
        }
        page_revision = Some(page.revision);
        expected_remaining = Some(page.remaining);
        let ascending = page.kvs.windows(2).all(|w| w[0].key < w[1].key);
        assert!(ascending, "keys ascend within a page: {page:?}");
        let more = page.more;
        all.extend(page.kvs);
        if !more {
            let unique: BTreeSet<_> = all.iter().map(|kv| kv.key.clone()).collect();
            assert_eq!(unique.len(), all.len(), "no key appears on two pages");
            return all;
        }
    }
}

/// The next event of `watch`, skipping progress notifications.
///
/// Panics if the stream ends, fails, or stays silent for [`WATCH_TIMEOUT`].
async fn next_event(watch: &mut WatchStream) -> Event {
    loop {
        match tokio::time::timeout(WATCH_TIMEOUT, watch.next()).await {
            Ok(Some(Ok(WatchItem::Event(event)))) => return event,
            Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
            Ok(Some(Err(err))) => panic!("watch failed while an event was expected: {err}"),
            Ok(None) => panic!("watch ended while an event was expected"),
            Err(_) => panic!("no watch event within {WATCH_TIMEOUT:?}"),
        }
    }
}

/// How long a case waits for an expected watch event.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);
