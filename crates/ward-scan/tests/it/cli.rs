//! `ScanArgs` as the `ward` binary wires it: a `scan` subcommand.

use std::io::Write;

use clap::{Parser, Subcommand};
use ward_scan::{ScanArgs, run};

use crate::fixture;

#[derive(Parser, Debug)]
#[command(name = "ward")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Find where Secrets are exposed.
    Scan(ScanArgs),
}

fn parse(args: &[&str]) -> Result<ScanArgs, clap::Error> {
    let mut argv = vec!["ward", "scan"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).map(|cli| match cli.command {
        Command::Scan(args) => args,
    })
}

fn run_with(args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let code = run(parse(args).unwrap(), &mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn help_has_examples_and_flags() {
    let err = parse(&["--help"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    let help = err.render().to_string();
    for needle in [
        "Examples:",
        "ward scan -o sarif --fail-on high",
        "--output",
        "--fail-on <SEVERITY>",
        "- sarif: SARIF 2.1.0",
        "[PATH]...",
        "--kubeconfig <PATH>",
        "--context <NAME>",
        "ward scan --kubeconfig ~/.kube/config --context prod",
        "--no-progress",
        "ward scan --no-progress -o json cluster-dump/",
        "line (1-based), document and item (0-based)",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn paths_are_required_and_values_checked() {
    assert_eq!(
        parse(&[]).unwrap_err().kind(),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        parse(&["-o", "xml", "x"]).unwrap_err().kind(),
        clap::error::ErrorKind::InvalidValue
    );
    assert_eq!(
        parse(&["--fail-on", "severe", "x"]).unwrap_err().kind(),
        clap::error::ErrorKind::InvalidValue
    );
}

#[test]
fn fail_on_sets_the_exit_status() {
    let seed = fixture("seed-deployment.yaml");
    let seed = seed.to_str().unwrap();
    // The seed Deployment has one medium (secret-env-var) and one low (sa-token-automount).
    assert_eq!(run_with(&[seed]).0, 0);
    assert_eq!(run_with(&["--fail-on", "medium", seed]).0, 1);
    assert_eq!(run_with(&["--fail-on", "low", seed]).0, 1);
    assert_eq!(run_with(&["--fail-on", "high", seed]).0, 0);
    assert_eq!(
        run_with(&["--fail-on", "critical", "-o", "json", seed]).0,
        0
    );
}

#[test]
fn formats_and_several_paths() {
    let seed = fixture("seed-deployment.yaml");
    let clean = fixture("clean");
    let (_, json) = run_with(&[
        "-o",
        "json",
        seed.to_str().unwrap(),
        clean.to_str().unwrap(),
    ]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["findings"].as_array().unwrap().len(), 2);
    let (_, sarif) = run_with(&["--output", "sarif", seed.to_str().unwrap()]);
    assert!(sarif.contains("\"version\": \"2.1.0\""));
    let (_, table) = run_with(&[seed.to_str().unwrap()]);
    assert!(table.starts_with("MEDIUM (1)\nRULE "), "{table}");
}

#[test]
fn missing_path_is_an_error() {
    let mut out = Vec::new();
    let err = run(parse(&["/nonexistent/ward-scan-test"]).unwrap(), &mut out).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ward-scan-test"));
    out.flush().unwrap();
}

#[test]
fn who_can_subcommand() {
    let rbac = fixture("rbac-multi-role.yaml");
    let rbac = rbac.to_str().unwrap();
    let (code, table) = run_with(&[
        "who-can",
        "read",
        "secret",
        "shop/db-password",
        rbac,
        "--subject",
        "system:serviceaccount:shop:app",
    ]);
    assert_eq!(code, 0);
    assert!(
        table.contains("can be read by 1 subject (1 path)"),
        "{table}"
    );
    let (_, json) = run_with(&["who-can", "read", "secrets", "shop/*", "-o", "json", rbac]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["secret"]["name"], serde_json::Value::Null);
    let err = parse(&["who-can", "read", "secret", "no-namespace", rbac]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    assert!(err.to_string().contains("NAMESPACE/NAME"));
    let err = parse(&["who-can", "read", "configmap", "a/b", rbac]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    let help = parse(&["who-can", "--help"])
        .unwrap_err()
        .render()
        .to_string();
    assert!(
        help.contains("ward scan who-can read secret shop/db-password -"),
        "{help}"
    );
}
