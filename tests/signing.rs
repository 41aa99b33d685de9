//! Signed archives against the stock tools: `ssh-keygen -Y verify` accepts
//! our SSH signatures and we accept `ssh-keygen -Y sign`'s; `gpg --verify`
//! accepts our OpenPGP signatures and we accept `gpg --detach-sign`'s; and
//! every refusal (tampered byte, wrong namespace, untrusted key, expired or
//! not yet valid key, another host's key, a missing .sig, a renamed archive)
//! with its exit code. Needs `ssh-keygen` (openssh-client) and `gpg`
//! (scripts/setup installs both); a missing tool fails the test, it is not
//! skipped.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::Utc;
use secureclaw_backup::crypto::PassphraseSource;
use secureclaw_backup::events::Silent;
use secureclaw_backup::manifest::Manifest;
use secureclaw_backup::sign::{self, SigningKey, TrustedSigners};

const NS: &str = "secureclaw-backup";
const ARCHIVE: &str = "daily_20261201_020000.tar.gz.age";

fn run(cmd: &mut Command, stdin: Option<&Path>) -> Output {
    if let Some(p) = stdin {
        cmd.stdin(std::fs::File::open(p).unwrap());
    } else {
        cmd.stdin(Stdio::null());
    }
    cmd.output().unwrap_or_else(|e| {
        panic!("running {cmd:?}: {e} (scripts/setup installs openssh-client and gnupg)")
    })
}

fn ssh_keygen_verify(allowed: &Path, principal: &str, ns: &str, archive: &Path) -> Output {
    run(
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(allowed)
            .args(["-I", principal, "-n", ns, "-s"])
            .arg(sign::sig_path(archive)),
        Some(archive),
    )
}

/// Random-looking "ciphertext" of a few MB, so the stream crosses many writes.
fn write_archive(dir: &Path) -> PathBuf {
    let p = dir.join(ARCHIVE);
    let mut data = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while data.len() < (3 << 20) + 123 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&p, &data).unwrap();
    p
}

/// Signs `archive` the way backup does: the bytes go through the signing
/// writer into a new file, then `<archive>.sig` is written.
fn sign_like_backup(key: &SigningKey, archive: &Path) {
    let data = std::fs::read(archive).unwrap();
    let copy = archive.with_extension("tmp-copy");
    let f = std::fs::File::create(&copy).unwrap();
    let mut w = key.writer(f).unwrap();
    for chunk in data.chunks(64 * 1024 + 7) {
        w.write_all(chunk).unwrap();
    }
    let (f, sig) = w.finish().unwrap();
    drop(f);
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        data,
        "the writer passes the bytes through"
    );
    std::fs::remove_file(&copy).unwrap();
    assert_eq!(sig.bytes, data.len() as u64);
    let p = sign::write_sig(archive, &sig).unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

fn signing_key(
    dir: &Path,
    principal: &str,
) -> (SigningKey, secureclaw_backup::keygen::GeneratedSigning) {
    let g = secureclaw_backup::keygen::generate_signing(dir, principal, None).unwrap();
    let k = SigningKey::from_file(&g.secret_file, &PassphraseSource::new(None), &Silent).unwrap();
    (k, g)
}

fn write_file(p: &Path, text: &str) -> PathBuf {
    std::fs::write(p, text).unwrap();
    p.to_owned()
}

fn trusted(p: &Path) -> TrustedSigners {
    TrustedSigners::load(&[p.to_owned()]).unwrap()
}

fn manifest(host: &str, btype: &str, timestamp: &str) -> Manifest {
    serde_json::from_value(serde_json::json!({
        "format": secureclaw_backup::manifest::FORMAT,
        "version": secureclaw_backup::manifest::VERSION,
        "type": btype,
        "created": "2026-12-01T02:00:00Z",
        "timestamp": timestamp,
        "host": host,
        "tool_version": "test",
        "source": "/x",
        "entries": [],
    }))
    .unwrap()
}

fn ssh_keygen_new_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
            .arg(&key),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_owned())
}

fn ssh_keygen_sign(key: &Path, ns: &str, archive: &Path, extra: &[&str]) {
    let out = run(
        Command::new("ssh-keygen")
            .args(["-Y", "sign", "-f"])
            .arg(key)
            .args(["-n", ns])
            .args(extra)
            .arg(archive),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ssh_keygen_verifies_our_signature() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (key, g) = signing_key(&t.path().join("keys"), "web-1");
    sign_like_backup(&key, &archive);
    let allowed = write_file(
        &t.path().join("allowed_signers"),
        &format!("{}\n", g.allowed_signers),
    );
    let out = ssh_keygen_verify(&allowed, "web-1", NS, &archive);
    assert!(
        out.status.success(),
        "ssh-keygen -Y verify refused our signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("Good \"secureclaw-backup\" signature for web-1"));
    // ssh-keygen refuses it for another principal and another namespace
    assert!(!ssh_keygen_verify(&allowed, "web-2", NS, &archive)
        .status
        .success());
    assert!(!ssh_keygen_verify(&allowed, "web-1", "file", &archive)
        .status
        .success());
    // and so do we (provenance names the key and its principals)
    let v = sign::verify_file(&archive, &trusted(&allowed), Utc::now()).unwrap();
    assert_eq!(v.provenance.fingerprint, g.fingerprint);
    assert!(v.provenance.trusts_host("web-1"));
    assert!(!v.provenance.trusts_host("web-2"));
    assert_eq!(
        v.sha256,
        secureclaw_backup::store::sha256_file(&archive).unwrap()
    );
}

#[test]
fn we_verify_ssh_keygen_signatures() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (key, public) = ssh_keygen_new_key(t.path(), "id_ed25519");
    ssh_keygen_sign(&key, NS, &archive, &[]);
    let allowed = write_file(
        &t.path().join("allowed_signers"),
        &format!("# hosts\n\"web-1,web-2\" namespaces=\"{NS}\" {public}\n"),
    );
    let v = sign::verify_file(&archive, &trusted(&allowed), Utc::now()).unwrap();
    assert!(v.provenance.trusts_host("web-2"));
    let fp = run(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub")),
        None,
    );
    assert!(String::from_utf8_lossy(&fp.stdout).contains(&v.provenance.fingerprint));
    // SHA-256 message hash too (ssh-keygen -O hashalg=sha256)
    std::fs::remove_file(sign::sig_path(&archive)).unwrap();
    ssh_keygen_sign(&key, NS, &archive, &["-O", "hashalg=sha256"]);
    sign::verify_file(&archive, &trusted(&allowed), Utc::now()).unwrap();
    // the key as our signing key: ssh-keygen's private key file loads
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ours = SigningKey::from_file(&key, &PassphraseSource::new(None), &Silent).unwrap();
    assert_eq!(ours.fingerprint(), v.provenance.fingerprint);
}

