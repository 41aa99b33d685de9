//! `status`: is the newest backup recent enough, and does it check? Renders
//! [`secureclaw_backup::status::report`] (and writes its metrics file); exit 6 when a
//! freshness rule is stale (`--max-age [TYPE=]DURATION`, repeatable: a bare
//! DURATION for the newest backup of any type but pre-restore, `TYPE=` for
//! that type's own newest; see [`secureclaw_backup::status`]), naming the
//! stale types; exit 1 when the destination does not exist (listed under
//! problems); otherwise exit 3 when the newest archive of a type does not
//! match its sidecar or its header is damaged ([`Report::error`]). The report
//! (and the metrics file) is written first in every case.
//!
//! `--tier NAME|URL` (repeatable) judges tiers instead (a configured tier, an
//! `s3://bucket/prefix` or an absolute NAS directory), from their listing,
//! headers and `.meta` files, so a monitoring host with read-only
//! credentials can watch a fleet: one report, one metrics file (a `tier`
//! label per store) and one exit code over all of them (the most serious:
//! 1, then 6, then 3).

use std::path::PathBuf;

use chrono::Utc;
use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, ErrorKind, Result};
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::status::{self, age_text, Depth, MaxAge, Report};
use secureclaw_backup::store::{self, LocalStore, Store};
use secureclaw_backup::tier;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Exit 6 when too old: a DURATION for the newest backup of any type
    /// (default 25h), TYPE=DURATION for that type's own newest (e.g.
    /// daily=2h10m); repeatable
    #[arg(long, value_name = "[TYPE=]DURATION", action = clap::ArgAction::Append)]
    pub max_age: Vec<String>,
    /// Also write metrics in the Prometheus text format to FILE (atomically)
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// Judge a tier instead of the local destination (a configured tier's
    /// name, s3://bucket/prefix or a NAS directory), from its listing;
    /// repeatable: one report and one exit code over all
    #[arg(long = "tier", value_name = "NAME|URL")]
    pub tiers: Vec<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
    /// Judge the newest archives' signatures against these trusted signers:
    /// an unsigned or badly signed one is a problem
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
}

/// The human rendering.
pub fn human(r: &Report) -> String {
    let mut out = format!("Backups in {}:\n", r.dest.display());
    out.push_str(&format!(
        "  {:<12} {:>5}  {:<20} {:>9}  {:>10}  {:>5}  {:<10}  FORMAT\n",
        "TYPE", "COUNT", "NEWEST (UTC)", "AGE", "SIZE", "CHAIN", "SIDECAR"
    ));
    for t in &r.types {
        match &t.newest {
            None => out.push_str(&format!(
                "  {:<12} {:>5}  {:<20} {:>9}  {:>10}  {:>5}  {:<10}  -\n",
                t.btype.as_str(),
                0,
                "-",
                "-",
                "-",
                "-",
                "-"
            )),
            Some(e) => out.push_str(&format!(
                "  {:<12} {:>5}  {:<20} {:>9}  {:>10}  {:>5}  {:<10}  {}\n",
                t.btype.as_str(),
                t.count,
                e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                age_text(t.age_seconds.unwrap_or(0)),
                human_bytes(e.size),
                t.chain_length.map_or("?".to_owned(), |n| n.to_string()),
                e.sidecar,
                e.format
            )),
        }
    }
    if let Some(f) = r.free_bytes {
        out.push_str(&format!("\nFree space: {}\n", human_bytes(f)));
    }
    if let Some(m) = r.max_age_seconds {
        let max = age_text(m);
        let stale = r.any_stale();
        match r.newest_age_seconds {
            None => out.push_str("\nSTALE: no backup at all (daily, weekly or pre-deploy).\n"),
            Some(a) if stale => out.push_str(&format!(
                "\nSTALE: the newest backup is {} old (allowed: {max}).\n",
                age_text(a)
            )),
            Some(a) => out.push_str(&format!(
                "\nOK: the newest backup is {} old (allowed: {max}).\n",
                age_text(a)
            )),
        }
    } else {
        out.push('\n');
    }
    for t in r.types.iter().filter(|t| t.stale.is_some()) {
        let max = age_text(t.max_age_seconds.unwrap_or(0));
        let verdict = if t.stale == Some(true) { "STALE" } else { "OK" };
        match t.age_seconds {
            None => out.push_str(&format!(
                "{verdict}: {}: no backup (allowed: {max}).\n",
                t.btype.as_str()
            )),
            Some(a) => out.push_str(&format!(
                "{verdict}: {}: the newest is {} old (allowed: {max}).\n",
                t.btype.as_str(),
                age_text(a)
            )),
        }
    }
    for p in &r.problems {
        out.push_str(&format!("PROBLEM: {p}\n"));
    }
    out
}

/// One store judged by `--tier`.
struct Watched {
    /// As given on the command line.
    name: String,
    outcome: Result<Report>,
}

/// Opens what `--tier` names: a configured tier, or a URL (endpoint and
/// region of an `s3://` URL from a configured tier on the same bucket, else
/// the environment).
fn open_tier(name: &str, config: &super::push::ConfigArgs) -> Result<Box<dyn Store>> {
    if name.starts_with("s3://") || name.starts_with('/') || name.starts_with("file://") {
        let loc = tier::Location::parse(name)?;
        let cfg = config.load_optional()?;
        let same = cfg.as_ref().and_then(|c| {
            c.tier
                .iter()
                .find(|t| match (&loc, tier::Location::parse(&t.url)) {
                    (
                        tier::Location::S3 { bucket, .. },
                        Ok(tier::Location::S3 { bucket: b, .. }),
                    ) => *bucket == b,
                    _ => false,
                })
        });
        return tier::open_location(
            &loc,
            same.and_then(|t| t.endpoint.as_deref()),
            same.and_then(|t| t.region.as_deref()),
        );
    }
    Ok(config.tier(name)?.1)
}

