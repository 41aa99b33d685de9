//! End-to-end tests of the core with the age backend: backup types, restore,
//! verify, interop with the stock `age` and `tar`, failure exit codes.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn backup(env: &Sandbox, src: &Path, dest: &Path, btype: &str) -> std::path::PathBuf {
    let o = env.output(&[
        "backup",
        "--type",
        btype,
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "-r",
        &age_recipient(),
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("one JSON document on stdout");
    assert_eq!(v["ok"], true);
    let p = std::path::PathBuf::from(v["backup"]["archive"].as_str().unwrap());
    assert!(p.exists());
    p
}

fn key() -> String {
    example_key("age-example.key")
        .to_string_lossy()
        .into_owned()
}

fn restore(env: &Sandbox, archive: &Path, target: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "restore",
        archive.to_str().unwrap(),
        "-i",
        &key_static(),
        "--target",
        target.to_str().unwrap(),
        "--dest",
    ];
    let dest = env.p("snapshots");
    let dest_s = dest.to_string_lossy().into_owned();
    args.push(&dest_s);
    args.extend_from_slice(extra);
    env.output(&args)
}

fn key_static() -> &'static str {
    Box::leak(key().into_boxed_str())
}

/// Expected restored view: the source minus what the type leaves out, with
/// owner-only modes.
fn expected(src: &Path, btype: &str) -> Tree {
    let mut s = snapshot(src);
    s.retain(|k, _| {
        !k.ends_with(".lock")
            && (btype == "weekly" || !(k.starts_with("workspace") || k.starts_with("logs")))
    });
    for (_, (mode, node)) in s.iter_mut() {
        *mode = match node {
            Node::Dir => 0o700,
            _ if *mode & 0o100 != 0 => 0o700,
            _ => 0o600,
        };
    }
    s
}

#[test]
fn every_backup_type_round_trips() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    for btype in ["daily", "weekly", "pre-deploy"] {
        let dest = env.p(&format!("dest-{btype}"));
        let a = backup(&env, &src, &dest, btype);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("{btype}_")) && name.ends_with(".tar.gz.age"),
            "{name}"
        );
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // sha256sum -c works on the sidecar
        let ok = Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{name}.sha256"))
            .current_dir(&dest)
            .status()
            .unwrap();
        assert!(ok.success());
        let target = env.p(&format!("restored-{btype}"));
        let o = restore(&env, &a, &target, &["--no-snapshot"]);
        assert_eq!(code(&o), 0);
        assert_eq!(snapshot(&target), expected(&src, btype), "type {btype}");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}

#[test]
fn verify_keyless_and_full() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let a = backup(&env, &src, &env.p("dest"), "daily");
    let o = env.output(&["verify", a.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"][0]["recipients"][0], "X25519");
    assert_eq!(v["verified"][0]["full"], false);
    let o = env.output(&["verify", a.to_str().unwrap(), "-i", &key(), "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"][0]["full"], true);
    assert!(v["verified"][0]["files"].as_u64().unwrap() > 10);
}

#[test]
fn stock_age_and_tar_read_our_archive() {
    if !have("age") {
        eprintln!("skipped: age not installed");
        return;
    }
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let a = backup(&env, &src, &env.p("dest"), "weekly");
    let out = env.p("out");
    fs::create_dir(&out).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i '{}' '{}' | tar xzf - -C '{}'",
            key(),
            a.display(),
            out.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let top = fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    assert!(top
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("weekly_"));
    assert_eq!(
        fs::read(top.join(".env")).unwrap(),
        fs::read(src.join(".env")).unwrap()
    );
    assert!(top.join("manifest.json").exists() && top.join("manifest.txt").exists());
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(top.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["type"], "weekly");
    assert!(m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "agents/main/agent/auth-profiles.json"));
}