#[test]
fn passphrase_protected_ssh_keygen_key_signs() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let key = t.path().join("id");
    let out = run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "long passphrase", "-f"])
            .arg(&key),
        None,
    );
    assert!(out.status.success());
    let pf = write_file(&t.path().join("pass"), "long passphrase\n");
    std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let k = SigningKey::from_file(&key, &PassphraseSource::new(Some(pf)), &Silent).unwrap();
    sign_like_backup(&k, &archive);
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = write_file(&t.path().join("allowed"), &format!("web-1 {public}"));
    assert!(ssh_keygen_verify(&allowed, "web-1", NS, &archive)
        .status
        .success());
    let wrong = write_file(&t.path().join("wrong"), "not it\n");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err =
        SigningKey::from_file(&key, &PassphraseSource::new(Some(wrong)), &Silent).unwrap_err();
    assert_eq!(err.kind.exit_code(), 4);
    assert!(!err.message.contains("long passphrase") && !err.message.contains("not it"));
}

#[test]
fn refusals_match_ssh_keygen() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (key, g) = signing_key(&t.path().join("keys"), "web-1");
    sign_like_backup(&key, &archive);
    let public = g.public_key.clone();
    let code = |allowed: &Path| {
        sign::verify_file(&archive, &trusted(allowed), Utc::now())
            .map(|_| 0)
            .unwrap_or_else(|e| e.kind.exit_code())
    };

    // untrusted key: another key in allowed_signers
    let (_, other) = signing_key(&t.path().join("other"), "web-1");
    let a = write_file(
        &t.path().join("a1"),
        &format!("{}\n", other.allowed_signers),
    );
    assert_eq!(code(&a), 5);
    assert!(!ssh_keygen_verify(&a, "web-1", NS, &archive)
        .status
        .success());

    // expired valid-before, not yet valid-after
    let a = write_file(
        &t.path().join("a2"),
        &format!("web-1 valid-before=\"20200101\" {public}\n"),
    );
    assert_eq!(code(&a), 5);
    assert!(!ssh_keygen_verify(&a, "web-1", NS, &archive)
        .status
        .success());
    let a = write_file(
        &t.path().join("a3"),
        &format!("web-1 valid-after=\"20990101\" {public}\n"),
    );
    assert_eq!(code(&a), 5);
    assert!(!ssh_keygen_verify(&a, "web-1", NS, &archive)
        .status
        .success());
    // a window around now works for both
    let a = write_file(
        &t.path().join("a4"),
        &format!("web-1 valid-after=\"20200101\",valid-before=\"20990101Z\" {public}\n"),
    );
    assert_eq!(code(&a), 0);
    assert!(ssh_keygen_verify(&a, "web-1", NS, &archive)
        .status
        .success());

    // namespaces restricted to something else
    let a = write_file(
        &t.path().join("a5"),
        &format!("web-1 namespaces=\"git,file\" {public}\n"),
    );
    assert_eq!(code(&a), 5);
    assert!(!ssh_keygen_verify(&a, "web-1", NS, &archive)
        .status
        .success());

    // cert-authority: refused with a clear error (not silently ignored)
    let a = write_file(
        &t.path().join("a6"),
        &format!("web-1 cert-authority {public}\n"),
    );
    let err = TrustedSigners::load(&[a]).unwrap_err();
    assert_eq!(err.kind.exit_code(), 2);
    assert!(err.message.contains("cert-authority"), "{}", err.message);

    // tampered byte: integrity failure, for ssh-keygen too
    let good = write_file(&t.path().join("good"), &format!("{}\n", g.allowed_signers));
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[1_000_000] ^= 0x40;
    std::fs::write(&archive, &bytes).unwrap();
    let err = sign::verify_file(&archive, &trusted(&good), Utc::now()).unwrap_err();
    assert_eq!(err.kind.exit_code(), 3);
    assert!(err.message.contains(ARCHIVE), "{}", err.message);
    assert!(!ssh_keygen_verify(&good, "web-1", NS, &archive)
        .status
        .success());
    bytes[1_000_000] ^= 0x40;
    std::fs::write(&archive, &bytes).unwrap();
    assert_eq!(code(&good), 0);

    // missing .sig: refused, naming the archive
    std::fs::remove_file(sign::sig_path(&archive)).unwrap();
    let err = sign::verify_file(&archive, &trusted(&good), Utc::now()).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(
        err.message.contains(ARCHIVE) && err.message.contains("no signature"),
        "{}",
        err.message
    );
}

#[test]
fn wrong_namespace_from_ssh_keygen_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (key, public) = ssh_keygen_new_key(t.path(), "k");
    ssh_keygen_sign(&key, "file", &archive, &[]);
    let a = write_file(&t.path().join("a"), &format!("web-1 {public}\n"));
    let err = sign::verify_file(&archive, &trusted(&a), Utc::now()).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("namespace"), "{}", err.message);
}

#[test]
fn binding_refuses_other_hosts_and_renamed_archives() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (key, g) = signing_key(&t.path().join("keys"), "web-1");
    sign_like_backup(&key, &archive);
    let a = write_file(&t.path().join("a"), &format!("{}\n", g.allowed_signers));
    let v = sign::verify_file(&archive, &trusted(&a), Utc::now()).unwrap();
    let p = &v.provenance;
    sign::check_binding(&archive, p, &manifest("web-1", "daily", "20261201_020000")).unwrap();
    // a trusted host's archive restored as another host's
    let err = sign::check_binding(&archive, p, &manifest("db-1", "daily", "20261201_020000"))
        .unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(
        err.message.contains("db-1") && err.message.contains(ARCHIVE),
        "{}",
        err.message
    );
    // an old archive renamed to a newer name (and its .sig with it)
    let renamed = t.path().join("daily_20261202_020000.tar.gz.age");
    std::fs::rename(&archive, &renamed).unwrap();
    std::fs::rename(sign::sig_path(&archive), sign::sig_path(&renamed)).unwrap();
    let v = sign::verify_file(&renamed, &trusted(&a), Utc::now()).unwrap();
    let err = sign::check_binding(
        &renamed,
        &v.provenance,
        &manifest("web-1", "daily", "20261201_020000"),
    )
    .unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("renamed"), "{}", err.message);
    assert!(err.hint.unwrap().contains("daily_20261201_020000"));
}

