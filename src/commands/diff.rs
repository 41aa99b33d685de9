//! `diff A B`: files added, removed and changed between two archives, or an
//! archive and a live directory ([`secureclaw_backup::browse::diff`]).
//! Differences are the result, not an error: exit 0 either way.

use std::path::{Path, PathBuf};

use crate::ui::{Safe, Ui};
use secureclaw_backup::browse::{diff, DiffOptions, DiffReport, Side};
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::sign::Trust;
use secureclaw_backup::store::{self, BackupType};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The old side: an archive (path, `latest`, `latest:TYPE`, a name in --dest) or a directory
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The new side: an archive or a directory (e.g. the live data directory)
    #[arg(value_name = "B")]
    pub b: PathBuf,
    #[command(flatten)]
    pub identity: super::IdentityArgs,
    /// Where `latest` and bare archive names are looked up, and skipped in a
    /// directory side (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Select a directory side as a backup of this type would (default: the archive's type)
    #[arg(long = "type", value_name = "TYPE")]
    pub btype: Option<String>,
    /// Leave these out of a directory side, as backup's --exclude (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// The archives are in this offsite tier of the configuration
    #[arg(long, value_name = "NAME")]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
}

fn side(arg: &Path, args: &Args, trust: &Trust, ui: &Ui) -> Result<Side> {
    if args.tier.is_none() && std::fs::metadata(arg).is_ok_and(|m| m.is_dir()) {
        return Ok(Side::Dir(arg.to_owned()));
    }
    super::signing::archive_arg(
        arg,
        args.tier.as_deref(),
        &args.config,
        args.dest.as_deref(),
        trust,
        ui,
    )
    .map(Side::Archive)
}

fn human(r: &DiffReport) -> String {
    let mut s = String::new();
    for p in &r.added {
        s.push_str(&format!("+ {}\n", Safe(p)));
    }
    for p in &r.removed {
        s.push_str(&format!("- {}\n", Safe(p)));
    }
    for c in &r.changed {
        s.push_str(&format!("~ {} ({})\n", Safe(&c.path), c.what.join(", ")));
    }
    s
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let btype = match &args.btype {
        Some(t) => Some(BackupType::parse(t).ok_or_else(|| {
            Error::usage(format!("--type {t:?} is not a backup type"))
                .hint("use daily, weekly, pre-deploy or pre-restore")
        })?),
        None => None,
    };
    let trust = args.signers.trust(Some(&args.config))?;
    let (a, b) = (
        side(&args.a, &args, &trust, ui)?,
        side(&args.b, &args, &trust, ui)?,
    );
    if [&a, &b].iter().any(|s| matches!(s, Side::Archive(_))) {
        super::signing::notice_unchecked(&trust, ui);
    }
    let opts = DiffOptions {
        a,
        b,
        trust: trust.clone(),
        identities: args.identity.load()?,
        btype,
        excludes: args.exclude.clone(),
        dest: Some(store::dest_or_default(args.dest.as_deref())?),
    };
    let r = diff(&opts)?;
    let n = &r.counts;
    ui.info(format!(
        "{} → {}: {} added, {} removed, {} changed, {} the same",
        Safe(&r.a),
        Safe(&r.b),
        n.added,
        n.removed,
        n.changed,
        n.same
    ));
    ui.result(human(&r), serde_json::json!({"ok": true, "diff": r}));
    Ok(())
}
