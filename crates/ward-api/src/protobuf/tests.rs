use std::collections::BTreeMap;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use proptest::prelude::*;
use prost::Message as _;
use serde_json::{Value, json};

use super::*;

const RKE2: &str = include_str!("../../tests/vectors/identity-rke2-secret-pre-deploy.txt");
const KMS_V2: &str = include_str!("../../tests/vectors/kmsv2-v1.27-aes-gcm-key.txt");

/// Reads `<name>_hex:` from a vector file (README format: hex wrapped over following lines).
fn vector_hex(text: &str, name: &str) -> Vec<u8> {
    let header = format!("{name}_hex:");
    let mut lines = text
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(1);
    let mut hex = String::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.contains(':') {
            break;
        }
        hex.push_str(line);
    }
    assert!(!hex.is_empty(), "no {name}_hex in vector");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn unwrap_unknown(bytes: &[u8]) -> Unknown {
    Unknown::decode(&bytes[4..]).expect("prost decodes the envelope")
}

// === Real kube-apiserver vectors ===

#[test]
fn kms_v2_plaintext_decodes_and_re_encodes_byte_identically() {
    let plaintext = vector_hex(KMS_V2, "plaintext");
    assert_eq!(plaintext.len(), 366);

    let object = decode(&plaintext).expect("decode");
    assert_eq!(object["apiVersion"], "v1");
    assert_eq!(object["kind"], "Secret");
    assert_eq!(object["type"], "Opaque");
    let metadata = &object["metadata"];
    assert_eq!(metadata["name"], "dek-source-aes-gcm-key");
    assert_eq!(metadata["namespace"], "kms-v2-legacy-data");
    assert_eq!(metadata["uid"], "1f4a8f7b-01b4-49d1-b898-751eb56937f1");
    assert_eq!(metadata["creationTimestamp"], "2023-09-01T15:56:49Z");
    // Zero values of omitempty fields are left out, as Go's JSON does.
    for absent in ["generateName", "selfLink", "resourceVersion", "generation"] {
        assert!(metadata.get(absent).is_none(), "{absent}");
    }
    let entry = &metadata["managedFields"][0];
    assert_eq!(
        entry["manager"],
        "___TestKMSv2Provider_in_k8s_io_kubernetes_test_integration_controlplane_transformation.test"
    );
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["time"], "2023-09-01T15:56:49Z");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:data": {".": {}, "f:api_key": {}}, "f:type": {}})
    );
    assert!(entry.get("subresource").is_none());
    // base64("086a7ffc-0225-11e8-ba89-0ed5f89f718b")
    assert_eq!(
        object["data"]["api_key"],
        "MDg2YTdmZmMtMDIyNS0xMWU4LWJhODktMGVkNWY4OWY3MThi"
    );

    // JSON key order follows the Go structs.
    let keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "data", "type"]);

    let encoded = encode(&object).expect("encode");
    assert_eq!(&encoded[..], &plaintext[..]);
}

#[test]
fn rke2_value_decodes_and_re_encodes_as_a_modern_server_would() {
    let value = vector_hex(RKE2, "etcd_value");
    assert_eq!(value.len(), 240);

    let object = decode(&value).expect("decode");
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "secret-pre-deploy",
                "namespace": "default",
                "uid": "bd2e0fb7-67cb-4ce5-a49b-e78e903e6e28",
                "creationTimestamp": "2022-04-30T10:49:07Z",
                "managedFields": [{
                    "manager": "kubectl-create",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2022-04-30T10:49:07Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}, "f:mykey": {}}, "f:type": {}},
                }],
            },
            "data": {"mykey": "bXlkYXRh"},
            "type": "Opaque",
        })
    );

    // This server (1.22 to 1.24) still wrote the removed `clusterName` (ObjectMeta field 15) as
    // `7a 00`. It has no JSON form, so the re-encoding is what a 1.25+ server writes: the same
    // bytes without those two, and the metadata and raw lengths two smaller.
    let position = value
        .windows(4)
        .position(|w| w == [0x10, 0x00, 0x7a, 0x00])
        .unwrap()
        + 2;
    let mut modern = value;
    modern.drain(position..position + 2);
    let raw_len = modern
        .windows(3)
        .position(|w| w == [0x12, 0xd7, 0x01])
        .unwrap();
    modern[raw_len + 1] = 0xd5;
    let meta_len = modern
        .windows(3)
        .position(|w| w == [0x0a, 0xbb, 0x01])
        .unwrap();
    modern[meta_len + 1] = 0xb9;

    let encoded = encode(&object).expect("encode");
    assert_eq!(&encoded[..], &modern[..]);
    assert_eq!(decode(&modern).unwrap(), object);
}

