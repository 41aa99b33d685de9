use super::*;
use crate::events::Silent;
use chrono::TimeZone;

fn key(seed: u8) -> SigningKey {
    let k = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]));
    SigningKey::from_ssh(k, Path::new("test-key")).unwrap()
}

fn signers(text: &str) -> TrustedSigners {
    TrustedSigners::from_allowed(AllowedSigners::parse(text, Path::new("allowed_signers")).unwrap())
}

fn sign_bytes(k: &SigningKey, data: &[u8]) -> ArchiveSignature {
    let mut w = k.writer(Vec::new()).unwrap();
    for chunk in data.chunks(7) {
        w.write_all(chunk).unwrap();
    }
    let (out, sig) = w.finish().unwrap();
    assert_eq!(out, data);
    assert_eq!(sig.bytes, data.len() as u64);
    sig
}

fn check(sig: &ArchiveSignature, data: &[u8], s: &TrustedSigners) -> Result<Provenance> {
    let mut c = SigCheck::new(
        Path::new("daily_20261201_020000.tar.gz.age"),
        sig.armored.as_bytes(),
        s,
        Utc::now(),
    )?;
    c.update(data);
    c.finish()
}

#[test]
fn streaming_signature_verifies_and_detects_tampering() {
    let k = key(1);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let sig = sign_bytes(&k, &data);
    assert_eq!(sig.scheme, Scheme::Ssh);
    let s = signers(&format!("web-1,*.example {}\n", k.public_line()));
    let p = check(&sig, &data, &s).unwrap();
    assert_eq!(p.fingerprint, k.fingerprint());
    assert!(p.fingerprint.starts_with("SHA256:"));
    assert!(p.trusts_host("web-1"));
    assert!(p.trusts_host("db.example"));
    assert!(!p.trusts_host("web-2"));
    let mut bad = data.clone();
    bad[5000] ^= 1;
    let err = check(&sig, &bad, &s).unwrap_err();
    assert_eq!(err.kind.exit_code(), 3, "{}", err.message);
    assert!(err.message.contains("does not match"), "{}", err.message);
    // also a truncated archive
    let err = check(&sig, &data[..data.len() - 1], &s).unwrap_err();
    assert_eq!(err.kind.exit_code(), 3);
}

#[test]
fn untrusted_and_restricted_keys_are_refused_before_reading() {
    let k = key(2);
    let other = key(3);
    let sig = sign_bytes(&k, b"archive");
    let s = signers(&format!("web-1 {}\n", other.public_line()));
    let err = SigCheck::new(Path::new("a"), sig.armored.as_bytes(), &s, Utc::now())
        .err()
        .unwrap();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(
        err.message.contains("not a trusted signer"),
        "{}",
        err.message
    );
    assert!(err.message.contains(&k.fingerprint()), "{}", err.message);

    let s = signers(&format!("web-1 namespaces=\"git\" {}\n", k.public_line()));
    let err = SigCheck::new(Path::new("a"), sig.armored.as_bytes(), &s, Utc::now())
        .err()
        .unwrap();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("namespaces"), "{}", err.message);

    let s = signers(&format!(
        "web-1 valid-before=\"20200101Z\" {}\n",
        k.public_line()
    ));
    let err = SigCheck::new(Path::new("a"), sig.armored.as_bytes(), &s, Utc::now())
        .err()
        .unwrap();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("expired"), "{}", err.message);

    let s = signers(&format!(
        "web-1 valid-after=\"20990101Z\" {}\n",
        k.public_line()
    ));
    let err = SigCheck::new(Path::new("a"), sig.armored.as_bytes(), &s, Utc::now())
        .err()
        .unwrap();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("valid only after"), "{}", err.message);

    // a window that includes the check time is fine
    let s = signers(&format!(
        "web-1 valid-after=\"20200101Z\",valid-before=\"20990101Z\" {}\n",
        k.public_line()
    ));
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let mut c = SigCheck::new(Path::new("a"), sig.armored.as_bytes(), &s, at).unwrap();
    c.update(b"archive");
    c.finish().unwrap();
}

#[test]
fn wrong_namespace_is_refused() {
    let k = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[4; 32]));
    let sig = k.sign("file", ssh_key::HashAlg::Sha512, b"x").unwrap();
    let pem = sig.to_pem(ssh_key::LineEnding::LF).unwrap();
    let s = signers(&format!("web-1 {}\n", key(4).public_line()));
    let err = SigCheck::new(Path::new("a"), pem.as_bytes(), &s, Utc::now())
        .err()
        .unwrap();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(
        err.message.contains("namespace \"file\""),
        "{}",
        err.message
    );
}

