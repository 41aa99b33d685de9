//! Retention: which backups `prune` keeps, as a pure function of the policy, the
//! archives in the destination and the current time.
//!
//! Rules (README.md, "Operations"; issue 5):
//! - Backups are counted per type, newest first (name time, then same-second
//!   suffix), and the newest `keep_<type>` of each type are kept.
//! - A *backup* is a stem (`<type>_<YYYYMMDD_HHMMSS>[_N]`), not a file: a legacy
//!   plaintext directory and the `.tar.gz` the old script made from it (or any
//!   other entries sharing the stem) count as one backup and are kept or dropped
//!   together. The guide's `ls -dt … | tail` counted both, keeping half as many.
//! - With `keep_within`, every backup newer than `now - keep_within` is kept too,
//!   whatever the counts say (the guide's storage tiers: 7 days local…).
//! - Pre-restore snapshots (made by `restore` before it swaps) are their own type,
//!   kept by `keep_pre_restore` (default [`DEFAULT_KEEP_PRE_RESTORE`]) so the last
//!   few restores can always be undone.
//! - Removal of an archive includes its `.sha256` sidecar (the caller does that);
//!   names that do not parse are never passed in, so never touched.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::{ArchiveName, BackupType};

/// Default number of daily backups kept (the guide's 7).
pub const DEFAULT_KEEP_DAILY: usize = 7;
/// Default number of weekly backups kept (the guide's 4).
pub const DEFAULT_KEEP_WEEKLY: usize = 4;
/// Default number of pre-deploy backups kept (the guide's 3).
pub const DEFAULT_KEEP_PRE_DEPLOY: usize = 3;
/// Default number of pre-restore snapshots kept: the undo of the last three
/// restores, the same depth as pre-deploy backups.
pub const DEFAULT_KEEP_PRE_RESTORE: usize = 3;

/// What to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub keep_daily: usize,
    pub keep_weekly: usize,
    pub keep_pre_deploy: usize,
    pub keep_pre_restore: usize,
    /// Keep every backup (of any type) newer than `now - keep_within`.
    #[serde(serialize_with = "ser_delta")]
    pub keep_within: Option<TimeDelta>,
}

fn ser_delta<S: serde::Serializer>(d: &Option<TimeDelta>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_daily: DEFAULT_KEEP_DAILY,
            keep_weekly: DEFAULT_KEEP_WEEKLY,
            keep_pre_deploy: DEFAULT_KEEP_PRE_DEPLOY,
            keep_pre_restore: DEFAULT_KEEP_PRE_RESTORE,
            keep_within: None,
        }
    }
}

impl Policy {
    /// How many backups of `t` are kept by count.
    pub fn count_for(&self, t: BackupType) -> usize {
        match t {
            BackupType::Daily => self.keep_daily,
            BackupType::Weekly => self.keep_weekly,
            BackupType::PreDeploy => self.keep_pre_deploy,
            BackupType::PreRestore => self.keep_pre_restore,
        }
    }
}

/// The fate of one backup (one stem, possibly several destination entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    #[serde(rename = "type")]
    pub btype: BackupType,
    /// `<type>_<timestamp>[_N]`.
    pub stem: String,
    pub time: DateTime<Utc>,
    pub seq: u32,
    /// The destination entries making up this backup (file or directory names,
    /// sidecars not included), sorted.
    pub entries: Vec<String>,
    pub keep: bool,
    pub reason: String,
}

/// Decides, per backup, keep or drop. Returned newest first within each type,
/// types in [`BackupType::ALL`] order.
pub fn plan(policy: &Policy, archives: &[ArchiveName], now: DateTime<Utc>) -> Vec<Decision> {
    // Group entries by (type, time, seq): one backup per stem.
    let mut groups: BTreeMap<(BackupType, DateTime<Utc>, u32), Vec<String>> = BTreeMap::new();
    for a in archives {
        groups
            .entry((a.btype, a.time, a.seq))
            .or_default()
            .push(a.name.clone());
    }
    let cutoff = policy.keep_within.and_then(|d| now.checked_sub_signed(d));
    let mut out = Vec::with_capacity(groups.len());
    for t in BackupType::ALL {
        let keep_n = policy.count_for(t);
        let mut rank = 0usize;
        // Newest first: BTreeMap iterates ascending, so reverse.
        for ((_, time, seq), mut entries) in groups
            .iter()
            .rev()
            .filter(|((bt, _, _), _)| *bt == t)
            .map(|(k, v)| (*k, v.clone()))
        {
            rank += 1;
            entries.sort();
            entries.dedup();
            let within = cutoff.is_some_and(|c| time > c);
            let (keep, reason) = if rank <= keep_n {
                (true, format!("newest {keep_n} {} (#{rank})", t.as_str()))
            } else if within {
                (
                    true,
                    format!(
                        "newer than {} (keep-within)",
                        format_duration(policy.keep_within.unwrap_or_default())
                    ),
                )
            } else {
                (
                    false,
                    format!(
                        "beyond the newest {keep_n} {} (#{rank}){}",
                        t.as_str(),
                        match policy.keep_within {
                            Some(d) => format!(" and older than {}", format_duration(d)),
                            None => String::new(),
                        }
                    ),
                )
            };
            out.push(Decision {
                btype: t,
                stem: crate::store::stem(t, time, seq),
                time,
                seq,
                entries,
                keep,
                reason,
            });
        }
    }
    out
}

