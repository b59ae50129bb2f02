//! From the objects' current states to the files of one volume, with Kubernetes' rules: `items`
//! pick keys and paths, a missing key of a required source is an error, an absent optional
//! source contributes nothing, and modes come from the item or the volume's `defaultMode`.
//!
//! Pure: no IO, so every rule is unit-tested.

use std::collections::{BTreeMap, HashMap};

use crate::config::{Mode, RelPath, Source, Target, Volume};
use crate::object::{Namespace, ObjectRef, ObjectState, SecretBytes};

/// The files of one volume: path to content and mode.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Payload(pub(crate) BTreeMap<RelPath, FileContent>);

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileContent {
    pub(crate) bytes: SecretBytes,
    pub(crate) mode: Mode,
}

/// What to do with a volume now.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Keep the files as they are; the reason names objects, keys and paths, never values.
    Hold(String),
    /// Some source has not been read yet.
    Waiting,
    /// Write these files. `absent` lists required sources that do not exist: their files are
    /// left out (`--on-delete remove`).
    Write {
        payload: Payload,
        absent: Vec<ObjectRef>,
    },
}

/// What to do when a required source does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnDelete {
    /// Keep the last files.
    Keep,
    /// Remove the object's files.
    Remove,
}

/// The object a source of a volume reads, in `namespace`.
pub(crate) fn object_of(source: &Source, namespace: &Namespace) -> ObjectRef {
    ObjectRef {
        kind: source.kind,
        namespace: namespace.clone(),
        name: source.name.clone(),
    }
}