#[test]
fn encoding_matches_an_independent_protobuf_decoder() {
    let object = decode(&vector_hex(KMS_V2, "plaintext")).unwrap();
    let encoded = encode(&object).unwrap();
    let unknown = unwrap_unknown(&encoded);
    assert_eq!(unknown.content_encoding.as_deref(), Some(""));
    assert_eq!(unknown.content_type.as_deref(), Some(""));
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(type_meta.api_version.as_deref(), Some("v1"));
    assert_eq!(type_meta.kind.as_deref(), Some("Secret"));
    let secret = core::Secret::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(secret.r#type.as_deref(), Some("Opaque"));
    assert_eq!(
        secret.data["api_key"],
        b"086a7ffc-0225-11e8-ba89-0ed5f89f718b"
    );
    let metadata = secret.metadata.unwrap();
    assert_eq!(metadata.name.as_deref(), Some("dek-source-aes-gcm-key"));
    assert_eq!(metadata.resource_version.as_deref(), Some(""));
    assert_eq!(metadata.generation, Some(0));
    let created = metadata.creation_timestamp.unwrap();
    assert_eq!(
        (created.seconds, created.nanos),
        (Some(1_693_583_809), Some(0))
    );
}

// === Request bodies as kubectl 1.32 sends them ===

/// Wraps a typed message as kubectl's protobuf serializer does.
fn kubectl_body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// ObjectMeta as gogo writes a fresh one: every non-pointer field, zero creation time.
fn kubectl_meta(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

#[test]
fn kubectl_create_secret_generic() {
    let secret = core::Secret {
        metadata: Some(kubectl_meta("x1")),
        data: BTreeMap::from([("a".to_owned(), b"b".to_vec())]),
        r#type: Some(String::new()),
        ..Default::default()
    };
    let body = kubectl_body("v1", "Secret", secret.encode_to_vec());
    let object = decode(&body).unwrap();
    assert_eq!(
        object,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x1"}, "data": {"a": "Yg=="}})
    );
}

#[test]
fn kubectl_auth_can_i() {
    use k8s_pb::api::authorization::v1 as authz;
    let review = authz::SelfSubjectAccessReview {
        metadata: Some(kubectl_meta("")),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: Some("default".into()),
                verb: Some("get".into()),
                group: Some(String::new()),
                version: Some(String::new()),
                resource: Some("secrets".into()),
                subresource: Some(String::new()),
                name: Some("s1".into()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            denied: Some(false),
            reason: Some(String::new()),
            evaluation_error: Some(String::new()),
        }),
    };
    let body = kubectl_body(AUTHZ_V1, "SelfSubjectAccessReview", review.encode_to_vec());
    let object = decode(&body).unwrap();
    assert_eq!(
        object,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {
                "namespace": "default", "verb": "get", "resource": "secrets", "name": "s1"
            }},
            "status": {"allowed": false},
        })
    );
    assert_eq!(&encode(&object).unwrap()[..], &body[..]);
}

#[test]
fn kubectl_create_token_and_whoami() {
    use k8s_pb::api::authentication::v1 as authn;
    let request = authn::TokenRequest {
        metadata: Some(kubectl_meta("sa1")),
        spec: Some(authn::TokenRequestSpec::default()),
        status: Some(authn::TokenRequestStatus {
            token: Some(String::new()),
            expiration_timestamp: Some(meta::Time::default()),
        }),
    };
    let body = kubectl_body(AUTHN_V1, "TokenRequest", request.encode_to_vec());
    let object = decode(&body).unwrap();
    assert_eq!(
        object,
        json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"name": "sa1"}, "spec": {}, "status": {"token": ""},
        })
    );
    assert_eq!(&encode(&object).unwrap()[..], &body[..]);

    let review = authn::SelfSubjectReview {
        metadata: Some(kubectl_meta("")),
        status: Some(authn::SelfSubjectReviewStatus {
            user_info: Some(authn::UserInfo {
                username: Some(String::new()),
                uid: Some(String::new()),
                ..Default::default()
            }),
        }),
    };
    let body = kubectl_body(AUTHN_V1, "SelfSubjectReview", review.encode_to_vec());
    let object = decode(&body).unwrap();
    assert_eq!(object["status"], json!({"userInfo": {}}));
    assert_eq!(&encode(&object).unwrap()[..], &body[..]);
}

