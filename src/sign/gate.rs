//! The provenance gate every reader of an archive goes through (README.md,
//! "Signed archives"; SECURITY.md, "Signing").
//!
//! Whether provenance is checked is a [`Trust`]: trusted signers were given
//! (`--signers`, `SECURECLAW_BACKUP_SIGNERS`, `[signing] signers` in the
//! configuration file), or not. With signers, a reader of an archive
//! ([`crate::tier::ArchiveRef::check_provenance`]) first reads its `.sig`
//! (missing: refused, exit 5), checks that the key is a trusted signer, and
//! verifies the signature over every byte of the archive ([`Checked`]) —
//! all before a single byte is decrypted. The pass that then decrypts reads
//! the bytes again through a [`StreamGuard`], which checks the same
//! signature over exactly the bytes decrypted (so an archive replaced
//! between the two reads is refused too); the caller finishes the guard and
//! binds the provenance to the manifest ([`bind`]) before anything in the
//! target changes. Without signers, nothing is checked and the caller says
//! so once ([`UNCHECKED_NOTICE`]).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{Provenance, SigCheck, TrustedSigners, Verified};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::text::Safe;

/// The environment variable naming the trusted signers file.
pub const SIGNERS_ENV: &str = "SECURECLAW_BACKUP_SIGNERS";
/// The environment variable naming the signing key file.
pub const SIGNING_KEY_ENV: &str = "SECURECLAW_BACKUP_SIGNING_KEY";

/// The one-line notice of a run that did not check provenance (info level:
/// hidden by `-q`, like every other informational line).
pub const UNCHECKED_NOTICE: &str = "provenance not checked: no trusted signers configured (--signers FILE, SECURECLAW_BACKUP_SIGNERS or `signers` in the [signing] section of the configuration)";

/// Whether the archives a command reads must carry a valid signature by a
/// trusted signer.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// No signers configured: behaviour as without signing, plus a notice.
    #[default]
    Unchecked,
    /// Signers configured (even an emptied file: it then refuses everything).
    Signers(Arc<TrustedSigners>),
}

impl Trust {
    /// Loads the signers file `path` when one is configured.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            None => Ok(Trust::Unchecked),
            Some(p) => Ok(Trust::Signers(Arc::new(TrustedSigners::load(&[
                p.to_owned()
            ])?))),
        }
    }

    /// The trusted signers, when configured.
    pub fn signers(&self) -> Option<&TrustedSigners> {
        match self {
            Trust::Unchecked => None,
            Trust::Signers(s) => Some(s),
        }
    }

    pub fn is_checked(&self) -> bool {
        matches!(self, Trust::Signers(_))
    }

    /// The signers files, for reports.
    pub fn files(&self) -> Vec<PathBuf> {
        self.signers().map(|s| s.files.clone()).unwrap_or_default()
    }
}

/// An archive whose signature was verified over all its bytes, before any
/// of them was decrypted.
#[derive(Debug, Clone)]
pub struct Checked {
    pub provenance: Provenance,
    /// SHA-256 and length of the bytes the signature covers.
    pub sha256: String,
    pub bytes: u64,
    label: PathBuf,
    sig: Vec<u8>,
    signers: Arc<TrustedSigners>,
    now: DateTime<Utc>,
}

impl Checked {
    /// Verifies the signature `sig` of the archive named `label` against
    /// `signers` over all of `reader` (trust is checked before the first
    /// byte is read).
    pub fn verify(
        label: &Path,
        sig: Vec<u8>,
        signers: Arc<TrustedSigners>,
        now: DateTime<Utc>,
        reader: &mut dyn Read,
    ) -> Result<Checked> {
        let check = SigCheck::new(label, &sig, &signers, now)?;
        let Verified {
            provenance,
            sha256,
            bytes,
        } = super::verify_stream(label, check, reader)?;
        Ok(Checked {
            provenance,
            sha256,
            bytes,
            label: label.to_owned(),
            sig,
            signers,
            now,
        })
    }

    /// `inner` (the archive read again, for decryption) through a check of
    /// the same signature: the guard says whether the bytes read were the
    /// ones verified.
    pub fn guard(
        &self,
        inner: Box<dyn Read + Send>,
    ) -> Result<(Box<dyn Read + Send>, StreamGuard)> {
        let check = SigCheck::new(&self.label, &self.sig, &self.signers, self.now)?;
        Ok(guarded(inner, check))
    }
}

struct GuardState {
    inner: Box<dyn Read + Send>,
    check: Option<SigCheck>,
    outcome: Option<std::result::Result<Provenance, Error>>,
}

impl GuardState {
    /// Checks the signature over what was fed (once).
    fn conclude(&mut self) -> std::result::Result<Provenance, Error> {
        if let Some(check) = self.check.take() {
            self.outcome = Some(check.finish());
        }
        match &self.outcome {
            Some(r) => r.clone(),
            None => Err(Error::integrity("the signature check was not run")),
        }
    }
}

/// The reading half of [`guarded`]: passes `inner` on, feeding the check;
/// at the end of the stream it checks the signature and turns a mismatch
/// into a read error, so a consumer that reads to the end fails there.
struct GuardReader(Arc<Mutex<GuardState>>);

impl Read for GuardReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = st.inner.read(buf)?;
        if n == 0 {
            return match st.conclude() {
                Ok(_) => Ok(0),
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.message)),
            };
        }
        if let Some(c) = st.check.as_mut() {
            c.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The checking half of [`guarded`], kept by the caller.
pub struct StreamGuard(Arc<Mutex<GuardState>>);

impl StreamGuard {
    /// Reads what the consumer left of the stream (so every byte is
    /// covered), then checks the signature: the provenance of exactly the
    /// bytes that were read. Call it before anything is committed.
    pub fn finish(self) -> Result<Provenance> {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if st.check.is_some() {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match st.inner.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Some(c) = st.check.as_mut() {
                            c.update(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::operational(format!(
                            "reading the archive to its end for the signature check: {e}"
                        )))
                    }
                }
            }
        }
        st.conclude()
    }
}

