//! Partial restore and the per-file plan (README "Looking inside an
//! archive"): which archive entries an `--include` selects ([`Selection`]),
//! the sink that stages only those while every entry is still read, judged
//! and hashed ([`Filtered`]), what of the current tree is carried over
//! around them ([`Picked::carry_list`]), and the comparison, file by file, of
//! what the archive puts in place with what the target has
//! ([`file_changes`], what `--dry-run` reports).
//!
//! Granularity: the swap stays one `RENAME_EXCHANGE` of the whole tree. With
//! a selection, the staged tree is the selected entries from the archive
//! plus everything else of the current tree, hard-linked (the same inodes,
//! untouched); each selected entry replaces its counterpart as a whole (a
//! selected directory with everything below it, so what the target has
//! below it and the archive lacks is removed, as a unit is in a full
//! restore). A glob that selects single files never removes a file the
//! archive lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};

use crate::archive::extract::{Discard, Outcome, Sink};
use crate::error::{Error, IoContext, Result};
use crate::manifest::{show, RelPath};

/// `--include PATH|GLOB` (repeatable), matched like backup's `--exclude`:
/// against an entry's path relative to the data directory, or its last
/// component. An entry is selected when it or a directory above it matches.
pub struct Selection {
    patterns: Vec<String>,
    matchers: Vec<GlobMatcher>,
}

impl Selection {
    /// The selection of `patterns`, `None` when there are none. A pattern
    /// that could name something outside the data directory (absolute, `..`,
    /// `.`, empty components) is a usage error: nothing is read.
    pub fn new(patterns: &[String]) -> Result<Option<Selection>> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut matchers = Vec::new();
        let mut kept = Vec::new();
        for raw in patterns {
            let p = raw.trim_end_matches('/');
            let bad = p.is_empty()
                || raw.starts_with('/')
                || p.contains('\0')
                || p.split('/').any(|c| c.is_empty() || c == "." || c == "..");
            if bad {
                return Err(Error::usage(format!(
                    "--include {raw:?} is not a path inside the data directory"
                ))
                .hint("name paths relative to the data directory, without `..`, `.` or a leading `/` (e.g. credentials/oauth.json, or a glob such as 'agents/*/agent/**')"));
            }
            let g: Glob = GlobBuilder::new(p)
                .literal_separator(false)
                .build()
                .map_err(|e| {
                    Error::usage(format!("--include {raw:?} is not a valid glob: {e}"))
                        .hint("use a path or shell-style glob such as 'credentials/*.json'")
                })?;
            matchers.push(g.compile_matcher());
            kept.push(p.to_owned());
        }
        Ok(Some(Selection {
            patterns: kept,
            matchers,
        }))
    }

    /// The patterns as given (trailing `/` removed).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Which patterns match `rel` itself.
    fn matching(&self, rel: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let base = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel).to_vec();
        let full = rel.to_vec();
        self.matchers.iter().enumerate().filter_map(move |(i, m)| {
            let hit = m.is_match(Path::new(std::ffi::OsStr::from_bytes(&full)))
                || m.is_match(Path::new(std::ffi::OsStr::from_bytes(&base)));
            hit.then_some(i)
        })
    }

    /// Whether `rel` itself matches a pattern.
    pub fn matches(&self, rel: &[u8]) -> bool {
        self.matching(rel).next().is_some()
    }

    /// Whether `rel` is selected: it, or a directory above it, matches.
    pub fn selects(&self, rel: &[u8]) -> bool {
        prefixes(rel).any(|p| self.matches(p))
    }
}

/// `rel` and every directory above it, shortest first.
fn prefixes(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(|(i, _)| &rel[..i])
        .chain(std::iter::once(rel))
}

/// The proper ancestors of `rel`.
fn ancestors(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(|(i, _)| &rel[..i])
}

/// A sink that passes on only the selected entries (missing parent
/// directories are created by the staging sink, 0700); the others are read
/// to their end and dropped, so that the extraction still judges and hashes
/// every entry. Removals of an incremental link reach what was staged.
pub struct Filtered<'a> {
    inner: &'a mut dyn Sink,
    sel: &'a Selection,
    /// What reached `inner`, with its parents.
    staged: BTreeSet<Vec<u8>>,
}

