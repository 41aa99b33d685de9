//! `keygen`: create a backup key pair (see [`secureclaw_backup::keygen`] for what is
//! written): asks for the passphrase, then renders the files and the
//! recipient to put in `SECURECLAW_BACKUP_KEY`.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use secureclaw_backup::crypto::passphrase::{prompt, read_passphrase_file};
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::keygen::{generate_age, generate_openpgp, Generated};
use secureclaw_backup::ui::Ui;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    /// age X25519 identity
    Age,
    /// OpenPGP v4 certificate with an encryption subkey (GnuPG 2.2 compatible)
    Openpgp,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key type
    #[arg(value_enum)]
    pub kind: KeyKind,
    /// Directory for the key files (created 0700 if missing)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Protect the secret key with a passphrase (asked twice on the terminal)
    #[arg(long)]
    pub passphrase: bool,
    /// Read the passphrase from the first line of this file (implies --passphrase;
    /// with --passphrase, $SECURECLAW_BACKUP_PASSPHRASE_FILE is used when set)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// OpenPGP user id name
    #[arg(long, value_name = "NAME", default_value = "SecureClaw Backup")]
    pub name: String,
    /// OpenPGP user id e-mail
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
}

fn get_passphrase(args: &Args) -> Result<Option<SecretString>> {
    if let Some(f) = &args.passphrase_file {
        return read_passphrase_file(f).map(Some);
    }
    if !args.passphrase {
        return Ok(None);
    }
    if let Some(f) = secureclaw_backup::crypto::passphrase::passphrase_file(None) {
        return read_passphrase_file(&f).map(Some);
    }
    let a = prompt("Passphrase for the new key: ")?;
    if a.expose_secret().is_empty() {
        return Err(
            Error::usage("empty passphrase").hint("type a passphrase, or leave out --passphrase")
        );
    }
    let b = prompt("Repeat the passphrase: ")?;
    if a.expose_secret() != b.expose_secret() {
        return Err(Error::usage("the passphrases do not match").hint("run keygen again"));
    }
    Ok(Some(a))
}

fn human(g: &Generated) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Created {} key{}:\n  secret: {}\n  public: {}\n",
        if g.kind == "age" {
            "an age"
        } else {
            "an OpenPGP"
        },
        if g.passphrase_protected {
            " (passphrase protected)"
        } else {
            ""
        },
        g.secret_file.display(),
        g.public_file.display()
    ));
    if let (Some(f), Some(k)) = (&g.fingerprint, &g.key_id) {
        out.push_str(&format!("  fingerprint: {f}\n  key id: {k}\n"));
    }
    out.push_str("\nRecipient for backups (public, safe to share):\n");
    out.push_str(&format!("  SECURECLAW_BACKUP_KEY={}\n", g.recipient));
    if g.kind == "openpgp" {
        out.push_str(&format!(
            "  (resolved from your GnuPG keyring: gpg --import {}; or set\n   SECURECLAW_BACKUP_KEY={} to use the certificate file directly)\n",
            g.public_file.display(),
            secureclaw_backup::paths::absolute(&g.public_file).display()
        ));
    }
    out.push_str(&format!(
        "\nIMPORTANT: copy {} to offline storage (a password manager, a USB key in a safe)\n\
         and keep it OFF the machine being backed up. Without it no backup can be restored;\n\
         with it anyone can read every backup.\n",
        g.secret_file.display()
    ));
    out
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let pass = get_passphrase(&args)?;
    let g = match args.kind {
        KeyKind::Age => generate_age(&args.out, pass.as_ref())?,
        KeyKind::Openpgp => {
            let uid = match &args.email {
                Some(e) => format!("{} <{e}>", args.name),
                None => args.name.clone(),
            };
            generate_openpgp(&args.out, &uid, pass.as_ref())?
        }
    };
    let mut doc = json!(g);
    doc["ok"] = json!(true);
    ui.result(human(&g), doc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_says_to_keep_the_key_offline() {
        let t = tempfile::tempdir().unwrap();
        let g = generate_age(&t.path().join("keys"), None).unwrap();
        let h = human(&g);
        assert!(h.contains("offline"), "{h}");
        assert!(
            h.contains(&format!("SECURECLAW_BACKUP_KEY={}", g.recipient)),
            "{h}"
        );
    }
}
