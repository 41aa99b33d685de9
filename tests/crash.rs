//! Crash consistency (issue 4 §2; README.md, "Restore safety"): SIGKILL a
//! backup and a restore at many points, and fill the disk.
//!
//! - backup killed at ≥ 10 random points: never a file with an archive name
//!   that fails `verify -i`, never the plaintext canary anywhere on disk, and
//!   the next backup succeeds and removes the stale temp files;
//! - restore killed at ≥ 10 points, including inside the swap (found by
//!   watching for the journal, not by anything added to the product): the
//!   target is wholly the old or wholly the new tree, and the next `restore`
//!   finishes or rolls back (and says so), leaving no staging and no journal;
//! - ENOSPC on a small tmpfs mounted by the test (skipped, with the reason
//!   printed, where mounting is not possible): a clear error, nothing lost.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const CANARY: &[u8] = b"PLAINTEXT-CANARY-crash-7f3a9c";

/// A data directory of about `mb` MiB: mostly incompressible blobs under
/// workspace/, plus config and credentials that carry the canary.
fn generate(root: &Path, mb: usize, seed: u64) {
    let mut rng = Rng(seed);
    write_file(
        &root.join("secureclaw.json"),
        b"{ gateway: { port: 18789 } }\n",
        0o600,
    );
    let mut cred = b"{\"token\":\"".to_vec();
    cred.extend_from_slice(CANARY);
    cred.extend_from_slice(b"\"}\n");
    write_file(&root.join("credentials/oauth.json"), &cred, 0o600);
    write_file(&root.join("identity/device.json"), &cred, 0o600);
    // a live SQLite database, captured through a plaintext staging file
    let db = root.join("memory/main.sqlite");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE chunks(id INTEGER PRIMARY KEY, v BLOB); BEGIN;")
        .unwrap();
    for i in 0..mb.min(4) * 8 {
        let mut v = rng.bytes(128 * 1024);
        if i == 3 {
            v[..CANARY.len()].copy_from_slice(CANARY);
        }
        conn.execute("INSERT INTO chunks(v) VALUES (?1)", rusqlite::params![v])
            .unwrap();
    }
    conn.execute_batch("COMMIT;").unwrap();
    drop(conn);
    fs::set_permissions(&db, fs::Permissions::from_mode(0o600)).unwrap();
    let blob = 512 * 1024;
    for i in 0..mb * 2 {
        let mut d = rng.bytes(blob);
        // a canary inside the bulk data too, at a random place
        let at = rng.below((blob - CANARY.len()) as u64) as usize;
        d[at..at + CANARY.len()].copy_from_slice(CANARY);
        write_file(
            &root.join(format!("workspace/data/blob-{i:04}.bin")),
            &d,
            0o600,
        );
    }
}

