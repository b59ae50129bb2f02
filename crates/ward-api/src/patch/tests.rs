use proptest::prelude::*;
use serde_json::json;

use super::*;

fn smp(mut target: Value, patch: Value, kind: &str) -> Value {
    strategic_merge_patch(&mut target, &patch, kind).unwrap_or_else(|e| panic!("{patch}: {e}"));
    assert_no_directives(&target);
    target
}

fn smp_error(target: Value, patch: Value, kind: &str) -> PatchError {
    let mut patched = target.clone();
    let error = strategic_merge_patch(&mut patched, &patch, kind).unwrap_err();
    assert_eq!(patched, target, "an error leaves the target unchanged");
    error
}

fn assert_no_directives(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                assert!(!key.starts_with('$'), "directive {key} left in the result");
                assert_no_directives(value);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_directives),
        _ => {}
    }
}

// === Merge patch and JSON patch ===

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut secret = json!({"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}},
                            "data": {"x": "eA=="}, "type": "Opaque"});
    merge_patch(
        &mut secret,
        &json!({"metadata": {"labels": {"a": null, "c": "3"}},
                                     "data": {"y": "eQ=="}}),
    );
    assert_eq!(
        secret,
        json!({"metadata": {"name": "s", "labels": {"b": "2", "c": "3"}},
               "data": {"x": "eA==", "y": "eQ=="}, "type": "Opaque"})
    );
    let mut value = json!({"list": [1, 2]});
    merge_patch(&mut value, &json!({"list": [3]}));
    assert_eq!(value, json!({"list": [3]}));
}

#[test]
fn json_patch_is_all_or_nothing() {
    let original = json!({"data": {"x": "eA==", "z": "eg=="}});
    let mut value = original.clone();
    json_patch(
        &mut value,
        &json!([{"op": "remove", "path": "/data/z"},
                                   {"op": "add", "path": "/data/y", "value": "eQ=="}]),
    )
    .unwrap();
    assert_eq!(value, json!({"data": {"x": "eA==", "y": "eQ=="}}));

    let mut value = original.clone();
    let error = json_patch(
        &mut value,
        &json!([
            {"op": "remove", "path": "/data/z"},
            {"op": "test", "path": "/data/x", "value": "c2VjcmV0"},
        ]),
    )
    .unwrap_err();
    assert!(matches!(error, PatchError::JsonPatch(_)));
    assert_eq!(
        error.to_string(),
        "json patch failed: operation '/1' failed at path '/data/x': value did not match"
    );
    assert_eq!(value, original);

    let error = json_patch(&mut value, &json!({"op": "remove"})).unwrap_err();
    assert!(matches!(error, PatchError::InvalidJsonPatch(_)));
    let error = json_patch(&mut value, &json!([{"op": "explode", "path": "/a"}])).unwrap_err();
    assert!(matches!(error, PatchError::InvalidJsonPatch(_)));
    assert_eq!(value, original);
}

// === Strategic merge patch ===

#[test]
fn smp_merges_maps_like_a_merge_patch() {
    let secret = json!({"metadata": {"name": "s", "labels": {"a": "1"},
                                     "annotations": {"k": "v"}},
                        "data": {"x": "eA=="}, "type": "Opaque"});
    let patched = smp(
        secret,
        json!({"metadata": {"labels": {"tier": "web", "a": null}, "annotations": null},
               "stringData": {"s": "t"}}),
        "Secret",
    );
    assert_eq!(
        patched,
        json!({"metadata": {"name": "s", "labels": {"tier": "web"}},
               "data": {"x": "eA=="}, "type": "Opaque", "stringData": {"s": "t"}})
    );
    // Nulls inside values new to the object are dropped, as upstream does.
    let patched = smp(
        json!({}),
        json!({"metadata": {"labels": {"a": null, "b": "c"}}}),
        "Secret",
    );
    assert_eq!(patched, json!({"metadata": {"labels": {"b": "c"}}}));
    // A non-object target is replaced.
    assert_eq!(smp(json!(null), json!({"a": 1}), "Secret"), json!({"a": 1}));
}

