//! `push`: copy the destination's archives to the configured offsite tiers
//! (all, or those named with `--tier`), verify every copy, then apply each
//! tier's retention. See [`secureclaw_backup::tier::push`]. Also the tier
//! arguments other commands share: `--config` ([`ConfigArgs`]) and an archive
//! named in a tier ([`resolve`]).

use std::path::{Path, PathBuf};

use crate::ui::Ui;
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::store::{self, LocalStore, Store};
use secureclaw_backup::tier::{self, push::PushReport};

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
    pub fn tier(&self, name: &str) -> Result<(tier::TierConfig, Box<dyn Store>)> {
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

/// Pushes `dest` to the named tiers (every configured tier when empty); see
/// [`tier::push::push_all`].
pub fn push_all(
    config: &ConfigArgs,
    names: &[String],
    dest: &Path,
    ui: &Ui,
) -> Result<(Vec<PushReport>, Option<Error>)> {
    let (path, cfg) = config.load()?;
    tier::push::push_all(&cfg, &path, names, &LocalStore::new(dest), ui)
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let dest = store::dest_or_default(args.dest.as_deref())?;
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
        let (_, t) = config.tier(name)?;
        return ArchiveRef::in_store(t, file);
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
