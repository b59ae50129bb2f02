//! Pod-spec rules across workload kinds.

use ward_scan::{Rule, Severity, Threat};

use crate::{fires, of, scan_fixtures, silent};

/// The seed threat model's Deployment must be flagged `secret-env-var`.
#[test]
fn seed_deployment_reading_api_key_from_secret_key_ref() {
    let report = scan_fixtures(&["seed-deployment.yaml"]);
    let found = of(&report, Rule::SecretEnvVar);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let f = found[0];
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.threat, Threat::Node);
    assert_eq!(f.resource.api_version.as_deref(), Some("apps/v1"));
    assert_eq!(f.resource.kind, "Deployment");
    assert_eq!(f.resource.namespace.as_deref(), Some("default"));
    assert_eq!(f.resource.name.as_deref(), Some("my-app"));
    assert_eq!(
        f.path,
        "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef"
    );
    assert_eq!(f.line, Some(24));
    assert!(f.file.ends_with("seed-deployment.yaml"));
    assert!(f.message.contains("\"API_KEY\""), "{}", f.message);
    assert!(f.message.contains("\"my-api-secret\""), "{}", f.message);
    assert!(f.fix.contains("volume"));
}

fn workload(kind: &str, api_version: &str, pod_spec: &str) -> String {
    let indent = |n: usize| {
        pod_spec
            .lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect::<String>()
    };
    let head =
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: w, namespace: ns}}\n");
    match kind {
        "Pod" => format!("{head}spec:\n{}", indent(2)),
        "CronJob" => format!(
            "{head}spec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n{}",
            indent(10)
        ),
        _ => format!("{head}spec:\n  template:\n    spec:\n{}", indent(6)),
    }
}

const KINDS: &[(&str, &str, &str)] = &[
    ("Pod", "v1", "spec"),
    ("Deployment", "apps/v1", "spec.template.spec"),
    ("StatefulSet", "apps/v1", "spec.template.spec"),
    ("DaemonSet", "apps/v1", "spec.template.spec"),
    ("ReplicaSet", "apps/v1", "spec.template.spec"),
    ("Job", "batch/v1", "spec.template.spec"),
    ("CronJob", "batch/v1", "spec.jobTemplate.spec.template.spec"),
];

#[test]
fn secret_env_var_in_every_workload_kind_and_container_list() {
    let spec = "\
automountServiceAccountToken: false
initContainers:
  - name: migrate
    image: m
    env:
      - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
containers:
  - name: app
    image: a
    envFrom:
      - configMapRef: {name: settings}
      - secretRef: {name: app-env}
ephemeralContainers:
  - name: debugger
    image: busybox
    env:
      - name: TOKEN
        valueFrom:
          secretKeyRef: {name: api, key: token}
";
    for (kind, api_version, prefix) in KINDS {
        let found = fires(&workload(kind, api_version, spec), Rule::SecretEnvVar, 3);
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                format!("{prefix}.initContainers[0].env[0].valueFrom.secretKeyRef"),
                format!("{prefix}.containers[0].envFrom[1].secretRef"),
                format!("{prefix}.ephemeralContainers[0].env[0].valueFrom.secretKeyRef"),
            ],
            "{kind}"
        );
        assert!(found[1].message.contains("every key of Secret \"app-env\""));
        assert!(found.iter().all(|f| f.resource.kind == *kind));
    }
}

#[test]
fn secret_env_var_negative_configmap_refs_field_refs_and_volumes() {
    let spec = "\
automountServiceAccountToken: false
containers:
  - name: app
    image: a
    env:
      - {name: LEVEL, valueFrom: {configMapKeyRef: {name: settings, key: level}}}
      - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
      - {name: PLAIN, value: hello}
    envFrom:
      - configMapRef: {name: settings}
    volumeMounts: [{name: creds, mountPath: /creds, readOnly: true}]
volumes:
  - name: creds
    secret: {secretName: creds, defaultMode: 0400}
";
    for (kind, api_version, _) in KINDS {
        let text = workload(kind, api_version, spec);
        silent(&text, Rule::SecretEnvVar);
        assert!(crate::scan_one(&text).findings.is_empty(), "{kind}");
    }
}

