//! Finding OpenPGP certificates by key id, fingerprint or user id: in a
//! `--keyring FILE` (armored or binary certificates, or a keybox), else in the
//! GnuPG home (`pubring.kbx` or the legacy `pubring.gpg`), read directly without
//! running `gpg`. Only when the home holds neither file (e.g. GnuPG 2.4 with
//! keyboxd) is `gpg --export` used, if `gpg` is installed.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sequoia_openpgp as openpgp;

use openpgp::cert::{Cert, CertParser};
use openpgp::parse::Parse;
use openpgp::{Fingerprint, KeyID};

use crate::error::{Error, IoContext, Result};

/// What to look for.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    /// A primary key or subkey id (16 hex digits).
    KeyId(KeyID),
    /// A primary key or subkey fingerprint (40 hex digits).
    Fpr(Fingerprint),
    /// A user id's e-mail address (case-insensitive).
    Email(String),
    /// A whole user id, `Name <email>` (exact match).
    UserId(String),
}

impl Query {
    /// From a normalized key id or fingerprint (16 or 40 upper-case hex digits).
    pub(crate) fn from_key_id(hex: &str) -> Result<Query> {
        let bad = || {
            Error::key(format!("{hex:?} is not an OpenPGP key id or fingerprint"))
                .hint("give 16 or 40 hex digits (a v4 key id or fingerprint)")
        };
        match hex.len() {
            16 => KeyID::from_hex(hex).map(Query::KeyId).map_err(|_| bad()),
            40 => Fingerprint::from_hex(hex)
                .map(Query::Fpr)
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    /// From `user@example.org`, `<user@example.org>` or `Name <user@example.org>`.
    pub(crate) fn from_user_id(s: &str) -> Query {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
            Query::Email(inner.trim().to_owned())
        } else if s.contains('<') {
            Query::UserId(s.to_owned())
        } else {
            Query::Email(s.to_owned())
        }
    }

    /// The argument `gpg --export` understands for this query.
    fn gpg_arg(&self) -> String {
        match self {
            Query::KeyId(id) => id.to_hex(),
            Query::Fpr(f) => f.to_hex(),
            Query::Email(e) => format!("<{e}>"),
            Query::UserId(u) => format!("={u}"),
        }
    }

    pub(crate) fn matches(&self, cert: &Cert) -> bool {
        match self {
            Query::KeyId(id) => cert.keys().any(|k| &k.key().keyid() == id),
            Query::Fpr(f) => cert.keys().any(|k| &k.key().fingerprint() == f),
            Query::Email(e) => cert.userids().any(|u| {
                u.userid()
                    .email()
                    .ok()
                    .flatten()
                    .is_some_and(|m| m.eq_ignore_ascii_case(e))
            }),
            Query::UserId(want) => cert
                .userids()
                .any(|u| u.userid().value() == want.as_bytes()),
        }
    }
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::KeyId(id) => write!(f, "{}", id.to_hex()),
            Query::Fpr(fp) => write!(f, "{}", fp.to_hex()),
            Query::Email(e) => write!(f, "<{e}>"),
            Query::UserId(u) => write!(f, "{u:?}"),
        }
    }
}

/// A place where certificates are looked up.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// `--keyring FILE`: certificates (armored or binary) or a keybox.
    File(PathBuf),
    /// `pubring.kbx` of a GnuPG home.
    Keybox(PathBuf),
    /// Legacy `pubring.gpg` of a GnuPG home.
    Legacy(PathBuf),
    /// A GnuPG home without a keyring file: ask `gpg --export`.
    GpgExport(PathBuf),
    /// A GnuPG home without a keyring and no `gpg`: nothing to find.
    Nothing(PathBuf),
}

