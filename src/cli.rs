//! Command-line definition (clap derive) and dispatch. Parsing only: each
//! command's options live beside its implementation in `commands/`, and keys
//! and files are opened after parsing.

use clap::{Parser, Subcommand};

use crate::commands;
use crate::ui::Ui;
use secureclaw_backup::error::Result;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  operational error (I/O, missing file, ...)
  2  usage error
  3  integrity failure: authentication, checksum, manifest mismatch, truncation
  4  key problem: no matching identity, wrong passphrase, recipient not found
  5  refused for safety: unsafe archive entry, gateway running, lock held
  6  status: newest backup older than allowed (monitoring)";

#[derive(Debug, Parser)]
#[command(
    name = "secureclaw-backup",
    version,
    about = "Encrypted, verifiable backups of a SecureClaw data directory, and safe atomic restores",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Print one JSON document on stdout (human text goes to stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing on success: only errors and warnings (on stderr)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail on stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an encrypted backup: walk → tar → gzip → encrypt → verify → rename
    Backup(Box<commands::backup::Args>),
    /// Decrypt, authenticate and check an archive, then swap it in atomically
    Restore(Box<commands::restore::Args>),
    /// Check archives: sidecar and header without a key, everything with -i
    Verify(commands::verify::Args),
    /// List archives: type, time, size, format, recipients, sidecar state
    List(commands::list::Args),
    /// List the files inside an archive: path, type, size, mode, mtime
    Ls(commands::ls::Args),
    /// Files added, removed and changed between two archives, or an archive and a directory
    Diff(commands::diff::Args),
    /// Remove old backups by the retention policy (archive and sidecar together)
    Prune(commands::prune::Args),
    /// Newest backup per type, its age and checksum; exit 6 when too old
    Status(commands::status::Args),
    /// Print or install a systemd timer or crontab lines for unattended backups
    Schedule(commands::schedule::Args),
    /// Create an age or OpenPGP key pair for backups, or a signing key
    Keygen(commands::keygen::Args),
    /// Check a (restored) data directory: config, credentials, permissions
    Validate(commands::validate::Args),
    /// Print shell completions (bash, zsh, fish)
    Completions(commands::completions::Args),
    /// Print a man page, or write them all (one per subcommand) with --dir
    Man(commands::man::Args),
    /// Prove which archives the old identities open, then re-encrypt them to new recipients
    Rotate(commands::rotate::Args),
    /// Timed test restore into a scratch directory, checked against the RTO
    Drill(commands::drill::Args),
    /// Copy archives to offsite tiers (NAS directory, S3), verify, apply their retention
    Push(commands::push::Args),
}

impl Cli {
    pub fn ui(&self) -> Ui {
        Ui {
            json: self.json,
            quiet: self.quiet,
            verbose: self.verbose,
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let ui = cli.ui();
    match cli.command {
        Command::Backup(a) => commands::backup::run(*a, &ui),
        Command::Restore(a) => commands::restore::run(*a, &ui),
        Command::Verify(a) => commands::verify::run(a, &ui),
        Command::List(a) => commands::list::run(a, &ui),
        Command::Ls(a) => commands::ls::run(a, &ui),
        Command::Diff(a) => commands::diff::run(a, &ui),
        Command::Prune(a) => commands::prune::run(a, &ui),
        Command::Status(a) => commands::status::run(a, &ui),
        Command::Schedule(a) => commands::schedule::run(a, &ui),
        Command::Keygen(a) => commands::keygen::run(a, &ui),
        Command::Validate(a) => commands::validate::run(a, &ui),
        Command::Completions(a) => commands::completions::run(a, &ui),
        Command::Man(a) => commands::man::run(a, &ui),
        Command::Rotate(a) => commands::rotate::run(a, &ui),
        Command::Drill(a) => commands::drill::run(a, &ui),
        Command::Push(a) => commands::push::run(a, &ui),
    }
}