fn spawn(c: &mut Command) -> Child {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill9(mut child: Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

fn is_archive_name(n: &str) -> bool {
    ["daily_", "weekly_", "pre-deploy_", "pre-restore_"]
        .iter()
        .any(|p| n.starts_with(p))
        && (n.ends_with(".tar.gz.age") || n.ends_with(".tar.gz.gpg") || n.ends_with(".tar.gz"))
}

/// An archive's `.meta` description (README "Incremental backups"),
/// written beside every archive; the stray-sidecar checks cover it too.
fn is_meta(n: &str) -> bool {
    n.strip_suffix(".meta").is_some_and(is_archive_name)
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every archive-named file in `dest` not yet in `checked` must verify fully.
fn verify_new_archives(sb: &Sandbox, dest: &Path, checked: &mut BTreeSet<String>) {
    for n in names(dest) {
        if is_archive_name(&n) && !checked.contains(&n) {
            let p = dest.join(&n);
            let v = sb.run(&[
                "verify".as_ref(),
                "-i".as_ref(),
                example_key("age-example.key").as_os_str(),
                p.as_os_str(),
            ]);
            assert_eq!(
                v.code,
                0,
                "{n} has an archive name but does not verify:\n{}",
                v.text()
            );
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{n}");
            checked.insert(n);
        }
    }
}

fn no_canary(sb: &Sandbox, dirs: &[&str]) {
    for d in dirs {
        let hits = files_containing(&sb.p(d), CANARY);
        assert!(hits.is_empty(), "plaintext canary found on disk: {hits:?}");
    }
}

/// After a kill -9, plaintext may only be in the SQLite capture's staging
/// directory under the runtime dir (0700, documented; swept by the next run).
/// Returns whether some was there.
fn canary_only_in_runtime_staging(sb: &Sandbox) -> bool {
    let hits = files_containing(&sb.p("env"), CANARY);
    let run = sb.p("env/run");
    for h in &hits {
        let rel = h
            .strip_prefix(&run)
            .unwrap_or_else(|_| panic!("plaintext canary at {h:?}"));
        let first = rel
            .components()
            .nth(1)
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        assert!(
            first.as_deref().is_some_and(|f| f.starts_with("staging-")),
            "plaintext canary outside the capture staging dir: {h:?}"
        );
        let dir = run.join(rel.components().take(2).collect::<PathBuf>());
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{dir:?}");
    }
    !hits.is_empty()
}

fn backup_cmd(sb: &Sandbox, src: &Path, dest: &Path) -> Command {
    let mut c = sb.cmd();
    c.args([
        "backup",
        "--type",
        "weekly",
        "--no-prune",
        "-q",
        "-r",
        &age_recipient(),
        "--source",
    ])
    .arg(src)
    .arg("--dest")
    .arg(dest);
    c
}

#[test]
fn backup_killed_at_random_points() {
    let started = Instant::now();
    let sb = Sandbox::new();
    let src = sb.p("src");
    generate(&src, 24, 1);
    let dest = sb.p("dest");
    let mut checked = BTreeSet::new();

    // one complete run: the duration to aim the kills at, and a good archive
    // that the killed runs must leave intact
    let t0 = Instant::now();
    let out = run_cmd(&mut backup_cmd(&sb, &src, &dest));
    let full = t0.elapsed();
    assert_eq!(out.code, 0, "{}", out.text());
    verify_new_archives(&sb, &dest, &mut checked);
    let first = checked.clone();
    eprintln!("a full backup takes {full:?}");

    let mut rng = Rng(0x5eed_0001);
    let span = full.as_millis() as u64 + 50;
    let mut temps_seen = 0;
    let mut staged_plaintext = 0;
    for i in 0..12 {
        // spread over the run: one kill per slice, at a random place in it
        let ms = span * i / 12 + rng.below(span / 12);
        let child = spawn(&mut backup_cmd(&sb, &src, &dest));
        std::thread::sleep(Duration::from_millis(ms));
        kill9(child);
        if names(&dest)
            .iter()
            .any(|n| n.starts_with(".secureclaw-backup."))
        {
            temps_seen += 1;
        }
        verify_new_archives(&sb, &dest, &mut checked);
        no_canary(&sb, &["dest", "w", "arch"]);
        if canary_only_in_runtime_staging(&sb) {
            staged_plaintext += 1;
        }
        for n in &first {
            assert!(dest.join(n).exists(), "kill {i} at {ms} ms removed {n}");
        }
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    eprintln!(
        "{temps_seen} of 12 kills left a temp file behind, {staged_plaintext} a SQLite capture in the runtime staging dir"
    );
    assert!(
        temps_seen > 0,
        "no kill landed while an archive was being written"
    );

    let out = run_cmd(&mut backup_cmd(&sb, &src, &dest));
    assert_eq!(out.code, 0, "{}", out.text());
    verify_new_archives(&sb, &dest, &mut checked);
    let left: Vec<_> = names(&dest)
        .into_iter()
        .filter(|n| !is_archive_name(n) && !n.ends_with(".sha256") && !is_meta(n))
        .collect();
    assert!(
        left.is_empty(),
        "the next backup left stale files: {left:?}"
    );
    for n in names(&dest) {
        if let Some(a) = n.strip_suffix(".sha256") {
            assert!(is_archive_name(a), "stray sidecar {n}");
        }
        if let Some(a) = n.strip_suffix(".meta") {
            assert!(names(&dest).contains(a), "stray description {n}");
        }
    }
    no_canary(&sb, &["dest", "env", "w", "arch"]);
    eprintln!("backup crash test: {:?}", started.elapsed());
}

// ------------------------------------------------------------------ restore

fn copy_tree(from: &Path, to: &Path) {
    let m = fs::symlink_metadata(from).unwrap();
    if m.is_dir() {
        fs::DirBuilder::new().mode(0o700).create(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
        fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777)).unwrap();
    } else {
        fs::copy(from, to).unwrap();
        fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777)).unwrap();
    }
}

fn leftovers(parent: &Path) -> Vec<String> {
    names(parent)
        .into_iter()
        .filter(|n| n.starts_with(".target.restore-") || n == ".target.secureclaw-restore.json")
        .collect()
}

struct RestoreRig {
    sb: Sandbox,
    archive: PathBuf,
    old: Tree,
    new: Tree,
}

impl RestoreRig {
    fn new() -> RestoreRig {
        let sb = Sandbox::new();
        // the archive: the "new" tree
        generate(&sb.p("src"), 24, 2);
        let out = run_cmd(&mut backup_cmd(&sb, &sb.p("src"), &sb.p("arch")));
        assert_eq!(out.code, 0, "{}", out.text());
        let archive = fs::read_dir(sb.p("arch"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".tar.gz.age"))
            .unwrap();
        // the "old" tree: other contents, other modes, a component the archive lacks
        let old_root = sb.p("old");
        generate(&old_root, 8, 3);
        write_file(
            &old_root.join("credentials/oauth.json"),
            b"{\"old\":1}",
            0o644,
        );
        write_file(&old_root.join("logs/gateway.log"), b"old log\n", 0o640);
        let rig = RestoreRig {
            old: snapshot(&old_root),
            new: Tree::new(),
            sb,
            archive,
        };
        // the expected "new" state: a complete restore onto a copy of the old tree
        rig.reset();
        let out = rig.sb.run(&rig.restore_args(false));
        assert_eq!(out.code, 0, "{}", out.text());
        let new = snapshot(&rig.sb.target());
        assert!(new != rig.old);
        assert!(
            new.contains_key("logs/gateway.log"),
            "the component the archive lacks is kept"
        );
        RestoreRig { new, ..rig }
    }

    fn reset(&self) {
        let t = self.sb.target();
        if t.exists() {
            fs::remove_dir_all(&t).unwrap();
        }
        assert!(leftovers(&self.sb.p("w/parent")).is_empty());
        copy_tree(&self.sb.p("old"), &t);
        assert_eq!(snapshot(&t), self.old);
    }

    fn restore_args(&self, snapshot: bool) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec![
            "restore".into(),
            self.archive.clone().into(),
            "-i".into(),
            example_key("age-example.key").into(),
            "--target".into(),
            self.sb.target().into(),
        ];
        if snapshot {
            a.extend([
                "-r".into(),
                age_recipient().into(),
                "--dest".into(),
                self.sb.p("w/dest").into(),
            ]);
        } else {
            a.push("--no-snapshot".into());
        }
        a
    }

    /// After a kill: wholly old or wholly new; then the next restore recovers
    /// and completes. Returns (was old, was new, a journal was left).
    fn after_kill(&self, label: &str, snapshot_on: bool) -> (bool, bool, bool) {
        let parent = self.sb.p("w/parent");
        let left = leftovers(&parent);
        let journal = left.iter().any(|n| n.ends_with(".json"));
        let now = snapshot(&self.sb.target());
        let is_old = now == self.old;
        let is_new = now == self.new;
        assert!(
            is_old || is_new,
            "{label}: the target is neither the old nor the new tree (leftovers {left:?})\nvs old:\n{}\nvs new:\n{}",
            diff(&self.old, &now),
            diff(&self.new, &now)
        );
        let out = self.sb.run(&self.restore_args(snapshot_on));
        assert_eq!(
            out.code,
            0,
            "{label}: the next restore failed:\n{}",
            out.text()
        );
        if journal {
            // (a journal torn before it was written means nothing was swapped:
            // it is dropped and the staging directory removed)
            assert!(
                out.stderr.contains("finished an interrupted restore")
                    || out.stderr.contains("rolled back an interrupted restore")
                    || out.stderr.contains("removed the staging directory"),
                "{label}: the next restore did not say how it recovered:\n{}",
                out.text()
            );
        } else if !left.is_empty() {
            assert!(
                out.stderr.contains("removed the staging directory"),
                "{label}:\n{}",
                out.text()
            );
        }
        assert!(
            leftovers(&parent).is_empty(),
            "{label}: leftovers {:?}",
            leftovers(&parent)
        );
        assert_eq!(
            snapshot(&self.sb.target()),
            self.new,
            "{label}: not the new tree after the next restore"
        );
        // nothing but the target in its parent
        assert_eq!(
            names(&parent),
            BTreeSet::from(["target".to_owned()]),
            "{label}"
        );
        (is_old, is_new, journal)
    }
}

