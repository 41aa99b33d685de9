//! Tests of the OpenPGP backend against the real `gpg` (GnuPG 2.2), each in its
//! own temporary GNUPGHOME passed explicitly (no process-wide env changes).

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::fs::File;
use std::io;

use super::*;
use crate::crypto::spec::{normalize_key_id, RecipientSpec};
use crate::crypto::{Decryptor as _, Encryptor as _, Format, PassphraseSource};
use crate::error::{Error, ErrorKind, Result};

const UID: &str =
    "SecureClaw Backup Example (NEVER USE IN PRODUCTION) <backup-example@secureclaw.invalid>";
/// Primary key of `openpgp-example.pub.asc`.
const PRIMARY_FPR: &str = "59601E12840530CF41E1835FA1FB173AC7473538";
/// Its cv25519 encryption subkey (what PKESKs name).
const ENC_SUBKEY: &str = "19429696355188DB";
/// Encryption subkey of `openpgp-example-protected.pub.asc`.
const PROTECTED_ENC_SUBKEY: &str = "E971723974910774";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("keys-example")
        .join(name)
}

fn have_gpg() -> bool {
    if keyring::gpg_available() {
        true
    } else {
        eprintln!("SKIPPED: `gpg` is not installed");
        false
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A temporary GnuPG home; its agent is killed on drop.
struct Gpg {
    dir: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        // Short path: the agent socket may live in the home.
        let dir = tempfile::Builder::new()
            .prefix("scpgp")
            .tempdir_in("/tmp")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Gpg { dir }
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home()).args([
            "--batch",
            "--no-tty",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--trust-model",
            "always",
        ]);
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        out
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn import(&self, file: &Path) {
        self.ok(&["--import", file.to_str().unwrap()], b"");
    }

    /// Fingerprint of the (first) key matching `query`.
    fn fpr(&self, query: &str) -> String {
        let out = self.ok(&["--with-colons", "--list-keys", query], b"");
        String::from_utf8(out)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .map(|l| l.split(':').nth(9).unwrap().to_owned())
            .unwrap()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home())
            .args(["--kill", "all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn example_encryptor() -> PgpEncryptor {
    PgpEncryptor::new(
        &[RecipientSpec::PgpFile(example("openpgp-example.pub.asc"))],
        None,
    )
    .unwrap()
}

fn encrypt_to_file(enc: &PgpEncryptor, path: &Path, data: &[u8]) {
    let f = File::create(path).unwrap();
    let mut w = enc.wrap_output(Box::new(f)).unwrap();
    // small and large writes
    let (a, b) = data.split_at(data.len().min(1000));
    for chunk in a.chunks(7) {
        w.write_all(chunk).unwrap();
    }
    for chunk in b.chunks(1 << 20) {
        w.write_all(chunk).unwrap();
    }
    w.finish().unwrap();
}

fn decryptor(key_file: &str, pass: PassphraseSource) -> PgpDecryptor {
    let path = example(key_file);
    let data = std::fs::read(&path).unwrap();
    PgpDecryptor::new(&[(path.as_path(), data.as_slice())], pass).unwrap()
}

fn decrypt_all(dec: &dyn crate::crypto::Decryptor, data: Vec<u8>) -> Result<Vec<u8>> {
    let format = Format::detect(&data).expect("an OpenPGP message");
    let mut r = dec.decrypt(format, Box::new(io::Cursor::new(data)))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(from_io_test)?;
    Ok(out)
}

fn from_io_test(e: io::Error) -> Error {
    crate::error::from_io(e, "reading", Path::new("test"))
}

fn pass_file(dir: &Path, content: &str) -> PassphraseSource {
    let p = dir.join(format!("pass-{}", content.len()));
    std::fs::write(&p, content).unwrap();
    PassphraseSource::new(Some(p))
}

#[test]
fn detection_helpers() {
    let pubk = std::fs::read(example("openpgp-example.pub.asc")).unwrap();
    let sec = std::fs::read(example("openpgp-example.sec.asc")).unwrap();
    assert!(is_certificate_start(&pubk));
    assert!(is_secret_key_start(&sec));
    assert!(!is_secret_key_start(&pubk));
    let keyid = std::fs::read_to_string(example("openpgp-example.keyid")).unwrap();
    assert_eq!(keyid.trim(), &PRIMARY_FPR[24..]);
}

/// (1) our encryption → `gpg --decrypt`; the packet layout is the RFC 4880 one.
#[test]
fn ours_decrypts_with_gpg() {
    if !have_gpg() {
        return;
    }
    let g = Gpg::new();
    g.import(&example("openpgp-example.sec.asc"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.gpg");
    let data = noise(1_000_003, 1);
    let enc = example_encryptor();
    assert_eq!(enc.format(), Format::OpenPgp);
    assert_eq!(enc.describe(), vec![format!("{PRIMARY_FPR} {UID}")]);
    encrypt_to_file(&enc, &p, &data);
    let info = enc.verify_written(&p).unwrap();
    assert_eq!(info.recipients, vec![ENC_SUBKEY]);
    assert_eq!(
        Format::detect(&std::fs::read(&p).unwrap()[..64]),
        Some(Format::OpenPgp)
    );
    let out = g.ok(&["--decrypt", p.to_str().unwrap()], b"");
    assert!(out == data, "gpg decrypted something else");
    let packets =
        String::from_utf8_lossy(&g.ok(&["--list-packets", p.to_str().unwrap()], b"")).into_owned();
    assert!(
        packets.contains(":pubkey enc packet: version 3"),
        "{packets}"
    );
    assert!(packets.contains(":encrypted data packet:"), "{packets}");
    assert!(packets.contains("mdc_method: 2"), "{packets}");
    assert!(!packets.contains("compressed packet"), "{packets}");
    // empty payload too
    let p2 = dir.path().join("empty.gpg");
    encrypt_to_file(&enc, &p2, b"");
    assert!(g.ok(&["--decrypt", p2.to_str().unwrap()], b"").is_empty());
}

/// (1b) seipd.rs framing at every boundary: payload sizes where the literal
/// body or the SEIPD body ends just before, on and after a partial-body
/// chunk, read back by sequoia (in process) and by `gpg --decrypt`.
#[test]
fn chunk_boundaries_decrypt_everywhere() {
    const C: usize = 1 << 20;
    let mut sizes = vec![0, 1, 100, 191, 192, 8383, 8384, 3 * C + 12345];
    sizes.extend(C - 50..=C - 44); // the SEIPD body ends at the chunk
    sizes.extend(C - 7..=C + 1); // the literal body ends at the chunk
    sizes.extend((2 * C - 60..=2 * C - 40).step_by(2));
    let enc = example_encryptor();
    let dec = decryptor("openpgp-example.sec.asc", PassphraseSource::new(None));
    let dir = tempfile::tempdir().unwrap();
    let g = have_gpg().then(|| {
        let g = Gpg::new();
        g.import(&example("openpgp-example.sec.asc"));
        g
    });
    let base = noise(3 * C + 12345, 7);
    let fast_before = seipd_reader::USED.load(std::sync::atomic::Ordering::Relaxed);
    for (i, &n) in sizes.iter().enumerate() {
        let data = &base[..n];
        let p = dir.path().join(format!("{i}.gpg"));
        encrypt_to_file(&enc, &p, data);
        enc.verify_written(&p)
            .unwrap_or_else(|e| panic!("{n} bytes: {e}"));
        let bytes = std::fs::read(&p).unwrap();
        let out = decrypt_all(&dec, bytes).unwrap_or_else(|e| panic!("{n} bytes: {e}"));
        assert!(
            out == data,
            "sequoia read back something else for {n} bytes"
        );
        if let Some(g) = &g {
            let out = g.ok(&["--decrypt", p.to_str().unwrap()], b"");
            assert!(out == data, "gpg read back something else for {n} bytes");
        }
    }
    // ours were read by seipd_reader.rs, not by sequoia's stream decryptor
    let fast = seipd_reader::USED.load(std::sync::atomic::Ordering::Relaxed) - fast_before;
    assert!(fast >= sizes.len(), "fast path taken {fast} times");
}

/// (2) `gpg --encrypt` (compressed, `-z 0`, armored) → our decryptor.
#[test]
fn gpg_encrypted_decrypts_with_ours() {
    if !have_gpg() {
        return;
    }
    let g = Gpg::new();
    g.import(&example("openpgp-example.pub.asc"));
    let data = noise(300_001, 2);
    let dec = decryptor("openpgp-example.sec.asc", PassphraseSource::default());
    for extra in [
        &[][..],
        &["-z", "0"][..],
        &["--armor"][..],
        &["--armor", "-z", "0"][..],
    ] {
        let mut args = vec!["--encrypt", "--recipient", PRIMARY_FPR];
        args.extend_from_slice(extra);
        let ct = g.ok(&args, &data);
        let out = decrypt_all(&dec, ct).unwrap();
        assert!(out == data, "wrong plaintext with {extra:?}");
    }
    // from a file (gpg knows the length: an old-format literal packet), with
    // AES-128 and with Camellia (not AES: left to sequoia); and a damaged copy
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, &data).unwrap();
    let fast_before = seipd_reader::USED.load(std::sync::atomic::Ordering::Relaxed);
    for algo in ["AES256", "AES128", "CAMELLIA256"] {
        let out_path = dir.path().join(format!("{algo}.gpg"));
        g.ok(
            &[
                "--encrypt",
                "-z",
                "0",
                "--cipher-algo",
                algo,
                "--recipient",
                PRIMARY_FPR,
                "-o",
                out_path.to_str().unwrap(),
                plain.to_str().unwrap(),
            ],
            b"",
        );
        let mut ct = std::fs::read(&out_path).unwrap();
        let out = decrypt_all(&dec, ct.clone()).unwrap();
        assert!(out == data, "wrong plaintext from a file with {algo}");
        let mid = ct.len() / 2;
        ct[mid] ^= 1;
        assert!(
            decrypt_all(&dec, ct).is_err(),
            "{algo}: a flipped bit was accepted"
        );
    }
    // the two AES messages (and their damaged copies) took our reader
    let fast = seipd_reader::USED.load(std::sync::atomic::Ordering::Relaxed) - fast_before;
    assert!(fast >= 4, "fast path taken {fast} times");
    // compressible data with compression
    let text = b"hello world\n".repeat(100_000);
    let ct = g.ok(&["--encrypt", "--recipient", PRIMARY_FPR, "-z", "9"], &text);
    assert!(ct.len() < text.len() / 10);
    assert_eq!(decrypt_all(&dec, ct).unwrap(), text);
}

/// (3) passphrase-protected key; wrong passphrase → Key.
#[test]
fn protected_key() {
    if !have_gpg() {
        return;
    }
    let g = Gpg::new();
    g.import(&example("openpgp-example-protected.pub.asc"));
    let dir = tempfile::tempdir().unwrap();
    let data = noise(70_000, 3);
    let ct = g.ok(
        &[
            "--encrypt",
            "--recipient",
            "backup-protected@secureclaw.invalid",
        ],
        &data,
    );
    let dec = decryptor(
        "openpgp-example-protected.sec.asc",
        pass_file(dir.path(), "example\n"),
    );
    assert_eq!(decrypt_all(&dec, ct.clone()).unwrap(), data);
    let dec = decryptor(
        "openpgp-example-protected.sec.asc",
        pass_file(dir.path(), "wrong"),
    );
    let e = decrypt_all(&dec, ct).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Key, "{e}");
    assert!(e.message.contains("wrong passphrase"), "{e}");
    assert!(e.message.contains(PROTECTED_ENC_SUBKEY), "{e}");
}

/// (4) a key that is not a recipient → Key, naming the recipients; no
/// passphrase is asked for a non-matching protected key.
#[test]
fn wrong_key() {
    let enc = example_encryptor();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.gpg");
    encrypt_to_file(&enc, &p, b"secret data");
    // asking would fail with an Operational error (missing passphrase file)
    let pass = PassphraseSource::new(Some(dir.path().join("does-not-exist")));
    let dec = decryptor("openpgp-example-protected.sec.asc", pass);
    let e = decrypt_all(&dec, std::fs::read(&p).unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Key, "{e}");
    assert!(e.message.contains(ENC_SUBKEY), "{e}");
    assert!(e.hint.unwrap().contains("-i"));
    // a public key is not an identity
    let pubk = example("openpgp-example.pub.asc");
    let data = std::fs::read(&pubk).unwrap();
    let e = PgpDecryptor::new(
        &[(pubk.as_path(), data.as_slice())],
        PassphraseSource::default(),
    )
    .err()
    .unwrap();
    assert_eq!(e.kind, ErrorKind::Key);
    // and the right key works without gpg
    let dec = decryptor("openpgp-example.sec.asc", PassphraseSource::default());
    assert_eq!(
        decrypt_all(&dec, std::fs::read(&p).unwrap()).unwrap(),
        b"secret data"
    );
}

/// (5) inspect: ours and gpg's (binary, armored, two recipients); rejects
/// trailing garbage, truncation, random bytes, unencrypted messages.
#[test]
fn inspect_messages() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ours.gpg");
    let enc = example_encryptor();
    encrypt_to_file(&enc, &p, &noise(200_000, 5));
    let info = inspect(&p).unwrap();
    assert_eq!(info.format, Format::OpenPgp);
    assert_eq!(info.recipients, vec![ENC_SUBKEY]);
    assert_eq!(info.length, std::fs::metadata(&p).unwrap().len());
    let good = std::fs::read(&p).unwrap();

    let bad = |name: &str, bytes: &[u8]| {
        let q = dir.path().join(name);
        std::fs::write(&q, bytes).unwrap();
        let e = inspect(&q).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Integrity, "{name}: {e}");
        assert!(e.message.contains(q.to_str().unwrap()), "{name}: {e}");
        assert!(e.hint.is_some());
    };
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage\n");
    bad("trailing", &trailing);
    let mut twice = good.clone();
    twice.extend_from_slice(&good);
    bad("twice", &twice);
    bad("truncated", &good[..good.len() - 10]);
    bad("truncated-half", &good[..good.len() / 2]);
    bad("header-only", &good[..120]);
    let mut random = noise(4096, 99);
    random[0] = 0xC1; // looks like a PKESK start
    bad("random", &random);
    bad("random2", &noise(4096, 98));
    bad("empty", b"");

    // too many session key packets (1025 copies of ours); restore and verify
    // run this check before decrypting
    let (_, len, hlen) = framing::parse_header(&good, 0).unwrap();
    let framing::BodyLen::Definite(n) = len else {
        panic!("our PKESK has a definite length")
    };
    let pkesk = &good[..(hlen + n) as usize];
    let mut many = pkesk.repeat(framing::MAX_KEY_PACKETS + 1);
    many.extend_from_slice(&good[pkesk.len()..]);
    bad("many-pkesks", &many);

    // several partial-body chunks: every cut near a chunk boundary (and a
    // sample elsewhere) is caught without reading the body; trailing bytes too
    let big = dir.path().join("big.gpg");
    encrypt_to_file(&enc, &big, &noise(3 << 20, 8));
    assert_eq!(inspect(&big).unwrap().recipients, vec![ENC_SUBKEY]);
    let full = std::fs::metadata(&big).unwrap().len();
    let mut cuts: Vec<u64> = (1..=3u64)
        .flat_map(|k| (k << 20)..(k << 20) + 700)
        .chain((1..full).step_by(65_537))
        .chain(full - 40..full)
        .filter(|&c| c < full)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let f = std::fs::OpenOptions::new().append(true).open(&big).unwrap();
    f.write_all_at(b"x", full).unwrap();
    let e = inspect(&big).unwrap_err();
    assert!(e.message.contains("trailing"), "{e}");
    for &cut in cuts.iter().rev() {
        f.set_len(cut).unwrap();
        let e = inspect(&big).expect_err(&format!("cut at {cut} of {full}"));
        assert_eq!(e.kind, ErrorKind::Integrity, "cut at {cut}: {e}");
    }

    if !have_gpg() {
        return;
    }
    let g = Gpg::new();
    g.import(&example("openpgp-example.pub.asc"));
    g.import(&example("openpgp-example-protected.pub.asc"));
    let ct = g.ok(
        &[
            "--encrypt",
            "-r",
            PRIMARY_FPR,
            "-r",
            "backup-protected@secureclaw.invalid",
        ],
        b"data",
    );
    let q = dir.path().join("gpg.gpg");
    std::fs::write(&q, &ct).unwrap();
    let mut r = inspect(&q).unwrap().recipients;
    r.sort();
    let mut want = vec![ENC_SUBKEY, PROTECTED_ENC_SUBKEY];
    want.sort();
    assert_eq!(r, want);
    // gpg's own partial-body chunks (from stdin, uncompressed)
    let ct = g.ok(
        &["--encrypt", "-z", "0", "-r", PRIMARY_FPR],
        &noise(3 << 20, 9),
    );
    let q = dir.path().join("gpg-big.gpg");
    std::fs::write(&q, &ct).unwrap();
    assert_eq!(inspect(&q).unwrap().recipients, vec![ENC_SUBKEY]);
    bad("gpg-big-cut", &ct[..ct.len() / 3]);
    let ct = g.ok(&["--encrypt", "--armor", "-r", PRIMARY_FPR], b"data");
    let q = dir.path().join("gpg.asc");
    std::fs::write(&q, &ct).unwrap();
    let info = inspect(&q).unwrap();
    assert_eq!(info.format, Format::OpenPgpArmored);
    assert_eq!(info.recipients, vec![ENC_SUBKEY]);
    assert!(enc.verify_written(&q).is_err()); // armored is not what we write
    let ct = g.ok(&["--encrypt", "--throw-keyids", "-r", PRIMARY_FPR], b"data");
    let q = dir.path().join("anon.gpg");
    std::fs::write(&q, &ct).unwrap();
    assert_eq!(inspect(&q).unwrap().recipients, vec!["anonymous"]);
    // an unencrypted (stored) message and a symmetric one
    let ct = g.ok(&["--store"], b"data");
    bad("stored", &ct);
    let ct = g.ok(&["--symmetric", "--passphrase", "x"], b"data");
    let q = dir.path().join("sym.gpg");
    std::fs::write(&q, &ct).unwrap();
    assert_eq!(inspect(&q).unwrap().recipients, vec!["passphrase (SKESK)"]);
    // verify_written wants exactly our recipients
    let both = PgpEncryptor::new(
        &[
            RecipientSpec::PgpFile(example("openpgp-example.pub.asc")),
            RecipientSpec::PgpFile(example("openpgp-example-protected.pub.asc")),
        ],
        None,
    )
    .unwrap();
    assert_eq!(both.describe().len(), 2);
    let e = both.verify_written(&p).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Integrity);
}

