//! Operator experience through the real binary (issue 16, items 2, 6, 7, 9,
//! 10, 11): the exit code of a failed validation, lock files that do not
//! pile up, errors that name the archive and the key, which key opens an
//! archive, the `[backup]` section of the configuration file, and progress.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// An owner-only copy of an example key (the repository's files are 0644,
/// which earns a warning).
fn private_key(sb: &Sandbox, name: &str) -> PathBuf {
    let dir = sb.p("keys");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let p = dir.join(name);
    write_file(&p, &fs::read(example_key(name)).unwrap(), 0o600);
    p
}

fn pgp_cert() -> String {
    example_key("openpgp-example.pub.asc").display().to_string()
}

/// A data directory and a daily age backup of it; returns (source, dest, archive).
fn backed_up(sb: &Sandbox) -> (PathBuf, PathBuf, PathBuf) {
    let src = sb.p("src");
    make_tree(&src);
    let dest = sb.p("dest");
    let o = sb.run(&[
        "--json",
        "backup",
        "--source",
        s(&src),
        "--dest",
        s(&dest),
        "-r",
        &age_recipient(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let archive = PathBuf::from(o.json()["backup"]["archive"].as_str().unwrap());
    (src, dest, archive)
}

fn lock_files(sb: &Sandbox) -> Vec<String> {
    let uid = rustix::process::getuid().as_raw();
    let rt = sb.p(&format!("env/run/secureclaw-backup-{uid}"));
    let mut v: Vec<String> = fs::read_dir(&rt)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---- item 9: the verdict of a restore is one --------------------------------

#[test]
fn validate_failure_is_exit_7_and_a_missing_target_exit_1() {
    let sb = Sandbox::new();
    let d = sb.p("data");
    make_tree(&d);
    let o = sb.run(&["validate", "--target", s(&d), "--fix"]);
    assert_eq!(o.code, 0, "{}", o.text());
    fs::set_permissions(
        d.join("credentials/oauth.json"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = sb.run(&["validate", "--target", s(&d)]);
    assert_eq!(o.code, 7, "{}", o.text());
    assert!(
        o.stderr.contains("validation failed: 1 check"),
        "{}",
        o.stderr
    );
    let o = sb.run(&["--json", "validate", "--target", s(&d)]);
    assert_eq!(o.code, 7);
    let j = o.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["report"]["ok"], false);
    let o = sb.run(&["--json", "validate", "--target", s(&sb.p("nowhere"))]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);
}

#[test]
fn restore_whose_validation_fails_exits_7_after_the_swap() {
    let sb = Sandbox::new();
    let bad = b"{\n  gateway: { port: 1 oops },\n}\n";
    let tar = benign_tar(&[("secureclaw.json", bad)], true);
    let archive = write_archive(&sb.p("arch"), "daily_20260102_000000", Backend::Age, &tar);
    let key = private_key(&sb, "age-example.key");
    let target = sb.target();
    for json in [false, true] {
        let _ = fs::remove_dir_all(sb.target());
        let mut args = vec![];
        if json {
            args.push("--json");
        }
        args.extend([
            "restore",
            s(&archive),
            "-i",
            s(&key),
            "--target",
            s(&target),
            "--no-snapshot",
        ]);
        let o = sb.run(&args);
        assert_eq!(o.code, 7, "{}", o.text());
        assert!(o.stderr.contains("validation failed"), "{}", o.stderr);
        assert!(o.text().contains("not valid JSON5"), "{}", o.text());
        // the restore itself is in place
        assert_eq!(fs::read(sb.target().join("secureclaw.json")).unwrap(), bad);
        if json {
            let j = o.json();
            assert_eq!(j["ok"], false, "{j}");
            assert_eq!(j["restore"]["validation"]["ok"], false);
        }
    }
}

/// The issue's case: a daily restore keeps `workspace/` and `logs/`, whose
/// files are 0644; what the restore did not write is a warning, not a
/// failed restore.
#[test]
fn restore_judges_what_it_wrote_not_what_it_kept() {
    let sb = Sandbox::new();
    let (src, _dest, archive) = backed_up(&sb);
    let key = private_key(&sb, "age-example.key");
    let o = sb.run(&[
        "--json",
        "restore",
        s(&archive),
        "-i",
        s(&key),
        "--target",
        s(&src),
        "--no-snapshot",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let j = o.json();
    let checks = j["restore"]["validation"]["checks"].as_array().unwrap();
    let kept = checks
        .iter()
        .find(|c| c["name"] == "kept-permissions")
        .unwrap_or_else(|| panic!("{checks:?}"));
    assert_eq!(kept["status"], "warn");
    assert!(
        kept["items"].to_string().contains("workspace/report.md"),
        "{kept}"
    );
    let perms = checks.iter().find(|c| c["name"] == "permissions").unwrap();
    assert_eq!(perms["status"], "ok", "{perms}");
    // `validate` itself still judges the whole tree
    let o = sb.run(&["validate", "--target", s(&src)]);
    assert_eq!(o.code, 7, "{}", o.text());
}

// ---- item 10: lock files do not pile up -------------------------------------

#[test]
fn lock_files_do_not_pile_up() {
    let sb = Sandbox::new();
    let src = sb.p("src");
    make_tree(&src);
    let key = private_key(&sb, "age-example.key");
    for i in 0..5 {
        let dest = sb.p(&format!("dest{i}"));
        let o = sb.run(&[
            "--json",
            "backup",
            "--source",
            s(&src),
            "--dest",
            s(&dest),
            "-r",
            &age_recipient(),
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        let archive = o.json()["backup"]["archive"].as_str().unwrap().to_owned();
        // a restore into a new target each time (a new inode after the swap)
        let target = sb.p(&format!("w/parent/t{i}"));
        let o = sb.run(&[
            "restore",
            &archive,
            "-i",
            s(&key),
            "--target",
            s(&target),
            "--no-snapshot",
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
    }
    let locks = lock_files(&sb);
    // the last run's (restore target by path and inode): no more
    assert!(
        !locks.is_empty() && locks.len() <= 2,
        "lock files left: {locks:?}"
    );
}

// ---- item 7: errors that name the thing -------------------------------------

#[test]
fn drill_picks_the_newest_archive_the_identity_opens() {
    let sb = Sandbox::new();
    let src = sb.p("src");
    make_tree(&src);
    let dest = sb.p("dest");
    let mut names = vec![];
    for r in [age_recipient(), pgp_cert()] {
        let o = sb.run(&[
            "--json",
            "backup",
            "--no-prune",
            "--source",
            s(&src),
            "--dest",
            s(&dest),
            "-r",
            &r,
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        names.push(o.json()["backup"]["archive"].as_str().unwrap().to_owned());
    }
    let key = private_key(&sb, "age-example.key");
    let scratch = sb.p("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let o = sb.run(&[
        "-v",
        "drill",
        "-i",
        s(&key),
        "--dest",
        s(&dest),
        "--scratch",
        s(&scratch),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stdout.contains(&format!("drill of {}", names[0])),
        "{}",
        o.text()
    );
    // the OpenPGP one was passed over, and said so
    assert!(o.stderr.contains("passing over"), "{}", o.stderr);

    // only the OpenPGP archive left: refused, naming it and why
    fs::remove_file(&names[0]).unwrap();
    let o = sb.run(&[
        "drill",
        "-i",
        s(&key),
        "--dest",
        s(&dest),
        "--scratch",
        s(&scratch),
    ]);
    assert_eq!(o.code, 4, "{}", o.text());
    let base = Path::new(&names[1]).file_name().unwrap().to_str().unwrap();
    assert!(o.stderr.contains(base), "{}", o.stderr);
    assert!(o.stderr.contains("openpgp-encrypted"), "{}", o.stderr);
    // --archive names the archive tried in the key error
    let o = sb.run(&[
        "drill",
        "-i",
        s(&key),
        "--archive",
        &names[1],
        "--scratch",
        s(&scratch),
    ]);
    assert_eq!(o.code, 4, "{}", o.text());
    assert!(o.stderr.contains(&names[1]), "{}", o.stderr);
}

#[test]
fn a_tampered_restore_names_the_archive() {
    let sb = Sandbox::new();
    let (_src, _dest, archive) = backed_up(&sb);
    let mut bytes = fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&archive, &bytes).unwrap();
    let key = private_key(&sb, "age-example.key");
    let o = sb.run(&[
        "restore",
        s(&archive),
        "-i",
        s(&key),
        "--target",
        s(&sb.target()),
        "--no-snapshot",
    ]);
    assert_eq!(o.code, 3, "{}", o.text());
    let line = o.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(line.contains(s(&archive)), "{line}");
    assert!(!sb.target().exists());
}

#[test]
fn identity_directory_names_the_key_file_inside() {
    let sb = Sandbox::new();
    let (_src, _dest, archive) = backed_up(&sb);
    let keys = sb.p("mykeys");
    let o = sb.run(&["keygen", "age", "--out", s(&keys)]);
    assert_eq!(o.code, 0, "{}", o.text());
    let target = sb.target();
    for args in [
        vec!["verify", s(&archive), "-i", s(&keys)],
        vec![
            "restore",
            s(&archive),
            "-i",
            s(&keys),
            "--target",
            s(&target),
            "--no-snapshot",
        ],
    ] {
        let cmd = args[0];
        let o = sb.run(&args);
        assert_eq!(o.code, 2, "{cmd}: {}", o.text());
        assert!(o.stderr.contains("is a directory"), "{}", o.stderr);
        let hint = o.stderr.lines().find(|l| l.starts_with("hint:")).unwrap();
        assert!(
            hint.contains(s(&keys.join("secureclaw-backup.age-key"))),
            "{hint}"
        );
        assert!(!hint.contains(".pub"), "{hint}");
    }
}

#[test]
fn companions_given_as_the_archive_are_usage_errors() {
    let sb = Sandbox::new();
    let (_src, _dest, archive) = backed_up(&sb);
    let sidecar = format!("{}.sha256", archive.display());
    let meta = format!("{}.meta", archive.display());
    assert!(Path::new(&sidecar).exists() && Path::new(&meta).exists());
    let key = private_key(&sb, "age-example.key");
    for (args, file) in [
        (vec!["verify", sidecar.as_str()], &sidecar),
        (vec!["verify", meta.as_str(), "-i", s(&key)], &meta),
        (
            vec!["restore", sidecar.as_str(), "-i", s(&key), "--no-snapshot"],
            &sidecar,
        ),
        (
            vec!["verify", "whatever.tar.gz.age.sig"],
            &"whatever.tar.gz.age.sig".to_owned(),
        ),
    ] {
        let o = sb.run(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.text());
        assert!(o.stderr.contains(file.as_str()), "{}", o.stderr);
        let hint = o.stderr.lines().find(|l| l.starts_with("hint:")).unwrap();
        let stem = file.rsplit_once('.').unwrap().0;
        assert!(
            hint.contains(&format!("name the archive itself: {stem}")),
            "{hint}"
        );
    }
}

#[test]
fn an_identity_readable_by_others_is_warned_about() {
    let sb = Sandbox::new();
    let (_src, _dest, archive) = backed_up(&sb);
    let key = private_key(&sb, "age-example.key");
    let o = sb.run(&["verify", s(&archive), "-i", s(&key)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(!o.stderr.contains("may read it"), "{}", o.stderr);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let o = sb.run(&["verify", s(&archive), "-i", s(&key)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stderr.contains("mode 0640") && o.stderr.contains("chmod 600"),
        "{}",
        o.stderr
    );
}

// ---- item 6: which key opens this -------------------------------------------

#[test]
fn keyless_verify_and_list_name_the_keys() {
    let sb = Sandbox::new();
    let (src, dest, age_archive) = backed_up(&sb);
    let o = sb.run(&[
        "--json",
        "backup",
        "--no-prune",
        "--source",
        s(&src),
        "--dest",
        s(&dest),
        "-r",
        &pgp_cert(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let pgp_archive = PathBuf::from(o.json()["backup"]["archive"].as_str().unwrap());
    let pgp_h = secureclaw_backup::keymatch::holder(
        Path::new("x"),
        &fs::read(example_key("openpgp-example.sec.asc")).unwrap(),
    );
    let (fpr, ids) = &pgp_h.openpgp[0];

    let o = sb.run(&["verify", s(&age_archive)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.stderr.contains(&age_recipient()), "{}", o.stderr);
    assert!(o.stderr.contains("by its .meta"), "{}", o.stderr);
    let o = sb.run(&["--json", "verify", s(&pgp_archive)]);
    let v = &o.json()["verified"][0];
    assert_eq!(v["keys_from"], "meta");
    let line = v["keys"][0].as_str().unwrap();
    assert!(line.contains(fpr.as_str()), "{line}");
    assert!(
        ids.iter().any(|i| line.contains(&format!("subkey {i}"))),
        "{line}"
    );

    let o = sb.run(&["list", "--dest", s(&dest)]);
    assert_eq!(o.code, 0, "{}", o.text());
    for a in [&age_archive, &pgp_archive] {
        assert!(
            o.stdout.contains(a.file_name().unwrap().to_str().unwrap()),
            "{}",
            o.stdout
        );
    }
    assert!(o.stdout.contains(&age_recipient()), "{}", o.stdout);
    assert!(o.stdout.contains(fpr.as_str()), "{}", o.stdout);
    let o = sb.run(&["--json", "list", "--dest", s(&dest)]);
    let j = o.json();
    let row = j["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["format"] == "age")
        .unwrap()
        .clone();
    assert_eq!(row["keys"][0], age_recipient(), "{row}");
    assert_eq!(
        row["recipients"][0], "X25519",
        "the header's own, as before"
    );

    // without the .meta: what the header tells
    fs::remove_file(format!("{}.meta", age_archive.display())).unwrap();
    let o = sb.run(&["--json", "verify", s(&age_archive)]);
    let v = &o.json()["verified"][0];
    assert_eq!(v["keys_from"], "header");
    assert!(v["keys"][0].as_str().unwrap().starts_with("X25519"), "{v}");
}

#[test]
fn identities_are_matched_to_recipients() {
    let sb = Sandbox::new();
    let (_src, _dest, archive) = backed_up(&sb);
    let key = private_key(&sb, "age-example.key");
    let o = sb.run(&["verify", s(&archive), "-i", s(&key)]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stderr.contains(&format!(
            "opened by: {} is {}",
            key.display(),
            age_recipient()
        )),
        "{}",
        o.stderr
    );
    // an OpenPGP key for an age archive: the key error says what is needed
    let pgp = private_key(&sb, "openpgp-example.sec.asc");
    let o = sb.run(&["verify", s(&archive), "-i", s(&pgp)]);
    assert_eq!(o.code, 4, "{}", o.text());
    assert!(o.stderr.contains("age-encrypted"), "{}", o.stderr);
}

#[test]
fn a_meta_that_disagrees_with_the_manifest_is_an_integrity_failure() {
    let sb = Sandbox::new();
    let (_src, _dest, archive) = backed_up(&sb);
    let key = private_key(&sb, "age-example.key");
    let meta = PathBuf::from(format!("{}.meta", archive.display()));
    let other = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let text = fs::read_to_string(&meta)
        .unwrap()
        .replace(&age_recipient(), other);
    fs::write(&meta, text).unwrap();
    let o = sb.run(&["verify", s(&archive), "-i", s(&key)]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(
        o.stderr.contains(other) && o.stderr.contains(&age_recipient()),
        "{}",
        o.stderr
    );
    let o = sb.run(&[
        "restore",
        s(&archive),
        "-i",
        s(&key),
        "--target",
        s(&sb.target()),
        "--no-snapshot",
    ]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(
        o.stderr.contains(".meta names the recipients"),
        "{}",
        o.stderr
    );
    assert!(!sb.target().exists());
}

// ---- item 11: [backup] in the configuration file ----------------------------

fn write_config(sb: &Sandbox, text: &str) -> PathBuf {
    let p = sb.p("env/home/.config/secureclaw-backup/config.toml");
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn backup_section_supplies_the_defaults_and_flags_and_env_win() {
    let sb = Sandbox::new();
    make_tree(&sb.p("src"));
    fs::write(sb.p("recipients.txt"), format!("{}\n", age_recipient())).unwrap();
    write_config(
        &sb,
        &format!(
            "[backup]\nsource = \"{}\"\ndest = \"{}\"\nrecipients_file = \"{}\"\n\n[backup.retention.daily]\nkeep_daily = 1\nkeep_last = 1\n",
            sb.p("src").display(),
            sb.p("dest").display(),
            sb.p("recipients.txt").display()
        ),
    );
    // no flags at all
    let o = sb.run(&["--json", "backup"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let a = o.json()["backup"]["archive"].as_str().unwrap().to_owned();
    assert!(a.starts_with(s(&sb.p("dest"))), "{a}");
    assert_eq!(o.json()["backup"]["recipients"][0], age_recipient());
    // the retention of the section: one daily kept
    let o = sb.run(&["--json", "backup"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let o = sb.run(&["--json", "list"]);
    assert_eq!(
        o.json()["archives"].as_array().unwrap().len(),
        1,
        "{}",
        o.stdout
    );
    // a flag wins over the section, so does the environment
    let o = sb.run(&["--json", "backup", "--dest", s(&sb.p("flag-dest"))]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.json()["backup"]["archive"]
        .as_str()
        .unwrap()
        .starts_with(s(&sb.p("flag-dest"))));
    let o = run_cmd(
        sb.cmd()
            .env("BACKUP_ROOT", sb.p("env-dest"))
            .args(["--json", "backup"]),
    );
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.json()["backup"]["archive"]
        .as_str()
        .unwrap()
        .starts_with(s(&sb.p("env-dest"))));
    // --keep-daily on the command line replaces the section's daily rule
    let o = sb.run(&["--json", "prune", "--dry-run", "--keep-daily", "5"]);
    assert_eq!(o.code, 0, "{}", o.text());
}

#[test]
fn unknown_keys_in_the_configuration_are_named_with_their_line() {
    let sb = Sandbox::new();
    let cfg = write_config(
        &sb,
        "[backup]\ndest = \"/tmp/x\"\ndestination = \"/tmp/y\"\n",
    );
    for args in [vec!["list"], vec!["backup"], vec!["status"]] {
        let o = sb.run(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.text());
        assert!(o.stderr.contains(s(&cfg)), "{}", o.stderr);
        assert!(o.stderr.contains("line 3"), "{}", o.stderr);
        assert!(o.stderr.contains("destination"), "{}", o.stderr);
    }
    // commands that use no setting still run
    let o = sb.run(&["completions", "bash"]);
    assert_eq!(o.code, 0, "{}", o.text());
    write_config(&sb, "[backup]\ntiers = [\"nas\"]\n");
    let o = sb.run(&["list"]);
    assert_eq!(o.code, 2, "{}", o.text());
    assert!(
        o.stderr.contains("\"nas\", which is no [[tier]]"),
        "{}",
        o.stderr
    );
    write_config(&sb, "[backup.retention.hourly]\nkeep_last = 2\n");
    let o = sb.run(&["list"]);
    assert_eq!(o.code, 2, "{}", o.text());
}

// ---- item 2: progress that means something ----------------------------------

/// The bytes a counter was advanced by, and the totals it was given.
fn advanced_and_totals(calls: &[secureclaw_backup::events::ProgressCall]) -> (u64, Vec<u64>) {
    use secureclaw_backup::events::ProgressCall;
    let mut adv = 0;
    let mut totals = vec![];
    for c in calls {
        match c {
            ProgressCall::Advance(n) => adv += n,
            ProgressCall::SetTotal(t) => totals.push(*t),
            _ => {}
        }
    }
    (adv, totals)
}

/// The library gives the backup's counter a real total (the walk's sizes)
/// before the first byte, and moves it byte by byte (a large file moves it
/// many times, not once); the restore's counter has the archive's size.
#[test]
fn backup_and_restore_report_real_totals_and_byte_progress() {
    use secureclaw_backup::events::{Collect, ProgressCall};
    let sb = Sandbox::new();
    let src = sb.p("src");
    make_tree(&src);
    // one large file (4 MiB) among the small ones
    let big: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write_file(&src.join("agents/main/agent/big.bin"), &big, 0o600);
    let enc: std::sync::Arc<dyn secureclaw_backup::crypto::Encryptor> = std::sync::Arc::from(
        secureclaw_backup::crypto::parse_recipients(&[age_recipient()], None).unwrap(),
    );
    let opts = secureclaw_backup::backup::BackupOptions {
        btype: secureclaw_backup::store::BackupType::Weekly,
        source: src.clone(),
        dest: sb.p("dest"),
        excludes: vec![],
        level: 1,
        threads: 2,
        encryptor: Some(enc),
        prune: None,
        sign: None,
    };
    let events = Collect::default();
    let r = secureclaw_backup::backup::run_backup(&opts, &events).unwrap();
    let calls = events.progress_calls();
    let start = calls
        .iter()
        .position(|c| matches!(c, ProgressCall::Start(_, w) if w == "backup"))
        .unwrap_or_else(|| panic!("{calls:?}"));
    // the total comes right after the start, before any movement
    let ProgressCall::SetTotal(total) = calls[start + 1] else {
        panic!("no total first: {calls:?}");
    };
    assert!(
        total >= r.bytes && total < r.bytes + 1024 * (r.files + r.directories + 4),
        "total {total}, bytes {}",
        r.bytes
    );
    let (adv, _) = advanced_and_totals(&calls[start..]);
    assert!(adv >= r.bytes, "advanced {adv} of {}", r.bytes);
    let big_steps = calls[start..]
        .iter()
        .filter(|c| matches!(c, ProgressCall::Advance(n) if *n > 0))
        .count();
    assert!(
        big_steps as u64 > r.files + 8,
        "{big_steps} steps for {} files",
        r.files
    );

    // restore: the archive's size is the total, and all of it is read
    let ids = secureclaw_backup::crypto::Identities::load(
        &[private_key(&sb, "age-example.key")],
        secureclaw_backup::crypto::PassphraseSource::from_flag_or_env(None),
    )
    .unwrap();
    let ropts = secureclaw_backup::restore::RestoreOptions {
        archive: secureclaw_backup::tier::ArchiveRef::Local(r.archive.clone()),
        target: sb.target(),
        dest: sb.p("dest"),
        dry_run: true,
        snapshot_to: None,
        no_snapshot: true,
        stop_gateway: false,
        identities: ids,
        trust: secureclaw_backup::sign::Trust::load(None).unwrap(),
        sign: None,
        include: vec![],
    };
    let events = Collect::default();
    secureclaw_backup::restore::run_restore(&ropts, &events).unwrap();
    let calls = events.progress_calls();
    let (adv, totals) = advanced_and_totals(&calls);
    assert_eq!(totals, vec![r.size], "{calls:?}");
    assert_eq!(adv, r.size);
    assert!(calls.contains(&ProgressCall::Finish));
}

/// On a terminal (`script`), backup and restore draw bars with a total, a
/// rate and an ETA, and `-v` lines are printed above the bar, not between
/// stale copies of it.
#[test]
fn bars_on_a_terminal_only() {
    if !have("script") {
        eprintln!("NOTE: script (util-linux) is missing: the terminal rendering is not tested");
        return;
    }
    let sb = Sandbox::new();
    let src = sb.p("src");
    make_tree(&src);
    let big: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    write_file(&src.join("agents/main/agent/big.bin"), &big, 0o600);
    let dest = sb.p("dest");
    let cmd = format!(
        "{} -v backup --type weekly --threads 1 --compression-level 9 --source {} --dest {} -r {}",
        bin().display(),
        src.display(),
        dest.display(),
        age_recipient()
    );
    let o = run_cmd(
        std::process::Command::new("script")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TERM", "xterm")
            .env("HOME", sb.p("env/home"))
            .env("XDG_RUNTIME_DIR", sb.p("env/run"))
            .env("TMPDIR", sb.p("env/tmp"))
            .stdin(std::process::Stdio::null())
            .args(["-qec", &cmd, "/dev/null"]),
    );
    assert_eq!(o.code, 0, "{}", o.text());
    let screen = o.stdout.clone();
    assert!(screen.contains("backup ["), "no bar: {screen:?}");
    assert!(screen.contains("B/s eta "), "no rate: {screen:?}");
    assert!(screen.contains("eta "), "no ETA: {screen:?}");
    // the total is the walk's (about 48 MiB), never "0 B"
    assert!(
        screen.contains("/48.") || screen.contains("/49."),
        "{screen:?}"
    );
    assert!(!screen.contains("/0 B"), "{screen:?}");
    // without a terminal: no bar at all
    let o = sb.run(&[
        "-v",
        "backup",
        "--type",
        "weekly",
        "--source",
        s(&src),
        "--dest",
        s(&sb.p("dest3")),
        "-r",
        &age_recipient(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        !o.stderr.contains("backup [") && !o.stderr.contains('\r'),
        "{}",
        o.stderr
    );
}

#[test]
fn backup_section_pushes_to_its_tiers() {
    let sb = Sandbox::new();
    make_tree(&sb.p("src"));
    let nas = sb.p("nas");
    let other = sb.p("other");
    write_config(
        &sb,
        &format!(
            "[[tier]]\nname = \"nas\"\nurl = \"{}\"\n\n[[tier]]\nname = \"other\"\nurl = \"{}\"\n\n[backup]\nsource = \"{}\"\ndest = \"{}\"\nrecipients = [\"{}\"]\npush = true\ntiers = [\"nas\"]\n",
            nas.display(),
            other.display(),
            sb.p("src").display(),
            sb.p("dest").display(),
            age_recipient()
        ),
    );
    let o = sb.run(&["--json", "backup"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let j = o.json();
    let name = Path::new(j["backup"]["archive"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_owned();
    assert!(nas.join(&name).exists(), "{j}");
    assert!(!other.join(&name).exists(), "only the tiers named");
    assert_eq!(j["push"].as_array().unwrap().len(), 1, "{j}");
}
