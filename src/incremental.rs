//! Incremental chains (README "Incremental backups"): the local state file
//! that says what the newest archive of a chain holds, change detection from
//! it, the chain decision (a pure function), and [`write_link`], which writes
//! the tar stream of one archive of a chain to any `Write`.
//!
//! A chain is a full (level 0) and the links after it (level 1, 2 …); every
//! archive of it has the chain's top-level directory (the full's
//! `<type>_<timestamp>[_N]`, which is the chain id), a GNU dumpdir for every
//! directory (see `archive::writer`), only the files that changed, and a
//! manifest that lists the complete tree at that point ([`LinkManifest`]).
//!
//! The backup host holds only public keys and can never read its own
//! archives, so the state file is the source of truth: per file its size,
//! mtime and ctime in nanoseconds, inode, device, mode and the SHA-256 the
//! manifest recorded, plus which archive it describes. It is owner-only,
//! under the XDG state directory ([`state_path`]), and must be replaced
//! ([`save_state`], atomically) only after the archive it describes was
//! committed under its final name ([`NewState::committed`]). A file whose
//! size, mtime, ctime, inode and device all match the state is unchanged and
//! never read (`--reread`: hashed, and stored only if its content differs).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::archive::writer::{dumpdir, ArchiveWriter, Dump};
use crate::capture::{Capturer, LiveOptions};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::manifest::{
    Chain, Entry, EntryKind, LinkManifest, Manifest, Mode, RelPath, Sha256Digest, Warning,
    CHAIN_VERSION, FORMAT,
};
use crate::source::{self, Item, Selection};
use crate::store::BackupType;

/// The version of the state file's format.
pub const STATE_VERSION: u32 = 1;
/// A chain whose full is this old gets a new full: with an hourly schedule,
/// one chain per day (a full and 23 links).
pub const DEFAULT_FULL_EVERY: Duration = Duration::from_secs(24 * 3600);
/// A chain with this many links after its full gets a new full (a cap for
/// schedules more frequent than hourly: 48 half-hourly links).
pub const DEFAULT_MAX_LINKS: u32 = 48;

/// `--max-chain-size` default: a chain's archives together hold at most
/// 130 % of its full's bytes, so restoring its newest link reads (and
/// downloads from a tier) at most about 1.3 times what restoring a full of
/// the same tree does (README "Incremental backups").
pub const DEFAULT_MAX_CHAIN_SIZE: u32 = 130;

/// A chain whose links hold less than this (beyond its full) is never cut
/// for its size: restoring 16 MiB more costs a fraction of a second, and a
/// small data directory keeps its chains (every link carries the manifest
/// of the complete tree, often as large as a small full).
pub const CHAIN_SIZE_FLOOR: u64 = 16 << 20;
/// Largest state file we read.
const MAX_STATE_BYTES: u64 = 1 << 30;

/// What the state knows of one regular file, as archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
    /// Permission bits, as in the manifest.
    pub mode: u16,
    /// The SHA-256 the manifest recorded (of the archived content).
    pub sha256: Sha256Digest,
}

/// The identity of a file on disk that change detection compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

impl Stat {
    pub fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

impl FileState {
    pub fn stat(&self) -> Stat {
        Stat {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            ino: self.ino,
            dev: self.dev,
        }
    }

    /// Whether a file with this stat is unchanged since the state was taken.
    pub fn unchanged(&self, now: &Stat) -> bool {
        self.stat() == *now
    }
}

/// The local state of a chain: what its newest archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub btype: BackupType,
    /// The source directory, absolute.
    pub source: String,
    pub chain_id: String,
    /// Of the archive this state describes.
    pub level: u32,
    /// The file name of the archive this state describes (the newest link).
    pub archive: String,
    /// Every archive of the chain, full first, `archive` last.
    pub links: Vec<String>,
    /// When the chain's full was made.
    pub full_created: DateTime<Utc>,
    pub files: BTreeMap<RelPath, FileState>,
}

