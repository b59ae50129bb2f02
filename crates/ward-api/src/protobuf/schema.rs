//! Field tables for the Kubernetes messages Ward reads and writes as protobuf.
//!
//! Each table lists the fields in the order of the Go struct, which is the order of the JSON
//! form; the encoder sorts by field number, as gogo-protobuf does. Field numbers come from the
//! upstream `generated.proto` files (cross-checked against `k8s-pb` 0.9 in the tests).
//!
//! [`Presence`] records what gogo-protobuf does with a zero value: a non-pointer Go field is
//! always written, a pointer field only when set.

/// How a field behaves when its value is zero or absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    /// A non-pointer Go field with `omitempty`: always written on the wire, left out of the
    /// JSON form when zero.
    Always,
    /// A non-pointer Go field without `omitempty`: always written, and kept in JSON when zero.
    AlwaysKeep,
    /// A pointer Go field: written only when set, and then kept in JSON even when zero.
    Optional,
}

/// The type of a field.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Bool,
    /// `map<string, bytes>`; base64 strings in JSON.
    BytesMap,
    /// `map<string, ExtraValue>`; arrays of strings in JSON.
    ExtraMap,
    /// `metav1.FieldsV1`; embedded JSON.
    FieldsV1,
    Int64,
    Message(&'static Message),
    MessageList(&'static Message),
    String,
    StringList,
    /// `map<string, string>`.
    StringMap,
    /// `metav1.Time`; RFC 3339 in JSON, second precision.
    Time,
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) number: u32,
    pub(crate) json: &'static str,
    pub(crate) kind: Kind,
    pub(crate) presence: Presence,
}

/// A message: its Go name (for error messages) and its fields in Go struct order.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
}

impl Message {
    pub(crate) fn field_by_number(&self, number: u32) -> Option<(usize, &Field)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.number == number)
    }

    pub(crate) fn field_by_json(&self, json: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.json == json)
    }
}

/// A top-level kind: its `apiVersion`, `kind` and message.
#[derive(Debug)]
pub(crate) struct KindSchema {
    pub(crate) api_version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) message: &'static Message,
}

/// Finds the schema of a kind by its `apiVersion` and `kind`.
pub(crate) fn kind_schema(api_version: &str, kind: &str) -> Option<&'static KindSchema> {
    KINDS
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
}

/// Every kind Ward converts.
pub(crate) static KINDS: &[KindSchema] = &[
    KindSchema {
        api_version: "v1",
        kind: "Secret",
        message: &SECRET,
    },
    KindSchema {
        api_version: "v1",
        kind: "ConfigMap",
        message: &CONFIG_MAP,
    },
    KindSchema {
        api_version: "v1",
        kind: "Namespace",
        message: &NAMESPACE,
    },
    KindSchema {
        api_version: "v1",
        kind: "ServiceAccount",
        message: &SERVICE_ACCOUNT,
    },
    KindSchema {
        api_version: RBAC,
        kind: "Role",
        message: &ROLE,
    },
    KindSchema {
        api_version: RBAC,
        kind: "ClusterRole",
        message: &CLUSTER_ROLE,
    },
    KindSchema {
        api_version: RBAC,
        kind: "RoleBinding",
        message: &ROLE_BINDING,
    },
    KindSchema {
        api_version: RBAC,
        kind: "ClusterRoleBinding",
        message: &CLUSTER_ROLE_BINDING,
    },
    KindSchema {
        api_version: AUTHZ,
        kind: "SelfSubjectAccessReview",
        message: &SSAR,
    },
    KindSchema {
        api_version: AUTHZ,
        kind: "SubjectAccessReview",
        message: &SAR,
    },
    KindSchema {
        api_version: AUTHZ,
        kind: "LocalSubjectAccessReview",
        message: &LOCAL_SAR,
    },
    KindSchema {
        api_version: AUTHZ,
        kind: "SelfSubjectRulesReview",
        message: &SSRR,
    },
    KindSchema {
        api_version: AUTHN,
        kind: "SelfSubjectReview",
        message: &SELF_SUBJECT_REVIEW,
    },
    KindSchema {
        api_version: AUTHN,
        kind: "TokenRequest",
        message: &TOKEN_REQUEST,
    },
    KindSchema {
        api_version: AUTHN,
        kind: "TokenReview",
        message: &TOKEN_REVIEW,
    },
];

const RBAC: &str = "rbac.authorization.k8s.io/v1";
const AUTHZ: &str = "authorization.k8s.io/v1";
const AUTHN: &str = "authentication.k8s.io/v1";

// === Field constructors ===

