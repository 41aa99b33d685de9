//! The status of a store (the local destination, or any other [`Store`]): is
//! the newest backup of each type recent enough, and does it check? The
//! report (newest archive of each type, its age, size and chain length, its
//! SHA-256 against the sidecar — at [`Depth::Check`] the newest of each type
//! is read in full; a tier watched from a monitoring host is judged from its
//! listing and headers —, the free space where the store lives) and its
//! Prometheus text rendering, for monitoring from cron, systemd or
//! node_exporter's textfile collector, and the error a run ends with
//! ([`Report::error`]); a fleet of stores judged at once by `--tier`
//! ([`Fleet`]: one metrics file, one JSON document, one error). Prints
//! nothing; the `status` command renders the reports.
//!
//! Freshness ([`MaxAge`], `--max-age [TYPE=]DURATION`, repeatable):
//! - a bare DURATION judges the newest backup of *any* type but pre-restore
//!   (daily, weekly, pre-deploy): stale when even that one is older, or there
//!   is none. That is the only rule when no `--max-age` is given (25h).
//! - `TYPE=DURATION` judges that type by its *own* newest backup: stale when
//!   it is older, or the type has none, whatever the other types hold (a
//!   month-old daily is stale beside a fresh pre-deploy).
//!
//! Both may be given; the report is stale when any rule is, and names the
//! stale types.

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::catalog::{self, Entry, Sidecar};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Events;
use crate::retention::parse_duration;
use crate::store::{self, BackupType, Store};

pub use crate::catalog::Depth;

/// The maximum age when `--max-age` is not given: a daily backup and an hour
/// of margin.
pub const DEFAULT_MAX_AGE: TimeDelta = TimeDelta::hours(25);

/// The freshness rules (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxAge {
    /// The newest backup of any type but pre-restore.
    pub any: Option<TimeDelta>,
    /// Each listed type by its own newest backup, in [`BackupType::ALL`] order.
    pub per_type: Vec<(BackupType, TimeDelta)>,
}

impl Default for MaxAge {
    fn default() -> Self {
        MaxAge {
            any: Some(DEFAULT_MAX_AGE),
            per_type: Vec::new(),
        }
    }
}

impl MaxAge {
    /// A bare maximum age (today's single rule).
    pub fn any(d: TimeDelta) -> MaxAge {
        MaxAge {
            any: Some(d),
            per_type: Vec::new(),
        }
    }

    /// Parses the `--max-age` values, `[TYPE=]DURATION` each; none gives the
    /// default. A rule given twice is a usage error (exit 2).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<MaxAge> {
        if values.is_empty() {
            return Ok(MaxAge::default());
        }
        let mut out = MaxAge {
            any: None,
            per_type: Vec::new(),
        };
        for v in values {
            let raw = v.as_ref();
            let (scope, value) = match raw.split_once('=') {
                Some((t, d)) => {
                    let bt = BackupType::parse(t.trim()).ok_or_else(|| {
                        Error::usage(format!("--max-age {raw:?}: unknown backup type {t:?}"))
                            .hint("write TYPE=DURATION with TYPE one of daily, weekly, pre-deploy, pre-restore, or a DURATION alone for the newest backup of any type")
                    })?;
                    (Some(bt), d)
                }
                None => (None, raw),
            };
            let d = parse_duration(value).map_err(|e| e.context(format!("--max-age {raw:?}")))?;
            let twice = || {
                Error::usage(format!(
                    "--max-age is given twice for {} (second: {raw:?})",
                    scope.map_or("the newest backup of any type", |t| t.as_str())
                ))
                .hint("give one --max-age per type (TYPE=DURATION) and at most one without TYPE=")
            };
            match scope {
                None if out.any.is_some() => return Err(twice()),
                None => out.any = Some(d),
                Some(t) if out.per_type.iter().any(|(x, _)| *x == t) => return Err(twice()),
                Some(t) => out.per_type.push((t, d)),
            }
        }
        out.per_type
            .sort_by_key(|(t, _)| BackupType::ALL.iter().position(|x| x == t));
        Ok(out)
    }

    /// The maximum age of type `t`'s own newest backup, when judged.
    pub fn for_type(&self, t: BackupType) -> Option<TimeDelta> {
        self.per_type.iter().find(|(x, _)| *x == t).map(|(_, d)| *d)
    }

    /// The values as typed (`25h`, `daily=2h`), for messages and lines to copy.
    pub fn args(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .any
            .map(crate::retention::format_duration)
            .into_iter()
            .collect();
        v.extend(
            self.per_type
                .iter()
                .map(|(t, d)| format!("{}={}", t.as_str(), crate::retention::format_duration(*d))),
        );
        v
    }
}

