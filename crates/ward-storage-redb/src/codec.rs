//! Byte formats of the `kv` and `log` tables.
//!
//! Both are written and read only by this crate; the format version lives in the `meta` table
//! (`format`), and any change here must bump [`FORMAT_VERSION`]. Integers are little-endian.
//!
//! ```text
//! kv value:   create_revision u64 | mod_revision u64 | value bytes (the rest)
//! log value:  kind u8 (0 = put, 1 = delete) | key_len u64 | key
//!             put only:  create_revision u64 | value_len u64 | value
//!             prev u8 (0 = none, 1 = some)
//!             if some:   create_revision u64 | mod_revision u64 | value_len u64 | value
//! ```
//!
//! A log entry's `mod_revision` is its table key (the revision of the change). A delete stores no
//! new value: its `kv` is `prev` with `mod_revision` set to the delete's revision.
//!
//! Decoding never panics: a short or malformed record is a [`StorageError::Backend`] that names
//! the table and revision, never the bytes.

use ward_storage::{Event, EventKind, KeyValue, Revision, StorageError};

/// The version of the byte formats below, stored in `meta` when a database is created.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// Encodes a live key's value for the `kv` table.
pub(crate) fn encode_stored(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + kv.value.len());
    out.extend_from_slice(&kv.create_revision.0.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.0.to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a `kv` table value stored under `key`.
///
/// `Err(Backend)` if the record is shorter than its header.
pub(crate) fn decode_stored(key: &[u8], bytes: &[u8]) -> Result<KeyValue, StorageError> {
    let mut reader = Reader(bytes);
    let decoded = (|| {
        let create_revision = Revision(reader.u64()?);
        let mod_revision = Revision(reader.u64()?);
        Some(KeyValue {
            key: key.to_vec(),
            value: reader.rest().to_vec(),
            create_revision,
            mod_revision,
        })
    })();
    decoded.ok_or_else(|| StorageError::backend("corrupt record in the redb kv table"))
}

/// Encodes an event for the `log` table (keyed by `event.kv.mod_revision`).
pub(crate) fn encode_event(event: &Event) -> Vec<u8> {
    let prev_len = event.prev.as_ref().map_or(0, |p| 24 + p.value.len());
    let mut out = Vec::with_capacity(34 + event.kv.key.len() + event.kv.value.len() + prev_len);
    match event.kind {
        EventKind::Put => out.push(KIND_PUT),
        EventKind::Delete => out.push(KIND_DELETE),
    }
    put_bytes(&mut out, &event.kv.key);
    if event.kind == EventKind::Put {
        out.extend_from_slice(&event.kv.create_revision.0.to_le_bytes());
        put_bytes(&mut out, &event.kv.value);
    }
    match &event.prev {
        None => out.push(0),
        Some(prev) => {
            out.push(1);
            out.extend_from_slice(&prev.create_revision.0.to_le_bytes());
            out.extend_from_slice(&prev.mod_revision.0.to_le_bytes());
            put_bytes(&mut out, &prev.value);
        }
    }
    out
}

/// Decodes the `log` table record of the change at `revision`.
///
/// `Err(Backend)` if the record is malformed, has trailing bytes, or is a delete without `prev`.
pub(crate) fn decode_event(revision: u64, bytes: &[u8]) -> Result<Event, StorageError> {
    decode_event_inner(revision, bytes).ok_or_else(|| {
        StorageError::backend(format!(
            "corrupt record in the redb log table at revision {revision}"
        ))
    })
}

// === helpers ===

const KIND_PUT: u8 = 0;
const KIND_DELETE: u8 = 1;

fn decode_event_inner(revision: u64, bytes: &[u8]) -> Option<Event> {
    let mut reader = Reader(bytes);
    let kind = reader.u8()?;
    let key = reader.bytes()?.to_vec();
    let put = match kind {
        KIND_PUT => {
            let create_revision = Revision(reader.u64()?);
            let value = reader.bytes()?.to_vec();
            Some((create_revision, value))
        }
        KIND_DELETE => None,
        _ => return None,
    };
    let prev = match reader.u8()? {
        0 => None,
        1 => Some(KeyValue {
            key: key.clone(),
            create_revision: Revision(reader.u64()?),
            mod_revision: Revision(reader.u64()?),
            value: reader.bytes()?.to_vec(),
        }),
        _ => return None,
    };
    if !reader.rest().is_empty() {
        return None;
    }
    let mod_revision = Revision(revision);
    let (kind, kv) = match put {
        Some((create_revision, value)) => (
            EventKind::Put,
            KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
            },
        ),
        None => {
            let prev = prev.as_ref()?;
            let kv = KeyValue {
                key,
                value: prev.value.clone(),
                create_revision: prev.create_revision,
                mod_revision,
            };
            (EventKind::Delete, kv)
        }
    };
    Some(Event { kind, kv, prev })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over a record; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        self.take(len)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &[u8], value: &[u8], create: u64, modified: u64) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: Revision(create),
            mod_revision: Revision(modified),
        }
    }

    #[test]
    fn stored_round_trip() {
        let original = kv(b"/k", b"\x00\xffvalue", 3, 7);
        let bytes = encode_stored(&original);
        assert_eq!(decode_stored(b"/k", &bytes).unwrap(), original);
        assert_eq!(
            decode_stored(b"/k", &encode_stored(&kv(b"/k", b"", 1, 1)))
                .unwrap()
                .value,
            b""
        );
    }

    #[test]
    fn event_round_trip() {
        let events = [
            Event {
                kind: EventKind::Put,
                kv: kv(b"/a", b"v1", 4, 4),
                prev: None,
            },
            Event {
                kind: EventKind::Put,
                kv: kv(b"/a", b"v2", 4, 9),
                prev: Some(kv(b"/a", b"v1", 4, 4)),
            },
            Event {
                kind: EventKind::Delete,
                kv: kv(b"/a", b"v2", 4, 10),
                prev: Some(kv(b"/a", b"v2", 4, 9)),
            },
            Event {
                kind: EventKind::Put,
                kv: kv(b"", b"", 11, 11),
                prev: None,
            },
        ];
        for event in events {
            let bytes = encode_event(&event);
            assert_eq!(
                decode_event(event.kv.mod_revision.0, &bytes).unwrap(),
                event
            );
        }
    }

    #[test]
    fn malformed_records_are_errors_without_bytes() {
        assert!(decode_stored(b"/k", &[1, 2, 3]).is_err());
        let event = Event {
            kind: EventKind::Put,
            kv: kv(b"/a", b"SECRET", 1, 2),
            prev: Some(kv(b"/a", b"SECRET", 1, 1)),
        };
        let bytes = encode_event(&event);
        for cut in 0..bytes.len() {
            let err = decode_event(2, &bytes[..cut]).unwrap_err();
            assert!(!err.to_string().contains("SECRET"));
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_event(2, &trailing).is_err());
        let mut bad_kind = bytes;
        bad_kind[0] = 9;
        assert!(decode_event(2, &bad_kind).is_err());
        // A delete must carry the value it deleted.
        let delete_without_prev = [KIND_DELETE, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(decode_event(3, &delete_without_prev).is_err());
    }
}
