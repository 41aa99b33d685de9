//! The status of a store (the local destination, or any other [`Store`]): is
//! the newest backup of each type
//! recent enough, and does it check? The report (newest archive of each type,
//! its age and size, its SHA-256 against the sidecar — the newest of each type
//! is read in full —, the free space where the store lives) and its Prometheus
//! text rendering, for monitoring from cron, systemd or node_exporter's
//! textfile collector, and the error a run ends with ([`Report::error`]).
//! Prints nothing; the `status` command renders the report.

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::catalog::{self, Depth, Entry, Sidecar};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Events;
use crate::store::{self, BackupType, Store};

/// The state of one backup type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeStatus {
    #[serde(rename = "type")]
    pub btype: BackupType,
    /// Backups of this type (a legacy directory and its tarball count once).
    pub count: usize,
    pub newest: Option<Entry>,
    pub age_seconds: Option<i64>,
    /// The newest archive matches its sidecar (`None`: no sidecar or no archive).
    pub sidecar_ok: Option<bool>,
}

/// The whole status report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dest: PathBuf,
    pub now: DateTime<Utc>,
    pub max_age_seconds: i64,
    pub types: Vec<TypeStatus>,
    /// Age of the newest daily / weekly / pre-deploy backup.
    pub newest_age_seconds: Option<i64>,
    pub stale: bool,
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
    /// The error a `status` run ends with, if any: a store that is not there
    /// is a broken setup (exit 1), not an old backup — the mount or the path
    /// is wrong; then an old or missing newest backup (exit 6); then a newest
    /// archive that does not check (exit 3).
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
            let msg = match self.newest_age_seconds {
                None => format!("no backup in {dest}"),
                Some(a) => format!(
                    "the newest backup in {dest} is {} old, more than {}",
                    age_text(a),
                    age_text(self.max_age_seconds)
                ),
            };
            return Some(Error::new(ErrorKind::Stale, msg).hint(
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

/// Builds the report (reads the newest archive of each type in full; each is
/// announced as a detail, "checking NAME", before it is read).
pub fn report(
    store: &dyn Store,
    max_age: TimeDelta,
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
            events.detail(format!("checking {}", l.archive.name));
            catalog::describe(store, l, Depth::Check)
        });
        let age = entry.as_ref().map(|e| (now - e.time).num_seconds().max(0));
        let sidecar_ok = entry.as_ref().and_then(|e| match e.sidecar {
            Sidecar::Ok => Some(true),
            s if s.is_bad() => Some(false),
            _ => None,
        });
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
        types.push(TypeStatus {
            btype: t,
            count: stems.len(),
            newest: entry,
            age_seconds: age,
            sidecar_ok,
        });
    }
    let max_age_seconds = max_age.num_seconds();
    let stale = newest_age.is_none_or(|a| a > max_age_seconds);
    let free_bytes = store.free_bytes();
    Ok(Report {
        dest: PathBuf::from(store.url()),
        now,
        max_age_seconds,
        types,
        newest_age_seconds: newest_age,
        stale,
        problems,
        free_bytes,
        root_problem,
    })
}

/// Metrics in the Prometheus text exposition format.
pub fn prometheus(r: &Report) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, rows: Vec<(Option<BackupType>, String)>| {
        if rows.is_empty() {
            return;
        }
        out.push_str(&format!("# HELP secureclaw_backup_{name} {help}\n"));
        out.push_str(&format!("# TYPE secureclaw_backup_{name} gauge\n"));
        for (t, v) in rows {
            match t {
                Some(t) => out.push_str(&format!(
                    "secureclaw_backup_{name}{{type=\"{}\"}} {v}\n",
                    t.as_str()
                )),
                None => out.push_str(&format!("secureclaw_backup_{name} {v}\n")),
            }
        }
    };
    let per = |f: &dyn Fn(&TypeStatus) -> Option<String>| -> Vec<(Option<BackupType>, String)> {
        r.types
            .iter()
            .filter_map(|t| f(t).map(|v| (Some(t.btype), v)))
            .collect()
    };
    family(
        "last_success_timestamp_seconds",
        "Unix time of the newest backup of this type (from its name).",
        per(&|t| t.newest.as_ref().map(|e| e.time.timestamp().to_string())),
    );
    family(
        "age_seconds",
        "Age of the newest backup of this type.",
        per(&|t| t.age_seconds.map(|a| a.to_string())),
    );
    family(
        "size_bytes",
        "Size of the newest backup of this type.",
        per(&|t| t.newest.as_ref().map(|e| e.size.to_string())),
    );
    family(
        "sidecar_ok",
        "1 when the newest backup of this type matches its .sha256 sidecar, 0 when not.",
        per(&|t| match (t.sidecar_ok, &t.newest) {
            (Some(ok), _) => Some(u8::from(ok).to_string()),
            (None, Some(_)) => Some("0".into()),
            (None, None) => None,
        }),
    );
    family(
        "archives_total",
        "Number of backups of this type in the destination.",
        per(&|t| Some(t.count.to_string())),
    );
    family(
        "stale",
        "1 when the newest backup is older than the allowed maximum age (or there is none).",
        vec![(None, u8::from(r.stale).to_string())],
    );
    family(
        "max_age_seconds",
        "The allowed maximum age of the newest backup.",
        vec![(None, r.max_age_seconds.to_string())],
    );
    if let Some(f) = r.free_bytes {
        family(
            "free_bytes",
            "Free space on the destination's filesystem.",
            vec![(None, f.to_string())],
        );
    }
    family(
        "status_timestamp_seconds",
        "Unix time this status was computed.",
        vec![(None, r.now.timestamp().to_string())],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Silent;
    use crate::store::LocalStore;

    fn ts(now: DateTime<Utc>, ago: TimeDelta) -> String {
        (now - ago).format("%Y%m%d_%H%M%S").to_string()
    }

    #[test]
    fn fresh_stale_and_metrics() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = Utc::now();
        let r = report(&LocalStore::new(d), TimeDelta::hours(25), now, &Silent).unwrap();
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

        let r = report(&LocalStore::new(d), TimeDelta::hours(25), now, &Silent).unwrap();
        assert!(!r.stale, "{r:?}");
        assert!(r.problems.is_empty());
        assert_eq!(r.types[0].sidecar_ok, Some(true));
        assert!(r.free_bytes.is_some());
        let r1 = report(&LocalStore::new(d), TimeDelta::hours(1), now, &Silent).unwrap();
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
        let r = report(&LocalStore::new(d), TimeDelta::hours(25), now, &Silent).unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(prometheus(&r).contains("secureclaw_backup_sidecar_ok{type=\"daily\"} 0\n"));
    }
}
