//! One file per command: each defines its clap `Args` and a `run` that turns
//! them into library calls and prints through [`crate::ui::Ui`]. Shared option
//! groups (recipients, identities) live here.

pub mod backup;
pub mod completions;
pub mod diff;
pub mod drill;
pub mod keygen;
pub mod list;
pub mod ls;
pub mod man;
pub mod prune;
pub mod push;
pub mod restore;
pub mod rotate;
pub mod schedule;
pub mod signing;
pub mod status;
pub mod validate;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use secureclaw_backup::crypto::{self, Encryptor, Identities, PassphraseSource};
use secureclaw_backup::error::Result;

/// Recipient options shared by backup, restore (snapshot) and rotate.
#[derive(Debug, Clone, clap::Args)]
pub struct RecipientArgs {
    /// Recipient: age1…, ssh-ed25519/ssh-rsa key, OpenPGP key id/fingerprint/e-mail,
    /// or a recipients/certificate file (repeatable; default $SECURECLAW_BACKUP_KEY)
    // a value starting with `-` (a pasted PEM block) is taken as the value, so
    // that the refusal comes from us, which does not echo it, not from clap
    #[arg(
        short = 'r',
        long = "recipient",
        value_name = "RECIPIENT",
        allow_hyphen_values = true
    )]
    pub recipients: Vec<String>,
    /// OpenPGP keyring file to resolve key ids in (default: the GnuPG keyring)
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
}

impl RecipientArgs {
    /// The recipient values: `-r`, else `SECURECLAW_BACKUP_KEY`.
    pub fn values(&self) -> Vec<String> {
        if !self.recipients.is_empty() {
            return self.recipients.clone();
        }
        std::env::var("SECURECLAW_BACKUP_KEY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| vec![v])
            .unwrap_or_default()
    }

    /// The encryptor, or `None` when no recipient is configured.
    pub fn encryptor(&self) -> Result<Option<Arc<dyn Encryptor>>> {
        let values = self.values();
        if values.is_empty() {
            return Ok(None);
        }
        crypto::parse_recipients(&values, self.keyring.as_deref()).map(|e| Some(Arc::from(e)))
    }
}

/// `--type` of backup and schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TypeArg {
    Daily,
    Weekly,
    PreDeploy,
}

impl From<TypeArg> for secureclaw_backup::store::BackupType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::Daily => secureclaw_backup::store::BackupType::Daily,
            TypeArg::Weekly => secureclaw_backup::store::BackupType::Weekly,
            TypeArg::PreDeploy => secureclaw_backup::store::BackupType::PreDeploy,
        }
    }
}

/// `--signers` read (with the one-line notice when no signer is trusted) and
/// the ARCHIVE argument resolved under that trust
/// ([`signing::archive_arg`]): the first steps of restore and ls.
pub fn trusted_archive(
    arg: &std::path::Path,
    tier: Option<&str>,
    config: &push::ConfigArgs,
    dest: Option<&std::path::Path>,
    signers: &signing::SignerArgs,
    ui: &crate::ui::Ui,
) -> Result<(
    secureclaw_backup::sign::Trust,
    secureclaw_backup::tier::ArchiveRef,
)> {
    let trust = signers.trust(Some(config))?;
    signing::notice_unchecked(&trust, ui);
    let archive = signing::archive_arg(arg, tier, config, dest, &trust, ui)?;
    Ok((trust, archive))
}

/// Refuses an ARCHIVE that exists but is neither a regular file nor a
/// directory (an old plain-directory backup): a pipe such as `/dev/stdin` or
/// a FIFO, a socket, a device. Archives are read more than once (format
/// detection, keyless checks, sidecar digest), which a stream does not allow.
/// A missing file is left to the reader's own error.
pub fn require_regular_archive(path: &std::path::Path) -> Result<()> {
    refuse_companion(path)?;
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => Err(secureclaw_backup::error::Error::usage(
            format!(
                "ARCHIVE must be a regular file: {} is a pipe, socket or device (a stream)",
                crate::ui::Safe(path),
            ),
        )
        .hint(
            "save the stream to a file first (e.g. `cat > backup.tar.gz.age`), then pass that file",
        )),
        _ => Ok(()),
    }
}

/// An ARCHIVE argument of restore, verify, ls, diff and drill: `latest`,
/// `latest:TYPE` or a bare name (no `/`, not a file in the current
/// directory) is resolved in the tier given, else in `dest` (default
/// $BACKUP_ROOT) by [`secureclaw_backup::tier::reference::resolve_named`];
/// anything else is a path or `s3://` URL ([`push::resolve`]).
pub fn archive_arg(
    arg: &std::path::Path,
    tier: Option<&str>,
    config: &push::ConfigArgs,
    dest: Option<&std::path::Path>,
) -> Result<secureclaw_backup::tier::ArchiveRef> {
    use secureclaw_backup::tier::reference::{resolve_named, Named};
    refuse_companion(arg)?;
    let named = match arg.to_str() {
        Some(a) => Named::parse(a)?,
        None => None,
    };
    let in_cwd = std::fs::symlink_metadata(arg).is_ok();
    let named = match named {
        Some(n @ Named::Latest(_)) => n,
        Some(n @ Named::Name(_)) if tier.is_none() && !in_cwd => n,
        _ => return push::resolve(arg, tier, config),
    };
    let store: Box<dyn secureclaw_backup::store::Store> = match tier {
        Some(t) => config.tier(t)?.1,
        None => Box::new(secureclaw_backup::store::LocalStore::new(
            secureclaw_backup::store::dest_or_default(dest)?,
        )),
    };
    resolve_named(store, &named, &|_| true)
}

/// Refuses a file that sits beside an archive (its `.sha256` sidecar, `.sig`
/// signature or `.meta` description) given where the archive is meant: a
/// usage error (exit 2) whose hint names the archive.
pub fn refuse_companion(path: &std::path::Path) -> Result<()> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    for (suffix, what) in [
        (".sha256", "its .sha256 checksum sidecar"),
        (".sig", "its .sig signature"),
        (secureclaw_backup::meta::SUFFIX, "its .meta description"),
    ] {
        let Some(stem) = name.strip_suffix(suffix) else {
            continue;
        };
        if secureclaw_backup::store::parse_name(stem, false).is_none()
            && !stem.ends_with(".tar.gz")
            && !stem.ends_with(".age")
            && !stem.ends_with(".gpg")
        {
            continue;
        }
        let archive = path.with_file_name(stem);
        return Err(secureclaw_backup::error::Error::usage(format!(
            "{} is not an archive but {what}",
            crate::ui::Safe(path)
        ))
        .hint(format!(
            "name the archive itself: {}",
            crate::ui::Safe(&archive)
        )));
    }
    Ok(())
}

/// Identity options shared by restore, verify, rotate and drill.
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityArgs {
    /// Identity file: age identity (plain or passphrase-protected), SSH private key,
    /// or OpenPGP secret key (repeatable; default $SECURECLAW_BACKUP_IDENTITY)
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Read passphrases from the first line of this file instead of the terminal
    /// (default $SECURECLAW_BACKUP_PASSPHRASE_FILE)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl IdentityArgs {
    pub fn paths(&self) -> Vec<PathBuf> {
        if !self.identities.is_empty() {
            return self.identities.clone();
        }
        std::env::var_os("SECURECLAW_BACKUP_IDENTITY")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn load(&self) -> Result<Identities> {
        Identities::load(
            &self.paths(),
            PassphraseSource::from_flag_or_env(self.passphrase_file.clone()),
        )
    }
}
