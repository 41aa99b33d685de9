//! Signed archives: who made an archive, checkable by anyone with stock tools
//! (README.md, "Signed archives"; SECURITY.md, "Signing").
//!
//! This module owns:
//!
//! - the **signing key** on the backup host ([`SigningKey`]): an Ed25519
//!   OpenSSH private key (as `keygen signing` makes, or `ssh-keygen -t
//!   ed25519`), or a signing-capable OpenPGP secret key; plain or passphrase
//!   protected, read like an identity file, secret bytes zeroized;
//! - **signing while the ciphertext streams** ([`SigningKey::writer`],
//!   [`SignHasher`]): every byte written to the archive is hashed on its way
//!   (SHA-512), and the signature is made from the digest at the end, so the
//!   archive is never read a second time. The result is an SSH signature
//!   (`ssh-keygen -Y sign` format, namespace [`NAMESPACE`]) or a detached,
//!   armored OpenPGP signature (`gpg --verify` reads it), written by
//!   [`write_sig`] to `<archive>.sig`, owner-only, never replacing one;
//! - **verification** against the trusted signers ([`TrustedSigners`]: an
//!   OpenSSH `allowed_signers` file, see [`allowed`], and/or OpenPGP
//!   certificates) in one pass over the archive ([`SigCheck`], a hasher the
//!   caller feeds, e.g. together with the sidecar's SHA-256: [`verify_file`]),
//!   giving the [`Provenance`] (the signer's fingerprint and the principals it
//!   is trusted for);
//! - the **binding** of that provenance to the archive ([`check_binding`]):
//!   the host, type and time in the (signed, encrypted) manifest must match
//!   the signer's principals and the archive's file name, so a renamed old
//!   archive or another host's archive is refused.
//!
//! Exit codes: a missing, untrusted, expired or wrong-namespace signature and a
//! binding mismatch are refused for safety (5); a signature that does not
//! match the bytes is an integrity failure (3); a signature or signers file
//! that does not parse is a usage error (2); a signing key problem is 4.

pub mod allowed;
pub mod gate;
mod pgp;
pub mod ssh;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::crypto::PassphraseSource;
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::manifest::Manifest;
use crate::text::Safe;

pub use allowed::AllowedSigners;
pub use gate::{Checked, SigState, StreamGuard, Trust};

/// The SSH signature namespace of archives (`ssh-keygen -n`).
pub const NAMESPACE: &str = "secureclaw-backup";

/// The suffix of an archive's signature file: `<archive>.sig`.
pub const SIG_SUFFIX: &str = ".sig";

/// The largest signing key or `.sig` file read.
pub const MAX_KEY_FILE: u64 = 4 * 1024 * 1024;
pub const MAX_SIG_FILE: u64 = 1024 * 1024;

/// Which kind of signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// OpenSSH SSHSIG (`ssh-keygen -Y sign`).
    Ssh,
    /// Detached OpenPGP signature (`gpg --detach-sign --armor`).
    OpenPgp,
}

/// `<archive>.sig`.
pub fn sig_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(SIG_SUFFIX);
    PathBuf::from(s)
}

// ---------------------------------------------------------------------------
// Signing

enum KeyInner {
    Ssh(ssh_key::PrivateKey),
    Pgp(pgp::PgpSigningKey),
}

/// A loaded signing key. Cheap to clone (shared); the secret is wiped when
/// the last clone is dropped.
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<KeyInner>,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .field("scheme", &self.scheme())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// The message for a key file this tool cannot sign with.
fn not_a_signing_key(path: &Path, why: &str) -> Error {
    Error::key(format!("signing key {}: {why}", Safe(path))).hint(
        "give an Ed25519 OpenSSH private key (secureclaw-backup keygen signing, or ssh-keygen -t ed25519) or an OpenPGP secret key with a signing-capable key",
    )
}

