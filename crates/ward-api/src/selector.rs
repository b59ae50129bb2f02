//! Label and field selectors, as in the `labelSelector` and `fieldSelector` query parameters
//! and in `metav1.LabelSelector`.
//!
//! # Policy
//!
//! The grammar, the validation and the error messages follow upstream
//! (`k8s.io/apimachinery/pkg/labels/selector.go` and `pkg/fields/selector.go`), so clients see
//! the messages they would get from kube-apiserver:
//!
//! - Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, and the
//!   numeric `a>1` / `a<1`, joined by `,` (AND). Whitespace between tokens is ignored. Keys
//!   must be qualified names and values label values; requirements are kept sorted by key.
//! - Field selectors: `k=v`, `k==v`, `k!=v` joined by `,`. In values, `\,`, `\=` and `\\` are
//!   escapes; an unescaped `,` or `=` in a value, or any other escape, is an error. Whitespace
//!   is *not* trimmed (upstream does not either). A missing field compares as `""`.
//! - [`LabelSelector::from_json`] converts a `metav1.LabelSelector`: `null` matches nothing, an
//!   empty selector matches everything.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ward_api::selector::{FieldSelector, LabelSelector};
//!
//! let selector = LabelSelector::parse("tier in (db, cache), !canary")?;
//! let labels = BTreeMap::from([("tier".to_owned(), "db".to_owned())]);
//! assert!(selector.matches(&labels));
//! assert_eq!(selector.to_string(), "!canary,tier in (cache,db)");
//!
//! let fields = FieldSelector::parse("type=Opaque,metadata.name!=x")?;
//! fields.validate_fields(&["metadata.name", "metadata.namespace", "type"])?;
//! assert!(fields.matches(|f| (f == "type").then(|| "Opaque".to_owned())));
//! # Ok::<(), ward_api::selector::SelectorError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

use serde_json::Value;

/// An error parsing or checking a selector.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The field selector does not parse; the message is upstream's.
    #[error("{0}")]
    InvalidFieldSelector(String),
    /// The label selector does not parse or fails validation; the message is upstream's.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// The field selector names a field the resource does not support.
    #[error("field label not supported: {field}")]
    UnsupportedField {
        /// The field, e.g. `spec.foo`.
        field: String,
    },
}

// === Labels ===

