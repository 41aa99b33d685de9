//! Secret hygiene (issue 4 §3; SECURITY.md, "Key handling"): a canary passphrase and the secret
//! key it protects never appear in `/proc/<pid>/cmdline` or `environ` (read
//! while the process runs), in stdout/stderr, or in any file the tool writes;
//! the process is not dumpable (`PR_SET_DUMPABLE` 0: its /proc files belong to
//! root and even its own uid cannot read its environment) and its core size
//! limit is 0; every file and directory it creates is owner-only from
//! creation, even under `umask 000`.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use common::*;

const NOBODY: u32 = 65534;

/// A unique canary passphrase and an age identity protected by it.
struct Canary {
    pass: String,
    secret_key: String,
    recipient: String,
    /// The armored, passphrase-encrypted identity file.
    id_file: PathBuf,
    pass_file: PathBuf,
}

fn canary(dir: &Path) -> Canary {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15 ^ now);
    let pass = format!("canary-passphrase-{:016x}{:016x}", rng.next(), rng.next());
    let id = age::x25519::Identity::generate();
    let secret_key = id.to_string().expose_secret().to_owned();
    let recipient = id.to_public().to_string();
    let mut r = age::scrypt::Recipient::new(age::secrecy::SecretString::from(pass.clone()));
    r.set_work_factor(12);
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut armored = Vec::new();
    {
        let aw =
            age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)
                .unwrap();
        let mut w = enc.wrap_output(aw).unwrap();
        w.write_all(format!("# canary identity\n{secret_key}\n").as_bytes())
            .unwrap();
        w.finish().unwrap().finish().unwrap();
    }
    let id_file = dir.join("canary-identity.age");
    write_file(&id_file, &armored, 0o600);
    let pass_file = dir.join("canary-pass");
    write_file(&pass_file, format!("{pass}\n").as_bytes(), 0o600);
    Canary {
        pass,
        secret_key,
        recipient,
        id_file,
        pass_file,
    }
}

impl Canary {
    fn needles(&self) -> Vec<(&'static str, &[u8])> {
        vec![
            ("passphrase", self.pass.as_bytes()),
            ("secret key", self.secret_key.as_bytes()),
            // the key's payload without the prefix, in either case
            ("secret key body", &self.secret_key.as_bytes()[16..60]),
        ]
    }

    fn assert_absent(&self, what: &str, data: &[u8]) {
        let lower = data.to_ascii_lowercase();
        for (name, n) in self.needles() {
            let n_lower = n.to_ascii_lowercase();
            assert!(
                !lower
                    .windows(n_lower.len())
                    .any(|w| w == n_lower.as_slice()),
                "the canary {name} appears in {what}"
            );
        }
    }

    fn assert_absent_on_disk(&self, root: &Path) {
        for (name, n) in self.needles() {
            let hits = files_containing(root, n);
            assert!(hits.is_empty(), "the canary {name} was written to {hits:?}");
        }
    }
}

