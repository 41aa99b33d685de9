//! `ls ARCHIVE [PATH…]`: the files an archive holds (path, type, size, mode,
//! mtime), read through [`secureclaw_backup::browse::ls`]; also the per-file
//! lines that `restore` prints for its plan.

use std::path::PathBuf;

use crate::ui::{Safe, Ui};
use secureclaw_backup::browse::{ls, LsOptions, LsReport};
use secureclaw_backup::error::Result;
use secureclaw_backup::manifest::{human_bytes, Entry, EntryKind};
use secureclaw_backup::restore::select::FileChanges;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The archive: a path, `latest`, `latest:TYPE`, a name in --dest, s3://…, or a name with --tier
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,
    /// Show only these paths or globs (and what lies below them)
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
    #[command(flatten)]
    pub identity: super::IdentityArgs,
    /// Where `latest` and bare archive names are looked up (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// ARCHIVE is in this offsite tier of the configuration
    #[arg(long, value_name = "NAME")]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
    #[command(flatten)]
    pub signers: super::signing::SignerArgs,
}

/// `drwx------`, `-rw-------`, `lrwxrwxrwx`.
fn mode_string(e: &Entry) -> String {
    let t = match e.kind {
        EntryKind::Dir => 'd',
        EntryKind::File => '-',
        EntryKind::Symlink => 'l',
    };
    let m = e.mode.0;
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (m >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn mtime_string(m: Option<i64>) -> String {
    m.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| format!("{:<19}", "-"))
}

/// One line per entry: mode, size in bytes, mtime (UTC), path (`/` after a
/// directory, `-> target` after a symlink).
pub fn listing(r: &LsReport) -> String {
    let width = r
        .tree
        .entries
        .iter()
        .map(|e| e.size.to_string().len())
        .max()
        .unwrap_or(1);
    let mut s = String::new();
    for e in &r.tree.entries {
        let suffix = match (&e.kind, &e.target) {
            (EntryKind::Dir, _) => "/".to_owned(),
            (EntryKind::Symlink, Some(t)) => format!(" -> {}", Safe(t.to_string())),
            _ => String::new(),
        };
        s.push_str(&format!(
            "{} {:>width$} {} {}{suffix}\n",
            mode_string(e),
            e.size,
            mtime_string(e.mtime),
            Safe(e.path.to_string()),
        ));
    }
    s
}

/// The per-file lines of a restore plan: counts, then `+`/`~`/`-` per file.
pub fn changes_lines(c: &FileChanges) -> String {
    let n = &c.counts;
    let mut s = format!(
        "  files: {} added, {} changed, {} removed, {} unchanged, {} kept\n",
        n.added, n.changed, n.removed, n.unchanged, n.kept
    );
    for (sign, v) in [("+", &c.added), ("~", &c.changed), ("-", &c.removed)] {
        for p in v {
            s.push_str(&format!("    {sign} {}\n", Safe(p)));
        }
    }
    s
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let (trust, archive) = super::trusted_archive(
        &args.archive,
        args.tier.as_deref(),
        &args.config,
        args.dest.as_deref(),
        &args.signers,
        ui,
    )?;
    let r = ls(&LsOptions {
        trust,
        archive,
        identities: args.identity.load()?,
        paths: args.paths.clone(),
    })?;
    ui.info(format!(
        "{} ({}{}): {} files, {} directories, {} symlinks, {}",
        Safe(&r.tree.archive),
        r.tree.format,
        if r.tree.legacy { ", legacy" } else { "" },
        r.files,
        r.directories,
        r.symlinks,
        human_bytes(r.bytes)
    ));
    ui.result(listing(&r), serde_json::json!({"ok": true, "ls": r}));
    Ok(())
}