#[derive(Serialize, Deserialize)]
struct RawFile {
    path_hex: String,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    mode: u16,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct RawState {
    format: String,
    version: u32,
    #[serde(rename = "type")]
    btype: String,
    source: String,
    chain_id: String,
    level: u32,
    archive: String,
    links: Vec<String>,
    full_created: String,
    files: Vec<RawFile>,
}

const STATE_FORMAT: &str = "secureclaw-backup-incremental-state";

impl State {
    pub fn to_json(&self) -> Vec<u8> {
        let raw = RawState {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            btype: self.btype.as_str().into(),
            source: self.source.clone(),
            chain_id: self.chain_id.clone(),
            level: self.level,
            archive: self.archive.clone(),
            links: self.links.clone(),
            full_created: self
                .full_created
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            files: self
                .files
                .iter()
                .map(|(p, f)| RawFile {
                    path_hex: hex::encode(p.as_bytes()),
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    ctime_ns: f.ctime_ns,
                    ino: f.ino,
                    dev: f.dev,
                    mode: f.mode,
                    sha256: hex::encode(f.sha256.0),
                })
                .collect(),
        };
        let mut v = serde_json::to_vec(&raw).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parses a state file; says what is wrong with a damaged one.
    pub fn parse(bytes: &[u8]) -> std::result::Result<State, String> {
        let raw: RawState =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON state: {e}"))?;
        if raw.format != STATE_FORMAT || raw.version != STATE_VERSION {
            return Err(format!(
                "format {:?} version {}, expected {STATE_FORMAT:?} version {STATE_VERSION}",
                raw.format, raw.version
            ));
        }
        let btype = BackupType::parse(&raw.btype)
            .ok_or_else(|| format!("unknown backup type {:?}", raw.btype))?;
        let full_created = DateTime::parse_from_rfc3339(&raw.full_created)
            .map_err(|e| format!("bad full_created {:?}: {e}", raw.full_created))?
            .with_timezone(&Utc);
        if raw.links.last() != Some(&raw.archive) || raw.links.len() as u64 != raw.level as u64 + 1
        {
            return Err(format!(
                "archive {:?} at level {} does not end its {} links",
                raw.archive,
                raw.level,
                raw.links.len()
            ));
        }
        for l in &raw.links {
            if l.is_empty() || l.contains(['/', '\0']) {
                return Err(format!("invalid archive name {l:?}"));
            }
        }
        let mut files = BTreeMap::new();
        for f in raw.files {
            let path = hex::decode(&f.path_hex).map_err(|_| "a path is not hex".to_string())?;
            let sha: [u8; 32] = hex::decode(&f.sha256)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| "a sha256 is not 32 bytes of hex".to_string())?;
            let st = FileState {
                size: f.size,
                mtime_ns: f.mtime_ns,
                ctime_ns: f.ctime_ns,
                ino: f.ino,
                dev: f.dev,
                mode: f.mode & 0o7777,
                sha256: Sha256Digest(sha),
            };
            if files.insert(RelPath::new(path), st).is_some() {
                return Err("a path is listed twice".into());
            }
        }
        Ok(State {
            btype,
            source: raw.source,
            chain_id: raw.chain_id,
            level: raw.level,
            archive: raw.archive,
            links: raw.links,
            full_created,
            files,
        })
    }
}

/// The state after a new archive, before that archive has its final name.
#[derive(Debug, Clone)]
pub struct NewState {
    state: State,
}

impl NewState {
    /// The state describing the archive committed as `archive_name` (its
    /// file name in the destination). Save it only after the commit.
    pub fn committed(mut self, archive_name: &str) -> State {
        self.state.archive = archive_name.to_owned();
        self.state.links.push(archive_name.to_owned());
        self.state
    }
}

/// The state file of backups of `source` of type `btype` into `dest`:
/// `$XDG_STATE_HOME/secureclaw-backup/incremental/<type>-<hash>.json`
/// (else `~/.local/state/…`), the hash over the absolute source and
/// destination (one chain per source, destination and type).
pub fn state_path(btype: BackupType, source: &Path, dest: &Path) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(s) if Path::new(&s).is_absolute() => PathBuf::from(s),
        _ => crate::paths::home()?.join(".local").join("state"),
    };
    use std::os::unix::ffi::OsStrExt;
    let mut h = Sha256::new();
    h.update(crate::paths::absolute(source).as_os_str().as_bytes());
    h.update([0u8]);
    h.update(crate::paths::absolute(dest).as_os_str().as_bytes());
    let key = hex::encode(&h.finalize()[..8]);
    Ok(base
        .join("secureclaw-backup")
        .join("incremental")
        .join(format!("{}-{key}.json", btype.as_str())))
}

/// What reading the state file found.
#[derive(Debug, Clone)]
pub enum Loaded {
    Missing,
    /// Unreadable, malformed, not owner-only, or for another source or type.
    Damaged(String),
    Found(State),
}

/// Reads the state file at `path`, expecting backups of `source` of type
/// `btype`. Never fails: a problem is [`Loaded::Damaged`], which starts a
/// new chain.
pub fn load_state(path: &Path, btype: BackupType, source: &Path) -> Loaded {
    let source = &crate::paths::absolute(source).display().to_string();
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nofollow()
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Damaged(format!("cannot open {}: {e}", path.display())),
    };
    match f.metadata() {
        Ok(m) if !m.is_file() => {
            return Loaded::Damaged(format!("{} is not a regular file", path.display()))
        }
        Ok(m) if m.mode() & 0o077 != 0 || m.uid() != crate::fsx::euid() => {
            return Loaded::Damaged(format!(
                "{} is not owner-only (mode {:o}, owner {}); not trusted",
                path.display(),
                m.mode() & 0o7777,
                m.uid()
            ))
        }
        Ok(_) => {}
        Err(e) => return Loaded::Damaged(format!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = Vec::new();
    if let Err(e) = f.take(MAX_STATE_BYTES).read_to_end(&mut bytes) {
        return Loaded::Damaged(format!("cannot read {}: {e}", path.display()));
    }
    match State::parse(&bytes) {
        Ok(s) if s.btype != btype || &s.source != source => Loaded::Damaged(format!(
            "{} describes {} backups of {}, not {} backups of {source}",
            path.display(),
            s.btype.as_str(),
            s.source,
            btype.as_str()
        )),
        Ok(s) => Loaded::Found(s),
        Err(why) => Loaded::Damaged(format!("{} is damaged: {why}", path.display())),
    }
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
    }
}

/// Replaces the state file atomically (owner-only, in a private 0700
/// directory). Call it only after the archive `state` describes is committed.
pub fn save_state(path: &Path, state: &State) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::fsx::private_dir_all(dir).map_err(|why| {
        Error::refused(format!(
            "the state directory {} is unusable ({why})",
            dir.display()
        ))
        .hint("make it a directory owned by you with mode 0700, or set XDG_STATE_HOME")
    })?;
    crate::store::write_replace(path, &state.to_json(), 0o600)
}

/// When a chain gets a new full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPolicy {
    /// `--full-every`: a chain whose full is at least this old ends.
    pub full_every: Duration,
    /// `--max-links`: a chain with this many links after its full ends.
    pub max_links: u32,
    /// `--max-chain-size`: the chain ends when its archives, with the next
    /// link (estimated as large as the newest; the first after a full from
    /// [`changed_bytes`]), would hold more than this
    /// percentage of its full's bytes (beyond [`CHAIN_SIZE_FLOOR`]); `None`
    /// = unlimited.
    pub max_chain_size: Option<u32>,
}

impl Default for ChainPolicy {
    fn default() -> Self {
        ChainPolicy {
            full_every: DEFAULT_FULL_EVERY,
            max_links: DEFAULT_MAX_LINKS,
            max_chain_size: Some(DEFAULT_MAX_CHAIN_SIZE),
        }
    }
}

/// Why a run starts a new chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewChain {
    /// No state file (the first incremental run).
    NoState,
    /// The state file is damaged or not ours: the reason.
    Damaged(String),
    /// The state names an archive that is not in the destination.
    ArchiveMissing(String),
    /// The chain's full is this old (at least `full_every`).
    FullTooOld(Duration),
    /// The chain's full is dated after now (the clock went back).
    FullInFuture,
    /// The chain has this many links after its full already.
    TooManyLinks(u32),
    /// The chain's archives hold `total` bytes, its full `full`, and the
    /// next link (estimated as `next`) would take it past `limit` percent.
    ChainTooLarge {
        total: u64,
        full: u64,
        next: u64,
        limit: u32,
    },
    /// The destination holds this archive of the chain (or without a
    /// description) that the state does not know: a run was interrupted
    /// after its archive was committed, or another writer added it. A link
    /// after the state's newest would fork the chain.
    StateBehind(String),
}

