//! Serialization of concurrent runs: an exclusive, non-blocking `flock` on a lock
//! file under the runtime directory, keyed by the canonical path of the directory
//! being worked on. Nothing is ever written into the destination or the data
//! directory for locking; the kernel drops the lock when the process dies.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock for `dir` (which need not exist yet), failing fast (exit 5)
/// when another run holds it.
pub fn lock_dir(dir: &Path, role: &str) -> Result<DirLock> {
    let abs = crate::paths::absolute(dir);
    let key = hex::encode(&Sha256::digest(abs.as_os_str().as_encoded_bytes())[..12]);
    let rt = crate::paths::runtime_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&rt)
        .at("creating lock directory", &rt)?;
    let path = rt.join(format!("{key}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .at("opening lock file", &path)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DirLock { _file: file, path }),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::refused(format!(
            "another secureclaw-backup run is working on {} ({role})",
            abs.display()
        ))
        .hint("wait for it to finish (see `ps`), then run again")),
        Err(e) => Err(Error::io("locking", &path, e.into())),
    }
}
