//! The three report formats: a kubectl-like table grouped by severity, JSON, and SARIF 2.1.0.
//!
//! All three are built from [`Finding`]s only, which never hold a secret value (see the
//! redaction policy in `finding.rs`), so no format can leak one.

use std::collections::BTreeSet;
use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use crate::ScanError;
use crate::finding::{Finding, Resource, Rule, Severity, Threat};

/// What a scan found, and how much it read.
#[derive(Debug)]
#[non_exhaustive]
pub struct Report {
    /// Findings, worst first, then by file, document and line.
    pub findings: Vec<Finding>,
    /// Objects (documents with a `kind`, list items included) scanned.
    pub objects: usize,
    /// Files (and streams) read.
    pub files: usize,
    /// Files skipped in directory walks because they are not YAML or JSON.
    pub skipped: Vec<String>,
}

impl Report {
    /// Writes the table: one section per severity, worst first, then the fixes and a summary.
    ///
    /// # Errors
    /// [`ScanError::Write`] if `out` fails.
    pub fn write_table(&self, out: &mut dyn Write) -> Result<(), ScanError> {
        let scanned = format!(
            "{} object{} in {} file{}",
            self.objects,
            plural(self.objects),
            self.files,
            plural(self.files)
        );
        if self.findings.is_empty() {
            writeln!(out, "No findings in {scanned}.")?;
        }
        for severity in SEVERITIES_WORST_FIRST {
            let rows: Vec<[String; 5]> = self
                .findings
                .iter()
                .filter(|f| f.severity == severity)
                .map(|f| {
                    [
                        f.rule.id().to_owned(),
                        f.resource.namespace.clone().unwrap_or_default(),
                        resource_label(&f.resource),
                        location(f),
                        f.message.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            writeln!(out, "{} ({})", severity.as_str().to_uppercase(), rows.len())?;
            let header = ["RULE", "NAMESPACE", "RESOURCE", "LOCATION", "MESSAGE"].map(String::from);
            write_columns(out, &header, &rows)?;
            writeln!(out)?;
        }
        if !self.findings.is_empty() {
            let fixes: BTreeSet<(Rule, &str)> = self
                .findings
                .iter()
                .map(|f| (f.rule, f.fix.as_str()))
                .collect();
            writeln!(out, "FIXES")?;
            for (rule, fix) in fixes {
                writeln!(out, "  {rule}: {fix}")?;
            }
            writeln!(out)?;
            let counts: Vec<String> = SEVERITIES_WORST_FIRST
                .iter()
                .filter_map(|s| {
                    let n = self.findings.iter().filter(|f| f.severity == *s).count();
                    (n > 0).then(|| format!("{n} {s}"))
                })
                .collect();
            writeln!(
                out,
                "{} finding{} ({}) in {scanned}.",
                self.findings.len(),
                plural(self.findings.len()),
                counts.join(", ")
            )?;
        }
        if !self.skipped.is_empty() {
            writeln!(
                out,
                "Skipped {} file{} that {} not YAML or JSON: {}",
                self.skipped.len(),
                plural(self.skipped.len()),
                if self.skipped.len() == 1 { "is" } else { "are" },
                self.skipped.join(", ")
            )?;
        }
        Ok(())
    }

    /// Writes `{"findings":[{"rule","severity","threat","resource":{"apiVersion","kind",
    /// "namespace","name"},"file","path","message","fix","line","document","item"}]}`,
    /// pretty-printed, with a newline.
    ///
    /// The first eight keys are the ones issue #6 specifies, in its order. The last three locate
    /// the evidence inside `file`: `line` is 1-based (null when unknown, as for objects read from
    /// a live cluster), `document` the 0-based index of the YAML document in the file (`---`
    /// separated, empty documents counted), and `item` the 0-based index in the `items` of a
    /// `List` document (null when the object is not a list item). `resource.namespace` and
    /// `resource.name` are null when the object has none (config files such as an
    /// EncryptionConfiguration).
    ///
    /// # Errors
    /// [`ScanError::Write`] if `out` fails.
    pub fn write_json(&self, out: &mut dyn Write) -> Result<(), ScanError> {
        #[derive(Serialize)]
        struct Json<'a> {
            findings: Vec<JsonFinding<'a>>,
        }
        #[derive(Serialize)]
        struct JsonFinding<'a> {
            rule: Rule,
            severity: Severity,
            threat: Threat,
            resource: &'a Resource,
            file: &'a str,
            path: &'a str,
            message: &'a str,
            fix: &'a str,
            line: Option<usize>,
            document: usize,
            item: Option<usize>,
        }
        let report = Json {
            findings: self
                .findings
                .iter()
                .map(|f| JsonFinding {
                    rule: f.rule,
                    severity: f.severity,
                    threat: f.threat,
                    resource: &f.resource,
                    file: &f.file,
                    path: &f.path,
                    message: &f.message,
                    fix: &f.fix,
                    line: f.line,
                    document: f.document,
                    item: f.item,
                })
                .collect(),
        };
        write_value(out, &report)
    }

    /// Writes a SARIF 2.1.0 log with one run: every rule in `tool.driver.rules`, one result per
    /// finding with its file, and its line (`region.startLine`) when the input is a file and the
    /// line is known. Standard input (`-`) and live-cluster lists (`cluster:PATH`) have no file a
    /// viewer could open at that line, so they get no region.
    ///
    /// # Errors
    /// [`ScanError::Write`] if `out` fails.
    pub fn write_sarif(&self, out: &mut dyn Write) -> Result<(), ScanError> {
        write_value(out, &self.sarif())
    }

    fn sarif(&self) -> Value {
        let rules: Vec<Value> = Rule::ALL
            .iter()
            .map(|rule| {
                json!({
                    "id": rule.id(),
                    "name": camel_case(rule.id()),
                    "shortDescription": {"text": rule.summary()},
                    "fullDescription": {"text": rule.help()},
                    "help": {"text": rule.help()},
                    "defaultConfiguration": {"level": level(rule.default_severity())},
                    "properties": {
                        "tags": ["security", "kubernetes", rule.threat().as_str()],
                        "security-severity": security_severity(rule.default_severity()),
                    },
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut physical = json!({"artifactLocation": {"uri": file_uri(&f.file)}});
                if let Some(line) = f.line.filter(|_| is_file(&f.file)) {
                    physical["region"] = json!({"startLine": line});
                }
                json!({
                    "ruleId": f.rule.id(),
                    "ruleIndex": Rule::ALL.iter().position(|r| *r == f.rule),
                    "level": level(f.severity),
                    "message": {"text": f.message},
                    "locations": [{
                        "physicalLocation": physical,
                        "logicalLocations": [{
                            "fullyQualifiedName": logical_name(&f.resource, &f.path),
                            "kind": "object",
                        }],
                    }],
                    "properties": {
                        "severity": f.severity.as_str(),
                        "security-severity": security_severity(f.severity),
                        "threat": f.threat.as_str(),
                        "resource": f.resource,
                        "path": f.path,
                        "document": f.document,
                        "fix": f.fix,
                    },
                })
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "ward-scan",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }],
        })
    }
}

/// kubectl-style columns: every column but the last padded to its widest cell plus three
/// spaces; the last one is not padded.
pub(crate) fn write_columns<const N: usize>(
    out: &mut dyn Write,
    header: &[String; N],
    rows: &[[String; N]],
) -> Result<(), ScanError> {
    let mut widths = [0usize; N];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

const SEVERITIES_WORST_FIRST: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

fn write_value(out: &mut dyn Write, value: &impl Serialize) -> Result<(), ScanError> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|e| ScanError::Write { source: e.into() })?;
    writeln!(out)?;
    Ok(())
}

