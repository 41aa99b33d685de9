//! Where passphrases come from: a `--passphrase-file`, else the file named by
//! `SECURECLAW_BACKUP_PASSPHRASE_FILE` (a path, for timers and cron jobs:
//! never the secret itself), else the terminal; never argv or the environment's
//! values. Passphrases live in [`SecretString`] and are zeroized on drop.
//! A passphrase file is read like an identity file: regular files only, bounded,
//! with a warning when group or others can read it.
//!
//! Both backends (age, OpenPGP) ask through [`PassphraseSource`] and allow the
//! same number of tries: [`PassphraseSource::tries`] — [`PROMPT_TRIES`] on a
//! terminal, one from a file (its content does not change between tries).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A source of passphrases, shared by the age and OpenPGP backends.
#[derive(Clone, Default)]
pub struct PassphraseSource {
    file: Option<PathBuf>,
    /// The file's content, read once.
    cached: Arc<Mutex<Option<SecretString>>>,
}

/// The variable naming a passphrase file (like restic's `RESTIC_PASSWORD_FILE`).
pub const PASSPHRASE_FILE_ENV: &str = "SECURECLAW_BACKUP_PASSPHRASE_FILE";

/// How often a passphrase typed on the terminal may be wrong before the key
/// is given up (as ssh and gpg allow).
pub const PROMPT_TRIES: usize = 3;

/// The hint for "a passphrase is needed": the ways to give one.
pub const NEED_PASSPHRASE_HINT: &str = "run on a terminal, or pass --passphrase-file FILE or set SECURECLAW_BACKUP_PASSPHRASE_FILE=FILE (a file of mode 0600 whose first line is the passphrase)";

/// The passphrase file to use: `flag` (`--passphrase-file`), else
/// `$SECURECLAW_BACKUP_PASSPHRASE_FILE` when set and not empty.
pub fn passphrase_file(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        std::env::var_os(PASSPHRASE_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

impl PassphraseSource {
    pub fn new(file: Option<PathBuf>) -> Self {
        PassphraseSource {
            file,
            cached: Arc::default(),
        }
    }

    /// The source for a `--passphrase-file` flag, falling back to
    /// `$SECURECLAW_BACKUP_PASSPHRASE_FILE` (see [`passphrase_file`]).
    pub fn from_flag_or_env(flag: Option<PathBuf>) -> Self {
        Self::new(passphrase_file(flag))
    }

    /// How many passphrases may be tried for one key: [`PROMPT_TRIES`] on
    /// the terminal, 1 from a file.
    pub fn tries(&self) -> usize {
        if self.file.is_some() {
            1
        } else {
            PROMPT_TRIES
        }
    }

    /// Tells the operator a typed passphrase was wrong and how many tries
    /// are left (nothing for a file: there is no retry).
    pub fn wrong_try(&self, left: usize) {
        if self.file.is_none() && left > 0 {
            crate::text::note(format!(
                "wrong passphrase, try again ({left} {} left)",
                if left == 1 { "try" } else { "tries" }
            ));
        }
    }

    /// Whether a file was given (no terminal prompt will happen).
    pub fn from_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Returns the passphrase for `what` (a description shown in the prompt).
    pub fn get(&self, what: &str) -> Result<SecretString> {
        if let Some(path) = &self.file {
            let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = cached.as_ref() {
                return Ok(p.clone());
            }
            let p = read_passphrase_file(path)?;
            *cached = Some(p.clone());
            return Ok(p);
        }
        prompt(&format!("Passphrase for {what}: "))
    }
}

/// The largest passphrase file read.
pub const MAX_PASSPHRASE_FILE: u64 = 1024 * 1024;

/// Reads the first line of a passphrase file (trailing CR/LF removed).
pub fn read_passphrase_file(path: &Path) -> Result<SecretString> {
    let buf: Zeroizing<Vec<u8>> =
        crate::crypto::read_bounded(path, "passphrase file", MAX_PASSPHRASE_FILE)?;
    crate::crypto::warn_if_exposed(path, "passphrase file");
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let mut line = &buf[..end];
    if line.ends_with(b"\r") {
        line = &line[..line.len() - 1];
    }
    let s = std::str::from_utf8(line).map_err(|_| {
        Error::key(format!(
            "passphrase file {} is not UTF-8",
            crate::text::Safe(path)
        ))
        .hint("write the passphrase as UTF-8 text on the first line")
    })?;
    if s.is_empty() {
        return Err(Error::key(format!(
            "passphrase file {} is empty",
            crate::text::Safe(path)
        ))
        .hint("write the passphrase on the first line of the file"));
    }
    Ok(SecretString::from(s.to_owned()))
}

/// Asks on the terminal, without echo.
pub fn prompt(text: &str) -> Result<SecretString> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::fs::File::open("/dev/tty").is_err()
    {
        return Err(
            Error::key("a passphrase is needed but there is no terminal to ask on")
                .hint(NEED_PASSPHRASE_HINT),
        );
    }
    rpassword::prompt_password(text)
        .map(SecretString::from)
        .map_err(|e| {
            Error::key(format!(
                "could not read the passphrase from the terminal: {e}"
            ))
            .hint("pass --passphrase-file FILE (or set SECURECLAW_BACKUP_PASSPHRASE_FILE) instead")
        })
}
