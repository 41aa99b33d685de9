//! A NAS directory as a [`Store`]: the same flat layout as the local
//! destination, regular files only (a directory or a link in it is not
//! listed). Copies go to a pid-tagged temporary name, are fsynced and renamed
//! into place (over an older copy: a damaged one being repaired), so an
//! interrupted push never leaves a partial file under an archive name; a
//! later push removes the temporaries of dead runs.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use super::local::{self, put_file, put_small_file};
use super::{Kind, Object, Store, Upload};
use crate::error::{Error, IoContext, Result};
use crate::events::Events;

pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: PathBuf) -> Self {
        DirStore { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

impl Store for DirStore {
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
            out.push(Object {
                name,
                size,
                kind: Kind::File,
            });
        }
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
        local::open_file(&self.path(name), "opening")
    }

    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        local::read_range(&self.path(name), start, len)
    }

    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        local::read_small(&self.path(name))
    }

    fn put(&self, name: &str, src: Upload<'_>, events: &dyn Events) -> Result<String> {
        put_file(&self.root, name, src, events, true)
    }

    fn put_small(&self, name: &str, data: &[u8]) -> Result<()> {
        put_small_file(&self.root, name, data)
    }

    fn remove(&self, name: &str) -> Result<bool> {
        let p = self.path(name);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("removing", &p, e)),
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
        Some(self.path(name))
    }

    fn problem(&self) -> Option<&'static str> {
        local::root_problem(&self.root)
    }

    fn free_bytes(&self) -> Option<u64> {
        local::free_bytes(&self.root)
    }
}
