//! `status`: is the newest backup recent enough, and does it check? Renders
//! [`secureclaw_backup::status::report`] (and writes its metrics file); exit 6 when the
//! newest backup of any type but pre-restore is older than `--max-age` or
//! there is none; exit 1 when the destination does not exist (listed under
//! problems); otherwise exit 3 when the newest archive of a type does not
//! match its sidecar or its header is damaged ([`Report::error`]). The report
//! (and the metrics file) is written first in every case.

use std::path::PathBuf;

use chrono::Utc;
use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::error::Result;
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::retention::parse_duration;
use secureclaw_backup::status::{self, age_text, Report};
use secureclaw_backup::store::{self, LocalStore};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Exit 6 when the newest backup is older than this (e.g. 1h for an RPO of one hour)
    #[arg(long, value_name = "DURATION", default_value = "25h")]
    pub max_age: String,
    /// Also write metrics in the Prometheus text format to FILE (atomically)
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// The human rendering.
pub fn human(r: &Report) -> String {
    let mut out = format!("Backups in {}:\n", r.dest.display());
    out.push_str(&format!(
        "  {:<12} {:>5}  {:<20} {:>9}  {:>10}  {:<10}  FORMAT\n",
        "TYPE", "COUNT", "NEWEST (UTC)", "AGE", "SIZE", "SIDECAR"
    ));
    for t in &r.types {
        match &t.newest {
            None => out.push_str(&format!(
                "  {:<12} {:>5}  {:<20} {:>9}  {:>10}  {:<10}  -\n",
                t.btype.as_str(),
                0,
                "-",
                "-",
                "-",
                "-"
            )),
            Some(e) => out.push_str(&format!(
                "  {:<12} {:>5}  {:<20} {:>9}  {:>10}  {:<10}  {}\n",
                t.btype.as_str(),
                t.count,
                e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                age_text(t.age_seconds.unwrap_or(0)),
                human_bytes(e.size),
                e.sidecar,
                e.format
            )),
        }
    }
    if let Some(f) = r.free_bytes {
        out.push_str(&format!("\nFree space: {}\n", human_bytes(f)));
    }
    let max = age_text(r.max_age_seconds);
    match r.newest_age_seconds {
        None => out.push_str("\nSTALE: no backup at all (daily, weekly or pre-deploy).\n"),
        Some(a) if r.stale => out.push_str(&format!(
            "\nSTALE: the newest backup is {} old (allowed: {max}).\n",
            age_text(a)
        )),
        Some(a) => out.push_str(&format!(
            "\nOK: the newest backup is {} old (allowed: {max}).\n",
            age_text(a)
        )),
    }
    for p in &r.problems {
        out.push_str(&format!("PROBLEM: {p}\n"));
    }
    out
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let max_age = parse_duration(&args.max_age).map_err(|e| e.context("--max-age"))?;
    let r = status::report(&LocalStore::new(&dest), max_age, Utc::now(), ui)?;
    if let Some(p) = &args.prometheus {
        // mode 0644 so that the metrics collector can read it
        store::write_replace(p, status::prometheus(&r).as_bytes(), 0o644)?;
        ui.detail(format!("metrics written to {}", p.display()));
    }
    let mut doc = json!(r);
    doc["ok"] = json!(!r.stale && r.problems.is_empty());
    ui.result(human(&r), doc);
    match r.error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use secureclaw_backup::events::Silent;

    #[test]
    fn stale_and_fresh_are_said() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = Utc::now();
        let r = status::report(&LocalStore::new(d), TimeDelta::hours(25), now, &Silent).unwrap();
        assert!(
            human(&r).contains("STALE: no backup at all"),
            "{}",
            human(&r)
        );
        let name = format!(
            "daily_{}.tar.gz",
            (now - TimeDelta::hours(2)).format("%Y%m%d_%H%M%S")
        );
        std::fs::write(d.join(&name), [0x1f, 0x8b, 8, 0]).unwrap();
        let digest = store::sha256_file(&d.join(&name)).unwrap();
        store::write_sidecar(&d.join(&name), &digest).unwrap();
        let r = status::report(&LocalStore::new(d), TimeDelta::hours(25), now, &Silent).unwrap();
        let h = human(&r);
        assert!(h.contains("\nOK: the newest backup is 2h old"), "{h}");
        assert!(h.contains(" ok         "), "sidecar column padded: {h}");
        let r1 = status::report(&LocalStore::new(d), TimeDelta::hours(1), now, &Silent).unwrap();
        assert!(human(&r1).contains("STALE"));
    }
}
