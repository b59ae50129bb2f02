//! A property test: random operation sequences, with reopens, against a `BTreeMap` model of the
//! contract (revisions, conditional writes, ranges at old revisions, compaction, watch replay).

use std::collections::BTreeMap;

use proptest::prelude::*;
use ward_storage::{
    Event, EventKind, KeyValue, RangePage, RangeRequest, Revision, Storage, StorageError,
};

use super::{TestDb, next_event};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn redb_matches_the_model(
        history in prop_oneof![Just(0usize), Just(4), Just(10_000)],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(history, ops))?;
    }
}

async fn check(history: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let db = TestDb::new();
    let mut store = db.open(history);
    let mut model = Model::new(history as u64);
    for op in ops {
        match op {
            Op::Create { key, value } => {
                let key = KEYS[key];
                let got = store.create(key, vec![value]).await;
                prop_assert_eq!(outcome(got), model.create(key, value), "create");
            }
            Op::Update {
                key,
                value,
                expected,
            } => {
                let key = KEYS[key];
                let expected = model.expected(key, expected);
                let got = store.update(key, vec![value], expected).await;
                prop_assert_eq!(outcome(got), model.update(key, value, expected), "update");
            }
            Op::Delete { key, expected } => {
                let key = KEYS[key];
                let expected = expected.map(|e| model.expected(key, e));
                let got = store.delete(key, expected).await;
                prop_assert_eq!(outcome(got), model.delete(key, expected), "delete");
            }
            Op::Get { key } => {
                let got = store.get(KEYS[key]).await.unwrap();
                prop_assert_eq!(got.as_ref(), model.kv.get(KEYS[key]), "get");
            }
            Op::Range {
                prefix,
                start_after,
                limit,
                at,
            } => {
                let request = RangeRequest {
                    prefix: PREFIXES[prefix].to_vec(),
                    start_after: start_after.map(|k| KEYS[k].to_vec()),
                    limit,
                    revision: at
                        .map(|offset| Revision(model.revision.saturating_add_signed(offset))),
                };
                let got = store.range(request.clone()).await;
                prop_assert_eq!(outcome(got), model.range(&request), "range {:?}", request);
            }
            Op::Compact { offset } => {
                let revision = Revision(model.revision.saturating_add_signed(offset));
                let got = store.compact(revision).await;
                prop_assert_eq!(outcome(got), model.compact(revision), "compact");
            }
            Op::Reopen => {
                drop(store);
                store = db.open(history);
            }
        }
        prop_assert_eq!(
            store.current_revision().await.unwrap(),
            Revision(model.revision)
        );
        prop_assert_eq!(
            store.compacted_revision().await.unwrap(),
            Revision(model.compacted)
        );
    }

    // The retained history replays exactly, under every prefix, then follows live.
    for prefix in PREFIXES {
        let mut watch = store
            .watch(prefix, Revision(model.compacted))
            .await
            .unwrap();
        let expected = model
            .events
            .iter()
            .filter(|e| e.kv.mod_revision.0 > model.compacted && e.kv.key.starts_with(prefix));
        for event in expected {
            prop_assert_eq!(&next_event(&mut watch).await, event);
        }
        let mut marker = prefix.to_vec();
        marker.extend_from_slice(b"~marker");
        let kv = store.create(&marker, vec![0]).await.unwrap();
        prop_assert_eq!(Ok(kv.clone()), model.create(&marker, 0));
        prop_assert_eq!(
            next_event(&mut watch).await.kv,
            kv,
            "nothing after the replay but live"
        );
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        key: usize,
        value: u8,
    },
    Update {
        key: usize,
        value: u8,
        expected: Expect,
    },
    Delete {
        key: usize,
        expected: Option<Expect>,
    },
    Get {
        key: usize,
    },
    /// `at`: read at the current revision plus this offset.
    Range {
        prefix: usize,
        start_after: Option<usize>,
        limit: usize,
        at: Option<i64>,
    },
    /// Compact at the current revision plus `offset`.
    Compact {
        offset: i64,
    },
    Reopen,
}

/// The revision a conditional write expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The key's `mod_revision` (0 when absent).
    Current,
    /// This revision.
    Fixed(u64),
}

const KEYS: [&[u8]; 5] = [b"/a/1", b"/a/2", b"/a/3", b"/ab/1", b"/b"];
const PREFIXES: [&[u8]; 6] = [b"", b"/a/", b"/ab/", b"/a", b"/b", b"/c"];

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let expect = prop_oneof![3 => Just(Expect::Current), 1 => (0u64..12).prop_map(Expect::Fixed)];
    prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(key, value)| Op::Create { key, value }),
        4 => (key.clone(), any::<u8>(), expect.clone())
            .prop_map(|(key, value, expected)| Op::Update { key, value, expected }),
        2 => (key.clone(), proptest::option::of(expect))
            .prop_map(|(key, expected)| Op::Delete { key, expected }),
        1 => key.clone().prop_map(|key| Op::Get { key }),
        4 => (
            0..PREFIXES.len(),
            proptest::option::of(key),
            0usize..4,
            proptest::option::of(-8i64..=1),
        )
            .prop_map(|(prefix, start_after, limit, at)| Op::Range { prefix, start_after, limit, at }),
        1 => (-6i64..=1).prop_map(|offset| Op::Compact { offset }),
        1 => Just(Op::Reopen),
    ]
}

