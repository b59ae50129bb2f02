//! The rules. Each module checks one family of objects and reports through [`Ctx`].
//!
//! Rules see every scanned object at once, because some findings need two objects: a pod and
//! its ServiceAccount (`sa-token-automount`), or an EncryptionConfiguration and the static pods
//! of etcd and kube-apiserver on one node (`encryption-key-colocated`).
//!
//! Objects made by a controller (a Pod owned by a ReplicaSet owned by a Deployment, as in a
//! `kubectl get all -A -o yaml` dump) are not checked again when their owner was scanned too, so
//! a dump reports each problem once, on the object a user edits.

mod audit;
mod control_plane;
mod data;
mod rbac;
mod workload;

use std::collections::HashSet;

use crate::finding::{Finding, Rule, Severity};
use crate::input::Object;
use crate::yaml::Node;

/// Runs every rule and returns the findings sorted by severity (worst first), file, document,
/// line and rule.
pub(crate) fn run_all(objects: &[Object]) -> Vec<Finding> {
    let mut ctx = Ctx {
        objects,
        findings: Vec::new(),
        quiet_accounts: objects
            .iter()
            .filter(|o| {
                o.resource.kind == "ServiceAccount"
                    && o.node
                        .get("automountServiceAccountToken")
                        .and_then(Node::as_bool)
                        == Some(false)
            })
            .filter_map(|o| {
                let namespace = o.resource.namespace.as_deref().unwrap_or("default");
                Some((namespace.to_owned(), o.resource.name.clone()?))
            })
            .collect(),
        scanned: objects
            .iter()
            .map(|o| {
                (
                    o.resource.namespace.clone(),
                    o.resource.kind.clone(),
                    o.resource.name.clone(),
                )
            })
            .collect(),
    };
    for object in objects {
        workload::check(&mut ctx, object);
        data::check(&mut ctx, object);
        rbac::check(&mut ctx, object);
        audit::check(&mut ctx, object);
    }
    control_plane::check(&mut ctx);
    let mut findings = ctx.findings;
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.document.cmp(&b.document))
            .then_with(|| a.item.cmp(&b.item))
            .then_with(|| a.line.cmp(&b.line))
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.path.cmp(&b.path))
    });
    findings
}

/// What the rules share: all objects, and the findings so far.
pub(crate) struct Ctx<'a> {
    pub(crate) objects: &'a [Object],
    findings: Vec<Finding>,
    /// (namespace, kind, name) of every scanned object, to skip controller-owned copies.
    scanned: HashSet<(Option<String>, String, Option<String>)>,
    /// (namespace, name) of scanned ServiceAccounts with automountServiceAccountToken: false.
    quiet_accounts: HashSet<(String, String)>,
}

/// Where in an object the evidence is.
#[derive(Clone, Debug)]
pub(crate) struct At {
    pub(crate) path: String,
    pub(crate) line: Option<usize>,
}

impl At {
    /// The location of `key` inside the mapping `parent` found at `parent_path`.
    pub(crate) fn key(parent: &Node, parent_path: &str, key: &str) -> At {
        let entry = parent.entry(key);
        At {
            path: join(parent_path, key),
            line: entry
                .and_then(|e| e.key_line.or(e.value.line))
                .or(parent.line),
        }
    }

    /// The location of a node at `path`.
    pub(crate) fn node(node: &Node, path: impl Into<String>) -> At {
        At {
            path: path.into(),
            line: node.line,
        }
    }
}

/// `a.b` (or `b` when `a` is empty); keys that are not plain identifiers are bracketed, as in
/// kubectl's JSONPath: `data['tls.key']`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!(
            "{parent}['{}']",
            key.replace('\\', "\\\\").replace('\'', "\\'")
        ),
    }
}

