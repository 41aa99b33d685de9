//! The thin binary: parse arguments, run the library, map errors to the exit
//! codes documented in the README, print (through `ui`, which escapes what
//! came from outside).
#![forbid(unsafe_code)]

use clap::Parser;
use secureclaw_backup::cli::{self, Cli};
use secureclaw_backup::process;

fn main() {
    process::harden();
    process::install_signal_handlers();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let json = cli.json;
    match cli::run(cli) {
        Ok(()) => {}
        Err(e) => {
            secureclaw_backup::ui::print_error(&e, json);
            std::process::exit(e.kind.exit_code());
        }
    }
}
