//! `prune`: apply the retention policy to a destination (see [`secureclaw_backup::prune`]
//! for what is removed) or, with `--tier`, to an offsite tier. `--dry-run`
//! changes nothing.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::json;

use secureclaw_backup::error::Result;
use secureclaw_backup::prune;
use secureclaw_backup::retention::{self, Decision, Policy};
use secureclaw_backup::store;
use secureclaw_backup::tier;
use secureclaw_backup::ui::Ui;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Daily backups to keep (newest first)
    #[arg(long, value_name = "N", default_value_t = retention::DEFAULT_KEEP_DAILY)]
    pub keep_daily: usize,
    /// Weekly backups to keep
    #[arg(long, value_name = "N", default_value_t = retention::DEFAULT_KEEP_WEEKLY)]
    pub keep_weekly: usize,
    /// Pre-deploy backups to keep
    #[arg(long, value_name = "N", default_value_t = retention::DEFAULT_KEEP_PRE_DEPLOY)]
    pub keep_pre_deploy: usize,
    /// Pre-restore snapshots (the undo of a restore) to keep
    #[arg(long, value_name = "N", default_value_t = retention::DEFAULT_KEEP_PRE_RESTORE)]
    pub keep_pre_restore: usize,
    /// Also keep every backup newer than this (e.g. 7d, 36h, 2w)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub keep_within: Option<chrono::TimeDelta>,
    /// Show what would be removed; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Prune an offsite tier of the configuration with its own policy
    /// (keep_within, keep_yearly, keep_last) instead of the local destination
    #[arg(long, value_name = "NAME", conflicts_with = "dest")]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
}

fn parse_duration_arg(s: &str) -> std::result::Result<chrono::TimeDelta, String> {
    retention::parse_duration(s).map_err(|e| {
        e.hint
            .map_or(e.message.clone(), |h| format!("{}; {h}", e.message))
    })
}

impl Args {
    pub fn policy(&self) -> Policy {
        Policy {
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_pre_deploy: self.keep_pre_deploy,
            keep_pre_restore: self.keep_pre_restore,
            keep_within: self.keep_within,
        }
    }
}

/// The human rendering of a plan.
pub fn human(dest: &Path, decisions: &[Decision], dry_run: bool) -> String {
    if decisions.is_empty() {
        return format!("No backups in {}: nothing to prune.\n", dest.display());
    }
    let w = decisions.iter().map(|d| d.stem.len()).max().unwrap_or(0);
    let mut out = String::new();
    for d in decisions {
        let verb = match (d.keep, dry_run) {
            (true, _) => "keep",
            (false, true) => "would remove",
            (false, false) => "removed",
        };
        let extra = if d.entries.len() > 1 {
            format!(" [{} entries: {}]", d.entries.len(), d.entries.join(", "))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{verb:<12}  {:<w$}  {}{extra}\n",
            d.stem, d.reason
        ));
    }
    let dropped = decisions.iter().filter(|d| !d.keep).count();
    out.push_str(&format!(
        "\n{} backup(s) kept, {dropped} {}.\n",
        decisions.len() - dropped,
        if dry_run {
            "would be removed (dry run: nothing changed)"
        } else {
            "removed"
        }
    ));
    out
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    if let Some(name) = &args.tier {
        return prune_tier(name, &args.config, args.dry_run, ui);
    }
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let policy = args.policy();
    let _lock = secureclaw_backup::lock::lock_dir(&dest, "prune")?;
    let (decisions, removed) =
        prune::prune_dest(&dest, None, &policy, Utc::now(), args.dry_run, &mut |p| {
            ui.detail(format!("removed {}", p.display()))
        })?;
    ui.result(
        human(&dest, &decisions, args.dry_run),
        json!({
            "ok": true,
            "dest": dest,
            "dry_run": args.dry_run,
            "policy": policy,
            "decisions": decisions,
            "removed": if args.dry_run { Vec::new() } else { removed.clone() },
            "would_remove": if args.dry_run { removed } else { Vec::new() },
        }),
    );
    Ok(())
}

/// `prune --tier NAME [--dry-run]`: the tier's own retention.
pub fn prune_tier(
    name: &str,
    config: &super::push::ConfigArgs,
    dry_run: bool,
    ui: &Ui,
) -> Result<()> {
    let (tc, t) = config.tier(name)?;
    let Some(policy) = tc.policy()? else {
        ui.result(
            format!(
                "{name}: no retention configured (keep_within / keep_yearly): nothing to prune"
            ),
            serde_json::json!({"ok": true, "tier": name, "dry_run": dry_run, "decisions": [], "removed": []}),
        );
        return Ok(());
    };
    let _lock = secureclaw_backup::lock::lock_dir(&t.lock_key(), "prune tier")?;
    let (decisions, removed) =
        tier::push::prune(t.as_ref(), &policy, chrono::Utc::now(), dry_run, ui)?;
    let human = human(Path::new(&t.url()), &decisions, dry_run);
    ui.result(
        human,
        serde_json::json!({
            "ok": true,
            "tier": name,
            "url": t.url(),
            "dry_run": dry_run,
            "policy": policy,
            "decisions": decisions,
            "removed": if dry_run { Vec::new() } else { removed.clone() },
            "would_remove": if dry_run { removed } else { Vec::new() },
        }),
    );
    Ok(())
}
