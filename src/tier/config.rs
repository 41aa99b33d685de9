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
//! keep_monthly = 12                         # optional: keep_hourly/daily/weekly/monthly
//! keep_yearly = "forever"
//! endpoint = "https://minio.example:9000"   # optional; else $AWS_ENDPOINT_URL
//! region = "eu-central-1"                   # optional; else $AWS_REGION
//!
//! [signing]                                 # optional, see SigningConfig
//! key = "/etc/secureclaw-backup/signing-key"
//! signers = "/etc/secureclaw-backup/allowed_signers"
//! ```
//!
//! Credentials never live here: S3 tiers read the standard AWS environment
//! variables and profile files.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::retention::{self, Candidate, Decision, Retention, Rules};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub tier: Vec<TierConfig>,
    /// `[signing]`: the signing key `backup` and `rotate` sign with, and the
    /// trusted signers every reader checks (README.md, "Signed archives").
    #[serde(default)]
    pub signing: SigningConfig,
    /// `[backup]`: the host's defaults for every command (README
    /// "Configuration file"); flags and environment variables win.
    #[serde(default)]
    pub backup: BackupConfig,
}

/// The variables naming the data directory (see `paths::data_dir`).
const DATA_DIR_VARS: [&str; 4] = [
    "SECURECLAW_STATE_DIR",
    "SECURECLAW_DIR",
    "OPENCLAW_STATE_DIR",
    "CLAWDBOT_STATE_DIR",
];

/// The `[backup]` section: the defaults of a host's setup in one place.
/// Paths relative to the configuration file's directory. Each value is the
/// default of an existing option, used only when neither the flag nor its
/// environment variable is given ([`BackupConfig::environment`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The data directory (`--source`/`--target`, `$SECURECLAW_STATE_DIR`).
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// The destination (`--dest`, `$BACKUP_ROOT`).
    #[serde(default)]
    pub dest: Option<PathBuf>,
    /// Recipients (`-r`, `$SECURECLAW_BACKUP_KEY`), as on the command line.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A recipients file (age recipients or an OpenPGP certificate), the
    /// same as `-r FILE`.
    #[serde(default)]
    pub recipients_file: Option<PathBuf>,
    /// The signing key, the same as `[signing] key`.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// The trusted signers file, the same as `[signing] signers`.
    #[serde(default)]
    pub signers: Option<PathBuf>,
    /// Push to the tiers after every backup (as `backup --push`).
    #[serde(default)]
    pub push: bool,
    /// The tiers `backup --push` pushes to (default: every `[[tier]]`).
    #[serde(default)]
    pub tiers: Vec<String>,
    /// `backup --incremental --full-every` (a duration, e.g. "24h").
    #[serde(default)]
    pub full_every: Option<String>,
    /// `backup --incremental --max-links`.
    #[serde(default)]
    pub max_links: Option<u32>,
    /// `backup --incremental --max-chain-size` ("130%" or "unlimited").
    #[serde(default)]
    pub max_chain_size: Option<String>,
    /// Retention per backup type (`[backup.retention.daily]` …), the keys
    /// of `prune`'s flags: keep_last, keep_hourly, keep_daily, keep_weekly,
    /// keep_monthly, keep_yearly (a number or "unlimited"), keep_within (a
    /// duration).
    #[serde(default)]
    pub retention: std::collections::BTreeMap<String, KeepConfig>,
}

/// One type's retention in `[backup.retention.<type>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepConfig {
    #[serde(default)]
    pub keep_last: Option<toml::Value>,
    #[serde(default)]
    pub keep_hourly: Option<toml::Value>,
    #[serde(default)]
    pub keep_daily: Option<toml::Value>,
    #[serde(default)]
    pub keep_weekly: Option<toml::Value>,
    #[serde(default)]
    pub keep_monthly: Option<toml::Value>,
    #[serde(default)]
    pub keep_yearly: Option<toml::Value>,
    #[serde(default)]
    pub keep_within: Option<String>,
}

