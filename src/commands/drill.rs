//! `drill`: a timed test restore into a scratch directory (RTO check).

use std::path::PathBuf;

use crate::ui::Ui;
use secureclaw_backup::drill::{newest_openable, run_drill};
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of the archives (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub identity: super::IdentityArgs,
    /// The archive to drill: a path, `latest`, `latest:TYPE` or a name in --dest (default: the newest one)
    #[arg(long, value_name = "ARCHIVE")]
    pub archive: Option<PathBuf>,
    /// Recovery time objective, e.g. 15m
    #[arg(long, default_value = "15m")]
    pub rto: String,
    /// Where the scratch directory is made (default $TMPDIR or /tmp)
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let rto = secureclaw_backup::retention::parse_duration(&args.rto)?
        .to_std()
        .map_err(|_| Error::usage("--rto must be positive"))?;
    let trust = args.signers.trust(Some(&args.config))?;
    super::signing::notice_unchecked(&trust, ui);
    let ids = args.identity.load()?;
    let latest = PathBuf::from("latest");
    let archive = match args
        .archive
        .as_ref()
        .or(trust.is_checked().then_some(&latest))
    {
        Some(a) => {
            match super::signing::archive_arg(a, None, &args.config, Some(&dest), &trust, ui)? {
                super::push::ArchiveRef::Local(p) => {
                    super::require_regular_archive(&p)?;
                    p
                }
                other => {
                    return Err(Error::usage(format!(
                        "drill reads a local archive: {} is stored in a tier",
                        other.label().display()
                    ))
                    .hint("copy it to the destination first, or drill a local archive"))
                }
            }
        }
        None => newest_openable(&dest, &ids, ui)?,
    };
    let scratch = args
        .scratch
        .clone()
        .unwrap_or_else(secureclaw_backup::paths::tmp_dir);
    let shown = archive.display().to_string();
    let r = run_drill(&archive, ids, trust, &scratch, rto, ui).map_err(|e| {
        // the error names the archive drilled
        if e.message.contains(&shown) {
            e
        } else {
            e.context(format!("drill of {shown}"))
        }
    })?;
    let mut s = format!(
        "drill of {}: {} files, {} restored and verified\n",
        r.archive.display(),
        r.files,
        human_bytes(r.bytes)
    );
    if let Some(id) = &r.chain {
        s.push_str(&format!(
            "  incremental chain {id}: a chain of {} archives (the full and {} link(s)), each authenticated and applied in order\n",
            r.chain_length,
            r.chain_length.saturating_sub(1)
        ));
    }
    for (phase, secs) in &r.phases {
        s.push_str(&format!("  {phase:<16} {secs:>8.2} s\n"));
    }
    s.push_str(&format!(
        "  {:<16} {:>8.2} s (RTO {:.0} s: {})\n  validation: {}\n",
        "total",
        r.seconds,
        r.rto_seconds,
        if r.within_rto { "met" } else { "MISSED" },
        if r.validation_ok { "ok" } else { "FAILED" }
    ));
    ui.result(
        s,
        serde_json::json!({"ok": r.within_rto && r.validation_ok, "drill": r}),
    );
    if !r.within_rto {
        return Err(Error::operational(format!(
            "the restore took {:.0} s, more than the RTO of {:.0} s",
            r.seconds, r.rto_seconds
        ))
        .hint("use faster storage, or revisit the RTO"));
    }
    if !r.validation_ok {
        return Err(
            Error::validation("the restored tree failed validation").hint(
                "run `secureclaw-backup validate --target` on a restore to see which check fails",
            ),
        );
    }
    Ok(())
}
