//! Tests of the calendar planner ([`super::plan_calendar`]) and its CLI value
//! parser ([`super::Retention::from_flags`]): tables over 30 simulated days of
//! hourly runs, ISO weeks across a year boundary, `keep_within`, `keep_last`,
//! incremental chains, legacy stems.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::error::ErrorKind;
use crate::store::parse_name;

fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

/// The 30 simulated days: 2026-11-01T00 .. 2026-11-30T23, one run an hour.
fn start() -> DateTime<Utc> {
    at(2026, 11, 1, 0)
}
fn now() -> DateTime<Utc> {
    at(2026, 12, 1, 0) + TimeDelta::minutes(30)
}

fn stem_of(t: BackupType, time: DateTime<Utc>) -> String {
    crate::store::stem(t, time, 0)
}

fn cand(t: BackupType, time: DateTime<Utc>) -> Candidate {
    let n = format!("{}.tar.gz.age", stem_of(t, time));
    Candidate::from(parse_name(&n, false).unwrap())
}

/// `n` hourly runs of type `t` from `from`.
fn hourly(t: BackupType, from: DateTime<Utc>, n: i64) -> Vec<Candidate> {
    (0..n)
        .map(|i| cand(t, from + TimeDelta::hours(i)))
        .collect()
}

fn kept(ds: &[Decision]) -> Vec<&Decision> {
    ds.iter().filter(|d| d.keep).collect()
}

fn kept_stems(ds: &[Decision]) -> Vec<String> {
    kept(ds).iter().map(|d| d.stem.clone()).collect()
}

fn only(t: BackupType, rules: Rules) -> Retention {
    let mut r = Retention::default();
    *r.rules_mut(t) = rules;
    r
}