const AUTHZ_V1: &str = "authorization.k8s.io/v1";
const AUTHN_V1: &str = "authentication.k8s.io/v1";

// === JSON round trips of every kind ===

fn round_trip(object: &Value) -> Zeroizing<Vec<u8>> {
    let bytes = encode(object).unwrap_or_else(|e| panic!("encode {object}: {e}"));
    let back = decode(&bytes).unwrap_or_else(|e| panic!("decode {object}: {e}"));
    assert_eq!(&back, object);
    assert_eq!(encode(&back).unwrap(), bytes, "encoding is stable");
    bytes
}

#[test]
fn every_kind_round_trips() {
    let meta = json!({
        "name": "n1",
        "namespace": "ns1",
        "uid": "0b9d4dd6-7c51-4a3e-9d0a-6f1c0f0b6c11",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2024-12-11T00:00:00Z",
        "deletionTimestamp": "2024-12-12T00:00:00Z",
        "deletionGracePeriodSeconds": 0,
        "labels": {"app": "web", "empty": ""},
        "annotations": {"a.example.com/b": "c"},
        "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u1",
            "controller": true, "blockOwnerDeletion": false
        }],
        "finalizers": ["kubernetes.io/x", "y"],
    });
    let objects = [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "immutable": false,
               "data": {"": "", "k": "AAEC"}, "stringData": {"s": "t"},
               "type": "kubernetes.io/tls"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "immutable": true,
               "data": {"a": "", "b": "c"}, "binaryData": {"bin": "/w=="}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Terminating", "conditions": [{
            "type": "NamespaceDeletionContentFailure", "status": "False",
            "lastTransitionTime": "2024-12-11T00:00:00Z", "reason": "R", "message": "m"
        }]}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
               "secrets": [{"kind": "Secret", "namespace": "ns", "name": "s", "uid": "u",
                            "apiVersion": "v1", "resourceVersion": "1", "fieldPath": "f"}],
               "imagePullSecrets": [{"name": "pull"}],
               "automountServiceAccountToken": false}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "r", "namespace": "default"},
               "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"],
                          "resourceNames": ["s1"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:x"},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*"]}],
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"rbac.example.com/aggregate": "true"}},
            {"matchExpressions": [{"key": "k", "operator": "Exists"},
                                  {"key": "j", "operator": "In", "values": ["a", "b"]}]}
        ]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "rb", "namespace": "default"},
               "subjects": [
                   {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
                   {"kind": "ServiceAccount", "name": "sa1", "namespace": "default"}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "crb"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "cluster-admin"}}),
        json!({"apiVersion": AUTHZ_V1, "kind": "SubjectAccessReview", "metadata": {},
               "spec": {"resourceAttributes": {
                            "verb": "list", "resource": "secrets",
                            "fieldSelector": {"rawSelector": "metadata.name=x",
                                "requirements": [{"key": "metadata.name", "operator": "In",
                                                  "values": ["x"]}]},
                            "labelSelector": {"rawSelector": "a=b"}},
                        "user": "alice", "groups": ["devs"], "extra": {"k": ["v1", "v2"], "e": []},
                        "uid": "u-1"},
               "status": {"allowed": true, "denied": true, "reason": "r", "evaluationError": "e"}}),
        json!({"apiVersion": AUTHZ_V1, "kind": "SelfSubjectAccessReview", "metadata": {},
               "spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}},
               "status": {"allowed": true, "reason": "RBAC: allowed"}}),
        json!({"apiVersion": AUTHZ_V1, "kind": "LocalSubjectAccessReview",
               "metadata": {"namespace": "ns"},
               "spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}, "user": "u"},
               "status": {"allowed": false}}),
        json!({"apiVersion": AUTHZ_V1, "kind": "SelfSubjectRulesReview", "metadata": {},
               "spec": {"namespace": "default"},
               "status": {
                   "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}],
                   "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api"]}],
                   "incomplete": false}}),
        json!({"apiVersion": AUTHN_V1, "kind": "SelfSubjectReview", "metadata": {},
               "status": {"userInfo": {"username": "alice", "uid": "u-1",
                                       "groups": ["devs", "system:authenticated"],
                                       "extra": {"k": ["v"]}}}}),
        json!({"apiVersion": AUTHN_V1, "kind": "TokenRequest",
               "metadata": {"name": "sa1", "namespace": "default"},
               "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
                        "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s",
                                           "uid": "u"}},
               "status": {"token": "eyJ", "expirationTimestamp": "2025-01-01T00:00:00Z"}}),
        json!({"apiVersion": AUTHN_V1, "kind": "TokenReview", "metadata": {},
               "spec": {"token": "t", "audiences": ["a"]},
               "status": {"authenticated": true, "user": {"username": "u"}, "audiences": ["a"],
                          "error": "e"}}),
    ];
    for object in &objects {
        round_trip(object);
    }
    assert_eq!(objects.len(), schema::KINDS.len());
}

