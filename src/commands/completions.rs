//! `completions`: shell completion scripts generated from the clap definition.
//!
//! clap_complete's bash generator (4.6) spells the state of a subcommand two
//! ways when the program's name has a dash: the word loop sets
//! `cmd="secureclaw__backup__subcmd__backup"`, while the case labels read
//! `secureclaw__subcmd__backup__subcmd__backup)`, so no option of any
//! subcommand ever completed. [`bash`] rewrites the labels to the loop's
//! spelling (and leaves a script without the mismatch unchanged).
//!
//! The script is the command's output, so `--json` is refused (a usage
//! error), and `-q` still prints it.

use clap::CommandFactory;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, Result};

/// The program's name, as installed.
pub const BIN: &str = "secureclaw-backup";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to generate completions for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::Cli::command(), BIN, &mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        clap_complete::Shell::Bash => bash_fix_labels(&text, BIN),
        _ => text,
    }
}

/// Rewrites the case labels of a generated bash script whose program name
/// `bin` has dashes: `a__subcmd__b__subcmd__sub)` becomes `a__b__subcmd__sub)`,
/// the spelling its word loop assigns to `cmd`.
fn bash_fix_labels(script: &str, bin: &str) -> String {
    if !bin.contains('-') {
        return script.to_owned();
    }
    let wrong = bin.replace('-', "__subcmd__");
    let right = bin.replace('-', "__");
    let mut out = String::with_capacity(script.len());
    for line in script.split_inclusive('\n') {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let label = body.trim_end();
        let fixable = label.ends_with(')')
            && label
                .strip_prefix(&wrong)
                .is_some_and(|rest| rest == ")" || rest.starts_with("__subcmd__"));
        if fixable {
            out.push_str(indent);
            out.push_str(&right);
            out.push_str(&body[wrong.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    if ui.json {
        return Err(
            Error::usage("`completions` prints a shell script, not a JSON document")
                .hint("drop --json: `secureclaw-backup completions bash > FILE`"),
        );
    }
    ui.data(&script(args.shell))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_completion_names_commands() {
        let s = script(clap_complete::Shell::Bash);
        assert!(s.contains("secureclaw-backup"));
        assert!(s.contains("prune"));
    }

    /// Every state the word loop can assign has a case label, and every
    /// subcommand's label exists.
    #[test]
    fn bash_states_match_labels() {
        let s = script(clap_complete::Shell::Bash);
        let labels: std::collections::BTreeSet<&str> = s
            .lines()
            .map(str::trim)
            .filter_map(|l| l.strip_suffix(')'))
            .collect();
        let states: Vec<&str> = s
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|c| !c.is_empty())
            .collect();
        assert!(states.len() > 13, "{states:?}");
        for c in &states {
            assert!(labels.contains(c), "no case label for cmd={c}");
        }
        assert!(labels.contains("secureclaw__backup__subcmd__backup"));
        assert!(!s.contains("secureclaw__subcmd__backup"));
    }

    #[test]
    fn label_fix_leaves_other_lines() {
        let fixed = bash_fix_labels(
            "  a__subcmd__b)\n  a__subcmd__b__subcmd__c)\n  cmd=\"a__b\"\n  a__subcmd__bx)\n",
            "a-b",
        );
        assert_eq!(
            fixed,
            "  a__b)\n  a__b__subcmd__c)\n  cmd=\"a__b\"\n  a__subcmd__bx)\n"
        );
        assert_eq!(bash_fix_labels("x__subcmd__y)\n", "xy"), "x__subcmd__y)\n");
    }
}
