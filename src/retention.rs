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
//!
//! That is the *count* planner, [`plan`], which `prune`, `backup`'s own prune
//! and the tiers used before calendar retention. Its `keep_daily: 7` keeps
//! seven archives, so an hourly schedule kept seven hours. They now all call
//! the *calendar* planner, [`plan_calendar`], which keeps the guide's promise
//! in days whatever the schedule, as restic's `forget` defines it; see
//! "Calendar retention" below. The count semantics stay expressible there as
//! `keep_last` (and [`plan`] stays as the reference the calendar planner's
//! `keep_last` is tested against).
//!
//! # Calendar retention ([`plan_calendar`])
//!
//! - Rules are per backup type ([`Retention`] holds one [`Rules`] per
//!   [`BackupType`]); each type is planned on its own, like restic's groups.
//! - `keep_last N`: the N newest backups of the type.
//! - `keep_hourly|daily|weekly|monthly|yearly N`: walking the type's backups
//!   newest first, the newest backup of each distinct calendar bucket counts,
//!   up to N buckets. Buckets are calendar units **in UTC** (archive names are
//!   UTC): hour `2026-11-30T14`, day `2026-11-30`, ISO-8601 week `2026-W48`
//!   (Monday to Sunday; the week of 2026-12-28 to 2027-01-03 is `2026-W53`),
//!   month `2026-11`, year `2026`. Only buckets that hold a backup count, so
//!   a missed day costs no slot.
//! - `keep_within D`: every backup newer than D before the **newest backup of
//!   the type** (restic's choice, not `now`): when backups stop, because the
//!   host is down or every run fails, repeated prunes must not age the last
//!   good backups out one by one; and the calendar rules are relative to what
//!   exists too, so the whole policy only moves when a new backup arrives.
//!   (The count planner's `keep_within` is relative to `now`, as before.)
//! - A backup kept by any rule is kept; every reason is listed. A backup that
//!   no rule keeps is dropped, with what it was beyond.
//! - `now` only guards the clock: a backup dated after `now` (clock skew, or a
//!   planted name) is kept, counts for no rule and does not anchor
//!   `keep_within`, so it can never push real backups out of their buckets.
//! - A type without any rule keeps everything (restic refuses an empty policy
//!   for the same reason: "keep nothing" is never a default).
//! - Unlike restic 0.17, no rule keeps the *oldest* backup when it has unused
//!   buckets: a rule never keeps more than its N.
//! - Chains (incremental links, [`ChainPos`]): a kept link keeps every link it
//!   depends on (its predecessor, transitively) and every earlier link of its
//!   chain, so a chain is only ever cut from its newest end or removed whole
//!   and no kept link ever loses a predecessor. Those links carry "needed by
//!   kept link X". A link whose predecessor is not among the candidates at all
//!   is already broken: it is planned by the rules like any backup and its
//!   decision says which predecessor is missing.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
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
    /// Human text of the decision (for [`plan_calendar`], `reasons` joined by `; `).
    pub reason: String,
    /// Every reason, structured ([`plan_calendar`] only; empty, and not
    /// serialized, from [`plan`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// The backup's place in an incremental chain, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainPos>,
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
                reasons: Vec::new(),
                chain: None,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Calendar retention (restic's `forget`)
// ---------------------------------------------------------------------------

/// A count that means "every bucket" (`unlimited` on the command line).
pub const UNLIMITED: usize = usize::MAX;

/// Serializes a count, [`UNLIMITED`] as `"unlimited"`.
fn ser_count<S: serde::Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
    if *n == UNLIMITED {
        s.serialize_str("unlimited")
    } else {
        s.serialize_u64(*n as u64)
    }
}

