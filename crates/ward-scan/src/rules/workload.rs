//! Pod-spec rules, for every workload kind: `secret-env-var`, `literal-credential-env`,
//! `hostpath-mount`, `privileged-node-access`, `secret-file-mode`, `secret-subpath-mount` and
//! `sa-token-automount` (which also checks ServiceAccounts).

use crate::detect::{self, Confidence};
use crate::finding::{Rule, Severity};
use crate::input::Object;
use crate::rules::{At, Ctx, command_line, containers, join, pod_spec, q};
use crate::yaml::Node;

pub(crate) fn check(ctx: &mut Ctx<'_>, object: &Object) {
    if object.resource.kind == "ServiceAccount" {
        service_account(ctx, object);
        return;
    }
    let Some((spec, prefix)) = pod_spec(object) else {
        return;
    };
    if ctx.owned_by_scanned(object) {
        return;
    }
    let component = node_component(object, spec);
    for (container, path) in containers(spec, prefix) {
        let name = container.get("name").and_then(Node::as_str);
        env(ctx, object, container, &path, name);
        container_privileges(ctx, object, container, &path, name, component);
        subpath_mounts(ctx, object, spec, container, &path, name);
    }
    pod_privileges(ctx, object, spec, prefix, component);
    volumes(ctx, object, spec, prefix, component);
    // Static pods cannot use ServiceAccounts: the kubelet mounts no token into them.
    if component.is_none() {
        automount(ctx, object, spec, prefix);
    }
}

// === secret-env-var, literal-credential-env ===

fn env(ctx: &mut Ctx<'_>, object: &Object, container: &Node, path: &str, name: Option<&str>) {
    for (j, var) in container
        .get("env")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let var_path = format!("{path}.env[{j}]");
        let var_name = var.get("name").and_then(Node::as_str);
        if let Some(key_ref) = var.at(&["valueFrom", "secretKeyRef"]) {
            let secret = key_ref.get("name").and_then(Node::as_str);
            let key = key_ref.get("key").and_then(Node::as_str);
            let value_from = var.get("valueFrom").unwrap_or(var);
            ctx.report(
                object,
                Rule::SecretEnvVar,
                Severity::Medium,
                At::key(value_from, &join(&var_path, "valueFrom"), "secretKeyRef"),
                format!(
                    "container {} sets environment variable {} from key {} of Secret {}",
                    q(name),
                    q(var_name),
                    q(key),
                    q(secret)
                ),
                "Mount the Secret as a volume (readOnly, defaultMode 0400) and read the key \
                 from a file instead of an environment variable."
                    .to_owned(),
            );
        } else if let Some(value) = var.get("value").and_then(Node::as_str)
            && let Some(found) = detect::assess(var_name.unwrap_or_default(), value, false)
        {
            let severity = match found.confidence {
                Confidence::Format => Severity::High,
                _ => Severity::Medium,
            };
            ctx.report(
                object,
                Rule::LiteralCredentialEnv,
                severity,
                At::key(var, &var_path, "value"),
                format!(
                    "container {} environment variable {}: {}",
                    q(name),
                    q(var_name),
                    found.reason
                ),
                "Store the value in a Secret, mount it as a file, and rotate the credential: \
                 it is readable by everyone who can read the workload."
                    .to_owned(),
            );
        }
    }
    command_line_credentials(ctx, object, container, path, name);
    for (j, source) in container
        .get("envFrom")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some(secret_ref) = source.get("secretRef") {
            let secret = secret_ref.get("name").and_then(Node::as_str);
            ctx.report(
                object,
                Rule::SecretEnvVar,
                Severity::Medium,
                At::key(source, &format!("{path}.envFrom[{j}]"), "secretRef"),
                format!(
                    "container {} imports every key of Secret {} as environment variables \
                     (envFrom)",
                    q(name),
                    q(secret)
                ),
                "Mount the Secret as a volume (readOnly, defaultMode 0400) and read its keys \
                 from files instead of envFrom."
                    .to_owned(),
            );
        }
    }
}

