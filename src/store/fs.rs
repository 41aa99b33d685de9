//! The filesystem primitives a local store is built on: owner-only exclusive
//! file creation, private directories, atomic replace, no-replace renames,
//! directory fsync, writeback pacing, pid-tagged temporaries and `.sha256`
//! sidecar files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// Creates `dir` (and parents) with mode 0700 if missing; tightens an existing
/// directory that others can read.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            if m.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .at("restricting permissions of", dir)?;
            }
            Ok(())
        }
        Ok(_) => Err(Error::operational(format!(
            "{} exists and is not a directory",
            dir.display()
        ))
        .hint("choose another --dest, or move that file away")),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .at("creating directory", dir),
    }
}

/// Creates a new file exclusively, owner-only from the first byte.
pub fn create_private(path: &Path) -> Result<File> {
    open_private_new(path).at("creating", path)
}

/// [`create_private`] with the bare I/O error, for a caller that handles
/// `AlreadyExists` itself: exclusive, mode 0600, a symlink not followed.
pub fn open_private_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Creates `dir` (and its parents) with mode 0700 when it is not a directory
/// yet; an existing directory is left as it is (unlike
/// [`ensure_private_dir`], which tightens it).
pub fn mkdir_private(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .at("creating directory", dir)
}

/// Writes `data` to `path`, replacing it atomically: a temporary file in the
/// same directory, fsync, `mode`, then a rename over `path` (a reader sees
/// the old file or the new one, never a part).
pub fn write_replace(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".secureclaw-backup.")
        .tempfile_in(dir)
        .at("creating a temporary file in", dir)?;
    tmp.write_all(data).at("writing", tmp.path())?;
    tmp.as_file().sync_all().at("syncing", tmp.path())?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
        .at("setting permissions of", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| Error::io("renaming into place", path, e.error))?;
    Ok(())
}

/// Wraps the archive file so that its own I/O errors are reported as
/// operational errors (exit 1) on its path, distinct from the integrity
/// errors that the decryption and decompression layers raise.
pub struct SourceFile<R> {
    inner: R,
    path: std::path::PathBuf,
}

impl<R: Read> SourceFile<R> {
    pub fn new(inner: R, path: &Path) -> Self {
        SourceFile {
            inner,
            path: path.to_owned(),
        }
    }
}

impl<R: Read> Read for SourceFile<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            crate::error::into_io(crate::error::Error::io("reading archive", &self.path, e))
        })
    }
}

/// Bytes written to a file between two writeback kicks.
const WRITEBACK_WINDOW: u64 = 8 << 20;

/// Starts writing back what was written to a file in windows of 8 MiB, so that
/// the disk works while we compress or decrypt and the final fsync/syncfs only
/// waits for the tail. (Without it, nothing reaches the disk until the fsync:
/// the kernel starts background writeback only at 10 % of RAM dirty.) Uses
/// `POSIX_FADV_DONTNEED`, which on Linux starts asynchronous writeback of the
/// range's dirty pages and drops only its clean ones; best effort — an error
/// just leaves the work to the fsync. Durability still comes from the fsync.
#[derive(Debug, Default)]
pub struct Writeback {
    kicked: u64,
    written: u64,
}

impl Writeback {
    /// Records `n` more bytes appended to `file`; kicks a full window.
    pub fn advance(&mut self, file: &File, n: u64) {
        self.written += n;
        if self.written - self.kicked >= WRITEBACK_WINDOW {
            self.kick(file);
        }
    }

    /// Starts writeback of everything recorded since the last kick.
    pub fn kick(&mut self, file: &File) {
        if let Some(len) = std::num::NonZeroU64::new(self.written - self.kicked) {
            let _ = rustix::fs::fadvise(file, self.kicked, Some(len), rustix::fs::Advice::DontNeed);
        }
        self.kicked = self.written;
    }
}

/// Data (each file counted as at least one 4 KiB block) written between two
/// background syncs.
const BACKGROUND_SYNC_EVERY: u64 = 64 << 20;

/// Runs `syncfs` on a filesystem in a background thread every 64 MiB written
/// (many small files count by their blocks), so that the one syncfs before
/// the swap finds little left: with 200 000 small files it was 2.4 s of the
/// restore, after the extraction, with nothing else to do. Best effort:
/// errors are left to the final syncfs, which is what makes the data durable.
pub struct BackgroundSync {
    nudge: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pending: u64,
}

