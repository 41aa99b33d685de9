//! Encryption seam: the [`Encryptor`] / [`Decryptor`] traits, format detection by
//! magic bytes, keyless [`inspect`]ion dispatched to the backend, and the safe
//! reading of small input files (identities, passphrases, recipients:
//! [`open_regular`], [`read_bounded`], and a warning when one is exposed).
//!
//! Below the seam, one module per job: the backends ([`age`], [`openpgp`]);
//! recipient values and the secret-key screen ([`spec`], which depends on no
//! backend); recipient parsing into a backend's encryptor ([`recipients`]);
//! identity files into a backend's decryptor ([`identity`]); where
//! passphrases come from ([`passphrase`]). Dependencies point one way:
//! `recipients` and `identity` use the backends, the backends use `spec` and
//! `passphrase`, and nothing below uses `recipients` or `identity`.
//!
//! A writer returned by [`Encryptor::wrap_output`] must be closed with
//! [`EncryptWriter::finish`]: dropping it would silently truncate the archive,
//! so the call is visible in the code of every caller.

pub mod age;
pub mod identity;
pub mod openpgp;
pub mod passphrase;
pub mod recipients;
pub mod spec;

use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::Result;

pub use identity::Identities;
pub use passphrase::PassphraseSource;
pub use recipients::parse_recipients;

/// The container format of an archive, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// age v1, binary header (`age-encryption.org/v1`).
    Age,
    /// age v1 in ASCII armor (`-----BEGIN AGE ENCRYPTED FILE-----`).
    AgeArmored,
    /// OpenPGP message, binary packets. Spelled `openpgp` in JSON, as
    /// everywhere else (kebab-case would split it).
    #[serde(rename = "openpgp")]
    OpenPgp,
    /// OpenPGP message in ASCII armor (`-----BEGIN PGP MESSAGE-----`).
    #[serde(rename = "openpgp-armored")]
    OpenPgpArmored,
    /// Unencrypted gzip stream (the guide's basic mode / `--insecure-plaintext`).
    /// Spelled `plaintext` in JSON, as `list` and `backup` say.
    #[serde(rename = "plaintext")]
    Gzip,
}

impl Format {
    /// Detects the format from the first bytes of a file (at least 64 wanted).
    pub fn detect(head: &[u8]) -> Option<Format> {
        if head.starts_with(b"age-encryption.org/v1\n") {
            Some(Format::Age)
        } else if head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
            Some(Format::AgeArmored)
        } else if head.starts_with(b"-----BEGIN PGP MESSAGE-----") {
            Some(Format::OpenPgpArmored)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::Gzip)
        } else if head.first().is_some_and(|b| openpgp::is_message_start(*b)) {
            Some(Format::OpenPgp)
        } else {
            None
        }
    }

    /// The archive-name suffix for this format.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Age | Format::AgeArmored => ".tar.gz.age",
            Format::OpenPgp | Format::OpenPgpArmored => ".tar.gz.gpg",
            Format::Gzip => ".tar.gz",
        }
    }

    pub fn is_encrypted(self) -> bool {
        self != Format::Gzip
    }

    pub fn family(self) -> &'static str {
        match self {
            Format::Age | Format::AgeArmored => "age",
            Format::OpenPgp | Format::OpenPgpArmored => "openpgp",
            Format::Gzip => "plaintext",
        }
    }
}

/// A writer that encrypts into an inner sink and must be finished explicitly.
pub trait EncryptWriter: Write + Send {
    /// Writes the final chunk/packet and flushes the inner sink. Not calling it
    /// leaves a truncated ciphertext, which verification then rejects.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// What a keyless inspection of a ciphertext found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeaderInfo {
    pub format: Format,
    /// One line per recipient: age stanza types (`X25519`, `ssh-ed25519 <tag>`…)
    /// or OpenPGP key ids.
    pub recipients: Vec<String>,
    /// Length of the whole file in bytes.
    pub length: u64,
}

/// Encrypts archives to a fixed set of recipients.
pub trait Encryptor: Send + Sync {
    /// The format written (`Age` or `OpenPgp`; never armored).
    fn format(&self) -> Format;
    /// Human-readable recipient descriptions, for logs and manifests (public data).
    fn describe(&self) -> Vec<String>;
    /// The recipients as the archive's `.meta` names them (public data):
    /// age and ssh recipients as given, OpenPGP primary fingerprints with
    /// the encryption subkey ids. By default, [`Encryptor::describe`]'s
    /// lines under the format's family.
    fn meta_recipients(&self) -> Vec<crate::meta::Recipient> {
        self.describe()
            .into_iter()
            .map(|d| crate::meta::Recipient {
                kind: self.format().family().into(),
                id: d,
                subkey: None,
            })
            .collect()
    }
    /// Wraps `out` so that everything written is encrypted to the recipients.
    fn wrap_output(&self, out: Box<dyn Write + Send>) -> Result<Box<dyn EncryptWriter>>;
    /// Checks, without a key, that the file at `path` is a well-formed ciphertext
    /// of this format addressed to exactly this encryptor's recipients.
    fn verify_written(&self, path: &Path) -> Result<HeaderInfo>;
}