impl fmt::Display for NewChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NewChain::NoState => f.write_str("no incremental state yet"),
            NewChain::Damaged(why) => write!(f, "the incremental state is unusable: {why}"),
            NewChain::ArchiveMissing(a) => {
                write!(f, "the chain's archive {a} is not in the destination")
            }
            NewChain::FullTooOld(d) => {
                let s = d.as_secs();
                write!(
                    f,
                    "the chain's full is {}h{:02}m old (--full-every)",
                    s / 3600,
                    s % 3600 / 60
                )
            }
            NewChain::FullInFuture => f.write_str("the chain's full is dated in the future"),
            NewChain::TooManyLinks(n) => {
                write!(f, "the chain has {n} links after its full (--max-links)")
            }
            NewChain::ChainTooLarge {
                total,
                full,
                next,
                limit,
            } => write!(
                f,
                "the chain's archives hold {total} bytes, {}% of its full's {full}, and the next \
                 link (estimated at {next} bytes) would take it past --max-chain-size {limit}%",
                total.saturating_mul(100) / (*full).max(1)
            ),
            NewChain::StateBehind(a) => write!(
                f,
                "the destination holds {a}, newer than the state's newest link \
                 (an interrupted run or another writer)"
            ),
        }
    }
}

/// What the next archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A full that starts a new chain, and why.
    Full(NewChain),
    /// The next link of the chain the state describes.
    Link(Chain),
}

/// The chain decision: a pure function of the state, the archives in the
/// destination (name → bytes), the policy and the time.
pub fn decide(
    loaded: &Loaded,
    present: &BTreeMap<String, u64>,
    policy: &ChainPolicy,
    now: DateTime<Utc>,
) -> Plan {
    decide_with(loaded, present, policy, now, None)
}

/// [`decide`], with the estimated size of a chain's first link
/// (`first_link`, from [`changed_bytes`]): the later links are estimated
/// as large as the newest, the first has no link before it.
pub fn decide_with(
    loaded: &Loaded,
    present: &BTreeMap<String, u64>,
    policy: &ChainPolicy,
    now: DateTime<Utc>,
    first_link: Option<u64>,
) -> Plan {
    let st = match loaded {
        Loaded::Missing => return Plan::Full(NewChain::NoState),
        Loaded::Damaged(why) => return Plan::Full(NewChain::Damaged(why.clone())),
        Loaded::Found(s) => s,
    };
    if let Some(gone) = st.links.iter().find(|l| !present.contains_key(*l)) {
        return Plan::Full(NewChain::ArchiveMissing(gone.clone()));
    }
    let Ok(age) = (now - st.full_created).to_std() else {
        return Plan::Full(NewChain::FullInFuture);
    };
    if age >= policy.full_every {
        return Plan::Full(NewChain::FullTooOld(age));
    }
    if st.level >= policy.max_links {
        return Plan::Full(NewChain::TooManyLinks(st.level));
    }
    if let Some(why) = too_large(st, present, policy.max_chain_size, first_link) {
        return Plan::Full(why);
    }
    Plan::Link(Chain {
        id: st.chain_id.clone(),
        level: st.level + 1,
        previous: Some(st.archive.clone()),
    })
}

/// [`NewChain::ChainTooLarge`] when the chain's archives and one more link
/// (as large as the newest; the first as `first_link`) would hold more
/// than `limit` percent of the full.
fn too_large(
    st: &State,
    present: &BTreeMap<String, u64>,
    limit: Option<u32>,
    first_link: Option<u64>,
) -> Option<NewChain> {
    let limit = limit?;
    let size = |n: &String| present.get(n).copied().unwrap_or(0);
    let full = size(st.links.first()?);
    let total: u64 = st.links.iter().map(size).sum();
    let next = if st.links.len() > 1 {
        st.links.last().map_or(0, size)
    } else {
        first_link.unwrap_or(0)
    };
    let links = (total + next).saturating_sub(full);
    let allowed = (u128::from(full) * u128::from(limit.saturating_sub(100)) / 100) as u64;
    (full > 0 && links > allowed.max(CHAIN_SIZE_FLOOR)).then_some(NewChain::ChainTooLarge {
        total,
        full,
        next,
        limit,
    })
}

/// Bytes of each changed file compressed to judge how well it compresses.
const SAMPLE_BYTES: u64 = 256 << 10;
/// At most this much is sampled in all; further files get the ratio so far.
const SAMPLE_TOTAL: u64 = 16 << 20;

/// About what the first link after a full will hold: every file the state
/// knows whose stat changed since, at its present size, times how well it
/// compresses (its last 256 KiB, where appends land, gzip'd at level 1:
/// a little more than the archive's level). Files added since are not
/// counted: an estimate, a hint for `--max-chain-size`. `None` when the
/// source cannot be resolved.
pub fn changed_bytes(st: &State, source: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let root = source::resolve_root(source).ok()?;
    let (mut sampled_in, mut sampled_out, mut estimate) = (0u64, 0u64, 0u128);
    let mut later = 0u64;
    for (rel, f) in &st.files {
        let p = root.join(std::ffi::OsStr::from_bytes(&rel.0));
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let now = Stat::of(&m);
        if f.unchanged(&now) || !m.file_type().is_file() {
            continue;
        }
        let sample = (sampled_in < SAMPLE_TOTAL)
            .then(|| sample_ratio(&p, now.size))
            .flatten();
        match sample {
            // this file at its own ratio
            Some((i, o)) => {
                sampled_in += i;
                sampled_out += o;
                estimate += u128::from(now.size) * u128::from(o) / u128::from(i);
            }
            // past the sampling budget (or unreadable): the ratio so far
            None => later = later.saturating_add(now.size),
        }
    }
    if later > 0 {
        estimate += match sampled_in {
            0 => u128::from(later),
            _ => u128::from(later) * u128::from(sampled_out) / u128::from(sampled_in),
        };
    }
    Some(u64::try_from(estimate).unwrap_or(u64::MAX))
}

