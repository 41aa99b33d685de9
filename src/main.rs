//! The thin binary: parse arguments, run the library, map errors to the exit
//! codes of DESIGN §7, print.
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
            eprintln!("error: {}", e.message);
            let hint = e
                .hint
                .clone()
                .unwrap_or_else(|| e.kind.default_hint().to_owned());
            eprintln!("hint: {hint}");
            if json && !secureclaw_backup::ui::result_printed() {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": false,
                        "error": {"kind": e.kind, "exit_code": e.kind.exit_code(), "message": e.message, "hint": hint}
                    })
                );
            }
            std::process::exit(e.kind.exit_code());
        }
    }
}