/// The state of one backup type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeStatus {
    #[serde(rename = "type")]
    pub btype: BackupType,
    /// Backups of this type (a legacy directory and its tarball count once).
    pub count: usize,
    pub newest: Option<Entry>,
    pub age_seconds: Option<i64>,
    /// The newest archive matches its sidecar (`None`: no sidecar, no
    /// archive, or not checked).
    pub sidecar_ok: Option<bool>,
    /// Links the newest archive's chain has up to it, the full included (1
    /// for a full; from its `.meta`, an archive without one being a full).
    pub chain_length: Option<u32>,
    /// The maximum age of this type's own newest backup (`--max-age TYPE=…`).
    pub max_age_seconds: Option<i64>,
    /// Judged by its own maximum age: older, or none (`None`: not judged).
    pub stale: Option<bool>,
}

/// The whole status report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dest: PathBuf,
    pub now: DateTime<Utc>,
    /// The maximum age of the newest backup of any type (bare `--max-age`).
    pub max_age_seconds: Option<i64>,
    pub types: Vec<TypeStatus>,
    /// Age of the newest daily / weekly / pre-deploy backup.
    pub newest_age_seconds: Option<i64>,
    /// Any rule is stale: the bare one, or a type's own.
    pub stale: bool,
    /// The types judged stale by their own maximum age.
    pub stale_types: Vec<BackupType>,
    /// Whether the newest archives were read in full against their sidecars.
    pub checked: bool,
    /// Newest archives that failed their check (sidecar mismatch, damaged header).
    pub problems: Vec<String>,
    pub free_bytes: Option<u64>,
    /// Why the store's root is not usable, when it is not.
    #[serde(skip)]
    pub root_problem: Option<&'static str>,
}

/// An age as `status` says it: rounded to minutes beyond an hour (the
/// seconds are noise there).
pub fn age_text(secs: i64) -> String {
    let secs = if secs >= 3600 { secs / 60 * 60 } else { secs };
    crate::retention::format_duration(TimeDelta::seconds(secs))
}

impl Report {
    /// Whether the bare rule (newest backup of any type) is stale.
    pub fn any_stale(&self) -> bool {
        self.max_age_seconds
            .is_some_and(|m| self.newest_age_seconds.is_none_or(|a| a > m))
    }

    /// One phrase per stale type: `daily (newest 30d old, allowed 25h)`.
    pub fn stale_type_texts(&self) -> Vec<String> {
        self.types
            .iter()
            .filter(|t| t.stale == Some(true))
            .map(|t| {
                let allowed = age_text(t.max_age_seconds.unwrap_or(0));
                match t.age_seconds {
                    None => format!("{} (no backup; allowed {allowed})", t.btype.as_str()),
                    Some(a) => format!(
                        "{} (newest {} old, allowed {allowed})",
                        t.btype.as_str(),
                        age_text(a)
                    ),
                }
            })
            .collect()
    }