#[test]
fn encoding_follows_gogo_rules() {
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"b": "", "a": "x"}},
        "data": {"z": "", "y": "1"},
    });
    let bytes = round_trip(&object);
    let unknown = unwrap_unknown(&bytes);
    let raw = unknown.raw.unwrap();
    let config_map = core::ConfigMap::decode(raw.as_slice()).unwrap();
    let metadata = config_map.metadata.unwrap();
    assert_eq!(metadata.labels["b"], "");

    let raw_hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    // ObjectMeta: every non-pointer field written, zero creationTimestamp as `42 00`, labels
    // sorted and written with empty values (`12 00`), which prost itself would omit.
    let expected_meta = concat!(
        "0a01", "63", "1200", "1a00", "2200", "2a00", "3200", "3800", "4200", "5a06", "0a0161",
        "120178", "5a05", "0a0162", "1200",
    );
    assert!(raw_hex.starts_with(&format!("0a{:02x}{expected_meta}", expected_meta.len() / 2)));
    // data: sorted, empty values written; no immutable (a pointer left unset).
    assert!(raw_hex.ends_with(concat!(
        "1206", "0a0179", "120131", "1205", "0a017a", "1200"
    )));
    // The envelope always ends with empty contentEncoding and contentType.
    assert!(bytes.ends_with(&[0x1a, 0x00, 0x22, 0x00]));

    // A Secret without `type` still writes `1a 00`; an unset map value is left out.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {},
                        "data": {"n": null}});
    let bytes = encode(&secret).unwrap();
    let raw = unwrap_unknown(&bytes).raw.unwrap();
    assert!(raw.ends_with(&[0x12, 0x03, 0x0a, 0x01, b'n', 0x1a, 0x00]));

    // Fractional seconds and offsets are accepted; nanoseconds are never written.
    let object = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "n", "creationTimestamp": "2023-09-01T17:56:49.75+02:00"}});
    let bytes = encode(&object).unwrap();
    let raw = unwrap_unknown(&bytes).raw.unwrap();
    let namespace = core::Namespace::decode(raw.as_slice()).unwrap();
    let created = namespace.metadata.unwrap().creation_timestamp.unwrap();
    assert_eq!(
        (created.seconds, created.nanos),
        (Some(1_693_583_809), Some(0))
    );
    // Absent spec and status are written as empty non-pointer structs.
    assert_eq!(namespace.spec, Some(core::NamespaceSpec::default()));
    assert_eq!(namespace.status.unwrap().phase.as_deref(), Some(""));
    assert_eq!(
        decode(&bytes).unwrap()["metadata"]["creationTimestamp"],
        "2023-09-01T15:56:49Z"
    );
}

// === Errors ===

