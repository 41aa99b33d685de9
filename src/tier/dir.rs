//! A tier that is a plain directory (a NAS mount): the same layout as the
//! local destination. Copies go to a pid-tagged temporary name, are fsynced
//! and renamed into place, so an interrupted push never leaves a partial file
//! under an archive name; a later push removes the temporaries of dead runs.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Object, Tier};
use crate::error::{Error, IoContext, Result};
use crate::store;

pub struct DirTier {
    root: PathBuf,
}

impl DirTier {
    pub fn new(root: PathBuf) -> Self {
        DirTier { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `tmp` into place under `name`, replacing an older object of
    /// that name (a stale copy being repaired), then syncs the directory.
    fn publish(&self, tmp: &Path, name: &str) -> Result<()> {
        let to = self.path(name);
        fs::rename(tmp, &to).at("renaming into place", &to)?;
        store::fsync_dir(&self.root)
    }
}

impl Tier for DirTier {
    fn url(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("listing", &self.root, e)),
        };
        for e in rd {
            let e = e.at("listing", &self.root)?;
            let ft = e.file_type().at("reading", &e.path())?;
            if !ft.is_file() {
                continue;
            }
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let size = e.metadata().at("reading", &e.path())?.len();
            out.push(Object { name, size });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let p = self.path(name);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", &p, e)),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.path(name);
        let f = File::open(&p).at("opening", &p)?;
        Ok(Box::new(crate::archive::pipeline::SourceFile::new(
            io::BufReader::with_capacity(256 * 1024, f),
            &p,
        )))
    }

    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.path(name);
        let mut f = File::open(&p).at("opening", &p)?;
        f.seek(SeekFrom::Start(start)).at("reading", &p)?;
        let mut out = Vec::new();
        f.take(len).read_to_end(&mut out).at("reading", &p)?;
        Ok(out)
    }

    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let p = self.path(name);
        match fs::File::open(&p) {
            Ok(f) => {
                let mut out = Vec::new();
                f.take(64 * 1024).read_to_end(&mut out).at("reading", &p)?;
                Ok(Some(out))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", &p, e)),
        }
    }

    fn upload(
        &self,
        name: &str,
        local: &Path,
        expected: &str,
        ui: &crate::ui::Ui,
    ) -> Result<String> {
        store::ensure_private_dir(&self.root)?;
        let size = fs::metadata(local).at("reading", local)?.len();
        let mut src = File::open(local).at("opening", local)?;
        let tmp = store::temp_name(&self.root, "push");
        let res = (|| {
            let mut out = store::create_private(&tmp)?;
            let pb = ui.progress(size, name);
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let n = src.read(&mut buf).at("reading", local)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n]).at("writing", &tmp)?;
                pb.inc(n as u64);
            }
            pb.finish_and_clear();
            out.sync_all().at("syncing", &tmp)?;
            drop(out);
            let digest = hex::encode(h.finalize());
            if digest != expected {
                return Err(Error::integrity(format!(
                    "{}: SHA-256 {digest} does not match its sidecar ({expected}); nothing was stored",
                    local.display()
                ))
                .hint("the local archive changed or is damaged: check it with `verify`"));
            }
            self.publish(&tmp, name)?;
            Ok(digest)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    fn put_small(&self, name: &str, data: &[u8]) -> Result<()> {
        store::ensure_private_dir(&self.root)?;
        let tmp = store::temp_name(&self.root, "push");
        let res = (|| {
            let mut f = store::create_private(&tmp)?;
            f.write_all(data).at("writing", &tmp)?;
            f.sync_all().at("syncing", &tmp)?;
            drop(f);
            self.publish(&tmp, name)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    fn delete(&self, name: &str) -> Result<()> {
        let p = self.path(name);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", &p, e)),
        }
    }

    fn cleanup(&self) -> Vec<String> {
        store::remove_stale_temps(&self.root)
    }

    fn lock_key(&self) -> PathBuf {
        self.root.clone()
    }
}
