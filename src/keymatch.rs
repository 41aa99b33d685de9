//! Which key opens an archive (README "Which key opens an archive"), told
//! without decrypting anything.
//!
//! An archive's recipients come from its `<archive>.meta` ([`crate::meta`]:
//! age public keys, ssh public keys, OpenPGP primary fingerprints with the
//! subkey ids), else from its header (age stanza types, which for X25519
//! identify nobody; ssh stanza tags; OpenPGP subkey ids, mapped to a primary
//! fingerprint when a certificate at hand has that subkey). Identities given
//! with `-i` are described the same way ([`Holder`]: an age identity's public
//! key, an ssh key's public half, an OpenPGP secret key's fingerprint and key
//! ids) without asking for any passphrase, so that `verify`, `restore` and
//! `drill` can say which recipient an identity is, or why none of them is
//! ([`judge`]), and `drill` can pick the newest archive the identities open.
//!
//! The `.meta` is a hint anyone who can write the destination can edit:
//! [`check_meta`] compares it with the recipients of the authenticated
//! manifest at `restore` and `verify -i`; a difference is an integrity
//! failure (exit 3) naming both.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::crypto::{Format, HeaderInfo, Identities};
use crate::error::{Error, Result};
use crate::meta::{Meta, Recipient};

/// The recipients of one archive, and where they were read.
#[derive(Debug, Clone, Serialize)]
pub struct Recipients {
    /// `meta` (the `.meta` beside the archive) or `header` (the ciphertext's
    /// own header: less precise).
    pub from: &'static str,
    pub list: Vec<Recipient>,
}

impl Recipients {
    /// One line per recipient, as `verify` and `list` print them.
    pub fn lines(&self) -> Vec<String> {
        self.list.iter().map(line).collect()
    }
}

/// A recipient on one line: `age1…`, `ssh-ed25519 AAAA…`, `openpgp <primary
/// fingerprint> (subkey <id>)`, or what the header alone tells.
pub fn line(r: &Recipient) -> String {
    match (r.kind.as_str(), &r.subkey) {
        ("openpgp", Some(s)) if r.id.is_empty() => format!("openpgp subkey {s}"),
        ("openpgp", Some(s)) => format!("openpgp {} (subkey {s})", r.id),
        ("openpgp", None) => format!("openpgp {}", r.id),
        (_, _) => r.id.clone(),
    }
}

/// Reads and checks `<archive>.meta` beside a local archive; `None` when
/// there is none. A damaged or planted one is an error (integrity).
pub fn read_meta(archive: &Path) -> Result<Option<Meta>> {
    let mut p = archive.as_os_str().to_owned();
    p.push(crate::meta::SUFFIX);
    let path = PathBuf::from(p);
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match std::fs::symlink_metadata(&path) {
        Err(_) => return Ok(None),
        Ok(m) if !m.is_file() => return Ok(None),
        Ok(_) => {}
    }
    let bytes =
        crate::crypto::read_bounded(&path, "archive description", crate::meta::MAX_LEN as u64)?;
    Meta::parse(&bytes, &name, &path.display().to_string()).map(Some)
}

/// The recipients of a local archive: its `.meta`, else its header `info`.
/// `certs` (primary fingerprint, subkey ids) map OpenPGP subkey ids of a
/// header to their certificate.
pub fn recipients(
    archive: &Path,
    info: &HeaderInfo,
    certs: &[(String, Vec<String>)],
) -> Recipients {
    if let Ok(Some(m)) = read_meta(archive) {
        if !m.recipients.is_empty() || !info.format.is_encrypted() {
            return Recipients {
                from: "meta",
                list: m.recipients,
            };
        }
    }
    from_header(info, certs)
}

/// The recipient lines of a local archive's `.meta` (empty without a
/// readable one): what `list` prints.
pub fn meta_keys(archive: &Path) -> Vec<String> {
    match read_meta(archive) {
        Ok(Some(m)) => m.recipients.iter().map(line).collect(),
        _ => Vec::new(),
    }
}

