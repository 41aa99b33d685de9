//! `backup`: make one encrypted archive of the data directory.

use std::path::PathBuf;

use crate::ui::Ui;
use secureclaw_backup::backup::{
    archive_encryptor, compression_threads, run_backup_chain, BackupOptions, BackupReport,
    IncrementalOptions, DEFAULT_LEVEL,
};
use secureclaw_backup::capture::LiveOptions;
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::manifest::human_bytes;
use secureclaw_backup::store;

use super::TypeArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup type: daily and pre-deploy leave out workspace/ and logs/
    #[arg(
        long = "type",
        value_name = "TYPE",
        value_enum,
        default_value = "daily"
    )]
    pub btype: TypeArg,
    /// Data directory (default $SECURECLAW_STATE_DIR, $SECURECLAW_DIR, ~/.secureclaw)
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub recipients: super::RecipientArgs,
    /// Leave out paths matching this glob (repeatable), e.g. 'workspace/tmp/**'
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// gzip level 1 (fastest) to 9 (smallest)
    #[arg(long, default_value_t = DEFAULT_LEVEL, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub compression_level: u32,
    /// Compression threads (default: all cores; at most 4 per core, and 64)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Write an UNENCRYPTED .tar.gz (the old basic mode). Never the default.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Treat warnings (changed or skipped files) as failure (exit 1) after writing
    #[arg(long)]
    pub strict: bool,
    /// How long to wait for a live session write lock (<file>.jsonl.lock)
    /// before archiving the transcript up to its last complete line
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = secureclaw_backup::capture::parse_wait)]
    pub lock_wait: std::time::Duration,
    /// Write the next archive of an incremental chain: only what changed
    /// since the previous one (README "Incremental backups")
    #[arg(long)]
    pub incremental: bool,
    /// With --incremental: hash every file the state calls unchanged instead
    /// of trusting size, mtime, ctime, inode and device
    #[arg(long, requires = "incremental")]
    pub reread: bool,
    /// With --incremental: start a new chain when its full is this old
    /// [default: 24h, or [backup] full_every]
    #[arg(long, value_name = "DURATION", requires = "incremental",
          value_parser = secureclaw_backup::incremental::parse_full_every)]
    pub full_every: Option<std::time::Duration>,
    /// With --incremental: start a new chain after this many links
    /// [default: 48, or [backup] max_links]
    #[arg(long, value_name = "N", requires = "incremental")]
    pub max_links: Option<u32>,
    /// With --incremental: start a new chain before its archives hold more
    /// than this percentage of its full's bytes (beyond 16 MiB), or
    /// `unlimited` [default: 130%, or [backup] max_chain_size]
    #[arg(long, value_name = "PERCENT", requires = "incremental", value_parser = parse_chain_size)]
    pub max_chain_size: Option<ChainSize>,
    /// Do not apply retention to this type after the backup
    #[arg(long)]
    pub no_prune: bool,
    /// Retention applied to this backup's type after it succeeded (the same
    /// flags as `prune`: --keep-daily, --keep-hourly daily=24, --keep-within…)
    #[command(flatten)]
    pub keep: super::prune::KeepArgs,
    /// Then push the destination to every configured offsite tier (see `push`)
    #[arg(long)]
    pub push: bool,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
    #[command(flatten)]
    pub sign_key: super::signing::SignKeyArgs,
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let source = secureclaw_backup::paths::data_dir(args.source.clone())?;
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let encryptor = archive_encryptor(
        !args.recipients.recipients.is_empty(),
        args.insecure_plaintext,
        || args.recipients.encryptor(),
        ui,
    )?;
    // read before anything is written: a wrong passphrase stops the run here
    let sign = args.sign_key.load(
        Some(&args.config),
        &secureclaw_backup::crypto::PassphraseSource::from_flag_or_env(None),
        ui,
    )?;
    // the configuration, read once, before anything is written
    let cfg = args.config.load_optional()?;
    let _source_lock = secureclaw_backup::lock::lock_dir(&source, "backup source")?;
    let opts = BackupOptions {
        sign,
        btype: args.btype.into(),
        source: source.clone(),
        dest,
        excludes: args.exclude.clone(),
        level: args.compression_level,
        threads: compression_threads(args.threads, ui),
        encryptor,
        prune: if args.no_prune {
            None
        } else {
            // [backup.retention.<type>] of the configuration, under the flags
            Some(args.keep.with_config(cfg.as_ref()).retention()?)
        },
    };
    ui.info(format!(
        "backing up {} ({})…",
        source.display(),
        opts.btype.as_str()
    ));
    let live = LiveOptions {
        lock_wait: args.lock_wait,
        ..LiveOptions::default()
    };
    let incremental = if args.incremental {
        Some(chain_options(&args, cfg.as_ref().map(|c| &c.backup))?)
    } else {
        None
    };
    let r = run_backup_chain(&opts, &live, incremental.as_ref(), ui)?;
    for w in &r.warnings {
        if w.is_note() {
            ui.info(format!("note: {} [{}] {}", w.path, w.kind, w.detail));
        } else {
            ui.warn(format!("{} [{}] {}", w.path, w.kind, w.detail));
        }
    }
    let serious = r.serious();
    let mut human = human(&r, serious);
    if let (Some(sig), Some(fpr)) = (&r.signature, &r.signer) {
        human.push_str(&format!("\nsignature: {} (key {fpr})", sig.display()));
    }
    let mut json = serde_json::json!({"ok": true, "backup": r});
    let mut push_err = None;
    // [backup] push = true / tiers = [...] of the configuration
    let (push, tiers) = match cfg {
        Some(c) => (args.push || c.backup.push, c.backup.tiers),
        None => (args.push, Vec::new()),
    };
    if push {
        match super::push::push_all(&args.config, &tiers, &opts.dest, ui) {
            Ok((reports, err)) => {
                for p in &reports {
                    human.push_str(&format!("\npush:     {}", p.human()));
                }
                json["push"] = serde_json::json!(reports);
                push_err = err;
            }
            Err(e) => push_err = Some(e),
        }
        if let Some(e) = &push_err {
            json["ok"] = serde_json::json!(false);
            json["push_error"] = serde_json::json!(e.message);
        }
    }
    if args.strict && serious > 0 {
        // the exit code will be 1: the document says so too
        json["ok"] = serde_json::json!(false);
    }
    ui.result(human, json);
    if let Some(e) = push_err {
        return Err(e.context("the backup was written, but the push failed"));
    }
    match r.strict_failure() {
        Some(e) if args.strict => Err(e),
        _ => Ok(()),
    }
}

