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
//! It is also the one place where text from outside (archive manifests, file
//! names, configuration, the operator's arguments) is made safe to print:
//! every human line goes through [`printable`], which escapes C0 controls
//! (except the line breaks and tabs of our own layout), DEL, C1 controls and
//! the Unicode bidirectional overrides, so a hostile string cannot clear the
//! screen, set the window title, colour a fake "OK" or reorder a line. [`Safe`]
//! does the same for one value on one line (its newlines escaped too), and
//! [`cut`] shortens values quoted in messages. JSON documents are escaped by
//! serde (C0 as `\u00XX`) and, here, for DEL, C1 and bidi controls as well.

use std::borrow::Cow;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a command printed its result, so that an error after it does not
/// add a second JSON document to stdout.
static RESULT_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether [`Ui::result`] already printed the command's document.
pub fn result_printed() -> bool {
    RESULT_PRINTED.load(Ordering::Relaxed)
}

/// Whether `c` must never reach a terminal raw: C0 (but see [`printable`]),
/// DEL, C1, and the bidirectional formatting characters (LRM/RLM/ALM, the
/// embeddings and overrides U+202A..U+202E, the isolates U+2066..U+2069).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escape_into(out: &mut String, c: char) {
    use std::fmt::Write as _;
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn escape(s: &str, keep_layout: bool) -> Cow<'_, str> {
    let keep = |c: char| keep_layout && (c == '\n' || c == '\t');
    if !s.chars().any(|c| is_unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe_char(c) && !keep(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text safe for a terminal: every unsafe character escaped (`\x1b`,
/// `\u{202e}`), except the newlines and tabs that lay out our own output.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// One value from outside (a path, a name, a manifest string) shown on one
/// line: like [`printable`], with newlines, carriage returns and tabs escaped too.
pub struct Safe<T>(pub T);

impl<T: AsRef<std::ffi::OsStr>> fmt::Display for Safe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_ref().to_string_lossy();
        f.write_str(&escape(&s, false))
    }
}

/// A value from outside quoted in a message: made one-line safe ([`Safe`]) and
/// cut to `max` characters with "…" (a 100 kB bad value is not echoed whole).
pub fn cut(s: &str, max: usize) -> String {
    let safe = escape(s, false);
    let mut chars = safe.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}… ({} bytes)", s.len())
    } else {
        head
    }
}

/// A JSON document with DEL, C1 and bidi controls written as `\uXXXX`
/// (serde escapes only C0). These characters can occur only inside strings,
/// so the replacement keeps the document's meaning.
pub fn json_text(v: &serde_json::Value, pretty: bool) -> String {
    let s = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .unwrap_or_default();
    // raw C0 in serde's output is only its own layout (newlines, indent)
    let bad = |c: char| is_unsafe_char(c) && (c as u32) >= 0x20;
    if !s.chars().any(bad) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if bad(c) {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
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

/// One line on stderr; a closed stderr is ignored (never a panic).
fn write_stderr(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// A warning on stderr, made [`printable`] (for code that has no [`Ui`]).
pub fn warn(msg: impl AsRef<str>) {
    write_stderr(&format!("warning: {}", printable(msg.as_ref())));
}

/// A line on stderr, made [`printable`] (for code that has no [`Ui`]).
pub fn note(msg: impl AsRef<str>) {
    write_stderr(&printable(msg.as_ref()));
}

/// The JSON document of a failed command: `ok: false` and the error.
pub fn error_document(
    kind: crate::error::ErrorKind,
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
pub fn print_error(e: &crate::error::Error, json: bool) {
    let hint = e
        .hint
        .clone()
        .unwrap_or_else(|| e.kind.default_hint().to_owned());
    // one line: a path or a server's answer quoted in it cannot start a
    // line of its own
    write_stderr(&format!("error: {}", escape(&e.message, false)));
    write_stderr(&format!("hint: {}", printable(&hint)));
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
            note(msg);
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            note(msg);
        }
    }

    /// A warning: always on stderr (even with `-q`).
    pub fn warn(&self, msg: impl AsRef<str>) {
        warn(msg);
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
    pub fn data(&self, text: &str) -> Result<(), crate::error::Error> {
        RESULT_PRINTED.store(true, Ordering::Relaxed);
        write_stdout(text.as_bytes()).map_err(|e| {
            crate::error::Error::operational(format!("writing to stdout: {e}"))
                .hint("check where stdout is redirected to (free space, permissions)")
        })
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
        pb.set_message(printable(what).into_owned());
        pb
    }
}

struct Bar(indicatif::ProgressBar);

impl crate::events::Progress for Bar {
    fn set_total(&self, total: u64) {
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
    }
}

/// The terminal rendering of the library's events: notes and warnings on
/// stderr (escaped), bars only on a terminal.
impl crate::events::Events for Ui {
    fn message(&self, level: crate::events::Level, text: &str) {
        use crate::events::Level;
        match level {
            Level::Info => Ui::info(self, text),
            Level::Detail => Ui::detail(self, text),
            Level::Warn => Ui::warn(self, text),
        }
    }
    fn progress(&self, total: u64, what: &str) -> Box<dyn crate::events::Progress> {
        Box::new(Bar(Ui::progress(self, total, what)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        let hostile = "a\x1b[2J\x1b]0;title\x07\x1b[32mOK\u{7f}\u{9b}x\u{202e}cba\u{2066}";
        let p = printable(hostile);
        assert!(!p.chars().any(is_unsafe_char), "{p}");
        assert_eq!(
            p,
            "a\\x1b[2J\\x1b]0;title\\x07\\x1b[32mOK\\x7f\\x9bx\\u{202e}cba\\u{2066}"
        );
        assert_eq!(printable("line 1\n\tline 2"), "line 1\n\tline 2");
        assert_eq!(Safe("a\nb").to_string(), "a\\nb");
        assert_eq!(printable("plain ümlaut → ok"), "plain ümlaut → ok");
    }

    #[test]
    fn cut_shortens_long_values() {
        let long = "x".repeat(100_000);
        let c = cut(&long, 80);
        assert!(c.len() < 120, "{c}");
        assert!(c.starts_with(&"x".repeat(80)) && c.contains("100000 bytes"));
        assert_eq!(cut("short", 80), "short");
    }

    #[test]
    fn json_escapes_del_c1_and_bidi() {
        let v = serde_json::json!({"w": "a\x1b[31m\u{7f}\u{9b}\u{202e}z"});
        let t = json_text(&v, true);
        assert!(!t.chars().any(|c| is_unsafe_char(c) && c != '\n'), "{t}");
        assert!(t.contains("\\u001b") && t.contains("\\u202e") && t.contains("\\u009b"));
        let back: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(back, v);
    }
}
