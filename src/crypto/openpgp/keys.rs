//! Which OpenPGP keys: the recipients of an archive resolved to certificates
//! and their encryption subkeys (from certificate files, a `--keyring` or the
//! GnuPG home, through [`super::keyring`]), each certificate checked under the
//! standard policy; and the secret key files given with `-i`, parsed once.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::types::RevocationStatus;

use super::keyring::{Query, Store};
use super::{PubKey, POLICY};
use crate::crypto::spec::RecipientSpec;
use crate::error::{Error, IoContext, Result};

/// The encryption subkeys a set of recipients resolves to (each once), and
/// one description per certificate (`<fingerprint> <primary user id>`).
pub(super) struct Resolved {
    pub(super) keys: Vec<PubKey>,
    pub(super) descriptions: Vec<String>,
    /// Per certificate: its primary fingerprint and the key ids of the
    /// subkeys encrypted to (for the archive's `.meta`).
    pub(super) certs: Vec<(String, Vec<String>)>,
}

/// Resolves OpenPGP recipients: certificate files are read as given; key ids,
/// fingerprints and user ids are looked up in `keyring`, else in the GnuPG
/// `home`. A user id that matches several usable certificates is an error.
pub(super) fn resolve(
    specs: &[RecipientSpec],
    keyring: Option<&Path>,
    home: &Path,
) -> Result<Resolved> {
    let mut chosen: Vec<(Cert, Vec<PubKey>)> = Vec::new();
    let mut queries: Vec<(String, Query)> = Vec::new();
    for spec in specs {
        match spec {
            RecipientSpec::PgpKeyId(hex) => queries.push((hex.clone(), Query::from_key_id(hex)?)),
            RecipientSpec::PgpUserId(u) => queries.push((u.clone(), Query::from_user_id(u))),
            RecipientSpec::PgpFile(path) => {
                let certs = read_certs(path)?;
                if certs.is_empty() {
                    return Err(Error::key(format!(
                        "{} holds no OpenPGP certificate",
                        path.display()
                    ))
                    .hint("export one with `gpg --export --armor KEYID > cert.asc`"));
                }
                for cert in certs {
                    let label = path.display().to_string();
                    let keys = select_keys(&cert, &label)?;
                    chosen.push((cert, keys));
                }
            }
            other => {
                return Err(Error::usage(format!(
                    "{other:?} is not an OpenPGP recipient"
                )))
            }
        }
    }
    if !queries.is_empty() {
        let store = Store::new(keyring, home);
        let qs: Vec<Query> = queries.iter().map(|(_, q)| q.clone()).collect();
        let found = store.search(&qs)?;
        for ((label, _), certs) in queries.iter().zip(found) {
            if certs.is_empty() {
                return Err(Error::key(format!(
                    "recipient {label} not found in {}",
                    store.describe()
                ))
                .hint("import the certificate (`gpg --import cert.asc`), pass --keyring FILE, or give the certificate file itself as the recipient"));
            }
            let mut good = Vec::new();
            let mut first_err = None;
            for cert in certs {
                match select_keys(&cert, label) {
                    Ok(keys) => good.push((cert, keys)),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match good.len() {
                0 => return Err(first_err.expect("at least one certificate was examined")),
                1 => chosen.extend(good),
                _ => {
                    let fprs: Vec<String> =
                        good.iter().map(|(c, _)| c.fingerprint().to_hex()).collect();
                    return Err(Error::key(format!(
                        "recipient {label} matches several usable certificates: {}",
                        fprs.join(", ")
                    ))
                    .hint("give the 40-hex-digit fingerprint of the certificate to use"));
                }
            }
        }
    }
    let mut keys: Vec<PubKey> = Vec::new();
    let mut descriptions = Vec::new();
    let mut certs: Vec<(String, Vec<String>)> = Vec::new();
    for (cert, ks) in chosen {
        let desc = describe_cert(&cert);
        if !descriptions.contains(&desc) {
            descriptions.push(desc);
        }
        let fpr = cert.fingerprint().to_hex();
        let at = match certs.iter().position(|(f, _)| *f == fpr) {
            Some(i) => i,
            None => {
                certs.push((fpr, Vec::new()));
                certs.len() - 1
            }
        };
        for k in &ks {
            let id = k.keyid().to_hex();
            if !certs[at].1.contains(&id) {
                certs[at].1.push(id);
            }
        }
        for k in ks {
            if !keys
                .iter()
                .any(|have| have.fingerprint() == k.fingerprint())
            {
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        return Err(Error::key("no OpenPGP recipient given"));
    }
    Ok(Resolved {
        keys,
        descriptions,
        certs,
    })
}

/// All certificates of a file (armored or binary), public parts only.
fn read_certs(path: &Path) -> Result<Vec<Cert>> {
    let f = File::open(path).at("opening certificate file", path)?;
    let parser = CertParser::from_reader(BufReader::new(f)).map_err(|e| {
        Error::key(format!(
            "{} is not an OpenPGP certificate file: {e}",
            path.display()
        ))
        .hint("export the certificate with `gpg --export --armor KEYID > cert.asc`")
    })?;
    let mut certs = Vec::new();
    for c in parser {
        let c = c.map_err(|e| {
            Error::key(format!(
                "{} holds an invalid OpenPGP certificate: {e}",
                path.display()
            ))
            .hint("export the certificate again with `gpg --export --armor KEYID > cert.asc`")
        })?;
        certs.push(c.strip_secret_key_material());
    }
    Ok(certs)
}

/// `<fingerprint> <primary user id>`.
fn describe_cert(cert: &Cert) -> String {
    let uid = cert
        .with_policy(&POLICY, None)
        .ok()
        .and_then(|vc| {
            vc.primary_userid()
                .ok()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        })
        .or_else(|| {
            cert.userids()
                .next()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        })
        .unwrap_or_else(|| "(no user id)".to_owned());
    format!("{} {uid}", cert.fingerprint().to_hex())
}

/// Checks a recipient certificate (standard policy, now) and returns its alive,
/// unrevoked, encryption-capable v4 keys.
fn select_keys(cert: &Cert, label: &str) -> Result<Vec<PubKey>> {
    let fpr = cert.fingerprint().to_hex();
    let what = if label == fpr {
        format!("certificate {fpr}")
    } else {
        format!("certificate {fpr} (recipient {label})")
    };
    let vc = cert.with_policy(&POLICY, None).map_err(|e| {
        Error::key(format!("{what} is not valid: {e:#}"))
            .hint("the certificate has no valid self-signature under the standard policy (weak algorithms?); ask its owner for a current certificate")
    })?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(Error::key(format!("{what} is revoked"))
            .hint("ask its owner for a current key, or remove this recipient"));
    }
    if let Err(e) = vc.alive() {
        return Err(Error::key(format!("{what} has expired or is not yet valid: {e:#}"))
            .hint("extend its expiry (`gpg --quick-set-expire FPR 2y`), export and import it again, or use another key"));
    }
    let mut keys = Vec::new();
    let mut non_v4 = false;
    for ka in vc
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .for_storage_encryption()
    {
        if ka.key().version() != 4 {
            non_v4 = true;
            continue;
        }
        keys.push(ka.key().clone());
    }
    if keys.is_empty() {
        let why = if non_v4 {
            "has no v4 encryption subkey (GnuPG 2.2 cannot read messages to v6 keys)"
        } else {
            "has no valid encryption-capable subkey (all expired or revoked, or it is a signing-only key)"
        };
        return Err(Error::key(format!("{what} {why}")).hint(
            "add an encryption subkey (`gpg --quick-add-key FPR cv25519 encr`) or use another key",
        ));
    }
    Ok(keys)
}

/// A secret key file as given with `-i`.
pub(super) struct KeyFile {
    /// The path as given, for prompts and messages.
    pub(super) path: String,
    pub(super) certs: Vec<Cert>,
}

/// Parses the secret key files given with `-i` (path, bytes): each must hold
/// at least one key, and at least one of them with secret parts.
pub(super) fn load_secret_keys(keys: &[(&Path, &[u8])]) -> Result<Vec<KeyFile>> {
    let mut files = Vec::new();
    for (path, data) in keys {
        let name = path.display().to_string();
        let bad = |e: &dyn std::fmt::Display| {
            Error::key(format!("{name} is not a valid OpenPGP secret key: {e}"))
                .hint("export it with `gpg --export-secret-keys --armor KEYID > key.asc`")
        };
        let parser = CertParser::from_bytes(*data).map_err(|e| bad(&e))?;
        let mut certs = Vec::new();
        for c in parser {
            certs.push(c.map_err(|e| bad(&e))?);
        }
        if certs.is_empty() {
            return Err(bad(&"no key found"));
        }
        if !certs.iter().any(|c| c.is_tsk()) {
            return Err(Error::key(format!(
                "{name} holds only a certificate (public key), not a secret key"
            ))
            .hint(
                "export the secret key with `gpg --export-secret-keys --armor KEYID > key.asc`",
            ));
        }
        files.push(KeyFile { path: name, certs });
    }
    Ok(files)
}
