//! Pruning a local destination: applies the retention policy of
//! [`crate::retention`] and removes each dropped backup whole (every entry of
//! its stem, and each entry's `.sha256` sidecar; a legacy directory
//! recursively, without following links); names it does not recognise are
//! never touched. A dry run changes nothing. Used by the `prune` command and
//! by `backup` after a successful run; prints nothing (each removed path is
//! reported to the caller's `on_removed`).

use std::fs;
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::retention::{self, Decision, Policy};
use crate::store::{self, BackupType};

/// Plans and (unless `dry_run`) applies the policy to the backups of `only`
/// (all types when `None`). The caller holds the destination lock. Returns the
/// decisions and the names removed (or, in a dry run, that would be); each
/// path is also passed to `on_removed` as soon as it is gone.
pub fn prune_dest(
    dest: &Path,
    only: Option<BackupType>,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
    on_removed: &mut dyn FnMut(&Path),
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
                        on_removed(&dest.join(n));
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
    on_removed: &mut dyn FnMut(&Path),
) -> Result<Vec<Decision>> {
    let (decisions, _) = prune_dest(dest, Some(btype), policy, now, dry_run, on_removed)?;
    Ok(decisions)
}

/// One line per dropped backup of `decisions` ("pruned STEM (reason)", or
/// "would prune …" in a dry run): what `backup` reports after pruning.
pub fn dropped_lines(decisions: &[Decision], dry_run: bool) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| {
            format!(
                "{} {} ({})",
                if dry_run { "would prune" } else { "pruned" },
                d.stem,
                d.reason
            )
        })
        .collect()
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
        let (ds, would) = prune_dest(d, None, &policy, now, true, &mut |_| {}).unwrap();
        assert_eq!(ds.iter().filter(|d| !d.keep).count(), 3);
        assert_eq!(would.len(), 2 + 2 + 2);
        assert!(
            d.join("daily_20260201_020000").exists(),
            "dry run removes nothing"
        );

        let (_, removed) = prune_dest(d, None, &policy, now, false, &mut |_| {}).unwrap();
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
        let ds = prune_type(d, BackupType::Daily, &policy, now, false, &mut |_| {}).unwrap();
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
