//! The Kubernetes protobuf envelope (`application/vnd.kubernetes.protobuf`).
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message: `typeMeta`
//! (`apiVersion`, `kind`), `raw` (the object's own message), `contentEncoding` and
//! `contentType`. kubectl 1.32 sends typed create requests this way, and kube-apiserver stores
//! built-in kinds this way in etcd.
//!
//! # Policy
//!
//! - [`decode`] turns a body into the object's JSON form, as Go's `encoding/json` would print
//!   the typed struct: `apiVersion` and `kind` first, bytes as base64, `metav1.Time` as RFC 3339
//!   seconds, `fieldsV1` as embedded JSON, zero values of `omitempty` fields left out. Unknown
//!   field numbers are skipped (old servers wrote `ObjectMeta.clusterName`, field 15), so a
//!   JSON round trip drops them.
//! - [`encode`] writes exactly the bytes kube-apiserver writes (gogo-protobuf rules): fields in
//!   number order, non-pointer Go fields always written even when zero, map entries sorted by
//!   key with both key and value written, `contentEncoding`/`contentType` written empty,
//!   timestamps without nanoseconds. JSON fields the schema does not know are an error rather
//!   than silently lost.
//! - Only the kinds listed in the schema are accepted; anything else is
//!   [`ProtobufError::UnsupportedKind`].
//! - Input never panics and never drives allocation: every length is checked against the
//!   bytes that remain, and recursion depth is bounded by the (static, non-recursive) schema.
//!   Embedded `fieldsV1` JSON is parsed by `serde_json`, which limits nesting to 128.
//! - Secret bytes are decoded into [`Zeroizing`] buffers and the encoded body is returned as
//!   one, allocated once at its exact size so no stale copy is left behind by reallocation.
//!   Error messages name fields and map keys, never values.
//!
//! ```
//! use serde_json::json;
//!
//! let secret = json!({
//!     "apiVersion": "v1",
//!     "kind": "Secret",
//!     "metadata": {"name": "s1", "namespace": "default"},
//!     "data": {"mykey": "bXlkYXRh"},
//!     "type": "Opaque",
//! });
//! let bytes = ward_api::protobuf::encode(&secret)?;
//! assert!(bytes.starts_with(b"k8s\0"));
//! assert_eq!(ward_api::protobuf::decode(&bytes)?, secret);
//! # Ok::<(), ward_api::protobuf::ProtobufError>(())
//! ```

