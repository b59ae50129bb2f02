//! The `rbac.authorization.k8s.io/v1` objects, parsed from their JSON shape.
//!
//! # Policy
//!
//! Parsing is as lenient as kube-apiserver's JSON decoding into `k8s.io/api/rbac/v1` types: a
//! missing or `null` list is empty, unknown fields are ignored. It is strict where a lenient
//! reading could change a decision: a field of the wrong JSON type, a subject kind other than
//! `User`, `Group` or `ServiceAccount`, a `roleRef.kind` other than `Role` or `ClusterRole`
//! (all rejected by upstream validation) and an invalid aggregation selector are errors. The
//! caller ([`crate::RbacIndex::build`]) leaves such an object out, which can only take
//! permissions away.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use ward_api::selector::{LabelSelector, SelectorError};

/// The API group of the RBAC objects, `rbac.authorization.k8s.io`.
pub const GROUP_NAME: &str = "rbac.authorization.k8s.io";

/// An error parsing an RBAC object from JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A field holds a JSON value of the wrong type.
    #[error("{field}: must be {expected}")]
    InvalidField {
        /// The JSON path of the field, e.g. `rules[2].verbs`.
        field: String,
        /// What the field must hold, e.g. `a list of strings`.
        expected: &'static str,
    },
    /// An aggregation selector does not parse.
    #[error("{field}: invalid label selector")]
    InvalidSelector {
        /// The JSON path of the selector.
        field: String,
        /// Why the selector is invalid.
        #[source]
        source: SelectorError,
    },
    /// A required field is missing or empty.
    #[error("{field}: required value")]
    MissingField {
        /// The JSON path of the field, e.g. `metadata.name`.
        field: String,
    },
    /// A field holds a value outside its enumeration.
    #[error("{field}: unsupported value {value:?}, supported values: {supported}")]
    UnsupportedValue {
        /// The JSON path of the field, e.g. `subjects[0].kind`.
        field: String,
        /// The value found.
        value: String,
        /// The values accepted.
        supported: &'static str,
    },
}

/// One rule of a Role or ClusterRole (`rbacv1.PolicyRule`).
///
/// Serializes to the Kubernetes JSON shape (`verbs`, `apiGroups`, `resources`,
/// `resourceNames`, `nonResourceURLs`, empty lists other than `verbs` left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// The verbs, or `*` for all.
    pub verbs: Vec<String>,
    /// The API groups (`""` is the core group), or `*` for all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// The resources: `secrets`, `pods/exec`, `*/scale`, or `*` for all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// The object names the rule is limited to; empty means every name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// The non-resource paths: exact, a prefix ending in `*`, or `*` for all.
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

/// An aggregation rule: the ClusterRole's rules are the union of the rules of every other
/// ClusterRole whose labels match one of the selectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregationRule {
    /// `clusterRoleSelectors`.
    pub cluster_role_selectors: Vec<LabelSelector>,
}

/// A namespaced Role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `rules`.
    pub rules: Vec<PolicyRule>,
}

/// A ClusterRole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRole {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`, matched by aggregation selectors.
    pub labels: BTreeMap<String, String>,
    /// `aggregationRule`, if the role is aggregated.
    pub aggregation_rule: Option<AggregationRule>,
    /// `rules`. In an [`crate::RbacIndex`], the rules of an aggregated role are the aggregated
    /// ones.
    pub rules: Vec<PolicyRule>,
}

/// A RoleBinding: grants a Role of its namespace, or a ClusterRole limited to its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleBinding {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `roleRef`.
    pub role_ref: RoleRef,
    /// `subjects`.
    pub subjects: Vec<Subject>,
}

/// A ClusterRoleBinding: grants a ClusterRole in every namespace and at the cluster scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRoleBinding {
    /// `metadata.name`.
    pub name: String,
    /// `roleRef`.
    pub role_ref: RoleRef,
    /// `subjects`.
    pub subjects: Vec<Subject>,
}

