//! How the library tells its caller what it is doing while it works.
//!
//! Engines (backup, restore, rotate, drill, push, …) print nothing: what they
//! find is returned in their reports, and what happens along the way (notes,
//! `-v` details, warnings, byte progress) goes through an [`Events`] the caller
//! passes in. The binary renders them on stderr (`ui::Ui`); tests and library
//! users may pass [`Silent`] or collect them.

/// How much a message matters to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Progress and notes (hidden with `-q`).
    Info,
    /// Details (shown with `-v`).
    Detail,
    /// Something the operator should know even with `-q`.
    Warn,
}

/// A byte counter for one long step (a bar on a terminal, nothing elsewhere).
pub trait Progress: Send + Sync {
    /// The total became known (or changed).
    fn set_total(&self, total: u64);
    /// `n` more bytes are done.
    fn advance(&self, n: u64);
    /// Absolute position.
    fn set_position(&self, done: u64);
    /// The step is over; the bar disappears.
    fn finish(&self);
}

/// Receives what an engine reports while it runs.
pub trait Events: Sync {
    /// One message. The text may hold names from outside; the renderer escapes.
    fn message(&self, level: Level, text: &str);
    /// A progress counter over `total` bytes (0 when unknown yet).
    fn progress(&self, total: u64, what: &str) -> Box<dyn Progress>;
    /// Whether progress is shown at all (a terminal): an engine may then
    /// spend a little work on a real total (backup: a walk of the sizes
    /// before the archive is written). Default: no.
    fn shows_progress(&self) -> bool {
        false
    }
}

/// A reader that moves a progress counter by the bytes read through it, and
/// finishes it when dropped (the end of the stream, or an error).
pub struct Reading<R> {
    inner: R,
    pb: Box<dyn Progress>,
}

impl<R> Reading<R> {
    pub fn new(inner: R, pb: Box<dyn Progress>) -> Self {
        Reading { inner, pb }
    }
}

impl<R: std::io::Read> std::io::Read for Reading<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pb.advance(n as u64);
        Ok(n)
    }
}

impl<R> Drop for Reading<R> {
    fn drop(&mut self) {
        self.pb.finish();
    }
}

/// A writer that moves a shared progress counter by the bytes written
/// through it ([`Counting::into_inner`] gives the writer back).
pub struct Counting<W> {
    inner: W,
    pb: std::sync::Arc<dyn Progress>,
}

impl<W> Counting<W> {
    pub fn new(inner: W, pb: std::sync::Arc<dyn Progress>) -> Self {
        Counting { inner, pb }
    }
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: std::io::Write> std::io::Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pb.advance(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl dyn Events + '_ {
    /// A note ([`Level::Info`]).
    pub fn info(&self, msg: impl AsRef<str>) {
        self.message(Level::Info, msg.as_ref());
    }
    /// A `-v` detail ([`Level::Detail`]).
    pub fn detail(&self, msg: impl AsRef<str>) {
        self.message(Level::Detail, msg.as_ref());
    }
    /// A warning ([`Level::Warn`]).
    pub fn warn(&self, msg: impl AsRef<str>) {
        self.message(Level::Warn, msg.as_ref());
    }
}

/// Drops every event (for tests and callers that only want the report).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn set_position(&self, _: u64) {}
    fn finish(&self) {}
}

impl Events for Silent {
    fn message(&self, _: Level, _: &str) {}
    fn progress(&self, _: u64, _: &str) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}

/// A progress counter that shows nothing (for steps too small for a bar).
pub fn no_progress() -> Box<dyn Progress> {
    Box::new(NoProgress)
}

/// What a progress counter was told, as [`Collect`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressCall {
    /// `progress(total, what)` made the counter.
    Start(u64, String),
    SetTotal(u64),
    Advance(u64),
    SetPosition(u64),
    Finish,
}

/// Keeps every message and progress call (tests assert on warnings and
/// progress without capturing stderr). It counts as a terminal
/// ([`Events::shows_progress`]), so engines compute their totals.
#[derive(Debug, Default)]
pub struct Collect {
    messages: std::sync::Mutex<Vec<(Level, String)>>,
    progress: std::sync::Arc<std::sync::Mutex<Vec<ProgressCall>>>,
}

struct Recording(std::sync::Arc<std::sync::Mutex<Vec<ProgressCall>>>);

impl Recording {
    fn push(&self, c: ProgressCall) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
}

impl Progress for Recording {
    fn set_total(&self, total: u64) {
        self.push(ProgressCall::SetTotal(total));
    }
    fn advance(&self, n: u64) {
        self.push(ProgressCall::Advance(n));
    }
    fn set_position(&self, done: u64) {
        self.push(ProgressCall::SetPosition(done));
    }
    fn finish(&self) {
        self.push(ProgressCall::Finish);
    }
}

impl Collect {
    /// The messages so far, in order.
    pub fn messages(&self) -> Vec<(Level, String)> {
        self.messages
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The progress calls so far, of every counter, in order.
    pub fn progress_calls(&self) -> Vec<ProgressCall> {
        self.progress
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

impl Events for Collect {
    fn message(&self, level: Level, text: &str) {
        let mut m = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        m.push((level, text.to_owned()));
    }
    fn progress(&self, total: u64, what: &str) -> Box<dyn Progress> {
        let r = Recording(self.progress.clone());
        r.push(ProgressCall::Start(total, what.to_owned()));
        Box::new(r)
    }
    fn shows_progress(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_keeps_levels_and_order() {
        let c = Collect::default();
        let e: &dyn Events = &c;
        e.info("one");
        e.warn(format!("two {}", 2));
        e.detail("three");
        assert_eq!(
            c.messages(),
            vec![
                (Level::Info, "one".to_owned()),
                (Level::Warn, "two 2".to_owned()),
                (Level::Detail, "three".to_owned())
            ]
        );
        let p = e.progress(10, "x");
        p.advance(5);
        p.finish();
        assert_eq!(
            c.progress_calls(),
            vec![
                ProgressCall::Start(10, "x".into()),
                ProgressCall::Advance(5),
                ProgressCall::Finish
            ]
        );
    }

    #[test]
    fn reading_and_counting_move_the_counter() {
        use std::io::{Read, Write};
        let c = Collect::default();
        let e: &dyn Events = &c;
        let mut r = Reading::new(&b"hello world"[..], e.progress(11, "r"));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        drop(r);
        let pb: std::sync::Arc<dyn Progress> = std::sync::Arc::from(e.progress(0, "w"));
        let mut w = Counting::new(Vec::new(), pb);
        w.write_all(b"abc").unwrap();
        assert_eq!(w.into_inner(), b"abc");
        let calls = c.progress_calls();
        let advanced: u64 = calls
            .iter()
            .map(|k| match k {
                ProgressCall::Advance(n) => *n,
                _ => 0,
            })
            .sum();
        assert_eq!(advanced, 14);
        assert!(calls.contains(&ProgressCall::Finish));
    }
}
