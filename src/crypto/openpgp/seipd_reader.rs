//! Decryption of the common OpenPGP archive layout without sequoia's stream
//! decryptor: PKESK/SKESK packets, then one SEIPDv1 packet (AES) holding one
//! literal data packet and the MDC — what we write and what `gpg -z 0
//! --encrypt` writes. sequoia still finds and decrypts the session key (all
//! key handling, passphrases and gpg-agent stay in openpgp.rs); only the bulk
//! decryption and the MDC check are done here, with nettle's AES-CFB and
//! plain SHA-1. sequoia verifies the MDC with its collision-detecting SHA-1,
//! which took a third of a restore's CPU time; collision detection guards
//! signatures against crafted inputs and adds nothing to an MDC, which an
//! attacker without the session key cannot compute for any input.
//!
//! Anything else (armor, compression or signatures inside, other ciphers) is
//! left to sequoia by the caller. Like sequoia's, this reader hands out
//! plaintext before the MDC at the end is checked; a failed check is an error
//! at the end of the stream, which the restore gate turns into exit 3 with
//! nothing swapped in.
//!
//! Layers: [`Dechunk`] (the SEIPD body out of its length headers; nothing may
//! follow the packet) → [`Decrypt`] (CFB over whole blocks) → [`SeipdReader`]
//! (prefix quick check, literal packet framing, MDC).

use std::io::{self, BufRead, Read};

use nettle::cipher::{Aes128, Aes192, Aes256};
use nettle::hash::insecure_do_not_use::Sha1;
use nettle::hash::Hash;
use nettle::mode::{Cfb, Mode};
use sequoia_openpgp::types::SymmetricAlgorithm;
use zeroize::Zeroize;

use super::framing::{
    be_number, new_length, new_length_size, old_length_size, parse_header, BodyLen, BLOCK,
    MAX_KEY_PACKET, MAX_KEY_PACKETS, TAG_LITERAL, TAG_MDC, TAG_PKESK, TAG_SEIPD, TAG_SKESK,
};
use crate::error::{into_io, Error, TAMPERED_HINT};

/// Bytes of the SEIPD body read ahead, to find the session key and to look
/// at the inner packet before choosing this reader.
const HEAD_BODY: u64 = 4096;

fn damaged(what: impl std::fmt::Display) -> io::Error {
    into_io(
        Error::integrity(format!(
            "the OpenPGP message is damaged or tampered with: {what}"
        ))
        .hint(TAMPERED_HINT),
    )
}

fn cut_short() -> io::Error {
    into_io(Error::integrity("the OpenPGP message is truncated").hint(TAMPERED_HINT))
}

/// The start of a message read from a stream, kept so that sequoia can be
/// given the whole message if this reader is not used.
pub(super) struct Head {
    pub bytes: Vec<u8>,
    /// Where things are, if the message starts with key packets and a SEIPD.
    pub layout: Option<Layout>,
}

pub(super) struct Layout {
    /// Offset of the SEIPD packet's first byte.
    pub seipd_at: usize,
    /// Offset of its body (after the first length header).
    pub body_at: usize,
    /// The first length header of the body.
    pub first: BodyLen,
}

/// Reads up to `n` bytes (fewer only at the end of the input) onto `out`.
fn take(r: &mut dyn Read, out: &mut Vec<u8>, n: u64) -> io::Result<u64> {
    let start = out.len();
    r.take(n).read_to_end(out)?;
    Ok((out.len() - start) as u64)
}

/// A packet header read from `r` onto `bytes`: (tag, length), or `None` if it
/// is not one (armor, garbage, end of input).
fn read_header(r: &mut dyn Read, bytes: &mut Vec<u8>) -> io::Result<Option<(u8, BodyLen)>> {
    let at = bytes.len();
    if take(r, bytes, 1)? == 0 {
        return Ok(None);
    }
    let ctb = bytes[at];
    if ctb & 0xC0 == 0xC0 {
        if take(r, bytes, 1)? == 1 {
            take(r, bytes, new_length_size(bytes[at + 1]) as u64 - 1)?;
        }
    } else if ctb & 0x80 != 0 {
        take(r, bytes, old_length_size(ctb) as u64)?;
    }
    Ok(parse_header(&bytes[at..], 0)
        .ok()
        .map(|(tag, len, _)| (tag, len)))
}

