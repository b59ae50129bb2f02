//! Integration tests of `ward scan`: one binary, one module per area.

// Helpers outside `#[test]` functions panic on failure too; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod audit;
mod canary;
mod cli;
mod control_plane;
mod corpus;
mod data;
mod inputs;
mod live;
mod output;
mod rbac;
mod who_can;
mod workload;

use std::path::{Path, PathBuf};

use ward_scan::{Finding, Report, Rule, Scanner};

/// Scans named in-memory files together.
pub(crate) fn scan(files: &[(&str, &str)]) -> Report {
    let mut scanner = Scanner::new();
    for (name, text) in files {
        scanner.add_str(name, text).expect("test input parses");
    }
    scanner.finish()
}

/// Scans one in-memory manifest.
pub(crate) fn scan_one(text: &str) -> Report {
    scan(&[("manifest.yaml", text)])
}

/// The findings of one rule.
pub(crate) fn of(report: &Report, rule: Rule) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.rule == rule).collect()
}

/// Asserts `rule` fires exactly `n` times on `text`, and returns those findings.
#[track_caller]
pub(crate) fn fires(text: &str, rule: Rule, n: usize) -> Vec<Finding> {
    let report = scan_one(text);
    let found: Vec<Finding> = of(&report, rule).into_iter().cloned().collect();
    assert_eq!(
        found.len(),
        n,
        "{rule} should fire {n} times; all findings: {:#?}",
        report.findings
    );
    found
}

/// Asserts `rule` stays silent on `text`.
#[track_caller]
pub(crate) fn silent(text: &str, rule: Rule) {
    fires(text, rule, 0);
}

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// Scans fixture paths (files or directories) with the library API.
pub(crate) fn scan_fixtures(names: &[&str]) -> Report {
    let mut scanner = Scanner::new();
    for name in names {
        scanner.add_path(&fixture(name)).expect("fixture scans");
    }
    scanner.finish()
}
