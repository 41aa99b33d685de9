//! `push`: copy the destination's archives to the configured offsite tiers
//! (all, or those named with `--tier`), verify every copy, then apply each
//! tier's retention. See [`secureclaw_backup::tier::push`].

use std::path::{Path, PathBuf};

use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::store;
use secureclaw_backup::tier::{self, push::PushReport};
use secureclaw_backup::ui::Ui;

/// `--config FILE`, shared by the commands that use tiers.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Tier configuration (default ~/.config/secureclaw-backup/config.toml)
    #[arg(long = "config", value_name = "FILE", env = "SECURECLAW_BACKUP_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<(PathBuf, tier::Config)> {
        tier::config::load(self.config.as_deref())
    }

    /// The configuration when it can be read, for optional use (endpoint and
    /// region of an `s3://` URL); an unreadable default file is ignored.
    pub fn load_optional(&self) -> Result<Option<tier::Config>> {
        match self.load() {
            Ok((_, c)) => Ok(Some(c)),
            Err(e) if self.config.is_some() => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// The tier named `name`, opened, with its configuration.
    pub fn tier(&self, name: &str) -> Result<(tier::TierConfig, Box<dyn tier::Tier>)> {
        let (path, cfg) = self.load()?;
        let tc = cfg.tier(name, &path)?.clone();
        let t = tier::open(&tc)?;
        Ok((tc, t))
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Push to this tier only (repeatable; default every configured tier)
    #[arg(long = "tier", value_name = "NAME")]
    pub tiers: Vec<String>,
    /// Local destination holding the archives (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Pushes `dest` to the named tiers (every configured tier when empty).
/// Returns the reports and the error the run ends with, if any: a failure
/// in one tier does not stop the others.
pub fn push_all(
    config: &ConfigArgs,
    names: &[String],
    dest: &Path,
    ui: &Ui,
) -> Result<(Vec<PushReport>, Option<Error>)> {
    let (path, cfg) = config.load()?;
    let selected: Vec<&tier::TierConfig> = if names.is_empty() {
        cfg.tier.iter().collect()
    } else {
        names
            .iter()
            .map(|n| cfg.tier(n, &path))
            .collect::<Result<_>>()?
    };
    if selected.is_empty() {
        return Err(
            Error::usage(format!("no tiers configured in {}", path.display())).hint(
                "add [[tier]] entries (name, url, keep_within…) to the configuration; see \"Offsite tiers\" in the README",
            ),
        );
    }
    let now = chrono::Utc::now();
    let mut reports = Vec::new();
    let mut first_err: Option<Error> = None;
    for tc in selected {
        let res = (|| {
            let policy = tc.policy()?;
            let t = tier::open(tc)?;
            ui.info(format!("pushing to {} ({})…", tc.name, t.url()));
            tier::push::push(&tc.name, t.as_ref(), policy.as_ref(), dest, now, ui)
        })();
        match res {
            Ok(r) => {
                if let Some(e) = r.error() {
                    first_err.get_or_insert(e);
                }
                reports.push(r);
            }
            Err(e) => {
                ui.warn(format!("{}: {}", tc.name, e.message));
                reports.push(PushReport {
                    tier: tc.name.clone(),
                    url: tc.url.clone(),
                    failed: vec![(String::new(), e.message.clone())],
                    ..Default::default()
                });
                first_err.get_or_insert(e.context(format!("push to {}", tc.name)));
            }
        }
    }
    Ok((reports, first_err))
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let dest = match &args.dest {
        Some(d) => d.clone(),
        None => store::default_dest()?,
    };
    let (reports, err) = push_all(&args.config, &args.tiers, &dest, ui)?;
    let human: Vec<String> = reports.iter().map(PushReport::human).collect();
    ui.result(
        human.join("\n"),
        serde_json::json!({"ok": err.is_none(), "push": reports}),
    );
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// An archive argument of `verify` / `restore`: a local path, or an object in
/// a tier (`s3://bucket/prefix/<archive>`, or `<archive>` with `--tier NAME`).
pub use secureclaw_backup::tier::ArchiveRef;

/// Resolves an archive argument. Without `--tier` and without `s3://`, the
/// path is returned unchanged.
pub fn resolve(arg: &Path, tier_name: Option<&str>, config: &ConfigArgs) -> Result<ArchiveRef> {
    if let Some(name) = tier_name {
        let file = arg
            .to_str()
            .filter(|s| !s.contains('/') && !s.is_empty())
            .ok_or_else(|| {
                Error::usage(format!(
                    "with --tier, name the archive as it is in the tier, not a path: {}",
                    arg.display()
                ))
                .hint("see the names with `list --tier NAME`")
            })?;
        let (tc, t) = config.tier(name)?;
        return Ok(match tier::Location::parse(&tc.url)? {
            tier::Location::Dir(d) => ArchiveRef::Local(d.join(file)),
            tier::Location::S3 { .. } => ArchiveRef::Remote(tier::Remote::new(t, file)?),
        });
    }
    if tier::is_remote(arg) {
        let url = arg.to_str().unwrap_or_default();
        let cfg = config.load_optional()?;
        return Ok(ArchiveRef::Remote(tier::Remote::from_url(
            url,
            cfg.as_ref(),
        )?));
    }
    super::require_regular_archive(arg)?;
    Ok(ArchiveRef::Local(arg.to_owned()))
}

/// One archive of a tier as `list --tier` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TierEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub btype: store::BackupType,
    pub time: chrono::DateTime<chrono::Utc>,
    pub size: u64,
    /// From the name: `age`, `openpgp` or `plaintext`.
    pub format: &'static str,
    /// `present` or `missing` (not read: `verify` compares it).
    pub sidecar: &'static str,
}

/// `list --tier NAME`: the archives in a tier, newest first, from its listing
/// (names and sizes; no object is read).
pub fn list_tier(name: &str, config: &ConfigArgs, ui: &Ui) -> Result<()> {
    let (tc, t) = config.tier(name)?;
    let (archives, objects) = tier::archives(t.as_ref())?;
    let sizes: std::collections::HashMap<&str, u64> =
        objects.iter().map(|o| (o.name.as_str(), o.size)).collect();
    let entries: Vec<TierEntry> = archives
        .iter()
        .rev()
        .map(|a| TierEntry {
            name: a.name.clone(),
            btype: a.btype,
            time: a.time,
            size: sizes.get(a.name.as_str()).copied().unwrap_or(0),
            format: match a.container {
                store::Container::Age => "age",
                store::Container::OpenPgp => "openpgp",
                _ => "plaintext",
            },
            sidecar: if sizes.contains_key(format!("{}.sha256", a.name).as_str()) {
                "present"
            } else {
                "missing"
            },
        })
        .collect();
    let other: Vec<&str> = objects
        .iter()
        .map(|o| o.name.as_str())
        .filter(|n| {
            store::parse_name(n, false).is_none()
                && !n
                    .strip_suffix(".sha256")
                    .is_some_and(|b| sizes.contains_key(b))
        })
        .collect();
    let mut human = format!("{} ({}): {} archive(s)\n", tc.name, t.url(), entries.len());
    for e in &entries {
        human.push_str(&format!(
            "  {:<45} {:<10} {:>10}  {:<9} sidecar {}\n",
            e.name,
            e.btype.as_str(),
            secureclaw_backup::manifest::human_bytes(e.size),
            e.format,
            e.sidecar
        ));
    }
    if !other.is_empty() {
        human.push_str(&format!(
            "  not recognised (never touched): {}\n",
            other.join(", ")
        ));
    }
    let missing = entries.iter().filter(|e| e.sidecar == "missing").count();
    if missing > 0 {
        ui.warn(format!(
            "{missing} archive(s) in {name} without a sidecar: an interrupted push? run push again"
        ));
    }
    ui.result(
        human,
        serde_json::json!({"ok": true, "tier": tc.name, "url": t.url(), "archives": entries, "unrecognised": other}),
    );
    Ok(())
}