/// Whether a finding's `file` names a file (not standard input or a live cluster's list).
fn is_file(file: &str) -> bool {
    file != "-" && !file.starts_with("cluster:")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn resource_label(resource: &Resource) -> String {
    match &resource.name {
        Some(name) => format!("{}/{name}", resource.kind),
        None => resource.kind.clone(),
    }
}

fn location(f: &Finding) -> String {
    match f.line {
        Some(line) => format!("{}:{line}", f.file),
        None => f.file.clone(),
    }
}

fn logical_name(resource: &Resource, path: &str) -> String {
    let mut name = String::new();
    if let Some(ns) = &resource.namespace {
        name.push_str(ns);
        name.push('/');
    }
    name.push_str(&resource_label(resource));
    if !path.is_empty() {
        name.push('#');
        name.push_str(path);
    }
    name
}

/// SARIF levels: critical and high are errors, medium a warning, the rest notes.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub code scanning's `security-severity` (a CVSS-like score as a string).
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

fn camel_case(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A URI reference for a file name: relative paths stay relative, absolute ones become
/// `file://` URIs; anything outside RFC 3986's unreserved set and `/` is percent-encoded.
fn file_uri(file: &str) -> String {
    let mut uri = String::new();
    if file.starts_with('/') {
        uri.push_str("file://");
    }
    for b in file.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(char::from(b));
        } else if b == b'\\' {
            uri.push('/');
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(file_uri("deploy/app.yaml"), "deploy/app.yaml");
        assert_eq!(
            file_uri("/etc/kubernetes/a b.yaml"),
            "file:///etc/kubernetes/a%20b.yaml"
        );
        assert_eq!(file_uri("-"), "-");
    }

    #[test]
    fn files_and_streams() {
        assert!(is_file("deploy/app.yaml"));
        assert!(is_file("/etc/kubernetes/manifests/etcd.yaml"));
        assert!(!is_file("-"));
        assert!(!is_file("cluster:/api/v1/pods"));
    }

    #[test]
    fn names() {
        assert_eq!(camel_case("secret-env-var"), "SecretEnvVar");
    }
}