    /// The error a `status` run ends with, if any: a store that is not there
    /// is a broken setup (exit 1), not an old backup — the mount or the path
    /// is wrong; then an old or missing newest backup, or a type whose own
    /// newest is (exit 6, naming the types); then a newest archive that does
    /// not check (exit 3).
    pub fn error(&self) -> Option<Error> {
        let dest = self.dest.display();
        if let Some(p) = self.root_problem {
            let what = if p == "not a directory" {
                "is not a directory"
            } else {
                p
            };
            return Some(Error::operational(format!("the backup destination {dest} {what}"))
                .hint("check --dest / $BACKUP_ROOT (and that the disk or share is mounted); a first `secureclaw-backup backup` creates it"));
        }
        if self.stale {
            let mut parts = Vec::new();
            if self.any_stale() {
                parts.push(match self.newest_age_seconds {
                    None => format!("no backup in {dest}"),
                    Some(a) => format!(
                        "the newest backup in {dest} is {} old, more than {}",
                        age_text(a),
                        age_text(self.max_age_seconds.unwrap_or(0))
                    ),
                });
            }
            let types = self.stale_type_texts();
            if !types.is_empty() {
                parts.push(format!("stale in {dest}: {}", types.join(", ")));
            }
            return Some(Error::new(ErrorKind::Stale, parts.join("; ")).hint(
                "check the backup timer or cron job and its logs (journalctl --user -u 'secureclaw-backup-*')",
            ));
        }
        if !self.problems.is_empty() {
            return Some(
                Error::integrity(format!(
                    "the newest archive does not check: {}",
                    self.problems.join("; ")
                ))
                .hint("run `secureclaw-backup verify` on it, and make a new backup"),
            );
        }
        None
    }
}

/// Builds the report. At [`Depth::Check`] the newest archive of each type is
/// read in full (each announced as a detail, "checking NAME", before it is
/// read); at [`Depth::Headers`] only its header; at [`Depth::Names`] only
/// the listing. The newest archive's `.meta`, when there is one, gives its
/// chain length.
pub fn report(
    store: &dyn Store,
    max_age: &MaxAge,
    depth: Depth,
    now: DateTime<Utc>,
    events: &dyn Events,
) -> Result<Report> {
    report_trusted(
        store,
        max_age,
        depth,
        &crate::sign::Trust::Unchecked,
        now,
        events,
    )
}

