//! `restore`: one command from archive to a running data directory.

use std::path::PathBuf;

use crate::ui::{Safe, Ui};
use secureclaw_backup::error::Result;
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::restore::{
    run_restore, GatewayAction, RestoreOptions, RestorePlan, RestoreReport, SnapshotPlan,
};
use secureclaw_backup::store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Archive (.tar.gz.age, .tar.gz.gpg, legacy .tar.gz), legacy backup directory,
    /// s3://bucket/prefix/ARCHIVE, `latest`, `latest:TYPE`, or a name in --dest (or --tier)
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,
    /// ARCHIVE is a name in this offsite tier of the configuration (streamed, no local copy)
    #[arg(long, value_name = "NAME")]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
    #[command(flatten)]
    pub identity: super::IdentityArgs,
    /// Data directory to restore into (default as for backup's --source)
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Where the pre-restore snapshot goes (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Recipients for the pre-restore snapshot (default $SECURECLAW_BACKUP_KEY)
    #[command(flatten)]
    pub recipients: super::RecipientArgs,
    /// Decrypt and check everything, print what would change, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not save an encrypted snapshot of the current tree first
    #[arg(long)]
    pub no_snapshot: bool,
    /// Send SIGTERM to a gateway running on the target (by the pid in its lock file)
    #[arg(long)]
    pub stop_gateway: bool,
    /// Swap in only this path or glob of the archive, keep the rest of the target
    /// (repeatable; everything is still read and checked)
    #[arg(long, value_name = "PATH|GLOB")]
    pub include: Vec<String>,
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
    /// Sign the pre-restore snapshot with this key (as backup --sign-key)
    #[command(flatten)]
    pub sign_key: super::signing::SignKeyArgs,
}

fn human(r: &RestoreReport) -> String {
    let mut s = plan_lines(&r.plan, r.dry_run);
    if let Some(c) = &r.plan.chain {
        s.push_str(&format!(
            "  incremental chain {}: level {}, {} archive(s) authenticated and applied in order\n",
            Safe(&c.id),
            c.level,
            c.links.len()
        ));
    }
    if let Some(snap) = &r.snapshot {
        s.push_str(&format!(
            "  snapshot of the previous tree: {}\n",
            snap.archive.display()
        ));
    }
    for w in &r.plan.warnings {
        s.push_str(&format!("  warning: {}\n", Safe(w)));
    }
    if let Some(v) = &r.validation {
        s.push_str(&v.human());
        s.push('\n');
    }
    if let Some(undo) = r.next_steps.iter().find(|s| s.starts_with("to undo")) {
        s.push_str(&format!("  - {undo}\n"));
    }
    if r.dry_run {
        s.push_str(&dry_run_lines(&r.plan));
        s.push_str("dry run: nothing was written\n");
    }
    s
}

/// What the plan restores, replaces, adds and keeps.
fn plan_lines(r: &RestorePlan, dry_run: bool) -> String {
    let mut s = String::new();
    let verb = if dry_run { "would restore" } else { "restored" };
    // --include: how many of the archive's files were taken
    let files = match &r.changes {
        Some(c) if !r.include.is_empty() => format!(
            "{} of {} files (--include {})",
            c.counts.added + c.counts.changed + c.counts.unchanged,
            r.files,
            safe_join(&r.include)
        ),
        _ => format!("{} files", r.files),
    };
    s.push_str(&format!(
        "{verb} {} ({}{}) into {}: {files}, {}\n",
        Safe(&r.archive),
        r.format,
        if r.legacy { ", legacy" } else { "" },
        Safe(&r.target),
        human_bytes(r.bytes)
    ));
    // top-level names from the archive: one line each, escaped
    let list = |v: &Vec<String>| match v.is_empty() {
        true => "-".to_owned(),
        false => safe_join(v),
    };
    match &r.changes {
        // per file: which components come from the archive says nothing
        // about what changes, the file lines do
        Some(c) => {
            let mut from: Vec<String> = r.replaced.iter().chain(&r.added).cloned().collect();
            from.sort();
            s.push_str(&format!(
                "  from the archive: {}\n  kept as is:       {}\n",
                list(&from),
                list(&r.kept)
            ));
            s.push_str(&super::ls::changes_lines(c));
        }
        None => s.push_str(&format!(
            "  replaced: {}\n  added:    {}\n  kept:     {}\n",
            list(&r.replaced),
            list(&r.added),
            list(&r.kept)
        )),
    }
    s
}