/// The role a binding grants.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// `apiGroup`, normally [`GROUP_NAME`]. Not used for evaluation, as upstream.
    pub api_group: String,
    /// `kind`.
    pub kind: RoleRefKind,
    /// `name`.
    pub name: String,
}

/// The kind of role a [`RoleRef`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum RoleRefKind {
    /// A ClusterRole.
    ClusterRole,
    /// A Role in the binding's namespace.
    Role,
}

/// One subject of a binding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `kind`.
    pub kind: SubjectKind,
    /// `apiGroup`: `rbac.authorization.k8s.io` for users and groups, `""` for service accounts.
    /// Not used for evaluation, as upstream.
    pub api_group: String,
    /// `name`.
    pub name: String,
    /// `namespace`, for service accounts. In a RoleBinding an empty namespace means the
    /// binding's own.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The kind of a [`Subject`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum SubjectKind {
    /// A group: matches users that carry it.
    Group,
    /// A service account: matches the user `system:serviceaccount:<namespace>:<name>`.
    ServiceAccount,
    /// A user: matches the user name exactly (`*` is not a wildcard).
    User,
}

// === impl PolicyRule ===

impl PolicyRule {
    /// A rule with these verbs and nothing else; add the rest with the builder methods, as
    /// upstream's `rbacv1helpers.NewRule(verbs...).Groups(..).Resources(..)`.
    pub fn new<S: Into<String>>(verbs: impl IntoIterator<Item = S>) -> Self {
        Self {
            verbs: strings(verbs),
            ..Self::default()
        }
    }

    /// Sets the API groups.
    #[must_use]
    pub fn groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.api_groups = strings(groups);
        self
    }

    /// Sets the resources.
    #[must_use]
    pub fn resources<S: Into<String>>(mut self, resources: impl IntoIterator<Item = S>) -> Self {
        self.resources = strings(resources);
        self
    }

    /// Sets the resource names.
    #[must_use]
    pub fn names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.resource_names = strings(names);
        self
    }

    /// Sets the non-resource URLs.
    #[must_use]
    pub fn urls<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.non_resource_urls = strings(urls);
        self
    }

    /// Parses one `rules[]` element.
    ///
    /// # Errors
    ///
    /// [`ParseError::InvalidField`] if the value is not an object or a list is not a list of
    /// strings.
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        rule_from_value(value, "rule")
    }

    /// Upstream's `CompactString`, used in escalation errors:
    /// `{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}`, empty lists left out.
    pub fn compact_string(&self) -> String {
        let fields = [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ];
        let parts: Vec<String> = fields
            .iter()
            .filter(|(_, values)| !values.is_empty())
            .map(|(label, values)| format!("{label}:{}", crate::go_fmt::quote_list(values)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

/// As upstream's `String()`: `PolicyRule` followed by [`PolicyRule::compact_string`].
impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyRule{}", self.compact_string())
    }
}

// === impl Role, ClusterRole, RoleBinding, ClusterRoleBinding ===

impl Role {
    /// Parses a Role.
    ///
    /// # Errors
    ///
    /// [`ParseError::MissingField`] without `metadata.name` or `metadata.namespace`;
    /// [`ParseError::InvalidField`] if a field has the wrong JSON type.
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        let object = as_object(value, "")?;
        let metadata = metadata(object)?;
        Ok(Self {
            namespace: required_string(metadata, "namespace", "metadata.namespace")?,
            name: required_string(metadata, "name", "metadata.name")?,
            rules: rules(object)?,
        })
    }
}

