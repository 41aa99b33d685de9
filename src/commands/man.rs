//! `man`: manual pages generated from the clap definition (clap_mangen), so
//! that `--help`, completions and man pages always agree.
//!
//! `man --dir DIR` writes `secureclaw-backup.1` and one
//! `secureclaw-backup-<command>.1` per subcommand into DIR (created 0755 if
//! missing; pages are not secret, mode 0644). Without `--dir` one page is
//! printed on stdout: the top-level one, or that of `COMMAND`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, IoContext, Result};

use super::completions::BIN;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the page of this subcommand (default: the top-level page)
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
    /// Write every page (the top-level one and one per subcommand) into DIR,
    /// e.g. ~/.local/share/man/man1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The command tree as the man pages show it (built, no `help` subcommand).
fn tree() -> clap::Command {
    let mut cmd = crate::cli::Cli::command()
        .bin_name(BIN)
        .disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every page: (file name, roff text). The top-level page first.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let root = tree();
    let mut out = Vec::new();
    let mut render = |cmd: clap::Command| -> Result<()> {
        let man = clap_mangen::Man::new(cmd);
        let name = man.get_filename();
        let mut buf = Vec::new();
        man.render(&mut buf)
            .map_err(|e| Error::operational(format!("rendering the man page {name}: {e}")))?;
        out.push((name, buf));
        Ok(())
    };
    render(root.clone())?;
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        // built: its display name is the full command, so the page is
        // secureclaw-backup-backup.1
        render(sub.clone())?;
    }
    Ok(out)
}

fn write_page(dir: &Path, name: &str, text: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(".secureclaw-backup-man.")
        .tempfile_in(dir)
        .at("creating a temporary file in", dir)?;
    tmp.write_all(text).at("writing", tmp.path())?;
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .at("setting permissions of", tmp.path())?;
    tmp.persist(&path)
        .map_err(|e| Error::io("renaming the page into place", &path, e.error))?;
    Ok(path)
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let pages = pages()?;
    let Some(dir) = &args.dir else {
        if ui.json {
            return Err(
                Error::usage("`man` without --dir prints a page, not a JSON document")
                    .hint("drop --json, or pass --dir DIR to write the pages and get their list"),
            );
        }
        let want = match &args.command {
            None => BIN.to_owned(),
            Some(c) => format!("{BIN}-{c}"),
        };
        let Some((_, text)) = pages
            .iter()
            .find(|(n, _)| n.strip_suffix(".1") == Some(&want))
        else {
            let names: Vec<_> = pages
                .iter()
                .skip(1)
                .filter_map(|(n, _)| n.strip_prefix(&format!("{BIN}-"))?.strip_suffix(".1"))
                .collect();
            return Err(Error::usage(format!(
                "no subcommand {}",
                crate::ui::cut(args.command.as_deref().unwrap_or(""), 80)
            ))
            .hint(format!("one of: {}", names.join(", "))));
        };
        return ui.data(&String::from_utf8_lossy(text));
    };
    std::fs::create_dir_all(dir).at("creating directory", dir)?;
    let mut written = Vec::new();
    for (name, text) in &pages {
        written.push(write_page(dir, name, text)?);
    }
    let human = format!(
        "wrote {} man pages to {}\n  read one: man -l {}\n  or add the directory's parent to MANPATH",
        written.len(),
        crate::ui::Safe(dir),
        crate::ui::Safe(&written[0]),
    );
    ui.result(
        human,
        serde_json::json!({"ok": true, "dir": dir, "pages": written}),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_subcommand_with_its_options() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "secureclaw-backup.1");
        for sub in tree().get_subcommands() {
            let name = format!("secureclaw-backup-{}.1", sub.get_name());
            let (_, text) = pages
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no page {name}"));
            let text = String::from_utf8_lossy(text);
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    // roff escapes the dashes of options: \-\-type
                    let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(text.contains(&roff), "{name} lacks {roff}");
                }
            }
        }
    }
}
