//! Finding an archive's session key, for sequoia's decryptor: with the secret
//! keys given (`-i`), unprotected ones first, then asking a passphrase only for
//! protected keys the archive is addressed to (as many tries as the age
//! backend); or, with no `-i`, through gpg-agent for the recipients found in
//! the GnuPG home (which may hold smartcard stubs). A key that cannot decrypt
//! is a key error that names the archive's recipients.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use secrecy::ExposeSecret;
use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::{Password, SessionKey};
use openpgp::packet::key::{SecretKeyMaterial, UnspecifiedRole};
use openpgp::packet::{Key, PKESK, SKESK};
use openpgp::parse::stream::{DecryptionHelper, MessageStructure, VerificationHelper};
use openpgp::types::SymmetricAlgorithm;
use openpgp::{KeyHandle, KeyID};

use super::keyring::{gnupg_home, Query, Store};
use super::keys::KeyFile;
use super::{pkesk_recipient, PubKey, POLICY};
use crate::crypto::PassphraseSource;
use crate::error::{Error, TAMPERED_HINT};

/// A session key (cipher and key) found by sequoia.
pub(super) type FoundKey = (SymmetricAlgorithm, SessionKey);

/// Finds the session key: with the secret keys given, or through gpg-agent.
pub(super) struct Helper {
    pub(super) keys: Arc<Vec<KeyFile>>,
    pub(super) pass: PassphraseSource,
    /// GnuPG home for gpg-agent; `None`: `$GNUPGHOME` or `~/.gnupg`.
    pub(super) home: Option<PathBuf>,
    /// Use this session key (found before) instead of looking for one.
    pub(super) known: Option<FoundKey>,
    /// Where to put the session key once it is found.
    pub(super) capture: Option<Arc<Mutex<Option<FoundKey>>>>,
}

impl VerificationHelper for Helper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        // Archives are not signed; their integrity is the MDC (checked by
        // sequoia) plus the manifest and sidecar checksums.
        Ok(())
    }
}

fn recipients_of(pkesks: &[PKESK]) -> String {
    if pkesks.is_empty() {
        return "no public key (passphrase only)".to_owned();
    }
    pkesks
        .iter()
        .map(pkesk_recipient)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a PKESK may be addressed to `key` (exact id, or anonymous).
fn addressed_to(p: &PKESK, key: &PubKey) -> bool {
    match p.recipient() {
        None => true,
        Some(KeyHandle::KeyID(id)) if id.is_wildcard() => true,
        Some(h) => h.aliases(KeyHandle::from(key.fingerprint())),
    }
}

/// Whether the secret of `key` is a GnuPG stub (e.g. on a smartcard), unusable here.
fn is_stub(key: &Key<openpgp::packet::key::SecretParts, UnspecifiedRole>) -> bool {
    match key.secret() {
        SecretKeyMaterial::Encrypted(e) => matches!(
            e.s2k(),
            openpgp::crypto::S2K::Private { .. } | openpgp::crypto::S2K::Unknown { .. }
        ),
        SecretKeyMaterial::Unencrypted(_) => false,
    }
}

impl DecryptionHelper for Helper {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if let Some((algo, sk)) = &self.known {
            if decrypt(Some(*algo), sk) {
                return Ok(None);
            }
            return Err(
                Error::integrity("the archive's session key does not decrypt its data")
                    .hint(TAMPERED_HINT)
                    .into(),
            );
        }
        let capture = self.capture.clone();
        let mut recording = |algo: Option<SymmetricAlgorithm>, sk: &SessionKey| {
            let ok = decrypt(algo, sk);
            if let (true, Some(c), Some(a)) = (ok, &capture, algo.or(sym_algo)) {
                *c.lock().unwrap_or_else(|p| p.into_inner()) = Some((a, sk.clone()));
            }
            ok
        };
        self.find_session_key(pkesks, skesks, sym_algo, &mut recording)
    }
}