/// What the header alone tells (no `.meta`).
pub fn from_header(info: &HeaderInfo, certs: &[(String, Vec<String>)]) -> Recipients {
    let pgp = matches!(info.format, Format::OpenPgp | Format::OpenPgpArmored);
    let list = info
        .recipients
        .iter()
        .map(|r| {
            if pgp && r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
                let primary = certs
                    .iter()
                    .find(|(_, subs)| subs.iter().any(|s| s.eq_ignore_ascii_case(r)))
                    .map(|(f, _)| f.clone())
                    .unwrap_or_default();
                Recipient {
                    kind: "openpgp".into(),
                    id: primary,
                    subkey: Some(r.to_uppercase()),
                }
            } else {
                let kind = if pgp {
                    "openpgp"
                } else if r.starts_with("ssh-") {
                    "ssh"
                } else {
                    "age"
                };
                Recipient {
                    kind: kind.into(),
                    id: if r == "X25519" {
                        "X25519 (an age key; the header does not say which)".into()
                    } else {
                        r.clone()
                    },
                    subkey: None,
                }
            }
        })
        .collect();
    Recipients {
        from: "header",
        list,
    }
}

/// One identity file, as far as its public parts tell.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Holder {
    pub path: PathBuf,
    /// age1… public keys of its X25519 identities.
    pub age: Vec<String>,
    /// `ssh-<type> <base64>` of an ssh private key.
    pub ssh: Vec<String>,
    /// OpenPGP: primary fingerprint and every key id (primary and subkeys).
    pub openpgp: Vec<(String, Vec<String>)>,
    /// Whether it holds keys whose public part cannot be read here (a
    /// passphrase-protected age identity file, a plugin identity, an ssh key
    /// in a format not parsed here): such an identity is tried.
    pub opaque: bool,
}

impl Holder {
    /// What this identity is, on one line.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.age.clone();
        parts.extend(self.ssh.iter().map(|s| crate::text::cut(s, 40)));
        parts.extend(self.openpgp.iter().map(|(f, _)| format!("openpgp {f}")));
        if self.opaque {
            parts.push("an age identity whose public key cannot be read (passphrase-protected or a plugin)".into());
        }
        if parts.is_empty() {
            parts.push("no key this tool can read".into());
        }
        format!("{} ({})", self.path.display(), parts.join(", "))
    }

    fn has_age(&self) -> bool {
        !self.age.is_empty() || !self.ssh.is_empty() || self.opaque
    }

    /// Whether this identity is recipient `r`. `None`: cannot tell.
    fn is(&self, r: &Recipient) -> Option<bool> {
        match r.kind.as_str() {
            "age" if r.id.starts_with("age1") => {
                if self.age.contains(&r.id) {
                    Some(true)
                } else if self.opaque {
                    None
                } else {
                    Some(false)
                }
            }
            "age" => None,
            "ssh" if self.opaque => None,
            "ssh" => {
                let mut f = r.id.split_whitespace();
                let (t, key) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
                if key.len() <= 8 {
                    // a header's stanza tag: SHA-256 of the key, 4 bytes
                    return Some(self.ssh.iter().any(|s| ssh_tag(s).as_deref() == Some(key)));
                }
                Some(self.ssh.iter().any(|s| s == &format!("{t} {key}")))
            }
            "openpgp" => Some(self.openpgp.iter().any(|(f, ids)| {
                (!r.id.is_empty() && f.eq_ignore_ascii_case(&r.id))
                    || r.subkey
                        .as_ref()
                        .is_some_and(|s| ids.iter().any(|i| i.eq_ignore_ascii_case(s)))
            })),
            _ => None,
        }
    }
}

/// The holders of the identities given.
pub fn holders(ids: &Identities) -> Vec<Holder> {
    ids.files().map(|(p, d)| holder(p, d)).collect()
}