/// Projects `volume` from `states`.
pub(crate) fn project(
    volume: &Volume,
    namespace: &Namespace,
    states: &HashMap<ObjectRef, ObjectState>,
    on_delete: OnDelete,
) -> Outcome {
    let mut files: BTreeMap<RelPath, FileContent> = BTreeMap::new();
    let mut absent = Vec::new();
    for source in &volume.sources {
        let object = object_of(source, namespace);
        let data = match states.get(&object) {
            None => return Outcome::Waiting,
            Some(ObjectState::Unusable(reason)) => {
                return Outcome::Hold(format!("{object}: {reason}"));
            }
            Some(ObjectState::Absent) if source.optional => continue,
            Some(ObjectState::Absent) => match on_delete {
                OnDelete::Keep => {
                    return Outcome::Hold(format!(
                        "{object} does not exist; its last files are kept (--on-delete keep)"
                    ));
                }
                OnDelete::Remove => {
                    absent.push(object);
                    continue;
                }
            },
            Some(ObjectState::Present(data)) => data,
        };
        let mut add = |path: RelPath, bytes: &SecretBytes, mode: Mode| -> Result<(), String> {
            let content = FileContent {
                bytes: bytes.clone(),
                mode,
            };
            if files.insert(path.clone(), content).is_some() {
                return Err(format!(
                    "two sources write {:?}; give them distinct paths",
                    path.as_str()
                ));
            }
            Ok(())
        };
        let result = match &source.items {
            None => data.keys.iter().try_for_each(|(key, bytes)| {
                let path = RelPath::parse(&format!("{}{key}", source.prefix))
                    .map_err(|e| format!("{object}: key {key:?} cannot be a file name: {e}"))?;
                add(path, bytes, volume.default_mode)
            }),
            Some(items) => items
                .iter()
                .try_for_each(|item| match data.keys.get(&item.key) {
                    Some(bytes) => add(
                        item.path.clone(),
                        bytes,
                        item.mode.unwrap_or(volume.default_mode),
                    ),
                    None if source.optional => Ok(()),
                    None => Err(format!("{object} has no key {:?}", item.key)),
                }),
        };
        if let Err(reason) = result {
            return Outcome::Hold(reason);
        }
    }
    // A path cannot be both a file and a directory ("a" and "a/b").
    let paths: Vec<&str> = files.keys().map(RelPath::as_str).collect();
    for w in paths.windows(2) {
        if w[1]
            .strip_prefix(w[0])
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return Outcome::Hold(format!(
                "{:?} is both a file and a directory; give the items distinct paths",
                w[0]
            ));
        }
    }
    if let Target::File { sub_path, .. } = &volume.target {
        let file = files.remove(sub_path);
        if file.is_none() && absent.is_empty() {
            return Outcome::Hold(format!(
                "no key of its sources produces the file {:?} (subPath)",
                sub_path.as_str()
            ));
        }
        files = file.map(|f| (sub_path.clone(), f)).into_iter().collect();
    }
    Outcome::Write {
        payload: Payload(files),
        absent,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use zeroize::Zeroizing;

    use super::*;
    use crate::config::Item;
    use crate::object::{Kind, ObjectData, ObjectName};

    fn ns() -> Namespace {
        Namespace::parse("default").expect("ns")
    }

    fn src(name: &str, items: Option<Vec<(&str, &str, Option<u32>)>>, optional: bool) -> Source {
        Source {
            kind: Kind::Secret,
            name: ObjectName::parse(name).expect("name"),
            items: items.map(|v| {
                v.into_iter()
                    .map(|(k, p, m)| Item {
                        key: k.into(),
                        path: RelPath::parse(p).expect("path"),
                        mode: m.map(Mode),
                    })
                    .collect()
            }),
            optional,
            prefix: String::new(),
        }
    }

    fn vol(sources: Vec<Source>) -> Volume {
        Volume {
            label: "volume v".into(),
            target: Target::Dir(PathBuf::from("/t")),
            default_mode: Mode::DEFAULT,
            sources,
        }
    }

    fn present(pairs: &[(&str, &str)]) -> ObjectState {
        ObjectState::Present(Arc::new(ObjectData {
            keys: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        SecretBytes::new(Zeroizing::new(v.as_bytes().to_vec())),
                    )
                })
                .collect(),
        }))
    }

    fn states(list: Vec<(&str, ObjectState)>) -> HashMap<ObjectRef, ObjectState> {
        list.into_iter()
            .map(|(n, s)| (object_of(&src(n, None, false), &ns()), s))
            .collect()
    }

    fn held(o: Outcome) -> String {
        match o {
            Outcome::Hold(reason) => reason,
            other => panic!("expected a hold, got {other:?}"),
        }
    }

    fn files(o: Outcome) -> Vec<(String, String, u32)> {
        let Outcome::Write { payload, .. } = o else {
            panic!("expected a write, got {o:?}")
        };
        payload
            .0
            .into_iter()
            .map(|(p, c)| {
                (
                    p.as_str().to_owned(),
                    String::from_utf8(c.bytes.expose_secret().to_vec()).expect("utf8"),
                    c.mode.0,
                )
            })
            .collect()
    }

    #[test]
    fn all_keys_or_items_with_modes() {
        let st = states(vec![("a", present(&[("x", "1"), ("y", "2")]))]);
        let all = vol(vec![src("a", None, false)]);
        assert_eq!(
            files(project(&all, &ns(), &st, OnDelete::Remove)),
            vec![
                ("x".into(), "1".into(), 0o400),
                ("y".into(), "2".into(), 0o400)
            ]
        );
        let picked = vol(vec![src(
            "a",
            Some(vec![("y", "sub/why", Some(0o440))]),
            false,
        )]);
        assert_eq!(
            files(project(&picked, &ns(), &st, OnDelete::Remove)),
            vec![("sub/why".into(), "2".into(), 0o440)]
        );
    }

    #[test]
    fn missing_keys_sources_and_conflicts() {
        let st = states(vec![
            ("a", present(&[("x", "1")])),
            ("gone", ObjectState::Absent),
        ]);
        let v = vol(vec![src("a", Some(vec![("nope", "n", None)]), false)]);
        assert!(held(project(&v, &ns(), &st, OnDelete::Remove)).contains("has no key \"nope\""));
        let v = vol(vec![src("a", Some(vec![("nope", "n", None)]), true)]);
        assert_eq!(files(project(&v, &ns(), &st, OnDelete::Remove)), vec![]);
        let v = vol(vec![src("a", None, false), src("gone", None, false)]);
        let Outcome::Write { absent, .. } = project(&v, &ns(), &st, OnDelete::Remove) else {
            panic!("write")
        };
        assert_eq!(absent.len(), 1);
        assert!(matches!(
            project(&v, &ns(), &st, OnDelete::Keep),
            Outcome::Hold(m) if m.contains("--on-delete keep")
        ));
        let v = vol(vec![src("gone", None, true)]);
        assert_eq!(files(project(&v, &ns(), &st, OnDelete::Keep)), vec![]);
        let v = vol(vec![src("unknown", None, false)]);
        assert!(matches!(
            project(&v, &ns(), &st, OnDelete::Remove),
            Outcome::Waiting
        ));
        let v = vol(vec![
            src("a", None, false),
            src("a", Some(vec![("x", "x", None)]), false),
        ]);
        assert!(held(project(&v, &ns(), &st, OnDelete::Remove)).contains("two sources"));
        let v = vol(vec![src(
            "a",
            Some(vec![("x", "d", None), ("x", "d/e", None)]),
            false,
        )]);
        assert!(
            held(project(&v, &ns(), &st, OnDelete::Remove)).contains("both a file and a directory")
        );
    }

    #[test]
    fn debug_output_never_holds_a_value() {
        let st = states(vec![("a", present(&[("x", "canary-7d1f")]))]);
        let v = vol(vec![src("a", None, false)]);
        let out = project(&v, &ns(), &st, OnDelete::Remove);
        let text = format!("{out:?} {st:?} {v:?}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains("canary-7d1f"), "{text}");
    }

    #[test]
    fn a_hostile_key_cannot_escape_the_target() {
        let st = states(vec![("a", present(&[("..data", "1")]))]);
        let v = vol(vec![src("a", None, false)]);
        assert!(held(project(&v, &ns(), &st, OnDelete::Remove)).contains("cannot be a file name"));
    }

    #[test]
    fn single_file_targets() {
        let st = states(vec![
            ("a", present(&[("x", "1"), ("y", "2")])),
            ("gone", ObjectState::Absent),
        ]);
        let mut v = vol(vec![src("a", None, false)]);
        v.target = Target::File {
            path: PathBuf::from("/f"),
            sub_path: RelPath::parse("y").expect("p"),
        };
        assert_eq!(
            files(project(&v, &ns(), &st, OnDelete::Remove)),
            vec![("y".into(), "2".into(), 0o400)]
        );
        v.sources = vec![src("gone", None, false)];
        assert_eq!(files(project(&v, &ns(), &st, OnDelete::Remove)), vec![]);
        v.sources = vec![src("a", Some(vec![("x", "x", None)]), false)];
        assert!(held(project(&v, &ns(), &st, OnDelete::Remove)).contains("subPath"));
    }
}
