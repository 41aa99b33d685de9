//! Keyless check of a *binary* OpenPGP archive's packet framing: PKESK (or
//! SKESK) packets, parsed by sequoia, then exactly one SEIPDv1 packet whose
//! length headers are followed through the file with positioned reads — the
//! encrypted body itself is skipped, not read — and which must end exactly at
//! the end of the file. This is what `verify` (keyless), the check before a
//! backup is named and the check before a restore decrypts all run; reading
//! 600 MB of ciphertext through a parser to learn its framing cost 0.5 s, the
//! walk costs one read per partial-body chunk. Armored messages are checked by
//! sequoia's streaming parser instead (openpgp.rs), as their framing is inside
//! the armor.

use std::fs::File;
use std::os::unix::fs::FileExt;

use sequoia_openpgp::packet::Packet;
use sequoia_openpgp::parse::Parse;

/// Largest PKESK/SKESK packet accepted (an RSA-16384 PKESK is ~2 KiB).
pub(super) const MAX_KEY_PACKET: u64 = 64 * 1024;

/// Most session key packets accepted before the encrypted data (one per
/// recipient subkey; a hostile file could otherwise hold millions).
pub(super) const MAX_KEY_PACKETS: usize = 1024;

/// Packet tags (RFC 4880 §4.3), shared by the walk, the writer and the reader.
pub(super) const TAG_PKESK: u8 = 1;
pub(super) const TAG_SKESK: u8 = 3;
pub(super) const TAG_SED: u8 = 9;
pub(super) const TAG_LITERAL: u8 = 11;
pub(super) const TAG_SEIPD: u8 = 18;
pub(super) const TAG_MDC: u8 = 19;
pub(super) const TAG_AEAD: u8 = 20;
/// The AES block size.
pub(super) const BLOCK: usize = 16;

/// A packet body's length as its header gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyLen {
    Definite(u64),
    /// A partial-body chunk: more length headers follow it.
    Partial(u64),
    /// Old-format "indeterminate": the body runs to the end of the file.
    ToEof,
}

/// Reads up to 6 bytes at `pos`.
fn peek(file: &File, pos: u64) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 6];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], pos + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading at offset {pos}: {e}")),
        }
    }
    Ok(buf[..n].to_vec())
}

fn truncated(pos: u64) -> String {
    format!("the file ends inside a packet header at offset {pos} (truncated?)")
}

/// A new-format body length at the start of `b`: (length, octets used).
pub(super) fn new_length(b: &[u8], pos: u64) -> Result<(BodyLen, u64), String> {
    let o = *b.first().ok_or_else(|| truncated(pos))?;
    Ok(match o {
        0..=191 => (BodyLen::Definite(o as u64), 1),
        192..=223 => {
            let o2 = *b.get(1).ok_or_else(|| truncated(pos))?;
            (
                BodyLen::Definite((((o as u64) - 192) << 8) + o2 as u64 + 192),
                2,
            )
        }
        224..=254 => (BodyLen::Partial(1 << (o & 0x1F)), 1),
        255 => {
            let n: [u8; 4] = b
                .get(1..5)
                .ok_or_else(|| truncated(pos))?
                .try_into()
                .map_err(|_| truncated(pos))?;
            (BodyLen::Definite(u32::from_be_bytes(n) as u64), 5)
        }
    })
}

/// A packet header at `pos`: (tag, body length, header octets).
fn header(file: &File, pos: u64) -> Result<(u8, BodyLen, u64), String> {
    parse_header(&peek(file, pos)?, pos)
}

/// The number of octets of a new-format length whose first octet is `first`.
pub(super) fn new_length_size(first: u8) -> usize {
    match first {
        192..=223 => 2,
        255 => 5,
        _ => 1,
    }
}

/// The number of octets of the length of an old-format packet header.
pub(super) fn old_length_size(ctb: u8) -> usize {
    match ctb & 3 {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 0,
    }
}

/// A packet header at the start of `b` (found at offset `pos`, for messages):
/// (tag, body length, header octets).
pub(super) fn parse_header(b: &[u8], pos: u64) -> Result<(u8, BodyLen, u64), String> {
    let ctb = *b.first().ok_or_else(|| truncated(pos))?;
    if ctb & 0x80 == 0 {
        return Err(format!(
            "offset {pos}: byte 0x{ctb:02x} does not start a packet (damaged or not OpenPGP)"
        ));
    }
    if ctb & 0x40 != 0 {
        let (len, n) = new_length(&b[1..], pos + 1)?;
        return Ok((ctb & 0x3F, len, 1 + n));
    }
    let tag = (ctb >> 2) & 0x0F;
    let width = old_length_size(ctb);
    if width == 0 {
        return Ok((tag, BodyLen::ToEof, 1));
    }
    let bytes = b.get(1..1 + width).ok_or_else(|| truncated(pos))?;
    Ok((tag, BodyLen::Definite(be_number(bytes)), 1 + width as u64))
}

