//! Keyless inspection of OpenPGP data: recognising a message, a certificate
//! or a secret key by its first bytes, and checking an archive's packet
//! sequence (who it is encrypted to, that it is whole) without any key.
//!
//! Binary messages are walked by [`super::framing`], which follows the length
//! headers without reading the encrypted body; armored ones go through
//! sequoia's streaming parser, which reads the body through but never keeps it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::packet::Packet;
use openpgp::parse::{Dearmor, PacketParserBuilder, PacketParserResult, Parse};

use super::{framing, pkesk_recipient};
use crate::crypto::{Format, HeaderInfo};
use crate::error::{Error, IoContext, Result};

/// Whether `b`, the first byte of a file, starts an OpenPGP message (a PKESK or
/// SKESK packet in old or new packet format).
pub fn is_message_start(b: u8) -> bool {
    // new format: 0b11xx_xxxx with tag 1 (PKESK) or 3 (SKESK)
    // old format: 0b10tt_ttll with tag 1 or 3
    matches!(b, 0xC1 | 0xC3) || (b & 0xC0 == 0x80 && matches!((b >> 2) & 0x0F, 1 | 3))
}

/// Whether the start of a file is an OpenPGP certificate (armored or binary).
pub fn is_certificate_start(head: &[u8]) -> bool {
    head.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
        || head
            .first()
            .is_some_and(|&b| b == 0xC6 || (b & 0xFC) == 0x98)
}

/// Whether the start of a file is an OpenPGP secret key (armored or binary).
pub fn is_secret_key_start(head: &[u8]) -> bool {
    head.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
        || head
            .first()
            .is_some_and(|&b| b == 0xC5 || (b & 0xFC) == 0x94)
}

fn bad_message(path: &Path, what: &str) -> Error {
    Error::integrity(format!(
        "{}: not a valid OpenPGP archive: {what}",
        path.display()
    ))
    .hint("the file is damaged, truncated or was replaced; restore from another archive or copy")
}

/// Keyless inspection of an OpenPGP archive (binary or armored): one or more
/// PKESK (or SKESK) packets, then exactly one SEIPDv1 packet reaching the end
/// of the file, and nothing else. Binary messages: framing.rs follows the
/// length headers. Armored ones: a streaming parser reads the body through
/// (to check its framing) but never keeps it.
pub fn inspect(path: &Path) -> Result<HeaderInfo> {
    let file = File::open(path).at("opening", path)?;
    let length = file.metadata().at("reading metadata of", path)?.len();
    let head = crate::crypto::read_head(path)?;
    let armored = head.starts_with(b"-----BEGIN PGP MESSAGE-----");
    if !armored {
        // binary: follow the length headers without reading the body
        let recipients = framing::walk(&file, length).map_err(|e| bad_message(path, &e))?;
        return Ok(HeaderInfo {
            format: Format::OpenPgp,
            recipients,
            length,
        });
    }
    let format = Format::OpenPgpArmored;
    let dearmor = Dearmor::Enabled(armor::ReaderMode::Tolerant(Some(armor::Kind::Message)));
    let reader = BufReader::with_capacity(256 * 1024, file);
    let parse_err = |e: anyhow::Error| bad_message(path, &format!("{e:#}"));
    let mut ppr = PacketParserBuilder::from_reader(reader)
        .map_err(parse_err)?
        .dearmor(dearmor)
        .build()
        .map_err(parse_err)?;
    let mut recipients = Vec::new();
    let mut seen_data = false;
    while let PacketParserResult::Some(pp) = ppr {
        let tag = pp.packet.tag();
        if seen_data {
            return Err(bad_message(
                path,
                &format!("unexpected packet after the encrypted data (trailing data or a second message): {tag}"),
            ));
        }
        if pp.recursion_depth() != 0 {
            return Err(bad_message(
                path,
                &format!("unexpected nested packet: {tag}"),
            ));
        }
        match &pp.packet {
            Packet::PKESK(p) => {
                if p.version() != 3 {
                    return Err(bad_message(
                        path,
                        &format!("PKESK version {} (only version 3 is expected)", p.version()),
                    ));
                }
                recipients.push(pkesk_recipient(p));
            }
            Packet::SKESK(_) => recipients.push("passphrase (SKESK)".to_owned()),
            Packet::SEIP(s) => {
                if s.version() != 1 {
                    return Err(bad_message(
                        path,
                        &format!(
                            "encrypted data packet version {} (only SEIPDv1 with MDC is expected)",
                            s.version()
                        ),
                    ));
                }
                if recipients.is_empty() {
                    return Err(bad_message(
                        path,
                        "encrypted data without any PKESK/SKESK packet before it",
                    ));
                }
                seen_data = true;
            }
            Packet::Unknown(u) => {
                return Err(bad_message(
                    path,
                    &format!("unreadable packet ({tag}): {}", u.error()),
                ))
            }
            _ => {
                return Err(bad_message(
                    path,
                    &format!("unexpected packet at the top level of the message: {tag}"),
                ))
            }
        }
        // For the unprocessed SEIPD container this reads its body through
        // (streaming) and fails if it is cut short.
        ppr = pp.next().map_err(parse_err)?.1;
    }
    if !seen_data {
        return Err(bad_message(
            path,
            if recipients.is_empty() {
                "no packet at all (empty file?)"
            } else {
                "no encrypted data packet after the PKESK packets (truncated?)"
            },
        ));
    }
    Ok(HeaderInfo {
        format,
        recipients,
        length,
    })
}
