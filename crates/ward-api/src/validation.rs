//! Name and key syntax, as Kubernetes' apimachinery validation defines it.
//!
//! Each function returns the list of problems (empty = valid), worded as upstream words them.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const CONFIG_KEY_MAX: usize = 253;
const LABEL_VALUE_MAX: usize = 63;
const QUALIFIED_NAME_MAX: usize = 63;
/// Total size of all annotations (keys + values), in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A DNS-1123 label: at most 63 lower-case alphanumerics or `-`, starting and ending with an
/// alphanumeric (namespace names).
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let ok = !value.is_empty()
        && value.chars().all(|c| is_lower_alnum(c) || c == '-')
        && value.chars().next().is_some_and(is_lower_alnum)
        && value.chars().last().is_some_and(is_lower_alnum);
    if !ok {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    errs
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated labels of lower-case
/// alphanumerics or `-` (Secret, ConfigMap and ServiceAccount names).
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let ok = !value.is_empty()
        && value.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_lower_alnum(c) || c == '-')
                && part.chars().next().is_some_and(is_lower_alnum)
                && part.chars().last().is_some_and(is_lower_alnum)
        });
    if !ok {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned(),
        );
    }
    errs
}

/// A name that is only checked as a path segment (RBAC objects): not `.` or `..`, no `/` or `%`.
pub fn path_segment_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value == "." || value == ".." {
        errs.push(format!("may not be '{value}'"));
    }
    for bad in ["/", "%"] {
        if value.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// A key of a Secret's or ConfigMap's data: `[-._a-zA-Z0-9]+`, at most 253, not `.`/`..`,
/// not starting with `..`.
pub fn config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > CONFIG_KEY_MAX {
        errs.push(format!("must be no more than {CONFIG_KEY_MAX} characters"));
    }
    if value.is_empty()
        || !value
            .chars()
            .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.')
    {
        errs.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. \
             'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_owned(),
        );
    }
    if value == "." {
        errs.push("must not be '.'".to_owned());
    } else if value == ".." {
        errs.push("must not be '..'".to_owned());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_owned());
    }
    errs
}

fn qualified_name_part(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
        return errs;
    }
    if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    let ok = name
        .chars()
        .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.')
        && name.chars().next().is_some_and(is_alnum)
        && name.chars().last().is_some_and(is_alnum);
    if !ok {
        errs.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
             and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
             '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .to_owned(),
        );
    }
    errs
}

/// A qualified name (label and annotation keys): `[prefix/]name`, prefix a DNS subdomain.
pub fn qualified_name(value: &str) -> Vec<String> {
    match value.split_once('/') {
        Some((prefix, name)) => {
            let mut errs = Vec::new();
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            if name.contains('/') {
                errs.push("a qualified name may contain at most one '/'".to_owned());
            }
            errs.extend(qualified_name_part(name));
            errs
        }
        None => qualified_name_part(value),
    }
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, starting and ending with an
/// alphanumeric.
pub fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.is_empty() {
        return errs;
    }
    if value.len() > LABEL_VALUE_MAX {
        errs.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    let ok = value
        .chars()
        .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.')
        && value.chars().next().is_some_and(is_alnum)
        && value.chars().last().is_some_and(is_alnum);
    if !ok {
        errs.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
             or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_owned(),
        );
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for ok in ["a", "my-api-secret", "a.b-c.d", "0abc"] {
            assert!(dns1123_subdomain(ok).is_empty(), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a..b", "a_b", ".a", &"a".repeat(254)] {
            assert!(!dns1123_subdomain(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert!(dns1123_label("kube-system").is_empty());
        assert!(!dns1123_label("a.b").is_empty());
        assert!(!dns1123_label(&"a".repeat(64)).is_empty());
    }

    #[test]
    fn config_keys() {
        for ok in ["API_KEY", "tls.crt", ".dockerconfigjson", "a-b"] {
            assert!(config_map_key(ok).is_empty(), "{ok}");
        }
        for bad in ["", ".", "..", "..a", "a/b", "a b", &"k".repeat(254)] {
            assert!(!config_map_key(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn qualified_names_and_values() {
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("tier").is_empty());
        assert!(!qualified_name("/x").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(!qualified_name("-x").is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_3").is_empty());
        assert!(!label_value("a b").is_empty());
    }
}
