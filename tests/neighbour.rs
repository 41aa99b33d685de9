//! A hostile local neighbour in a shared `$TMPDIR` (SECURITY.md, "Local
//! attacker model"): two real users. The attacker (`scb-mallory`) plants
//! directories, symlinks, journals, lock files and flocks in the shared places
//! (a 1777 `$TMPDIR`, a sticky parent of the restore target); the victim
//! (`scb-victim`, not root, so permission checks apply) runs the real binary
//! through `setpriv` with a `HOME` of its own and no `XDG_RUNTIME_DIR`, as
//! cron does. Each test checks that the victim's data is byte-identical where
//! it must be, that the run still does its work, and that what was foreign
//! was named in a warning and never acted on.
//!
//! These tests need root (to create the two users and switch to them).

mod common;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    age_recipient, as_user, bin, chown_r, example_key, make_tree, snapshot, user, Out, Tree, User,
};

const VICTIM: &str = "scb-victim";
const MALLORY: &str = "scb-mallory";

fn mkdir_mode(p: &Path, mode: u32) {
    fs::DirBuilder::new().recursive(true).create(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A world in a fresh directory under /tmp (traversable by both users):
/// `shared/` (1777, the hostile `$TMPDIR`), `sticky/` (1777, a shared parent
/// of a restore target), and `v/` (the victim's, 0700): `home`, `data`, `dest`,
/// `tmp` (a private `$TMPDIR` for baselines), `key`.
struct World {
    dir: tempfile::TempDir,
    victim: User,
    mallory: User,
}

impl World {
    fn new() -> World {
        assert!(
            rustix::process::geteuid().is_root(),
            "tests/neighbour.rs needs root: it creates the users {VICTIM} and {MALLORY}"
        );
        let victim = user(VICTIM);
        let mallory = user(MALLORY);
        let dir = tempfile::Builder::new()
            .prefix("scb-neighbour-")
            .tempdir_in("/tmp")
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let w = World {
            dir,
            victim,
            mallory,
        };
        mkdir_mode(&w.p("shared"), 0o1777);
        mkdir_mode(&w.p("sticky"), 0o1777);
        for d in ["v/home", "v/dest", "v/tmp"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(w.p(d))
                .unwrap();
        }
        make_tree(&w.p("v/data"));
        fs::copy(example_key("age-example.key"), w.p("v/key")).unwrap();
        fs::set_permissions(w.p("v/key"), fs::Permissions::from_mode(0o600)).unwrap();
        mkdir_mode(&w.p("v"), 0o700);
        chown_r(&w.p("v"), victim);
        w
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).to_string_lossy().into_owned()
    }

    /// The binary, run as the victim with `TMPDIR=tmpdir` and no
    /// `XDG_RUNTIME_DIR`.
    fn victim_cmd(&self, tmpdir: &Path, args: &[&str]) -> Command {
        let mut c = as_user(self.victim, bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.p("v/home"))
            .env("TMPDIR", tmpdir)
            .current_dir(self.p("v/home"))
            .stdin(Stdio::null());
        c
    }

    fn victim(&self, tmpdir: &Path, args: &[&str]) -> Out {
        let o = self.victim_cmd(tmpdir, args).output().unwrap();
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        eprintln!(
            "$ [victim] secureclaw-backup {}\n{}{}exit {}",
            args.join(" "),
            out.stdout,
            out.stderr,
            out.code
        );
        out
    }

    /// A shell script run as `u`; must succeed.
    fn sh(&self, u: User, script: &str) {
        let o = as_user(u, "sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{script}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn mallory(&self, script: &str) {
        self.sh(self.mallory, script)
    }

    /// A backup of `source` by the victim; the report.
    fn backup(&self, tmpdir: &Path, source: &str) -> (Out, serde_json::Value) {
        let dest = self.s("v/dest");
        let r = age_recipient();
        let o = self.victim(
            tmpdir,
            &[
                "backup", "--source", source, "--dest", &dest, "-r", &r, "--json",
            ],
        );
        assert_eq!(o.code, 0, "{o:?}");
        let v = o.json();
        (o, v["backup"].clone())
    }

    fn restore(&self, tmpdir: &Path, archive: &str, target: &str, extra: &[&str]) -> Out {
        let key = self.s("v/key");
        let mut args = vec![
            "restore",
            archive,
            "-i",
            &key,
            "--target",
            target,
            "--no-snapshot",
        ];
        args.extend_from_slice(extra);
        self.victim(tmpdir, &args)
    }

    fn data(&self) -> Tree {
        snapshot(&self.p("v/data"))
    }

    /// The files a backup of the untouched data dir archives, with a private
    /// `$TMPDIR` (the baseline).
    fn baseline(&self) -> (String, u64) {
        let (_, b) = self.backup(&self.p("v/tmp"), &self.s("v/data"));
        (
            b["archive"].as_str().unwrap().to_owned(),
            b["files"].as_u64().unwrap(),
        )
    }

    fn fallback(&self) -> PathBuf {
        self.p("v/home/.local/state/secureclaw-backup/run")
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn alive(c: &mut Child) -> bool {
    c.try_wait().unwrap().is_none()
}

/// (1) The attacker creates the victim's runtime dir first and plants a
/// "dead" staging directory whose `d` is a symlink to the victim's data dir.
#[test]
fn planted_staging_symlink_in_foreign_runtime_dir_is_never_followed() {
    let w = World::new();
    let before = w.data();
    let (_, files) = w.baseline();
    let rt = w.p(&format!("shared/secureclaw-backup-{}", w.victim.uid));
    w.mallory(&format!(
        "mkdir -m 0777 {rt} && mkdir -m 0777 {rt}/staging-999999-abcdef && ln -s {data} {rt}/staging-999999-abcdef/d \
         && mkdir -m 0777 {rt}/staging-999998-abcdef && ln -s {data}/credentials {rt}/staging-999998-abcdef/d",
        rt = rt.display(),
        data = w.s("v/data")
    ));
    let (o, b) = w.backup(&w.p("shared"), &w.s("v/data"));
    assert_eq!(w.data(), before, "the data dir is byte-identical");
    assert_eq!(b["files"].as_u64().unwrap(), files, "every file archived");
    assert!(
        o.stderr.contains(&rt.display().to_string()) && o.stderr.contains("owned by uid"),
        "the warning names the foreign dir: {}",
        o.stderr
    );
    assert!(w.fallback().is_dir(), "the per-user fallback was used");
    assert_eq!(
        fs::metadata(w.fallback()).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    // the planted entries are as the attacker left them
    assert!(fs::symlink_metadata(rt.join("staging-999999-abcdef/d"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// (2) A racing swap: the attacker's loop swaps a real `d` directory for a
/// symlink to the victim's data dir, over and over, while the victim's
/// backups sweep and its drill sweeps the shared scratch parent.
#[test]
fn racing_symlink_swaps_never_reach_the_data_dir() {
    let w = World::new();
    let before = w.data();
    let (archive, files) = w.baseline();
    let rt = w.p(&format!("shared/secureclaw-backup-{}", w.victim.uid));
    let stop = w.p("shared/STOP");
    let swapper = |dir: &Path| {
        format!(
            "mkdir -p -m 0777 {dir} && cd {dir} && mkdir -p d && : > d/f && \
             while [ ! -e {stop} ]; do mv -T d real && ln -s {data} d && rm d && mv -T real d; done",
            dir = dir.display(),
            stop = stop.display(),
            data = w.s("v/data"),
        )
    };
    let mut loops = Vec::new();
    for dir in [
        rt.join("staging-999999-abcdef"),
        w.p("shared/secureclaw-drill-999999-abcdef"),
        w.p("shared/secureclaw-drill-999999"),
    ] {
        loops.push(
            Command::new("timeout")
                .arg("120")
                .arg("setpriv")
                .arg(format!("--reuid={}", w.mallory.uid))
                .arg(format!("--regid={}", w.mallory.gid))
                .arg("--clear-groups")
                .args(["sh", "-c", &swapper(&dir)])
                .spawn()
                .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for _ in 0..3 {
        let (_, b) = w.backup(&w.p("shared"), &w.s("v/data"));
        assert_eq!(b["files"].as_u64().unwrap(), files);
        assert_eq!(w.data(), before);
    }
    let key = w.s("v/key");
    let dest = w.s("v/dest");
    let scratch = w.s("shared");
    let o = w.victim(
        &w.p("shared"),
        &[
            "drill",
            "--archive",
            &archive,
            "--dest",
            &dest,
            "-i",
            &key,
            "--scratch",
            &scratch,
            "--rto",
            "15m",
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("secureclaw-drill-999999"),
        "the foreign scratch dirs are named: {}",
        o.stderr
    );
    fs::write(&stop, b"").unwrap();
    for mut l in loops {
        assert!(
            l.wait().unwrap().success(),
            "the swap loop ran until stopped"
        );
    }
    eprintln!("raced for {:?}", started.elapsed());
    assert_eq!(w.data(), before, "the data dir is byte-identical");
    assert!(
        !names(&w.p("shared"))
            .iter()
            .any(|n| n.starts_with(&format!("secureclaw-drill-{}", std::process::id()))),
        "no scratch dir of ours is left"
    );
}

/// (3) A journal beside the target forged into a sticky shared parent: by
/// the attacker (never obeyed, refused clearly), and ours but naming an
/// absolute path or `../x` (obeyed in nothing, removed, restore proceeds).
#[test]
fn forged_journal_in_a_sticky_parent_removes_nothing_outside() {
    let w = World::new();
    let (archive, _) = w.baseline();
    let target = w.p("sticky/data");
    make_tree(&target);
    chown_r(&target, w.victim);
    fs::create_dir(w.p("v/precious")).unwrap();
    fs::write(w.p("v/precious/keep"), b"precious").unwrap();
    chown_r(&w.p("v/precious"), w.victim);
    let precious = snapshot(&w.p("v/precious"));
    let journal = w.p("sticky/.data.secureclaw-restore.json");
    let forged = |staging: &str| {
        serde_json::json!({"staging": staging, "new_dev": 0, "new_ino": 0, "pid": 999_999_999u32, "archive": "forged"})
            .to_string()
    };
    // the attacker's journal
    let abs = w.s("v/precious");
    w.mallory(&format!(
        "printf '%s' '{}' > {}",
        forged(&abs),
        journal.display()
    ));
    let before = snapshot(&target);
    let o = w.restore(&w.p("shared"), &archive, &target.to_string_lossy(), &[]);
    assert_eq!(o.code, 5, "{o:?}");
    assert!(
        o.stderr.contains("not ours") && o.stderr.contains(&journal.display().to_string()),
        "{}",
        o.stderr
    );
    assert_eq!(snapshot(&w.p("v/precious")), precious);
    assert_eq!(snapshot(&target), before, "the target is unchanged");
    assert!(
        journal.exists(),
        "the attacker's file is not ours to remove"
    );
    fs::remove_file(&journal).unwrap();
    // our own journal, naming outside: removed, nothing else
    for staging in [
        abs.clone(),
        "../../v/precious".to_owned(),
        "../x".to_owned(),
    ] {
        w.sh(
            w.victim,
            &format!("printf '%s' '{}' > {}", forged(&staging), journal.display()),
        );
        let o = w.restore(&w.p("shared"), &archive, &target.to_string_lossy(), &[]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stderr.contains("obeying nothing"), "{}", o.stderr);
        assert_eq!(snapshot(&w.p("v/precious")), precious);
        assert!(!journal.exists());
        assert!(target.join("secureclaw.json").is_file());
    }
}

/// (4) A gateway lock planted by the attacker naming one of the victim's
/// processes: restore is not refused and nothing is signalled. Locks of ours
/// naming another user's process, or a reused pid (wrong `startTime`), are
/// not a gateway either; a genuine one still is (control).
#[test]
fn planted_gateway_lock_neither_refuses_nor_signals() {
    let w = World::new();
    let (archive, _) = w.baseline();
    let target = w.s("v/data");
    let cfg = format!("{target}/secureclaw.json");
    let lock = |pid: u32, start: Option<u64>| {
        let mut v =
            serde_json::json!({"pid": pid, "createdAt": "2026-01-01T00:00:00Z", "configPath": cfg});
        if let Some(s) = start {
            v["startTime"] = s.into();
        }
        v.to_string()
    };
    let mut victim_sleep = as_user(w.victim, "sleep").arg("120").spawn().unwrap();
    let mut mallory_sleep = as_user(w.mallory, "sleep").arg("120").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let vpid = victim_sleep.id();
    // planted by the attacker in $TMPDIR and in /tmp
    let shared_dir = w.p(&format!("shared/secureclaw-{}", w.victim.uid));
    let tmp_dir = PathBuf::from(format!("/tmp/secureclaw-{}", w.victim.uid));
    let _ = fs::remove_dir_all(&tmp_dir);
    for d in [&shared_dir, &tmp_dir] {
        w.mallory(&format!(
            "mkdir -m 0755 {d} && printf '%s' '{l}' > {d}/gateway.deadbeef.lock",
            d = d.display(),
            l = lock(vpid, None)
        ));
    }
    let o = w.restore(&w.p("shared"), &archive, &target, &[]);
    assert_eq!(o.code, 0, "not refused: {o:?}");
    assert!(
        o.stderr.contains(&shared_dir.display().to_string()),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(&tmp_dir.display().to_string()),
        "{}",
        o.stderr
    );
    let o = w.restore(&w.p("shared"), &archive, &target, &["--stop-gateway"]);
    assert_eq!(o.code, 0, "{o:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(&mut victim_sleep), "nothing was signalled");
    fs::remove_dir_all(&tmp_dir).unwrap();
    // the victim's own lock dir (a private $TMPDIR) with locks naming
    // another user's process and a reused pid
    let own = w.p(&format!("v/tmp/secureclaw-{}", w.victim.uid));
    let stat = fs::read_to_string(format!("/proc/{vpid}/stat")).unwrap();
    let start: u64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    w.sh(
        w.victim,
        &format!(
            "mkdir -m 0700 {d} && printf '%s' '{a}' > {d}/gateway.00000001.lock && printf '%s' '{b}' > {d}/gateway.00000002.lock",
            d = own.display(),
            a = lock(mallory_sleep.id(), None),
            b = lock(vpid, Some(start + 1)),
        ),
    );
    let o = w.restore(&w.p("v/tmp"), &archive, &target, &["--stop-gateway"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("belongs to uid"), "{}", o.stderr);
    assert!(o.stderr.contains("reused"), "{}", o.stderr);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(&mut victim_sleep));
    assert!(
        alive(&mut mallory_sleep),
        "another user's process is never signalled"
    );
    // control: a genuine lock of ours is a live gateway
    w.sh(
        w.victim,
        &format!(
            "rm {d}/gateway.*.lock && printf '%s' '{a}' > {d}/gateway.00000003.lock",
            d = own.display(),
            a = lock(vpid, Some(start)),
        ),
    );
    let o = w.restore(&w.p("v/tmp"), &archive, &target, &[]);
    assert_eq!(o.code, 5, "{o:?}");
    assert!(o.stderr.contains("gateway"), "{}", o.stderr);
    let o = w.restore(&w.p("v/tmp"), &archive, &target, &["--stop-gateway"]);
    assert_eq!(o.code, 0, "{o:?}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        victim_sleep.wait().unwrap().signal(),
        Some(15),
        "SIGTERM to the checked gateway"
    );
    let _ = mallory_sleep.kill();
    let _ = mallory_sleep.wait();
}

/// (5) The runtime dir is a symlink (to a directory the attacker reads):
/// not followed, nothing is created where it points.
#[test]
fn symlinked_runtime_dir_is_not_followed() {
    let w = World::new();
    let before = w.data();
    let (_, files) = w.baseline();
    let rt = w.p(&format!("shared/secureclaw-backup-{}", w.victim.uid));
    let trap = w.p("shared/trap");
    w.mallory(&format!(
        "mkdir -m 0777 {t} && ln -s {t} {rt}",
        t = trap.display(),
        rt = rt.display()
    ));
    let (o, b) = w.backup(&w.p("shared"), &w.s("v/data"));
    assert_eq!(b["files"].as_u64().unwrap(), files);
    assert!(
        o.stderr.contains("symbolic link") && o.stderr.contains(&rt.display().to_string()),
        "{}",
        o.stderr
    );
    assert!(
        names(&trap).is_empty(),
        "nothing created through the link: {:?}",
        names(&trap)
    );
    assert!(
        names(&w.fallback()).iter().any(|n| n.ends_with(".lock")),
        "the locks are in the fallback"
    );
    assert_eq!(w.data(), before);
}

/// (6) The attacker owns the runtime dir and holds flocks on the victim's
/// lock files in it: the victim's backups still run (fallback).
#[test]
fn foreign_runtime_dir_holding_a_flock_does_not_block_backups() {
    let w = World::new();
    let (_, files) = w.baseline();
    let rt = w.p(&format!("shared/secureclaw-backup-{}", w.victim.uid));
    let (src_lock, dest_lock) = (
        rt.join(path_key(&w.p("v/data"))),
        rt.join(path_key(&w.p("v/dest"))),
    );
    w.mallory(&format!(
        "mkdir -m 0777 {rt} && touch {a} {b} && chmod 0666 {a} {b}",
        rt = rt.display(),
        a = src_lock.display(),
        b = dest_lock.display()
    ));
    let mut holder = as_user(w.mallory, "flock")
        .arg(&src_lock)
        .arg("flock")
        .arg(&dest_lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    // the flocks are really held
    let t = Instant::now();
    loop {
        let busy = Command::new("flock")
            .args(["-n", "-E", "99", src_lock.to_str().unwrap(), "true"])
            .status()
            .unwrap()
            .code()
            == Some(99);
        if busy {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the holder never locked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..2 {
        let (o, b) = w.backup(&w.p("shared"), &w.s("v/data"));
        assert_eq!(b["files"].as_u64().unwrap(), files);
        assert!(o.stderr.contains(&rt.display().to_string()), "{}", o.stderr);
    }
    assert!(alive(&mut holder));
    let _ = holder.kill();
    let _ = holder.wait();
}

/// (7) Another user's `.data.restore-*` entries beside the target (a
/// directory, a symlink to the victim's files) do not block a restore and are
/// left alone; our own dead staging there is removed first, even by a dry run.
#[test]
fn foreign_staging_dirs_beside_the_target_do_not_block_restore() {
    let w = World::new();
    let (archive, _) = w.baseline();
    let target = w.p("sticky/data");
    make_tree(&target);
    chown_r(&target, w.victim);
    fs::create_dir(w.p("v/precious")).unwrap();
    fs::write(w.p("v/precious/keep"), b"precious").unwrap();
    chown_r(&w.p("v/precious"), w.victim);
    let precious = snapshot(&w.p("v/precious"));
    w.mallory(&format!(
        "cd {s} && mkdir -m 0755 .data.restore-999999999-aa && : > .data.restore-999999999-aa/f \
         && ln -s {p} .data.restore-999999998-bb",
        s = w.s("sticky"),
        p = w.s("v/precious")
    ));
    // a dead run of ours left plaintext staging
    w.sh(
        w.victim,
        &format!(
            "mkdir -m 0700 {s}/.data.restore-999999997-cc && printf secret > {s}/.data.restore-999999997-cc/f",
            s = w.s("sticky")
        ),
    );
    let before = snapshot(&target);
    let t = target.to_string_lossy().into_owned();
    let o = w.restore(&w.p("shared"), &archive, &t, &["--dry-run"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        snapshot(&target),
        before,
        "a dry run leaves the target as it is"
    );
    let left = names(&w.p("sticky"));
    assert!(
        !left.contains(&".data.restore-999999997-cc".to_owned()),
        "our dead staging removed first: {left:?}"
    );
    assert!(
        o.stderr.contains(".data.restore-999999999-aa"),
        "{}",
        o.stderr
    );
    let o = w.restore(&w.p("shared"), &archive, &t, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let left = names(&w.p("sticky"));
    assert_eq!(
        left,
        vec![
            ".data.restore-999999998-bb".to_owned(),
            ".data.restore-999999999-aa".to_owned(),
            "data".to_owned()
        ],
        "the attacker's entries are left alone, ours are gone"
    );
    assert!(w.p("sticky/.data.restore-999999999-aa/f").exists());
    assert_eq!(snapshot(&w.p("v/precious")), precious);
}

/// (8) Backup and restore of one directory are serialised by the directory
/// itself: a restore through a symlinked path (and the other way round) while
/// a real backup holds the lock is refused with exit 5.
#[test]
fn restore_through_a_symlink_meets_the_running_backups_lock() {
    let w = World::new();
    let (archive, _) = w.baseline();
    fs::create_dir(w.p("v/links")).unwrap();
    std::os::unix::fs::symlink(w.p("v/data"), w.p("v/links/data")).unwrap();
    chown_r(&w.p("v/links"), w.victim);
    // a live session lock makes the backup wait (holding its source lock)
    let mut holder = as_user(w.victim, "sleep").arg("120").spawn().unwrap();
    let sessions = w.p("v/data/agents/main/sessions");
    w.sh(
        w.victim,
        &format!(
            "printf '{{\"role\":\"user\"}}\\n' > {s}/hold.jsonl && printf '{{\"pid\":{pid}}}' > {s}/hold.jsonl.lock",
            s = sessions.display(),
            pid = holder.id()
        ),
    );
    let before = w.data();
    let r = age_recipient();
    let dest = w.s("v/dest");
    // a symlinked source is refused by backup, but a path through a
    // symlinked parent is the same directory too
    std::os::unix::fs::symlink(w.p("v"), w.p("v/links/v")).unwrap();
    std::os::unix::fs::lchown(w.p("v/links/v"), Some(w.victim.uid), Some(w.victim.gid)).unwrap();
    let mut pairs = vec![
        (w.s("v/data"), w.s("v/links/data")),
        (w.s("v/links/v/data"), w.s("v/data")),
        (w.s("v/data"), w.s("v/links/v/links/data")),
    ];
    // a bind mount: another path, the same device + inode
    let _mount = BindMount::new(&w.p("v/data"), &w.p("mnt/data"));
    if _mount.is_some() {
        pairs.push((w.s("v/data"), w.s("mnt/data")));
    } else {
        eprintln!("NOTE: mount --bind is not permitted here: the bind-mount case is not run");
    }
    for (backup_path, restore_path) in pairs {
        let mut backup = w
            .victim_cmd(
                &w.p("shared"),
                &[
                    "backup",
                    "--source",
                    &backup_path,
                    "--dest",
                    &dest,
                    "-r",
                    &r,
                    "--lock-wait",
                    "60s",
                ],
            )
            .stdout(Stdio::null())
            .stderr(fs::File::create(w.p("backup.err")).unwrap())
            .spawn()
            .unwrap();
        // wait until the backup holds the data dir's lock (it then waits on
        // the session lock); probed in /proc/locks, without taking it
        let lockfile = w
            .p(&format!("shared/secureclaw-backup-{}", w.victim.uid))
            .join(path_key(&w.p("v/data")));
        let t = Instant::now();
        let held = || flock_held(&lockfile);
        while !held() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the backup never took its lock: {}",
                fs::read_to_string(w.p("backup.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let refused = w.restore(&w.p("shared"), &archive, &restore_path, &[]);
        assert_eq!(refused.code, 5, "{refused:?}");
        assert!(
            refused.stderr.contains("another secureclaw-backup run"),
            "{refused:?}"
        );
        assert!(alive_pid(backup.id()));
        let _ = backup.kill();
        let _ = backup.wait();
    }
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(w.data(), before, "nothing was restored into the data dir");
}

/// The lock file name of a directory by its resolved path (src/lock.rs).
fn path_key(p: &Path) -> String {
    use sha2::Digest;
    let c = fs::canonicalize(p).unwrap();
    format!(
        "{}.lock",
        hex::encode(&sha2::Sha256::digest(c.as_os_str().as_encoded_bytes())[..12])
    )
}

/// `mount --bind from to` for the lifetime of the guard.
struct BindMount(PathBuf);

impl BindMount {
    fn new(from: &Path, to: &Path) -> Option<BindMount> {
        fs::create_dir_all(to).unwrap();
        fs::set_permissions(to.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(to)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| BindMount(to.to_owned()))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Whether some process holds a flock on `path` (from /proc/locks, which
/// names the inode), found without taking it.
fn flock_held(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::metadata(path) else {
        return false;
    };
    let ino = m.ino().to_string();
    fs::read_to_string("/proc/locks").unwrap().lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK")
            && f.get(5)
                .and_then(|d| d.rsplit(':').next())
                .is_some_and(|i| i == ino)
    })
}

fn alive_pid(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
