//! Identities for decryption (`-i` / `SECURECLAW_BACKUP_IDENTITY`): each file is
//! classified as age (identity file, encrypted identity, SSH key) or OpenPGP
//! (secret key), loaded once, and turned into the [`Decryptor`] an archive needs.
//!
//! Files are read with [`crate::crypto::read_bounded`]: regular files only (a
//! FIFO or `/dev/zero` is refused before any read), at most
//! [`MAX_IDENTITY_FILE`] bytes; an identity that group or others can read is
//! used, with a warning (as ssh does for its keys).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypto::{age as agebk, openpgp, warn_if_exposed, Decryptor, Format, PassphraseSource};
use crate::error::{Error, Result};

/// The largest identity file read (real ones are a few kB; a keyring of many
/// OpenPGP secret keys stays far below).
pub const MAX_IDENTITY_FILE: u64 = 4 * 1024 * 1024;

/// The identities an operator supplied, grouped by backend.
pub struct Identities {
    age: Vec<(PathBuf, Zeroizing<Vec<u8>>)>,
    pgp: Vec<(PathBuf, Zeroizing<Vec<u8>>)>,
    pass: PassphraseSource,
}

impl Identities {
    /// Reads and classifies identity files. Keys are parsed lazily, per format,
    /// so a passphrase is asked for only when an archive needs that key.
    pub fn load(paths: &[PathBuf], pass: PassphraseSource) -> Result<Self> {
        let mut ids = Identities {
            age: vec![],
            pgp: vec![],
            pass,
        };
        for path in paths {
            if path.is_dir() {
                return Err(crate::keymatch::identity_dir_error(path));
            }
            let data: Zeroizing<Vec<u8>> =
                crate::crypto::read_bounded(path, "identity file", MAX_IDENTITY_FILE)?;
            warn_if_exposed(path, "identity file");
            if openpgp::is_secret_key_start(&data) {
                ids.pgp.push((path.clone(), data));
            } else if agebk::looks_like_identity(&data) {
                ids.age.push((path.clone(), data));
            } else {
                return Err(Error::key(format!(
                    "{} is not an identity this tool understands",
                    crate::text::Safe(path)
                ))
                .hint("pass an age identity file, an SSH private key, or an OpenPGP secret key (armored or binary)"));
            }
        }
        Ok(ids)
    }

    /// Every identity file given (path, contents), for describing their
    /// public parts ([`crate::keymatch`]); nothing is decrypted.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.age
            .iter()
            .chain(&self.pgp)
            .map(|(p, d)| (p.as_path(), d.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.pgp.is_empty()
    }

    pub fn passphrase_source(&self) -> &PassphraseSource {
        &self.pass
    }

    /// Builds the decryptor for an archive of `format`.
    pub fn decryptor(&self, format: Format) -> Result<Box<dyn Decryptor>> {
        match format {
            Format::Age | Format::AgeArmored => {
                let mut all = Vec::new();
                for (path, data) in &self.age {
                    all.extend(agebk::load_identities(path, data, &self.pass)?);
                }
                Ok(Box::new(agebk::AgeDecryptor::new(all)))
            }
            Format::OpenPgp | Format::OpenPgpArmored => {
                // gpg-agent only when no identity file was given at all: an
                // operator who names identities means exactly those
                if self.pgp.is_empty() && !self.age.is_empty() {
                    return Err(Error::key(
                        "this archive is OpenPGP-encrypted but only age identities were given",
                    )
                    .hint(
                        "pass the OpenPGP secret key with -i, or no -i at all to use gpg-agent",
                    ));
                }
                let keys: Vec<(&Path, &[u8])> = self
                    .pgp
                    .iter()
                    .map(|(p, d)| (p.as_path(), d.as_slice()))
                    .collect();
                Ok(Box::new(openpgp::PgpDecryptor::new(
                    &keys,
                    self.pass.clone(),
                )?))
            }
            Format::Gzip => Ok(Box::new(PlainDecryptor)),
        }
    }
}

/// The identity "decryptor" for unencrypted legacy archives.
struct PlainDecryptor;

impl Decryptor for PlainDecryptor {
    fn decrypt(
        &self,
        _format: Format,
        input: Box<dyn std::io::Read + Send>,
    ) -> Result<Box<dyn std::io::Read + Send>> {
        Ok(input)
    }
}