/// Describes one identity file's public parts (no passphrase asked).
pub fn holder(path: &Path, data: &[u8]) -> Holder {
    let mut h = Holder {
        path: path.to_owned(),
        ..Holder::default()
    };
    if crate::crypto::openpgp::is_secret_key_start(data) {
        h.openpgp = openpgp_ids(data);
        return h;
    }
    let text = String::from_utf8_lossy(data);
    if text.contains("PRIVATE KEY-----") {
        // an ssh key: its public half, when the format tells it
        match ssh_key::PrivateKey::from_openssh(text.trim())
            .ok()
            .and_then(|k| k.public_key().to_openssh().ok())
        {
            Some(p) => h
                .ssh
                .push(p.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
            None => h.opaque = true,
        }
        return h;
    }
    if text.contains("-----BEGIN AGE ENCRYPTED FILE-----")
        || data.starts_with(b"age-encryption.org/")
    {
        h.opaque = true;
        return h;
    }
    for l in text.lines().map(str::trim) {
        if l.starts_with("AGE-PLUGIN-") {
            // a plugin's identity (a hardware key): its recipient is not derivable here
            h.opaque = true;
        }
        if l.starts_with("AGE-SECRET-KEY-") {
            if let Ok(id) = l.parse::<age::x25519::Identity>() {
                let public = id.to_public().to_string();
                if !h.age.contains(&public) {
                    h.age.push(public);
                }
            }
        }
    }
    h
}

fn openpgp_ids(data: &[u8]) -> Vec<(String, Vec<String>)> {
    use sequoia_openpgp::cert::CertParser;
    use sequoia_openpgp::parse::Parse;
    let Ok(parser) = CertParser::from_bytes(data) else {
        return vec![];
    };
    parser
        .flatten()
        .map(|c| {
            let ids = c.keys().map(|k| k.key().keyid().to_hex()).collect();
            (c.fingerprint().to_hex(), ids)
        })
        .collect()
}

/// The tag age writes in an ssh stanza: the first 4 bytes of the SHA-256 of
/// the key's wire encoding, base64 without padding.
fn ssh_tag(line: &str) -> Option<String> {
    use sha2::Digest;
    let k = ssh_key::PublicKey::from_openssh(line).ok()?;
    let wire = k.to_bytes().ok()?;
    let d = sha2::Sha256::digest(&wire);
    Some(b64_nopad(&d[..4]))
}

fn b64_nopad(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Whether the identities given can open an archive, told keylessly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "verdict", content = "detail")]
pub enum Verdict {
    /// These recipients (lines) are among the identities.
    Opens(Vec<String>),
    /// Cannot be told (an anonymous age header, a protected age identity).
    Unknown,
    /// None of the identities is a recipient: why.
    Cannot(String),
}

/// Judges whether `holders` open an archive of `format` made for `rs`.
pub fn judge(format: Format, rs: &Recipients, holders: &[Holder]) -> Verdict {
    if !format.is_encrypted() || holders.is_empty() {
        return Verdict::Unknown;
    }
    let pgp = matches!(format, Format::OpenPgp | Format::OpenPgpArmored);
    let usable: Vec<&Holder> = holders
        .iter()
        .filter(|h| {
            if pgp {
                !h.openpgp.is_empty()
            } else {
                h.has_age()
            }
        })
        .collect();
    let given = holders
        .iter()
        .map(Holder::describe)
        .collect::<Vec<_>>()
        .join("; ");
    if usable.is_empty() {
        return Verdict::Cannot(format!(
            "it is {}-encrypted and no {} identity was given (given: {given})",
            format.family(),
            if pgp { "OpenPGP" } else { "age or ssh" }
        ));
    }
    let mut opens = Vec::new();
    let mut unknown = false;
    for r in &rs.list {
        let mut this = Some(false);
        for h in &usable {
            match h.is(r) {
                Some(true) => {
                    this = Some(true);
                    break;
                }
                None => this = None,
                Some(false) => {}
            }
        }
        match this {
            Some(true) => opens.push(line(r)),
            None => unknown = true,
            Some(false) => {}
        }
    }
    if !opens.is_empty() {
        Verdict::Opens(opens)
    } else if unknown || rs.list.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Cannot(format!(
            "it was made for {} and the identities given are {given}",
            rs.lines().join(", ")
        ))
    }
}