#[test]
fn literal_credential_env() {
    let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
    let spec = format!(
        "\
automountServiceAccountToken: false
containers:
  - name: app
    image: a
    env:
      - name: AWS_ACCESS_KEY_ID
        value: {aws}
      - name: DB_PASSWORD
        value: \"correct-horse-battery\"
      - name: apiKey
        value: s3cr3t-v4lue
      - name: LOG_LEVEL
        value: debug
      - name: DB_PASSWORD_FILE
        value: /run/secrets/db
      - name: REDIS_PASSWORD
        value: $(REDIS_PASSWORD_FROM_SECRET)
      - name: SESSION_TOKEN
        value: \"\"
"
    );
    let found = fires(
        &workload("Deployment", "apps/v1", &spec),
        Rule::LiteralCredentialEnv,
        3,
    );
    assert_eq!(found[0].severity, Severity::High);
    assert!(found[0].message.contains("AWS access key ID"));
    assert_eq!(
        found[0].path,
        "spec.template.spec.containers[0].env[0].value"
    );
    assert_eq!(found[1].severity, Severity::Medium);
    assert!(found[1].message.contains("\"DB_PASSWORD\""));
    assert!(found[2].message.contains("\"apiKey\""));
    for f in &found {
        assert!(!f.message.contains(&aws) && !f.message.contains("horse"));
        assert_eq!(f.threat, Threat::Api);
    }
}

