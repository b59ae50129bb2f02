//! From paths and streams to Kubernetes objects.
//!
//! Accepted: single- and multi-document YAML, JSON (one object or an array), `List` kinds and
//! typed lists (`SecretList`, as the API returns them; items then inherit `kind`/`apiVersion`),
//! `kubectl get -A -o yaml` dumps and Helm output (`helm template`, `helm get manifest`: empty
//! documents and `# Source:` comments are fine). Documents without a `kind` (Helm values,
//! docker-compose files, CI configs in a scanned repository) are ignored.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::ScanError;
use crate::finding::Resource;
use crate::yaml::{self, Node, Value};

/// A Kubernetes object (or config file with a `kind`) and where it came from.
#[derive(Debug)]
pub(crate) struct Object {
    pub(crate) file: Arc<str>,
    /// The directory of the file, used to tell that static pods share a node. `None` for stdin.
    pub(crate) dir: Option<Arc<str>>,
    pub(crate) document: usize,
    pub(crate) item: Option<usize>,
    pub(crate) resource: Resource,
    pub(crate) node: Node,
}

/// Largest file or stream read (a 10,000-object dump is about 50 MB).
pub(crate) const MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;

/// Files found under `dir` with a manifest extension, sorted, without following symlinked
/// directories or entering hidden ones (`.git`, and the `..data` of mounted ConfigMaps).
pub(crate) fn walk(dir: &Path) -> Result<Vec<PathBuf>, ScanError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let read = |source| ScanError::Read {
            path: current.clone(),
            source,
        };
        let mut entries: Vec<_> = fs::read_dir(&current)
            .map_err(read)?
            .collect::<Result<_, _>>()
            .map_err(read)?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let file_type = entry.file_type().map_err(|source| ScanError::Read {
                path: path.clone(),
                source,
            })?;
            if file_type.is_dir() {
                subdirs.push(path);
            } else if has_manifest_extension(&path) && (file_type.is_file() || path.is_file()) {
                found.push(path);
            }
        }
        // Depth-first, in name order.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(found)
}

