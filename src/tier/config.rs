//! The tier configuration file (TOML):
//!
//! ```toml
//! [[tier]]
//! name = "nas"
//! url = "/mnt/nas/secureclaw"
//! keep_within = "30d"
//!
//! [[tier]]
//! name = "cloud"
//! url = "s3://bucket/hosts/web-1"
//! keep_within = "90d"
//! keep_yearly = "forever"
//! endpoint = "https://minio.example:9000"   # optional; else $AWS_ENDPOINT_URL
//! region = "eu-central-1"                   # optional; else $AWS_REGION
//! ```
//!
//! Credentials never live here: S3 tiers read the standard AWS environment
//! variables and profile files.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::retention::{self, Decision, Policy};
use crate::store::ArchiveName;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub tier: Vec<TierConfig>,
}

/// One `[[tier]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    /// An absolute directory (NAS mount) or `s3://bucket[/prefix]`.
    pub url: String,
    /// Keep every backup newer than this (`30d`, `12w`…).
    #[serde(default)]
    pub keep_within: Option<String>,
    /// `"forever"` or a number of years: keep the newest backup of each type
    /// of each (of the last N) calendar year(s).
    #[serde(default)]
    pub keep_yearly: Option<toml::Value>,
    /// Never prune the newest N backups of each type (default 1), so that a
    /// host that stopped backing up keeps its last offsite copy.
    #[serde(default)]
    pub keep_last: Option<usize>,
    /// S3 endpoint (MinIO, Ceph RGW, R2…); default `$AWS_ENDPOINT_URL`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region; default `$AWS_REGION` / `$AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub region: Option<String>,
}

/// How many years `keep_yearly` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Yearly {
    Forever,
    Years(u32),
}

/// A tier's retention: the local [`Policy`] (counts = `keep_last`, plus
/// `keep_within`) and the yearly rule applied on top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierPolicy {
    pub policy: Policy,
    pub yearly: Option<Yearly>,
}

impl TierConfig {
    /// The tier's retention, or `None` when it configures none (keep everything).
    pub fn policy(&self) -> Result<Option<TierPolicy>> {
        let bad = |what: &str| {
            Error::usage(format!("tier {:?}: invalid {what}", self.name))
                .hint("keep_within = \"30d\"; keep_yearly = \"forever\" or a number of years; keep_last = 1")
        };
        let within = match &self.keep_within {
            Some(s) => Some(
                retention::parse_duration(s)
                    .map_err(|e| e.context(format!("tier {:?}: keep_within", self.name)))?,
            ),
            None => None,
        };
        let yearly = match &self.keep_yearly {
            None => None,
            Some(toml::Value::String(s)) if s == "forever" => Some(Yearly::Forever),
            Some(toml::Value::String(s)) => {
                Some(Yearly::Years(s.parse().map_err(|_| bad("keep_yearly"))?))
            }
            Some(toml::Value::Integer(n)) if *n >= 0 => Some(Yearly::Years(*n as u32)),
            Some(_) => return Err(bad("keep_yearly")),
        };
        if within.is_none() && yearly.is_none() {
            return Ok(None);
        }
        let n = self.keep_last.unwrap_or(1);
        Ok(Some(TierPolicy {
            policy: Policy {
                keep_daily: n,
                keep_weekly: n,
                keep_pre_deploy: n,
                keep_pre_restore: n,
                keep_within: within,
            },
            yearly,
        }))
    }
}

/// Plans a tier's retention: [`retention::plan`], then `keep_yearly` keeps the
/// newest backup of each type in each covered calendar year.
pub fn plan(tp: &TierPolicy, archives: &[ArchiveName], now: DateTime<Utc>) -> Vec<Decision> {
    let mut out = retention::plan(&tp.policy, archives, now);
    if let Some(y) = tp.yearly {
        let first_year = match y {
            Yearly::Forever => i32::MIN,
            Yearly::Years(n) => now.year() - n as i32 + 1,
        };
        // decisions are newest first within each type: the first seen per
        // (type, year) is that year's newest
        let mut seen = std::collections::BTreeSet::new();
        for d in out.iter_mut() {
            let year = d.time.year();
            if year < first_year || !seen.insert((d.btype, year)) {
                continue;
            }
            if !d.keep {
                d.keep = true;
                d.reason = format!(
                    "newest {} of {year} (keep-yearly {})",
                    d.btype.as_str(),
                    match y {
                        Yearly::Forever => "forever".to_owned(),
                        Yearly::Years(n) => n.to_string(),
                    }
                );
            }
        }
    }
    out
}

