//! The writer of our OpenPGP payload: one SEIPDv1 packet (RFC 4880 §5.13,
//! RFC 9580 §5.13.1) holding one binary literal data packet, encrypted with
//! AES-256 in OpenPGP's CFB mode and closed by the modification detection code
//! (MDC, a SHA-1 over the plaintext).
//!
//! sequoia writes the same packets, but computes the MDC with its collision-
//! detecting SHA-1, which cost more than half of the encryption time (the
//! archive ran at 144 MB/s against age's 222). Collision detection protects a
//! verifier of SHA-1 signatures from crafted inputs; the MDC we *generate*
//! over our own plaintext gains nothing from it, and every reader (sequoia,
//! GnuPG) checks a plain SHA-1. So the packet framing is written here and the
//! primitives come from nettle, which sequoia already links: AES-NI for the
//! cipher, SHA-NI for SHA-1. Decryption stays with sequoia.
//!
//! Framing: the literal packet's body and the SEIPD packet's body are each
//! cut into partial-body chunks of [`CHUNK`] bytes (the final piece carries a
//! definite length and is never empty), so memory is bounded by a few chunks
//! whatever the archive size.

use std::io::{self, Write};

use nettle::cipher::Aes256;
use nettle::hash::insecure_do_not_use::Sha1;
use nettle::hash::Hash;
use nettle::mode::{Cfb, Mode};
use zeroize::Zeroize;

use super::framing::{BLOCK, TAG_LITERAL, TAG_MDC, TAG_SEIPD};

/// Partial-body chunk size: 2^20 bytes (a power of two, at least 512 as the
/// first chunk must be).
const CHUNK_LOG2: u8 = 20;
const CHUNK: usize = 1 << CHUNK_LOG2;
/// New-format packet headers (tag octets) of the packets written here.
const CTB_SEIPD: u8 = 0xC0 | TAG_SEIPD;
const CTB_LITERAL: u8 = 0xC0 | TAG_LITERAL;
const CTB_MDC: u8 = 0xC0 | TAG_MDC;
/// Length octet announcing a partial-body chunk of [`CHUNK`] bytes.
const PARTIAL: u8 = 0xE0 | CHUNK_LOG2;