/// A set of labels a [`LabelSelector`] can match against.
pub trait Labels {
    /// The value of label `key`, or `None` if the label is not set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for serde_json::Map<String, Value> {
    /// Non-string values (which valid objects never hold) count as unset.
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl Labels for Value {
    /// An object's members, as for a map; any other value (e.g. the `null` of a missing
    /// `metadata.labels`) has no labels.
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

// === LabelSelector ===

/// A parsed label selector: a conjunction of [`Requirement`]s, sorted by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// Set only by [`LabelSelector::nothing`] (a `null` `metav1.LabelSelector`).
    nothing: bool,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

/// The operator of a label [`Requirement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Operator {
    /// `!key`: the label is not set.
    DoesNotExist,
    /// `key==value`.
    DoubleEquals,
    /// `key=value`.
    Equals,
    /// `key`: the label is set.
    Exists,
    /// `key>n`: the label is an integer greater than `n`.
    GreaterThan,
    /// `key in (a,b)`.
    In,
    /// `key<n`: the label is an integer less than `n`.
    LessThan,
    /// `key!=value`: the label is unset or differs.
    NotEquals,
    /// `key notin (a,b)`: the label is unset or none of the values.
    NotIn,
}

impl LabelSelector {
    /// The selector that matches every object (the empty string).
    pub fn everything() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: false,
        }
    }

    /// The selector that matches no object (a `null` `metav1.LabelSelector`).
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses a selector in the `labelSelector` query syntax.
    ///
    /// # Errors
    ///
    /// [`SelectorError::InvalidLabelSelector`] with upstream's message, e.g.
    /// `unable to parse requirement: found '', expected: in, notin, =, ==, !=, gt, lt`.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        // Upstream's lexer stops at a NUL character.
        let selector = selector.split('\0').next().unwrap_or_default();
        let tokens = lex(selector);
        let mut parser = Parser {
            tokens: &tokens,
            position: 0,
        };
        let mut requirements = parser
            .parse()
            .map_err(SelectorError::InvalidLabelSelector)?;
        requirements.sort();
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels`, `matchExpressions` with `In`, `NotIn`,
    /// `Exists`, `DoesNotExist`), as used by RBAC aggregation rules.
    ///
    /// `null` gives [`LabelSelector::nothing`]; an empty object gives
    /// [`LabelSelector::everything`].
    ///
    /// # Errors
    ///
    /// [`SelectorError::InvalidLabelSelector`] if the value is not of that shape, an operator is
    /// unknown, or a key or value is invalid.
    pub fn from_json(selector: &Value) -> Result<Self, SelectorError> {
        let invalid = |message: &str| SelectorError::InvalidLabelSelector(message.to_owned());
        let object = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(object) => object,
            _ => return Err(invalid("label selector must be an object")),
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value
                        .as_str()
                        .ok_or_else(|| invalid("matchLabels values must be strings"))?;
                    let values = BTreeSet::from([value.to_owned()]);
                    requirements.push(Requirement::new(key, Operator::Equals, values)?);
                }
            }
            Some(_) => return Err(invalid("matchLabels must be an object")),
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    requirements.push(requirement_from_json(expression)?);
                }
            }
            Some(_) => return Err(invalid("matchExpressions must be an array")),
        }
        requirements.sort();
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the selector matches every object.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// Whether an object with these labels is selected.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Default for LabelSelector {
    /// [`LabelSelector::everything`].
    fn default() -> Self {
        Self::everything()
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    /// [`LabelSelector::parse`].
    fn from_str(selector: &str) -> Result<Self, Self::Err> {
        Self::parse(selector)
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical query form; [`LabelSelector::parse`] reads it back to an equal selector.
    /// [`LabelSelector::nothing`] prints as the empty string, like upstream.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

// === impl Requirement ===

impl Requirement {
    /// Builds a requirement, validating it as upstream's `NewRequirement` does.
    ///
    /// # Errors
    ///
    /// [`SelectorError::InvalidLabelSelector`] if the key is not a qualified name, a value is
    /// not a label value, or the number of values does not suit the operator.
    pub fn new(
        key: &str,
        operator: Operator,
        values: BTreeSet<String>,
    ) -> Result<Self, SelectorError> {
        let mut errors = Vec::new();
        let key_errors = validation::qualified_name(key);
        if !key_errors.is_empty() {
            errors.push(format!(
                "key: Invalid value: {key:?}: {}",
                key_errors.join("; ")
            ));
        }
        let count_error = match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(message) = count_error {
            errors.push(format!(
                "values: Invalid value: {}: {message}",
                go_string_slice(&values)
            ));
        }
        for (i, value) in values.iter().enumerate() {
            if matches!(operator, Operator::GreaterThan | Operator::LessThan)
                && value.parse::<i64>().is_err()
            {
                errors.push(format!(
                    "values[{i}]: Invalid value: {value:?}: for 'Gt', 'Lt' operators, the value \
                     must be an integer"
                ));
            }
            let value_errors = validation::label_value(value);
            if !value_errors.is_empty() {
                errors.push(format!(
                    "values[{i}][{key}]: Invalid value: {value:?}: {}",
                    value_errors.join("; ")
                ));
            }
        }
        match errors.len() {
            0 => Ok(Self {
                key: key.to_owned(),
                operator,
                values,
            }),
            1 => Err(SelectorError::InvalidLabelSelector(errors.remove(0))),
            _ => Err(SelectorError::InvalidLabelSelector(format!(
                "[{}]",
                errors.join(", ")
            ))),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted; empty for `Exists` and `DoesNotExist`.
    pub fn values(&self) -> &BTreeSet<String> {
        &self.values
    }

    /// Whether the labels satisfy this requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(actual)) = value.map(str::parse::<i64>) else {
                    return false;
                };
                let mut values = self.values.iter();
                let (Some(Ok(bound)), None) =
                    (values.next().map(|v| v.parse::<i64>()), values.next())
                else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (operator, parenthesized) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(operator)?;
        if parenthesized {
            f.write_str("(")?;
        }
        for (i, value) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(value)?;
        }
        if parenthesized {
            f.write_str(")")?;
        }
        Ok(())
    }
}

fn requirement_from_json(expression: &Value) -> Result<Requirement, SelectorError> {
    let invalid = |message: &str| SelectorError::InvalidLabelSelector(message.to_owned());
    let object = expression
        .as_object()
        .ok_or_else(|| invalid("matchExpressions must hold objects"))?;
    let key = match object.get("key") {
        Some(Value::String(key)) => key.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => return Err(invalid("matchExpressions key must be a string")),
    };
    let operator = match object.get("operator") {
        Some(Value::String(operator)) => operator.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => return Err(invalid("matchExpressions operator must be a string")),
    };
    let operator = match operator {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError::InvalidLabelSelector(format!(
                "{other:?} is not a valid label selector operator"
            )));
        }
    };
    let mut values = BTreeSet::new();
    match object.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let item = item
                    .as_str()
                    .ok_or_else(|| invalid("matchExpressions values must be strings"))?;
                values.insert(item.to_owned());
            }
        }
        Some(_) => return Err(invalid("matchExpressions values must be an array")),
    }
    Requirement::new(key, operator, values)
}

/// Formats values as Go's `%#v` of a `[]string`, as upstream's messages show them.
fn go_string_slice(values: &BTreeSet<String>) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

