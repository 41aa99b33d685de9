//! Reading a payload under the restore safety rules (README "Restore
//! safety"). This is the one place where archive entries are judged.
//! Refused (exit 5), with nothing written outside the sink: absolute paths,
//! `..`/`.`/empty/NUL components, over-long names (archive limits, and the
//! target's: [`Limits::max_rel_len`]), entries outside the single top-level
//! directory, hardlinks, devices, FIFOs, sparse and global/override headers
//! (PAX `linkpath`, PAX size disagreeing with the header), duplicate entries,
//! entries below a file or a symlink, symlinks whose target is absolute or
//! leaves the tree ([`check_link_target`]), too many entries or bytes.
//! Integrity failures (exit 3): a corrupt or truncated stream, trailing data
//! after the tar, a manifest mismatch.
//!
//! Incremental chains (README "Incremental backups"): [`extract_link`]
//! applies one archive of a chain on top of the tree its predecessors built
//! (as `tar --listed-incremental=/dev/null -x` does). A directory that carries
//! a GNU dumpdir (type `D` member, or the `GNU.dumpdir` PAX record of
//! `--format=posix`) lists every name it holds at that link; what an earlier
//! link left there and the list lacks is deleted, as GNU tar does: a name not
//! listed, listed as a directory (`D`) but not one, or listed as stored (`Y`)
//! but a directory. The dumpdir's names obey the same rules as entry names
//! (refused: `/`, `..`, `.`, empty, NUL, over-long, twice; the rename records
//! `R`/`T`/`X` are not supported); one listed as unchanged (`N`) that no
//! earlier link holds is an integrity failure (a link missing or out of
//! order). An entry replaces what an earlier link left at its path. Without
//! dumpdirs and predecessors, this is [`extract`] exactly.
//!
//! Names are bytes: non-UTF-8 names, backslashes, newlines are data like any
//! other. The manifest entries are the top-level files marked by a PAX
//! `comment` (see [`crate::manifest`]); in an archive whose top-level
//! directory entry lacks the archive mark (older versions, the old shell
//! scripts) the top-level `manifest.json`/`manifest.txt` are the manifest, as
//! they always were.
//!
//! The staging sink works relative to directory descriptors (`openat`,
//! `mkdirat` with `O_NOFOLLOW`), so the staging directory's own name never
//! shortens the names that fit. Symlinks are created after every file and
//! directory, once the whole stream was read and authenticated, with
//! `symlinkat`; nothing is ever written through one. Modes are clamped:
//! directories 0700, files 0600 (0700 with owner-exec); mtimes are restored.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode as FsMode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{
    self, show, Chain, EntryKind, LinkManifest, Manifest, RelPath, Sha256Digest,
};

/// Largest dumpdir (the name list of one directory) we read.
pub const MAX_DUMPDIR_BYTES: u64 = 64 * 1024 * 1024;

/// The longest path the kernel takes as one argument (PATH_MAX less the NUL).
pub const PATH_MAX: usize = 4095;

/// Bounds that keep a hostile archive from exhausting memory or disk.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_entries: u64,
    pub max_total_bytes: u64,
    /// Of a name in the archive, top-level directory included.
    pub max_path_len: usize,
    pub max_component_len: usize,
    /// Of a restored path relative to the target, so that the target's path
    /// plus it still fits PATH_MAX (restore lowers it for its target).
    pub max_rel_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000_000,
            // 1 PiB: no real data directory comes near it, and an entry
            // claiming more is refused at its header (verify has no disk to
            // bound it; restore lowers this to the free space)
            max_total_bytes: 1 << 50,
            // the top-level directory plus a path that fits PATH_MAX
            max_path_len: 256 + PATH_MAX,
            max_component_len: 255,
            max_rel_len: PATH_MAX,
        }
    }
}

/// Where accepted entries go: a staging directory, or nowhere (verify).
/// Paths are relative to the data tree, `/`-separated bytes.
pub trait Sink {
    fn dir(&mut self, rel: &[u8]) -> Result<()>;
    fn file(
        &mut self,
        rel: &[u8],
        executable: bool,
        mtime: i64,
        data: &mut dyn Read,
    ) -> Result<u64>;
    /// Called only after every file and directory, once the stream was read
    /// to its end; `target` was checked by [`check_link_target`].
    fn symlink(&mut self, rel: &[u8], target: &[u8], mtime: i64) -> Result<()>;
    /// Sets a directory's mtime (after everything inside it was created).
    fn dir_mtime(&mut self, rel: &[u8], mtime: i64) -> Result<()>;
    /// Removes what an earlier link of a chain left at `rel` (a file, a
    /// symlink, or a directory with everything below it), never following a
    /// link. Only [`extract_link`] over a non-empty tree calls it; a sink that
    /// cannot apply chains says so.
    fn remove(&mut self, rel: &[u8]) -> Result<()> {
        Err(Error::operational(format!(
            "cannot remove {:?}: this destination does not apply incremental links",
            show(rel)
        )))
    }
}

/// A file as read from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    pub sha256: Sha256Digest,
    pub executable: bool,
    pub mtime: i64,
}

