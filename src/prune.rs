//! Retention applied to any store: [`plan`] lists the store once, reads the
//! chain position of each archive from its keyless `<archive>.meta`
//! ([`candidates`], through the store, so the same for the local
//! destination, a NAS directory and a bucket; an archive without one is a
//! full, as every archive made before incremental chains), asks the retention
//! rules ([`crate::retention::plan_calendar`] with the local rules, or a
//! tier's [`crate::tier::config::plan`]) for their decisions and turns the
//! dropped backups into the removals, as a value; `--dry-run` renders that
//! plan and the real run executes it ([`apply`]). Each dropped backup is
//! removed whole (every entry of its stem, and each file's `.sha256`
//! sidecar, `.sig` signature and `.meta` description; a legacy
//! directory recursively, without following links, by the local store);
//! names it does not recognise are never touched. Used by the `prune`
//! command, by `push` for a tier's retention and by `backup` after a
//! successful run; prints nothing (each removed name is reported to the
//! caller's `on_removed`). Also owns the retention flag values of `prune`
//! and `backup` ([`KeepFlags`]: over the configuration's defaults, into
//! [`Retention`]).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::retention::{self, Candidate, ChainPos, Decision, KeepFlag, Retention};
use crate::store::{self, BackupType, Container, Index, Listed, LocalStore, Store};

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

/// The chain position `<archive>.meta` gives a listed archive: `Ok(None)`
/// for an archive without a description or one that is not a link of a
/// chain (a full made before chains), `Err(why)` when the description is
/// there but cannot be read or is not this archive's.
pub fn chain_of(store: &dyn Store, l: &Listed) -> std::result::Result<Option<ChainPos>, String> {
    let name = &l.archive.name;
    let meta_name = crate::meta::meta_name(name);
    if !l.companions.contains(&meta_name) {
        return Ok(None);
    }
    let bytes = match store.read_small(&meta_name) {
        Ok(Some(b)) => b,
        // removed since the listing: described by its name alone
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.message),
    };
    let m =
        crate::meta::Meta::parse(&bytes, name, &store.label(&meta_name)).map_err(|e| e.message)?;
    let Some(c) = m.chain else {
        return Ok(None);
    };
    let predecessor = match &c.previous {
        None => None,
        Some(p) => Some(
            store::parse_name(p, false)
                .ok_or_else(|| {
                    format!(
                        "its predecessor {:?} is not an archive name",
                        crate::text::cut(p, 200)
                    )
                })?
                .stem(),
        ),
    };
    Ok(Some(ChainPos {
        chain: c.id,
        level: c.level,
        predecessor,
    }))
}

/// The retention candidates of a listed store: every archive with its chain
/// position from its `.meta` ([`chain_of`]; one small read per described
/// archive), oldest first.
pub fn candidates(store: &dyn Store, index: &Index) -> Vec<Candidate> {
    index
        .archives
        .iter()
        .map(|l| {
            let mut c = Candidate::from(l.archive.clone());
            match chain_of(store, l) {
                Ok(chain) => c.chain = chain,
                Err(why) => c.meta_problem = Some(why),
            }
            c
        })
        .collect()
}