/// What every plan must satisfy, whatever the rules.
fn check_invariants(ds: &[Decision], what: &str) {
    for d in ds {
        assert!(!d.reasons.is_empty(), "{what}: {} has no reason", d.stem);
        assert_eq!(
            d.reason,
            d.reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        );
        let dropped = d
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::Dropped { .. }));
        assert_eq!(dropped, !d.keep, "{what}: {} {:?}", d.stem, d.reasons);
        if !d.keep {
            assert!(
                d.reasons.iter().all(|r| matches!(
                    r,
                    Reason::Dropped { .. } | Reason::MissingPredecessor { .. }
                )),
                "{what}: {:?}",
                d.reasons
            );
        }
    }
    // The newest backup of each type is always kept.
    for t in BackupType::ALL {
        if let Some(d) = ds.iter().find(|d| d.btype == t) {
            assert!(d.keep, "{what}: newest {} dropped", d.stem);
        }
    }
    // Chains: no kept link without its predecessor; every chain's kept
    // links are a prefix of the chain.
    let by_stem: BTreeMap<&str, &Decision> = ds.iter().map(|d| (d.stem.as_str(), d)).collect();
    let mut chains: BTreeMap<&str, Vec<&Decision>> = BTreeMap::new();
    for d in ds {
        if let Some(c) = &d.chain {
            chains.entry(c.chain.as_str()).or_default().push(d);
            if d.keep {
                if let Some(p) = &c.predecessor {
                    if let Some(pd) = by_stem.get(p.as_str()) {
                        assert!(pd.keep, "{what}: kept {} lost predecessor {p}", d.stem);
                    }
                }
            }
        }
    }
    for (id, mut links) in chains {
        links.sort_by_key(|d| (d.chain.as_ref().unwrap().level, d.time, d.seq));
        let first_drop = links.iter().position(|d| !d.keep).unwrap_or(links.len());
        assert!(
            links[first_drop..].iter().all(|d| !d.keep),
            "{what}: chain {id} cut in the middle: {:?}",
            links
                .iter()
                .map(|d| (d.stem.as_str(), d.keep))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn thirty_days_hourly_defaults_keep_seven_days() {
    let runs = hourly(BackupType::Daily, start(), 720);
    let ds = plan_calendar(&Retention::default(), &runs, now());
    check_invariants(&ds, "defaults");
    assert_eq!(ds.len(), 720);
    let k = kept(&ds);
    assert_eq!(k.len(), 7, "{:#?}", kept_stems(&ds));
    // The newest backup (23:00) of each of the 7 newest days, newest first.
    for (i, d) in k.iter().enumerate() {
        let day = at(2026, 11, 30 - i as u32, 23);
        assert_eq!(d.stem, stem_of(BackupType::Daily, day));
        assert_eq!(
            d.reason,
            format!("daily bucket {} ({} of 7)", day.format("%Y-%m-%d"), i + 1)
        );
    }
    let days: BTreeSet<_> = k.iter().map(|d| d.time.date_naive()).collect();
    assert_eq!(days.len(), 7);
    for d in ds.iter().filter(|d| !d.keep) {
        assert_eq!(d.reason, "dropped: beyond 7 daily buckets");
    }

    // The other types, each with its own default over the same 30 days.
    let mut all = Vec::new();
    for t in BackupType::ALL {
        all.extend(hourly(t, start(), 720));
    }
    let ds = plan_calendar(&Retention::default(), &all, now());
    check_invariants(&ds, "all types");
    let per_type = |t: BackupType| -> Vec<String> {
        ds.iter()
            .filter(|d| d.btype == t && d.keep)
            .map(|d| d.stem.clone())
            .collect()
    };
    assert_eq!(per_type(BackupType::Daily).len(), 7);
    assert_eq!(
        per_type(BackupType::Weekly),
        [30, 29, 22, 15]
            .iter()
            .map(|d| stem_of(BackupType::Weekly, at(2026, 11, *d, 23)))
            .collect::<Vec<_>>(),
        "newest of ISO weeks 49, 48, 47, 46"
    );
    assert_eq!(
        per_type(BackupType::PreDeploy),
        (0..3)
            .map(|h| stem_of(BackupType::PreDeploy, at(2026, 11, 30, 23 - h)))
            .collect::<Vec<_>>()
    );
    assert_eq!(per_type(BackupType::PreRestore).len(), 3);
    // Output order: types in ALL order, newest first.
    let order: Vec<_> = ds
        .iter()
        .map(|d| (d.btype, std::cmp::Reverse(d.time)))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn thirty_days_hourly_rule_table() {
    let runs = hourly(BackupType::Daily, start(), 720);
    let r = |f: fn(&mut Rules)| {
        let mut x = Rules::default();
        f(&mut x);
        x
    };
    // (name, rules, kept)
    let cases: Vec<(&str, Rules, usize)> = vec![
        (
            "keep_last 7: the old count semantics, 7 hours",
            r(|x| x.keep_last = 7),
            7,
        ),
        ("keep_hourly 24", r(|x| x.keep_hourly = 24), 24),
        (
            "hourly 24 + daily 7 share the newest",
            r(|x| {
                x.keep_hourly = 24;
                x.keep_daily = 7
            }),
            24 + 6,
        ),
        (
            "daily 7 + weekly 4 share two",
            r(|x| {
                x.keep_daily = 7;
                x.keep_weekly = 4
            }),
            7 + 2,
        ),
        ("daily 40 > days there are", r(|x| x.keep_daily = 40), 30),
        ("daily unlimited", r(|x| x.keep_daily = UNLIMITED), 30),
        (
            "weekly 10: six ISO weeks exist",
            r(|x| x.keep_weekly = 10),
            6,
        ),
        ("monthly 12: one month", r(|x| x.keep_monthly = 12), 1),
        ("yearly 3: one year", r(|x| x.keep_yearly = 3), 1),
        (
            "within 7d of the newest",
            r(|x| x.keep_within = Some(TimeDelta::days(7))),
            7 * 24,
        ),
        (
            "within 36h",
            r(|x| x.keep_within = Some(TimeDelta::hours(36))),
            36,
        ),
        (
            "last 1 + within 1d overlap",
            r(|x| {
                x.keep_last = 1;
                x.keep_within = Some(TimeDelta::days(1))
            }),
            24,
        ),
        (
            "last 30 + daily 7: the hours of the last day and a bit, plus 6 days",
            r(|x| {
                x.keep_last = 30;
                x.keep_daily = 7
            }),
            30 + 5,
        ),
        ("no rule keeps everything", Rules::default(), 720),
        (
            "a zero keep_within is no rule",
            r(|x| x.keep_within = Some(TimeDelta::zero())),
            720,
        ),
    ];
    for (name, rules, want) in cases {
        let ds = plan_calendar(&only(BackupType::Daily, rules), &runs, now());
        check_invariants(&ds, name);
        let k = kept(&ds);
        assert_eq!(k.len(), want, "{name}: {:#?}", kept_stems(&ds));
        // Never more than the rules allow.
        let bound = rules.keep_last.saturating_add(
            Unit::ALL
                .iter()
                .map(|u| rules.bucket_count(*u))
                .fold(0usize, |a, b| a.saturating_add(b)),
        );
        if !rules.is_empty() && rules.keep_within.is_none() {
            assert!(k.len() <= bound, "{name}");
        }
        // A bucket reason always names the newest backup of its bucket.
        for d in &k {
            for reason in &d.reasons {
                if let Reason::Bucket { unit, bucket, .. } = reason {
                    assert!(
                        runs.iter()
                            .filter(|c| unit.bucket(c.name.time) == *bucket)
                            .all(|c| c.name.time <= d.time),
                        "{name}: {} is not the newest of {bucket}",
                        d.stem
                    );
                }
            }
        }
    }
}

#[test]
fn weekly_monthly_yearly_buckets_across_a_year_boundary() {
    // One weekly-type run a day, 2026-12-14 .. 2027-01-10 at 03:00.
    let runs: Vec<Candidate> = (0..28)
        .map(|i| cand(BackupType::Weekly, at(2026, 12, 14, 3) + TimeDelta::days(i)))
        .collect();
    let now = at(2027, 1, 11, 0);
    let rules = Rules {
        keep_weekly: 3,
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Weekly, rules), &runs, now);
    check_invariants(&ds, "weekly");
    let k = kept(&ds);
    let got: Vec<(String, &str)> = k
        .iter()
        .map(|d| (d.time.format("%Y-%m-%d").to_string(), d.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2027-01-10".into(), "weekly bucket 2027-W01 (1 of 3)"),
            // 2026-12-28 .. 2027-01-03 is one ISO week of ISO year 2026.
            ("2027-01-03".into(), "weekly bucket 2026-W53 (2 of 3)"),
            ("2026-12-27".into(), "weekly bucket 2026-W52 (3 of 3)"),
        ]
    );

    let rules = Rules {
        keep_monthly: 2,
        keep_yearly: 2,
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Weekly, rules), &runs, now);
    check_invariants(&ds, "monthly+yearly");
    let got: Vec<(String, String)> = kept(&ds)
        .iter()
        .map(|d| (d.time.format("%Y-%m-%d").to_string(), d.reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "2027-01-10".into(),
                "monthly bucket 2027-01 (1 of 2); yearly bucket 2027 (1 of 2)".into()
            ),
            (
                "2026-12-31".into(),
                "monthly bucket 2026-12 (2 of 2); yearly bucket 2026 (2 of 2)".into()
            ),
        ]
    );
    for d in ds.iter().filter(|d| !d.keep) {
        assert_eq!(
            d.reason,
            "dropped: beyond 2 monthly buckets, 2 yearly buckets"
        );
    }

    // Buckets only count when they hold a backup: a gap of two weeks costs
    // no slot.
    let sparse = vec![
        cand(BackupType::Weekly, at(2026, 12, 1, 3)),
        cand(BackupType::Weekly, at(2026, 12, 3, 3)),
        cand(BackupType::Weekly, at(2027, 1, 5, 3)),
    ];
    let rules = Rules {
        keep_weekly: 2,
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Weekly, rules), &sparse, now);
    assert_eq!(
        kept_stems(&ds),
        vec![
            stem_of(BackupType::Weekly, at(2027, 1, 5, 3)),
            stem_of(BackupType::Weekly, at(2026, 12, 3, 3)),
        ]
    );
}

