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

/// Keeps every message (tests assert on warnings without capturing stderr).
#[derive(Debug, Default)]
pub struct Collect {
    messages: std::sync::Mutex<Vec<(Level, String)>>,
}

impl Collect {
    /// The messages so far, in order.
    pub fn messages(&self) -> Vec<(Level, String)> {
        self.messages
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
    fn progress(&self, _: u64, _: &str) -> Box<dyn Progress> {
        Box::new(NoProgress)
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
    }
}