#[test]
fn smp_merges_service_account_lists_by_name() {
    let account = json!({
        "metadata": {"name": "sa"},
        "secrets": [{"name": "a"}, {"name": "b", "namespace": "x"}],
        "imagePullSecrets": [{"name": "pull-1"}],
    });
    let patched = smp(
        account.clone(),
        json!({"secrets": [{"name": "b", "namespace": "y"}, {"name": "c"}],
               "imagePullSecrets": [{"name": "pull-2"}]}),
        "ServiceAccount",
    );
    assert_eq!(
        patched,
        json!({"metadata": {"name": "sa"},
               "secrets": [{"name": "a"}, {"name": "b", "namespace": "y"}, {"name": "c"}],
               "imagePullSecrets": [{"name": "pull-2"}, {"name": "pull-1"}]})
    );

    let patched = smp(
        account.clone(),
        json!({"secrets": [{"name": "a", "$patch": "delete"}, {"name": "d"}]}),
        "ServiceAccount",
    );
    assert_eq!(
        patched["secrets"],
        json!([{"name": "d"}, {"name": "b", "namespace": "x"}])
    );

    let patched = smp(
        account.clone(),
        json!({"secrets": [{"$patch": "replace"}, {"name": "z", "namespace": null}]}),
        "ServiceAccount",
    );
    assert_eq!(patched["secrets"], json!([{"name": "z"}]));

    // The same lists in another kind are atomic.
    let patched = smp(account, json!({"secrets": [{"name": "c"}]}), "ConfigMap");
    assert_eq!(patched["secrets"], json!([{"name": "c"}]));
}

#[test]
fn smp_merges_owner_references_by_uid_and_finalizers_as_a_set() {
    let object = json!({"metadata": {
        "name": "s",
        "ownerReferences": [{"uid": "1", "name": "a", "kind": "X", "apiVersion": "v1"}],
        "finalizers": ["a", "b"],
    }});
    let patched = smp(
        object.clone(),
        json!({"metadata": {
            "ownerReferences": [{"uid": "1", "controller": true},
                                {"uid": "2", "name": "b", "kind": "Y", "apiVersion": "v1"}],
            "finalizers": ["b", "c"],
        }}),
        "Secret",
    );
    assert_eq!(
        patched["metadata"]["ownerReferences"],
        json!([{"uid": "1", "name": "a", "kind": "X", "apiVersion": "v1", "controller": true},
               {"uid": "2", "name": "b", "kind": "Y", "apiVersion": "v1"}])
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b", "c"]));

    // New patch items come first unless the live list places them (upstream ordering).
    let patched = smp(
        object.clone(),
        json!({"metadata": {"finalizers": ["z"]}}),
        "Role",
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["z", "a", "b"]));

    let patched = smp(
        object.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "q"]}}),
        "Secret",
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["b"]));

    let patched = smp(
        object,
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}}),
        "Secret",
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["c", "b", "a"]));
}