/// A big-endian number of up to 8 octets.
pub(super) fn be_number(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

/// Walks the framing of the binary message in `file` (`length` bytes) and
/// returns one line per recipient (a key id, `anonymous`, or
/// `passphrase (SKESK)`), or what is wrong with it.
pub(super) fn walk(file: &File, length: u64) -> Result<Vec<String>, String> {
    let mut recipients = Vec::new();
    let mut pos = 0u64;
    loop {
        if pos == length {
            return Err(if recipients.is_empty() {
                "no packet at all (empty file?)".to_owned()
            } else {
                "no encrypted data packet after the PKESK packets (truncated?)".to_owned()
            });
        }
        let (tag, len, hlen) = header(file, pos)?;
        match tag {
            TAG_PKESK | TAG_SKESK => {
                let BodyLen::Definite(n) = len else {
                    return Err(format!(
                        "offset {pos}: a session key packet without a definite length"
                    ));
                };
                if n > MAX_KEY_PACKET {
                    return Err(format!(
                        "offset {pos}: a session key packet of {n} bytes (damaged)"
                    ));
                }
                let end = pos + hlen + n;
                if end > length {
                    return Err(format!(
                        "the file ends inside the session key packet at offset {pos} (truncated?)"
                    ));
                }
                let mut raw = vec![0u8; (hlen + n) as usize];
                file.read_exact_at(&mut raw, pos)
                    .map_err(|e| format!("reading at offset {pos}: {e}"))?;
                recipients.push(key_packet(&raw, pos)?);
                if recipients.len() > MAX_KEY_PACKETS {
                    return Err(format!(
                        "more than {MAX_KEY_PACKETS} session key packets (damaged or hostile)"
                    ));
                }
                pos = end;
            }
            TAG_SEIPD => {
                if recipients.is_empty() {
                    return Err("encrypted data without any PKESK/SKESK packet before it".into());
                }
                let version = peek(file, pos + hlen)?;
                match version.first() {
                    Some(1) => {}
                    Some(v) => {
                        return Err(format!(
                            "encrypted data packet version {v} (only SEIPDv1 with MDC is expected)"
                        ))
                    }
                    None => return Err(truncated(pos + hlen)),
                }
                let end = seipd_end(file, pos + hlen, len, length)?;
                if end < length {
                    return Err(format!(
                        "{} bytes after the encrypted data (trailing data or a second message)",
                        length - end
                    ));
                }
                return Ok(recipients);
            }
            TAG_SED => {
                return Err(
                    "encrypted data without integrity protection (SED packet, no MDC)".into(),
                )
            }
            TAG_AEAD => {
                return Err("AEAD encrypted data packet (only SEIPDv1 with MDC is expected)".into())
            }
            t => {
                return Err(format!(
                    "unexpected packet at the top level of the message: tag {t} at offset {pos}"
                ))
            }
        }
    }
}

/// The end offset of a body starting at `pos` with first length `len`,
/// following partial-body length headers.
fn seipd_end(file: &File, mut pos: u64, mut len: BodyLen, length: u64) -> Result<u64, String> {
    loop {
        match len {
            BodyLen::ToEof => return Ok(length),
            BodyLen::Definite(n) => {
                let end = pos + n;
                if end > length {
                    return Err(format!(
                        "the encrypted data is cut short: {} bytes missing (truncated?)",
                        end - length
                    ));
                }
                return Ok(end);
            }
            BodyLen::Partial(n) => {
                let next = pos + n;
                if next >= length {
                    return Err(
                        "the encrypted data is cut short inside a partial-body chunk (truncated?)"
                            .into(),
                    );
                }
                let b = peek(file, next)?;
                let (l, used) = new_length(&b, next)?;
                len = l;
                pos = next + used;
            }
        }
    }
}

/// Parses one PKESK/SKESK packet (header and body) with sequoia.
fn key_packet(raw: &[u8], pos: u64) -> Result<String, String> {
    match Packet::from_bytes(raw) {
        Ok(Packet::PKESK(p)) => {
            if p.version() != 3 {
                return Err(format!(
                    "PKESK version {} (only version 3 is expected)",
                    p.version()
                ));
            }
            Ok(super::pkesk_recipient(&p))
        }
        Ok(Packet::SKESK(_)) => Ok("passphrase (SKESK)".to_owned()),
        Ok(Packet::Unknown(u)) => Err(format!(
            "unreadable session key packet at offset {pos}: {}",
            u.error()
        )),
        Ok(p) => Err(format!("unexpected packet at offset {pos}: {}", p.tag())),
        Err(e) => Err(format!(
            "unreadable session key packet at offset {pos}: {e:#}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(new_length(&[5], 0).unwrap(), (BodyLen::Definite(5), 1));
        assert_eq!(
            new_length(&[192, 0], 0).unwrap(),
            (BodyLen::Definite(192), 2)
        );
        assert_eq!(
            new_length(&[223, 255], 0).unwrap(),
            (BodyLen::Definite(8383), 2)
        );
        assert_eq!(
            new_length(&[255, 0, 0x10, 0, 0], 0).unwrap(),
            (BodyLen::Definite(1 << 20), 5)
        );
        assert_eq!(
            new_length(&[0xF4], 0).unwrap(),
            (BodyLen::Partial(1 << 20), 1)
        );
        assert!(new_length(&[255, 0, 0], 0).is_err());
        assert!(new_length(&[200], 0).is_err());
        assert!(new_length(&[], 0).is_err());
    }
}
