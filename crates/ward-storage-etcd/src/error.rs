//! How etcd's errors become the contract's.
//!
//! etcd reports compaction and future revisions as gRPC `OutOfRange` statuses whose message is
//! the only thing telling them apart, so they are recognized by message (the texts have been the
//! same since etcd 3.0). Callers that asked for a revision turn them into
//! [`StorageError::Compacted`]/[`StorageError::FutureRevision`] after fetching the revision etcd
//! leaves out; every other error becomes [`StorageError::Backend`]. etcd's messages name keys at
//! most, never values, and the request's bytes are never added to them.

use ward_storage::StorageError;

/// A failed etcd call, sorted by what the caller may do about it.
#[derive(Debug)]
pub(crate) enum Failure {
    /// "mvcc: required revision has been compacted".
    Compacted,
    /// "mvcc: required revision is a future revision".
    FutureRevision,
    /// Anything else, already mapped.
    Other(StorageError),
}

impl Failure {
    /// Sorts the error of the etcd call `op` (e.g. `range`).
    pub(crate) fn classify(op: &str, err: &etcd_client::Error) -> Failure {
        match err {
            etcd_client::Error::GRpcStatus(status) => {
                let message = status.message();
                if message.contains(COMPACTED) {
                    Failure::Compacted
                } else if message.contains(FUTURE_REVISION) {
                    Failure::FutureRevision
                } else {
                    Failure::Other(StorageError::backend(format!(
                        "etcd {op}: {:?}: {message}",
                        status.code()
                    )))
                }
            }
            other => Failure::Other(StorageError::backend(format!("etcd {op}: {other}"))),
        }
    }

    /// The error for a call that asked for no revision, so compaction errors are unexpected.
    pub(crate) fn into_error(self, op: &str) -> StorageError {
        match self {
            Failure::Compacted => {
                StorageError::backend(format!("etcd {op}: unexpected reply: {COMPACTED}"))
            }
            Failure::FutureRevision => {
                StorageError::backend(format!("etcd {op}: unexpected reply: {FUTURE_REVISION}"))
            }
            Failure::Other(err) => err,
        }
    }
}

/// etcd's `mvcc.ErrCompacted` text.
const COMPACTED: &str = "required revision has been compacted";
/// etcd's `mvcc.ErrFutureRev` text.
const FUTURE_REVISION: &str = "required revision is a future revision";
