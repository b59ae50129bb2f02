//! A small document tree with line numbers, built from YAML events or from JSON.
//!
//! Kubernetes reads manifests with `sigs.k8s.io/yaml`, which is go-yaml v2 and therefore YAML
//! 1.1: `yes`/`on` are booleans and `0400` is an octal integer. The accessors here follow that
//! reading, because a scanner that reads `privileged: yes` as a string would miss a privileged
//! container that the cluster runs. Scalars keep their source text and are typed on demand.
//!
//! Input is untrusted. Nesting is bounded by the parser (256 levels), alias expansion by a node
//! budget and a depth limit, so a billion-laughs document is an error and never a hang, and the
//! recursive walks (and `Drop`) over the tree cannot overflow the stack.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// One node: a scalar, a sequence or a mapping, with the line it starts on.
///
/// `Debug` prints the structure and keys but `[redacted]` for every scalar: a node may hold a
/// secret value.
#[derive(Clone)]
pub(crate) struct Node {
    /// 1-based line of the node in its file, when known (absent for JSON read by serde_json).
    pub(crate) line: Option<usize>,
    pub(crate) value: Value,
}

/// The content of a [`Node`].
#[derive(Clone)]
pub(crate) enum Value {
    Map(Vec<Entry>),
    Null,
    Scalar {
        text: String,
        /// A plain (unquoted, untagged) scalar, typed by the YAML 1.1 rules; quoted scalars are
        /// always strings.
        plain: bool,
    },
    Seq(Vec<Node>),
}

/// One key/value pair of a mapping. Keys are scalars; complex keys become empty strings.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_line: Option<usize>,
    pub(crate) value: Node,
}

/// A document of a YAML stream (or a JSON file).
#[derive(Debug)]
pub(crate) struct Document {
    /// 0-based position in the stream, counting empty documents.
    pub(crate) index: usize,
    pub(crate) root: Node,
}

/// Why a stream could not be read. The message never contains input text.
#[derive(Debug)]
pub(crate) struct YamlError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// Parses a multi-document YAML stream (JSON is YAML too). Empty documents are kept as `Null`.
pub(crate) fn parse_stream(text: &str) -> Result<Vec<Document>, YamlError> {
    Builder::default().run(text)
}

/// Converts JSON (read by serde_json when the YAML parser refuses a JSON file) into a tree
/// without line numbers.
pub(crate) fn from_json(value: serde_json::Value) -> Node {
    let value = match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Scalar {
            text: b.to_string(),
            plain: true,
        },
        serde_json::Value::Number(n) => Value::Scalar {
            text: n.to_string(),
            plain: true,
        },
        serde_json::Value::String(text) => Value::Scalar { text, plain: false },
        serde_json::Value::Array(items) => Value::Seq(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Map(
            map.into_iter()
                .map(|(key, v)| Entry {
                    key,
                    key_line: None,
                    value: from_json(v),
                })
                .collect(),
        ),
    };
    Node { line: None, value }
}

// === impl Node ===

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Map(entries) => f
                .debug_map()
                .entries(entries.iter().map(|e| (&e.key, &e.value)))
                .finish(),
            Value::Null => f.write_str("null"),
            Value::Scalar { .. } => f.write_str("[redacted]"),
            Value::Seq(items) => f.debug_list().entries(items).finish(),
        }
    }
}

impl Node {
    /// The value under `key` in a mapping (the last one if the key repeats, as Go's JSON does).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry under `key`, with the line of the key.
    pub(crate) fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().rev().find(|e| e.key == key),
            _ => None,
        }
    }

    /// Follows a chain of mapping keys.
    pub(crate) fn at(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The entries of a mapping; empty for anything else.
    pub(crate) fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items of a sequence; empty for anything else.
    pub(crate) fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// The text of a scalar (of any type); `None` for null, sequences and mappings.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The strings of a sequence of scalars (other items are skipped).
    pub(crate) fn strings(&self) -> Vec<&str> {
        self.items().iter().filter_map(Node::as_str).collect()
    }

    /// A boolean as go-yaml v2 reads it (`true`, `yes`, `on`, `y`, in any of its three cases).
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y"
                | "Y" => Some(true),
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n"
                | "N" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// An integer as go-yaml v2 reads it: decimal, `0x` hex, `0o` or leading-`0` octal, `0b`
    /// binary, with optional sign and `_` separators. Quoted scalars are not integers.
    pub(crate) fn as_int(&self) -> Option<i64> {
        match &self.value {
            Value::Scalar { text, plain: true } => parse_yaml11_int(text),
            _ => None,
        }
    }

    /// Whether the node is a mapping.
    pub(crate) fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// The node as JSON, the way the API server would store it: plain `true`/`false` and
    /// integers are typed, everything else is a string. Recursion is bounded by the depth
    /// limit enforced while parsing.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Scalar { text, plain } => {
                if *plain && let Some(b) = self.as_bool() {
                    serde_json::Value::Bool(b)
                } else if *plain && let Some(i) = self.as_int() {
                    serde_json::Value::from(i)
                } else {
                    serde_json::Value::String(text.clone())
                }
            }
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for entry in entries {
                    map.insert(entry.key.clone(), entry.value.to_json());
                }
                serde_json::Value::Object(map)
            }
        }
    }
}

