//! The archive manifest: `manifest.json`, machine-readable, with every
//! entry's path, type, size, mode, mtime and SHA-256 (symlinks: their target)
//! plus the warnings of the run; and `manifest.txt`, the guide's
//! human-readable summary. Both are the last entries of the tar, so hashes are
//! computed while streaming.
//!
//! Names are bytes (Linux file names need not be UTF-8): a name that is UTF-8
//! is written as `"path"`; any other is written as `"path_hex"` (the exact
//! bytes, authoritative) plus a `"path"` for humans with the invalid bytes
//! shown as `\xNN`. Symlink targets likewise (`"target"`/`"target_hex"`).
//! Version 1 manifests (UTF-8 names only, no mtimes, no symlinks) still parse.
//!
//! Version 3 ([`CHAIN_VERSION`]) is the manifest of an incremental chain's
//! archive ([`LinkManifest`]): the same fields plus `chain` (id, level,
//! predecessor). Its `entries` list the *complete* tree at that link, most of
//! which earlier links hold, so it gets its own version: a reader that knows
//! only version 2 would take the missing files for damage; it says "version 3
//! is not supported" instead. Plain fulls stay version 2, byte for byte.
//!
//! In the tar, the top-level directory carries the PAX record
//! `comment=secureclaw-backup archive 2` and the manifest entries
//! carry `comment=secureclaw-backup manifest.json` (resp. `manifest.txt`), which
//! is how restore tells them from a data file of the same name; stock tar
//! ignores `comment` records. Their names avoid the data's top-level names
//! ([`manifest_names`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

/// Name of the manifest files inside the top-level directory.
pub const JSON_NAME: &str = "manifest.json";
pub const TXT_NAME: &str = "manifest.txt";
/// The PAX `comment` of the top-level directory entry of an archive made by
/// this version: in such an archive only the marked entries are the manifest.
pub const ARCHIVE_MARK: &str = "secureclaw-backup archive 2";
/// The PAX `comment` values that mark the manifest entries of an archive.
pub const JSON_MARK: &str = "secureclaw-backup manifest.json";
pub const TXT_MARK: &str = "secureclaw-backup manifest.txt";
/// The format tag and version written into every manifest.
pub const FORMAT: &str = "secureclaw-backup-manifest";
pub const VERSION: u32 = 2;
/// The version of a chain archive's manifest ([`LinkManifest`]).
pub const CHAIN_VERSION: u32 = 3;
/// The oldest manifest version this tool reads.
pub const MIN_VERSION: u32 = 1;
/// Largest manifest we are willing to parse.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// A path relative to the data directory, `/`-separated, as raw bytes (a
/// Linux file name is any bytes but NUL and `/`). Displayed with invalid
/// UTF-8 and control characters escaped (`\xNN`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelPath(pub Vec<u8>);

