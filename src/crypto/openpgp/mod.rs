//! The OpenPGP backend (sequoia-openpgp with the nettle backend): recipients from
//! key ids, user ids or certificate files, keyless packet verification, and
//! decryption with secret keys or gpg-agent.
//!
//! What we write is the RFC 4880 profile that stock GnuPG 2.2 reads: one PKESKv3
//! per encryption subkey, then one SEIPDv1 packet (with MDC) holding a binary
//! literal data packet, without compression (the payload is gzip'd already) and
//! without armor. We read that, and what `gpg --encrypt` writes (compressed or
//! not, armored or not).

mod framing;
mod keyring;
mod seipd;
mod seipd_reader;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use secrecy::ExposeSecret;
use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::cert::prelude::*;
use openpgp::crypto::{Password, SessionKey};
use openpgp::packet::key::{PublicParts, SecretKeyMaterial, UnspecifiedRole};
use openpgp::packet::pkesk::PKESK3;
use openpgp::packet::{Key, Packet, PKESK, SKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::parse::{Dearmor, PacketParserBuilder, PacketParserResult, Parse};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::Serialize;
use openpgp::types::{RevocationStatus, SymmetricAlgorithm};
use openpgp::{KeyHandle, KeyID};

use crate::crypto::recipients::RecipientSpec;
use crate::crypto::{EncryptWriter, Encryptor, Format, HeaderInfo, PassphraseSource};
use crate::error::{into_io, Error, IoContext, Result, TAMPERED_HINT};

use keyring::{gnupg_home, Query, Store};

/// The policy certificates and messages are checked against (at "now").
static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// The cipher of the SEIPDv1 packet: AES-256 (MTI for GnuPG 2.2).
const SYM: SymmetricAlgorithm = SymmetricAlgorithm::AES256;

/// Plaintext held back by sequoia's decryptor (and the granularity of reads).
/// Measured: with 64 KiB, a message written with 4 MiB partial-body chunks
/// (ours) made sequoia's `finish_maybe` steal the whole rest of the literal
/// packet into memory (723 MB RSS for a 150 MB archive); with 4 MiB the peak
/// stays at ~86 MB for 150 MB and 450 MB archives alike.
const DECRYPT_BUFFER: usize = 4 * 1024 * 1024;

/// Whether `b`, the first byte of a file, starts an OpenPGP message (a PKESK or
/// SKESK packet in old or new packet format).
pub fn is_message_start(b: u8) -> bool {
    // new format: 0b11xx_xxxx with tag 1 (PKESK) or 3 (SKESK)
    // old format: 0b10tt_ttll with tag 1 or 3
    matches!(b, 0xC1 | 0xC3) || (b & 0xC0 == 0x80 && matches!((b >> 2) & 0x0F, 1 | 3))
}

/// Whether the start of a file is an OpenPGP certificate (armored or binary).
pub fn is_certificate_start(head: &[u8]) -> bool {
    head.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
        || head
            .first()
            .is_some_and(|&b| b == 0xC6 || (b & 0xFC) == 0x98)
}

/// Whether the start of a file is an OpenPGP secret key (armored or binary).
pub fn is_secret_key_start(head: &[u8]) -> bool {
    head.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
        || head
            .first()
            .is_some_and(|&b| b == 0xC5 || (b & 0xFC) == 0x94)
}

/// The key id a PKESK is addressed to, as `gpg --list-packets` shows it
/// (16 upper-case hex digits), or `anonymous` for a wildcard recipient.
fn pkesk_recipient(p: &PKESK) -> String {
    match p.recipient() {
        Some(KeyHandle::KeyID(id)) if !id.is_wildcard() => id.to_hex(),
        Some(KeyHandle::Fingerprint(f)) => KeyID::from(f).to_hex(),
        _ => "anonymous".to_owned(),
    }
}

fn bad_message(path: &Path, what: &str) -> Error {
    Error::integrity(format!(
        "{}: not a valid OpenPGP archive: {what}",
        path.display()
    ))
    .hint("the file is damaged, truncated or was replaced; restore from another archive or copy")
}

/// Keyless inspection of an OpenPGP archive (binary or armored): one or more
/// PKESK (or SKESK) packets, then exactly one SEIPDv1 packet reaching the end
/// of the file, and nothing else. Binary messages: framing.rs follows the
/// length headers. Armored ones: a streaming parser reads the body through
/// (to check its framing) but never keeps it.
pub fn inspect(path: &Path) -> Result<HeaderInfo> {
    let file = File::open(path).at("opening", path)?;
    let length = file.metadata().at("reading metadata of", path)?.len();
    let head = crate::crypto::read_head(path)?;
    let armored = head.starts_with(b"-----BEGIN PGP MESSAGE-----");
    if !armored {
        // binary: follow the length headers without reading the body
        let recipients = framing::walk(&file, length).map_err(|e| bad_message(path, &e))?;
        return Ok(HeaderInfo {
            format: Format::OpenPgp,
            recipients,
            length,
        });
    }
    let format = Format::OpenPgpArmored;
    let dearmor = Dearmor::Enabled(armor::ReaderMode::Tolerant(Some(armor::Kind::Message)));
    let reader = BufReader::with_capacity(256 * 1024, file);
    let parse_err = |e: anyhow::Error| bad_message(path, &format!("{e:#}"));
    let mut ppr = PacketParserBuilder::from_reader(reader)
        .map_err(parse_err)?
        .dearmor(dearmor)
        .build()
        .map_err(parse_err)?;
    let mut recipients = Vec::new();
    let mut seen_data = false;
    while let PacketParserResult::Some(pp) = ppr {
        let tag = pp.packet.tag();
        if seen_data {
            return Err(bad_message(
                path,
                &format!("unexpected packet after the encrypted data (trailing data or a second message): {tag}"),
            ));
        }
        if pp.recursion_depth() != 0 {
            return Err(bad_message(
                path,
                &format!("unexpected nested packet: {tag}"),
            ));
        }
        match &pp.packet {
            Packet::PKESK(p) => {
                if p.version() != 3 {
                    return Err(bad_message(
                        path,
                        &format!("PKESK version {} (only version 3 is expected)", p.version()),
                    ));
                }
                recipients.push(pkesk_recipient(p));
            }
            Packet::SKESK(_) => recipients.push("passphrase (SKESK)".to_owned()),
            Packet::SEIP(s) => {
                if s.version() != 1 {
                    return Err(bad_message(
                        path,
                        &format!(
                            "encrypted data packet version {} (only SEIPDv1 with MDC is expected)",
                            s.version()
                        ),
                    ));
                }
                if recipients.is_empty() {
                    return Err(bad_message(
                        path,
                        "encrypted data without any PKESK/SKESK packet before it",
                    ));
                }
                seen_data = true;
            }
            Packet::Unknown(u) => {
                return Err(bad_message(
                    path,
                    &format!("unreadable packet ({tag}): {}", u.error()),
                ))
            }
            _ => {
                return Err(bad_message(
                    path,
                    &format!("unexpected packet at the top level of the message: {tag}"),
                ))
            }
        }
        // For the unprocessed SEIPD container this reads its body through
        // (streaming) and fails if it is cut short.
        ppr = pp.next().map_err(parse_err)?.1;
    }
    if !seen_data {
        return Err(bad_message(
            path,
            if recipients.is_empty() {
                "no packet at all (empty file?)"
            } else {
                "no encrypted data packet after the PKESK packets (truncated?)"
            },
        ));
    }
    Ok(HeaderInfo {
        format,
        recipients,
        length,
    })
}

/// An encryption-capable public key of a recipient certificate.
type PubKey = Key<PublicParts, UnspecifiedRole>;

/// Encrypts to one or more OpenPGP certificates (all their alive encryption
/// subkeys, like gpg).
pub struct PgpEncryptor {
    keys: Vec<PubKey>,
    descriptions: Vec<String>,
}

impl PgpEncryptor {
    pub fn new(specs: &[RecipientSpec], keyring: Option<&Path>) -> Result<Self> {
        Self::resolve_in_home(specs, keyring, &gnupg_home())
    }

    /// Like [`PgpEncryptor::new`], with an explicit GnuPG home (for tests and
    /// callers that must not depend on the environment).
    pub(crate) fn resolve_in_home(
        specs: &[RecipientSpec],
        keyring: Option<&Path>,
        home: &Path,
    ) -> Result<Self> {
        let mut chosen: Vec<(Cert, Vec<PubKey>)> = Vec::new();
        let mut queries: Vec<(String, Query)> = Vec::new();
        for spec in specs {
            match spec {
                RecipientSpec::PgpKeyId(hex) => {
                    queries.push((hex.clone(), Query::from_key_id(hex)?))
                }
                RecipientSpec::PgpUserId(u) => queries.push((u.clone(), Query::from_user_id(u))),
                RecipientSpec::PgpFile(path) => {
                    let certs = read_certs(path)?;
                    if certs.is_empty() {
                        return Err(Error::key(format!(
                            "{} holds no OpenPGP certificate",
                            path.display()
                        ))
                        .hint("export one with `gpg --export --armor KEYID > cert.asc`"));
                    }
                    for cert in certs {
                        let label = path.display().to_string();
                        let keys = select_keys(&cert, &label)?;
                        chosen.push((cert, keys));
                    }
                }
                other => {
                    return Err(Error::usage(format!(
                        "{other:?} is not an OpenPGP recipient"
                    )))
                }
            }
        }
        if !queries.is_empty() {
            let store = Store::new(keyring, home);
            let qs: Vec<Query> = queries.iter().map(|(_, q)| q.clone()).collect();
            let found = store.search(&qs)?;
            for ((label, _), certs) in queries.iter().zip(found) {
                if certs.is_empty() {
                    return Err(Error::key(format!(
                        "recipient {label} not found in {}",
                        store.describe()
                    ))
                    .hint("import the certificate (`gpg --import cert.asc`), pass --keyring FILE, or give the certificate file itself as the recipient"));
                }
                let mut good = Vec::new();
                let mut first_err = None;
                for cert in certs {
                    match select_keys(&cert, label) {
                        Ok(keys) => good.push((cert, keys)),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                match good.len() {
                    0 => return Err(first_err.expect("at least one certificate was examined")),
                    1 => chosen.extend(good),
                    _ => {
                        let fprs: Vec<String> =
                            good.iter().map(|(c, _)| c.fingerprint().to_hex()).collect();
                        return Err(Error::key(format!(
                            "recipient {label} matches several usable certificates: {}",
                            fprs.join(", ")
                        ))
                        .hint("give the 40-hex-digit fingerprint of the certificate to use"));
                    }
                }
            }
        }
        let mut keys: Vec<PubKey> = Vec::new();
        let mut descriptions = Vec::new();
        for (cert, ks) in chosen {
            let desc = describe_cert(&cert);
            if !descriptions.contains(&desc) {
                descriptions.push(desc);
            }
            for k in ks {
                if !keys
                    .iter()
                    .any(|have| have.fingerprint() == k.fingerprint())
                {
                    keys.push(k);
                }
            }
        }
        if keys.is_empty() {
            return Err(Error::key("no OpenPGP recipient given"));
        }
        Ok(PgpEncryptor { keys, descriptions })
    }

    /// Key ids of the subkeys the archive is encrypted to.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.keyid().to_hex()).collect()
    }
}

/// All certificates of a file (armored or binary), public parts only.
fn read_certs(path: &Path) -> Result<Vec<Cert>> {
    let f = File::open(path).at("opening certificate file", path)?;
    let parser = CertParser::from_reader(BufReader::new(f)).map_err(|e| {
        Error::key(format!(
            "{} is not an OpenPGP certificate file: {e}",
            path.display()
        ))
        .hint("export the certificate with `gpg --export --armor KEYID > cert.asc`")
    })?;
    let mut certs = Vec::new();
    for c in parser {
        let c = c.map_err(|e| {
            Error::key(format!(
                "{} holds an invalid OpenPGP certificate: {e}",
                path.display()
            ))
            .hint("export the certificate again with `gpg --export --armor KEYID > cert.asc`")
        })?;
        certs.push(c.strip_secret_key_material());
    }
    Ok(certs)
}

/// `<fingerprint> <primary user id>`.
fn describe_cert(cert: &Cert) -> String {
    let uid = cert
        .with_policy(&POLICY, None)
        .ok()
        .and_then(|vc| {
            vc.primary_userid()
                .ok()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        })
        .or_else(|| {
            cert.userids()
                .next()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        })
        .unwrap_or_else(|| "(no user id)".to_owned());
    format!("{} {uid}", cert.fingerprint().to_hex())
}

/// Checks a recipient certificate (standard policy, now) and returns its alive,
/// unrevoked, encryption-capable v4 keys.
fn select_keys(cert: &Cert, label: &str) -> Result<Vec<PubKey>> {
    let fpr = cert.fingerprint().to_hex();
    let what = if label == fpr {
        format!("certificate {fpr}")
    } else {
        format!("certificate {fpr} (recipient {label})")
    };
    let vc = cert.with_policy(&POLICY, None).map_err(|e| {
        Error::key(format!("{what} is not valid: {e:#}"))
            .hint("the certificate has no valid self-signature under the standard policy (weak algorithms?); ask its owner for a current certificate")
    })?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(Error::key(format!("{what} is revoked"))
            .hint("ask its owner for a current key, or remove this recipient"));
    }
    if let Err(e) = vc.alive() {
        return Err(Error::key(format!("{what} has expired or is not yet valid: {e:#}"))
            .hint("extend its expiry (`gpg --quick-set-expire FPR 2y`), export and import it again, or use another key"));
    }
    let mut keys = Vec::new();
    let mut non_v4 = false;
    for ka in vc
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .for_storage_encryption()
    {
        if ka.key().version() != 4 {
            non_v4 = true;
            continue;
        }
        keys.push(ka.key().clone());
    }
    if keys.is_empty() {
        let why = if non_v4 {
            "has no v4 encryption subkey (GnuPG 2.2 cannot read messages to v6 keys)"
        } else {
            "has no valid encryption-capable subkey (all expired or revoked, or it is a signing-only key)"
        };
        return Err(Error::key(format!("{what} {why}")).hint(
            "add an encryption subkey (`gpg --quick-add-key FPR cv25519 encr`) or use another key",
        ));
    }
    Ok(keys)
}

/// The SEIPDv1 writer behind the PKESKs.
struct PgpWriter {
    seipd: Option<seipd::SeipdWriter<Box<dyn Write + Send>>>,
}

fn gone() -> io::Error {
    io::Error::other("the OpenPGP writer was already finished")
}

impl Write for PgpWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.seipd.as_mut().ok_or_else(gone)?.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.seipd.as_mut().ok_or_else(gone)?.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        // the data is complete only after `finish` anyway
        Ok(())
    }
}

