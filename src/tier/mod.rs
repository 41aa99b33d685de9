//! Offsite tiers (issue 9): which [`Store`] a configured tier or an
//! `s3://` URL names ([`Location`], [`open`]), the tier configuration
//! ([`config`]), push (copy what a tier lacks, verify, apply the tier's
//! retention: [`push`]), and the archive reference ([`ArchiveRef`], in
//! [`reference`]) through which `verify`, `restore` and `drill` read a local
//! file and a stored object alike. The stores themselves (NAS directory, S3
//! bucket) are peers of the local destination in [`crate::store`].
//!
//! A tier holds the destination's flat layout: `<archive>` and
//! `<archive>.sha256`, nothing else of ours. An object is only "copied" once
//! its sidecar is on the tier, and the sidecar is written after the archive
//! was read back and its SHA-256 compared.

pub mod config;
pub mod push;
pub mod reference;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::{self, ArchiveName, DirStore, S3Store, Store};

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
            Location::S3 { bucket, prefix } => store::s3::s3_url(bucket, prefix),
        }
    }
}

/// Opens the tier a configuration entry describes.
pub fn open(cfg: &TierConfig) -> Result<Box<dyn Store>> {
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
) -> Result<Box<dyn Store>> {
    Ok(match loc {
        Location::Dir(p) => Box::new(DirStore::new(p.clone())),
        Location::S3 { bucket, prefix } => {
            Box::new(S3Store::new(bucket, prefix, endpoint, region)?)
        }
    })
}

/// Whether a command argument names an object-store archive.
pub fn is_remote(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// A stored archive: its tier and its name there.
pub struct Remote {
    pub tier: Box<dyn Store>,
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
    pub fn new(tier: Box<dyn Store>, name: &str) -> Result<Remote> {
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
        self.tier.label(&self.name)
    }
}