#[test]
fn garbage_signature_is_an_integrity_error() {
    let s = signers(&format!("web-1 {}\n", key(5).public_line()));
    for sig in [
        &b""[..],
        b"hello",
        b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
    ] {
        let err = SigCheck::new(Path::new("a"), sig, &s, Utc::now())
            .err()
            .unwrap();
        assert_eq!(err.kind.exit_code(), 3, "{}", err.message);
    }
}

#[test]
fn sig_file_is_private_and_never_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("daily_20261201_020000.tar.gz.age");
    std::fs::write(&archive, b"ciphertext").unwrap();
    let k = key(6);
    let sig = sign_bytes(&k, b"ciphertext");
    let p = write_sig(&archive, &sig).unwrap();
    assert_eq!(p, sig_path(&archive));
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&p).unwrap(), sig.armored);
    let err = write_sig(&archive, &sig).unwrap_err();
    assert_eq!(err.kind.exit_code(), 1);
    assert!(err.message.contains("already exists"));
    let leftovers: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 2, "no temp file left");
    let s = signers(&format!("web-1 {}\n", k.public_line()));
    let v = verify_file(&archive, &s, Utc::now()).unwrap();
    assert_eq!(v.sha256, crate::store::sha256_file(&archive).unwrap());
    assert_eq!(v.bytes, 10);
    std::fs::remove_file(&p).unwrap();
    let err = verify_file(&archive, &s, Utc::now()).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("has no signature"), "{}", err.message);
}

fn manifest(host: &str, btype: &str, ts: &str) -> Manifest {
    Manifest {
        format: crate::manifest::FORMAT.to_owned(),
        version: crate::manifest::VERSION,
        backup_type: btype.to_owned(),
        created: String::new(),
        timestamp: ts.to_owned(),
        host: host.to_owned(),
        tool_version: String::new(),
        source: String::new(),
        recipients: vec![],
        entries: vec![],
        warnings: vec![],
    }
}

#[test]
fn binding_refuses_renamed_and_foreign_archives() {
    let p = Provenance {
        scheme: Scheme::Ssh,
        fingerprint: "SHA256:x".into(),
        principals: vec![vec!["web-*".into(), "!web-9".into()]],
        signers_file: PathBuf::from("allowed_signers"),
    };
    let name = Path::new("/b/daily_20261201_020000.tar.gz.age");
    check_binding(name, &p, &manifest("web-1", "daily", "20261201_020000")).unwrap();
    check_binding(
        Path::new("/b/daily_20261201_020000_1.tar.gz.age"),
        &p,
        &manifest("web-1", "daily", "20261201_020000"),
    )
    .unwrap();
    let err = check_binding(name, &p, &manifest("web-9", "daily", "20261201_020000")).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("web-9"), "{}", err.message);
    let err = check_binding(name, &p, &manifest("db-1", "daily", "20261201_020000")).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    let err = check_binding(name, &p, &manifest("web-1", "daily", "20261101_020000")).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.message.contains("renamed"), "{}", err.message);
    let err = check_binding(name, &p, &manifest("web-1", "weekly", "20261201_020000")).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    let err = check_binding(
        Path::new("backup.age"),
        &p,
        &manifest("web-1", "daily", "20261201_020000"),
    )
    .unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
    assert!(err.hint.unwrap().contains("daily_20261201_020000"));
}

