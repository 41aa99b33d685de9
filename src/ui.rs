//! Output discipline: with `--json` exactly one JSON document goes to stdout and
//! human text to stderr; without it, results go to stdout and progress to
//! stderr. `-q` silences progress, `-v` adds detail. Progress bars appear only
//! when stderr is a terminal and never in `--json` mode.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a command printed its result, so that an error after it does not
/// add a second JSON document to stdout.
static RESULT_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether [`Ui::result`] already printed the command's document.
pub fn result_printed() -> bool {
    RESULT_PRINTED.load(Ordering::Relaxed)
}

/// How the user wants output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Ui {
    /// Progress and notes: stderr, unless `-q`.
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A warning: always on stderr (even with `-q`).
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("warning: {}", msg.as_ref());
    }

    /// The command's result: JSON on stdout with `--json`, else the human text
    /// on stdout.
    pub fn result(&self, human: impl AsRef<str>, json: serde_json::Value) {
        let mut out = std::io::stdout().lock();
        RESULT_PRINTED.store(true, Ordering::Relaxed);
        if self.json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        } else if !human.as_ref().is_empty() {
            let _ = writeln!(out, "{}", human.as_ref().trim_end());
        }
        let _ = out.flush();
    }

    /// A progress bar over `total` bytes, or a hidden one when not on a terminal.
    pub fn progress(&self, total: u64, what: &str) -> indicatif::ProgressBar {
        if self.json || self.quiet || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(what.to_owned());
        pb
    }
}