impl EncryptWriter for PgpWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.seipd.take().ok_or_else(gone)?.finish()
    }
}

impl Encryptor for PgpEncryptor {
    fn format(&self) -> Format {
        Format::OpenPgp
    }

    fn describe(&self) -> Vec<String> {
        self.descriptions.clone()
    }

    fn wrap_output(&self, out: Box<dyn Write + Send>) -> Result<Box<dyn EncryptWriter>> {
        let crypt = |what: &str, e: anyhow::Error| {
            Error::key(format!(
                "cannot encrypt to these OpenPGP recipients ({what}): {e:#}"
            ))
        };
        let mut out = out;
        let sk = SessionKey::new(SYM.key_size().map_err(|e| crypt("cipher", e))?)
            .map_err(|e| crypt("session key", e))?;
        // One PKESKv3 per subkey, then SEIPDv1 (seipd.rs): the packet
        // versions are fixed whatever features the certificates advertise.
        let mut head = Vec::new();
        for key in &self.keys {
            let pkesk = PKESK3::for_recipient(SYM, &sk, key)
                .map_err(|e| crypt(&key.keyid().to_hex(), e))?;
            Packet::from(PKESK::from(pkesk))
                .serialize(&mut head)
                .map_err(|e| crypt("PKESK", e))?;
        }
        let write_err =
            |e: io::Error| Error::operational(format!("writing the OpenPGP message: {e}"));
        out.write_all(&head).map_err(write_err)?;
        let seipd = seipd::SeipdWriter::new(out, &sk).map_err(write_err)?;
        Ok(Box::new(PgpWriter { seipd: Some(seipd) }))
    }

