//! Backup key pairs, as `keygen` creates them:
//!
//! - age: an X25519 identity in the format of `age-keygen` (`# created:`,
//!   `# public key:` comments, then `AGE-SECRET-KEY-1…`), optionally encrypted
//!   with a passphrase as `age -p -a` does, plus the recipient in a `.pub` file.
//! - OpenPGP: a v4 certificate (RFC 4880 profile, Curve25519) with a
//!   certification primary key and an encryption subkey for data at rest and in
//!   transit, advertising SEIPDv1 only so every sender (GnuPG 2.2 included) uses
//!   a packet format GnuPG 2.2 decrypts. No expiry: a backup key must still work
//!   for the restore years later. The secret key (optionally passphrase
//!   protected) and the certificate are written armored.
//!
//! - signing: an Ed25519 key in OpenSSH format (what `ssh-keygen -t ed25519`
//!   writes, optionally passphrase protected with bcrypt-pbkdf + AES-256-CTR
//!   as ssh-keygen does), for `backup --sign-key`; it signs archives and
//!   decrypts nothing. Its public line goes into the restore machine's
//!   `allowed_signers` (see [`crate::sign`]).
//!
//! Every file is created exclusively with mode 0600: an existing key is never
//! overwritten (exit 1). Prints nothing: the `keygen` command asks for the
//! passphrase and renders the result.

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, IoContext, Result};

/// File names written into `--out`.
pub const AGE_KEY: &str = "secureclaw-backup.age-key";
pub const AGE_PUB: &str = "secureclaw-backup.age-key.pub";
pub const PGP_SEC: &str = "secureclaw-backup.pgp.sec.asc";
pub const PGP_PUB: &str = "secureclaw-backup.pgp.pub.asc";
pub const SIGNING_KEY: &str = "secureclaw-backup.signing-key";
pub const SIGNING_PUB: &str = "secureclaw-backup.signing-key.pub";

/// What was created.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    pub kind: &'static str,
    /// The value for `SECURECLAW_BACKUP_KEY` / `-r`.
    pub recipient: String,
    pub fingerprint: Option<String>,
    pub key_id: Option<String>,
    pub secret_file: PathBuf,
    pub public_file: PathBuf,
    pub passphrase_protected: bool,
}

/// Refuses when any of `paths` exists.
fn refuse_existing(paths: &[&Path]) -> Result<()> {
    for p in paths {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(Error::operational(format!("{} already exists", p.display()))
                .hint("refusing to overwrite a key: choose another --out, or move the old key away first"));
        }
    }
    Ok(())
}

fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = crate::store::create_private(path).map_err(|e| {
        e.hint("refusing to overwrite a key: choose another --out, or move the old key away first")
    })?;
    f.write_all(data).at("writing", path)?;
    f.sync_all().at("syncing", path)
}

/// Generates an age identity into `dir`.
pub fn generate_age(dir: &Path, pass: Option<&SecretString>) -> Result<Generated> {
    let key_path = dir.join(AGE_KEY);
    let pub_path = dir.join(AGE_PUB);
    crate::store::mkdir_private(dir)?;
    refuse_existing(&[&key_path, &pub_path])?;
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        id.to_string().expose_secret()
    ));
    let data: Zeroizing<Vec<u8>> = match pass {
        None => Zeroizing::new(text.as_bytes().to_vec()),
        Some(p) => {
            let enc = age::Encryptor::with_user_passphrase(p.clone());
            let mut out = Vec::new();
            let armor =
                age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                    .map_err(|e| Error::operational(format!("age armor: {e}")))?;
            let mut w = enc
                .wrap_output(armor)
                .map_err(|e| Error::operational(format!("age encryption: {e}")))?;
            w.write_all(text.as_bytes())
                .and_then(|_| w.finish())
                .and_then(|a| a.finish())
                .map_err(|e| Error::operational(format!("age encryption: {e}")))?;
            Zeroizing::new(out)
        }
    };
    write_new(&key_path, &data)?;
    write_new(&pub_path, format!("{recipient}\n").as_bytes())?;
    Ok(Generated {
        kind: "age",
        recipient,
        fingerprint: None,
        key_id: None,
        secret_file: key_path,
        public_file: pub_path,
        passphrase_protected: pass.is_some(),
    })
}