mod schema;
mod wire;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use self::schema::{Field, Kind, Message, Presence};
use self::wire::{Path, Reader, WireType};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// An error converting between the protobuf envelope and JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtobufError {
    /// A bytes field (Secret `data`, ConfigMap `binaryData`) is not standard padded base64.
    #[error("field {field} is not valid base64")]
    InvalidBase64 {
        /// The field path, e.g. `data[tls.key]`.
        field: String,
    },
    /// A JSON field does not have the type its protobuf schema requires.
    #[error("field {field} must be {expected}")]
    InvalidField {
        /// The field path, e.g. `metadata.labels[app]`.
        field: String,
        /// What the field must hold, e.g. `a string`.
        expected: &'static str,
    },
    /// A `fieldsV1` value is not valid JSON.
    #[error("field {field} does not hold valid json")]
    InvalidFieldsV1 {
        /// The field path.
        field: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A timestamp is not RFC 3339 or lies outside the years 0000 to 9999.
    #[error("field {field} is not a valid rfc 3339 timestamp")]
    InvalidTime {
        /// The field path.
        field: String,
    },
    /// The bytes are not a well-formed protobuf message.
    #[error("malformed protobuf at {field}: {reason}")]
    Malformed {
        /// Where the problem was found, e.g. `Secret.metadata.labels`.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The body does not start with [`MAGIC`].
    #[error("body does not start with the kubernetes protobuf magic")]
    MissingMagic,
    /// The value to encode is not a JSON object.
    #[error("object to encode must be a json object")]
    NotAnObject,
    /// A JSON field is not part of the kind's protobuf schema, so it could not be stored.
    #[error("field {field} is not part of the {message} schema")]
    UnknownField {
        /// The field path.
        field: String,
        /// The protobuf message it was found in, e.g. `ObjectMeta`.
        message: &'static str,
    },
    /// The envelope names a content encoding (such as gzip), which Ward does not accept.
    #[error("unsupported content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// The envelope names a content type other than protobuf.
    #[error("unsupported content type {0:?}")]
    UnsupportedContentType(String),
    /// The object is of a kind Ward does not convert.
    #[error("unsupported kind {kind:?} of api version {api_version:?}")]
    UnsupportedKind {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
    },
}

/// Decodes a protobuf body (`k8s\0` + `runtime.Unknown`) into the object's JSON form,
/// including `apiVersion` and `kind`.
///
/// # Errors
///
/// - [`ProtobufError::MissingMagic`] if the body does not start with `k8s\0`.
/// - [`ProtobufError::Malformed`] for truncated or otherwise invalid protobuf, strings that
///   are not UTF-8, or timestamps outside the years 0000 to 9999.
/// - [`ProtobufError::UnsupportedKind`], [`ProtobufError::UnsupportedContentEncoding`] or
///   [`ProtobufError::UnsupportedContentType`] for envelopes Ward does not handle.
/// - [`ProtobufError::InvalidFieldsV1`] if a `fieldsV1` value is not JSON.
pub fn decode(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let body = bytes
        .strip_prefix(&MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let envelope = decode_envelope(body)?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(
            envelope.content_encoding,
        ));
    }
    if !envelope.content_type.is_empty() && envelope.content_type != MEDIA_TYPE {
        return Err(ProtobufError::UnsupportedContentType(envelope.content_type));
    }
    let kind = schema::kind_schema(&envelope.api_version, &envelope.kind).ok_or_else(|| {
        ProtobufError::UnsupportedKind {
            api_version: envelope.api_version.clone(),
            kind: envelope.kind.clone(),
        }
    })?;
    let root = Path::root(kind.kind);
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), Value::from(kind.api_version));
    object.insert("kind".to_owned(), Value::from(kind.kind));
    object.extend(decode_message(envelope.raw, kind.message, &root)?);
    Ok(Value::Object(object))
}

/// Encodes an object's JSON form into the protobuf body kube-apiserver would write for it,
/// byte for byte.
///
/// The object must carry `apiVersion` and `kind`. Whatever `metadata.resourceVersion` holds is
/// written; the server clears it before storing, as kube-apiserver does.
///
/// # Errors
///
/// - [`ProtobufError::NotAnObject`] if `obj` is not a JSON object.
/// - [`ProtobufError::UnsupportedKind`] if `apiVersion`/`kind` are missing or not supported.
/// - [`ProtobufError::InvalidField`] if a field has the wrong JSON type.
/// - [`ProtobufError::InvalidBase64`] if a bytes field is not padded standard base64.
/// - [`ProtobufError::InvalidTime`] if a timestamp is not RFC 3339.
/// - [`ProtobufError::UnknownField`] if the object has a field its schema lacks.
pub fn encode(obj: &Value) -> Result<Zeroizing<Vec<u8>>, ProtobufError> {
    let object = obj.as_object().ok_or(ProtobufError::NotAnObject)?;
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind_name = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = schema::kind_schema(api_version, kind_name).ok_or_else(|| {
        ProtobufError::UnsupportedKind {
            api_version: api_version.to_owned(),
            kind: kind_name.to_owned(),
        }
    })?;
    let root = Path::root("");
    let raw = encode_message(object, kind.message, &root, true)?;
    let type_meta = Node::message(vec![
        (
            1,
            Node::Bytes(Payload::Borrowed(kind.api_version.as_bytes())),
        ),
        (2, Node::Bytes(Payload::Borrowed(kind.kind.as_bytes()))),
    ]);
    let envelope = MessageNode::new(vec![
        (1, type_meta),
        (2, Node::Message(raw)),
        (3, Node::Bytes(Payload::Borrowed(b""))),
        (4, Node::Bytes(Payload::Borrowed(b""))),
    ]);
    let mut out = Zeroizing::new(Vec::with_capacity(MAGIC.len() + envelope.len));
    out.extend_from_slice(&MAGIC);
    write_fields(&mut out, &envelope.fields);
    debug_assert_eq!(out.len(), MAGIC.len() + envelope.len);
    Ok(out)
}