/// `--db-password=…` in `command` or `args`: as readable as env, and also in `ps` output.
fn command_line_credentials(
    ctx: &mut Ctx<'_>,
    object: &Object,
    container: &Node,
    path: &str,
    name: Option<&str>,
) {
    for field in ["command", "args"] {
        let Some(list) = container.get(field) else {
            continue;
        };
        for (i, item) in list.items().iter().enumerate() {
            let Some(text) = item.as_str() else {
                continue;
            };
            // Also inside `sh -c "… --token=…"`.
            for token in text.split_whitespace() {
                let Some((flag, value)) = token.strip_prefix("--").and_then(|t| t.split_once('='))
                else {
                    continue;
                };
                let value = value.trim_matches(['"', '\'']);
                let Some(found) = detect::assess(flag, value, false) else {
                    continue;
                };
                let severity = match found.confidence {
                    Confidence::Format => Severity::High,
                    _ => Severity::Medium,
                };
                ctx.report(
                    object,
                    Rule::LiteralCredentialEnv,
                    severity,
                    At::node(item, format!("{path}.{field}[{i}]")),
                    format!(
                        "container {} passes --{flag} on its command line: {}",
                        q(name),
                        found.reason
                    ),
                    "Read the credential from a mounted Secret file (many programs take \
                     --…-file); command lines are visible in the pod spec and in `ps` on the \
                     node."
                        .to_owned(),
                );
            }
        }
    }
}

// === privileged-node-access ===

fn container_privileges(
    ctx: &mut Ctx<'_>,
    object: &Object,
    container: &Node,
    path: &str,
    name: Option<&str>,
    component: Option<&str>,
) {
    let Some(security) = container.get("securityContext") else {
        return;
    };
    let security_path = join(path, "securityContext");
    if security.get("privileged").and_then(Node::as_bool) == Some(true) {
        report_privilege(
            ctx,
            object,
            Severity::High,
            At::key(security, &security_path, "privileged"),
            format!(
                "container {} is privileged: it has every device and capability of the node and \
                 can read all Secrets mounted there",
                q(name)
            ),
            component,
        );
    }
    if let Some(add) = security.at(&["capabilities", "add"]) {
        let dangerous: Vec<&str> = add
            .strings()
            .into_iter()
            .filter(|c| {
                let c = c.trim_start_matches("CAP_");
                c.eq_ignore_ascii_case("SYS_ADMIN") || c.eq_ignore_ascii_case("ALL")
            })
            .collect();
        if !dangerous.is_empty() {
            report_privilege(
                ctx,
                object,
                Severity::High,
                At::node(add, join(&join(&security_path, "capabilities"), "add")),
                format!(
                    "container {} adds capability {} (close to privileged)",
                    q(name),
                    dangerous.join(", ")
                ),
                component,
            );
        }
    }
}

fn pod_privileges(
    ctx: &mut Ctx<'_>,
    object: &Object,
    spec: &Node,
    prefix: &str,
    component: Option<&str>,
) {
    let checks = [
        (
            "hostPID",
            Severity::High,
            "shares the node's PID namespace: it can read other processes' environment and \
             memory, including Secrets passed as environment variables",
        ),
        (
            "hostIPC",
            Severity::Medium,
            "shares the node's IPC namespace (shared memory of other workloads)",
        ),
        (
            "hostNetwork",
            Severity::Medium,
            "uses the node's network: it can reach node-local services (kubelet, etcd on a \
             control-plane node) and sniff unencrypted traffic",
        ),
    ];
    for (field, severity, what) in checks {
        if spec.get(field).and_then(Node::as_bool) == Some(true) {
            report_privilege(
                ctx,
                object,
                severity,
                At::key(spec, prefix, field),
                format!("pod {what} ({field}: true)"),
                component,
            );
        }
    }
}

fn report_privilege(
    ctx: &mut Ctx<'_>,
    object: &Object,
    severity: Severity,
    at: At,
    message: String,
    component: Option<&str>,
) {
    let (severity, message) = downgrade_for_component(severity, message, component);
    ctx.report(
        object,
        Rule::PrivilegedNodeAccess,
        severity,
        at,
        message,
        "Remove privileged, hostPID, hostIPC, hostNetwork and added capabilities; if this is a \
         node agent that needs them, run it in a dedicated namespace with restricted RBAC."
            .to_owned(),
    );
}

/// Control-plane static pods need host access; report them, but as `low`.
fn downgrade_for_component(
    severity: Severity,
    message: String,
    component: Option<&str>,
) -> (Severity, String) {
    match component {
        Some(component) => (
            severity.min(Severity::Low),
            format!("{message}; expected for control-plane component {component}"),
        ),
        None => (severity, message),
    }
}