fn parse_yaml11_int(text: &str) -> Option<i64> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, digits) = match cleaned.as_bytes().first()? {
        b'-' => (true, &cleaned[1..]),
        b'+' => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if negative { -magnitude } else { magnitude })
}

// === Builder ===

/// Aliases may expand to at most this many nodes per stream (billion laughs).
const ALIAS_NODE_BUDGET: usize = 1_000_000;
/// Trees deeper than this are refused, so that recursion over them is bounded.
const MAX_DEPTH: usize = 512;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Built>,
    alias_nodes: usize,
    documents: Vec<Document>,
    root: Option<Node>,
}

/// A finished node with its size and height, so aliases can be budgeted without walking it.
#[derive(Clone)]
struct Built {
    node: Node,
    count: usize,
    height: usize,
}

enum Frame {
    Seq {
        line: Option<usize>,
        anchor: usize,
        items: Vec<Node>,
        count: usize,
        height: usize,
    },
    Map {
        line: Option<usize>,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, Option<usize>)>,
        count: usize,
        height: usize,
    },
}

impl Builder {
    fn run(mut self, text: &str) -> Result<Vec<Document>, YamlError> {
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| YamlError {
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info(),
            })?;
            let line = Some(span.start.line());
            let error = |message: &str| YamlError {
                line: span.start.line(),
                column: span.start.col() + 1,
                message: message.to_owned(),
            };
            match event {
                Event::DocumentStart(..) => {
                    self.anchors.clear();
                    self.root = None;
                }
                Event::DocumentEnd => {
                    let root = self.root.take().unwrap_or(Node {
                        line,
                        value: Value::Null,
                    });
                    let index = self.documents.len();
                    self.documents.push(Document { index, root });
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let plain = style == ScalarStyle::Plain && tag.is_none();
                    let value = if plain && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                        Value::Null
                    } else {
                        Value::Scalar {
                            text: text.into_owned(),
                            plain,
                        }
                    };
                    let built = Built {
                        node: Node { line, value },
                        count: 1,
                        height: 1,
                    };
                    if anchor != 0 {
                        self.anchors.insert(anchor, built.clone());
                    }
                    self.push(built).map_err(&error)?;
                }
                Event::Alias(id) => {
                    let Some(built) = self.anchors.get(&id).cloned() else {
                        return Err(error("alias to an unknown anchor"));
                    };
                    self.alias_nodes = self.alias_nodes.saturating_add(built.count);
                    if self.alias_nodes > ALIAS_NODE_BUDGET {
                        return Err(error("aliases expand to too many nodes"));
                    }
                    self.push(built).map_err(&error)?;
                }
                Event::SequenceStart(_, anchor, _) => self.stack.push(Frame::Seq {
                    line,
                    anchor,
                    items: Vec::new(),
                    count: 1,
                    height: 0,
                }),
                Event::MappingStart(_, anchor, _) => self.stack.push(Frame::Map {
                    line,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    count: 1,
                    height: 0,
                }),
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(frame) = self.stack.pop() else {
                        return Err(error("unbalanced collection end"));
                    };
                    let (built, anchor) = match frame {
                        Frame::Seq {
                            line,
                            anchor,
                            items,
                            count,
                            height,
                        } => (
                            Built {
                                node: Node {
                                    line,
                                    value: Value::Seq(items),
                                },
                                count,
                                height: height + 1,
                            },
                            anchor,
                        ),
                        Frame::Map {
                            line,
                            anchor,
                            entries,
                            count,
                            height,
                            ..
                        } => (
                            Built {
                                node: Node {
                                    line,
                                    value: Value::Map(merge_keys(entries)),
                                },
                                count,
                                height: height + 1,
                            },
                            anchor,
                        ),
                    };
                    if anchor != 0 {
                        self.anchors.insert(anchor, built.clone());
                    }
                    self.push(built).map_err(&error)?;
                }
                _ => {}
            }
        }
        Ok(self.documents)
    }

    /// Adds a finished node to the open collection, or makes it the document root.
    fn push(&mut self, built: Built) -> Result<(), &'static str> {
        if self.stack.len() + built.height > MAX_DEPTH {
            return Err("document nested too deeply");
        }
        match self.stack.last_mut() {
            None => self.root = Some(built.node),
            Some(Frame::Seq {
                items,
                count,
                height,
                ..
            }) => {
                items.push(built.node);
                *count = count.saturating_add(built.count);
                *height = (*height).max(built.height);
            }
            Some(Frame::Map {
                entries,
                key,
                count,
                height,
                ..
            }) => {
                *count = count.saturating_add(built.count);
                *height = (*height).max(built.height);
                match key.take() {
                    None => {
                        let text = built.node.as_str().unwrap_or_default().to_owned();
                        *key = Some((text, built.node.line));
                    }
                    Some((k, key_line)) => entries.push(Entry {
                        key: k,
                        key_line,
                        value: built.node,
                    }),
                }
            }
        }
        Ok(())
    }
}