#[test]
fn restore_killed_at_many_points_including_the_swap() {
    let started = Instant::now();
    let rig = RestoreRig::new();
    let jpath = rig.sb.p("w/parent/.target.secureclaw-restore.json");
    let parent = rig.sb.p("w/parent");

    // how long a restore takes (without and with the snapshot)
    rig.reset();
    let t0 = Instant::now();
    assert_eq!(rig.sb.run(&rig.restore_args(false)).code, 0);
    let plain = t0.elapsed();
    rig.reset();
    let t0 = Instant::now();
    assert_eq!(rig.sb.run(&rig.restore_args(true)).code, 0);
    let with_snap = t0.elapsed();
    eprintln!("restore takes {plain:?}, {with_snap:?} with the snapshot");

    let mut rng = Rng(0x5eed_0002);
    let (mut olds, mut news, mut journals, mut kills) = (0, 0, 0, 0);
    let mut tally = |r: (bool, bool, bool)| {
        olds += r.0 as u32;
        news += r.1 as u32;
        journals += r.2 as u32;
        kills += 1;
    };

    // random points over the whole run, with and without the snapshot
    for i in 0..10u64 {
        let snap = i % 2 == 1;
        let span = if snap { with_snap } else { plain }.as_millis() as u64 + 20;
        let ms = span * i / 10 + rng.below(span / 10 + 1);
        rig.reset();
        let child = spawn(rig.sb.cmd().args(rig.restore_args(snap)));
        std::thread::sleep(Duration::from_millis(ms));
        kill9(child);
        tally(rig.after_kill(
            &format!("random kill {i} at {ms} ms (snapshot: {snap})"),
            snap,
        ));
    }

    // the swap window: watch for the journal, then kill after 0…N µs (the
    // journal lives for a few ms: a run where the watcher missed it is retried)
    for (i, us) in [
        0u64, 0, 50, 200, 500, 1000, 2000, 4000, 8000, 16000, 64000, 250_000,
    ]
    .into_iter()
    .enumerate()
    {
        let mut hit = false;
        for _attempt in 0..8 {
            rig.reset();
            let mut child = spawn(rig.sb.cmd().args(rig.restore_args(false)));
            let mut seen = false;
            loop {
                if fs::symlink_metadata(&jpath).is_ok() {
                    seen = true;
                    break;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::hint::spin_loop();
            }
            if us > 0 {
                std::thread::sleep(Duration::from_micros(us));
            }
            kill9(child);
            tally(rig.after_kill(&format!("swap kill {i} ({us} µs after the journal)"), false));
            if seen {
                hit = true;
                break;
            }
        }
        assert!(hit, "the watcher never saw the journal in 8 runs");
    }

    // during extraction: as soon as the staging directory appears
    for i in 0..3u64 {
        rig.reset();
        let child = spawn(rig.sb.cmd().args(rig.restore_args(false)));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30)
            && !names(&parent)
                .iter()
                .any(|n| n.starts_with(".target.restore-"))
        {
            std::hint::spin_loop();
        }
        std::thread::sleep(Duration::from_millis(i * 40));
        kill9(child);
        tally(rig.after_kill(&format!("staging kill {i}"), false));
    }

    eprintln!("{kills} kills: {olds} left the old tree, {news} the new one, {journals} inside the swap (journal present)");
    assert!(kills >= 20);
    assert!(journals >= 1, "no kill landed inside the swap");
    assert!(olds >= 1 && news >= 1, "expected both outcomes");

    // the snapshots written along the way are all valid archives
    let mut checked = BTreeSet::new();
    verify_new_archives(&rig.sb, &rig.sb.p("w/dest"), &mut checked);
    let stray: Vec<_> = names(&rig.sb.p("w/dest"))
        .into_iter()
        .filter(|n| !is_archive_name(n) && !n.ends_with(".sha256") && !is_meta(n))
        .collect();
    assert!(
        stray.is_empty(),
        "stale temp files in the snapshot destination: {stray:?}"
    );
    no_canary(&rig.sb, &["w/dest", "env", "arch"]);
    eprintln!("restore crash test: {:?}", started.elapsed());
}

