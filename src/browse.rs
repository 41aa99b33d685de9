//! Looking inside archives (README "Looking inside an archive"): the tree an
//! archive holds ([`ls`]) and the differences between two trees ([`diff`]),
//! each side an archive or a live directory. Options in, a report out,
//! nothing printed.
//!
//! An archive is read the way `verify -i` reads it: decrypted and
//! authenticated to the end, every entry judged by the restore rules and
//! compared with the manifest, nothing written; the listing is the
//! manifest's (the archive's own entries for a legacy archive without one).
//! A live directory is walked with the selection rules of a backup
//! ([`crate::source`]: the type's top-level directories, `--exclude`, lock
//! files, sockets, the destination), its files hashed, so that what a
//! backup would not take is not reported as a difference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::extract::{self, Discard, Limits, Outcome, Sink};
use crate::crypto::{Format, Identities};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Entry, EntryKind, Mode, RelPath, Sha256Digest};
use crate::restore::select::Selection;
use crate::store::BackupType;
use crate::tier::ArchiveRef;

/// What an archive holds, read and checked to its end.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveTree {
    pub archive: PathBuf,
    pub format: &'static str,
    /// No manifest: the entries are the archive's own (hashes computed on
    /// the way), modes as a restore writes them.
    pub legacy: bool,
    pub backup_type: Option<String>,
    pub created: Option<String>,
    pub host: Option<String>,
    /// A link of an incremental chain (read with the links before it).
    pub incremental_link: bool,
    pub entries: Vec<Entry>,
}

/// Who an archive was encrypted to, for a message: the public keys its
/// `.meta` names (a keyless hint, see [`crate::meta`]), else what the header
/// tells (OpenPGP key ids; age only says `X25519`).
fn recipients_of(src: &ArchiveRef, header: &[String]) -> Vec<String> {
    let from_meta = match src {
        ArchiveRef::Local(p) => p.file_name().and_then(|n| n.to_str()).and_then(|name| {
            let mp = p.with_file_name(crate::meta::meta_name(name));
            let len = std::fs::metadata(&mp).ok()?.len();
            if len > crate::meta::MAX_LEN as u64 {
                return None;
            }
            let bytes = std::fs::read(&mp).ok()?;
            crate::meta::Meta::parse(&bytes, name, &mp.display().to_string()).ok()
        }),
        ArchiveRef::Remote(_) => None,
    };
    match from_meta {
        Some(m) if !m.recipients.is_empty() => m.recipients.into_iter().map(|r| r.id).collect(),
        _ => header.to_vec(),
    }
}

/// The error when an archive needs a key and none opened it.
fn needs_key(
    src: &ArchiveRef,
    format: Format,
    recipients: &[String],
    cause: Option<Error>,
) -> Error {
    let recipients = recipients_of(src, recipients);
    let to = if recipients.is_empty() {
        String::new()
    } else {
        format!(" (encrypted to {})", recipients.join(", "))
    };
    let mut e = Error::key(format!(
        "{}: reading its manifest needs a key that opens it: it is an {} archive{to}",
        src.label().display(),
        format.family()
    ))
    .hint("pass -i FILE (the identity of one of its recipients) or set SECURECLAW_BACKUP_IDENTITY; without a key, `verify ARCHIVE` checks its structure and `list` shows what it is");
    if let Some(c) = cause {
        e.message.push_str(&format!(": {}", c.message));
    }
    e
}

/// Reads `src` to its end (see the module doc) and returns its tree.
pub fn read_archive(src: &ArchiveRef, identities: &Identities) -> Result<ArchiveTree> {
    read_archive_trusted(src, identities, &crate::sign::Trust::Unchecked)
}

