use proptest::prelude::*;
use serde_json::json;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse_error(selector: &str) -> String {
    match LabelSelector::parse(selector) {
        Err(SelectorError::InvalidLabelSelector(message)) => message,
        other => panic!("{selector:?} parsed as {other:?}"),
    }
}

// === Label selectors ===

#[test]
fn label_selector_forms() {
    let cases = [
        ("", ""),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("z=c,x=a", "x=a,z=c"),
        ("x!=y", "x!=y"),
        ("x==a", "x==a"),
        ("x=", "x="),
        ("x= ,z= ", "x=,z="),
        ("  x  =  a  ,\ty\n", "x=a,y"),
        ("!x", "!x"),
        ("! x", "!x"),
        ("x", "x"),
        ("x in (b,a,b)", "x in (a,b)"),
        ("x in(a)", "x in (a)"),
        ("x notin (a)", "x notin (a)"),
        ("x in ()", "x in ()"),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,)", "x in (,a)"),
        ("x in (a,,b)", "x in (,a,b)"),
        ("x>1,y<10", "x>1,y<10"),
        ("in in (in, notin)", "in in (in,notin)"),
        ("example.com/app=web", "example.com/app=web"),
        ("a=b\0,c", "a=b"),
    ];
    for (input, display) in cases {
        let selector = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(selector.to_string(), display, "{input:?}");
        assert_eq!(
            LabelSelector::parse(display).unwrap(),
            selector,
            "{input:?}"
        );
    }
    let selector = LabelSelector::parse("x in (a,b)").unwrap();
    let requirement = &selector.requirements()[0];
    assert_eq!(requirement.key(), "x");
    assert_eq!(requirement.operator(), Operator::In);
    assert_eq!(
        requirement.values(),
        &BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
}