impl SigningKey {
    /// Reads a signing key file: an OpenSSH private key (Ed25519) or an
    /// OpenPGP secret key. A passphrase-protected key asks `pass` (terminal or
    /// passphrase file). A file that group or others can read is used with a
    /// warning, like an identity file. Errors name the file, never its
    /// contents.
    pub fn from_file(path: &Path, pass: &PassphraseSource, events: &dyn Events) -> Result<Self> {
        let data: Zeroizing<Vec<u8>> =
            crate::crypto::read_bounded(path, "signing key", MAX_KEY_FILE)?;
        warn_if_exposed(path, events);
        let inner = if data
            .windows(b"-----BEGIN OPENSSH PRIVATE KEY-----".len())
            .take(64)
            .any(|w| w == b"-----BEGIN OPENSSH PRIVATE KEY-----")
        {
            KeyInner::Ssh(load_ssh(path, &data, pass)?)
        } else if crate::crypto::openpgp::is_secret_key_start(&data) {
            KeyInner::Pgp(pgp::PgpSigningKey::load(path, &data, pass)?)
        } else if data.starts_with(b"ssh-") || data.starts_with(b"ecdsa-") {
            return Err(not_a_signing_key(
                path,
                "this is a public key; the signing key is the file without .pub",
            ));
        } else {
            return Err(not_a_signing_key(
                path,
                "not an OpenSSH private key or an OpenPGP secret key",
            ));
        };
        Ok(SigningKey {
            inner: Arc::new(inner),
            path: path.to_owned(),
        })
    }

    /// A signing key from an Ed25519 OpenSSH key already in memory
    /// (`keygen signing`, tests). `path` names it in messages.
    pub fn from_ssh(key: ssh_key::PrivateKey, path: &Path) -> Result<Self> {
        if key.algorithm() != ssh_key::Algorithm::Ed25519 {
            return Err(not_a_signing_key(
                path,
                &format!("{} keys are not supported", key.algorithm()),
            ));
        }
        Ok(SigningKey {
            inner: Arc::new(KeyInner::Ssh(key)),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn scheme(&self) -> Scheme {
        match &*self.inner {
            KeyInner::Ssh(_) => Scheme::Ssh,
            KeyInner::Pgp(_) => Scheme::OpenPgp,
        }
    }

    /// `SHA256:…` (SSH, as `ssh-keygen -l`) or the OpenPGP fingerprint of the
    /// signing (sub)key, upper-case hex.
    pub fn fingerprint(&self) -> String {
        match &*self.inner {
            KeyInner::Ssh(k) => ssh::fingerprint(k.public_key().key_data()),
            KeyInner::Pgp(k) => k.fingerprint(),
        }
    }

    /// The public key line (`ssh-ed25519 AAAA…`) for `allowed_signers`; for an
    /// OpenPGP key, the certificate's fingerprint.
    pub fn public_line(&self) -> String {
        match &*self.inner {
            KeyInner::Ssh(k) => {
                let mut p = k.public_key().clone();
                p.set_comment("");
                p.to_openssh().unwrap_or_default().trim_end().to_owned()
            }
            KeyInner::Pgp(k) => k.cert_fingerprint(),
        }
    }

    /// A hasher for one message; feed it every byte, then
    /// [`SignHasher::finish`].
    pub fn hasher(&self) -> Result<SignHasher> {
        let state = match &*self.inner {
            KeyInner::Ssh(_) => HashState::Ssh(Box::new(ssh::MessageHash::new(ssh::HASH_ALG))),
            KeyInner::Pgp(k) => HashState::Pgp(k.hash_context()?),
        };
        Ok(SignHasher {
            key: self.clone(),
            state,
            bytes: 0,
        })
    }

    /// A pass-through writer that hashes every byte `inner` accepts.
    pub fn writer<W: Write>(&self, inner: W) -> Result<SigningWriter<W>> {
        Ok(SigningWriter {
            inner,
            hasher: self.hasher()?,
        })
    }
}

fn warn_if_exposed(path: &Path, events: &dyn Events) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            events.warn(format!(
                "signing key {} has mode {mode:04o}: others than its owner may read it; make it owner-only: chmod 600 {}",
                Safe(path),
                Safe(path)
            ));
        }
    }
}