/// [`read_archive`] behind the provenance gate (README "Signed archives"):
/// with trusted signers, the signature is verified before anything is
/// decrypted, the bytes decrypted are checked against it again, and the
/// manifest is bound to the name.
pub fn read_archive_trusted(
    src: &ArchiveRef,
    identities: &Identities,
    trust: &crate::sign::Trust,
) -> Result<ArchiveTree> {
    if let ArchiveRef::Local(p) = src {
        if std::fs::metadata(p).is_ok_and(|m| m.is_dir()) {
            return Err(Error::usage(format!(
                "{} is a directory, not an archive",
                p.display()
            ))
            .hint("an old plaintext backup directory can be looked at with `ls -lR`, and compared as a live directory with `diff`"));
        }
    }
    // a link of an incremental chain is read with the links before it, as
    // restore reads it (its manifest lists the whole tree at that link)
    let mut chain = crate::restore::chain::find(src)?;
    let checked = match chain.as_mut() {
        Some(c) => {
            c.check_provenance(trust, chrono::Utc::now())?;
            None
        }
        None => src.check_provenance(trust, chrono::Utc::now())?,
    };
    let info = src.inspect()?;
    if info.format.is_encrypted()
        && identities.is_empty()
        && matches!(info.format, Format::Age | Format::AgeArmored)
    {
        return Err(needs_key(src, info.format, &info.recipients, None));
    }
    // OpenPGP without -i tried gpg-agent
    let key_error = |e: Error| match e.kind {
        ErrorKind::Key if identities.is_empty() => {
            needs_key(src, info.format, &info.recipients, Some(e))
        }
        _ => e,
    };
    let (format, outcome) = match chain {
        Some(c) => {
            let (format, _) = c.check_keyless(false)?;
            let sink = &mut Discard as &mut dyn Sink;
            let outcome = c
                .extract(sink, &Limits::default(), identities, &crate::events::Silent)
                .map_err(key_error)?;
            (format, outcome)
        }
        None => {
            let (format, stream, guard) = src
                .open_tar_stream_checked(identities, checked.as_ref())
                .map_err(key_error)?;
            let sink = &mut Discard as &mut dyn Sink;
            let outcome = extract::extract(stream, sink, &Limits::default())?;
            if let Some(g) = guard {
                let p = g.finish()?;
                crate::sign::gate::bind(&src.label(), &p, outcome.manifest.as_ref())?;
            }
            (format, outcome)
        }
    };
    let link = outcome.chain.as_ref().is_some_and(|c| c.level > 0);
    let mut tree = ArchiveTree {
        archive: src.label(),
        format: format.family(),
        legacy: outcome.manifest.is_none(),
        backup_type: None,
        created: None,
        host: None,
        incremental_link: link,
        entries: vec![],
    };
    match &outcome.manifest {
        Some(m) => {
            extract::check_manifest(&outcome, m)?;
            tree.backup_type = Some(m.backup_type.clone());
            tree.created = Some(m.created.clone());
            tree.host = Some(m.host.clone());
            tree.entries = m.entries.clone();
            tree.entries.sort_by(|a, b| a.path.cmp(&b.path));
        }
        None => tree.entries = outcome_entries(&outcome),
    }
    Ok(tree)
}

/// The entries of an archive without a manifest, as read.
fn outcome_entries(o: &Outcome) -> Vec<Entry> {
    let mut out: BTreeMap<RelPath, Entry> = BTreeMap::new();
    for d in &o.dirs {
        out.insert(
            d.clone(),
            Entry {
                path: d.clone(),
                kind: EntryKind::Dir,
                size: 0,
                mode: Mode(0o700),
                sha256: None,
                mtime: o.dir_mtimes.get(d).copied(),
                target: None,
            },
        );
    }
    for (p, f) in &o.files {
        out.insert(
            p.clone(),
            Entry {
                path: p.clone(),
                kind: EntryKind::File,
                size: f.size,
                mode: Mode(if f.executable { 0o700 } else { 0o600 }),
                sha256: Some(f.sha256),
                mtime: Some(f.mtime),
                target: None,
            },
        );
    }
    for (p, l) in &o.symlinks {
        out.insert(
            p.clone(),
            Entry {
                path: p.clone(),
                kind: EntryKind::Symlink,
                size: 0,
                mode: Mode(0o777),
                sha256: None,
                mtime: Some(l.mtime),
                target: Some(l.target.clone()),
            },
        );
    }
    out.into_values().collect()
}