impl<'a> Filtered<'a> {
    pub fn new(inner: &'a mut dyn Sink, sel: &'a Selection) -> Self {
        Filtered {
            inner,
            sel,
            staged: BTreeSet::new(),
        }
    }

    fn note(&mut self, rel: &[u8]) {
        for p in prefixes(rel) {
            self.staged.insert(p.to_vec());
        }
    }
}

impl Sink for Filtered<'_> {
    fn dir(&mut self, rel: &[u8]) -> Result<()> {
        if !self.sel.selects(rel) {
            return Ok(());
        }
        self.note(rel);
        self.inner.dir(rel)
    }
    fn file(&mut self, rel: &[u8], x: bool, mtime: i64, data: &mut dyn Read) -> Result<u64> {
        if !self.sel.selects(rel) {
            return Discard.file(rel, x, mtime, data);
        }
        self.note(rel);
        self.inner.file(rel, x, mtime, data)
    }
    fn symlink(&mut self, rel: &[u8], target: &[u8], mtime: i64) -> Result<()> {
        if !self.sel.selects(rel) {
            return Ok(());
        }
        self.note(rel);
        self.inner.symlink(rel, target, mtime)
    }
    fn dir_mtime(&mut self, rel: &[u8], mtime: i64) -> Result<()> {
        if !self.sel.selects(rel) {
            return Ok(());
        }
        self.inner.dir_mtime(rel, mtime)
    }
    fn remove(&mut self, rel: &[u8]) -> Result<()> {
        if !self.staged.contains(rel) {
            return Ok(());
        }
        let below: Vec<Vec<u8>> = self
            .staged
            .iter()
            .filter(|p| p.starts_with(rel) && (p.len() == rel.len() || p[rel.len()] == b'/'))
            .cloned()
            .collect();
        for p in below {
            self.staged.remove(&p);
        }
        self.inner.remove(rel)
    }
}

/// What a selection took from an archive.
#[derive(Debug, Default)]
pub struct Picked {
    /// Every selected path of the archive (files, directories, symlinks).
    pub selected: BTreeSet<RelPath>,
    /// The selected paths with no selected directory above them: each
    /// replaces its counterpart in the target as a whole.
    pub roots: Vec<RelPath>,
    /// The archive's directories above a root (staged to hold it; the
    /// target's own are kept around it).
    pub ancestors: BTreeSet<RelPath>,
    /// Patterns that matched nothing.
    pub unmatched: Vec<String>,
}

/// The entries of `outcome` that `sel` selects. Nothing at all is an error
/// (exit 1) naming the patterns; a single pattern that matched nothing is
/// listed in [`Picked::unmatched`].
pub fn pick(sel: &Selection, outcome: &Outcome, archive: &Path) -> Result<Picked> {
    let mut p = Picked::default();
    let mut hit = vec![false; sel.matchers.len()];
    for rel in outcome.paths() {
        let mut any = false;
        for i in sel.matching(rel) {
            hit[i] = true;
            any = true;
        }
        if any || sel.selects(rel) {
            p.selected.insert(RelPath::from(rel));
        }
    }
    if p.selected.is_empty() {
        return Err(Error::operational(format!(
            "nothing in {} matches --include {}",
            archive.display(),
            sel.patterns.join(", --include ")
        ))
        .hint("see the archive's paths with `secureclaw-backup ls ARCHIVE -i KEY`; paths are relative to the data directory (e.g. credentials/oauth.json); nothing was changed"));
    }
    for rel in &p.selected {
        let b = rel.as_bytes();
        if !ancestors(b).any(|a| p.selected.contains(a)) {
            p.roots.push(rel.clone());
            for a in ancestors(b) {
                p.ancestors.insert(RelPath::from(a));
            }
        }
    }
    p.unmatched = sel
        .patterns
        .iter()
        .zip(hit)
        .filter(|(_, h)| !h)
        .map(|(s, _)| s.clone())
        .collect();
    Ok(p)
}