#[test]
fn keep_within_is_relative_to_the_newest_backup_not_now() {
    // Backups stopped 20 days before `now`: a prune must not age the last
    // good ones out.
    let runs = hourly(BackupType::Daily, start(), 240); // Nov 1 .. Nov 10
    let late = at(2026, 11, 30, 12);
    let rules = Rules {
        keep_within: Some(TimeDelta::days(2)),
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Daily, rules), &runs, late);
    check_invariants(&ds, "within");
    let k = kept(&ds);
    assert_eq!(k.len(), 48);
    assert_eq!(
        k[0].reason,
        "within 2d of the newest (2026-11-10 23:00:00 UTC)"
    );
    assert_eq!(k[47].time, at(2026, 11, 9, 0));
    assert_eq!(
        ds.iter().find(|d| !d.keep).unwrap().reason,
        "dropped: beyond 2d of the newest"
    );
    // The count planner's keep_within, by contrast, is relative to now.
    let archives: Vec<ArchiveName> = runs.iter().map(|c| c.name.clone()).collect();
    let legacy = plan(
        &Policy {
            keep_daily: 0,
            keep_within: Some(TimeDelta::days(2)),
            ..Policy::default()
        },
        &archives,
        late,
    );
    assert_eq!(legacy.iter().filter(|d| d.keep).count(), 0);
}