/// `ls ARCHIVE [PATH…]`.
pub struct LsOptions {
    pub archive: ArchiveRef,
    pub identities: Identities,
    /// Trusted signers: the archive must be signed by one of them.
    pub trust: crate::sign::Trust,
    /// Show only these paths (and what lies below them), matched like
    /// `restore --include`; empty: everything.
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LsReport {
    #[serde(flatten)]
    pub tree: ArchiveTree,
    pub paths: Vec<String>,
    pub files: usize,
    pub directories: usize,
    pub symlinks: usize,
    /// Bytes of the files listed.
    pub bytes: u64,
}

/// Lists an archive (every entry, or those under `paths`). A PATH that
/// matches nothing is an error (exit 1) after the archive was read.
pub fn ls(opts: &LsOptions) -> Result<LsReport> {
    let sel = Selection::new(&opts.paths)?;
    let mut tree = read_archive_trusted(&opts.archive, &opts.identities, &opts.trust)?;
    if let Some(sel) = &sel {
        tree.entries.retain(|e| sel.selects(e.path.as_bytes()));
        if tree.entries.is_empty() {
            return Err(Error::operational(format!(
                "nothing in {} matches {}",
                tree.archive.display(),
                sel.patterns().join(", ")
            ))
            .hint("paths are relative to the data directory (e.g. credentials/oauth.json); run ls without PATH to see them all"));
        }
    }
    let count = |k: EntryKind| tree.entries.iter().filter(|e| e.kind == k).count();
    Ok(LsReport {
        files: count(EntryKind::File),
        directories: count(EntryKind::Dir),
        symlinks: count(EntryKind::Symlink),
        bytes: tree
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum(),
        paths: sel.map(|s| s.patterns().to_vec()).unwrap_or_default(),
        tree,
    })
}

/// One side of a `diff`.
pub enum Side {
    Archive(ArchiveRef),
    /// A live directory, walked as a backup would walk it.
    Dir(PathBuf),
}

impl Side {
    fn label(&self) -> PathBuf {
        match self {
            Side::Archive(a) => a.label(),
            Side::Dir(d) => d.clone(),
        }
    }
}

/// `diff A B`.
pub struct DiffOptions {
    pub a: Side,
    pub b: Side,
    pub identities: Identities,
    /// Trusted signers: every archive side must be signed by one of them.
    pub trust: crate::sign::Trust,
    /// The selection compared: this type, else the archive sides' (a daily
    /// or pre-deploy one if there is one), else `weekly` (everything). A
    /// live side is walked with it; what it leaves out of an archive side
    /// is not compared either.
    pub btype: Option<BackupType>,
    /// `--exclude` globs for a live side, as given to the backup.
    pub excludes: Vec<String>,
    /// The backup destination, skipped when it lies inside a live side.
    pub dest: Option<PathBuf>,
}

/// A path on both sides that differs, and how: `type`, `content`, `mode`
/// (the owner's execute bit, what a restore keeps), `target` (a symlink's).
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub path: String,
    pub what: Vec<&'static str>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffCounts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub same: usize,
}

/// Files and symlinks only in B (`added`), only in A (`removed`), in both
/// but different (`changed`); directories are not compared.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: PathBuf,
    pub b: PathBuf,
    /// The selection a live side was walked with.
    pub backup_type: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<Changed>,
    pub counts: DiffCounts,
}

/// A side's files and symlinks by path.
type Tree = BTreeMap<RelPath, Entry>;

fn side_tree(side: &Side, o: &DiffOptions, btype: BackupType) -> Result<Tree> {
    let entries = match side {
        Side::Archive(a) => read_archive_trusted(a, &o.identities, &o.trust)?.entries,
        Side::Dir(d) => live_entries(d, btype, &o.excludes, o.dest.clone())?,
    };
    Ok(entries
        .into_iter()
        .filter(|e| e.kind != EntryKind::Dir)
        .map(|e| (e.path.clone(), e))
        .collect())
}

