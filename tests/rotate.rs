//! Key rotation (dry run and real run, interrupted and resumed) and the
//! restore drill.

mod common;

use age::secrecy::ExposeSecret;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};

struct Key {
    file: PathBuf,
    recipient: String,
}

fn new_key(env: &Sandbox, name: &str) -> Key {
    let id = age::x25519::Identity::generate();
    let file = env.p(name);
    write_file(
        &file,
        format!("{}\n", id.to_string().expose_secret()).as_bytes(),
        0o600,
    );
    Key {
        file,
        recipient: id.to_public().to_string(),
    }
}

fn backup_to(env: &Sandbox, src: &Path, dest: &Path, btype: &str, rcpt: &str) {
    let o = env.output(&[
        "backup",
        "--type",
        btype,
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "-r",
        rcpt,
    ]);
    assert_eq!(code(&o), 0);
}

fn opens(env: &Sandbox, archive: &Path, key: &Path) -> bool {
    code(&env.output(&[
        "verify",
        archive.to_str().unwrap(),
        "-i",
        key.to_str().unwrap(),
    ])) == 0
}

/// Whether the ciphertext decrypts with `key` (stock age when installed, else
/// our verify, which also checks the sidecar).
fn decrypts(archive: &Path, key: &Path) -> bool {
    if have("age") {
        return std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(key)
            .arg("-o")
            .arg("/dev/null")
            .arg(archive)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    }
    opens(&Sandbox::new(), archive, key)
}

fn three_archives(env: &Sandbox, rcpt: &str) -> PathBuf {
    let src = env.p("src");
    make_tree(&src);
    let dest = env.p("dest");
    for t in ["daily", "weekly", "pre-deploy"] {
        backup_to(env, &src, &dest, t, rcpt);
    }
    dest
}

