//! The corpus of public real-world manifests (tests/fixtures/corpus, sources in SOURCES.md):
//! each file scanned alone, with every finding it must produce and nothing else.

use ward_scan::Scanner;

use crate::fixtures;

/// `rule severity Kind/name path` of every finding of one corpus file, in report order.
fn findings(file: &str) -> Vec<String> {
    let mut scanner = Scanner::new();
    let text = std::fs::read_to_string(fixtures().join("corpus").join(file)).unwrap();
    scanner.add_str(file, &text).unwrap();
    scanner
        .finish()
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {}/{} {}",
                f.rule,
                f.severity,
                f.resource.kind,
                f.resource.name.as_deref().unwrap_or("-"),
                f.path
            )
        })
        .collect()
}

/// Every corpus file and the findings it must produce, worst first (the report's order).
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "argo-cd-application-controller-clusterrole.yaml",
        &[
            "rbac-escalation high ClusterRole/argocd-application-controller rules[0]",
            "rbac-secret-read high ClusterRole/argocd-application-controller rules[0]",
        ],
    ),
    (
        "argo-cd-server-clusterrole.yaml",
        &[
            // patch on every resource: RBAC objects included.
            "rbac-escalation high ClusterRole/argocd-server rules[0]",
            // patch on Deployments and Pods: a changed template mounts any Secret.
            "rbac-implied-secret-access medium ClusterRole/argocd-server rules[0]",
            // get (not list) on every resource: Secrets one name at a time.
            "rbac-secret-read medium ClusterRole/argocd-server rules[0]",
        ],
    ),
    (
        "ingress-nginx-deploy.yaml",
        &[
            "rbac-secret-read high Role/ingress-nginx rules[1]",
            "rbac-secret-read high ClusterRole/ingress-nginx rules[0]",
            "rbac-secret-read medium Role/ingress-nginx-admission rules[0]",
            "sa-token-automount low ServiceAccount/ingress-nginx automountServiceAccountToken",
            "sa-token-automount low ServiceAccount/ingress-nginx-admission \
             automountServiceAccountToken",
            "sa-token-automount low Deployment/ingress-nginx-controller \
             spec.template.spec.automountServiceAccountToken",
            // The webhook certificate's volume keeps the default mode, 0644.
            "secret-file-mode low Deployment/ingress-nginx-controller \
             spec.template.spec.volumes[0].secret",
            "sa-token-automount low Job/ingress-nginx-admission-create \
             spec.template.spec.automountServiceAccountToken",
            "sa-token-automount low Job/ingress-nginx-admission-patch \
             spec.template.spec.automountServiceAccountToken",
        ],
    ),
    (
        "kube-prometheus-nodeExporter-daemonset.yaml",
        &[
            "hostpath-mount critical DaemonSet/node-exporter \
             spec.template.spec.volumes[1].hostPath.path",
            "privileged-node-access high DaemonSet/node-exporter spec.template.spec.hostPID",
            "hostpath-mount high DaemonSet/node-exporter spec.template.spec.volumes[0].hostPath.path",
            "privileged-node-access medium DaemonSet/node-exporter spec.template.spec.hostNetwork",
            "sa-token-automount low DaemonSet/node-exporter \
             spec.template.spec.automountServiceAccountToken",
        ],
    ),
    (
        "kubernetes-examples-mysql-deployment.yaml",
        &[
            "secret-env-var medium Deployment/wordpress-mysql \
             spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef",
            "sa-token-automount low Deployment/wordpress-mysql \
             spec.template.spec.automountServiceAccountToken",
        ],
    ),
    (
        "kubernetes-examples-wordpress-deployment.yaml",
        &[
            "secret-env-var medium Deployment/wordpress \
             spec.template.spec.containers[0].env[1].valueFrom.secretKeyRef",
            "sa-token-automount low Deployment/wordpress \
             spec.template.spec.automountServiceAccountToken",
        ],
    ),
];

#[test]
fn each_corpus_file_has_exactly_its_expected_findings() {
    for (file, expected) in EXPECTED {
        assert_eq!(findings(file), *expected, "{file}");
    }
}

/// A file added to the corpus without its expected findings, or without its source in
/// SOURCES.md, fails here.
#[test]
fn every_corpus_file_is_expected_and_sourced() {
    let dir = fixtures().join("corpus");
    let sources = std::fs::read_to_string(dir.join("SOURCES.md")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let expected: Vec<&str> = EXPECTED.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, expected);
    for file in files {
        assert!(
            sources.contains(&format!("`{file}`")),
            "{file} is not in SOURCES.md"
        );
    }
}

/// The whole corpus in one scan (as `ward scan corpus/` would): the same findings, no more
/// (the files share no objects), and nothing skipped.
#[test]
fn whole_corpus_in_one_scan() {
    let report = crate::scan_fixtures(&["corpus"]);
    let total: usize = EXPECTED.iter().map(|(_, e)| e.len()).sum();
    assert_eq!(report.findings.len(), total);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}