#[test]
fn label_selector_errors_match_upstream() {
    let name_regex = "must consist of alphanumeric characters, '-', '_' or '.', and must start and \
                      end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
                      '123-abc', regex used for validation is \
                      '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let cases = [
        ("x=a||y", "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": a valid \
                    label must be an empty string or consist of alphanumeric characters, '-', '_' \
                    or '.', and must start and end with an alphanumeric character (e.g. \
                    'MyValue',  or 'my_value',  or '12345', regex used for validation is \
                    '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_owned()),
        ("x==a==b", "found '==', expected: ',' or 'end of string'".to_owned()),
        ("!x=a", "found '=', expected: ',' or 'end of string'".to_owned()),
        ("x=a b", "found 'b', expected: ',' or 'end of string'".to_owned()),
        ("x=a,", "found '', expected: identifier after ','".to_owned()),
        (",x", "found ',', expected: !, identifier, or 'end of string'".to_owned()),
        ("x in a", "unable to parse requirement: found 'a' expected: '('".to_owned()),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'".to_owned()),
        ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'".to_owned()),
        ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".to_owned()),
        ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt".to_owned()),
        ("x=(", "unable to parse requirement: found '(', expected: identifier".to_owned()),
        ("!", "unable to parse requirement: found '', expected: identifier".to_owned()),
        ("A@=b", format!("unable to parse requirement: Invalid value: \"A@\": name part {name_regex}")),
        ("/a", "unable to parse requirement: Invalid value: \"/a\": prefix part must be non-empty".to_owned()),
        (
            "a/b/c",
            format!(
                "unable to parse requirement: Invalid value: \"a/b/c\": a qualified name {name_regex} \
                 with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ),
        ),
        (
            "Example.com/a",
            "unable to parse requirement: Invalid value: \"Example.com/a\": prefix part a lowercase \
             RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and \
             must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
             validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned(),
        ),
        (
            &format!("{}=a", "k".repeat(64)),
            format!(
                "unable to parse requirement: Invalid value: \"{}\": name part must be no more \
                 than 63 characters",
                "k".repeat(64)
            ),
        ),
        (
            "x=A@",
            "unable to parse requirement: values[0][x]: Invalid value: \"A@\": a valid label must \
             be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must \
             start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or \
             '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_owned(),
        ),
        (
            "x>a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' \
             operators, the value must be an integer"
                .to_owned(),
        ),
    ];
    for (input, message) in cases {
        assert_eq!(parse_error(input), message, "{input:?}");
    }
}

#[test]
fn label_selector_matching() {
    let set = labels(&[("app", "web"), ("tier", "db"), ("n", "5"), ("empty", "")]);
    let cases = [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=api", false),
        ("app!=api", true),
        ("missing!=x", true),
        ("app in (api,web)", true),
        ("missing in (a)", false),
        ("app notin (web)", false),
        ("missing notin (web)", true),
        ("app", true),
        ("missing", false),
        ("!missing", true),
        ("!app", false),
        ("empty=", true),
        ("empty", true),
        ("empty in ()", true),
        ("n>4,n<6", true),
        ("n>5", false),
        ("app>1", false),
        ("missing<1", false),
        ("app=web,tier=cache", false),
        ("app=web,tier in (db,cache),!canary", true),
    ];
    for (selector, expected) in cases {
        let parsed = LabelSelector::parse(selector).unwrap();
        assert_eq!(parsed.matches(&set), expected, "{selector}");
        // The same answer for JSON maps and hash maps.
        let json = json!(set);
        assert_eq!(
            parsed.matches(json.as_object().unwrap()),
            expected,
            "{selector}"
        );
        let hash: HashMap<String, String> = set.clone().into_iter().collect();
        assert_eq!(parsed.matches(&hash), expected, "{selector}");
    }
    let object = json!({"metadata": {"labels": set}});
    let selector: LabelSelector = "app=web".parse().unwrap();
    assert!(selector.matches(&object["metadata"]["labels"]));
    assert!(!selector.matches(&object["metadata"]["missing"]));
    assert_eq!(LabelSelector::default(), LabelSelector::everything());
    assert!(LabelSelector::everything().matches(&set));
    assert!(LabelSelector::everything().is_everything());
    assert!(!LabelSelector::nothing().matches(&set));
    assert!(!LabelSelector::nothing().is_everything());
    // Non-string JSON values count as unset.
    let odd = json!({"a": 1});
    assert!(
        LabelSelector::parse("!a")
            .unwrap()
            .matches(odd.as_object().unwrap())
    );
}

#[test]
fn label_selector_from_json() {
    let selector = LabelSelector::from_json(&json!({
        "matchLabels": {"rbac.example.com/aggregate-to-view": "true"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["db", "cache"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "app", "operator": "Exists", "values": null},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
        ],
    }))
    .unwrap();
    assert_eq!(
        selector.to_string(),
        "app,!canary,env notin (prod),rbac.example.com/aggregate-to-view=true,tier in (cache,db)"
    );
    assert!(selector.matches(&labels(&[
        ("rbac.example.com/aggregate-to-view", "true"),
        ("tier", "db"),
        ("app", "x"),
    ])));
    assert!(!selector.matches(&labels(&[("rbac.example.com/aggregate-to-view", "true")])));

    assert_eq!(
        LabelSelector::from_json(&json!({})).unwrap(),
        LabelSelector::everything()
    );
    assert_eq!(
        LabelSelector::from_json(&json!({"matchLabels": null, "matchExpressions": []})).unwrap(),
        LabelSelector::everything()
    );
    assert_eq!(
        LabelSelector::from_json(&json!(null)).unwrap(),
        LabelSelector::nothing()
    );

    let error = |value: Value| LabelSelector::from_json(&value).unwrap_err().to_string();
    assert_eq!(
        error(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
        "\"Gt\" is not a valid label selector operator"
    );
    assert_eq!(
        error(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        error(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
        "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not \
         exist"
    );
    assert_eq!(
        error(json!({"matchExpressions": [{"key": "", "operator": "In", "values": ["-"]}]})),
        "[key: Invalid value: \"\": name part must be non-empty; name part must consist of \
         alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
         character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
         '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'), values[0][]: Invalid value: \"-\": a valid \
         label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
         and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  \
         or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]"
    );
    assert_eq!(error(json!([])), "label selector must be an object");
    assert_eq!(
        error(json!({"matchLabels": []})),
        "matchLabels must be an object"
    );
    assert_eq!(
        error(json!({"matchLabels": {"a": 1}})),
        "matchLabels values must be strings"
    );
    assert_eq!(
        error(json!({"matchExpressions": {}})),
        "matchExpressions must be an array"
    );
    assert_eq!(
        error(json!({"matchExpressions": [1]})),
        "matchExpressions must hold objects"
    );
    assert_eq!(
        error(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]})),
        "matchExpressions values must be an array"
    );
}

// === Field selectors ===