impl Picked {
    /// What of the current tree is carried over around the selection: every
    /// entry of `target` that is neither selected nor on the way to a
    /// selected root, as the shallowest paths that cover it. Walked without
    /// following symlinks; a non-directory of the target where the archive
    /// has a directory above a root is replaced (not carried).
    pub fn carry_list(&self, target: &Path) -> Result<Vec<RelPath>> {
        let mut out = Vec::new();
        if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            self.carry_dir(target, b"", &mut out)?;
        }
        Ok(out)
    }

    fn carry_dir(&self, target: &Path, rel_dir: &[u8], out: &mut Vec<RelPath>) -> Result<()> {
        let dir = target.join(std::ffi::OsStr::from_bytes(rel_dir));
        let mut names: Vec<_> = fs::read_dir(&dir)
            .at("listing", &dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .at("listing", &dir)?;
        names.sort();
        for n in names {
            let mut rel = rel_dir.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(n.as_bytes());
            if self.selected.contains(rel.as_slice()) {
                continue;
            }
            if self.ancestors.contains(rel.as_slice()) {
                let p = target.join(std::ffi::OsStr::from_bytes(&rel));
                if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    self.carry_dir(target, &rel, out)?;
                }
                continue;
            }
            out.push(RelPath::new(rel));
        }
        Ok(())
    }

    /// The selected roots the target has (replaced) and lacks (added).
    pub fn replaced_added(&self, target: &Path) -> (Vec<RelPath>, Vec<RelPath>) {
        self.roots
            .iter()
            .cloned()
            .partition(|r| fs::symlink_metadata(target.join(r.as_path())).is_ok())
    }

    /// The mtimes the staged directories get: the archive's for selected
    /// ones, the target's for the directories on the way to a root that the
    /// target has (they are kept), else the archive's.
    pub fn dir_mtimes(&self, outcome: &Outcome, target: &Path) -> BTreeMap<RelPath, i64> {
        let mut out = BTreeMap::new();
        for (rel, m) in &outcome.dir_mtimes {
            if self.selected.contains(rel) {
                out.insert(rel.clone(), *m);
            } else if self.ancestors.contains(rel) {
                let mine = fs::symlink_metadata(target.join(rel.as_path()))
                    .ok()
                    .filter(|m| m.is_dir())
                    .map(|m| m.mtime());
                out.insert(rel.clone(), mine.unwrap_or(*m));
            }
        }
        for a in &self.ancestors {
            if !out.contains_key(a) {
                if let Some(m) = fs::symlink_metadata(target.join(a.as_path()))
                    .ok()
                    .filter(|m| m.is_dir())
                {
                    out.insert(a.clone(), m.mtime());
                }
            }
        }
        out
    }
}

/// Per file (regular files and symlinks), what a restore does to the
/// target: the archive's entries it puts in place are `added` (the target
/// lacks them), `changed` (another type, content, symlink target or execute
/// bit) or `unchanged`; the target's other files are `removed` (in a
/// component or selection the archive replaces) or `kept` (left as they
/// are). Directories and mtimes are not compared.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FileChanges {
    pub counts: Counts,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    pub kept: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub kept: usize,
}

impl FileChanges {
    /// Whether the restore changes no file (only adds/changes/removes count).
    pub fn is_noop(&self) -> bool {
        self.counts.added + self.counts.changed + self.counts.removed == 0
    }
}

/// A non-directory of the target.
enum Here {
    File { size: u64, exec: bool },
    Link(Vec<u8>),
    Dir,
}

/// The target's entries, through real directories only.
fn target_entries(root: &Path) -> Result<BTreeMap<Vec<u8>, Here>> {
    let mut out = BTreeMap::new();
    if !fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        return Ok(out);
    }
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel_dir) = stack.pop() {
        let dir = root.join(std::ffi::OsStr::from_bytes(&rel_dir));
        for e in fs::read_dir(&dir).at("listing", &dir)? {
            let e = e.at("listing", &dir)?;
            let mut rel = rel_dir.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(e.file_name().as_bytes());
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue; // vanished
            };
            let ft = m.file_type();
            if ft.is_dir() {
                out.insert(rel.clone(), Here::Dir);
                stack.push(rel);
            } else if ft.is_symlink() {
                let t = fs::read_link(e.path()).at("reading link", &e.path())?;
                out.insert(rel, Here::Link(t.as_os_str().as_bytes().to_vec()));
            } else if ft.is_file() {
                out.insert(
                    rel,
                    Here::File {
                        size: m.len(),
                        exec: m.mode() & 0o100 != 0,
                    },
                );
            }
            // sockets, FIFOs, devices: never archived, never replaced
        }
    }
    Ok(out)
}