fn count_text(n: usize) -> String {
    if n == UNLIMITED {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

/// The keep rules of one backup type; 0 (or `None`) turns a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Rules {
    /// The newest N backups (the count planner's semantics).
    #[serde(serialize_with = "ser_count")]
    pub keep_last: usize,
    /// The newest backup of each of the last N hours that have one.
    #[serde(serialize_with = "ser_count")]
    pub keep_hourly: usize,
    /// The newest backup of each of the last N days that have one.
    #[serde(serialize_with = "ser_count")]
    pub keep_daily: usize,
    /// The newest backup of each of the last N ISO weeks that have one.
    #[serde(serialize_with = "ser_count")]
    pub keep_weekly: usize,
    /// The newest backup of each of the last N months that have one.
    #[serde(serialize_with = "ser_count")]
    pub keep_monthly: usize,
    /// The newest backup of each of the last N years that have one.
    #[serde(serialize_with = "ser_count")]
    pub keep_yearly: usize,
    /// Every backup newer than this before the type's newest backup.
    #[serde(serialize_with = "ser_delta")]
    pub keep_within: Option<TimeDelta>,
}

impl Rules {
    /// No rule set: [`plan_calendar`] keeps every backup of the type.
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && Unit::ALL.iter().all(|u| self.bucket_count(*u) == 0)
            && self.within().is_none()
    }

    /// The count of a calendar rule.
    pub fn bucket_count(&self, unit: Unit) -> usize {
        match unit {
            Unit::Hourly => self.keep_hourly,
            Unit::Daily => self.keep_daily,
            Unit::Weekly => self.keep_weekly,
            Unit::Monthly => self.keep_monthly,
            Unit::Yearly => self.keep_yearly,
        }
    }

    /// The count of a calendar rule, to change.
    pub fn bucket_count_mut(&mut self, unit: Unit) -> &mut usize {
        match unit {
            Unit::Hourly => &mut self.keep_hourly,
            Unit::Daily => &mut self.keep_daily,
            Unit::Weekly => &mut self.keep_weekly,
            Unit::Monthly => &mut self.keep_monthly,
            Unit::Yearly => &mut self.keep_yearly,
        }
    }

    /// `keep_within` when it keeps anything (a zero or negative duration is
    /// no rule).
    pub fn within(&self) -> Option<TimeDelta> {
        self.keep_within.filter(|d| *d > TimeDelta::zero())
    }

    /// One line for `--dry-run` headers: `last 3, 7 daily, within 7d`
    /// (`keep everything` when empty).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.keep_last > 0 {
            parts.push(format!("last {}", count_text(self.keep_last)));
        }
        for u in Unit::ALL {
            let n = self.bucket_count(u);
            if n > 0 {
                parts.push(format!("{} {}", count_text(n), u.as_str()));
            }
        }
        if let Some(d) = self.within() {
            parts.push(format!("within {}", format_duration(d)));
        }
        if parts.is_empty() {
            "keep everything (no rule)".into()
        } else {
            parts.join(", ")
        }
    }

    /// What a dropped backup was beyond: `the last 3, 7 daily buckets, 7d of
    /// the newest`.
    fn beyond(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.keep_last > 0 {
            v.push(format!("the last {}", count_text(self.keep_last)));
        }
        for u in Unit::ALL {
            let n = self.bucket_count(u);
            if n > 0 {
                let plural = if n == 1 { "" } else { "s" };
                v.push(format!("{} {} bucket{plural}", count_text(n), u.as_str()));
            }
        }
        if let Some(d) = self.within() {
            v.push(format!("{} of the newest", format_duration(d)));
        }
        v
    }
}

/// One [`Rules`] per backup type. The default keeps the guide's promise in
/// days whatever the schedule: 7 days of daily, 4 weeks of weekly, the last 3
/// pre-deploy and the last 3 pre-restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub daily: Rules,
    pub weekly: Rules,
    #[serde(rename = "pre-deploy")]
    pub pre_deploy: Rules,
    #[serde(rename = "pre-restore")]
    pub pre_restore: Rules,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            daily: Rules {
                keep_daily: DEFAULT_KEEP_DAILY,
                ..Rules::default()
            },
            weekly: Rules {
                keep_weekly: DEFAULT_KEEP_WEEKLY,
                ..Rules::default()
            },
            pre_deploy: Rules {
                keep_last: DEFAULT_KEEP_PRE_DEPLOY,
                ..Rules::default()
            },
            pre_restore: Rules {
                keep_last: DEFAULT_KEEP_PRE_RESTORE,
                ..Rules::default()
            },
        }
    }
}

