//! The age backend: X25519 and SSH recipients, identity files (plain or
//! passphrase-encrypted), SSH private keys, and a keyless header parser used for
//! verification right after writing and by `verify` without `-i`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;

use crate::crypto::spec::{self, RecipientSpec};
use crate::crypto::{EncryptWriter, Encryptor, Format, HeaderInfo, PassphraseSource};
use crate::error::{Error, IoContext, Result, TAMPERED_HINT};

/// Size of one age payload chunk (plaintext) and its tag.
const CHUNK: u64 = 64 * 1024;
const TAG: u64 = 16;
const NONCE: u64 = 16;
/// Upper bound for a header we are willing to parse.
const MAX_HEADER: usize = 1024 * 1024;

type BoxedRecipient = Box<dyn age::Recipient + Send + Sync>;

/// Encrypts to one or more age recipients.
pub struct AgeEncryptor {
    recipients: Vec<BoxedRecipient>,
    descriptions: Vec<String>,
}

impl AgeEncryptor {
    pub fn new(specs: &[RecipientSpec]) -> Result<Self> {
        let mut recipients = Vec::new();
        let mut descriptions = Vec::new();
        for spec in specs {
            match spec {
                RecipientSpec::AgeX25519(s) | RecipientSpec::AgeSsh(s) => {
                    recipients.push(parse_one(s, None)?);
                    descriptions.push(describe_line(s));
                }
                RecipientSpec::AgeFile(path) => {
                    let data = crate::crypto::read_bounded(
                        path,
                        "recipients file",
                        spec::MAX_RECIPIENTS_FILE,
                    )?;
                    if let Some(kind) = spec::secret_kind_in_file(&data) {
                        return Err(spec::secret_error(
                            kind,
                            &format!("recipients file {}", crate::text::Safe(path)),
                        ));
                    }
                    let text = std::str::from_utf8(&data).map_err(|_| {
                        Error::key(format!(
                            "recipients file {} is not UTF-8 text",
                            crate::text::Safe(path)
                        ))
                        .hint("an age recipients file holds one age1… or ssh-… public key per line")
                    })?;
                    let before = recipients.len();
                    for (no, line) in text.lines().enumerate() {
                        let line = line.trim();
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        recipients.push(parse_one(line, Some((path, no + 1)))?);
                        descriptions.push(describe_line(line));
                    }
                    if recipients.len() == before {
                        return Err(Error::key(format!(
                            "recipients file {} holds no recipient",
                            path.display()
                        ))
                        .hint("put one age1… or ssh-… public key per line"));
                    }
                }
                other => return Err(Error::usage(format!("{other:?} is not an age recipient"))),
            }
        }
        Ok(AgeEncryptor {
            recipients,
            descriptions,
        })
    }
}

fn describe_line(s: &str) -> String {
    if s.starts_with("ssh-") {
        // type and key, without the comment (which may name a person or host)
        s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    } else {
        s.to_owned()
    }
}

fn parse_one(s: &str, at: Option<(&Path, usize)>) -> Result<BoxedRecipient> {
    let where_ = at
        .map(|(p, n)| format!(" (line {n} of {})", crate::text::Safe(p)))
        .unwrap_or_default();
    if s.starts_with("age1") {
        age::x25519::Recipient::from_str(s)
            .map(|r| Box::new(r) as BoxedRecipient)
            .map_err(|e| {
                Error::key(format!("invalid age recipient{where_}: {e}"))
                    .hint("copy the whole age1… line printed by `age-keygen -y` or `secureclaw-backup keygen age`")
            })
    } else if s.starts_with("ssh-") {
        age::ssh::Recipient::from_str(s)
            .map(|r| Box::new(r) as BoxedRecipient)
            .map_err(|e| {
                Error::key(format!("invalid SSH recipient{where_}: {e:?}"))
                    .hint("use an ssh-ed25519 or ssh-rsa public key line from a .pub file")
            })
    } else {
        Err(Error::key(format!(
            "{}{where_} is not an age recipient",
            spec::quote_value(s)
        ))
        .hint("an age recipients file holds one age1… or ssh-… key per line"))
    }
}

struct AgeWriter<W: Write + Send> {
    inner: age::stream::StreamWriter<W>,
}

impl<W: Write + Send> Write for AgeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Send> EncryptWriter for AgeWriter<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut out = self.inner.finish()?;
        out.flush()
    }
}

