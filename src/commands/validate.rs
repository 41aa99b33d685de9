//! `validate`: check a (restored) data directory; see [`secureclaw_backup::validate`].

use std::path::PathBuf;

use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data directory (default $SECURECLAW_STATE_DIR, $SECURECLAW_DIR, ~/.secureclaw)
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Repair permissions: directories 0700, files 0600 (0700 if owner-executable)
    #[arg(long)]
    pub fix: bool,
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let target = secureclaw_backup::paths::data_dir(args.target)?;
    let report = secureclaw_backup::validate::validate(&target, args.fix)?;
    ui.result(
        format!("Validating {}\n\n{}", target.display(), report.human()),
        json!({ "ok": report.ok, "target": target, "fix": args.fix, "report": report }),
    );
    if report.ok {
        Ok(())
    } else if std::fs::symlink_metadata(&target).is_err() {
        // nothing to validate: a wrong path, not a failed check (exit 1)
        Err(Error::operational(format!(
            "the data directory {} does not exist",
            target.display()
        ))
        .hint("check --target (or SECURECLAW_STATE_DIR); restore into it first if it is a new machine"))
    } else {
        let n = report.failed();
        Err(Error::validation(format!("validation failed: {n} check{}", if n == 1 { "" } else { "s" }))
            .hint("see the table above; `--fix` repairs permissions, the other checks need a manual fix or another restore"))
    }
}
