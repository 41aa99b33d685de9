//! `prune`: apply the retention policy to a destination (see [`secureclaw_backup::prune`]
//! for what is removed) or, with `--tier`, a tier's own policy to that tier:
//! one plan over the store, rendered by `--dry-run` (which changes nothing)
//! and executed by the real run.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::error::Result;
use secureclaw_backup::prune;
use secureclaw_backup::retention::{self, Decision, Policy};
use secureclaw_backup::store::{self, ArchiveName, LocalStore, Store};
use secureclaw_backup::tier;

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

/// The retention rules of the store being pruned.
type Decide = Box<dyn Fn(&[ArchiveName]) -> Vec<Decision>>;

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let now = Utc::now();
    let dry_run = args.dry_run;
    let (store, mut doc, decide): (Box<dyn Store>, _, Decide) = match &args.tier {
        Some(name) => {
            let (tc, t) = args.config.tier(name)?;
            let Some(policy) = tc.policy()? else {
                let human = format!(
                    "{name}: no retention configured (keep_within / keep_yearly): nothing to prune"
                );
                let doc = json!({"ok": true, "tier": name, "dry_run": dry_run,
                    "decisions": [], "removed": []});
                ui.result(human, doc);
                return Ok(());
            };
            let doc = json!({"ok": true, "tier": name, "url": t.url(), "dry_run": dry_run, "policy": policy});
            (
                t,
                doc,
                Box::new(move |a: &[ArchiveName]| tier::config::plan(&policy, a, now)),
            )
        }
        None => {
            let dest = store::dest_or_default(args.dest.as_deref())?;
            let policy = args.policy();
            let doc = json!({"ok": true, "dest": dest, "dry_run": dry_run, "policy": policy});
            let decide = move |a: &[ArchiveName]| prune::local_decisions(&policy, None, a, now);
            (Box::new(LocalStore::new(dest)), doc, Box::new(decide))
        }
    };
    let role = if args.tier.is_some() {
        "prune tier"
    } else {
        "prune"
    };
    let _lock = secureclaw_backup::lock::lock_dir(&store.lock_key(), role)?;
    let plan = prune::plan(store.as_ref(), &*decide)?;
    let removed = if dry_run {
        Vec::new()
    } else {
        prune::apply(store.as_ref(), &plan, &mut |n| {
            ui.detail(format!("removed {}", store.label(n)))
        })?
    };
    doc["decisions"] = json!(plan.decisions);
    doc["removed"] = json!(removed);
    doc["would_remove"] = json!(if dry_run {
        plan.would_remove()
    } else {
        Vec::new()
    });
    ui.result(
        human(Path::new(&store.url()), &plan.decisions, dry_run),
        doc,
    );
    Ok(())
}