#[test]
fn future_dated_backups_are_kept_and_count_for_nothing() {
    let mut runs = hourly(BackupType::Daily, start(), 720);
    // A clock a year ahead, and one a day ahead.
    let far = at(2027, 12, 1, 5);
    let near = at(2026, 12, 1, 5);
    runs.push(cand(BackupType::Daily, far));
    runs.push(cand(BackupType::Daily, near));
    let rules = Rules {
        keep_daily: 2,
        keep_within: Some(TimeDelta::hours(3)),
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Daily, rules), &runs, now());
    check_invariants(&ds, "future");
    let k = kept_stems(&ds);
    assert_eq!(
        k,
        vec![
            stem_of(BackupType::Daily, far),
            stem_of(BackupType::Daily, near),
            stem_of(BackupType::Daily, at(2026, 11, 30, 23)),
            stem_of(BackupType::Daily, at(2026, 11, 30, 22)),
            stem_of(BackupType::Daily, at(2026, 11, 30, 21)),
            stem_of(BackupType::Daily, at(2026, 11, 29, 23)),
        ]
    );
    assert_eq!(ds[0].reasons, vec![Reason::Future]);
}

#[test]
fn keep_last_counts_backups_like_the_old_policy() {
    // Same-second names: the suffix orders them, as in the count planner.
    let names = [
        "pre-deploy_20261130_020000.tar.gz.age",
        "pre-deploy_20261130_020000_1.tar.gz.age",
        "pre-deploy_20261130_020000_2.tar.gz.age",
        "pre-deploy_20261130_020000_10.tar.gz.age",
        "pre-deploy_20261129_020000.tar.gz.age",
    ];
    let cands: Vec<Candidate> = names
        .iter()
        .map(|n| Candidate::from(parse_name(n, false).unwrap()))
        .collect();
    let ds = plan_calendar(&Retention::default(), &cands, now());
    check_invariants(&ds, "pre-deploy");
    assert_eq!(
        kept(&ds)
            .iter()
            .map(|d| (d.stem.as_str(), d.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("pre-deploy_20261130_020000_10", "last (1 of 3)"),
            ("pre-deploy_20261130_020000_2", "last (2 of 3)"),
            ("pre-deploy_20261130_020000_1", "last (3 of 3)"),
        ]
    );
    // For every candidate set without chains, keep_last N per type gives
    // exactly the count planner's keeps (without keep_within).
    let mut all = Vec::new();
    for t in BackupType::ALL {
        all.extend(hourly(t, start(), 50));
    }
    let archives: Vec<ArchiveName> = all.iter().map(|c| c.name.clone()).collect();
    let p = Policy::default();
    let mut r = Retention::default();
    for t in BackupType::ALL {
        *r.rules_mut(t) = Rules {
            keep_last: p.count_for(t),
            ..Rules::default()
        };
    }
    let a: Vec<(String, bool)> = plan(&p, &archives, now())
        .into_iter()
        .map(|d| (d.stem, d.keep))
        .collect();
    let b: Vec<(String, bool)> = plan_calendar(&r, &all, now())
        .into_iter()
        .map(|d| (d.stem, d.keep))
        .collect();
    assert_eq!(a, b);
}

#[test]
fn legacy_stems_count_as_one_backup() {
    // A plaintext dir and its .tar.gz share a stem: one backup, one bucket,
    // kept or dropped together.
    let mut cands = Vec::new();
    for day in 25..=30 {
        let stem = stem_of(BackupType::Daily, at(2026, 11, day, 2));
        cands.push(Candidate::from(parse_name(&stem, true).unwrap()));
        cands.push(Candidate::from(
            parse_name(&format!("{stem}.tar.gz"), false).unwrap(),
        ));
    }
    let rules = Rules {
        keep_daily: 4,
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Daily, rules), &cands, now());
    check_invariants(&ds, "legacy");
    assert_eq!(ds.len(), 6);
    assert_eq!(kept(&ds).len(), 4);
    for d in &ds {
        assert_eq!(
            d.entries,
            vec![d.stem.clone(), format!("{}.tar.gz", d.stem)]
        );
    }
    assert_eq!(ds[3].reason, "daily bucket 2026-11-27 (4 of 4)");
    assert!(!ds[4].keep && !ds[5].keep);
}