// === Decoding ===

/// The fields of a `runtime.Unknown`.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn decode_envelope(body: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let root = Path::root("Unknown");
    let malformed = |path: &Path<'_>, reason| ProtobufError::Malformed {
        field: path.render(),
        reason,
    };
    let mut envelope = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut reader = Reader::new(body);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key().map_err(|r| malformed(&root, r))?;
        if !matches!(number, 1..=4) {
            reader.skip(wire_type).map_err(|r| malformed(&root, r))?;
            continue;
        }
        if wire_type != WireType::LengthDelimited {
            return Err(malformed(&root, "wrong wire type"));
        }
        let bytes = reader.length_delimited().map_err(|r| malformed(&root, r))?;
        match number {
            1 => {
                let path = root.field("typeMeta");
                let mut inner = Reader::new(bytes);
                while !inner.is_empty() {
                    let (number, wire_type) = inner.key().map_err(|r| malformed(&path, r))?;
                    if !matches!(number, 1 | 2) {
                        inner.skip(wire_type).map_err(|r| malformed(&path, r))?;
                        continue;
                    }
                    if wire_type != WireType::LengthDelimited {
                        return Err(malformed(&path, "wrong wire type"));
                    }
                    let value = inner.length_delimited().map_err(|r| malformed(&path, r))?;
                    let value = utf8(value, &path)?.to_owned();
                    if number == 1 {
                        envelope.api_version = value;
                    } else {
                        envelope.kind = value;
                    }
                }
            }
            2 => envelope.raw = bytes,
            3 => envelope.content_encoding = utf8(bytes, &root.field("contentEncoding"))?.into(),
            _ => envelope.content_type = utf8(bytes, &root.field("contentType"))?.into(),
        }
    }
    Ok(envelope)
}

/// Decodes one message into a JSON object whose keys follow the Go struct order.
fn decode_message(
    bytes: &[u8],
    message: &'static Message,
    path: &Path<'_>,
) -> Result<Map<String, Value>, ProtobufError> {
    let mut slots: Vec<Option<Value>> = vec![None; message.fields.len()];
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key().map_err(|reason| malformed(path, reason))?;
        let Some((index, field)) = message.field_by_number(number) else {
            reader
                .skip(wire_type)
                .map_err(|reason| malformed(path, reason))?;
            continue;
        };
        let field_path = path.field(field.json);
        let expected = match field.kind {
            Kind::Bool | Kind::Int64 => WireType::Varint,
            _ => WireType::LengthDelimited,
        };
        if wire_type != expected {
            return Err(malformed(&field_path, "wrong wire type"));
        }
        let slot = &mut slots[index];
        if expected == WireType::Varint {
            let value = reader
                .varint()
                .map_err(|reason| malformed(&field_path, reason))?;
            *slot = Some(match field.kind {
                Kind::Bool => Value::Bool(value != 0),
                // Two's complement reinterpretation, as protobuf's int64 defines.
                _ => Value::from(value as i64),
            });
            continue;
        }
        let bytes = reader
            .length_delimited()
            .map_err(|reason| malformed(&field_path, reason))?;
        decode_length_delimited(bytes, field, slot, &field_path)?;
    }

    let mut object = Map::new();
    for (field, slot) in message.fields.iter().zip(slots) {
        let slot = match slot {
            // Go prints maps with sorted keys. The wire is sorted too when gogo wrote it, but
            // nothing forces another writer to sort.
            Some(Value::Object(map)) if is_map(field.kind) => Some(Value::Object(sorted(map))),
            slot => slot,
        };
        let value = match slot {
            Some(value) if keep_in_json(field, &value) => value,
            Some(_) => continue,
            None => match (field.presence, field.kind) {
                (Presence::AlwaysKeep, Kind::String) => Value::from(""),
                (Presence::AlwaysKeep, Kind::Bool) => Value::Bool(false),
                _ => continue,
            },
        };
        object.insert(field.json.to_owned(), value);
    }
    Ok(object)
}