/// (6) a large message with its last byte flipped, or cut: reading the
/// plaintext to the end fails.
#[test]
fn tampered_large_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.gpg");
    let data = noise(31 * 1024 * 1024 + 17, 6);
    encrypt_to_file(&example_encryptor(), &p, &data);
    let ct = std::fs::read(&p).unwrap();
    let dec = decryptor("openpgp-example.sec.asc", PassphraseSource::default());
    assert!(decrypt_all(&dec, ct.clone()).unwrap() == data);

    let read_to_end = |bytes: Vec<u8>| -> (usize, io::Result<()>) {
        let mut r = dec
            .decrypt(Format::OpenPgp, Box::new(io::Cursor::new(bytes)))
            .unwrap();
        let mut n = 0;
        let mut buf = vec![0u8; 100_000];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (n, Ok(())),
                Ok(k) => n += k,
                Err(e) => {
                    // reading again repeats the error (no panic, no Ok(0))
                    assert!(r.read(&mut buf).is_err());
                    return (n, Err(e));
                }
            }
        }
    };
    let mut flipped = ct.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let (n, res) = read_to_end(flipped);
    let e = res.unwrap_err();
    assert!(
        n > 1024 * 1024,
        "plaintext is streamed before the end ({n})"
    );
    assert_eq!(from_io_test(e).kind, ErrorKind::Integrity);

    let mut mid = ct.clone();
    mid[ct.len() / 2] ^= 0x40;
    assert!(read_to_end(mid).1.is_err());

    let cut = ct[..ct.len() - 1000].to_vec();
    let e = read_to_end(cut).1.unwrap_err();
    assert_eq!(from_io_test(e).kind, ErrorKind::Integrity);

    let q = dir.path().join("cut.gpg");
    std::fs::write(&q, &ct[..ct.len() - 1]).unwrap();
    assert_eq!(inspect(&q).unwrap_err().kind, ErrorKind::Integrity);
}

