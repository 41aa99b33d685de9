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