// === hostpath-mount, secret-file-mode ===

fn volumes(ctx: &mut Ctx<'_>, object: &Object, spec: &Node, prefix: &str, component: Option<&str>) {
    for (k, volume) in spec
        .get("volumes")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("{prefix}.volumes[{k}]");
        let name = volume.get("name").and_then(Node::as_str);
        if let Some(host) = volume.get("hostPath") {
            host_path(ctx, object, host, &join(&path, "hostPath"), name, component);
        }
        if let Some(secret) = volume.get("secret") {
            let secret_name = secret.get("secretName").and_then(Node::as_str);
            file_modes(
                ctx,
                object,
                secret,
                &join(&path, "secret"),
                &format!("secret volume {} (Secret {})", q(name), q(secret_name)),
                None,
            );
        }
        if let Some(projected) = volume.get("projected") {
            let projected_path = join(&path, "projected");
            let default = projected.get("defaultMode");
            let sources = projected
                .get("sources")
                .map(Node::items)
                .unwrap_or_default();
            let mut reported_default = false;
            for (s, source) in sources.iter().enumerate() {
                let Some(secret) = source.get("secret") else {
                    continue;
                };
                let secret_name = secret.get("name").and_then(Node::as_str);
                let label = format!("projected volume {} (Secret {})", q(name), q(secret_name));
                let source_path = format!("{projected_path}.sources[{s}].secret");
                if !reported_default {
                    reported_default = true;
                    file_modes(ctx, object, projected, &projected_path, &label, None);
                }
                // Only the item modes; the default belongs to the projected volume.
                file_modes(ctx, object, secret, &source_path, &label, Some(default));
            }
        }
    }
}

/// Paths whose exposure gives away Secrets or the node, and why.
const CRITICAL_HOST_PATHS: &[(&str, &str)] = &[
    (
        "/var/lib/kubelet",
        "kubelet's copy of every Secret mounted on the node",
    ),
    (
        "/var/lib/etcd",
        "the etcd data, every Secret of the cluster",
    ),
    (
        "/etc/kubernetes",
        "control-plane keys, kubeconfigs and the encryption configuration",
    ),
    ("/var/run/docker.sock", RUNTIME),
    ("/run/docker.sock", RUNTIME),
    ("/var/run/containerd", RUNTIME),
    ("/run/containerd", RUNTIME),
    ("/var/run/crio", RUNTIME),
    ("/run/crio", RUNTIME),
    ("/var/run/cri-dockerd.sock", RUNTIME),
    ("/run/cri-dockerd.sock", RUNTIME),
    ("/var/lib/docker", RUNTIME),
    ("/var/lib/containerd", RUNTIME),
    (
        "/var/lib/rancher",
        "k3s/RKE2 state: datastore, keys and tokens",
    ),
    ("/run/k3s", RUNTIME),
];

const RUNTIME: &str = "the container runtime's socket or state (root on the node, every \
                       container's files and environment)";

/// Sensitive, but not directly a Secret store.
const HIGH_HOST_PATHS: &[&str] = &["/proc", "/sys", "/dev", "/root", "/home", "/boot"];

