use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn config_err(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let p = write(dir.path(), "agent.yaml", text);
    load_config(&p).expect_err("invalid").to_string()
}

#[test]
fn reads_volumes_in_kubernetes_syntax_with_octal_modes() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = write(
        dir.path(),
        "agent.yaml",
        r#"
namespace: prod
volumes:
  - name: db
    target: /run/secrets/db
    secret:
      secretName: db
      defaultMode: 0440
      items: [{key: password, path: password}]
  - name: app
    target: app
    projected:
      defaultMode: 288
      sources:
        - secret: {name: api, items: [{key: token, path: api/token, mode: 0400}]}
        - configMap: {name: app-settings, optional: true}
  - name: one-file
    target: /etc/app/db-password
    subPath: password
    secret: {secretName: db}
  - name: cm
    target: /run/cm
    configMap: {name: settings}
"#,
    );
    let plan = load_config(&p).expect("valid");
    assert_eq!(plan.namespace.as_ref().map(Namespace::as_str), Some("prod"));
    let v = &plan.volumes;
    assert_eq!(v.len(), 4);
    assert_eq!(v[0].default_mode, Mode(0o440));
    assert_eq!(v[0].target, Target::Dir(PathBuf::from("/run/secrets/db")));
    let items = v[0].sources[0].items.as_ref().expect("items");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("password", "password")
    );
    assert_eq!(
        v[1].target,
        Target::Dir(dir.path().join("app")),
        "relative to the file"
    );
    assert_eq!(v[1].default_mode, Mode(0o440));
    assert_eq!(v[1].sources.len(), 2);
    assert_eq!(v[1].sources[1].kind, Kind::ConfigMap);
    assert!(v[1].sources[1].optional);
    let items = v[1].sources[0].items.as_ref().expect("items");
    assert_eq!(items[0].mode, Some(Mode(0o400)));
    assert_eq!(v[2].default_mode, Mode::DEFAULT);
    assert!(
        matches!(&v[2].target, Target::File { sub_path, .. } if sub_path.as_str() == "password")
    );
    assert_eq!(v[3].sources[0].kind, Kind::ConfigMap);
}

#[test]
fn errors_name_the_file_and_field() {
    let e = config_err("volumes:\n- name: a\n  target: /t\n  secret: {secretNam: x}\n");
    assert!(
        e.contains("agent.yaml") && e.contains("volumes[0].secret"),
        "{e}"
    );
    assert!(e.contains("secretNam"), "{e}");
    let e = config_err(
        "volumes:\n- name: a\n  target: /t\n  secret: {secretName: x, defaultMode: 0o1000}\n",
    );
    assert!(
        e.contains("volumes[0].secret.defaultMode") && e.contains("0777"),
        "{e}"
    );
    let e = config_err(
        "volumes:\n- name: a\n  target: /t\n  \
         secret: {secretName: x, items: [{key: k, path: ../k}]}\n",
    );
    assert!(
        e.contains("volumes[0].secret.items[0].path") && e.contains(".."),
        "{e}"
    );
    let e = config_err("volumes:\n- name: a\n  target: /t\n  secret: {secretName: Bad_Name}\n");
    assert!(e.contains("volumes[0].secret.secretName"), "{e}");
    let e = config_err(
        "volumes:\n- name: a\n  target: /t\n  secret: {secretName: x}\n  configMap: {name: y}\n",
    );
    assert!(
        e.contains("exactly one of secret, configMap or projected"),
        "{e}"
    );
    let e = config_err(
        "volumes:\n- name: a\n  target: /t\n  secret: {secretName: x}\n\
         - name: b\n  target: /t/in\n  secret: {secretName: y}\n",
    );
    assert!(e.contains("give each its own target"), "{e}");
    let e =
        config_err("volumes:\n- name: a\n  target: /t\n  extra: 1\n  secret: {secretName: x}\n");
    assert!(e.contains("extra"), "{e}");
    let e = config_err("volumes: []\n");
    assert!(e.contains("lists no volume"), "{e}");
    let e = config_err(
        "namespace: NotOK\nvolumes:\n- {name: a, target: /t, secret: {secretName: x}}\n",
    );
    assert!(e.contains("namespace"), "{e}");
}