// === Label selector lexer and parser ===

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    EndOfString,
    Equals,
    GreaterThan,
    Identifier(String),
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::DoesNotExist => "!",
            Token::DoubleEquals => "==",
            Token::EndOfString => "",
            Token::Equals => "=",
            Token::GreaterThan => ">",
            Token::Identifier(literal) => literal,
            Token::In => "in",
            Token::LessThan => "<",
            Token::NotEquals => "!=",
            Token::NotIn => "notin",
            Token::OpenPar => "(",
        }
    }

    fn special_pair(symbol: &str) -> Option<Self> {
        match symbol {
            "==" => Some(Token::DoubleEquals),
            "!=" => Some(Token::NotEquals),
            _ => None,
        }
    }

    fn special(c: char) -> Self {
        match c {
            ')' => Token::ClosedPar,
            ',' => Token::Comma,
            '!' => Token::DoesNotExist,
            '=' => Token::Equals,
            '>' => Token::GreaterThan,
            '<' => Token::LessThan,
            '(' => Token::OpenPar,
            // Not reached: callers pass only `is_special` characters.
            c => Token::Identifier(c.to_string()),
        }
    }
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a selector into tokens, ending with [`Token::EndOfString`].
fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches(is_whitespace);
        let Some(first) = rest.chars().next() else {
            tokens.push(Token::EndOfString);
            return tokens;
        };
        if is_special(first) {
            // The longest special-symbol token (at most two characters) at this point.
            let (len, token) = match rest.get(..2).and_then(Token::special_pair) {
                Some(token) => (2, token),
                None => (1, Token::special(first)),
            };
            tokens.push(token);
            rest = &rest[len..];
        } else {
            let end = rest
                .find(|c| is_whitespace(c) || is_special(c))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            tokens.push(match word {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word.to_owned()),
            });
            rest = &rest[end..];
        }
    }
}

/// Whether `in`/`notin` are keywords (after a key) or plain identifiers (as values).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    tokens: &'a [Token],
    position: usize,
}

