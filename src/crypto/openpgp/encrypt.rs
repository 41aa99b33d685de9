//! The OpenPGP [`Encryptor`]: one PKESKv3 per recipient subkey (the keys
//! come from [`super::keys`]), then the SEIPDv1 packet written by
//! [`super::seipd`], and the keyless check of the file just written
//! ([`super::inspect()`]) against those recipients.

use std::io::{self, Write};
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::crypto::SessionKey;
use openpgp::packet::pkesk::PKESK3;
use openpgp::packet::{Packet, PKESK};
use openpgp::serialize::Serialize;
use openpgp::types::SymmetricAlgorithm;

use super::keyring::gnupg_home;
use super::{inspect, keys, seipd, PubKey};
use crate::crypto::spec::RecipientSpec;
use crate::crypto::{EncryptWriter, Encryptor, Format, HeaderInfo};
use crate::error::{Error, Result};

/// The cipher of the SEIPDv1 packet: AES-256 (MTI for GnuPG 2.2).
const SYM: SymmetricAlgorithm = SymmetricAlgorithm::AES256;

/// Encrypts to one or more OpenPGP certificates (all their alive encryption
/// subkeys, like gpg).
pub struct PgpEncryptor {
    keys: Vec<PubKey>,
    descriptions: Vec<String>,
    certs: Vec<(String, Vec<String>)>,
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
        let keys::Resolved {
            keys,
            descriptions,
            certs,
        } = keys::resolve(specs, keyring, home)?;
        Ok(PgpEncryptor {
            keys,
            descriptions,
            certs,
        })
    }

    /// Key ids of the subkeys the archive is encrypted to.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.keyid().to_hex()).collect()
    }
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

    /// Each certificate's primary fingerprint with each encryption subkey's
    /// key id (what the archive's PKESKs name).
    fn meta_recipients(&self) -> Vec<crate::meta::Recipient> {
        self.certs
            .iter()
            .flat_map(|(fpr, subs)| {
                subs.iter().map(move |s| crate::meta::Recipient {
                    kind: "openpgp".into(),
                    id: fpr.clone(),
                    subkey: Some(s.clone()),
                })
            })
            .collect()
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