fn load_ssh(path: &Path, data: &[u8], pass: &PassphraseSource) -> Result<ssh_key::PrivateKey> {
    let key = ssh_key::PrivateKey::from_openssh(data).map_err(|e| {
        not_a_signing_key(
            path,
            &format!("the OpenSSH private key does not parse ({e})"),
        )
    })?;
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(not_a_signing_key(
            path,
            &format!("{} keys are not supported, only Ed25519", key.algorithm()),
        ));
    }
    if !key.is_encrypted() {
        return Ok(key);
    }
    let tries = pass.tries();
    for left in (0..tries).rev() {
        let p = pass.get(&format!("signing key {}", Safe(path)))?;
        match key.decrypt(secrecy::ExposeSecret::expose_secret(&p).as_bytes()) {
            Ok(k) => return Ok(k),
            Err(ssh_key::Error::Crypto) => pass.wrong_try(left),
            Err(e) => {
                return Err(not_a_signing_key(
                    path,
                    &format!("the key cannot be decrypted ({e})"),
                ))
            }
        }
    }
    Err(
        Error::key(format!("wrong passphrase for signing key {}", Safe(path))).hint(
            "give the passphrase of this key (terminal, --passphrase-file or SECURECLAW_BACKUP_PASSPHRASE_FILE)",
        ),
    )
}

enum HashState {
    Ssh(Box<ssh::MessageHash>),
    Pgp(pgp::HashContext),
}

/// The running hash of one message to be signed.
pub struct SignHasher {
    key: SigningKey,
    state: HashState,
    bytes: u64,
}

impl SignHasher {
    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        match &mut self.state {
            HashState::Ssh(h) => h.update(data),
            HashState::Pgp(h) => h.update(data),
        }
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Signs what was hashed.
    pub fn finish(self) -> Result<ArchiveSignature> {
        let fingerprint = self.key.fingerprint();
        let (scheme, armored) = match (&*self.key.inner, self.state) {
            (KeyInner::Ssh(k), HashState::Ssh(h)) => (Scheme::Ssh, ssh::sign(k, NAMESPACE, *h)?),
            (KeyInner::Pgp(k), HashState::Pgp(h)) => (Scheme::OpenPgp, k.sign(h)?),
            _ => {
                return Err(Error::operational("signing state does not fit the key")
                    .hint("this is a bug in secureclaw-backup; please report it"))
            }
        };
        Ok(ArchiveSignature {
            scheme,
            armored,
            fingerprint,
            bytes: self.bytes,
        })
    }
}

/// A `Write` pass-through that hashes what it writes (see [`SigningKey::writer`]).
pub struct SigningWriter<W: Write> {
    inner: W,
    hasher: SignHasher,
}

impl<W: Write> SigningWriter<W> {
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    /// Flushes `inner`, signs every byte written and gives `inner` back.
    pub fn finish(mut self) -> Result<(W, ArchiveSignature)> {
        self.inner
            .flush()
            .map_err(|e| Error::operational(format!("flushing the signed archive: {e}")))?;
        let sig = self.hasher.finish()?;
        Ok((self.inner, sig))
    }
}

impl<W: Write> Write for SigningWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A finished signature of one archive.
#[derive(Debug, Clone)]
pub struct ArchiveSignature {
    pub scheme: Scheme,
    /// The `.sig` file's content (armored, ends with a newline).
    pub armored: String,
    /// The signing key's fingerprint.
    pub fingerprint: String,
    /// How many bytes were signed.
    pub bytes: u64,
}