// ------------------------------------------------------------------ ENOSPC

/// A tmpfs at `at`, or None (the test is skipped, saying why).
fn small_fs(at: &Path, size: &str) -> Option<Tmpfs> {
    Tmpfs::mount(at, size)
        .map_err(|e| eprintln!("SKIPPED: cannot mount a tmpfs: {e}"))
        .ok()
}

#[test]
fn enospc_backup_on_a_full_destination() {
    let sb = Sandbox::new();
    let src = sb.p("src");
    generate(&src, 12, 4);
    let dest = sb.p("small");
    let Some(_m) = small_fs(&dest, "4m") else {
        return;
    };
    fs::write(dest.join("unrelated.txt"), b"keep me").unwrap();
    let out = run_cmd(&mut backup_cmd(&sb, &src, &dest));
    assert_eq!(out.code, 1, "{}", out.text());
    assert!(
        out.stderr.contains("No space left") || out.stderr.contains("space"),
        "no clear message:\n{}",
        out.text()
    );
    assert!(out.stderr.contains("hint:"), "{}", out.text());
    assert_eq!(
        names(&dest),
        BTreeSet::from(["unrelated.txt".to_owned()]),
        "temp or archive left behind"
    );
    assert_eq!(fs::read(dest.join("unrelated.txt")).unwrap(), b"keep me");
    no_canary(&sb, &["small", "env"]);
}