#[test]
fn field_selector_forms() {
    let cases = [
        ("", ""),
        ("metadata.name=x", "metadata.name=x"),
        (
            "type==Opaque,metadata.name!=x",
            "metadata.name!=x,type=Opaque",
        ),
        ("a=b\\,c", "a=b\\,c"),
        ("a=b\\=c\\\\", "a=b\\=c\\\\"),
        ("a=", "a="),
        ("==b", "=b"),
        (",a=b,,", "a=b"),
        ("a\\,b=c", "a\\,b=c"),
        ("a!b=c", "a!b=c"),
        (" a = b ", " a = b "),
    ];
    for (input, display) in cases {
        let selector = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(selector.to_string(), display, "{input:?}");
        assert_eq!(
            FieldSelector::parse(display).unwrap(),
            selector,
            "{input:?}"
        );
    }
    let selector = FieldSelector::parse("a=b\\,c").unwrap();
    let requirement = &selector.requirements()[0];
    assert_eq!(
        (
            requirement.field(),
            requirement.operator(),
            requirement.value()
        ),
        ("a", FieldOperator::Equals, "b,c")
    );
    // Whitespace is data, as upstream.
    let selector = FieldSelector::parse(" a = b ").unwrap();
    assert_eq!(selector.requirements()[0].field(), " a ");
    assert_eq!(selector.requirements()[0].value(), " b ");
}

#[test]
fn field_selector_errors_match_upstream() {
    let cases = [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a!==b",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a=b\\x",
            "invalid field selector: invalid escape sequence: \\x",
        ),
        (
            "a=b\\",
            "invalid field selector: invalid escape sequence: \\",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(
            FieldSelector::parse(input),
            Err(SelectorError::InvalidFieldSelector(message.to_owned())),
            "{input:?}"
        );
    }
}

#[test]
fn field_selector_matching_and_allowed_fields() {
    let secret = |field: &str| match field {
        "metadata.name" => Some("s1".to_owned()),
        "type" => Some("Opaque".to_owned()),
        _ => None,
    };
    let cases = [
        ("", true),
        ("metadata.name=s1", true),
        ("metadata.name==s1,type=Opaque", true),
        ("metadata.name!=s1", false),
        ("type!=kubernetes.io/tls", true),
        ("metadata.namespace=", true),
        ("metadata.namespace!=", false),
        ("metadata.namespace=default", false),
    ];
    for (selector, expected) in cases {
        assert_eq!(
            FieldSelector::parse(selector).unwrap().matches(secret),
            expected,
            "{selector}"
        );
    }

    let selector = FieldSelector::parse("metadata.name=s1,type!=x,metadata.name!=s2").unwrap();
    assert_eq!(selector.requires_exact_match("metadata.name"), Some("s1"));
    assert_eq!(selector.requires_exact_match("type"), None);
    assert!(!selector.is_everything());
    assert!(FieldSelector::parse("").unwrap().is_everything());
    assert_eq!("a=b".parse::<FieldSelector>(), FieldSelector::parse("a=b"));

    let allowed = ["metadata.name", "metadata.namespace", "type"];
    selector.validate_fields(&allowed).unwrap();
    let error = FieldSelector::parse("type=Opaque,spec.foo=x")
        .unwrap()
        .validate_fields(&allowed)
        .unwrap_err();
    assert_eq!(
        error,
        SelectorError::UnsupportedField {
            field: "spec.foo".to_owned()
        }
    );
    assert_eq!(error.to_string(), "field label not supported: spec.foo");
}

// === Property tests ===

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]([-a-z0-9_.]{0,6}[a-z0-9])?",
        "[a-z]{1,4}\\.[a-z]{2,3}/[A-Za-z0-9]{1,6}",
        Just("in".to_owned()),
        Just("notin".to_owned()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?",
        "[0-9]{1,3}"
    ]
}

fn operator() -> impl Strategy<Value = Operator> {
    prop::sample::select(vec![
        Operator::DoesNotExist,
        Operator::DoubleEquals,
        Operator::Equals,
        Operator::Exists,
        Operator::GreaterThan,
        Operator::In,
        Operator::LessThan,
        Operator::NotEquals,
        Operator::NotIn,
    ])
}

fn requirement() -> impl Strategy<Value = Requirement> {
    (
        key(),
        operator(),
        prop::collection::btree_set(value(), 1..4),
        -20i64..20,
    )
        .prop_map(|(key, operator, values, bound)| {
            let values = match operator {
                Operator::Exists | Operator::DoesNotExist => BTreeSet::new(),
                Operator::In | Operator::NotIn => values,
                Operator::GreaterThan | Operator::LessThan => {
                    BTreeSet::from([bound.abs().to_string()])
                }
                _ => values.into_iter().take(1).collect(),
            };
            Requirement {
                key,
                operator,
                values,
            }
        })
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    prop::collection::vec(requirement(), 0..5).prop_map(|mut requirements| {
        requirements.sort();
        LabelSelector {
            requirements,
            nothing: false,
        }
    })
}