fn decode_length_delimited(
    bytes: &[u8],
    field: &Field,
    slot: &mut Option<Value>,
    path: &Path<'_>,
) -> Result<(), ProtobufError> {
    match field.kind {
        Kind::String => *slot = Some(Value::from(utf8(bytes, path)?)),
        Kind::StringList => push(slot, Value::from(utf8(bytes, path)?)),
        Kind::Message(inner) => {
            let decoded = decode_message(bytes, inner, path)?;
            // Repeated occurrences of a singular message merge, as in protobuf; a shallow
            // merge is enough for the messages Kubernetes writes.
            match slot {
                Some(Value::Object(existing)) => existing.extend(decoded),
                _ => *slot = Some(Value::Object(decoded)),
            }
        }
        Kind::MessageList(inner) => push(slot, Value::Object(decode_message(bytes, inner, path)?)),
        Kind::Time => *slot = decode_time(bytes, path)?.map(Value::from),
        Kind::FieldsV1 => {
            let raw = decode_fields_v1(bytes, path)?;
            *slot = match raw {
                Some(raw) => Some(serde_json::from_slice(raw).map_err(|source| {
                    ProtobufError::InvalidFieldsV1 {
                        field: path.render(),
                        source,
                    }
                })?),
                None => None,
            };
        }
        Kind::StringMap | Kind::BytesMap | Kind::ExtraMap => {
            let (key, value) = decode_map_entry(bytes, field.kind, path)?;
            if !matches!(slot, Some(Value::Object(_))) {
                *slot = Some(Value::Object(Map::new()));
            }
            if let Some(Value::Object(map)) = slot {
                map.insert(key, value);
            }
        }
        Kind::Bool | Kind::Int64 => return Err(malformed(path, "wrong wire type")),
    }
    Ok(())
}

/// Decodes one map entry `{1: key, 2: value}`. A missing key or value is the zero value.
fn decode_map_entry(
    bytes: &[u8],
    kind: Kind,
    path: &Path<'_>,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = match kind {
        Kind::ExtraMap => Value::Array(Vec::new()),
        _ => Value::from(""),
    };
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key().map_err(|reason| malformed(path, reason))?;
        if !matches!(number, 1 | 2) {
            reader
                .skip(wire_type)
                .map_err(|reason| malformed(path, reason))?;
            continue;
        }
        if wire_type != WireType::LengthDelimited {
            return Err(malformed(path, "wrong wire type in map entry"));
        }
        let bytes = reader
            .length_delimited()
            .map_err(|reason| malformed(path, reason))?;
        if number == 1 {
            key = utf8(bytes, path)?.to_owned();
            continue;
        }
        value = match kind {
            Kind::BytesMap => Value::from(BASE64.encode(bytes)),
            Kind::ExtraMap => {
                let mut items = Vec::new();
                let mut inner = Reader::new(bytes);
                while !inner.is_empty() {
                    let (number, wire_type) =
                        inner.key().map_err(|reason| malformed(path, reason))?;
                    if number != 1 {
                        inner
                            .skip(wire_type)
                            .map_err(|reason| malformed(path, reason))?;
                        continue;
                    }
                    if wire_type != WireType::LengthDelimited {
                        return Err(malformed(path, "wrong wire type in extra value"));
                    }
                    let item = inner
                        .length_delimited()
                        .map_err(|reason| malformed(path, reason))?;
                    items.push(Value::from(utf8(item, path)?));
                }
                Value::Array(items)
            }
            _ => Value::from(utf8(bytes, path)?),
        };
    }
    Ok((key, value))
}