impl Helper {
    fn find_session_key(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if self.keys.is_empty() {
            return self.decrypt_with_agent(pkesks, sym_algo, decrypt);
        }
        let mut bad_session_key = false;
        // Candidates: (pkesk, file index, cert index, key fingerprint).
        let mut protected = Vec::new();
        let mut stubs = Vec::new();
        for p in pkesks {
            for (fi, file) in self.keys.iter().enumerate() {
                for (ci, cert) in file.certs.iter().enumerate() {
                    for ka in cert.keys().secret() {
                        let key = ka.key();
                        if !addressed_to(p, key.parts_as_public().role_as_unspecified()) {
                            continue;
                        }
                        if is_stub(key.role_as_unspecified()) {
                            stubs.push(key.keyid().to_hex());
                            continue;
                        }
                        if !key.has_unencrypted_secret() {
                            protected.push((p, fi, ci, key.fingerprint()));
                            continue;
                        }
                        let Ok(mut pair) = key.clone().role_into_unspecified().into_keypair()
                        else {
                            continue;
                        };
                        if let Some((algo, sk)) = p.decrypt(&mut pair, sym_algo) {
                            if decrypt(algo, &sk) {
                                return Ok(Some(cert.clone()));
                            }
                            bad_session_key = true;
                        }
                    }
                }
            }
        }
        // Then the passphrase-protected keys: ask only for those that match.
        let mut wrong: Option<Error> = None;
        for (p, fi, ci, fpr) in protected {
            let file = &self.keys[fi];
            let cert = &file.certs[ci];
            let Some(ka) = cert.keys().secret().find(|k| k.key().fingerprint() == fpr) else {
                continue;
            };
            let key = ka.key().clone().role_into_unspecified();
            let keyid = key.keyid().to_hex();
            // as many tries as the age backend (PassphraseSource::tries)
            let tries = self.pass.tries();
            let mut unlocked = None;
            for attempt in 1..=tries {
                let pass = self
                    .pass
                    .get(&format!("OpenPGP key {keyid} ({})", file.path))?;
                let password = Password::from(pass.expose_secret());
                match key.clone().decrypt_secret(&password) {
                    Ok(k) => {
                        unlocked = Some(k);
                        break;
                    }
                    Err(_) => self.pass.wrong_try(tries - attempt),
                }
            }
            let key = match unlocked {
                Some(k) => k,
                None => {
                    wrong.get_or_insert(
                        Error::key(format!(
                            "wrong passphrase for OpenPGP key {keyid} in {}",
                            file.path
                        ))
                        .hint("check the passphrase (or the first line of --passphrase-file)"),
                    );
                    continue;
                }
            };
            let Ok(mut pair) = key.into_keypair() else {
                continue;
            };
            if let Some((algo, sk)) = p.decrypt(&mut pair, sym_algo) {
                if decrypt(algo, &sk) {
                    return Ok(Some(cert.clone()));
                }
                bad_session_key = true;
            }
        }
        if let Some(e) = wrong {
            return Err(e.into());
        }
        if bad_session_key {
            return Err(Error::integrity(
                "the archive's session key was decrypted but does not decrypt its data",
            )
            .hint(TAMPERED_HINT)
            .into());
        }
        let mut err = Error::key(format!(
            "none of the given OpenPGP keys can decrypt this archive: it is encrypted to {}",
            recipients_of(pkesks)
        ))
        .hint("pass -i with the secret key of one of these key ids (`gpg --export-secret-keys --armor KEYID > key.asc`), or omit -i to use gpg-agent");
        if !stubs.is_empty() {
            err = err.hint(format!(
                "the key file holds only a stub for {} (the secret is on a smartcard or in gpg-agent): omit -i to decrypt with gpg-agent",
                stubs.join(", ")
            ));
        }
        Err(err.into())
    }
}