/// Writes a requirement in a non-canonical way: spaces anywhere tokens may be separated, and
/// values in any order.
fn write_loosely(requirement: &Requirement, space: &str) -> String {
    let key = &requirement.key;
    let values: Vec<&str> = requirement
        .values
        .iter()
        .rev()
        .map(String::as_str)
        .collect();
    let single = values.first().copied().unwrap_or_default();
    match requirement.operator {
        Operator::DoesNotExist => format!("!{space}{key}"),
        Operator::Exists => format!("{space}{key}{space}"),
        Operator::Equals => format!("{key}{space}={space}{single}"),
        Operator::DoubleEquals => format!("{key}{space}=={space}{single}"),
        Operator::NotEquals => format!("{key}{space}!={space}{single}"),
        Operator::GreaterThan => format!("{key}{space}>{space}{single}"),
        Operator::LessThan => format!("{key}{space}<{space}{single}"),
        Operator::In | Operator::NotIn => {
            let word = if requirement.operator == Operator::In {
                "in"
            } else {
                "notin"
            };
            format!(
                "{key} {word}{space}({space}{}{space})",
                values.join(&format!("{space},{space}"))
            )
        }
    }
}

/// The reference semantics, written independently of `Requirement::matches`.
fn naive_matches(requirements: &[Requirement], labels: &BTreeMap<String, String>) -> bool {
    requirements.iter().all(|r| {
        let value = labels.get(&r.key);
        let number = value.and_then(|v| v.parse::<i64>().ok());
        let bound = r.values.iter().next().and_then(|v| v.parse::<i64>().ok());
        match r.operator {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                matches!(value, Some(v) if r.values.iter().any(|x| x == v))
            }
            Operator::NotEquals | Operator::NotIn => match value {
                None => true,
                Some(v) => r.values.iter().all(|x| x != v),
            },
            Operator::GreaterThan => matches!((number, bound), (Some(n), Some(b)) if n > b),
            Operator::LessThan => matches!((number, bound), (Some(n), Some(b)) if n < b),
        }
    })
}

fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(key(), value(), 0..6)
}

fn field_value() -> impl Strategy<Value = String> {
    "[a-z,=\\\\ !.]{0,6}"
}

fn field_selector() -> impl Strategy<Value = FieldSelector> {
    let requirement = (
        "[a-z]{1,3}(\\.[a-z]{1,3})?",
        prop::sample::select(vec![FieldOperator::Equals, FieldOperator::NotEquals]),
        field_value(),
    )
        .prop_map(|(field, operator, value)| FieldRequirement {
            field,
            operator,
            value,
        });
    prop::collection::vec(requirement, 0..5).prop_map(|mut requirements| {
        requirements.sort();
        FieldSelector { requirements }
    })
}

proptest! {
    #[test]
    fn label_selector_display_parses_back(selector in selector()) {
        let text = selector.to_string();
        prop_assert_eq!(LabelSelector::parse(&text).unwrap(), selector);
    }

    #[test]
    fn label_selector_matches_like_the_reference(
        requirements in prop::collection::vec(requirement(), 0..5),
        space in prop::sample::select(vec!["", " ", "  ", "\t"]),
        labels in label_set(),
    ) {
        let text: Vec<String> = requirements.iter().map(|r| write_loosely(r, space)).collect();
        let selector = LabelSelector::parse(&text.join(",")).unwrap();
        prop_assert_eq!(selector.requirements().len(), requirements.len());
        prop_assert_eq!(selector.matches(&labels), naive_matches(&requirements, &labels));
    }

    #[test]
    fn label_selector_parse_never_panics(text in "[a-z=!(), <>\t0-9in/.]{0,24}") {
        if let Ok(selector) = LabelSelector::parse(&text) {
            prop_assert_eq!(LabelSelector::parse(&selector.to_string()).unwrap(), selector);
        }
    }

    #[test]
    fn field_selector_display_parses_back(selector in field_selector()) {
        let text = selector.to_string();
        prop_assert_eq!(FieldSelector::parse(&text).unwrap(), selector);
    }

    #[test]
    fn field_selector_matches_like_the_reference(
        selector in field_selector(),
        fields in prop::collection::btree_map("[a-z]{1,3}(\\.[a-z]{1,3})?", field_value(), 0..4),
    ) {
        let expected = selector.requirements().iter().all(|r| {
            let actual = fields.get(r.field()).map(String::as_str).unwrap_or("");
            (actual == r.value()) == (r.operator() == FieldOperator::Equals)
        });
        prop_assert_eq!(selector.matches(|f| fields.get(f).cloned()), expected);
    }

    #[test]
    fn field_selector_parse_never_panics(text in "[a-z=!,\\\\ é]{0,24}") {
        if let Ok(selector) = FieldSelector::parse(&text) {
            prop_assert_eq!(FieldSelector::parse(&selector.to_string()).unwrap(), selector);
        }
    }
}
