//! The example keys of `keys-example/` and encryption to them: the age crate,
//! or stock `gpg` for OpenPGP (the backends a hostile author has).

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::sandbox::{have, repo};
use super::tar::gzip;
use super::tree::write_file;

/// A file of `keys-example/`.
pub fn example_key(name: &str) -> PathBuf {
    repo().join("keys-example").join(name)
}

/// The example age recipient (`age1...`).
pub fn age_recipient() -> String {
    fs::read_to_string(example_key("age-example.pub"))
        .unwrap()
        .trim()
        .to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Age,
    Pgp,
}

impl Backend {
    pub fn suffix(self) -> &'static str {
        match self {
            Backend::Age => "tar.gz.age",
            Backend::Pgp => "tar.gz.gpg",
        }
    }
    pub fn identity(self) -> PathBuf {
        match self {
            Backend::Age => example_key("age-example.key"),
            Backend::Pgp => example_key("openpgp-example.sec.asc"),
        }
    }
    pub fn recipient(self) -> String {
        match self {
            Backend::Age => age_recipient(),
            Backend::Pgp => example_key("openpgp-example.pub.asc").display().to_string(),
        }
    }
    pub fn encrypt(self, plain: &[u8]) -> Vec<u8> {
        match self {
            Backend::Age => age_encrypt(plain),
            Backend::Pgp => gpg_encrypt(plain),
        }
    }
}

pub fn age_encrypt(plain: &[u8]) -> Vec<u8> {
    let r: age::x25519::Recipient = age_recipient().parse().unwrap();
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    out
}

/// Whether stock `gpg` exists (checked once).
pub fn have_gpg() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| have("gpg"))
}

/// The backends to test: age always, OpenPGP when `gpg` exists.
pub fn backends() -> Vec<Backend> {
    if have_gpg() {
        vec![Backend::Age, Backend::Pgp]
    } else {
        eprintln!("SKIPPED the OpenPGP variants: gpg is not installed");
        vec![Backend::Age]
    }
}

/// A GnuPG home (under the target dir) holding the example certificate.
fn gnupg_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // homes of earlier runs (not those of test processes still running:
        // several test binaries may encrypt at once)
        if let Ok(rd) = fs::read_dir(base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix("security-gnupg-") else {
                    continue;
                };
                if !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let home = base.join(format!("security-gnupg-{}", std::process::id()));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&home)
            .unwrap();
        let o = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--no-autostart", "--quiet", "--import"])
            .arg(example_key("openpgp-example.pub.asc"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "gpg --import: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        home
    })
}

pub fn pgp_keyid() -> String {
    fs::read_to_string(example_key("openpgp-example.keyid"))
        .unwrap()
        .trim()
        .to_owned()
}

pub fn gpg_encrypt(plain: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gpg")
        .env("GNUPGHOME", gnupg_home())
        .args([
            "--batch",
            "--no-autostart",
            "--quiet",
            "--no-tty",
            "--encrypt",
            "-z",
            "0",
            "--trust-model",
            "always",
            "-r",
        ])
        .arg(pgp_keyid())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = plain.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        o.status.success(),
        "gpg --encrypt: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// tar → gzip → encrypt, written to `dir/<name>.<suffix>` (mode 0600).
pub fn write_archive(dir: &Path, name: &str, backend: Backend, tar: &[u8]) -> PathBuf {
    let p = dir.join(format!("{name}.{}", backend.suffix()));
    write_file(&p, &backend.encrypt(&gzip(tar)), 0o600);
    p
}