impl ClusterRole {
    /// Parses a ClusterRole.
    ///
    /// # Errors
    ///
    /// [`ParseError::MissingField`] without `metadata.name`; [`ParseError::InvalidField`] if a
    /// field has the wrong JSON type; [`ParseError::InvalidSelector`] if an aggregation
    /// selector does not parse.
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        let object = as_object(value, "")?;
        let metadata = metadata(object)?;
        let labels = match metadata.get("labels") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(labels)) => labels
                .iter()
                .map(|(key, value)| match value {
                    Value::String(value) => Ok((key.clone(), value.clone())),
                    _ => Err(invalid(format!("metadata.labels.{key}"), "a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("metadata.labels", "an object")),
        };
        Ok(Self {
            name: required_string(metadata, "name", "metadata.name")?,
            labels,
            aggregation_rule: aggregation_rule(object)?,
            rules: rules(object)?,
        })
    }
}

impl RoleBinding {
    /// Parses a RoleBinding.
    ///
    /// # Errors
    ///
    /// [`ParseError::MissingField`] without `metadata.name`, `metadata.namespace`,
    /// `roleRef.name` or a subject name; [`ParseError::UnsupportedValue`] for an unknown
    /// `roleRef.kind` or subject kind; [`ParseError::InvalidField`] if a field has the wrong
    /// JSON type.
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        let object = as_object(value, "")?;
        let metadata = metadata(object)?;
        Ok(Self {
            namespace: required_string(metadata, "namespace", "metadata.namespace")?,
            name: required_string(metadata, "name", "metadata.name")?,
            role_ref: role_ref(object)?,
            subjects: subjects(object)?,
        })
    }
}

impl ClusterRoleBinding {
    /// Parses a ClusterRoleBinding.
    ///
    /// # Errors
    ///
    /// As [`RoleBinding::from_value`], without the namespace.
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        let object = as_object(value, "")?;
        let metadata = metadata(object)?;
        Ok(Self {
            name: required_string(metadata, "name", "metadata.name")?,
            role_ref: role_ref(object)?,
            subjects: subjects(object)?,
        })
    }
}

// === impl RoleRef, RoleRefKind, Subject, SubjectKind ===

impl RoleRef {
    /// A reference to the ClusterRole `name`.
    pub fn cluster_role(name: impl Into<String>) -> Self {
        Self {
            api_group: GROUP_NAME.to_owned(),
            kind: RoleRefKind::ClusterRole,
            name: name.into(),
        }
    }

    /// A reference to the Role `name` in the binding's namespace.
    pub fn role(name: impl Into<String>) -> Self {
        Self {
            api_group: GROUP_NAME.to_owned(),
            kind: RoleRefKind::Role,
            name: name.into(),
        }
    }
}

impl RoleRefKind {
    /// `ClusterRole` or `Role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterRole => "ClusterRole",
            Self::Role => "Role",
        }
    }

    /// The resource the role is stored as: `clusterroles` or `roles`.
    pub fn resource(self) -> &'static str {
        match self {
            Self::ClusterRole => "clusterroles",
            Self::Role => "roles",
        }
    }
}

