//! Reading a payload under the restore safety rules of DESIGN §6. This is the
//! one place where archive entries are judged. Refused (exit 5), with nothing
//! written outside the sink: absolute paths, `..`/`.`/empty/NUL components,
//! non-UTF-8 or over-long names, entries outside the single top-level
//! directory, symlinks, hardlinks, devices, FIFOs, sparse and global/override
//! headers (PAX `linkpath`, PAX size disagreeing with the header), duplicate
//! entries, too many entries or bytes. Integrity failures (exit 3): a corrupt
//! or truncated stream, trailing data after the tar, a manifest mismatch.
//! Modes are clamped: directories 0700, files 0600 (0700 with owner-exec).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{self, EntryKind, Manifest, Sha256Digest};

/// Bounds that keep a hostile archive from exhausting memory or disk.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_entries: u64,
    pub max_total_bytes: u64,
    pub max_path_len: usize,
    pub max_component_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000_000,
            // 1 PiB: no real data directory comes near it, and an entry
            // claiming more is refused at its header (verify has no disk to
            // bound it; restore lowers this to the free space)
            max_total_bytes: 1 << 50,
            max_path_len: 4096,
            max_component_len: 255,
        }
    }
}

/// Where accepted entries go: a staging directory, or nowhere (verify).
pub trait Sink {
    fn dir(&mut self, rel: &str) -> Result<()>;
    fn file(&mut self, rel: &str, executable: bool, data: &mut dyn Read) -> Result<u64>;
}

/// A file as read from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    pub sha256: Sha256Digest,
    pub executable: bool,
}

/// What an extraction found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The top-level directory name.
    pub top: String,
    pub manifest: Option<Manifest>,
    pub files: BTreeMap<String, FileInfo>,
    /// Directories, explicit and implied by file paths.
    pub dirs: BTreeSet<String>,
    pub bytes: u64,
}

impl Outcome {
    /// The top-level components of the data tree (`secureclaw.json`, `agents` …).
    pub fn components(&self) -> BTreeSet<String> {
        self.files
            .keys()
            .chain(self.dirs.iter())
            .filter_map(|p| p.split('/').next().map(str::to_owned))
            .collect()
    }
}

fn refuse(what: String) -> Error {
    Error::refused(what).hint(
        "this archive contains an unsafe entry and was not restored; if you did not create it yourself, treat the backup storage as compromised",
    )
}

/// Classifies an error raised while reading the stream: our own errors (the
/// archive file's I/O, a key problem) keep their kind; anything else from the
/// decryption or decompression layers is an integrity failure.
pub fn stream_error(e: io::Error) -> Error {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        return inner.clone();
    }
    Error::integrity(format!(
        "the archive stream is corrupt, truncated or tampered with: {e}"
    ))
    .hint("nothing was changed; use another archive (or an intact copy of this one)")
}

/// Validates a tar path and splits it into components.
fn check_path<'a>(raw: &'a [u8], limits: &Limits) -> Result<Vec<&'a str>> {
    let shown = String::from_utf8_lossy(raw);
    if raw.contains(&0) {
        return Err(refuse(format!(
            "archive entry {shown:?} contains a NUL byte"
        )));
    }
    let s = std::str::from_utf8(raw)
        .map_err(|_| refuse(format!("archive entry name {shown:?} is not UTF-8")))?;
    if s.len() > limits.max_path_len {
        return Err(refuse(format!(
            "archive entry name is {} bytes long (limit {})",
            s.len(),
            limits.max_path_len
        )));
    }
    if s.starts_with('/') {
        return Err(refuse(format!("archive entry {s:?} has an absolute path")));
    }
    let trimmed = s.strip_suffix('/').unwrap_or(s);
    let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
    let mut comps = Vec::new();
    for c in trimmed.split('/') {
        match c {
            ".." => return Err(refuse(format!("archive entry {s:?} contains '..'"))),
            "." => {
                return Err(refuse(format!(
                    "archive entry {s:?} contains a '.' component"
                )))
            }
            "" => {
                return Err(refuse(format!(
                    "archive entry {s:?} has an empty path component"
                )))
            }
            c if c.len() > limits.max_component_len => {
                return Err(refuse(format!(
                    "archive entry {s:?} has a name component longer than {} bytes",
                    limits.max_component_len
                )))
            }
            c if c.contains('\\') => {
                return Err(refuse(format!("archive entry {s:?} contains a backslash")))
            }
            c => comps.push(c),
        }
    }
    Ok(comps)
}

