//! `verify`: keyless structure + sidecar check, or a full check with `-i`.

use std::path::PathBuf;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, ErrorKind, Result};
use secureclaw_backup::keymatch;
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::store::SidecarStatus;
use secureclaw_backup::tier::ArchiveRef;
use secureclaw_backup::verify::{verify_full, verify_keyless_trusted, VerifyReport};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Archives to verify (local paths, s3://bucket/prefix/ARCHIVE, `latest`, `latest:TYPE`,
    /// or names in --dest or --tier)
    #[arg(required = true, value_name = "ARCHIVE")]
    pub archives: Vec<PathBuf>,
    /// The archives are names in this offsite tier of the configuration
    #[arg(long, value_name = "NAME")]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
    #[command(flatten)]
    pub identity: super::IdentityArgs,
    /// Where `latest` and bare archive names are looked up (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
}

/// The sidecar state in the words of the rest of the output (and of `list`).
fn sidecar_word(s: &SidecarStatus) -> &'static str {
    match s {
        SidecarStatus::Ok => "ok",
        SidecarStatus::Missing => "missing",
        SidecarStatus::Mismatch { .. } => "mismatch",
        SidecarStatus::Malformed => "malformed",
    }
}

fn human(r: &VerifyReport) -> String {
    let mut s = format!(
        "{}: OK ({}, {}, {} recipient(s){}: {}; sidecar {})",
        crate::ui::Safe(&r.archive),
        r.format.family(),
        human_bytes(r.size),
        r.keys.len(),
        if r.keys_from == "meta" {
            " by its .meta"
        } else {
            " by the header"
        },
        crate::ui::Safe(r.keys.join(", ")),
        sidecar_word(&r.sidecar)
    );
    for o in &r.opened_by {
        s.push_str(&format!("\n  opened by: {}", crate::ui::Safe(o)));
    }
    if r.full && r.legacy == Some(true) {
        // a legacy archive has no manifest: nothing was checked against one
        s.push_str(&format!(
            "\n  decrypted and authenticated to the end; {} files, {} read (no manifest to check them against)",
            r.files.unwrap_or(0),
            human_bytes(r.bytes.unwrap_or(0))
        ));
    } else if r.full {
        s.push_str(&format!(
            "\n  decrypted and authenticated to the end; {} files, {} checked against the manifest",
            r.files.unwrap_or(0),
            human_bytes(r.bytes.unwrap_or(0))
        ));
    } else {
        s.push_str("\n  structure only (pass -i to decrypt and check every file)");
    }
    if let Some(c) = &r.chain {
        s.push_str(&format!(
            "\n  incremental chain {}: level {}, {} archive(s) checked, the full first",
            crate::ui::Safe(&c.id),
            c.level,
            c.links.len()
        ));
    }
    if let Some(p) = &r.signature {
        s.push_str(&format!(
            "\n  signed by {} (trusted for {} by {})",
            p.fingerprint,
            crate::ui::Safe(p.principals_text()),
            crate::ui::Safe(&p.signers_file)
        ));
    }
    for w in &r.warnings {
        s.push_str(&format!("\n  warning: {}", crate::ui::Safe(w)));
    }
    s
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let ids = args.identity.load()?;
    let trust = args.signers.trust(Some(&args.config))?;
    super::signing::notice_unchecked(&trust, ui);
    let mut reports = Vec::new();
    let mut failures: Vec<(PathBuf, secureclaw_backup::Error)> = Vec::new();
    for a in &args.archives {
        let keyless = args.identity.paths().is_empty();
        let r = super::signing::archive_arg(
            a,
            args.tier.as_deref(),
            &args.config,
            args.dest.as_deref(),
            &trust,
            ui,
        )
        .and_then(|src| match src {
            src if keyless => verify_keyless_trusted(&src, &trust)
                .map_err(|e| keymatch::name_failure(e, &src.label(), None)),
            src => verify_full(&src, &ids, &trust, ui)
                .map(|mut r| {
                    // which recipient each identity given is
                    if let ArchiveRef::Local(p) = &src {
                        if let Ok(info) = secureclaw_backup::crypto::inspect(p) {
                            r.opened_by = keymatch::opened_by(p, &info, &ids);
                        }
                    }
                    r
                })
                .map_err(|e| keymatch::name_failure(e, &src.label(), Some(&ids))),
        });
        match r {
            Ok(r) => {
                ui.info(human(&r));
                reports.push(r);
            }
            Err(e) => {
                crate::ui::note(format!("{}: FAILED: {}", crate::ui::Safe(a), e.message));
                failures.push((a.clone(), e));
            }
        }
    }
    let json = serde_json::json!({
        "ok": failures.is_empty(),
        "verified": reports,
        "failed": failures.iter().map(|(p, e)| serde_json::json!({"archive": p, "kind": e.kind, "message": e.message})).collect::<Vec<_>>(),
    });
    ui.result(
        format!("{} verified, {} failed", reports.len(), failures.len()),
        json,
    );
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures
            .pop()
            .map(|(_, e)| e)
            .unwrap_or_else(|| Error::integrity("verification failed"))),
        n => {
            // the most severe kind decides the exit code
            let kind = failures
                .iter()
                .map(|(_, e)| e.kind)
                .max_by_key(|k| match k {
                    ErrorKind::Integrity => 5,
                    ErrorKind::Refused => 4,
                    ErrorKind::Key => 3,
                    _ => 1,
                })
                .unwrap_or(ErrorKind::Integrity);
            Err(
                Error::new(kind, format!("{n} archives failed verification"))
                    .hint("see the messages above"),
            )
        }
    }
}