/// Compares the recipients a `.meta` claims with those of the
/// authenticated manifest (`manifest`: the manifest's recipient lines:
/// age1…/ssh keys, `<fingerprint> <user id>` for OpenPGP). A difference is
/// an integrity failure naming both.
pub fn check_meta(archive: &Path, manifest: &[String]) -> Result<()> {
    let Some(meta) = read_meta(archive)? else {
        return Ok(());
    };
    // a rotated archive: the manifest names the recipients of backup time
    let named = match meta.backup_recipients.is_empty() {
        true => &meta.recipients,
        false => &meta.backup_recipients,
    };
    if named.is_empty() && manifest.is_empty() {
        return Ok(());
    }
    let key = |r: &Recipient| r.id.to_ascii_uppercase();
    let mut claimed: Vec<String> = named.iter().map(key).collect();
    claimed.sort();
    claimed.dedup();
    let mut inside: Vec<String> = manifest
        .iter()
        .map(|l| {
            if l.starts_with("ssh-") {
                l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            } else if l.starts_with("age1") {
                l.clone()
            } else {
                // OpenPGP: `<fingerprint> <user id>`
                l.split_whitespace().next().unwrap_or("").to_owned()
            }
        })
        .map(|s| s.to_ascii_uppercase())
        .collect();
    inside.sort();
    inside.dedup();
    if claimed == inside {
        return Ok(());
    }
    let mut p = archive.as_os_str().to_owned();
    p.push(crate::meta::SUFFIX);
    Err(Error::integrity(format!(
        "{}: its .meta names the recipients [{}], but the archive's authenticated manifest names [{}]",
        archive.display(),
        named.iter().map(line).collect::<Vec<_>>().join(", "),
        manifest.join(", ")
    ))
    .hint(format!(
        "the description {} was edited or belongs to another archive; the manifest is what the archive holds: remove or rewrite the .meta, and check who can write the destination",
        PathBuf::from(p).display()
    )))
}

/// Makes a failure of reading `archive` name it: an integrity or key error
/// that does not mention the archive yet gets its path in front, and a key
/// error says which recipients the archive was made for and what the
/// identities given are, when that can be told without a key.
pub fn name_failure(e: Error, archive: &Path, ids: Option<&Identities>) -> Error {
    use crate::error::ErrorKind;
    if !matches!(e.kind, ErrorKind::Integrity | ErrorKind::Key) {
        return e;
    }
    let shown = archive.display().to_string();
    let mut e = e;
    if !e.message.contains(&shown) {
        e.message = format!("{shown}: {}", e.message);
    }
    if e.kind == ErrorKind::Key {
        if let Some(ids) = ids {
            let hs = holders(ids);
            if let Ok(info) = crate::crypto::inspect(archive) {
                let rs = recipients(archive, &info, &[]);
                if let Verdict::Cannot(why) = judge(info.format, &rs, &hs) {
                    e.message = format!("{} ({why})", e.message);
                }
            }
        }
    }
    e
}

/// Which recipients of `archive` the identities given are, as lines
/// `<identity file> is <recipient>` (empty when it cannot be told).
pub fn opened_by(archive: &Path, info: &HeaderInfo, ids: &Identities) -> Vec<String> {
    let rs = recipients(archive, info, &[]);
    let mut out = Vec::new();
    for h in holders(ids) {
        for r in &rs.list {
            if h.is(r) == Some(true) {
                out.push(format!("{} is {}", h.path.display(), line(r)));
            }
        }
    }
    out
}