#[test]
fn relative_paths_are_checked_like_the_kubelet() {
    for bad in [
        "", "/abs", "..data", "a/../b", "a//b", "./a", "a/.", "..", "...x",
    ] {
        assert!(RelPath::parse(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["a", "a/b", "a.b", ".hidden", "x..y"] {
        assert!(RelPath::parse(good).is_ok(), "{good:?} refused");
    }
    assert_eq!(RelPath::parse("a/b/c").expect("ok").first(), "a");
}

const SEED: &str = include_str!("../../tests/it/fixtures/seed-deployment.yaml");

#[test]
fn the_seed_deployment_delivers_its_secret_variable_as_a_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = write(dir.path(), "deploy.yaml", SEED);
    let root = Path::new("/srv/app");
    let plan = load_manifest(
        &p,
        &ManifestOptions {
            workload: None,
            containers: &[],
            mount_root: Some(root),
            env_dir: None,
        },
    )
    .expect("valid");
    assert_eq!(
        plan.namespace.as_ref().map(Namespace::as_str),
        Some("default")
    );
    assert_eq!(plan.volumes.len(), 1);
    let v = &plan.volumes[0];
    assert_eq!(
        v.target,
        Target::Dir(PathBuf::from("/srv/app/run/secrets/env"))
    );
    assert_eq!(v.sources[0].name.as_str(), "my-api-secret");
    let items = v.sources[0].items.as_ref().expect("items");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("API_KEY", "API_KEY")
    );
}

#[test]
fn pod_volumes_mounts_subpaths_and_skipped_sources() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = write(
        dir.path(),
        "pod.yaml",
        r#"
apiVersion: v1
kind: Service
metadata: {name: ignored}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
    - name: app
      volumeMounts:
        - {name: db, mountPath: /etc/db, readOnly: true}
        - {name: combo, mountPath: /etc/combo}
        - {name: db, mountPath: /etc/app/password, subPath: password}
        - {name: scratch, mountPath: /tmp}
      envFrom:
        - {secretRef: {name: api}, prefix: API_}
        - {configMapRef: {name: settings}}
    - name: sidecar
      volumeMounts:
        - {name: db, mountPath: /etc/db}
  volumes:
    - name: db
      secret: {secretName: db, defaultMode: 0400}
    - name: combo
      projected:
        sources:
          - secret: {name: tls}
          - serviceAccountToken: {path: token}
          - downwardAPI: {items: []}
    - name: scratch
      emptyDir: {}
"#,
    );
    let plan = load_manifest(
        &p,
        &ManifestOptions {
            workload: None,
            containers: &[],
            mount_root: Some(Path::new("/r")),
            env_dir: Some(Path::new("/env")),
        },
    )
    .expect("valid");
    let targets: Vec<&Path> = plan.volumes.iter().map(|v| v.target.path()).collect();
    assert_eq!(
        targets,
        [
            Path::new("/r/etc/db"),
            Path::new("/r/etc/combo"),
            Path::new("/r/etc/app/password"),
            Path::new("/env"),
        ],
        "the sidecar's identical mount is delivered once"
    );
    assert_eq!(plan.volumes[1].sources.len(), 1);
    assert!(
        plan.notes.iter().any(|n| n.contains("serviceAccountToken")),
        "{:?}",
        plan.notes
    );
    assert!(
        plan.notes.iter().any(|n| n.contains("configMapRef")),
        "{:?}",
        plan.notes
    );
    assert_eq!(plan.volumes[3].sources[0].prefix, "API_");

    let only = load_manifest(
        &p,
        &ManifestOptions {
            workload: None,
            containers: &["sidecar".to_owned()],
            mount_root: None,
            env_dir: None,
        },
    )
    .expect("valid");
    assert_eq!(only.volumes.len(), 1);
    assert_eq!(
        only.volumes[0].target,
        Target::Dir(PathBuf::from("/etc/db"))
    );
}

#[test]
fn several_workloads_need_a_name_and_none_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let two = format!(
        "{SEED}\n---\n{}",
        SEED.replace("name: my-app\n", "name: other\n")
    );
    let p = write(dir.path(), "two.yaml", &two);
    let opts = |w| ManifestOptions {
        workload: w,
        containers: &[],
        mount_root: None,
        env_dir: None,
    };
    let e = load_manifest(&p, &opts(None))
        .expect_err("ambiguous")
        .to_string();
    assert!(
        e.contains("--workload") && e.contains("Deployment/my-app"),
        "{e}"
    );
    assert!(load_manifest(&p, &opts(Some("other"))).is_ok());
    let e = load_manifest(&p, &opts(Some("nope")))
        .expect_err("absent")
        .to_string();
    assert!(e.contains("no workload named \"nope\""), "{e}");
    let p = write(
        dir.path(),
        "cm.yaml",
        "kind: ConfigMap\nmetadata: {name: x}\n",
    );
    let e = load_manifest(&p, &opts(None))
        .expect_err("none")
        .to_string();
    assert!(e.contains("holds no Pod"), "{e}");
    let p = write(
        dir.path(),
        "plain.yaml",
        "kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x}]\n",
    );
    let e = load_manifest(&p, &opts(None))
        .expect_err("nothing")
        .to_string();
    assert!(e.contains("nothing to deliver"), "{e}");
}