#[test]
fn enospc_restore_into_a_small_filesystem() {
    let sb = Sandbox::new();
    let parent = sb.p("w/parent");
    let Some(_m) = small_fs(&parent, "80m") else {
        return;
    };
    populate_target(&sb.target());
    let before = snapshot(&sb.p("w"));

    // (a) bigger than the free space: refused from the sizes in the headers
    generate(&sb.p("src"), 24, 5);
    let out = run_cmd(&mut backup_cmd(&sb, &sb.p("src"), &sb.p("arch")));
    assert_eq!(out.code, 0, "{}", out.text());
    let big = fs::read_dir(sb.p("arch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz.age"))
        .unwrap();
    let args = |a: &Path| {
        vec![
            "restore".into(),
            a.as_os_str().to_owned(),
            "-i".into(),
            example_key("age-example.key").into_os_string(),
            "--target".into(),
            sb.target().into_os_string(),
            "--no-snapshot".into(),
        ]
    };
    let out = sb.run(&args(&big));
    assert_eq!(out.code, 5, "{}", out.text());
    assert!(out.stderr.contains("free space"), "{}", out.text());
    assert!(
        before == snapshot(&sb.p("w")),
        "{}",
        diff(&before, &snapshot(&sb.p("w")))
    );

    // (b) small in bytes but not in blocks: 30 000 one-byte files need ~120 MB
    // of pages; the disk fills during staging: a clear error, target unchanged
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..30_000 {
        files.push((format!("workspace/many/f{i:05}"), vec![b'x']));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    let tar = benign_tar(&refs, true);
    let many = write_archive(&sb.p("arch"), "many", Backend::Age, &tar);
    let out = sb.run(&args(&many));
    assert!(out.code == 1 || out.code == 5, "{}", out.text());
    assert!(
        out.stderr.contains("No space left") || out.stderr.contains("space"),
        "{}",
        out.text()
    );
    assert!(
        before == snapshot(&sb.p("w")),
        "{}",
        diff(&before, &snapshot(&sb.p("w")))
    );
}