/// Generates an OpenPGP key into `dir`.
pub fn generate_openpgp(
    dir: &Path,
    userid: &str,
    pass: Option<&SecretString>,
) -> Result<Generated> {
    use openpgp::cert::{CertBuilder, CipherSuite};
    use openpgp::serialize::SerializeInto;
    use openpgp::types::{Features, KeyFlags};
    use sequoia_openpgp as openpgp;

    let sec_path = dir.join(PGP_SEC);
    let pub_path = dir.join(PGP_PUB);
    crate::store::mkdir_private(dir)?;
    refuse_existing(&[&sec_path, &pub_path])?;
    let fail =
        |e: anyhow::Error| Error::operational(format!("generating the OpenPGP key failed: {e}"));
    let builder = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC4880)
        .map_err(fail)?
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_features(Features::empty().set_seipdv1())
        .map_err(fail)?
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .set_validity_period(None)
        .add_userid(userid)
        .add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .set_password(pass.map(|p| openpgp::crypto::Password::from(p.expose_secret())));
    let (cert, _revocation) = builder.generate().map_err(fail)?;
    check_gnupg22_compatible(&cert)?;
    let sec = Zeroizing::new(cert.as_tsk().armored().to_vec().map_err(fail)?);
    let public = cert.armored().to_vec().map_err(fail)?;
    write_new(&sec_path, &sec)?;
    write_new(&pub_path, &public)?;
    let fpr = cert.fingerprint().to_hex();
    Ok(Generated {
        kind: "openpgp",
        recipient: fpr.clone(),
        fingerprint: Some(fpr),
        key_id: Some(cert.keyid().to_hex()),
        secret_file: sec_path,
        public_file: pub_path,
        passphrase_protected: pass.is_some(),
    })
}

/// What `keygen signing` created.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedSigning {
    pub kind: &'static str,
    /// `ssh-ed25519 AAAA… secureclaw-backup@HOST`
    pub public_key: String,
    /// The line for `allowed_signers` on the machines that check archives.
    pub allowed_signers: String,
    /// `SHA256:…`
    pub fingerprint: String,
    /// The principal: this host's name (`uname -n`), as manifests record it.
    pub principal: String,
    pub secret_file: PathBuf,
    pub public_file: PathBuf,
    pub passphrase_protected: bool,
}

/// This host's name as `uname -n` prints it (and as backups record it).
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The `allowed_signers` line trusting `public` (`ssh-ed25519 AAAA…`) to sign
/// archives of `principal` (quoted when it holds blanks or quotes cannot
/// occur in it: a name with a double quote is refused).
pub fn allowed_signers_line(principal: &str, public: &str) -> Result<String> {
    if principal.is_empty()
        || principal.contains(['"', ',', '\n', '\r'])
        || principal.starts_with(['#', '!'])
    {
        return Err(Error::usage(format!(
            "the host name {} cannot be a principal of an allowed_signers line",
            crate::text::Safe(principal)
        ))
        .hint("give the host a plain name (hostnamectl set-hostname NAME), or write the allowed_signers line by hand"));
    }
    let p = if principal.contains([' ', '\t']) {
        format!("\"{principal}\"")
    } else {
        principal.to_owned()
    };
    Ok(format!(
        "{p} namespaces=\"{}\" {public}",
        crate::sign::NAMESPACE
    ))
}

/// Generates an Ed25519 signing key into `dir` for `principal` (normally
/// [`host_name`]).
pub fn generate_signing(
    dir: &Path,
    principal: &str,
    pass: Option<&SecretString>,
) -> Result<GeneratedSigning> {
    let key_path = dir.join(SIGNING_KEY);
    let pub_path = dir.join(SIGNING_PUB);
    crate::store::mkdir_private(dir)?;
    refuse_existing(&[&key_path, &pub_path])?;
    let fail = |e: ssh_key::Error| {
        Error::operational(format!("generating the signing key failed: {e}"))
            .hint("this is a bug in secureclaw-backup; please report it")
    };
    let mut rng = crate::sign::OsRandom::new()?;
    let seed = rng.seed::<32>();
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let key = ssh_key::PrivateKey::new(
        ssh_key::private::KeypairData::Ed25519(pair),
        format!("secureclaw-backup@{principal}"),
    )
    .map_err(fail)?;
    let public_key = key.public_key().to_openssh().map_err(fail)?;
    let bare = {
        let mut p = key.public_key().clone();
        p.set_comment("");
        p.to_openssh().map_err(fail)?.trim_end().to_owned()
    };
    let allowed = allowed_signers_line(principal, &bare)?;
    let text: Zeroizing<String> = match pass {
        None => key.to_openssh(ssh_key::LineEnding::LF).map_err(fail)?,
        Some(p) => key
            .encrypt(&mut rng, p.expose_secret().as_bytes())
            .map_err(fail)?
            .to_openssh(ssh_key::LineEnding::LF)
            .map_err(fail)?,
    };
    write_new(&key_path, text.as_bytes())?;
    write_new(&pub_path, format!("{public_key}\n").as_bytes())?;
    Ok(GeneratedSigning {
        kind: "signing",
        fingerprint: crate::sign::ssh::fingerprint(key.public_key().key_data()),
        public_key,
        allowed_signers: allowed,
        principal: principal.to_owned(),
        secret_file: key_path,
        public_file: pub_path,
        passphrase_protected: pass.is_some(),
    })
}