/// (bytes read, bytes gzip'd) of the last [`SAMPLE_BYTES`] of `path`.
fn sample_ratio(path: &Path, size: u64) -> Option<(u64, u64)> {
    use rustix::fs::OFlags;
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    // never a symlink, and a FIFO swapped in after the stat cannot block
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let n = size.min(SAMPLE_BYTES);
    f.seek(SeekFrom::Start(size - n)).ok()?;
    let mut buf = Vec::with_capacity(n as usize);
    (&mut f).take(n).read_to_end(&mut buf).ok()?;
    if buf.is_empty() {
        return None;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&buf).ok()?;
    let out = gz.finish().ok()?;
    // the archive's level stores what does not compress (level 1 may
    // expand it by a few percent)
    let n = buf.len() as u64;
    Some((n, (out.len() as u64).min(n)))
}

/// Parses `--max-chain-size`: a percentage of the full (`130%`, `130`, at
/// least 100) or `unlimited` (`None`).
pub fn parse_max_chain_size(s: &str) -> std::result::Result<Option<u32>, String> {
    if s == "unlimited" {
        return Ok(None);
    }
    match s.strip_suffix('%').unwrap_or(s).parse::<u32>() {
        Ok(n) if n >= 100 => Ok(Some(n)),
        _ => Err(format!(
            "--max-chain-size {s:?}: a percentage of the chain's full of at least 100 (e.g. 130%), or unlimited"
        )),
    }
}

/// What [`write_link`] needs besides the stream.
pub struct LinkOptions {
    pub btype: BackupType,
    /// The source directory (resolved like [`source::walk`] does).
    pub source: PathBuf,
    /// This archive's `<type>_<timestamp>[_N]`: the top-level directory and
    /// chain id of a full; a link uses its chain's instead.
    pub stem: String,
    pub now: DateTime<Utc>,
    pub host: String,
    pub recipients: Vec<String>,
    /// `--reread`: hash files the state calls unchanged, store them if
    /// their content differs.
    pub reread: bool,
    pub live: LiveOptions,
}

/// What [`write_link`] wrote.
pub struct LinkOutput<W> {
    /// The stream after the tar's end (the caller finishes its layers).
    pub out: W,
    pub manifest: LinkManifest,
    /// The state after this archive, to be committed with its final name.
    pub state: NewState,
    /// Files stored in this archive, and files recorded as unchanged.
    pub stored: u64,
    pub unchanged: u64,
    /// Bytes of file data stored in this archive.
    pub stored_bytes: u64,
}

enum Kind {
    Dir,
    File,
    Symlink(Vec<u8>),
}

struct Node {
    rel: Vec<u8>,
    kind: Kind,
    mode: u32,
    mtime: i64,
    stat: Stat,
}

fn parent_of(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[..i],
        None => b"",
    }
}

fn name_of(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[i + 1..],
        None => rel,
    }
}

/// The SHA-256 of the file at `path` (for `--reread`); `None` if it cannot
/// be read (it is then stored, which reads it again and reports).
fn hash_file(path: &Path) -> Option<Sha256Digest> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nofollow()
        .open(path)
        .ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        crate::process::check_interrupted().ok()?;
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(Sha256Digest(h.finalize().into()))
}