/// [`report`] with trusted signers (README "Signed archives"): the newest
/// archive of each type must carry a valid signature by one of them
/// (verified over its bytes, beyond [`Depth::Names`]); an unsigned or badly
/// signed one is a problem.
pub fn report_trusted(
    store: &dyn Store,
    max_age: &MaxAge,
    depth: Depth,
    trust: &crate::sign::Trust,
    now: DateTime<Utc>,
    events: &dyn Events,
) -> Result<Report> {
    let index = store::index(store)?;
    let archives = &index.archives;
    let mut types = Vec::new();
    let mut problems = Vec::new();
    let root_problem = store.problem();
    if let Some(p) = root_problem {
        problems.push(format!("{}: {p}", store.url()));
    }
    let mut newest_age: Option<i64> = None;
    for t in BackupType::ALL {
        let of_type: Vec<_> = archives.iter().filter(|l| l.archive.btype == t).collect();
        let mut stems: Vec<_> = of_type
            .iter()
            .map(|l| (l.archive.time, l.archive.seq))
            .collect();
        stems.dedup();
        // Newest: the last by (time, seq); prefer an archive file over a legacy
        // directory of the same stem.
        let newest = of_type.iter().rev().max_by_key(|l| {
            let a = &l.archive;
            (a.time, a.seq, a.container != store::Container::Directory)
        });
        let entry = newest.map(|l| {
            if depth == Depth::Check {
                events.detail(format!("checking {}", l.archive.name));
            }
            let mut e = catalog::describe(store, l, depth);
            if depth != Depth::Names {
                catalog::sign_state(store, l, trust, &mut e);
            }
            e
        });
        let chain_length = newest.and_then(|l| match crate::prune::chain_of(store, l) {
            Ok(c) => Some(c.map_or(1, |c| c.level.saturating_add(1))),
            Err(why) => {
                problems.push(format!(
                    "{}: {why}",
                    crate::meta::meta_name(&l.archive.name)
                ));
                None
            }
        });
        let age = entry.as_ref().map(|e| (now - e.time).num_seconds().max(0));
        let sidecar_ok = entry.as_ref().and_then(|e| match e.sidecar {
            Sidecar::Ok => Some(true),
            s if s.is_bad() => Some(false),
            _ => None,
        });
        if let Some(e) = entry.as_ref().filter(|_| trust.is_checked()) {
            match &e.signature {
                crate::sign::SigState::Valid { .. } => {}
                crate::sign::SigState::Invalid { reason } => {
                    problems.push(format!("{}: bad signature: {reason}", e.name))
                }
                _ => problems.push(format!(
                    "{}: not signed by a trusted signer (no valid .sig; restore refuses it)",
                    e.name
                )),
            }
        }
        if let Some(e) = &entry {
            if sidecar_ok == Some(false) {
                problems.push(format!("{}: sidecar {}", e.name, e.sidecar));
            }
            if e.format == "damaged" {
                problems.push(format!(
                    "{}: {}",
                    e.name,
                    e.problem.as_deref().unwrap_or("damaged header")
                ));
            }
        }
        if t != BackupType::PreRestore {
            if let Some(a) = age {
                newest_age = Some(newest_age.map_or(a, |n| n.min(a)));
            }
        }
        let own = max_age.for_type(t).map(|d| d.num_seconds());
        types.push(TypeStatus {
            btype: t,
            count: stems.len(),
            newest: entry,
            age_seconds: age,
            sidecar_ok,
            chain_length,
            max_age_seconds: own,
            stale: own.map(|m| age.is_none_or(|a| a > m)),
        });
    }
    let max_age_seconds = max_age.any.map(|d| d.num_seconds());
    let stale_types: Vec<BackupType> = types
        .iter()
        .filter(|t| t.stale == Some(true))
        .map(|t| t.btype)
        .collect();
    let any_stale = max_age_seconds.is_some_and(|m| newest_age.is_none_or(|a| a > m));
    let free_bytes = store.free_bytes();
    Ok(Report {
        dest: PathBuf::from(store.url()),
        now,
        max_age_seconds,
        types,
        newest_age_seconds: newest_age,
        stale: any_stale || !stale_types.is_empty(),
        stale_types,
        checked: depth == Depth::Check,
        problems,
        free_bytes,
        root_problem,
    })
}

/// Metrics of one store in the Prometheus text exposition format.
pub fn prometheus(r: &Report) -> String {
    prometheus_all(&[(None, r)])
}