impl Retention {
    /// The same rules for every type (a tier's configuration).
    pub fn uniform(rules: Rules) -> Retention {
        Retention {
            daily: rules,
            weekly: rules,
            pre_deploy: rules,
            pre_restore: rules,
        }
    }

    /// Whether no type has any rule (everything would be kept).
    pub fn is_empty(&self) -> bool {
        BackupType::ALL
            .into_iter()
            .all(|t| self.rules(t).is_empty())
    }

    /// The rules of one type.
    pub fn rules(&self, t: BackupType) -> &Rules {
        match t {
            BackupType::Daily => &self.daily,
            BackupType::Weekly => &self.weekly,
            BackupType::PreDeploy => &self.pre_deploy,
            BackupType::PreRestore => &self.pre_restore,
        }
    }

    /// The rules of one type, to change.
    pub fn rules_mut(&mut self, t: BackupType) -> &mut Rules {
        match t {
            BackupType::Daily => &mut self.daily,
            BackupType::Weekly => &mut self.weekly,
            BackupType::PreDeploy => &mut self.pre_deploy,
            BackupType::PreRestore => &mut self.pre_restore,
        }
    }

    /// Each type's rules in one line ([`Rules::describe`]), in
    /// [`BackupType::ALL`] order, for `--dry-run` headers.
    pub fn describe(&self) -> Vec<(BackupType, String)> {
        BackupType::ALL
            .into_iter()
            .map(|t| (t, self.rules(t).describe()))
            .collect()
    }

    /// The defaults changed by command-line values. Each item is a flag and
    /// its value as typed, `[TYPE=]N` (`N` a count or `unlimited`) or, for
    /// `--keep-within`, `[TYPE=]DURATION` ([`parse_duration`]). Proposed CLI
    /// (`prune`, `backup`'s own prune, tiers), every flag repeatable:
    ///
    /// ```text
    /// --keep-last    [TYPE=]N     --keep-hourly  [TYPE=]N
    /// --keep-daily   [TYPE=]N     --keep-weekly  [TYPE=]N
    /// --keep-monthly [TYPE=]N     --keep-yearly  [TYPE=]N
    /// --keep-within  [TYPE=]DURATION
    /// e.g. --keep-daily 14 --keep-hourly daily=24 --keep-within pre-deploy=30d
    /// ```
    ///
    /// - `TYPE=` (daily, weekly, pre-deploy, pre-restore) sets that type's rule.
    /// - Without `TYPE=`, `--keep-daily N` and `--keep-weekly N` set the rule of
    ///   the type of the same name (what these flags have always meant: N days
    ///   of daily backups, N weeks of weekly ones); every other flag without
    ///   `TYPE=` sets the rule for every type.
    /// - A value sets one rule and leaves the other defaults as they are (so
    ///   `--keep-within 7d` adds to the defaults; `0` turns a default off).
    ///   A `TYPE=` value wins over a value without, whatever the order.
    /// - The legacy `--keep-pre-deploy N` / `--keep-pre-restore N` are
    ///   `--keep-last pre-deploy=N` / `--keep-last pre-restore=N`.
    ///
    /// Errors (usage, exit 2): an unknown type, a bad count or duration, or
    /// the same flag given twice for the same type.
    pub fn from_flags<'a, I>(flags: I) -> Result<Retention>
    where
        I: IntoIterator<Item = (KeepFlag, &'a str)>,
    {
        let mut unscoped = Vec::new();
        let mut scoped = Vec::new();
        for (flag, raw) in flags {
            let (scope, value) = parse_scope(flag, raw)?;
            let setting = (flag, raw, value);
            match scope {
                Some(t) => scoped.push((vec![t], setting)),
                None => unscoped.push((flag.default_scope(), setting)),
            }
        }
        let mut out = Retention::default();
        let mut seen: Vec<(KeepFlag, BackupType, bool)> = Vec::new();
        for (scoped_pass, list) in [(false, unscoped), (true, scoped)] {
            for (types, (flag, raw, value)) in list {
                for t in types {
                    if seen.contains(&(flag, t, scoped_pass)) {
                        return Err(Error::usage(format!(
                            "{} is given twice for {} backups (second: {raw:?})",
                            flag.as_str(),
                            t.as_str()
                        ))
                        .hint(format!(
                            "give {} once per type (TYPE=VALUE sets one type, a value without TYPE= the default scope)",
                            flag.as_str()
                        )));
                    }
                    seen.push((flag, t, scoped_pass));
                    value.apply(out.rules_mut(t));
                }
            }
        }
        Ok(out)
    }
}

/// A retention flag of the command line (see [`Retention::from_flags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepFlag {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Within,
}