impl fmt::Display for RoleRefKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Subject {
    /// The user `name`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: SubjectKind::User,
            api_group: GROUP_NAME.to_owned(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    /// The group `name`.
    pub fn group(name: impl Into<String>) -> Self {
        Self {
            kind: SubjectKind::Group,
            api_group: GROUP_NAME.to_owned(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    /// The service account `namespace/name` (`namespace` may be empty in a RoleBinding).
    pub fn service_account(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: SubjectKind::ServiceAccount,
            api_group: String::new(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    /// Parses one `subjects[]` element.
    ///
    /// # Errors
    ///
    /// [`ParseError::MissingField`] without a kind or name; [`ParseError::UnsupportedValue`]
    /// for an unknown kind; [`ParseError::InvalidField`] for a field of the wrong JSON type.
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        subject_from_value(value, "subject")
    }
}

impl SubjectKind {
    /// `Group`, `ServiceAccount` or `User`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Group => "Group",
            Self::ServiceAccount => "ServiceAccount",
            Self::User => "User",
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === parsing helpers ===

fn strings<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Vec<String> {
    values.into_iter().map(Into::into).collect()
}

fn invalid(field: impl Into<String>, expected: &'static str) -> ParseError {
    ParseError::InvalidField {
        field: field.into(),
        expected,
    }
}

fn missing(field: impl Into<String>) -> ParseError {
    ParseError::MissingField {
        field: field.into(),
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn as_object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ParseError> {
    value
        .as_object()
        .ok_or_else(|| invalid(if field.is_empty() { "object" } else { field }, "an object"))
}

fn metadata(object: &Map<String, Value>) -> Result<&Map<String, Value>, ParseError> {
    match object.get("metadata") {
        Some(Value::Object(metadata)) => Ok(metadata),
        None | Some(Value::Null) => Err(missing("metadata.name")),
        Some(_) => Err(invalid("metadata", "an object")),
    }
}

/// An optional string: missing and `null` are `""`.
fn optional_string(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<String, ParseError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(invalid(field, "a string")),
    }
}

fn required_string(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<String, ParseError> {
    let value = optional_string(object, key, field)?;
    if value.is_empty() {
        return Err(missing(field));
    }
    Ok(value)
}

fn string_list(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Vec<String>, ParseError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(value) => Ok(value.clone()),
                _ => Err(invalid(field, "a list of strings")),
            })
            .collect(),
        Some(_) => Err(invalid(field, "a list of strings")),
    }
}

fn rule_from_value(value: &Value, field: &str) -> Result<PolicyRule, ParseError> {
    let object = as_object(value, field)?;
    Ok(PolicyRule {
        verbs: string_list(object, "verbs", &join(field, "verbs"))?,
        api_groups: string_list(object, "apiGroups", &join(field, "apiGroups"))?,
        resources: string_list(object, "resources", &join(field, "resources"))?,
        resource_names: string_list(object, "resourceNames", &join(field, "resourceNames"))?,
        non_resource_urls: string_list(object, "nonResourceURLs", &join(field, "nonResourceURLs"))?,
    })
}

fn rules(object: &Map<String, Value>) -> Result<Vec<PolicyRule>, ParseError> {
    match object.get("rules") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| rule_from_value(item, &format!("rules[{i}]")))
            .collect(),
        Some(_) => Err(invalid("rules", "a list")),
    }
}

fn aggregation_rule(object: &Map<String, Value>) -> Result<Option<AggregationRule>, ParseError> {
    let rule = match object.get("aggregationRule") {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => as_object(value, "aggregationRule")?,
    };
    let selectors = match rule.get("clusterRoleSelectors") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                // A `null` element decodes to an empty `metav1.LabelSelector` upstream, and
                // `LabelSelectorAsSelector` turns that into "everything".
                Value::Null => Ok(LabelSelector::everything()),
                _ => LabelSelector::from_json(item).map_err(|source| ParseError::InvalidSelector {
                    field: format!("aggregationRule.clusterRoleSelectors[{i}]"),
                    source,
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("aggregationRule.clusterRoleSelectors", "a list")),
    };
    Ok(Some(AggregationRule {
        cluster_role_selectors: selectors,
    }))
}

fn role_ref(object: &Map<String, Value>) -> Result<RoleRef, ParseError> {
    let role_ref = match object.get("roleRef") {
        None | Some(Value::Null) => return Err(missing("roleRef.name")),
        Some(value) => as_object(value, "roleRef")?,
    };
    let kind = match optional_string(role_ref, "kind", "roleRef.kind")?.as_str() {
        "ClusterRole" => RoleRefKind::ClusterRole,
        "Role" => RoleRefKind::Role,
        "" => return Err(missing("roleRef.kind")),
        other => {
            return Err(ParseError::UnsupportedValue {
                field: "roleRef.kind".to_owned(),
                value: other.to_owned(),
                supported: "\"ClusterRole\", \"Role\"",
            });
        }
    };
    Ok(RoleRef {
        api_group: optional_string(role_ref, "apiGroup", "roleRef.apiGroup")?,
        kind,
        name: required_string(role_ref, "name", "roleRef.name")?,
    })
}

fn subjects(object: &Map<String, Value>) -> Result<Vec<Subject>, ParseError> {
    match object.get("subjects") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| subject_from_value(item, &format!("subjects[{i}]")))
            .collect(),
        Some(_) => Err(invalid("subjects", "a list")),
    }
}

fn subject_from_value(value: &Value, field: &str) -> Result<Subject, ParseError> {
    let object = as_object(value, field)?;
    let kind_field = join(field, "kind");
    let kind = match optional_string(object, "kind", &kind_field)?.as_str() {
        "Group" => SubjectKind::Group,
        "ServiceAccount" => SubjectKind::ServiceAccount,
        "User" => SubjectKind::User,
        "" => return Err(missing(kind_field)),
        other => {
            return Err(ParseError::UnsupportedValue {
                field: kind_field,
                value: other.to_owned(),
                supported: "\"Group\", \"ServiceAccount\", \"User\"",
            });
        }
    };
    Ok(Subject {
        kind,
        api_group: optional_string(object, "apiGroup", &join(field, "apiGroup"))?,
        name: required_string(object, "name", &join(field, "name"))?,
        namespace: optional_string(object, "namespace", &join(field, "namespace"))?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_a_cluster_role_with_aggregation() {
        let role = ClusterRole::from_value(&json!({
            "metadata": {"name": "admin", "labels": {"a": "b"}},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
                null,
            ]},
            "rules": null,
        }))
        .unwrap();
        assert_eq!(role.name, "admin");
        assert_eq!(role.labels.get("a").map(String::as_str), Some("b"));
        let selectors = role.aggregation_rule.unwrap().cluster_role_selectors;
        assert_eq!(selectors.len(), 2);
        assert!(selectors[1].is_everything());
        assert!(role.rules.is_empty());
    }

    #[test]
    fn rejects_what_validation_rejects() {
        let err = RoleBinding::from_value(&json!({
            "metadata": {"name": "b", "namespace": "ns"},
            "roleRef": {"kind": "Other", "name": "r"},
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"roleRef.kind: unsupported value "Other", supported values: "ClusterRole", "Role""#
        );
        let err = ClusterRoleBinding::from_value(&json!({
            "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "User", "name": "a"}, {"kind": "Robot", "name": "r"}],
        }))
        .unwrap_err();
        assert!(
            matches!(err, ParseError::UnsupportedValue { ref field, .. } if field == "subjects[1].kind")
        );
        let err = Role::from_value(&json!({"metadata": {"name": "r"}})).unwrap_err();
        assert_eq!(err.to_string(), "metadata.namespace: required value");
        let err = Role::from_value(&json!({
            "metadata": {"name": "r", "namespace": "n"},
            "rules": [{"verbs": "get"}],
        }))
        .unwrap_err();
        assert_eq!(err.to_string(), "rules[0].verbs: must be a list of strings");
        let err = ClusterRole::from_value(&json!({
            "metadata": {"name": "r"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchExpressions": [
                {"key": "a", "operator": "Bogus"},
            ]}]},
        }))
        .unwrap_err();
        assert!(matches!(err, ParseError::InvalidSelector { .. }));
    }