#[test]
fn keygen_signing_end_to_end_with_ssh_keygen() {
    let t = tempfile::tempdir().unwrap();
    let out_dir = t.path().join("keys");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_secureclaw-backup"))
            .args([
                "--json",
                "keygen",
                "signing",
                "--principal",
                "web-1",
                "--out",
            ])
            .arg(&out_dir)
            .env_remove("SECURECLAW_BACKUP_PASSPHRASE_FILE"),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    let secret = PathBuf::from(doc["secret_file"].as_str().unwrap());
    let line = doc["allowed_signers"].as_str().unwrap().to_owned();
    assert!(
        line.starts_with("web-1 namespaces=\"secureclaw-backup\" ssh-ed25519 AAAA"),
        "{line}"
    );
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // ssh-keygen reads our private key: same public key
    let derived = run(
        Command::new("ssh-keygen").arg("-y").arg("-f").arg(&secret),
        None,
    );
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let derived = String::from_utf8_lossy(&derived.stdout);
    let key_b64 = line.split_whitespace().nth(3).unwrap();
    assert!(derived.contains(key_b64), "{derived} vs {line}");
    // sign with ssh-keygen using our key, verify with ssh-keygen and with us
    let archive = write_archive(t.path());
    ssh_keygen_sign(&secret, NS, &archive, &[]);
    let a = write_file(&t.path().join("allowed_signers"), &format!("{line}\n"));
    assert!(ssh_keygen_verify(&a, "web-1", NS, &archive)
        .status
        .success());
    let v = sign::verify_file(&archive, &trusted(&a), Utc::now()).unwrap();
    assert_eq!(
        v.provenance.fingerprint,
        doc["fingerprint"].as_str().unwrap()
    );
    // human output names the line; a second run refuses to overwrite
    let again = run(
        Command::new(env!("CARGO_BIN_EXE_secureclaw-backup"))
            .args(["keygen", "signing", "--out"])
            .arg(&out_dir),
        None,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

// ---------------------------------------------------------------------------
// OpenPGP

struct Gpg {
    home: PathBuf,
}

impl Gpg {
    fn new(dir: &Path) -> Gpg {
        let home = dir.join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        Gpg { home }
    }
    fn run(&self, args: &[&str]) -> Output {
        run(
            Command::new("gpg")
                .env("GNUPGHOME", &self.home)
                .args([
                    "--batch",
                    "--no-tty",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                ])
                .args(args),
            None,
        )
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "all"])
            .output();
    }
}

/// A v4 OpenPGP key with a signing subkey whose user ID is `web-1`.
fn openpgp_signing_key(dir: &Path) -> (PathBuf, PathBuf, String) {
    use openpgp::cert::{CertBuilder, CipherSuite};
    use openpgp::serialize::SerializeInto;
    use sequoia_openpgp as openpgp;
    let (cert, _) = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC4880)
        .unwrap()
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid("web-1")
        .add_signing_subkey()
        .generate()
        .unwrap();
    let sec = dir.join("signing.sec.asc");
    let public = dir.join("signing.pub.asc");
    std::fs::write(&sec, cert.as_tsk().armored().to_vec().unwrap()).unwrap();
    std::fs::set_permissions(&sec, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&public, cert.armored().to_vec().unwrap()).unwrap();
    (sec, public, cert.fingerprint().to_hex())
}

#[test]
fn gpg_verifies_our_openpgp_signature_and_we_verify_gpgs() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (sec, public, cert_fpr) = openpgp_signing_key(t.path());
    let key = SigningKey::from_file(&sec, &PassphraseSource::new(None), &Silent).unwrap();
    assert_eq!(key.scheme(), sign::Scheme::OpenPgp);
    assert_eq!(key.public_line(), cert_fpr);
    sign_like_backup(&key, &archive);
    let sigtext = std::fs::read_to_string(sign::sig_path(&archive)).unwrap();
    assert!(
        sigtext.starts_with("-----BEGIN PGP SIGNATURE-----"),
        "{sigtext}"
    );

    let gpg = Gpg::new(t.path());
    let imp = gpg.run(&["--import", public.to_str().unwrap()]);
    assert!(
        imp.status.success(),
        "{}",
        String::from_utf8_lossy(&imp.stderr)
    );
    let sig = sign::sig_path(&archive);
    let out = gpg.run(&["--verify", sig.to_str().unwrap(), archive.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "gpg --verify refused our signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Good signature from \"web-1\""));

    // ours: trusted certificates as the signers file
    let signers = trusted(&public);
    let v = sign::verify_file(&archive, &signers, Utc::now()).unwrap();
    assert_eq!(v.provenance.scheme, sign::Scheme::OpenPgp);
    assert_eq!(v.provenance.fingerprint, key.fingerprint());
    assert!(v.provenance.trusts_host("web-1"));
    sign::check_binding(
        &archive,
        &v.provenance,
        &manifest("web-1", "daily", "20261201_020000"),
    )
    .unwrap();
    let err = sign::check_binding(
        &archive,
        &v.provenance,
        &manifest("web-2", "daily", "20261201_020000"),
    )
    .unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);

    // tampered: both refuse
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[12345] ^= 1;
    std::fs::write(&archive, &bytes).unwrap();
    assert!(!gpg
        .run(&["--verify", sig.to_str().unwrap(), archive.to_str().unwrap()])
        .status
        .success());
    assert_eq!(
        sign::verify_file(&archive, &signers, Utc::now())
            .unwrap_err()
            .kind
            .exit_code(),
        3
    );
    bytes[12345] ^= 1;
    std::fs::write(&archive, &bytes).unwrap();

    // gpg's own detached signature, verified by us
    let imp = gpg.run(&["--import", sec.to_str().unwrap()]);
    assert!(
        imp.status.success(),
        "{}",
        String::from_utf8_lossy(&imp.stderr)
    );
    std::fs::remove_file(&sig).unwrap();
    let out = gpg.run(&[
        "--armor",
        "--detach-sign",
        "--output",
        sig.to_str().unwrap(),
        archive.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = sign::verify_file(&archive, &signers, Utc::now()).unwrap();
    assert!(v.provenance.trusts_host("web-1"));

    // a certificate that is not trusted
    let (_, other_pub, _) = {
        let d = t.path().join("other");
        std::fs::create_dir(&d).unwrap();
        openpgp_signing_key(&d)
    };
    let err = sign::verify_file(&archive, &trusted(&other_pub), Utc::now()).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5, "{}", err.message);
    // an SSH allowed_signers file does not trust an OpenPGP signature
    let (_, g) = signing_key(&t.path().join("sshkeys"), "web-1");
    let a = write_file(&t.path().join("a"), &format!("{}\n", g.allowed_signers));
    assert_eq!(
        sign::verify_file(&archive, &trusted(&a), Utc::now())
            .unwrap_err()
            .kind
            .exit_code(),
        5
    );
}