impl KeepFlag {
    pub const ALL: [KeepFlag; 7] = [
        KeepFlag::Last,
        KeepFlag::Hourly,
        KeepFlag::Daily,
        KeepFlag::Weekly,
        KeepFlag::Monthly,
        KeepFlag::Yearly,
        KeepFlag::Within,
    ];

    /// The flag as typed: `--keep-daily`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeepFlag::Last => "--keep-last",
            KeepFlag::Hourly => "--keep-hourly",
            KeepFlag::Daily => "--keep-daily",
            KeepFlag::Weekly => "--keep-weekly",
            KeepFlag::Monthly => "--keep-monthly",
            KeepFlag::Yearly => "--keep-yearly",
            KeepFlag::Within => "--keep-within",
        }
    }

    /// The types a value without `TYPE=` sets.
    pub fn default_scope(self) -> Vec<BackupType> {
        match self {
            KeepFlag::Daily => vec![BackupType::Daily],
            KeepFlag::Weekly => vec![BackupType::Weekly],
            _ => BackupType::ALL.to_vec(),
        }
    }
}

/// One parsed flag value: the rule it sets.
enum FlagValue {
    Last(usize),
    Bucket(Unit, usize),
    /// `None` for a zero duration (the rule off).
    Within(Option<TimeDelta>),
}

impl FlagValue {
    fn apply(&self, r: &mut Rules) {
        match *self {
            FlagValue::Last(n) => r.keep_last = n,
            FlagValue::Bucket(u, n) => *r.bucket_count_mut(u) = n,
            FlagValue::Within(d) => r.keep_within = d,
        }
    }
}

/// Splits `[TYPE=]VALUE` and parses the value for `flag`.
fn parse_scope(flag: KeepFlag, raw: &str) -> Result<(Option<BackupType>, FlagValue)> {
    let (scope, value) = match raw.split_once('=') {
        Some((t, v)) => {
            let bt = BackupType::parse(t.trim()).ok_or_else(|| {
                Error::usage(format!(
                    "{} {raw:?}: unknown backup type {t:?}",
                    flag.as_str()
                ))
                .hint("write TYPE=VALUE with TYPE one of daily, weekly, pre-deploy, pre-restore, or the value alone")
            })?;
            (Some(bt), v)
        }
        None => (None, raw),
    };
    let wrap = |e: Error| {
        Error::usage(format!("{} {raw:?}: {}", flag.as_str(), e.message))
            .hint(e.hint.unwrap_or_default())
    };
    let count = || parse_count(value).map_err(wrap);
    let value = match flag {
        KeepFlag::Within => {
            let d = parse_duration(value).map_err(wrap)?;
            FlagValue::Within((d > TimeDelta::zero()).then_some(d))
        }
        KeepFlag::Last => FlagValue::Last(count()?),
        KeepFlag::Hourly => FlagValue::Bucket(Unit::Hourly, count()?),
        KeepFlag::Daily => FlagValue::Bucket(Unit::Daily, count()?),
        KeepFlag::Weekly => FlagValue::Bucket(Unit::Weekly, count()?),
        KeepFlag::Monthly => FlagValue::Bucket(Unit::Monthly, count()?),
        KeepFlag::Yearly => FlagValue::Bucket(Unit::Yearly, count()?),
    };
    Ok((scope, value))
}