/// The error of a run over several stores: the most serious kind (a broken
/// store, then a stale one, then a damaged archive), naming every store.
fn fleet_error(errors: Vec<(String, Error)>) -> Option<Error> {
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

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let max_age = MaxAge::parse(&args.max_age)?;
    let now = Utc::now();
    if args.tiers.is_empty() {
        let dest = store::dest_or_default(args.dest.as_deref())?;
        let trust = args.signers.trust(Some(&args.config))?;
        let r = status::report_trusted(
            &LocalStore::new(&dest),
            &max_age,
            Depth::Check,
            &trust,
            now,
            ui,
        )?;
        if let Some(p) = &args.prometheus {
            // mode 0644 so that the metrics collector can read it
            store::write_replace(p, status::prometheus(&r).as_bytes(), 0o644)?;
            ui.detail(format!("metrics written to {}", p.display()));
        }
        let mut doc = json!(r);
        doc["ok"] = json!(!r.stale && r.problems.is_empty());
        ui.result(human(&r), doc);
        return match r.error() {
            Some(e) => Err(e),
            None => Ok(()),
        };
    }
    if args.dest.is_some() {
        return Err(Error::usage(
            "--dest and --tier: status judges either the local destination or tiers",
        )
        .hint("run status once for the destination and once with every --tier"));
    }
    let trust = args.signers.trust(Some(&args.config))?;
    let mut watched = Vec::new();
    for name in &args.tiers {
        let outcome = open_tier(name, &args.config).and_then(|s| {
            status::report_trusted(s.as_ref(), &max_age, Depth::Headers, &trust, now, ui)
        });
        watched.push(Watched {
            name: name.clone(),
            outcome,
        });
    }
    let ok_reports: Vec<(Option<&str>, &Report)> = watched
        .iter()
        .filter_map(|w| w.outcome.as_ref().ok().map(|r| (Some(w.name.as_str()), r)))
        .collect();
    if let Some(p) = &args.prometheus {
        let mut text = status::prometheus_all(&ok_reports);
        // a store that could not be listed is stale for the collector too
        let failed: Vec<&Watched> = watched.iter().filter(|w| w.outcome.is_err()).collect();
        if !failed.is_empty() {
            text.push_str("# HELP secureclaw_backup_store_up 0 when the store could not be listed.\n# TYPE secureclaw_backup_store_up gauge\n");
            for w in &watched {
                text.push_str(&format!(
                    "secureclaw_backup_store_up{{tier=\"{}\"}} {}\n",
                    w.name.replace('\\', "\\\\").replace('"', "\\\""),
                    u8::from(w.outcome.is_ok())
                ));
            }
        }
        store::write_replace(p, text.as_bytes(), 0o644)?;
        ui.detail(format!("metrics written to {}", p.display()));
    }
    let mut human_text = String::new();
    let mut stores = Vec::new();
    let mut errors = Vec::new();
    for w in &watched {
        match &w.outcome {
            Ok(r) => {
                human_text.push_str(&format!("== {} ==\n{}\n", w.name, human(r)));
                let mut d = json!(r);
                d["tier"] = json!(w.name);
                d["ok"] = json!(!r.stale && r.problems.is_empty());
                stores.push(d);
                if let Some(e) = r.error() {
                    errors.push((w.name.clone(), e));
                }
            }
            Err(e) => {
                human_text.push_str(&format!("== {} ==\nPROBLEM: {}\n\n", w.name, e.message));
                stores.push(json!({"tier": w.name, "ok": false,
                    "error": {"kind": e.kind, "message": e.message}}));
                errors.push((w.name.clone(), e.clone()));
            }
        }
    }
    let stale: Vec<&str> = watched
        .iter()
        .filter(|w| w.outcome.as_ref().is_ok_and(|r| r.stale))
        .map(|w| w.name.as_str())
        .collect();
    human_text.push_str(&if errors.is_empty() {
        format!("OK: {} store(s) fresh.\n", watched.len())
    } else {
        format!(
            "{} of {} store(s) not OK{}.\n",
            errors.len(),
            watched.len(),
            if stale.is_empty() {
                String::new()
            } else {
                format!(" (stale: {})", stale.join(", "))
            }
        )
    });
    let doc = json!({
        "ok": errors.is_empty(),
        "now": now,
        "stale": !stale.is_empty(),
        "stale_stores": stale,
        "stores": stores,
    });
    ui.result(human_text, doc);
    match fleet_error(errors) {
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
        let r = status::report(
            &LocalStore::new(d),
            &MaxAge::any(TimeDelta::hours(25)),
            Depth::Check,
            now,
            &Silent,
        )
        .unwrap();
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
        let r = status::report(
            &LocalStore::new(d),
            &MaxAge::any(TimeDelta::hours(25)),
            Depth::Check,
            now,
            &Silent,
        )
        .unwrap();
        let h = human(&r);
        assert!(h.contains("\nOK: the newest backup is 2h old"), "{h}");
        assert!(h.contains(" ok         "), "sidecar column padded: {h}");
        let r1 = status::report(
            &LocalStore::new(d),
            &MaxAge::any(TimeDelta::hours(1)),
            Depth::Check,
            now,
            &Silent,
        )
        .unwrap();
        assert!(human(&r1).contains("STALE"));
    }
}