/// The guide's production pipeline: `tar czf - -C ROOT NAME | age -r R > F`,
/// with the old daily script's misplaced transcripts.
#[test]
fn legacy_guide_archive_restores_and_transcripts_move_back() {
    if !have("age") {
        eprintln!("skipped: age not installed");
        return;
    }
    let env = Sandbox::new();
    let root = env.p("backups");
    let name = "daily_20250101_020000";
    let d = root.join(name);
    write_file(&d.join("secureclaw.json"), b"{a: 1,}", 0o644);
    write_file(&d.join("credentials/oauth.json"), b"tok", 0o644);
    // the old script's cp -a put transcripts directly in agents/<id>/
    write_file(&d.join("agents/main/abc.jsonl"), b"{\"x\":1}\n", 0o644);
    write_file(&d.join("agents/main/sessions.json"), b"{}", 0o644);
    write_file(&d.join("manifest.txt"), b"SecureClaw Backup\n", 0o644);
    let f = root.join(format!("{name}.tar.gz.age"));
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar czf - -C '{}' '{name}' | age -r '{}' > '{}'",
            root.display(),
            age_recipient(),
            f.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let target = env.p("target");
    make_tree(&target);
    let before = snapshot(&target);
    let o = restore(&env, &f, &target, &["-r", &age_recipient()]);
    assert_eq!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("legacy"), "{err}");
    assert_eq!(
        fs::read(target.join("agents/main/sessions/abc.jsonl")).unwrap(),
        b"{\"x\":1}\n"
    );
    assert!(!target.join("agents/main/abc.jsonl").exists());
    assert_eq!(
        fs::read(target.join("secureclaw.json")).unwrap(),
        b"{a: 1,}"
    );
    // what the legacy archive lacks is kept: the agent's auth profile, workspace
    assert_eq!(
        fs::read(target.join("agents/main/agent/auth-profiles.json")).unwrap(),
        CANARY.as_bytes()
    );
    assert!(target.join("workspace/report.md").exists());
    assert!(!target.join("manifest.txt").exists());
    // the pre-restore snapshot holds the old tree
    let snaps = archives(&env.p("snapshots"));
    assert_eq!(snaps.len(), 1);
    let back = env.p("back");
    let o = restore(&env, &snaps[0], &back, &["--no-snapshot"]);
    assert_eq!(code(&o), 0);
    let mut expect = before;
    expect.retain(|k, _| !k.ends_with(".lock"));
    let got = snapshot(&back);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expect.keys().collect::<Vec<_>>()
    );
}

