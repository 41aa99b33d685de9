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

use clap::Parser;
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

fn main() {
    process::harden();
    process::install_signal_handlers();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
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