/// Writes `<archive>.sig` (mode 0600 from the first byte: temp file, fsync,
/// no-replace rename, directory fsync). An existing `.sig` is never replaced
/// (exit 1).
pub fn write_sig(archive: &Path, sig: &ArchiveSignature) -> Result<PathBuf> {
    let dir = match archive.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dest = sig_path(archive);
    let tmp = crate::store::temp_name(dir, "sig");
    let res = (|| {
        let mut f = crate::store::create_private(&tmp)?;
        f.write_all(sig.armored.as_bytes()).at("writing", &tmp)?;
        f.sync_all().at("syncing", &tmp)?;
        drop(f);
        crate::store::rename_noreplace(&tmp, &dest).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::operational(format!("{} already exists", Safe(&dest))).hint(
                    "refusing to replace a signature: move the old .sig away if it belongs to another archive",
                )
            } else {
                Error::io("renaming the signature into place", &dest, e)
            }
        })?;
        crate::store::fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|_| dest)
}

/// Random bytes for `ssh-key` (key seeds, the salt of an encrypted key):
/// read from getrandom(2) up front, so that a failure is an error and not a
/// panic inside the crate. Holds enough for one key; should more be asked, it
/// continues with a SHA-512 chain over what it read.
pub struct OsRandom {
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl OsRandom {
    pub fn new() -> Result<Self> {
        let mut buf = Zeroizing::new(vec![0u8; 256]);
        let mut filled = 0;
        while filled < buf.len() {
            match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())
            {
                Ok(n) => filled += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(Error::operational(format!(
                        "the system's random number generator failed: {e}"
                    ))
                    .hint("check that the kernel provides getrandom(2), then run again"))
                }
            }
        }
        Ok(OsRandom { buf, pos: 0 })
    }

    /// A seed of `N` random bytes (zeroized when dropped).
    pub fn seed<const N: usize>(&mut self) -> Zeroizing<[u8; N]> {
        let mut out = Zeroizing::new([0u8; N]);
        ssh_key::rand_core::RngCore::fill_bytes(self, &mut out[..]);
        out
    }
}

impl ssh_key::rand_core::RngCore for OsRandom {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            if self.pos == self.buf.len() {
                let next = sha2::Sha512::digest(&self.buf[..]);
                self.buf = Zeroizing::new(next.to_vec());
                self.pos = 0;
            }
            *b = self.buf[self.pos];
            self.pos += 1;
        }
    }
    fn try_fill_bytes(
        &mut self,
        dest: &mut [u8],
    ) -> std::result::Result<(), ssh_key::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl ssh_key::rand_core::CryptoRng for OsRandom {}

// ---------------------------------------------------------------------------
// Verification

/// The signers an operator trusts: `allowed_signers` files and OpenPGP
/// certificates (each file is recognised by its content).
#[derive(Debug, Clone, Default)]
pub struct TrustedSigners {
    pub ssh: Vec<AllowedSigners>,
    pgp: Vec<pgp::TrustedCert>,
    /// The files, for messages.
    pub files: Vec<PathBuf>,
}