/// The entries a backup of `root` of type `btype` would archive, hashed.
pub fn live_entries(
    root: &Path,
    btype: BackupType,
    excludes: &[String],
    dest: Option<PathBuf>,
) -> Result<Vec<Entry>> {
    use std::os::unix::fs::MetadataExt;
    let dest = dest.map(|d| crate::paths::absolute(&d));
    let sel = crate::source::Selection::new(btype, excludes, dest)?;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mode = |m: &std::fs::Metadata| Mode((m.mode() & 0o7777) as u16);
    crate::source::walk(root, &sel, &mut warnings, &mut |item| {
        use crate::source::Item;
        match item {
            Item::Dir { rel, meta } => out.push(Entry {
                path: RelPath::from(rel),
                kind: EntryKind::Dir,
                size: 0,
                mode: mode(meta),
                sha256: None,
                mtime: Some(meta.mtime()),
                target: None,
            }),
            Item::File { rel, path, meta } => out.push(Entry {
                path: RelPath::from(rel),
                kind: EntryKind::File,
                size: meta.len(),
                mode: mode(meta),
                sha256: Some(Sha256Digest(crate::restore::select::hash_file(path)?)),
                mtime: Some(meta.mtime()),
                target: None,
            }),
            Item::Symlink { rel, target, meta } => out.push(Entry {
                path: RelPath::from(rel),
                kind: EntryKind::Symlink,
                size: 0,
                mode: mode(meta),
                sha256: None,
                mtime: Some(meta.mtime()),
                target: Some(RelPath::from(target)),
            }),
        }
        Ok(())
    })?;
    Ok(out)
}

/// Whether a backup of `btype` with `excludes` leaves `rel` (a file or
/// symlink) out: below a weekly-only top-level directory, or below or at an
/// excluded path (the rules of [`crate::source`]).
fn left_out(btype: BackupType, excludes: &[String]) -> Result<impl Fn(&[u8]) -> bool> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mut b = globset::GlobSetBuilder::new();
    for pat in excludes {
        let g = globset::GlobBuilder::new(pat)
            .literal_separator(false)
            .build()
            .map_err(|e| {
                Error::usage(format!("--exclude {pat:?} is not a valid glob: {e}"))
                    .hint("use shell-style globs such as 'workspace/tmp/**' or '*.bak'")
            })?;
        b.add(g);
    }
    let set = b.build().map_err(|e| {
        Error::usage(format!("the --exclude globs cannot be combined: {e}"))
            .hint("use shell-style globs such as 'workspace/tmp/**' or '*.bak'")
    })?;
    let weekly_only = !matches!(btype, BackupType::Weekly | BackupType::PreRestore);
    Ok(move |rel: &[u8]| {
        let comps: Vec<&[u8]> = rel.split(|&c| c == b'/').collect();
        if weekly_only
            && comps.len() > 1
            && crate::source::WEEKLY_ONLY
                .iter()
                .any(|w| w.as_bytes() == comps[0])
        {
            return true;
        }
        (1..=comps.len()).any(|n| {
            let prefix = comps[..n].join(&b'/');
            set.is_match(Path::new(OsStr::from_bytes(&prefix)))
                || set.is_match(Path::new(OsStr::from_bytes(comps[n - 1])))
        })
    })
}

/// How `a` and `b` (the same path) differ.
fn differences(a: &Entry, b: &Entry) -> Vec<&'static str> {
    if a.kind != b.kind {
        return vec!["type"];
    }
    let mut what = Vec::new();
    match a.kind {
        EntryKind::File => {
            let content = match (a.sha256, b.sha256) {
                (Some(x), Some(y)) => x != y || a.size != b.size,
                _ => a.size != b.size,
            };
            if content {
                what.push("content");
            }
            if (a.mode.0 & 0o100) != (b.mode.0 & 0o100) {
                what.push("mode");
            }
        }
        EntryKind::Symlink => {
            if a.target != b.target {
                what.push("target");
            }
        }
        EntryKind::Dir => {}
    }
    what
}