#[test]
fn encode_errors_name_the_field_and_never_the_value() {
    let canary = "c2VjcmV0LWNhbmFyeQ$$";
    let object = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "data": {"password": canary}});
    let error = encode(&object).unwrap_err();
    assert!(matches!(&error, ProtobufError::InvalidBase64 { field } if field == "data[password]"));
    assert_eq!(
        error.to_string(),
        "field data[password] is not valid base64"
    );
    assert!(!format!("{error:?}").contains("c2VjcmV0"));

    let cases = [
        (json!([]), "object to encode must be a json object"),
        (
            json!({"kind": "Secret"}),
            "unsupported kind \"Secret\" of api version \"\"",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod"}),
            "unsupported kind \"Pod\" of api version \"v1\"",
        ),
        (
            json!({"apiVersion": "v2", "kind": "Secret"}),
            "unsupported kind \"Secret\" of api version \"v2\"",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"labels": {"a": 1}}}),
            "field metadata.labels[a] must be a string",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"clusterName": "x"}}),
            "field metadata.clusterName is not part of the ObjectMeta schema",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "spec": {}}),
            "field spec is not part of the Secret schema",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"generation": 1.5}}),
            "field metadata.generation must be a 64-bit integer",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"creationTimestamp": "today"}}),
            "field metadata.creationTimestamp is not a valid rfc 3339 timestamp",
        ),
        (
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "rules": [{"verbs": ["get", 7]}]}),
            "field rules[0].verbs[1] must be a string",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "immutable": "yes"}),
            "field immutable must be a boolean",
        ),
    ];
    for (object, message) in cases {
        assert_eq!(
            encode(&object).unwrap_err().to_string(),
            message,
            "{object}"
        );
    }
    // Unknown fields holding null are ignored, as Go's decoder does.
    encode(&json!({"apiVersion": "v1", "kind": "Secret", "status": null})).unwrap();
}

#[test]
fn decode_errors() {
    assert!(matches!(decode(b""), Err(ProtobufError::MissingMagic)));
    assert!(matches!(
        decode(b"{\"kind\":\"Secret\"}"),
        Err(ProtobufError::MissingMagic)
    ));

    let pod = kubectl_body("v1", "Pod", Vec::new());
    assert_eq!(
        decode(&pod).unwrap_err().to_string(),
        "unsupported kind \"Pod\" of api version \"v1\""
    );

    let mut unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
        }),
        raw: Some(Vec::new()),
        content_encoding: Some("gzip".into()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert!(
        matches!(decode(&body), Err(ProtobufError::UnsupportedContentEncoding(e)) if e == "gzip")
    );
    unknown.content_encoding = None;
    unknown.content_type = Some("application/json".into());
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert!(matches!(
        decode(&body),
        Err(ProtobufError::UnsupportedContentType(_))
    ));
    unknown.content_type = Some(MEDIA_TYPE.into());
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret"})
    );

    // Wrong wire type for a known field.
    let body = kubectl_body("v1", "Secret", vec![0x0a, 0x02, 0x38, 0x05, 0x28, 0x01]);
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret",
                                              "metadata": {"generation": 5}, "immutable": true})
    );
    let body = kubectl_body("v1", "Secret", vec![0x08, 0x01]);
    assert_eq!(
        decode(&body).unwrap_err().to_string(),
        "malformed protobuf at Secret.metadata: wrong wire type"
    );
    // Invalid UTF-8 in a string.
    let body = kubectl_body("v1", "Secret", vec![0x1a, 0x01, 0xff]);
    assert_eq!(
        decode(&body).unwrap_err().to_string(),
        "malformed protobuf at Secret.type: string is not valid utf-8"
    );
    // A length running past the end.
    let body = kubectl_body("v1", "Secret", vec![0x1a, 0x7f, b'a']);
    assert!(matches!(
        decode(&body),
        Err(ProtobufError::Malformed { .. })
    ));
    // Groups are refused; unknown fixed-width fields are skipped.
    let body = kubectl_body("v1", "Secret", vec![0x33]);
    assert!(matches!(
        decode(&body),
        Err(ProtobufError::Malformed { .. })
    ));
    let body = kubectl_body(
        "v1",
        "Secret",
        vec![0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x55, 1, 2, 3, 4],
    );
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret"})
    );
    // Invalid fieldsV1 JSON.
    let entry = [0x3a, 0x03, 0x0a, 0x01, b'{'];
    let mut meta = vec![0x8a, 0x01, entry.len() as u8];
    meta.extend(entry);
    let mut raw = vec![0x0a, meta.len() as u8];
    raw.extend(meta);
    let body = kubectl_body("v1", "Secret", raw);
    assert!(
        matches!(decode(&body), Err(ProtobufError::InvalidFieldsV1 { field, .. })
        if field == "Secret.metadata.managedFields.fieldsV1")
    );
}

