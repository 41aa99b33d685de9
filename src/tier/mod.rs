//! Offsite storage tiers (issue 9): a NAS directory ([`dir`]) or S3-compatible
//! object storage ([`s3`]) behind one small synchronous [`Tier`] trait, plus
//! the operations on them: push (copy what the tier lacks, verify, apply the
//! tier's retention), list, prune, and the archive reference
//! ([`ArchiveRef`], in [`reference`]) through which `verify`, `restore` and
//! `drill` read a local file and a stored object alike.
//!
//! A tier holds the destination's flat layout: `<archive>` and
//! `<archive>.sha256`, nothing else of ours. An object is only "copied" once
//! its sidecar is on the tier, and the sidecar is written after the archive
//! was read back and its SHA-256 compared.

pub mod config;
pub mod dir;
pub mod push;
pub mod reference;
pub mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::{self, ArchiveName, Container};

pub use config::{Config, TierConfig, TierPolicy};
pub use reference::ArchiveRef;

/// Where a tier lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory (a NAS mount).
    Dir(PathBuf),
    /// `s3://bucket/prefix`: prefix without leading/trailing slashes, may be empty.
    S3 { bucket: String, prefix: String },
}

impl Location {
    pub fn parse(url: &str) -> Result<Location> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            if bucket.is_empty()
                || prefix.split('/').any(|s| s == "." || s == "..")
                || prefix.contains("//")
            {
                return Err(Error::usage(format!("invalid S3 url {url:?}"))
                    .hint("write s3://BUCKET or s3://BUCKET/PREFIX (one prefix per host)"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        let p = Path::new(url.strip_prefix("file://").unwrap_or(url));
        if !p.is_absolute() {
            return Err(Error::usage(format!("tier url {url:?} is neither s3:// nor an absolute directory"))
                .hint("use an absolute path for a NAS mount (url = \"/mnt/nas/secureclaw\") or s3://bucket/prefix"));
        }
        Ok(Location::Dir(p.to_owned()))
    }

    pub fn url(&self) -> String {
        match self {
            Location::Dir(p) => p.display().to_string(),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// One object (file) directly in a tier.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Object {
    pub name: String,
    pub size: u64,
}

/// A place archives are copied to. Synchronous: the S3 implementation drives
/// its own small runtime.
pub trait Tier: Send + Sync {
    /// `s3://bucket/prefix` or the directory.
    fn url(&self) -> String;
    /// Every object directly in the tier (no recursion into sub-prefixes).
    fn list(&self) -> Result<Vec<Object>>;
    /// Size of `name`, `None` when absent.
    fn size(&self, name: &str) -> Result<Option<u64>>;
    /// The whole of `name` as a stream.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// Bytes `start..start+len` of `name` (fewer at its end).
    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>>;
    /// A small object (a sidecar) whole, `None` when absent.
    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Copies the local file to `name`, all or nothing: the object becomes
    /// visible only complete, and only when the SHA-256 of the bytes sent is
    /// `expected` (the local sidecar). Returns that digest.
    fn upload(
        &self,
        name: &str,
        local: &Path,
        expected: &str,
        ui: &crate::ui::Ui,
    ) -> Result<String>;
    /// Writes a small object (a sidecar) atomically.
    fn put_small(&self, name: &str, data: &[u8]) -> Result<()>;
    /// Removes `name`; absent is fine.
    fn delete(&self, name: &str) -> Result<()>;
    /// Removes what interrupted runs left (dir: temp files of dead pids).
    fn cleanup(&self) -> Vec<String> {
        Vec::new()
    }
    /// A local path for the lock that serialises runs on this tier.
    fn lock_key(&self) -> PathBuf;
}

/// Opens the tier a configuration entry describes.
pub fn open(cfg: &TierConfig) -> Result<Box<dyn Tier>> {
    open_location(
        &Location::parse(&cfg.url)?,
        cfg.endpoint.as_deref(),
        cfg.region.as_deref(),
    )
}

/// Opens a tier by location (endpoint/region: config values, else environment).
pub fn open_location(
    loc: &Location,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<Box<dyn Tier>> {
    Ok(match loc {
        Location::Dir(p) => Box::new(dir::DirTier::new(p.clone())),
        Location::S3 { bucket, prefix } => {
            Box::new(s3::S3Tier::new(bucket, prefix, endpoint, region)?)
        }
    })
}

/// Whether a command argument names an object-store archive.
pub fn is_remote(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// A stored archive: its tier and its name there.
pub struct Remote {
    pub tier: Box<dyn Tier>,
    pub name: String,
    pub parsed: ArchiveName,
}

impl Remote {
    /// `s3://bucket/prefix/<archive>`, endpoint and region from a configured
    /// tier on the same bucket when there is one.
    pub fn from_url(url: &str, config: Option<&Config>) -> Result<Remote> {
        let (dir, name) = url.rsplit_once('/').unwrap_or((url, ""));
        let loc = Location::parse(dir)?;
        let Location::S3 { bucket, .. } = &loc else {
            return Err(Error::usage(format!("{url} is not an s3:// url")));
        };
        let cfg = config.and_then(|c| {
            c.tier.iter().find(|t| {
                matches!(Location::parse(&t.url), Ok(Location::S3 { bucket: b, .. }) if &b == bucket)
            })
        });
        let tier = open_location(
            &loc,
            cfg.and_then(|c| c.endpoint.as_deref()),
            cfg.and_then(|c| c.region.as_deref()),
        )?;
        Remote::new(tier, name)
    }

    /// `name` in `tier`.
    pub fn new(tier: Box<dyn Tier>, name: &str) -> Result<Remote> {
        let parsed = store::parse_name(name, false).ok_or_else(|| {
            Error::usage(format!("{}/{name} is not an archive name", tier.url())).hint(
                "name the archive itself: <type>_<YYYYMMDD_HHMMSS>.tar.gz.age|.gpg (see `list --tier`)",
            )
        })?;
        Ok(Remote {
            tier,
            name: name.to_owned(),
            parsed,
        })
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.tier.url(), self.name)
    }

    /// The archive's digest from its sidecar on the tier: `None` when absent,
    /// `Some("")` when malformed.
    pub fn sidecar(&self) -> Result<Option<String>> {
        Ok(self
            .tier
            .read_small(&format!("{}.sha256", self.name))?
            .map(|b| parse_sidecar(&b)))
    }
}

/// The digest of a sidecar's text, or `""` when malformed.
pub fn parse_sidecar(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let first = text.split_whitespace().next().unwrap_or("");
    if first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
        first.to_ascii_lowercase()
    } else {
        String::new()
    }
}

/// SHA-256 of a whole stored object, read streamed.
pub fn sha256_remote(tier: &dyn Tier, name: &str) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut r = tier.open(name)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r
            .read(&mut buf)
            .map_err(|e| crate::error::from_io(e, "reading", Path::new(&tier.url())))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// The recognised archives of a tier (oldest first) and every object.
pub fn archives(tier: &dyn Tier) -> Result<(Vec<ArchiveName>, Vec<Object>)> {
    let objects = tier.list()?;
    let mut a: Vec<ArchiveName> = objects
        .iter()
        .filter_map(|o| store::parse_name(&o.name, false))
        .filter(|a| a.container != Container::Directory)
        .collect();
    a.sort_by(|x, y| (x.time, x.seq, &x.name).cmp(&(y.time, y.seq, &y.name)));
    Ok((a, objects))
}

/// Removes the given archives (and their sidecars) from a tier; returns the
/// object names removed.
pub fn remove(tier: &dyn Tier, names: &[String], ui: &crate::ui::Ui) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for n in names {
        if store::parse_name(n, false).is_none() {
            continue; // never touch what is not ours
        }
        for obj in [n.clone(), format!("{n}.sha256")] {
            tier.delete(&obj)?;
            ui.detail(format!("removed {}/{obj}", tier.url()));
            removed.push(obj);
        }
    }
    Ok(removed)
}