impl KeepConfig {
    /// (flag name without `--`, value) pairs for `btype`, as `prune` takes
    /// them: `("keep-daily", "daily=7")`.
    pub fn flags(&self, btype: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (flag, v) in [
            ("keep-last", &self.keep_last),
            ("keep-hourly", &self.keep_hourly),
            ("keep-daily", &self.keep_daily),
            ("keep-weekly", &self.keep_weekly),
            ("keep-monthly", &self.keep_monthly),
            ("keep-yearly", &self.keep_yearly),
        ] {
            match v {
                Some(toml::Value::Integer(n)) => out.push((flag, format!("{btype}={n}"))),
                Some(toml::Value::String(s)) => out.push((flag, format!("{btype}={s}"))),
                Some(other) => out.push((flag, format!("{btype}={other}"))),
                None => {}
            }
        }
        if let Some(w) = &self.keep_within {
            out.push(("keep-within", format!("{btype}={w}")));
        }
        out
    }
}

impl BackupConfig {
    /// The environment variables this section supplies, for those not set:
    /// (name, value). The data directory only when none of its variables is
    /// set; the recipients only when `$SECURECLAW_BACKUP_KEY` is unset.
    pub fn environment(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let unset = |v: &str| std::env::var_os(v).is_none_or(|x| x.is_empty());
        let mut out = Vec::new();
        if let Some(s) = &self.source {
            if DATA_DIR_VARS.iter().all(|v| unset(v)) {
                out.push((DATA_DIR_VARS[0], s.clone().into_os_string()));
            }
        }
        if let Some(d) = &self.dest {
            if unset("BACKUP_ROOT") {
                out.push(("BACKUP_ROOT", d.clone().into_os_string()));
            }
        }
        let mut recipients: Vec<String> = self.recipients.clone();
        if let Some(f) = &self.recipients_file {
            recipients.push(f.display().to_string());
        }
        if !recipients.is_empty() && unset("SECURECLAW_BACKUP_KEY") {
            out.push(("SECURECLAW_BACKUP_KEY", recipients.join("\n").into()));
        }
        out
    }
}

/// The `[signing]` section: `key = "/path/to/signing-key"`,
/// `signers = "/path/to/allowed_signers"`. A relative path is taken
/// relative to the configuration file's directory. `--sign-key` /
/// `--signers` and `SECURECLAW_BACKUP_SIGNING_KEY` /
/// `SECURECLAW_BACKUP_SIGNERS` take precedence.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub signers: Option<PathBuf>,
}

/// One `[[tier]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    /// An absolute directory (NAS mount) or `s3://bucket[/prefix]`.
    pub url: String,
    /// Keep every backup newer than this (`30d`, `12w`…) before the newest
    /// backup of its type.
    #[serde(default)]
    pub keep_within: Option<String>,
    /// `"forever"` (or `"unlimited"`) or a number N: the newest backup of each
    /// type in each of the N most recent calendar years that hold one.
    #[serde(default)]
    pub keep_yearly: Option<toml::Value>,
    /// The newest backup of each of the N most recent months that hold one
    /// (a number or `"unlimited"`).
    #[serde(default)]
    pub keep_monthly: Option<toml::Value>,
    /// The same per ISO week.
    #[serde(default)]
    pub keep_weekly: Option<toml::Value>,
    /// The same per day.
    #[serde(default)]
    pub keep_daily: Option<toml::Value>,
    /// The same per hour.
    #[serde(default)]
    pub keep_hourly: Option<toml::Value>,
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

/// A tier's retention: calendar rules ([`retention::plan_calendar`]), the
/// same for every backup type of the tier.
///
/// Older configuration files keep working, with two documented changes that
/// only ever keep *more* than before (never less):
/// - `keep_yearly = N` counts the N most recent calendar years that **hold a
///   backup** (restic's `--keep-yearly`); it used to be the N calendar years
///   counted back from now, so a year without any backup used up a slot.
/// - `keep_within` is measured back from the newest backup of each type (it
///   used to be from now), so a host that stopped backing up does not see its
///   last offsite copies age out one prune at a time.
pub type TierPolicy = Retention;