impl BackgroundSync {
    /// Syncs the filesystem holding `dir` (disabled if it cannot be opened).
    pub fn new(dir: &Path) -> Self {
        let Ok(f) = File::open(dir) else {
            return BackgroundSync {
                nudge: None,
                thread: None,
                pending: 0,
            };
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            for () in rx {
                let _ = rustix::fs::syncfs(&f);
            }
        });
        BackgroundSync {
            nudge: Some(tx),
            thread: Some(thread),
            pending: 0,
        }
    }

    /// Records a file of `bytes` written; nudges the thread when due (never
    /// waits for it: a nudge while it is busy is merged into the next).
    pub fn wrote(&mut self, bytes: u64) {
        self.pending += bytes.max(4096);
        if self.pending >= BACKGROUND_SYNC_EVERY {
            self.pending = 0;
            if let Some(tx) = &self.nudge {
                let _ = tx.try_send(());
            }
        }
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        self.nudge.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .at("syncing directory", dir)
}

/// Renames `from` to `to` without ever replacing an existing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(io::Error::from)
}

/// A temporary file name in `dir` that carries our pid, so a later run can
/// recognise and remove what a killed run left.
pub fn temp_name(dir: &Path, purpose: &str) -> PathBuf {
    let rand: u64 = {
        let mut b = [0u8; 8];
        let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
        u64::from_le_bytes(b)
    };
    dir.join(format!(
        ".secureclaw-backup.{purpose}.{}.{rand:016x}.tmp",
        std::process::id()
    ))
}

/// Removes temp files in `dir` left by dead processes of this tool. Returns their names.
pub fn remove_stale_temps(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".secureclaw-backup.") else {
            continue;
        };
        if !name.ends_with(".tmp") {
            continue;
        }
        let parts: Vec<&str> = rest.split('.').collect();
        let Some(pid) = parts.get(1).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if crate::process::pid_alive(pid) {
            continue;
        }
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false)
            && fs::remove_file(entry.path()).is_ok()
        {
            removed.push(name);
        }
    }
    removed
}

/// The sidecar path of an archive: `<archive>.sha256`.
pub fn sidecar_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Writes the `sha256sum`-format sidecar atomically (temp + rename + fsync).
pub fn write_sidecar(archive: &Path, digest_hex: &str) -> Result<PathBuf> {
    let dir = archive.parent().unwrap_or(Path::new("."));
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let side = sidecar_path(archive);
    let tmp = temp_name(dir, "sidecar");
    let res = (|| {
        let mut f = create_private(&tmp)?;
        writeln!(f, "{digest_hex}  {name}").at("writing", &tmp)?;
        f.sync_all().at("syncing", &tmp)?;
        fs::rename(&tmp, &side).at("renaming sidecar into place", &side)?;
        fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map(|_| side)
}

/// The state of an archive's sidecar.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SidecarStatus {
    Ok,
    Missing,
    Mismatch { expected: String, actual: String },
    Malformed,
}

/// Reads the expected digest from the sidecar of `archive`, if any.
pub fn read_sidecar(archive: &Path) -> Result<Option<String>> {
    let side = sidecar_path(archive);
    match fs::read(&side) {
        Ok(b) => Ok(Some(parse_sidecar(&b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading sidecar", &side, e)),
    }
}

/// The digest of a sidecar's text (`<64 hex digits>  <name>`), or `""` when
/// malformed.
pub fn parse_sidecar(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let first = text.split_whitespace().next().unwrap_or("");
    if first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
        first.to_ascii_lowercase()
    } else {
        String::new()
    }
}

/// The state of a sidecar that names `expected` (`None`: absent, `""`:
/// malformed); `actual` gives the digest of the archive's bytes and is
/// called only when there is a digest to compare with.
pub fn judge_sidecar(
    expected: Option<String>,
    actual: impl FnOnce() -> Result<String>,
) -> Result<SidecarStatus> {
    Ok(match expected {
        None => SidecarStatus::Missing,
        Some(e) if e.is_empty() => SidecarStatus::Malformed,
        Some(expected) => {
            let actual = actual()?;
            if actual == expected {
                SidecarStatus::Ok
            } else {
                SidecarStatus::Mismatch { expected, actual }
            }
        }
    })
}

/// SHA-256 of a whole file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).at("opening", path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = f.read(&mut buf).at("reading", path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks an archive against its sidecar.
pub fn check_sidecar(archive: &Path) -> Result<SidecarStatus> {
    judge_sidecar(read_sidecar(archive)?, || sha256_file(archive))
}

/// `--dest` if given, else [`default_dest`].
pub fn dest_or_default(dest: Option<&Path>) -> Result<PathBuf> {
    match dest {
        Some(d) => Ok(d.to_owned()),
        None => default_dest(),
    }
}

/// The default destination: `$BACKUP_ROOT`, else `~/backups/secureclaw`.
pub fn default_dest() -> Result<PathBuf> {
    if let Some(r) = std::env::var_os("BACKUP_ROOT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(r));
    }
    Ok(crate::paths::home()?.join("backups/secureclaw"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replace_sets_mode_and_replaces() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_replace(&p, b"one", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        write_replace(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn mkdir_private_leaves_an_existing_dir_alone() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        mkdir_private(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        mkdir_private(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }
}