/// A definite new-format body length (RFC 4880 §4.2.2.1–3).
fn definite_length(len: usize, out: &mut Vec<u8>) {
    if len < 192 {
        out.push(len as u8);
    } else if len < 8384 {
        let l = len - 192;
        out.push(((l >> 8) + 192) as u8);
        out.push((l & 0xFF) as u8);
    } else {
        out.push(0xFF);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Streams `SEIPDv1(literal(data) ‖ MDC)` into `out`; call [`finish`] to
/// write the final pieces (without it the packet stays incomplete, which
/// every reader rejects). `out` receives whole chunks only.
///
/// [`finish`]: SeipdWriter::finish
pub struct SeipdWriter<W: Write> {
    out: W,
    cfb: Cfb<Aes256>,
    iv: [u8; BLOCK],
    mdc: Sha1,
    /// Literal packet body not yet framed (starts with the literal header).
    body: Vec<u8>,
    /// Framed plaintext not yet encrypted (less than a block between calls).
    plain: Vec<u8>,
    /// SEIPD body (version octet, then ciphertext) not yet framed.
    cipher: Vec<u8>,
    /// Whether the SEIPD packet tag was written.
    started: bool,
}

impl<W: Write> SeipdWriter<W> {
    /// Starts the packet. `key` is the AES-256 session key the PKESKs carry.
    pub fn new(out: W, key: &[u8]) -> io::Result<Self> {
        let cfb = Cfb::<Aes256>::with_encrypt_key(key)
            .map_err(|e| io::Error::other(format!("AES-256 key setup: {e}")))?;
        let mut w = SeipdWriter {
            out,
            cfb,
            iv: [0; BLOCK],
            mdc: Sha1::default(),
            body: Vec::with_capacity(CHUNK + 8),
            plain: Vec::with_capacity(CHUNK + 2 * BLOCK + 8),
            cipher: Vec::with_capacity(CHUNK + 2 * BLOCK + 8),
            started: false,
        };
        // SEIPD body: version 1, then everything else encrypted
        w.cipher.push(1);
        // the random prefix: one block, its last two octets repeated
        let mut prefix = [0u8; BLOCK + 2];
        sequoia_openpgp::crypto::random(&mut prefix[..BLOCK])
            .map_err(|e| io::Error::other(format!("random prefix: {e}")))?;
        prefix[BLOCK] = prefix[BLOCK - 2];
        prefix[BLOCK + 1] = prefix[BLOCK - 1];
        w.feed(&prefix, true)?;
        prefix.zeroize();
        // literal packet: binary, no file name, date 0
        w.feed(&[CTB_LITERAL], true)?;
        w.body.extend_from_slice(&[b'b', 0, 0, 0, 0, 0]);
        Ok(w)
    }

    /// Adds plaintext of the inner packet stream: hashed into the MDC,
    /// encrypted in whole blocks, framed into the SEIPD packet.
    fn feed(&mut self, data: &[u8], hash: bool) -> io::Result<()> {
        if hash {
            self.mdc.update(data);
        }
        self.plain.extend_from_slice(data);
        let whole = self.plain.len() / BLOCK * BLOCK;
        if whole >= CHUNK {
            self.encrypt(whole)?;
        }
        Ok(())
    }

    /// Encrypts the first `n` bytes of `plain` (a multiple of the block size
    /// unless it is the very end) and frames what is complete.
    fn encrypt(&mut self, n: usize) -> io::Result<()> {
        let start = self.cipher.len();
        self.cipher.resize(start + n, 0);
        self.cfb
            .encrypt(&mut self.iv, &mut self.cipher[start..], &self.plain[..n])
            .map_err(|e| io::Error::other(format!("AES-256 CFB: {e}")))?;
        self.plain[..n].zeroize();
        self.plain.drain(..n);
        // keep at least one byte back: the last piece must not be empty
        while self.cipher.len() > CHUNK {
            if !self.started {
                self.out.write_all(&[CTB_SEIPD])?;
                self.started = true;
            }
            self.out.write_all(&[PARTIAL])?;
            self.out.write_all(&self.cipher[..CHUNK])?;
            self.cipher.drain(..CHUNK);
        }
        Ok(())
    }

    /// Writes the final pieces and the MDC, and flushes the sink.
    pub fn finish(mut self) -> io::Result<()> {
        // the rest of the literal body, with a definite length
        let body = std::mem::take(&mut self.body);
        let mut len = Vec::with_capacity(5);
        definite_length(body.len(), &mut len);
        self.feed(&len, true)?;
        self.feed(&body, true)?;
        let mut body = body;
        body.zeroize();
        // the MDC packet: its header is hashed, the digest is not
        self.feed(&[CTB_MDC, 20], true)?;
        let mut digest = [0u8; 20];
        self.mdc.digest(&mut digest);
        self.feed(&digest, false)?;
        let n = self.plain.len();
        self.encrypt(n)?;
        // the final piece of the SEIPD body
        let mut head = Vec::with_capacity(6);
        if !self.started {
            head.push(CTB_SEIPD);
        }
        definite_length(self.cipher.len(), &mut head);
        self.out.write_all(&head)?;
        self.out.write_all(&self.cipher)?;
        self.out.flush()
    }
}

impl<W: Write> Write for SeipdWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            if self.body.len() == CHUNK {
                // more data follows: this chunk is a partial one
                let chunk = std::mem::take(&mut self.body);
                self.feed(&[PARTIAL], true)?;
                self.feed(&chunk, true)?;
                self.body = chunk;
                self.body.zeroize();
                self.body.clear();
            }
            let take = (CHUNK - self.body.len()).min(data.len());
            self.body.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // a chunk is written when it is complete; flushing early would only
        // make smaller chunks
        Ok(())
    }
}

impl<W: Write> Drop for SeipdWriter<W> {
    fn drop(&mut self) {
        self.body.zeroize();
        self.plain.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_lengths() {
        for (len, want) in [
            (0usize, vec![0u8]),
            (191, vec![191]),
            (192, vec![192, 0]),
            (8383, vec![223, 255]),
            (8384, vec![255, 0, 0, 0x20, 0xC0]),
            (CHUNK, vec![255, 0, 0x10, 0, 0]),
        ] {
            let mut v = Vec::new();
            definite_length(len, &mut v);
            assert_eq!(v, want, "length {len}");
        }
    }
}
