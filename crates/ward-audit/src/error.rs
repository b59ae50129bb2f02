//! The crate's error type.
//!
//! One enum covers loading a policy, opening the log and writing to it: each operation returns
//! only its own variants (listed in its docs), so callers match on the few that concern them.
//! Messages name the file and, for policy errors, the path of the field
//! (`rules[2].resources[0].group`) and the expected form. A policy holds no secrets, so shape
//! errors may quote the offending value, as kube-apiserver's do.

use std::fmt;
use std::path::PathBuf;

/// An error loading an audit policy, opening the audit log or writing an event to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The policy file is empty (or holds only whitespace and comments).
    #[error("audit policy {source_name} is empty")]
    Empty {
        /// The file path or name given when loading.
        source_name: String,
    },
    /// The policy parsed but breaks one or more rules.
    #[error("audit policy {source_name} is invalid: {errors}")]
    Invalid {
        /// The file path or name given when loading.
        source_name: String,
        /// Every rule broken, with the path of its field.
        errors: FieldErrors,
    },
    /// The audit log file (or its directory) could not be created or opened.
    #[error("failed to open audit log {}", path.display())]
    Open {
        /// The log file path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The policy file could not be opened or read.
    #[error("failed to read audit policy {}", path.display())]
    Read {
        /// The file path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// An event could not be serialized. Not expected: events hold only JSON values and strings.
    #[error("failed to serialize audit event")]
    Serialize {
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The policy document does not have the expected shape: an unknown field, a value of the
    /// wrong type or bad syntax inside a field, an unknown level or stage, a missing `level`.
    #[error(
        "audit policy {source_name} is invalid at {field} (line {line}, column {column}): {reason}"
    )]
    Shape {
        /// The file path or name given when loading.
        source_name: String,
        /// The path of the field, e.g. `rules[2].resources[0].group`.
        field: String,
        /// The line of the problem (1-based; 0 if unknown).
        line: u64,
        /// The column of the problem (1-based; 0 if unknown).
        column: u64,
        /// What was found and what was expected.
        reason: String,
    },
    /// The policy file is not a YAML or JSON mapping (the error is not inside a field).
    #[error(
        "audit policy {source_name} could not be parsed at line {line}, column {column}: {reason}"
    )]
    Syntax {
        /// The file path or name given when loading.
        source_name: String,
        /// The line of the problem (1-based; 0 if unknown).
        line: u64,
        /// The column of the problem (1-based; 0 if unknown).
        column: u64,
        /// What the parser expected.
        reason: String,
    },
    /// The policy file is larger than any sensible policy.
    #[error("audit policy {source_name} is larger than {limit} bytes")]
    TooLarge {
        /// The file path or name given when loading.
        source_name: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// Writing an event, or rotating the log to make room for it, failed. The event is not in
    /// the log (a torn partial line may be, and is terminated before the next event).
    #[error("failed to write audit event to {}", path.display())]
    Write {
        /// The log file path (`-` for standard output).
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// The rules a policy breaks, in file order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub(crate) Vec<FieldError>);

impl FieldErrors {
    /// The individual errors.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: an `Invalid` error holds at least one field error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// One broken rule: the path of the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    path: String,
    message: String,
}

impl FieldError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path of the field, e.g. `rules[0].nonResourceURLs[1]`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong and what was expected.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
