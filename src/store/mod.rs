//! Where archives live. One [`Store`] trait with three peers: the local
//! destination ([`LocalStore`]), a NAS directory ([`DirStore`]) and an S3
//! bucket ([`S3Store`]); the model is rustic_core's backend (local and remote
//! as peers behind one interface). A store holds a flat layout of
//! `<archive>` entries and their companions: `<archive>.sha256` (the
//! sidecar), `<archive>.sig` (its signature, see [`crate::sign`]) and
//! `<archive>.meta` (its keyless description, see [`crate::meta`]); a
//! companion is listed, pruned and pushed with its archive. Anything else in
//! it is "unrecognised" and never touched.
//!
//! Written once here, against any store: the [`index`] (every entry, archive
//! names parsed, with sizes and sidecars), the SHA-256 of an entry
//! ([`digest`]), the sidecar line ([`sidecar_line`], [`parse_sidecar`]) and
//! its state ([`sidecar_status`]). What only a local directory has (legacy
//! `daily_<time>/` directories, fsync and no-replace renames, free space) is
//! [`LocalStore`]'s business. Names are in [`name`], the filesystem
//! primitives in [`fs`] (both re-exported here).

pub mod dir;
pub mod fs;
pub mod local;
pub mod name;
pub mod s3;

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::events::Events;

pub use dir::DirStore;
pub use fs::*;
pub use local::LocalStore;
pub use name::*;
pub use s3::S3Store;

/// What an entry of a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file or an object.
    File,
    /// A directory (only the local destination lists them: legacy backups).
    Dir,
    /// Anything else (a symbolic link…): never an archive.
    Other,
}

/// One entry directly in a store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Object {
    pub name: String,
    /// Bytes (0 for a directory).
    pub size: u64,
    #[serde(skip)]
    pub kind: Kind,
}

/// What [`Store::put`] copies: a stream of `size` bytes whose SHA-256 must be
/// `expected`; `label` names the source in messages.
pub struct Upload<'a> {
    pub reader: &'a mut dyn Read,
    pub size: u64,
    pub expected: &'a str,
    pub label: &'a str,
}

/// A place archives live. Synchronous: the S3 implementation drives its own
/// small runtime.
pub trait Store: Send + Sync {
    /// The directory, or `s3://bucket/prefix`.
    fn url(&self) -> String;
    /// The name of entry `name` in messages (a path, or the object's URL).
    fn label(&self, name: &str) -> String {
        format!("{}/{name}", self.url())
    }
    /// Every entry directly in the store (no recursion), in any order; an
    /// absent root is an empty store.
    fn list(&self) -> Result<Vec<Object>>;
    /// Size of `name`, `None` when absent.
    fn size(&self, name: &str) -> Result<Option<u64>>;
    /// The whole of `name` as a stream.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// Bytes `start..start+len` of `name` (fewer at its end).
    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>>;
    /// A small entry (a sidecar) whole, `None` when absent.
    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `src` as `name`, all or nothing: the entry becomes visible only
    /// complete, and only when the SHA-256 of the bytes written is
    /// `src.expected`. Returns that digest. The local destination never
    /// replaces an existing entry; a NAS directory and a bucket replace an
    /// older copy (a damaged one being repaired) only by a complete one.
    fn put(&self, name: &str, src: Upload<'_>, events: &dyn Events) -> Result<String>;
    /// Writes a small entry (a sidecar) atomically, replacing an older one.
    fn put_small(&self, name: &str, data: &[u8]) -> Result<()>;
    /// Removes `name` (an archive, its sidecar, a legacy directory). `false`
    /// when it was absent or is no longer ours (replaced meanwhile).
    fn remove(&self, name: &str) -> Result<bool>;
    /// Makes removals durable (a directory fsync).
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// Removes what interrupted runs left (temporaries of dead pids).
    fn cleanup(&self) -> Vec<String> {
        Vec::new()
    }
    /// A local path for the lock that serialises runs on this store.
    fn lock_key(&self) -> PathBuf;
    /// The file behind `name`, when the store is a local directory (so that
    /// it is read in place).
    fn local_path(&self, _name: &str) -> Option<PathBuf> {
        None
    }
    /// Why the store's root is not usable ("does not exist"…), when it is not.
    fn problem(&self) -> Option<&'static str> {
        None
    }
    /// Free space where the store lives, when known.
    fn free_bytes(&self) -> Option<u64> {
        None
    }
}

/// An archive listed in a store.
#[derive(Debug, Clone)]
pub struct Listed {
    pub archive: ArchiveName,
    /// From the listing (0 for a legacy directory).
    pub size: u64,
    /// Whether its `.sha256` sidecar is there.
    pub sidecar: bool,
    /// Its other companions that are there (`<archive>.sig`,
    /// `<archive>.meta`), in [`COMPANION_SUFFIXES`] order.
    pub companions: Vec<String>,
}

impl Listed {
    /// Whether its `.sig` signature is there.
    pub fn signed(&self) -> bool {
        self.companions
            .iter()
            .any(|c| c.ends_with(crate::sign::SIG_SUFFIX))
    }
}

/// Every entry of a store, classified.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Recognised archives (and legacy directories), oldest first.
    pub archives: Vec<Listed>,
    /// Sidecars and companions whose archive is gone.
    pub orphan_sidecars: Vec<String>,
    /// Everything else: never touched.
    pub unrecognised: Vec<String>,
}