fn host_path(
    ctx: &mut Ctx<'_>,
    object: &Object,
    host: &Node,
    path: &str,
    volume: Option<&str>,
    component: Option<&str>,
) {
    let raw = host.get("path").and_then(Node::as_str).unwrap_or_default();
    let normalized = normalize(raw);
    let inside = CRITICAL_HOST_PATHS
        .iter()
        .find(|(c, _)| *c == normalized || under(&normalized, c));
    let contains = CRITICAL_HOST_PATHS
        .iter()
        .find(|(c, _)| under(c, &normalized));
    let socket = normalized.ends_with(".sock")
        && ["docker", "containerd", "crio", "podman"]
            .iter()
            .any(|r| normalized.contains(r));
    let (severity, why) = if let Some((_, why)) = inside {
        (Severity::Critical, format!("it holds {why}"))
    } else if let Some((path, why)) = contains {
        (
            Severity::Critical,
            format!("it contains {path}, which holds {why}"),
        )
    } else if socket {
        (Severity::Critical, format!("it is {RUNTIME}"))
    } else if HIGH_HOST_PATHS
        .iter()
        .any(|c| *c == normalized || under(&normalized, c))
    {
        (
            Severity::High,
            "it exposes the node's processes, devices or home directories".to_owned(),
        )
    } else {
        (
            Severity::Medium,
            "the pod can read (or write) node files outside its sandbox".to_owned(),
        )
    };
    let (severity, message) = downgrade_for_component(
        severity,
        format!(
            "volume {} mounts host path {}: {why}",
            q(volume),
            q(Some(&normalized))
        ),
        component,
    );
    ctx.report(
        object,
        Rule::HostpathMount,
        severity,
        At::key(host, path, "path"),
        message,
        "Replace the hostPath volume with a Secret, ConfigMap, projected or CSI volume; if a node \
         agent really needs it, mount the narrowest path read-only."
            .to_owned(),
    );
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Whether `path` is strictly below `dir`.
fn under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Checks `defaultMode` (unless `default` is given: then only item modes, with that default)
/// and `items[].mode` of a Secret volume or projection.
fn file_modes(
    ctx: &mut Ctx<'_>,
    object: &Object,
    node: &Node,
    path: &str,
    label: &str,
    default: Option<Option<&Node>>,
) {
    let fix = "Set defaultMode: 0400 (or 0440 with an fsGroup) and the same on items[].mode; in \
               JSON write the decimal 256 (or 288)."
        .to_owned();
    if default.is_none() {
        match node.get("defaultMode") {
            None => ctx.report(
                object,
                Rule::SecretFileMode,
                Severity::Low,
                At::node(node, path.to_owned()),
                format!(
                    "{label} has no defaultMode, so its files are created 0644 (readable by \
                     every user in the container)"
                ),
                fix.clone(),
            ),
            Some(mode) => {
                if let Some((severity, text)) = judge_mode(mode) {
                    ctx.report(
                        object,
                        Rule::SecretFileMode,
                        severity,
                        At::key(node, path, "defaultMode"),
                        format!("{label} defaultMode {text}"),
                        fix.clone(),
                    );
                }
            }
        }
    }
    for (i, item) in node
        .get("items")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some(mode) = item.get("mode")
            && let Some((severity, text)) = judge_mode(mode)
        {
            let key = item.get("key").and_then(Node::as_str);
            ctx.report(
                object,
                Rule::SecretFileMode,
                severity,
                At::key(item, &format!("{path}.items[{i}]"), "mode"),
                format!("{label} key {} has mode {text}", q(key)),
                fix.clone(),
            );
        }
    }
}

/// `None` when the mode grants at most read to owner and group (0400, 0440).
fn judge_mode(mode: &Node) -> Option<(Severity, String)> {
    let value = mode.as_int()?;
    if !(0..=0o7777).contains(&value) || value & !0o440 == 0 {
        return None;
    }
    let text = mode.as_str().unwrap_or_default();
    let mut description = format!("{text} (= 0{value:o})");
    // `400` without a leading zero is decimal (= 0620): almost certainly meant as octal.
    if text.len() >= 3
        && !text.starts_with('0')
        && text.bytes().all(|b| (b'0'..=b'7').contains(&b))
        && value > 0
    {
        description.push_str(&format!(
            ", written in decimal; YAML reads a leading 0 as octal, so 0{text} was probably meant"
        ));
    }
    if value & 0o007 != 0 {
        Some((
            Severity::Medium,
            format!("{description} is readable or writable by any user in the container"),
        ))
    } else {
        Some((
            Severity::Low,
            format!("{description} is wider than 0400/0440"),
        ))
    }
}

// === secret-subpath-mount ===

fn subpath_mounts(
    ctx: &mut Ctx<'_>,
    object: &Object,
    spec: &Node,
    container: &Node,
    path: &str,
    name: Option<&str>,
) {
    for (m, mount) in container
        .get("volumeMounts")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let sub_path = ["subPath", "subPathExpr"].into_iter().find(|k| {
            mount
                .get(k)
                .and_then(Node::as_str)
                .is_some_and(|s| !s.is_empty())
        });
        let Some(sub_path) = sub_path else {
            continue;
        };
        let volume_name = mount.get("name").and_then(Node::as_str);
        let Some(secret) = secret_of_volume(spec, volume_name) else {
            continue;
        };
        ctx.report(
            object,
            Rule::SecretSubpathMount,
            Severity::Low,
            At::key(mount, &format!("{path}.volumeMounts[{m}]"), sub_path),
            format!(
                "container {} mounts Secret {} with {sub_path}: the file is never updated when \
                 the Secret rotates",
                q(name),
                q(secret.as_deref())
            ),
            "Mount the volume on a directory (use items to pick keys) and point the application \
             at the file inside it."
                .to_owned(),
        );
    }
}

