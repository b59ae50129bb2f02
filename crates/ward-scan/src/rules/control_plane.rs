//! Control-plane rules: the EncryptionConfiguration (`encryption-identity-first`,
//! `encryption-resource-uncovered`, `encryption-weak-provider`), kube-apiserver and etcd flags
//! (`encryption-missing`, `etcd-transport-insecure`) and the two together
//! (`encryption-key-colocated`).
//!
//! kube-apiserver and etcd are recognised in any pod spec (static pod manifests, mirror pods in
//! a `kubectl get pods -n kube-system -o yaml` dump, hosted control planes) by the binary in
//! `command`/`args`, also inside `sh -c` strings. Two of them share a node when their manifests
//! are Pods in the same directory (`/etc/kubernetes/manifests`) or have the same
//! `spec.nodeName`. Only flags are read; configuration through environment variables or
//! `--config` files is not (yet).
//!
//! Provider semantics follow the at-rest spec §1.3: writes use the first provider of the entry
//! matching a resource; an entry naming `secrets` wins over `*.`, which wins over `*.*`, and the
//! provider lists of several entries naming the same resource are concatenated.

use crate::finding::{Rule, Severity};
use crate::input::Object;
use crate::rules::{At, Ctx, command_line, containers, flag, pod_spec};
use crate::yaml::Node;

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let objects = ctx.objects;
    let mut apiservers = Vec::new();
    let mut etcds = Vec::new();
    let mut static_key_configs = Vec::new();
    for object in objects {
        if matches!(
            object.resource.kind.as_str(),
            "EncryptionConfiguration" | "EncryptionConfig"
        ) {
            if let Some(provider) = encryption_config(ctx, object) {
                static_key_configs.push((object, provider));
            }
            continue;
        }
        let Some((spec, prefix)) = pod_spec(object) else {
            continue;
        };
        if ctx.owned_by_scanned(object) {
            continue;
        }
        for (container, path) in containers(spec, prefix) {
            let tokens = command_line(container);
            let Some(start) = binary_position(&tokens) else {
                continue;
            };
            let args = &tokens[start..];
            let at = At::key(
                container,
                &path,
                if container.get("command").is_some() {
                    "command"
                } else {
                    "args"
                },
            );
            let placement = Placement {
                object,
                node_name: spec.get("nodeName").and_then(Node::as_str),
                line: at.line,
            };
            match args[0].rsplit('/').next() {
                Some("kube-apiserver") => {
                    apiserver(ctx, object, args, at);
                    apiservers.push(placement);
                }
                Some("etcd") => {
                    etcd(ctx, object, args, at);
                    etcds.push(placement);
                }
                _ => {}
            }
        }
    }
    if let Some(evidence) = colocation(&apiservers, &etcds) {
        for (object, provider) in static_key_configs {
            ctx.report(
                object,
                Rule::EncryptionKeyColocated,
                Severity::High,
                At::key(&object.node, "", "resources"),
                format!(
                    "Secrets are encrypted with the static-key provider {provider}, whose key \
                     sits on the API server's node, and {evidence}: one node's disk or backup \
                     holds both the ciphertext and the key"
                ),
                "Switch Secrets to a KMS v2 provider (the key stays in the KMS), or run etcd on \
                 dedicated hosts and keep node backups away from etcd snapshots."
                    .to_owned(),
            );
        }
    }
}

// === EncryptionConfiguration ===

/// Checks one EncryptionConfiguration. Returns the static-key provider (aescbc, aesgcm,
/// secretbox) used to write Secrets, if that is what it uses.
fn encryption_config(ctx: &mut Ctx<'_>, object: &Object) -> Option<&'static str> {
    let entries = object
        .node
        .get("resources")
        .map(Node::items)
        .unwrap_or_default();
    let mut exact = Vec::new();
    let mut core_wildcard = Vec::new();
    let mut all_wildcard = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("resources[{i}]");
        let names = entry
            .get("resources")
            .map(Node::strings)
            .unwrap_or_default();
        let covers_secrets = names
            .iter()
            .any(|n| matches!(*n, "secrets" | "secrets." | "*." | "*.*"));
        let providers: Vec<(&Node, Option<&'static str>)> = entry
            .get("providers")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|p| (p, provider_type(p)))
            .collect();
        if names.iter().any(|n| matches!(*n, "secrets" | "secrets.")) {
            exact.extend(providers.iter().map(|(_, t)| *t));
        } else if names.contains(&"*.") {
            core_wildcard.extend(providers.iter().map(|(_, t)| *t));
        } else if names.contains(&"*.*") {
            all_wildcard.extend(providers.iter().map(|(_, t)| *t));
        }
        identity_first(ctx, object, &providers, &path, &names, covers_secrets);
        weak_providers(ctx, object, &providers, &path);
    }
    let effective = [exact, core_wildcard, all_wildcard]
        .into_iter()
        .find(|list| !list.is_empty());
    let Some(effective) = effective else {
        ctx.report(
            object,
            Rule::EncryptionResourceUncovered,
            Severity::High,
            At::key(&object.node, "", "resources"),
            "no resources entry names secrets (or *. or *.*), so Secrets are stored in \
             plaintext"
                .to_owned(),
            "Add an entry `- resources: [secrets]` whose first provider encrypts (kms v2 or \
             secretbox), followed by `identity: {}` only while migrating."
                .to_owned(),
        );
        return None;
    };
    effective
        .first()
        .copied()
        .flatten()
        .filter(|t| matches!(*t, "aescbc" | "aesgcm" | "secretbox"))
}