#[test]
fn literal_credential_on_the_command_line() {
    let spec = "\
automountServiceAccountToken: false
containers:
  - name: app
    image: a
    command: [/bin/sh, -c, \"exec app --db-password=pr0d-passw0rd --port=8080\"]
    args: [--log-level=debug, --token-file=/var/run/secrets/token, --api-token=$(API_TOKEN)]
";
    let found = fires(
        &workload("Deployment", "apps/v1", spec),
        Rule::LiteralCredentialEnv,
        1,
    );
    assert_eq!(found[0].path, "spec.template.spec.containers[0].command[2]");
    assert!(found[0].message.contains("--db-password"));
    assert!(!found[0].message.contains("pr0d"));
}

#[test]
fn hostpath_mount_severity_by_path() {
    let cases = [
        ("/", Severity::Critical),
        ("/var/lib/kubelet", Severity::Critical),
        ("/var/lib/kubelet/pods", Severity::Critical),
        ("/var/lib", Severity::Critical),
        ("/var/lib/etcd/", Severity::Critical),
        ("/etc/kubernetes/pki", Severity::Critical),
        ("/etc", Severity::Critical),
        ("/var/run/docker.sock", Severity::Critical),
        ("/run/containerd/containerd.sock", Severity::Critical),
        ("/var/run/crio/crio.sock", Severity::Critical),
        ("/proc", Severity::High),
        ("/var/log", Severity::Medium),
        ("/data/cache", Severity::Medium),
    ];
    for (path, severity) in cases {
        let spec = format!(
            "automountServiceAccountToken: false\ncontainers: [{{name: a, image: a}}]\nvolumes:\n  - name: host\n    hostPath: {{path: \"{path}\", type: Directory}}\n"
        );
        let found = fires(
            &workload("DaemonSet", "apps/v1", &spec),
            Rule::HostpathMount,
            1,
        );
        assert_eq!(found[0].severity, severity, "{path}");
        assert_eq!(found[0].path, "spec.template.spec.volumes[0].hostPath.path");
        assert_eq!(found[0].threat, Threat::Node);
    }
    silent(
        &workload(
            "DaemonSet",
            "apps/v1",
            "containers: [{name: a, image: a}]\nvolumes:\n  - {name: e, emptyDir: {}}\n  - {name: c, configMap: {name: c}}\n",
        ),
        Rule::HostpathMount,
    );
}

#[test]
fn privileged_node_access() {
    let spec = "\
automountServiceAccountToken: false
hostPID: yes
hostNetwork: true
hostIPC: false
containers:
  - name: agent
    image: a
    securityContext:
      privileged: true
  - name: helper
    image: h
    securityContext:
      capabilities:
        add: [NET_BIND_SERVICE, SYS_ADMIN]
";
    let found = fires(
        &workload("DaemonSet", "apps/v1", spec),
        Rule::PrivilegedNodeAccess,
        4,
    );
    let summary: Vec<(&str, Severity)> = found
        .iter()
        .map(|f| (f.path.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            ("spec.template.spec.hostPID", Severity::High),
            (
                "spec.template.spec.containers[0].securityContext.privileged",
                Severity::High
            ),
            (
                "spec.template.spec.containers[1].securityContext.capabilities.add",
                Severity::High
            ),
            ("spec.template.spec.hostNetwork", Severity::Medium),
        ]
    );
    silent(
        &workload(
            "Deployment",
            "apps/v1",
            "hostPID: false\ncontainers:\n  - name: a\n    image: a\n    securityContext: {privileged: false, capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}}\n",
        ),
        Rule::PrivilegedNodeAccess,
    );
}

#[test]
fn control_plane_static_pods_are_reported_low() {
    let report = scan_fixtures(&["control-plane/manifests/etcd.yaml"]);
    let host = of(&report, Rule::HostpathMount);
    assert_eq!(host.len(), 2);
    assert!(host.iter().all(|f| f.severity == Severity::Low));
    assert!(
        host[0]
            .message
            .contains("expected for control-plane component etcd")
    );
    let privileged = of(&report, Rule::PrivilegedNodeAccess);
    assert_eq!(privileged.len(), 1);
    assert_eq!(privileged[0].severity, Severity::Low);
}

#[test]
fn secret_file_mode_octal_decimal_and_items() {
    let spec = "\
automountServiceAccountToken: false
containers: [{name: a, image: a}]
volumes:
  - name: ok-octal
    secret: {secretName: a, defaultMode: 0400}
  - name: ok-decimal
    secret: {secretName: b, defaultMode: 288}
  - name: world-readable
    secret: {secretName: c, defaultMode: 0644}
  - name: decimal-typo
    secret: {secretName: d, defaultMode: 400}
  - name: unset
    secret: {secretName: e}
  - name: item
    secret:
      secretName: f
      defaultMode: 0400
      items:
        - {key: tls.key, path: tls.key, mode: 0600}
  - name: projected
    projected:
      defaultMode: 0444
      sources:
        - secret: {name: g}
";
    let found = fires(
        &workload("Deployment", "apps/v1", spec),
        Rule::SecretFileMode,
        5,
    );
    let summary: Vec<(&str, Severity)> = found
        .iter()
        .map(|f| (f.path.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "spec.template.spec.volumes[2].secret.defaultMode",
                Severity::Medium
            ),
            (
                "spec.template.spec.volumes[6].projected.defaultMode",
                Severity::Medium
            ),
            (
                "spec.template.spec.volumes[3].secret.defaultMode",
                Severity::Low
            ),
            ("spec.template.spec.volumes[4].secret", Severity::Low),
            (
                "spec.template.spec.volumes[5].secret.items[0].mode",
                Severity::Low
            ),
        ]
    );
    assert!(
        found[0].message.contains("0644 (= 0644)"),
        "{}",
        found[0].message
    );
    assert!(
        found[2].message.contains("400 (= 0620)"),
        "{}",
        found[2].message
    );
    assert!(
        found[2].message.contains("probably meant"),
        "{}",
        found[2].message
    );
    assert!(found[3].message.contains("no defaultMode"));
}

