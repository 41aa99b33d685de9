//! Retention applied to any store: [`plan`] lists the store once, asks the
//! retention rules (the local [`crate::retention::plan`], or a tier's
//! [`crate::tier::config::plan`]) for their decisions and turns the dropped
//! backups into the removals, as a value; `--dry-run` renders that plan and
//! the real run executes it ([`apply`]). Each dropped backup is removed whole
//! (every entry of its stem, and each file's `.sha256` sidecar, `.sig`
//! signature and `.meta` description; a legacy
//! directory recursively, without following links, by the local store);
//! names it does not recognise are never touched. Used by the `prune`
//! command, by `push` for a tier's retention and by `backup` after a
//! successful run; prints nothing (each removed name is reported to the
//! caller's `on_removed`).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::retention::{self, Decision, Policy};
use crate::store::{self, ArchiveName, BackupType, Container, LocalStore, Store};

/// One entry of a dropped backup, and its sidecar and companions (`.sig`,
/// `.meta`) when there are.
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    pub entry: String,
    pub sidecar: Option<String>,
    pub companions: Vec<String>,
}

/// What a prune decides, before anything is removed.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Every backup's decision, as the retention rules gave them.
    pub decisions: Vec<Decision>,
    /// The entries of the dropped backups, in the order of the decisions.
    pub removals: Vec<Removal>,
}

impl Plan {
    /// The names the plan removes (each entry, then its sidecar and
    /// companions).
    pub fn would_remove(&self) -> Vec<String> {
        self.removals
            .iter()
            .flat_map(|r| {
                std::iter::once(r.entry.clone())
                    .chain(r.sidecar.clone())
                    .chain(r.companions.iter().cloned())
            })
            .collect()
    }
}