fn check_pax(entry: &mut tar::Entry<'_, impl Read>, path: &str) -> Result<()> {
    let header_size = entry.header().size().ok();
    // the name in effect (a GNU long name wins over PAX `path` in tar-rs)
    let effective = entry.path_bytes().into_owned();
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Ok(());
    };
    let mut keys = BTreeSet::new();
    for ext in exts {
        let ext = ext.map_err(|e| {
            refuse(format!(
                "archive entry {path:?} has a malformed PAX header: {e}"
            ))
        })?;
        let key = ext
            .key()
            .map_err(|_| refuse(format!("archive entry {path:?} has a non-UTF-8 PAX key")))?;
        // parsers disagree on which of two records wins: refuse ambiguity
        if !keys.insert(key.to_owned()) {
            return Err(refuse(format!(
                "archive entry {path:?} has the PAX record {key:?} twice"
            )));
        }
        match key {
            "path" if ext.value_bytes() != effective.as_slice() => {
                return Err(refuse(format!(
                    "archive entry {path:?} has a PAX path that disagrees with its GNU long name"
                )))
            }
            "path" | "mtime" | "atime" | "ctime" | "uid" | "gid" | "uname" | "gname"
            | "comment" | "charset" | "hdrcharset" => {}
            k if k.starts_with("SCHILY.xattr.")
                || k.starts_with("LIBARCHIVE.xattr.")
                || k == "SCHILY.fflags" => {}
            "size" => {
                let v = ext.value().ok().and_then(|v| v.trim().parse::<u64>().ok());
                match (v, header_size) {
                    (None, _) => {
                        return Err(refuse(format!(
                            "archive entry {path:?} has an invalid PAX size"
                        )))
                    }
                    (Some(p), Some(h)) if h != 0 && p != h => {
                        return Err(refuse(format!(
                        "archive entry {path:?}: PAX size {p} disagrees with the header size {h}"
                    )))
                    }
                    _ => {}
                }
            }
            "linkpath" => {
                return Err(refuse(format!(
                    "archive entry {path:?} has a PAX link target"
                )))
            }
            k => {
                return Err(refuse(format!(
                    "archive entry {path:?} has an unsupported PAX record {k:?}"
                )))
            }
        }
    }
    Ok(())
}

/// Hashes and counts what passes through.
struct Hashing<'a, R: Read> {
    inner: &'a mut R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Counts what passes through and keeps the first read error for the caller
/// (a parser given this reader would otherwise turn it into its own error).
struct Tap<R: Read> {
    inner: io::Take<R>,
    count: u64,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                let short = io::Error::new(e.kind(), "reading the archive stream failed");
                self.failed.get_or_insert(e);
                Err(short)
            }
        }
    }
}