/// Writes the tar stream of one archive of a chain to `out`: every directory
/// with its dumpdir, the files that changed since `prev` (all of them for a
/// full), every in-tree symlink, and the manifest of the complete tree with
/// the chain. `plan` comes from [`decide`]; a [`Plan::Link`] needs the
/// state it was decided from as `prev`. Live files are captured as a plain
/// backup does (SQLite online backup, JSONL at a line boundary); a file
/// whose archived content may differ from the file (cut, changed while read)
/// is left out of the new state, so the next run reads it again.
pub fn write_link<W: Write>(
    out: W,
    opts: &LinkOptions,
    sel: &Selection,
    plan: &Plan,
    prev: Option<&State>,
    events: &dyn Events,
) -> Result<LinkOutput<W>> {
    let (chain, prev_files, full_created, links) = match plan {
        Plan::Full(_) => (
            Chain {
                id: opts.stem.clone(),
                level: 0,
                previous: None,
            },
            None,
            opts.now,
            Vec::new(),
        ),
        Plan::Link(c) => {
            let p = prev
                .filter(|p| p.chain_id == c.id && p.level + 1 == c.level)
                .ok_or_else(|| {
                    Error::operational(format!(
                        "an incremental link of chain {} needs the state of its predecessor",
                        c.id
                    ))
                    .hint("decide the plan from the loaded state and pass that state")
                })?;
            (c.clone(), Some(&p.files), p.full_created, p.links.clone())
        }
    };
    let root = source::resolve_root(&opts.source)?;
    let source_abs = crate::paths::absolute(&opts.source).display().to_string();
    // pass 1: the tree, so that each directory's dumpdir can precede it
    let mut nodes: Vec<Node> = Vec::new();
    let mut walk_warnings: Vec<Warning> = Vec::new();
    source::walk(&root, sel, &mut walk_warnings, &mut |item| {
        crate::process::check_interrupted()?;
        let (rel, kind, meta) = match item {
            Item::Dir { rel, meta } => (rel, Kind::Dir, meta),
            Item::File { rel, meta, .. } => (rel, Kind::File, meta),
            Item::Symlink { rel, target, meta } => (rel, Kind::Symlink(target.to_vec()), meta),
        };
        nodes.push(Node {
            rel: rel.to_vec(),
            kind,
            mode: meta.mode(),
            mtime: meta.mtime(),
            stat: Stat::of(meta),
        });
        Ok(())
    })?;
    let mut children: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        children
            .entry(parent_of(&n.rel).to_vec())
            .or_default()
            .push(i);
    }
    // which files are stored: decided when their directory is written
    let mut store_it: Vec<bool> = vec![true; nodes.len()];
    let path_of = |rel: &[u8]| {
        use std::os::unix::ffi::OsStrExt;
        root.join(std::ffi::OsStr::from_bytes(rel))
    };
    let decide_dir = |dir: &[u8], store_it: &mut Vec<bool>| -> Vec<u8> {
        let kids = children.get(dir).map(Vec::as_slice).unwrap_or(&[]);
        let mut list: Vec<(Dump, &[u8])> = Vec::with_capacity(kids.len());
        for &i in kids {
            let n = &nodes[i];
            let name = name_of(&n.rel);
            let d = match &n.kind {
                Kind::Dir => Dump::Dir,
                Kind::Symlink(_) => Dump::Stored,
                Kind::File => {
                    let old = prev_files.and_then(|f| f.get(n.rel.as_slice()));
                    let same = match old {
                        Some(o) if opts.reread => {
                            o.size == n.stat.size && hash_file(&path_of(&n.rel)) == Some(o.sha256)
                        }
                        Some(o) => o.unchanged(&n.stat),
                        None => false,
                    };
                    store_it[i] = !same;
                    if same {
                        Dump::Unchanged
                    } else {
                        Dump::Stored
                    }
                }
            };
            list.push((d, name));
        }
        dumpdir(list)
    };
    // pass 2: write. The progress moves by the bytes of the tar stream; its
    // total is what pass 1 decided to store (a header per entry, the data of
    // the files stored, padded to 512 bytes), known before the first byte.
    let pb: std::sync::Arc<dyn crate::events::Progress> =
        std::sync::Arc::from(events.progress(0, "backup"));
    pb.set_total(
        nodes
            .iter()
            .zip(&store_it)
            .map(|(n, &stored)| match n.kind {
                Kind::File if stored => 512 + n.stat.size.div_ceil(512) * 512,
                _ => 512,
            })
            .sum::<u64>()
            + 1024,
    );
    let mut aw = ArchiveWriter::new(crate::events::Counting::new(out, pb.clone()), &chain.id);
    let mtime = opts.now.timestamp();
    let top_dd = decide_dir(b"", &mut store_it);
    aw.add_top_dumpdir(mtime, &top_dd)?;
    let mut files: BTreeMap<RelPath, FileState> = BTreeMap::new();
    let (mut stored, mut unchanged) = (0u64, 0u64);
    let mut capturer = Capturer::new(opts.live.clone(), events);
    for i in 0..nodes.len() {
        crate::process::check_interrupted()?;
        let n = &nodes[i];
        match &n.kind {
            Kind::Dir => {
                let rel = n.rel.clone();
                let (mode, mt) = (n.mode, n.mtime);
                let dd = decide_dir(&rel, &mut store_it);
                aw.add_dumpdir(&rel, mode, mt, &dd)?;
            }
            Kind::Symlink(target) => aw.add_symlink(&n.rel, target, n.mtime)?,
            Kind::File if !store_it[i] => {
                // unchanged: the state has it (store_it is only false then)
                if let Some(o) = prev_files.and_then(|f| f.get(n.rel.as_slice())) {
                    aw.record(entry_of(&n.rel, o, n.mtime));
                    files.insert(RelPath::from(n.rel.as_slice()), o.clone());
                    unchanged += 1;
                }
            }
            Kind::File => {
                let before = aw.entries.len();
                let warned = aw.warnings.len();
                capturer.archive_file(&mut aw, &n.rel, &path_of(&n.rel))?;
                let added = aw
                    .entries
                    .get(before)
                    .filter(|e| e.path.as_bytes() == n.rel);
                match added {
                    Some(e) => {
                        stored += 1;
                        let clean = e.size == n.stat.size
                            && !aw.warnings[warned..]
                                .iter()
                                .any(|w| w.path.as_bytes() == n.rel);
                        if let (true, Some(sha)) = (clean, e.sha256) {
                            files.insert(
                                e.path.clone(),
                                FileState {
                                    size: n.stat.size,
                                    mtime_ns: n.stat.mtime_ns,
                                    ctime_ns: n.stat.ctime_ns,
                                    ino: n.stat.ino,
                                    dev: n.stat.dev,
                                    mode: e.mode.0,
                                    sha256: sha,
                                },
                            );
                        }
                    }
                    None => {
                        // not archived after all (vanished, replaced, a
                        // SQLite sidecar): the dumpdir said stored, so stock
                        // tar keeps an earlier link's copy; so does the tree
                        if let Some(o) = prev_files.and_then(|f| f.get(n.rel.as_slice())) {
                            aw.record(entry_of(&n.rel, o, o.mtime_ns.div_euclid(1_000_000_000)));
                            files.insert(RelPath::from(n.rel.as_slice()), o.clone());
                            aw.warn(
                                &n.rel,
                                "vanished",
                                "not archived in this link; the tree keeps the previous link's copy",
                            );
                        }
                    }
                }
            }
        }
    }
    pb.finish();
    capturer.finish()?;
    let mut warnings = walk_warnings;
    warnings.append(&mut aw.warnings);
    let manifest = LinkManifest {
        manifest: Manifest {
            format: FORMAT.into(),
            version: CHAIN_VERSION,
            backup_type: opts.btype.as_str().into(),
            created: opts.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            timestamp: opts.now.format("%Y%m%d_%H%M%S").to_string(),
            host: opts.host.clone(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            source: source_abs.clone(),
            recipients: opts.recipients.clone(),
            entries: std::mem::take(&mut aw.entries),
            warnings,
        },
        chain: chain.clone(),
    };
    let stored_bytes = aw.bytes;
    let out = aw.finish_link(&manifest, mtime)?.into_inner();
    let state = NewState {
        state: State {
            btype: opts.btype,
            source: source_abs,
            chain_id: chain.id.clone(),
            level: chain.level,
            archive: String::new(),
            links,
            full_created,
            files,
        },
    };
    Ok(LinkOutput {
        out,
        manifest,
        state,
        stored,
        unchanged,
        stored_bytes,
    })
}

fn entry_of(rel: &[u8], o: &FileState, mtime: i64) -> Entry {
    Entry {
        path: RelPath::from(rel),
        kind: EntryKind::File,
        size: o.size,
        mode: Mode(o.mode),
        sha256: Some(o.sha256),
        mtime: Some(mtime.max(0)),
        target: None,
    }
}