/// Parses a duration: one or more `<number><unit>` groups, unit one of `s`, `m`,
/// `h`, `d`, `w` (e.g. `30s`, `90m`, `1h`, `7d`, `2w`, `1d12h`).
pub fn parse_duration(s: &str) -> Result<TimeDelta> {
    let bad = || {
        Error::usage(format!("invalid duration {s:?}"))
            .hint("write a number and a unit: 30s, 90m, 1h, 7d, 2w (or combined, e.g. 1d12h)")
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if num.is_empty() {
            return Err(bad());
        }
        let mult: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= 100 * 365 * 86_400)
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(TimeDelta::seconds(total))
}

/// Formats a duration compactly with the largest exact units (`7d`, `1h30m`).
pub fn format_duration(d: TimeDelta) -> String {
    let mut secs = d.num_seconds();
    if secs == 0 {
        return "0s".into();
    }
    let neg = secs < 0;
    secs = secs.abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= n {
            out.push_str(&format!("{}{unit}", secs / n));
            secs %= n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::parse_name;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    /// `daily` archive `days` days before `now`, at 02:00:00 + `sec`.
    fn name(t: &str, days: i64, suffix: &str) -> String {
        let d = now() - TimeDelta::days(days);
        format!("{t}_{}{suffix}", d.format("%Y%m%d_020000"))
    }

    fn parse_all(names: &[(String, bool)]) -> Vec<ArchiveName> {
        names
            .iter()
            .map(|(n, dir)| parse_name(n, *dir).unwrap_or_else(|| panic!("bad name {n}")))
            .collect()
    }

    fn files(names: &[String]) -> Vec<(String, bool)> {
        names.iter().map(|n| (n.clone(), false)).collect()
    }

    fn kept(ds: &[Decision]) -> Vec<&str> {
        ds.iter()
            .filter(|d| d.keep)
            .map(|d| d.stem.as_str())
            .collect()
    }

    fn dropped(ds: &[Decision]) -> Vec<&str> {
        ds.iter()
            .filter(|d| !d.keep)
            .map(|d| d.stem.as_str())
            .collect()
    }

    struct Case {
        name: &'static str,
        policy: Policy,
        entries: Vec<(String, bool)>,
        kept: usize,
        dropped: Vec<String>,
    }

    fn daily_files(n: i64) -> Vec<(String, bool)> {
        files(
            &(0..n)
                .map(|i| name("daily", i, ".tar.gz.age"))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn table() {
        let p = Policy::default();
        let stem = |t: &str, days: i64| name(t, days, "");
        let cases = vec![
            Case {
                name: "empty",
                policy: p.clone(),
                entries: vec![],
                kept: 0,
                dropped: vec![],
            },
            Case {
                name: "exactly N",
                policy: p.clone(),
                entries: daily_files(7),
                kept: 7,
                dropped: vec![],
            },
            Case {
                name: "N+1 drops the oldest",
                policy: p.clone(),
                entries: daily_files(8),
                kept: 7,
                dropped: vec![stem("daily", 7)],
            },
            Case {
                name: "mixed types counted separately",
                policy: p.clone(),
                entries: {
                    let mut v = daily_files(9);
                    v.extend(files(
                        &(0..5)
                            .map(|i| name("weekly", i * 7, ".tar.gz.gpg"))
                            .collect::<Vec<_>>(),
                    ));
                    v.extend(files(
                        &(0..4)
                            .map(|i| name("pre-deploy", i, ".tar.gz.age"))
                            .collect::<Vec<_>>(),
                    ));
                    v.extend(files(
                        &(0..2)
                            .map(|i| name("pre-restore", i, ".tar.gz.age"))
                            .collect::<Vec<_>>(),
                    ));
                    v
                },
                kept: 7 + 4 + 3 + 2,
                dropped: vec![
                    stem("daily", 7),
                    stem("daily", 8),
                    stem("weekly", 28),
                    stem("pre-deploy", 3),
                ],
            },
            Case {
                name: "pre-restore kept by its own count",
                policy: p.clone(),
                entries: files(
                    &(0..5)
                        .map(|i| name("pre-restore", i, ".tar.gz.age"))
                        .collect::<Vec<_>>(),
                ),
                kept: 3,
                dropped: vec![stem("pre-restore", 3), stem("pre-restore", 4)],
            },
            Case {
                name: "same-second names ordered by suffix",
                policy: Policy {
                    keep_daily: 2,
                    ..p.clone()
                },
                entries: files(&[
                    name("daily", 0, ".tar.gz.age"),
                    name("daily", 0, "_1.tar.gz.age"),
                    name("daily", 0, "_2.tar.gz.age"),
                    name("daily", 0, "_10.tar.gz.age"),
                ]),
                kept: 2,
                // seq 10 and 2 are newest; 1 and 0 dropped.
                dropped: vec![name("daily", 0, "_1"), name("daily", 0, "")],
            },
            Case {
                name: "legacy dir + tar.gz count as one backup",
                policy: Policy {
                    keep_daily: 2,
                    ..p.clone()
                },
                entries: vec![
                    (name("daily", 0, ""), true),
                    (name("daily", 0, ".tar.gz"), false),
                    (name("daily", 1, ""), true),
                    (name("daily", 1, ".tar.gz"), false),
                    (name("daily", 2, ""), true),
                    (name("daily", 2, ".tar.gz"), false),
                ],
                kept: 2,
                dropped: vec![stem("daily", 2)],
            },
            Case {
                name: "keep-within keeps recent beyond the count",
                policy: Policy {
                    keep_daily: 2,
                    keep_within: Some(TimeDelta::days(5)),
                    ..p.clone()
                },
                entries: daily_files(8),
                // days 0..=4 are within 5 days (02:00 on day 5 is older than the cutoff 12:00)
                kept: 5,
                dropped: vec![stem("daily", 5), stem("daily", 6), stem("daily", 7)],
            },
            Case {
                name: "count zero with keep-within only",
                policy: Policy {
                    keep_daily: 0,
                    keep_within: Some(TimeDelta::hours(12)),
                    ..p.clone()
                },
                entries: daily_files(3),
                kept: 1,
                dropped: vec![stem("daily", 1), stem("daily", 2)],
            },
        ];
        for c in cases {
            let archives = parse_all(&c.entries);
            let ds = plan(&c.policy, &archives, now());
            assert_eq!(kept(&ds).len(), c.kept, "case {:?}: {ds:#?}", c.name);
            let d: Vec<String> = dropped(&ds).iter().map(|s| s.to_string()).collect();
            assert_eq!(d, c.dropped, "case {:?}", c.name);
            // Every entry is covered exactly once.
            let mut all: Vec<&String> = ds.iter().flat_map(|d| &d.entries).collect();
            all.sort();
            let mut want: Vec<&String> = c.entries.iter().map(|(n, _)| n).collect();
            want.sort();
            assert_eq!(all, want, "case {:?}", c.name);
            assert!(ds.iter().all(|d| !d.reason.is_empty()));
        }
    }

    #[test]
    fn legacy_pair_entries_dropped_together() {
        let entries = vec![
            (name("weekly", 0, ""), true),
            (name("weekly", 7, ""), true),
            (name("weekly", 7, ".tar.gz"), false),
        ];
        let p = Policy {
            keep_weekly: 1,
            ..Policy::default()
        };
        let ds = plan(&p, &parse_all(&entries), now());
        let d: Vec<_> = ds.iter().filter(|d| !d.keep).collect();
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].entries,
            vec![name("weekly", 7, ""), name("weekly", 7, ".tar.gz")]
        );
        assert!(d[0].reason.contains("beyond the newest 1 weekly"));
    }

    #[test]
    fn reasons_name_the_rule() {
        let p = Policy {
            keep_daily: 1,
            keep_within: Some(TimeDelta::days(2)),
            ..Policy::default()
        };
        let ds = plan(&p, &parse_all(&daily_files(4)), now());
        assert_eq!(ds[0].reason, "newest 1 daily (#1)");
        assert_eq!(ds[1].reason, "newer than 2d (keep-within)");
        assert_eq!(
            ds[3].reason,
            "beyond the newest 1 daily (#4) and older than 2d"
        );
    }

    #[test]
    fn durations() {
        for (s, secs) in [
            ("30s", 30),
            ("90m", 5400),
            ("1h", 3600),
            ("25h", 90_000),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("1d12h", 129_600),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(s).unwrap().num_seconds(), secs, "{s}");
        }
        for s in [
            "",
            "h",
            "1",
            "1x",
            "-1h",
            "1.5h",
            "1h 30m",
            "99999999999999w",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?} should fail");
        }
        assert_eq!(format_duration(TimeDelta::seconds(5400)), "1h30m");
        assert_eq!(format_duration(TimeDelta::days(7)), "7d");
    }
}