#[test]
fn smp_honours_set_element_order_for_merge_key_lists() {
    let account = json!({"secrets": [{"name": "a"}, {"name": "b"}, {"name": "c"}]});
    // What `kubectl apply` sends after reordering and adding: order list plus changed items.
    let patched = smp(
        account.clone(),
        json!({"$setElementOrder/secrets": [{"name": "c"}, {"name": "d"}, {"name": "a"}],
               "secrets": [{"name": "d"}]}),
        "ServiceAccount",
    );
    // `b` is not in the order list: as upstream, it keeps its live place before `c`.
    assert_eq!(
        patched["secrets"],
        json!([{"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "a"}])
    );
    // Order only, no list in the patch.
    let patched = smp(
        account.clone(),
        json!({"$setElementOrder/secrets": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}),
        "ServiceAccount",
    );
    assert_eq!(
        patched["secrets"],
        json!([{"name": "c"}, {"name": "b"}, {"name": "a"}])
    );
    // A deletion next to an order.
    let patched = smp(
        account,
        json!({"$setElementOrder/secrets": [{"name": "c"}, {"name": "a"}],
               "secrets": [{"name": "b", "$patch": "delete"}]}),
        "ServiceAccount",
    );
    assert_eq!(patched["secrets"], json!([{"name": "c"}, {"name": "a"}]));
    // On an atomic list the order directive is accepted and stripped.
    let patched = smp(
        json!({"rules": [{"verbs": ["get"]}]}),
        json!({"$setElementOrder/rules": [{"verbs": ["list"]}], "rules": [{"verbs": ["list"]}]}),
        "Role",
    );
    assert_eq!(patched, json!({"rules": [{"verbs": ["list"]}]}));
}

#[test]
fn smp_replaces_rbac_lists() {
    let role = json!({"metadata": {"name": "r"},
                      "rules": [{"verbs": ["get"], "resources": ["secrets"], "apiGroups": [""]}]});
    let patched = smp(
        role,
        json!({"rules": [{"verbs": ["list"], "resources": ["configmaps"]}]}),
        "Role",
    );
    assert_eq!(
        patched["rules"],
        json!([{"verbs": ["list"], "resources": ["configmaps"]}])
    );

    let binding = json!({"subjects": [{"kind": "User", "name": "a"}],
                         "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"}});
    let patched = smp(
        binding,
        json!({"subjects": [{"kind": "User", "name": "b"}]}),
        "RoleBinding",
    );
    assert_eq!(patched["subjects"], json!([{"kind": "User", "name": "b"}]));
}

#[test]
fn smp_namespace_lists() {
    let namespace = json!({
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active", "conditions": [{"type": "A", "status": "True"}]},
    });
    let patched = smp(
        namespace,
        json!({"spec": {"finalizers": ["example.com/x"]},
               "status": {"conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]}}),
        "Namespace",
    );
    assert_eq!(
        patched["spec"]["finalizers"],
        json!(["example.com/x", "kubernetes"])
    );
    assert_eq!(
        patched["status"]["conditions"],
        json!([{"type": "A", "status": "False"}, {"type": "B", "status": "True"}])
    );
}

#[test]
fn smp_map_directives() {
    let object =
        json!({"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}}, "data": {"x": "eA=="}});
    let patched = smp(
        object.clone(),
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3", "d": null}}}),
        "Secret",
    );
    assert_eq!(patched["metadata"]["labels"], json!({"c": "3"}));

    let patched = smp(
        object.clone(),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
        "Secret",
    );
    assert_eq!(patched["metadata"]["labels"], json!({}));

    let patched = smp(
        object.clone(),
        json!({"metadata": {"labels": {"$patch": "merge", "c": "3"}}}),
        "Secret",
    );
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"a": "1", "b": "2", "c": "3"})
    );

    let patched = smp(
        object.clone(),
        json!({"metadata": {"labels": {"$retainKeys": ["b", "c"], "c": "3"}}}),
        "Secret",
    );
    assert_eq!(patched["metadata"]["labels"], json!({"b": "2", "c": "3"}));

    // Whole-object replace.
    let patched = smp(
        object,
        json!({"$patch": "replace", "metadata": {"name": "t"}}),
        "Secret",
    );
    assert_eq!(patched, json!({"metadata": {"name": "t"}}));

    // Directives inside values new to the object are processed too.
    let patched = smp(
        json!({}),
        json!({"metadata": {"labels": {"$patch": "replace", "a": "1"},
                            "finalizers": ["x"], "$setElementOrder/finalizers": ["x"]}}),
        "Secret",
    );
    assert_eq!(
        patched,
        json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]}})
    );
    let patched = smp(
        json!({}),
        json!({"secrets": [{"name": "a", "$patch": "delete"}, {"name": "b"}, {"$patch": "replace"}]}),
        "ServiceAccount",
    );
    assert_eq!(patched, json!({"secrets": [{"name": "b"}]}));
}

