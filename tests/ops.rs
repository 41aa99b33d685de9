//! Operations commands through the real binary: list, prune, status, validate,
//! schedule, completions.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{TimeDelta, Utc};

use common::{bin, code, json, s as p, walk};

/// Runs the binary with a private HOME (so no default path of the real user is
/// touched) and the given arguments.
fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("HOME", home)
        .env_remove("BACKUP_ROOT")
        .env_remove("SECURECLAW_BACKUP_KEY")
        .env_remove("SECURECLAW_STATE_DIR")
        .env_remove("SECURECLAW_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("run binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ts(ago: TimeDelta) -> String {
    (Utc::now() - ago).format("%Y%m%d_%H%M%S").to_string()
}

/// A gzip-looking archive with a correct sidecar.
fn fake_plain_archive(dest: &Path, name: &str) -> PathBuf {
    let path = dest.join(name);
    fs::write(&path, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let digest = secureclaw_backup::store::sha256_file(&path).unwrap();
    secureclaw_backup::store::write_sidecar(&path, &digest).unwrap();
    path
}

fn example_key() -> Option<PathBuf> {
    let k = common::example_key("age-example.pub");
    k.exists().then_some(k)
}

/// A small owner-only data directory.
fn data_dir(root: &Path) -> PathBuf {
    let d = root.join("data");
    fs::create_dir_all(d.join("credentials")).unwrap();
    fs::create_dir_all(d.join("agents/main/sessions")).unwrap();
    fs::write(
        d.join("secureclaw.json"),
        "// comment\n{ gateway: { port: 18789, }, }\n",
    )
    .unwrap();
    fs::write(d.join("credentials/oauth.json"), "{}").unwrap();
    fs::write(d.join("agents/main/sessions/s1.jsonl"), "{}\n").unwrap();
    for (path, mode) in [
        ("", 0o700),
        ("credentials", 0o700),
        ("agents", 0o700),
        ("agents/main", 0o700),
        ("agents/main/sessions", 0o700),
        ("secureclaw.json", 0o600),
        ("credentials/oauth.json", 0o600),
        ("agents/main/sessions/s1.jsonl", 0o600),
    ] {
        fs::set_permissions(d.join(path), fs::Permissions::from_mode(mode)).unwrap();
    }
    d
}

/// Names, kinds, modes, sizes, mtimes and contents of everything under `dir`
/// (itself as ".").
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, u64, i64, i64, Vec<u8>)> {
    walk(dir)
        .into_iter()
        .map(|e| {
            let m = &e.meta;
            let (rel, size) = if e.rel.is_empty() {
                (".".to_owned(), 0)
            } else {
                (e.name(), m.len())
            };
            let data = if m.is_file() { e.data.clone() } else { vec![] };
            (rel, (m.mode(), size, m.mtime(), m.mtime_nsec(), data))
        })
        .collect()
}

#[test]
fn list_json_shows_types_formats_and_sections() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let mut expected_age = false;
    if let Some(key) = example_key() {
        let src = data_dir(t.path());
        let o = run(
            t.path(),
            &[
                "-q",
                "backup",
                "--source",
                p(&src),
                "--dest",
                p(&dest),
                "-r",
                p(&key),
            ],
        );
        assert_eq!(
            code(&o),
            0,
            "backup: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        expected_age = true;
    } else {
        println!("note: keys-example/age-example.pub missing: no real age archive in this test");
    }
    fake_plain_archive(&dest, "weekly_20260101_020000.tar.gz");
    fs::create_dir(dest.join("daily_20250101_020000")).unwrap();
    fs::write(dest.join("daily_20250101_020000/x"), "abc").unwrap();
    fs::write(dest.join("daily_20250101_020000.tar.gz"), [0x1f, 0x8b]).unwrap();
    fs::write(
        dest.join("pre-restore_20260102_030000.tar.gz.age"),
        "not age",
    )
    .unwrap();
    fs::write(dest.join("README.txt"), "mine").unwrap();

    let o = run(t.path(), &["--json", "list", "--dest", p(&dest), "--check"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    let archives = j["archives"].as_array().unwrap();
    assert_eq!(archives.len(), 3 + usize::from(expected_age), "{j:#}");
    if expected_age {
        let a = &archives[0];
        assert_eq!(a["format"], "age");
        assert_eq!(a["type"], "daily");
        assert_eq!(a["sidecar"], "ok");
        assert_eq!(a["encrypted"], true);
        assert_eq!(a["recipients"][0], "X25519");
    }
    let weekly = archives.iter().find(|a| a["type"] == "weekly").unwrap();
    assert_eq!(weekly["format"], "plaintext");
    assert_eq!(weekly["sidecar"], "ok");
    assert_eq!(weekly["legacy"], false);
    let legacy: Vec<_> = archives
        .iter()
        .filter(|a| a["name"].as_str().unwrap().starts_with("daily_20250101"))
        .collect();
    assert_eq!(legacy.len(), 2);
    assert!(legacy.iter().all(|a| a["legacy"] == true));
    assert!(legacy
        .iter()
        .any(|a| a["format"] == "legacy-directory" && a["size"] == 3));
    let pre = j["pre_restore"].as_array().unwrap();
    assert_eq!(pre.len(), 1);
    assert_eq!(pre[0]["format"], "damaged");
    assert_eq!(j["unrecognised"], serde_json::json!(["README.txt"]));

    // Human output has the sections too.
    let o = run(t.path(), &["list", "--dest", p(&dest)]);
    let h = stdout(&o);
    assert!(h.contains("Pre-restore snapshots"), "{h}");
    assert!(h.contains("legacy plaintext dir"), "{h}");
    assert!(
        h.contains("Not recognised (never touched): README.txt"),
        "{h}"
    );
}

#[test]
fn prune_dry_run_leaves_dest_byte_identical_then_prunes() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    for i in 0..4 {
        fake_plain_archive(&dest, &format!("daily_{}.tar.gz", ts(TimeDelta::days(i))));
    }
    fs::create_dir(dest.join("daily_20240101_020000")).unwrap();
    fs::write(dest.join("daily_20240101_020000/f"), "x").unwrap();
    fs::write(dest.join("daily_20240101_020000.tar.gz"), "x").unwrap();
    fs::write(dest.join("keep-me.txt"), "x").unwrap();
    let before = snapshot(&dest);

    let o = run(
        t.path(),
        &[
            "--json",
            "prune",
            "--dest",
            p(&dest),
            "--keep-daily",
            "2",
            "--dry-run",
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(snapshot(&dest), before, "dry run changed the destination");
    let j = json(&o);
    assert_eq!(j["dry_run"], true);
    let dropped: Vec<_> = j["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .collect();
    // 2 of the 4 recent ones, and the legacy pair as ONE backup.
    assert_eq!(dropped.len(), 3, "{j:#}");
    assert_eq!(j["would_remove"].as_array().unwrap().len(), 2 * 2 + 2);

    let o = run(
        t.path(),
        &["prune", "--dest", p(&dest), "--keep-daily", "2"],
    );
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("removed"));
    let left: Vec<String> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2 * 2 + 1, "{left:?}");
    assert!(left.contains(&"keep-me.txt".to_owned()));
    assert!(!left.iter().any(|n| n.starts_with("daily_2024")));
}

#[test]
fn status_exit_codes_and_metrics() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    // Missing destination: a broken setup (exit 1, the problem listed), not
    // an old backup; the report still says there is no backup.
    let o = run(t.path(), &["status", "--dest", p(&dest)]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("STALE"));
    assert!(stdout(&o).contains("does not exist"), "{}", stdout(&o));
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let o = run(t.path(), &["status", "--dest", p(&empty)]);
    assert_eq!(code(&o), 6, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("STALE"));

    fs::create_dir(&dest).unwrap();
    fake_plain_archive(&dest, &format!("daily_{}.tar.gz", ts(TimeDelta::hours(2))));
    let prom = t.path().join("backup.prom");
    let o = run(
        t.path(),
        &["status", "--dest", p(&dest), "--prometheus", p(&prom)],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let m = fs::read_to_string(&prom).unwrap();
    assert!(m.contains("secureclaw_backup_last_success_timestamp_seconds{type=\"daily\"}"));
    assert!(m.contains("secureclaw_backup_sidecar_ok{type=\"daily\"} 1"));
    assert!(m.contains("secureclaw_backup_archives_total{type=\"daily\"} 1"));
    assert_eq!(
        fs::metadata(&prom).unwrap().permissions().mode() & 0o777,
        0o644
    );

    let o = run(
        t.path(),
        &[
            "--json",
            "status",
            "--dest",
            p(&dest),
            "--max-age",
            "1h",
            "--prometheus",
            p(&prom),
        ],
    );
    assert_eq!(code(&o), 6);
    // Exactly one JSON document: the report (the exit code carries the verdict).
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(docs.len(), 1, "{}", stdout(&o));
    let j = &docs[0];
    assert_eq!(j["stale"], true);
    assert!(fs::read_to_string(&prom)
        .unwrap()
        .contains("secureclaw_backup_stale 1"));

    // A fresh pre-restore snapshot alone does not make the backups fresh.
    let dest2 = t.path().join("dest2");
    fs::create_dir(&dest2).unwrap();
    fake_plain_archive(
        &dest2,
        &format!("pre-restore_{}.tar.gz", ts(TimeDelta::minutes(1))),
    );
    let o = run(t.path(), &["status", "--dest", p(&dest2)]);
    assert_eq!(code(&o), 6);

    // Bad duration: usage error.
    let o = run(
        t.path(),
        &["status", "--dest", p(&dest), "--max-age", "soon"],
    );
    assert_eq!(code(&o), 2);
}

#[test]
fn validate_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let d = data_dir(t.path());
    let o = run(t.path(), &["validate", "--target", p(&d)]);
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("secureclaw doctor"));

    let o = run(t.path(), &["--json", "validate", "--target", p(&d)]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["report"]["ok"], true);

    fs::set_permissions(
        d.join("credentials/oauth.json"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = run(t.path(), &["validate", "--target", p(&d)]);
    assert_eq!(code(&o), 7, "validation failed has its own exit code");
    assert!(String::from_utf8_lossy(&o.stderr).contains("validation failed: 1 check"));
    let o = run(t.path(), &["validate", "--target", p(&d), "--fix"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert_eq!(
        fs::metadata(d.join("credentials/oauth.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    fs::write(d.join("secureclaw.json"), "{ broken").unwrap();
    let o = run(t.path(), &["validate", "--target", p(&d)]);
    assert_eq!(code(&o), 7, "validation failed has its own exit code");
    assert!(stdout(&o).contains("not valid JSON5"));

    let o = run(
        t.path(),
        &["validate", "--target", p(&t.path().join("missing"))],
    );
    assert_eq!(code(&o), 1);
}

#[test]
fn schedule_output() {
    let t = tempfile::tempdir().unwrap();
    let (src, dest) = (t.path().join("src"), t.path().join("dest"));
    let o = run(
        t.path(),
        &[
            "schedule",
            "systemd",
            "--source",
            p(&src),
            "--dest",
            p(&dest),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let s = stdout(&o);
    assert_eq!(
        s.lines().filter(|l| l.starts_with("OnCalendar=")).count(),
        1,
        "{s}"
    );
    for line in [
        "OnCalendar=*-*-* 02:00:00",
        "Persistent=true",
        "ProtectSystem=strict",
        "PrivateTmp=true",
        "NoNewPrivileges=true",
        "UMask=0077",
        "EnvironmentFile=%h/.config/secureclaw-backup/backup.env",
    ] {
        assert!(s.lines().any(|l| l == line), "missing {line}: {s}");
    }
    assert!(
        s.contains(&format!(
            "ExecStart={} -q backup --type daily",
            bin().display()
        )),
        "{s}"
    );
    assert!(
        !t.path().join(".config").exists(),
        "printing installs nothing"
    );

    let o = run(
        t.path(),
        &["schedule", "cron", "--every", "1h", "--dest", p(&dest)],
    );
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).lines().any(|l| l.starts_with("0 * * * * ")),
        "{}",
        stdout(&o)
    );
    let o = run(
        t.path(),
        &["schedule", "cron", "--at", "02:00", "--dest", p(&dest)],
    );
    assert!(stdout(&o).lines().any(|l| l.starts_with("0 2 * * * ")));
    let o = run(
        t.path(),
        &["schedule", "cron", "--type", "weekly", "--dest", p(&dest)],
    );
    assert!(stdout(&o).lines().any(|l| l.starts_with("0 3 * * 0 ")));
    let o = run(
        t.path(),
        &["schedule", "cron", "--every", "7h", "--dest", p(&dest)],
    );
    assert_eq!(code(&o), 2);
    let o = run(
        t.path(),
        &["schedule", "cron", "--every", "1h", "--at", "02:00"],
    );
    assert_eq!(code(&o), 2);

    let o = run(
        t.path(),
        &[
            "--json",
            "schedule",
            "systemd",
            "--install",
            "--source",
            p(&src),
            "--dest",
            p(&dest),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["on_calendar"], "*-*-* 02:00:00");
    let unit_dir = t.path().join(".config/systemd/user");
    assert!(unit_dir.join("secureclaw-backup-daily.timer").is_file());
    assert!(unit_dir.join("secureclaw-backup-daily.service").is_file());
    assert_eq!(
        fs::metadata(&unit_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let env = t.path().join(".config/secureclaw-backup/backup.env");
    assert_eq!(
        fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::write(&env, "SECURECLAW_BACKUP_KEY=age1mine\n").unwrap();
    // Installing again keeps the operator's env file.
    let o = run(
        t.path(),
        &[
            "schedule",
            "systemd",
            "--install",
            "--source",
            p(&src),
            "--dest",
            p(&dest),
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        "SECURECLAW_BACKUP_KEY=age1mine\n"
    );
    assert!(stdout(&o).contains("systemctl --user enable --now secureclaw-backup-daily.timer"));
}

#[test]
fn keygen_and_completions() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("keys");
    let o = run(t.path(), &["--json", "keygen", "age", "--out", p(&out)]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert!(j["recipient"].as_str().unwrap().starts_with("age1"));
    let o = run(t.path(), &["keygen", "age", "--out", p(&out)]);
    assert_eq!(code(&o), 1, "refuses to overwrite");

    for shell in ["bash", "zsh", "fish"] {
        let o = run(t.path(), &["completions", shell]);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("secureclaw-backup"), "{shell}");
    }
}