impl TierConfig {
    /// The tier's retention, or `None` when it configures none (keep
    /// everything). `keep_last` alone is no retention: it only guards the
    /// newest backups when other rules prune.
    pub fn policy(&self) -> Result<Option<TierPolicy>> {
        let name = &self.name;
        let count = |key: &str, v: &Option<toml::Value>| -> Result<usize> {
            let bad = || {
                Error::usage(format!("tier {name:?}: invalid {key}")).hint(format!(
                    "{key} = 7 (a whole number) or \"unlimited\"{}",
                    if key == "keep_yearly" {
                        " (or \"forever\")"
                    } else {
                        ""
                    }
                ))
            };
            match v {
                None => Ok(0),
                Some(toml::Value::String(s))
                    if s == "unlimited" || (key == "keep_yearly" && s == "forever") =>
                {
                    Ok(retention::UNLIMITED)
                }
                Some(toml::Value::String(s)) => retention::parse_count(s).map_err(|_| bad()),
                Some(toml::Value::Integer(n)) if *n >= 0 => Ok(*n as usize),
                Some(_) => Err(bad()),
            }
        };
        let within = match &self.keep_within {
            Some(s) => Some(
                retention::parse_duration(s)
                    .map_err(|e| e.context(format!("tier {name:?}: keep_within")))?,
            ),
            None => None,
        };
        let rules = Rules {
            keep_last: 0,
            keep_hourly: count("keep_hourly", &self.keep_hourly)?,
            keep_daily: count("keep_daily", &self.keep_daily)?,
            keep_weekly: count("keep_weekly", &self.keep_weekly)?,
            keep_monthly: count("keep_monthly", &self.keep_monthly)?,
            keep_yearly: count("keep_yearly", &self.keep_yearly)?,
            keep_within: within.filter(|d| *d > TimeDelta::zero()),
        };
        let set = self.keep_within.is_some()
            || [
                &self.keep_yearly,
                &self.keep_monthly,
                &self.keep_weekly,
                &self.keep_daily,
                &self.keep_hourly,
            ]
            .iter()
            .any(|v| v.is_some());
        if !set {
            return Ok(None);
        }
        Ok(Some(Retention::uniform(Rules {
            keep_last: self.keep_last.unwrap_or(1),
            ..rules
        })))
    }
}