/// Parses a rule count: a non-negative integer, or `unlimited` ([`UNLIMITED`]).
pub fn parse_count(s: &str) -> Result<usize> {
    let t = s.trim();
    if t == "unlimited" {
        return Ok(UNLIMITED);
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::usage(format!("invalid count {s:?}"))
            .hint("write a whole number (0 turns the rule off) or `unlimited`"));
    }
    t.parse::<usize>()
        .ok()
        .filter(|n| *n < UNLIMITED)
        .ok_or_else(|| {
            Error::usage(format!("count {s:?} is too large"))
                .hint("write `unlimited` to keep every bucket")
        })
}

/// A calendar unit of a bucket rule (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Unit {
    pub const ALL: [Unit; 5] = [
        Unit::Hourly,
        Unit::Daily,
        Unit::Weekly,
        Unit::Monthly,
        Unit::Yearly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Hourly => "hourly",
            Unit::Daily => "daily",
            Unit::Weekly => "weekly",
            Unit::Monthly => "monthly",
            Unit::Yearly => "yearly",
        }
    }

    /// The bucket `t` falls in, as printed: `2026-11-30T14`, `2026-11-30`,
    /// `2026-W48` (ISO week and ISO week-year), `2026-11`, `2026`.
    pub fn bucket(self, t: DateTime<Utc>) -> String {
        match self {
            Unit::Hourly => t.format("%Y-%m-%dT%H").to_string(),
            Unit::Daily => t.format("%Y-%m-%d").to_string(),
            Unit::Weekly => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Unit::Monthly => t.format("%Y-%m").to_string(),
            Unit::Yearly => format!("{}", t.year()),
        }
    }
}

/// A backup's place in an incremental chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainPos {
    /// The chain's identity (all links of one chain share it).
    pub chain: String,
    /// 0 for the chain's full, then 1, 2, … in chain order.
    pub level: u32,
    /// The stem of the link this one applies on top of (`None` for the full).
    pub predecessor: Option<String>,
}

/// One destination entry to plan: an archive and, for an incremental link,
/// its chain position. A full archive without chain info is
/// `Candidate::from(name)` and is planned as today. Entries sharing a stem are
/// one backup; their chain position is the first one given.
///
/// `meta_problem` says why the archive's `.meta` description could not be
/// read (damaged, planted, for another archive): its chain position is then
/// unknown, so the backup is kept whatever the rules say
/// ([`Reason::MetaUnreadable`]) — retention never removes what it cannot
/// place in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: ArchiveName,
    pub chain: Option<ChainPos>,
    pub meta_problem: Option<String>,
}

impl From<ArchiveName> for Candidate {
    fn from(name: ArchiveName) -> Self {
        Candidate {
            name,
            chain: None,
            meta_problem: None,
        }
    }
}

/// Why a backup is kept or dropped. Serialized with a `rule` tag in kebab
/// case, e.g. `{"rule":"bucket","unit":"daily","bucket":"2026-11-30","n":3,"of":7}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Reason {
    /// `keep_last`: the `n`th newest of `of`.
    Last {
        n: usize,
        #[serde(serialize_with = "ser_count")]
        of: usize,
    },
    /// A calendar rule: the newest backup of `bucket`, the `n`th bucket of `of`.
    Bucket {
        unit: Unit,
        bucket: String,
        n: usize,
        #[serde(serialize_with = "ser_count")]
        of: usize,
    },
    /// `keep_within`: newer than `within` before `newest`.
    Within {
        within: String,
        newest: DateTime<Utc>,
    },
    /// A later kept link of the chain depends on this one.
    NeededBy { link: String },
    /// Dated after `now`: kept, counted by no rule.
    Future,
    /// The type has no rule: everything is kept.
    NoRules,
    /// No rule keeps it: what it was beyond.
    Dropped { beyond: Vec<String> },
    /// The chain is already broken here: the predecessor is not in the store.
    MissingPredecessor { predecessor: String },
    /// Its `.meta` description could not be read: kept, since its place in a
    /// chain is unknown.
    MetaUnreadable { problem: String },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Last { n, of } => write!(f, "last ({n} of {})", count_text(*of)),
            Reason::Bucket {
                unit,
                bucket,
                n,
                of,
            } => write!(
                f,
                "{} bucket {bucket} ({n} of {})",
                unit.as_str(),
                count_text(*of)
            ),
            Reason::Within { within, newest } => write!(
                f,
                "within {within} of the newest ({})",
                newest.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            Reason::NeededBy { link } => write!(f, "needed by kept link {link}"),
            Reason::Future => write!(f, "dated after now (clock skew?): kept, counted by no rule"),
            Reason::NoRules => write!(f, "no keep rule for this type: everything kept"),
            Reason::Dropped { beyond } => write!(f, "dropped: beyond {}", beyond.join(", ")),
            Reason::MissingPredecessor { predecessor } => write!(
                f,
                "chain broken: predecessor {predecessor} is not in the destination"
            ),
            Reason::MetaUnreadable { problem } => write!(
                f,
                "kept: its .meta description is unreadable ({problem}), so its chain is unknown"
            ),
        }
    }
}

