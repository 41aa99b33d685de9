//! The atomic swap of a restore (DESIGN §6) and its crash recovery.
//!
//! The new tree is complete in a staging directory beside the target (same
//! filesystem). Components of the current tree that the archive does not hold
//! are hard-linked into it (the old tree stays untouched). A journal beside the
//! target records the staging name and the new tree's inode; then one
//! `renameat2(RENAME_EXCHANGE)` swaps the two trees, which is atomic: after a
//! crash at any moment the target is wholly old or wholly new. [`recover`]
//! looks at the journal and the target's inode to finish (remove the old tree)
//! or roll back (remove the staging tree). Staging directories of dead runs
//! without a journal are removed as well.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

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

/// The journal path beside `target`.
pub fn journal_path(target: &Path) -> Result<PathBuf> {
    let (parent, name) = parent_and_name(target)?;
    Ok(parent.join(format!(".{name}.secureclaw-restore.json")))
}

/// Creates a fresh 0700 staging directory beside `target`.
pub fn create_staging(target: &Path) -> Result<PathBuf> {
    let (parent, name) = parent_and_name(target)?;
    if !parent.is_dir() {
        return Err(Error::operational(format!(
            "the parent of the target, {}, does not exist",
            parent.display()
        ))
        .hint("create it (mode 0700), then run restore again"));
    }
    let staging = store_tmp(&parent, &name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .at("creating staging directory", &staging)?;
    Ok(staging)
}

fn store_tmp(parent: &Path, name: &str) -> PathBuf {
    let mut b = [0u8; 6];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    parent.join(format!(
        ".{name}.restore-{}-{}",
        std::process::id(),
        hex::encode(b)
    ))
}

/// Removes a directory tree without following symlinks.
pub fn remove_tree(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).at("removing", p),
        Ok(_) => fs::remove_file(p).at("removing", p),
        Err(_) => Ok(()),
    }
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
/// Returns the path where the old tree was while it was being removed.
pub fn commit(target: &Path, staging: &Path, archive: &Path, ui: &crate::ui::Ui) -> Result<()> {
    let (parent, _) = parent_and_name(target)?;
    // make the staged data durable with one syncfs, not one fsync per file
    let dirf = fs::File::open(staging).at("opening", staging)?;
    rustix::fs::syncfs(&dirf).map_err(|e| Error::io("syncing", staging, e.into()))?;
    let meta = dirf.metadata().at("reading", staging)?;
    drop(dirf);
    let journal = Journal {
        staging: staging
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        new_dev: meta.dev(),
        new_ino: meta.ino(),
        pid: std::process::id(),
        archive: archive.display().to_string(),
    };
    let jpath = journal_path(target)?;
    {
        let mut f = crate::store::create_private(&jpath).map_err(|e| {
            e.hint("another restore may have been interrupted: run restore again to finish or roll it back")
        })?;
        f.write_all(&serde_json::to_vec(&journal).unwrap_or_default())
            .at("writing", &jpath)?;
        f.sync_all().at("syncing", &jpath)?;
    }
    crate::store::fsync_dir(&parent)?;
    let exists = fs::symlink_metadata(target).is_ok();
    let res = if exists {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            staging,
            rustix::fs::CWD,
            target,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(std::io::Error::from)
    } else {
        crate::store::rename_noreplace(staging, target)
    };
    if let Err(e) = res {
        let _ = fs::remove_file(&jpath);
        return Err(Error::io("swapping the restored tree into place at", target, e)
            .hint("the target is unchanged; if it is a mount point, restore into a directory on the same filesystem and move it"));
    }
    crate::store::fsync_dir(&parent)?;
    ui.detail("swapped the restored tree into place");
    // the old tree is now at the staging path
    remove_tree(staging)?;
    fs::remove_file(&jpath).at("removing", &jpath)?;
    crate::store::fsync_dir(&parent)?;
    Ok(())
}

/// Finishes or rolls back an interrupted restore of `target`, and removes
/// staging directories of dead runs. Returns what was done, for the operator.
pub fn recover(target: &Path) -> Result<Vec<String>> {
    let (parent, name) = parent_and_name(target)?;
    let mut done = Vec::new();
    let jpath = journal_path(target)?;
    if let Ok(text) = fs::read(&jpath) {
        let j: Option<Journal> = serde_json::from_slice(&text).ok();
        if let Some(j) =
            j.filter(|j| !crate::process::pid_alive(j.pid as i32) || j.pid == std::process::id())
        {
            let staging = parent.join(&j.staging);
            let swapped = fs::symlink_metadata(target)
                .map(|m| m.dev() == j.new_dev && m.ino() == j.new_ino)
                .unwrap_or(false);
            remove_tree(&staging)?;
            done.push(if swapped {
                format!("finished an interrupted restore of {} (from {}): the new tree is in place, the old one was removed", target.display(), j.archive)
            } else {
                format!("rolled back an interrupted restore of {} (from {}): the old tree is in place, the partial new one was removed", target.display(), j.archive)
            });
            fs::remove_file(&jpath).at("removing", &jpath)?;
            crate::store::fsync_dir(&parent)?;
        } else if serde_json::from_slice::<Journal>(&text).is_err() {
            // a journal torn by a crash before it was fsynced: nothing was swapped yet
            fs::remove_file(&jpath).at("removing", &jpath)?;
        }
    }
    let prefix = format!(".{name}.restore-");
    if let Ok(rd) = fs::read_dir(&parent) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = n.strip_prefix(&prefix) else {
                continue;
            };
            let pid = rest
                .split('-')
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .unwrap_or(0);
            if pid != std::process::id() as i32
                && !crate::process::pid_alive(pid)
                && !jpath.exists()
            {
                remove_tree(&e.path())?;
                done.push(format!(
                    "removed the staging directory {n} of an interrupted restore"
                ));
            }
        }
    }
    Ok(done)
}