/// Reads the key packets, the SEIPD header and the first bytes of its body.
pub(super) fn read_head(r: &mut dyn Read) -> io::Result<Head> {
    let mut bytes = Vec::new();
    let mut keys = 0;
    loop {
        let at = bytes.len();
        let Some((tag, len)) = read_header(r, &mut bytes)? else {
            return Ok(Head {
                bytes,
                layout: None,
            });
        };
        match (tag, len) {
            (TAG_PKESK | TAG_SKESK, BodyLen::Definite(n))
                if n <= MAX_KEY_PACKET && keys < MAX_KEY_PACKETS =>
            {
                if take(r, &mut bytes, n)? != n {
                    return Ok(Head {
                        bytes,
                        layout: None,
                    });
                }
                keys += 1;
            }
            (TAG_SEIPD, first) if keys > 0 => {
                let body_at = bytes.len();
                let n = match first {
                    BodyLen::Definite(n) | BodyLen::Partial(n) => n.min(HEAD_BODY),
                    BodyLen::ToEof => HEAD_BODY,
                };
                take(r, &mut bytes, n)?;
                return Ok(Head {
                    bytes,
                    layout: Some(Layout {
                        seipd_at: at,
                        body_at,
                        first,
                    }),
                });
            }
            _ => {
                return Ok(Head {
                    bytes,
                    layout: None,
                })
            }
        }
    }
}

impl Head {
    /// The key packets and a SEIPD packet cut down to the head's first bytes
    /// of the body: enough for sequoia to find and check the session key.
    pub fn for_session_key(&self, layout: &Layout) -> Vec<u8> {
        let body = &self.bytes[layout.body_at..];
        let body = &body[..body.len().min(64)];
        let mut m = self.bytes[..layout.seipd_at].to_vec();
        m.push(0xC0 | TAG_SEIPD);
        m.push(body.len() as u8);
        m.extend_from_slice(body);
        m
    }
}

/// AES in CFB mode, for the key sizes OpenPGP uses.
enum Cipher {
    Aes128(Cfb<Aes128>),
    Aes192(Cfb<Aes192>),
    Aes256(Cfb<Aes256>),
}

impl Cipher {
    fn new(algo: SymmetricAlgorithm, key: &[u8]) -> Option<Cipher> {
        match (algo, key.len()) {
            (SymmetricAlgorithm::AES128, 16) => Cfb::with_decrypt_key(key).ok().map(Cipher::Aes128),
            (SymmetricAlgorithm::AES192, 24) => Cfb::with_decrypt_key(key).ok().map(Cipher::Aes192),
            (SymmetricAlgorithm::AES256, 32) => Cfb::with_decrypt_key(key).ok().map(Cipher::Aes256),
            _ => None,
        }
    }

    fn decrypt(&mut self, iv: &mut [u8; BLOCK], dst: &mut [u8], src: &[u8]) -> io::Result<()> {
        let r = match self {
            Cipher::Aes128(c) => c.decrypt(iv, dst, src),
            Cipher::Aes192(c) => c.decrypt(iv, dst, src),
            Cipher::Aes256(c) => c.decrypt(iv, dst, src),
        };
        r.map_err(|e| io::Error::other(format!("AES-CFB: {e}")))
    }
}

/// Whether this reader handles the message: an AES session key, SEIPD
/// version 1, the prefix's quick check passes, and the first inner packet is
/// a literal data packet.
pub(super) fn handles(algo: SymmetricAlgorithm, key: &[u8], body: &[u8]) -> bool {
    let Some(mut cipher) = Cipher::new(algo, key) else {
        return false;
    };
    if body.first() != Some(&1) || body.len() < 1 + 2 * BLOCK {
        return false;
    }
    let mut iv = [0u8; BLOCK];
    let mut plain = [0u8; 2 * BLOCK];
    if cipher
        .decrypt(&mut iv, &mut plain, &body[1..1 + 2 * BLOCK])
        .is_err()
    {
        return false;
    }
    let ctb = plain[BLOCK + 2];
    let ok = plain[BLOCK - 2..BLOCK] == plain[BLOCK..BLOCK + 2]
        && (ctb == 0xC0 | TAG_LITERAL
            // old format, not of indeterminate length (left to sequoia)
            || (ctb & 0xFC == 0x80 | (TAG_LITERAL << 2) && ctb & 3 != 3));
    plain.zeroize();
    ok
}