/// `--config FILE`, else `$XDG_CONFIG_HOME/secureclaw-backup/config.toml`,
/// else `~/.config/secureclaw-backup/config.toml`.
pub fn default_path() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("secureclaw-backup/config.toml"));
    }
    Ok(crate::paths::home()?.join(".config/secureclaw-backup/config.toml"))
}

/// Loads the configuration. A missing default file is an empty configuration;
/// a missing explicit `--config` is an error.
pub fn load(explicit: Option<&Path>) -> Result<(PathBuf, Config)> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => default_path()?,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok((path, Config::default()))
        }
        Err(e) => return Err(e).at("reading configuration", &path),
    };
    let cfg: Config = toml::from_str(&text).map_err(|e| {
        Error::usage(format!("{}: {}", path.display(), e.message()))
            .hint("see \"Offsite tiers\" in the README for the [[tier]] format")
    })?;
    let mut names = std::collections::BTreeSet::new();
    for t in &cfg.tier {
        if !names.insert(t.name.as_str()) {
            return Err(Error::usage(format!(
                "{}: tier {:?} is defined twice",
                path.display(),
                t.name
            ))
            .hint("give every [[tier]] its own name"));
        }
        if t.url.contains("aws_secret") || t.url.contains('@') {
            return Err(Error::usage(format!(
                "{}: tier {:?}: credentials do not belong in the url",
                path.display(),
                t.name
            ))
            .hint(
                "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE in the environment",
            ));
        }
        super::Location::parse(&t.url)?;
        t.policy()?;
    }
    Ok((path, cfg))
}

impl Config {
    /// The tier called `name`.
    pub fn tier(&self, name: &str, path: &Path) -> Result<&TierConfig> {
        self.tier.iter().find(|t| t.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.tier.iter().map(|t| t.name.as_str()).collect();
            Error::usage(format!("no tier {name:?} in {}", path.display())).hint(
                if known.is_empty() {
                    "add a [[tier]] with name and url to the configuration (see the README), or pass --config FILE".to_owned()
                } else {
                    format!("configured tiers: {}", known.join(", "))
                },
            )
        })
    }
}

/// A duration as the config writes it, for messages.
pub fn show(d: TimeDelta) -> String {
    retention::format_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::parse_name;
    use chrono::TimeZone;

    fn tc(within: Option<&str>, yearly: Option<toml::Value>) -> TierConfig {
        TierConfig {
            name: "t".into(),
            url: "/x".into(),
            keep_within: within.map(str::to_owned),
            keep_yearly: yearly,
            keep_last: None,
            endpoint: None,
            region: None,
        }
    }

    #[test]
    fn yearly_keeps_newest_of_each_year() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let names = [
            "daily_20240301_020000.tar.gz.age",
            "daily_20241231_020000.tar.gz.age",
            "daily_20250601_020000.tar.gz.age",
            "daily_20251230_020000.tar.gz.age",
            "daily_20260210_020000.tar.gz.age",
            "daily_20260228_020000.tar.gz.age",
        ];
        let a: Vec<_> = names
            .iter()
            .map(|n| parse_name(n, false).unwrap())
            .collect();
        let p = tc(Some("7d"), Some(toml::Value::String("forever".into())))
            .policy()
            .unwrap()
            .unwrap();
        let kept: Vec<_> = plan(&p, &a, now)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.stem)
            .collect();
        assert_eq!(
            kept,
            [
                "daily_20260228_020000",
                "daily_20251230_020000",
                "daily_20241231_020000"
            ]
        );
        let p1 = tc(Some("7d"), Some(toml::Value::Integer(2)))
            .policy()
            .unwrap()
            .unwrap();
        assert_eq!(plan(&p1, &a, now).iter().filter(|d| d.keep).count(), 2);
        assert!(tc(None, None).policy().unwrap().is_none());
        assert!(tc(Some("x"), None).policy().is_err());
    }
}
