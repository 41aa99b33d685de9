//! Plaintext staging for captures that need a temporary file (SQLite
//! snapshots): one owner-only (0700) directory per run under the runtime
//! directory, `staging-<pid>-<random>`, locked with `flock` for as long as the
//! run lives. Files in it are created exclusively with mode 0600 and
//! securely deleted as soon as they are archived: overwritten with zeros over
//! their whole length, fsynced, truncated, fsynced again and unlinked.
//!
//! The directory is shredded and removed when the run ends, also on error and
//! on SIGINT/SIGTERM (the error path drops the [`Staging`] guard). What a
//! `kill -9` leaves behind is found by [`sweep_stale`] at the start of the next
//! run: a staging directory whose lock nobody holds belongs to a dead run.
//!
//! Overwriting is best effort: on copy-on-write or log-structured filesystems
//! and on SSDs old blocks may survive; a tmpfs `$XDG_RUNTIME_DIR` is the best
//! place for staging.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, IoContext, Result};

/// Prefix of staging directory names.
pub const PREFIX: &str = "staging-";
/// Block size of the zero overwrite.
const BLOCK: usize = 1024 * 1024;
/// A staging directory whose lock is free but whose pid is alive (pid reuse,
/// or a run that has just created it) is only swept once it is this old.
const YOUNG: Duration = Duration::from_secs(60);

/// The run's staging directory, created on first use; shredded on drop.
pub struct Staging {
    base: PathBuf,
    dir: Option<(PathBuf, OwnedFd)>,
    counter: u32,
}

/// A staged file; shredded when dropped unless already shredded.
pub struct StagedFile {
    pub path: PathBuf,
    done: bool,
}

impl StagedFile {
    /// Securely deletes the file now, reporting failure.
    pub fn shred(mut self) -> Result<()> {
        self.done = true;
        shred_file(&self.path).at("securely deleting staged file", &self.path)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = shred_file(&self.path);
        }
    }
}

impl Staging {
    /// Staging under `base` (normally [`crate::paths::runtime_dir`]); nothing
    /// is created until [`Staging::create`] is called.
    pub fn new(base: PathBuf) -> Self {
        Staging {
            base,
            dir: None,
            counter: 0,
        }
    }