/// `$GNUPGHOME`, else `~/.gnupg`.
pub(crate) fn gnupg_home() -> PathBuf {
    if let Some(h) = std::env::var_os("GNUPGHOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".gnupg")
}

/// Whether a `gpg` binary can be run.
pub(crate) fn gpg_available() -> bool {
    Command::new("gpg")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Store {
    /// The store for `--keyring` if given, else for the GnuPG home `home`.
    pub(crate) fn new(keyring: Option<&Path>, home: &Path) -> Store {
        if let Some(k) = keyring {
            return Store::File(k.to_owned());
        }
        let kbx = home.join("pubring.kbx");
        if kbx.is_file() {
            return Store::Keybox(kbx);
        }
        let gpg = home.join("pubring.gpg");
        if gpg.is_file() {
            return Store::Legacy(gpg);
        }
        // (gpg would create a missing home: only ask it about an existing one)
        if home.is_dir() && gpg_available() {
            Store::GpgExport(home.to_owned())
        } else {
            Store::Nothing(home.to_owned())
        }
    }

    /// Where we looked, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Store::File(p) | Store::Keybox(p) | Store::Legacy(p) => p.display().to_string(),
            Store::GpgExport(h) => format!("the GnuPG home {} (via gpg --export)", h.display()),
            Store::Nothing(h) => format!(
                "the GnuPG home {} (it has no pubring.kbx or pubring.gpg)",
                h.display()
            ),
        }
    }

    /// For each query, the certificates of this store that match it.
    pub(crate) fn search(&self, queries: &[Query]) -> Result<Vec<Vec<Cert>>> {
        let mut found: Vec<Vec<Cert>> = vec![Vec::new(); queries.len()];
        let mut visit = |cert: Cert| {
            for (i, q) in queries.iter().enumerate() {
                if q.matches(&cert)
                    && !found[i]
                        .iter()
                        .any(|c| c.fingerprint() == cert.fingerprint())
                {
                    found[i].push(cert.clone());
                }
            }
        };
        match self {
            Store::File(path) => {
                if is_keybox(path)? {
                    for_each_in_keybox(path, &mut visit)?;
                } else {
                    for_each_in_file(path, &mut visit)?;
                }
            }
            Store::Keybox(path) => for_each_in_keybox(path, &mut visit)?,
            Store::Legacy(path) => for_each_in_file(path, &mut visit)?,
            Store::GpgExport(home) => {
                for q in queries {
                    for cert in gpg_export(home, &q.gpg_arg())? {
                        visit(cert);
                    }
                }
            }
            Store::Nothing(_) => {}
        }
        Ok(found)
    }
}

/// Whether `path` is a GnuPG keybox (`KBXf` magic in the first blob).
fn is_keybox(path: &Path) -> Result<bool> {
    // a FIFO or device as --keyring is refused, never waited on
    let (mut f, _) = crate::crypto::open_regular(path, "keyring")?;
    let mut head = [0u8; 12];
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..]).at("reading keyring", path)?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n == 12 && &head[8..12] == b"KBXf")
}

fn bad_keyring(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::key(format!("cannot read the keyring {}: {e}", path.display()))
        .hint("give a file of OpenPGP certificates (`gpg --export --armor ID > certs.asc`) or a GnuPG pubring.kbx")
}

/// Calls `visit` for each certificate of a file of certificates (armored or
/// binary, including a legacy `pubring.gpg`). Broken certificates are skipped.
fn for_each_in_file(path: &Path, visit: &mut dyn FnMut(Cert)) -> Result<()> {
    let f = File::open(path).at("opening keyring", path)?;
    if f.metadata().at("reading metadata of", path)?.len() == 0 {
        return Ok(());
    }
    let parser = CertParser::from_reader(BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| bad_keyring(path, e))?;
    for cert in parser.flatten() {
        visit(cert);
    }
    Ok(())
}

/// Calls `visit` for each OpenPGP certificate of a keybox.
fn for_each_in_keybox(path: &Path, visit: &mut dyn FnMut(Cert)) -> Result<()> {
    use sequoia_ipc::keybox::{Keybox, KeyboxRecord};
    let f = File::open(path).at("opening keyring", path)?;
    let kbx = Keybox::from_reader(BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| bad_keyring(path, e))?;
    for record in kbx {
        // A damaged record ends the walk (lengths can no longer be trusted).
        let Ok(record) = record else { break };
        if let KeyboxRecord::OpenPGP(r) = record {
            if let Ok(cert) = r.cert() {
                visit(cert);
            }
        }
    }
    Ok(())
}

/// `gpg --homedir HOME --export ARG`, parsed. An unknown key gives no certificate.
pub(crate) fn gpg_export(home: &Path, arg: &str) -> Result<Vec<Cert>> {
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--no-tty", "--quiet", "--export", "--", arg])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| Error::operational(format!("running gpg --export: {e}")))?;
    if out.stdout.is_empty() {
        return Ok(vec![]);
    }
    let parser = CertParser::from_bytes(&out.stdout)
        .map_err(|e| Error::operational(format!("parsing the output of gpg --export: {e}")))?;
    Ok(parser.flatten().collect())
}
