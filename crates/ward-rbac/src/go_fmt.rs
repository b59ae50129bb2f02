//! Go's `%q` formatting, for messages that must read as kube-apiserver's.

use std::fmt::Write as _;

/// `fmt.Sprintf("%q", s)`: a double-quoted string with Go escapes.
///
/// Printable characters are kept; `\a \b \f \n \r \t \v \\ \"` use their short escapes; other
/// control characters use `\x..`, `\u....` or `\U........` as `strconv.Quote` does. Go also
/// escapes printable-looking but non-graphic Unicode (e.g. U+00AD); that refinement is left
/// out, as no Kubernetes name can hold such characters.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                if u32::from(c) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                } else {
                    let _ = write!(out, "\\U{:08x}", u32::from(c));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%q", list)` for a `[]string`: `["a" "b"]`.
pub(crate) fn quote_list(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// The `Error()` text of `utilerrors.NewAggregate(errors)`: the single message, or the
/// de-duplicated messages as `[a, b]`.
pub(crate) fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for error in errors {
        if !seen.contains(&error.as_str()) {
            seen.push(error);
        }
    }
    match seen.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("alice"), r#""alice""#);
        assert_eq!(quote("a\"b\\c\n\u{1}\u{7f}é"), r#""a\"b\\c\n\x01\x7fé""#);
        assert_eq!(quote_list(&[]), "[]");
        assert_eq!(
            quote_list(&["g1".into(), "system:authenticated".into()]),
            r#"["g1" "system:authenticated"]"#
        );
    }

    #[test]
    fn aggregates_like_utilerrors() {
        assert_eq!(aggregate(&[]), "");
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
        assert_eq!(aggregate(&["a".into(), "a".into()]), "a");
    }
}