impl TrustedSigners {
    /// Loads each file: an OpenPGP certificate or keyring (armored or binary),
    /// else an OpenSSH `allowed_signers` file.
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let mut t = TrustedSigners::default();
        for path in paths {
            let data =
                crate::crypto::read_bounded(path, "signers file", allowed::MAX_SIGNERS_FILE)?;
            if pgp::looks_like_certs(&data) {
                t.pgp.extend(pgp::TrustedCert::load(path, &data)?);
            } else {
                let text = std::str::from_utf8(&data).map_err(|_| {
                    Error::usage(format!(
                        "signers file {} is neither an allowed_signers file nor OpenPGP certificates",
                        Safe(path)
                    ))
                    .hint("give an OpenSSH allowed_signers file (see ssh-keygen(1), ALLOWED SIGNERS) or OpenPGP certificates")
                })?;
                t.ssh.push(AllowedSigners::parse(text, path)?);
            }
            t.files.push(path.clone());
        }
        Ok(t)
    }

    /// Trusted signers from an already parsed `allowed_signers`.
    pub fn from_allowed(a: AllowedSigners) -> Self {
        TrustedSigners {
            files: vec![a.path.clone()],
            ssh: vec![a],
            pgp: vec![],
        }
    }

    /// Whether no key at all is trusted (every line removed). Such a set still
    /// counts as configured: it refuses every archive. Whether signers are
    /// configured is decided by whether a signers file was given, never by
    /// this (an emptied file must not turn checking off).
    pub fn trusts_nobody(&self) -> bool {
        self.ssh.iter().all(|a| a.lines.is_empty()) && self.pgp.is_empty()
    }

    fn describe(&self) -> String {
        self.files
            .iter()
            .map(|p| Safe(p).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Who signed an archive, as the trusted signers say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    pub scheme: Scheme,
    /// `SHA256:…` (SSH) or the OpenPGP signing key's fingerprint.
    pub fingerprint: String,
    /// The principals the key is trusted for (patterns as written, one list
    /// per usable `allowed_signers` line; for OpenPGP, the certificate's user
    /// ID names).
    pub principals: Vec<Vec<String>>,
    /// The (first) signers file that trusts it; `principals` holds the usable
    /// lines of every file given.
    pub signers_file: PathBuf,
}

impl Provenance {
    /// Whether the key is trusted to sign for `host` (OpenSSH pattern lists,
    /// `!` negation per line; exact names for OpenPGP).
    pub fn trusts_host(&self, host: &str) -> bool {
        self.principals
            .iter()
            .any(|list| allowed::match_pattern_list(host, list))
    }

    /// The principals, flattened for display (`web-1,*.example`).
    pub fn principals_text(&self) -> String {
        self.principals
            .iter()
            .map(|l| l.join(","))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

enum CheckState {
    Ssh {
        sig: Box<ssh_key::SshSig>,
        hash: Box<ssh::MessageHash>,
    },
    Pgp(Box<pgp::PgpCheck>),
}

/// The verification of one archive's signature, fed with the archive's bytes
/// (once; combine it with other hashes, see [`verify_file`]). Built from the
/// `.sig` *before* the archive is read: an untrusted key is refused at once.
pub struct SigCheck {
    archive: PathBuf,
    state: CheckState,
    provenance: Provenance,
}

/// The hint for every refusal of a signature.
const REFUSED_SIG_HINT: &str = "nothing was read or changed; use an archive signed by a trusted signer, or fix the trusted signers (--signers): add the backup host's key line from `secureclaw-backup keygen signing`";

impl SigCheck {
    /// Parses the signature `sig` of `archive` (named in messages) and finds
    /// its key among `signers`, usable at `now` (normally `Utc::now()`, as
    /// `ssh-keygen -Y verify` checks `valid-after`/`valid-before`).
    pub fn new(
        archive: &Path,
        sig: &[u8],
        signers: &TrustedSigners,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let text = std::str::from_utf8(sig).unwrap_or("");
        if text.contains("-----BEGIN SSH SIGNATURE-----") {
            Self::new_ssh(archive, text, signers, now)
        } else if pgp::looks_like_signature(sig) {
            let (check, provenance) =
                pgp::PgpCheck::new(archive, sig, &signers.pgp, now, || signers.describe())?;
            Ok(SigCheck {
                archive: archive.to_owned(),
                state: CheckState::Pgp(Box::new(check)),
                provenance,
            })
        } else {
            Err(Error::integrity(format!(
                "{} is not an SSH or OpenPGP signature",
                Safe(sig_path(archive))
            ))
            .hint("the signature file is damaged or was replaced; use an intact copy of the archive and its .sig"))
        }
    }

    fn new_ssh(
        archive: &Path,
        text: &str,
        signers: &TrustedSigners,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let sigfile = sig_path(archive);
        let sig = ssh_key::SshSig::from_pem(text.trim()).map_err(|e| {
            Error::integrity(format!(
                "the SSH signature {} does not parse ({e})",
                Safe(&sigfile)
            ))
            .hint("the signature file is damaged or was replaced; use an intact copy of the archive and its .sig")
        })?;
        let fpr = ssh::fingerprint(sig.public_key());
        if sig.namespace() != NAMESPACE {
            return Err(Error::refused(format!(
                "{} is signed for namespace {:?}, not {NAMESPACE:?}: it was not made as a backup signature",
                Safe(&sigfile),
                crate::text::cut(sig.namespace(), 40)
            ))
            .hint(REFUSED_SIG_HINT));
        }
        let mut reasons = Vec::new();
        let mut found: Option<Provenance> = None;
        for file in &signers.ssh {
            for line in file.for_key(sig.public_key()) {
                match line.usable(NAMESPACE, now) {
                    Ok(()) => {
                        let p = found.get_or_insert_with(|| Provenance {
                            scheme: Scheme::Ssh,
                            fingerprint: fpr.clone(),
                            principals: vec![],
                            signers_file: file.path.clone(),
                        });
                        p.principals.push(line.principals.clone());
                    }
                    Err(r) => reasons.push(format!(
                        "{} line {}: {}",
                        Safe(&file.path),
                        line.line,
                        match r {
                            allowed::LineRefusal::Namespace =>
                                format!("its namespaces do not include {NAMESPACE}"),
                            allowed::LineRefusal::NotYetValid(t) =>
                                format!("valid only after {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
                            allowed::LineRefusal::Expired(t) => format!(
                                "expired (valid-before {})",
                                t.format("%Y-%m-%d %H:%M:%S UTC")
                            ),
                        }
                    )),
                }
            }
        }
        let Some(provenance) = found else {
            let msg = if reasons.is_empty() {
                format!(
                    "{} is signed by key {fpr}, which is not a trusted signer (not in {})",
                    Safe(archive),
                    signers.describe()
                )
            } else {
                format!(
                    "{} is signed by key {fpr}, which is not trusted now: {}",
                    Safe(archive),
                    reasons.join("; ")
                )
            };
            return Err(Error::refused(msg).hint(REFUSED_SIG_HINT));
        };
        Ok(SigCheck {
            archive: archive.to_owned(),
            state: CheckState::Ssh {
                hash: Box::new(ssh::MessageHash::new(sig.hash_alg())),
                sig: Box::new(sig),
            },
            provenance,
        })
    }

    /// Feeds the next bytes of the archive.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            CheckState::Ssh { hash, .. } => hash.update(data),
            CheckState::Pgp(c) => c.update(data),
        }
    }

    /// Who would have signed it (known before the bytes are checked).
    pub fn claimed(&self) -> &Provenance {
        &self.provenance
    }

    /// Checks the signature over every byte fed.
    pub fn finish(self) -> Result<Provenance> {
        let ok = match self.state {
            CheckState::Ssh { sig, hash } => ssh::verify(&sig, &(*hash).finish()),
            CheckState::Pgp(c) => c.finish(),
        };
        ok.map_err(|why| {
            Error::integrity(format!(
                "the signature {} does not match {} ({why}): the archive was changed after it was signed, or the .sig belongs to another archive",
                Safe(sig_path(&self.archive)),
                Safe(&self.archive)
            ))
            .hint(crate::error::TAMPERED_HINT)
        })?;
        Ok(self.provenance)
    }
}

impl Write for SigCheck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `<archive>.sig`; a missing one is refused (exit 5) with the archive
/// named.
pub fn read_sig(archive: &Path) -> Result<Vec<u8>> {
    let p = sig_path(archive);
    match std::fs::symlink_metadata(&p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::refused(format!(
                "{} has no signature ({} is missing), and trusted signers are configured",
                Safe(archive),
                Safe(&p)
            ))
            .hint("nothing was read or changed; copy the .sig along with the archive, or use a signed archive (backup --sign-key)"))
        }
        _ => {}
    }
    Ok(crate::crypto::read_bounded(&p, "signature file", MAX_SIG_FILE)?.to_vec())
}

