//! Carrying over: what the current tree has and the archive lacks (kept
//! units, and entries the backup saw but did not archive) is hard-linked into
//! the staged tree before the swap, relative to directory descriptors and
//! never through a symbolic link of the staged tree.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::archive::extract::Outcome;
use crate::error::{Error, IoContext, Result};

/// Whether every proper prefix of `rel` below `root` is a real directory
/// (no symlink on the way).
fn real_parents(root: &Path, rel: &[u8]) -> bool {
    let mut p = root.to_owned();
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        p.push(std::ffi::OsStr::from_bytes(c));
        if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    true
}

/// Entries the backup saw but did not archive (manifest warnings such as a
/// socket, an absolute symlink, a lock file, the destination inside the
/// source, or a non-UTF-8 name in an older archive) and that the current tree
/// still has: linked into the staged tree, so that replacing their component
/// does not delete them. Only where the archive has their parent directory
/// (top-level ones are kept components already) and no entry of their own,
/// and only through real directories on both sides (without a staging tree,
/// in a dry run: through the archive's directories). Returns their shown
/// names and their paths.
pub(super) fn select_skipped(
    target: &Path,
    staging: Option<&Path>,
    m: &crate::manifest::Manifest,
    outcome: &Outcome,
) -> (Vec<String>, Vec<PathBuf>) {
    let mut rels: BTreeSet<Vec<u8>> = BTreeSet::new();
    for w in m.warnings.iter().filter(|w| w.is_skip()) {
        let rel = w.path.as_bytes();
        if w.kind == "non-utf8-name" {
            // older versions recorded such a name lossily: find it again
            let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
                Some(i) => (&rel[..i], &rel[i + 1..]),
                None => (&b""[..], rel),
            };
            let dir = target.join(std::ffi::OsStr::from_bytes(parent));
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let n = e.file_name();
                if std::str::from_utf8(n.as_bytes()).is_err()
                    && n.to_string_lossy().as_bytes() == name
                {
                    let mut full = parent.to_vec();
                    if !full.is_empty() {
                        full.push(b'/');
                    }
                    full.extend_from_slice(n.as_bytes());
                    rels.insert(full);
                }
            }
        } else {
            rels.insert(rel.to_vec());
        }
    }
    let mut kept = Vec::new();
    let mut carry: Vec<PathBuf> = Vec::new();
    for rel in rels {
        let Some(i) = rel.iter().rposition(|&b| b == b'/') else {
            continue; // a top-level entry is a component of its own
        };
        let in_archive = outcome.files.contains_key(rel.as_slice())
            || outcome.dirs.contains(rel.as_slice())
            || outcome.symlinks.contains_key(rel.as_slice());
        if in_archive || !outcome.dirs.contains(&rel[..i]) {
            continue;
        }
        let p = Path::new(std::ffi::OsStr::from_bytes(&rel)).to_owned();
        let staged_ok = match staging {
            Some(s) => real_parents(s, &rel) && fs::symlink_metadata(s.join(&p)).is_err(),
            None => archived_parents(outcome, &rel),
        };
        if !real_parents(target, &rel)
            || !staged_ok
            || fs::symlink_metadata(target.join(&p)).is_err()
        {
            continue;
        }
        kept.push(crate::manifest::show(&rel));
        carry.push(p);
    }
    (kept, carry)
}

/// Whether every proper prefix of `rel` is a directory of the archive (and
/// none a symbolic link).
fn archived_parents(outcome: &Outcome, rel: &[u8]) -> bool {
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    (1..comps.len()).all(|i| {
        let prefix = comps[..i].join(&b'/');
        outcome.dirs.contains(prefix.as_slice())
            && !outcome.symlinks.contains_key(prefix.as_slice())
    })
}

/// Whether no proper prefix of `rel` below `root` exists as anything but a
/// directory (missing ones are created).
fn no_link_on_the_way(root: &Path, rel: &[u8]) -> bool {
    let mut p = root.to_owned();
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        p.push(std::ffi::OsStr::from_bytes(c));
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            _ => return false,
        }
    }
    true
}