/// The error for `-i DIR`: a directory (as `keygen --out` makes) is not an
/// identity; it names the key files inside that are.
pub fn identity_dir_error(dir: &Path) -> Error {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let keyish = name == crate::keygen::AGE_KEY
                        || name == crate::keygen::PGP_SEC
                        || name.ends_with(".key")
                        || name.ends_with(".sec.asc")
                        || name.starts_with("id_") && !name.ends_with(".pub");
                    (keyish && name != crate::keygen::SIGNING_KEY)
                        .then(|| dir.join(name).display().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let hint = if found.is_empty() {
        "pass the identity file itself (age identity, SSH private key or OpenPGP secret key), not a directory".to_owned()
    } else {
        format!("pass the key file inside it: -i {}", found.join(" or -i "))
    };
    Error::usage(format!(
        "the identity {} is a directory, not a key file",
        crate::text::Safe(dir)
    ))
    .hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-example")
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(b64_nopad(b"\x00\x00\x00\x00"), "AAAAAA");
        assert_eq!(b64_nopad(b"abcd"), "YWJjZA");
        assert_eq!(b64_nopad(b"abc"), "YWJj");
    }

    #[test]
    fn holders_tell_their_public_keys() {
        let age = std::fs::read(keys().join("age-example.key")).unwrap();
        let h = holder(Path::new("k"), &age);
        let public = std::fs::read_to_string(keys().join("age-example.pub")).unwrap();
        assert_eq!(h.age, vec![public.trim().to_owned()]);
        let pgp = std::fs::read(keys().join("openpgp-example.sec.asc")).unwrap();
        let h = holder(Path::new("p"), &pgp);
        assert_eq!(h.openpgp.len(), 1);
        assert_eq!(h.openpgp[0].0.len(), 40);
        assert!(h.openpgp[0].1.len() >= 2, "{h:?}");
    }

    #[test]
    fn judging_by_format_meta_and_header() {
        let age_pub = std::fs::read_to_string(keys().join("age-example.pub")).unwrap();
        let age = holder(
            Path::new("age.key"),
            &std::fs::read(keys().join("age-example.key")).unwrap(),
        );
        let pgp_h = holder(
            Path::new("pgp.asc"),
            &std::fs::read(keys().join("openpgp-example.sec.asc")).unwrap(),
        );
        let meta = |id: &str| Recipients {
            from: "meta",
            list: vec![Recipient {
                kind: "age".into(),
                id: id.into(),
                subkey: None,
            }],
        };
        assert_eq!(
            judge(
                Format::Age,
                &meta(age_pub.trim()),
                std::slice::from_ref(&age)
            ),
            Verdict::Opens(vec![age_pub.trim().to_owned()])
        );
        let other = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        assert!(matches!(
            judge(Format::Age, &meta(other), std::slice::from_ref(&age)),
            Verdict::Cannot(m) if m.contains(other)
        ));
        // an OpenPGP archive with only an age identity: cannot, by format
        let header = HeaderInfo {
            format: Format::OpenPgp,
            recipients: vec![pgp_h.openpgp[0].1[1].clone()],
            length: 0,
        };
        let rs = from_header(&header, &[]);
        assert!(matches!(
            judge(Format::OpenPgp, &rs, std::slice::from_ref(&age)),
            Verdict::Cannot(_)
        ));
        assert!(matches!(
            judge(Format::OpenPgp, &rs, std::slice::from_ref(&pgp_h)),
            Verdict::Opens(_)
        ));
        // a subkey id mapped to its primary fingerprint when the certificate is at hand
        let rs = from_header(&header, &pgp_h.openpgp);
        assert_eq!(rs.list[0].id, pgp_h.openpgp[0].0);
        // an anonymous age header: cannot tell
        let header = HeaderInfo {
            format: Format::Age,
            recipients: vec!["X25519".into()],
            length: 0,
        };
        assert_eq!(
            judge(
                Format::Age,
                &from_header(&header, &[]),
                std::slice::from_ref(&age)
            ),
            Verdict::Unknown
        );
    }
}