/// 30 days of hourly links in daily chains: the 00:00 run is the day's full
/// (level 0), each later hour a link on top of the previous hour.
fn daily_chains() -> Vec<Candidate> {
    (0..720)
        .map(|i| {
            let time = start() + TimeDelta::hours(i);
            let mut c = cand(BackupType::Daily, time);
            let level = (i % 24) as u32;
            c.chain = Some(ChainPos {
                chain: format!("c{}", time.format("%m%d")),
                level,
                predecessor: (level > 0)
                    .then(|| stem_of(BackupType::Daily, time - TimeDelta::hours(1))),
            });
            c
        })
        .collect()
}

#[test]
fn chains_daily_keeps_whole_chains() {
    let runs = daily_chains();
    let ds = plan_calendar(&Retention::default(), &runs, now());
    check_invariants(&ds, "chains");
    let k = kept(&ds);
    // The newest link of each of the 7 newest days, and all it needs.
    assert_eq!(k.len(), 7 * 24);
    let days: BTreeSet<u32> = k
        .iter()
        .map(|d| d.time.format("%d").to_string().parse().unwrap())
        .collect();
    assert_eq!(days, (24..=30).collect());
    // Each link of a kept chain names the link a rule kept.
    let d = ds.iter().find(|d| d.time == at(2026, 11, 30, 5)).unwrap();
    assert_eq!(
        d.reason,
        format!(
            "needed by kept link {}",
            stem_of(BackupType::Daily, at(2026, 11, 30, 23))
        )
    );
    let top = ds.iter().find(|d| d.time == at(2026, 11, 30, 23)).unwrap();
    assert_eq!(top.reason, "daily bucket 2026-11-30 (1 of 7)");
    // Dropped chains are dropped whole.
    assert!(ds
        .iter()
        .filter(|d| d.time < at(2026, 11, 24, 0))
        .all(|d| !d.keep && d.reason == "dropped: beyond 7 daily buckets"));

    // Whatever the rules, no orphan and no cut in the middle.
    for rules in [
        Rules {
            keep_hourly: 5,
            ..Rules::default()
        },
        Rules {
            keep_last: 1,
            ..Rules::default()
        },
        Rules {
            keep_within: Some(TimeDelta::hours(30)),
            ..Rules::default()
        },
        Rules {
            keep_weekly: 3,
            keep_monthly: 1,
            ..Rules::default()
        },
    ] {
        let ds = plan_calendar(&only(BackupType::Daily, rules), &runs, now());
        check_invariants(&ds, &rules.describe());
    }
    // keep_hourly 5: the 5 newest links need their whole day's chain.
    let ds = plan_calendar(
        &only(
            BackupType::Daily,
            Rules {
                keep_hourly: 5,
                ..Rules::default()
            },
        ),
        &runs,
        now(),
    );
    assert_eq!(kept(&ds).len(), 24);
}