/// One backup while planning.
struct Slot {
    btype: BackupType,
    time: DateTime<Utc>,
    seq: u32,
    stem: String,
    entries: Vec<String>,
    chain: Option<ChainPos>,
    meta_problem: Option<String>,
    keep: bool,
    reasons: Vec<Reason>,
}

/// Decides, per backup, keep or drop by calendar rules (see the module docs,
/// "Calendar retention"). Returned like [`plan`]: types in
/// [`BackupType::ALL`] order, newest first within each type; every decision
/// has at least one reason.
pub fn plan_calendar(
    retention: &Retention,
    candidates: &[Candidate],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    // One slot per stem.
    let mut groups: BTreeMap<(BackupType, DateTime<Utc>, u32), Slot> = BTreeMap::new();
    for c in candidates {
        let a = &c.name;
        let slot = groups
            .entry((a.btype, a.time, a.seq))
            .or_insert_with(|| Slot {
                btype: a.btype,
                time: a.time,
                seq: a.seq,
                stem: crate::store::stem(a.btype, a.time, a.seq),
                entries: Vec::new(),
                chain: None,
                meta_problem: None,
                keep: false,
                reasons: Vec::new(),
            });
        slot.entries.push(a.name.clone());
        if slot.chain.is_none() {
            slot.chain = c.chain.clone();
        }
        if slot.meta_problem.is_none() {
            slot.meta_problem = c.meta_problem.clone();
        }
    }
    // Types in ALL order, newest first within each.
    let mut slots: Vec<Slot> = Vec::with_capacity(groups.len());
    let mut by_type: BTreeMap<BackupType, Vec<Slot>> = BTreeMap::new();
    for (_, s) in groups.into_iter().rev() {
        by_type.entry(s.btype).or_default().push(s);
    }
    for t in BackupType::ALL {
        let mut list = by_type.remove(&t).unwrap_or_default();
        apply_rules(retention.rules(t), &mut list, now);
        for s in list.iter_mut() {
            if let Some(problem) = s.meta_problem.clone() {
                s.keep = true;
                s.reasons.retain(|r| !matches!(r, Reason::Dropped { .. }));
                s.reasons.push(Reason::MetaUnreadable { problem });
            }
        }
        slots.extend(list);
    }
    close_chains(&mut slots);
    slots
        .into_iter()
        .map(|mut s| {
            s.entries.sort();
            s.entries.dedup();
            let reason = s
                .reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            Decision {
                btype: s.btype,
                stem: s.stem,
                time: s.time,
                seq: s.seq,
                entries: s.entries,
                keep: s.keep,
                reason,
                reasons: s.reasons,
                chain: s.chain,
            }
        })
        .collect()
}