/// Splits a stream into a reader that feeds `check` and the guard that
/// finishes it.
pub fn guarded(
    inner: Box<dyn Read + Send>,
    check: SigCheck,
) -> (Box<dyn Read + Send>, StreamGuard) {
    let st = Arc::new(Mutex::new(GuardState {
        inner,
        check: Some(check),
        outcome: None,
    }));
    (Box::new(GuardReader(st.clone())), StreamGuard(st))
}

/// Binds a verified provenance to the manifest read from the signed bytes
/// ([`super::check_binding`]); an archive without a manifest cannot be
/// bound and is refused (exit 5).
pub fn bind(archive: &Path, provenance: &Provenance, manifest: Option<&Manifest>) -> Result<()> {
    match manifest {
        Some(m) => super::check_binding(archive, provenance, m),
        None => Err(Error::refused(format!(
            "{} has no manifest.json, so its signed host, type and time cannot be checked against its name",
            Safe(archive)
        ))
        .hint("nothing was changed; archives made by this tool carry a manifest: this one was made by other means")),
    }
}

/// The signature state of one archive, as `list` and `status` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SigState {
    /// No `.sig` beside it.
    Unsigned,
    /// A `.sig` is there; not checked (no signers configured, or not read).
    /// `signer`: the key it names (SSH signatures carry it; not trusted).
    Present { signer: Option<String> },
    /// Verified over all its bytes by a trusted signer.
    Valid {
        fingerprint: String,
        principals: String,
    },
    /// A `.sig` that is refused: untrusted key, expired, does not match…
    Invalid { reason: String },
}

impl SigState {
    /// Whether a run with signers configured would accept it.
    pub fn is_valid(&self) -> bool {
        matches!(self, SigState::Valid { .. })
    }
    /// The word `list` shows.
    pub fn word(&self) -> String {
        match self {
            SigState::Unsigned => "unsigned".into(),
            SigState::Present { signer: Some(s) } => format!("signed by {s} (unchecked)"),
            SigState::Present { signer: None } => "signed (unchecked)".into(),
            SigState::Valid { principals, .. } => format!("valid ({principals})"),
            SigState::Invalid { .. } => "INVALID".into(),
        }
    }
}

impl From<&Result<Provenance>> for SigState {
    fn from(r: &Result<Provenance>) -> Self {
        match r {
            Ok(p) => SigState::Valid {
                fingerprint: p.fingerprint.clone(),
                principals: p.principals_text(),
            },
            Err(e) => SigState::Invalid {
                reason: e.message.clone(),
            },
        }
    }
}

/// Whether `key` is a trusted signer now: a signature it makes (over
/// nothing) is checked against `signers` like an archive's. The provenance
/// says which hosts it may sign for. Refused (exit 5) when it is not
/// trusted: what it signed would be refused by every reader.
pub fn probe(
    key: &super::SigningKey,
    signers: &TrustedSigners,
    now: DateTime<Utc>,
) -> Result<Provenance> {
    let sig = key.hasher()?.finish()?;
    let label = key.path().to_owned();
    SigCheck::new(&label, sig.armored.as_bytes(), signers, now)
        .and_then(|c| c.finish())
        .map_err(|e| {
            Error::refused(format!(
                "the signing key {} ({}) is not a trusted signer: {}",
                Safe(key.path()),
                key.fingerprint(),
                e.message
            ))
            .hint("what it signs would be refused: add its line (secureclaw-backup keygen signing prints it) to the signers file, or sign with a trusted key")
        })
}

/// Writes `<archive>.sig`, replacing an older one atomically (0600, fsync,
/// rename, directory fsync): `rotate` re-signs an archive it re-encrypted.
pub fn replace_sig(archive: &Path, armored: &str) -> Result<PathBuf> {
    let p = super::sig_path(archive);
    crate::store::write_replace(&p, armored.as_bytes(), 0o600)?;
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::store::fsync_dir(dir)?;
    }
    Ok(p)
}

/// The key an SSH signature names (`SHA256:…`), untrusted: what `list`
/// shows without signers. `None` for an OpenPGP signature or garbage.
pub fn claimed_signer(sig: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(sig).ok()?;
    let sig = ssh_key::SshSig::from_pem(text.trim()).ok()?;
    Some(super::ssh::fingerprint(sig.public_key()))
}

/// The signature state of entry `name` of `store` (listed as `signed` or
/// not): without signers only whether there is a `.sig` (and the key it
/// names); with signers, verified over the whole archive.
pub fn entry_state(
    store: &dyn crate::store::Store,
    name: &str,
    signed: bool,
    trust: &Trust,
    now: DateTime<Utc>,
) -> SigState {
    if !signed {
        return SigState::Unsigned;
    }
    if trust.is_checked() {
        let r =
            crate::tier::reference::check_provenance_entry(store, name, trust, now).and_then(|c| {
                c.ok_or_else(|| Error::integrity("no signers to check against"))
                    .map(|c| c.provenance)
            });
        return SigState::from(&r);
    }
    let sig_name = format!("{name}{}", super::SIG_SUFFIX);
    SigState::Present {
        signer: store
            .read_small(&sig_name)
            .ok()
            .flatten()
            .and_then(|b| claimed_signer(&b)),
    }
}
