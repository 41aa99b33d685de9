//! The OpenPGP [`Decryptor`]: the reading pipeline of an archive. The session
//! key is found by sequoia on the key packets and the start of the encrypted
//! data ([`super::session_key`] supplies the keys, passphrases or gpg-agent);
//! then our layout (binary SEIPDv1 over a literal packet, partial lengths) is
//! read by the streaming [`super::seipd_reader`], anything else (armored,
//! compressed, signed, another cipher) by sequoia's decryptor, bounded against
//! compression bombs. Errors are classified once: key (exit 4), integrity (3),
//! refused (5) or operational (1).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sequoia_openpgp as openpgp;

use openpgp::parse::stream::DecryptorBuilder;
use openpgp::parse::Parse;

use super::keys::{load_secret_keys, KeyFile};
use super::session_key::Helper;
use super::{seipd_reader, POLICY};
use crate::crypto::{Decryptor, Format, PassphraseSource};
use crate::error::{into_io, Error, Result, TAMPERED_HINT};

/// Plaintext held back by sequoia's decryptor (and the granularity of reads).
/// Measured: with 64 KiB, a message written with 4 MiB partial-body chunks
/// (ours) made sequoia's `finish_maybe` steal the whole rest of the literal
/// packet into memory (723 MB RSS for a 150 MB archive); with 4 MiB the peak
/// stays at ~86 MB for 150 MB and 450 MB archives alike.
const DECRYPT_BUFFER: usize = 4 * 1024 * 1024;

/// Decrypts with OpenPGP secret keys, or with gpg-agent when none is given.
pub struct PgpDecryptor {
    keys: Arc<Vec<KeyFile>>,
    pass: PassphraseSource,
    /// GnuPG home for the gpg-agent path; `None`: `$GNUPGHOME` or `~/.gnupg`.
    home: Option<PathBuf>,
}

impl PgpDecryptor {
    /// `keys`: secret key files (path, bytes). Empty → use gpg-agent for the
    /// archive's recipients found in the local GnuPG home.
    pub fn new(keys: &[(&Path, &[u8])], pass: PassphraseSource) -> Result<Self> {
        Self::with_home(keys, pass, None)
    }

    /// Like [`PgpDecryptor::new`], with an explicit GnuPG home for gpg-agent.
    pub(crate) fn with_home(
        keys: &[(&Path, &[u8])],
        pass: PassphraseSource,
        home: Option<PathBuf>,
    ) -> Result<Self> {
        Ok(PgpDecryptor {
            keys: Arc::new(load_secret_keys(keys)?),
            pass,
            home,
        })
    }
}

/// Makes the caller's reader `Sync` for sequoia (never contended: `get_mut`).
struct SyncReader(Mutex<Box<dyn Read + Send>>);

impl Read for SyncReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .read(buf)
    }
}

impl PgpDecryptor {
    fn helper(&self) -> Helper {
        Helper {
            keys: self.keys.clone(),
            pass: self.pass.clone(),
            home: self.home.clone(),
            known: None,
            capture: None,
        }
    }

    /// sequoia's stream decryptor over the whole message.
    fn with_sequoia(input: Box<dyn Read + Send>, helper: Helper) -> Result<Box<dyn Read + Send>> {
        // Armor is detected by the packet parser; never mmap (from_reader).
        let read = Arc::new(AtomicU64::new(0));
        let input: Box<dyn Read + Send> = Box::new(Counted {
            inner: input,
            count: read.clone(),
        });
        let builder = DecryptorBuilder::from_reader(SyncReader(Mutex::new(input)))
            .map_err(classify_error)?
            .buffer_size(DECRYPT_BUFFER);
        // Returns once the session key is found and the first plaintext is
        // buffered (or the whole message, if short, is authenticated).
        let dec = builder
            .with_policy(&POLICY, None, helper)
            .map_err(classify_error)?;
        Ok(Box::new(Latched {
            inner: Bounded {
                inner: dec,
                read,
                produced: 0,
            },
            failed: None,
        }))
    }
}

/// The most plaintext sequoia may produce per byte of message read: deflate's
/// own limit is about 1,032, so one zlib or zip packet over real data always
/// fits; nested compressed packets and bzip2 of zeros (×300,000 and more)
/// do not. See SECURITY.md, "Known limitations".
pub const MAX_EXPANSION: u64 = 1024;
/// Plaintext allowed beyond [`MAX_EXPANSION`] (sequoia reads ahead in blocks).
const EXPANSION_SLACK: u64 = 1024 * 1024;