#[test]
fn smp_errors() {
    let object = json!({"metadata": {"name": "s", "labels": {"a": "1"}},
                        "secrets": [{"name": "a"}], "data": {"k": "c2VjcmV0"}});
    let error = smp_error(object.clone(), json!([]), "Secret");
    assert_eq!(
        error.to_string(),
        "strategic merge patch must be a json object"
    );

    let error = smp_error(
        object.clone(),
        json!({"metadata": {"labels": {"$patch": "explode"}}}),
        "Secret",
    );
    assert_eq!(
        error.to_string(),
        "invalid patch directive $patch: explode at metadata.labels"
    );

    let error = smp_error(
        object.clone(),
        json!({"data": {"$unknown": "c2VjcmV0"}}),
        "Secret",
    );
    assert_eq!(
        error.to_string(),
        "invalid patch directive $unknown at data"
    );
    assert!(!format!("{error:?}").contains("c2VjcmV0"));

    let error = smp_error(object.clone(), json!({"$setElementOrder/": []}), "Secret");
    assert!(matches!(error, PatchError::InvalidDirective { .. }));

    let error = smp_error(
        object.clone(),
        json!({"metadata": {"labels": {"$retainKeys": ["a"], "b": "2"}}}),
        "Secret",
    );
    assert_eq!(
        error.to_string(),
        "key b at metadata.labels is not present in the $retainKeys list"
    );

    let error = smp_error(
        object.clone(),
        json!({"metadata": {"$retainKeys": "a"}}),
        "Secret",
    );
    assert_eq!(
        error.to_string(),
        "directive $retainKeys at metadata must be a list"
    );

    let error = smp_error(
        object.clone(),
        json!({"metadata": {"$setElementOrder/finalizers": {}}}),
        "Secret",
    );
    assert!(matches!(error, PatchError::InvalidDirectiveValue { .. }));

    let error = smp_error(
        object.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": 1}}),
        "Secret",
    );
    assert!(matches!(error, PatchError::InvalidDirectiveValue { .. }));

    let error = smp_error(
        object.clone(),
        json!({"secrets": [{"namespace": "x"}]}),
        "ServiceAccount",
    );
    assert_eq!(
        error.to_string(),
        "an element of list secrets does not contain the merge key name"
    );

    let error = smp_error(
        object.clone(),
        json!({"secrets": [{"$patch": "delete"}]}),
        "ServiceAccount",
    );
    assert!(matches!(
        error,
        PatchError::MissingMergeKey {
            merge_key: "name",
            ..
        }
    ));

    let error = smp_error(object.clone(), json!({"secrets": ["a"]}), "ServiceAccount");
    assert_eq!(error.to_string(), "list secrets must hold objects");

    let error = smp_error(
        object,
        json!({"secrets": [{"name": "a", "$patch": "merge"}]}),
        "ServiceAccount",
    );
    assert!(matches!(error, PatchError::InvalidDirective { .. }));
}

// === Server-side apply ===

#[test]
fn apply_merges_maps_and_replaces_lists() {
    let mut live = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "sa", "uid": "u", "labels": {"a": "1"}},
        "secrets": [{"name": "a"}, {"name": "b"}],
    });
    apply_patch(
        &mut live,
        &json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "sa", "labels": {"b": "2", "a": null}, "annotations": {"x": null, "y": "z"}},
            "secrets": [{"name": "c", "namespace": null}],
            "automountServiceAccountToken": false,
        }),
    );
    assert_eq!(
        live,
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "sa", "uid": "u", "labels": {"a": "1", "b": "2"},
                         "annotations": {"y": "z"}},
            "secrets": [{"name": "c"}],
            "automountServiceAccountToken": false,
        })
    );
    // Applying to nothing creates the object.
    let mut live = Value::Null;
    apply_patch(
        &mut live,
        &json!({"metadata": {"name": "x", "labels": null}, "data": {"k": "dg=="}}),
    );
    assert_eq!(
        live,
        json!({"metadata": {"name": "x"}, "data": {"k": "dg=="}})
    );
    // A null applied value changes nothing.
    apply_patch(&mut live, &Value::Null);
    assert_eq!(live["metadata"]["name"], "x");
}

// === Property tests ===