/// Decodes a `metav1.Time`. An empty message is the zero time, which JSON leaves out.
fn decode_time(bytes: &[u8], path: &Path<'_>) -> Result<Option<String>, ProtobufError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut seconds: i64 = 0;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key().map_err(|reason| malformed(path, reason))?;
        if number == 1 {
            if wire_type != WireType::Varint {
                return Err(malformed(path, "wrong wire type in timestamp"));
            }
            // Two's complement reinterpretation, as protobuf's int64 defines.
            seconds = reader.varint().map_err(|reason| malformed(path, reason))? as i64;
        } else {
            // Nanoseconds (field 2) are dropped: the JSON form has second precision.
            reader
                .skip(wire_type)
                .map_err(|reason| malformed(path, reason))?;
        }
    }
    wire::format_rfc3339(seconds)
        .map(Some)
        .ok_or_else(|| malformed(path, "timestamp outside the years 0000 to 9999"))
}

/// Decodes a `metav1.FieldsV1` into its raw JSON bytes, if set.
fn decode_fields_v1<'a>(
    bytes: &'a [u8],
    path: &Path<'_>,
) -> Result<Option<&'a [u8]>, ProtobufError> {
    let mut raw = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key().map_err(|reason| malformed(path, reason))?;
        if number != 1 {
            reader
                .skip(wire_type)
                .map_err(|reason| malformed(path, reason))?;
            continue;
        }
        if wire_type != WireType::LengthDelimited {
            return Err(malformed(path, "wrong wire type in fieldsV1"));
        }
        raw = Some(
            reader
                .length_delimited()
                .map_err(|reason| malformed(path, reason))?,
        );
    }
    Ok(raw)
}

/// Whether a decoded value appears in the JSON form (Go's `omitempty`).
fn keep_in_json(field: &Field, value: &Value) -> bool {
    let zero = match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Array(items) => return !items.is_empty(),
        Value::Object(map) => {
            // Maps are left out when empty; messages are kept, as Go prints structs.
            return !map.is_empty() || matches!(field.kind, Kind::Message(_));
        }
        Value::Null => return false,
    };
    !zero || field.presence != Presence::Always
}

fn push(slot: &mut Option<Value>, value: Value) {
    match slot {
        Some(Value::Array(items)) => items.push(value),
        _ => *slot = Some(Value::Array(vec![value])),
    }
}

fn is_map(kind: Kind) -> bool {
    matches!(kind, Kind::StringMap | Kind::BytesMap | Kind::ExtraMap)
}

fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

fn utf8<'a>(bytes: &'a [u8], path: &Path<'_>) -> Result<&'a str, ProtobufError> {
    std::str::from_utf8(bytes).map_err(|_| malformed(path, "string is not valid utf-8"))
}

fn malformed(path: &Path<'_>, reason: &'static str) -> ProtobufError {
    ProtobufError::Malformed {
        field: path.render(),
        reason,
    }
}

// === Encoding ===

/// Bytes to write: borrowed from the JSON value, or owned (decoded base64, which may be secret,
/// or serialized `fieldsV1`).
enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(Zeroizing<Vec<u8>>),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(bytes) => bytes,
            Payload::Owned(bytes) => bytes,
        }
    }
}

