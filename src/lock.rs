//! Serialization of concurrent runs: exclusive, non-blocking `flock`s on lock
//! files in the verified private runtime directory ([`crate::paths::runtime_dir`]),
//! keyed by the directory being worked on. Nothing is ever written into the
//! destination or the data directory for locking; the kernel drops the locks
//! when the process dies.
//!
//! A directory is identified two ways, and both locks are taken:
//! - by device + inode once it exists (so a symlinked path, a bind mount or
//!   any other spelling of the same directory meets the same lock);
//! - by its fully resolved path (symlinks resolved; for a directory that does
//!   not exist yet, the canonical path of its parent + its name), so that a
//!   restore, whose atomic swap gives the target a new inode, still excludes
//!   a run that starts on the same place after the swap.
//!
//! Lock files are created `O_CREAT | O_NOFOLLOW`, mode 0600, relative to the
//! runtime directory's descriptor, and used only when `fstat` says they are
//! regular files owned by us.
//!
//! They do not pile up (every restore gives its target a new inode, every new
//! destination a new path): each run, once it holds its own locks, removes the
//! lock files of this tool that nobody holds ([`sweep`]). A file is only ever
//! unlinked by a process holding its flock, and a lock counts only when,
//! after `flock`, the name still leads to the inode locked (else the lock
//! file was swept meanwhile and is opened again), so a run that opened a
//! file just before it was swept never believes it holds a lock nobody else
//! can meet. The lock files of the last run stay until the next run sweeps
//! them; a run killed with `kill -9` leaves its files for the next one too.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Held locks; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _files: Vec<File>,
    /// The first lock file (by resolved path).
    pub path: PathBuf,
}

/// The fully resolved path of `dir`: symlinks resolved; for a directory that
/// does not exist, the canonical parent joined with its name; else as given,
/// made absolute.
pub fn resolved(dir: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(dir) {
        return c;
    }
    crate::paths::absolute(dir)
}

/// The lock file names for `dir`: by resolved path (`<hash>.lock`, the name
/// earlier versions used), and by device + inode (`ino-<hash>.lock`) when it
/// exists.
fn keys(dir: &Path) -> (PathBuf, Vec<String>) {
    let res = resolved(dir);
    let mut keys = vec![format!(
        "{}.lock",
        hex::encode(&Sha256::digest(res.as_os_str().as_encoded_bytes())[..12])
    )];
    if let Ok(m) = std::fs::metadata(dir) {
        let id = format!("{}:{}", m.dev(), m.ino());
        keys.push(format!(
            "ino-{}.lock",
            hex::encode(&Sha256::digest(id.as_bytes())[..12])
        ));
    }
    (res, keys)
}

/// Takes the locks for `dir` (which need not exist yet), failing fast (exit 5)
/// when another run holds one of them.
pub fn lock_dir(dir: &Path, role: &str) -> Result<DirLock> {
    let rt = crate::paths::runtime_dir()?;
    let (res, names) = keys(dir);
    let mut files = Vec::new();
    for name in &names {
        let path = rt.path.join(name);
        files.push(take_lock(rt.fd.as_fd(), name, &path, || {
            Error::refused(format!(
                "another secureclaw-backup run is working on {} ({role})",
                res.display()
            ))
            .hint("wait for it to finish (see `ps`), then run again")
        })?);
    }
    sweep(rt.fd.as_fd(), &names);
    Ok(DirLock {
        _files: files,
        path: rt.path.join(&names[0]),
    })
}

/// Opens (creating it) and flocks lock file `name`; `busy` is the error when
/// another process holds it. Retried when the file was swept between the
/// open and the flock (the name then leads elsewhere or nowhere).
fn take_lock(
    rt: std::os::fd::BorrowedFd<'_>,
    name: &str,
    path: &Path,
    busy: impl Fn() -> Error,
) -> Result<File> {
    for _ in 0..16 {
        let file = open_lock(rt, name, path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(busy()),
            Err(e) => return Err(Error::io("locking", path, e.into())),
        }
        if still_named(rt, name, &file) {
            return Ok(file);
        }
    }
    Err(Error::operational(format!(
        "the lock file {} keeps being replaced while it is taken",
        path.display()
    ))
    .hint("another process keeps removing it; check who writes to the runtime directory"))
}

/// Whether `name` in `rt` is (still) the inode `file` has open.
fn still_named(rt: std::os::fd::BorrowedFd<'_>, name: &str, file: &File) -> bool {
    let (Ok(open), Ok(named)) = (
        crate::fsx::stat(file),
        rustix::fs::statat(rt, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW),
    ) else {
        return false;
    };
    open.st_dev == named.st_dev && open.st_ino == named.st_ino
}