    fn verify_written(&self, path: &Path) -> Result<HeaderInfo> {
        let info = inspect(path)?;
        if info.format != Format::OpenPgp {
            return Err(Error::integrity(format!(
                "{} was written armored or in another format",
                path.display()
            )));
        }
        let mut got = info.recipients.clone();
        let mut want = self.key_ids();
        got.sort();
        want.sort();
        if got != want {
            return Err(Error::integrity(format!(
                "{} is encrypted to {}, expected {}",
                path.display(),
                got.join(", "),
                want.join(", ")
            ))
            .hint("the archive was replaced or written by another process; run the backup again"));
        }
        Ok(info)
    }
}

/// A secret key file as given with `-i`.
struct KeyFile {
    path: String,
    certs: Vec<Cert>,
}

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
        let mut files = Vec::new();
        for (path, data) in keys {
            let name = path.display().to_string();
            let bad = |e: &dyn std::fmt::Display| {
                Error::key(format!("{name} is not a valid OpenPGP secret key: {e}"))
                    .hint("export it with `gpg --export-secret-keys --armor KEYID > key.asc`")
            };
            let parser = CertParser::from_bytes(*data).map_err(|e| bad(&e))?;
            let mut certs = Vec::new();
            for c in parser {
                certs.push(c.map_err(|e| bad(&e))?);
            }
            if certs.is_empty() {
                return Err(bad(&"no key found"));
            }
            if !certs.iter().any(|c| c.is_tsk()) {
                return Err(Error::key(format!(
                    "{name} holds only a certificate (public key), not a secret key"
                ))
                .hint(
                    "export the secret key with `gpg --export-secret-keys --armor KEYID > key.asc`",
                ));
            }
            files.push(KeyFile { path: name, certs });
        }
        Ok(PgpDecryptor {
            keys: Arc::new(files),
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

impl crate::crypto::Decryptor for PgpDecryptor {
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

/// A session key (cipher and key) found by sequoia.
type FoundKey = (SymmetricAlgorithm, SessionKey);

/// Finds the session key: with the secret keys given, or through gpg-agent.
struct Helper {
    keys: Arc<Vec<KeyFile>>,
    pass: PassphraseSource,
    home: Option<PathBuf>,
    /// Use this session key (found before) instead of looking for one.
    known: Option<FoundKey>,
    /// Where to put the session key once it is found.
    capture: Option<Arc<Mutex<Option<FoundKey>>>>,
}

impl VerificationHelper for Helper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        // Archives are not signed; their integrity is the MDC (checked by
        // sequoia) plus the manifest and sidecar checksums.
        Ok(())
    }
}

fn recipients_of(pkesks: &[PKESK]) -> String {
    if pkesks.is_empty() {
        return "no public key (passphrase only)".to_owned();
    }
    pkesks
        .iter()
        .map(pkesk_recipient)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a PKESK may be addressed to `key` (exact id, or anonymous).
fn addressed_to(p: &PKESK, key: &PubKey) -> bool {
    match p.recipient() {
        None => true,
        Some(KeyHandle::KeyID(id)) if id.is_wildcard() => true,
        Some(h) => h.aliases(KeyHandle::from(key.fingerprint())),
    }
}

/// Whether the secret of `key` is a GnuPG stub (e.g. on a smartcard), unusable here.
fn is_stub(key: &Key<openpgp::packet::key::SecretParts, UnspecifiedRole>) -> bool {
    match key.secret() {
        SecretKeyMaterial::Encrypted(e) => matches!(
            e.s2k(),
            openpgp::crypto::S2K::Private { .. } | openpgp::crypto::S2K::Unknown { .. }
        ),
        SecretKeyMaterial::Unencrypted(_) => false,
    }
}

impl DecryptionHelper for Helper {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if let Some((algo, sk)) = &self.known {
            if decrypt(Some(*algo), sk) {
                return Ok(None);
            }
            return Err(
                Error::integrity("the archive's session key does not decrypt its data")
                    .hint(TAMPERED_HINT)
                    .into(),
            );
        }
        let capture = self.capture.clone();
        let mut recording = |algo: Option<SymmetricAlgorithm>, sk: &SessionKey| {
            let ok = decrypt(algo, sk);
            if let (true, Some(c), Some(a)) = (ok, &capture, algo.or(sym_algo)) {
                *c.lock().unwrap_or_else(|p| p.into_inner()) = Some((a, sk.clone()));
            }
            ok
        };
        self.find_session_key(pkesks, skesks, sym_algo, &mut recording)
    }
}

impl Helper {
    fn find_session_key(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if self.keys.is_empty() {
            return self.decrypt_with_agent(pkesks, sym_algo, decrypt);
        }
        let mut bad_session_key = false;
        // Candidates: (pkesk, file index, cert index, key fingerprint).
        let mut protected = Vec::new();
        let mut stubs = Vec::new();
        for p in pkesks {
            for (fi, file) in self.keys.iter().enumerate() {
                for (ci, cert) in file.certs.iter().enumerate() {
                    for ka in cert.keys().secret() {
                        let key = ka.key();
                        if !addressed_to(p, key.parts_as_public().role_as_unspecified()) {
                            continue;
                        }
                        if is_stub(key.role_as_unspecified()) {
                            stubs.push(key.keyid().to_hex());
                            continue;
                        }
                        if !key.has_unencrypted_secret() {
                            protected.push((p, fi, ci, key.fingerprint()));
                            continue;
                        }
                        let Ok(mut pair) = key.clone().role_into_unspecified().into_keypair()
                        else {
                            continue;
                        };
                        if let Some((algo, sk)) = p.decrypt(&mut pair, sym_algo) {
                            if decrypt(algo, &sk) {
                                return Ok(Some(cert.clone()));
                            }
                            bad_session_key = true;
                        }
                    }
                }
            }
        }
        // Then the passphrase-protected keys: ask only for those that match.
        let mut wrong: Option<Error> = None;
        for (p, fi, ci, fpr) in protected {
            let file = &self.keys[fi];
            let cert = &file.certs[ci];
            let Some(ka) = cert.keys().secret().find(|k| k.key().fingerprint() == fpr) else {
                continue;
            };
            let key = ka.key().clone().role_into_unspecified();
            let keyid = key.keyid().to_hex();
            // as many tries as the age backend (PassphraseSource::tries)
            let tries = self.pass.tries();
            let mut unlocked = None;
            for attempt in 1..=tries {
                let pass = self
                    .pass
                    .get(&format!("OpenPGP key {keyid} ({})", file.path))?;
                let password = Password::from(pass.expose_secret());
                match key.clone().decrypt_secret(&password) {
                    Ok(k) => {
                        unlocked = Some(k);
                        break;
                    }
                    Err(_) => self.pass.wrong_try(tries - attempt),
                }
            }
            let key = match unlocked {
                Some(k) => k,
                None => {
                    wrong.get_or_insert(
                        Error::key(format!(
                            "wrong passphrase for OpenPGP key {keyid} in {}",
                            file.path
                        ))
                        .hint("check the passphrase (or the first line of --passphrase-file)"),
                    );
                    continue;
                }
            };
            let Ok(mut pair) = key.into_keypair() else {
                continue;
            };
            if let Some((algo, sk)) = p.decrypt(&mut pair, sym_algo) {
                if decrypt(algo, &sk) {
                    return Ok(Some(cert.clone()));
                }
                bad_session_key = true;
            }
        }
        if let Some(e) = wrong {
            return Err(e.into());
        }
        if bad_session_key {
            return Err(Error::integrity(
                "the archive's session key was decrypted but does not decrypt its data",
            )
            .hint(TAMPERED_HINT)
            .into());
        }
        let mut err = Error::key(format!(
            "none of the given OpenPGP keys can decrypt this archive: it is encrypted to {}",
            recipients_of(pkesks)
        ))
        .hint("pass -i with the secret key of one of these key ids (`gpg --export-secret-keys --armor KEYID > key.asc`), or omit -i to use gpg-agent");
        if !stubs.is_empty() {
            err = err.hint(format!(
                "the key file holds only a stub for {} (the secret is on a smartcard or in gpg-agent): omit -i to decrypt with gpg-agent",
                stubs.join(", ")
            ));
        }
        Err(err.into())
    }
}

/// Forwards to a decryptor and remembers its last error (sequoia's PKESK
/// decryption hides it).
struct Recording<'a> {
    inner: &'a mut dyn openpgp::crypto::Decryptor,
    err: Option<String>,
}