/// A field value ready to write.
enum Node<'a> {
    Varint(u64),
    Bytes(Payload<'a>),
    Message(MessageNode<'a>),
}

impl<'a> Node<'a> {
    fn message(fields: Vec<(u32, Node<'a>)>) -> Self {
        Node::Message(MessageNode::new(fields))
    }

    /// The bytes this node takes as field `number`, key included.
    fn field_len(&self, number: u32) -> usize {
        let body = match self {
            Node::Varint(value) => return wire::key_len(number) + wire::varint_len(*value),
            Node::Bytes(payload) => payload.as_slice().len(),
            Node::Message(message) => message.len,
        };
        wire::key_len(number) + wire::varint_len(body as u64) + body
    }
}

/// A message's fields in number order, with its encoded length computed once.
struct MessageNode<'a> {
    fields: Vec<(u32, Node<'a>)>,
    len: usize,
}

impl<'a> MessageNode<'a> {
    fn new(fields: Vec<(u32, Node<'a>)>) -> Self {
        let len = fields
            .iter()
            .map(|(number, node)| node.field_len(*number))
            .sum();
        Self { fields, len }
    }
}

fn write_fields(out: &mut Vec<u8>, fields: &[(u32, Node<'_>)]) {
    for (number, node) in fields {
        match node {
            Node::Varint(value) => {
                wire::put_key(out, *number, WireType::Varint);
                wire::put_varint(out, *value);
            }
            Node::Bytes(payload) => {
                let bytes = payload.as_slice();
                wire::put_key(out, *number, WireType::LengthDelimited);
                wire::put_varint(out, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
            Node::Message(message) => {
                wire::put_key(out, *number, WireType::LengthDelimited);
                wire::put_varint(out, message.len as u64);
                write_fields(out, &message.fields);
            }
        }
    }
}

/// Builds the node tree of one message from its JSON object.
fn encode_message<'a>(
    object: &'a Map<String, Value>,
    message: &'static Message,
    path: &Path<'_>,
    top_level: bool,
) -> Result<MessageNode<'a>, ProtobufError> {
    for (key, value) in object {
        let known = message.field_by_json(key).is_some()
            || (top_level && (key == "apiVersion" || key == "kind"));
        if !known && !value.is_null() {
            return Err(ProtobufError::UnknownField {
                field: path.field(key).render(),
                message: message.name,
            });
        }
    }
    let mut fields: Vec<&Field> = message.fields.iter().collect();
    fields.sort_by_key(|f| f.number);
    let mut nodes = Vec::with_capacity(fields.len());
    for field in fields {
        let value = object.get(field.json).filter(|v| !v.is_null());
        encode_field(field, value, &path.field(field.json), &mut nodes)?;
    }
    Ok(MessageNode::new(nodes))
}

fn encode_field<'a>(
    field: &Field,
    value: Option<&'a Value>,
    path: &Path<'_>,
    nodes: &mut Vec<(u32, Node<'a>)>,
) -> Result<(), ProtobufError> {
    let number = field.number;
    let always = field.presence != Presence::Optional;
    let invalid = |expected| ProtobufError::InvalidField {
        field: path.render(),
        expected,
    };
    match field.kind {
        Kind::String => {
            let text = match value {
                Some(value) => value.as_str().ok_or_else(|| invalid("a string"))?,
                None if always => "",
                None => return Ok(()),
            };
            nodes.push((number, Node::Bytes(Payload::Borrowed(text.as_bytes()))));
        }
        Kind::Bool => {
            let flag = match value {
                Some(value) => value.as_bool().ok_or_else(|| invalid("a boolean"))?,
                None if always => false,
                None => return Ok(()),
            };
            nodes.push((number, Node::Varint(u64::from(flag))));
        }
        Kind::Int64 => {
            let int = match value {
                Some(value) => value.as_i64().ok_or_else(|| invalid("a 64-bit integer"))?,
                None if always => 0,
                None => return Ok(()),
            };
            // Two's complement reinterpretation, as protobuf's int64 defines.
            nodes.push((number, Node::Varint(int as u64)));
        }
        Kind::Time => {
            let node = match value {
                Some(value) => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| invalid("an rfc 3339 string"))?;
                    let seconds =
                        wire::parse_rfc3339(text).ok_or_else(|| ProtobufError::InvalidTime {
                            field: path.render(),
                        })?;
                    // gogo writes both fields of the Timestamp; nanoseconds are always 0.
                    Node::message(vec![
                        (1, Node::Varint(seconds as u64)),
                        (2, Node::Varint(0)),
                    ])
                }
                None if always => Node::message(Vec::new()),
                None => return Ok(()),
            };
            nodes.push((number, node));
        }
        Kind::FieldsV1 => {
            let Some(value) = value else { return Ok(()) };
            let raw =
                serde_json::to_vec(value).map_err(|source| ProtobufError::InvalidFieldsV1 {
                    field: path.render(),
                    source,
                })?;
            let raw = Node::Bytes(Payload::Owned(Zeroizing::new(raw)));
            nodes.push((number, Node::message(vec![(1, raw)])));
        }
        Kind::Message(inner) => {
            static EMPTY: std::sync::LazyLock<Map<String, Value>> =
                std::sync::LazyLock::new(Map::new);
            let object = match value {
                Some(value) => value.as_object().ok_or_else(|| invalid("an object"))?,
                None if always => &EMPTY,
                None => return Ok(()),
            };
            nodes.push((
                number,
                Node::Message(encode_message(object, inner, path, false)?),
            ));
        }
        Kind::StringList => {
            let Some(value) = value else { return Ok(()) };
            let items = value
                .as_array()
                .ok_or_else(|| invalid("an array of strings"))?;
            for (i, item) in items.iter().enumerate() {
                let text = item.as_str().ok_or_else(|| ProtobufError::InvalidField {
                    field: path.index(i).render(),
                    expected: "a string",
                })?;
                nodes.push((number, Node::Bytes(Payload::Borrowed(text.as_bytes()))));
            }
        }
        Kind::MessageList(inner) => {
            let Some(value) = value else { return Ok(()) };
            let items = value
                .as_array()
                .ok_or_else(|| invalid("an array of objects"))?;
            for (i, item) in items.iter().enumerate() {
                let item_path = path.index(i);
                let object = item
                    .as_object()
                    .ok_or_else(|| ProtobufError::InvalidField {
                        field: item_path.render(),
                        expected: "an object",
                    })?;
                let node = encode_message(object, inner, &item_path, false)?;
                nodes.push((number, Node::Message(node)));
            }
        }
        Kind::StringMap | Kind::BytesMap | Kind::ExtraMap => {
            let Some(value) = value else { return Ok(()) };
            let map = value.as_object().ok_or_else(|| invalid("an object"))?;
            // Go sorts map keys bytewise before writing; `str` ordering is bytewise.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (key, value) in entries {
                let entry_path = path.key(key);
                let mut entry = vec![(1, Node::Bytes(Payload::Borrowed(key.as_bytes())))];
                if let Some(node) = encode_map_value(field.kind, value, &entry_path)? {
                    entry.push((2, node));
                }
                nodes.push((number, Node::message(entry)));
            }
        }
    }
    Ok(())
}

/// Encodes a map value; `None` leaves the value field out (a nil `[]byte` in Go).
fn encode_map_value<'a>(
    kind: Kind,
    value: &'a Value,
    path: &Path<'_>,
) -> Result<Option<Node<'a>>, ProtobufError> {
    let invalid = |expected| ProtobufError::InvalidField {
        field: path.render(),
        expected,
    };
    let node =
        match (kind, value) {
            // A JSON null decodes to the zero value in Go: "" for strings, nil for bytes.
            (Kind::BytesMap, Value::Null) => return Ok(None),
            (Kind::StringMap, Value::Null) => Node::Bytes(Payload::Borrowed(b"")),
            (Kind::ExtraMap, Value::Null) => Node::message(Vec::new()),
            (Kind::BytesMap, value) => {
                let text = value.as_str().ok_or_else(|| invalid("a base64 string"))?;
                let bytes = Zeroizing::new(BASE64.decode(text).map_err(|_| {
                    ProtobufError::InvalidBase64 {
                        field: path.render(),
                    }
                })?);
                Node::Bytes(Payload::Owned(bytes))
            }
            (Kind::ExtraMap, value) => {
                let items = value
                    .as_array()
                    .ok_or_else(|| invalid("an array of strings"))?;
                let mut nodes = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let text = item.as_str().ok_or_else(|| ProtobufError::InvalidField {
                        field: path.index(i).render(),
                        expected: "a string",
                    })?;
                    nodes.push((1, Node::Bytes(Payload::Borrowed(text.as_bytes()))));
                }
                Node::message(nodes)
            }
            (_, value) => {
                let text = value.as_str().ok_or_else(|| invalid("a string"))?;
                Node::Bytes(Payload::Borrowed(text.as_bytes()))
            }
        };
    Ok(Some(node))
}

/// Standard padded base64, accepting non-zero trailing bits as Go's `base64.StdEncoding` does.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

#[cfg(test)]
mod tests;