impl Encryptor for AgeEncryptor {
    fn format(&self) -> Format {
        Format::Age
    }

    fn describe(&self) -> Vec<String> {
        self.descriptions.clone()
    }

    /// `age` (age1…) or `ssh` (type and key, no comment), as given.
    fn meta_recipients(&self) -> Vec<crate::meta::Recipient> {
        self.descriptions
            .iter()
            .map(|d| crate::meta::Recipient {
                kind: if d.starts_with("ssh-") { "ssh" } else { "age" }.into(),
                id: d.clone(),
                subkey: None,
            })
            .collect()
    }

    fn wrap_output(&self, out: Box<dyn Write + Send>) -> Result<Box<dyn EncryptWriter>> {
        let enc = age::Encryptor::with_recipients(
            self.recipients
                .iter()
                .map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| Error::key(format!("cannot encrypt to these age recipients: {e}")))?;
        let w = enc
            .wrap_output(out)
            .map_err(|e| Error::operational(format!("writing the age header: {e}")))?;
        Ok(Box::new(AgeWriter { inner: w }))
    }

    fn verify_written(&self, path: &Path) -> Result<HeaderInfo> {
        let info = inspect(path)?;
        if info.format != Format::Age {
            return Err(Error::integrity(format!(
                "{} was written armored or in another format",
                path.display()
            )));
        }
        if info.recipients.len() != self.recipients.len() {
            return Err(Error::integrity(format!(
                "{} has {} recipient stanzas, expected {}",
                path.display(),
                info.recipients.len(),
                self.recipients.len()
            )));
        }
        Ok(info)
    }
}

/// A parsed age header (keyless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Stanza tag and arguments per recipient, e.g. `X25519 <ephemeral share>`.
    pub stanzas: Vec<Vec<String>>,
    /// Bytes of header, including the MAC line.
    pub len: usize,
}

impl Header {
    /// One line per recipient stanza, as `verify` and `list` show them. age
    /// adds a random "grease" stanza (`<random>-grease`) to keep parsers
    /// honest; it is not a recipient.
    pub fn recipients(&self) -> Vec<String> {
        self.stanzas
            .iter()
            .filter(|args| !args[0].ends_with("-grease"))
            .map(|args| match args[0].as_str() {
                "X25519" => "X25519".to_owned(),
                "scrypt" => "scrypt (passphrase)".to_owned(),
                "ssh-ed25519" | "ssh-rsa" => {
                    format!("{} {}", args[0], args.get(1).cloned().unwrap_or_default())
                }
                other => other.to_owned(),
            })
            .collect()
    }
}

fn is_b64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn is_arbitrary_string(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b))
}

/// Parses the binary age v1 header from the start of `data` (which may hold
/// more bytes after it). Follows the age specification's grammar strictly.
pub fn parse_header(data: &[u8]) -> std::result::Result<Header, String> {
    const INTRO: &[u8] = b"age-encryption.org/v1\n";
    if !data.starts_with(INTRO) {
        return Err("missing age-encryption.org/v1 intro line".into());
    }
    let mut pos = INTRO.len();
    let mut stanzas = Vec::new();
    let next_line = |pos: usize| -> std::result::Result<(&[u8], usize), String> {
        let rest = &data[pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| "header is truncated (no end of line)".to_string())?;
        Ok((&rest[..end], pos + end + 1))
    };
    loop {
        let (line, after) = next_line(pos)?;
        if let Some(mac) = line.strip_prefix(b"--- ") {
            if mac.len() != 43 || !mac.iter().all(|&b| is_b64_char(b)) {
                return Err("header MAC line is malformed".into());
            }
            if stanzas.is_empty() {
                return Err("header has no recipient stanza".into());
            }
            return Ok(Header {
                stanzas,
                len: after,
            });
        }
        let line = line.strip_prefix(b"-> ").ok_or_else(|| {
            "expected a recipient stanza (-> …) or the MAC line (--- …)".to_string()
        })?;
        let line = std::str::from_utf8(line).map_err(|_| "stanza is not ASCII".to_string())?;
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if args.iter().any(|a| !is_arbitrary_string(a)) {
            return Err("stanza has an empty or non-printable argument".into());
        }
        pos = after;
        // body: base64 lines of 64 columns, the last one shorter (possibly empty)
        loop {
            let (body, after) = next_line(pos)?;
            if body.len() > 64 || !body.iter().all(|&b| is_b64_char(b)) {
                return Err("stanza body is not canonical base64".into());
            }
            pos = after;
            if body.len() < 64 {
                break;
            }
        }
        stanzas.push(args);
        if stanzas.len() > 1024 {
            return Err("header has more than 1024 stanzas".into());
        }
    }
}