const fn field(number: u32, json: &'static str, kind: Kind, presence: Presence) -> Field {
    Field {
        number,
        json,
        kind,
        presence,
    }
}

const fn string(number: u32, json: &'static str) -> Field {
    field(number, json, Kind::String, Presence::Always)
}

const fn string_keep(number: u32, json: &'static str) -> Field {
    field(number, json, Kind::String, Presence::AlwaysKeep)
}

const fn strings(number: u32, json: &'static str) -> Field {
    field(number, json, Kind::StringList, Presence::Optional)
}

const fn message(number: u32, json: &'static str, m: &'static Message) -> Field {
    field(number, json, Kind::Message(m), Presence::Always)
}

const fn message_opt(number: u32, json: &'static str, m: &'static Message) -> Field {
    field(number, json, Kind::Message(m), Presence::Optional)
}

const fn messages(number: u32, json: &'static str, m: &'static Message) -> Field {
    field(number, json, Kind::MessageList(m), Presence::Optional)
}

const fn metadata() -> Field {
    message(1, "metadata", &OBJECT_META)
}

// === meta/v1 ===

static OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        string(1, "name"),
        string(2, "generateName"),
        string(3, "namespace"),
        string(4, "selfLink"),
        string(5, "uid"),
        string(6, "resourceVersion"),
        field(7, "generation", Kind::Int64, Presence::Always),
        field(8, "creationTimestamp", Kind::Time, Presence::Always),
        field(9, "deletionTimestamp", Kind::Time, Presence::Optional),
        field(
            10,
            "deletionGracePeriodSeconds",
            Kind::Int64,
            Presence::Optional,
        ),
        field(11, "labels", Kind::StringMap, Presence::Optional),
        field(12, "annotations", Kind::StringMap, Presence::Optional),
        messages(13, "ownerReferences", &OWNER_REFERENCE),
        strings(14, "finalizers"),
        messages(17, "managedFields", &MANAGED_FIELDS_ENTRY),
    ],
};

static OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        string_keep(5, "apiVersion"),
        string_keep(1, "kind"),
        string_keep(3, "name"),
        string_keep(4, "uid"),
        field(6, "controller", Kind::Bool, Presence::Optional),
        field(7, "blockOwnerDeletion", Kind::Bool, Presence::Optional),
    ],
};

static MANAGED_FIELDS_ENTRY: Message = Message {
    name: "ManagedFieldsEntry",
    fields: &[
        string(1, "manager"),
        string(2, "operation"),
        string(3, "apiVersion"),
        field(4, "time", Kind::Time, Presence::Optional),
        string(6, "fieldsType"),
        field(7, "fieldsV1", Kind::FieldsV1, Presence::Optional),
        string(8, "subresource"),
    ],
};

static LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[
        field(1, "matchLabels", Kind::StringMap, Presence::Optional),
        messages(2, "matchExpressions", &LABEL_SELECTOR_REQUIREMENT),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[
        string_keep(1, "key"),
        string_keep(2, "operator"),
        strings(3, "values"),
    ],
};

static FIELD_SELECTOR_REQUIREMENT: Message = Message {
    name: "FieldSelectorRequirement",
    fields: &[
        string_keep(1, "key"),
        string_keep(2, "operator"),
        strings(3, "values"),
    ],
};

// === core/v1 ===

static SECRET: Message = Message {
    name: "Secret",
    fields: &[
        metadata(),
        field(5, "immutable", Kind::Bool, Presence::Optional),
        field(2, "data", Kind::BytesMap, Presence::Optional),
        field(4, "stringData", Kind::StringMap, Presence::Optional),
        string(3, "type"),
    ],
};

static CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        metadata(),
        field(4, "immutable", Kind::Bool, Presence::Optional),
        field(2, "data", Kind::StringMap, Presence::Optional),
        field(3, "binaryData", Kind::BytesMap, Presence::Optional),
    ],
};

static NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        metadata(),
        message(2, "spec", &NAMESPACE_SPEC),
        message(3, "status", &NAMESPACE_STATUS),
    ],
};

static NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[strings(1, "finalizers")],
};

static NAMESPACE_STATUS: Message = Message {
    name: "NamespaceStatus",
    fields: &[
        string(1, "phase"),
        messages(2, "conditions", &NAMESPACE_CONDITION),
    ],
};

static NAMESPACE_CONDITION: Message = Message {
    name: "NamespaceCondition",
    fields: &[
        string_keep(1, "type"),
        string_keep(2, "status"),
        field(4, "lastTransitionTime", Kind::Time, Presence::Always),
        string(5, "reason"),
        string(6, "message"),
    ],
};

static SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        metadata(),
        messages(2, "secrets", &OBJECT_REFERENCE),
        messages(3, "imagePullSecrets", &LOCAL_OBJECT_REFERENCE),
        field(
            4,
            "automountServiceAccountToken",
            Kind::Bool,
            Presence::Optional,
        ),
    ],
};

static OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        string(1, "kind"),
        string(2, "namespace"),
        string(3, "name"),
        string(4, "uid"),
        string(5, "apiVersion"),
        string(6, "resourceVersion"),
        string(7, "fieldPath"),
    ],
};

static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[string(1, "name")],
};

// === rbac/v1 ===

static POLICY_RULE: Message = Message {
    name: "PolicyRule",
    fields: &[
        strings(1, "verbs"),
        strings(2, "apiGroups"),
        strings(3, "resources"),
        strings(4, "resourceNames"),
        strings(5, "nonResourceURLs"),
    ],
};

static ROLE: Message = Message {
    name: "Role",
    fields: &[metadata(), messages(2, "rules", &POLICY_RULE)],
};

static CLUSTER_ROLE: Message = Message {
    name: "ClusterRole",
    fields: &[
        metadata(),
        messages(2, "rules", &POLICY_RULE),
        message_opt(3, "aggregationRule", &AGGREGATION_RULE),
    ],
};

static AGGREGATION_RULE: Message = Message {
    name: "AggregationRule",
    fields: &[messages(1, "clusterRoleSelectors", &LABEL_SELECTOR)],
};

static SUBJECT: Message = Message {
    name: "Subject",
    fields: &[
        string_keep(1, "kind"),
        string(2, "apiGroup"),
        string_keep(3, "name"),
        string(4, "namespace"),
    ],
};

static ROLE_REF: Message = Message {
    name: "RoleRef",
    fields: &[
        string_keep(1, "apiGroup"),
        string_keep(2, "kind"),
        string_keep(3, "name"),
    ],
};

static ROLE_BINDING: Message = Message {
    name: "RoleBinding",
    fields: &[
        metadata(),
        messages(2, "subjects", &SUBJECT),
        message(3, "roleRef", &ROLE_REF),
    ],
};

static CLUSTER_ROLE_BINDING: Message = Message {
    name: "ClusterRoleBinding",
    fields: &[
        metadata(),
        messages(2, "subjects", &SUBJECT),
        message(3, "roleRef", &ROLE_REF),
    ],
};

// === authorization/v1 ===

static SSAR: Message = Message {
    name: "SelfSubjectAccessReview",
    fields: &[
        metadata(),
        message(2, "spec", &SSAR_SPEC),
        message(3, "status", &SUBJECT_ACCESS_REVIEW_STATUS),
    ],
};

static SSAR_SPEC: Message = Message {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        message_opt(1, "resourceAttributes", &RESOURCE_ATTRIBUTES),
        message_opt(2, "nonResourceAttributes", &NON_RESOURCE_ATTRIBUTES),
    ],
};

static SAR: Message = Message {
    name: "SubjectAccessReview",
    fields: &[
        metadata(),
        message(2, "spec", &SAR_SPEC),
        message(3, "status", &SUBJECT_ACCESS_REVIEW_STATUS),
    ],
};

static LOCAL_SAR: Message = Message {
    name: "LocalSubjectAccessReview",
    fields: &[
        metadata(),
        message(2, "spec", &SAR_SPEC),
        message(3, "status", &SUBJECT_ACCESS_REVIEW_STATUS),
    ],
};

static SAR_SPEC: Message = Message {
    name: "SubjectAccessReviewSpec",
    fields: &[
        message_opt(1, "resourceAttributes", &RESOURCE_ATTRIBUTES),
        message_opt(2, "nonResourceAttributes", &NON_RESOURCE_ATTRIBUTES),
        string(3, "user"),
        strings(4, "groups"),
        field(5, "extra", Kind::ExtraMap, Presence::Optional),
        string(6, "uid"),
    ],
};

static RESOURCE_ATTRIBUTES: Message = Message {
    name: "ResourceAttributes",
    fields: &[
        string(1, "namespace"),
        string(2, "verb"),
        string(3, "group"),
        string(4, "version"),
        string(5, "resource"),
        string(6, "subresource"),
        string(7, "name"),
        message_opt(8, "fieldSelector", &FIELD_SELECTOR_ATTRIBUTES),
        message_opt(9, "labelSelector", &LABEL_SELECTOR_ATTRIBUTES),
    ],
};

static FIELD_SELECTOR_ATTRIBUTES: Message = Message {
    name: "FieldSelectorAttributes",
    fields: &[
        string(1, "rawSelector"),
        messages(2, "requirements", &FIELD_SELECTOR_REQUIREMENT),
    ],
};