const PROVIDERS: [&str; 5] = ["aescbc", "aesgcm", "identity", "kms", "secretbox"];

/// The provider type of a `providers[]` element (its one key).
fn provider_type(provider: &Node) -> Option<&'static str> {
    let key = provider.entries().first()?.key.as_str();
    PROVIDERS.iter().find(|p| **p == key).copied()
}

fn identity_first(
    ctx: &mut Ctx<'_>,
    object: &Object,
    providers: &[(&Node, Option<&'static str>)],
    path: &str,
    names: &[&str],
    covers_secrets: bool,
) {
    let Some((first, Some("identity"))) = providers.first() else {
        return;
    };
    let only = providers.len() == 1;
    let (severity, consequence) = if covers_secrets {
        (
            Severity::Critical,
            "Secrets are written to etcd in plaintext".to_owned(),
        )
    } else if only {
        (
            Severity::Low,
            "these resources are deliberately stored unencrypted".to_owned(),
        )
    } else {
        (
            Severity::Medium,
            "new writes are stored in plaintext although encrypting providers are listed"
                .to_owned(),
        )
    };
    ctx.report(
        object,
        Rule::EncryptionIdentityFirst,
        severity,
        At::node(first, format!("{path}.providers[0]")),
        format!(
            "identity is the first provider for {}: {consequence}",
            names.join(", ")
        ),
        "Move identity to the end of the providers list (or remove it once all data is \
         re-encrypted) and put an encrypting provider first; then rewrite existing objects \
         (`kubectl get secrets -A -o json | kubectl replace -f -`)."
            .to_owned(),
    );
}

fn weak_providers(
    ctx: &mut Ctx<'_>,
    object: &Object,
    providers: &[(&Node, Option<&'static str>)],
    path: &str,
) {
    for (j, (node, kind)) in providers.iter().enumerate() {
        let why = match kind {
            Some("aescbc") => {
                "aescbc (AES-CBC without authentication) is vulnerable to padding-oracle \
                 attacks and not recommended"
            }
            Some("aesgcm") => {
                "aesgcm uses random 96-bit nonces with a static key: the key must be rotated \
                 every 200,000 writes, which is rarely done"
            }
            Some("kms") => {
                let version = node.at(&["kms", "apiVersion"]).and_then(Node::as_str);
                if matches!(version, None | Some("v1")) {
                    "kms v1 is deprecated and disabled by default since Kubernetes 1.29"
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        let (severity, role) = if j == 0 {
            (Severity::Medium, "it encrypts new writes")
        } else {
            (Severity::Low, "it only decrypts existing data")
        };
        ctx.report(
            object,
            Rule::EncryptionWeakProvider,
            severity,
            At::node(node, format!("{path}.providers[{j}]")),
            format!("{why} ({role})"),
            "Use kms (apiVersion v2) with an external KMS, or secretbox; keep the old provider \
             after the new one until all data has been rewritten."
                .to_owned(),
        );
    }
}

// === kube-apiserver and etcd ===

/// Where the binary is among the tokens (after `sh -c`, `exec`, a path…).
fn binary_position(tokens: &[&str]) -> Option<usize> {
    tokens.iter().position(|t| {
        !t.starts_with('-') && matches!(t.rsplit('/').next(), Some("kube-apiserver" | "etcd"))
    })
}

fn apiserver(ctx: &mut Ctx<'_>, object: &Object, args: &[&str], at: At) {
    if flag(args, "encryption-provider-config").is_none_or(str::is_empty) {
        ctx.report(
            object,
            Rule::EncryptionMissing,
            Severity::High,
            at.clone(),
            "kube-apiserver runs without --encryption-provider-config: Secrets are stored in \
             etcd in plaintext"
                .to_owned(),
            "Write an EncryptionConfiguration for secrets (kms v2 or secretbox first), pass it \
             with --encryption-provider-config, restart, then rewrite all Secrets."
                .to_owned(),
        );
    }
    let Some(servers) = flag(args, "etcd-servers") else {
        return;
    };
    let urls: Vec<&str> = servers.split(',').filter(|s| !s.is_empty()).collect();
    if urls.is_empty() || urls.iter().all(|u| u.starts_with("unix:")) {
        return;
    }
    let mut problems = Vec::new();
    if urls.iter().any(|u| u.starts_with("http://")) {
        problems.push("--etcd-servers uses http:// (no TLS)".to_owned());
    } else if flag(args, "etcd-cafile").is_none_or(str::is_empty) {
        problems.push("no --etcd-cafile (etcd's certificate is not checked against its CA)".into());
    }
    let missing: Vec<&str> = ["etcd-certfile", "etcd-keyfile"]
        .into_iter()
        .filter(|f| flag(args, f).is_none_or(str::is_empty))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "no --{} (no client certificate, so etcd cannot authenticate the API server)",
            missing.join(", --")
        ));
    }
    if problems.is_empty() {
        return;
    }
    ctx.report(
        object,
        Rule::EtcdTransportInsecure,
        Severity::High,
        at,
        format!("kube-apiserver to etcd: {}", problems.join("; ")),
        "Use https:// in --etcd-servers and set --etcd-cafile, --etcd-certfile and \
         --etcd-keyfile (kubeadm: /etc/kubernetes/pki/etcd/ca.crt, apiserver-etcd-client.crt \
         and .key)."
            .to_owned(),
    );
}

fn etcd(ctx: &mut Ctx<'_>, object: &Object, args: &[&str], at: At) {
    let mut problems = Vec::new();
    let mut severity = Severity::Medium;
    let listen = flag(args, "listen-client-urls").unwrap_or("http://localhost:2379");
    let client_urls: Vec<&str> = listen.split(',').filter(|s| !s.is_empty()).collect();
    let plain: Vec<&&str> = client_urls
        .iter()
        .filter(|u| u.starts_with("http://"))
        .collect();
    if plain.iter().any(|u| !is_loopback(u)) {
        severity = Severity::High;
        problems.push("serves clients over http:// on a non-loopback address".to_owned());
    } else if !plain.is_empty() {
        problems.push("serves clients over http:// on loopback".to_owned());
    }
    let https = client_urls.iter().any(|u| u.starts_with("https://"));
    if https {
        let missing: Vec<&str> = ["cert-file", "key-file"]
            .into_iter()
            .filter(|f| flag(args, f).is_none_or(str::is_empty))
            .collect();
        if !missing.is_empty() {
            severity = Severity::High;
            problems.push(format!("https without --{}", missing.join(", --")));
        }
    }
    let client_auth = flag(args, "client-cert-auth");
    if !matches!(client_auth, Some("" | "true")) {
        severity = Severity::High;
        problems.push(
            "--client-cert-auth is not true: any client that reaches etcd can read every \
             stored Secret"
                .to_owned(),
        );
    } else if flag(args, "trusted-ca-file").is_none_or(str::is_empty) {
        severity = Severity::High;
        problems.push("--client-cert-auth without --trusted-ca-file".to_owned());
    }
    let peers = flag(args, "listen-peer-urls").unwrap_or("");
    let remote_peers = peers.split(',').any(|u| !u.is_empty() && !is_loopback(u));
    if remote_peers {
        if peers.split(',').any(|u| u.starts_with("http://")) {
            problems.push("peers talk over http:// (replication traffic in clear)".to_owned());
        }
        if !matches!(flag(args, "peer-client-cert-auth"), Some("" | "true")) {
            problems.push("--peer-client-cert-auth is not true".to_owned());
        }
    }
    if problems.is_empty() {
        return;
    }
    ctx.report(
        object,
        Rule::EtcdTransportInsecure,
        severity,
        at,
        format!("etcd: {}", problems.join("; ")),
        "Run etcd with https:// listen URLs, --cert-file/--key-file, --client-cert-auth=true \
         and --trusted-ca-file, and the --peer-* equivalents."
            .to_owned(),
    );
}

fn is_loopback(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") || host.starts_with("127.")
}

// === co-location ===

struct Placement<'a> {
    object: &'a Object,
    node_name: Option<&'a str>,
    line: Option<usize>,
}

impl Placement<'_> {
    fn describe(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.object.file),
            None => self.object.file.to_string(),
        }
    }
}