impl RelPath {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        RelPath(bytes.into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn as_path(&self) -> &std::path::Path {
        use std::os::unix::ffi::OsStrExt;
        std::path::Path::new(std::ffi::OsStr::from_bytes(&self.0))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::borrow::Borrow<[u8]> for RelPath {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for RelPath {
    fn from(s: &str) -> Self {
        RelPath(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for RelPath {
    fn from(s: &[u8]) -> Self {
        RelPath(s.to_vec())
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show(&self.0))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", show(&self.0))
    }
}

/// Bytes for humans: valid UTF-8 as it is (control characters escaped),
/// anything else as `\xNN`.
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// One archived entry. Kept compact (mode and digest as numbers, written as
/// strings): a manifest of 200 000 entries is held in memory while it is
/// written or checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawEntry")]
pub struct Entry {
    pub path: RelPath,
    pub kind: EntryKind,
    pub size: u64,
    /// Permission bits as archived (`"0600"` in the JSON).
    pub mode: Mode,
    pub sha256: Option<Sha256Digest>,
    /// Modification time, seconds since the epoch (absent in version 1).
    pub mtime: Option<i64>,
    /// A symlink's target.
    pub target: Option<RelPath>,
}

/// Writes `key` (exact UTF-8) or `key` for humans plus `key_hex` (exact).
fn serialize_bytes<S: SerializeStruct>(
    st: &mut S,
    key: &'static str,
    hex_key: &'static str,
    bytes: &[u8],
) -> Result<(), S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(s) => st.serialize_field(key, s),
        Err(_) => {
            st.serialize_field(key, &show(bytes))?;
            st.serialize_field(hex_key, &hex::encode(bytes))
        }
    }
}

fn bytes_of(plain: Option<String>, hexed: Option<String>, what: &str) -> Result<Vec<u8>, String> {
    match (plain, hexed) {
        (_, Some(h)) => hex::decode(&h).map_err(|_| format!("{what}_hex is not hex")),
        (Some(p), None) => Ok(p.into_bytes()),
        (None, None) => Err(format!("missing field `{what}`")),
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Entry", 8)?;
        serialize_bytes(&mut st, "path", "path_hex", self.path.as_bytes())?;
        st.serialize_field("type", &self.kind)?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("mode", &self.mode)?;
        if let Some(m) = self.mtime {
            st.serialize_field("mtime", &m)?;
        }
        if let Some(d) = &self.sha256 {
            st.serialize_field("sha256", d)?;
        }
        if let Some(t) = &self.target {
            serialize_bytes(&mut st, "target", "target_hex", t.as_bytes())?;
        }
        st.end()
    }
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    path_hex: Option<String>,
    #[serde(rename = "type")]
    kind: EntryKind,
    size: u64,
    mode: Mode,
    #[serde(default)]
    sha256: Option<Sha256Digest>,
    #[serde(default)]
    mtime: Option<i64>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    target_hex: Option<String>,
}

impl TryFrom<RawEntry> for Entry {
    type Error = String;
    fn try_from(r: RawEntry) -> Result<Self, String> {
        let path = RelPath(bytes_of(r.path, r.path_hex, "path")?);
        let target = match (r.target, r.target_hex) {
            (None, None) => None,
            (t, h) => Some(RelPath(bytes_of(t, h, "target")?)),
        };
        Ok(Entry {
            path,
            kind: r.kind,
            size: r.size,
            mode: r.mode,
            sha256: r.sha256,
            mtime: r.mtime,
            target,
        })
    }
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
/// `path` is written like an entry's (`path`, plus `path_hex` when the name
/// is not UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawWarning")]
pub struct Warning {
    pub path: RelPath,
    /// Warnings: `symlink`, `socket`, `fifo`, `device`, `non-utf8-name`
    /// (older versions only),
    /// `changed-while-read`, `partial-line`, `live-lock`, `sqlite-fallback`,
    /// `vanished`, `replaced`. Notes (expected, not counted by `--strict`):
    /// `lock-file`, `excluded-destination`.
    pub kind: String,
    pub detail: String,
}

impl Serialize for Warning {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Warning", 4)?;
        serialize_bytes(&mut st, "path", "path_hex", self.path.as_bytes())?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("detail", &self.detail)?;
        st.end()
    }
}

#[derive(Deserialize)]
struct RawWarning {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    path_hex: Option<String>,
    kind: String,
    detail: String,
}

impl TryFrom<RawWarning> for Warning {
    type Error = String;
    fn try_from(r: RawWarning) -> Result<Self, String> {
        Ok(Warning {
            path: RelPath(bytes_of(r.path, r.path_hex, "path")?),
            kind: r.kind,
            detail: r.detail,
        })
    }
}

/// Warning kinds that mean "seen in the source but not archived": restore
/// carries such entries over from the current tree instead of dropping them.
pub const SKIPPED_KINDS: [&str; 7] = [
    "symlink",
    "socket",
    "fifo",
    "device",
    "lock-file",
    "excluded-destination",
    "non-utf8-name",
];

impl Warning {
    /// Whether the entry was left out of the archive (see [`SKIPPED_KINDS`]).
    pub fn is_skip(&self) -> bool {
        SKIPPED_KINDS.contains(&self.kind.as_str())
    }

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
        if self.version == CHAIN_VERSION {
            return Err(format!(
                "manifest.json version {CHAIN_VERSION} belongs to an archive of an incremental chain; it is read with its chain (LinkManifest)"
            ));
        }
        self.checked_up_to(VERSION)
    }

    fn checked_up_to(self, max: u32) -> Result<Manifest, String> {
        let m = self;
        if m.format != FORMAT {
            return Err(format!(
                "manifest.json has format {:?}, expected {FORMAT:?}",
                m.format
            ));
        }
        if !(MIN_VERSION..=max).contains(&m.version) {
            return Err(format!(
                "manifest.json version {} is not supported (this tool reads versions {MIN_VERSION} to {max})",
                m.version
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &m.entries {
            if !seen.insert(e.path.as_bytes()) {
                return Err(format!("manifest.json lists {:?} twice", e.path));
            }
            if e.kind == EntryKind::File && e.sha256.is_none() {
                return Err(format!(
                    "manifest.json entry {:?} has no valid sha256",
                    e.path
                ));
            }
            if (e.kind == EntryKind::Symlink) != e.target.is_some() {
                return Err(format!(
                    "manifest.json entry {:?}: only a symlink has a target, and every symlink has one",
                    e.path
                ));
            }
        }
        Ok(m)
    }

    pub fn to_json(&self) -> Vec<u8> {
        json_bytes(self)
    }

    /// Writes `manifest.json` (pretty-printed, with a final newline) to `w`,
    /// without building it in memory first.
    pub fn write_json(&self, w: impl std::io::Write) -> std::io::Result<()> {
        write_pretty(self, w)
    }

    /// The length of what [`Manifest::write_json`] writes.
    pub fn json_len(&self) -> u64 {
        pretty_len(self)
    }

    /// Entries by path.
    pub fn by_path(&self) -> BTreeMap<&[u8], &Entry> {
        self.entries
            .iter()
            .map(|e| (e.path.as_bytes(), e))
            .collect()
    }

    /// The guide's human-readable `manifest.txt`, with the same fields.
    pub fn to_text(&self) -> String {
        let files = self.entries.iter().filter(|e| e.kind == EntryKind::File);
        let (count, bytes) = files.fold((0u64, 0u64), |(c, b), e| (c + 1, b + e.size));
        let mut top: BTreeMap<&[u8], u64> = BTreeMap::new();
        for e in &self.entries {
            let first = e
                .path
                .as_bytes()
                .split(|&b| b == b'/')
                .next()
                .unwrap_or(b"");
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
            s.push_str(&format!("  {}  {}\n", show(name), human_bytes(*size)));
        }
        s.push_str(&format!(
            "\nFiles: {count}\nBackup size: {}\n",
            human_bytes(bytes)
        ));
        s.push_str(&format!("{KEPT}\n"));
        if !self.warnings.is_empty() {
            s.push_str("\nWarnings:\n");
            for w in &self.warnings {
                s.push_str(&format!("  {} [{}] {}\n", w.path, w.kind, w.detail));
            }
        }
        s
    }
}

/// Where an archive stands in an incremental chain (README "Incremental
/// backups"). Every archive of a chain uses the same top-level directory,
/// `id` (the full's `<type>_<timestamp>[_N]`), so that applying the links in
/// order with stock tar builds one tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub id: String,
    /// 0 for the chain's full, n for the n-th link after it.
    pub level: u32,
    /// The archive file name of the link this one applies on top of (none
    /// for the full).
    pub previous: Option<String>,
}

impl Chain {
    fn check(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.contains(['/', '\0']) || self.id == "." || self.id == ".."
        {
            return Err(format!(
                "manifest.json has an invalid chain id {:?}",
                self.id
            ));
        }
        if (self.level == 0) != self.previous.is_none() {
            return Err(format!(
                "manifest.json: chain level {} with predecessor {:?} (only level 0 has none)",
                self.level, self.previous
            ));
        }
        if let Some(p) = &self.previous {
            if p.is_empty() || p.contains(['/', '\0']) {
                return Err(format!("manifest.json names an invalid predecessor {p:?}"));
            }
        }
        Ok(())
    }
}

/// The manifest of a chain archive (version [`CHAIN_VERSION`]): the usual
/// fields, with `entries` the complete tree at this link, plus `chain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkManifest {
    #[serde(flatten)]
    pub manifest: Manifest,
    pub chain: Chain,
}

/// Every manifest field, `chain` optional: what [`LinkManifest::parse_any`] reads.
#[derive(Deserialize)]
#[serde(rename = "Manifest")]
struct AnyManifest {
    format: String,
    version: u32,
    #[serde(rename = "type")]
    backup_type: String,
    created: String,
    timestamp: String,
    host: String,
    tool_version: String,
    source: String,
    #[serde(default)]
    recipients: Vec<String>,
    entries: Vec<Entry>,
    #[serde(default)]
    warnings: Vec<Warning>,
    #[serde(default)]
    chain: Option<Chain>,
}

impl LinkManifest {
    /// Reads any manifest this tool knows: versions 1 and 2 (no chain) and
    /// version 3 (with its chain), streaming from `r`.
    pub fn parse_any(r: impl std::io::Read) -> Result<(Manifest, Option<Chain>), String> {
        let a: AnyManifest =
            serde_json::from_reader(r).map_err(|e| format!("manifest.json is not valid: {e}"))?;
        let m = Manifest {
            format: a.format,
            version: a.version,
            backup_type: a.backup_type,
            created: a.created,
            timestamp: a.timestamp,
            host: a.host,
            tool_version: a.tool_version,
            source: a.source,
            recipients: a.recipients,
            entries: a.entries,
            warnings: a.warnings,
        };
        match (m.version == CHAIN_VERSION, &a.chain) {
            (true, None) => {
                return Err(format!(
                    "manifest.json version {CHAIN_VERSION} has no chain"
                ))
            }
            (false, Some(_)) => {
                return Err(format!(
                    "manifest.json version {} has a chain (only version {CHAIN_VERSION} may)",
                    m.version
                ))
            }
            (_, Some(c)) => c.check()?,
            (false, None) => {}
        }
        Ok((m.checked_up_to(CHAIN_VERSION)?, a.chain))
    }

    /// Like [`LinkManifest::parse_any`], from bytes, requiring a chain.
    pub fn parse(bytes: &[u8]) -> Result<LinkManifest, String> {
        match Self::parse_any(bytes)? {
            (manifest, Some(chain)) => Ok(LinkManifest { manifest, chain }),
            (_, None) => Err("manifest.json is not the manifest of a chain archive".into()),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        json_bytes(self)
    }

    /// Writes `manifest.json` (pretty-printed, final newline) to `w`.
    pub fn write_json(&self, w: impl std::io::Write) -> std::io::Result<()> {
        write_pretty(self, w)
    }

    /// The length of what [`LinkManifest::write_json`] writes.
    pub fn json_len(&self) -> u64 {
        pretty_len(self)
    }

    /// `manifest.txt`: the usual summary plus the chain.
    pub fn to_text(&self) -> String {
        let mut s = self.manifest.to_text();
        s.push_str(&format!(
            "\nIncremental chain: {} (level {}{})\n",
            self.chain.id,
            self.chain.level,
            match &self.chain.previous {
                Some(p) => format!(", applies on top of {p}"),
                None => ", the chain's full".into(),
            }
        ));
        s
    }

    /// Whether this link directly follows `prev` (the manifest of the archive
    /// named `prev_name`): same chain, next level, naming it as predecessor.
    pub fn follows(&self, prev: &Chain, prev_name: &str) -> Result<(), String> {
        if self.chain.id != prev.id {
            return Err(format!(
                "it belongs to chain {:?}, {prev_name} to chain {:?}",
                self.chain.id, prev.id
            ));
        }
        if self.chain.level != prev.level + 1 {
            return Err(format!(
                "it is level {}, {prev_name} is level {}",
                self.chain.level, prev.level
            ));
        }
        if self.chain.previous.as_deref() != Some(prev_name) {
            return Err(format!(
                "it applies on top of {:?}, not {prev_name}",
                self.chain.previous
            ));
        }
        Ok(())
    }
}

/// The names for `manifest.txt` and `manifest.json` in an archive whose data
/// has the top-level names `taken`: the usual ones unless the data uses them,
/// else `manifest-N.txt`/`manifest-N.json` with the first free N (the PAX
/// mark, not the name, identifies the manifest).
pub fn manifest_names(taken: &std::collections::BTreeSet<&[u8]>) -> (String, String) {
    let free = |t: &str, j: &str| !taken.contains(t.as_bytes()) && !taken.contains(j.as_bytes());
    if free(TXT_NAME, JSON_NAME) {
        return (TXT_NAME.to_owned(), JSON_NAME.to_owned());
    }
    let mut n = 1u64;
    loop {
        let (t, j) = (format!("manifest-{n}.txt"), format!("manifest-{n}.json"));
        if free(&t, &j) {
            return (t, j);
        }
        n += 1;
    }
}

/// What an archive keeps, for `manifest.txt` (the README says the same).
pub const KEPT: &str = "Kept: names as bytes, contents, permission bits (restored owner-only: \
directories 0700, files 0600/0700), mtimes to the second, relative symlinks inside the tree. \
Not kept: ownership, xattrs, hard links (restored as separate files), and what the warnings list.";

/// `v` as pretty-printed JSON with a final newline, written to `w` through
/// a buffer (a manifest is never built in memory first).
fn write_pretty(v: &impl Serialize, w: impl std::io::Write) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, w);
    serde_json::to_writer_pretty(&mut w, v)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// What [`write_pretty`] writes, in memory.
fn json_bytes(v: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    // writing into a Vec cannot fail
    let _ = write_pretty(v, &mut out);
    out
}

/// The length of what [`write_pretty`] writes, counted without keeping it.
fn pretty_len(v: &impl Serialize) -> u64 {
    let mut c = CountingWriter {
        inner: std::io::sink(),
        count: 0,
    };
    let _ = write_pretty(v, &mut c);
    c.count
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
                    mtime: Some(1_700_000_000),
                    target: None,
                },
                Entry {
                    path: "credentials/oauth.json".into(),
                    kind: EntryKind::File,
                    size: 3,
                    mode: Mode(0o600),
                    sha256: Some(Sha256Digest([0xAB; 32])),
                    mtime: None,
                    target: None,
                },
                Entry {
                    path: RelPath::new(b"credentials/caf\xE9\\x.json".to_vec()),
                    kind: EntryKind::File,
                    size: 0,
                    mode: Mode(0o600),
                    sha256: Some(Sha256Digest([0; 32])),
                    mtime: Some(-5),
                    target: None,
                },
                Entry {
                    path: RelPath::from("credentials/link"),
                    kind: EntryKind::Symlink,
                    size: 0,
                    mode: Mode(0o777),
                    sha256: None,
                    mtime: Some(1),
                    target: Some(RelPath::new(b"caf\xE9\\x.json".to_vec())),
                },
            ],
            warnings: vec![Warning {
                path: RelPath::new(b"s\xFF.sock".to_vec()),
                kind: "socket".into(),
                detail: "socket; not archived".into(),
            }],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        assert_eq!(Manifest::from_reader(&m.to_json()[..]).unwrap(), m);
        assert_eq!(m.json_len(), m.to_json().len() as u64);
        assert!(m.to_text().contains("Backup Type: daily"));
        let json = String::from_utf8(m.to_json()).unwrap();
        // non-UTF-8 names: exact hex plus an escaped form for humans
        assert!(json.contains(&format!(
            "\"path_hex\": \"{}\"",
            hex::encode(b"credentials/caf\xE9\\x.json")
        )));
        assert!(
            json.contains(r#""path": "credentials/caf\\xE9\\x.json""#),
            "{json}"
        );
        assert!(json.contains(r#""path": "credentials/oauth.json""#));
        assert!(json.contains(&format!(
            "\"target_hex\": \"{}\"",
            hex::encode(b"caf\xE9\\x.json")
        )));
        assert!(json.contains(&format!("\"path_hex\": \"{}\"", hex::encode(b"s\xFF.sock"))));
    }

    #[test]
    fn version_1_manifests_still_parse() {
        let v1 = br#"{"format":"secureclaw-backup-manifest","version":1,"type":"daily",
            "created":"2026-01-01T00:00:00Z","timestamp":"20260101_000000","host":"h",
            "tool_version":"0.1.0","source":"/s","recipients":[],
            "entries":[{"path":"a","type":"dir","size":0,"mode":"0700"},
                       {"path":"a/b","type":"file","size":1,"mode":"0600","sha256":"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"}],
            "warnings":[{"path":"caf\u00e9","kind":"non-utf8-name","detail":"x"}]}"#;
        let m = Manifest::parse(v1).unwrap();
        assert_eq!(m.entries[1].path.as_bytes(), b"a/b");
        assert_eq!(m.entries[1].mtime, None);
        assert!(m.warnings[0].is_skip());
        // a symlink without a target, or a file with one, is malformed
        let mut m = sample();
        m.entries[3].target = None;
        assert!(Manifest::parse(&m.to_json()).is_err());
        let mut m = sample();
        m.entries[1].target = Some(RelPath::from("x"));
        assert!(Manifest::parse(&m.to_json()).is_err());
        let json = String::from_utf8(sample().to_json()).unwrap();
        assert!(Manifest::parse(
            json.replace("\"path_hex\": \"", "\"path_hex\": \"zz")
                .as_bytes()
        )
        .is_err());
    }

    #[test]
    fn chain_manifests_are_version_3_and_parse_only_with_their_chain() {
        let mut m = sample();
        m.version = CHAIN_VERSION;
        let lm = LinkManifest {
            manifest: m.clone(),
            chain: Chain {
                id: "daily_20261123_000000".into(),
                level: 2,
                previous: Some("daily_20261123_010000.tar.gz.age".into()),
            },
        };
        let json = lm.to_json();
        assert_eq!(lm.json_len(), json.len() as u64);
        assert_eq!(LinkManifest::parse(&json).unwrap(), lm);
        let (back, chain) = LinkManifest::parse_any(&json[..]).unwrap();
        assert_eq!((back, chain), (m.clone(), Some(lm.chain.clone())));
        assert!(lm.to_text().contains("level 2"));
        // a version-2 reader's parser says what it is, not "damaged"
        let e = Manifest::parse(&json).unwrap_err();
        assert!(e.contains("incremental chain"), "{e}");
        // plain manifests parse as before, without a chain, byte-identical
        let plain = sample();
        assert!(!String::from_utf8(plain.to_json())
            .unwrap()
            .contains("chain"));
        assert_eq!(
            LinkManifest::parse_any(&plain.to_json()[..]).unwrap(),
            (plain.clone(), None)
        );
        assert!(LinkManifest::parse(&plain.to_json()).is_err());
        // version 3 without a chain, version 2 with one, inconsistent levels
        assert!(LinkManifest::parse_any(&m.to_json()[..]).is_err());
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(LinkManifest::parse_any(
            text.replace("\"version\": 3", "\"version\": 2").as_bytes()
        )
        .is_err());
        for (from, to) in [
            ("\"level\": 2", "\"level\": 0"),
            ("\"id\": \"daily_20261123_000000\"", "\"id\": \"a/b\""),
            (
                "\"previous\": \"daily_20261123_010000.tar.gz.age\"",
                "\"previous\": null",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            assert!(
                LinkManifest::parse_any(text.replace(from, to).as_bytes()).is_err(),
                "{to}"
            );
        }
        // follows: same chain, next level, names its predecessor
        let prev = Chain {
            id: "daily_20261123_000000".into(),
            level: 1,
            previous: Some("daily_20261123_000000.tar.gz.age".into()),
        };
        assert!(lm
            .follows(&prev, "daily_20261123_010000.tar.gz.age")
            .is_ok());
        assert!(lm
            .follows(&prev, "daily_20261123_020000.tar.gz.age")
            .is_err());
        assert!(lm
            .follows(
                &Chain {
                    level: 0,
                    previous: None,
                    ..prev.clone()
                },
                "daily_20261123_010000.tar.gz.age"
            )
            .is_err());
    }

    #[test]
    fn manifest_names_avoid_the_data() {
        let mut taken = std::collections::BTreeSet::new();
        assert_eq!(manifest_names(&taken), (TXT_NAME.into(), JSON_NAME.into()));
        taken.insert(&b"manifest.json"[..]);
        assert_eq!(
            manifest_names(&taken),
            ("manifest-1.txt".into(), "manifest-1.json".into())
        );
        taken.insert(&b"manifest-1.txt"[..]);
        assert_eq!(
            manifest_names(&taken),
            ("manifest-2.txt".into(), "manifest-2.json".into())
        );
        assert_eq!(show(b"a\nb\xE9"), "a\\nb\\xE9");
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