/// Lists `store` and plans: `decide` gets its archives (oldest first) and
/// returns the decisions.
pub fn plan(store: &dyn Store, decide: &dyn Fn(&[ArchiveName]) -> Vec<Decision>) -> Result<Plan> {
    let index = store::index(store)?;
    let decisions = decide(&index.names());
    let removals = decisions
        .iter()
        .filter(|d| !d.keep)
        .flat_map(|d| d.entries.iter())
        .map(|name| {
            let listed = index
                .get(name)
                .filter(|l| l.archive.container != Container::Directory);
            Removal {
                entry: name.clone(),
                sidecar: listed
                    .filter(|l| l.sidecar)
                    .map(|_| store::sidecar_name(name)),
                companions: listed.map(|l| l.companions.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Plan {
        decisions,
        removals,
    })
}

/// Executes a plan: removes each entry (the store re-checks that it is still
/// ours) and then its sidecar and companions, goes on past a failure, makes the removals
/// durable, and fails at the end when any removal failed. Each name is passed
/// to `on_removed` as soon as it is gone; returns them all.
pub fn apply(
    store: &dyn Store,
    plan: &Plan,
    on_removed: &mut dyn FnMut(&str),
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for r in &plan.removals {
        let mut one = |name: &str| -> Result<bool> {
            let gone = store.remove(name)?;
            if gone {
                on_removed(name);
                removed.push(name.to_owned());
            }
            Ok(gone)
        };
        let res = one(&r.entry).and_then(|gone| {
            if gone {
                for c in r.sidecar.iter().chain(&r.companions) {
                    one(c)?;
                }
            }
            Ok(())
        });
        if let Err(e) = res {
            failures.push(e);
        }
    }
    if !removed.is_empty() {
        store.sync()?;
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
    Ok(removed)
}

/// The local retention's decisions for the backups of `only` (all types
/// when `None`).
pub fn local_decisions(
    policy: &Policy,
    only: Option<BackupType>,
    archives: &[ArchiveName],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    retention::plan(policy, archives, now)
        .into_iter()
        .filter(|d| only.is_none_or(|t| d.btype == t))
        .collect()
}

/// Plans and (unless `dry_run`) applies the policy to the backups of `only`
/// (all types when `None`) in the local destination `dest`. The caller holds
/// the destination lock. Returns the decisions and the names removed (or, in
/// a dry run, that would be); each path is also passed to `on_removed` as
/// soon as it is gone.
pub fn prune_dest(
    dest: &Path,
    only: Option<BackupType>,
    policy: &Policy,
    now: DateTime<Utc>,
    dry_run: bool,
    on_removed: &mut dyn FnMut(&Path),
) -> Result<(Vec<Decision>, Vec<String>)> {
    let s = LocalStore::new(dest);
    let p = plan(&s, &|a| local_decisions(policy, only, a, now))?;
    let removed = if dry_run {
        p.would_remove()
    } else {
        apply(&s, &p, &mut |n| on_removed(&dest.join(n)))?
    };
    Ok((p.decisions, removed))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
    #[test]
    fn one_plan_for_any_store_dry_run_equals_the_run() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 10, 12, 0, 0).unwrap();
        for day in 1..=4 {
            let n = format!("daily_202603{day:02}_020000.tar.gz.age");
            touch(&d.join(&n));
            if day != 2 {
                touch(&d.join(format!("{n}.sha256")));
            }
        }
        touch(&d.join("notes.txt"));
        let nas = store::DirStore::new(d.to_owned());
        let policy = Policy {
            keep_daily: 2,
            ..Policy::default()
        };
        let p = plan(&nas, &|a| local_decisions(&policy, None, a, now)).unwrap();
        assert_eq!(p.decisions.iter().filter(|d| !d.keep).count(), 2);
        // the sidecar is planned only where there is one
        assert_eq!(
            p.would_remove(),
            [
                "daily_20260302_020000.tar.gz.age",
                "daily_20260301_020000.tar.gz.age",
                "daily_20260301_020000.tar.gz.age.sha256"
            ]
        );
        let mut seen = Vec::new();
        let removed = apply(&nas, &p, &mut |n| seen.push(n.to_owned())).unwrap();
        assert_eq!(removed, p.would_remove());
        assert_eq!(seen, removed);
        assert!(d.join("notes.txt").exists());
        assert!(d.join("daily_20260303_020000.tar.gz.age.sha256").exists());
        // nothing left to drop: an empty plan, and applying it removes nothing
        let again = plan(&nas, &|a| local_decisions(&policy, None, a, now)).unwrap();
        assert!(again.removals.is_empty());
        assert!(apply(&nas, &again, &mut |_| {}).unwrap().is_empty());
    }

    #[test]
    fn companions_are_listed_and_removed_with_their_archive() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 10, 12, 0, 0).unwrap();
        for day in 1..=3 {
            let n = format!("daily_202603{day:02}_020000.tar.gz.age");
            touch(&d.join(&n));
            touch(&d.join(format!("{n}.sha256")));
            touch(&d.join(format!("{n}.sig")));
            if day != 2 {
                touch(&d.join(format!("{n}.meta")));
            }
        }
        // companions of an archive that is gone are orphans, not unrecognised
        touch(&d.join("daily_20260220_020000.tar.gz.age.sig"));
        touch(&d.join("daily_20260220_020000.tar.gz.age.meta"));
        touch(&d.join("notes.sig"));
        for local in [true, false] {
            let s: Box<dyn Store> = if local {
                Box::new(LocalStore::new(d))
            } else {
                Box::new(store::DirStore::new(d.to_owned()))
            };
            let index = store::index(s.as_ref()).unwrap();
            assert_eq!(index.archives.len(), 3);
            assert_eq!(
                index.archives[0].companions,
                [
                    "daily_20260301_020000.tar.gz.age.sig",
                    "daily_20260301_020000.tar.gz.age.meta"
                ]
            );
            assert_eq!(
                index.archives[1].companions,
                ["daily_20260302_020000.tar.gz.age.sig"]
            );
            assert!(index.archives.iter().all(|l| l.signed() && l.sidecar));
            assert_eq!(
                index.orphan_sidecars,
                [
                    "daily_20260220_020000.tar.gz.age.meta",
                    "daily_20260220_020000.tar.gz.age.sig"
                ]
            );
            assert_eq!(index.unrecognised, ["notes.sig"]);
        }
        let policy = Policy {
            keep_daily: 1,
            ..Policy::default()
        };
        let (_, removed) = prune_dest(d, None, &policy, now, false, &mut |_| {}).unwrap();
        assert_eq!(
            removed,
            [
                "daily_20260302_020000.tar.gz.age",
                "daily_20260302_020000.tar.gz.age.sha256",
                "daily_20260302_020000.tar.gz.age.sig",
                "daily_20260301_020000.tar.gz.age",
                "daily_20260301_020000.tar.gz.age.sha256",
                "daily_20260301_020000.tar.gz.age.sig",
                "daily_20260301_020000.tar.gz.age.meta",
            ]
        );
        for n in [".sha256", ".sig", ".meta"] {
            assert!(d
                .join(format!("daily_20260303_020000.tar.gz.age{n}"))
                .exists());
        }
        assert!(d.join("notes.sig").exists());
    }
}