/// A symlink as read from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub target: RelPath,
    pub mtime: i64,
}

/// What an extraction found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The top-level directory name (invalid UTF-8 escaped).
    pub top: String,
    pub manifest: Option<Manifest>,
    /// The manifest's chain, for an archive of an incremental chain.
    pub chain: Option<Chain>,
    /// How many archives built this tree (1 after [`extract`]).
    pub links: u32,
    pub files: BTreeMap<RelPath, FileInfo>,
    /// Directories, explicit and implied by file paths.
    pub dirs: BTreeSet<RelPath>,
    /// The mtimes of the explicit directory entries.
    pub dir_mtimes: BTreeMap<RelPath, i64>,
    pub symlinks: BTreeMap<RelPath, LinkInfo>,
    pub bytes: u64,
    /// The top-level directory name as its bytes.
    pub top_raw: Vec<u8>,
}

impl Outcome {
    /// The top-level components of the data tree (`secureclaw.json`, `agents` …).
    pub fn components(&self) -> BTreeSet<RelPath> {
        self.paths()
            .filter_map(|p| p.split(|&b| b == b'/').next().map(RelPath::from))
            .collect()
    }

    /// Every path of the data tree (files, directories, symlinks).
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.files
            .keys()
            .chain(self.dirs.iter())
            .chain(self.symlinks.keys())
            .map(RelPath::as_bytes)
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
fn check_path<'a>(raw: &'a [u8], limits: &Limits) -> Result<Vec<&'a [u8]>> {
    let s = show(raw);
    if raw.contains(&0) {
        return Err(refuse(format!("archive entry {s:?} contains a NUL byte")));
    }
    if raw.len() > limits.max_path_len {
        return Err(refuse(format!(
            "archive entry name is {} bytes long (limit {})",
            raw.len(),
            limits.max_path_len
        )));
    }
    if raw.starts_with(b"/") {
        return Err(refuse(format!("archive entry {s:?} has an absolute path")));
    }
    let trimmed = raw.strip_suffix(b"/").unwrap_or(raw);
    let trimmed = trimmed.strip_prefix(b"./").unwrap_or(trimmed);
    let mut comps = Vec::new();
    for c in trimmed.split(|&b| b == b'/') {
        match c {
            b".." => return Err(refuse(format!("archive entry {s:?} contains '..'"))),
            b"." => {
                return Err(refuse(format!(
                    "archive entry {s:?} contains a '.' component"
                )))
            }
            b"" => {
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
            c => comps.push(c),
        }
    }
    Ok(comps)
}

/// Whether the symlink `link` (a path in the tree) may point to `target`:
/// relative, no NUL, and resolving inside the tree from the link's own
/// directory. Lexically, `..` may only lead the target (at most as many as
/// the link is deep): a `..` after a name could climb out through another
/// link (`d/l -> ..`, `x -> d/l/..`). Backup archives only links that pass,
/// restore refuses any other. Returns why not.
pub fn check_link_target(link: &[u8], target: &[u8]) -> std::result::Result<(), String> {
    if target.is_empty() {
        return Err("is empty".into());
    }
    if target.contains(&0) {
        return Err("contains a NUL byte".into());
    }
    if target.len() > PATH_MAX {
        return Err(format!("is longer than {PATH_MAX} bytes"));
    }
    if target.starts_with(b"/") {
        return Err("is absolute".into());
    }
    let depth = link.split(|&b| b == b'/').count().saturating_sub(1);
    let mut ups = 0usize;
    let mut named = false;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if named => {
                return Err(
                    "has '..' after a name (it could leave the tree through another link)".into(),
                )
            }
            b".." => {
                ups += 1;
                if ups > depth {
                    return Err("leaves the tree".into());
                }
            }
            c if c.len() > 255 => return Err("has a name component longer than 255 bytes".into()),
            _ => named = true,
        }
    }
    Ok(())
}

/// What the PAX records of an entry tell us.
#[derive(Default)]
struct Pax {
    comment: Option<Vec<u8>>,
    mtime: Option<i64>,
    /// `GNU.dumpdir` (GNU tar's POSIX-format incremental directories).
    dumpdir: Option<Vec<u8>>,
}

