//! EncryptionConfiguration, kube-apiserver and etcd rules.

use ward_scan::{Rule, Severity, Threat};

use crate::{fires, of, scan, scan_fixtures, silent};

fn config(resources: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n{resources}"
    )
}

#[test]
fn identity_first_in_any_block() {
    let text = config(
        "
  - resources: [configmaps]
    providers:
      - secretbox: {keys: [{name: k1, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]}
  - resources: [secrets]
    providers:
      - identity: {}
      - secretbox: {keys: [{name: k1, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]}
  - resources: [leases.coordination.k8s.io]
    providers:
      - identity: {}
      - aesgcm: {keys: [{name: k1, secret: AAECAwQFBgcICQoLDA0ODw==}]}
  - resources: [events]
    providers:
      - identity: {}
",
    );
    let found = fires(&text, Rule::EncryptionIdentityFirst, 3);
    let summary: Vec<(&str, Severity)> = found
        .iter()
        .map(|f| (f.path.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            ("resources[1].providers[0]", Severity::Critical),
            ("resources[2].providers[0]", Severity::Medium),
            ("resources[3].providers[0]", Severity::Low),
        ]
    );
    assert!(
        found[0]
            .message
            .contains("Secrets are written to etcd in plaintext")
    );
    assert_eq!(found[0].threat, Threat::AtRest);
    assert_eq!(found[0].line, Some(10));
    silent(&text, Rule::EncryptionResourceUncovered);
}

#[test]
fn secrets_uncovered_and_wildcards() {
    let found = fires(
        &config("  - resources: [configmaps]\n    providers: [{secretbox: {keys: []}}]\n"),
        Rule::EncryptionResourceUncovered,
        1,
    );
    assert_eq!(found[0].severity, Severity::High);
    assert_eq!(found[0].path, "resources");
    for covering in ["secrets", "\"*.\"", "\"*.*\""] {
        silent(
            &config(&format!(
                "  - resources: [{covering}]\n    providers: [{{secretbox: {{keys: []}}}}]\n"
            )),
            Rule::EncryptionResourceUncovered,
        );
    }
}

#[test]
fn weak_providers() {
    let text = config(
        "
  - resources: [secrets]
    providers:
      - aesgcm: {keys: [{name: k2, secret: AAECAwQFBgcICQoLDA0ODw==}]}
      - aescbc: {keys: [{name: k1, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]}
      - kms: {name: old, endpoint: unix:///tmp/kms.sock}
      - identity: {}
  - resources: [configmaps]
    providers:
      - kms: {apiVersion: v2, name: vault, endpoint: unix:///tmp/v.sock}
      - kms: {apiVersion: v1, name: legacy, endpoint: unix:///tmp/l.sock, cachesize: 100}
",
    );
    let found = fires(&text, Rule::EncryptionWeakProvider, 4);
    let summary: Vec<(&str, Severity)> = found
        .iter()
        .map(|f| (f.path.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            ("resources[0].providers[0]", Severity::Medium),
            ("resources[0].providers[1]", Severity::Low),
            ("resources[0].providers[2]", Severity::Low),
            ("resources[1].providers[1]", Severity::Low),
        ]
    );
    assert!(found[0].message.contains("200,000 writes"));
    assert!(found[1].message.contains("aescbc"));
    assert!(found[2].message.contains("kms v1"));
    silent(
        &config(
            "  - resources: [secrets]\n    providers:\n      - kms: {apiVersion: v2, name: v, endpoint: unix:///v.sock}\n      - secretbox: {keys: []}\n",
        ),
        Rule::EncryptionWeakProvider,
    );
}

#[test]
fn kubeadm_control_plane_with_static_key_is_colocated() {
    let report = scan_fixtures(&["control-plane"]);
    let colocated = of(&report, Rule::EncryptionKeyColocated);
    assert_eq!(colocated.len(), 1, "{:#?}", report.findings);
    let f = colocated[0];
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.resource.kind, "EncryptionConfiguration");
    assert!(
        f.message.contains("static-key provider aescbc"),
        "{}",
        f.message
    );
    assert!(f.message.contains("kube-apiserver ("), "{}", f.message);
    assert!(f.message.contains("manifests/etcd.yaml:"), "{}", f.message);
    assert!(f.message.contains("static pod directory"), "{}", f.message);
    // The kubeadm flags are secure: TLS and client certificates both ways, encryption on.
    assert!(of(&report, Rule::EtcdTransportInsecure).is_empty());
    assert!(of(&report, Rule::EncryptionMissing).is_empty());
    assert_eq!(of(&report, Rule::EncryptionWeakProvider).len(), 1);
    assert_eq!(of(&report, Rule::AuditLogsSecretValues).len(), 1);
}

const APISERVER: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver-cp-1, namespace: kube-system}
spec:
  nodeName: cp-1
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.32.4
    command:
    - kube-apiserver
    - --encryption-provider-config=/etc/kubernetes/enc.yaml
    - --etcd-servers=https://10.0.0.10:2379
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
";

const ETCD: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: etcd-cp-1, namespace: kube-system}
spec:
  nodeName: cp-1
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.5.16-0
    command: [etcd, --listen-client-urls=https://10.0.0.10:2379, --cert-file=/p/server.crt, --key-file=/p/server.key, --client-cert-auth=true, --trusted-ca-file=/p/ca.crt]
";

const SECRETBOX: &str = "\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - secretbox: {keys: [{name: k1, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]}
";

#[test]
fn colocation_through_node_name_in_a_dump() {
    let report = scan(&[
        ("pods.yaml", &format!("{APISERVER}---\n{ETCD}")),
        ("enc.yaml", SECRETBOX),
    ]);
    let found = of(&report, Rule::EncryptionKeyColocated);
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("node \"cp-1\""));
    assert!(found[0].message.contains("secretbox"));
    assert!(
        of(&report, Rule::EtcdTransportInsecure).is_empty(),
        "{:#?}",
        report.findings
    );
}

#[test]
fn no_colocation_on_separate_nodes_or_with_kms() {
    let other_node = ETCD.replace("nodeName: cp-1", "nodeName: etcd-1");
    let report = scan(&[
        ("a/pods.yaml", APISERVER),
        ("b/etcd.yaml", &other_node),
        ("enc.yaml", SECRETBOX),
    ]);
    assert!(of(&report, Rule::EncryptionKeyColocated).is_empty());
    let kms = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers: [{kms: {apiVersion: v2, name: k, endpoint: unix:///k.sock}}]\n";
    let report = scan(&[
        ("pods.yaml", &format!("{APISERVER}---\n{ETCD}")),
        ("enc.yaml", kms),
    ]);
    assert!(of(&report, Rule::EncryptionKeyColocated).is_empty());
}

#[test]
fn encryption_missing() {
    let without = APISERVER.replace(
        "    - --encryption-provider-config=/etc/kubernetes/enc.yaml\n",
        "",
    );
    let found = fires(&without, Rule::EncryptionMissing, 1);
    assert_eq!(found[0].severity, Severity::High);
    assert_eq!(found[0].path, "spec.containers[0].command");
    assert_eq!(found[0].line, Some(9));
    silent(APISERVER, Rule::EncryptionMissing);
    // Not a kube-apiserver.
    silent(ETCD, Rule::EncryptionMissing);
}

#[test]
fn apiserver_to_etcd_transport() {
    let http = APISERVER
        .replace("https://10.0.0.10:2379", "http://10.0.0.10:2379")
        .replace(
            "    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key\n",
            "",
        );
    let found = fires(&http, Rule::EtcdTransportInsecure, 1);
    assert_eq!(found[0].threat, Threat::InTransit);
    assert!(
        found[0].message.contains("http:// (no TLS)"),
        "{}",
        found[0].message
    );
    assert!(
        found[0].message.contains("no --etcd-keyfile"),
        "{}",
        found[0].message
    );
    assert!(!found[0].message.contains("10.0.0.10"));
    let no_ca = APISERVER.replace("    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt\n", "");
    let found = fires(&no_ca, Rule::EtcdTransportInsecure, 1);
    assert!(found[0].message.contains("no --etcd-cafile"));
}

#[test]
fn etcd_without_client_cert_auth_or_tls() {
    let text = "\
apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  containers:
  - name: etcd
    image: quay.io/coreos/etcd:v3.5.16
    command: [/bin/sh, -c, \"exec /usr/local/bin/etcd --listen-client-urls=http://0.0.0.0:2379 --advertise-client-urls=http://etcd:2379 --listen-peer-urls=http://0.0.0.0:2380\"]
";
    let found = fires(text, Rule::EtcdTransportInsecure, 1);
    assert_eq!(found[0].severity, Severity::High);
    for part in [
        "http:// on a non-loopback",
        "--client-cert-auth is not true",
        "peers talk over http://",
    ] {
        assert!(
            found[0].message.contains(part),
            "{part}: {}",
            found[0].message
        );
    }
    let loopback_only = ETCD.replace("https://10.0.0.10:2379", "http://127.0.0.1:2379");
    let found = fires(&loopback_only, Rule::EtcdTransportInsecure, 1);
    assert_eq!(found[0].severity, Severity::Medium);
    silent(ETCD, Rule::EtcdTransportInsecure);
}