/// The archive names of the destination that [`decide`] checks against,
/// and whether the state is behind it: an archive of `state`'s type dated
/// after the state's newest link that is not one of its links, and whose
/// `.meta` names the same chain or is missing or unreadable (it may be a link
/// of it). `meta_of` reads an archive's description (`None`: there is none
/// or it is unusable). A plain full or another chain's archive does not
/// stop the chain.
pub fn behind(
    state: &State,
    archives: &[crate::store::ArchiveName],
    meta_of: &dyn Fn(&str) -> Option<crate::meta::Meta>,
) -> Option<NewChain> {
    let newest = crate::store::parse_name(&state.archive, false)?;
    archives
        .iter()
        .filter(|a| a.btype == state.btype && (a.time, a.seq) > (newest.time, newest.seq))
        .filter(|a| !state.links.contains(&a.name))
        .find(|a| match meta_of(&a.name) {
            None => true,
            Some(m) => m.chain.is_some_and(|c| c.id == state.chain_id),
        })
        .map(|a| NewChain::StateBehind(a.name.clone()))
}

/// An incremental run's decision, under the lock of its state file.
pub struct Prepared {
    /// Held for the whole run: another run on the same state file is
    /// refused (exit 5).
    _lock: crate::lock::DirLock,
    pub path: PathBuf,
    pub plan: Plan,
    /// The state the plan continues (for a [`Plan::Link`]).
    pub prev: Option<State>,
    pub reread: bool,
}

impl Prepared {
    /// The reason a new chain starts (`None` for a link).
    pub fn new_chain(&self) -> Option<&NewChain> {
        match &self.plan {
            Plan::Full(why) => Some(why),
            Plan::Link(_) => None,
        }
    }
}

/// Locks the state file of (`btype`, `source`, `dest`), loads it, and
/// decides the next archive from it and the destination's archives (the
/// caller holds the destination lock). Says which archive comes next, and
/// why a new chain starts.
pub fn prepare(
    btype: BackupType,
    source: &Path,
    dest: &Path,
    policy: &ChainPolicy,
    reread: bool,
    now: DateTime<Utc>,
    events: &dyn Events,
) -> Result<Prepared> {
    let path = state_path(btype, source, dest)?;
    let lock = crate::lock::lock_dir(&path, "incremental state")?;
    let loaded = load_state(&path, btype, source);
    let store = crate::store::LocalStore::new(dest);
    let index = crate::store::index(&store)?;
    let archives = index.names();
    let present: BTreeMap<String, u64> = index
        .archives
        .iter()
        .map(|l| (l.archive.name.clone(), l.size))
        .collect();
    // the first link after a full is estimated from what changed since
    let first_link = match &loaded {
        Loaded::Found(s) if s.links.len() == 1 && policy.max_chain_size.is_some() => {
            changed_bytes(s, source)
        }
        _ => None,
    };
    let mut plan = decide_with(&loaded, &present, policy, now, first_link);
    let prev = match (&plan, loaded) {
        (Plan::Link(_), Loaded::Found(s)) => Some(s),
        _ => None,
    };
    if let (Plan::Link(_), Some(st)) = (&plan, &prev) {
        let meta_of = |name: &str| {
            let p = dest.join(crate::meta::meta_name(name));
            let bytes = std::fs::read(&p).ok()?;
            crate::meta::Meta::parse(&bytes, name, &p.display().to_string()).ok()
        };
        if let Some(why) = behind(st, &archives, &meta_of) {
            plan = Plan::Full(why);
        }
    }
    let prev = match plan {
        Plan::Link(_) => prev,
        Plan::Full(_) => None,
    };
    match &plan {
        Plan::Full(why) => events.info(format!("a new chain starts: {why}")),
        Plan::Link(c) => events.info(format!(
            "link {} of chain {} (after {})",
            c.level,
            c.id,
            c.previous.as_deref().unwrap_or("?")
        )),
    }
    Ok(Prepared {
        _lock: lock,
        path,
        plan,
        prev,
        reread,
    })
}

/// Saves the state after the archive it describes was committed as
/// `archive_name` (renamed, sidecar and description written), and makes
/// the replacement durable.
pub fn commit_state(prepared: &Prepared, new: NewState, archive_name: &str) -> Result<State> {
    let st = new.committed(archive_name);
    save_state(&prepared.path, &st)?;
    if let Some(dir) = prepared.path.parent() {
        crate::store::fsync_dir(dir)?;
    }
    Ok(st)
}

/// Parses `--full-every`: a duration such as `24h`, `12h`, `1d12h`, `7d`
/// (units s, m, h, d, w); zero is refused.
pub fn parse_full_every(s: &str) -> std::result::Result<Duration, String> {
    let d = crate::retention::parse_duration(s).map_err(|e| {
        format!(
            "{}{}",
            e.message,
            e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
        )
    })?;
    match d.to_std() {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "--full-every {s:?}: must be longer than zero (e.g. 24h)"
        )),
    }
}