fn check_pax(entry: &mut tar::Entry<'_, impl Read>, path: &str) -> Result<Pax> {
    let mut pax = Pax::default();
    let header_size = entry.header().size().ok();
    // the name in effect (a GNU long name wins over PAX `path` in tar-rs)
    let effective = entry.path_bytes().into_owned();
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Ok(pax);
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
            "comment" => pax.comment = Some(ext.value_bytes().to_vec()),
            "GNU.dumpdir" => pax.dumpdir = Some(ext.value_bytes().to_vec()),
            "mtime" => {
                pax.mtime = ext
                    .value()
                    .ok()
                    .and_then(|v| v.split('.').next().and_then(|s| s.trim().parse().ok()))
            }
            "path" | "atime" | "ctime" | "uid" | "gid" | "uname" | "gname" | "charset"
            | "hdrcharset" => {}
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
    Ok(pax)
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
/// the stream to its very end (authentication, gzip CRC, no trailing data),
/// and only then creates the symlinks and sets directory mtimes.
/// Checks the interrupt flag between entries and while copying data.
/// Does not compare with the manifest: see [`check_manifest`].
pub fn extract(stream: impl Read, sink: &mut dyn Sink, limits: &Limits) -> Result<Outcome> {
    extract_link(stream, sink, limits, Outcome::default())
}

/// Applies one archive of an incremental chain on top of `tree`, what its
/// predecessors built in `sink` (the [`Outcome`] of the previous call;
/// `Outcome::default()` for the chain's full), under the same rules as
/// [`extract`] plus the dumpdir rules of the module doc, and returns the
/// tree after it: files, directories and symlinks of every link that are
/// still there, with this archive's manifest. Every archive must be read to
/// its end (authenticated) before the next is applied; compare the result
/// with this link's manifest ([`check_manifest`]), which lists the complete
/// tree.
pub fn extract_link(
    stream: impl Read,
    sink: &mut dyn Sink,
    limits: &Limits,
    mut tree: Outcome,
) -> Result<Outcome> {
    let mut ar = tar::Archive::new(stream);
    let mut out = Outcome::default();
    let mut top: Option<Vec<u8>> = None;
    // whether the top-level directory carries the archive mark (this version)
    let mut marked = false;
    // explicit directory entries (and "" for the top); files are in out.files
    let mut seen_dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut manifest_names: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut txt_seen = false;
    let mut count = 0u64;
    {
        let entries = ar.entries().map_err(stream_error)?;
        for entry in entries {
            crate::process::check_interrupted()?;
            let mut entry = entry.map_err(stream_error)?;
            count += 1;
            if count > limits.max_entries {
                return Err(refuse(format!(
                    "archive has more than {} entries",
                    limits.max_entries
                )));
            }
            let raw = entry.path_bytes().into_owned();
            let shown = show(&raw);
            let etype = entry.header().entry_type();
            // GNU tar's incremental directory (`--format=gnu`): data = dumpdir
            let gnu_dumpdir = etype.as_byte() == b'D';
            let kind = match etype {
                _ if gnu_dumpdir => EntryKind::Dir,
                tar::EntryType::Regular => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink,
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
            let pax = check_pax(&mut entry, &shown)?;
            let mut dumpdir = pax.dumpdir.clone();
            if dumpdir.is_some() && (gnu_dumpdir || etype != tar::EntryType::Directory) {
                return Err(refuse(format!(
                    "archive entry {shown:?} has a GNU.dumpdir record but is not a plain directory entry"
                )));
            }
            if gnu_dumpdir {
                let size = entry.size();
                if size > MAX_DUMPDIR_BYTES {
                    return Err(refuse(format!(
                        "archive entry {shown:?} has a dumpdir of {size} bytes (limit {MAX_DUMPDIR_BYTES})"
                    )));
                }
                let mut v = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(size)
                    .read_to_end(&mut v)
                    .map_err(stream_error)?;
                if v.len() as u64 != size {
                    return Err(truncated(&shown));
                }
                dumpdir = Some(v);
            }
            let comps = check_path(&raw, limits)?;
            let Some((first, rest)) = comps.split_first() else {
                return Err(refuse(format!("archive entry {shown:?} has an empty path")));
            };
            match &top {
                None if tree.links > 0 && tree.top_raw.as_slice() != *first => {
                    return Err(Error::integrity(format!(
                        "this archive's top-level directory is {:?}, its predecessor's {:?}: they are not links of one chain",
                        show(first),
                        tree.top
                    ))
                    .hint("apply the links of one chain, in order; nothing was changed"))
                }
                None => top = Some(first.to_vec()),
                Some(t) if t.as_slice() != *first => {
                    return Err(refuse(format!(
                        "archive entry {shown:?} lies outside the top-level directory {:?} (more than one top-level directory)",
                        show(t)
                    )))
                }
                _ => {}
            }
            let mtime = pax
                .mtime
                .or_else(|| {
                    entry
                        .header()
                        .mtime()
                        .ok()
                        .and_then(|m| i64::try_from(m).ok())
                })
                .unwrap_or(0);
            if rest.is_empty() {
                if kind != EntryKind::Dir {
                    return Err(refuse(format!(
                        "archive entry {shown:?} is a file at the top level"
                    )));
                }
                if !seen_dirs.insert(Vec::new()) {
                    return Err(refuse(format!(
                        "archive has the top-level directory {shown:?} twice"
                    )));
                }
                marked = pax.comment.as_deref() == Some(manifest::ARCHIVE_MARK.as_bytes());
                if let Some(dd) = &dumpdir {
                    apply_dumpdir(&mut tree, &out, sink, b"", dd, &shown, limits)?;
                }
                continue;
            }
            let rel = rest.join(&b'/');
            if rel.len() > limits.max_rel_len {
                return Err(refuse(format!(
                    "archive entry {shown:?} is {} bytes long below the top-level directory: too long to be restored at the target (limit {} there)",
                    rel.len(),
                    limits.max_rel_len
                )));
            }
            // ancestors must be directories: not files, not symlinks
            for i in 1..rest.len() {
                let anc = rest[..i].join(&b'/');
                if out.files.contains_key(anc.as_slice()) || tree.files.contains_key(anc.as_slice())
                {
                    return Err(refuse(format!(
                        "archive entry {shown:?} lies below {:?}, which is a file",
                        show(&anc)
                    )));
                }
                if out.symlinks.contains_key(anc.as_slice())
                    || tree.symlinks.contains_key(anc.as_slice())
                {
                    return Err(refuse(format!(
                        "archive entry {shown:?} lies below {:?}, which is a symbolic link (nothing is written through a link)",
                        show(&anc)
                    )));
                }
            }
            let mark = pax.comment.as_deref();
            let json_mark = mark == Some(manifest::JSON_MARK.as_bytes());
            let txt_mark = mark == Some(manifest::TXT_MARK.as_bytes());
            let top_file = rest.len() == 1 && kind == EntryKind::File;
            if (json_mark || txt_mark) && !top_file {
                return Err(refuse(format!(
                    "archive entry {shown:?} is marked as a manifest but is not a top-level file"
                )));
            }
            let is_json =
                json_mark || (!marked && top_file && rel == manifest::JSON_NAME.as_bytes());
            let is_txt = txt_mark || (!marked && top_file && rel == manifest::TXT_NAME.as_bytes());
            let duplicate = out.files.contains_key(rel.as_slice())
                || out.symlinks.contains_key(rel.as_slice())
                || manifest_names.contains(&rel)
                || match kind {
                    EntryKind::Dir => !seen_dirs.insert(rel.clone()),
                    EntryKind::File | EntryKind::Symlink => out.dirs.contains(rel.as_slice()),
                };
            if duplicate {
                return Err(refuse(format!(
                    "archive has the entry {shown:?} more than once"
                )));
            }
            if (is_json && out.manifest.is_some()) || (is_txt && txt_seen) {
                return Err(refuse(format!("archive has a second manifest, {shown:?}")));
            }
            let size = entry.size();
            match kind {
                EntryKind::Dir => {
                    for i in 1..=rest.len() {
                        out.dirs.insert(RelPath::new(rest[..i].join(&b'/')));
                    }
                    replace_in_tree(&mut tree, sink, &rel, kind, &shown)?;
                    sink.dir(&rel)?;
                    if let Some(dd) = &dumpdir {
                        apply_dumpdir(&mut tree, &out, sink, &rel, dd, &shown, limits)?;
                    }
                    out.dir_mtimes.insert(RelPath::new(rel), mtime);
                }
                EntryKind::File if is_json || is_txt => {
                    if size > manifest::MAX_MANIFEST_BYTES {
                        return Err(refuse(format!(
                            "{shown:?} is larger than {} bytes",
                            manifest::MAX_MANIFEST_BYTES
                        )));
                    }
                    manifest_names.insert(rel.clone());
                    let mut tap = Tap {
                        inner: (&mut entry).take(size),
                        count: 0,
                        failed: None,
                    };
                    // manifest.json is parsed while streaming (no copy of a
                    // large manifest); manifest.txt is for humans only
                    let parsed = is_json.then(|| {
                        LinkManifest::parse_any(io::BufReader::with_capacity(64 * 1024, &mut tap))
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
                    txt_seen |= is_txt;
                    if let Some(parsed) = parsed {
                        let (m, chain) = parsed.map_err(|e| {
                            Error::integrity(format!("{shown}: {e}"))
                                .hint("the archive's manifest is damaged; nothing was changed")
                        })?;
                        out.manifest = Some(m);
                        out.chain = chain;
                    }
                }
                EntryKind::File => {
                    out.bytes = out.bytes.saturating_add(size);
                    if out.bytes.saturating_add(tree.bytes) > limits.max_total_bytes {
                        return Err(refuse(format!(
                            "archive needs more than {} bytes (entry {shown:?} claims {size}); that exceeds the free space or the limit",
                            limits.max_total_bytes
                        )));
                    }
                    for i in 1..rest.len() {
                        out.dirs.insert(RelPath::new(rest[..i].join(&b'/')));
                    }
                    replace_in_tree(&mut tree, sink, &rel, kind, &shown)?;
                    let mode = entry.header().mode().unwrap_or(0o600);
                    let executable = mode & 0o100 != 0;
                    let mut h = Hashing {
                        inner: &mut entry,
                        hasher: Sha256::new(),
                        count: 0,
                    };
                    sink.file(&rel, executable, mtime, &mut h)?;
                    if h.count != size {
                        return Err(truncated(&shown));
                    }
                    let sha256 = Sha256Digest(h.hasher.finalize().into());
                    out.files.insert(
                        RelPath::new(rel),
                        FileInfo {
                            size,
                            sha256,
                            executable,
                            mtime,
                        },
                    );
                }
                EntryKind::Symlink => {
                    if size != 0 {
                        return Err(refuse(format!(
                            "archive entry {shown:?} is a symbolic link with {size} bytes of data"
                        )));
                    }
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    check_link_target(&rel, &target).map_err(|why| {
                        refuse(format!(
                            "archive entry {shown:?} is a symbolic link to {:?}, which {why}",
                            show(&target)
                        ))
                    })?;
                    replace_in_tree(&mut tree, sink, &rel, kind, &shown)?;
                    for i in 1..rest.len() {
                        out.dirs.insert(RelPath::new(rest[..i].join(&b'/')));
                    }
                    out.symlinks.insert(
                        RelPath::new(rel),
                        LinkInfo {
                            target: RelPath::new(target),
                            mtime,
                        },
                    );
                }
            }
        }
    }
    let Some(top) = top else {
        return Err(Error::integrity("the archive holds no entries").hint("use another archive"));
    };
    out.top = show(&top);
    out.top_raw = top;
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
    // everything is authenticated: links last, then the directories' mtimes
    for (rel, l) in &out.symlinks {
        crate::process::check_interrupted()?;
        sink.symlink(rel.as_bytes(), l.target.as_bytes(), l.mtime)?;
    }
    // the tree after this archive: what its predecessors left, plus its own
    tree.top = out.top;
    tree.top_raw = out.top_raw;
    tree.manifest = out.manifest;
    tree.chain = out.chain;
    tree.links += 1;
    tree.bytes = tree.bytes.saturating_add(out.bytes);
    tree.files.extend(out.files);
    tree.dirs.extend(out.dirs);
    tree.dir_mtimes.extend(out.dir_mtimes);
    tree.symlinks.extend(out.symlinks);
    for (rel, m) in &tree.dir_mtimes {
        sink.dir_mtime(rel.as_bytes(), *m)?;
    }
    Ok(tree)
}

fn join_rel(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Every path of `tree` strictly below `dir`.
fn tree_below(tree: &Outcome, dir: &[u8]) -> Vec<Vec<u8>> {
    use std::ops::Bound;
    let prefix = if dir.is_empty() {
        Vec::new()
    } else {
        join_rel(dir, b"")
    };
    let from = (Bound::Included(prefix.as_slice()), Bound::Unbounded);
    let mut v: Vec<Vec<u8>> = Vec::new();
    let keep = |k: &RelPath| k.as_bytes().starts_with(&prefix);
    v.extend(
        tree.files
            .range::<[u8], _>(from)
            .map(|(k, _)| k)
            .take_while(|k| keep(k))
            .map(|k| k.0.clone()),
    );
    v.extend(
        tree.symlinks
            .range::<[u8], _>(from)
            .map(|(k, _)| k)
            .take_while(|k| keep(k))
            .map(|k| k.0.clone()),
    );
    v.extend(
        tree.dirs
            .range::<[u8], _>(from)
            .take_while(|k| keep(k))
            .map(|k| k.0.clone()),
    );
    v.retain(|k| k.len() > prefix.len());
    v
}

/// Forgets `path` and everything below it.
fn forget(tree: &mut Outcome, path: &[u8]) {
    for k in tree_below(tree, path) {
        tree.files.remove(k.as_slice());
        tree.symlinks.remove(k.as_slice());
        tree.dirs.remove(k.as_slice());
        tree.dir_mtimes.remove(k.as_slice());
    }
    tree.files.remove(path);
    tree.symlinks.remove(path);
    tree.dirs.remove(path);
    tree.dir_mtimes.remove(path);
}

/// An entry of this archive at `rel` replaces the file or symlink an
/// earlier link left there; a directory there is kept only for a directory
/// (its parent's dumpdir would have removed it otherwise).
fn replace_in_tree(
    tree: &mut Outcome,
    sink: &mut dyn Sink,
    rel: &[u8],
    kind: EntryKind,
    shown: &str,
) -> Result<()> {
    if tree.files.contains_key(rel) || tree.symlinks.contains_key(rel) {
        forget(tree, rel);
        return sink.remove(rel);
    }
    if kind != EntryKind::Dir && tree.dirs.contains(rel) {
        return Err(Error::integrity(format!(
            "archive entry {shown:?} is not a directory, but an earlier link has a directory there that this link's dumpdir keeps"
        ))
        .hint("the links are not of one chain or not in order; nothing was changed"));
    }
    Ok(())
}

/// Parses a dumpdir: control character + name + NUL per entry, then a NUL.
/// Every name obeys the entry name rules ([`check_path`], one component).
fn parse_dumpdir(raw: &[u8], shown: &str, limits: &Limits) -> Result<BTreeMap<Vec<u8>, u8>> {
    let malformed = |why: String| {
        refuse(format!(
            "archive entry {shown:?} has a malformed dumpdir: {why}"
        ))
    };
    let mut out = BTreeMap::new();
    let mut rest = raw;
    loop {
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(malformed("it does not end with an empty record".into()));
        };
        let rec = &rest[..end];
        rest = &rest[end + 1..];
        let Some((&code, name)) = rec.split_first() else {
            if !rest.is_empty() {
                return Err(malformed(format!(
                    "{} bytes follow its end (a name with a NUL byte?)",
                    rest.len()
                )));
            }
            return Ok(out);
        };
        let nshown = show(name);
        match code {
            b'Y' | b'N' | b'D' => {}
            b'R' | b'T' | b'X' => {
                return Err(refuse(format!(
                    "the dumpdir of archive entry {shown:?} has a GNU tar rename record ({:?} {nshown:?}), which this tool does not apply",
                    code as char
                ))
                .hint("extract this chain with GNU tar (tar --listed-incremental=/dev/null -x per link)"))
            }
            c => {
                return Err(malformed(format!(
                    "unknown control character {:?} before {nshown:?}",
                    c as char
                )))
            }
        }
        if name.contains(&b'/') {
            return Err(refuse(format!(
                "the dumpdir of archive entry {shown:?} lists {nshown:?}, a name with '/'"
            )));
        }
        check_path(name, limits)
            .map_err(|e| e.context(format!("the dumpdir of archive entry {shown:?}")))?;
        if out.insert(name.to_vec(), code).is_some() {
            return Err(refuse(format!(
                "the dumpdir of archive entry {shown:?} lists {nshown:?} more than once"
            )));
        }
    }
}

/// Applies the dumpdir of directory `dir` to what earlier links left in it
/// (GNU tar's rules, module doc).
fn apply_dumpdir(
    tree: &mut Outcome,
    this: &Outcome,
    sink: &mut dyn Sink,
    dir: &[u8],
    raw: &[u8],
    shown: &str,
    limits: &Limits,
) -> Result<()> {
    let listed = parse_dumpdir(raw, shown, limits)?;
    for (name, code) in &listed {
        let p = join_rel(dir, name);
        if *code == b'N'
            && !(tree.files.contains_key(p.as_slice()) || tree.symlinks.contains_key(p.as_slice()))
        {
            return Err(Error::integrity(format!(
                "the dumpdir of archive entry {shown:?} lists {:?} as unchanged, but no earlier link has it",
                show(name)
            ))
            .hint("this is a link of an incremental chain: apply its predecessors first, in order, and none may be missing; \
                   `restore` finds them from the `.meta` description beside each archive, so if this archive's `.meta` is gone, \
                   copy it back (e.g. from a tier) or apply the chain with stock tools (README \"Restoring a chain with stock tools\"); \
                   nothing was changed"));
        }
    }
    let prefix_len = if dir.is_empty() { 0 } else { dir.len() + 1 };
    let children: Vec<(Vec<u8>, bool)> = tree_below(tree, dir)
        .into_iter()
        .filter(|k| !k[prefix_len..].contains(&b'/'))
        .map(|k| {
            let is_dir = tree.dirs.contains(k.as_slice());
            (k, is_dir)
        })
        .collect();
    for (p, is_dir) in children {
        let name = &p[prefix_len..];
        let gone = match listed.get(name) {
            None => true,
            Some(b'D') => !is_dir,
            Some(b'Y') => is_dir,
            Some(_) => false,
        };
        if gone {
            // what this archive itself stored earlier in its stream is not
            // deleted behind its back (the tree would claim what is gone)
            let ours = this.files.contains_key(p.as_slice())
                || this.symlinks.contains_key(p.as_slice())
                || this.dirs.contains(p.as_slice())
                || !tree_below(this, &p).is_empty();
            if ours {
                return Err(refuse(format!(
                    "the dumpdir of archive entry {shown:?} deletes {:?}, where this archive stored entries before it (directories must precede their contents)",
                    show(&p)
                )));
            }
            forget(tree, &p);
            sink.remove(&p)?;
        }
    }
    Ok(())
}

fn truncated(shown: &str) -> Error {
    Error::integrity(format!(
        "the archive ends inside entry {shown:?} (truncated)"
    ))
    .hint("nothing was changed; use another archive or an intact copy of this one")
}

/// Compares what was read with the manifest: every file listed with the same
/// size and SHA-256, every symlink with the same target, mtimes where the
/// manifest has them, every listed entry present, nothing unlisted.
pub fn check_manifest(out: &Outcome, m: &Manifest) -> Result<()> {
    let listed = m.by_path();
    let fail = |msg: String| {
        Err(Error::integrity(msg).hint(
            "the archive does not match its own manifest (tampered or damaged); nothing was changed",
        ))
    };
    if let Some(c) = &out.chain {
        // every archive of a chain uses the chain's directory
        if out.top_raw != c.id.as_bytes() {
            return fail(format!(
                "the top-level directory {:?} is not that of the manifest's chain {:?}",
                out.top, c.id
            ));
        }
    } else if !out
        .top
        .starts_with(&format!("{}_{}", m.backup_type, m.timestamp))
    {
        return fail(format!(
            "the top-level directory {:?} does not match the manifest ({} of {})",
            out.top, m.backup_type, m.timestamp
        ));
    }
    let mtime_differs = |e: &manifest::Entry, actual: i64| e.mtime.is_some_and(|t| t != actual);
    for (path, info) in &out.files {
        match listed.get(path.as_bytes()) {
            None => {
                return fail(format!(
                    "{path:?} is in the archive but not in its manifest"
                ))
            }
            Some(e) if e.kind != EntryKind::File => {
                return fail(format!(
                    "{path:?} is a file in the archive but not in the manifest"
                ))
            }
            Some(e) if e.size != info.size || e.sha256 != Some(info.sha256) => {
                return fail(format!(
                    "{path:?} does not match the size/SHA-256 in the manifest"
                ))
            }
            Some(e) if mtime_differs(e, info.mtime) => {
                return fail(format!("{path:?} does not match the mtime in the manifest"))
            }
            _ => {}
        }
    }
    for (path, l) in &out.symlinks {
        match listed.get(path.as_bytes()) {
            Some(e) if e.kind == EntryKind::Symlink && e.target.as_ref() == Some(&l.target) => {
                if mtime_differs(e, l.mtime) {
                    return fail(format!("{path:?} does not match the mtime in the manifest"));
                }
            }
            Some(_) => {
                return fail(format!(
                    "{path:?} is a symbolic link to {:?} in the archive, which the manifest does not list",
                    l.target
                ))
            }
            None => {
                return fail(format!(
                    "symbolic link {path:?} is in the archive but not in its manifest"
                ))
            }
        }
    }
    for e in &m.entries {
        let present = match e.kind {
            EntryKind::File => out.files.contains_key(&e.path),
            EntryKind::Dir => out.dirs.contains(&e.path),
            EntryKind::Symlink => out.symlinks.contains_key(&e.path),
        };
        if !present {
            return fail(format!(
                "{:?} is listed in the manifest but missing from the archive",
                e.path
            ));
        }
    }
    for d in &out.dirs {
        match listed.get(d.as_bytes()) {
            Some(e) if e.kind == EntryKind::Dir => {}
            _ => {
                return fail(format!(
                    "directory {d:?} is in the archive but not in its manifest"
                ))
            }
        }
    }
    for (d, t) in &out.dir_mtimes {
        if listed
            .get(d.as_bytes())
            .is_some_and(|e| mtime_differs(e, *t))
        {
            return fail(format!("{d:?} does not match the mtime in the manifest"));
        }
    }
    Ok(())
}

/// A reader that stops with the interrupt error once a signal arrived.
struct Interruptible<'a>(&'a mut dyn Read);

impl Read for Interruptible<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::process::check_interrupted().map_err(crate::error::into_io)?;
        self.0.read(buf)
    }
}

/// Discards data (verify): counts only.
pub struct Discard;

impl Sink for Discard {
    fn dir(&mut self, _rel: &[u8]) -> Result<()> {
        Ok(())
    }
    fn file(&mut self, _rel: &[u8], _x: bool, _m: i64, data: &mut dyn Read) -> Result<u64> {
        io::copy(&mut Interruptible(data), &mut io::sink()).map_err(stream_error)
    }
    fn symlink(&mut self, _rel: &[u8], _target: &[u8], _mtime: i64) -> Result<()> {
        Ok(())
    }
    fn dir_mtime(&mut self, _rel: &[u8], _mtime: i64) -> Result<()> {
        Ok(())
    }
    fn remove(&mut self, _rel: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// Staged files at least this large start their writeback when complete.
const WRITEBACK_MIN: u64 = 256 * 1024;

fn times(mtime: i64) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    }
}

/// Writes into a fresh 0700 staging directory that only we can modify:
/// every name is resolved one component at a time from the staging
/// directory's descriptor with `O_NOFOLLOW`, created exclusively, with
/// owner-only modes from the first byte.
pub struct StagingSink {
    root: PathBuf,
    root_fd: OwnedFd,
    buf: Vec<u8>,
    /// The last directory entered and its descriptor: files come grouped by
    /// directory, so most need no directory lookup at all.
    cur: Option<(Vec<u8>, OwnedFd)>,
    background: crate::store::BackgroundSync,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl StagingSink {
    pub fn new(root: &Path) -> Result<Self> {
        let root_fd = rustix::fs::open(root, dir_flags(), FsMode::empty())
            .map_err(|e| Error::io("opening staging directory", root, e.into()))?;
        Ok(StagingSink {
            root: root.to_owned(),
            root_fd,
            buf: vec![0u8; 256 * 1024],
            cur: None,
            background: crate::store::BackgroundSync::new(root),
        })
    }

    fn shown(&self, rel: &[u8]) -> PathBuf {
        self.root.join(std::ffi::OsStr::from_bytes(rel))
    }

    fn err(&self, what: &str, rel: &[u8], e: Errno) -> Error {
        staging_error(what, rel, &self.shown(rel), e.into())
    }

    /// The descriptor of directory `rel` ("" is the root), creating missing
    /// directories (0700) when `create`.
    fn enter(&mut self, rel: &[u8], create: bool) -> Result<BorrowedFd<'_>> {
        if rel.is_empty() {
            return Ok(self.root_fd.as_fd());
        }
        let reuse = matches!(&self.cur, Some((p, _)) if p.as_slice() == rel);
        if !reuse {
            // start from the cached directory when `rel` lies below it
            let (mut fd, start) = match &self.cur {
                Some((p, fd))
                    if rel.len() > p.len() && rel.starts_with(p) && rel[p.len()] == b'/' =>
                {
                    (
                        fd.try_clone()
                            .map_err(|e| Error::io("duplicating", &self.root, e))?,
                        p.len() + 1,
                    )
                }
                _ => (
                    self.root_fd
                        .try_clone()
                        .map_err(|e| Error::io("duplicating", &self.root, e))?,
                    0,
                ),
            };
            let mut end = start;
            for c in rel[start..].split(|&b| b == b'/') {
                end += c.len();
                // most directories exist already: open first, create on ENOENT
                let mut opened = rustix::fs::openat(&fd, c, dir_flags(), FsMode::empty());
                if create && matches!(opened, Err(Errno::NOENT)) {
                    match rustix::fs::mkdirat(&fd, c, FsMode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(self.err("creating staging directory", &rel[..end], e))
                        }
                    }
                    opened = rustix::fs::openat(&fd, c, dir_flags(), FsMode::empty());
                }
                fd = opened.map_err(|e| {
                    if matches!(e, Errno::NOTDIR | Errno::LOOP) {
                        refuse(format!(
                            "archive entry {:?} lies below something that is not a directory",
                            show(rel)
                        ))
                    } else {
                        self.err("opening staging directory", &rel[..end], e)
                    }
                })?;
                end += 1;
            }
            self.cur = Some((rel.to_vec(), fd));
        }
        match &self.cur {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Ok(self.root_fd.as_fd()),
        }
    }

    /// Sets the mtimes of these directories again (after a restore put more
    /// entries into them: carried-over components, moved transcripts).
    pub fn set_dir_mtimes(&mut self, dirs: &BTreeMap<RelPath, i64>) -> Result<()> {
        for (rel, m) in dirs {
            self.dir_mtime(rel.as_bytes(), *m)?;
        }
        Ok(())
    }
}

