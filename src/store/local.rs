//! The local destination as a [`Store`]: the directory `backup` writes into.
//! What only it has: the old scripts' plaintext `<type>_<time>/` directories
//! (listed, sized and removed recursively, never followed through a link),
//! symbolic links listed as entries that are never archives, a put that
//! never replaces an existing archive (fsync, then a no-replace rename, then
//! a directory fsync), removals made durable by a directory fsync, free space,
//! and the destination lock key. The file helpers here are shared with the
//! NAS directory ([`super::DirStore`]).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Kind, Object, Store, Upload};
use crate::error::{Error, IoContext, Result};
use crate::events::Events;

/// The local backup destination.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    /// The destination directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Store for LocalStore {
    fn url(&self) -> String {
        self.root.display().to_string()
    }

    fn label(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    fn list(&self) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("listing", &self.root, e)),
        };
        for entry in rd {
            let entry = entry.at("listing", &self.root)?;
            let ft = entry.file_type().at("reading", &entry.path())?;
            // a name that is not UTF-8 is never one of ours
            let (name, utf8) = match entry.file_name().to_str() {
                Some(n) => (n.to_owned(), true),
                None => (entry.file_name().to_string_lossy().into_owned(), false),
            };
            let kind = match () {
                _ if !utf8 || ft.is_symlink() => Kind::Other,
                _ if ft.is_dir() => Kind::Dir,
                _ => Kind::File,
            };
            let size = match kind {
                Kind::File => entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => 0,
            };
            out.push(Object { name, size, kind });
        }
        Ok(out)
    }

    /// A legacy directory's size is that of the regular files under it.
    fn size(&self, name: &str) -> Result<Option<u64>> {
        let p = self.root.join(name);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => Ok(Some(dir_size(&p))),
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", &p, e)),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        open_file(&self.root.join(name), "opening archive")
    }

    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        read_range(&self.root.join(name), start, len)
    }

    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        read_small(&self.root.join(name))
    }

    fn put(&self, name: &str, src: Upload<'_>, events: &dyn Events) -> Result<String> {
        put_file(&self.root, name, src, events, false)
    }

    fn put_small(&self, name: &str, data: &[u8]) -> Result<()> {
        put_small_file(&self.root, name, data)
    }

    /// Re-checks first that `name` is still ours and of its kind: an archive
    /// (a directory only as a legacy backup, recursively, links inside not
    /// followed) or an archive's sidecar or companion (`.sig`, `.meta`); a
    /// symbolic link is left alone.
    fn remove(&self, name: &str) -> Result<bool> {
        let path = self.root.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let ft = meta.file_type();
        // a sidecar, signature or description of an archive
        let sidecar = super::companion_of(name).is_some();
        let res = if sidecar && !ft.is_dir() {
            fs::remove_file(&path).map_err(|e| ("removing sidecar", e))
        } else if ft.is_symlink() || super::parse_name(name, ft.is_dir()).is_none() {
            // replaced by something we do not recognise since listing
            return Ok(false);
        } else if ft.is_dir() {
            // std's remove_dir_all does not follow symbolic links inside
            fs::remove_dir_all(&path).map_err(|e| ("removing", e))
        } else {
            fs::remove_file(&path).map_err(|e| ("removing", e))
        };
        match res {
            Ok(()) => Ok(true),
            Err((_, e)) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err((what, e)) => Err(Error::io(what, &path, e)),
        }
    }

    fn sync(&self) -> Result<()> {
        super::fsync_dir(&self.root)
    }

    fn cleanup(&self) -> Vec<String> {
        super::remove_stale_temps(&self.root)
    }

    fn lock_key(&self) -> PathBuf {
        self.root.clone()
    }

    fn local_path(&self, name: &str) -> Option<PathBuf> {
        Some(self.root.join(name))
    }

    fn problem(&self) -> Option<&'static str> {
        root_problem(&self.root)
    }

    fn free_bytes(&self) -> Option<u64> {
        free_bytes(&self.root)
    }
}

/// Total size of the regular files under `dir` (symlinks not followed).
fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// "does not exist" / "not a directory" for a directory store's root.
pub(super) fn root_problem(root: &Path) -> Option<&'static str> {
    if root.is_dir() {
        None
    } else if root.exists() {
        Some("not a directory")
    } else {
        Some("does not exist")
    }
}

