//! Recipient specifications (`-r` / `SECURECLAW_BACKUP_KEY`, DESIGN §3): splitting,
//! classification into age or OpenPGP, and construction of the [`Encryptor`].

use std::path::{Path, PathBuf};

use crate::crypto::{age::AgeEncryptor, openpgp::PgpEncryptor, Encryptor};
use crate::error::{Error, Result};

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
    let path = Path::new(s);
    if path.is_file() {
        let head = crate::crypto::read_head(path)?;
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
    Err(Error::key(format!("recipient {s:?} is not a recipient this tool understands"))
        .hint("use an age1… key, an ssh-ed25519/ssh-rsa public key, an OpenPGP key id (16 or 40 hex digits), an e-mail, or the path of a recipients/certificate file"))
}

/// Builds the encryptor for the given recipient values (already taken from `-r`
/// or `SECURECLAW_BACKUP_KEY`). Mixing age and OpenPGP recipients is a usage error.
pub fn parse_recipients(values: &[String], keyring: Option<&Path>) -> Result<Box<dyn Encryptor>> {
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