#[test]
fn decode_never_panics_on_truncations_and_bit_flips_of_real_values() {
    for vector in [
        vector_hex(RKE2, "etcd_value"),
        vector_hex(KMS_V2, "plaintext"),
    ] {
        for end in 0..vector.len() {
            let _ = decode(&vector[..end]);
        }
        for i in 0..vector.len() {
            for bit in 0..8 {
                let mut mutated = vector.clone();
                mutated[i] ^= 1 << bit;
                if let Ok(object) = decode(&mutated) {
                    // Whatever decodes must encode again.
                    let _ = encode(&object);
                }
            }
        }
    }
}

// === Property tests ===

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?"
}

fn map_of(value: impl Strategy<Value = String>) -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[-._a-zA-Z0-9/]{1,12}", value, 0..5)
}

fn base64_value() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| BASE64.encode(bytes))
}

prop_compose! {
    fn metadata()(
        name in name(),
        namespace in prop::option::of(name()),
        labels in map_of(".{0,10}"),
        annotations in map_of(".{0,30}"),
        created in prop::option::of(0i64..253_402_300_799),
    ) -> Value {
        let mut meta = Map::new();
        meta.insert("name".into(), json!(name));
        if let Some(namespace) = namespace {
            meta.insert("namespace".into(), json!(namespace));
        }
        if let Some(created) = created {
            meta.insert("creationTimestamp".into(), json!(wire::format_rfc3339(created).unwrap()));
        }
        if !labels.is_empty() {
            meta.insert("labels".into(), json!(labels));
        }
        if !annotations.is_empty() {
            meta.insert("annotations".into(), json!(annotations));
        }
        Value::Object(meta)
    }
}

fn secret() -> impl Strategy<Value = Value> {
    (
        metadata(),
        prop::option::of(any::<bool>()),
        map_of(base64_value()),
        "[a-zA-Z./]{0,20}",
    )
        .prop_map(|(metadata, immutable, data, secret_type)| {
            let mut object = Map::new();
            object.insert("apiVersion".into(), json!("v1"));
            object.insert("kind".into(), json!("Secret"));
            object.insert("metadata".into(), metadata);
            if let Some(immutable) = immutable {
                object.insert("immutable".into(), json!(immutable));
            }
            if !data.is_empty() {
                object.insert("data".into(), json!(data));
            }
            if !secret_type.is_empty() {
                object.insert("type".into(), json!(secret_type));
            }
            Value::Object(object)
        })
}

fn config_map() -> impl Strategy<Value = Value> {
    (metadata(), map_of(".{0,20}"), map_of(base64_value())).prop_map(|(metadata, data, binary)| {
        let mut object = Map::new();
        object.insert("apiVersion".into(), json!("v1"));
        object.insert("kind".into(), json!("ConfigMap"));
        object.insert("metadata".into(), metadata);
        if !data.is_empty() {
            object.insert("data".into(), json!(data));
        }
        if !binary.is_empty() {
            object.insert("binaryData".into(), json!(binary));
        }
        Value::Object(object)
    })
}

proptest! {
    #[test]
    fn secrets_and_config_maps_round_trip(object in prop_oneof![secret(), config_map()]) {
        let bytes = encode(&object).unwrap();
        prop_assert_eq!(&decode(&bytes).unwrap(), &object);
        // An independent decoder reads the same content.
        let unknown = unwrap_unknown(&bytes);
        if object["kind"] == "Secret" {
            let secret = core::Secret::decode(unknown.raw.unwrap().as_slice()).unwrap();
            let data = object["data"].as_object().cloned().unwrap_or_default();
            prop_assert_eq!(secret.data.len(), data.len());
            for (key, value) in data {
                prop_assert_eq!(BASE64.encode(&secret.data[&key]), value.as_str().unwrap());
            }
            prop_assert_eq!(
                secret.metadata.unwrap().name.unwrap(),
                object["metadata"]["name"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let mut body = MAGIC.to_vec();
        body.extend(&bytes);
        let _ = decode(&body);
    }

    #[test]
    fn decode_never_panics_inside_a_valid_envelope(
        kind in prop::sample::select(schema::KINDS.iter().map(|k| (k.api_version, k.kind)).collect::<Vec<_>>()),
        raw in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let body = kubectl_body(kind.0, kind.1, raw);
        if let Ok(object) = decode(&body) {
            let _ = encode(&object);
        }
    }
}
