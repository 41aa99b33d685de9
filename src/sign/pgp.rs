//! Detached OpenPGP signatures over an archive (what `gpg --detach-sign
//! --armor` makes and `gpg --verify ARCHIVE.sig ARCHIVE` checks), made and
//! checked from a hash fed as the archive streams, with sequoia: a v4
//! signature of type "binary document", SHA-512, by a signing-capable key of
//! a v4 certificate.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::{hash, KeyPair, Password};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::Signature;
use openpgp::parse::Parse;
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::serialize::Serialize;
use openpgp::types::{HashAlgorithm, RevocationStatus, SignatureType};

use super::{Provenance, Scheme};
use crate::crypto::PassphraseSource;
use crate::error::{Error, Result};
use crate::text::Safe;

static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// The hash context of a message being signed or checked.
pub struct HashContext(hash::Context);

impl HashContext {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// A signing-capable OpenPGP secret key, decrypted.
pub struct PgpSigningKey {
    keypair: KeyPair,
    cert_fpr: String,
}

fn bad_key(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::key(format!("signing key {}: {why}", Safe(path))).hint(
        "give an OpenPGP secret key (gpg --export-secret-keys --armor KEYID) whose certificate has a valid, signing-capable v4 key",
    )
}

impl PgpSigningKey {
    pub fn load(path: &Path, data: &[u8], pass: &PassphraseSource) -> Result<Self> {
        let cert = Cert::from_bytes(data)
            .map_err(|e| bad_key(path, format!("the OpenPGP secret key does not parse ({e})")))?;
        let vc = cert
            .with_policy(&POLICY, None)
            .map_err(|e| bad_key(path, format!("the certificate is not valid ({e})")))?;
        if let RevocationStatus::Revoked(_) = vc.revocation_status() {
            return Err(bad_key(path, "the certificate is revoked"));
        }
        let ka = vc
            .keys()
            .secret()
            .for_signing()
            .alive()
            .revoked(false)
            .next()
            .ok_or_else(|| {
                bad_key(
                    path,
                    "it has no secret signing-capable key that is valid now",
                )
            })?;
        let key = ka.key().clone();
        if key.version() != 4 {
            return Err(bad_key(
                path,
                "only v4 keys are supported (what GnuPG 2.2 reads)",
            ));
        }
        let key = if key.has_unencrypted_secret() {
            key
        } else {
            let tries = pass.tries();
            let mut out = None;
            for left in (0..tries).rev() {
                let p = pass.get(&format!("signing key {}", Safe(path)))?;
                let pw = Password::from(secrecy::ExposeSecret::expose_secret(&p));
                match key.clone().decrypt_secret(&pw) {
                    Ok(k) => {
                        out = Some(k);
                        break;
                    }
                    Err(_) => pass.wrong_try(left),
                }
            }
            out.ok_or_else(|| {
                Error::key(format!("wrong passphrase for signing key {}", Safe(path))).hint(
                    "give the passphrase of this key (terminal, --passphrase-file or SECURECLAW_BACKUP_PASSPHRASE_FILE)",
                )
            })?
        };
        let keypair = key
            .role_into_unspecified()
            .into_keypair()
            .map_err(|e| bad_key(path, format!("the key cannot sign ({e})")))?;
        Ok(PgpSigningKey {
            keypair,
            cert_fpr: cert.fingerprint().to_hex(),
        })
    }

    pub fn fingerprint(&self) -> String {
        self.keypair.public().fingerprint().to_hex()
    }

    pub fn cert_fingerprint(&self) -> String {
        self.cert_fpr.clone()
    }

    pub fn hash_context(&self) -> Result<HashContext> {
        HashAlgorithm::SHA512
            .context()
            .map(|b| HashContext(b.for_signature(4)))
            .map_err(|e| {
                Error::operational(format!("SHA-512 is not available for OpenPGP signing: {e}"))
                    .hint("this is a bug in secureclaw-backup's build; please report it")
            })
    }