/// The SEIPD body (version octet first) out of its length headers; after the
/// last piece the input must end.
struct Dechunk<R: Read> {
    inner: R,
    /// Bytes left in the current piece.
    left: u64,
    /// Whether the current piece is the last (definite) one.
    last: bool,
    to_eof: bool,
    done: bool,
}

impl<R: Read> Read for Dechunk<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if self.to_eof {
                let n = self.inner.read(buf)?;
                self.done = n == 0;
                return Ok(n);
            }
            if self.left > 0 {
                let want = (buf.len() as u64).min(self.left) as usize;
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(cut_short());
                }
                self.left -= n as u64;
                return Ok(n);
            }
            if self.last {
                // the packet ended: nothing may follow it
                let mut probe = [0u8; 1];
                if self.inner.read(&mut probe)? != 0 {
                    return Err(damaged(
                        "data after the encrypted data packet (trailing data or a second message)",
                    ));
                }
                self.done = true;
                return Ok(0);
            }
            // the next length header
            let mut hdr = [0u8; 5];
            if self.inner.read(&mut hdr[..1])? == 0 {
                return Err(cut_short());
            }
            let size = new_length_size(hdr[0]);
            self.inner
                .read_exact(&mut hdr[1..size])
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => cut_short(),
                    _ => e,
                })?;
            match new_length(&hdr[..size], 0).map_err(damaged)?.0 {
                BodyLen::Definite(n) => {
                    self.left = n;
                    self.last = true;
                }
                BodyLen::Partial(n) => self.left = n,
                BodyLen::ToEof => unreachable!("new-format lengths are never indeterminate"),
            }
        }
    }
}

/// CFB decryption of the ciphertext after the version octet, buffered.
struct Decrypt<R: Read> {
    inner: R,
    cipher: Cipher,
    iv: [u8; BLOCK],
    /// Ciphertext read but not yet decrypted (less than a block between calls).
    ct: Vec<u8>,
    /// Plaintext not yet consumed: `pt[pos..]`.
    pt: Vec<u8>,
    pos: usize,
    eof: bool,
}

/// Ciphertext read (and plaintext made) per refill.
const DECRYPT_CHUNK: usize = 256 * 1024;

impl<R: Read> BufRead for Decrypt<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.pt.len() && !(self.eof && self.ct.is_empty()) {
            if !self.eof {
                let start = self.ct.len();
                self.ct.resize(start + DECRYPT_CHUNK, 0);
                let got = loop {
                    match self.inner.read(&mut self.ct[start..]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                };
                let got = match got {
                    Ok(n) => n,
                    Err(e) => {
                        self.ct.truncate(start);
                        return Err(e);
                    }
                };
                self.ct.truncate(start + got);
                self.eof = got == 0;
            }
            // whole blocks only, except at the very end
            let n = if self.eof {
                self.ct.len()
            } else {
                self.ct.len() / BLOCK * BLOCK
            };
            if n > 0 {
                self.pt.zeroize();
                self.pt.resize(n, 0);
                self.pos = 0;
                self.cipher
                    .decrypt(&mut self.iv, &mut self.pt, &self.ct[..n])?;
                self.ct.drain(..n);
            }
        }
        Ok(&self.pt[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.pt.len());
    }
}

impl<R: Read> Read for Decrypt<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> Drop for Decrypt<R> {
    fn drop(&mut self) {
        self.pt.zeroize();
    }
}

/// Where the plaintext reader is.
enum State {
    /// Inside the literal data: bytes left in the current piece, and whether
    /// it is the last.
    Data { left: u64, last: bool },
    /// Literal data done, MDC checked, end of stream.
    Done,
}

