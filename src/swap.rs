//! The atomic swap of a restore (README "Restore safety") and its crash recovery.
//!
//! The new tree is complete in a staging directory beside the target (same
//! filesystem). Components of the current tree that the archive does not hold
//! are hard-linked into it (the old tree stays untouched). A journal beside the
//! target records the staging name and the new tree's inode; then one
//! `renameat2(RENAME_EXCHANGE)` swaps the two trees, which is atomic: after a
//! crash at any moment the target is wholly old or wholly new. [`recover`]
//! looks at the journal and the target's inode to finish (remove the old tree)
//! or roll back (remove the staging tree). Staging directories of dead runs
//! are removed as well, before anything else a restore does.
//!
//! The target's parent may be shared (a sticky `/tmp`-like directory), so
//! everything here works relative to a descriptor of the parent and trusts
//! only what is ours (SECURITY.md, "Local attacker model"): a journal is
//! obeyed only when it is a regular file owned by us whose `staging` is a
//! single plain name with our prefix (`.<target>.restore-`), a staging
//! directory is removed only when it is a directory owned by us (never
//! followed), and staging names are random, so another user's
//! `.<target>.restore-*` can neither block a restore nor be taken for ours.
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::fsx::{self, NotOurs};

/// The largest journal read.
const MAX_JOURNAL: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    staging: String,
    new_dev: u64,
    new_ino: u64,
    pid: u32,
    archive: String,
}

fn parent_and_name(target: &Path) -> Result<(PathBuf, String)> {
    let abs = crate::paths::absolute(target);
    let parent = abs.parent().map(Path::to_path_buf).ok_or_else(|| {
        Error::usage(format!("cannot restore onto {}", abs.display()))
            .hint("choose a target directory below / (e.g. ~/.secureclaw)")
    })?;
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::usage(format!("{} has no directory name", abs.display())))?;
    Ok((parent, name))
}

/// The target's parent, opened (it may be shared: everything below is done
/// relative to this descriptor).
fn open_parent(parent: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::NOENT {
            Error::operational(format!(
                "the parent of the target, {}, does not exist",
                parent.display()
            ))
            .hint("create it (mode 0700), then run restore again")
        } else {
            Error::io("opening", parent, e.into())
        }
    })
}

fn journal_name(name: &str) -> String {
    format!(".{name}.secureclaw-restore.json")
}

fn staging_prefix(name: &str) -> String {
    format!(".{name}.restore-")
}

/// Whether `s` is a staging name for target `name`: one plain path component
/// with our prefix, nothing else.
fn valid_staging_name(name: &str, s: &str) -> bool {
    s.strip_prefix(&staging_prefix(name))
        .is_some_and(|rest| !rest.is_empty())
        && !s.contains('/')
        && !s.contains('\0')
        && s != "."
        && s != ".."
}

