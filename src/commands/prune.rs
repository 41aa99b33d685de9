//! `prune`: apply the retention policy to a destination (see [`secureclaw_backup::prune`]
//! for what is removed) or, with `--tier`, a tier's own policy to that tier:
//! one plan over the store, rendered by `--dry-run` (which changes nothing)
//! and executed by the real run.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::prune;
use secureclaw_backup::retention::{Candidate, Decision, KeepFlag, Retention};
use secureclaw_backup::store::{self, BackupType, LocalStore, Store};
use secureclaw_backup::tier;

/// Whether flag values `given` set a rule for `btype` (`TYPE=…`, or a bare
/// value when the flag's bare form means `bare_type`, or every type).
fn self_sets(given: &[String], btype: &str, bare_type: Option<&str>) -> bool {
    given.iter().any(|v| match v.split_once('=') {
        Some((t, _)) => t == btype,
        None => bare_type.is_none_or(|b| b == btype),
    })
}

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
    /// These flags over the `[backup.retention.<type>]` defaults of the
    /// configuration: a default is dropped where a flag sets the same rule
    /// for the same type (a bare value counts for the type it applies to).
    pub fn with_config(&self, cfg: Option<&secureclaw_backup::tier::Config>) -> KeepArgs {
        let mut out = self.clone();
        let Some(cfg) = cfg else {
            return out;
        };
        for (btype, keep) in &cfg.backup.retention {
            for (flag, value) in keep.flags(btype) {
                let (given, bare_type) = match flag {
                    "keep-last" => (&mut out.keep_last, None),
                    "keep-hourly" => (&mut out.keep_hourly, None),
                    "keep-daily" => (&mut out.keep_daily, Some("daily")),
                    "keep-weekly" => (&mut out.keep_weekly, Some("weekly")),
                    "keep-monthly" => (&mut out.keep_monthly, None),
                    "keep-yearly" => (&mut out.keep_yearly, None),
                    _ => (&mut out.keep_within, None),
                };
                let overridden = self_sets(given, btype, bare_type)
                    || (flag == "keep-last"
                        && ((btype == "pre-deploy" && self.keep_pre_deploy.is_some())
                            || (btype == "pre-restore" && self.keep_pre_restore.is_some())));
                if !overridden {
                    given.push(value);
                }
            }
        }
        out
    }

    /// The rules: the defaults changed by the flags given (usage error, exit
    /// 2, for a bad value or a flag given twice for one type).
    pub fn retention(&self) -> Result<Retention> {
        let mut flags: Vec<(KeepFlag, String)> = Vec::new();
        for (flag, values) in [
            (KeepFlag::Last, &self.keep_last),
            (KeepFlag::Hourly, &self.keep_hourly),
            (KeepFlag::Daily, &self.keep_daily),
            (KeepFlag::Weekly, &self.keep_weekly),
            (KeepFlag::Monthly, &self.keep_monthly),
            (KeepFlag::Yearly, &self.keep_yearly),
            (KeepFlag::Within, &self.keep_within),
        ] {
            flags.extend(values.iter().map(|v| (flag, v.clone())));
        }
        for (legacy, t, value) in [
            ("--keep-pre-deploy", "pre-deploy", &self.keep_pre_deploy),
            ("--keep-pre-restore", "pre-restore", &self.keep_pre_restore),
        ] {
            if let Some(v) = value {
                if v.contains('=') {
                    return Err(Error::usage(format!("{legacy} {v:?}: takes a number only"))
                        .hint(format!("write {legacy} N, or --keep-last {t}=N")));
                }
                flags.push((KeepFlag::Last, format!("{t}={v}")));
            }
        }
        let mut r = Retention::from_flags(flags.iter().map(|(f, v)| (*f, v.as_str())))?;
        // The old count as a floor: N days of daily backups also keep the N
        // newest daily backups (N weeks of weekly ones the N newest weekly),
        // what `--keep-daily N` / `--keep-weekly N` counted before, so that
        // no schedule keeps fewer backups than it did (a second run on the
        // same day does not remove the first). An explicit --keep-last for
        // the type replaces the floor.
        for t in [BackupType::Daily, BackupType::Weekly] {
            let explicit = self.keep_last.iter().any(|v| match v.split_once('=') {
                Some((ty, _)) => BackupType::parse(ty.trim()) == Some(t),
                None => true,
            });
            if !explicit {
                let rules = r.rules_mut(t);
                rules.keep_last = if t == BackupType::Daily {
                    rules.keep_daily
                } else {
                    rules.keep_weekly
                };
            }
        }
        Ok(r)
    }

    /// Whether any retention flag was given.
    pub fn any(&self) -> bool {
        [
            &self.keep_last,
            &self.keep_hourly,
            &self.keep_daily,
            &self.keep_weekly,
            &self.keep_monthly,
            &self.keep_yearly,
            &self.keep_within,
        ]
        .iter()
        .any(|v| !v.is_empty())
            || self.keep_pre_deploy.is_some()
            || self.keep_pre_restore.is_some()
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

/// The retention rules of the store being pruned.
type Decide = Box<dyn Fn(&[Candidate]) -> Vec<Decision>>;

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let now = Utc::now();
    let dry_run = args.dry_run;
    let (store, mut doc, rules, decide): (Box<dyn Store>, _, Retention, Decide) = match &args.tier {
        Some(name) => {
            if args.keep.any() {
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
            let rules = policy.clone();
            (
                t,
                doc,
                rules,
                Box::new(move |a: &[Candidate]| tier::config::plan(&policy, a, now)),
            )
        }
        None => {
            let dest = store::dest_or_default(args.dest.as_deref())?;
            let cfg = args.config.load_optional()?;
            let policy = args.keep.with_config(cfg.as_ref()).retention()?;
            let doc = json!({"ok": true, "dest": dest, "dry_run": dry_run, "policy": policy});
            let rules = policy.clone();
            let decide = move |a: &[Candidate]| prune::local_decisions(&policy, None, a, now);
            (
                Box::new(LocalStore::new(dest)),
                doc,
                rules,
                Box::new(decide),
            )
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
        human(Path::new(&store.url()), &rules, &plan.decisions, dry_run),
        doc,
    );
    Ok(())
}