    #[test]
    fn compact_string_matches_upstream() {
        let rule = PolicyRule::new(["delete"]).groups([""]).resources(["pods"]);
        assert_eq!(
            rule.compact_string(),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#
        );
        let rule = PolicyRule::new(["get", "list"]).urls(["/api", "/api/*"]);
        assert_eq!(
            rule.to_string(),
            r#"PolicyRule{NonResourceURLs:["/api" "/api/*"], Verbs:["get" "list"]}"#
        );
        let rule = PolicyRule::new(["get"])
            .groups(["x"])
            .resources(["secrets"])
            .names(["a\"b"]);
        assert_eq!(
            rule.compact_string(),
            r#"{APIGroups:["x"], Resources:["secrets"], ResourceNames:["a\"b"], Verbs:["get"]}"#
        );
    }

    #[test]
    fn serializes_in_kubernetes_shape() {
        let rule = PolicyRule::new(["get"]).urls(["/healthz"]);
        assert_eq!(
            serde_json::to_value(&rule).unwrap(),
            json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]})
        );
        assert_eq!(
            serde_json::to_value(Subject::service_account("ns", "sa")).unwrap(),
            json!({"kind": "ServiceAccount", "apiGroup": "", "name": "sa", "namespace": "ns"})
        );
    }
}
