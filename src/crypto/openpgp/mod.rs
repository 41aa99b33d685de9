//! The OpenPGP backend (sequoia-openpgp with the nettle backend), one file per
//! job behind the crypto seam ([`crate::crypto::Encryptor`] /
//! [`crate::crypto::Decryptor`]):
//!
//! - `inspect.rs`: keyless recognition and packet inspection ([`inspect()`]);
//! - `keys.rs`: recipient certificates and `-i` secret key files, with
//!   `keyring.rs` finding certificates by key id or user id;
//! - `encrypt.rs`: the [`PgpEncryptor`], packets written by `seipd.rs`;
//! - `decrypt.rs`: the [`PgpDecryptor`]'s reading pipeline (`seipd_reader.rs`
//!   or sequoia), with the session key found by `session_key.rs` (secret keys,
//!   passphrases, gpg-agent);
//! - `framing.rs`: packet length headers, shared by inspection and reading.
//!
//! This root holds only what several of them share: the policy, the public
//! key type and how a PKESK names its recipient.
//!
//! What we write is the RFC 4880 profile that stock GnuPG 2.2 reads: one PKESKv3
//! per encryption subkey, then one SEIPDv1 packet (with MDC) holding a binary
//! literal data packet, without compression (the payload is gzip'd already) and
//! without armor. We read that, and what `gpg --encrypt` writes (compressed or
//! not, armored or not).

mod decrypt;
mod encrypt;
mod framing;
mod inspect;
mod keyring;
mod keys;
mod seipd;
mod seipd_reader;
mod session_key;
#[cfg(test)]
mod tests;

use sequoia_openpgp as openpgp;

use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::{Key, PKESK};
use openpgp::policy::StandardPolicy;
use openpgp::{KeyHandle, KeyID};

pub use decrypt::{PgpDecryptor, MAX_EXPANSION};
pub use encrypt::PgpEncryptor;
pub use inspect::{inspect, is_certificate_start, is_message_start, is_secret_key_start};

/// The policy certificates and messages are checked against (at "now").
static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// An encryption-capable public key of a recipient certificate.
type PubKey = Key<PublicParts, UnspecifiedRole>;

/// The key id a PKESK is addressed to, as `gpg --list-packets` shows it
/// (16 upper-case hex digits), or `anonymous` for a wildcard recipient.
fn pkesk_recipient(p: &PKESK) -> String {
    match p.recipient() {
        Some(KeyHandle::KeyID(id)) if !id.is_wildcard() => id.to_hex(),
        Some(KeyHandle::Fingerprint(f)) => KeyID::from(f).to_hex(),
        _ => "anonymous".to_owned(),
    }
}