#[test]
fn dry_run_proves_every_archive_opens_and_writes_nothing() {
    let env = Sandbox::new();
    let old = new_key(&env, "old.key");
    let new = new_key(&env, "new.key");
    let dest = three_archives(&env, &old.recipient);
    let before = snapshot(&dest);
    let o = env.output(&[
        "rotate",
        "--dest",
        dest.to_str().unwrap(),
        "-i",
        old.file.to_str().unwrap(),
        "-r",
        &new.recipient,
        "--dry-run",
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rotate"]["opened"], 3);
    assert_eq!(v["rotate"]["archives"][0]["recipients"][0], "X25519");
    assert_eq!(
        snapshot(&dest),
        before,
        "dry run left the destination byte-identical"
    );
}

#[test]
fn dry_run_names_the_archive_no_identity_opens() {
    let env = Sandbox::new();
    let old = new_key(&env, "old.key");
    let foreign = new_key(&env, "foreign.key");
    let new = new_key(&env, "new.key");
    let dest = three_archives(&env, &old.recipient);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup_to(&env, &env.p("src"), &dest, "daily", &foreign.recipient);
    let foreign_name = archives(&dest)
        .into_iter()
        .find(|a| opens(&env, a, &foreign.file))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let o = env.output(&[
        "rotate",
        "--dest",
        dest.to_str().unwrap(),
        "-i",
        old.file.to_str().unwrap(),
        "-r",
        &new.recipient,
        "--dry-run",
        "--json",
    ]);
    assert_eq!(code(&o), 4);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rotate"]["not_opened"], serde_json::json!([foreign_name]));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&foreign_name));
}

#[test]
fn real_rotation_moves_every_archive_to_the_new_key() {
    let env = Sandbox::new();
    let old = new_key(&env, "old.key");
    let new = new_key(&env, "new.key");
    let dest = three_archives(&env, &old.recipient);
    let o = env.output(&[
        "rotate",
        "--dest",
        dest.to_str().unwrap(),
        "-i",
        old.file.to_str().unwrap(),
        "-r",
        &new.recipient,
    ]);
    assert_eq!(code(&o), 0);
    let all = archives(&dest);
    assert_eq!(all.len(), 3);
    for a in &all {
        assert!(
            !opens(&env, a, &old.file),
            "old key still opens {}",
            a.display()
        );
        assert!(
            opens(&env, a, &new.file),
            "new key does not open {}",
            a.display()
        );
        // sidecars were rewritten
        let o = env.output(&["verify", a.to_str().unwrap()]);
        assert_eq!(code(&o), 0);
    }
    // no temp files or journals left
    let names: Vec<String> = fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn keep_old_keeps_pre_rotate_copies() {
    let env = Sandbox::new();
    let old = new_key(&env, "old.key");
    let new = new_key(&env, "new.key");
    let src = env.p("src");
    make_tree(&src);
    let dest = env.p("dest");
    backup_to(&env, &src, &dest, "daily", &old.recipient);
    let o = env.output(&[
        "rotate",
        "--dest",
        dest.to_str().unwrap(),
        "-i",
        old.file.to_str().unwrap(),
        "-r",
        &new.recipient,
        "--keep-old",
    ]);
    assert_eq!(code(&o), 0);
    let kept: Vec<PathBuf> = fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".pre-rotate"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(opens(&env, &kept[0], &old.file));
}

#[test]
fn killed_rotation_resumes() {
    let env = Sandbox::new();
    let old = new_key(&env, "old.key");
    let new = new_key(&env, "new.key");
    let src = env.p("src");
    make_tree(&src);
    // some bulk so that a rotation takes a moment
    let mut x = 0x9e3779b97f4a7c15u64;
    let blob: Vec<u8> = (0..24 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write_file(&src.join("workspace/blob.bin"), &blob, 0o600);
    let dest = env.p("dest");
    for _ in 0..3 {
        backup_to(&env, &src, &dest, "weekly", &old.recipient);
    }
    for delay_ms in [150u64, 400, 700] {
        let mut child = env
            .cmd()
            .args([
                "rotate",
                "--dest",
                dest.to_str().unwrap(),
                "-i",
                old.file.to_str().unwrap(),
                "-i",
                new.file.to_str().unwrap(),
                "-r",
                &new.recipient,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // every archive is old or new: its ciphertext decrypts with one of the
        // keys (its sidecar may still be the old one while a journal says the
        // rotation of that archive is half done; the re-run below fixes it)
        for a in archives(&dest) {
            assert!(
                decrypts(&a, &old.file) || decrypts(&a, &new.file),
                "{} broken",
                a.display()
            );
        }
    }
    let o = env.output(&[
        "rotate",
        "--dest",
        dest.to_str().unwrap(),
        "-i",
        old.file.to_str().unwrap(),
        "-i",
        new.file.to_str().unwrap(),
        "-r",
        &new.recipient,
    ]);
    assert_eq!(code(&o), 0);
    let all = archives(&dest);
    assert_eq!(all.len(), 3);
    for a in &all {
        assert!(opens(&env, a, &new.file));
        assert!(!opens(&env, a, &old.file));
        assert_eq!(
            code(&env.output(&["verify", a.to_str().unwrap()])),
            0,
            "sidecar matches"
        );
    }
}

#[test]
fn drill_restores_into_scratch_and_reports_phases() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let dest = env.p("dest");
    backup_to(&env, &src, &dest, "daily", &age_recipient());
    let scratch = env.p("scratch");
    fs::create_dir(&scratch).unwrap();
    // what a killed drill leaves behind is shredded by the next one
    write_file(
        &scratch.join("secureclaw-drill-2147483647/data/.env"),
        CANARY.as_bytes(),
        0o600,
    );
    let o = env.output(&[
        "drill",
        "--dest",
        dest.to_str().unwrap(),
        "-i",
        example_key("age-example.key").to_str().unwrap(),
        "--scratch",
        scratch.to_str().unwrap(),
        "--rto",
        "15m",
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["drill"]["within_rto"], true);
    let phases: Vec<&str> = v["drill"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"decrypt+extract") && phases.contains(&"swap"),
        "{phases:?}"
    );
    assert_eq!(
        fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch tree removed"
    );
    // an impossible RTO fails the drill
    let o = env.output(&[
        "drill",
        "--dest",
        dest.to_str().unwrap(),
        "-i",
        example_key("age-example.key").to_str().unwrap(),
        "--scratch",
        scratch.to_str().unwrap(),
        "--rto",
        "0s",
    ]);
    assert_eq!(code(&o), 1);
}