/// Applies YAML merge keys (`<<: *base`, `<<: [*a, *b]`), which go-yaml v2 supports: explicit
/// keys win, then earlier merged maps.
fn merge_keys(entries: Vec<Entry>) -> Vec<Entry> {
    if !entries.iter().any(|e| e.key == "<<") {
        return entries;
    }
    let (merges, mut own): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.key == "<<");
    for merge in merges {
        let sources: Vec<Node> = match merge.value.value {
            Value::Map(_) => vec![merge.value],
            Value::Seq(items) => items,
            _ => Vec::new(),
        };
        for source in sources {
            if let Value::Map(inherited) = source.value {
                for entry in inherited {
                    if !own.iter().any(|e| e.key == entry.key) {
                        own.push(entry);
                    }
                }
            }
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0).root
    }

    #[test]
    fn multi_document_with_lines() {
        let docs = parse_stream("a: 1\n---\n---\nkind: Pod\nmetadata:\n  name: x\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(matches!(docs[1].root.value, Value::Null));
        let pod = &docs[2].root;
        assert_eq!(pod.get("kind").unwrap().as_str(), Some("Pod"));
        assert_eq!(pod.entry("metadata").unwrap().key_line, Some(5));
        assert_eq!(pod.at(&["metadata", "name"]).unwrap().line, Some(6));
    }

    #[test]
    fn yaml11_scalars() {
        let n = one("a: yes\nb: 'yes'\nc: 0400\nd: 256\ne: 0o644\nf: \"0400\"\ng: ~\nh: 0x1F\n");
        assert_eq!(n.get("a").unwrap().as_bool(), Some(true));
        assert_eq!(n.get("b").unwrap().as_bool(), None);
        assert_eq!(n.get("c").unwrap().as_int(), Some(0o400));
        assert_eq!(n.get("d").unwrap().as_int(), Some(256));
        assert_eq!(n.get("e").unwrap().as_int(), Some(0o644));
        assert_eq!(n.get("f").unwrap().as_int(), None);
        assert!(matches!(n.get("g").unwrap().value, Value::Null));
        assert_eq!(n.get("h").unwrap().as_int(), Some(31));
        assert_eq!(parse_yaml11_int("09"), None);
        assert_eq!(parse_yaml11_int("-0"), Some(0));
    }

    #[test]
    fn json_is_read_with_lines() {
        let n = one("{\n  \"kind\": \"Pod\",\n  \"spec\": {\"hostPID\": true}\n}\n");
        assert_eq!(n.at(&["spec", "hostPID"]).unwrap().as_bool(), Some(true));
        assert_eq!(n.entry("spec").unwrap().key_line, Some(3));
    }

    #[test]
    fn aliases_and_merge_keys() {
        let n = one("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\ns: *b\n");
        assert_eq!(n.at(&["d", "x"]).unwrap().as_int(), Some(1));
        assert_eq!(n.at(&["d", "y"]).unwrap().as_int(), Some(3));
        assert_eq!(n.at(&["s", "y"]).unwrap().as_int(), Some(2));
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_stream(&text).unwrap_err();
        assert!(err.message.contains("too many"), "{}", err.message);
    }

    #[test]
    fn deep_alias_chains_are_refused() {
        // Each anchor nests the previous one 200 levels deeper; the parser alone would allow it.
        let mut text = String::new();
        let open = "[".repeat(200);
        let close = "]".repeat(200);
        text.push_str(&format!("a0: &a0 {open}x{close}\n"));
        for i in 1..6 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} {open}*a{prev}{close}\n"));
        }
        let err = parse_stream(&text).unwrap_err();
        assert!(err.message.contains("deeply"), "{}", err.message);
    }

    #[test]
    fn errors_carry_position_not_text() {
        let err = parse_stream("a: b\n  c: hunter2: x\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(!err.message.contains("hunter2"));
    }
}
