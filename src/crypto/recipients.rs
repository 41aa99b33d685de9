//! Recipient specifications (`-r` / `SECURECLAW_BACKUP_KEY`, DESIGN §3): splitting,
//! classification into age or OpenPGP, and construction of the [`Encryptor`].
//!
//! It also recognises secret key material given where a recipient belongs (an
//! age or plugin identity, an SSH/PEM private key, an OpenPGP secret key,
//! pasted in `-r`, in `SECURECLAW_BACKUP_KEY` or in a recipients file) and
//! refuses it without ever echoing it; other values that are not recipients
//! are quoted cut short and made printable ([`crate::ui::cut`]).

use std::path::{Path, PathBuf};

use crate::crypto::{age::AgeEncryptor, openpgp::PgpEncryptor, Encryptor};
use crate::error::{Error, Result};

/// The largest recipients or certificate file read.
pub const MAX_RECIPIENTS_FILE: u64 = 4 * 1024 * 1024;

/// What kind of secret key a value is, and how to get its public half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Age,
    AgePlugin,
    Ssh,
    OpenPgp,
}

impl SecretKind {
    fn describe(self) -> &'static str {
        match self {
            SecretKind::Age => "an age identity (AGE-SECRET-KEY-1…)",
            SecretKind::AgePlugin => "an age plugin identity (AGE-PLUGIN-…)",
            SecretKind::Ssh => "a private key (-----BEGIN … PRIVATE KEY-----)",
            SecretKind::OpenPgp => "an OpenPGP secret key",
        }
    }
    fn fix(self) -> &'static str {
        match self {
            SecretKind::Age => "give its public key instead: `age-keygen -y IDENTITY_FILE` prints the age1… recipient",
            SecretKind::AgePlugin => "give the plugin's recipient (age1…) instead, as printed by the plugin when the identity was made",
            SecretKind::Ssh => "give its public key instead: `ssh-keygen -y -f KEY_FILE` prints the ssh-ed25519/ssh-rsa line",
            SecretKind::OpenPgp => "give its certificate or fingerprint instead: `gpg --export --armor KEYID > cert.asc`, or the 40-hex-digit fingerprint",
        }
    }
}

/// Recognises secret key material in the contents of a file: what
/// [`secret_kind`] finds in text, and binary OpenPGP secret-key packets
/// (tags 5 and 7, new or old packet format) at its start.
pub fn secret_kind_in_file(data: &[u8]) -> Option<SecretKind> {
    let first = data.first().copied();
    if first.is_some_and(|b| matches!(b, 0xC5 | 0xC7) || (b & 0xFC) == 0x94 || (b & 0xFC) == 0x9C) {
        return Some(SecretKind::OpenPgp);
    }
    secret_kind(data)
}

/// Recognises secret key material in text: age and age-plugin identities,
/// PEM/OpenSSH private keys, armored OpenPGP secret keys.
pub fn secret_kind(data: &[u8]) -> Option<SecretKind> {
    let up = data.to_ascii_uppercase();
    let has = |n: &[u8]| up.windows(n.len()).any(|w| w == n);
    if has(b"AGE-SECRET-KEY-1") {
        return Some(SecretKind::Age);
    }
    if has(b"AGE-PLUGIN-") {
        return Some(SecretKind::AgePlugin);
    }
    if has(b"-----BEGIN PGP PRIVATE KEY BLOCK-----") {
        return Some(SecretKind::OpenPgp);
    }
    if let Some(i) = up.windows(11).position(|w| w == b"-----BEGIN ") {
        if up[i..].windows(16).any(|w| w == b"PRIVATE KEY-----") {
            return Some(SecretKind::Ssh);
        }
    }
    None
}

/// The error for secret material found in `where_` (never its content).
pub fn secret_error(kind: SecretKind, where_: &str) -> Error {
    Error::key(format!(
        "{where_} is {}, a secret key, not a recipient: backups need only a PUBLIC key (the value is not shown)",
        kind.describe()
    ))
    .hint(format!(
        "{}; and since the secret key was typed or stored where public keys go, check that it did not end up in shell history or a shared file",
        kind.fix()
    ))
}

/// How an unrecognised value is quoted in a message: cut short, printable,
/// and not at all when it looks like key material (a long base64 run).
pub fn quote_value(s: &str) -> String {
    let t = s.trim();
    let b64 = t.len() >= 32
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
    if b64 {
        format!(
            "a {}-character encoded value (not shown)",
            t.chars().count()
        )
    } else {
        format!("\"{}\"", crate::ui::cut(t, 80))
    }
}