/// Decrypts a ciphertext stream with the identities the operator supplied.
pub trait Decryptor: Send + Sync {
    /// Returns a reader of the plaintext. Reading it to the end authenticates the
    /// whole stream; an authentication failure or truncation surfaces as an
    /// `io::Error` from `read`, which callers classify as an integrity failure.
    /// Failing to find a matching key is an [`crate::error::ErrorKind::Key`] error.
    fn decrypt(&self, format: Format, input: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>>;
}

/// Inspects a ciphertext without a key: parses the age header or the OpenPGP
/// packet sequence and reports the recipients.
pub fn inspect(path: &Path) -> Result<HeaderInfo> {
    let head = read_head(path)?;
    match Format::detect(&head) {
        Some(Format::Age) | Some(Format::AgeArmored) => age::inspect(path),
        Some(Format::OpenPgp) | Some(Format::OpenPgpArmored) => openpgp::inspect(path),
        Some(Format::Gzip) => Ok(HeaderInfo {
            format: Format::Gzip,
            recipients: vec![],
            length: std::fs::metadata(path).map(|m| m.len()).unwrap_or_default(),
        }),
        None => Err(crate::error::Error::integrity(format!(
            "{} is not an archive this tool knows: neither age, OpenPGP nor gzip",
            path.display()
        ))
        .hint("check that you named the archive file, not its .sha256 sidecar or another file")),
    }
}

/// Opens an input file that must be a regular file (symlinks to one are
/// fine): without blocking, so that a FIFO is refused at once instead of
/// hanging, and checked with `fstat` after `open`. Returns the file and its
/// metadata. `what` names the file in errors.
pub fn open_regular(path: &Path, what: &str) -> Result<(std::fs::File, std::fs::Metadata)> {
    use crate::error::{Error, IoContext};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .at(&format!("opening {what}"), path)?;
    let meta = f
        .metadata()
        .at(&format!("reading metadata of {what}"), path)?;
    if meta.is_file() {
        return Ok((f, meta));
    }
    let ft = meta.file_type();
    let kind = if ft.is_fifo() {
        "a named pipe"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Error::usage(format!(
        "{what} {} is {kind}, not a regular file",
        crate::text::Safe(path)
    ))
    .hint(format!("give the path of a regular file as the {what}")))
}

/// Reads a small input file (identity, passphrase, recipients) safely: opened
/// without blocking (a FIFO is refused at once instead of hanging), checked to
/// be a regular file after `open` (symlinks to one are fine), bounded to
/// `limit` bytes (`/dev/zero` or a 1 GB file is an error, not an allocation),
/// and read into a zeroizing buffer. `what` names the file in errors.
pub fn read_bounded(path: &Path, what: &str, limit: u64) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    use crate::error::{Error, IoContext};
    let (f, meta) = open_regular(path, what)?;
    let too_big = || {
        Error::usage(format!(
            "{what} {} is larger than {} MiB, too large to be one",
            crate::text::Safe(path),
            limit / (1024 * 1024)
        ))
        .hint(format!("check that you named the right file as the {what}"))
    };
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    // a file that grows while read is still bounded
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .at(&format!("reading {what}"), path)?;
    if buf.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(buf)
}

/// Warns when a secret file (identity, passphrase) is readable by group or
/// others: it is still used, as ssh does for its keys.
pub(crate) fn warn_if_exposed(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            crate::text::warn(format!(
                "{what} {} has mode {mode:04o}: others than its owner may read it; make it owner-only: chmod 600 {}",
                crate::text::Safe(path),
                crate::text::Safe(path)
            ));
        }
    }
}

/// Reads up to 64 bytes from the start of `path`.
pub fn read_head(path: &Path) -> Result<Vec<u8>> {
    use crate::error::IoContext;
    let mut f = std::fs::File::open(path).at("opening", path)?;
    let mut head = vec![0u8; 64];
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..]).at("reading", path)?;
        if k == 0 {
            break;
        }
        n += k;
    }
    head.truncate(n);
    Ok(head)
}