impl Parser<'_> {
    fn lookahead(&self, context: Context) -> Token {
        let token = self
            .tokens
            .get(self.position)
            .cloned()
            .unwrap_or(Token::EndOfString);
        match token {
            Token::In | Token::NotIn if context == Context::Values => {
                Token::Identifier(token.literal().to_owned())
            }
            token => token,
        }
    }

    fn consume(&mut self, context: Context) -> Token {
        let token = self.lookahead(context);
        if self.position < self.tokens.len() {
            self.position += 1;
        }
        token
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.lookahead(Context::Values) {
                Token::Identifier(_) | Token::DoesNotExist => {
                    let requirement = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    match self.consume(Context::Values) {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let next = self.lookahead(Context::Values);
                            if !matches!(next, Token::Identifier(_) | Token::DoesNotExist) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    next.literal()
                                ));
                            }
                        }
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                other => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.key_and_inferred_operator()?;
        if let Some(operator) = operator {
            return Requirement::new(&key, operator, BTreeSet::new()).map_err(|e| e.to_string());
        }
        let operator = self.operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, operator, values).map_err(|e| e.to_string())
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let mut token = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            token = self.consume(Context::Values);
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        let errors = validation::qualified_name(&key);
        if !errors.is_empty() {
            return Err(format!("Invalid value: {key:?}: {}", errors.join("; ")));
        }
        if matches!(
            self.lookahead(Context::Values),
            Token::EndOfString | Token::Comma
        ) && operator.is_none()
        {
            operator = Some(Operator::Exists);
        }
        Ok((key, operator))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        Ok(match self.consume(Context::KeyAndOperator) {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            other => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    other.literal()
                ));
            }
        })
    }

    fn value_set(&mut self) -> Result<BTreeSet<String>, String> {
        let token = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", token.literal()));
        }
        match self.lookahead(Context::Values) {
            Token::Identifier(_) | Token::Comma => {
                let values = self.identifier_list()?;
                let token = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", token.literal()));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                // `a in ()` means the single value "".
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            other => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                other.literal()
            )),
        }
    }

    fn identifier_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            match self.consume(Context::Values) {
                Token::Identifier(value) => {
                    values.insert(value);
                    match self.lookahead(Context::Values) {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::Comma => {
                    // Empty items, as in `(,a)`, `(a,)` or `(a,,b)`, are the value "".
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.lookahead(Context::Values) {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        other.literal()
                    ));
                }
            }
        }
    }

    fn exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(
            self.lookahead(Context::Values),
            Token::EndOfString | Token::Comma
        ) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.consume(Context::Values) {
            Token::Identifier(value) => Ok(BTreeSet::from([value])),
            other => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }
}

// === FieldSelector ===

/// A parsed field selector: a conjunction of [`FieldRequirement`]s, kept sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldRequirement {
    field: String,
    operator: FieldOperator,
    value: String,
}

/// The operator of a [`FieldRequirement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