/// Checks that a payload of `len` bytes (after the header) can be a complete
/// STREAM: a 16-byte nonce, then full 64 KiB chunks and one final chunk.
pub fn payload_length_ok(len: u64) -> bool {
    if len < NONCE + TAG {
        return false;
    }
    let body = len - NONCE;
    let full = CHUNK + TAG;
    let rem = body % full;
    if rem == 0 {
        // ends exactly on a full chunk: valid (the last chunk is full)
        return true;
    }
    // a short final chunk: non-empty unless it is the only chunk
    rem >= TAG && (rem > TAG || body == TAG)
}

/// Keyless inspection of an age file: header grammar, stanza list and payload
/// length. Armored files are inspected by their decoded header.
pub fn inspect(path: &Path) -> Result<HeaderInfo> {
    let file = std::fs::File::open(path).at("opening", path)?;
    let length = file.metadata().at("reading metadata of", path)?.len();
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().at("reading", path)?.to_vec();
    let armored = head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----");
    let mut buf = Vec::new();
    let format;
    let mut payload_len = None;
    if armored {
        format = Format::AgeArmored;
        let mut dec = age::armor::ArmoredReader::new(reader);
        dec.by_ref()
            .take(MAX_HEADER as u64)
            .read_to_end(&mut buf)
            .map_err(|e| bad(path, &format!("armor is malformed: {e}")))?;
    } else {
        format = Format::Age;
        reader
            .by_ref()
            .take(MAX_HEADER as u64)
            .read_to_end(&mut buf)
            .at("reading", path)?;
    }
    let header = parse_header(&buf).map_err(|e| bad(path, &e))?;
    if !armored {
        payload_len = Some(length - header.len as u64);
    }
    if let Some(p) = payload_len {
        if !payload_length_ok(p) {
            return Err(bad(
                path,
                &format!(
                    "payload of {p} bytes cannot be a complete age stream (truncated or padded)"
                ),
            ));
        }
    }
    let recipients = header.recipients();
    Ok(HeaderInfo {
        format,
        recipients,
        length,
    })
}

fn bad(path: &Path, what: &str) -> Error {
    Error::integrity(format!("{}: not a valid age file: {what}", path.display()))
        .hint("the file is damaged or was replaced; restore from another archive or copy")
}

/// Decrypts with age identities.
pub struct AgeDecryptor {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl AgeDecryptor {
    pub fn new(identities: Vec<Box<dyn age::Identity + Send + Sync>>) -> Self {
        AgeDecryptor { identities }
    }
}

impl crate::crypto::Decryptor for AgeDecryptor {
    fn decrypt(&self, format: Format, input: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>> {
        if self.identities.is_empty() {
            return Err(Error::key("this archive is age-encrypted but no age identity was given")
                .hint("pass -i with an age identity file or SSH private key (or set SECURECLAW_BACKUP_IDENTITY)"));
        }
        let input: Box<dyn Read + Send> = if format == Format::AgeArmored {
            Box::new(age::armor::ArmoredReader::new(BufReader::new(input)))
        } else {
            input
        };
        let dec = age::Decryptor::new_buffered(BufReader::with_capacity(256 * 1024, input))
            .map_err(map_decrypt_error)?;
        let reader = dec
            .decrypt(
                self.identities
                    .iter()
                    .map(|i| i.as_ref() as &dyn age::Identity),
            )
            .map_err(map_decrypt_error)?;
        Ok(Box::new(reader))
    }
}

fn map_decrypt_error(e: age::DecryptError) -> Error {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys => Error::key("no identity given matches any recipient of this archive")
            .hint("use the identity whose public key the archive was encrypted to (`verify` without -i lists its recipients)"),
        D::KeyDecryptionFailed => Error::key("could not decrypt the identity: wrong passphrase?")
            .hint("check the passphrase (or --passphrase-file) for the identity file"),
        // our own errors (the archive file's I/O) keep their kind; a header
        // that ends early or is not text is damage, not an I/O problem
        D::Io(e) => match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
            Some(ours) => ours.clone(),
            None if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
            {
                Error::integrity(format!("the archive's age header is truncated or malformed: {e}"))
                    .hint(TAMPERED_HINT)
            }
            None => Error::operational(format!("reading the archive: {e}"))
                .hint("check the file and the filesystem, then run again"),
        },
        other => Error::integrity(format!("the archive's age header is invalid: {other}"))
            .hint(TAMPERED_HINT),
    }
}