/// Brings `paths` of the current tree into the staged one by hard links
/// ([`link_tree_at`]). Never through a symlink of the staged tree (an archive
/// that holds a link where the current tree has a directory): such a path is
/// left out, and the returned warnings say so.
pub(super) fn link_or_carry<'a>(
    target: &Path,
    staging: &Path,
    paths: impl Iterator<Item = &'a Path>,
) -> Result<Vec<String>> {
    use rustix::fs::{Mode, OFlags};
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("opening", p, e.into()))
    };
    let (tfd, sfd) = (open(target)?, open(staging)?);
    let mut warnings = Vec::new();
    for p in paths {
        let rel = p.as_os_str().as_bytes();
        if !no_link_on_the_way(staging, rel) {
            warnings.push(format!(
                "not kept: {} (the archive has a symbolic link on its way)",
                crate::manifest::show(rel)
            ));
            continue;
        }
        // missing parents (an agent the archive lacks): 0700
        let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        for i in 1..comps.len() {
            let parent = comps[..i].join(&b'/');
            match rustix::fs::mkdirat(&sfd, parent.as_slice(), Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(Error::io("creating", &staging.join(p), e.into())),
            }
        }
        link_tree_at(target, &tfd, staging, &sfd, rel)?;
    }
    Ok(warnings)
}

/// Hard-links the tree at `rel` of `target` into `staging` at the same
/// place, by paths relative to the two directories' descriptors (the staging
/// directory's longer name never pushes a path past PATH_MAX): each
/// non-directory is linked as the very inode (a symlink is linked, never
/// followed: its target and mtime stay), a regular file that cannot be
/// linked is copied; directories keep their mode and mtime.
fn link_tree_at(
    target: &Path,
    tfd: &std::os::fd::OwnedFd,
    staging: &Path,
    sfd: &std::os::fd::OwnedFd,
    rel: &[u8],
) -> Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
    use std::os::unix::fs::MetadataExt;
    let src = target.join(std::ffi::OsStr::from_bytes(rel));
    let dst = || staging.join(std::ffi::OsStr::from_bytes(rel));
    let m = fs::symlink_metadata(&src).at("reading", &src)?;
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    };
    if m.is_dir() {
        let mode = Mode::from_raw_mode(m.mode() & 0o7777);
        rustix::fs::mkdirat(sfd, rel, Mode::from_raw_mode(0o700))
            .map_err(|e| Error::io("creating", &dst(), e.into()))?;
        for e in fs::read_dir(&src).at("listing", &src)? {
            let e = e.at("listing", &src)?;
            let child = [rel, e.file_name().as_bytes()].join(&b'/');
            link_tree_at(target, tfd, staging, sfd, &child)?;
        }
        rustix::fs::chmodat(sfd, rel, mode, AtFlags::empty())
            .and_then(|()| rustix::fs::utimensat(sfd, rel, &times, AtFlags::SYMLINK_NOFOLLOW))
            .map_err(|e| Error::io("setting mode and mtime of", &dst(), e.into()))?;
        return Ok(());
    }
    if rustix::fs::linkat(tfd, rel, sfd, rel, AtFlags::empty()).is_ok() {
        return Ok(());
    }
    if m.is_file() {
        let mut from = fs::File::from(
            rustix::fs::openat(
                tfd,
                rel,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("opening", &src, e.into()))?,
        );
        let mut to = fs::File::from(
            rustix::fs::openat(
                sfd,
                rel,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(m.mode() & 0o7777),
            )
            .map_err(|e| Error::io("creating", &dst(), e.into()))?,
        );
        std::io::copy(&mut from, &mut to).at("copying", &src)?;
        rustix::fs::futimens(&to, &times)
            .map_err(|e| Error::io("setting mtime of", &dst(), e.into()))?;
        return Ok(());
    }
    if m.file_type().is_symlink() {
        let t = rustix::fs::readlinkat(tfd, rel, Vec::new())
            .map_err(|e| Error::io("reading link", &src, e.into()))?;
        rustix::fs::symlinkat(t.as_c_str(), sfd, rel)
            .and_then(|()| rustix::fs::utimensat(sfd, rel, &times, AtFlags::SYMLINK_NOFOLLOW))
            .map_err(|e| Error::io("creating link", &dst(), e.into()))?;
        return Ok(());
    }
    Err(Error::operational(format!(
        "cannot keep {}: it could not be hard-linked into the restored tree",
        src.display()
    ))
    .hint("move it out of the target, restore, and move it back"))
}