/// JSON made only of objects and scalars (no lists, no nulls), with keys that are never
/// directives.
fn map_only(depth: u32) -> BoxedStrategy<Value> {
    let scalar = prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::from),
    ];
    if depth == 0 {
        return scalar.boxed();
    }
    prop_oneof![
        2 => scalar,
        3 => prop::collection::btree_map("[a-e]", map_only(depth - 1), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
    .boxed()
}

/// Like [`map_only`] but objects may hold `null` (a deletion in a patch).
fn patch_only(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::from),
        Just(Value::Null),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        2 => leaf,
        3 => prop::collection::btree_map("[a-e]", patch_only(depth - 1), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
    .boxed()
}

fn object(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop_oneof![
            Just("metadata".to_owned()),
            Just("spec".to_owned()),
            "[a-e]"
        ],
        inner,
        0..5,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// The merge patch that turns `from` into `to`.
fn diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => {
            let mut patch = Map::new();
            for key in from.keys() {
                if !to.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, value) in to {
                match from.get(key) {
                    Some(old) if old == value => {}
                    Some(old @ Value::Object(_)) if value.is_object() => {
                        patch.insert(key.clone(), diff(old, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        (_, to) => to.clone(),
    }
}

proptest! {
    #[test]
    fn merge_patch_of_a_diff_gives_the_target(a in object(map_only(3)), b in object(map_only(3))) {
        let mut patched = a.clone();
        merge_patch(&mut patched, &diff(&a, &b));
        prop_assert_eq!(patched, b);
    }

    #[test]
    fn smp_equals_merge_patch_without_lists(
        target in object(map_only(3)),
        patch in object(patch_only(3)),
        kind in prop::sample::select(vec!["Secret", "ConfigMap", "ServiceAccount", "Namespace", "Role"]),
    ) {
        let mut merged = target.clone();
        merge_patch(&mut merged, &patch);
        let mut strategic = target;
        strategic_merge_patch(&mut strategic, &patch, kind).unwrap();
        prop_assert_eq!(strategic, merged);
    }

    #[test]
    fn smp_finalizers_behave_as_a_set(
        live in prop::collection::vec("[a-e]", 0..5),
        added in prop::collection::vec("[a-e]", 0..5),
        removed in prop::collection::vec("[a-e]", 0..3),
    ) {
        let target = json!({"metadata": {"finalizers": live}});
        let patch = json!({"metadata": {"finalizers": added,
                                        "$deleteFromPrimitiveList/finalizers": removed}});
        let patched = smp(target, patch, "Secret");
        let result: Vec<String> =
            serde_json::from_value(patched["metadata"]["finalizers"].clone()).unwrap_or_default();
        let mut expected: Vec<&String> = live.iter().chain(&added).filter(|f| !removed.contains(f)).collect();
        expected.sort();
        expected.dedup();
        let mut sorted: Vec<&String> = result.iter().collect();
        sorted.sort();
        prop_assert_eq!(sorted.len(), result.len(), "no duplicates");
        prop_assert_eq!(sorted, expected);
    }

    #[test]
    fn smp_never_panics_and_strips_directives(
        target in object(map_only(2)),
        patch in prop::collection::btree_map(
            prop_oneof![
                Just("$patch".to_owned()), Just("$retainKeys".to_owned()),
                Just("$setElementOrder/secrets".to_owned()), Just("secrets".to_owned()),
                Just("$deleteFromPrimitiveList/secrets".to_owned()), "[a-c]",
            ],
            prop_oneof![
                patch_only(2),
                Just(json!("replace")), Just(json!("delete")), Just(json!(["a", "b"])),
                Just(json!([{"name": "a"}, {"name": "b", "$patch": "delete"}])),
                Just(json!([{"$patch": "replace"}, {"name": "c"}])),
            ],
            0..5,
        ),
    ) {
        let patch = Value::Object(patch.into_iter().collect());
        let mut patched = target.clone();
        match strategic_merge_patch(&mut patched, &patch, "ServiceAccount") {
            Ok(()) => assert_no_directives(&patched),
            Err(_) => prop_assert_eq!(patched, target),
        }
    }
}