static LABEL_SELECTOR_ATTRIBUTES: Message = Message {
    name: "LabelSelectorAttributes",
    fields: &[
        string(1, "rawSelector"),
        messages(2, "requirements", &LABEL_SELECTOR_REQUIREMENT),
    ],
};

static NON_RESOURCE_ATTRIBUTES: Message = Message {
    name: "NonResourceAttributes",
    fields: &[string(1, "path"), string(2, "verb")],
};

static SUBJECT_ACCESS_REVIEW_STATUS: Message = Message {
    name: "SubjectAccessReviewStatus",
    fields: &[
        field(1, "allowed", Kind::Bool, Presence::AlwaysKeep),
        field(4, "denied", Kind::Bool, Presence::Always),
        string(2, "reason"),
        string(3, "evaluationError"),
    ],
};

static SSRR: Message = Message {
    name: "SelfSubjectRulesReview",
    fields: &[
        metadata(),
        message(2, "spec", &SSRR_SPEC),
        message(3, "status", &SUBJECT_RULES_REVIEW_STATUS),
    ],
};

static SSRR_SPEC: Message = Message {
    name: "SelfSubjectRulesReviewSpec",
    fields: &[string(1, "namespace")],
};

static SUBJECT_RULES_REVIEW_STATUS: Message = Message {
    name: "SubjectRulesReviewStatus",
    fields: &[
        messages(1, "resourceRules", &RESOURCE_RULE),
        messages(2, "nonResourceRules", &NON_RESOURCE_RULE),
        field(3, "incomplete", Kind::Bool, Presence::AlwaysKeep),
        string(4, "evaluationError"),
    ],
};

static RESOURCE_RULE: Message = Message {
    name: "ResourceRule",
    fields: &[
        strings(1, "verbs"),
        strings(2, "apiGroups"),
        strings(3, "resources"),
        strings(4, "resourceNames"),
    ],
};

static NON_RESOURCE_RULE: Message = Message {
    name: "NonResourceRule",
    fields: &[strings(1, "verbs"), strings(2, "nonResourceURLs")],
};

// === authentication/v1 ===

static SELF_SUBJECT_REVIEW: Message = Message {
    name: "SelfSubjectReview",
    fields: &[
        metadata(),
        message(2, "status", &SELF_SUBJECT_REVIEW_STATUS),
    ],
};

static SELF_SUBJECT_REVIEW_STATUS: Message = Message {
    name: "SelfSubjectReviewStatus",
    fields: &[message(1, "userInfo", &USER_INFO)],
};

static USER_INFO: Message = Message {
    name: "UserInfo",
    fields: &[
        string(1, "username"),
        string(2, "uid"),
        strings(3, "groups"),
        field(4, "extra", Kind::ExtraMap, Presence::Optional),
    ],
};

static TOKEN_REQUEST: Message = Message {
    name: "TokenRequest",
    fields: &[
        metadata(),
        message(2, "spec", &TOKEN_REQUEST_SPEC),
        message(3, "status", &TOKEN_REQUEST_STATUS),
    ],
};

static TOKEN_REQUEST_SPEC: Message = Message {
    name: "TokenRequestSpec",
    fields: &[
        strings(1, "audiences"),
        field(4, "expirationSeconds", Kind::Int64, Presence::Optional),
        message_opt(3, "boundObjectRef", &BOUND_OBJECT_REFERENCE),
    ],
};

static BOUND_OBJECT_REFERENCE: Message = Message {
    name: "BoundObjectReference",
    fields: &[
        string(1, "kind"),
        string(2, "apiVersion"),
        string(3, "name"),
        string(4, "uid"),
    ],
};

static TOKEN_REQUEST_STATUS: Message = Message {
    name: "TokenRequestStatus",
    fields: &[
        string_keep(1, "token"),
        field(2, "expirationTimestamp", Kind::Time, Presence::Always),
    ],
};

static TOKEN_REVIEW: Message = Message {
    name: "TokenReview",
    fields: &[
        metadata(),
        message(2, "spec", &TOKEN_REVIEW_SPEC),
        message(3, "status", &TOKEN_REVIEW_STATUS),
    ],
};

static TOKEN_REVIEW_SPEC: Message = Message {
    name: "TokenReviewSpec",
    fields: &[string(1, "token"), strings(2, "audiences")],
};

static TOKEN_REVIEW_STATUS: Message = Message {
    name: "TokenReviewStatus",
    fields: &[
        field(1, "authenticated", Kind::Bool, Presence::Always),
        message(2, "user", &USER_INFO),
        strings(4, "audiences"),
        string(3, "error"),
    ],
};