/// Metrics of several stores in one file: each row of a store given a name
/// carries a `tier="NAME"` label (a fleet watched from one host).
pub fn prometheus_all(reports: &[(Option<&str>, &Report)]) -> String {
    let mut out = String::new();
    let label = |tier: Option<&str>, t: Option<BackupType>| -> String {
        let mut l = Vec::new();
        if let Some(n) = tier {
            l.push(format!("tier=\"{}\"", prom_escape(n)));
        }
        if let Some(t) = t {
            l.push(format!("type=\"{}\"", t.as_str()));
        }
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", l.join(","))
        }
    };
    type Rows = Vec<(Option<BackupType>, String)>;
    let mut family = |name: &str, help: &str, rows: &dyn Fn(&Report) -> Rows| {
        let all: Vec<(Option<&str>, Rows)> = reports.iter().map(|(n, r)| (*n, rows(r))).collect();
        if all.iter().all(|(_, r)| r.is_empty()) {
            return;
        }
        out.push_str(&format!("# HELP secureclaw_backup_{name} {help}\n"));
        out.push_str(&format!("# TYPE secureclaw_backup_{name} gauge\n"));
        for (tier, rows) in all {
            for (t, v) in rows {
                out.push_str(&format!("secureclaw_backup_{name}{} {v}\n", label(tier, t)));
            }
        }
    };
    fn per(
        r: &Report,
        f: &dyn Fn(&TypeStatus) -> Option<String>,
    ) -> Vec<(Option<BackupType>, String)> {
        r.types
            .iter()
            .filter_map(|t| f(t).map(|v| (Some(t.btype), v)))
            .collect()
    }
    family(
        "last_success_timestamp_seconds",
        "Unix time of the newest backup of this type (from its name).",
        &|r| {
            per(r, &|t| {
                t.newest.as_ref().map(|e| e.time.timestamp().to_string())
            })
        },
    );
    family(
        "age_seconds",
        "Age of the newest backup of this type.",
        &|r| per(r, &|t| t.age_seconds.map(|a| a.to_string())),
    );
    family(
        "size_bytes",
        "Size of the newest backup of this type.",
        &|r| per(r, &|t| t.newest.as_ref().map(|e| e.size.to_string())),
    );
    family(
        "chain_length",
        "Links of the newest backup's incremental chain up to it, the full included (1 for a full).",
        &|r| per(r, &|t| t.chain_length.map(|n| n.to_string())),
    );
    family(
        "sidecar_ok",
        "1 when the newest backup of this type matches its .sha256 sidecar, 0 when not.",
        &|r| {
            if !r.checked {
                return Vec::new();
            }
            per(r, &|t| match (t.sidecar_ok, &t.newest) {
                (Some(ok), _) => Some(u8::from(ok).to_string()),
                (None, Some(_)) => Some("0".into()),
                (None, None) => None,
            })
        },
    );
    family(
        "archives_total",
        "Number of backups of this type in the destination.",
        &|r| per(r, &|t| Some(t.count.to_string())),
    );
    family(
        "type_max_age_seconds",
        "The allowed maximum age of this type's own newest backup (--max-age TYPE=…).",
        &|r| per(r, &|t| t.max_age_seconds.map(|m| m.to_string())),
    );
    family(
        "type_stale",
        "1 when this type's own newest backup is older than its maximum age (or there is none).",
        &|r| per(r, &|t| t.stale.map(|s| u8::from(s).to_string())),
    );
    family(
        "stale",
        "1 when the newest backup is older than the allowed maximum age (or there is none), or any type is stale.",
        &|r| vec![(None, u8::from(r.stale).to_string())],
    );
    family(
        "max_age_seconds",
        "The allowed maximum age of the newest backup of any type.",
        &|r| {
            r.max_age_seconds
                .map(|m| (None, m.to_string()))
                .into_iter()
                .collect()
        },
    );
    family(
        "free_bytes",
        "Free space on the destination's filesystem.",
        &|r| {
            r.free_bytes
                .map(|f| (None, f.to_string()))
                .into_iter()
                .collect()
        },
    );
    family(
        "status_timestamp_seconds",
        "Unix time this status was computed.",
        &|r| vec![(None, r.now.timestamp().to_string())],
    );
    out
}

/// Whether `status --tier` names a store by URL (`s3://`, `file://` or an
/// absolute directory) rather than a configured tier.
pub fn is_store_url(name: &str) -> bool {
    name.starts_with("s3://") || name.starts_with('/') || name.starts_with("file://")
}