#[test]
fn legacy_plaintext_tar_gz_and_directory_restore() {
    let env = Sandbox::new();
    let root = env.p("backups");
    let name = "daily_20250101_020000";
    write_file(&root.join(name).join("secureclaw.json"), b"{b: 2}", 0o644);
    write_file(&root.join(name).join("credentials/x.json"), b"x", 0o644);
    let tgz = root.join(format!("{name}.tar.gz"));
    assert!(Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&root)
        .arg(name)
        .status()
        .unwrap()
        .success());
    let t1 = env.p("t1");
    let o = restore(&env, &tgz, &t1, &["--no-snapshot"]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not encrypted"));
    assert_eq!(fs::read(t1.join("secureclaw.json")).unwrap(), b"{b: 2}");
    let t2 = env.p("t2");
    let o = restore(&env, &root.join(name), &t2, &["--no-snapshot"]);
    assert_eq!(code(&o), 0);
    assert_eq!(fs::read(t2.join("credentials/x.json")).unwrap(), b"x");
    assert_eq!(
        fs::metadata(t2.join("credentials/x.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

fn tamper_case(mutate: impl Fn(&mut Vec<u8>)) -> (i32, Tree, Tree) {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let a = backup(&env, &src, &env.p("dest"), "daily");
    let mut data = fs::read(&a).unwrap();
    mutate(&mut data);
    fs::write(&a, &data).unwrap();
    let target = env.p("target");
    make_tree(&target);
    write_file(&target.join("secureclaw.json"), b"{current: true}", 0o600);
    let before = snapshot(&target);
    let o = restore(&env, &a, &target, &["--no-snapshot"]);
    let after = snapshot(&target);
    // nothing left beside the target
    let leftovers: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".target"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind");
    (code(&o), before, after)
}

#[test]
fn tampered_byte_is_an_integrity_failure() {
    let (c, before, after) = tamper_case(|d| {
        let i = d.len() / 2;
        d[i] ^= 0x40;
    });
    assert_eq!(c, 3);
    assert_eq!(before, after);
}

#[test]
fn truncated_archive_is_an_integrity_failure() {
    let (c, before, after) = tamper_case(|d| d.truncate(d.len() - 100));
    assert_eq!(c, 3);
    assert_eq!(before, after);
}

#[test]
fn wrong_key_is_a_key_problem() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let a = backup(&env, &src, &env.p("dest"), "daily");
    let other = env.p("other.key");
    write_file(
        &other,
        {
            use age::secrecy::ExposeSecret;
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret()
                .as_bytes()
                .to_vec()
        }
        .as_slice(),
        0o600,
    );
    let target = env.p("target");
    make_tree(&target);
    let before = snapshot(&target);
    let o = env.output(&[
        "restore",
        a.to_str().unwrap(),
        "-i",
        other.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--no-snapshot",
    ]);
    assert_eq!(code(&o), 4);
    assert_eq!(snapshot(&target), before);
    let o = env.output(&["verify", a.to_str().unwrap(), "-i", other.to_str().unwrap()]);
    assert_eq!(code(&o), 4);
}

#[test]
fn no_recipient_is_refused_and_plaintext_needs_the_flag() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let dest = env.p("dest");
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 4);
    assert!(archives(&dest).is_empty());
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "-r",
        &age_recipient(),
        "-r",
        "DEADBEEFDEADBEEF",
    ]);
    assert_eq!(code(&o), 2);
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "--insecure-plaintext",
    ]);
    assert_eq!(code(&o), 0);
    let a = archives(&dest);
    assert_eq!(a.len(), 1);
    assert!(a[0].to_string_lossy().ends_with(".tar.gz"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("NOT be encrypted"));
    let list = Command::new("tar").arg("tzf").arg(&a[0]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("/manifest.json"));
}

