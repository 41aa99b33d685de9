//! Recipients as values, shared by recipient parsing ([`super::recipients`])
//! and the backends that consume them ([`super::age`], [`super::openpgp`]):
//! the classified [`RecipientSpec`], the normal form of an OpenPGP key id, and
//! the screen that recognises secret key material where a public key belongs
//! and refuses it without echoing it ([`secret_kind`], [`secret_error`],
//! [`quote_value`]).
//!
//! It depends on no backend, so that parsing may depend on the backends and
//! the backends on it, never both ways.

use std::path::PathBuf;

use crate::error::Error;

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
        format!("\"{}\"", crate::text::cut(t, 80))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