/// The literal data of the message, authenticated by the MDC at the end.
pub(super) struct SeipdReader {
    inner: Decrypt<Dechunk<Box<dyn Read + Send>>>,
    mdc: Sha1,
    state: State,
}

impl SeipdReader {
    /// `body` is the SEIPD body from its version octet on (the head's bytes
    /// chained with the rest of the input), `first` its first length header.
    /// Reads and checks the prefix and the literal packet's header.
    pub fn new(
        algo: SymmetricAlgorithm,
        key: &[u8],
        first: BodyLen,
        body: Box<dyn Read + Send>,
    ) -> io::Result<SeipdReader> {
        let cipher = Cipher::new(algo, key)
            .ok_or_else(|| io::Error::other("unsupported cipher for the fast path"))?;
        let (left, last, to_eof) = match first {
            BodyLen::Definite(n) => (n, true, false),
            BodyLen::Partial(n) => (n, false, false),
            BodyLen::ToEof => (0, false, true),
        };
        let mut chunks = Dechunk {
            inner: body,
            left,
            last,
            to_eof,
            done: false,
        };
        let mut version = [0u8; 1];
        chunks.read_exact(&mut version).map_err(|_| cut_short())?;
        if version[0] != 1 {
            return Err(damaged(format!("SEIPD version {}", version[0])));
        }
        let decrypt = Decrypt {
            inner: chunks,
            cipher,
            iv: [0; BLOCK],
            ct: Vec::with_capacity(DECRYPT_CHUNK + BLOCK),
            pt: Vec::with_capacity(DECRYPT_CHUNK + BLOCK),
            pos: 0,
            eof: false,
        };
        let mut r = SeipdReader {
            inner: decrypt,
            mdc: Sha1::default(),
            state: State::Done,
        };
        let mut prefix = [0u8; BLOCK + 2];
        r.exact(&mut prefix)?;
        if prefix[BLOCK - 2..BLOCK] != prefix[BLOCK..] {
            return Err(damaged(
                "the session key does not fit the data (quick check)",
            ));
        }
        prefix.zeroize();
        // the literal packet's header
        let mut ctb = [0u8; 1];
        r.exact(&mut ctb)?;
        let (left, last) = if ctb[0] == 0xC0 | TAG_LITERAL {
            r.new_length()?
        } else if ctb[0] & 0xFC == 0x80 | (TAG_LITERAL << 2) {
            let width = old_length_size(ctb[0]);
            if width == 0 {
                return Err(damaged("a literal packet of indeterminate length"));
            }
            let mut b = [0u8; 4];
            r.exact(&mut b[..width])?;
            (be_number(&b[..width]), true)
        } else {
            return Err(damaged(
                "the encrypted data does not start with literal data",
            ));
        };
        r.state = State::Data { left, last };
        // format, file name, date: part of the literal body
        let mut fixed = [0u8; 2];
        r.data_exact(&mut fixed)?;
        let mut rest = vec![0u8; fixed[1] as usize + 4];
        r.data_exact(&mut rest)?;
        Ok(r)
    }