fn split_parent(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b"", rel),
    }
}

/// An I/O error while staging `rel`; a name too long for this filesystem is
/// a name limit the archive exceeds (refused), not an operational failure.
fn staging_error(what: &str, rel: &[u8], p: &Path, e: io::Error) -> Error {
    if e.raw_os_error() == Some(Errno::NAMETOOLONG.raw_os_error()) {
        return refuse(format!(
            "archive entry {:?} is too long to be restored below {}",
            show(rel),
            p.display().to_string().chars().take(80).collect::<String>()
        ));
    }
    Error::io(what, p, e)
}

impl Sink for StagingSink {
    fn dir(&mut self, rel: &[u8]) -> Result<()> {
        self.enter(rel, true).map(|_| ())
    }

    fn file(
        &mut self,
        rel: &[u8],
        executable: bool,
        mtime: i64,
        data: &mut dyn Read,
    ) -> Result<u64> {
        let (parent, name) = split_parent(rel);
        let mode = if executable { 0o700 } else { 0o600 };
        let fd = {
            let dir = self.enter(parent, true)?;
            rustix::fs::openat(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                FsMode::from_raw_mode(mode),
            )
        }
        .map_err(|e| self.err("creating staged file", rel, e))?;
        rustix::fs::fchmod(&fd, FsMode::from_raw_mode(mode))
            .map_err(|e| self.err("setting mode of", rel, e))?;
        let mut f = File::from(fd);
        let mut total = 0u64;
        let mut writeback = crate::store::Writeback::default();
        loop {
            crate::process::check_interrupted()?;
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(e)),
            };
            f.write_all(&self.buf[..n])
                .map_err(|e| Error::io("writing staged file", &self.shown(rel), e))?;
            total += n as u64;
            writeback.advance(&f, n as u64);
        }
        rustix::fs::futimens(&f, &times(mtime))
            .map_err(|e| self.err("setting the mtime of", rel, e))?;
        // large files start their own writeback; small ones are synced in
        // batches by the background syncfs
        if total >= WRITEBACK_MIN {
            writeback.kick(&f);
        } else {
            self.background.wrote(total);
        }
        Ok(total)
    }

    fn symlink(&mut self, rel: &[u8], target: &[u8], mtime: i64) -> Result<()> {
        let (parent, name) = split_parent(rel);
        let res = {
            let dir = self.enter(parent, true)?;
            rustix::fs::symlinkat(target, dir, name).and_then(|()| {
                rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
            })
        };
        res.map_err(|e| self.err("creating symbolic link", rel, e))
    }

    fn dir_mtime(&mut self, rel: &[u8], mtime: i64) -> Result<()> {
        let res = {
            let dir = self.enter(rel, false)?;
            rustix::fs::futimens(dir, &times(mtime))
        };
        res.map_err(|e| self.err("setting the mtime of", rel, e))
    }

    fn remove(&mut self, rel: &[u8]) -> Result<()> {
        // the cached directory may be what goes
        if matches!(&self.cur, Some((p, _)) if p.starts_with(rel) && (p.len() == rel.len() || p[rel.len()] == b'/'))
        {
            self.cur = None;
        }
        let (parent, name) = split_parent(rel);
        let res = {
            let dir = self.enter(parent, false)?;
            crate::fsx::remove_tree_at(dir, std::ffi::OsStr::from_bytes(name))
        };
        res.map_err(|e| staging_error("removing", rel, &self.shown(rel), e))
    }
}

/// Whether an error came from archive contents (refused/integrity) rather
/// than from the operator's environment.
pub fn is_archive_fault(e: &Error) -> bool {
    matches!(e.kind, ErrorKind::Refused | ErrorKind::Integrity)
}