/// Compares two sides (see [`DiffReport`]); differences are not an error.
pub fn diff(o: &DiffOptions) -> Result<DiffReport> {
    // the archive sides first: their type decides a live side's selection
    let mut trees: [Option<Tree>; 2] = [None, None];
    let mut btype = o.btype;
    for (i, side) in [&o.a, &o.b].into_iter().enumerate() {
        if let Side::Archive(a) = side {
            let t = read_archive_trusted(a, &o.identities, &o.trust)?;
            if o.btype.is_none() {
                // the narrower selection wins: a daily against a weekly
                // compares what a daily holds
                let this = t.backup_type.as_deref().and_then(BackupType::parse);
                let narrow =
                    this.is_some_and(|t| !matches!(t, BackupType::Weekly | BackupType::PreRestore));
                if btype.is_none() || narrow {
                    btype = this.or(btype);
                }
            }
            trees[i] = Some(
                t.entries
                    .into_iter()
                    .filter(|e| e.kind != EntryKind::Dir)
                    .map(|e| (e.path.clone(), e))
                    .collect(),
            );
        }
    }
    let btype = btype.unwrap_or(BackupType::Weekly);
    let [ta, tb] = trees;
    let mut ta = match ta {
        Some(t) => t,
        None => side_tree(&o.a, o, btype)?,
    };
    let mut tb = match tb {
        Some(t) => t,
        None => side_tree(&o.b, o, btype)?,
    };
    // what that selection leaves out is no difference between archives
    // either (a weekly's workspace/ against a daily)
    let left_out = left_out(btype, &o.excludes)?;
    ta.retain(|p, _| !left_out(p.as_bytes()));
    tb.retain(|p, _| !left_out(p.as_bytes()));
    let mut r = DiffReport {
        a: o.a.label(),
        b: o.b.label(),
        backup_type: btype.as_str().to_owned(),
        added: vec![],
        removed: vec![],
        changed: vec![],
        counts: DiffCounts::default(),
    };
    for (p, e) in &ta {
        match tb.get(p) {
            None => r.removed.push(p.to_string()),
            Some(f) => {
                let what = differences(e, f);
                if what.is_empty() {
                    r.counts.same += 1;
                } else {
                    r.changed.push(Changed {
                        path: p.to_string(),
                        what,
                    });
                }
            }
        }
    }
    r.added = tb
        .keys()
        .filter(|p| !ta.contains_key(*p))
        .map(RelPath::to_string)
        .collect();
    r.counts.added = r.added.len();
    r.counts.removed = r.removed.len();
    r.counts.changed = r.changed.len();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn a_live_directory_is_walked_with_the_backup_selection() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        write(&a.join("secureclaw.json"), "{}\n");
        write(&a.join("gone.txt"), "x");
        write(&a.join("workspace/big.bin"), "w");
        write(&b.join("secureclaw.json"), "{\"x\": 1}\n");
        write(&b.join("new.txt"), "n");
        write(&b.join("run.lock"), "");
        write(&b.join("workspace/other.bin"), "w");
        write(&b.join("skip.bak"), "b");
        let r = diff(&DiffOptions {
            a: Side::Dir(a),
            b: Side::Dir(b),
            identities: Identities::load(
                &[],
                crate::crypto::PassphraseSource::from_flag_or_env(None),
            )
            .unwrap(),
            btype: Some(BackupType::Daily),
            excludes: vec!["*.bak".to_owned()],
            dest: None,
            trust: Default::default(),
        })
        .unwrap();
        assert_eq!(r.added, ["new.txt"]);
        assert_eq!(r.removed, ["gone.txt"]);
        assert_eq!(r.changed.len(), 1);
        assert_eq!(r.changed[0].path, "secureclaw.json");
        assert_eq!(r.changed[0].what, ["content"]);
        assert_eq!(r.backup_type, "daily");
    }
}