#[test]
fn chains_are_cut_only_from_the_newest_end() {
    // A chain started 2026-11-29T12 runs past midnight to 2026-11-30T03,
    // then a new chain starts at 04.
    let mut runs = Vec::new();
    let first = at(2026, 11, 29, 12);
    for i in 0..16 {
        let time = first + TimeDelta::hours(i);
        let mut c = cand(BackupType::Daily, time);
        c.chain = Some(ChainPos {
            chain: "A".into(),
            level: i as u32,
            predecessor: (i > 0).then(|| stem_of(BackupType::Daily, time - TimeDelta::hours(1))),
        });
        runs.push(c);
    }
    for i in 0..20 {
        let time = at(2026, 11, 30, 4) + TimeDelta::hours(i);
        let mut c = cand(BackupType::Daily, time);
        c.chain = Some(ChainPos {
            chain: "B".into(),
            level: i as u32,
            predecessor: (i > 0).then(|| stem_of(BackupType::Daily, time - TimeDelta::hours(1))),
        });
        runs.push(c);
    }
    let rules = Rules {
        keep_daily: 2,
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Daily, rules), &runs, now());
    check_invariants(&ds, "cut");
    let a: Vec<(u32, bool)> = ds
        .iter()
        .filter(|d| d.chain.as_ref().unwrap().chain == "A")
        .map(|d| (d.chain.as_ref().unwrap().level, d.keep))
        .collect();
    // A's 29th-of-November links (levels 0..=11) are kept for the day's
    // newest (level 11, 23:00); its newest end (00:00..03:00 of the 30th) goes.
    for (level, keep) in a {
        assert_eq!(keep, level <= 11, "A level {level}");
    }
    // B: its newest link is the 30th's bucket, so all of B stays.
    assert!(ds
        .iter()
        .filter(|d| d.chain.as_ref().unwrap().chain == "B")
        .all(|d| d.keep));

    // A chain whose levels are not linear (two links on the same full):
    // keeping the newer keeps every earlier link of the chain too.
    let full_stem = stem_of(BackupType::Daily, at(2026, 11, 30, 0));
    let mut f = cand(BackupType::Daily, at(2026, 11, 30, 0));
    let mut x = cand(BackupType::Daily, at(2026, 11, 30, 1));
    let mut y = cand(BackupType::Daily, at(2026, 11, 30, 2));
    f.chain = Some(ChainPos {
        chain: "T".into(),
        level: 0,
        predecessor: None,
    });
    x.chain = Some(ChainPos {
        chain: "T".into(),
        level: 1,
        predecessor: Some(full_stem.clone()),
    });
    y.chain = Some(ChainPos {
        chain: "T".into(),
        level: 1,
        predecessor: Some(full_stem),
    });
    let rules = Rules {
        keep_last: 1,
        ..Rules::default()
    };
    let ds = plan_calendar(&only(BackupType::Daily, rules), &[f, x, y], now());
    check_invariants(&ds, "tree");
    assert!(ds.iter().all(|d| d.keep), "{ds:#?}");
}