/// The pid in a staging name `.<target>.restore-<pid>-<random>`.
fn staging_pid(name: &str, s: &str) -> Option<i32> {
    s.strip_prefix(&staging_prefix(name))?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn sync_parent(pfd: &OwnedFd, parent: &Path) -> Result<()> {
    rustix::fs::fsync(pfd).map_err(|e| Error::io("syncing directory", parent, e.into()))
}

/// The journal an interrupted restore leaves beside the target
/// (`<parent>/.<name>.secureclaw-restore.json`, the parent resolved); what
/// `restore` writes and `validate` looks for.
pub fn journal_path(target: &Path) -> Result<PathBuf> {
    let (parent, name) = parent_and_name(target)?;
    Ok(parent.join(journal_name(&name)))
}

/// Creates a fresh 0700 staging directory beside `target`, with a random
/// name (a new one on every collision).
pub fn create_staging(target: &Path) -> Result<PathBuf> {
    let (parent, name) = parent_and_name(target)?;
    let pfd = open_parent(&parent)?;
    let prefix = format!("{}{}-", staging_prefix(&name), std::process::id());
    let (sname, _fd) = fsx::create_unique_dir(&pfd, &prefix)
        .map_err(|e| Error::io("creating a staging directory in", &parent, e))?;
    Ok(parent.join(sname))
}

/// Removes a directory tree without following symlinks (relative to its
/// parent's descriptor).
pub fn remove_tree(p: &Path) -> Result<()> {
    fsx::remove_tree(p).at("removing", p)
}

/// Hard-links (or copies, where linking fails) `src` into `dst` recursively.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    let m = fs::symlink_metadata(src).at("reading", src)?;
    if m.is_dir() {
        fs::DirBuilder::new()
            .mode(m.mode() & 0o7777)
            .create(dst)
            .at("creating", dst)?;
        for e in fs::read_dir(src).at("listing", src)? {
            let e = e.at("listing", src)?;
            link_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else if m.file_type().is_symlink() {
        let t = fs::read_link(src).at("reading link", src)?;
        std::os::unix::fs::symlink(t, dst).at("creating link", dst)
    } else if fs::hard_link(src, dst).is_ok() {
        Ok(())
    } else {
        fs::copy(src, dst).map(|_| ()).at("copying", src)
    }
}

/// Brings the components of the current target that the new tree lacks into
/// `staging` (hard links), so the swap keeps them. `units` are paths relative
/// to the tree (depth 1, or `agents/<id>/<child>`).
pub fn carry_over<P: AsRef<Path>>(target: &Path, staging: &Path, keep: &[P]) -> Result<()> {
    for unit in keep {
        let src = target.join(unit.as_ref());
        let dst = staging.join(unit.as_ref());
        if let Some(parent) = dst.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .at("creating", parent)?;
        }
        link_tree(&src, &dst)?;
    }
    Ok(())
}

/// Swaps `staging` in as `target` atomically, then removes the old tree.
pub fn commit(target: &Path, staging: &Path, archive: &Path, events: &dyn Events) -> Result<()> {
    let (parent, name) = parent_and_name(target)?;
    let pfd = open_parent(&parent)?;
    let sname = staging
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|s| valid_staging_name(&name, s))
        .ok_or_else(|| {
            Error::operational(format!("{} is not a staging directory", staging.display()))
        })?;
    // make the staged data durable with one syncfs, not one fsync per file
    let dirf = fsx::open_dir_at(&pfd, &sname).at("opening", staging)?;
    rustix::fs::syncfs(&dirf).map_err(|e| Error::io("syncing", staging, e.into()))?;
    let meta = fsx::check_owned(&dirf).map_err(|why| {
        Error::refused(format!(
            "the staging directory {}: {why}",
            staging.display()
        ))
    })?;
    drop(dirf);
    let journal = Journal {
        staging: sname.clone(),
        new_dev: meta.st_dev as u64,
        new_ino: meta.st_ino as u64,
        pid: std::process::id(),
        archive: archive.display().to_string(),
    };
    let jname = journal_name(&name);
    let jpath = parent.join(&jname);
    {
        let fd = rustix::fs::openat(
            &pfd,
            jname.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| {
            Error::io("creating", &jpath, e.into()).hint(
                "another restore may have been interrupted: run restore again to finish or roll it back",
            )
        })?;
        let mut f = fs::File::from(fd);
        f.write_all(&serde_json::to_vec(&journal).unwrap_or_default())
            .at("writing", &jpath)?;
        f.sync_all().at("syncing", &jpath)?;
    }
    sync_parent(&pfd, &parent)?;
    let exists = fsx::lstat_at(&pfd, &name).ok().flatten().is_some();
    let flags = if exists {
        rustix::fs::RenameFlags::EXCHANGE
    } else {
        rustix::fs::RenameFlags::NOREPLACE
    };
    let res = rustix::fs::renameat_with(&pfd, sname.as_str(), &pfd, name.as_str(), flags);
    if let Err(e) = res {
        let _ = rustix::fs::unlinkat(&pfd, jname.as_str(), AtFlags::empty());
        return Err(Error::io("swapping the restored tree into place at", target, e.into())
            .hint("the target is unchanged; if it is a mount point, restore into a directory on the same filesystem and move it"));
    }
    sync_parent(&pfd, &parent)?;
    events.detail("swapped the restored tree into place");
    // the old tree is now at the staging name
    fsx::remove_tree_at(&pfd, &sname).at("removing", staging)?;
    rustix::fs::unlinkat(&pfd, jname.as_str(), AtFlags::empty())
        .map_err(|e| Error::io("removing", &jpath, e.into()))?;
    sync_parent(&pfd, &parent)?;
    Ok(())
}