/// The result of [`verify_file`].
#[derive(Debug, Clone)]
pub struct Verified {
    pub provenance: Provenance,
    /// SHA-256 of the archive, hex (for the sidecar check), from the same pass.
    pub sha256: String,
    pub bytes: u64,
}

/// Verifies `<archive>.sig` against `signers` in one read of the archive,
/// computing its SHA-256 on the way.
pub fn verify_file(
    archive: &Path,
    signers: &TrustedSigners,
    now: DateTime<Utc>,
) -> Result<Verified> {
    let sig = read_sig(archive)?;
    let check = SigCheck::new(archive, &sig, signers, now)?;
    let mut f = std::fs::File::open(archive).at("opening", archive)?;
    verify_stream(archive, check, &mut f)
}

/// Feeds all of `reader` (an archive's bytes, from a file or a stored
/// object named `label`) to `check` and to a SHA-256, then checks the
/// signature.
pub fn verify_stream(label: &Path, mut check: SigCheck, reader: &mut dyn Read) -> Result<Verified> {
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", label, e)),
        };
        sha.update(&buf[..n]);
        check.update(&buf[..n]);
        bytes += n as u64;
    }
    let provenance = check.finish()?;
    Ok(Verified {
        provenance,
        sha256: hex::encode(sha.finalize()),
        bytes,
    })
}