#[test]
fn broken_chain_is_reported_not_hidden() {
    let mut c = cand(BackupType::Daily, at(2026, 11, 30, 5));
    let missing = stem_of(BackupType::Daily, at(2026, 11, 30, 4));
    c.chain = Some(ChainPos {
        chain: "Z".into(),
        level: 5,
        predecessor: Some(missing.clone()),
    });
    let old = cand(BackupType::Daily, at(2026, 11, 1, 5));
    let ds = plan_calendar(&Retention::default(), &[c, old], now());
    check_invariants(&ds, "broken");
    assert!(ds[0].keep);
    assert_eq!(
        ds[0].reason,
        format!(
            "daily bucket 2026-11-30 (1 of 7); chain broken: predecessor {missing} is not in the destination"
        )
    );
}

#[test]
fn decisions_serialize_with_stable_names() {
    let runs = daily_chains();
    let ds = plan_calendar(&Retention::default(), &runs[runs.len() - 2..], now());
    let j = serde_json::to_value(&ds).unwrap();
    assert_eq!(
        j[0],
        serde_json::json!({
            "type": "daily",
            "stem": "daily_20261130_230000",
            "time": "2026-11-30T23:00:00Z",
            "seq": 0,
            "entries": ["daily_20261130_230000.tar.gz.age"],
            "keep": true,
            "reason": "daily bucket 2026-11-30 (1 of 7)",
            "reasons": [{"rule": "bucket", "unit": "daily", "bucket": "2026-11-30", "n": 1, "of": 7}],
            "chain": {"chain": "c1130", "level": 23, "predecessor": "daily_20261130_220000"},
        })
    );
    // The older link's predecessor is not among the candidates.
    assert_eq!(
        j[1]["reasons"],
        serde_json::json!([
            {"rule": "missing-predecessor", "predecessor": "daily_20261130_210000"},
            {"rule": "needed-by", "link": "daily_20261130_230000"},
        ])
    );
    let other = [
        (
            Reason::Last { n: 2, of: 3 },
            serde_json::json!({"rule": "last", "n": 2, "of": 3}),
        ),
        (
            Reason::Bucket {
                unit: Unit::Weekly,
                bucket: "2026-W53".into(),
                n: 1,
                of: UNLIMITED,
            },
            serde_json::json!({"rule": "bucket", "unit": "weekly", "bucket": "2026-W53", "n": 1, "of": "unlimited"}),
        ),
        (
            Reason::Within {
                within: "7d".into(),
                newest: at(2026, 11, 30, 23),
            },
            serde_json::json!({"rule": "within", "within": "7d", "newest": "2026-11-30T23:00:00Z"}),
        ),
        (Reason::Future, serde_json::json!({"rule": "future"})),
        (Reason::NoRules, serde_json::json!({"rule": "no-rules"})),
        (
            Reason::Dropped {
                beyond: vec!["7 daily buckets".into()],
            },
            serde_json::json!({"rule": "dropped", "beyond": ["7 daily buckets"]}),
        ),
        (
            Reason::MissingPredecessor {
                predecessor: "x".into(),
            },
            serde_json::json!({"rule": "missing-predecessor", "predecessor": "x"}),
        ),
    ];
    for (r, want) in other {
        assert_eq!(serde_json::to_value(&r).unwrap(), want);
    }
    // The legacy planner's JSON is unchanged (no `reasons`, no `chain`).
    let archives: Vec<ArchiveName> = runs.iter().take(2).map(|c| c.name.clone()).collect();
    let j = serde_json::to_value(plan(&Policy::default(), &archives, now())).unwrap();
    assert!(j[0].get("reasons").is_none() && j[0].get("chain").is_none());
    // Policies serialize per type.
    let j = serde_json::to_value(Retention::default()).unwrap();
    assert_eq!(j["daily"]["keep_daily"], 7);
    assert_eq!(j["weekly"]["keep_weekly"], 4);
    assert_eq!(j["pre-deploy"]["keep_last"], 3);
    assert_eq!(j["pre-restore"]["keep_last"], 3);
    assert_eq!(j["daily"]["keep_within"], serde_json::Value::Null);
}

