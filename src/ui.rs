//! The binary's rendering (bin-only: the library reports through
//! `secureclaw_backup::events::Events`, which [`Ui`] implements, and returns
//! reports; printing them is done here).
//!
//! Output discipline: with `--json` exactly one JSON document goes to stdout and
//! human text to stderr; without it, results go to stdout and progress to
//! stderr. `-q` prints nothing on success: no progress, no summary, only
//! warnings and errors (so a cron job mails only what needs attention); the
//! data a command exists to print (completion scripts, man pages, unit files
//! without `--install`) is still printed. `-v` adds detail. Progress bars
//! appear only when stderr is a terminal and never in `--json` mode. Every
//! JSON document has a top-level `ok` (see README "JSON output").
//!
//! A closed stdout (`… | head -1`) is not an error: writes that fail with
//! `BrokenPipe` are dropped quietly ([`write_stdout`]), nothing panics.
//!
//! Every human line is made safe to print on its way out (escaping of
//! controls and bidi overrides: [`secureclaw_backup::text`], re-exported here).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

pub use secureclaw_backup::text::{cut, json_text, note, printable, warn, Safe};

/// Every bar of the process lives here, so that a message printed while a
/// bar is drawn goes above the bars ([`above_bars`]) instead of leaving a
/// stale bar line between log lines.
static BARS: std::sync::OnceLock<indicatif::MultiProgress> = std::sync::OnceLock::new();

fn bars() -> &'static indicatif::MultiProgress {
    BARS.get_or_init(|| {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
    })
}

/// Prints a line on stderr above the bars being drawn (hides them, prints,
/// draws them again); without bars, just prints.
fn above_bars(f: impl FnOnce()) {
    match BARS.get() {
        Some(m) => m.suspend(f),
        None => f(),
    }
}

/// Set once a command printed its result, so that an error after it does not
/// add a second JSON document to stdout.
static RESULT_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether [`Ui::result`] already printed the command's document.
pub fn result_printed() -> bool {
    RESULT_PRINTED.load(Ordering::Relaxed)
}

/// Writes `text` to stdout and flushes. A reader that went away
/// (`BrokenPipe`) is not an error: the rest is dropped quietly. Other write
/// errors (a full disk behind a redirection) are returned.
pub fn write_stdout(text: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The JSON document of a failed command: `ok: false` and the error.
pub fn error_document(
    kind: secureclaw_backup::error::ErrorKind,
    message: &str,
    hint: &str,
) -> serde_json::Value {
    serde_json::json!({
        "ok": false,
        "error": {"kind": kind, "exit_code": kind.exit_code(), "message": message, "hint": hint}
    })
}

/// Prints a failed command's error: `error:` and `hint:` lines on stderr and,
/// with `--json` (when no result was printed yet), one error document.
pub fn print_error(e: &secureclaw_backup::error::Error, json: bool) {
    let hint = e
        .hint
        .clone()
        .unwrap_or_else(|| e.kind.default_hint().to_owned());
    // one line: a path or a server's answer quoted in it cannot start a
    // line of its own
    note(format!("error: {}", Safe(&e.message)));
    note(format!("hint: {hint}"));
    if json && !result_printed() {
        let doc = error_document(e.kind, &e.message, &hint);
        let _ = write_stdout(format!("{}\n", json_text(&doc, false)).as_bytes());
    }
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
            above_bars(|| note(msg));
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            above_bars(|| note(msg));
        }
    }

    /// A warning: always on stderr (even with `-q`).
    pub fn warn(&self, msg: impl AsRef<str>) {
        above_bars(|| warn(msg));
    }

    /// Whether bars are drawn: stderr is a terminal, no `--json`, no `-q`.
    pub fn shows_bars(&self) -> bool {
        !self.json && !self.quiet && std::io::stderr().is_terminal()
    }

    /// The command's result: JSON on stdout with `--json` (also with `-q`:
    /// the document was asked for), else the human summary on stdout, unless
    /// `-q`. The document must have a top-level boolean `ok`.
    pub fn result(&self, human: impl AsRef<str>, json: serde_json::Value) {
        debug_assert!(
            json.get("ok").is_some_and(serde_json::Value::is_boolean),
            "JSON document without a top-level ok: {json}"
        );
        RESULT_PRINTED.store(true, Ordering::Relaxed);
        if self.json {
            let _ = write_stdout(format!("{}\n", json_text(&json, true)).as_bytes());
        } else if !self.quiet && !human.as_ref().is_empty() {
            let text = format!("{}\n", printable(human.as_ref().trim_end()));
            let _ = write_stdout(text.as_bytes());
        }
    }

    /// Data the command exists to print (a unit file, a man page): on stdout
    /// even with `-q`. Not for `--json` (the caller refuses or wraps it).
    pub fn data(&self, text: &str) -> Result<(), secureclaw_backup::error::Error> {
        RESULT_PRINTED.store(true, Ordering::Relaxed);
        write_stdout(text.as_bytes()).map_err(|e| {
            secureclaw_backup::error::Error::operational(format!("writing to stdout: {e}"))
                .hint("check where stdout is redirected to (free space, permissions)")
        })
    }

    /// A progress bar over `total` bytes (0: not known yet, a counter with
    /// the rate until [`Bar::set_total`]), drawn above nothing else but
    /// other bars; a hidden one when not on a terminal.
    pub fn progress(&self, total: u64, what: &str) -> indicatif::ProgressBar {
        if !self.shows_bars() {
            return indicatif::ProgressBar::hidden();
        }
        let pb = bars().add(indicatif::ProgressBar::new(total));
        pb.set_style(bar_style(total));
        pb.set_message(printable(what).into_owned());
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        pb
    }
}

/// With a total: bar, bytes of total, rate, ETA. Without: bytes and rate.
fn bar_style(total: u64) -> indicatif::ProgressStyle {
    let template = if total > 0 {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{spinner} {msg} {bytes} {binary_bytes_per_sec}"
    };
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ")
}

struct Bar(indicatif::ProgressBar);

impl secureclaw_backup::events::Progress for Bar {
    fn set_total(&self, total: u64) {
        if self.0.length().unwrap_or(0) == 0 && total > 0 {
            self.0.set_style(bar_style(total));
        }
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn set_position(&self, done: u64) {
        self.0.set_position(done);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
        if let Some(m) = BARS.get() {
            m.remove(&self.0);
        }
    }
}

/// The terminal rendering of the library's events: notes and warnings on
/// stderr (escaped), bars only on a terminal.
impl secureclaw_backup::events::Events for Ui {
    fn message(&self, level: secureclaw_backup::events::Level, text: &str) {
        use secureclaw_backup::events::Level;
        match level {
            Level::Info => Ui::info(self, text),
            Level::Detail => Ui::detail(self, text),
            Level::Warn => Ui::warn(self, text),
        }
    }
    fn progress(&self, total: u64, what: &str) -> Box<dyn secureclaw_backup::events::Progress> {
        Box::new(Bar(Ui::progress(self, total, what)))
    }
    fn shows_progress(&self) -> bool {
        self.shows_bars()
    }
}