    /// The staging directory, if it has been created.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|(p, _)| p.as_path())
    }

    fn ensure_dir(&mut self) -> Result<PathBuf> {
        if let Some((p, _)) = &self.dir {
            return Ok(p.clone());
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.base)
            .at("creating runtime directory", &self.base)?;
        let meta = fs::symlink_metadata(&self.base).at("reading", &self.base)?;
        if !meta.is_dir() || meta.uid() != rustix::process::getuid().as_raw() {
            return Err(Error::refused(format!(
                "{} is not a directory owned by this user; refusing to stage plaintext there",
                self.base.display()
            ))
            .hint("set XDG_RUNTIME_DIR (or TMPDIR) to a private directory, then run again"));
        }
        let mut rnd = [0u8; 6];
        rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty())
            .map_err(|e| Error::operational(format!("reading random bytes: {e}")))?;
        let name = format!(
            "{PREFIX}{}-{}",
            rustix::process::getpid().as_raw_nonzero(),
            hex::encode(rnd)
        );
        let dir = self.base.join(name);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .at("creating staging directory", &dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .at("setting permissions of", &dir)?;
        let fd = open_dir(&dir).at("opening", &dir)?;
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| Error::io("locking", &dir, e.into()))?;
        self.dir = Some((dir.clone(), fd));
        Ok(dir)
    }

    /// Creates a new, empty 0600 file in the staging directory (exclusively).
    /// `suffix` is appended to a counter to form its name.
    pub fn create(&mut self, suffix: &str) -> Result<StagedFile> {
        let dir = self.ensure_dir()?;
        self.counter += 1;
        let path = dir.join(format!("{:04}{suffix}", self.counter));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32,
            )
            .open(&path)
            .at("creating staged file", &path)?;
        Ok(StagedFile { path, done: false })
    }

    /// Shreds everything left in the staging directory and removes it.
    pub fn close(mut self) -> Result<()> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<()> {
        let Some((dir, fd)) = self.dir.take() else {
            return Ok(());
        };
        let res = shred_dir(&dir);
        drop(fd);
        res.at("securely deleting staging directory", &dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Securely deletes one regular file: zeros over its whole length in 1 MiB
/// blocks, fsync, truncate to 0, fsync, unlink. A missing file is not an error.
pub fn shred_file(path: &Path) -> io::Result<()> {
    let file = match OpenOptions::new()
        .write(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            // not a regular file we can open (a symlink?): just unlink it
            return match fs::symlink_metadata(path) {
                Ok(m) if !m.is_dir() => fs::remove_file(path),
                _ => Err(e),
            };
        }
    };
    let meta = file.metadata()?;
    if meta.is_file() {
        overwrite_zeros(&file, meta.len())?;
        file.sync_all()?;
        file.set_len(0)?;
        file.sync_all()?;
    }
    drop(file);
    fs::remove_file(path)
}

fn overwrite_zeros(mut file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; BLOCK];
    let mut left = len;
    while left > 0 {
        let n = left.min(BLOCK as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Shreds every file in `dir` (recursively) and removes the directory.
fn shred_dir(dir: &Path) -> io::Result<()> {
    let mut first_err = None;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let res = if entry.file_type()?.is_dir() {
            shred_dir(&path)
        } else {
            shred_file(&path)
        };
        if let Err(e) = res {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    fs::remove_dir(dir)
}

/// A staging directory found and shredded by [`sweep_stale`].
#[derive(Debug)]
pub struct Swept {
    pub dir: PathBuf,
    /// The pid in its name (the run that left it).
    pub pid: Option<i32>,
    pub result: io::Result<()>,
}

/// Shreds the staging directories under `base` left by runs that died without
/// cleaning up (kill -9, power loss): those whose lock nobody holds and whose
/// pid is dead (or, after pid reuse, that are older than a minute).
pub fn sweep_stale(base: &Path) -> Vec<Swept> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(base) else {
        return out;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        let Ok(fd) = open_dir(&dir) else { continue };
        if rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // a live run holds it
        }
        let young = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_none_or(|age| age < YOUNG);
        if pid.is_some_and(crate::process::pid_alive) && young {
            continue; // possibly a run that has not locked it yet
        }
        let result = shred_dir(&dir);
        drop(fd);
        out.push(Swept { dir, pid, result });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn staged_files_are_private_and_shredded() {
        let base = tempfile::tempdir().unwrap();
        let mut st = Staging::new(base.path().join("rt"));
        assert!(st.dir().is_none(), "created lazily");
        let f = st.create(".sqlite").unwrap();
        let dir = st.dir().unwrap().to_owned();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&f.path).unwrap().mode() & 0o777, 0o600);
        fs::write(&f.path, vec![b'x'; 3 * BLOCK + 17]).unwrap();
        // keep a handle open to observe the overwrite through it
        let mut h = File::open(&f.path).unwrap();
        let path = f.path.clone();
        f.shred().unwrap();
        assert!(!path.exists());
        let mut rest = Vec::new();
        h.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "truncated to zero");
        // a leftover (e.g. a SQLite journal) is shredded with the directory
        let g = st.create(".x").unwrap();
        std::mem::forget(g);
        st.close().unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn overwrite_covers_whole_length() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, vec![0xAAu8; BLOCK + 5]).unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        overwrite_zeros(&f, BLOCK as u64 + 5).unwrap();
        let data = fs::read(&p).unwrap();
        assert_eq!(data.len(), BLOCK + 5);
        assert!(data.iter().all(|&b| b == 0));
    }

    #[test]
    fn drop_shreds_on_error_paths() {
        let base = tempfile::tempdir().unwrap();
        let dir;
        {
            let mut st = Staging::new(base.path().to_owned());
            let f = st.create(".db").unwrap();
            fs::write(&f.path, b"secret").unwrap();
            dir = st.dir().unwrap().to_owned();
            std::mem::forget(f);
        }
        assert!(!dir.exists());
    }

    #[test]
    fn sweep_skips_live_and_removes_dead() {
        let base = tempfile::tempdir().unwrap();
        let mut live = Staging::new(base.path().to_owned());
        let lf = live.create(".db").unwrap();
        // a dead run's leftovers: pid that cannot exist, no lock holder
        let dead = base.path().join(format!("{PREFIX}999999999-abcdef"));
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("0001.sqlite"), b"secret").unwrap();
        let swept = sweep_stale(base.path());
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].dir, dead);
        assert!(swept[0].result.is_ok());
        assert!(!dead.exists());
        assert!(lf.path.exists(), "a live run's staging is left alone");
        drop(lf);
        live.close().unwrap();
    }
}