#[test]
fn secret_file_mode_in_json_is_decimal() {
    let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
      "spec":{"automountServiceAccountToken":false,"containers":[{"name":"a","image":"a"}],
      "volumes":[{"name":"s","secret":{"secretName":"s","defaultMode":420}},
                 {"name":"t","secret":{"secretName":"t","defaultMode":256}}]}}"#;
    let found = fires(json, Rule::SecretFileMode, 1);
    assert_eq!(found[0].path, "spec.volumes[0].secret.defaultMode");
    assert!(found[0].message.contains("420 (= 0644)"));
}

#[test]
fn secret_subpath_mount() {
    let spec = "\
automountServiceAccountToken: false
containers:
  - name: app
    image: a
    volumeMounts:
      - {name: creds, mountPath: /etc/app/password, subPath: password}
      - {name: both, mountPath: /etc/app/token, subPathExpr: $(POD_NAME)}
      - {name: settings, mountPath: /etc/app/app.conf, subPath: app.conf}
      - {name: creds, mountPath: /etc/creds, readOnly: true}
volumes:
  - {name: creds, secret: {secretName: creds, defaultMode: 0400}}
  - name: both
    projected:
      defaultMode: 0400
      sources: [{secret: {name: tok}}, {configMap: {name: c}}]
  - {name: settings, configMap: {name: settings}}
";
    let found = fires(
        &workload("StatefulSet", "apps/v1", spec),
        Rule::SecretSubpathMount,
        2,
    );
    assert_eq!(
        found[0].path,
        "spec.template.spec.containers[0].volumeMounts[0].subPath"
    );
    assert!(found[0].message.contains("Secret \"creds\""));
    assert_eq!(
        found[1].path,
        "spec.template.spec.containers[0].volumeMounts[1].subPathExpr"
    );
    assert!(found[1].message.contains("Secret \"tok\""));
}

#[test]
fn sa_token_automount_pods_and_service_accounts() {
    let text = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: quiet, namespace: ns}
automountServiceAccountToken: false
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: chatty, namespace: ns}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: uses-quiet, namespace: ns}
spec: {template: {spec: {serviceAccountName: quiet, containers: [{name: a, image: a}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: uses-chatty, namespace: ns}
spec: {template: {spec: {serviceAccountName: chatty, containers: [{name: a, image: a}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: opts-out, namespace: ns}
spec: {template: {spec: {serviceAccountName: chatty, automountServiceAccountToken: false, containers: [{name: a, image: a}]}}}
---
apiVersion: v1
kind: Pod
metadata: {name: default-sa, namespace: other}
spec: {automountServiceAccountToken: true, containers: [{name: a, image: a}]}
";
    let found = fires(text, Rule::SaTokenAutomount, 3);
    let names: Vec<(&str, &str)> = found
        .iter()
        .map(|f| {
            (
                f.resource.kind.as_str(),
                f.resource.name.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("ServiceAccount", "chatty"),
            ("Deployment", "uses-chatty"),
            ("Pod", "default-sa")
        ]
    );
    assert!(found.iter().all(|f| f.severity == Severity::Low));
    assert_eq!(found[2].path, "spec.automountServiceAccountToken");
    assert_eq!(found[2].line, Some(28));
}

#[test]
fn kubectl_dump_reports_each_problem_once_on_the_owner() {
    let report = scan_fixtures(&["kubectl-dump.yaml"]);
    let env = of(&report, Rule::SecretEnvVar);
    assert_eq!(env.len(), 1, "{:#?}", report.findings);
    assert_eq!(env[0].resource.kind, "Deployment");
    assert_eq!(env[0].item, Some(0));
    // The Pod's automatic kube-api-access projection (defaultMode 420) holds no Secret.
    assert!(of(&report, Rule::SecretFileMode).is_empty());
    // shop-api opts out; the namespace's default ServiceAccount does not.
    let automount = of(&report, Rule::SaTokenAutomount);
    assert_eq!(automount.len(), 1);
    assert_eq!(automount[0].resource.name.as_deref(), Some("default"));
    assert_eq!(report.findings.len(), 2, "{:#?}", report.findings);
}

#[test]
fn clean_directory_has_no_findings() {
    let report = scan_fixtures(&["clean"]);
    assert_eq!(report.objects, 11);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}
