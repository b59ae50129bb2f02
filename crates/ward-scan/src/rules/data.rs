//! Rules on stored data: `secret-like-configmap` and `legacy-sa-token-secret`.
//!
//! The values of Secrets are never read. ConfigMap values are read to classify them, and only
//! the classification leaves this module.

use crate::detect::{self, Confidence, Detection};
use crate::finding::{Rule, Severity};
use crate::input::Object;
use crate::rules::{At, Ctx, q};
use crate::yaml::Node;

pub(crate) fn check(ctx: &mut Ctx<'_>, object: &Object) {
    match object.resource.kind.as_str() {
        "ConfigMap" => config_map(ctx, object),
        "Secret" => secret(ctx, object),
        _ => {}
    }
}

fn config_map(ctx: &mut Ctx<'_>, object: &Object) {
    let fix = "Move the credential into a Secret and rotate it (the ConfigMap was readable by \
               `view`); mount the Secret into the pod as a file.";
    if let Some(data) = object.node.get("data") {
        for entry in data.entries() {
            let Some(value) = entry.value.as_str() else {
                continue;
            };
            let at = At::key(data, "data", &entry.key);
            if value.contains('\n') {
                for (offset, inner_key, found) in detect::assess_text(value) {
                    let setting = inner_key
                        .map(|k| format!(", setting {}", q(Some(&k))))
                        .unwrap_or_default();
                    let message = format!(
                        "key {} (line {} of the embedded file{setting}): {}",
                        q(Some(&entry.key)),
                        offset + 1,
                        found.reason
                    );
                    report(ctx, object, &found, at.clone(), message, fix);
                }
            } else if let Some(found) = detect::assess(&entry.key, value, true) {
                let message = format!("key {}: {}", q(Some(&entry.key)), found.reason);
                report(ctx, object, &found, at, message, fix);
            }
        }
    }
    if let Some(binary) = object.node.get("binaryData") {
        for entry in binary.entries() {
            let Some(value) = entry.value.as_str() else {
                continue;
            };
            if let Some(found) = detect::assess_binary(value) {
                let message = format!("binaryData key {}: {}", q(Some(&entry.key)), found.reason);
                let at = At::key(binary, "binaryData", &entry.key);
                report(ctx, object, &found, at, message, fix);
            }
        }
    }
}

fn report(
    ctx: &mut Ctx<'_>,
    object: &Object,
    found: &Detection,
    at: At,
    message: String,
    fix: &str,
) {
    let severity = match found.confidence {
        Confidence::Format => Severity::High,
        Confidence::KeyName => Severity::Medium,
        Confidence::Entropy => Severity::Low,
    };
    ctx.report(
        object,
        Rule::SecretLikeConfigmap,
        severity,
        at,
        message,
        fix.to_owned(),
    );
}

fn secret(ctx: &mut Ctx<'_>, object: &Object) {
    let Some(type_node) = object.node.get("type") else {
        return;
    };
    if type_node.as_str() != Some("kubernetes.io/service-account-token") {
        return;
    }
    let account = object
        .node
        .at(&[
            "metadata",
            "annotations",
            "kubernetes.io/service-account.name",
        ])
        .and_then(Node::as_str);
    ctx.report(
        object,
        Rule::LegacySaTokenSecret,
        Severity::Medium,
        At::key(&object.node, "", "type"),
        format!(
            "Secret holds a long-lived, non-expiring token of ServiceAccount {}",
            q(account)
        ),
        "Delete the Secret and use short-lived tokens: a projected serviceAccountToken volume \
         in pods, `kubectl create token` or the TokenRequest API elsewhere."
            .to_owned(),
    );
}