/// Opens the store a URL names: endpoint and region of an `s3://` URL from a
/// configured tier on the same bucket (`load` reads the configuration, if
/// any), else the environment.
pub fn open_url(
    name: &str,
    load: impl FnOnce() -> Result<Option<crate::tier::Config>>,
) -> Result<Box<dyn Store>> {
    use crate::tier::{self, Location};
    let loc = Location::parse(name)?;
    let cfg = load()?;
    let same = cfg.as_ref().and_then(|c| {
        c.tier
            .iter()
            .find(|t| match (&loc, Location::parse(&t.url)) {
                (Location::S3 { bucket, .. }, Ok(Location::S3 { bucket: b, .. })) => *bucket == b,
                _ => false,
            })
    });
    tier::open_location(
        &loc,
        same.and_then(|t| t.endpoint.as_deref()),
        same.and_then(|t| t.region.as_deref()),
    )
}

/// The JSON document of one store's report: the report and `ok` (fresh,
/// and no problem).
pub fn report_json(r: &Report) -> serde_json::Value {
    let mut doc = serde_json::json!(r);
    doc["ok"] = serde_json::json!(!r.stale && r.problems.is_empty());
    doc
}

/// One store judged by `status --tier`: its name as given, and its report or
/// why it could not be judged.
pub struct Watched {
    pub name: String,
    pub outcome: Result<Report>,
}

/// The stores a `status --tier` run judged, at one instant: one metrics
/// file, one JSON document and one error over all of them.
pub struct Fleet {
    pub now: DateTime<Utc>,
    pub watched: Vec<Watched>,
}

impl Fleet {
    /// Judges each named store from its listing and headers (`open` opens
    /// what a name names); a store that cannot be opened or listed is kept
    /// with its error.
    pub fn judge(
        names: &[String],
        open: &dyn Fn(&str) -> Result<Box<dyn Store>>,
        max_age: &MaxAge,
        trust: &crate::sign::Trust,
        now: DateTime<Utc>,
        events: &dyn Events,
    ) -> Fleet {
        let watched = names
            .iter()
            .map(|name| Watched {
                name: name.clone(),
                outcome: open(name).and_then(|s| {
                    report_trusted(s.as_ref(), max_age, Depth::Headers, trust, now, events)
                }),
            })
            .collect();
        Fleet { now, watched }
    }

    /// The names of the stores whose report is stale.
    pub fn stale_stores(&self) -> Vec<&str> {
        self.watched
            .iter()
            .filter(|w| w.outcome.as_ref().is_ok_and(|r| r.stale))
            .map(|w| w.name.as_str())
            .collect()
    }

    /// Each failing store with its error: not judged, or its report's error.
    pub fn errors(&self) -> Vec<(String, Error)> {
        let mut errors = Vec::new();
        for w in &self.watched {
            let e = match &w.outcome {
                Ok(r) => r.error(),
                Err(e) => Some(e.clone()),
            };
            if let Some(e) = e {
                errors.push((w.name.clone(), e));
            }
        }
        errors
    }

    /// The metrics of every judged store (a `tier` label each), and
    /// `secureclaw_backup_store_up` when a store could not be listed (stale
    /// for the collector too).
    pub fn prometheus(&self) -> String {
        let ok_reports: Vec<(Option<&str>, &Report)> = self
            .watched
            .iter()
            .filter_map(|w| w.outcome.as_ref().ok().map(|r| (Some(w.name.as_str()), r)))
            .collect();
        let mut text = prometheus_all(&ok_reports);
        if self.watched.iter().any(|w| w.outcome.is_err()) {
            text.push_str("# HELP secureclaw_backup_store_up 0 when the store could not be listed.\n# TYPE secureclaw_backup_store_up gauge\n");
            for w in &self.watched {
                text.push_str(&format!(
                    "secureclaw_backup_store_up{{tier=\"{}\"}} {}\n",
                    w.name.replace('\\', "\\\\").replace('"', "\\\""),
                    u8::from(w.outcome.is_ok())
                ));
            }
        }
        text
    }

