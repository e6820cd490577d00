//! docs/ci/github-actions.yml: every `profkit` command it runs parses with
//! profkit's own CLI (a renamed flag fails here, not in a user's CI), and
//! it posts the github-format comparison.

use clap::Parser as _;
use profkit::cli::args::Cli;

#[test]
fn the_workflow_runs_commands_profkit_accepts() {
    let yml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ci/github-actions.yml"),
    )
    .unwrap();
    let mut seen = 0;
    for line in yml.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let Some(at) = line.find("target/release/profkit ") else {
            continue;
        };
        // Up to a closing parenthesis or a redirection; shell words with
        // their quotes and variables as placeholders.
        let cmd = &line[at + "target/release/".len()..];
        let cmd = cmd.split([')', '>']).next().unwrap();
        let words: Vec<String> = cmd
            .split_whitespace()
            .map(|w| w.trim_matches('"').replace('$', "x"))
            .collect();
        if let Err(e) = Cli::try_parse_from(&words) {
            panic!("{words:?}: {e}");
        }
        seen += 1;
    }
    assert!(seen >= 5, "{seen} profkit commands found");
    assert!(yml.contains("--format github") && yml.contains("gh pr comment"));
}