/// A reader that feeds every byte it passes on to a [`SigCheck`], for a
/// caller that reads the archive anyway (decryption into a staging area that
/// is committed only after [`CheckingReader::finish`] succeeded).
pub struct CheckingReader<R: Read> {
    inner: R,
    check: SigCheck,
}

impl<R: Read> CheckingReader<R> {
    pub fn new(inner: R, check: SigCheck) -> Self {
        CheckingReader { inner, check }
    }
    /// Who would have signed it (known before the bytes are checked).
    pub fn claimed(&self) -> &Provenance {
        self.check.claimed()
    }
    /// Reads what is left of `inner` (so the whole archive is covered even
    /// when the consumer stopped early), then checks the signature.
    pub fn finish(mut self) -> Result<Provenance> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.check.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::operational(format!(
                        "reading {} to its end for the signature check: {e}",
                        Safe(&self.check.archive)
                    )))
                }
            }
        }
        self.check.finish()
    }
}

impl<R: Read> Read for CheckingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.check.update(&buf[..n]);
        Ok(n)
    }
}

/// Binds a verified signature to what the archive says it is: the host in
/// its manifest must be one the signer is trusted for, and the type and time
/// in the manifest must be those of the file name (a renamed old archive, or
/// one restored under another host's name, is refused: exit 5). `archive` is
/// the archive's path or object name (its last component is parsed).
pub fn check_binding(archive: &Path, provenance: &Provenance, manifest: &Manifest) -> Result<()> {
    let file_name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let original = format!("{}_{}", manifest.backup_type, manifest.timestamp);
    if !provenance.trusts_host(&manifest.host) {
        return Err(Error::refused(format!(
            "{} was made on host {:?} but is signed by key {}, which {} trusts only for {}",
            Safe(archive),
            crate::text::cut(&manifest.host, 80),
            provenance.fingerprint,
            Safe(&provenance.signers_file),
            crate::text::cut(&provenance.principals_text(), 200)
        ))
        .hint("nothing was changed; this archive was signed by another host's key. Restore an archive signed by its own host, or, if that key is right for this host, add the host to its principals in the signers file"));
    }
    let Some(name) = crate::store::parse_name(&file_name, false) else {
        return Err(Error::refused(format!(
            "{} does not have an archive name, so its signed type and time ({original}) cannot be checked against it",
            Safe(archive)
        ))
        .hint(format!("nothing was changed; give the archive its original name, {original}<suffix> (e.g. {original}.tar.gz.age), and its .sig the same name plus .sig")));
    };
    let name_time = name.time.format("%Y%m%d_%H%M%S").to_string();
    if name.btype.as_str() != manifest.backup_type || name_time != manifest.timestamp {
        return Err(Error::refused(format!(
            "{} is named as a {} archive of {}, but its signed manifest says {} of {}: it was renamed (an older archive passed off as a newer one?)",
            Safe(archive),
            name.btype.as_str(),
            name_time,
            crate::text::cut(&manifest.backup_type, 40),
            crate::text::cut(&manifest.timestamp, 40)
        ))
        .hint(format!("nothing was changed; if you really want this archive, give it its original name ({original}…) and look at its time before restoring it")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
