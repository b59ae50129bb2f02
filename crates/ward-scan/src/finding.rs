//! What a finding is, and the catalog of rules with their stable ids.
//!
//! # Redaction policy
//!
//! A finding names *where* a secret is exposed and *what* looked wrong, never the value: messages
//! may contain object names, key names, field paths, provider names, flag names and the name of a
//! token format ("AWS access key ID"), but no scalar that a rule inspected as a possible secret,
//! not even a prefix or a length. Flag values that are paths or URLs (`--etcd-servers`) are
//! configuration, not secrets, but are still summarised (`http://`) rather than echoed, so that a
//! URL carrying a password cannot leak. The canary tests in `tests/it/canary.rs` hold every output
//! format to this.

use std::fmt;

use serde::Serialize;

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a problem by itself.
    Info,
    /// Hardening: reduces the damage of another failure.
    Low,
    /// Exposes secrets to a wider audience than needed.
    Medium,
    /// Exposes secret values to principals or places that should not have them.
    High,
    /// Secret values are readable in plaintext by design of the configuration.
    Critical,
}

impl Severity {
    /// The lower-case name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of the threat model a rule serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Threat {
    /// Reading secrets through the Kubernetes API (RBAC, things readable by `view`).
    #[serde(rename = "api")]
    Api,
    /// Secrets stored on disk: etcd, backups, audit logs.
    #[serde(rename = "at-rest")]
    AtRest,
    /// Secrets on the wire between components.
    #[serde(rename = "in-transit")]
    InTransit,
    /// Secrets on a node: files, environment, host access from a pod.
    #[serde(rename = "node")]
    Node,
}

impl Threat {
    /// The name used in JSON and SARIF.
    pub fn as_str(self) -> &'static str {
        match self {
            Threat::Api => "api",
            Threat::AtRest => "at-rest",
            Threat::InTransit => "in-transit",
            Threat::Node => "node",
        }
    }
}

/// A rule, identified by a stable id (`secret-env-var`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// `audit-logs-secret-values`
    AuditLogsSecretValues,
    /// `encryption-identity-first`
    EncryptionIdentityFirst,
    /// `encryption-key-colocated`
    EncryptionKeyColocated,
    /// `encryption-missing`
    EncryptionMissing,
    /// `encryption-resource-uncovered`
    EncryptionResourceUncovered,
    /// `encryption-weak-provider`
    EncryptionWeakProvider,
    /// `etcd-transport-insecure`
    EtcdTransportInsecure,
    /// `hostpath-mount`
    HostpathMount,
    /// `legacy-sa-token-secret`
    LegacySaTokenSecret,
    /// `literal-credential-env`
    LiteralCredentialEnv,
    /// `privileged-node-access`
    PrivilegedNodeAccess,
    /// `rbac-escalation`
    RbacEscalation,
    /// `rbac-implied-secret-access`
    RbacImpliedSecretAccess,
    /// `rbac-secret-read`
    RbacSecretRead,
    /// `sa-token-automount`
    SaTokenAutomount,
    /// `secret-env-var`
    SecretEnvVar,
    /// `secret-file-mode`
    SecretFileMode,
    /// `secret-like-configmap`
    SecretLikeConfigmap,
    /// `secret-subpath-mount`
    SecretSubpathMount,
}

impl Rule {
    /// Every rule, in id order.
    pub const ALL: [Rule; 19] = [
        Rule::AuditLogsSecretValues,
        Rule::EncryptionIdentityFirst,
        Rule::EncryptionKeyColocated,
        Rule::EncryptionMissing,
        Rule::EncryptionResourceUncovered,
        Rule::EncryptionWeakProvider,
        Rule::EtcdTransportInsecure,
        Rule::HostpathMount,
        Rule::LegacySaTokenSecret,
        Rule::LiteralCredentialEnv,
        Rule::PrivilegedNodeAccess,
        Rule::RbacEscalation,
        Rule::RbacImpliedSecretAccess,
        Rule::RbacSecretRead,
        Rule::SaTokenAutomount,
        Rule::SecretEnvVar,
        Rule::SecretFileMode,
        Rule::SecretLikeConfigmap,
        Rule::SecretSubpathMount,
    ];

    /// The stable id.
    pub fn id(self) -> &'static str {
        self.info().id
    }

    /// The threat the rule serves.
    pub fn threat(self) -> Threat {
        self.info().threat
    }

    /// The severity of the rule's most serious findings (used as SARIF's default level).
    pub fn default_severity(self) -> Severity {
        self.info().severity
    }

    /// One line: what the rule looks for.
    pub fn summary(self) -> &'static str {
        self.info().summary
    }

    /// Why it matters and how to fix it in general; findings carry a specific fix.
    pub fn help(self) -> &'static str {
        self.info().help
    }

    fn info(self) -> &'static RuleInfo {
        let index = Rule::ALL.iter().position(|r| *r == self).unwrap_or(0);
        &RULES[index]
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// The object a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Resource {
    /// `apiVersion`, if the object has one.
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, if set.
    pub namespace: Option<String>,
    /// `metadata.name` (or `generateName` followed by `*`), if set.
    pub name: Option<String>,
}

