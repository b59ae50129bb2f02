//! TLS to etcd with client certificates, as kube-apiserver's `--etcd-cafile`/`--etcd-certfile`/
//! `--etcd-keyfile` set it up, and the errors of bad TLS options.

use std::time::Duration;

use futures_util::StreamExt;
use ward_storage::{Storage, WatchItem};
use ward_storage_etcd::{EtcdOptions, EtcdStorage};

use crate::kit::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_works_and_a_client_without_a_certificate_is_refused() {
    let etcd = Etcd::start_tls().await;
    let store = etcd.connect().await;
    let start = store.current_revision().await.expect("current revision");
    let mut watch = store.watch(b"/tls/", start).await.expect("watch");
    let created = store
        .create(b"/tls/a", b"v".to_vec())
        .await
        .expect("create");
    assert_eq!(
        store.get(b"/tls/a").await.expect("get"),
        Some(created.clone())
    );
    let event = loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(WatchItem::Event(event)))) => break event,
            Ok(Some(Ok(WatchItem::Progress(_)))) => {}
            other => panic!("watch over TLS: {other:?}"),
        }
    };
    assert_eq!(event.kv, created);

    let no_client_cert = EtcdOptions {
        cert_file: None,
        key_file: None,
        dial_timeout: Duration::from_secs(3),
        ..etcd.options()
    };
    let refused = EtcdStorage::connect(no_client_cert).await;
    assert!(
        refused.is_err(),
        "etcd with --client-cert-auth needs a client certificate"
    );

    let wrong_ca = EtcdOptions {
        // The client certificate is not a CA of etcd's serving certificate.
        ca_file: Some(etcd.pki().client_cert.clone()),
        dial_timeout: Duration::from_secs(3),
        ..etcd.options()
    };
    assert!(
        EtcdStorage::connect(wrong_ca).await.is_err(),
        "etcd's certificate must chain to the given CA"
    );
}

#[tokio::test]
async fn tls_option_errors_name_the_flag_and_never_the_content() {
    const CANARY: &str = "CANARY-91c2-private-key-bytes";
    let dir = tempfile::tempdir().expect("temporary folder");
    let key = dir.path().join("client.key");
    let cert = dir.path().join("client.crt");
    std::fs::write(&key, CANARY).expect("write key");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write cert");
    let base = EtcdOptions {
        endpoints: vec!["https://127.0.0.1:1".into()],
        dial_timeout: Duration::from_millis(200),
        ..EtcdOptions::default()
    };

    let cases = [
        (
            EtcdOptions {
                cert_file: Some(cert.clone()),
                key_file: Some(key.clone()),
                ..base.clone()
            },
            "--etcd-keyfile",
        ),
        (
            EtcdOptions {
                cert_file: Some(cert.clone()),
                ..base.clone()
            },
            "--etcd-keyfile",
        ),
        (
            EtcdOptions {
                ca_file: Some(dir.path().join("missing.crt")),
                ..base.clone()
            },
            "--etcd-cafile",
        ),
        (base.clone(), "--etcd-cafile"),
        (
            EtcdOptions {
                endpoints: Vec::new(),
                ..base.clone()
            },
            "--etcd-servers",
        ),
    ];
    for (options, flag) in cases {
        let shown = format!("{options:?}");
        assert!(!shown.contains(CANARY), "options Debug shows file content");
        let err = EtcdStorage::connect(options)
            .await
            .expect_err("bad TLS options fail");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(flag), "the error names {flag}: {shown}");
        assert!(
            !shown.contains(CANARY),
            "the error shows file content: {shown}"
        );
    }
}