    /// Reads exactly `buf.len()` plaintext bytes, hashing them.
    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => cut_short(),
            _ => e,
        })?;
        self.mdc.update(buf);
        Ok(())
    }

    /// A new-format length header inside the plaintext: (length, is last).
    fn new_length(&mut self) -> io::Result<(u64, bool)> {
        let mut b = [0u8; 5];
        self.exact(&mut b[..1])?;
        let size = new_length_size(b[0]);
        self.exact(&mut b[1..size])?;
        match new_length(&b[..size], 0).map_err(damaged)?.0 {
            BodyLen::Definite(n) => Ok((n, true)),
            BodyLen::Partial(n) => Ok((n, false)),
            BodyLen::ToEof => Err(damaged("an indeterminate length inside the message")),
        }
    }

    /// Reads exactly `buf.len()` bytes of literal data (headers skipped).
    fn data_exact(&mut self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_data(buf)?;
            if n == 0 {
                return Err(damaged("the literal data packet is too short"));
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads literal data, following its length headers; at its end checks
    /// the MDC and that nothing follows it.
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Data { left, last } if left > 0 => {
                    let want = (buf.len() as u64).min(left) as usize;
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(cut_short());
                    }
                    self.mdc.update(&buf[..n]);
                    self.state = State::Data {
                        left: left - n as u64,
                        last,
                    };
                    return Ok(n);
                }
                State::Data { last: false, .. } => {
                    let (left, last) = self.new_length()?;
                    self.state = State::Data { left, last };
                }
                State::Data { last: true, .. } => {
                    self.check_mdc()?;
                    self.state = State::Done;
                }
            }
        }
    }

    fn check_mdc(&mut self) -> io::Result<()> {
        let mut head = [0u8; 2];
        self.exact(&mut head)?;
        if head != [0xC0 | TAG_MDC, 20] {
            return Err(damaged(
                "no modification detection code after the literal data",
            ));
        }
        let mut want = [0u8; 20];
        self.mdc.digest(&mut want);
        let mut got = [0u8; 20];
        self.inner.read_exact(&mut got).map_err(|_| cut_short())?;
        if want != got {
            return Err(damaged(
                "the modification detection code does not match (the data was altered)",
            ));
        }
        // nothing after the MDC, and the packet ends where its lengths say
        // (the end of the input: Dechunk checks that nothing follows)
        if !self.inner.fill_buf()?.is_empty() {
            return Err(damaged("data after the modification detection code"));
        }
        Ok(())
    }
}

impl Read for SeipdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_data(buf)
    }
}

/// Messages decrypted by this reader (tests check that the fast path is taken).
#[cfg(test)]
pub(super) static USED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::super::seipd::SeipdWriter;
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn noise(n: usize, seed: u8) -> Vec<u8> {
        let mut x = seed as u64 | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A SEIPD packet (no key packets) of `data`, written by our writer.
    fn packet(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = SeipdWriter::new(&mut out, &KEY).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
        out
    }

    fn open(key: &[u8], packet: &[u8]) -> io::Result<Vec<u8>> {
        assert_eq!(packet[0], 0xC0 | TAG_SEIPD);
        let (first, used) = new_length(&packet[1..], 0).map_err(io::Error::other)?;
        let body = packet[1 + used as usize..].to_vec();
        let mut r = SeipdReader::new(
            SymmetricAlgorithm::AES256,
            key,
            first,
            Box::new(Cursor::new(body)),
        )?;
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn round_trips_at_every_boundary() {
        const C: usize = 1 << 20;
        let base = noise(3 * C + 5, 1);
        let mut sizes = vec![0, 1, 15, 16, 17, 1000, 3 * C + 5];
        sizes.extend(C - 50..=C - 44);
        sizes.extend(C - 7..=C + 1);
        for n in sizes {
            let p = packet(&base[..n]);
            let got = open(&KEY, &p).unwrap_or_else(|e| panic!("{n} bytes: {e}"));
            assert!(got == base[..n], "{n} bytes read back differently");
        }
    }

    #[test]
    fn every_alteration_fails() {
        for n in [100_000usize, (5 << 19) + 3] {
            let data = noise(n, 2);
            let good = packet(&data);
            assert_eq!(open(&KEY, &good).unwrap(), data);
            let len = good.len();
            let mut spots = vec![
                2,
                3,
                10,
                19,
                20,
                21,
                25,
                40,
                len / 2,
                len - 23,
                len - 22,
                len - 21,
                len - 2,
                len - 1,
            ];
            spots.extend((1..len).step_by(len / 37));
            for at in spots {
                for bit in [0x01u8, 0x80] {
                    let mut bad = good.clone();
                    bad[at] ^= bit;
                    match open(&KEY, &bad) {
                        Err(_) => {}
                        Ok(v) => panic!("flip at {at} of {len} accepted ({} bytes out)", v.len()),
                    }
                }
            }
            for cut in (2..len).step_by(len / 53).chain(len - 30..len) {
                assert!(
                    open(&KEY, &good[..cut]).is_err(),
                    "cut at {cut} of {len} accepted"
                );
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(open(&KEY, &longer).is_err(), "trailing byte accepted");
            assert!(open(&[8; 32], &good).is_err(), "wrong key accepted");
        }
    }
}