/// Lists `store` and plans: `decide` gets its archives (oldest first, with
/// their chain positions, [`candidates`]) and returns the decisions.
pub fn plan(store: &dyn Store, decide: &dyn Fn(&[Candidate]) -> Vec<Decision>) -> Result<Plan> {
    let index = store::index(store)?;
    let decisions = decide(&candidates(store, &index));
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

/// What a prune of one store did: its plan, the names removed (none in a
/// dry run) and, in a dry run, the names that would be.
#[derive(Debug, Clone)]
pub struct Pruned {
    pub plan: Plan,
    pub removed: Vec<String>,
    pub would_remove: Vec<String>,
}

/// Locks `store` (as `role`), plans with `decide` and, unless `dry_run`,
/// applies the plan (each removed name passed to `on_removed`).
pub fn prune_store(
    store: &dyn Store,
    role: &str,
    decide: &dyn Fn(&[Candidate]) -> Vec<Decision>,
    dry_run: bool,
    on_removed: &mut dyn FnMut(&str),
) -> Result<Pruned> {
    let _lock = crate::lock::lock_dir(&store.lock_key(), role)?;
    let plan = plan(store, decide)?;
    let (removed, would_remove) = if dry_run {
        (Vec::new(), plan.would_remove())
    } else {
        (apply(store, &plan, on_removed)?, Vec::new())
    };
    Ok(Pruned {
        plan,
        removed,
        would_remove,
    })
}

/// The local retention's decisions for the backups of `only` (all types
/// when `None`).
pub fn local_decisions(
    retention: &Retention,
    only: Option<BackupType>,
    candidates: &[Candidate],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    retention::plan_calendar(retention, candidates, now)
        .into_iter()
        .filter(|d| only.is_none_or(|t| d.btype == t))
        .collect()
}

/// Plans and (unless `dry_run`) applies the rules to the backups of `only`
/// (all types when `None`) in the local destination `dest`. The caller holds
/// the destination lock. Returns the decisions and the names removed (or, in
/// a dry run, that would be); each path is also passed to `on_removed` as
/// soon as it is gone.
pub fn prune_dest(
    dest: &Path,
    only: Option<BackupType>,
    retention: &Retention,
    now: DateTime<Utc>,
    dry_run: bool,
    on_removed: &mut dyn FnMut(&Path),
) -> Result<(Vec<Decision>, Vec<String>)> {
    let s = LocalStore::new(dest);
    let p = plan(&s, &|a| local_decisions(retention, only, a, now))?;
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
    retention: &Retention,
    now: DateTime<Utc>,
    dry_run: bool,
    on_removed: &mut dyn FnMut(&Path),
) -> Result<Vec<Decision>> {
    let (decisions, _) = prune_dest(dest, Some(btype), retention, now, dry_run, on_removed)?;
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

/// Whether flag values `given` set a rule for `btype` (`TYPE=…`, or a bare
/// value when the flag's bare form means `bare_type`, or every type).
fn self_sets(given: &[String], btype: &str, bare_type: Option<&str>) -> bool {
    given.iter().any(|v| match v.split_once('=') {
        Some((t, _)) => t == btype,
        None => bare_type.is_none_or(|b| b == btype),
    })
}

/// The values of the retention flags of `prune` and `backup`, as given
/// (see "Retention" in the README): `[TYPE=]VALUE` each, `TYPE=` one of
/// daily, weekly, pre-deploy, pre-restore; the two legacy counts a number.
#[derive(Debug, Clone, Default)]
pub struct KeepFlags {
    pub keep_last: Vec<String>,
    pub keep_hourly: Vec<String>,
    pub keep_daily: Vec<String>,
    pub keep_weekly: Vec<String>,
    pub keep_monthly: Vec<String>,
    pub keep_yearly: Vec<String>,
    pub keep_within: Vec<String>,
    pub keep_pre_deploy: Option<String>,
    pub keep_pre_restore: Option<String>,
}

impl KeepFlags {
    /// These flags over the `[backup.retention.<type>]` defaults of the
    /// configuration: a default is dropped where a flag sets the same rule
    /// for the same type (a bare value counts for the type it applies to).
    pub fn with_config(&self, cfg: Option<&crate::tier::Config>) -> KeepFlags {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The local store and a NAS directory store over the same `d`.
    fn both_stores(d: &Path) -> [Box<dyn Store>; 2] {
        [
            Box::new(LocalStore::new(d)),
            Box::new(store::DirStore::new(d.to_owned())),
        ]
    }

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
        let policy = Retention::default();
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
        let mut policy = Retention::default();
        policy.daily.keep_daily = 1;
        policy.weekly.keep_weekly = 1;
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
        let mut policy = Retention::default();
        policy.daily.keep_daily = 2;
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
                // a valid description (a full): an unreadable one would keep
                // its archive (see damaged_meta_keeps_its_archive)
                let ts = format!("202603{day:02}_020000");
                let m = crate::meta::Meta::new(&n, "daily", &ts, "h", "age");
                fs::write(d.join(format!("{n}.meta")), m.to_bytes()).unwrap();
            }
        }
        // companions of an archive that is gone are orphans, not unrecognised
        touch(&d.join("daily_20260220_020000.tar.gz.age.sig"));
        touch(&d.join("daily_20260220_020000.tar.gz.age.meta"));
        touch(&d.join("notes.sig"));
        for s in both_stores(d) {
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
        let mut policy = Retention::default();
        policy.daily.keep_daily = 1;
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

    /// Writes `name` and a `.meta` describing it as link `level` of `chain`
    /// on top of `previous`.
    fn link(d: &Path, name: &str, chain: &str, level: u32, previous: Option<&str>) {
        touch(&d.join(name));
        let a = store::parse_name(name, false).unwrap();
        let ts = a.time.format("%Y%m%d_%H%M%S").to_string();
        let mut m = crate::meta::Meta::new(name, a.btype.as_str(), &ts, "h", "age");
        m.chain = Some(crate::manifest::Chain {
            id: chain.into(),
            level,
            previous: previous.map(str::to_owned),
        });
        fs::write(d.join(crate::meta::meta_name(name)), m.to_bytes()).unwrap();
    }

    #[test]
    fn chains_from_meta_through_any_store_and_damaged_meta_keeps_its_archive() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 10, 12, 0, 0).unwrap();
        // day 8: full 00:00, links 01:00, 02:00; day 9 (a new chain) 00:00 + 01:00
        let n = |day: u32, h: u32| format!("daily_202603{day:02}_{h:02}0000.tar.gz.age");
        link(d, &n(8, 0), "c8", 0, None);
        link(d, &n(8, 1), "c8", 1, Some(&n(8, 0)));
        link(d, &n(8, 2), "c8", 2, Some(&n(8, 1)));
        link(d, &n(9, 0), "c9", 0, None);
        link(d, &n(9, 1), "c9", 1, Some(&n(9, 0)));
        // an older archive whose description is damaged
        touch(&d.join(n(7, 0)));
        fs::write(d.join(format!("{}.meta", n(7, 0))), "{not json").unwrap();
        let mut r = Retention::default();
        r.daily.keep_daily = 1;
        for s in both_stores(d) {
            let index = store::index(s.as_ref()).unwrap();
            let c = candidates(s.as_ref(), &index);
            assert_eq!(c.len(), 6);
            assert!(c[0].meta_problem.is_some(), "{c:?}");
            assert_eq!(
                c[2].chain.as_ref().unwrap().predecessor.as_deref(),
                Some("daily_20260308_000000")
            );
            let p = plan(s.as_ref(), &|a| local_decisions(&r, None, a, now)).unwrap();
            let kept: Vec<&str> = p
                .decisions
                .iter()
                .filter(|d| d.keep)
                .map(|d| d.stem.as_str())
                .collect();
            // day 9's chain whole (its newest link is the day's backup), the
            // damaged one, and nothing of day 8: a chain removed whole
            assert_eq!(
                kept,
                [
                    "daily_20260309_010000",
                    "daily_20260309_000000",
                    "daily_20260307_000000"
                ]
            );
            assert!(p.decisions[1]
                .reason
                .contains("needed by kept link daily_20260309_010000"));
            assert!(
                p.decisions[5]
                    .reason
                    .contains(".meta description is unreadable"),
                "{}",
                p.decisions[5].reason
            );
            assert!(p.would_remove().contains(&format!("{}.meta", n(8, 2))));
        }
    }
}