/// The rules of one type over its backups (newest first). Marks `keep` and
/// the rule reasons; drops get [`Reason::Dropped`] (chain closure may still
/// keep them later).
fn apply_rules(rules: &Rules, list: &mut [Slot], now: DateTime<Utc>) {
    if rules.is_empty() {
        for s in list.iter_mut() {
            s.keep = true;
            s.reasons.push(Reason::NoRules);
        }
        return;
    }
    // Future-dated: kept, outside every rule.
    let mut eligible: Vec<usize> = Vec::with_capacity(list.len());
    for (i, s) in list.iter_mut().enumerate() {
        if s.time > now {
            s.keep = true;
            s.reasons.push(Reason::Future);
        } else {
            eligible.push(i);
        }
    }
    for (rank, &i) in eligible.iter().take(rules.keep_last).enumerate() {
        list[i].reasons.push(Reason::Last {
            n: rank + 1,
            of: rules.keep_last,
        });
    }
    for unit in Unit::ALL {
        let of = rules.bucket_count(unit);
        let mut used = 0usize;
        let mut last: Option<String> = None;
        for &i in &eligible {
            if used >= of {
                break;
            }
            let b = unit.bucket(list[i].time);
            if last.as_ref() == Some(&b) {
                continue;
            }
            used += 1;
            last = Some(b.clone());
            list[i].reasons.push(Reason::Bucket {
                unit,
                bucket: b,
                n: used,
                of,
            });
        }
    }
    if let (Some(d), Some(&first)) = (rules.within(), eligible.first()) {
        let newest = list[first].time;
        if let Some(cutoff) = newest.checked_sub_signed(d) {
            for &i in &eligible {
                if list[i].time > cutoff {
                    list[i].reasons.push(Reason::Within {
                        within: format_duration(d),
                        newest,
                    });
                }
            }
        }
    }
    let beyond = rules.beyond();
    for &i in &eligible {
        let s = &mut list[i];
        if s.reasons.is_empty() {
            s.reasons.push(Reason::Dropped {
                beyond: beyond.clone(),
            });
        } else {
            s.keep = true;
        }
    }
}

/// Keeps what kept links depend on: the predecessor (transitively, across
/// chains if need be) and every earlier link of the same chain, so a chain
/// is only cut from its newest end. Notes missing predecessors.
fn close_chains(slots: &mut [Slot]) {
    let index: BTreeMap<String, usize> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.stem.clone(), i))
        .collect();
    // Chain id -> links in chain order (level, then time, then seq).
    let mut chains: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in slots.iter().enumerate() {
        if let Some(c) = &s.chain {
            chains.entry(c.chain.clone()).or_default().push(i);
        }
    }
    for links in chains.values_mut() {
        links.sort_by_key(|&i| {
            let s = &slots[i];
            (s.chain.as_ref().map_or(0, |c| c.level), s.time, s.seq)
        });
    }
    for s in slots.iter_mut() {
        if let Some(p) = s.chain.as_ref().and_then(|c| c.predecessor.as_ref()) {
            if !index.contains_key(p) {
                let predecessor = p.clone();
                s.reasons.push(Reason::MissingPredecessor { predecessor });
            }
        }
    }
    let keep = |slots: &mut [Slot], i: usize, by: &str| {
        let s = &mut slots[i];
        s.keep = true;
        s.reasons.retain(|r| !matches!(r, Reason::Dropped { .. }));
        s.reasons.push(Reason::NeededBy {
            link: by.to_owned(),
        });
    };
    // Each pass only adds keeps, so this ends within slots.len() passes.
    loop {
        let mut changed = false;
        for links in chains.values() {
            // Walking from the newest end, every link before a kept one is
            // needed by the nearest kept link after it.
            let mut needed_by: Option<String> = None;
            for &i in links.iter().rev() {
                if slots[i].keep {
                    needed_by = Some(slots[i].stem.clone());
                } else if let Some(by) = &needed_by {
                    keep(slots, i, by);
                    changed = true;
                }
            }
        }
        for i in 0..slots.len() {
            if !slots[i].keep {
                continue;
            }
            let Some(p) = slots[i].chain.as_ref().and_then(|c| c.predecessor.clone()) else {
                continue;
            };
            if let Some(&j) = index.get(&p) {
                if !slots[j].keep {
                    let by = slots[i].stem.clone();
                    keep(slots, j, &by);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
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
mod calendar_tests;

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