fn ids_of(specs: &[RecipientSpec], keyring: Option<&Path>, home: &Path) -> Result<Vec<String>> {
    PgpEncryptor::resolve_in_home(specs, keyring, home).map(|e| e.key_ids())
}

/// (7) resolution of key ids, fingerprints and user ids in a `--keyring` file
/// and in GnuPG homes (pubring.kbx, legacy pubring.gpg); unusable certificates.
#[test]
fn recipient_resolution() {
    let nohome = tempfile::tempdir().unwrap();
    let keyring = example("openpgp-example.pub.asc");
    let want = vec![ENC_SUBKEY.to_owned()];
    let specs = [
        RecipientSpec::PgpKeyId(PRIMARY_FPR[24..].to_owned()),
        RecipientSpec::PgpKeyId(
            normalize_key_id("0x5960 1E12 8405 30CF 41E1  835F A1FB 173A C747 3538").unwrap(),
        ),
        RecipientSpec::PgpKeyId(ENC_SUBKEY.to_owned()),
        RecipientSpec::PgpUserId("backup-example@secureclaw.invalid".to_owned()),
        RecipientSpec::PgpUserId("<Backup-Example@secureclaw.invalid>".to_owned()),
        RecipientSpec::PgpUserId(UID.to_owned()),
    ];
    for s in &specs {
        assert_eq!(
            ids_of(std::slice::from_ref(s), Some(&keyring), nohome.path()).unwrap(),
            want,
            "{s:?}"
        );
    }
    // several specs naming the same cert: one PKESK
    assert_eq!(ids_of(&specs, Some(&keyring), nohome.path()).unwrap(), want);
    let e = ids_of(
        &[RecipientSpec::PgpKeyId("0123456789ABCDEF".into())],
        Some(&keyring),
        nohome.path(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Key);
    assert!(
        e.message.contains("0123456789ABCDEF") && e.message.contains("not found"),
        "{e}"
    );
    assert!(e.hint.is_some());
    let e = ids_of(
        &[RecipientSpec::PgpUserId(
            "Someone <backup-example@secureclaw.invalid>".into(),
        )],
        Some(&keyring),
        nohome.path(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Key);

    if !have_gpg() {
        return;
    }
    // binary keyring file with two certs
    let g = Gpg::new();
    g.import(&example("openpgp-example.pub.asc"));
    g.import(&example("openpgp-example-protected.pub.asc"));
    let bin = nohome.path().join("certs.gpg");
    std::fs::write(&bin, g.ok(&["--export"], b"")).unwrap();
    let two = [
        RecipientSpec::PgpUserId("backup-protected@secureclaw.invalid".into()),
        RecipientSpec::PgpKeyId(PRIMARY_FPR.into()),
    ];
    let want2 = vec![PROTECTED_ENC_SUBKEY.to_owned(), ENC_SUBKEY.to_owned()];
    assert_eq!(ids_of(&two, Some(&bin), nohome.path()).unwrap(), want2);
    // the GnuPG home (pubring.kbx), and a keybox given as --keyring
    assert!(g.home().join("pubring.kbx").is_file());
    assert_eq!(ids_of(&two, None, g.home()).unwrap(), want2);
    assert_eq!(
        ids_of(&two, Some(&g.home().join("pubring.kbx")), nohome.path()).unwrap(),
        want2
    );
    let e = ids_of(
        &[RecipientSpec::PgpKeyId("0123456789ABCDEF".into())],
        None,
        g.home(),
    )
    .unwrap_err();
    assert!(e.message.contains("pubring.kbx"), "{e}");
    // legacy pubring.gpg
    let legacy = Gpg::new();
    std::fs::write(legacy.home().join("pubring.gpg"), b"").unwrap();
    legacy.import(&example("openpgp-example.pub.asc"));
    assert!(!legacy.home().join("pubring.kbx").exists());
    assert_eq!(
        ids_of(
            &[RecipientSpec::PgpUserId(
                "backup-example@secureclaw.invalid".into()
            )],
            None,
            legacy.home()
        )
        .unwrap(),
        want
    );

    // unusable certificates, made by gpg in the same home
    g.ok(
        &[
            "--quick-gen-key",
            "Sign Only <signonly@secureclaw.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        b"",
    );
    g.ok(
        &[
            "--quick-gen-key",
            "Expired <expired@secureclaw.invalid>",
            "future-default",
            "default",
            "seconds=1",
        ],
        b"",
    );
    g.ok(
        &[
            "--quick-gen-key",
            "Revoked <revoked@secureclaw.invalid>",
            "future-default",
            "default",
            "never",
        ],
        b"",
    );
    let fpr = g.fpr("revoked@secureclaw.invalid");
    let rev = std::fs::read_to_string(g.home().join("openpgp-revocs.d").join(format!("{fpr}.rev")))
        .unwrap();
    let rev = rev.replace(
        ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----",
    );
    let revfile = nohome.path().join("rev.asc");
    std::fs::write(&revfile, rev).unwrap();
    g.import(&revfile);
    std::thread::sleep(std::time::Duration::from_secs(2));
    for (who, what) in [
        ("signonly@secureclaw.invalid", "encryption-capable"),
        ("expired@secureclaw.invalid", "expired"),
        ("revoked@secureclaw.invalid", "revoked"),
    ] {
        let e = ids_of(&[RecipientSpec::PgpUserId(who.into())], None, g.home()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Key, "{who}: {e}");
        assert!(e.message.contains(what), "{who}: {e}");
        // and as a certificate file
        let f = nohome.path().join(format!("{who}.asc"));
        std::fs::write(&f, g.ok(&["--export", "--armor", who], b"")).unwrap();
        let e = ids_of(&[RecipientSpec::PgpFile(f)], None, nohome.path()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Key, "{who}: {e}");
        assert!(e.message.contains(what), "{who}: {e}");
    }
}

/// (8) no `-i`: gpg-agent decrypts for a key in the GnuPG home.
#[test]
fn gpg_agent_decryption() {
    if !have_gpg() {
        return;
    }
    let g = Gpg::new();
    g.import(&example("openpgp-example.sec.asc"));
    let out = Command::new("gpgconf")
        .env("GNUPGHOME", g.home())
        .args(["--launch", "gpg-agent"])
        .status()
        .unwrap();
    assert!(out.success());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.gpg");
    let data = noise(500_000, 8);
    encrypt_to_file(&example_encryptor(), &p, &data);
    let dec = PgpDecryptor::with_home(&[], PassphraseSource::default(), Some(g.home().to_owned()))
        .unwrap();
    assert!(decrypt_all(&dec, std::fs::read(&p).unwrap()).unwrap() == data);
    // gpg's own message, armored
    let ct = g.ok(&["--encrypt", "--armor", "-r", PRIMARY_FPR], b"via agent");
    assert_eq!(decrypt_all(&dec, ct).unwrap(), b"via agent");

    // a recipient the home does not know → Key
    let other = PgpEncryptor::new(
        &[RecipientSpec::PgpFile(example(
            "openpgp-example-protected.pub.asc",
        ))],
        None,
    )
    .unwrap();
    let q = dir.path().join("b.gpg");
    encrypt_to_file(&other, &q, b"x");
    let e = decrypt_all(&dec, std::fs::read(&q).unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Key, "{e}");
    assert!(e.message.contains(PROTECTED_ENC_SUBKEY), "{e}");
    // known certificate but no secret key in the agent → Key
    g.import(&example("openpgp-example-protected.pub.asc"));
    let e = decrypt_all(&dec, std::fs::read(&q).unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Key, "{e}");
}
