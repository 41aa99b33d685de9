//! The keyless description of an archive, written beside it as
//! `<archive>.meta` (JSON): what the archive is (type, time, host), which
//! recipients it was encrypted to (so an operator holding several keys can
//! tell, without decrypting, which one opens it), and, for an incremental
//! link, its place in the chain (so listing, retention and push can follow a
//! chain on a host that holds only public keys).
//!
//! It is a *hint*, not a proof: anyone who can write the destination can edit
//! it. Everything in it is public. What it claims is checked against the
//! manifest inside the (authenticated) archive at restore and `verify -i`;
//! a difference is an integrity failure (exit 3) naming both values.
//! Archives without it (older versions, the guide's scripts) are described
//! from their name and headers alone.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::Chain;

/// The `format` value of every meta file.
pub const FORMAT: &str = "secureclaw-backup-meta";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;
/// The suffix of the file beside the archive.
pub const SUFFIX: &str = ".meta";
/// Upper bound on a meta file's size (it is read whole).
pub const MAX_LEN: usize = 256 * 1024;

/// The name of an archive's meta file: `<archive>.meta`.
pub fn meta_name(archive: &str) -> String {
    format!("{archive}{SUFFIX}")
}

/// One recipient an archive was encrypted to, as far as public keys tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// `age`, `ssh`, `openpgp`.
    pub kind: String,
    /// The public recipient as given (age1…, an ssh public key line, an
    /// OpenPGP primary fingerprint).
    pub id: String,
    /// OpenPGP: the encryption subkey's key id the archive's PKESK names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subkey: Option<String>,
}

/// The content of `<archive>.meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    /// The archive's file name this describes.
    pub archive: String,
    #[serde(rename = "type")]
    pub backup_type: String,
    /// `YYYYMMDD_HHMMSS`, as in the name.
    pub timestamp: String,
    pub host: String,
    pub tool_version: String,
    /// `age`, `openpgp` or `plaintext`.
    pub encryption: String,
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    /// For a link of an incremental chain (the full has level 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain>,
    /// Set by `rotate`: the recipients the archive was made for at backup
    /// time (what its unchanged manifest names), `recipients` being those
    /// it is encrypted to now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_recipients: Vec<Recipient>,
}

impl Meta {
    /// A description of `archive` with the common fields filled in.
    pub fn new(
        archive: &str,
        backup_type: &str,
        timestamp: &str,
        host: &str,
        encryption: &str,
    ) -> Self {
        Meta {
            format: FORMAT.to_owned(),
            version: VERSION,
            archive: archive.to_owned(),
            backup_type: backup_type.to_owned(),
            timestamp: timestamp.to_owned(),
            host: host.to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            encryption: encryption.to_owned(),
            recipients: Vec::new(),
            chain: None,
            backup_recipients: Vec::new(),
        }
    }

    /// The JSON bytes written to the file (one line and a newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parses and checks a meta file read for `archive` (`label` names it in
    /// errors). A file for another archive, of another format, or too large is
    /// refused: it is damaged or planted, and says nothing about this archive.
    pub fn parse(bytes: &[u8], archive: &str, label: &str) -> Result<Meta> {
        let bad = |what: String| {
            Error::integrity(format!("{label}: {what}")).hint(
                "the .meta file beside an archive is a keyless description; remove it \
                 (the archive itself is not affected) or restore it from a good copy",
            )
        };
        if bytes.len() > MAX_LEN {
            return Err(bad(format!("larger than {MAX_LEN} bytes")));
        }
        let m: Meta = serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid: {e}")))?;
        if m.format != FORMAT {
            return Err(bad(format!(
                "format is {:?}, not {FORMAT:?}",
                crate::text::cut(&m.format, 80)
            )));
        }
        if m.version != VERSION {
            return Err(bad(format!(
                "version {} is not supported (this is {VERSION})",
                m.version
            )));
        }
        if m.archive != archive {
            return Err(bad(format!(
                "describes {:?}, not {archive:?}",
                crate::text::cut(&m.archive, 200)
            )));
        }
        Ok(m)
    }

    /// Level in the chain (0 = a full, also for archives that are not links).
    pub fn level(&self) -> u32 {
        self.chain.as_ref().map_or(0, |c| c.level)
    }
}

/// Writes `meta` beside the committed archive at `archive` as
/// `<archive>.meta`, owner-only (0600), atomically (a temporary file in the
/// destination, fsync, rename, fsync of the directory). Returns its path.
pub fn write_beside(archive: &std::path::Path, meta: &Meta) -> Result<std::path::PathBuf> {
    use crate::error::IoContext;
    use std::io::Write;
    let dir = archive.parent().unwrap_or(std::path::Path::new("."));
    let mut p = archive.as_os_str().to_owned();
    p.push(SUFFIX);
    let path = std::path::PathBuf::from(p);
    let tmp = crate::store::temp_name(dir, "meta");
    let res = (|| {
        let mut f = crate::store::create_private(&tmp)?;
        f.write_all(&meta.to_bytes()).at("writing", &tmp)?;
        f.sync_all().at("syncing", &tmp)?;
        std::fs::rename(&tmp, &path).at("renaming the description into place as", &path)?;
        crate::store::fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|_| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut m = Meta::new(
            "daily_20261201_130000.tar.gz.age",
            "daily",
            "20261201_130000",
            "gw-1",
            "age",
        );
        m.recipients.push(Recipient {
            kind: "age".into(),
            id: "age1xyz".into(),
            subkey: None,
        });
        m.chain = Some(Chain {
            id: "daily_20261201_000000".into(),
            level: 13,
            previous: Some("daily_20261201_120000.tar.gz.age".into()),
        });
        let b = m.to_bytes();
        let back = Meta::parse(&b, &m.archive, "x.meta").unwrap();
        assert_eq!(back, m);
        assert_eq!(back.level(), 13);
        let e = Meta::parse(&b, "daily_20261201_140000.tar.gz.age", "x.meta").unwrap_err();
        assert!(e.message.contains("describes"), "{}", e.message);
        let e = Meta::parse(b"{}", &m.archive, "x.meta").unwrap_err();
        assert!(e.message.contains("x.meta"), "{}", e.message);
        let e = Meta::parse(&vec![b' '; MAX_LEN + 1], &m.archive, "x.meta").unwrap_err();
        assert!(e.message.contains("larger"), "{}", e.message);
        let other = String::from_utf8(b.clone())
            .unwrap()
            .replace(FORMAT, "other");
        assert!(Meta::parse(other.as_bytes(), &m.archive, "x.meta").is_err());
    }

    #[test]
    fn written_beside_the_archive_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("daily_20261201_130000.tar.gz.age");
        std::fs::write(&a, b"x").unwrap();
        let m = Meta::new(
            "daily_20261201_130000.tar.gz.age",
            "daily",
            "20261201_130000",
            "gw-1",
            "age",
        );
        let p = write_beside(&a, &m).unwrap();
        assert_eq!(p, d.path().join("daily_20261201_130000.tar.gz.age.meta"));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Meta::parse(&std::fs::read(&p).unwrap(), &m.archive, "m").unwrap();
        assert_eq!(back, m);
        // nothing else left behind
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }
}