#[test]
fn revoked_openpgp_signer_is_refused_and_expired_key_cannot_sign() {
    use openpgp::cert::{CertBuilder, CipherSuite};
    use openpgp::serialize::SerializeInto;
    use sequoia_openpgp as openpgp;
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (cert, revocation) = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC4880)
        .unwrap()
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid("web-1")
        .add_signing_subkey()
        .generate()
        .unwrap();
    let sec = t.path().join("sec.asc");
    std::fs::write(&sec, cert.as_tsk().armored().to_vec().unwrap()).unwrap();
    std::fs::set_permissions(&sec, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = SigningKey::from_file(&sec, &PassphraseSource::new(None), &Silent).unwrap();
    sign_like_backup(&key, &archive);
    let public = t.path().join("pub.asc");
    std::fs::write(&public, cert.armored().to_vec().unwrap()).unwrap();
    sign::verify_file(&archive, &trusted(&public), Utc::now()).unwrap();
    // the operator revokes the certificate: its signatures are refused
    let (revoked, _) = cert.insert_packets(revocation).unwrap();
    let rpub = t.path().join("revoked.asc");
    std::fs::write(&rpub, revoked.armored().to_vec().unwrap()).unwrap();
    let err = sign::verify_file(&archive, &trusted(&rpub), Utc::now()).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("revoked"), "{}", err.message);

    // a key that expired cannot sign (exit 4)
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86400);
    let (old, _) = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC4880)
        .unwrap()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(past)
        .set_validity_period(std::time::Duration::from_secs(86400))
        .add_userid("web-1")
        .add_signing_subkey()
        .generate()
        .unwrap();
    let osec = t.path().join("old.asc");
    std::fs::write(&osec, old.as_tsk().armored().to_vec().unwrap()).unwrap();
    std::fs::set_permissions(&osec, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = SigningKey::from_file(&osec, &PassphraseSource::new(None), &Silent).unwrap_err();
    assert_eq!(err.kind.exit_code(), 4, "{}", err.message);
}