fn chown_tree(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn have_setpriv() -> bool {
    Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What was seen in /proc while the process ran.
#[derive(Default)]
struct Seen {
    samples: usize,
    /// samples taken after the tool hardened itself (its /proc files root-owned)
    hardened: usize,
    /// a sample of our binary that still belonged to the process owner after
    /// one that was root-owned (dumpable again)
    regressed: bool,
    core_limit_zero: bool,
    core_limit_nonzero_after_hardening: bool,
    same_uid_read_environ: Option<bool>,
    out: Option<Out>,
}

/// Runs `cmd` (already set up), sampling /proc/<pid> until it exits, and
/// checks every sample of cmdline and environ for the canaries.
fn watch(mut cmd: Command, c: &Canary, run_uid: u32) -> Seen {
    let bin = bin();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let ro = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let re = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    let mut seen = Seen::default();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let status = loop {
        let exe = fs::read_link(proc_dir.join("exe")).ok();
        let ours = exe.as_deref() == Some(bin.as_path());
        if let Ok(d) = fs::read(proc_dir.join("cmdline")) {
            c.assert_absent("/proc/<pid>/cmdline", &d);
        }
        if let Ok(d) = fs::read(proc_dir.join("environ")) {
            c.assert_absent("/proc/<pid>/environ", &d);
        }
        if ours {
            seen.samples += 1;
            let owner = fs::metadata(proc_dir.join("environ")).map(|m| m.uid()).ok();
            let limits = fs::read_to_string(proc_dir.join("limits")).unwrap_or_default();
            let core = limits
                .lines()
                .find(|l| l.starts_with("Max core file size"))
                .map(|l| l.split_whitespace().skip(4).take(2).collect::<Vec<_>>());
            let core_zero = core.as_deref() == Some(&["0", "0"][..]);
            match owner {
                Some(0) if run_uid != 0 => {
                    seen.hardened += 1;
                    seen.core_limit_zero |= core_zero;
                    if core.is_some() && !core_zero {
                        seen.core_limit_nonzero_after_hardening = true;
                    }
                    if seen.same_uid_read_environ.is_none() && run_uid == NOBODY {
                        // the process's own uid may not read its environment
                        let ok = Command::new("setpriv")
                            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
                            .arg(proc_dir.join("environ"))
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .map(|s| s.success())
                            .unwrap_or(false);
                        // the sample only counts if the process was still there
                        if proc_dir.exists() {
                            seen.same_uid_read_environ = Some(ok);
                        }
                    }
                }
                Some(u) if u == run_uid && seen.hardened > 0 => seen.regressed = true,
                _ => {
                    if run_uid == 0 {
                        seen.core_limit_zero |= core_zero;
                    }
                }
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_micros(300));
    };
    let stdout = ro.join().unwrap();
    let stderr = re.join().unwrap();
    c.assert_absent("stdout", &stdout);
    c.assert_absent("stderr", &stderr);
    seen.out = Some(Out {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    });
    seen
}

/// The tool run as `uid` (via setpriv when we are root and uid is not 0).
fn as_user(sb: &Sandbox, uid: u32) -> Command {
    let plain = sb.cmd();
    if uid == 0 || !is_root() {
        return plain;
    }
    let mut c = Command::new("setpriv");
    c.args([
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".to_owned(),
        "--".to_owned(),
    ])
    .arg(plain.get_program());
    c.env_clear();
    for (k, v) in plain.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// An archive of ~24 MiB (so that a restore runs for a while) encrypted to
/// `recipient`, at `sb/arch/daily_20260101_000000.tar.gz.age`.
fn big_archive(sb: &Sandbox, recipient: &str) -> PathBuf {
    let mut rng = Rng(42);
    let blobs: Vec<(String, Vec<u8>)> = (0..48)
        .map(|i| (format!("workspace/blob-{i:02}.bin"), rng.bytes(512 * 1024)))
        .collect();
    let mut files: Vec<(&str, &[u8])> = blobs
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    files.push(("secureclaw.json", b"{}"));
    let tar = benign_tar(&files, true);
    let r: age::x25519::Recipient = recipient.parse().unwrap();
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut ct = Vec::new();
    let mut w = enc.wrap_output(&mut ct).unwrap();
    w.write_all(&gzip(&tar)).unwrap();
    w.finish().unwrap();
    let archive = sb.p("arch/daily_20260101_000000.tar.gz.age");
    write_file(&archive, &ct, 0o600);
    archive
}

#[test]
fn canary_passphrase_and_key_never_leak() {
    let sb = Sandbox::new();
    let c = canary(&sb.p("arch"));
    let archive = big_archive(&sb, &c.recipient);
    populate_target(&sb.target());
    let uid = current_uid();

    // restore, with the identity from the environment for one run and -i for
    // the other, verbose and JSON; the pre-restore snapshot goes to a fresh
    // destination
    for (i, via_env) in [false, true].into_iter().enumerate() {
        let mut cmd = sb.cmd();
        cmd.args(["-v", if via_env { "--json" } else { "-v" }, "restore"])
            .arg(&archive);
        if via_env {
            cmd.env("SECURECLAW_BACKUP_IDENTITY", &c.id_file);
            cmd.env("SECURECLAW_BACKUP_KEY", age_recipient());
        } else {
            cmd.arg("-i").arg(&c.id_file).args(["-r", &age_recipient()]);
        }
        cmd.arg("--passphrase-file")
            .arg(&c.pass_file)
            .arg("--target")
            .arg(sb.target())
            .arg("--dest")
            .arg(sb.p(&format!("w/dest{i}")));
        let seen = watch(cmd, &c, uid);
        let out = seen.out.as_ref().unwrap();
        assert_eq!(out.code, 0, "{}", out.text());
        assert!(
            seen.samples > 3,
            "too few samples of the running process: {}",
            seen.samples
        );
        assert!(
            seen.core_limit_zero,
            "core file size limit is not 0 while running"
        );
        eprintln!("restore {i}: {} samples of /proc/<pid>", seen.samples);
    }

    // a wrong passphrase (itself a canary) is not echoed
    let wrong = Canary {
        pass: format!("{}-wrong", c.pass),
        secret_key: c.secret_key.clone(),
        recipient: c.recipient.clone(),
        id_file: c.id_file.clone(),
        pass_file: sb.p("arch/wrong-pass"),
    };
    write_file(
        &wrong.pass_file,
        format!("{}\n", wrong.pass).as_bytes(),
        0o600,
    );
    let mut cmd = sb.cmd();
    cmd.args(["--json", "verify", "-i"])
        .arg(&c.id_file)
        .arg("--passphrase-file")
        .arg(&wrong.pass_file)
        .arg(&archive);
    let seen = watch(cmd, &wrong, uid);
    let out = seen.out.as_ref().unwrap();
    assert_eq!(out.code, 4, "{}", out.text());

    // nothing on disk holds the passphrase or the key, except the inputs
    fs::remove_file(&c.pass_file).unwrap();
    fs::remove_file(&wrong.pass_file).unwrap();
    fs::remove_file(&c.id_file).unwrap();
    c.assert_absent_on_disk(&sb.p("w"));
    c.assert_absent_on_disk(&sb.p("env"));
    c.assert_absent_on_disk(&sb.p("arch"));
}

/// PR_SET_DUMPABLE 0: the process's /proc files belong to root, so that
/// another process of the same uid cannot read its memory or environment;
/// and the core size limit is 0. Run as `nobody` when we are root (the
/// ownership of /proc/<pid> tells nothing for a root process).
#[test]
fn process_is_not_dumpable() {
    let sb = Sandbox::new();
    let archive = big_archive(&sb, &age_recipient());
    populate_target(&sb.target());
    let id = sb.p("arch/age.key");
    fs::copy(example_key("age-example.key"), &id).unwrap();
    let c = canary(&sb.p("env/home"));
    let uid = if is_root() && have_setpriv() {
        NOBODY
    } else {
        if is_root() {
            eprintln!("NOTE: setpriv is missing: only the core size limit is checked");
        }
        current_uid()
    };
    if uid == NOBODY {
        chown_tree(sb.dir.path(), NOBODY);
    }
    let mut cmd = as_user(&sb, uid);
    cmd.arg("restore")
        .arg(&archive)
        .arg("-i")
        .arg(&id)
        .arg("--target")
        .arg(sb.target())
        .arg("--no-snapshot");
    let seen = watch(cmd, &c, uid);
    let out = seen.out.as_ref().unwrap();
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(
        seen.samples > 3,
        "too few samples of the running process: {}",
        seen.samples
    );
    assert!(
        seen.core_limit_zero,
        "core file size limit is not 0 while running"
    );
    assert!(!seen.core_limit_nonzero_after_hardening);
    if uid != 0 {
        assert!(
            seen.hardened > 0,
            "/proc/<pid> never became root-owned: the process is dumpable"
        );
        assert!(!seen.regressed, "the process became dumpable again");
    }
    if uid == NOBODY {
        assert_eq!(
            seen.same_uid_read_environ,
            Some(false),
            "the process's own uid could read its /proc/<pid>/environ (dumpable)"
        );
    }
    eprintln!(
        "{} samples, {} after hardening, same-uid environ read: {:?}",
        seen.samples, seen.hardened, seen.same_uid_read_environ
    );
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

// ------------------------------------------------------------------ umask 000

fn with_umask_000(sb: &Sandbox, args: &[&std::ffi::OsStr]) -> Command {
    let base = sb.cmd();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(base.get_program())
        .args(args);
    c.env_clear();
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// Every entry below `root`: directories 0700, files 0600 (or 0700 when
/// `exec_ok`), nothing else.
fn assert_owner_only(root: &Path, label: &str) {
    for (p, (mode, node)) in snapshot(root) {
        match node {
            Node::Dir => assert_eq!(mode, 0o700, "{label}: directory {p:?} has mode {mode:o}"),
            Node::File(_) => assert!(
                mode == 0o600 || mode == 0o700,
                "{label}: file {p:?} has mode {mode:o}"
            ),
            other => panic!("{label}: {p:?} is {other:?}"),
        }
    }
}

/// Polls `dir` while `child` runs: every entry seen (temp files, staging
/// trees) must already be owner-only. Returns how many entries were seen.
fn poll_modes(mut child: std::process::Child, dir: &Path, label: &str) -> (Out, usize) {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let ro = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut so, &mut s);
        s
    });
    let re = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut se, &mut s);
        s
    });
    let mut seen = std::collections::BTreeSet::new();
    let status = loop {
        let mut stack = vec![dir.to_owned()];
        while let Some(p) = stack.pop() {
            let Ok(rd) = fs::read_dir(&p) else { continue };
            for e in rd.flatten() {
                let Ok(m) = fs::symlink_metadata(e.path()) else {
                    continue;
                };
                let mode = m.permissions().mode() & 0o7777;
                let name = e.path();
                if m.is_dir() {
                    assert_eq!(mode, 0o700, "{label}: {name:?} existed with mode {mode:o}");
                    stack.push(e.path());
                } else {
                    assert!(
                        mode == 0o600 || mode == 0o700,
                        "{label}: {name:?} existed with mode {mode:o}"
                    );
                }
                seen.insert(name);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
    };
    let out = Out {
        code: status.code().unwrap_or(-1),
        stdout: ro.join().unwrap(),
        stderr: re.join().unwrap(),
    };
    (out, seen.len())
}

#[test]
fn owner_only_from_creation_under_umask_000() {
    let sb = Sandbox::new();
    // a source with loose modes and an executable
    let src = sb.p("src");
    let mut rng = Rng(9);
    write_file(&src.join("secureclaw.json"), b"{}", 0o666);
    write_file(&src.join("credentials/oauth.json"), b"{}", 0o644);
    write_file(
        &src.join("agents/main/agent/tool.sh"),
        b"#!/bin/sh\n",
        0o777,
    );
    for i in 0..32 {
        write_file(
            &src.join(format!("workspace/blob-{i}.bin")),
            &rng.bytes(512 * 1024),
            0o666,
        );
    }
    fs::set_permissions(src.join("workspace"), fs::Permissions::from_mode(0o777)).unwrap();

    // backup into a destination that does not exist yet
    let dest = sb.p("w/newdest");
    let pubkey = age_recipient();
    let args: Vec<&std::ffi::OsStr> = vec![
        "backup".as_ref(),
        "--type".as_ref(),
        "weekly".as_ref(),
        "--no-prune".as_ref(),
        "-r".as_ref(),
        pubkey.as_ref(),
        "--source".as_ref(),
        src.as_os_str(),
        "--dest".as_ref(),
        dest.as_os_str(),
    ];
    let child = with_umask_000(&sb, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, n) = poll_modes(child, &sb.p("w"), "backup");
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(n >= 3, "saw only {n} entries while the backup ran");
    assert_owner_only(&dest, "backup destination");
    let archive = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz.age"))
        .unwrap();
    assert_eq!(fs::metadata(&archive).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(
        fs::metadata(store_sidecar(&archive)).unwrap().mode() & 0o7777,
        0o600
    );

    // restore into a new target, then again over it (with a snapshot into a
    // new destination), both under umask 000
    for (i, snap) in [false, true].into_iter().enumerate() {
        let id = example_key("age-example.key");
        let snapdest = sb.p("w/snapdest");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            id.as_os_str(),
        ];
        let target = sb.p("w/parent/newtarget");
        args.extend(["--target".as_ref(), target.as_os_str()]);
        if snap {
            args.extend([
                "-r".as_ref(),
                pubkey.as_ref(),
                "--dest".as_ref(),
                snapdest.as_os_str(),
            ]);
        } else {
            args.push("--no-snapshot".as_ref());
        }
        let child = with_umask_000(&sb, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, _) = poll_modes(child, &sb.p("w/parent"), &format!("restore {i}"));
        assert_eq!(out.code, 0, "{}", out.text());
        assert_owner_only(&target, "restored tree");
        let tree = snapshot(&target);
        assert_eq!(tree["agents/main/agent/tool.sh"].0, 0o700);
        assert_eq!(tree["secureclaw.json"].0, 0o600);
        if snap {
            assert_owner_only(&snapdest, "snapshot destination");
            assert!(names(&snapdest)
                .iter()
                .any(|n| n.starts_with("pre-restore_")));
        }
    }
    // lock files and anything else the tool made in its runtime/tmp dirs
    assert_owner_only(&sb.p("env/run"), "runtime dir");
    assert_owner_only(&sb.p("env/tmp"), "TMPDIR");
}

fn store_sidecar(a: &Path) -> PathBuf {
    let mut s = a.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Secret material given where public keys or configuration belong (issue 13):
/// an age identity, an age plugin identity, an OpenSSH private key, an armored
/// and a binary OpenPGP secret key, through `-r` (backup and restore's
/// snapshot recipients), `SECURECLAW_BACKUP_KEY`, a recipients file (an
/// identity file's contents where a recipients file is expected), the env
/// template `schedule --install` writes, and a token in a `secureclaw.json`
/// that does not parse (`validate`, `--json`, and restore's automatic
/// validation). The canary never appears on stdout, stderr or in `--json`;
/// every refusal says it is a secret key and how to get the public half.
#[test]
fn secret_material_given_as_input_is_never_echoed() {
    let sb = Sandbox::new();
    let c = canary(&sb.p("env/tmp"));
    let marker = format!(
        "{:016x}",
        Rng(u64::from(std::process::id()) ^ 0x5eed).next()
    );
    let pem_body = format!("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ{marker}");
    let ssh = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body}\n-----END OPENSSH PRIVATE KEY-----\n"
    );
    let pgp_body = format!("lQOYBGZcanary{marker}AQgA");
    let pgp = format!(
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{pgp_body}\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----\n"
    );
    let plugin = format!("AGE-PLUGIN-YUBIKEY-1QQ{}", marker.to_ascii_uppercase());
    let token = format!("sk-canary-token-{marker}");
    let needles: Vec<(&str, String)> = vec![
        ("age secret key", c.secret_key.clone()),
        ("age secret key body", c.secret_key[16..60].to_owned()),
        ("ssh key body", pem_body.clone()),
        ("pgp key body", pgp_body.clone()),
        ("plugin identity", plugin.clone()),
        ("marker", marker.clone()),
        ("config token", token.clone()),
    ];
    let check = |label: &str, o: &Out| {
        let text = o.text().to_ascii_lowercase();
        for (name, n) in &needles {
            assert!(
                !text.contains(&n.to_ascii_lowercase()),
                "{label}: the canary {name} appears in the output:\n{}",
                o.text()
            );
        }
    };

    // files holding secrets where recipients belong
    let id_file = sb.p("env/tmp/identity.txt");
    write_file(
        &id_file,
        format!(
            "# created: 2026-01-01T00:00:00Z\n# public key: {}\n{}\n",
            c.recipient, c.secret_key
        )
        .as_bytes(),
        0o600,
    );
    let ssh_file = sb.p("env/tmp/id_ed25519");
    write_file(&ssh_file, ssh.as_bytes(), 0o600);
    let pgp_file = sb.p("env/tmp/secret.asc");
    write_file(&pgp_file, pgp.as_bytes(), 0o600);
    let pgp_bin = sb.p("env/tmp/secret.gpg");
    let mut bin_key = vec![0xC5, 0x58, 0x04];
    bin_key.extend_from_slice(marker.as_bytes());
    write_file(&pgp_bin, &bin_key, 0o600);
    let mixed = sb.p("env/tmp/recipients.txt");
    write_file(
        &mixed,
        format!("{}\n{}\n", c.recipient, c.secret_key).as_bytes(),
        0o600,
    );

    let src = sb.p("w/src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("secureclaw.json"), b"{}", 0o600);
    let dest = sb.p("arch");
    let values: Vec<(&str, String)> = vec![
        ("age identity", c.secret_key.clone()),
        (
            "age identity, lower case",
            c.secret_key.to_ascii_lowercase(),
        ),
        (
            "age identity in a list",
            format!("{},{}", c.recipient, c.secret_key),
        ),
        ("plugin identity", plugin.clone()),
        ("ssh private key", ssh.clone()),
        ("pgp private key", pgp.clone()),
        ("identity file", id_file.display().to_string()),
        ("ssh key file", ssh_file.display().to_string()),
        (
            "armored pgp secret key file",
            pgp_file.display().to_string(),
        ),
        ("binary pgp secret key file", pgp_bin.display().to_string()),
        (
            "recipients file with an identity line",
            mixed.display().to_string(),
        ),
    ];
    for (what, v) in &values {
        for json in [false, true] {
            let mut args: Vec<&std::ffi::OsStr> = Vec::new();
            if json {
                args.push("--json".as_ref());
            }
            args.extend::<[&std::ffi::OsStr; 6]>([
                "backup".as_ref(),
                "--source".as_ref(),
                src.as_os_str(),
                "--dest".as_ref(),
                dest.as_os_str(),
                "--no-prune".as_ref(),
            ]);
            // -r
            let mut a = args.clone();
            a.extend::<[&std::ffi::OsStr; 2]>(["-r".as_ref(), v.as_ref()]);
            let o = sb.run(&a);
            let label = format!("backup -r {what} (json {json})");
            assert_eq!(o.code, 4, "{label}: {}", o.text());
            assert!(
                o.stderr.contains("a secret key, not a recipient"),
                "{label}: {}",
                o.stderr
            );
            assert!(
                o.stderr.contains("age-keygen -y")
                    || o.stderr.contains("ssh-keygen -y")
                    || o.stderr.contains("gpg --export")
                    || o.stderr.contains("plugin's recipient"),
                "{label}: {}",
                o.stderr
            );
            check(&label, &o);
            if json {
                let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
                assert_eq!(j["error"]["kind"], "key", "{label}");
            }
            // SECURECLAW_BACKUP_KEY
            let o = run_cmd(sb.cmd().args(&args).env("SECURECLAW_BACKUP_KEY", v));
            let label = format!("backup with SECURECLAW_BACKUP_KEY = {what} (json {json})");
            assert_eq!(o.code, 4, "{label}: {}", o.text());
            check(&label, &o);
        }
    }
    assert!(archives_in(&dest).is_empty(), "nothing was written");

    // restore's snapshot recipients, and the env template of schedule --install
    let tar = benign_tar(&[("secureclaw.json", b"{}")], true);
    let archive = write_archive(&sb.p("w"), TOP, Backend::Age, &tar);
    let o = sb.run(&[
        "--json".as_ref(),
        "restore".as_ref(),
        archive.as_os_str(),
        "-i".as_ref(),
        example_key("age-example.key").as_os_str(),
        "--target".as_ref(),
        sb.target().as_os_str(),
        "-r".as_ref(),
        c.secret_key.as_ref(),
    ]);
    assert_eq!(o.code, 4, "{}", o.text());
    check("restore -r", &o);
    let o = run_cmd(
        sb.cmd()
            .args(["--json", "schedule", "systemd", "--install", "--dest"])
            .arg(&dest)
            .arg("--source")
            .arg(&src)
            .env("SECURECLAW_BACKUP_KEY", &c.secret_key),
    );
    assert_eq!(o.code, 0, "{}", o.text());
    check("schedule --install", &o);
    let env_file = sb.p("env/home/.config/secureclaw-backup/backup.env");
    let env = fs::read_to_string(&env_file).unwrap();
    assert!(!env.contains(&c.secret_key), "{env}");

    // a token in a config that does not parse: validate, --json, and restore
    let bad = format!("{{\n  gateway: {{ auth: {{ token: \"{token}\" }} oops }},\n}}\n");
    let target = sb.p("w/parent/bad-config");
    fs::create_dir_all(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    write_file(&target.join("secureclaw.json"), bad.as_bytes(), 0o600);
    for json in [false, true] {
        let mut c = sb.cmd();
        if json {
            c.arg("--json");
        }
        let o = run_cmd(c.arg("validate").arg("--target").arg(&target));
        assert_ne!(o.code, 0, "{}", o.text());
        assert!(o.text().contains("line 2, column"), "{}", o.text());
        check(&format!("validate (json {json})"), &o);
    }
    let tar = benign_tar(&[("secureclaw.json", bad.as_bytes())], true);
    let archive = write_archive(&sb.p("w"), "daily_20260102_000000", Backend::Age, &tar);
    let _ = fs::remove_dir_all(sb.target());
    for json in [false, true] {
        let mut c = sb.cmd();
        if json {
            c.arg("--json");
        }
        let o = run_cmd(
            c.arg("restore")
                .arg(&archive)
                .arg("-i")
                .arg(example_key("age-example.key"))
                .arg("--target")
                .arg(sb.target())
                .arg("--no-snapshot"),
        );
        assert!(o.text().contains("line 2, column"), "{}", o.text());
        check(&format!("restore's validation (json {json})"), &o);
    }

    // a 100,000-byte bad value is not echoed whole
    let long = format!("not-a-key {}", "x".repeat(100_000));
    let o = sb.run(&[
        "--json".as_ref(),
        "backup".as_ref(),
        "--source".as_ref(),
        src.as_os_str(),
        "--dest".as_ref(),
        dest.as_os_str(),
        "-r".as_ref(),
        long.as_ref(),
    ]);
    assert_eq!(o.code, 4, "{}", o.text());
    assert!(
        o.stdout.len() + o.stderr.len() < 2_000,
        "{} bytes of output",
        o.stdout.len() + o.stderr.len()
    );
}

fn archives_in(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.contains(".tar.gz"))
        .collect()
}