impl Ctx<'_> {
    /// Records a finding.
    pub(crate) fn report(
        &mut self,
        object: &Object,
        rule: Rule,
        severity: Severity,
        at: At,
        message: String,
        fix: String,
    ) {
        self.findings.push(Finding {
            rule,
            severity,
            threat: rule.threat(),
            resource: object.resource.clone(),
            file: object.file.to_string(),
            document: object.document,
            item: object.item,
            line: at.line.or(object.node.line),
            path: at.path,
            message,
            fix,
        });
    }

    /// Whether a scanned ServiceAccount opts out of token automounting.
    pub(crate) fn account_opts_out(&self, namespace: &str, name: &str) -> bool {
        self.quiet_accounts
            .contains(&(namespace.to_owned(), name.to_owned()))
    }

    /// Whether `object` was made by a controller that is itself in the scan.
    pub(crate) fn owned_by_scanned(&self, object: &Object) -> bool {
        let Some(owners) = object.node.at(&["metadata", "ownerReferences"]) else {
            return false;
        };
        owners.items().iter().any(|owner| {
            owner.get("controller").and_then(Node::as_bool) == Some(true)
                && owner
                    .get("kind")
                    .and_then(Node::as_str)
                    .is_some_and(|kind| {
                        self.scanned.contains(&(
                            object.resource.namespace.clone(),
                            kind.to_owned(),
                            owner.get("name").and_then(Node::as_str).map(str::to_owned),
                        ))
                    })
        })
    }
}

/// The pod spec of a workload and its path: `spec` for a Pod, `spec.template.spec` for a
/// Deployment and friends, `spec.jobTemplate.spec.template.spec` for a CronJob.
pub(crate) fn pod_spec(object: &Object) -> Option<(&Node, &'static str)> {
    let path: &[&str] = match object.resource.kind.as_str() {
        "Pod" => &["spec"],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        "PodTemplate" => &["template", "spec"],
        _ => return None,
    };
    let spec = object.node.at(path)?;
    spec.is_map().then(|| (spec, dotted(path)))
}

fn dotted(path: &[&str]) -> &'static str {
    match path.len() {
        1 => "spec",
        2 => "template.spec",
        3 => "spec.template.spec",
        _ => "spec.jobTemplate.spec.template.spec",
    }
}

/// The containers of a pod spec, across `initContainers`, `containers` and
/// `ephemeralContainers`, with their paths.
pub(crate) fn containers<'a>(
    spec: &'a Node,
    prefix: &str,
) -> impl Iterator<Item = (&'a Node, String)> {
    let prefix = prefix.to_owned();
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |field| {
            let prefix = prefix.clone();
            spec.get(field)
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(move |(i, c)| (c, format!("{prefix}.{field}[{i}]")))
        })
}

/// `command` and `args` of a container as separate tokens (shell strings are split on spaces).
pub(crate) fn command_line(container: &Node) -> Vec<&str> {
    ["command", "args"]
        .iter()
        .flat_map(|k| container.get(k).map(Node::strings).unwrap_or_default())
        .flat_map(str::split_whitespace)
        .collect()
}

/// The value of `--name` in a command line: `--name=value`, `--name value`, or `""` for a bare
/// boolean `--name`.
pub(crate) fn flag<'a>(tokens: &[&'a str], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let mut found = None;
    for (i, token) in tokens.iter().enumerate() {
        if let Some(value) = token.strip_prefix(&long) {
            if let Some(value) = value.strip_prefix('=') {
                found = Some(value);
            } else if value.is_empty() {
                found = Some(
                    tokens
                        .get(i + 1)
                        .filter(|next| !next.starts_with('-'))
                        .copied()
                        .unwrap_or(""),
                );
            }
        }
    }
    found
}

/// A quoted name for messages.
pub(crate) fn q(name: Option<&str>) -> String {
    format!("\"{}\"", name.unwrap_or("?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(join("", "spec"), "spec");
        assert_eq!(join("data", "DB_PASSWORD"), "data.DB_PASSWORD");
        assert_eq!(join("data", "tls.key"), "data['tls.key']");
        assert_eq!(join("data", "it's"), "data['it\\'s']");
    }

    #[test]
    fn flags() {
        let t = [
            "kube-apiserver",
            "--etcd-servers=https://a:2379",
            "--client-cert-auth",
            "--x",
            "y",
        ];
        assert_eq!(flag(&t, "etcd-servers"), Some("https://a:2379"));
        assert_eq!(flag(&t, "client-cert-auth"), Some(""));
        assert_eq!(flag(&t, "x"), Some("y"));
        assert_eq!(flag(&t, "etcd"), None);
    }
}