/// Callbacks that take passphrases from our [`PassphraseSource`], asked with
/// our own prompt (`Passphrase for age identity FILE: `): the age crate's
/// description wraps the file name in invisible bidi isolation marks.
/// An error of the passphrase source (an unreadable --passphrase-file, no
/// terminal) is kept, so that it is reported as itself and not as a wrong
/// passphrase.
#[derive(Clone)]
struct PassCallbacks {
    pass: PassphraseSource,
    /// What the prompt names: `age identity FILE`.
    what: String,
    failed: Arc<Mutex<Option<Error>>>,
}

impl age::Callbacks for PassCallbacks {
    fn display_message(&self, message: &str) {
        crate::text::note(message);
    }
    fn confirm(&self, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, _description: &str) -> Option<SecretString> {
        match self.pass.get(&self.what) {
            Ok(p) => Some(p),
            Err(e) => {
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                None
            }
        }
    }
}

/// The error after the last wrong passphrase for `what` (a key file).
fn wrong_passphrase(what: &str) -> Error {
    Error::key(format!("wrong passphrase for {what}")).hint(
        "check the passphrase (or the first line of --passphrase-file / $SECURECLAW_BACKUP_PASSPHRASE_FILE)",
    )
}

/// Loads the age identities of one identity file: a plain identity file, an
/// age-encrypted (passphrase) identity file, or an SSH private key.
pub fn load_identities(
    path: &Path,
    data: &[u8],
    pass: &PassphraseSource,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
    let name = path.display().to_string();
    let key_err = |what: &str| {
        Error::key(format!("identity file {name}: {what}"))
            .hint("pass an age identity file (AGE-SECRET-KEY-1…), a passphrase-protected one, an SSH private key, or an OpenPGP secret key")
    };
    if data.starts_with(b"age-encryption.org/v1")
        || data.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    {
        let callbacks = PassCallbacks {
            pass: pass.clone(),
            what: format!("age identity {}", crate::text::Safe(path)),
            failed: Arc::new(Mutex::new(None)),
        };
        let tries = pass.tries();
        for attempt in 1..=tries {
            let dec = age::Decryptor::new(age::armor::ArmoredReader::new(data))
                .map_err(|e| key_err(&format!("not a valid encrypted identity: {e}")))?;
            let enc = age::encrypted::EncryptedIdentity::new(dec, callbacks.clone(), Some(22))
                .ok_or_else(|| key_err("is an age file but not passphrase-encrypted"))?;
            let decrypted = enc.decrypt(Some(&name));
            if let Some(e) = callbacks
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return Err(e);
            }
            match decrypted {
                Ok(file) => {
                    return file.into_identities().map_err(|e| key_err(&e.to_string()));
                }
                Err(
                    age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed,
                ) if attempt < tries => pass.wrong_try(tries - attempt),
                Err(
                    age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed,
                ) => break,
                Err(other) => return Err(key_err(&other.to_string())),
            }
        }
        return Err(wrong_passphrase(&format!("identity file {name}")));
    }
    if data.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        || data.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
    {
        let id = age::ssh::Identity::from_buffer(data, Some(name.clone()))
            .map_err(|e| key_err(&format!("invalid SSH private key: {e}")))?;
        let id = match id {
            age::ssh::Identity::Encrypted(enc) => {
                let what = format!("SSH key {}", crate::text::Safe(path));
                let tries = pass.tries();
                let mut key = None;
                for attempt in 1..=tries {
                    match enc.decrypt(pass.get(&what)?) {
                        Ok(k) => {
                            key = Some(k);
                            break;
                        }
                        Err(_) => pass.wrong_try(tries - attempt),
                    }
                }
                match key {
                    Some(k) => age::ssh::Identity::Unencrypted(k),
                    None => return Err(wrong_passphrase(&format!("SSH key {name}"))),
                }
            }
            age::ssh::Identity::Unsupported(k) => {
                return Err(key_err(&format!("unsupported SSH key type: {k:?}")))
            }
            plain => plain,
        };
        return Ok(vec![Box::new(id)]);
    }
    let file = age::IdentityFile::from_buffer(data)
        .map_err(|_| key_err("holds data that is not an age identity"))?;
    let ids = file
        .into_identities()
        .map_err(|e| key_err(&e.to_string()))?;
    if ids.is_empty() {
        return Err(key_err("holds no identity"));
    }
    Ok(ids)
}

