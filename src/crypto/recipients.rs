//! Recipient parsing (`-r` / `SECURECLAW_BACKUP_KEY`, see "Commands" in
//! README.md): splitting the values, classifying each into age or OpenPGP,
//! and building the [`Encryptor`] of the backend that serves them.
//!
//! Secret key material given where a recipient belongs (an age or plugin
//! identity, an SSH/PEM private key, an OpenPGP secret key, pasted in `-r`, in
//! `SECURECLAW_BACKUP_KEY` or in a recipients file) is refused without ever
//! being echoed; other values that are not recipients are quoted cut short and
//! made printable ([`crate::text::cut`]). The value types and that screen live
//! in [`super::spec`], which the backends share; they are re-exported here.
//! This module depends on the backends, never they on it.

use std::path::Path;

use crate::crypto::{age::AgeEncryptor, openpgp::PgpEncryptor, Encryptor};
use crate::error::{Error, Result};

pub use crate::crypto::spec::{
    normalize_key_id, quote_value, secret_error, secret_kind, secret_kind_in_file, RecipientSpec,
    SecretKind, MAX_RECIPIENTS_FILE,
};

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
                &format!("recipients file {}", crate::text::Safe(path)),
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