    /// Signs the hashed message: the armored detached signature.
    pub fn sign(&self, hash: HashContext) -> Result<String> {
        let fail = |e: anyhow::Error| {
            Error::operational(format!("making the OpenPGP signature failed: {e}"))
                .hint("check the OpenPGP signing key")
        };
        let mut signer = self.keypair.clone();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_hash(&mut signer, hash.0)
            .map_err(fail)?;
        let mut out = Vec::new();
        {
            let mut w = openpgp::armor::Writer::new(&mut out, openpgp::armor::Kind::Signature)
                .map_err(|e| fail(e.into()))?;
            openpgp::Packet::from(sig).serialize(&mut w).map_err(fail)?;
            w.finalize().map_err(|e| fail(e.into()))?;
        }
        String::from_utf8(out).map_err(|e| fail(e.into()))
    }
}

/// Whether `data` holds OpenPGP certificates (armored public key block or a
/// binary public-key packet).
pub fn looks_like_certs(data: &[u8]) -> bool {
    let head = &data[..data.len().min(256)];
    let text = String::from_utf8_lossy(head);
    text.trim_start()
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        || crate::crypto::openpgp::is_certificate_start(head)
}

/// Whether `data` is an OpenPGP signature (armored, or a binary signature
/// packet).
pub fn looks_like_signature(data: &[u8]) -> bool {
    let head = &data[..data.len().min(256)];
    String::from_utf8_lossy(head)
        .trim_start()
        .starts_with("-----BEGIN PGP SIGNATURE-----")
        || head
            .first()
            .is_some_and(|&b| b == 0xC2 || (b & 0xFC) == 0x88)
}

/// A certificate trusted to sign archives.
#[derive(Debug, Clone)]
pub struct TrustedCert {
    cert: Cert,
    path: PathBuf,
}

impl TrustedCert {
    pub fn load(path: &Path, data: &[u8]) -> Result<Vec<TrustedCert>> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::usage(format!(
                "signers file {}: the OpenPGP certificates do not parse ({e})",
                Safe(path)
            ))
            .hint("give OpenPGP certificates (gpg --export --armor KEYID > signers.asc)")
        };
        let mut out = Vec::new();
        for c in CertParser::from_bytes(data).map_err(|e| bad(&e))? {
            let cert = c.map_err(|e| bad(&e))?;
            out.push(TrustedCert {
                cert: cert.strip_secret_key_material(),
                path: path.to_owned(),
            });
        }
        if out.is_empty() {
            return Err(bad(&"no certificate in the file"));
        }
        Ok(out)
    }

    /// The principals: the names of its user IDs (`web-1 <…>` → `web-1`, or
    /// the whole user ID when it has no e-mail part); names with pattern
    /// characters are left out, so a user ID cannot widen the trust.
    fn principals(&self) -> Vec<String> {
        let mut out = Vec::new();
        for u in self.cert.userids() {
            let uid = u.userid();
            let name = uid
                .name()
                .ok()
                .flatten()
                .map(str::to_owned)
                .or_else(|| std::str::from_utf8(uid.value()).ok().map(str::to_owned));
            if let Some(n) = name {
                let n = n.trim().to_owned();
                if !n.is_empty() && !n.contains(['*', '?', '!', ',']) && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }
}

/// The check of one OpenPGP signature.
pub struct PgpCheck {
    sig: Signature,
    key: openpgp::packet::Key<
        openpgp::packet::key::PublicParts,
        openpgp::packet::key::UnspecifiedRole,
    >,
    hash: hash::Context,
}

const HINT: &str = super::REFUSED_SIG_HINT;

impl PgpCheck {
    pub fn new(
        archive: &Path,
        data: &[u8],
        certs: &[TrustedCert],
        now: DateTime<Utc>,
        describe: impl Fn() -> String,
    ) -> Result<(PgpCheck, Provenance)> {
        let sigfile = super::sig_path(archive);
        let pile = openpgp::PacketPile::from_bytes(data).map_err(|e| {
            Error::integrity(format!(
                "the OpenPGP signature {} does not parse ({e})",
                Safe(&sigfile)
            ))
            .hint("the signature file is damaged or was replaced; use an intact copy of the archive and its .sig")
        })?;
        let sigs: Vec<&Signature> = pile
            .children()
            .filter_map(|p| match p {
                openpgp::Packet::Signature(s) => Some(s),
                _ => None,
            })
            .collect();
        if sigs.is_empty() {
            return Err(Error::integrity(format!(
                "{} holds no OpenPGP signature",
                Safe(&sigfile)
            ))
            .hint("the signature file is damaged or was replaced; use an intact copy of the archive and its .sig"));
        }
        let now_sys: SystemTime = now.into();
        let mut reasons = Vec::new();
        for sig in sigs {
            if sig.typ() != SignatureType::Binary {
                reasons.push(format!(
                    "a signature of type {} (not a binary document)",
                    sig.typ()
                ));
                continue;
            }
            if let Err(e) = POLICY.signature(sig, HashAlgoSecurity::CollisionResistance) {
                reasons.push(format!("a signature the policy rejects ({e})"));
                continue;
            }
            let issuers = sig.get_issuers();
            for tc in certs {
                let names_issuer = tc.cert.keys().key_handles(issuers.iter()).next().is_some();
                // Trust is judged now, as for SSH keys (valid-before): the
                // signature's creation time is the signer's claim, and a
                // stolen key could backdate it.
                let vc = match tc.cert.with_policy(&POLICY, now_sys) {
                    Ok(vc) => vc,
                    Err(e) => {
                        if names_issuer {
                            reasons.push(format!(
                                "certificate {} is not valid now ({e})",
                                tc.cert.fingerprint().to_hex()
                            ));
                        }
                        continue;
                    }
                };
                if let RevocationStatus::Revoked(_) = vc.revocation_status() {
                    if names_issuer {
                        reasons.push(format!(
                            "certificate {} is revoked",
                            tc.cert.fingerprint().to_hex()
                        ));
                    }
                    continue;
                }
                for ka in vc.keys().for_signing().key_handles(issuers.iter()) {
                    let fpr = ka.key().fingerprint().to_hex();
                    if let Err(e) = ka.alive() {
                        reasons.push(format!("key {fpr} is not valid now ({e})"));
                        continue;
                    }
                    if let RevocationStatus::Revoked(_) = ka.revocation_status() {
                        reasons.push(format!("key {fpr} is revoked"));
                        continue;
                    }
                    if let Err(e) =
                        sig.signature_alive(now_sys, std::time::Duration::from_secs(300))
                    {
                        reasons.push(format!("the signature is not valid now ({e})"));
                        continue;
                    }
                    let mut hash = match sig.hash_algo().context() {
                        Ok(b) => b.for_signature(sig.version()),
                        Err(e) => {
                            reasons.push(format!("unsupported hash ({e})"));
                            continue;
                        }
                    };
                    if let openpgp::packet::Signature::V6(s6) = sig {
                        hash.update(s6.salt());
                    }
                    let provenance = Provenance {
                        scheme: Scheme::OpenPgp,
                        fingerprint: fpr,
                        principals: vec![tc.principals()],
                        signers_file: tc.path.clone(),
                    };
                    return Ok((
                        PgpCheck {
                            sig: sig.clone(),
                            key: ka.key().clone().role_into_unspecified(),
                            hash,
                        },
                        provenance,
                    ));
                }
            }
        }
        let issuers: Vec<String> = pile
            .children()
            .filter_map(|p| match p {
                openpgp::Packet::Signature(s) => Some(s.get_issuers()),
                _ => None,
            })
            .flatten()
            .map(|h| h.to_hex())
            .collect();
        let msg = if reasons.is_empty() {
            format!(
                "{} is signed by OpenPGP key {}, which is not a trusted signer (not in {})",
                Safe(archive),
                issuers.join(", "),
                describe()
            )
        } else {
            format!(
                "{} has no OpenPGP signature by a trusted signer that is valid now: {}",
                Safe(archive),
                reasons.join("; ")
            )
        };
        Err(Error::refused(msg).hint(HINT))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
    }

    pub fn finish(self) -> std::result::Result<(), String> {
        self.sig
            .verify_hash(&self.key, self.hash)
            .map_err(|e| e.to_string())
    }
}
