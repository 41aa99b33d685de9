//! The OpenPGP backend (sequoia-openpgp with the nettle backend): recipients from
//! key ids, user ids or certificate files, keyless packet verification, and
//! decryption with secret keys or gpg-agent.
//!
//! INTERFACE ONLY — being implemented (issue 3).

use std::io::{Read, Write};
use std::path::Path;

use crate::crypto::recipients::RecipientSpec;
use crate::crypto::{EncryptWriter, Encryptor, Format, HeaderInfo, PassphraseSource};
use crate::error::{Error, Result};

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
        || head.first().is_some_and(|&b| b == 0xC6 || (b & 0xFC) == 0x98)
}

/// Whether the start of a file is an OpenPGP secret key (armored or binary).
pub fn is_secret_key_start(head: &[u8]) -> bool {
    head.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
        || head.first().is_some_and(|&b| b == 0xC5 || (b & 0xFC) == 0x94)
}

fn pending() -> Error {
    Error::usage("OpenPGP support is not built yet")
}

pub fn inspect(_path: &Path) -> Result<HeaderInfo> {
    Err(pending())
}

pub struct PgpEncryptor;

impl PgpEncryptor {
    pub fn new(_specs: &[RecipientSpec], _keyring: Option<&Path>) -> Result<Self> {
        Err(pending())
    }
}

impl Encryptor for PgpEncryptor {
    fn format(&self) -> Format {
        Format::OpenPgp
    }
    fn describe(&self) -> Vec<String> {
        vec![]
    }
    fn wrap_output(&self, _out: Box<dyn Write + Send>) -> Result<Box<dyn EncryptWriter>> {
        Err(pending())
    }
    fn verify_written(&self, _path: &Path) -> Result<HeaderInfo> {
        Err(pending())
    }
}

pub struct PgpDecryptor;

impl PgpDecryptor {
    /// `keys`: secret key files (path, bytes). Empty → use gpg-agent for the
    /// archive's recipients found in the local GnuPG home.
    pub fn new(_keys: &[(&Path, &[u8])], _pass: PassphraseSource) -> Result<Self> {
        Err(pending())
    }
}

impl crate::crypto::Decryptor for PgpDecryptor {
    fn decrypt(&self, _f: Format, _input: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>> {
        Err(pending())
    }
}