/// Names escaped for the terminal, comma-separated.
fn safe_join(v: &[String]) -> String {
    let v: Vec<String> = v.iter().map(|n| Safe(n).to_string()).collect();
    v.join(", ")
}

/// What only a dry run shows: the checks made, what the real run will do
/// with the current tree and with a running gateway.
fn dry_run_lines(p: &RestorePlan) -> String {
    let mut s = format!("  checked:  {}\n", p.checked.join("; "));
    if !p.carried.is_empty() {
        s.push_str(&format!(
            "  also kept (seen but not archived at backup time): {}\n",
            safe_join(&p.carried)
        ));
    }
    s.push_str(&match &p.pre_restore_snapshot {
        SnapshotPlan::Save { dest, .. } => format!(
            "  snapshot: the current tree is saved encrypted in {} first\n",
            Safe(dest)
        ),
        SnapshotPlan::NothingToSave => "  snapshot: none (the target is empty)\n".to_owned(),
        SnapshotPlan::Skipped => "  snapshot: none (--no-snapshot)\n".to_owned(),
    });
    let pids: Vec<String> = p.gateway.pids.iter().map(i32::to_string).collect();
    s.push_str(&match (p.gateway.action, pids.is_empty()) {
        (_, true) => "  gateway:  none running on the target\n".to_owned(),
        (GatewayAction::Refuse, false) => format!(
            "  gateway:  running (pid {}): the restore is refused until it stops (or pass --stop-gateway)\n",
            pids.join(", ")
        ),
        (GatewayAction::Stop, false) => format!(
            "  gateway:  running (pid {}): stopped with SIGTERM first\n",
            pids.join(", ")
        ),
    });
    s
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let target = secureclaw_backup::paths::data_dir(args.target.clone())?;
    let dest = store::dest_or_default(args.dest.as_deref())?;
    // neither --no-snapshot nor --dry-run: a snapshot is made, encrypted and signed
    let snapshots = !(args.no_snapshot || args.dry_run);
    let snapshot_to = match snapshots {
        true => args.recipients.encryptor()?,
        false => None,
    };
    let (trust, src) = super::trusted_archive(
        &args.archive,
        args.tier.as_deref(),
        &args.config,
        args.dest.as_deref(),
        &args.signers,
        ui,
    )?;
    let pass = secureclaw_backup::crypto::PassphraseSource::from_flag_or_env(
        args.identity.passphrase_file.clone(),
    );
    let sign = match snapshots {
        true => args.sign_key.load(Some(&args.config), &pass, ui)?,
        false => None,
    };
    let opts = RestoreOptions {
        archive: src,
        target,
        dest,
        dry_run: args.dry_run,
        snapshot_to,
        no_snapshot: args.no_snapshot,
        stop_gateway: args.stop_gateway,
        identities: args.identity.load()?,
        include: args.include.clone(),
        trust,
        sign,
    };
    let r = run_restore(&opts, ui).map_err(|e| {
        secureclaw_backup::keymatch::name_failure(e, &opts.archive.label(), Some(&opts.identities))
    })?;
    let valid = r.validation.as_ref().is_none_or(|v| v.ok);
    ui.result(human(&r), serde_json::json!({"ok": valid, "restore": r}));
    r.validation_failure().map_or(Ok(()), Err)
}
