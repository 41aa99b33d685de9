//! Making text from outside safe to print: the one place that decides which
//! characters never reach a terminal raw (README "Output"; SECURITY.md, the
//! hostile-archive cases). Text from archive manifests, file names,
//! configuration and the operator's arguments goes through [`printable`],
//! which escapes C0 controls (except the line breaks and tabs of our own
//! layout), DEL, C1 controls and the Unicode bidirectional overrides, so a
//! hostile string cannot clear the screen, set the window title, colour a fake
//! "OK" or reorder a line. [`Safe`] does the same for one value on one line
//! (its newlines escaped too), and [`cut`] shortens values quoted in messages.
//! [`json_text`] escapes DEL, C1 and bidi controls in JSON documents as well
//! (serde escapes only C0).
//!
//! Error messages built by the library quote outside values through these, so
//! they are safe wherever they are shown. Rendering (stdout/stderr, `--json`,
//! `-q`/`-v`, progress bars) is the binary's business (`src/ui.rs`); the
//! library reports through [`crate::events::Events`]. [`note`] and [`warn`]
//! are the only direct stderr lines, for the few places that run before or
//! outside any engine (an interactive passphrase prompt, a key file readable
//! by others, the runtime-directory fallback).

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

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

/// One line on stderr; a closed stderr is ignored (never a panic).
fn write_stderr(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// A warning on stderr, made [`printable`] (for code that has no
/// [`crate::events::Events`] at hand).
pub fn warn(msg: impl AsRef<str>) {
    write_stderr(&format!("warning: {}", printable(msg.as_ref())));
}

/// A line on stderr, made [`printable`] (for code that has no
/// [`crate::events::Events`] at hand).
pub fn note(msg: impl AsRef<str>) {
    write_stderr(&printable(msg.as_ref()));
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