#[test]
fn key_files_plain_protected_and_wrong() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let k = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[8; 32]));
    let plain = t.path().join("plain");
    std::fs::write(
        &plain,
        k.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o600)).unwrap();
    let none = PassphraseSource::new(None);
    let loaded = SigningKey::from_file(&plain, &none, &Silent).unwrap();
    assert_eq!(
        loaded.fingerprint(),
        ssh::fingerprint(k.public_key().key_data())
    );
    assert!(loaded.public_line().starts_with("ssh-ed25519 AAAA"));

    let mut rng = OsRandom::new().unwrap();
    let enc = k.encrypt(&mut rng, "sekrit pass").unwrap();
    let prot = t.path().join("prot");
    std::fs::write(
        &prot,
        enc.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let pf = t.path().join("pass");
    std::fs::write(&pf, "sekrit pass\n").unwrap();
    std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let good = PassphraseSource::new(Some(pf.clone()));
    let loaded = SigningKey::from_file(&prot, &good, &Silent).unwrap();
    assert_eq!(
        loaded.fingerprint(),
        ssh::fingerprint(k.public_key().key_data())
    );
    std::fs::write(&pf, "wrong pass\n").unwrap();
    let err = SigningKey::from_file(&prot, &PassphraseSource::new(Some(pf)), &Silent).unwrap_err();
    assert_eq!(err.kind.exit_code(), 4);
    assert!(err.message.contains("wrong passphrase"), "{}", err.message);

    // a public key, garbage: clear errors that do not quote the file
    let pubf = t.path().join("k.pub");
    std::fs::write(&pubf, format!("{}\n", loaded.public_line())).unwrap();
    let err = SigningKey::from_file(&pubf, &none, &Silent).unwrap_err();
    assert_eq!(err.kind.exit_code(), 4);
    assert!(err.message.contains("public key"), "{}", err.message);
    assert!(!err.message.contains("AAAA"));
    let junk = t.path().join("junk");
    std::fs::write(&junk, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n").unwrap();
    let err = SigningKey::from_file(&junk, &none, &Silent).unwrap_err();
    assert_eq!(err.kind.exit_code(), 4);
    assert!(!err.message.contains("b3Bl"), "{}", err.message);

    // readable by others: used, with a warning
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ev = crate::events::Collect::default();
    SigningKey::from_file(&plain, &none, &ev).unwrap();
    let got = ev.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, crate::events::Level::Warn);
    assert!(got[0].1.contains("chmod 600"), "{got:?}");
}

#[test]
fn checking_reader_covers_the_rest_of_the_stream() {
    let k = key(9);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let sig = sign_bytes(&k, &data);
    let s = signers(&format!("web-1 {}\n", k.public_line()));
    let arch = Path::new("daily_20261201_020000.tar.gz.age");
    // the consumer reads only a part; finish reads the rest
    let check = SigCheck::new(arch, sig.armored.as_bytes(), &s, Utc::now()).unwrap();
    let mut r = CheckingReader::new(&data[..], check);
    let mut head = [0u8; 1000];
    r.read_exact(&mut head).unwrap();
    assert_eq!(r.claimed().fingerprint, k.fingerprint());
    r.finish().unwrap();
    let mut bad = data.clone();
    bad[99_999] ^= 0x80;
    let check = SigCheck::new(arch, sig.armored.as_bytes(), &s, Utc::now()).unwrap();
    let mut r = CheckingReader::new(&bad[..], check);
    std::io::copy(&mut r, &mut std::io::sink()).unwrap();
    assert_eq!(r.finish().unwrap_err().kind.exit_code(), 3);
    // verify_stream: same result as the file variant
    let check = SigCheck::new(arch, sig.armored.as_bytes(), &s, Utc::now()).unwrap();
    let v = verify_stream(arch, check, &mut &data[..]).unwrap();
    assert_eq!(v.bytes, data.len() as u64);
    assert_eq!(v.sha256, hex::encode(sha2::Sha256::digest(&data)));
}

#[test]
fn signer_and_checker_move_between_threads() {
    fn send<T: Send + 'static>() {}
    fn shared<T: Send + Sync + 'static>() {}
    send::<SigningWriter<std::fs::File>>();
    send::<SignHasher>();
    send::<SigCheck>();
    send::<CheckingReader<std::fs::File>>();
    shared::<SigningKey>();
    shared::<TrustedSigners>();
    // a hasher made in one thread finishes in another
    let k = key(10);
    let mut h = k.hasher().unwrap();
    h.update(b"abc");
    let sig = std::thread::spawn(move || h.finish().unwrap())
        .join()
        .unwrap();
    let s = signers(&format!("web-1 {}\n", k.public_line()));
    check(&sig, b"abc", &s).unwrap();
}

#[test]
fn an_emptied_signers_file_refuses_everything() {
    let k = key(11);
    let sig = sign_bytes(&k, b"x");
    let s = signers("# web-1 (revoked)\n\n");
    assert!(s.trusts_nobody());
    let err = check(&sig, b"x", &s).unwrap_err();
    assert_eq!(err.kind.exit_code(), 5);
}

#[test]
fn principals_from_every_signers_file() {
    let t = tempfile::tempdir().unwrap();
    let k = key(12);
    let a = t.path().join("a");
    let b = t.path().join("b");
    std::fs::write(&a, format!("web-1 {}\n", k.public_line())).unwrap();
    std::fs::write(&b, format!("web-2 {}\n", k.public_line())).unwrap();
    let s = TrustedSigners::load(&[a.clone(), b]).unwrap();
    let sig = sign_bytes(&k, b"y");
    let p = check(&sig, b"y", &s).unwrap();
    assert!(p.trusts_host("web-1") && p.trusts_host("web-2"));
    assert_eq!(p.signers_file, a);
}