/// Reads a whole file or stream, refusing more than [`MAX_INPUT_BYTES`] and non-UTF-8 input.
pub(crate) fn read_text(name: &str, reader: impl Read) -> Result<String, ScanError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ScanError::Read {
            path: PathBuf::from(name),
            source,
        })?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(ScanError::TooLarge {
            file: name.to_owned(),
            limit: MAX_INPUT_BYTES,
        });
    }
    let mut text = String::from_utf8(bytes).map_err(|_| ScanError::NotUtf8 {
        file: name.to_owned(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Parses one file's text into objects.
pub(crate) fn objects_from_text(name: &str, text: &str) -> Result<Vec<Object>, ScanError> {
    let documents = match yaml::parse_stream(text) {
        Ok(docs) => docs,
        Err(yaml_error) => {
            // Some JSON (tabs for indentation, say) is valid JSON but not YAML.
            let trimmed = text.trim_start();
            match (trimmed.starts_with(['{', '['])).then(|| serde_json::from_str(text)) {
                Some(Ok(value)) => vec![yaml::Document {
                    index: 0,
                    root: yaml::from_json(value),
                }],
                _ => {
                    return Err(ScanError::Parse {
                        file: name.to_owned(),
                        line: yaml_error.line,
                        column: yaml_error.column,
                        message: yaml_error.message,
                    });
                }
            }
        }
    };
    Ok(objects_from_documents(name, documents))
}

/// Turns one JSON value (a live cluster's list) into objects. Its nodes carry no line: the
/// value came from the API, not from a file a user could open.
pub(crate) fn objects_from_json(name: &str, value: serde_json::Value) -> Vec<Object> {
    objects_from_documents(
        name,
        vec![yaml::Document {
            index: 0,
            root: yaml::from_json(value),
        }],
    )
}

fn objects_from_documents(name: &str, documents: Vec<yaml::Document>) -> Vec<Object> {
    let file: Arc<str> = Arc::from(name);
    let dir = dir_of(name);
    let mut objects = Vec::new();
    for doc in documents {
        let mut push = |node: Node, item: Option<usize>| {
            if let Some(resource) = resource_of(&node) {
                objects.push(Object {
                    file: Arc::clone(&file),
                    dir: dir.clone(),
                    document: doc.index,
                    item,
                    resource,
                    node,
                });
            }
        };
        match doc.root.value {
            Value::Seq(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    push(item, Some(i));
                }
            }
            Value::Map(_) if is_list(&doc.root) => {
                let list_kind = doc
                    .root
                    .get("kind")
                    .and_then(Node::as_str)
                    .unwrap_or("List");
                let item_kind = list_kind
                    .strip_suffix("List")
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned);
                let api_version = doc
                    .root
                    .get("apiVersion")
                    .and_then(Node::as_str)
                    .map(str::to_owned);
                let items = match doc.root.value {
                    Value::Map(entries) => entries
                        .into_iter()
                        .rev()
                        .find(|e| e.key == "items")
                        .map(|e| e.value),
                    _ => None,
                };
                let items = match items.map(|n| n.value) {
                    Some(Value::Seq(items)) => items,
                    _ => Vec::new(),
                };
                for (i, mut item) in items.into_iter().enumerate() {
                    if let Value::Map(entries) = &mut item.value {
                        inherit(entries, "kind", item_kind.as_deref());
                        if item_kind.is_some() {
                            inherit(entries, "apiVersion", api_version.as_deref());
                        }
                    }
                    push(item, Some(i));
                }
            }
            _ => push(doc.root, None),
        }
    }
    objects
}

fn is_list(root: &Node) -> bool {
    root.get("kind")
        .and_then(Node::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && root.get("items").is_some()
}

fn inherit(entries: &mut Vec<yaml::Entry>, key: &str, value: Option<&str>) {
    if let Some(value) = value
        && !entries.iter().any(|e| e.key == key)
    {
        entries.push(yaml::Entry {
            key: key.to_owned(),
            key_line: None,
            value: Node {
                line: None,
                value: Value::Scalar {
                    text: value.to_owned(),
                    plain: false,
                },
            },
        });
    }
}

fn resource_of(node: &Node) -> Option<Resource> {
    let kind = node.get("kind")?.as_str()?.to_owned();
    let text = |keys: &[&str]| node.at(keys).and_then(Node::as_str).map(str::to_owned);
    let name = text(&["metadata", "name"])
        .or_else(|| text(&["metadata", "generateName"]).map(|g| format!("{g}*")));
    Some(Resource {
        api_version: text(&["apiVersion"]),
        kind,
        namespace: text(&["metadata", "namespace"]),
        name,
    })
}

fn dir_of(name: &str) -> Option<Arc<str>> {
    if name == "-" {
        return None;
    }
    let parent = Path::new(name).parent()?;
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Some(Arc::from(parent.to_string_lossy().as_ref()))
}

fn has_manifest_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        e.eq_ignore_ascii_case("yaml")
            || e.eq_ignore_ascii_case("yml")
            || e.eq_ignore_ascii_case("json")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_plain_documents() {
        let text = "\
# Source: chart/templates/a.yaml
apiVersion: v1
kind: SecretList
items:
- metadata: {name: a, namespace: ns}
  type: Opaque
- kind: Secret
  apiVersion: v1
  metadata: {name: b}
---
---
replicaCount: 3
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
";
        let objects = objects_from_text("dump.yaml", text).unwrap();
        let summary: Vec<_> = objects
            .iter()
            .map(|o| {
                (
                    o.resource.kind.as_str(),
                    o.resource.api_version.as_deref(),
                    o.resource.name.as_deref(),
                    o.document,
                    o.item,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("Secret", Some("v1"), Some("a"), 0, Some(0)),
                ("Secret", Some("v1"), Some("b"), 0, Some(1)),
                ("ConfigMap", Some("v1"), Some("c"), 3, Some(0)),
            ]
        );
        assert_eq!(objects[0].resource.namespace.as_deref(), Some("ns"));
        assert_eq!(objects[0].dir.as_deref(), Some("."));
    }

    #[test]
    fn json_with_tabs_falls_back_to_serde_json() {
        let text = "{\n\t\"kind\":\t\"Pod\",\n\t\"metadata\": {\"name\": \"p\"}\n}";
        let objects = objects_from_text("p.json", text).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].resource.name.as_deref(), Some("p"));
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let err = objects_from_text("bad.yaml", "kind: Pod\n  x: [\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bad.yaml:"), "{text}");
    }
}