/// SHA-256 of a regular file of the target, opened without following a link.
pub(crate) fn hash_file(p: &Path) -> Result<[u8; 32]> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening", p, e.into()))?;
    let mut f = fs::File::from(fd);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        crate::process::check_interrupted()?;
        let n = f.read(&mut buf).at("reading", p)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// The per-file comparison (see [`FileChanges`]) of the archive's entries
/// that `restored` says go into the target with the target's files; what
/// `kept` covers (paths carried over whole) and `carried` (entries seen but
/// not archived) stays.
pub fn file_changes(
    target: &Path,
    outcome: &Outcome,
    restored: &dyn Fn(&[u8]) -> bool,
    kept: &[RelPath],
    carried: &[PathBuf],
) -> Result<FileChanges> {
    let here = target_entries(target)?;
    let mut fc = FileChanges::default();
    let mut seen: BTreeSet<&[u8]> = BTreeSet::new();
    for (rel, info) in &outcome.files {
        let b = rel.as_bytes();
        if !restored(b) {
            continue;
        }
        seen.insert(b);
        let shown = show(b);
        match here.get(b) {
            None => fc.added.push(shown),
            Some(Here::File { size, exec }) => {
                let same = *size == info.size
                    && *exec == info.executable
                    && hash_file(&target.join(rel.as_path()))? == info.sha256.0;
                if same {
                    fc.unchanged.push(shown);
                } else {
                    fc.changed.push(shown);
                }
            }
            Some(_) => fc.changed.push(shown),
        }
    }
    for (rel, link) in &outcome.symlinks {
        let b = rel.as_bytes();
        if !restored(b) {
            continue;
        }
        seen.insert(b);
        let shown = show(b);
        match here.get(b) {
            None => fc.added.push(shown),
            Some(Here::Link(t)) if t.as_slice() == link.target.as_bytes() => {
                fc.unchanged.push(shown)
            }
            Some(_) => fc.changed.push(shown),
        }
    }
    let covered = |b: &[u8]| {
        kept.iter().any(|k| prefixes(b).any(|p| p == k.as_bytes()))
            || carried
                .iter()
                .any(|c| prefixes(b).any(|p| p == c.as_os_str().as_bytes()))
    };
    for (rel, h) in &here {
        if matches!(h, Here::Dir) || seen.contains(rel.as_slice()) {
            continue;
        }
        // not covered: in a replaced component or below a selected
        // directory (or a file where the archive has a directory)
        if covered(rel) {
            fc.kept.push(show(rel));
        } else {
            fc.removed.push(show(rel));
        }
    }
    fc.counts = Counts {
        added: fc.added.len(),
        changed: fc.changed.len(),
        removed: fc.removed.len(),
        unchanged: fc.unchanged.len(),
        kept: fc.kept.len(),
    };
    Ok(fc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(p: &[&str]) -> Selection {
        Selection::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn hostile_patterns_are_usage_errors() {
        for p in [
            "../x",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "",
            "/",
            "a/./b",
        ] {
            let e = Selection::new(&[p.to_owned()])
                .err()
                .unwrap_or_else(|| panic!("{p:?}"));
            assert_eq!(e.kind, crate::error::ErrorKind::Usage, "{p:?}");
            assert!(
                e.message.contains("not a path inside"),
                "{p:?}: {}",
                e.message
            );
        }
        assert!(Selection::new(&[]).unwrap().is_none());
    }

    #[test]
    fn a_match_selects_what_lies_below() {
        let s = sel(&["credentials/", "*.jsonl"]);
        assert!(s.selects(b"credentials"));
        assert!(s.selects(b"credentials/oauth.json"));
        assert!(!s.selects(b"credentials-old/x"));
        assert!(s.selects(b"agents/a/sessions/s.jsonl"));
        assert!(!s.selects(b"agents/a/sessions"));
        assert!(!s.selects(b"secureclaw.json"));
        let g = sel(&["agents/*/agent/**"]);
        assert!(g.selects(b"agents/a/agent/auth.json"));
        assert!(!g.selects(b"agents/a/sessions/x.jsonl"));
    }

    /// Records what reaches it.
    #[derive(Default)]
    struct Record(Vec<String>);

    impl Sink for Record {
        fn dir(&mut self, rel: &[u8]) -> Result<()> {
            self.0.push(format!("dir {}", show(rel)));
            Ok(())
        }
        fn file(&mut self, rel: &[u8], _x: bool, _m: i64, data: &mut dyn Read) -> Result<u64> {
            self.0.push(format!("file {}", show(rel)));
            Discard.file(rel, false, 0, data)
        }
        fn symlink(&mut self, rel: &[u8], _t: &[u8], _m: i64) -> Result<()> {
            self.0.push(format!("link {}", show(rel)));
            Ok(())
        }
        fn dir_mtime(&mut self, rel: &[u8], _m: i64) -> Result<()> {
            self.0.push(format!("mtime {}", show(rel)));
            Ok(())
        }
        fn remove(&mut self, rel: &[u8]) -> Result<()> {
            self.0.push(format!("remove {}", show(rel)));
            Ok(())
        }
    }

    #[test]
    fn only_the_selection_reaches_the_staging_sink() {
        let s = sel(&["credentials"]);
        let mut rec = Record::default();
        {
            let mut f = Filtered::new(&mut rec, &s);
            f.dir(b"agents").unwrap();
            let mut data: &[u8] = b"secret";
            // an unselected file is still read to its end
            assert_eq!(f.file(b"agents/a.json", false, 0, &mut data).unwrap(), 6);
            assert!(data.is_empty());
            f.dir(b"credentials").unwrap();
            let mut data: &[u8] = b"x";
            f.file(b"credentials/oauth.json", false, 0, &mut data)
                .unwrap();
            f.symlink(b"agents/l", b"a.json", 0).unwrap();
            f.symlink(b"credentials/l", b"oauth.json", 0).unwrap();
            f.dir_mtime(b"agents", 0).unwrap();
            f.dir_mtime(b"credentials", 0).unwrap();
            // a later link removes: only what was staged is removed
            f.remove(b"agents").unwrap();
            f.remove(b"credentials/oauth.json").unwrap();
            f.remove(b"credentials/oauth.json").unwrap();
        }
        assert_eq!(
            rec.0,
            [
                "dir credentials",
                "file credentials/oauth.json",
                "link credentials/l",
                "mtime credentials",
                "remove credentials/oauth.json"
            ]
        );
    }

    #[test]
    fn roots_ancestors_and_what_is_carried() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path();
        for f in [
            "credentials/oauth.json",
            "credentials/new.json",
            "notes.txt",
            "agents/a/x",
        ] {
            let p = target.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x").unwrap();
        }
        let mut o = Outcome::default();
        for d in ["credentials", "agents", "agents/a"] {
            o.dirs.insert(RelPath::from(d));
        }
        for f in ["credentials/oauth.json", "agents/a/x", "secureclaw.json"] {
            o.files.insert(
                RelPath::from(f),
                crate::archive::extract::FileInfo {
                    size: 1,
                    sha256: crate::manifest::Sha256Digest(Sha256::digest(b"x").into()),
                    executable: false,
                    mtime: 0,
                },
            );
        }
        let p = pick(&sel(&["credentials/oauth.json", "nothing*"]), &o, target).unwrap();
        let v = |x: &[RelPath]| x.iter().map(RelPath::to_string).collect::<Vec<_>>();
        assert_eq!(v(&p.roots), ["credentials/oauth.json"]);
        assert_eq!(p.unmatched, ["nothing*"]);
        assert_eq!(
            v(&p.carry_list(target).unwrap()),
            ["agents", "credentials/new.json", "notes.txt"]
        );
        let e = pick(&sel(&["nope"]), &o, target).unwrap_err();
        assert!(e.message.contains("nothing in"), "{}", e.message);
        // the whole file comparison: one unchanged file selected, the rest kept
        let kept = p.carry_list(target).unwrap();
        let fc = file_changes(target, &o, &|b| p.selected.contains(b), &kept, &[]).unwrap();
        assert_eq!(fc.unchanged, ["credentials/oauth.json"]);
        assert!(fc.is_noop(), "{fc:?}");
        assert_eq!(fc.counts.kept, 3);
        // a full restore of that outcome: secureclaw.json added, the rest removed
        let fc = file_changes(target, &o, &|_| true, &[], &[]).unwrap();
        assert_eq!(fc.added, ["secureclaw.json"]);
        assert_eq!(fc.removed, ["credentials/new.json", "notes.txt"]);
        assert_eq!(fc.unchanged, ["agents/a/x", "credentials/oauth.json"]);
    }
}