/// Counts the bytes read from the message.
struct Counted {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Fails once the plaintext outgrows the message read by more than
/// [`MAX_EXPANSION`]: a compression bomb is refused (exit 5), not inflated.
struct Bounded<R: Read> {
    inner: R,
    read: Arc<AtomicU64>,
    produced: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        let read = self.read.load(Ordering::Relaxed);
        if self.produced
            > read
                .saturating_mul(MAX_EXPANSION)
                .saturating_add(EXPANSION_SLACK)
        {
            return Err(into_io(
                Error::refused(format!(
                    "the OpenPGP message expands more than {MAX_EXPANSION} times ({} bytes of plaintext from {read} bytes): a compression bomb",
                    self.produced
                ))
                .hint("nothing was changed; an archive made by this tool or by gpg from a .tar.gz never expands so much: use another archive"),
            ));
        }
        Ok(n)
    }
}

impl Decryptor for PgpDecryptor {
    fn decrypt(
        &self,
        _format: Format,
        mut input: Box<dyn Read + Send>,
    ) -> Result<Box<dyn Read + Send>> {
        let head = seipd_reader::read_head(&mut input).map_err(classify_io)?;
        let Some(layout) = head.layout.as_ref() else {
            // armored, or not the usual layout: all of it to sequoia
            let whole = Box::new(io::Cursor::new(head.bytes).chain(input));
            return Self::with_sequoia(whole, self.helper());
        };
        // sequoia finds the session key, on the key packets and the start of
        // the encrypted data only
        let captured = Arc::new(Mutex::new(None));
        let mut helper = self.helper();
        helper.capture = Some(captured.clone());
        let probe = head.for_session_key(layout);
        let attempt = DecryptorBuilder::from_bytes(&probe[..])
            .and_then(|b| b.with_policy(&POLICY, None, helper));
        let found = captured.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((algo, sk)) = found else {
            // no key fits (or the message is damaged): sequoia's error says why
            return Err(match attempt {
                Err(e) => classify_error(e),
                Ok(_) => Error::integrity("the OpenPGP message has no usable session key")
                    .hint(TAMPERED_HINT),
            });
        };
        drop(attempt);
        let body = &head.bytes[layout.body_at..];
        if seipd_reader::handles(algo, &sk, body) {
            let first = layout.first;
            let rest = Box::new(io::Cursor::new(body.to_vec()).chain(input));
            let reader =
                seipd_reader::SeipdReader::new(algo, &sk, first, rest).map_err(classify_io)?;
            #[cfg(test)]
            seipd_reader::USED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(Box::new(Latched {
                inner: reader,
                failed: None,
            }));
        }
        // compressed or signed inside, or another cipher: sequoia, with the
        // session key already found (no second passphrase prompt)
        let mut helper = self.helper();
        helper.known = Some((algo, sk));
        let whole = Box::new(io::Cursor::new(head.bytes).chain(input));
        Self::with_sequoia(whole, helper)
    }
}

/// Maps an error of sequoia's decryptor: ours (raised by the helper) keep their
/// kind; an OS-level read error is operational; anything else is a damaged or
/// tampered message.
fn classify_error(e: anyhow::Error) -> Error {
    let e = match e.downcast::<Error>() {
        Ok(ours) => return ours,
        Err(e) => e,
    };
    match e.downcast::<io::Error>() {
        Ok(io) => classify_io(io),
        Err(e) => Error::integrity(format!(
            "the OpenPGP message is malformed or damaged: {e:#}"
        ))
        .hint(TAMPERED_HINT),
    }
}

fn classify_io(io: io::Error) -> Error {
    if let Some(ours) = io.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        return ours.clone();
    }
    if io.raw_os_error().is_some() {
        Error::operational(format!("reading the archive: {io}"))
            .hint("check the file and the filesystem, then run again")
    } else {
        Error::integrity(format!(
            "the OpenPGP message failed authentication or is truncated: {io}"
        ))
        .hint(TAMPERED_HINT)
    }
}

/// A plaintext reader (sequoia's decryptor or ours) with its errors
/// classified and latched: sequoia panics if read again after an error.
struct Latched<R: Read> {
    inner: R,
    failed: Option<Error>,
}

impl<R: Read> Read for Latched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(into_io(e.clone()));
        }
        self.inner.read(buf).map_err(|e| {
            let err = classify_io(e);
            self.failed = Some(err.clone());
            into_io(err)
        })
    }
}