/// Reads the whole tar stream into `sink` under the safety rules, then reads
/// the stream to its very end (authentication, gzip CRC, no trailing data).
/// Does not compare with the manifest: see [`check_manifest`].
pub fn extract(stream: impl Read, sink: &mut dyn Sink, limits: &Limits) -> Result<Outcome> {
    let mut ar = tar::Archive::new(stream);
    let mut out = Outcome::default();
    let mut top: Option<String> = None;
    // explicit directory entries (and "" for the top); files are in out.files
    let mut seen_dirs: BTreeSet<String> = BTreeSet::new();
    let mut manifest_seen: BTreeSet<String> = BTreeSet::new();
    let mut count = 0u64;
    {
        let entries = ar.entries().map_err(stream_error)?;
        for entry in entries {
            let mut entry = entry.map_err(stream_error)?;
            count += 1;
            if count > limits.max_entries {
                return Err(refuse(format!(
                    "archive has more than {} entries",
                    limits.max_entries
                )));
            }
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let etype = entry.header().entry_type();
            let kind = match etype {
                tar::EntryType::Regular => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => {
                    return Err(refuse(format!(
                        "archive entry {shown:?} is a symbolic link"
                    )))
                }
                tar::EntryType::Link => {
                    return Err(refuse(format!("archive entry {shown:?} is a hard link")))
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    return Err(refuse(format!("archive entry {shown:?} is a device node")))
                }
                tar::EntryType::Fifo => {
                    return Err(refuse(format!("archive entry {shown:?} is a FIFO")))
                }
                tar::EntryType::XGlobalHeader => {
                    return Err(refuse(
                        "archive has a PAX global header, which could override every entry".into(),
                    ))
                }
                tar::EntryType::GNUSparse => {
                    return Err(refuse(format!("archive entry {shown:?} is a sparse file")))
                }
                other => {
                    return Err(refuse(format!(
                        "archive entry {shown:?} has unsupported type {:?}",
                        other.as_byte() as char
                    )))
                }
            };
            check_pax(&mut entry, &shown)?;
            let comps = check_path(&raw, limits)?;
            let Some((first, rest)) = comps.split_first() else {
                return Err(refuse(format!("archive entry {shown:?} has an empty path")));
            };
            match &top {
                None => top = Some((*first).to_owned()),
                Some(t) if t != first => {
                    return Err(refuse(format!(
                        "archive entry {shown:?} lies outside the top-level directory {t:?} (more than one top-level directory)"
                    )))
                }
                _ => {}
            }
            if rest.is_empty() {
                if kind != EntryKind::Dir {
                    return Err(refuse(format!(
                        "archive entry {shown:?} is a file at the top level"
                    )));
                }
                if !seen_dirs.insert(String::new()) {
                    return Err(refuse(format!(
                        "archive has the top-level directory {shown:?} twice"
                    )));
                }
                continue;
            }
            let rel = rest.join("/");
            // ancestors must not be files
            for i in 1..rest.len() {
                let anc = rest[..i].join("/");
                if out.files.contains_key(&anc) {
                    return Err(refuse(format!(
                        "archive entry {shown:?} lies below {anc:?}, which is a file"
                    )));
                }
            }
            let duplicate = out.files.contains_key(&rel)
                || manifest_seen.contains(&rel)
                || match kind {
                    EntryKind::Dir => !seen_dirs.insert(rel.clone()),
                    EntryKind::File => out.dirs.contains(&rel),
                };
            if duplicate {
                return Err(refuse(format!(
                    "archive has the entry {shown:?} more than once"
                )));
            }
            let is_manifest = rest.len() == 1
                && kind == EntryKind::File
                && (rel == manifest::JSON_NAME || rel == manifest::TXT_NAME);
            let size = entry.size();
            match kind {
                EntryKind::Dir => {
                    for i in 1..=rest.len() {
                        out.dirs.insert(rest[..i].join("/"));
                    }
                    sink.dir(&rel)?;
                }
                EntryKind::File if is_manifest => {
                    if size > manifest::MAX_MANIFEST_BYTES {
                        return Err(refuse(format!(
                            "{shown:?} is larger than {} bytes",
                            manifest::MAX_MANIFEST_BYTES
                        )));
                    }
                    manifest_seen.insert(rel.clone());
                    let mut tap = Tap {
                        inner: (&mut entry).take(size),
                        count: 0,
                        failed: None,
                    };
                    // manifest.json is parsed while streaming (no copy of a
                    // large manifest); manifest.txt is for humans only
                    let parsed = (rel == manifest::JSON_NAME).then(|| {
                        Manifest::from_reader(io::BufReader::with_capacity(64 * 1024, &mut tap))
                    });
                    // read what the parser left, to tell damage from truncation
                    let drained = io::copy(&mut tap, &mut io::sink());
                    if let Some(e) = tap.failed.take() {
                        return Err(stream_error(e));
                    }
                    drained.map_err(stream_error)?;
                    if tap.count != size {
                        return Err(truncated(&shown));
                    }
                    if let Some(parsed) = parsed {
                        out.manifest = Some(parsed.map_err(|e| {
                            Error::integrity(format!("{shown}: {e}"))
                                .hint("the archive's manifest is damaged; nothing was changed")
                        })?);
                    }
                }
                EntryKind::File => {
                    out.bytes = out.bytes.saturating_add(size);
                    if out.bytes > limits.max_total_bytes {
                        return Err(refuse(format!(
                            "archive needs more than {} bytes (entry {shown:?} claims {size}); that exceeds the free space or the limit",
                            limits.max_total_bytes
                        )));
                    }
                    for i in 1..rest.len() {
                        out.dirs.insert(rest[..i].join("/"));
                    }
                    let mode = entry.header().mode().unwrap_or(0o600);
                    let executable = mode & 0o100 != 0;
                    let mut h = Hashing {
                        inner: &mut entry,
                        hasher: Sha256::new(),
                        count: 0,
                    };
                    sink.file(&rel, executable, &mut h)?;
                    if h.count != size {
                        return Err(truncated(&shown));
                    }
                    let sha256 = Sha256Digest(h.hasher.finalize().into());
                    out.files.insert(
                        rel,
                        FileInfo {
                            size,
                            sha256,
                            executable,
                        },
                    );
                }
            }
        }
    }
    let Some(top) = top else {
        return Err(Error::integrity("the archive holds no entries").hint("use another archive"));
    };
    out.top = top;
    // The tar ended: the rest of the stream may only be zero padding, and must
    // be read to its end so that gzip's CRC and the cipher's authentication run.
    let mut rest = ar.into_inner();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rest.read(&mut buf).map_err(stream_error)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(
                Error::integrity("the archive has data after the end of the tar stream")
                    .hint("the archive was tampered with or concatenated; nothing was changed"),
            );
        }
    }
    Ok(out)
}

fn truncated(shown: &str) -> Error {
    Error::integrity(format!(
        "the archive ends inside entry {shown:?} (truncated)"
    ))
    .hint("nothing was changed; use another archive or an intact copy of this one")
}

