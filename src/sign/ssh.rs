//! SSH signatures (OpenSSH `PROTOCOL.sshsig`, what `ssh-keygen -Y sign`
//! writes) over a message hashed as it streams: the signed data is built from
//! the digest, so the archive is read once. Ed25519 only, through the
//! `ssh-key` crate (no hand-written cryptography here).

use sha2::Digest;
use signature::{Signer as _, Verifier as _};

use crate::error::{Error, Result};

/// The hash `ssh-keygen -Y sign` uses by default.
pub const HASH_ALG: ssh_key::HashAlg = ssh_key::HashAlg::Sha512;

/// A running hash of the message, of the algorithm a signature names.
#[derive(Clone)]
pub enum MessageHash {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl MessageHash {
    pub fn new(alg: ssh_key::HashAlg) -> Self {
        match alg {
            ssh_key::HashAlg::Sha256 => MessageHash::Sha256(sha2::Sha256::new()),
            _ => MessageHash::Sha512(sha2::Sha512::new()),
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        match self {
            MessageHash::Sha256(h) => h.update(data),
            MessageHash::Sha512(h) => h.update(data),
        }
    }
    pub fn alg(&self) -> ssh_key::HashAlg {
        match self {
            MessageHash::Sha256(_) => ssh_key::HashAlg::Sha256,
            MessageHash::Sha512(_) => ssh_key::HashAlg::Sha512,
        }
    }
    pub fn finish(self) -> Vec<u8> {
        match self {
            MessageHash::Sha256(h) => h.finalize().to_vec(),
            MessageHash::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The bytes an SSHSIG signature covers, from the message's digest:
/// `"SSHSIG"`, namespace, reserved (empty), hash algorithm, H(message)
/// (PROTOCOL.sshsig; the same bytes as `ssh_key::SshSig::signed_data`, which
/// would need the whole message in memory).
pub fn signed_data(namespace: &str, alg: ssh_key::HashAlg, digest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + 4 * 4 + namespace.len() + 6 + digest.len());
    out.extend_from_slice(b"SSHSIG");
    put_string(&mut out, namespace.as_bytes());
    put_string(&mut out, b"");
    put_string(&mut out, alg.as_str().as_bytes());
    put_string(&mut out, digest);
    out
}

/// Signs a finished message hash; returns the armored `SSH SIGNATURE`.
pub fn sign(key: &ssh_key::PrivateKey, namespace: &str, hash: MessageHash) -> Result<String> {
    let alg = hash.alg();
    let data = signed_data(namespace, alg, &hash.finish());
    let fail = |e: &dyn std::fmt::Display| {
        Error::operational(format!("making the SSH signature failed: {e}"))
            .hint("check that the signing key is an Ed25519 OpenSSH private key")
    };
    let sig: ssh_key::Signature = key.try_sign(&data).map_err(|e| fail(&e))?;
    let sshsig = ssh_key::SshSig::new(key.public_key().key_data().clone(), namespace, alg, sig)
        .map_err(|e| fail(&e))?;
    sshsig.to_pem(ssh_key::LineEnding::LF).map_err(|e| fail(&e))
}

/// Checks `sig` over a message whose hash (of `sig.hash_alg()`) is `digest`.
/// The reserved field is taken as empty, as OpenSSH does.
pub fn verify(sig: &ssh_key::SshSig, digest: &[u8]) -> std::result::Result<(), String> {
    let data = signed_data(sig.namespace(), sig.hash_alg(), digest);
    sig.public_key()
        .verify(&data, sig.signature())
        .map_err(|e| e.to_string())
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &ssh_key::public::KeyData) -> String {
    key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_data_is_the_crates() {
        let msg = b"some archive bytes";
        for alg in [ssh_key::HashAlg::Sha512, ssh_key::HashAlg::Sha256] {
            let mut h = MessageHash::new(alg);
            h.update(&msg[..5]);
            h.update(&msg[5..]);
            assert_eq!(
                signed_data("secureclaw-backup", alg, &h.finish()),
                ssh_key::SshSig::signed_data("secureclaw-backup", alg, msg).unwrap()
            );
        }
    }

    #[test]
    fn sign_then_verify_with_the_crate() {
        let key =
            ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[7u8; 32]));
        let mut h = MessageHash::new(HASH_ALG);
        h.update(b"hello");
        let pem = sign(&key, "secureclaw-backup", h).unwrap();
        assert!(pem.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        let sig = ssh_key::SshSig::from_pem(&pem).unwrap();
        key.public_key()
            .verify("secureclaw-backup", b"hello", &sig)
            .unwrap();
        assert!(key
            .public_key()
            .verify("secureclaw-backup", b"hellO", &sig)
            .is_err());
        let mut h = MessageHash::new(sig.hash_alg());
        h.update(b"hello");
        assert_eq!(verify(&sig, &h.finish()), Ok(()));
    }
}
