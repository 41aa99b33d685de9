//! `prune`: apply the retention policy to a destination (see [`secureclaw_backup::prune`]
//! for what is removed) or, with `--tier`, a tier's own policy to that tier:
//! one plan over the store, rendered by `--dry-run` (which changes nothing)
//! and executed by the real run.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::prune::{self, KeepFlags};
use secureclaw_backup::retention::{Candidate, Decision, Retention};
use secureclaw_backup::store::{self, LocalStore, Store};
use secureclaw_backup::tier;

/// The retention flags of `prune` and `backup` (see
/// [`secureclaw_backup::retention::Retention::from_flags`] and "Retention" in
/// the README). Every flag is repeatable; `TYPE=` is one of daily, weekly,
/// pre-deploy, pre-restore.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeepArgs {
    /// Keep the newest N backups: [TYPE=]N|unlimited (without TYPE=: every type)
    #[arg(long, value_name = "[TYPE=]N", action = clap::ArgAction::Append)]
    pub keep_last: Vec<String>,
    /// Keep the newest backup of each of the last N hours: [TYPE=]N|unlimited
    #[arg(long, value_name = "[TYPE=]N", action = clap::ArgAction::Append)]
    pub keep_hourly: Vec<String>,
    /// Keep the newest backup of each of the last N days (default: daily=7);
    /// a bare N sets daily backups, which also keep their N newest (the old
    /// count) unless --keep-last daily=… is given
    #[arg(long, value_name = "[TYPE=]N", action = clap::ArgAction::Append)]
    pub keep_daily: Vec<String>,
    /// Keep the newest backup of each of the last N ISO weeks (default:
    /// weekly=4); a bare N sets weekly backups, which also keep their N
    /// newest unless --keep-last weekly=… is given
    #[arg(long, value_name = "[TYPE=]N", action = clap::ArgAction::Append)]
    pub keep_weekly: Vec<String>,
    /// Keep the newest backup of each of the last N months: [TYPE=]N|unlimited
    #[arg(long, value_name = "[TYPE=]N", action = clap::ArgAction::Append)]
    pub keep_monthly: Vec<String>,
    /// Keep the newest backup of each of the last N years: [TYPE=]N|unlimited
    #[arg(long, value_name = "[TYPE=]N", action = clap::ArgAction::Append)]
    pub keep_yearly: Vec<String>,
    /// Also keep every backup newer than DURATION before the type's newest
    /// (e.g. 7d, 36h, 2w): [TYPE=]DURATION
    #[arg(long, value_name = "[TYPE=]DURATION", action = clap::ArgAction::Append)]
    pub keep_within: Vec<String>,
    /// Pre-deploy backups to keep (the newest N; default 3): --keep-last pre-deploy=N
    #[arg(long, value_name = "N")]
    pub keep_pre_deploy: Option<String>,
    /// Pre-restore snapshots (the undo of a restore) to keep (the newest N;
    /// default 3): --keep-last pre-restore=N
    #[arg(long, value_name = "N")]
    pub keep_pre_restore: Option<String>,
}

impl KeepArgs {
    /// The flags as the library's [`KeepFlags`].
    pub fn flags(&self) -> KeepFlags {
        KeepFlags {
            keep_last: self.keep_last.clone(),
            keep_hourly: self.keep_hourly.clone(),
            keep_daily: self.keep_daily.clone(),
            keep_weekly: self.keep_weekly.clone(),
            keep_monthly: self.keep_monthly.clone(),
            keep_yearly: self.keep_yearly.clone(),
            keep_within: self.keep_within.clone(),
            keep_pre_deploy: self.keep_pre_deploy.clone(),
            keep_pre_restore: self.keep_pre_restore.clone(),
        }
    }

    /// These flags over the configuration's defaults (see
    /// [`KeepFlags::with_config`]).
    pub fn with_config(&self, cfg: Option<&secureclaw_backup::tier::Config>) -> KeepFlags {
        self.flags().with_config(cfg)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Show what would be removed, and why each backup is kept or dropped;
    /// change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Prune an offsite tier of the configuration with its own policy
    /// (keep_within, keep_yearly, keep_last…) instead of the local destination
    #[arg(long, value_name = "NAME", conflicts_with = "dest")]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
}

/// The human rendering of a plan: the rules of each type, then one line per
/// backup with its decision and every reason for it.
pub fn human(dest: &Path, rules: &Retention, decisions: &[Decision], dry_run: bool) -> String {
    if decisions.is_empty() {
        return format!("No backups in {}: nothing to prune.\n", dest.display());
    }
    let mut out = String::from("Rules (UTC calendar buckets):\n");
    for (t, line) in rules.describe() {
        if decisions.iter().any(|d| d.btype == t) {
            out.push_str(&format!("  {:<12} {line}\n", t.as_str()));
        }
    }
    out.push('\n');
    let w = decisions.iter().map(|d| d.stem.len()).max().unwrap_or(0);
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
        let chain = match &d.chain {
            Some(c) => format!(" [chain {} level {}]", c.chain, c.level),
            None => String::new(),
        };
        out.push_str(&format!(
            "{verb:<12}  {:<w$}  {}{chain}{extra}\n",
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
    let now = Utc::now();
    let dry_run = args.dry_run;
    let (store, mut doc, rules): (Box<dyn Store>, _, Retention) = match &args.tier {
        Some(name) => {
            if args.keep.flags().any() {
                return Err(Error::usage(format!(
                    "--keep-* flags apply to the local destination, not to tier {name:?}"
                ))
                .hint("a tier's retention is in its [[tier]] of the configuration (keep_within, keep_daily, keep_yearly…)"));
            }
            let (tc, t) = args.config.tier(name)?;
            let Some(policy) = tc.policy()? else {
                let human = format!(
                    "{name}: no retention configured (keep_within / keep_yearly / keep_monthly / keep_weekly / keep_daily / keep_hourly): nothing to prune"
                );
                let doc = json!({"ok": true, "tier": name, "dry_run": dry_run,
                    "decisions": [], "removed": []});
                ui.result(human, doc);
                return Ok(());
            };
            let doc = json!({"ok": true, "tier": name, "url": t.url(), "dry_run": dry_run, "policy": policy});
            (t, doc, policy)
        }
        None => {
            let dest = store::dest_or_default(args.dest.as_deref())?;
            let cfg = args.config.load_optional()?;
            let policy = args.keep.with_config(cfg.as_ref()).retention()?;
            let doc = json!({"ok": true, "dest": dest, "dry_run": dry_run, "policy": policy});
            (Box::new(LocalStore::new(dest)), doc, policy)
        }
    };
    let decide = |a: &[Candidate]| match args.tier {
        Some(_) => tier::config::plan(&rules, a, now),
        None => prune::local_decisions(&rules, None, a, now),
    };
    let role = if args.tier.is_some() {
        "prune tier"
    } else {
        "prune"
    };
    let on_removed = &mut |n: &str| ui.detail(format!("removed {}", store.label(n)));
    let p = prune::prune_store(store.as_ref(), role, &decide, dry_run, on_removed)?;
    doc["decisions"] = json!(p.plan.decisions);
    doc["removed"] = json!(p.removed);
    doc["would_remove"] = json!(p.would_remove);
    ui.result(
        human(Path::new(&store.url()), &rules, &p.plan.decisions, dry_run),
        doc,
    );
    Ok(())
}
