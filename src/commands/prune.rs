//! `prune`: apply the retention policy of [`crate::retention`] to a destination.
//! Removes each dropped backup whole (every entry of its stem, and each entry's
//! `.sha256` sidecar; a legacy directory recursively, without following links);
//! names it does not recognise are never touched. `--dry-run` changes nothing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::{Error, Result};
use crate::retention::{self, Decision, Policy};
use crate::store::{self, BackupType};
use crate::ui::Ui;

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

/// Plans and (unless `dry_run`) applies the policy to the backups of `only`
/// (all types when `None`). The caller holds the destination lock.
pub fn prune_dest(
    dest: &Path,
    only: Option<BackupType>,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
    ui: &Ui,
) -> Result<(Vec<Decision>, Vec<String>)> {
    let archives = store::list_archives(dest)?;
    let decisions: Vec<Decision> = retention::plan(policy, &archives, now)
        .into_iter()
        .filter(|d| only.is_none_or(|t| d.btype == t))
        .collect();
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for d in decisions.iter().filter(|d| !d.keep) {
        for name in &d.entries {
            if dry_run {
                removed.extend(would_remove(dest, name));
                continue;
            }
            match remove_entry(dest, name) {
                Ok(names) => {
                    for n in &names {
                        ui.detail(format!("removed {}", dest.join(n).display()));
                    }
                    removed.extend(names);
                }
                Err(e) => failures.push(e),
            }
        }
    }
    if !dry_run && !removed.is_empty() {
        store::fsync_dir(dest)?;
    }
    if let Some(first) = failures.first() {
        let n = failures.len();
        return Err(Error::operational(format!(
            "could not remove {n} entr{} of dropped backups: {}",
            if n == 1 { "y" } else { "ies" },
            first.message
        ))
        .hint(first.hint.clone().unwrap_or_else(|| {
            "check the permissions of the destination, then run prune again".into()
        })));
    }
    Ok((decisions, removed))
}

/// Prunes only backups of `btype` (what `backup` calls after a successful run,
/// while it holds the destination lock). Returns every decision for that type.
pub fn prune_type(
    dest: &Path,
    btype: BackupType,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
    ui: &Ui,
) -> Result<Vec<Decision>> {
    let (decisions, _) = prune_dest(dest, Some(btype), policy, now, dry_run, ui)?;
    for d in decisions.iter().filter(|d| !d.keep) {
        ui.info(format!(
            "{} {} ({})",
            if dry_run { "would prune" } else { "pruned" },
            d.stem,
            d.reason
        ));
    }
    Ok(decisions)
}

/// The names a removal of `name` would take: the entry and its sidecar.
fn would_remove(dest: &Path, name: &str) -> Vec<String> {
    let mut out = vec![name.to_owned()];
    let side = format!("{name}.sha256");
    if fs::symlink_metadata(dest.join(&side)).is_ok() {
        out.push(side);
    }
    out
}

/// Removes one entry of a dropped backup and its sidecar, re-checking first that
/// the name is still one of ours and of the expected kind.
fn remove_entry(dest: &Path, name: &str) -> Result<Vec<String>> {
    let path = dest.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() || store::parse_name(name, ft.is_dir()).is_none() {
        // Replaced by something we do not recognise since listing: leave it.
        return Ok(vec![]);
    }
    let mut removed = Vec::new();
    let res = if ft.is_dir() {
        // std's remove_dir_all does not follow symbolic links inside.
        fs::remove_dir_all(&path)
    } else {
        fs::remove_file(&path)
    };
    match res {
        Ok(()) => removed.push(name.to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("removing", &path, e)),
    }
    if !ft.is_dir() {
        let side = store::sidecar_path(&path);
        match fs::remove_file(&side) {
            Ok(()) => removed.push(format!("{name}.sha256")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing sidecar", &side, e)),
        }
    }
    Ok(removed)
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
        return super::push::prune_tier(name, &args.config, args.dry_run, ui);
    }
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let policy = args.policy();
    let _lock = crate::lock::lock_dir(&dest, "prune")?;
    let (decisions, removed) = prune_dest(&dest, None, &policy, Utc::now(), args.dry_run, ui)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        fs::write(p, "x").unwrap();
    }

    #[test]
    fn removes_archive_sidecar_and_legacy_pairs_only() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 10, 12, 0, 0).unwrap();
        for day in 1..=9 {
            let n = format!("daily_202603{day:02}_020000.tar.gz.age");
            touch(&d.join(&n));
            touch(&d.join(format!("{n}.sha256")));
        }
        // legacy pair, oldest
        fs::create_dir_all(d.join("daily_20260201_020000/credentials")).unwrap();
        touch(&d.join("daily_20260201_020000/credentials/x"));
        touch(&d.join("daily_20260201_020000.tar.gz"));
        touch(&d.join("notes.txt"));
        touch(&d.join("daily_garbage.tar.gz.age"));
        let policy = Policy::default();
        let (ds, would) = prune_dest(d, None, &policy, now, true, &Ui::default()).unwrap();
        assert_eq!(ds.iter().filter(|d| !d.keep).count(), 3);
        assert_eq!(would.len(), 2 + 2 + 2);
        assert!(
            d.join("daily_20260201_020000").exists(),
            "dry run removes nothing"
        );

        let (_, removed) = prune_dest(d, None, &policy, now, false, &Ui::default()).unwrap();
        assert_eq!(removed, would);
        assert!(!d.join("daily_20260201_020000").exists());
        assert!(!d.join("daily_20260201_020000.tar.gz").exists());
        assert!(!d.join("daily_20260302_020000.tar.gz.age.sha256").exists());
        assert!(d.join("daily_20260303_020000.tar.gz.age.sha256").exists());
        assert!(d.join("notes.txt").exists());
        assert!(d.join("daily_garbage.tar.gz.age").exists());
        let left = store::list_archives(d).unwrap();
        assert_eq!(left.len(), 7);
    }

    #[test]
    fn prune_type_touches_only_its_type() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = Utc::now();
        for i in 0..5 {
            let ts = (now - chrono::TimeDelta::days(i)).format("%Y%m%d_%H%M%S");
            touch(&d.join(format!("weekly_{ts}.tar.gz.age")));
            touch(&d.join(format!("daily_{ts}.tar.gz.age")));
        }
        let policy = Policy {
            keep_daily: 1,
            keep_weekly: 1,
            ..Policy::default()
        };
        let ds = prune_type(d, BackupType::Daily, &policy, now, false, &Ui::default()).unwrap();
        assert!(ds.iter().all(|d| d.btype == BackupType::Daily));
        let left = store::list_archives(d).unwrap();
        assert_eq!(
            left.iter().filter(|a| a.btype == BackupType::Daily).count(),
            1
        );
        assert_eq!(
            left.iter()
                .filter(|a| a.btype == BackupType::Weekly)
                .count(),
            5
        );
    }
}