/// A comparable outcome: the value, or the error with its fields.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    AlreadyExists(KeyValue),
    Compacted(Revision, Revision),
    Conflict(KeyValue),
    FutureRevision(Revision, Revision),
    NotFound,
    Other(String),
}

fn outcome<T>(result: Result<T, StorageError>) -> Result<T, Failure> {
    result.map_err(|err| match err {
        StorageError::AlreadyExists { existing } => Failure::AlreadyExists(*existing),
        StorageError::Compacted {
            requested,
            compacted,
        } => Failure::Compacted(requested, compacted),
        StorageError::Conflict { current } => Failure::Conflict(*current),
        StorageError::FutureRevision { requested, current } => {
            Failure::FutureRevision(requested, current)
        }
        StorageError::NotFound => Failure::NotFound,
        other => Failure::Other(other.to_string()),
    })
}

/// The contract, in memory.
struct Model {
    history: u64,
    revision: u64,
    compacted: u64,
    kv: BTreeMap<Vec<u8>, KeyValue>,
    /// `snapshots[r]` is the state at revision `r`.
    snapshots: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    /// `events[r - 1]` is the change at revision `r`.
    events: Vec<Event>,
}

impl Model {
    fn new(history: u64) -> Self {
        Model {
            history,
            revision: 0,
            compacted: 0,
            kv: BTreeMap::new(),
            snapshots: vec![BTreeMap::new()],
            events: Vec::new(),
        }
    }

    fn expected(&self, key: &[u8], expect: Expect) -> Revision {
        match expect {
            Expect::Current => self.kv.get(key).map_or(Revision(0), |kv| kv.mod_revision),
            Expect::Fixed(revision) => Revision(revision),
        }
    }

    fn create(&mut self, key: &[u8], value: u8) -> Result<KeyValue, Failure> {
        if let Some(existing) = self.kv.get(key) {
            return Err(Failure::AlreadyExists(existing.clone()));
        }
        let revision = Revision(self.revision + 1);
        let kv = KeyValue {
            key: key.to_vec(),
            value: vec![value],
            create_revision: revision,
            mod_revision: revision,
        };
        self.commit(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev: None,
        });
        Ok(kv)
    }

    fn update(&mut self, key: &[u8], value: u8, expected: Revision) -> Result<KeyValue, Failure> {
        let current = self.kv.get(key).ok_or(Failure::NotFound)?.clone();
        if current.mod_revision != expected {
            return Err(Failure::Conflict(current));
        }
        let kv = KeyValue {
            value: vec![value],
            mod_revision: Revision(self.revision + 1),
            ..current.clone()
        };
        self.commit(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev: Some(current),
        });
        Ok(kv)
    }

    fn delete(&mut self, key: &[u8], expected: Option<Revision>) -> Result<KeyValue, Failure> {
        let current = self.kv.get(key).ok_or(Failure::NotFound)?.clone();
        if expected.is_some_and(|expected| expected != current.mod_revision) {
            return Err(Failure::Conflict(current));
        }
        let kv = KeyValue {
            mod_revision: Revision(self.revision + 1),
            ..current.clone()
        };
        self.commit(Event {
            kind: EventKind::Delete,
            kv: kv.clone(),
            prev: Some(current),
        });
        Ok(kv)
    }

    fn commit(&mut self, event: Event) {
        self.revision += 1;
        match event.kind {
            EventKind::Put => self.kv.insert(event.kv.key.clone(), event.kv.clone()),
            EventKind::Delete => self.kv.remove(&event.kv.key),
        };
        self.snapshots.push(self.kv.clone());
        self.events.push(event);
        if self.history > 0 && self.revision > self.history {
            self.compacted = self.compacted.max(self.revision - self.history);
        }
    }

    fn range(&self, request: &RangeRequest) -> Result<RangePage, Failure> {
        let revision = match request.revision {
            None => self.revision,
            Some(r) if r.0 > self.revision => {
                return Err(Failure::FutureRevision(r, Revision(self.revision)));
            }
            Some(r) if r.0 <= self.compacted => {
                return Err(Failure::Compacted(r, Revision(self.compacted)));
            }
            Some(r) => r.0,
        };
        let matching: Vec<KeyValue> = self.snapshots[revision as usize]
            .values()
            .filter(|kv| kv.key.starts_with(&request.prefix))
            .filter(|kv| {
                request
                    .start_after
                    .as_ref()
                    .is_none_or(|after| kv.key > *after)
            })
            .cloned()
            .collect();
        let take = if request.limit == 0 {
            matching.len()
        } else {
            request.limit.min(matching.len())
        };
        let remaining = (matching.len() - take) as u64;
        Ok(RangePage {
            kvs: matching[..take].to_vec(),
            more: remaining > 0,
            remaining,
            revision: Revision(revision),
        })
    }

    fn compact(&mut self, revision: Revision) -> Result<(), Failure> {
        if revision.0 > self.revision {
            return Err(Failure::FutureRevision(revision, Revision(self.revision)));
        }
        self.compacted = self.compacted.max(revision.0);
        Ok(())
    }
}