impl FieldSelector {
    /// Parses a selector in the `fieldSelector` query syntax.
    ///
    /// # Errors
    ///
    /// [`SelectorError::InvalidFieldSelector`] with upstream's message, e.g.
    /// `invalid selector: 'a'; can't understand 'a'` or
    /// `invalid field selector: invalid escape sequence: \x`.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            if term.is_empty() {
                continue;
            }
            let (field, operator, raw_value) = split_term(term).ok_or_else(|| {
                SelectorError::InvalidFieldSelector(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                ))
            })?;
            let value = unescape_value(raw_value).map_err(SelectorError::InvalidFieldSelector)?;
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value,
            });
        }
        requirements.sort();
        Ok(Self { requirements })
    }

    /// The requirements, sorted.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector matches every object.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object is selected; `get_field` returns a field's value, `None` counting as
    /// `""`.
    pub fn matches(&self, get_field: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get_field(&r.field).unwrap_or_default();
            match r.operator {
                FieldOperator::Equals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }

    /// The value `field` must equal, if the selector requires one (as `metadata.name=x` does
    /// for RBAC `resourceNames` on list and watch).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Checks that every field is one the resource supports.
    ///
    /// # Errors
    ///
    /// [`SelectorError::UnsupportedField`] naming the first field not in `allowed`.
    pub fn validate_fields(&self, allowed: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !allowed.contains(&r.field.as_str()))
        {
            Some(r) => Err(SelectorError::UnsupportedField {
                field: r.field.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    /// [`FieldSelector::parse`].
    fn from_str(selector: &str) -> Result<Self, Self::Err> {
        Self::parse(selector)
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical query form (`==` prints as `=`, values escaped); [`FieldSelector::parse`]
    /// reads it back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FieldRequirement {
    /// The field, e.g. `metadata.name`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{operator}", self.field)?;
        for c in self.value.chars() {
            if matches!(c, '\\' | ',' | '=') {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Splits on commas not escaped by a backslash; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==` or `=`, tried in that order at each
/// position). The field part has no escaping.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (symbol, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(symbol) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn unescape_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            value.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Upstream prints the rune with `%v`, i.e. as its code point number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                ));
            }
            c => value.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_owned());
    }
    Ok(value)
}

// === Validation of label syntax (k8s.io/apimachinery/pkg/util/validation) ===

pub(crate) mod validation {
    /// Upstream's `IsQualifiedName`: `[prefix/]name`, the prefix a DNS subdomain, the name at
    /// most 63 characters of `[-A-Za-z0-9_.]`, starting and ending alphanumeric. Returns the
    /// problems, empty when valid.
    pub(crate) fn qualified_name(value: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let parts: Vec<&str> = value.split('/').collect();
        let name = match parts.as_slice() {
            [name] => *name,
            [prefix, name] => {
                if prefix.is_empty() {
                    errors.push("prefix part must be non-empty".to_owned());
                } else {
                    errors.extend(
                        dns1123_subdomain(prefix)
                            .into_iter()
                            .map(|e| format!("prefix part {e}")),
                    );
                }
                *name
            }
            _ => {
                errors.push(format!(
                    "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. \
                     'example.com/MyName')",
                    regex_error(
                        QUALIFIED_NAME_MESSAGE,
                        QUALIFIED_NAME_FORMAT,
                        &["MyName", "my.name", "123-abc"]
                    )
                ));
                return errors;
            }
        };
        if name.is_empty() {
            errors.push("name part must be non-empty".to_owned());
        } else if name.len() > 63 {
            errors.push("name part must be no more than 63 characters".to_owned());
        }
        if !is_qualified_name_part(name) {
            errors.push(format!(
                "name part {}",
                regex_error(
                    QUALIFIED_NAME_MESSAGE,
                    QUALIFIED_NAME_FORMAT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
        }
        errors
    }

    /// Upstream's `IsValidLabelValue`: empty, or at most 63 characters shaped like a qualified
    /// name part.
    pub(crate) fn label_value(value: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if value.len() > 63 {
            errors.push("must be no more than 63 characters".to_owned());
        }
        if !value.is_empty() && !is_qualified_name_part(value) {
            errors.push(regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, \
                 '-', '_' or '.', and must start and end with an alphanumeric character",
                "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
                &["MyValue", "my_value", "12345"],
            ));
        }
        errors
    }

    /// Upstream's `IsDNS1123Subdomain`.
    pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if value.len() > 253 {
            errors.push("must be no more than 253 characters".to_owned());
        }
        let valid = value.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    is_lower_alnum(*first)
                        && is_lower_alnum(*last)
                        && bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-')
                }
                _ => false,
            }
        });
        if !valid {
            errors.push(regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                 characters, '-' or '.', and must start and end with an alphanumeric character",
                "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                &["example.com"],
            ));
        }
        errors
    }

    fn is_qualified_name_part(value: &str) -> bool {
        let bytes = value.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && bytes
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            }
            _ => false,
        }
    }

    fn is_lower_alnum(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit()
    }

    /// Upstream's `RegexError`.
    fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
        let mut out = format!("{message} (e.g. ");
        for (i, example) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push_str(&format!("'{example}', "));
        }
        out.push_str(&format!("regex used for validation is '{format}')"));
        out
    }

    const QUALIFIED_NAME_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or \
                                          '.', and must start and end with an alphanumeric \
                                          character";
    const QUALIFIED_NAME_FORMAT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
}

#[cfg(test)]
mod tests;