impl Index {
    /// The archive names, oldest first (what retention plans over).
    pub fn names(&self) -> Vec<ArchiveName> {
        self.archives.iter().map(|l| l.archive.clone()).collect()
    }
    /// The listed archive called `name`.
    pub fn get(&self, name: &str) -> Option<&Listed> {
        self.archives.iter().find(|l| l.archive.name == name)
    }
}

/// The name of an archive's sidecar: `<archive>.sha256`.
pub fn sidecar_name(name: &str) -> String {
    format!("{name}.sha256")
}

/// The suffixes of an archive's companions besides its `.sha256` sidecar:
/// the signature and the keyless description. Pruned with the archive,
/// pushed after it.
pub const COMPANION_SUFFIXES: [&str; 2] = [crate::sign::SIG_SUFFIX, crate::meta::SUFFIX];

/// The names of the companions (besides the sidecar) archive `name` may have.
pub fn companion_names(name: &str) -> Vec<String> {
    COMPANION_SUFFIXES
        .iter()
        .map(|s| format!("{name}{s}"))
        .collect()
}

/// The archive name `name` is a companion of (sidecar, signature or
/// description), when its stem is an archive's name; `None` for anything
/// else.
pub fn companion_of(name: &str) -> Option<&str> {
    std::iter::once(".sha256")
        .chain(COMPANION_SUFFIXES)
        .find_map(|s| name.strip_suffix(s))
        .filter(|b| parse_name(b, false).is_some())
}

/// Lists a store once and classifies every entry: archives by their names
/// (a directory only as a legacy backup, a symbolic link never), their
/// sidecars and companions, sidecars and companions of archives that are
/// gone (orphans), and the rest.
pub fn index(store: &dyn Store) -> Result<Index> {
    let objects = store.list()?;
    let mut archives: Vec<(ArchiveName, u64)> = objects
        .iter()
        .filter_map(|o| {
            let a = match o.kind {
                Kind::File => parse_name(&o.name, false),
                Kind::Dir => parse_name(&o.name, true),
                Kind::Other => None,
            };
            a.map(|a| (a, o.size))
        })
        .collect();
    archives.sort_by(|(a, _), (b, _)| (a.time, a.seq, &a.name).cmp(&(b.time, b.seq, &b.name)));
    let known: HashSet<&str> = archives.iter().map(|(a, _)| a.name.as_str()).collect();
    let mut sidecars = HashSet::new();
    let mut companions: HashSet<&str> = HashSet::new();
    let mut out = Index::default();
    for o in &objects {
        let n = o.name.as_str();
        if known.contains(n) {
            continue;
        }
        let base = std::iter::once(".sha256")
            .chain(COMPANION_SUFFIXES)
            .find_map(|s| n.strip_suffix(s).map(|b| (s, b)));
        if let Some((suffix, base)) = base {
            if known.contains(base) {
                if suffix == ".sha256" {
                    sidecars.insert(base.to_owned());
                } else {
                    companions.insert(n);
                }
                continue;
            }
            if parse_name(base, false).is_some() {
                out.orphan_sidecars.push(o.name.clone());
                continue;
            }
        }
        out.unrecognised.push(o.name.clone());
    }
    out.orphan_sidecars.sort();
    out.unrecognised.sort();
    out.archives = archives
        .into_iter()
        .map(|(a, size)| Listed {
            sidecar: sidecars.contains(&a.name),
            companions: companion_names(&a.name)
                .into_iter()
                .filter(|c| companions.contains(c.as_str()))
                .collect(),
            archive: a,
            size,
        })
        .collect();
    Ok(out)
}

/// The recognised archives (and legacy directories) in the local directory
/// `dest`, oldest first.
pub fn list_archives(dest: &Path) -> Result<Vec<ArchiveName>> {
    Ok(index(&LocalStore::new(dest))?.names())
}

/// SHA-256 of a whole entry, read streamed, and its length.
pub fn digest(store: &dyn Store, name: &str) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut r = store.open(name)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r
            .read(&mut buf)
            .map_err(|e| crate::error::from_io(e, "reading", Path::new(&store.url())))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// The `sha256sum` line of a sidecar.
pub fn sidecar_line(digest: &str, name: &str) -> String {
    format!("{digest}  {name}\n")
}

/// The digest an entry's sidecar names: `None` when absent, `Some("")` when
/// malformed.
pub fn read_sidecar_of(store: &dyn Store, name: &str) -> Result<Option<String>> {
    Ok(store
        .read_small(&sidecar_name(name))?
        .map(|b| parse_sidecar(&b)))
}

/// An entry's sidecar compared with the SHA-256 of its bytes (read
/// streamed, also when there is no sidecar to compare with: a stored copy
/// that cannot be read back is reported).
pub fn sidecar_status(store: &dyn Store, name: &str) -> Result<SidecarStatus> {
    let expected = read_sidecar_of(store, name)?;
    let (actual, _) = digest(store, name)?;
    judge_sidecar(expected, || Ok(actual))
}

/// The error of a [`Store::put`] whose bytes do not hash to the sidecar's digest.
fn digest_mismatch(label: &str, actual: &str, expected: &str) -> Error {
    Error::integrity(format!(
        "{label}: SHA-256 {actual} does not match its sidecar ({expected}); nothing was stored"
    ))
    .hint("the local archive changed or is damaged: check it with `verify`")
}