    /// The JSON document: `ok`, the instant, the stale stores and one entry
    /// per store (its report and `tier`, or its error).
    pub fn json(&self) -> serde_json::Value {
        let stores: Vec<serde_json::Value> = self
            .watched
            .iter()
            .map(|w| match &w.outcome {
                Ok(r) => {
                    let mut d = report_json(r);
                    d["tier"] = serde_json::json!(w.name);
                    d
                }
                Err(e) => serde_json::json!({"tier": w.name, "ok": false,
                    "error": {"kind": e.kind, "message": e.message}}),
            })
            .collect();
        let stale = self.stale_stores();
        serde_json::json!({
            "ok": self.errors().is_empty(),
            "now": self.now,
            "stale": !stale.is_empty(),
            "stale_stores": stale,
            "stores": stores,
        })
    }

    /// The error of the run: the most serious kind (a broken store, then a
    /// stale one, then a damaged archive), naming every failing store.
    pub fn error(&self) -> Option<Error> {
        let errors = self.errors();
        let rank = |k: ErrorKind| match k {
            ErrorKind::Stale => 1,
            ErrorKind::Integrity => 2,
            _ => 0,
        };
        let worst = errors.iter().map(|(_, e)| rank(e.kind)).min()?;
        let kind = errors
            .iter()
            .find(|(_, e)| rank(e.kind) == worst)
            .map(|(_, e)| e.kind)?;
        let hint = errors
            .iter()
            .find(|(_, e)| e.kind == kind)
            .and_then(|(_, e)| e.hint.clone());
        let n = errors.len();
        let msg = errors
            .iter()
            .map(|(name, e)| format!("{name}: {}", e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Error::new(
            kind,
            format!(
                "{n} of the watched stores {}: {msg}",
                if n == 1 { "fails" } else { "fail" }
            ),
        );
        if let Some(h) = hint {
            e = e.hint(h);
        }
        Some(e)
    }
}

/// A label value in the exposition format: backslash, quote and newline escaped.
fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Silent;
    use crate::store::LocalStore;

    /// The report of the local `d` with a bare `--max-age` of `hours`.
    fn local(d: &std::path::Path, hours: i64, now: DateTime<Utc>) -> Report {
        let max_age = MaxAge::any(TimeDelta::hours(hours));
        report(&LocalStore::new(d), &max_age, Depth::Check, now, &Silent).unwrap()
    }

    fn ts(now: DateTime<Utc>, ago: TimeDelta) -> String {
        (now - ago).format("%Y%m%d_%H%M%S").to_string()
    }

    #[test]
    fn fresh_stale_and_metrics() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = Utc::now();
        let r = local(d, 25, now);
        assert!(r.stale);
        assert_eq!(r.newest_age_seconds, None);

        let name = format!("daily_{}.tar.gz", ts(now, TimeDelta::hours(2)));
        std::fs::write(d.join(&name), [0x1f, 0x8b, 8, 0]).unwrap();
        let digest = store::sha256_file(&d.join(&name)).unwrap();
        store::write_sidecar(&d.join(&name), &digest).unwrap();
        // A fresh pre-restore snapshot does not count as a backup.
        std::fs::write(
            d.join(format!(
                "pre-restore_{}.tar.gz",
                ts(now, TimeDelta::minutes(1))
            )),
            [0x1f, 0x8b],
        )
        .unwrap();

        let r = local(d, 25, now);
        assert!(!r.stale, "{r:?}");
        assert!(r.problems.is_empty());
        assert_eq!(r.types[0].sidecar_ok, Some(true));
        assert!(r.free_bytes.is_some());
        let r1 = local(d, 1, now);
        assert!(r1.stale);

        let m = prometheus(&r);
        assert!(m.contains("secureclaw_backup_last_success_timestamp_seconds{type=\"daily\"} "));
        assert!(m.contains("secureclaw_backup_sidecar_ok{type=\"daily\"} 1\n"));
        assert!(m.contains("secureclaw_backup_archives_total{type=\"weekly\"} 0\n"));
        assert!(m.contains("secureclaw_backup_stale 0\n"));
        assert!(!m.contains("age_seconds{type=\"weekly\"}"));
        for line in m.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<f64>().unwrap();
        }
        let f = d.join("metrics/backup.prom");
        std::fs::create_dir(d.join("metrics")).unwrap();
        store::write_replace(&f, m.as_bytes(), 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), m);

        // A corrupted newest archive is a problem.
        std::fs::write(d.join(&name), [0x1f, 0x8b, 8, 1]).unwrap();
        let r = local(d, 25, now);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(prometheus(&r).contains("secureclaw_backup_sidecar_ok{type=\"daily\"} 0\n"));
    }

    #[test]
    fn per_type_max_age_names_the_stale_type() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = Utc::now();
        let daily = format!("daily_{}.tar.gz", ts(now, TimeDelta::days(30)));
        let deploy = format!("pre-deploy_{}.tar.gz", ts(now, TimeDelta::minutes(5)));
        for n in [&daily, &deploy] {
            std::fs::write(d.join(n), [0x1f, 0x8b, 8, 0]).unwrap();
            let digest = store::sha256_file(&d.join(n)).unwrap();
            store::write_sidecar(&d.join(n), &digest).unwrap();
        }
        let s = LocalStore::new(d);
        // today's single rule: the fresh pre-deploy makes it OK
        let r = report(&s, &MaxAge::default(), Depth::Check, now, &Silent).unwrap();
        assert!(!r.stale && r.error().is_none(), "{r:?}");
        // per type: daily is judged by its own newest
        let m = MaxAge::parse(&["daily=25h", "pre-deploy=1h"]).unwrap();
        assert_eq!(m.any, None);
        let r = report(&s, &m, Depth::Check, now, &Silent).unwrap();
        assert!(r.stale);
        assert_eq!(r.stale_types, [BackupType::Daily]);
        let e = r.error().unwrap();
        assert_eq!(e.kind, ErrorKind::Stale);
        assert!(
            e.message.contains("daily (newest 30d old, allowed 1d1h)"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("pre-deploy"), "{}", e.message);
        // a judged type without any backup is stale too
        let m = MaxAge::parse(&["25h", "weekly=8d"]).unwrap();
        let r = report(&s, &m, Depth::Check, now, &Silent).unwrap();
        assert_eq!(r.stale_types, [BackupType::Weekly]);
        assert!(!r.any_stale());
        assert!(r
            .error()
            .unwrap()
            .message
            .contains("weekly (no backup; allowed 8d)"));
        let p = prometheus(&r);
        assert!(
            p.contains("secureclaw_backup_type_stale{type=\"weekly\"} 1\n"),
            "{p}"
        );
        assert!(p.contains("secureclaw_backup_type_max_age_seconds{type=\"weekly\"} 691200\n"));
        assert!(p.contains("secureclaw_backup_chain_length{type=\"daily\"} 1\n"));
        assert!(p.contains("secureclaw_backup_stale 1\n"));
        assert!(!p.contains("type_stale{type=\"daily\"}"));
        // bad values
        for bad in [
            &["hourly=1h"][..],
            &["daily=soon"],
            &["1h", "2h"],
            &["daily=1h", "daily=2h"],
        ] {
            let e = MaxAge::parse(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Usage, "{bad:?}");
        }
        assert_eq!(
            MaxAge::parse(&["1h", "daily=2h"]).unwrap().args(),
            ["1h", "daily=2h"]
        );
        // several stores in one file: a tier label on every row
        let both = prometheus_all(&[(Some("web-1"), &r), (Some("web-2"), &r)]);
        assert!(
            both.contains("secureclaw_backup_stale{tier=\"web-1\"} 1\n"),
            "{both}"
        );
        assert!(both.contains("secureclaw_backup_age_seconds{tier=\"web-2\",type=\"daily\"} "));
        assert_eq!(
            both.matches("# TYPE secureclaw_backup_stale gauge").count(),
            1
        );
    }
}