/// One problem found in the scanned input.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Finding {
    /// The rule that fired.
    pub rule: Rule,
    /// How bad this instance is (a rule can fire at several severities).
    pub severity: Severity,
    /// The threat the rule serves.
    pub threat: Threat,
    /// The object the evidence is in.
    pub resource: Resource,
    /// The file, as given on the command line (or found under a given directory); `-` is stdin.
    pub file: String,
    /// 0-based index of the YAML document in the file.
    pub document: usize,
    /// 0-based index in the `items` of a `List` document, if the object came from one.
    pub item: Option<usize>,
    /// 1-based line of the evidence, when known.
    pub line: Option<usize>,
    /// Field path of the evidence inside the object (`spec.template.spec.containers[0].env[1]`).
    pub path: String,
    /// What is wrong. Never contains a secret value.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

struct RuleInfo {
    id: &'static str,
    threat: Threat,
    severity: Severity,
    summary: &'static str,
    help: &'static str,
}

/// In the order of [`Rule::ALL`].
const RULES: [RuleInfo; 19] = [
    RuleInfo {
        id: "audit-logs-secret-values",
        threat: Threat::AtRest,
        severity: Severity::High,
        summary: "Audit policy logs Secret bodies (Request or RequestResponse level)",
        help: "At Request level the audit log holds the body of every create/update/patch of a \
               Secret, at RequestResponse also every response, so secret values end up in log \
               files and log pipelines. Rules are matched in order and the first match wins: put \
               `- level: Metadata` with `resources: [{group: \"\", resources: [secrets]}]` before \
               any rule that logs bodies.",
    },
    RuleInfo {
        id: "encryption-identity-first",
        threat: Threat::AtRest,
        severity: Severity::Critical,
        summary: "`identity` is the first provider of an EncryptionConfiguration block",
        help: "kube-apiserver writes with the first provider of a block; with `identity` first, \
               new and updated objects are stored in etcd in plaintext, whatever providers \
               follow. Put an encrypting provider (kms v2, secretbox, aesgcm) first and keep \
               `identity` last only while migrating.",
    },
    RuleInfo {
        id: "encryption-key-colocated",
        threat: Threat::AtRest,
        severity: Severity::High,
        summary: "Static encryption key on the same node as etcd",
        help: "With aescbc, aesgcm or secretbox the key sits in a file on the API server's node. \
               When etcd runs on that node too (kubeadm's stacked control plane), whoever can \
               read the node's disk or a node backup gets both the ciphertext and the key. Use \
               a KMS v2 provider, or run etcd on separate hosts.",
    },
    RuleInfo {
        id: "encryption-missing",
        threat: Threat::AtRest,
        severity: Severity::High,
        summary: "kube-apiserver runs without --encryption-provider-config",
        help: "Without an encryption configuration, Secrets are stored in etcd (and its \
               snapshots and backups) in plaintext. Add --encryption-provider-config pointing to \
               an EncryptionConfiguration that encrypts `secrets`.",
    },
    RuleInfo {
        id: "encryption-resource-uncovered",
        threat: Threat::AtRest,
        severity: Severity::High,
        summary: "EncryptionConfiguration does not cover `secrets`",
        help: "Resources with no entry in the EncryptionConfiguration are stored in plaintext. \
               Add `secrets` (or `*.`/`*.*`) to a resources entry whose first provider encrypts.",
    },
    RuleInfo {
        id: "encryption-weak-provider",
        threat: Threat::AtRest,
        severity: Severity::Medium,
        summary: "Encryption provider that is weak or deprecated (aescbc, aesgcm, kms v1)",
        help: "aescbc is not recommended (no authentication, padding oracle). aesgcm needs its \
               key rotated every 200,000 writes, because random 96-bit nonces collide. KMS v1 is \
               deprecated and off by default since 1.29. Prefer kms v2, or secretbox.",
    },
    RuleInfo {
        id: "etcd-transport-insecure",
        threat: Threat::InTransit,
        severity: Severity::High,
        summary: "API server and etcd talk without TLS or without client-certificate auth",
        help: "Everything the API server stores, including every Secret, crosses this link. Use \
               https:// etcd URLs, give kube-apiserver --etcd-cafile, --etcd-certfile and \
               --etcd-keyfile, and run etcd with --client-cert-auth=true and --trusted-ca-file.",
    },
    RuleInfo {
        id: "hostpath-mount",
        threat: Threat::Node,
        severity: Severity::Critical,
        summary: "hostPath volume, especially of /, kubelet, etcd, Kubernetes PKI or runtime socket",
        help: "A hostPath volume lets the pod read the node's files. /var/lib/kubelet holds every \
               Secret mounted on the node, /var/lib/etcd the whole store, /etc/kubernetes the \
               PKI and encryption keys, and a container runtime socket gives root on the node.",
    },
    RuleInfo {
        id: "legacy-sa-token-secret",
        threat: Threat::Api,
        severity: Severity::Medium,
        summary: "Secret of type kubernetes.io/service-account-token (long-lived token)",
        help: "These tokens never expire and are readable by anyone who can read Secrets in the \
               namespace. Use short-lived tokens (TokenRequest, projected volumes, `kubectl \
               create token`) and delete the Secret.",
    },
    RuleInfo {
        id: "literal-credential-env",
        threat: Threat::Api,
        severity: Severity::High,
        summary: "Credential written literally in a container's env or command line",
        help: "Pod specs are readable by everyone with `view` on the namespace, and by whoever \
               reads the manifests' repository. Move the value into a Secret and mount it as a \
               file.",
    },
    RuleInfo {
        id: "privileged-node-access",
        threat: Threat::Node,
        severity: Severity::High,
        summary: "Privileged container, hostPID, hostNetwork or hostIPC",
        help: "A privileged container or one sharing the host's PID namespace can read other \
               containers' memory, environment and files, so every Secret on the node. Remove \
               `privileged`, `hostPID`, `hostIPC`, `hostNetwork` and added capabilities unless \
               the workload is a node agent that needs them.",
    },
    RuleInfo {
        id: "rbac-escalation",
        threat: Threat::Api,
        severity: Severity::High,
        summary: "RBAC rule allowing escalate, bind, impersonate, token minting or nodes/proxy",
        help: "These verbs let a subject obtain permissions it does not hold, including reading \
               Secrets: escalate/bind write roles and bindings beyond one's own rights, \
               impersonate acts as another user, `create serviceaccounts/token` mints tokens, and \
               nodes/proxy reaches the kubelet API (exec in any pod on the node).",
    },
    RuleInfo {
        id: "rbac-implied-secret-access",
        threat: Threat::Api,
        severity: Severity::Medium,
        summary: "RBAC rule allowing pods or workloads to be created or changed (implies reading \
                  Secrets)",
        help: "Whoever can create a pod, or create or change any workload that makes pods, in a \
               namespace can mount any Secret of that namespace and read it, and can run as any \
               service account there. Grant this only to deployers, or use a GitOps controller.",
    },
    RuleInfo {
        id: "rbac-secret-read",
        threat: Threat::Api,
        severity: Severity::High,
        summary: "RBAC rule allowing get, list or watch on Secrets (wildcards included)",
        help: "`list` and `watch` return every Secret with its values, not just names. Grant \
               `get` on named Secrets (resourceNames) only, or mount the Secret into the one pod \
               that needs it.",
    },
    RuleInfo {
        id: "sa-token-automount",
        threat: Threat::Api,
        severity: Severity::Low,
        summary: "Service account token mounted automatically",
        help: "Every pod gets an API token unless automountServiceAccountToken is false; a \
               compromised container can then use the service account's rights. Set \
               `automountServiceAccountToken: false` on the ServiceAccount or pod, and mount a \
               projected token only where the API is needed.",
    },
    RuleInfo {
        id: "secret-env-var",
        threat: Threat::Node,
        severity: Severity::Medium,
        summary: "Secret exposed as environment variables (secretKeyRef, envFrom)",
        help: "Environment variables are inherited by every child process, shown by `docker \
               inspect`/`crictl inspect` and /proc/<pid>/environ, written into crash reports and \
               debug logs, and never updated when the Secret rotates. Mount the Secret as a \
               volume and read the file.",
    },
    RuleInfo {
        id: "secret-file-mode",
        threat: Threat::Node,
        severity: Severity::Medium,
        summary: "Secret volume files readable more widely than 0400/0440",
        help: "Secret volume files default to 0644. Any process in the container under another \
               uid can read them. Set defaultMode (and items[].mode) to 0400, or 0440 with an \
               fsGroup. In YAML, 0400 is octal; in JSON write the decimal 256.",
    },
    RuleInfo {
        id: "secret-like-configmap",
        threat: Threat::Api,
        severity: Severity::High,
        summary: "ConfigMap holding what looks like a credential",
        help: "ConfigMaps are readable by `view`, are usually not encrypted at rest and are \
               printed by `kubectl describe`. Move credentials to a Secret.",
    },
    RuleInfo {
        id: "secret-subpath-mount",
        threat: Threat::Node,
        severity: Severity::Low,
        summary: "Secret mounted with subPath (never updated)",
        help: "A Secret mounted with subPath is copied once and never receives updates, so a \
               rotated credential keeps the old value in running pods. Mount the whole volume \
               (optionally with items) into a directory instead.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_in_id_order_and_unique() {
        let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted);
        assert_eq!(Rule::SecretEnvVar.id(), "secret-env-var");
        assert_eq!(Rule::SecretEnvVar.threat(), Threat::Node);
    }

    #[test]
    fn severities_order() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Info);
    }
}
