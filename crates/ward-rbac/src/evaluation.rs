//! Whether one rule allows one request: upstream's `RuleAllows`
//! (`plugin/pkg/auth/authorizer/rbac/rbac.go`) and its helpers
//! (`pkg/apis/rbac/v1/evaluation_helpers.go`), line for line.
//!
//! # Policy
//!
//! - Verbs and API groups match exactly or through `*`. Matching is case-sensitive (`GET` is
//!   not `get`).
//! - A resource matches `*`, the exact `resource` or `resource/subresource`, or, for a request
//!   with a subresource, `*/subresource`. A rule for `secrets` does not cover `secrets/status`.
//! - An empty `resourceNames` matches every name; otherwise the request's name must be listed,
//!   so a request without a name (list, create, …) never matches a rule with names.
//! - A non-resource URL matches `*`, the exact path, or a pattern ending in `*` as a prefix
//!   (`/apis/*` matches `/apis/` and `/apis/apps` but not `/apis`).

use crate::policy::PolicyRule;
use crate::request::Attributes;

impl PolicyRule {
    /// Whether this rule allows the request (upstream's `RuleAllows`). The user is not looked
    /// at: that is the binding's business.
    pub fn allows(&self, attributes: &Attributes) -> bool {
        if attributes.resource_request {
            verb_matches(self, &attributes.verb)
                && api_group_matches(self, &attributes.api_group)
                && resource_matches(self, &attributes.resource, &attributes.subresource)
                && resource_name_matches(self, &attributes.name)
        } else {
            verb_matches(self, &attributes.verb) && non_resource_url_matches(self, &attributes.path)
        }
    }
}

pub(crate) fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

pub(crate) fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

/// Upstream's `ResourceMatches` with `combinedRequestedResource` (`resource` or
/// `resource/subresource`) compared piecewise, so that no string is built per decision.
pub(crate) fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        if r == ALL {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        // `resource/subresource` exactly, or `*/subresource`.
        let is_combined = |head: &str| {
            r.len() == head.len() + 1 + subresource.len()
                && r.starts_with(head)
                && r[head.len()..].starts_with('/')
                && r.ends_with(subresource)
        };
        is_combined(resource) || is_combined(ALL)
    })
}

pub(crate) fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

pub(crate) fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|url| {
        url == ALL
            || url == path
            || (url.ends_with('*') && path.starts_with(url.trim_end_matches('*')))
    })
}

/// The wildcard for verbs, API groups, resources and non-resource URLs.
pub(crate) const ALL: &str = "*";