/// Reads a state file for the caller that must know why it failed (tests,
/// `status`): like [`load_state`] but as a `Result`.
pub fn read_state(path: &Path, btype: BackupType, source: &Path) -> Result<Option<State>> {
    match load_state(path, btype, source) {
        Loaded::Missing => Ok(None),
        Loaded::Found(s) => Ok(Some(s)),
        Loaded::Damaged(why) => Err(Error::operational(why)
            .hint("the next incremental run starts a new chain; remove the file to silence this")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn state(level: u32, full: &str) -> State {
        let links: Vec<String> = (0..=level)
            .map(|i| format!("daily_20261201_{:02}0000.tar.gz.age", i))
            .collect();
        let mut files = BTreeMap::new();
        files.insert(
            RelPath::new(b"a/caf\xE9".to_vec()),
            FileState {
                size: 3,
                mtime_ns: 1_700_000_000_123_456_789,
                ctime_ns: 1_700_000_001_000_000_001,
                ino: 42,
                dev: 7,
                mode: 0o600,
                sha256: Sha256Digest([0xAB; 32]),
            },
        );
        State {
            btype: BackupType::Daily,
            source: "/s".into(),
            chain_id: "daily_20261201_000000".into(),
            level,
            archive: links.last().cloned().unwrap_or_default(),
            links,
            full_created: t(full),
            files,
        }
    }

    fn present(s: &State) -> BTreeMap<String, u64> {
        s.links.iter().map(|l| (l.clone(), 1000)).collect()
    }

    #[test]
    fn state_round_trips_and_damage_is_reported() {
        let s = state(3, "2026-12-01T00:00:00Z");
        assert_eq!(State::parse(&s.to_json()).unwrap(), s);
        let json = String::from_utf8(s.to_json()).unwrap();
        for (from, to) in [
            ("\"level\":3", "\"level\":2"),
            ("\"version\":1", "\"version\":9"),
            (&hex::encode([0xAB; 32])[..], "abab"),
            ("\"type\":\"daily\"", "\"type\":\"hourly\""),
            ("\"full_created\":\"2026", "\"full_created\":\"x2026"),
        ] {
            assert!(json.contains(from), "{from}");
            assert!(
                State::parse(json.replace(from, to).as_bytes()).is_err(),
                "{to}"
            );
        }
        assert!(State::parse(b"{").is_err());
    }

    #[test]
    fn the_first_link_is_estimated_at_what_its_changed_files_compress_to() {
        let t = tempfile::tempdir().unwrap();
        let mut st = state(0, "2026-12-01T00:00:00Z");
        let text: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("{{\"type\":\"message\",\"n\":{i}}}\n").into_bytes())
            .collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..(1 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(t.path().join("text.jsonl"), &text).unwrap();
        std::fs::write(t.path().join("random.bin"), &random).unwrap();
        std::fs::write(t.path().join("same.bin"), &random).unwrap();
        let old = st.files.values().next().cloned().unwrap();
        st.files.clear();
        for n in ["text.jsonl", "random.bin"] {
            st.files
                .insert(RelPath::new(n.as_bytes().to_vec()), old.clone());
        }
        // unchanged since the state: not counted
        let m = std::fs::symlink_metadata(t.path().join("same.bin")).unwrap();
        let same = Stat::of(&m);
        st.files.insert(
            RelPath::new(b"same.bin".to_vec()),
            FileState {
                size: same.size,
                mtime_ns: same.mtime_ns,
                ctime_ns: same.ctime_ns,
                ino: same.ino,
                dev: same.dev,
                ..old
            },
        );
        let est = changed_bytes(&st, t.path()).unwrap();
        let random_len = random.len() as u64;
        // the random file at about its size, the text at a fraction of its
        assert!(est >= random_len, "{est}");
        assert!(
            est < random_len + text.len() as u64 / 4,
            "{est} vs {}",
            text.len()
        );
        assert_eq!(changed_bytes(&st, &t.path().join("gone")), None);
    }

    #[test]
    fn chain_decisions() {
        let p = ChainPolicy::default();
        let now = t("2026-12-01T05:00:00Z");
        let s = state(4, "2026-12-01T00:00:00Z");
        assert_eq!(
            decide(&Loaded::Found(s.clone()), &present(&s), &p, now),
            Plan::Link(Chain {
                id: "daily_20261201_000000".into(),
                level: 5,
                previous: Some("daily_20261201_040000.tar.gz.age".into()),
            })
        );
        assert_eq!(
            decide(&Loaded::Missing, &BTreeMap::new(), &p, now),
            Plan::Full(NewChain::NoState)
        );
        assert_eq!(
            decide(&Loaded::Damaged("x".into()), &present(&s), &p, now),
            Plan::Full(NewChain::Damaged("x".into()))
        );
        // any archive of the chain missing, not only the newest
        let mut gone = present(&s);
        gone.remove("daily_20261201_020000.tar.gz.age");
        assert_eq!(
            decide(&Loaded::Found(s.clone()), &gone, &p, now),
            Plan::Full(NewChain::ArchiveMissing(
                "daily_20261201_020000.tar.gz.age".into()
            ))
        );
        // an hourly schedule: 23 links after the full, a new full after 24 h
        let s23 = state(23, "2026-12-01T00:00:00Z");
        assert!(matches!(
            decide(
                &Loaded::Found(s23.clone()),
                &present(&s23),
                &p,
                t("2026-12-01T23:59:59Z")
            ),
            Plan::Link(Chain { level: 24, .. })
        ));
        assert_eq!(
            decide(
                &Loaded::Found(s23.clone()),
                &present(&s23),
                &p,
                t("2026-12-02T00:00:00Z")
            ),
            Plan::Full(NewChain::FullTooOld(Duration::from_secs(24 * 3600)))
        );
        let s48 = state(48, "2026-12-01T00:00:00Z");
        assert_eq!(
            decide(&Loaded::Found(s48.clone()), &present(&s48), &p, now),
            Plan::Full(NewChain::TooManyLinks(48))
        );
        assert_eq!(
            decide(
                &Loaded::Found(s.clone()),
                &present(&s),
                &p,
                t("2026-11-30T23:00:00Z")
            ),
            Plan::Full(NewChain::FullInFuture)
        );
        // --max-chain-size: the links (with one more as large as the newest)
        // against the full, beyond the floor
        let mb = 1u64 << 20;
        let sized = |sizes: &[u64]| -> (State, BTreeMap<String, u64>) {
            let s = state(sizes.len() as u32 - 1, "2026-12-01T00:00:00Z");
            let m = s.links.iter().cloned().zip(sizes.iter().copied()).collect();
            (s, m)
        };
        // a 1000 MiB full: 300 MiB of links allowed; 200 + the next 100 fits
        let (s, m) = sized(&[1000 * mb, 100 * mb, 100 * mb]);
        assert!(matches!(
            decide(&Loaded::Found(s), &m, &p, now),
            Plan::Link(_)
        ));
        let (s, m) = sized(&[1000 * mb, 100 * mb, 100 * mb, 100 * mb]);
        match decide(&Loaded::Found(s), &m, &p, now) {
            Plan::Full(r @ NewChain::ChainTooLarge { limit: 130, .. }) => {
                assert!(r.to_string().contains("--max-chain-size 130%"), "{r}");
                assert!(r.to_string().contains("130% of its full"), "{r}");
            }
            other => panic!("{other:?}"),
        }
        // unlimited, or a larger limit, keeps the chain
        let (s, m) = sized(&[1000 * mb, 100 * mb, 100 * mb, 100 * mb]);
        let loose = ChainPolicy {
            max_chain_size: None,
            ..ChainPolicy::default()
        };
        assert!(matches!(
            decide(&Loaded::Found(s.clone()), &m, &loose, now),
            Plan::Link(_)
        ));
        let wide = ChainPolicy {
            max_chain_size: Some(200),
            ..ChainPolicy::default()
        };
        assert!(matches!(
            decide(&Loaded::Found(s), &m, &wide, now),
            Plan::Link(_)
        ));
        // a small full: links under the 16 MiB floor never cut it
        let (s, m) = sized(&[10_000, 5 * mb, 5 * mb]);
        assert!(matches!(
            decide(&Loaded::Found(s), &m, &p, now),
            Plan::Link(_)
        ));
        let (s, m) = sized(&[10_000, 9 * mb, 9 * mb]);
        assert!(matches!(
            decide(&Loaded::Found(s), &m, &p, now),
            Plan::Full(NewChain::ChainTooLarge { .. })
        ));
        // a full alone: its first link as estimated from what changed
        let (s, m) = sized(&[1000 * mb]);
        assert!(matches!(
            decide(&Loaded::Found(s.clone()), &m, &p, now),
            Plan::Link(_)
        ));
        let small = decide_with(&Loaded::Found(s.clone()), &m, &p, now, Some(300 * mb));
        assert!(matches!(small, Plan::Link(_)), "{small:?}");
        let big = decide_with(&Loaded::Found(s), &m, &p, now, Some(301 * mb));
        assert!(
            matches!(big, Plan::Full(NewChain::ChainTooLarge { .. })),
            "{big:?}"
        );
        assert_eq!(parse_max_chain_size("130%"), Ok(Some(130)));
        assert_eq!(parse_max_chain_size("250"), Ok(Some(250)));
        assert_eq!(parse_max_chain_size("unlimited"), Ok(None));
        for bad in ["99%", "-5", "1.3", "", "%"] {
            assert!(parse_max_chain_size(bad).is_err(), "{bad}");
        }
        // every reason says something
        for r in [
            NewChain::NoState,
            NewChain::FullTooOld(Duration::from_secs(90000)),
            NewChain::TooManyLinks(48),
            NewChain::StateBehind("daily_20261201_050000.tar.gz.age".into()),
        ] {
            assert!(r.to_string().len() > 10);
        }
    }

    #[test]
    fn a_state_behind_the_destination_starts_a_new_chain() {
        use crate::meta::Meta;
        let s = state(2, "2026-12-01T00:00:00Z");
        let name = |h: u32| format!("daily_20261201_{h:02}0000.tar.gz.age");
        let mut archives: Vec<crate::store::ArchiveName> = (0..=2)
            .map(|h| crate::store::parse_name(&name(h), false).unwrap())
            .collect();
        let link_meta = |n: &str, chain: &str| {
            let mut m = Meta::new(n, "daily", "x", "h", "age");
            m.chain = Some(Chain {
                id: chain.into(),
                level: 3,
                previous: Some(name(2)),
            });
            m
        };
        let none = |_: &str| None;
        assert_eq!(behind(&s, &archives, &none), None);
        // an archive after the newest link: a plain full or another chain's
        // archive does not matter; one of this chain or without a
        // description does
        archives.push(crate::store::parse_name(&name(3), false).unwrap());
        let plain = |n: &str| Some(Meta::new(n, "daily", "x", "h", "age"));
        assert_eq!(behind(&s, &archives, &plain), None);
        let other = |n: &str| Some(link_meta(n, "daily_20261130_000000"));
        assert_eq!(behind(&s, &archives, &other), None);
        let ours = |n: &str| Some(link_meta(n, "daily_20261201_000000"));
        assert_eq!(
            behind(&s, &archives, &ours),
            Some(NewChain::StateBehind(name(3)))
        );
        assert_eq!(
            behind(&s, &archives, &none),
            Some(NewChain::StateBehind(name(3)))
        );
        // another type's archives never matter
        let w = vec![crate::store::parse_name("weekly_20261201_030000.tar.gz.age", false).unwrap()];
        assert_eq!(behind(&s, &w, &none), None);
    }

    #[test]
    fn full_every_is_a_positive_duration() {
        assert_eq!(parse_full_every("24h"), Ok(DEFAULT_FULL_EVERY));
        assert_eq!(
            parse_full_every("1d12h"),
            Ok(Duration::from_secs(36 * 3600))
        );
        assert!(parse_full_every("0h").is_err());
        assert!(parse_full_every("soon").is_err());
    }

    #[test]
    fn change_detection_compares_every_field() {
        let s = state(0, "2026-12-01T00:00:00Z");
        let f = s.files.values().next().unwrap();
        let st = f.stat();
        assert!(f.unchanged(&st));
        for m in [
            Stat { size: 4, ..st },
            Stat {
                mtime_ns: st.mtime_ns + 1,
                ..st
            },
            Stat {
                ctime_ns: st.ctime_ns + 1,
                ..st
            },
            Stat { ino: 43, ..st },
            Stat { dev: 8, ..st },
        ] {
            assert!(!f.unchanged(&m));
        }
    }

    #[test]
    fn state_file_is_owner_only_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("st/daily-x.json");
        let s = state(1, "2026-12-01T00:00:00Z");
        assert!(matches!(
            load_state(&path, BackupType::Daily, Path::new("/s")),
            Loaded::Missing
        ));
        save_state(&path, &s).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        match load_state(&path, BackupType::Daily, Path::new("/s")) {
            Loaded::Found(got) => assert_eq!(got, s),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            load_state(&path, BackupType::Weekly, Path::new("/s")),
            Loaded::Damaged(_)
        ));
        assert!(matches!(
            load_state(&path, BackupType::Daily, Path::new("/t")),
            Loaded::Damaged(_)
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_state(&path, BackupType::Daily, Path::new("/s")),
            Loaded::Damaged(_)
        ));
        std::fs::write(&path, b"garbage").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_state(&path, BackupType::Daily, Path::new("/s")),
            Loaded::Damaged(_)
        ));
        let p = state_path(BackupType::Daily, Path::new("/src"), Path::new("/dst")).unwrap();
        assert!(p
            .to_string_lossy()
            .contains("secureclaw-backup/incremental/daily-"));
    }
}