/// Compares what was read with the manifest: every file listed with the same
/// size and SHA-256, every listed entry present, nothing unlisted.
pub fn check_manifest(out: &Outcome, m: &Manifest) -> Result<()> {
    let listed = m.by_path();
    let fail = |msg: String| {
        Err(Error::integrity(msg).hint(
            "the archive does not match its own manifest (tampered or damaged); nothing was changed",
        ))
    };
    if !out
        .top
        .starts_with(&format!("{}_{}", m.backup_type, m.timestamp))
    {
        return fail(format!(
            "the top-level directory {:?} does not match the manifest ({} of {})",
            out.top, m.backup_type, m.timestamp
        ));
    }
    for (path, info) in &out.files {
        match listed.get(path.as_str()) {
            None => {
                return fail(format!(
                    "{path:?} is in the archive but not in its manifest"
                ))
            }
            Some(e) if e.kind != EntryKind::File => {
                return fail(format!(
                    "{path:?} is a file in the archive but a directory in the manifest"
                ))
            }
            Some(e) if e.size != info.size || e.sha256 != Some(info.sha256) => {
                return fail(format!(
                    "{path:?} does not match the size/SHA-256 in the manifest"
                ))
            }
            _ => {}
        }
    }
    for e in &m.entries {
        let present = match e.kind {
            EntryKind::File => out.files.contains_key(&e.path),
            EntryKind::Dir => out.dirs.contains(&e.path),
        };
        if !present {
            return fail(format!(
                "{:?} is listed in the manifest but missing from the archive",
                e.path
            ));
        }
    }
    for d in &out.dirs {
        if !listed.contains_key(d.as_str()) {
            return fail(format!(
                "directory {d:?} is in the archive but not in its manifest"
            ));
        }
    }
    Ok(())
}

/// Discards data (verify): counts only.
pub struct Discard;

impl Sink for Discard {
    fn dir(&mut self, _rel: &str) -> Result<()> {
        Ok(())
    }
    fn file(&mut self, _rel: &str, _x: bool, data: &mut dyn Read) -> Result<u64> {
        io::copy(data, &mut io::sink()).map_err(stream_error)
    }
}

/// Staged files at least this large start their writeback when complete.
const WRITEBACK_MIN: u64 = 256 * 1024;

/// Writes into a fresh 0700 staging directory that only we can modify, with
/// exclusive, no-follow creation and owner-only modes from the first byte.
pub struct StagingSink {
    root: PathBuf,
    buf: Vec<u8>,
    /// The parent directory of the last file: files come grouped by
    /// directory, so most need no directory creation at all.
    last_parent: String,
    background: crate::store::BackgroundSync,
}

impl StagingSink {
    pub fn new(root: &Path) -> Self {
        StagingSink {
            root: root.to_owned(),
            buf: vec![0u8; 256 * 1024],
            last_parent: String::new(),
            background: crate::store::BackgroundSync::new(root),
        }
    }

    fn mkdirs(&self, rel: &str) -> Result<()> {
        let p = self.root.join(rel);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&p)
            .map_err(|e| staging_error("creating staging directory", rel, &p, e))
    }
}

/// An I/O error while staging `rel`; a name too long for this filesystem is
/// a name limit the archive exceeds (refused), not an operational failure.
fn staging_error(what: &str, rel: &str, p: &Path, e: io::Error) -> Error {
    if e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error()) {
        return refuse(format!(
            "archive entry {rel:?} is too long to be restored below {}",
            p.display().to_string().chars().take(80).collect::<String>()
        ));
    }
    Error::io(what, p, e)
}

impl Sink for StagingSink {
    fn dir(&mut self, rel: &str) -> Result<()> {
        self.mkdirs(rel)
    }

    fn file(&mut self, rel: &str, executable: bool, data: &mut dyn Read) -> Result<u64> {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            if parent != self.last_parent {
                self.mkdirs(parent)?;
                parent.clone_into(&mut self.last_parent);
            }
        }
        let p = self.root.join(rel);
        let mode = if executable { 0o700 } else { 0o600 };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&p)
            .map_err(|e| staging_error("creating staged file", rel, &p, e))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting mode of", &p, e))?;
        let mut total = 0u64;
        let mut writeback = crate::store::Writeback::default();
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(e)),
            };
            f.write_all(&self.buf[..n])
                .map_err(|e| Error::io("writing staged file", &p, e))?;
            total += n as u64;
            writeback.advance(&f, n as u64);
        }
        // large files start their own writeback; small ones are synced in
        // batches by the background syncfs
        if total >= WRITEBACK_MIN {
            writeback.kick(&f);
        } else {
            self.background.wrote(total);
        }
        Ok(total)
    }
}

/// Whether an error came from archive contents (refused/integrity) rather
/// than from the operator's environment.
pub fn is_archive_fault(e: &Error) -> bool {
    matches!(e.kind, ErrorKind::Refused | ErrorKind::Integrity)
}
