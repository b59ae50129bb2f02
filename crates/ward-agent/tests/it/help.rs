//! `ward agent --help` and `ward run --help` are golden files: a change to the command line
//! shows up in review. Regenerate with `WARD_BLESS=1 cargo test -p ward-agent --test it help`.

use clap::CommandFactory as _;

fn check(name: &str, mut cmd: clap::Command) {
    let help = cmd.render_long_help().to_string();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/golden")
        .join(name);
    if std::env::var_os("WARD_BLESS").is_some() {
        std::fs::write(&path, &help).expect("write golden file");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with WARD_BLESS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        help, want,
        "{name} changed; run with WARD_BLESS=1 and review the diff"
    );
}

#[test]
fn help_texts_match_the_golden_files() {
    check("agent-help.txt", ward_agent::AgentArgs::command());
    check("run-help.txt", ward_agent::RunArgs::command());
}

#[test]
fn help_survives_embedding_as_a_subcommand() {
    use clap::Args as _;
    let cmd = clap::Command::new("ward").subcommand(ward_agent::AgentArgs::augment_args(
        clap::Command::new("agent"),
    ));
    let mut sub = cmd.find_subcommand("agent").expect("agent").clone();
    let help = sub.render_long_help().to_string();
    assert!(help.contains("--from-manifest"), "{help}");
    assert!(
        help.contains("Examples:"),
        "the examples come along: {help}"
    );
}
