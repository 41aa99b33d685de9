//! `keygen`: create a backup key pair or a signing key (see
//! [`secureclaw_backup::keygen`] for what is written): asks for the
//! passphrase, then renders the files and the recipient to put in
//! `SECURECLAW_BACKUP_KEY`, or the signing key's `allowed_signers` line.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::crypto::passphrase::{prompt, read_passphrase_file};
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::keygen::{
    generate_age, generate_openpgp, generate_signing, host_name, Generated, GeneratedSigning,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    /// age X25519 identity
    Age,
    /// OpenPGP v4 certificate with an encryption subkey (GnuPG 2.2 compatible)
    Openpgp,
    /// Ed25519 signing key (OpenSSH format) for `backup --sign-key`; it cannot decrypt
    Signing,
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
    /// Signing key: the principal of the allowed_signers line (default: this host's
    /// name as `uname -n` prints it, which backups record in their manifest)
    #[arg(long, value_name = "NAME")]
    pub principal: Option<String>,
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

fn human_signing(g: &GeneratedSigning) -> String {
    format!(
        "Created a signing key{}:\n  secret: {}\n  public: {}\n  fingerprint: {}\n\n\
         Public key:\n  {}\n\n\
         On every machine that restores or checks these backups, add this line to the\n\
         allowed_signers file given with --signers (principal: the backup host's name):\n  {}\n\n\
         Sign backups on this host: backup --sign-key {}\n\
         Check with stock tools: ssh-keygen -Y verify -f allowed_signers -I {} -n {} -s ARCHIVE.sig < ARCHIVE\n\n\
         This key only signs: it cannot decrypt any backup. Whoever has it can make archives\n\
         that pass as this host's until its line is removed from allowed_signers.\n",
        if g.passphrase_protected {
            " (passphrase protected)"
        } else {
            ""
        },
        g.secret_file.display(),
        g.public_file.display(),
        g.fingerprint,
        g.public_key,
        g.allowed_signers,
        secureclaw_backup::paths::absolute(&g.secret_file).display(),
        g.principal,
        secureclaw_backup::sign::NAMESPACE,
    )
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let pass = get_passphrase(&args)?;
    let (text, mut doc) = match args.kind {
        KeyKind::Age => {
            let g = generate_age(&args.out, pass.as_ref())?;
            (human(&g), json!(g))
        }
        KeyKind::Openpgp => {
            let uid = match &args.email {
                Some(e) => format!("{} <{e}>", args.name),
                None => args.name.clone(),
            };
            let g = generate_openpgp(&args.out, &uid, pass.as_ref())?;
            (human(&g), json!(g))
        }
        KeyKind::Signing => {
            let principal = args.principal.clone().unwrap_or_else(host_name);
            let g = generate_signing(&args.out, &principal, pass.as_ref())?;
            (human_signing(&g), json!(g))
        }
    };
    doc["ok"] = json!(true);
    ui.result(text, doc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_output_has_the_allowed_signers_line() {
        let t = tempfile::tempdir().unwrap();
        let g = generate_signing(&t.path().join("keys"), "web-1", None).unwrap();
        let h = human_signing(&g);
        assert!(h.contains(&g.allowed_signers), "{h}");
        assert!(h.contains(&g.public_key), "{h}");
        assert!(h.contains("ssh-keygen -Y verify"), "{h}");
        assert!(h.contains("cannot decrypt"), "{h}");
    }

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