/// Whether a file looks like an age or SSH identity (used to classify `-i`).
pub fn looks_like_identity(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&data[..data.len().min(4096)]);
    text.contains("AGE-SECRET-KEY-1")
        || data.starts_with(b"age-encryption.org/v1")
        || data.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || data.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        || data.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_lengths() {
        assert!(payload_length_ok(16 + 16)); // empty plaintext
        assert!(payload_length_ok(16 + 17));
        assert!(payload_length_ok(16 + 65552));
        assert!(payload_length_ok(16 + 65552 + 17));
        assert!(!payload_length_ok(16 + 65552 + 16)); // empty last chunk after a full one
        assert!(!payload_length_ok(16 + 15));
        assert!(!payload_length_ok(10));
    }

    #[test]
    fn header_grammar() {
        let mac = "A".repeat(43);
        let h = format!(
            "age-encryption.org/v1\n-> X25519 abc\n{}\n--- {mac}\n",
            "B".repeat(43)
        );
        let parsed = parse_header(h.as_bytes()).unwrap();
        assert_eq!(
            parsed.stanzas,
            vec![vec!["X25519".to_string(), "abc".to_string()]]
        );
        assert_eq!(parsed.len, h.len());
        // body of exactly 64 columns needs a following (short) line
        let h2 = format!(
            "age-encryption.org/v1\n-> X25519 abc\n{}\n\n--- {mac}\n",
            "B".repeat(64)
        );
        assert!(parse_header(h2.as_bytes()).is_ok());
        assert!(parse_header(b"age-encryption.org/v1\n--- x\n").is_err());
        assert!(parse_header(b"age-encryption.org/v1\n-> X25519 abc\n").is_err());
        assert!(parse_header(b"garbage").is_err());
    }

    #[test]
    fn roundtrip_and_inspect() {
        let key = age::x25519::Identity::generate();
        let spec = RecipientSpec::AgeX25519(key.to_public().to_string());
        let enc = AgeEncryptor::new(&[spec]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.age");
        let f = std::fs::File::create(&p).unwrap();
        let mut w = enc.wrap_output(Box::new(f)).unwrap();
        w.write_all(&vec![7u8; 200_000]).unwrap();
        w.finish().unwrap();
        let info = enc.verify_written(&p).unwrap();
        assert_eq!(info.recipients, vec!["X25519"]);
        let dec = AgeDecryptor::new(vec![Box::new(key)]);
        let mut r = crate::crypto::Decryptor::decrypt(
            &dec,
            Format::Age,
            Box::new(std::fs::File::open(&p).unwrap()),
        )
        .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![7u8; 200_000]);
    }

    #[test]
    fn truncated_header_is_an_integrity_failure() {
        let key = age::x25519::Identity::generate();
        let enc =
            AgeEncryptor::new(&[RecipientSpec::AgeX25519(key.to_public().to_string())]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.age");
        let mut w = enc
            .wrap_output(Box::new(std::fs::File::create(&p).unwrap()))
            .unwrap();
        w.write_all(b"payload").unwrap();
        w.finish().unwrap();
        let out = std::fs::read(&p).unwrap();
        let cut = out.iter().position(|&b| b == b'\n').unwrap() + 10;
        let dec = AgeDecryptor::new(vec![Box::new(key)]);
        let e = crate::crypto::Decryptor::decrypt(
            &dec,
            Format::Age,
            Box::new(io::Cursor::new(out[..cut].to_vec())),
        )
        .err()
        .expect("a truncated header must not decrypt");
        assert_eq!(e.kind, crate::error::ErrorKind::Integrity, "{}", e.message);
    }
}