/// Evidence that some kube-apiserver and some etcd share a node.
fn colocation(apiservers: &[Placement<'_>], etcds: &[Placement<'_>]) -> Option<String> {
    for a in apiservers {
        for e in etcds {
            let same_node = a.node_name.is_some() && a.node_name == e.node_name;
            let same_dir = a.object.resource.kind == "Pod"
                && e.object.resource.kind == "Pod"
                && a.object.dir.is_some()
                && a.object.dir == e.object.dir;
            let how = if same_node {
                format!("node \"{}\"", a.node_name.unwrap_or_default())
            } else if same_dir {
                format!(
                    "static pod directory \"{}\"",
                    a.object.dir.as_deref().unwrap_or_default()
                )
            } else {
                continue;
            };
            return Some(format!(
                "kube-apiserver ({}) and etcd ({}) run on the same node ({how})",
                a.describe(),
                e.describe()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback() {
        assert!(is_loopback("http://127.0.0.1:2379"));
        assert!(is_loopback("http://localhost:2379"));
        assert!(is_loopback("https://[::1]:2379"));
        assert!(!is_loopback("http://10.0.0.5:2379"));
        assert!(!is_loopback("http://0.0.0.0:2379"));
    }

    #[test]
    fn binary_after_shell() {
        let t = ["/bin/sh", "-c", "exec", "/usr/local/bin/etcd", "--name=x"];
        assert_eq!(binary_position(&t), Some(3));
        assert_eq!(binary_position(&["kube-scheduler"]), None);
    }
}