/// Whether `name` is one of this tool's lock file names (`<24 hex>.lock`,
/// `ino-<24 hex>.lock`).
fn is_lock_name(name: &str) -> bool {
    let stem = name.strip_suffix(".lock").unwrap_or("");
    let hex = stem.strip_prefix("ino-").unwrap_or(stem);
    name.ends_with(".lock") && hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes the lock files of this tool in the runtime directory that no
/// process holds (except `keep`, ours): each is opened without following
/// links, must be a regular file of ours, is flocked (a held one is left
/// alone) and unlinked while locked, only when the name still leads to it.
/// Best effort: whatever fails is left for the next run.
fn sweep(rt: std::os::fd::BorrowedFd<'_>, keep: &[String]) {
    use rustix::fs::{FileType, Mode, OFlags};
    // a descriptor of its own (a dup would share the directory offset)
    let Ok(dup) = rustix::fs::openat(
        rt,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(mut dir) = rustix::fs::Dir::new(dup) else {
        return;
    };
    let mut stale = Vec::new();
    while let Some(Ok(entry)) = dir.read() {
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if is_lock_name(name) && !keep.iter().any(|k| k == name) {
            stale.push(name.to_owned());
        }
    }
    for name in stale {
        let Ok(fd) = rustix::fs::openat(
            rt,
            name.as_str(),
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let Ok(st) = crate::fsx::stat(&fd) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || st.st_uid != crate::fsx::euid()
        {
            continue;
        }
        let file = File::from(fd);
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        if still_named(rt, &name, &file) {
            let _ = rustix::fs::unlinkat(rt, name.as_str(), rustix::fs::AtFlags::empty());
        }
    }
}

fn open_lock(rt: std::os::fd::BorrowedFd<'_>, name: &str, path: &Path) -> Result<File> {
    use rustix::fs::{FileType, Mode, OFlags};
    let fd = rustix::fs::openat(
        rt,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::io("opening lock file", path, e.into()))?;
    let st = crate::fsx::stat(&fd).map_err(|e| Error::io("reading", path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || st.st_uid != crate::fsx::euid()
    {
        return Err(Error::refused(format!(
            "the lock file {} is not a regular file owned by this user (uid {})",
            path.display(),
            st.st_uid
        ))
        .hint("remove it (it is not ours), then run again"));
    }
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_directory_through_a_symlink_has_the_same_keys() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (_, a) = keys(&real);
        let (_, b) = keys(&link);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        // a directory that does not exist yet: by path only, parent resolved
        let (r, c) = keys(&link.join("new"));
        assert_eq!(r, real.canonicalize().unwrap().join("new"));
        assert_eq!(c, keys(&real.join("new")).1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn lock_names_are_recognised_and_nothing_else() {
        let (_, k) = keys(Path::new("/"));
        assert!(k.iter().all(|n| is_lock_name(n)), "{k:?}");
        for other in [
            "gateway.0011.lock",
            "abc.lock",
            "ino-.lock",
            "0123456789abcdef01234567.lock.tmp",
            "0123456789abcdef0123456z.lock",
            "notes.txt",
        ] {
            assert!(!is_lock_name(other), "{other}");
        }
    }

    /// A held lock file survives another run's sweep; a free one does not; a
    /// file swept between open and flock is opened again.
    #[test]
    fn sweep_removes_only_free_lock_files() {
        use std::os::fd::AsFd;
        let d = tempfile::tempdir().unwrap();
        let rt = rustix::fs::open(
            d.path(),
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let held = "ino-0123456789abcdef01234567.lock";
        let free = "89abcdef0123456789abcdef.lock";
        let busy = || Error::refused("busy");
        let h = take_lock(rt.as_fd(), held, &d.path().join(held), busy).unwrap();
        drop(take_lock(rt.as_fd(), free, &d.path().join(free), busy).unwrap());
        std::fs::write(d.path().join("other.txt"), b"x").unwrap();
        sweep(rt.as_fd(), &[]);
        assert!(d.path().join(held).exists());
        assert!(!d.path().join(free).exists());
        assert!(d.path().join("other.txt").exists());
        // the held one still excludes
        let e = take_lock(rt.as_fd(), held, &d.path().join(held), busy).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Refused);
        // a lock file whose name was swept away is not a lock
        let f = open_lock(rt.as_fd(), free, &d.path().join(free)).unwrap();
        std::fs::remove_file(d.path().join(free)).unwrap();
        assert!(!still_named(rt.as_fd(), free, &f));
        drop(h);
        sweep(rt.as_fd(), &[]);
        assert!(!d.path().join(held).exists());
    }
}