#[test]
fn flags_parse_per_type() {
    let r = Retention::from_flags([]).unwrap();
    assert_eq!(r, Retention::default());
    assert_eq!(
        r.describe(),
        vec![
            (BackupType::Daily, "7 daily".to_owned()),
            (BackupType::Weekly, "4 weekly".to_owned()),
            (BackupType::PreDeploy, "last 3".to_owned()),
            (BackupType::PreRestore, "last 3".to_owned()),
        ]
    );
    assert_eq!(r.daily.describe(), "7 daily");
    assert_eq!(r.pre_deploy.describe(), "last 3");

    // Unscoped --keep-daily / --keep-weekly: the type of the same name
    // (the ops test's `--keep-daily 2`).
    let r = Retention::from_flags([(KeepFlag::Daily, "2"), (KeepFlag::Weekly, "8")]).unwrap();
    assert_eq!(r.daily.keep_daily, 2);
    assert_eq!(r.weekly.keep_weekly, 8);
    assert_eq!(r.weekly.keep_daily, 0);
    assert_eq!(r.pre_deploy, Retention::default().pre_deploy);

    // Other unscoped flags: every type, added to the defaults; TYPE= wins
    // whatever the order.
    let r = Retention::from_flags([
        (KeepFlag::Hourly, "daily=24"),
        (KeepFlag::Within, "7d"),
        (KeepFlag::Within, "pre-deploy=30d"),
        (KeepFlag::Last, "pre-restore=10"),
        (KeepFlag::Monthly, "unlimited"),
        (KeepFlag::Daily, "weekly=0"),
    ])
    .unwrap();
    assert_eq!(
        r.daily.describe(),
        "24 hourly, 7 daily, unlimited monthly, within 7d"
    );
    assert_eq!(
        r.weekly.describe(),
        "4 weekly, unlimited monthly, within 7d"
    );
    assert_eq!(
        r.pre_deploy.describe(),
        "last 3, unlimited monthly, within 30d"
    );
    assert_eq!(
        r.pre_restore.describe(),
        "last 10, unlimited monthly, within 7d"
    );
    // 0 turns a default off; all off is "keep everything".
    let r = Retention::from_flags([(KeepFlag::Last, "pre-deploy=0")]).unwrap();
    assert!(r.pre_deploy.is_empty());
    assert_eq!(r.pre_deploy.describe(), "keep everything (no rule)");
    let r =
        Retention::from_flags([(KeepFlag::Within, "7d"), (KeepFlag::Within, "daily=0s")]).unwrap();
    assert_eq!(r.daily.keep_within, None);
    assert_eq!(r.weekly.keep_within, Some(TimeDelta::days(7)));

    for (flags, needle) in [
        (vec![(KeepFlag::Daily, "seven")], "invalid count"),
        (vec![(KeepFlag::Daily, "-1")], "invalid count"),
        (vec![(KeepFlag::Daily, "")], "invalid count"),
        (vec![(KeepFlag::Daily, "hourly=3")], "unknown backup type"),
        (vec![(KeepFlag::Within, "daily=7")], "invalid duration"),
        (vec![(KeepFlag::Within, "7x")], "invalid duration"),
        (
            vec![(KeepFlag::Daily, "99999999999999999999999")],
            "too large",
        ),
        (
            vec![(KeepFlag::Last, "3"), (KeepFlag::Last, "4")],
            "given twice",
        ),
        (
            vec![(KeepFlag::Last, "daily=3"), (KeepFlag::Last, "daily=3")],
            "given twice",
        ),
    ] {
        let e = Retention::from_flags(flags.clone()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Usage, "{flags:?}");
        assert!(e.message.contains(needle), "{flags:?}: {}", e.message);
        assert!(
            e.hint.as_deref().is_some_and(|h| !h.is_empty()),
            "{flags:?}"
        );
    }
    assert_eq!(parse_count("unlimited").unwrap(), UNLIMITED);
    assert_eq!(parse_count(" 12 ").unwrap(), 12);
    for f in KeepFlag::ALL {
        assert!(f.as_str().starts_with("--keep-"));
    }
}
