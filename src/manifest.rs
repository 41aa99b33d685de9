//! The archive manifest (DESIGN §5): `manifest.json`, machine-readable, with
//! every entry's path, type, size, mode and SHA-256 plus the warnings of the
//! run; and `manifest.txt`, the guide's human-readable summary. Both are the
//! last entries of the tar, so hashes are computed while streaming.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name of the manifest files inside the top-level directory.
pub const JSON_NAME: &str = "manifest.json";
pub const TXT_NAME: &str = "manifest.txt";
/// The format tag and version written into every manifest.
pub const FORMAT: &str = "secureclaw-backup-manifest";
pub const VERSION: u32 = 1;
/// Largest manifest we are willing to parse.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
}

/// One archived entry. `path` is relative to the data directory, `/`-separated.
/// Kept compact (mode and digest as numbers, written as strings): a manifest
/// of 200 000 entries is held in memory while it is written or checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub size: u64,
    /// Permission bits as archived (`"0600"` in the JSON).
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
}

/// Permission bits, written as four octal digits (`"0600"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u16);

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u16::from_str_radix(&s, 8)
            .ok()
            .filter(|m| *m <= 0o7777 && !s.is_empty())
            .map(Mode)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("mode {s:?} is not octal permission bits"))
            })
    }
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut hex = [0u8; 64];
        hex::encode_to_slice(self.0, &mut hex).map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.as_bytes(), &mut out)
            .map_err(|_| serde::de::Error::custom("sha256 is not 64 hex digits"))?;
        Ok(Sha256Digest(out))
    }
}

/// Something the operator should know about: a skipped or changing entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub path: String,
    /// Warnings: `symlink`, `socket`, `fifo`, `device`, `non-utf8-name`,
    /// `changed-while-read`, `partial-line`, `live-lock`, `sqlite-fallback`,
    /// `vanished`, `replaced`. Notes (expected, not counted by `--strict`):
    /// `lock-file`, `excluded-destination`.
    pub kind: String,
    pub detail: String,
}

impl Warning {
    /// Whether this is an expected skip (a lock file, the destination inside
    /// the source) rather than something that may need a retry.
    pub fn is_note(&self) -> bool {
        matches!(self.kind.as_str(), "lock-file" | "excluded-destination")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    #[serde(rename = "type")]
    pub backup_type: String,
    /// RFC 3339 UTC time of the backup.
    pub created: String,
    /// `YYYYMMDD_HHMMSS` as in the archive name.
    pub timestamp: String,
    pub host: String,
    pub tool_version: String,
    pub source: String,
    #[serde(default)]
    pub recipients: Vec<String>,
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

impl Manifest {
    /// Parses and checks a manifest (format tag, version, unique paths).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("manifest.json is not valid: {e}"))?;
        m.checked()
    }

    /// Like [`Manifest::parse`], streaming from `r` (no copy of the bytes).
    pub fn from_reader(r: impl std::io::Read) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_reader(r).map_err(|e| format!("manifest.json is not valid: {e}"))?;
        m.checked()
    }

