//! Errors of the library: what failed, where, and what to do about it.
//!
//! Every error carries an [`ErrorKind`] that maps one-to-one onto the exit codes
//! of the README ("Exit codes"), a message naming the failed operation and path, and a hint
//! telling the operator what to do next. The binary maps kinds to exit codes in
//! one place ([`ErrorKind::exit_code`]).

use std::fmt;
use std::io;
use std::path::Path;

/// The class of a failure; each class has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// I/O error, missing file, full disk… (exit 1)
    Operational,
    /// Bad arguments or conflicting options (exit 2)
    Usage,
    /// Authentication, checksum, manifest mismatch, truncation (exit 3)
    Integrity,
    /// No matching identity, wrong passphrase, recipient not found (exit 4)
    Key,
    /// Unsafe archive entry, gateway running, lock held (exit 5)
    Refused,
    /// `status`: the newest backup is older than allowed (exit 6)
    Stale,
    /// `validate`, and `restore`/`drill` after the swap: the data directory
    /// fails a check of the post-restore validation (exit 7)
    Validation,
}

impl ErrorKind {
    /// The process exit code documented in the README ("Exit codes").
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Operational => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Integrity => 3,
            ErrorKind::Key => 4,
            ErrorKind::Refused => 5,
            ErrorKind::Stale => 6,
            ErrorKind::Validation => 7,
        }
    }
}

impl ErrorKind {
    /// What to do when an error carries no more specific hint.
    pub fn default_hint(self) -> &'static str {
        match self {
            ErrorKind::Operational => "check the path named above, its permissions and free space, then run again",
            ErrorKind::Usage => "see `secureclaw-backup --help` and the command's --help",
            ErrorKind::Integrity => "nothing was changed; use another archive or an intact copy of this one",
            ErrorKind::Key => "check the identities (-i), recipients (-r, SECURECLAW_BACKUP_KEY) and the passphrase",
            ErrorKind::Refused => "nothing was changed; read the reason above before retrying",
            ErrorKind::Stale => "check the backup schedule (`systemctl --user list-timers`, cron) and its logs",
            ErrorKind::Validation => "see the validation table above; `validate --fix` repairs permissions, the other checks need a manual fix",
        }
    }
}

/// The recommendation for an archive that fails authentication or parsing.
pub const TAMPERED_HINT: &str =
    "the archive is damaged or was tampered with; use another archive or copy";

/// A user-facing error: kind, message and a recommendation.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
        }
    }
    pub fn operational(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Operational, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Integrity, message)
    }
    pub fn key(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Key, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
    /// Adds (or replaces) the recommendation shown under the message.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// An I/O error on `path` while doing `what`.
    pub fn io(what: &str, path: &Path, err: io::Error) -> Self {
        let hint = match err.kind() {
            io::ErrorKind::NotFound => "check that the path exists and is spelled correctly",
            io::ErrorKind::PermissionDenied => {
                "check the ownership and permissions of the path (run as the user that owns it)"
            }
            io::ErrorKind::StorageFull => "free space on that filesystem, then run again",
            _ => "check the path and the filesystem, then run again",
        };
        Error::operational(format!("{what} {}: {err}", path.display())).hint(hint)
    }
    /// Prefixes the message with more context.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Attach a path and an operation to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| {
            // An I/O error that wraps one of ours (raised inside a Read/Write
            // adapter) keeps its kind and message.
            match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
                Some(inner) => inner.clone(),
                None => Error::io(what, path, e),
            }
        })
    }
}

/// Wraps one of our errors in an `io::Error` so it can travel through
/// `Read`/`Write` adapters and be recovered with [`from_io`].
pub fn into_io(err: Error) -> io::Error {
    io::Error::other(err)
}

/// Recovers an error raised by [`into_io`], or classifies a plain I/O error.
pub fn from_io(e: io::Error, what: &str, path: &Path) -> Error {
    Err::<(), _>(e).at(what, path).unwrap_err()
}
