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
        let file = open_lock(rt.fd.as_fd(), name, &path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => files.push(file),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Error::refused(format!(
                    "another secureclaw-backup run is working on {} ({role})",
                    res.display()
                ))
                .hint("wait for it to finish (see `ps`), then run again"))
            }
            Err(e) => return Err(Error::io("locking", &path, e.into())),
        }
    }
    Ok(DirLock {
        _files: files,
        path: rt.path.join(&names[0]),
    })
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
}