impl openpgp::crypto::Decryptor for Recording<'_> {
    fn public(&self) -> &PubKey {
        self.inner.public()
    }
    fn decrypt(
        &mut self,
        ciphertext: &openpgp::crypto::mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        let r = self.inner.decrypt(ciphertext, plaintext_len);
        if let Err(e) = &r {
            self.err = Some(format!("{e:#}"));
        }
        r
    }
}

impl Helper {
    /// No `-i`: look the PKESK recipients up in the local GnuPG keyring and let
    /// gpg-agent (which may use a smartcard) decrypt the session key.
    fn decrypt_with_agent(
        &mut self,
        pkesks: &[PKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let home = self.home.clone().unwrap_or_else(gnupg_home);
        let all = recipients_of(pkesks);
        let ids: Vec<(usize, KeyID)> = pkesks
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p.recipient() {
                Some(KeyHandle::KeyID(id)) if !id.is_wildcard() => Some((i, id)),
                Some(KeyHandle::Fingerprint(f)) => Some((i, KeyID::from(f))),
                _ => None,
            })
            .collect();
        let no_key = |msg: String| {
            Error::key(msg).hint(
                "pass -i with the OpenPGP secret key file, or import the secret key (or its smartcard stub) into GnuPG (`gpg --import`, `gpg --card-status`)",
            )
        };
        if ids.is_empty() {
            return Err(no_key(format!(
                "no identity was given (-i) and this archive's recipients ({all}) cannot be looked up in GnuPG"
            ))
            .into());
        }
        let store = Store::new(None, &home);
        let queries: Vec<Query> = ids.iter().map(|(_, id)| Query::KeyId(id.clone())).collect();
        let found = store.search(&queries)?;
        if found.iter().all(|f| f.is_empty()) {
            return Err(no_key(format!(
                "no identity was given (-i) and none of this archive's recipients ({all}) is in {}",
                store.describe()
            ))
            .into());
        }
        let ctx = sequoia_gpg_agent::gnupg::Context::with_homedir(&home).map_err(|e| {
            no_key(format!(
                "cannot use the GnuPG home {} for gpg-agent: {e}",
                home.display()
            ))
        })?;
        ctx.start("gpg-agent").map_err(|e| {
            no_key(format!(
                "cannot start gpg-agent for {}: {e}",
                home.display()
            ))
        })?;
        let mut errors = Vec::new();
        for ((i, id), certs) in ids.iter().zip(found) {
            let p = &pkesks[*i];
            for cert in certs {
                let Some(ka) = cert.keys().find(|k| &k.key().keyid() == id) else {
                    continue;
                };
                let mut pair =
                    match sequoia_gpg_agent::KeyPair::new_for_gnupg_context(&ctx, ka.key()) {
                        Ok(kp) => kp,
                        Err(e) => {
                            errors.push(format!("{}: {e}", id.to_hex()));
                            continue;
                        }
                    };
                if let Ok(vc) = cert.with_policy(&POLICY, None) {
                    pair = pair.with_cert(&vc);
                }
                let mut rec = Recording {
                    inner: &mut pair,
                    err: None,
                };
                match p.decrypt(&mut rec, sym_algo) {
                    Some((algo, sk)) if decrypt(algo, &sk) => return Ok(Some(cert.clone())),
                    Some(_) => errors.push(format!(
                        "{}: session key does not decrypt the data",
                        id.to_hex()
                    )),
                    None => errors.push(format!(
                        "{}: {}",
                        id.to_hex(),
                        rec.err
                            .unwrap_or_else(|| "gpg-agent could not decrypt".to_owned())
                    )),
                }
            }
        }
        Err(no_key(format!(
            "gpg-agent could not decrypt this archive (recipients {all}): {}",
            errors.join("; ")
        ))
        .into())
    }
}