/// Our reading of `allowed_signers` (principal patterns, negation, quotes,
/// case, restrictions per line) decides as `ssh-keygen -Y verify -I` does.
#[test]
fn principal_decisions_match_ssh_keygen() {
    let t = tempfile::tempdir().unwrap();
    let archive = write_archive(t.path());
    let (key, g) = signing_key(&t.path().join("keys"), "web-1");
    sign_like_backup(&key, &archive);
    let k = g.public_key.clone();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("web-*,!web-9 {k}"),
            vec!["web-1", "web-9", "db-1", "web-"],
        ),
        (
            format!("\"web 1,db-?\" {k}"),
            vec!["web 1", "web", "db-2", "db-22"],
        ),
        (
            format!("*.example {k}"),
            vec!["a.example", "example", "a.b.example"],
        ),
        (format!("WEB-1 {k}"), vec!["web-1", "WEB-1"]),
        (
            format!(
                "web-1 valid-before=\"20200101\" {k}\nweb-2 namespaces=\"secureclaw-backup\" {k}"
            ),
            vec!["web-1", "web-2"],
        ),
        (
            format!("web-1 namespaces=\"git\" {k}\n# c\nweb-3 namespaces=\"secure*\" {k}"),
            vec!["web-1", "web-3"],
        ),
        (format!("!web-1,* {k}"), vec!["web-1", "web-2"]),
    ];
    for (i, (text, principals)) in cases.iter().enumerate() {
        let a = write_file(&t.path().join(format!("allowed{i}")), &format!("{text}\n"));
        for p in principals {
            let theirs = ssh_keygen_verify(&a, p, NS, &archive).status.success();
            let ours = sign::verify_file(&archive, &trusted(&a), Utc::now())
                .map(|v| v.provenance.trusts_host(p))
                .unwrap_or(false);
            assert_eq!(
                ours, theirs,
                "allowed_signers {text:?}, principal {p:?}: ssh-keygen says {theirs}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// End to end through the binary: backup --sign-key, and every reader with
// --signers (restore, verify, drill, rotate, list, status, push + tier
// verify, prune), the refusals leaving the target exactly as it was.

mod common;

/// A sandbox with a data directory, this host's signing key (made by
/// `keygen signing`), an `allowed_signers` file trusting it, the example
/// age key pair (an owner-only copy of the identity) and a destination.
struct E2e {
    sb: common::Sandbox,
    host: String,
    key: PathBuf,
    signers: PathBuf,
    line: String,
    identity: PathBuf,
    recipient: String,
    dest: PathBuf,
}

impl E2e {
    fn new() -> E2e {
        let sb = common::Sandbox::new();
        let host = secureclaw_backup::keygen::host_name();
        common::make_tree(&sb.p("src"));
        let identity = sb.p("age.key");
        std::fs::copy(common::example_key("age-example.key"), &identity).unwrap();
        std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (key, line) = keygen(&sb, &host, "keys");
        let signers = write_file(&sb.p("allowed_signers"), &format!("{line}\n"));
        E2e {
            host,
            key,
            signers,
            line,
            identity,
            recipient: common::age_recipient(),
            dest: sb.p("dest"),
            sb,
        }
    }
    fn run(&self, args: &[&str]) -> common::Out {
        let o = self.sb.run(args);
        eprintln!("$ {}\n{}exit {}", args.join(" "), o.text(), o.code);
        o
    }
    fn s<'a>(&self, p: &'a Path) -> &'a str {
        common::s(p)
    }
    /// A signed daily backup (no retention: the tests keep several per day).
    fn backup_with(&self, key: &Path) -> PathBuf {
        let o = self.run(&[
            "--json",
            "backup",
            "--source",
            self.s(&self.sb.p("src")),
            "--dest",
            self.s(&self.dest),
            "-r",
            &self.recipient,
            "--sign-key",
            self.s(key),
            "--no-prune",
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        let doc = o.json();
        let archive = PathBuf::from(doc["backup"]["archive"].as_str().unwrap());
        assert_eq!(
            doc["backup"]["signature"].as_str().unwrap(),
            sign::sig_path(&archive).to_str().unwrap()
        );
        archive
    }
    fn backup(&self) -> PathBuf {
        self.backup_with(&self.key)
    }
    /// `restore ARCHIVE --signers` into the watched target (with a
    /// pre-restore snapshot into the destination).
    fn restore(&self, archive: &str, extra: &[&str]) -> common::Out {
        let target = self.sb.target();
        let mut args = vec![
            "restore",
            archive,
            "--target",
            self.s(&target),
            "--dest",
            self.s(&self.dest),
            "-i",
            self.s(&self.identity),
            "-r",
            &self.recipient,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// `keygen signing --principal P --out DIR`: the secret key and the
/// `allowed_signers` line.
fn keygen(sb: &common::Sandbox, principal: &str, dir: &str) -> (PathBuf, String) {
    let o = sb.run(&[
        "--json",
        "keygen",
        "signing",
        "--principal",
        principal,
        "--out",
        common::s(&sb.p(dir)),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let doc = o.json();
    (
        PathBuf::from(doc["secret_file"].as_str().unwrap()),
        doc["allowed_signers"].as_str().unwrap().to_owned(),
    )
}

/// A forged archive, made the way anyone who knows the public recipient
/// can: `tar czf - DIR | age -r RECIPIENT > FILE`, with an executable hook.
fn forge(e: &E2e, name: &str) -> PathBuf {
    let parent = e.sb.p("forged");
    let dir = parent.join(".secureclaw");
    common::make_tree(&dir);
    common::write_file(
        &dir.join("hooks/evil.sh"),
        b"#!/bin/sh\ntouch /tmp/pwned\n",
        0o755,
    );
    std::fs::create_dir_all(&e.dest).unwrap();
    let out = e.dest.join(name);
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar czf - -C '{}' .secureclaw | age -r '{}' > '{}'",
            parent.display(),
            e.recipient,
            out.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Copies an archive and its `.sig` under another name in the same directory.
fn copy_as(archive: &Path, name: &str) -> PathBuf {
    let to = archive.with_file_name(name);
    std::fs::copy(archive, &to).unwrap();
    std::fs::copy(sign::sig_path(archive), sign::sig_path(&to)).unwrap();
    to
}

#[test]
fn backup_sign_key_makes_a_sig_stock_ssh_keygen_accepts() {
    let e = E2e::new();
    let a = e.backup();
    let sig = sign::sig_path(&a);
    assert_eq!(
        std::fs::metadata(&sig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v = ssh_keygen_verify(&e.signers, &e.host, NS, &a);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // ours agrees, over the archive as written (one pass while streaming)
    let ok = e.run(&[
        "verify",
        e.s(&a),
        "--signers",
        e.s(&e.signers),
        "-i",
        e.s(&e.identity),
    ]);
    assert_eq!(ok.code, 0, "{}", ok.text());
    assert!(ok.stderr.contains("signed by SHA256:"), "{}", ok.text());
    // the environment variable names the key as well
    let o = run_cmd_env(
        &e,
        &[
            "--json",
            "backup",
            "--source",
            e.s(&e.sb.p("src")),
            "--dest",
            e.s(&e.dest),
            "-r",
            &e.recipient,
            "--no-prune",
        ],
        &[("SECURECLAW_BACKUP_SIGNING_KEY", e.s(&e.key))],
    );
    assert_eq!(o.code, 0, "{}", o.text());
    let b = PathBuf::from(o.json()["backup"]["archive"].as_str().unwrap());
    assert!(ssh_keygen_verify(&e.signers, &e.host, NS, &b)
        .status
        .success());
    // a wrong key file stops the run before anything is written
    let before = std::fs::read_dir(&e.dest).unwrap().count();
    let bad = e.run(&[
        "backup",
        "--source",
        e.s(&e.sb.p("src")),
        "--dest",
        e.s(&e.dest),
        "-r",
        &e.recipient,
        "--sign-key",
        e.s(&e.signers),
    ]);
    assert_eq!(bad.code, 4, "{}", bad.text());
    assert_eq!(std::fs::read_dir(&e.dest).unwrap().count(), before);
}

fn run_cmd_env(e: &E2e, args: &[&str], env: &[(&str, &str)]) -> common::Out {
    let mut c = e.sb.cmd();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = common::run_cmd(&mut c);
    eprintln!("$ {}\n{}exit {}", args.join(" "), o.text(), o.code);
    o
}

#[test]
fn restore_with_signers_refuses_forged_renamed_foreign_tampered_and_unsigned_archives() {
    let e = E2e::new();
    let good = e.backup();
    let target = e.sb.target();
    common::populate_target(&target);
    let before = common::snapshot(&target);
    let signers = e.s(&e.signers).to_owned();
    // another key, trusted only for another host, signing an archive of ours
    let (other_key, other_line) = keygen(&e.sb, "other-host", "keys2");
    let both = write_file(
        &e.sb.p("both_signers"),
        &format!("{}\n{other_line}\n", e.line),
    );
    let foreign = e.backup_with(&other_key);
    // a key nobody trusts, signing a forged archive
    let (untrusted, _) = ssh_keygen_new_key(&e.sb.p(""), "untrusted");
    let forged_signed = forge(&e, "daily_20261201_030000.tar.gz.age");
    ssh_keygen_sign(&untrusted, NS, &forged_signed, &[]);
    let forged = forge(&e, "daily_20261201_040000.tar.gz.age");
    // an old archive renamed to a newer name, with its (valid) signature
    let renamed = copy_as(&good, "daily_20991231_235959.tar.gz.age");
    // one byte changed after signing
    let tampered = copy_as(&good, "daily_20261201_050000.tar.gz.age");
    let mut bytes = std::fs::read(&tampered).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&tampered, &bytes).unwrap();
    // the .sig missing
    let unsigned = copy_as(&good, "daily_20261201_060000.tar.gz.age");
    std::fs::remove_file(sign::sig_path(&unsigned)).unwrap();

    let cases: Vec<(&str, &Path, &str, i32, &str)> = vec![
        ("forged, no .sig", &forged, &signers, 5, "has no signature"),
        (
            "forged, signed by an untrusted key",
            &forged_signed,
            &signers,
            5,
            "not a trusted signer",
        ),
        ("renamed old archive", &renamed, &signers, 5, "renamed"),
        (
            "signed by another host's key",
            &foreign,
            e.s(&both),
            5,
            "was made on host",
        ),
        ("a tampered byte", &tampered, &signers, 3, "does not match"),
        ("a missing .sig", &unsigned, &signers, 5, ".sig is missing"),
    ];
    let snapshots = |d: &Path| -> usize {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|x| x.file_name().to_string_lossy().starts_with("pre-restore_"))
            .count()
    };
    for (what, archive, signers, code, msg) in &cases {
        for dry in [false, true] {
            let mut extra = vec!["--signers", signers];
            if dry {
                extra.push("--dry-run");
            }
            let o = e.restore(e.s(archive), &extra);
            assert_eq!(o.code, *code, "{what}: {}", o.text());
            assert!(o.stderr.contains(msg), "{what}: {}", o.text());
            assert!(
                o.stderr.contains(&name_of(archive)),
                "{what}: the archive is named: {}",
                o.text()
            );
            let after = common::snapshot(&target);
            assert!(
                before == after,
                "{what}: the target changed:\n{}",
                common::diff(&before, &after)
            );
            assert_eq!(snapshots(&e.dest), 0, "{what}: no snapshot was taken");
        }
    }
    // the real archive restores, and its signature is named in the plan
    let o = e.restore(e.s(&good), &["--signers", &signers, "--json"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let checked = o.json()["restore"]["checked"].to_string();
    assert!(
        checked.contains("signature by a trusted signer"),
        "{checked}"
    );
    assert!(common::snapshot(&target) != before);
    // SECURECLAW_BACKUP_SIGNERS: the same refusal
    let mut c = e.sb.cmd();
    c.args([
        "restore",
        e.s(&forged),
        "--target",
        e.s(&target),
        "-i",
        e.s(&e.identity),
        "--no-snapshot",
    ])
    .env("SECURECLAW_BACKUP_SIGNERS", &signers);
    let o = common::run_cmd(&mut c);
    assert_eq!(o.code, 5, "{}", o.text());
}

#[test]
fn verify_and_drill_with_signers_refuse_before_decrypting() {
    let e = E2e::new();
    let good = e.backup();
    let forged = forge(&e, "daily_20991231_120000.tar.gz.age");
    let renamed = copy_as(&good, "daily_20991231_235959.tar.gz.age");
    let signers = e.s(&e.signers).to_owned();
    let id = e.s(&e.identity).to_owned();
    // keyless: a machine with no secret at all checks provenance
    let o = e.run(&["verify", e.s(&forged), "--signers", &signers]);
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(o.stderr.contains(&name_of(&forged)), "{}", o.text());
    let o = e.run(&["--json", "verify", e.s(&good), "--signers", &signers]);
    assert_eq!(o.code, 0, "{}", o.text());
    let doc = o.json();
    assert_eq!(doc["verified"][0]["signature"]["principals"][0][0], e.host);
    // without a key the renamed one cannot be bound: it passes, and says so
    let o = e.run(&["verify", e.s(&renamed), "--signers", &signers]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stderr.contains("were not compared with the name"),
        "{}",
        o.text()
    );
    // with a key it is refused
    for a in [&forged, &renamed] {
        let o = e.run(&["verify", e.s(a), "--signers", &signers, "-i", &id]);
        assert_eq!(o.code, 5, "{}", o.text());
    }
    // drill: the forged archive is refused, nothing is left in the scratch
    let scratch = e.sb.p("scratch");
    for a in [&forged, &renamed] {
        let o = e.run(&[
            "drill",
            "--dest",
            e.s(&e.dest),
            "--archive",
            e.s(a),
            "-i",
            &id,
            "--scratch",
            e.s(&scratch),
            "--signers",
            &signers,
        ]);
        assert_eq!(o.code, 5, "{}", o.text());
        assert_eq!(
            std::fs::read_dir(&scratch).map(|r| r.count()).unwrap_or(0),
            0
        );
    }
    // drill's default with signers: the newest archive with a valid
    // signature (the renamed one would be it, and be refused: see
    // restore_latest_…)
    std::fs::remove_file(&renamed).unwrap();
    let o = e.run(&[
        "drill",
        "--dest",
        e.s(&e.dest),
        "-i",
        &id,
        "--scratch",
        e.s(&scratch),
        "--signers",
        &signers,
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stdout.contains(&name_of(&good)) || o.stderr.contains(&name_of(&good)),
        "{}",
        o.text()
    );
    assert!(o.stderr.contains("passed over"), "{}", o.text());
}

#[test]
fn without_signers_a_notice_says_provenance_was_not_checked() {
    let e = E2e::new();
    let forged = forge(&e, "daily_20261201_040000.tar.gz.age");
    let o = e.run(&["verify", e.s(&forged)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.stderr.contains("provenance not checked"), "{}", o.text());
    let o = e.restore(e.s(&forged), &["--dry-run"]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(
        o.stderr.matches("provenance not checked").count(),
        1,
        "{}",
        o.text()
    );
    // an informational line: -q hides it
    let o = e.run(&["-q", "verify", e.s(&forged)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(!o.text().contains("provenance not checked"), "{}", o.text());
}

#[test]
fn restore_latest_with_signers_takes_the_newest_validly_signed_archive() {
    let e = E2e::new();
    let good = e.backup();
    // newer, but forged (no .sig) and renamed (valid .sig, wrong name)
    let forged = forge(&e, "daily_20991231_120000.tar.gz.age");
    let renamed = copy_as(&good, "daily_20991231_000000.tar.gz.age");
    let o = e.restore("latest", &["--signers", e.s(&e.signers), "--dry-run"]);
    // a renamed archive's signature is valid (its bytes are unchanged), so
    // latest picks it, and the binding refuses it before anything changes
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(o.stderr.contains(&name_of(&renamed)), "{}", o.text());
    assert!(
        o.stderr
            .contains(&format!("{}: passed over", name_of(&forged))),
        "{}",
        o.text()
    );
    std::fs::remove_file(&renamed).unwrap();
    let o = e.restore("latest", &["--signers", e.s(&e.signers), "--dry-run"]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.stdout.contains(&name_of(&good)), "{}", o.text());
    // without signers, latest is the newest by name: the forged one
    let o = e.restore("latest", &["--dry-run"]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.stdout.contains(&name_of(&forged)), "{}", o.text());
}

#[test]
fn rotate_with_signers_resigns_with_a_trusted_key_and_refuses_forgeries() {
    let e = E2e::new();
    let a = e.backup();
    let forged = forge(&e, "daily_20261201_040000.tar.gz.age");
    let signers = e.s(&e.signers).to_owned();
    let new_recipient = common::example_key("ssh-example.pub");
    let new_r = std::fs::read_to_string(&new_recipient)
        .unwrap()
        .trim()
        .to_owned();
    let base = [
        "rotate",
        "--dest",
        e.s(&e.dest),
        "-i",
        e.s(&e.identity),
        "-r",
        &new_r,
        "--signers",
        &signers,
    ];
    let listing = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|x| {
                (
                    x.file_name().to_string_lossy().into_owned(),
                    std::fs::read(x.path()).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = listing(&e.dest);
    // with signers, no signing key: refused before anything changes
    let o = e.run(&base);
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(o.stderr.contains("no signing key"), "{}", o.text());
    assert!(listing(&e.dest) == before);
    // a signing key that is no trusted signer: refused too
    let (other, _) = keygen(&e.sb, &e.host, "keys3");
    let mut args = base.to_vec();
    args.extend(["--sign-key", e.s(&other)]);
    let o = e.run(&args);
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(o.stderr.contains("is not a trusted signer"), "{}", o.text());
    assert!(listing(&e.dest) == before);
    // the trusted key: the real archive is re-encrypted and re-signed, the
    // forged one is refused and left as it was
    let forged_bytes = std::fs::read(&forged).unwrap();
    let old_sig = std::fs::read(sign::sig_path(&a)).unwrap();
    let mut args = base.to_vec();
    args.extend(["--sign-key", e.s(&e.key)]);
    let o = e.run(&args);
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(o.stdout.contains("REFUSED"), "{}", o.text());
    assert_eq!(std::fs::read(&forged).unwrap(), forged_bytes);
    let new_sig = std::fs::read(sign::sig_path(&a)).unwrap();
    assert_ne!(new_sig, old_sig, "a new signature over the new bytes");
    let v = ssh_keygen_verify(&e.signers, &e.host, NS, &a);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // and ours accepts it too
    let o = e.run(&["verify", e.s(&a), "--signers", &signers]);
    assert_eq!(o.code, 0, "{}", o.text());
}

#[test]
fn rotate_without_a_signing_key_removes_the_stale_signature() {
    let e = E2e::new();
    let a = e.backup();
    let new_r = std::fs::read_to_string(common::example_key("ssh-example.pub"))
        .unwrap()
        .trim()
        .to_owned();
    let o = e.run(&[
        "rotate",
        "--dest",
        e.s(&e.dest),
        "-i",
        e.s(&e.identity),
        "-r",
        &new_r,
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        !sign::sig_path(&a).exists(),
        "a .sig over the old bytes would be refused as tampering"
    );
}

#[test]
fn list_and_status_show_signatures() {
    let e = E2e::new();
    let good = e.backup();
    let signers = e.s(&e.signers).to_owned();
    let o = e.run(&[
        "--json",
        "list",
        "--dest",
        e.s(&e.dest),
        "--signers",
        &signers,
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let doc = o.json();
    assert_eq!(doc["archives"][0]["signature"]["state"], "valid");
    assert_eq!(
        doc["archives"][0]["signature"]["principals"],
        e.host.as_str()
    );
    // without signers: present, with the key it names (not trusted)
    let o = e.run(&["--json", "list", "--dest", e.s(&e.dest)]);
    let doc = o.json();
    assert_eq!(doc["archives"][0]["signature"]["state"], "present");
    assert!(doc["archives"][0]["signature"]["signer"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
    let o = e.run(&["status", "--dest", e.s(&e.dest), "--signers", &signers]);
    assert_eq!(o.code, 0, "{}", o.text());
    // a newer unsigned archive: listed as such, a problem for status
    let forged = forge(&e, "daily_20991231_000000.tar.gz.age");
    let o = e.run(&["list", "--dest", e.s(&e.dest), "--signers", &signers]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stderr.contains("no valid signature by a trusted signer"),
        "{}",
        o.text()
    );
    assert!(o.stderr.contains(&name_of(&forged)), "{}", o.text());
    let o = e.run(&[
        "--json",
        "status",
        "--dest",
        e.s(&e.dest),
        "--signers",
        &signers,
    ]);
    assert_ne!(o.code, 0, "{}", o.text());
    let problems = o.json()["problems"].to_string();
    assert!(
        problems.contains("not signed by a trusted signer"),
        "{problems}"
    );
    // a signature over other bytes is invalid
    std::fs::copy(sign::sig_path(&good), sign::sig_path(&forged)).unwrap();
    let o = e.run(&[
        "--json",
        "list",
        "--dest",
        e.s(&e.dest),
        "--signers",
        &signers,
    ]);
    let doc = o.json();
    assert_eq!(doc["archives"][0]["signature"]["state"], "invalid");
}

#[test]
fn push_carries_sig_and_meta_and_tier_verify_checks_the_sig() {
    let e = E2e::new();
    let a = e.backup();
    let name = name_of(&a);
    let nas = e.sb.p("nas");
    std::fs::create_dir(&nas).unwrap();
    let cfg = write_file(
        &e.sb.p("config.toml"),
        &format!("[[tier]]\nname = \"nas\"\nurl = \"{}\"\n", nas.display()),
    );
    let o = e.run(&["push", "--dest", e.s(&e.dest), "--config", e.s(&cfg)]);
    assert_eq!(o.code, 0, "{}", o.text());
    for c in [".sha256", ".sig", ".meta"] {
        assert_eq!(
            std::fs::read(nas.join(format!("{name}{c}"))).unwrap(),
            std::fs::read(e.dest.join(format!("{name}{c}"))).unwrap(),
            "{c}"
        );
    }
    let verify_tier = || {
        e.run(&[
            "verify",
            "--tier",
            "nas",
            &name,
            "--config",
            e.s(&cfg),
            "--signers",
            e.s(&e.signers),
        ])
    };
    let o = verify_tier();
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.stderr.contains("signed by"), "{}", o.text());
    // the tier's listing says the copy is signed (names only: not checked)
    let doc = e
        .run(&["--json", "list", "--tier", "nas", "--config", e.s(&cfg)])
        .json();
    assert_eq!(doc["archives"][0]["signature"]["state"], "present", "{doc}");
    // the tier's .sig replaced by an untrusted key's: refused
    let (untrusted, _) = ssh_keygen_new_key(&e.sb.p(""), "untrusted");
    let copy = e.sb.p("copy").join(&name);
    std::fs::create_dir(e.sb.p("copy")).unwrap();
    std::fs::copy(&a, &copy).unwrap();
    ssh_keygen_sign(&untrusted, NS, &copy, &[]);
    std::fs::copy(sign::sig_path(&copy), nas.join(format!("{name}.sig"))).unwrap();
    let o = verify_tier();
    assert_eq!(o.code, 5, "{}", o.text());
    // the next push repairs it from the local copy
    let o = e.run(&["push", "--dest", e.s(&e.dest), "--config", e.s(&cfg)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(verify_tier().code, 0);
    // the tier's .sig removed: refused as unsigned
    std::fs::remove_file(nas.join(format!("{name}.sig"))).unwrap();
    let o = verify_tier();
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(o.stderr.contains("has no signature"), "{}", o.text());
}

#[test]
fn prune_removes_the_companions_with_their_archive() {
    let e = E2e::new();
    let old = e.backup();
    e.backup();
    // the newest one kept: the older goes with its .sha256, .sig and .meta
    let o = e.run(&["prune", "--dest", e.s(&e.dest), "--keep-last", "1"]);
    assert_eq!(o.code, 0, "{}", o.text());
    for c in ["", ".sha256", ".sig", ".meta"] {
        let p = PathBuf::from(format!("{}{c}", old.display()));
        assert!(!p.exists(), "{} is gone", p.display());
    }
    let left: Vec<String> = std::fs::read_dir(&e.dest)
        .unwrap()
        .flatten()
        .map(|x| x.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(
        left.len(),
        4,
        "one archive and its three companions: {left:?}"
    );
    // listed with it, not as unrecognised
    let doc = e.run(&["--json", "list", "--dest", e.s(&e.dest)]).json();
    assert_eq!(doc["unrecognised"].as_array().unwrap().len(), 0, "{doc}");
    assert_eq!(doc["orphan_sidecars"].as_array().unwrap().len(), 0, "{doc}");
}

#[test]
fn the_configuration_names_the_signing_key_and_the_signers() {
    let e = E2e::new();
    // relative to the configuration file's directory
    let dir = e.sb.p("cfg");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&e.signers, dir.join("allowed_signers")).unwrap();
    let cfg = write_file(
        &dir.join("config.toml"),
        &format!(
            "[signing]\nkey = \"{}\"\nsigners = \"allowed_signers\"\n",
            e.key.display()
        ),
    );
    let o = e.run(&[
        "--json",
        "backup",
        "--source",
        e.s(&e.sb.p("src")),
        "--dest",
        e.s(&e.dest),
        "-r",
        &e.recipient,
        "--config",
        e.s(&cfg),
        "--no-prune",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let a = PathBuf::from(o.json()["backup"]["archive"].as_str().unwrap());
    assert!(sign::sig_path(&a).exists());
    let forged = forge(&e, "daily_20261201_040000.tar.gz.age");
    let o = e.run(&["verify", e.s(&forged), "--config", e.s(&cfg)]);
    assert_eq!(o.code, 5, "{}", o.text());
    let o = e.run(&["verify", e.s(&a), "--config", e.s(&cfg)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(!o.stderr.contains("provenance not checked"), "{}", o.text());
    // an unknown key in [signing] is a usage error
    let bad = write_file(&dir.join("bad.toml"), "[signing]\nsigner = \"x\"\n");
    let o = e.run(&["verify", e.s(&a), "--config", e.s(&bad)]);
    assert_eq!(o.code, 2, "{}", o.text());
}

#[test]
fn ls_and_diff_with_signers_refuse_unsigned_archives() {
    let e = E2e::new();
    let good = e.backup();
    let forged = forge(&e, "daily_20261201_040000.tar.gz.age");
    let renamed = copy_as(&good, "daily_20991231_235959.tar.gz.age");
    let signers = e.s(&e.signers).to_owned();
    let id = e.s(&e.identity).to_owned();
    for a in [&forged, &renamed] {
        let o = e.run(&["ls", e.s(a), "-i", &id, "--signers", &signers]);
        assert_eq!(o.code, 5, "{}", o.text());
        assert!(o.stderr.contains(&name_of(a)), "{}", o.text());
        let o = e.run(&["diff", e.s(&good), e.s(a), "-i", &id, "--signers", &signers]);
        assert_eq!(o.code, 5, "{}", o.text());
    }
    let o = e.run(&["ls", e.s(&good), "-i", &id, "--signers", &signers]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.stdout.contains("secureclaw.json"), "{}", o.text());
    // without signers: as before, with the notice
    let o = e.run(&["ls", e.s(&forged), "-i", &id]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.stderr.contains("provenance not checked"), "{}", o.text());
}

#[test]
fn incremental_links_are_signed_and_a_chain_is_trusted_only_if_every_link_is() {
    let e = E2e::new();
    let inc = |e: &E2e| -> PathBuf {
        let o = e.run(&[
            "--json",
            "backup",
            "--incremental",
            "--source",
            e.s(&e.sb.p("src")),
            "--dest",
            e.s(&e.dest),
            "-r",
            &e.recipient,
            "--sign-key",
            e.s(&e.key),
            "--no-prune",
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        PathBuf::from(o.json()["backup"]["archive"].as_str().unwrap())
    };
    let full = inc(&e);
    common::write_file(&e.sb.p("src/credentials/new.json"), b"{\"n\":1}", 0o600);
    let link = inc(&e);
    assert_ne!(full, link);
    for a in [&full, &link] {
        let v = ssh_keygen_verify(&e.signers, &e.host, NS, a);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
    let signers = e.s(&e.signers).to_owned();
    let o = e.restore(e.s(&link), &["--signers", &signers, "--dry-run"]);
    assert_eq!(o.code, 0, "{}", o.text());
    // the full's signature gone: the chain is refused, before decrypting
    let target = e.sb.target();
    common::populate_target(&target);
    let before = common::snapshot(&target);
    let sig = sign::sig_path(&full);
    let saved = std::fs::read(&sig).unwrap();
    std::fs::remove_file(&sig).unwrap();
    let o = e.restore(e.s(&link), &["--signers", &signers]);
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(o.stderr.contains(&name_of(&full)), "{}", o.text());
    assert!(common::snapshot(&target) == before);
    // the full signed by an untrusted key: refused too
    let (untrusted, _) = ssh_keygen_new_key(&e.sb.p(""), "untrusted");
    ssh_keygen_sign(&untrusted, NS, &full, &[]);
    let o = e.restore(e.s(&link), &["--signers", &signers]);
    assert_eq!(o.code, 5, "{}", o.text());
    assert!(common::snapshot(&target) == before);
    let o = e.run(&["verify", e.s(&link), "--signers", &signers]);
    assert_eq!(o.code, 5, "{}", o.text());
    // restored: the chain restores, and restore --sign-key signs the
    // pre-restore snapshot of the tree it replaces
    std::fs::write(&sig, saved).unwrap();
    let o = e.restore(
        e.s(&link),
        &["--signers", &signers, "--sign-key", e.s(&e.key), "--json"],
    );
    assert_eq!(o.code, 0, "{}", o.text());
    let snap = PathBuf::from(o.json()["restore"]["snapshot"]["archive"].as_str().unwrap());
    let v = ssh_keygen_verify(&e.signers, &e.host, NS, &snap);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}