/// The Secret behind a volume name, if it is a secret volume or a projection of one.
fn secret_of_volume(spec: &Node, volume: Option<&str>) -> Option<Option<String>> {
    let volume = spec
        .get("volumes")?
        .items()
        .iter()
        .find(|v| v.get("name").and_then(Node::as_str) == volume)?;
    if let Some(secret) = volume.get("secret") {
        return Some(
            secret
                .get("secretName")
                .and_then(Node::as_str)
                .map(str::to_owned),
        );
    }
    let sources = volume.at(&["projected", "sources"])?;
    sources.items().iter().find_map(|s| {
        s.get("secret")
            .map(|secret| secret.get("name").and_then(Node::as_str).map(str::to_owned))
    })
}

// === sa-token-automount ===

fn automount(ctx: &mut Ctx<'_>, object: &Object, spec: &Node, prefix: &str) {
    if spec
        .get("automountServiceAccountToken")
        .and_then(Node::as_bool)
        == Some(false)
    {
        return;
    }
    let account = ["serviceAccountName", "serviceAccount"]
        .iter()
        .find_map(|k| spec.get(k).and_then(Node::as_str))
        .unwrap_or("default");
    let namespace = object.resource.namespace.as_deref().unwrap_or("default");
    if ctx.account_opts_out(namespace, account) {
        return;
    }
    let pod_sets_it = spec.get("automountServiceAccountToken").is_some();
    ctx.report(
        object,
        Rule::SaTokenAutomount,
        Severity::Low,
        if pod_sets_it {
            At::key(spec, prefix, "automountServiceAccountToken")
        } else {
            At::node(spec, join(prefix, "automountServiceAccountToken"))
        },
        format!(
            "pods get an API token of ServiceAccount {} mounted automatically \
             (automountServiceAccountToken is not false on the pod{})",
            q(Some(account)),
            if account == "default" {
                ""
            } else {
                " nor on a scanned ServiceAccount"
            }
        ),
        "Set automountServiceAccountToken: false on the pod template or the ServiceAccount; \
         if the pod calls the API, mount a projected serviceAccountToken with a short expiry."
            .to_owned(),
    );
}

fn service_account(ctx: &mut Ctx<'_>, object: &Object) {
    if object
        .node
        .get("automountServiceAccountToken")
        .and_then(Node::as_bool)
        == Some(false)
    {
        return;
    }
    ctx.report(
        object,
        Rule::SaTokenAutomount,
        Severity::Low,
        At::node(&object.node, "automountServiceAccountToken"),
        format!(
            "ServiceAccount {} does not set automountServiceAccountToken: false, so every pod \
             using it gets its token",
            q(object.resource.name.as_deref())
        ),
        "Set automountServiceAccountToken: false on the ServiceAccount and opt in per pod."
            .to_owned(),
    );
}

// === helpers ===

/// Control-plane components whose static pods need host access.
const NODE_COMPONENTS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

/// The control-plane component a kube-system pod runs, if any.
fn node_component<'a>(object: &Object, spec: &'a Node) -> Option<&'a str> {
    if object.resource.namespace.as_deref() != Some("kube-system") {
        return None;
    }
    containers(spec, "").find_map(|(c, _)| {
        let binary = command_line(c).first().copied()?;
        let binary = binary.rsplit('/').next().unwrap_or(binary);
        NODE_COMPONENTS
            .iter()
            .find(|n| **n == binary)
            .map(|_| binary)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths() {
        assert_eq!(normalize("/var/lib//kubelet/"), "/var/lib/kubelet");
        assert!(under("/var/lib/kubelet/pods", "/var/lib/kubelet"));
        assert!(!under("/var/lib/kubelet2", "/var/lib/kubelet"));
        assert!(under("/etc", "/"));
    }
}