    fn checked(self) -> Result<Manifest, String> {
        let m = self;
        if m.format != FORMAT {
            return Err(format!(
                "manifest.json has format {:?}, expected {FORMAT:?}",
                m.format
            ));
        }
        if m.version != VERSION {
            return Err(format!(
                "manifest.json version {} is not supported (this tool reads version {VERSION})",
                m.version
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &m.entries {
            if !seen.insert(e.path.as_str()) {
                return Err(format!("manifest.json lists {:?} twice", e.path));
            }
            if e.kind == EntryKind::File && e.sha256.is_none() {
                return Err(format!(
                    "manifest.json entry {:?} has no valid sha256",
                    e.path
                ));
            }
        }
        Ok(m)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = Vec::new();
        // writing into a Vec cannot fail
        let _ = self.write_json(&mut v);
        v
    }

    /// Writes `manifest.json` (pretty-printed, with a final newline) to `w`,
    /// without building it in memory first.
    pub fn write_json(&self, w: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write;
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, w);
        serde_json::to_writer_pretty(&mut w, self)?;
        w.write_all(b"\n")?;
        w.flush()
    }

    /// The length of what [`Manifest::write_json`] writes.
    pub fn json_len(&self) -> u64 {
        let mut c = CountingWriter {
            inner: std::io::sink(),
            count: 0,
        };
        let _ = self.write_json(&mut c);
        c.count
    }

    /// Entries by path.
    pub fn by_path(&self) -> BTreeMap<&str, &Entry> {
        self.entries.iter().map(|e| (e.path.as_str(), e)).collect()
    }

    /// The guide's human-readable `manifest.txt`, with the same fields.
    pub fn to_text(&self) -> String {
        let files = self.entries.iter().filter(|e| e.kind == EntryKind::File);
        let (count, bytes) = files.fold((0u64, 0u64), |(c, b), e| (c + 1, b + e.size));
        let mut top: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &self.entries {
            let first = e.path.split('/').next().unwrap_or("");
            *top.entry(first).or_default() += e.size;
        }
        let mut s = String::new();
        s.push_str("SecureClaw Backup\n=================\n");
        s.push_str(&format!("Backup Type: {}\n", self.backup_type));
        s.push_str(&format!("Timestamp: {}\n", self.timestamp));
        s.push_str(&format!("Date: {}\n", self.created));
        s.push_str(&format!("Hostname: {}\n", self.host));
        s.push_str("SecureClaw Version: unknown\n");
        s.push_str(&format!("Tool: secureclaw-backup {}\n", self.tool_version));
        s.push_str(&format!("Source: {}\n", self.source));
        s.push_str(&format!("Encrypted to: {}\n", self.recipients.join(", ")));
        s.push_str("\nBacked up directories:\n");
        for (name, size) in &top {
            s.push_str(&format!("  {name}  {}\n", human_bytes(*size)));
        }
        s.push_str(&format!(
            "\nFiles: {count}\nBackup size: {}\n",
            human_bytes(bytes)
        ));
        if !self.warnings.is_empty() {
            s.push_str("\nWarnings:\n");
            for w in &self.warnings {
                s.push_str(&format!("  {} [{}] {}\n", w.path, w.kind, w.detail));
            }
        }
        s
    }
}

/// A `Write` that passes everything on and counts it.
pub struct CountingWriter<W: std::io::Write> {
    pub inner: W,
    pub count: u64,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `1.5 MiB`-style sizes for humans.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            backup_type: "daily".into(),
            created: "2026-11-23T02:00:00Z".into(),
            timestamp: "20261123_020000".into(),
            host: "h".into(),
            tool_version: "0.1.0".into(),
            source: "/s".into(),
            recipients: vec![],
            entries: vec![
                Entry {
                    path: "credentials".into(),
                    kind: EntryKind::Dir,
                    size: 0,
                    mode: Mode(0o700),
                    sha256: None,
                },
                Entry {
                    path: "credentials/oauth.json".into(),
                    kind: EntryKind::File,
                    size: 3,
                    mode: Mode(0o600),
                    sha256: Some(Sha256Digest([0xAB; 32])),
                },
            ],
            warnings: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        assert_eq!(Manifest::from_reader(&m.to_json()[..]).unwrap(), m);
        assert_eq!(m.json_len(), m.to_json().len() as u64);
        assert!(m.to_text().contains("Backup Type: daily"));
    }

    #[test]
    fn rejects_duplicates_and_bad_hashes() {
        let mut m = sample();
        m.entries.push(m.entries[1].clone());
        assert!(Manifest::parse(&m.to_json()).is_err());
        let json = String::from_utf8(sample().to_json()).unwrap();
        assert!(json.contains(&"ab".repeat(32)) && json.contains("\"0600\""));
        for (from, to) in [
            ("ab".repeat(32), "zz".to_owned()),
            ("ab".repeat(32), "AB".repeat(31)),
            ("\"0600\"".to_owned(), "\"0900\"".to_owned()),
            ("\"0600\"".to_owned(), "\"17777\"".to_owned()),
            ("\"0600\"".to_owned(), "\"\"".to_owned()),
        ] {
            assert!(
                Manifest::parse(json.replace(&from, &to).as_bytes()).is_err(),
                "{to}"
            );
        }
        let mut m = sample();
        m.entries[1].sha256 = None;
        assert!(Manifest::parse(&m.to_json()).is_err());
        assert!(Manifest::parse(b"{").is_err());
        let mut m = sample();
        m.version = 9;
        assert!(Manifest::parse(&m.to_json()).is_err());
    }
}