#[test]
fn recipient_from_environment_and_recipients_file() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let dest = env.p("dest");
    let o = env
        .cmd()
        .args([
            "backup",
            "--source",
            src.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
        ])
        .env(
            "SECURECLAW_BACKUP_KEY",
            format!(
                "{},{}",
                age_recipient(),
                fs::read_to_string(example_key("ssh-example.pub"))
                    .unwrap()
                    .trim()
            ),
        )
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let a = &archives(&dest)[0];
    let o = env.output(&["verify", a.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"][0]["recipients"].as_array().unwrap().len(), 2);
    // the SSH identity opens it too
    let o = env.output(&[
        "verify",
        a.to_str().unwrap(),
        "-i",
        example_key("ssh-example").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
    // a recipients file with comments
    let rf = env.p("recipients.txt");
    write_file(
        &rf,
        format!("# ops\n{}\n", age_recipient()).as_bytes(),
        0o600,
    );
    let dest2 = env.p("dest2");
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest2.to_str().unwrap(),
        "-r",
        rf.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
}

#[test]
fn passphrase_protected_identity_from_file() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let dest = env.p("dest");
    let rcpt = fs::read_to_string(example_key("age-example-protected.pub")).unwrap();
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "-r",
        rcpt.trim(),
    ]);
    assert_eq!(code(&o), 0);
    let a = &archives(&dest)[0];
    let pf = env.p("pass");
    write_file(&pf, b"example\n", 0o600);
    let id = example_key("age-example-protected.key");
    let o = env.output(&[
        "verify",
        a.to_str().unwrap(),
        "-i",
        id.to_str().unwrap(),
        "--passphrase-file",
        pf.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
    write_file(&pf, b"wrong\n", 0o600);
    let o = env.output(&[
        "verify",
        a.to_str().unwrap(),
        "-i",
        id.to_str().unwrap(),
        "--passphrase-file",
        pf.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 4);
    // no terminal and no file: a clear key error, not a hang
    let o = env.output(&["verify", a.to_str().unwrap(), "-i", id.to_str().unwrap()]);
    assert_eq!(code(&o), 4);
}

#[test]
fn no_plaintext_reaches_the_disk() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let dest = env.p("dest");
    backup(&env, &src, &dest, "weekly");
    assert!(files_containing(&dest, CANARY.as_bytes()).is_empty());
    assert!(files_containing(&env.p("env/tmp"), CANARY.as_bytes()).is_empty());
    assert!(files_containing(&env.p("env/run"), CANARY.as_bytes()).is_empty());
}

#[test]
fn restore_without_snapshot_recipients_is_refused() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let a = backup(&env, &src, &env.p("dest"), "daily");
    let target = env.p("target");
    make_tree(&target);
    let before = snapshot(&target);
    let o = restore(&env, &a, &target, &[]);
    assert_eq!(code(&o), 5);
    assert_eq!(snapshot(&target), before);
    // dry run writes nothing and needs no recipients
    let o = restore(&env, &a, &target, &["--dry-run", "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["restore"]["dry_run"], true);
    assert!(v["restore"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "workspace"));
    assert_eq!(snapshot(&target), before);
    assert!(!env.p("snapshots").exists());
}

#[test]
fn running_gateway_blocks_restore_unless_stopped() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    let a = backup(&env, &src, &env.p("dest"), "daily");
    let target = env.p("target");
    make_tree(&target);
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let uid = rustix_uid();
    let lockdir = env.p("env/tmp").join(format!("secureclaw-{uid}"));
    fs::create_dir_all(&lockdir).unwrap();
    fs::write(
        lockdir.join("gateway.0123abcd.lock"),
        serde_json::json!({"pid": child.id(), "createdAt": "x", "configPath": target.join("secureclaw.json")}).to_string(),
    )
    .unwrap();
    let o = restore(&env, &a, &target, &["--no-snapshot"]);
    assert_eq!(code(&o), 5);
    assert!(String::from_utf8_lossy(&o.stderr).contains("gateway"));
    let o = restore(&env, &a, &target, &["--no-snapshot", "--stop-gateway"]);
    assert_eq!(code(&o), 0);
    let mut child = child;
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "the gateway got SIGTERM");
}

fn rustix_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn concurrent_run_on_the_same_directory_fails_fast() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    // hold the source's lock the way the tool does: flock on the lock file
    let abs = fs::canonicalize(&src).unwrap();
    use sha2::Digest;
    let key = hex::encode(&sha2::Sha256::digest(abs.as_os_str().as_encoded_bytes())[..12]);
    let lockdir = env
        .p("env/run")
        .join(format!("secureclaw-backup-{}", rustix_uid()));
    fs::create_dir_all(&lockdir).unwrap();
    let lockfile = lockdir.join(format!("{key}.lock"));
    let mut holder = Command::new("flock")
        .arg(&lockfile)
        .arg("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dest = env.p("dest");
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "-r",
        &age_recipient(),
    ]);
    holder.kill().ok();
    holder.wait().ok();
    assert_eq!(code(&o), 5);
    assert!(archives(&dest).is_empty());
}

#[test]
fn same_second_backups_get_a_suffix() {
    let env = Sandbox::new();
    let src = env.p("src");
    write_file(&src.join("secureclaw.json"), b"{}", 0o600);
    let dest = env.p("dest");
    for _ in 0..3 {
        backup(&env, &src, &dest, "daily");
    }
    let names: Vec<String> = archives(&dest)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3);
    let uniq: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(uniq.len(), 3);
}

#[test]
fn skipped_entries_are_warnings_in_the_manifest() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    std::os::unix::fs::symlink("/etc/passwd", src.join("credentials/link")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .unwrap()
        .success());
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        env.p("dest").to_str().unwrap(),
        "-r",
        &age_recipient(),
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<&str> = v["backup"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"symlink") && kinds.contains(&"fifo") && kinds.contains(&"lock-file"),
        "{kinds:?}"
    );
    let o = env.output(&[
        "backup",
        "--source",
        src.to_str().unwrap(),
        "--dest",
        env.p("dest").to_str().unwrap(),
        "-r",
        &age_recipient(),
        "--strict",
    ]);
    assert_eq!(code(&o), 1);
}