/// One recipient, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientSpec {
    /// `age1…` X25519 recipient.
    AgeX25519(String),
    /// `ssh-ed25519 …` or `ssh-rsa …` public key.
    AgeSsh(String),
    /// A file of age recipients, one per line, `#` comments.
    AgeFile(PathBuf),
    /// 16 or 40 hex digits, normalized to upper case without `0x` or spaces.
    PgpKeyId(String),
    /// An e-mail address or `<user@example.org>` user id.
    PgpUserId(String),
    /// A file holding OpenPGP certificate(s), armored or binary.
    PgpFile(PathBuf),
}

impl RecipientSpec {
    pub fn is_age(&self) -> bool {
        matches!(
            self,
            RecipientSpec::AgeX25519(_) | RecipientSpec::AgeSsh(_) | RecipientSpec::AgeFile(_)
        )
    }
}

/// Splits values on commas and newlines (an SSH key contains spaces, so spaces
/// do not separate), trimming blanks and dropping empty parts.
/// A comma inside an SSH key's comment does not separate: a piece that cannot
/// start a recipient is joined back onto a preceding `ssh-…` key.
pub fn split_specs(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in values.iter().flat_map(|v| v.split('\n')) {
        let mut ssh_open = false;
        for piece in line.split(',') {
            let t = piece.trim();
            if ssh_open && !t.is_empty() && !starts_a_recipient(t) {
                if let Some(last) = out.last_mut() {
                    last.push(',');
                    last.push_str(piece.trim_end());
                    continue;
                }
            }
            ssh_open = t.starts_with("ssh-");
            if !t.is_empty() {
                out.push(t.to_owned());
            }
        }
    }
    out
}

fn starts_a_recipient(t: &str) -> bool {
    t.starts_with("age1")
        || t.starts_with("ssh-")
        || t.contains('@')
        || t.starts_with('<')
        || t.contains('/')
        || normalize_key_id(t).is_some()
        || Path::new(t).exists()
}

/// Normalizes a key id or fingerprint: strips `0x` and spaces; `None` unless it
/// is 16 or 40 hex digits.
pub fn normalize_key_id(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    ((hex.len() == 16 || hex.len() == 40) && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_uppercase())
}

/// Classifies one recipient string.
pub fn classify(s: &str) -> Result<RecipientSpec> {
    let s = s.trim();
    if s.starts_with("age1") && !s.contains(char::is_whitespace) {
        return Ok(RecipientSpec::AgeX25519(s.to_owned()));
    }
    if s.starts_with("ssh-ed25519 ") || s.starts_with("ssh-rsa ") {
        return Ok(RecipientSpec::AgeSsh(s.to_owned()));
    }
    if let Some(id) = normalize_key_id(s) {
        return Ok(RecipientSpec::PgpKeyId(id));
    }
    if let Some(kind) = secret_kind(s.as_bytes()) {
        return Err(secret_error(kind, "a recipient given"));
    }
    let path = Path::new(s);
    if path.is_file() {
        let head = crate::crypto::read_head(path)?;
        if let Some(kind) = secret_kind_in_file(&head) {
            return Err(secret_error(
                kind,
                &format!("recipients file {}", crate::ui::Safe(path)),
            ));
        }
        return Ok(if crate::crypto::openpgp::is_certificate_start(&head) {
            RecipientSpec::PgpFile(path.to_owned())
        } else {
            RecipientSpec::AgeFile(path.to_owned())
        });
    }
    if s.contains('@') && !s.contains(char::is_whitespace)
        || (s.starts_with('<') && s.ends_with('>'))
    {
        return Ok(RecipientSpec::PgpUserId(s.to_owned()));
    }
    if s.contains('@') {
        // "Name <user@example.org>"
        return Ok(RecipientSpec::PgpUserId(s.to_owned()));
    }
    Err(Error::key(format!("recipient {} is not a recipient this tool understands", quote_value(s)))
        .hint("use an age1… key, an ssh-ed25519/ssh-rsa public key, an OpenPGP key id (16 or 40 hex digits), an e-mail, or the path of a recipients/certificate file"))
}