/// The human summary of a backup.
fn human(r: &BackupReport, serious: usize) -> String {
    let mb_s = r.bytes as f64 / 1e6 / r.seconds.max(1e-6);
    let to = if r.recipients.is_empty() {
        "nobody (unencrypted)".to_owned()
    } else {
        r.recipients.join(", ")
    };
    let chain = match (&r.chain, r.level) {
        (Some(id), Some(0)) => format!(
            "\nchain:    {id}, a new chain (full): {}",
            r.new_chain_reason.as_deref().unwrap_or("")
        ),
        (Some(id), Some(l)) => format!(
            "\nchain:    {id}, link {l} after {}\nstored:   {} changed file(s) ({}), {} unchanged",
            r.previous.as_deref().unwrap_or("?"),
            r.stored,
            human_bytes(r.stored_bytes),
            r.unchanged
        ),
        _ => String::new(),
    };
    format!(
        "archive:  {}\nsidecar:  {}\nformat:   {} to {to}\nsize:     {} ({} of data)\nfiles:    {} in {} directories{chain}\nwarnings: {serious}\nduration: {:.2} s ({mb_s:.0} MB/s)",
        r.archive.display(),
        r.sidecar.display(),
        r.format,
        human_bytes(r.size),
        human_bytes(r.bytes),
        r.files,
        r.directories,
        r.seconds,
    )
}

/// `--max-chain-size`: a percentage, or `None` for `unlimited` (a newtype:
/// clap reads an `Option<Option<_>>` field as a flag with an optional value).
#[derive(Debug, Clone, Copy)]
pub struct ChainSize(Option<u32>);

fn parse_chain_size(s: &str) -> std::result::Result<ChainSize, String> {
    secureclaw_backup::incremental::parse_max_chain_size(s).map(ChainSize)
}

fn config_error(why: String) -> Error {
    Error::usage(format!("[backup] of the configuration: {why}"))
        .hint("see \"Incremental backups\" in the README; a flag overrides the file")
}

/// `--reread`, `--full-every`, `--max-links`, `--max-chain-size`: the flag,
/// else the `[backup]` key of the configuration, else the default.
fn chain_options(
    args: &Args,
    cfg: Option<&secureclaw_backup::tier::config::BackupConfig>,
) -> Result<IncrementalOptions> {
    use secureclaw_backup::incremental as inc;
    // the configuration was checked when it was loaded
    let full_every = match (args.full_every, cfg.and_then(|b| b.full_every.as_deref())) {
        (Some(d), _) => d,
        (None, Some(v)) => inc::parse_full_every(v).map_err(config_error)?,
        (None, None) => inc::DEFAULT_FULL_EVERY,
    };
    let max_links = args
        .max_links
        .or(cfg.and_then(|b| b.max_links))
        .unwrap_or(inc::DEFAULT_MAX_LINKS);
    let max_chain_size = match (
        args.max_chain_size,
        cfg.and_then(|b| b.max_chain_size.as_deref()),
    ) {
        (Some(ChainSize(m)), _) => m,
        (None, Some(v)) => inc::parse_max_chain_size(v).map_err(config_error)?,
        (None, None) => Some(inc::DEFAULT_MAX_CHAIN_SIZE),
    };
    Ok(IncrementalOptions {
        reread: args.reread,
        policy: inc::ChainPolicy {
            full_every,
            max_links,
            max_chain_size,
        },
    })
}