/// What the journal beside a target says.
enum JournalState {
    None,
    /// Ours and well-formed.
    Ours(Journal),
    /// Ours, but torn by a crash or naming something that is not one of our
    /// staging directories: obeyed in nothing, removed.
    Useless(String),
    /// Not ours (another user's, a symlink, not a regular file, too large):
    /// never obeyed, never touched.
    Foreign(String),
}

fn read_journal(pfd: &OwnedFd, name: &str) -> JournalState {
    match fsx::read_owned_file_at(pfd, journal_name(name), MAX_JOURNAL) {
        Err(NotOurs::Missing) => JournalState::None,
        Err(NotOurs::Untrusted(why)) => JournalState::Foreign(why.to_string()),
        Err(NotOurs::TooLarge(n)) => JournalState::Foreign(format!("{n} bytes is not a journal")),
        Ok((text, _)) => match serde_json::from_slice::<Journal>(&text) {
            Err(_) => JournalState::Useless("it is torn (a crash before it was synced)".to_owned()),
            Ok(j) if !valid_staging_name(name, &j.staging) => JournalState::Useless(format!(
                "its staging {:?} is not a staging directory beside the target",
                j.staging
            )),
            Ok(j) => JournalState::Ours(j),
        },
    }
}

/// Removes our staging directory `sname` in `pfd`: only a directory owned by
/// us, never followed. Returns why not.
fn remove_own_staging(pfd: &OwnedFd, sname: &str) -> std::result::Result<bool, String> {
    let fd = match fsx::open_dir_at(pfd, sname) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(_) if fsx::is_symlink_at(pfd, sname) => return Err("it is a symbolic link".to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    fsx::check_owned(&fd).map_err(|why| why.to_string())?;
    drop(fd);
    fsx::remove_tree_at(pfd, sname).map_err(|e| e.to_string())?;
    Ok(true)
}

/// Removes the staging directories beside `target` that dead runs of ours
/// left (plaintext), except `keep` (the staging a pending journal names);
/// other users' entries are reported and left alone.
fn sweep(pfd: &OwnedFd, parent: &Path, name: &str, keep: Option<&str>) -> Vec<String> {
    let mut done = Vec::new();
    let prefix = staging_prefix(name);
    let Ok(names) = fsx::names(pfd) else {
        return done;
    };
    for n in names {
        let Some(n) = n.to_str() else { continue };
        if !n.starts_with(&prefix) || Some(n) == keep {
            continue;
        }
        let Ok(Some(st)) = fsx::lstat_at(pfd, n) else {
            continue;
        };
        if st.st_uid != fsx::euid() {
            done.push(format!(
                "ignored {}: it belongs to uid {}, not to this user",
                parent.join(n).display(),
                st.st_uid
            ));
            continue;
        }
        let pid = staging_pid(name, n).unwrap_or(0);
        if pid == std::process::id() as i32 || crate::process::pid_alive(pid) {
            continue;
        }
        match remove_own_staging(pfd, n) {
            Ok(true) => done.push(format!(
                "removed the staging directory {n} of an interrupted restore"
            )),
            Ok(false) => {}
            Err(why) => done.push(format!("ignored {}: {why}", parent.join(n).display())),
        }
    }
    done
}

/// Removes the staging directories beside `target` left by dead runs (and
/// not named by a pending journal), changing nothing else: what a dry run
/// does. Returns what was done or ignored.
pub fn sweep_dead_staging(target: &Path) -> Result<Vec<String>> {
    let (parent, name) = parent_and_name(target)?;
    let Ok(pfd) = open_parent(&parent) else {
        return Ok(Vec::new());
    };
    let keep = match read_journal(&pfd, &name) {
        JournalState::Ours(j) => Some(j.staging),
        _ => None,
    };
    Ok(sweep(&pfd, &parent, &name, keep.as_deref()))
}

/// Finishes or rolls back an interrupted restore of `target`, and removes
/// staging directories of dead runs. Returns what was done (or ignored), for
/// the operator. A journal that is not ours is refused (exit 5): it is never
/// obeyed, and it is in the way of our own.
pub fn recover(target: &Path) -> Result<Vec<String>> {
    let (parent, name) = parent_and_name(target)?;
    let pfd = match open_parent(&parent) {
        Ok(fd) => fd,
        Err(_) => return Ok(Vec::new()),
    };
    let mut done = Vec::new();
    let jname = journal_name(&name);
    let jpath = parent.join(&jname);
    let mut keep = None;
    let mut foreign = None;
    match read_journal(&pfd, &name) {
        JournalState::None => {}
        JournalState::Foreign(why) => foreign = Some(why),
        JournalState::Useless(why) => {
            rustix::fs::unlinkat(&pfd, jname.as_str(), AtFlags::empty())
                .map_err(|e| Error::io("removing", &jpath, e.into()))?;
            done.push(format!(
                "removed the restore journal {}, obeying nothing in it: {why}",
                jpath.display()
            ));
        }
        JournalState::Ours(j)
            if crate::process::pid_alive(j.pid as i32) && j.pid != std::process::id() =>
        {
            // a live run's (it holds the target's lock, so this is pid reuse
            // or a run on another spelling of the path): leave its staging
            keep = Some(j.staging);
        }
        JournalState::Ours(j) => {
            let swapped = fsx::lstat_at(&pfd, &name)
                .ok()
                .flatten()
                .is_some_and(|m| m.st_dev == j.new_dev && m.st_ino == j.new_ino);
            if let Err(why) = remove_own_staging(&pfd, &j.staging) {
                done.push(format!(
                    "ignored {} (named by the journal): {why}",
                    parent.join(&j.staging).display()
                ));
            }
            done.push(if swapped {
                format!("finished an interrupted restore of {} (from {}): the new tree is in place, the old one was removed", target.display(), j.archive)
            } else {
                format!("rolled back an interrupted restore of {} (from {}): the old tree is in place, the partial new one was removed", target.display(), j.archive)
            });
            rustix::fs::unlinkat(&pfd, jname.as_str(), AtFlags::empty())
                .map_err(|e| Error::io("removing", &jpath, e.into()))?;
            sync_parent(&pfd, &parent)?;
        }
    }
    done.extend(sweep(&pfd, &parent, &name, keep.as_deref()));
    if let Some(why) = foreign {
        return Err(Error::refused(format!(
            "the restore journal {} is not ours ({why}); it was ignored and nothing it names was touched",
            jpath.display()
        ))
        .hint("another user can write to the target's parent: remove that file (as its owner or root), or restore into a directory whose parent only you can write to"));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_single_components_with_our_prefix() {
        assert!(valid_staging_name("data", ".data.restore-12-ab"));
        assert!(!valid_staging_name("data", "/etc"));
        assert!(!valid_staging_name("data", "../x"));
        assert!(!valid_staging_name("data", ".data.restore-1/../../x"));
        assert!(!valid_staging_name("data", ".data.restore-"));
        assert!(!valid_staging_name("data", ".other.restore-1-a"));
        assert_eq!(staging_pid("data", ".data.restore-12-ab"), Some(12));
    }

    #[test]
    fn own_journal_naming_outside_is_removed_not_obeyed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("data");
        fs::create_dir(&target).unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"x").unwrap();
        for staging in [outside.display().to_string(), "../outside".to_owned()] {
            let j = Journal {
                staging,
                new_dev: 0,
                new_ino: 0,
                pid: 999_999_999,
                archive: "a".into(),
            };
            fs::write(
                journal_path(&target).unwrap(),
                serde_json::to_vec(&j).unwrap(),
            )
            .unwrap();
            let done = recover(&target).unwrap();
            assert!(done[0].contains("obeying nothing"), "{done:?}");
            assert!(outside.join("keep").exists());
            assert!(!journal_path(&target).unwrap().exists());
        }
        // a dead run's staging is removed; a symlink with our prefix is not followed
        let dead = d.path().join(".data.restore-999999999-00");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("f"), b"plain").unwrap();
        std::os::unix::fs::symlink(&outside, d.path().join(".data.restore-999999998-00")).unwrap();
        let done = sweep_dead_staging(&target).unwrap();
        assert!(!dead.exists(), "{done:?}");
        assert!(outside.join("keep").exists());
        let s = create_staging(&target).unwrap();
        assert!(s
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!(".data.restore-{}-", std::process::id())));
    }
}
