//! The signing options the commands share: `--sign-key FILE` (backup,
//! rotate) and `--signers FILE` (restore, verify, drill, rotate, list,
//! status), each with its environment variable and its key in the
//! configuration file's `[signing]` section (README.md, "Signed archives").
//! Precedence: the flag, then the environment, then the configuration.

use std::path::{Path, PathBuf};

use crate::ui::Ui;
use secureclaw_backup::crypto::PassphraseSource;
use secureclaw_backup::error::Result;
use secureclaw_backup::sign::gate::{SIGNERS_ENV, SIGNING_KEY_ENV, UNCHECKED_NOTICE};
use secureclaw_backup::sign::{SigningKey, Trust};

/// `--signers FILE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SignerArgs {
    /// Trusted signers (OpenSSH allowed_signers, or OpenPGP certificates):
    /// refuse every archive without a valid signature by one of them
    /// (default $SECURECLAW_BACKUP_SIGNERS, else `signers` in [signing] of the configuration)
    #[arg(long = "signers", value_name = "FILE")]
    pub signers: Option<PathBuf>,
}

/// `--sign-key FILE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SignKeyArgs {
    /// Sign the archive: Ed25519 OpenSSH key (`keygen signing`) or OpenPGP secret key;
    /// writes <archive>.sig (default $SECURECLAW_BACKUP_SIGNING_KEY, else `key` in [signing] of the configuration)
    #[arg(long = "sign-key", value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
}

/// A path from the flag, else the environment variable `env`, else the
/// configuration (`pick` of its `[signing]` section, relative to the
/// configuration file's directory).
fn configured(
    flag: &Option<PathBuf>,
    env: &str,
    config: Option<&super::push::ConfigArgs>,
    pick: fn(&secureclaw_backup::tier::config::SigningConfig) -> Option<PathBuf>,
) -> Result<Option<PathBuf>> {
    if let Some(p) = flag {
        return Ok(Some(p.clone()));
    }
    if let Some(v) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return Ok(Some(PathBuf::from(v)));
    }
    let Some(config) = config else {
        return Ok(None);
    };
    let (path, cfg) = match config.load() {
        Ok(x) => x,
        // an unreadable default file does not stop a command that would not
        // otherwise read it; an explicit --config does
        Err(e) if config.config.is_some() => return Err(e),
        Err(_) => return Ok(None),
    };
    Ok(pick(&cfg.signing).map(|p| relative_to(&path, p)))
}

fn relative_to(config_file: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        return p;
    }
    config_file.parent().unwrap_or(Path::new(".")).join(p)
}

impl SignerArgs {
    /// The trust of this run: signers from the flag, environment or
    /// configuration, loaded; else unchecked (the caller prints
    /// [`notice_unchecked`]).
    pub fn trust(&self, config: Option<&super::push::ConfigArgs>) -> Result<Trust> {
        let path = configured(&self.signers, SIGNERS_ENV, config, |s| s.signers.clone())?;
        Trust::load(path.as_deref())
    }
}

impl SignKeyArgs {
    /// The signing key, when one is configured (read now: a wrong
    /// passphrase stops the run before anything is written).
    pub fn load(
        &self,
        config: Option<&super::push::ConfigArgs>,
        pass: &PassphraseSource,
        ui: &Ui,
    ) -> Result<Option<SigningKey>> {
        match configured(&self.sign_key, SIGNING_KEY_ENV, config, |s| s.key.clone())? {
            Some(p) => SigningKey::from_file(&p, pass, ui).map(Some),
            None => Ok(None),
        }
    }
}

/// Says once that provenance was not checked (info level: `-q` hides it).
pub fn notice_unchecked(trust: &Trust, ui: &Ui) {
    if !trust.is_checked() {
        ui.info(UNCHECKED_NOTICE);
    }
}

/// [`super::archive_arg`] for a run with `trust`: with trusted signers,
/// `latest` / `latest:TYPE` is the newest archive of the kind whose
/// signature is valid ([`secureclaw_backup::tier::reference::resolve_named`]
/// with [`secureclaw_backup::tier::reference::check_provenance_entry`] as
/// the filter); each newer one passed over is named in a warning. Any other
/// ARCHIVE is resolved as without signers (and refused later if unsigned).
pub fn archive_arg(
    arg: &Path,
    tier: Option<&str>,
    config: &super::push::ConfigArgs,
    dest: Option<&Path>,
    trust: &Trust,
    ui: &Ui,
) -> Result<secureclaw_backup::tier::ArchiveRef> {
    use secureclaw_backup::store::{LocalStore, Store};
    use secureclaw_backup::tier::reference::{check_provenance_entry, resolve_named, Named};
    let latest = match arg.to_str().map(Named::parse).transpose()? {
        Some(Some(n @ Named::Latest(_))) => n,
        _ => return super::archive_arg(arg, tier, config, dest),
    };
    if !trust.is_checked() {
        return super::archive_arg(arg, tier, config, dest);
    }
    let open = || -> Result<Box<dyn Store>> {
        Ok(match tier {
            Some(t) => config.tier(t)?.1,
            None => Box::new(LocalStore::new(secureclaw_backup::store::dest_or_default(
                dest,
            )?)),
        })
    };
    let checker = open()?;
    let now = chrono::Utc::now();
    resolve_named(open()?, &latest, &|a| match check_provenance_entry(
        checker.as_ref(),
        &a.name,
        trust,
        now,
    ) {
        Ok(_) => true,
        Err(e) => {
            ui.warn(format!(
                "{}: passed over for {}: {}",
                crate::ui::Safe(&a.name),
                crate::ui::Safe(arg),
                e.message
            ));
            false
        }
    })
}