/// Free space on the filesystem holding `root`.
pub(super) fn free_bytes(root: &Path) -> Option<u64> {
    rustix::fs::statvfs(root)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// A file as a buffered stream whose errors name it (`what`: "opening
/// archive", "opening").
pub fn open_file(p: &Path, what: &str) -> Result<Box<dyn Read + Send>> {
    let f = File::open(p).at(what, p)?;
    Ok(Box::new(super::SourceFile::new(
        io::BufReader::with_capacity(256 * 1024, f),
        p,
    )))
}

pub(super) fn read_range(p: &Path, start: u64, len: u64) -> Result<Vec<u8>> {
    let mut f = File::open(p).at("opening", p)?;
    f.seek(SeekFrom::Start(start)).at("reading", p)?;
    let mut out = Vec::new();
    f.take(len).read_to_end(&mut out).at("reading", p)?;
    Ok(out)
}

/// At most 64 KiB of a small file; `None` when absent.
pub(super) fn read_small(p: &Path) -> Result<Option<Vec<u8>>> {
    match File::open(p) {
        Ok(f) => {
            let mut out = Vec::new();
            f.take(64 * 1024).read_to_end(&mut out).at("reading", p)?;
            Ok(Some(out))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", p, e)),
    }
}

/// Copies `src` into `root` under a pid-tagged temporary name, hashing as it
/// goes; fsyncs it; only when the digest is the expected one renames it to
/// `name` (over an older file when `replace`, else never over one), then
/// fsyncs the directory. The temporary is removed on any failure.
pub(super) fn put_file(
    root: &Path,
    name: &str,
    src: Upload<'_>,
    events: &dyn Events,
    replace: bool,
) -> Result<String> {
    let Upload {
        reader,
        size,
        expected,
        label,
    } = src;
    super::ensure_private_dir(root)?;
    let tmp = super::temp_name(root, "push");
    let res = (|| {
        let mut out = super::create_private(&tmp)?;
        let pb = events.progress(size, name);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| crate::error::from_io(e, "reading", Path::new(label)))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n]).at("writing", &tmp)?;
            pb.advance(n as u64);
        }
        pb.finish();
        out.sync_all().at("syncing", &tmp)?;
        drop(out);
        let digest = hex::encode(h.finalize());
        if digest != expected {
            return Err(super::digest_mismatch(label, &digest, expected));
        }
        let to = root.join(name);
        if replace {
            fs::rename(&tmp, &to).at("renaming into place", &to)?;
        } else {
            super::rename_noreplace(&tmp, &to)
                .at("renaming into place (never over an existing archive)", &to)?;
        }
        super::fsync_dir(root)?;
        Ok(digest)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Writes a small file atomically (temporary, fsync, rename over, directory fsync).
pub(super) fn put_small_file(root: &Path, name: &str, data: &[u8]) -> Result<()> {
    super::ensure_private_dir(root)?;
    let tmp = super::temp_name(root, "push");
    let res = (|| {
        let mut f = super::create_private(&tmp)?;
        f.write_all(data).at("writing", &tmp)?;
        f.sync_all().at("syncing", &tmp)?;
        drop(f);
        let to = root.join(name);
        fs::rename(&tmp, &to).at("renaming into place", &to)?;
        super::fsync_dir(root)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Silent;
    use crate::store::{index, sidecar_line, sidecar_status, SidecarStatus};

    const NAME: &str = "daily_20260301_020000.tar.gz.age";

    fn put(s: &LocalStore, name: &str, data: &[u8], expected: &str) -> Result<String> {
        let mut r = data;
        let label = s.label(name);
        s.put(
            name,
            Upload {
                reader: &mut r,
                size: data.len() as u64,
                expected,
                label: &label,
            },
            &Silent,
        )
    }

    #[test]
    fn put_checks_the_digest_and_never_replaces() {
        let t = tempfile::tempdir().unwrap();
        let s = LocalStore::new(t.path().join("dest"));
        let good = hex::encode(Sha256::digest(b"archive"));
        let e = put(&s, NAME, b"archive", &"0".repeat(64)).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Integrity);
        assert!(e.message.contains("nothing was stored"), "{}", e.message);
        assert_eq!(s.list().unwrap().len(), 0, "no entry, no temporary left");
        assert_eq!(put(&s, NAME, b"archive", &good).unwrap(), good);
        assert_eq!(fs::read(s.root().join(NAME)).unwrap(), b"archive");
        let other = hex::encode(Sha256::digest(b"other"));
        assert!(put(&s, NAME, b"other", &other).is_err(), "no replace");
        assert_eq!(fs::read(s.root().join(NAME)).unwrap(), b"archive");
        assert_eq!(s.list().unwrap().len(), 1, "temporary removed");
        s.put_small(
            &format!("{NAME}.sha256"),
            sidecar_line(&good, NAME).as_bytes(),
        )
        .unwrap();
        assert_eq!(sidecar_status(&s, NAME).unwrap(), SidecarStatus::Ok);
        assert_eq!(s.read_range(NAME, 2, 100).unwrap(), b"chive");
    }

    #[test]
    fn lists_legacy_dirs_links_and_removes_only_ours() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let s = LocalStore::new(d);
        fs::create_dir_all(d.join("daily_20260201_020000/sub")).unwrap();
        fs::write(d.join("daily_20260201_020000/sub/a"), "abc").unwrap();
        fs::write(d.join(NAME), "x").unwrap();
        fs::write(d.join(format!("{NAME}.sha256")), "x").unwrap();
        std::os::unix::fs::symlink(d.join(NAME), d.join("weekly_20260301_020000.tar.gz.age"))
            .unwrap();
        fs::write(d.join("notes.txt"), "x").unwrap();
        let i = index(&s).unwrap();
        let names: Vec<&str> = i.archives.iter().map(|l| l.archive.name.as_str()).collect();
        assert_eq!(names, ["daily_20260201_020000", NAME]);
        assert!(i.archives[1].sidecar && !i.archives[0].sidecar);
        assert_eq!(
            i.unrecognised,
            ["notes.txt", "weekly_20260301_020000.tar.gz.age"]
        );
        assert_eq!(s.size("daily_20260201_020000").unwrap(), Some(3));
        assert_eq!(s.problem(), None);
        assert!(s.free_bytes().is_some());
        assert!(!s.remove("notes.txt").unwrap(), "not ours");
        assert!(
            !s.remove("weekly_20260301_020000.tar.gz.age").unwrap(),
            "a link"
        );
        assert!(d.join("weekly_20260301_020000.tar.gz.age").exists());
        assert!(s.remove("daily_20260201_020000").unwrap());
        assert!(s.remove(&format!("{NAME}.sha256")).unwrap());
        assert!(!s.remove(&format!("{NAME}.sha256")).unwrap(), "gone");
        assert!(!d.join("daily_20260201_020000").exists());
        s.sync().unwrap();
        assert_eq!(
            LocalStore::new(d.join("none")).problem(),
            Some("does not exist")
        );
        assert!(LocalStore::new(d.join("none")).list().unwrap().is_empty());
    }
}