/// Forwards to a decryptor and remembers its last error (sequoia's PKESK
/// decryption hides it).
struct Recording<'a> {
    inner: &'a mut dyn openpgp::crypto::Decryptor,
    err: Option<String>,
}

impl openpgp::crypto::Decryptor for Recording<'_> {
    fn public(&self) -> &PubKey {
        self.inner.public()
    }
    fn decrypt(
        &mut self,
        ciphertext: &openpgp::crypto::mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        let r = self.inner.decrypt(ciphertext, plaintext_len);
        if let Err(e) = &r {
            self.err = Some(format!("{e:#}"));
        }
        r
    }
}

impl Helper {
    /// No `-i`: look the PKESK recipients up in the local GnuPG keyring and let
    /// gpg-agent (which may use a smartcard) decrypt the session key.
    fn decrypt_with_agent(
        &mut self,
        pkesks: &[PKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let home = self.home.clone().unwrap_or_else(gnupg_home);
        let all = recipients_of(pkesks);
        let ids: Vec<(usize, KeyID)> = pkesks
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p.recipient() {
                Some(KeyHandle::KeyID(id)) if !id.is_wildcard() => Some((i, id)),
                Some(KeyHandle::Fingerprint(f)) => Some((i, KeyID::from(f))),
                _ => None,
            })
            .collect();
        let no_key = |msg: String| {
            Error::key(msg).hint(
                "pass -i with the OpenPGP secret key file, or import the secret key (or its smartcard stub) into GnuPG (`gpg --import`, `gpg --card-status`)",
            )
        };
        if ids.is_empty() {
            return Err(no_key(format!(
                "no identity was given (-i) and this archive's recipients ({all}) cannot be looked up in GnuPG"
            ))
            .into());
        }
        let store = Store::new(None, &home);
        let queries: Vec<Query> = ids.iter().map(|(_, id)| Query::KeyId(id.clone())).collect();
        let found = store.search(&queries)?;
        if found.iter().all(|f| f.is_empty()) {
            return Err(no_key(format!(
                "no identity was given (-i) and none of this archive's recipients ({all}) is in {}",
                store.describe()
            ))
            .into());
        }
        let ctx = sequoia_gpg_agent::gnupg::Context::with_homedir(&home).map_err(|e| {
            no_key(format!(
                "cannot use the GnuPG home {} for gpg-agent: {e}",
                home.display()
            ))
        })?;
        ctx.start("gpg-agent").map_err(|e| {
            no_key(format!(
                "cannot start gpg-agent for {}: {e}",
                home.display()
            ))
        })?;
        let mut errors = Vec::new();
        for ((i, id), certs) in ids.iter().zip(found) {
            let p = &pkesks[*i];
            for cert in certs {
                let Some(ka) = cert.keys().find(|k| &k.key().keyid() == id) else {
                    continue;
                };
                let mut pair =
                    match sequoia_gpg_agent::KeyPair::new_for_gnupg_context(&ctx, ka.key()) {
                        Ok(kp) => kp,
                        Err(e) => {
                            errors.push(format!("{}: {e}", id.to_hex()));
                            continue;
                        }
                    };
                if let Ok(vc) = cert.with_policy(&POLICY, None) {
                    pair = pair.with_cert(&vc);
                }
                let mut rec = Recording {
                    inner: &mut pair,
                    err: None,
                };
                match p.decrypt(&mut rec, sym_algo) {
                    Some((algo, sk)) if decrypt(algo, &sk) => return Ok(Some(cert.clone())),
                    Some(_) => errors.push(format!(
                        "{}: session key does not decrypt the data",
                        id.to_hex()
                    )),
                    None => errors.push(format!(
                        "{}: {}",
                        id.to_hex(),
                        rec.err
                            .unwrap_or_else(|| "gpg-agent could not decrypt".to_owned())
                    )),
                }
            }
        }
        Err(no_key(format!(
            "gpg-agent could not decrypt this archive (recipients {all}): {}",
            errors.join("; ")
        ))
        .into())
    }
}