/// Plans a tier's retention over its archives (or candidates with their
/// chain positions, see [`crate::prune::candidates`]).
pub fn plan<C: Clone + Into<Candidate>>(
    tp: &TierPolicy,
    archives: &[C],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let cands: Vec<Candidate> = archives.iter().cloned().map(Into::into).collect();
    retention::plan_calendar(tp, &cands, now)
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
    let mut cfg: Config = toml::from_str(&text).map_err(|e| {
        // the line (and column) of the offending key or value
        let at = e
            .span()
            .map(|sp| {
                let before = &text[..sp.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" (line {line}, column {col})")
            })
            .unwrap_or_default();
        Error::usage(format!("{}{at}: {}", path.display(), e.message().trim_end()))
            .hint("see \"Configuration file\" and \"Offsite tiers\" in the README for [backup], [signing] and [[tier]]")
    })?;
    check_backup(&path, &mut cfg)?;
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

/// Checks the `[backup]` section and makes its paths absolute (relative to
/// the file's directory); its signing keys become `[signing]`'s.
fn check_backup(path: &Path, cfg: &mut Config) -> Result<()> {
    let base = path.parent().unwrap_or(Path::new("."));
    let b = &mut cfg.backup;
    for p in [
        &mut b.source,
        &mut b.dest,
        &mut b.recipients_file,
        &mut b.signing_key,
        &mut b.signers,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    for t in b.retention.keys() {
        if crate::store::BackupType::parse(t).is_none() {
            return Err(Error::usage(format!(
                "{}: [backup.retention.{t}]: {t:?} is not a backup type",
                path.display()
            ))
            .hint("the types are daily, weekly, pre-deploy, pre-restore"));
        }
    }
    let bad = |key: &str, why: String| {
        Error::usage(format!("{}: [backup] {key}: {why}", path.display()))
            .hint("see \"Incremental backups\" in the README")
    };
    if let Some(v) = &b.full_every {
        crate::incremental::parse_full_every(v).map_err(|w| bad("full_every", w))?;
    }
    if let Some(v) = &b.max_chain_size {
        crate::incremental::parse_max_chain_size(v).map_err(|w| bad("max_chain_size", w))?;
    }
    for t in &b.tiers {
        if !cfg.tier.iter().any(|c| &c.name == t) {
            return Err(Error::usage(format!(
                "{}: [backup] tiers names {t:?}, which is no [[tier]]",
                path.display()
            ))
            .hint("name tiers defined in the same file"));
        }
    }
    for (mine, theirs, key) in [
        (&b.signing_key, &mut cfg.signing.key, "signing_key"),
        (&b.signers, &mut cfg.signing.signers, "signers"),
    ] {
        match (mine, &theirs) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(format!(
                    "{}: [backup] {key} and [signing] {} both set",
                    path.display(),
                    if key == "signers" { "signers" } else { "key" }
                ))
                .hint("set it in one place"))
            }
            (Some(m), None) => *theirs = Some(m.clone()),
            _ => {}
        }
    }
    Ok(())
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
            keep_monthly: None,
            keep_weekly: None,
            keep_daily: None,
            keep_hourly: None,
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

    #[test]
    fn yearly_counts_years_that_hold_a_backup_and_old_files_parse() {
        // The settled difference: N years that hold a backup (restic), not
        // the N calendar years back from now. A gap year uses no slot, so
        // the new rule keeps everything the old one kept, and 2023's newest.
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let a: Vec<_> = [
            "daily_20230601_020000.tar.gz.age",
            "daily_20240601_020000.tar.gz.age",
            "daily_20260228_020000.tar.gz.age",
        ]
        .iter()
        .map(|n| parse_name(n, false).unwrap())
        .collect();
        let p = tc(Some("7d"), Some(toml::Value::Integer(2)))
            .policy()
            .unwrap()
            .unwrap();
        let ds = plan(&p, &a, now);
        let kept: Vec<_> = ds.iter().filter(|d| d.keep).map(|d| &d.stem).collect();
        assert_eq!(kept, ["daily_20260228_020000", "daily_20240601_020000"]);
        assert_eq!(ds[1].reason, "yearly bucket 2024 (2 of 2)");
        assert!(ds[2]
            .reason
            .starts_with("dropped: beyond the last 1, 2 yearly buckets"));

        // A configuration file of the old format, and one with the new keys.
        let old: Config = toml::from_str(
            "[[tier]]\nname = \"c\"\nurl = \"s3://b/p\"\nkeep_within = \"90d\"\nkeep_yearly = \"forever\"\nkeep_last = 2\n",
        )
        .unwrap();
        let r = old.tier[0].policy().unwrap().unwrap();
        assert_eq!(r.daily.keep_last, 2);
        assert_eq!(r.weekly.keep_yearly, retention::UNLIMITED);
        assert_eq!(r.pre_deploy.keep_within, Some(TimeDelta::days(90)));
        assert_eq!(r.daily.keep_daily, 0);
        let new: Config = toml::from_str(
            "[[tier]]\nname = \"n\"\nurl = \"/x\"\nkeep_daily = 30\nkeep_monthly = \"unlimited\"\n",
        )
        .unwrap();
        let r = new.tier[0].policy().unwrap().unwrap();
        assert_eq!(r.daily.keep_daily, 30);
        assert_eq!(r.pre_restore.keep_monthly, retention::UNLIMITED);
        assert_eq!(r.daily.keep_last, 1);
        // keep_last alone prunes nothing: no retention
        let mut only_last = tc(None, None);
        only_last.keep_last = Some(3);
        assert!(only_last.policy().unwrap().is_none());
        // bad values name the key
        let mut bad = tc(None, None);
        bad.keep_daily = Some(toml::Value::String("lots".into()));
        let e = bad.policy().unwrap_err();
        assert!(e.message.contains("keep_daily"), "{}", e.message);
        bad.keep_daily = Some(toml::Value::Integer(-1));
        assert!(bad.policy().is_err());
    }
}
