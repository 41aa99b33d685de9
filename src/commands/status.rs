//! `status`: renders [`secureclaw_backup::status::report`] of the local
//! destination (and writes its metrics file), or with `--tier NAME|URL`
//! (repeatable) a [`secureclaw_backup::status::Fleet`] of tiers judged from
//! their listings, for a monitoring host with read-only credentials. The
//! report is written first; then exit 6 when a `--max-age [TYPE=]DURATION`
//! rule is stale, 1 when a store cannot be listed, 3 when a newest archive
//! does not check (over a fleet, the most serious: 1, then 6, then 3).

use std::path::PathBuf;

use crate::ui::Ui;
use chrono::Utc;
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::status::{self, age_text, Depth, Fleet, MaxAge, Report};
use secureclaw_backup::store::{self, LocalStore, Store};

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
    let row = |c: [&str; 8]| {
        format!(
            "  {:<12} {:>5}  {:<20} {:>9}  {:>10}  {:>5}  {:<10}  {}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
        )
    };
    let mut out = format!("Backups in {}:\n", r.dest.display());
    out.push_str(&row([
        "TYPE",
        "COUNT",
        "NEWEST (UTC)",
        "AGE",
        "SIZE",
        "CHAIN",
        "SIDECAR",
        "FORMAT",
    ]));
    for t in &r.types {
        let name = t.btype.as_str();
        out.push_str(&match &t.newest {
            None => row([name, "0", "-", "-", "-", "-", "-", "-"]),
            Some(e) => row([
                name,
                &t.count.to_string(),
                &e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                &age_text(t.age_seconds.unwrap_or(0)),
                &human_bytes(e.size),
                &t.chain_length.map_or("?".to_owned(), |n| n.to_string()),
                &e.sidecar.to_string(),
                &e.format.to_string(),
            ]),
        });
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

/// Opens what `--tier` names: a configured tier, or a URL (see
/// [`status::open_url`]).
fn open_tier(name: &str, config: &super::push::ConfigArgs) -> Result<Box<dyn Store>> {
    if status::is_store_url(name) {
        return status::open_url(name, || config.load_optional());
    }
    Ok(config.tier(name)?.1)
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let max_age = MaxAge::parse(&args.max_age)?;
    let now = Utc::now();
    let write_metrics = |text: String| -> Result<()> {
        if let Some(p) = &args.prometheus {
            // mode 0644 so that the metrics collector can read it
            store::write_replace(p, text.as_bytes(), 0o644)?;
            ui.detail(format!("metrics written to {}", p.display()));
        }
        Ok(())
    };
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
        write_metrics(status::prometheus(&r))?;
        ui.result(human(&r), status::report_json(&r));
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
    let open = |name: &str| open_tier(name, &args.config);
    let fleet = Fleet::judge(&args.tiers, &open, &max_age, &trust, now, ui);
    write_metrics(fleet.prometheus())?;
    let mut text = String::new();
    for w in &fleet.watched {
        match &w.outcome {
            Ok(r) => text.push_str(&format!("== {} ==\n{}\n", w.name, human(r))),
            Err(e) => text.push_str(&format!("== {} ==\nPROBLEM: {}\n\n", w.name, e.message)),
        }
    }
    let (failing, stale) = (fleet.errors().len(), fleet.stale_stores());
    text.push_str(&if failing == 0 {
        format!("OK: {} store(s) fresh.\n", fleet.watched.len())
    } else {
        format!(
            "{failing} of {} store(s) not OK{}.\n",
            fleet.watched.len(),
            if stale.is_empty() {
                String::new()
            } else {
                format!(" (stale: {})", stale.join(", "))
            }
        )
    });
    ui.result(text, fleet.json());
    match fleet.error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
