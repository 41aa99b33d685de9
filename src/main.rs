//! The thin binary: parse arguments, run the library, map errors to the exit
//! codes documented in the README, print (through `ui`, which escapes what
//! came from outside).
//!
//! Under `--json` a usage error found by the parser is a JSON document on
//! stdout too (`{"ok": false, "error": {"kind": "usage", …}}`), beside clap's
//! own text on stderr. `--help` and `--version` print their text as usual.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod ui;

use clap::{CommandFactory, FromArgMatches};
use cli::Cli;
use secureclaw_backup::error::ErrorKind;
use secureclaw_backup::process;

/// Whether `--json` is among the arguments (before a `--`), for errors the
/// parser raises before it could tell us.
fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// The `[backup]` section of the configuration file (README "Configuration
/// file") as defaults: each value becomes the environment variable of its
/// option when that variable is not set, before anything else runs (one
/// thread), so flags and the environment win and every command sees the
/// same defaults. The file is the command's `--config`, else
/// `$SECURECLAW_BACKUP_CONFIG`, else the default path; commands that use no
/// setting (completions, man, keygen) do not read it.
fn apply_config(m: &clap::ArgMatches) -> secureclaw_backup::error::Result<()> {
    let Some((name, sub)) = m.subcommand() else {
        return Ok(());
    };
    if matches!(name, "completions" | "man" | "keygen") {
        return Ok(());
    }
    let flag = sub
        .try_get_one::<std::path::PathBuf>("config")
        .ok()
        .flatten()
        .cloned()
        .or_else(|| {
            std::env::var_os("SECURECLAW_BACKUP_CONFIG")
                .filter(|v| !v.is_empty())
                .map(Into::into)
        });
    let (_, cfg) = secureclaw_backup::tier::config::load(flag.as_deref())?;
    for (var, value) in cfg.backup.environment() {
        std::env::set_var(var, value);
    }
    Ok(())
}

fn main() {
    process::harden();
    process::install_signal_handlers();
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (m, c)));
    let cli = match parsed {
        Ok((m, c)) => {
            if let Err(e) = apply_config(&m) {
                ui::print_error(&e, c.json);
                std::process::exit(e.kind.exit_code());
            }
            c
        }
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            if code == 2 && json_requested() {
                let text = e.render().to_string();
                let message = text
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
                    .to_owned();
                let doc =
                    ui::error_document(ErrorKind::Usage, &message, ErrorKind::Usage.default_hint());
                let _ = ui::write_stdout(format!("{}\n", ui::json_text(&doc, false)).as_bytes());
            }
            std::process::exit(code);
        }
    };
    let json = cli.json;
    match cli::run(cli) {
        Ok(()) => {}
        Err(e) => {
            ui::print_error(&e, json);
            std::process::exit(e.kind.exit_code());
        }
    }
}
