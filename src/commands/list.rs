//! `list`: every archive in the destination, newest first (see
//! [`secureclaw_backup::catalog`] for what is described), or with `--tier` the archives of
//! an offsite tier. Renders the listing as a table or JSON.

use std::path::PathBuf;

use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::catalog::{self, Brief, Depth, Entry, Listing, Sidecar};
use secureclaw_backup::error::Result;
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::store::{self, LocalStore};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Check every archive against its .sha256 sidecar (reads all archives)
    #[arg(long)]
    pub check: bool,
    /// List an offsite tier of the configuration instead (names, sizes, sidecars, chain levels)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["dest", "check"])]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
    /// Verify each archive's signature against these trusted signers (reads all archives)
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
}

fn table(entries: &[Entry]) -> String {
    let rows: Vec<[String; 8]> = entries
        .iter()
        .map(|e| {
            [
                crate::ui::Safe(&e.name).to_string(),
                e.btype.as_str().to_owned(),
                e.time_label(),
                human_bytes(e.size),
                e.sidecar.to_string(),
                e.level_label(),
                e.format_label(),
                e.recipients_label(),
            ]
        })
        .collect();
    let head = [
        "ARCHIVE",
        "TYPE",
        "TIME (UTC)",
        "SIZE",
        "SIDECAR",
        "LEVEL",
        "FORMAT",
        "RECIPIENTS",
    ];
    let mut w = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: [&str; 8]| {
        let mut l = String::from(" ");
        for (i, c) in r.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            l.push(' ');
            if i == 3 {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else if i == 7 {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            }
            l.push(' ');
        }
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut out = line(head);
    for (r, e) in rows.iter().zip(entries) {
        out.push_str(&line([
            &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7],
        ]));
        if let Some(p) = &e.problem {
            out.push_str(&format!("      damaged: {p}\n"));
        }
        match &e.signature {
            secureclaw_backup::sign::SigState::Unsigned => {}
            secureclaw_backup::sign::SigState::Invalid { reason } => out.push_str(&format!(
                "      signature: INVALID: {}\n",
                crate::ui::Safe(reason)
            )),
            s => out.push_str(&format!("      signature: {}\n", crate::ui::Safe(s.word()))),
        }
    }
    out
}

/// The human rendering of a listing.
pub fn human(l: &Listing) -> String {
    let mut out = String::new();
    if !l.exists {
        return format!("No backups: {} does not exist.\n", l.dest.display());
    }
    out.push_str(&format!("Backups in {}:\n", l.dest.display()));
    if l.archives.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&table(&l.archives));
    }
    if !l.pre_restore.is_empty() {
        out.push_str("\nPre-restore snapshots (made by restore; undo a restore with them):\n");
        out.push_str(&table(&l.pre_restore));
    }
    if !l.orphan_sidecars.is_empty() {
        out.push_str(&format!(
            "\nSidecars without their archive: {}\n",
            l.orphan_sidecars.join(", ")
        ));
    }
    if !l.unrecognised.is_empty() {
        out.push_str(&format!(
            "\nNot recognised (never touched): {}\n",
            l.unrecognised.join(", ")
        ));
    }
    out
}

/// `list --tier NAME`: every archive of the tier, newest first.
fn tier(name: &str, args: &Args, ui: &Ui) -> Result<()> {
    let (tc, t) = args.config.tier(name)?;
    let l = catalog::scan(t.as_ref(), Depth::Names, ui)?;
    let (all, other) = (l.newest_first(), l.not_ours());
    let mut human = format!("{} ({}): {} archive(s)\n", tc.name, t.url(), all.len());
    for e in &all {
        human.push_str(&format!(
            "  {:<45} {:<10} {:<8} {:>10}  {:<9} sidecar {}\n",
            e.name,
            e.btype.as_str(),
            e.level_label(),
            human_bytes(e.size),
            e.format,
            e.sidecar
        ));
    }
    if !other.is_empty() {
        human.push_str(&format!(
            "  not recognised (never touched): {}\n",
            other.join(", ")
        ));
    }
    let missing = all.iter().filter(|e| e.sidecar == Sidecar::Missing).count();
    if missing > 0 {
        ui.warn(format!(
            "{missing} archive(s) in {name} without a sidecar: an interrupted push? run push again"
        ));
    }
    let rows: Vec<Brief> = all.into_iter().map(Brief::from).collect();
    let doc = json!({"ok": true, "tier": tc.name, "url": t.url(), "archives": rows, "unrecognised": other});
    ui.result(human, doc);
    Ok(())
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    if let Some(name) = &args.tier {
        return tier(name, &args, ui);
    }
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let depth = if args.check {
        Depth::Check
    } else {
        Depth::Headers
    };
    let trust = args.signers.trust(Some(&args.config))?;
    let l = catalog::scan_trusted(&LocalStore::new(&dest), depth, &trust, ui)?;
    if trust.is_checked() {
        let bad = l.unsigned();
        if !bad.is_empty() {
            ui.warn(format!(
                "{} archive(s) have no valid signature by a trusted signer (restore refuses them): {}",
                bad.len(),
                crate::ui::Safe(bad.join(", "))
            ));
        }
    }
    let bad = l.bad_sidecars();
    if bad > 0 {
        ui.warn(format!(
            "{bad} archive(s) do not match their sidecar: run `secureclaw-backup verify` on them"
        ));
    }
    let mut doc = json!(l);
    doc["ok"] = json!(true);
    ui.result(human(&l), doc);
    Ok(())
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