/// v4 keys only, an encryption-capable subkey, and no SEIPDv2 advertised.
fn check_gnupg22_compatible(cert: &sequoia_openpgp::Cert) -> Result<()> {
    use sequoia_openpgp::policy::StandardPolicy;
    let p = StandardPolicy::new();
    let bad = |what: &str| {
        Error::operational(format!(
            "the generated OpenPGP key is not GnuPG 2.2 compatible: {what}"
        ))
        .hint("this is a bug in secureclaw-backup; please report it")
    };
    if cert.keys().any(|k| k.key().version() != 4) {
        return Err(bad("not a v4 key"));
    }
    let vc = cert
        .with_policy(&p, None)
        .map_err(|e| bad(&e.to_string()))?;
    if vc.keys().for_storage_encryption().count() == 0 {
        return Err(bad("no encryption subkey"));
    }
    let features = vc.primary_key().binding_signature().features().or_else(|| {
        vc.primary_userid()
            .ok()
            .and_then(|u| u.binding_signature().features())
    });
    if features.is_some_and(|f| f.supports_seipdv2()) {
        return Err(bad("it advertises SEIPDv2"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn age_key_plain_and_refuses_overwrite() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("keys");
        let g = generate_age(&out, None).unwrap();
        assert!(g.recipient.starts_with("age1"));
        assert_eq!(mode(&out), 0o700);
        assert_eq!(mode(&g.secret_file), 0o600);
        let text = std::fs::read_to_string(&g.secret_file).unwrap();
        assert!(text.starts_with("# created: "));
        assert!(text.contains(&format!("# public key: {}\n", g.recipient)));
        let key_line = text.lines().last().unwrap();
        let id: age::x25519::Identity = key_line.parse().unwrap();
        assert_eq!(id.to_public().to_string(), g.recipient);
        let err = generate_age(&out, None).unwrap_err();
        assert_eq!(err.kind.exit_code(), 1);
        assert!(err.message.contains("already exists"));
    }

    #[test]
    fn age_key_with_passphrase_decrypts() {
        let t = tempfile::tempdir().unwrap();
        let pass = SecretString::from("correct horse".to_owned());
        let g = generate_age(t.path(), Some(&pass)).unwrap();
        let data = std::fs::read(&g.secret_file).unwrap();
        assert!(data.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        let dec = age::Decryptor::new(age::armor::ArmoredReader::new(&data[..])).unwrap();
        let id = age::scrypt::Identity::new(pass);
        let mut r = dec
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .unwrap();
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut r, &mut plain).unwrap();
        assert!(plain.contains("AGE-SECRET-KEY-1"));
        assert!(plain.contains(&g.recipient));
    }

    fn have_gpg() -> bool {
        Command::new("gpg")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn gpg(home: &Path, args: &[&str], input: Option<&[u8]>) -> std::process::Output {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", home)
            .args(["--batch", "--no-tty", "--quiet"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(i) = input {
            stdin.write_all(i).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    fn gpg_round_trip(pass: Option<&str>) {
        if !have_gpg() {
            println!("skipped: gpg is not installed");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let secret = pass.map(|p| SecretString::from(p.to_owned()));
        let g = generate_openpgp(
            &t.path().join("k"),
            "Test <t@example.invalid>",
            secret.as_ref(),
        )
        .unwrap();
        assert_eq!(mode(&g.secret_file), 0o600);
        let fpr = g.fingerprint.clone().unwrap();
        assert_eq!(fpr.len(), 40);
        assert_eq!(g.key_id.as_deref().unwrap(), &fpr[24..]);
        let out = gpg(&home, &["--import", g.public_file.to_str().unwrap()], None);
        assert!(
            out.status.success(),
            "import pub: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let enc = gpg(
            &home,
            &["--trust-model", "always", "--encrypt", "-r", &fpr],
            Some(b"hello backup"),
        );
        assert!(
            enc.status.success(),
            "encrypt: {}",
            String::from_utf8_lossy(&enc.stderr)
        );
        let pf = t.path().join("pass");
        std::fs::write(&pf, pass.unwrap_or("")).unwrap();
        let imp = gpg(
            &home,
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase-file",
                pf.to_str().unwrap(),
                "--import",
                g.secret_file.to_str().unwrap(),
            ],
            None,
        );
        assert!(
            imp.status.success(),
            "import sec: {}",
            String::from_utf8_lossy(&imp.stderr)
        );
        let dec = gpg(
            &home,
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase-file",
                pf.to_str().unwrap(),
                "--decrypt",
            ],
            Some(&enc.stdout),
        );
        assert!(
            dec.status.success(),
            "decrypt: {}",
            String::from_utf8_lossy(&dec.stderr)
        );
        assert_eq!(dec.stdout, b"hello backup");
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &home)
            .args(["--kill", "all"])
            .output();
    }

    #[test]
    fn signing_key_is_private_loads_and_signs() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("keys");
        let g = generate_signing(&out, "web-1", None).unwrap();
        assert_eq!(mode(&g.secret_file), 0o600);
        assert!(g.public_key.starts_with("ssh-ed25519 AAAA"));
        assert!(g.public_key.ends_with(" secureclaw-backup@web-1"));
        assert!(g
            .allowed_signers
            .starts_with("web-1 namespaces=\"secureclaw-backup\" ssh-ed25519 AAAA"));
        let text = std::fs::read_to_string(&g.secret_file).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let key = crate::sign::SigningKey::from_file(
            &g.secret_file,
            &crate::crypto::PassphraseSource::new(None),
            &crate::events::Silent,
        )
        .unwrap();
        assert_eq!(key.fingerprint(), g.fingerprint);
        let signers =
            crate::sign::AllowedSigners::parse(&g.allowed_signers, Path::new("a")).unwrap();
        assert_eq!(signers.lines[0].principals, ["web-1"]);
        let err = generate_signing(&out, "web-1", None).unwrap_err();
        assert!(err.message.contains("already exists"));
        // a second key is another key
        let g2 = generate_signing(&t.path().join("k2"), "web-1", None).unwrap();
        assert_ne!(g2.fingerprint, g.fingerprint);
    }

    #[test]
    fn signing_key_with_passphrase() {
        let t = tempfile::tempdir().unwrap();
        let pass = SecretString::from("signing pass".to_owned());
        let g = generate_signing(t.path(), "web-1", Some(&pass)).unwrap();
        let pf = t.path().join("pf");
        std::fs::write(&pf, "signing pass\n").unwrap();
        std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = crate::sign::SigningKey::from_file(
            &g.secret_file,
            &crate::crypto::PassphraseSource::new(Some(pf)),
            &crate::events::Silent,
        )
        .unwrap();
        assert_eq!(key.fingerprint(), g.fingerprint);
        let text = std::fs::read_to_string(&g.secret_file).unwrap();
        let parsed = ssh_key::PrivateKey::from_openssh(&text).unwrap();
        assert!(parsed.is_encrypted());
        assert!(parsed.decrypt("another pass").is_err());
    }

    #[test]
    fn allowed_signers_line_quotes_or_refuses() {
        assert_eq!(
            allowed_signers_line("my host", "ssh-ed25519 AAAA").unwrap(),
            "\"my host\" namespaces=\"secureclaw-backup\" ssh-ed25519 AAAA"
        );
        for bad in ["", "a,b", "a\"b", "!a", "#a"] {
            assert_eq!(
                allowed_signers_line(bad, "ssh-ed25519 AAAA")
                    .unwrap_err()
                    .kind
                    .exit_code(),
                2
            );
        }
    }

    #[test]
    fn openpgp_key_works_with_gnupg() {
        gpg_round_trip(None);
    }

    #[test]
    fn openpgp_protected_key_works_with_gnupg() {
        gpg_round_trip(Some("example pass"));
    }
}