/// Builds the encryptor for the given recipient values (already taken from `-r`
/// or `SECURECLAW_BACKUP_KEY`). Mixing age and OpenPGP recipients is a usage error.
pub fn parse_recipients(values: &[String], keyring: Option<&Path>) -> Result<Box<dyn Encryptor>> {
    // a pasted PEM block is split on its newlines below: look at it whole first
    for v in values {
        if let Some(kind) = secret_kind(v.as_bytes()) {
            return Err(secret_error(kind, "a recipient given"));
        }
    }
    let specs = split_specs(values)
        .iter()
        .map(|s| classify(s))
        .collect::<Result<Vec<_>>>()?;
    if specs.is_empty() {
        return Err(Error::key("no recipient given: refusing to write an unencrypted archive")
            .hint("pass -r RECIPIENT (age1…, ssh key, OpenPGP key id) or set SECURECLAW_BACKUP_KEY; --insecure-plaintext writes an unencrypted archive on purpose"));
    }
    let age = specs.iter().filter(|s| s.is_age()).count();
    if age != 0 && age != specs.len() {
        return Err(Error::usage(
            "age and OpenPGP recipients are mixed: one archive uses one format",
        )
        .hint("give only age recipients (age1…, ssh keys, recipients files) or only OpenPGP ones (key ids, e-mails, certificate files)"));
    }
    if age != 0 {
        Ok(Box::new(AgeEncryptor::new(&specs)?))
    } else {
        Ok(Box::new(PgpEncryptor::new(&specs, keyring)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_commas_and_newlines_not_spaces() {
        let v = vec!["age1abc, ssh-ed25519 AAAA comment\nDEADBEEFDEADBEEF".to_owned()];
        assert_eq!(
            split_specs(&v),
            vec!["age1abc", "ssh-ed25519 AAAA comment", "DEADBEEFDEADBEEF"]
        );
        let v = vec!["ssh-ed25519 AAAA me, at work,age1x".to_owned()];
        assert_eq!(
            split_specs(&v),
            vec!["ssh-ed25519 AAAA me, at work", "age1x"]
        );
    }

    #[test]
    fn key_ids_normalize() {
        assert_eq!(
            normalize_key_id("0xdeadbeefdeadbeef").as_deref(),
            Some("DEADBEEFDEADBEEF")
        );
        assert_eq!(
            normalize_key_id("ABCD ABCD ABCD ABCD ABCD  ABCD ABCD ABCD ABCD ABCD").map(|s| s.len()),
            Some(40)
        );
        assert_eq!(normalize_key_id("DEADBEEF"), None);
        assert_eq!(normalize_key_id("xyzxyzxyzxyzxyzx"), None);
    }

    #[test]
    fn classification() {
        assert!(matches!(
            classify("age1qqq").unwrap(),
            RecipientSpec::AgeX25519(_)
        ));
        assert!(matches!(
            classify("ssh-ed25519 AAAA x").unwrap(),
            RecipientSpec::AgeSsh(_)
        ));
        assert!(matches!(
            classify("ops@example.org").unwrap(),
            RecipientSpec::PgpUserId(_)
        ));
        assert!(matches!(
            classify("<ops@example.org>").unwrap(),
            RecipientSpec::PgpUserId(_)
        ));
        assert!(classify("hello world").is_err());
    }

    #[test]
    fn secret_material_is_recognised_and_never_echoed() {
        let age = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let cases: Vec<(String, SecretKind)> = vec![
            (age.to_owned(), SecretKind::Age),
            (age.to_ascii_lowercase(), SecretKind::Age),
            ("AGE-PLUGIN-YUBIKEY-1QQQQQQQQQ".into(), SecretKind::AgePlugin),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----".into(),
                SecretKind::Ssh,
            ),
            ("-----BEGIN EC PRIVATE KEY-----".into(), SecretKind::Ssh),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxcLYBGZ".into(),
                SecretKind::OpenPgp,
            ),
        ];
        for (v, kind) in cases {
            assert_eq!(secret_kind(v.as_bytes()), Some(kind), "{v}");
            let e = parse_recipients(std::slice::from_ref(&v), None)
                .err()
                .unwrap();
            assert_eq!(e.kind, crate::error::ErrorKind::Key);
            let text = format!("{} {}", e.message, e.hint.clone().unwrap_or_default());
            assert!(!text.contains(&v[8..20]), "{text}");
            assert!(text.contains("not a recipient"), "{text}");
        }
        assert_eq!(
            secret_kind_in_file(&[0xC5, 0x01]),
            Some(SecretKind::OpenPgp)
        );
        assert_eq!(
            secret_kind_in_file(&[0x95, 0x01]),
            Some(SecretKind::OpenPgp)
        );
        assert_eq!(secret_kind(b"age1qqqq"), None);
        assert_eq!(secret_kind("łukasz@example.org".as_bytes()), None);
        assert_eq!(
            secret_kind_in_file(&[0xC6, 0x01]),
            None,
            "a public key packet"
        );
    }

    #[test]
    fn long_bad_values_are_cut() {
        let v = "z ".repeat(50_000);
        let e = classify(&v).err().unwrap();
        assert!(e.message.len() < 300, "{}", e.message.len());
        let e = classify(&"Q".repeat(60)).err().unwrap();
        assert!(!e.message.contains(&"Q".repeat(20)), "{}", e.message);
    }

    #[test]
    fn mixing_is_a_usage_error() {
        let e = parse_recipients(
            &[
                "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p,DEADBEEFDEADBEEF"
                    .into(),
            ],
            None,
        )
        .err()
        .unwrap();
        assert_eq!(e.kind, crate::error::ErrorKind::Usage);
    }
}
