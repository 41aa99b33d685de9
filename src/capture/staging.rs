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
//! The base is used only when it is private (ours, 0700, not a symlink; see
//! [`crate::paths::runtime_dir`]); the staging directory gets a random name
//! (a new one on every collision), and every creation, walk and shred is
//! relative to directory descriptors opened with `O_NOFOLLOW` ([`crate::fsx`]),
//! so nothing a planted or swapped-in symlink points at is ever touched.
//!
//! Overwriting is best effort: on copy-on-write or log-structured filesystems
//! and on SSDs old blocks may survive; a tmpfs `$XDG_RUNTIME_DIR` is the best
//! place for staging.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::{Error, IoContext, Result};
use crate::fsx;

/// Prefix of staging directory names.
pub const PREFIX: &str = "staging-";
/// A staging directory whose lock is free but whose pid is alive (pid reuse,
/// or a run that has just created it) is only swept once it is this old.
const YOUNG: Duration = Duration::from_secs(60);

/// The run's staging directory, created on first use; shredded on drop.
pub struct Staging {
    base: PathBuf,
    dir: Option<Dir>,
    counter: u32,
}

/// The created staging directory: its path (for SQLite, which opens by
/// path), its locked descriptor, and the verified base's descriptor it is
/// removed from.
struct Dir {
    path: PathBuf,
    name: String,
    fd: OwnedFd,
    base: OwnedFd,
}

/// A staged file; shredded when dropped unless already shredded.
pub struct StagedFile {
    pub path: PathBuf,
    dir: OwnedFd,
    name: OsString,
    done: bool,
}

impl StagedFile {
    /// Securely deletes the file now, reporting failure.
    pub fn shred(mut self) -> Result<()> {
        self.done = true;
        fsx::shred_file_at(&self.dir, &self.name).at("securely deleting staged file", &self.path)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fsx::shred_file_at(&self.dir, &self.name);
        }
    }
}

/// Opens (creating it 0700 if missing) and verifies the staging base: a
/// directory owned by us, mode 0700, not a symlink.
fn open_base(base: &Path) -> Result<OwnedFd> {
    fsx::private_dir_all(base).map_err(|why| {
        Error::refused(format!(
            "{} is not a private directory of this user ({why}); refusing to stage plaintext there",
            base.display()
        ))
        .hint("set XDG_RUNTIME_DIR (or TMPDIR) to a private directory, then run again")
    })
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
        self.dir.as_ref().map(|d| d.path.as_path())
    }

    fn ensure_dir(&mut self) -> Result<&Dir> {
        if self.dir.is_none() {
            let base = open_base(&self.base)?;
            let prefix = format!("{PREFIX}{}-", rustix::process::getpid().as_raw_nonzero());
            let (name, fd) = fsx::create_unique_dir(&base, &prefix)
                .map_err(|e| Error::io("creating a staging directory in", &self.base, e))?;
            let path = self.base.join(&name);
            rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .map_err(|e| Error::io("locking", &path, e.into()))?;
            self.dir = Some(Dir {
                path,
                name,
                fd,
                base,
            });
        }
        self.dir
            .as_ref()
            .ok_or_else(|| Error::operational("no staging directory"))
    }

    /// Creates a new, empty 0600 file in the staging directory (exclusively).
    /// `suffix` is appended to a counter to form its name.
    pub fn create(&mut self, suffix: &str) -> Result<StagedFile> {
        self.counter += 1;
        let name = format!("{:04}{suffix}", self.counter);
        let dir = self.ensure_dir()?;
        let path = dir.path.join(&name);
        rustix::fs::openat(
            &dir.fd,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io("creating staged file", &path, e.into()))?;
        let dirfd = dir.fd.try_clone().at("opening", &dir.path)?;
        Ok(StagedFile {
            path,
            dir: dirfd,
            name: name.into(),
            done: false,
        })
    }

    /// Shreds everything left in the staging directory and removes it.
    pub fn close(mut self) -> Result<()> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<()> {
        let Some(d) = self.dir.take() else {
            return Ok(());
        };
        let res = fsx::clear_dir(&d.fd, true).and_then(|()| {
            rustix::fs::unlinkat(&d.base, d.name.as_str(), AtFlags::REMOVEDIR)
                .map_err(io::Error::from)
        });
        drop(d.fd);
        res.at("securely deleting staging directory", &d.path)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

/// Securely deletes one regular file (see [`fsx::shred_file_at`]), relative
/// to its parent directory. A missing file is not an error.
pub fn shred_file(path: &Path) -> io::Result<()> {
    let Some((parent, name)) = fsx::split(path) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    let pfd = match rustix::fs::open(
        &parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    fsx::shred_file_at(&pfd, &name)
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
///
/// `base` is used only if it is private (ours, 0700, not a symlink), and the
/// walk is relative to descriptors opened with `O_NOFOLLOW`: nothing a
/// symlink points at is ever shredded.
pub fn sweep_stale(base: &Path) -> Vec<Swept> {
    let mut out = Vec::new();
    let Ok(bfd) = fsx::open_dir(base) else {
        return out;
    };
    if fsx::check_private(&bfd).is_err() {
        return out;
    }
    let Ok(names) = fsx::names(&bfd) else {
        return out;
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        // a directory, not followed, owned by us
        let Ok(fd) = fsx::open_dir_at(&bfd, name) else {
            continue;
        };
        let Ok(st) = fsx::check_owned(&fd) else {
            continue;
        };
        if rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // a live run holds it
        }
        let mtime = UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
        let young = SystemTime::now()
            .duration_since(mtime)
            .map_or(true, |age| age < YOUNG);
        if pid.is_some_and(crate::process::pid_alive) && young {
            continue; // possibly a run that has not locked it yet
        }
        let result = fsx::clear_dir(&fd, true).and_then(|()| {
            rustix::fs::unlinkat(&bfd, name, AtFlags::REMOVEDIR).map_err(io::Error::from)
        });
        drop(fd);
        out.push(Swept {
            dir: base.join(name),
            pid,
            result,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx::{overwrite_zeros, BLOCK};
    use std::fs::{self, File, OpenOptions};
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

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

    #[test]
    fn sweep_never_follows_a_planted_symlink() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        fs::create_dir_all(data.join("credentials")).unwrap();
        fs::write(data.join("credentials/oauth.json"), b"token").unwrap();
        fs::write(data.join("secureclaw.json"), b"{}").unwrap();
        let base = d.path().join("rt");
        fs::create_dir(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).unwrap();
        let dead = base.join(format!("{PREFIX}999999999-abcdef"));
        fs::create_dir(&dead).unwrap();
        std::os::unix::fs::symlink(&data, dead.join("d")).unwrap();
        std::os::unix::fs::symlink(&data, base.join(format!("{PREFIX}999999998-ab"))).unwrap();
        let swept = sweep_stale(&base);
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert!(!dead.exists());
        assert_eq!(
            fs::read(data.join("credentials/oauth.json")).unwrap(),
            b"token"
        );
        assert_eq!(fs::read(data.join("secureclaw.json")).unwrap(), b"{}");
        // a base that is a symlink is not walked at all
        let dead2 = base.join(format!("{PREFIX}999999997-abcdef"));
        fs::create_dir(&dead2).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&base, &link).unwrap();
        assert!(sweep_stale(&link).is_empty());
        assert!(dead2.exists());
        // nor one that others can write to
        fs::set_permissions(&base, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(sweep_stale(&base).is_empty());
        assert!(dead2.exists());
    }
}
