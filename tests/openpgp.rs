//! End-to-end tests of the OpenPGP backend against the real `gpg` (GnuPG 2.2):
//! recipients from a GnuPG home or a keyring file, interop both ways (our
//! archives through `gpg --decrypt | tar`, the guide's `tar | gpg --encrypt`
//! pipeline through our restore, with a secret key file or gpg-agent),
//! passphrase-protected keys, the authentication gate on large archives,
//! unusable recipient certificates, and rotation across formats.
//!
//! Every test has its own GNUPGHOME inside its sandbox; its gpg-agent is
//! killed when the test ends (also on failure).

mod common;

use age::secrecy::ExposeSecret;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PUB: &str = "openpgp-example.pub.asc";
const SEC: &str = "openpgp-example.sec.asc";
const PROT_PUB: &str = "openpgp-example-protected.pub.asc";
const PROT_SEC: &str = "openpgp-example-protected.sec.asc";
const EMAIL: &str = "backup-example@secureclaw.invalid";

fn no_gpg() -> bool {
    if have("gpg") && have("gpgconf") {
        return false;
    }
    eprintln!("skipped: gpg (GnuPG) is not installed");
    true
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn key_path(name: &str) -> String {
    s(&example_key(name))
}

/// The primary key id of the example certificate (16 hex digits).
fn key_id() -> String {
    fs::read_to_string(example_key("openpgp-example.keyid"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A GnuPG home of its own; its gpg-agent is killed on drop.
struct Gpg {
    home: PathBuf,
    tmp: PathBuf,
}

impl Gpg {
    fn new(env: &Sandbox, name: &str) -> Gpg {
        let home = env.p(name);
        fs::DirBuilder::new().mode(0o700).create(&home).unwrap();
        Gpg {
            home,
            tmp: env.p("env/tmp"),
        }
    }

    /// `gpg --batch --pinentry-mode loopback --trust-model always …`
    fn gpg(&self, args: &[&str]) -> Output {
        let out = Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--trust-model",
                "always",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ gpg {}\n{}exit {:?}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        );
        out
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.gpg(args);
        assert!(out.status.success(), "gpg {args:?} failed");
        out
    }

    fn import(&self, file: &str) {
        self.ok(&["--import", file]);
    }

    /// A bash script (pipefail) with this GNUPGHOME; returns its output.
    fn sh(&self, script: &str) -> Output {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -euo pipefail\n{script}"))
            .env("GNUPGHOME", &self.home)
            .env("TMPDIR", &self.tmp)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ {script}\n{}{}exit {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        );
        out
    }

    /// (primary fingerprint, key ids of the encryption subkeys) of `id`.
    fn key_info(&self, id: &str) -> (String, Vec<String>) {
        let out = self.ok(&["--with-colons", "--with-fingerprint", "--list-keys", id]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut fpr = None;
        let mut subs = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            match f[0] {
                "fpr" if fpr.is_none() => fpr = Some(f[9].to_owned()),
                "sub" if f[11].contains('e') => subs.push(f[4].to_owned()),
                _ => {}
            }
        }
        (fpr.expect("a fingerprint"), subs)
    }

    /// The text of `gpg --list-packets` (decrypting, if the secret is here).
    fn packets(&self, file: &Path) -> String {
        let out = self.ok(&["--list-packets", &s(file)]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs our binary in the sandbox with this GNUPGHOME.
fn sc(env: &Sandbox, g: &Gpg, args: &[&str]) -> Output {
    sc_env(env, g, &[], args)
}

fn sc_env(env: &Sandbox, g: &Gpg, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = env.cmd();
    c.env("GNUPGHOME", &g.home);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.args(args).output().unwrap();
    eprintln!(
        "$ secureclaw-backup {}\n{}{}exit {:?}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    out
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("one JSON document on stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `backup --type T --source SRC --dest DEST <extra> --json` → the archive.
fn backup(env: &Sandbox, g: &Gpg, src: &Path, dest: &Path, btype: &str, extra: &[&str]) -> PathBuf {
    let (src, dest) = (s(src), s(dest));
    let mut args = vec![
        "backup", "--type", btype, "--source", &src, "--dest", &dest, "--json",
    ];
    args.extend_from_slice(extra);
    let o = sc(env, g, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["ok"], true);
    let p = PathBuf::from(v["backup"]["archive"].as_str().unwrap());
    assert!(p.is_file());
    p
}

/// `verify ARCHIVE --json` (keyless) → the recipients it reports.
fn keyless_recipients(env: &Sandbox, g: &Gpg, archive: &Path) -> Vec<String> {
    let o = sc(env, g, &["verify", &s(archive), "--json"]);
    assert_eq!(code(&o), 0, "keyless verify of {}", archive.display());
    let v = json(&o);
    assert_eq!(v["verified"][0]["full"], false);
    assert_eq!(v["verified"][0]["format"], "openpgp");
    v["verified"][0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// `verify ARCHIVE -i KEY` exit code.
fn verify_with(env: &Sandbox, g: &Gpg, archive: &Path, key: &str) -> i32 {
    code(&sc(env, g, &["verify", &s(archive), "-i", key]))
}

/// path → kind and content, without modes.
type Contents = BTreeMap<String, Node>;

fn contents(snap: Tree) -> Contents {
    snap.into_iter().map(|(k, (_, n))| (k, n)).collect()
}

/// What a daily archive of `src` holds (no locks, no workspace/ or logs/).
fn expected_daily(src: &Path) -> Contents {
    let mut c = contents(snapshot(src));
    c.retain(|k, _| !k.ends_with(".lock") && !k.starts_with("workspace") && !k.starts_with("logs"));
    c
}

/// Extracts with `gpg --decrypt F | tar xzf -` into a fresh dir and returns
/// the single top-level directory of the archive.
fn gpg_extract(g: &Gpg, archive: &Path, into: &Path) -> PathBuf {
    fs::create_dir_all(into).unwrap();
    let o = g.sh(&format!(
        "gpg --batch --decrypt '{}' | tar xzf - -C '{}'",
        archive.display(),
        into.display()
    ));
    assert!(o.status.success(), "gpg --decrypt | tar xzf failed");
    let tops: Vec<PathBuf> = fs::read_dir(into)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(tops.len(), 1, "one top-level directory: {tops:?}");
    tops.into_iter().next().unwrap()
}

fn assert_archive_name(archive: &Path, btype: &str, suffix: &str) {
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    let ts = name
        .strip_prefix(&format!("{btype}_"))
        .and_then(|r| r.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("{name} is not {btype}_<ts>{suffix}"));
    let b = ts.as_bytes();
    assert!(
        b.len() >= 15
            && b[8] == b'_'
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[9..15].iter().all(u8::is_ascii_digit),
        "{name}: timestamp"
    );
}

/// Names (not dotfiles) in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Entries beside `target` other than the target itself (staging left over).
fn beside(target: &Path) -> Vec<String> {
    let name = target.file_name().unwrap().to_string_lossy().into_owned();
    fs::read_dir(target.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| *n != name)
        .collect()
}

/// `make_tree` without its session lock file: that lock names pid 1, which is
/// always alive, so every backup of it would wait the 5 s `--lock-wait`.
fn source(env: &Sandbox) -> PathBuf {
    let src = env.p("src");
    make_tree(&src);
    fs::remove_file(src.join("agents/main/sessions/abc.jsonl.lock")).unwrap();
    src
}

// 1 ─────────────────────────────────────────────────────────────────────────

#[test]
fn backup_to_key_id_fingerprint_and_email_is_read_by_gpg() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let src = source(&env);
    let g = Gpg::new(&env, "gnupg");
    g.import(&key_path(PUB));
    let (fpr, subs) = g.key_info(&key_id());
    assert_eq!(fpr.len(), 40);
    assert_eq!(subs.len(), 1, "the example has one encryption subkey");
    // a home without any key: the fingerprint must come from --keyring
    let empty = Gpg::new(&env, "gnupg-empty");
    let spaced = format!(
        "0x{}",
        fpr.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let keyring = key_path(PUB);
    let kid = key_id();
    let cases: Vec<(&str, &Gpg, Vec<&str>)> = vec![
        ("key-id", &g, vec!["-r", &kid]),
        (
            "fingerprint",
            &empty,
            vec!["--keyring", &keyring, "-r", &spaced],
        ),
        ("email", &g, vec!["-r", EMAIL]),
    ];
    let mut made = Vec::new();
    for (label, home, extra) in &cases {
        let a = backup(
            &env,
            home,
            &src,
            &env.p(&format!("dest-{label}")),
            "daily",
            extra,
        );
        assert_archive_name(&a, "daily", ".tar.gz.gpg");
        assert_eq!(
            keyless_recipients(&env, home, &a),
            subs,
            "{label}: verify reports the encryption subkey"
        );
        made.push((*label, a));
    }
    // the same key id from the environment, resolved in the GnuPG home
    let o = sc_env(
        &env,
        &g,
        &[("SECURECLAW_BACKUP_KEY", &kid)],
        &[
            "backup",
            "--source",
            &s(&src),
            "--dest",
            &s(&env.p("dest-env")),
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(archives(&env.p("dest-env")).len(), 1);

    // stock gpg decrypts each, tar extracts the tree; no compression packet
    g.import(&key_path(SEC));
    let want = expected_daily(&src);
    for (label, a) in &made {
        let top = gpg_extract(&g, a, &env.p(&format!("out-{label}")));
        assert!(top
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("daily_"));
        let mut got = contents(snapshot(&top));
        assert!(
            got.remove("manifest.json").is_some(),
            "{label}: manifest.json"
        );
        got.remove("manifest.txt");
        assert_eq!(got, want, "{label}: gpg | tar yields the tree");
        let p = g.packets(a);
        assert!(p.contains(":pubkey enc packet:"), "{p}");
        assert!(p.contains(&format!("keyid {}", subs[0])), "{p}");
        assert!(p.contains(":encrypted data packet:"), "{p}");
        assert!(p.contains("mdc_method: 2"), "SEIPDv1 with MDC: {p}");
        assert!(p.contains(":literal data packet:"), "decrypted: {p}");
        assert!(
            !p.contains(":compressed packet:"),
            "{label}: no compression packet: {p}"
        );
    }
}

// 2 ─────────────────────────────────────────────────────────────────────────

#[test]
fn guide_restore_script_restores_our_archive() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let src = source(&env);
    let g = Gpg::new(&env, "gnupg");
    g.import(&key_path(PUB));
    g.import(&key_path(SEC));
    let a = backup(&env, &g, &src, &env.p("dest"), "weekly", &["-r", &key_id()]);
    assert_archive_name(&a, "weekly", ".tar.gz.gpg");
    // "Basic Restore", the .tar.gz.gpg branch of the guide's script
    let o = g.sh(&format!(
        "BACKUP_FILE='{}'\n\
         TEMP=$(mktemp -d)\n\
         gpg --decrypt \"$BACKUP_FILE\" | tar xzf - -C \"$TEMP\"\n\
         BACKUP_DIR=$TEMP/$(ls $TEMP)\n\
         printf '%s' \"$BACKUP_DIR\"",
        a.display()
    ));
    assert!(o.status.success());
    let dir = PathBuf::from(String::from_utf8(o.stdout).unwrap());
    assert!(dir.starts_with(env.p("env/tmp")), "{}", dir.display());
    for f in [
        "secureclaw.json",
        ".env",
        "credentials/oauth.json",
        "credentials/whatsapp/acct/creds.json",
        "agents/main/agent/auth-profiles.json",
        "workspace/report.md",
    ] {
        assert_eq!(
            fs::read(dir.join(f)).unwrap_or_else(|e| panic!("$BACKUP_DIR/{f}: {e}")),
            fs::read(src.join(f)).unwrap(),
            "$BACKUP_DIR/{f}"
        );
    }
}

// 3 ─────────────────────────────────────────────────────────────────────────

#[test]
fn guide_pipeline_archive_restores_with_key_file_and_with_gpg_agent() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    g.import(&key_path(PUB));
    let root = env.p("backups");
    let name = "daily_20250101_020000";
    let d = root.join(name);
    write_file(
        &d.join("secureclaw.json"),
        b"{gateway: {port: 18789}}",
        0o644,
    );
    write_file(&d.join("credentials/oauth.json"), CANARY.as_bytes(), 0o600);
    write_file(
        &d.join("agents/main/sessions/abc.jsonl"),
        b"{\"x\":1}\n",
        0o644,
    );
    write_file(&d.join("manifest.txt"), b"SecureClaw Backup\n", 0o644);
    let f = root.join(format!("{name}.tar.gz.gpg"));
    // the guide's production pipeline (gpg compresses by default)
    let o = g.sh(&format!(
        "tar czf - -C '{}' '{name}' | gpg --batch --trust-model always --encrypt --recipient '{}' --output '{}'",
        root.display(),
        key_id(),
        f.display()
    ));
    assert!(o.status.success());
    let check = |target: &Path| {
        assert_eq!(
            fs::read(target.join("secureclaw.json")).unwrap(),
            b"{gateway: {port: 18789}}"
        );
        assert_eq!(
            fs::read(target.join("credentials/oauth.json")).unwrap(),
            CANARY.as_bytes()
        );
        assert_eq!(
            fs::read(target.join("agents/main/sessions/abc.jsonl")).unwrap(),
            b"{\"x\":1}\n"
        );
        assert!(!target.join("manifest.txt").exists());
    };

    // with the exported secret key
    let t1 = env.p("t1");
    let o = sc(
        &env,
        &g,
        &[
            "restore",
            &s(&f),
            "-i",
            &key_path(SEC),
            "--target",
            &s(&t1),
            "--no-snapshot",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("legacy"), "warns: legacy archive");
    let v = json(&o);
    assert_eq!(v["restore"]["legacy"], true);
    assert_eq!(v["restore"]["format"], "openpgp");
    check(&t1);

    // what gpg wrote is compressed: the test exercises that path
    g.import(&key_path(SEC));
    assert!(g.packets(&f).contains(":compressed packet:"));

    // through gpg-agent: no -i, the secret key is in GNUPGHOME
    let launch = Command::new("gpgconf")
        .env("GNUPGHOME", &g.home)
        .args(["--launch", "gpg-agent"])
        .status()
        .unwrap();
    assert!(launch.success());
    let t2 = env.p("t2");
    let o = sc(
        &env,
        &g,
        &[
            "restore",
            &s(&f),
            "--target",
            &s(&t2),
            "--no-snapshot",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["restore"]["legacy"], true);
    check(&t2);
}

// 4 ─────────────────────────────────────────────────────────────────────────

#[test]
fn passphrase_protected_key_wrong_passphrase_and_wrong_key() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    let src = source(&env);
    // a certificate file as the recipient
    let a = backup(
        &env,
        &g,
        &src,
        &env.p("dest"),
        "daily",
        &["-r", &key_path(PROT_PUB)],
    );
    let good = env.p("pass-good");
    write_file(&good, b"example\n", 0o600);
    let bad = env.p("pass-bad");
    write_file(&bad, b"not-the-passphrase\n", 0o600);
    let parent = env.p("t");
    fs::create_dir(&parent).unwrap();
    let target = parent.join("target");
    make_tree(&target);
    write_file(&target.join("secureclaw.json"), b"{current: true}", 0o600);
    let before = snapshot(&target);
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore".to_owned(),
            s(&a),
            "--target".into(),
            s(&target),
            "--no-snapshot".into(),
        ];
        args.extend(extra.iter().map(|x| x.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sc(&env, &g, &args)
    };

    // wrong passphrase → key problem, nothing changed
    let o = restore(&["-i", &key_path(PROT_SEC), "--passphrase-file", &s(&bad)]);
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("passphrase"), "names the passphrase");
    assert_eq!(snapshot(&target), before);
    assert!(beside(&target).is_empty(), "{:?}", beside(&target));

    // a secret key that is not a recipient → key problem, nothing changed
    let o = restore(&["-i", &key_path(SEC)]);
    assert_eq!(code(&o), 4);
    assert_eq!(snapshot(&target), before);
    assert!(beside(&target).is_empty(), "{:?}", beside(&target));
    assert_eq!(verify_with(&env, &g, &a, &key_path(SEC)), 4);
    // no -i and an empty GnuPG home: nothing can open it either
    let o = restore(&[]);
    assert_eq!(code(&o), 4);
    assert_eq!(snapshot(&target), before);

    // the right passphrase from a file
    let o = restore(&["-i", &key_path(PROT_SEC), "--passphrase-file", &s(&good)]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        fs::read(target.join("secureclaw.json")).unwrap(),
        fs::read(src.join("secureclaw.json")).unwrap()
    );
    assert_eq!(
        fs::read(target.join("credentials/whatsapp/acct/creds.json")).unwrap(),
        CANARY.as_bytes()
    );
}

// 5 ─────────────────────────────────────────────────────────────────────────

/// `n` bytes that gzip cannot shrink (xorshift64*).
fn noise(n: usize, mut x: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(n);
    v
}

#[test]
fn large_archive_with_last_byte_flipped_is_rejected_and_target_untouched() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    let src = source(&env);
    write_file(
        &src.join("state/blob.bin"),
        &noise(32 << 20, 0x9E37_79B9_7F4A_7C15),
        0o600,
    );
    let a = backup(
        &env,
        &g,
        &src,
        &env.p("dest"),
        "daily",
        &["--keyring", &key_path(PUB), "-r", &key_id()],
    );
    let mut data = fs::read(&a).unwrap();
    assert!(data.len() > 30 << 20, "archive of {} bytes", data.len());
    let last = data.len() - 1;
    data[last] ^= 0x01;
    fs::write(&a, &data).unwrap();
    drop(data);

    let parent = env.p("t");
    fs::create_dir(&parent).unwrap();
    let target = parent.join("target");
    make_tree(&target);
    write_file(&target.join("secureclaw.json"), b"{current: true}", 0o600);
    let before = snapshot(&target);
    let o = sc(
        &env,
        &g,
        &[
            "restore",
            &s(&a),
            "-i",
            &key_path(SEC),
            "--target",
            &s(&target),
            "--no-snapshot",
        ],
    );
    assert_eq!(code(&o), 3, "integrity failure");
    assert_eq!(snapshot(&target), before, "target byte-identical");
    assert!(
        beside(&target).is_empty(),
        "no staging left beside the target: {:?}",
        beside(&target)
    );
    assert_eq!(verify_with(&env, &g, &a, &key_path(SEC)), 3);
}

// 6 ─────────────────────────────────────────────────────────────────────────

#[test]
fn expired_revoked_and_sign_only_certificates_are_refused() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    // primary + encryption subkey made in 2020, valid for one day
    g.ok(&[
        "--passphrase",
        "",
        "--faked-system-time",
        "20200101T000000",
        "--quick-gen-key",
        "Expired <expired@x.invalid>",
        "future-default",
        "default",
        "1d",
    ]);
    // valid, then revoked with the revocation certificate gpg made for it
    g.ok(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "Revoked <revoked@x.invalid>",
        "future-default",
        "default",
        "never",
    ]);
    let (rev_fpr, rev_subs) = g.key_info("revoked@x.invalid");
    assert_eq!(rev_subs.len(), 1);
    let rev = fs::read_to_string(g.home.join(format!("openpgp-revocs.d/{rev_fpr}.rev"))).unwrap();
    let rev_file = env.p("revoke.asc");
    write_file(
        &rev_file,
        rev.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        )
        .as_bytes(),
        0o600,
    );
    g.import(&s(&rev_file));
    // signing only: no encryption subkey
    g.ok(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "SignOnly <signonly@x.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    assert!(g.key_info("signonly@x.invalid").1.is_empty());
    let keyring = env.p("keyring.gpg");
    g.ok(&["--output", &s(&keyring), "--export"]);
    // gpg itself agrees the three are unusable
    let listing =
        String::from_utf8_lossy(&g.ok(&["--with-colons", "--list-keys"]).stdout).into_owned();
    assert!(
        listing.lines().any(|l| l.starts_with("pub:e:")),
        "{listing}"
    );
    assert!(
        listing.lines().any(|l| l.starts_with("pub:r:")),
        "{listing}"
    );

    // the product reads only the keyring file (GnuPG home left empty)
    let empty = Gpg::new(&env, "gnupg-empty");
    let src = source(&env);
    let dest = env.p("dest");
    for (who, reason) in [
        ("expired@x.invalid", "expired"),
        ("revoked@x.invalid", "revoked"),
        ("signonly@x.invalid", "encryption"),
    ] {
        let o = sc(
            &env,
            &empty,
            &[
                "backup",
                "--source",
                &s(&src),
                "--dest",
                &s(&dest),
                "--keyring",
                &s(&keyring),
                "-r",
                who,
            ],
        );
        assert_eq!(code(&o), 4, "{who}");
        let err = stderr(&o);
        assert!(err.contains(reason), "{who}: reason {reason:?} in {err}");
        assert!(archives(&dest).is_empty(), "{who}: nothing written");
    }
    // the revoked one also by fingerprint
    let o = sc(
        &env,
        &empty,
        &[
            "backup",
            "--source",
            &s(&src),
            "--dest",
            &s(&dest),
            "--keyring",
            &s(&keyring),
            "-r",
            &rev_fpr,
        ],
    );
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("revoked"));
}

// 7 ─────────────────────────────────────────────────────────────────────────

#[test]
fn age_and_openpgp_recipients_mixed_is_a_usage_error() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    let src = source(&env);
    let dest = env.p("dest");
    let base = [
        "backup".to_owned(),
        "--source".into(),
        s(&src),
        "--dest".into(),
        s(&dest),
        "--keyring".into(),
        key_path(PUB),
    ];
    let mut args: Vec<String> = base.to_vec();
    args.extend(["-r".into(), age_recipient(), "-r".into(), key_id()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = sc(&env, &g, &args);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("mixed"), "{}", stderr(&o));
    // the same from the environment, and with a certificate file
    let both = format!("{},{}", age_recipient(), key_path(PUB));
    let args: Vec<&str> = base.iter().map(String::as_str).collect();
    let o = sc_env(&env, &g, &[("SECURECLAW_BACKUP_KEY", &both)], &args);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("mixed"));
    assert!(archives(&dest).is_empty());
}

// 8 ─────────────────────────────────────────────────────────────────────────

#[test]
fn rotation_across_formats_and_back() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    g.import(&key_path(PUB));
    g.import(&key_path(SEC));
    let (_, subs) = g.key_info(&key_id());
    // the product's GnuPG home holds no secret key: gpg-agent cannot help it
    // (an OpenPGP archive is opened only by the identity files given)
    let p = Gpg::new(&env, "gnupg-product");
    let src = source(&env);
    let dest = env.p("dest");
    let age_key = key_path("age-example.key");
    let pgp = ["--keyring".to_owned(), key_path(PUB), "-r".into(), key_id()];
    let pgp: Vec<&str> = pgp.iter().map(String::as_str).collect();
    for t in ["daily", "weekly"] {
        let a = backup(&env, &p, &src, &dest, t, &["-r", &age_recipient()]);
        assert_archive_name(&a, t, ".tar.gz.age");
    }
    let pa = backup(&env, &p, &src, &dest, "pre-deploy", &pgp);
    assert_archive_name(&pa, "pre-deploy", ".tar.gz.gpg");
    assert_eq!(archives(&dest).len(), 3);

    // age + OpenPGP → OpenPGP
    let mut args = vec!["rotate", "--dest", dest.to_str().unwrap(), "-i", &age_key];
    let sec = key_path(SEC);
    args.extend_from_slice(&["-i", &sec]);
    args.extend_from_slice(&pgp);
    args.push("--json");
    let o = sc(&env, &p, &args);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["rotate"]["opened"], 3);
    let all = archives(&dest);
    assert_eq!(all.len(), 3);
    let mut want_names = Vec::new();
    for a in &all {
        let n = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            n.ends_with(".tar.gz.gpg"),
            "{n}: the suffix follows the format"
        );
        want_names.push(n.clone());
        want_names.push(format!("{n}.meta"));
        want_names.push(format!("{n}.sha256"));
    }
    want_names.sort();
    assert_eq!(
        names(&dest),
        want_names,
        "old .age files and their sidecars gone, each .meta renamed with its archive"
    );
    for t in ["daily", "weekly", "pre-deploy"] {
        assert!(all.iter().any(|a| a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{t}_"))));
    }
    let want = expected_daily(&src);
    for (i, a) in all.iter().enumerate() {
        assert_eq!(keyless_recipients(&env, &p, a), subs);
        assert_eq!(verify_with(&env, &p, a, &sec), 0, "{}", a.display());
        assert_eq!(verify_with(&env, &p, a, &age_key), 4, "{}", a.display());
        // and stock gpg reads every one of them
        let top = gpg_extract(&g, a, &env.p(&format!("out{i}")));
        let got = contents(snapshot(&top));
        if !a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("weekly_")
        {
            let mut got = got;
            got.remove("manifest.json");
            got.remove("manifest.txt");
            assert_eq!(got, want);
        } else {
            assert!(got.contains_key("workspace/report.md"));
        }
    }

    // OpenPGP → a new age key
    let new_id = age::x25519::Identity::generate();
    let new_key = env.p("new.key");
    write_file(
        &new_key,
        format!("{}\n", new_id.to_string().expose_secret()).as_bytes(),
        0o600,
    );
    let new_rcpt = new_id.to_public().to_string();
    let o = sc(
        &env,
        &p,
        &["rotate", "--dest", &s(&dest), "-i", &sec, "-r", &new_rcpt],
    );
    assert_eq!(code(&o), 0);
    let all = archives(&dest);
    assert_eq!(all.len(), 3);
    let mut want_names = Vec::new();
    for a in &all {
        let n = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(n.ends_with(".tar.gz.age"), "{n}");
        want_names.push(n.clone());
        want_names.push(format!("{n}.meta"));
        want_names.push(format!("{n}.sha256"));
    }
    want_names.sort();
    assert_eq!(names(&dest), want_names);
    for a in &all {
        assert_eq!(verify_with(&env, &p, a, &s(&new_key)), 0);
        assert_eq!(
            verify_with(&env, &p, a, &sec),
            4,
            "the old OpenPGP identity opens nothing"
        );
    }
}

// 9 ─────────────────────────────────────────────────────────────────────────

#[test]
fn pre_restore_snapshot_to_openpgp_recipient_is_read_by_gpg() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    g.import(&key_path(SEC));
    let (_, subs) = g.key_info(&key_id());
    let src = source(&env);
    let a = backup(
        &env,
        &g,
        &src,
        &env.p("dest"),
        "daily",
        &["--keyring", &key_path(PUB), "-r", &key_id()],
    );
    let target = env.p("target");
    make_tree(&target);
    write_file(&target.join("secureclaw.json"), b"{before: true}", 0o600);
    let snaps = env.p("snaps");
    let o = sc(
        &env,
        &g,
        &[
            "restore",
            &s(&a),
            "-i",
            &key_path(SEC),
            "--target",
            &s(&target),
            "--dest",
            &s(&snaps),
            "-r",
            &key_id(),
            "--keyring",
            &key_path(PUB),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(
        fs::read(target.join("secureclaw.json")).unwrap(),
        fs::read(src.join("secureclaw.json")).unwrap()
    );
    let found = archives(&snaps);
    assert_eq!(found.len(), 1);
    assert_archive_name(&found[0], "pre-restore", ".tar.gz.gpg");
    assert_eq!(
        json(&o)["restore"]["snapshot"]["archive"],
        s(&found[0]).as_str()
    );
    assert_eq!(keyless_recipients(&env, &g, &found[0]), subs);
    let top = gpg_extract(&g, &found[0], &env.p("out"));
    assert_eq!(
        fs::read(top.join("secureclaw.json")).unwrap(),
        b"{before: true}"
    );
    assert!(!g.packets(&found[0]).contains(":compressed packet:"));
}

// gpg-agent is for "no identity file given" only ────────────────────────────

/// With `-i` naming only an age identity, an OpenPGP archive must not be
/// opened by gpg-agent behind the operator's back: `rotate --dry-run` would
/// then claim the given (old) identities open archives they do not.
#[test]
fn age_identity_alone_does_not_fall_back_to_gpg_agent() {
    if no_gpg() {
        return;
    }
    let env = Sandbox::new();
    let g = Gpg::new(&env, "gnupg");
    g.import(&key_path(SEC));
    let src = source(&env);
    let a = backup(&env, &g, &src, &env.p("dest"), "daily", &["-r", &key_id()]);
    assert_eq!(verify_with(&env, &g, &a, &key_path("age-example.key")), 4);
}
