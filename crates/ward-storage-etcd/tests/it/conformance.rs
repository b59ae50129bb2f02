//! The storage conformance suite, every case in turn on one etcd.

use std::sync::Arc;

use ward_storage::Storage;

use crate::kit::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_case_passes_on_etcd() {
    let etcd = Etcd::start().await;
    let store: Arc<dyn Storage> = Arc::new(etcd.connect().await);
    // Cases write only under /conformance/<case>/ and count revisions from their start, so they
    // can share one etcd.
    for case in ward_storage::testing::cases() {
        case.run(Arc::clone(&store)).await;
    }
}
