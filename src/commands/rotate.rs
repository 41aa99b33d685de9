//! `rotate`: prove which archives the old identities open (dry run), then
//! re-encrypt every archive to new recipients.

use std::path::PathBuf;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::rotate::{run_rotate, RotateOptions, RotateReport};
use secureclaw_backup::store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of the archives (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// The OLD identities (repeatable)
    #[command(flatten)]
    pub identity: super::IdentityArgs,
    /// The NEW recipients (repeatable; required, also for the dry run)
    #[command(flatten)]
    pub recipients: super::RecipientArgs,
    /// Decrypt every archive to prove the identities open it; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep each old archive as <name>.pre-rotate
    #[arg(long)]
    pub keep_old: bool,
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
    /// Sign each re-encrypted archive with this key (required with trusted signers;
    /// it must be one of them)
    #[command(flatten)]
    pub sign_key: super::signing::SignKeyArgs,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
}

fn human(r: &RotateReport) -> String {
    let mut s = String::new();
    for a in &r.archives {
        let verdict = match (&a.error, r.dry_run, a.rotated) {
            (Some(e), _, _) if r.refused.contains(&a.plan.archive) => format!("REFUSED: {e}"),
            (Some(e), _, _) => format!("NOT OPENED: {e}"),
            (None, true, _) => format!("opens; would become {}", a.plan.new_name),
            (None, false, true) => format!("rotated → {}", a.plan.new_name),
            _ => "ok".into(),
        };
        s.push_str(&format!(
            "{}  {}  {}  [{}]  {verdict}\n",
            a.plan.archive,
            a.plan.format,
            human_bytes(a.plan.size),
            a.plan.recipients.join(", ")
        ));
    }
    for p in &r.skipped_plaintext {
        s.push_str(&format!(
            "{p}  plaintext: not encrypted, nothing to rotate\n"
        ));
    }
    s.push_str(&format!(
        "\n{} archive(s) {}; {} not opened by the given identities{}\nnew recipients: {}\n",
        r.opened,
        if r.dry_run { "open" } else { "rotated" },
        r.not_opened.len(),
        if r.not_opened.is_empty() {
            String::new()
        } else {
            format!(
                " (lost when the old key is destroyed): {}",
                r.not_opened.join(", ")
            )
        },
        r.new_recipients.join(", ")
    ));
    s
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let new = args.recipients.encryptor()?.ok_or_else(|| {
        Error::usage("rotate needs the NEW recipients: -r RECIPIENT")
            .hint("e.g. secureclaw-backup rotate -i old.key -r age1new… --dry-run")
    })?;
    if args.identity.paths().is_empty() {
        return Err(Error::usage("rotate needs the OLD identities: -i FILE")
            .hint("pass every identity that may open the existing archives"));
    }
    let trust = args.signers.trust(Some(&args.config))?;
    super::signing::notice_unchecked(&trust, ui);
    let sign = if args.dry_run {
        None
    } else {
        args.sign_key.load(
            Some(&args.config),
            &secureclaw_backup::crypto::PassphraseSource::from_flag_or_env(
                args.identity.passphrase_file.clone(),
            ),
            ui,
        )?
    };
    let opts = RotateOptions {
        trust,
        sign,
        dest,
        identities: args.identity.load()?,
        new,
        dry_run: args.dry_run,
        keep_old: args.keep_old,
    };
    let r = run_rotate(&opts, ui)?;
    ui.result(
        human(&r),
        serde_json::json!({"ok": r.not_opened.is_empty() && r.refused.is_empty(), "rotate": r}),
    );
    if !r.refused.is_empty() {
        return Err(Error::refused(format!(
            "{} archive(s) refused by the provenance check, not rotated: {}",
            r.refused.len(),
            r.refused.join(", ")
        ))
        .hint("see the messages above: each one has no valid signature by a trusted signer, or is not bound to its name"));
    }
    if r.not_opened.is_empty() {
        Ok(())
    } else {
        Err(Error::key(format!(
            "{} archive(s) are not opened by the given identities: {}",
            r.not_opened.len(),
            r.not_opened.join(", ")
        ))
        .hint("find the identity these archives were encrypted to before you destroy any old key"))
    }
}
