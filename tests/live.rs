//! Backups of a running SecureClaw: SQLite online backup under a writer,
//! line-boundary capture of growing transcripts, session locks, `--strict`,
//! and secure deletion of plaintext staging (normal run, SIGTERM, kill -9).
//! Each test drives the real binary with its own runtime and temp dirs.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use common::{bin, files_containing, repo};

const CANARY: &[u8] = b"LIVE-CANARY-3e91d0c7";

/// A test world: source, destination, runtime dir, TMPDIR, HOME.
struct World {
    _root: tempfile::TempDir,
    src: PathBuf,
    dest: PathBuf,
    xdg: PathBuf,
    tmp: PathBuf,
    home: PathBuf,
}

impl World {
    fn new() -> World {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().to_owned();
        let w = World {
            src: p.join("src"),
            dest: p.join("dest"),
            xdg: p.join("xdg"),
            tmp: p.join("tmp"),
            home: p.join("home"),
            _root: root,
        };
        for d in [&w.src, &w.xdg, &w.tmp, &w.home] {
            fs::create_dir_all(d).unwrap();
        }
        w
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("backup")
            .arg("--source")
            .arg(&self.src)
            .arg("--dest")
            .arg(&self.dest)
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .env("TMPDIR", &self.tmp)
            .env("SECURECLAW_BACKUP_KEY", "")
            .stdin(Stdio::null());
        for v in [
            "SECURECLAW_STATE_DIR",
            "SECURECLAW_DIR",
            "OPENCLAW_STATE_DIR",
            "CLAWDBOT_STATE_DIR",
            "BACKUP_ROOT",
        ] {
            c.env_remove(v);
        }
        c
    }

    fn encrypted(&self, extra: &[&str]) -> Command {
        let key = repo().join("keys-example/age-example.pub");
        let mut args = vec!["-r", key.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    fn plain(&self, extra: &[&str]) -> Command {
        let mut args = vec!["--insecure-plaintext"];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    fn archives(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(&self.dest)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".tar.gz") || n.ends_with(".tar.gz.age")
        });
        v.sort();
        v
    }

    /// Staging directories currently under the runtime dir.
    fn staging_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for rt in fs::read_dir(&self.xdg).unwrap().flatten() {
            if let Ok(rd) = fs::read_dir(rt.path()) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with("staging-") {
                        out.push(e.path());
                    }
                }
            }
        }
        out
    }

    /// Whether a non-empty staged file exists right now.
    fn staged_file_present(&self) -> bool {
        self.staging_dirs().iter().any(|d| {
            fs::read_dir(d)
                .map(|r| r.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
                .unwrap_or(false)
        })
    }

    /// Files under the runtime dir, TMPDIR and the destination that contain the canary.
    fn canary_hits(&self) -> Vec<PathBuf> {
        let mut hits = Vec::new();
        for d in [&self.xdg, &self.tmp, &self.dest] {
            hits.extend(files_containing(d, CANARY));
        }
        hits
    }
}

fn run(mut c: Command) -> Output {
    let out = c.output().unwrap();
    eprintln!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Extracts a plaintext archive into a new directory and returns its top dir.
fn extract(archive: &Path, into: &Path) -> PathBuf {
    fs::create_dir_all(into).unwrap();
    let st = Command::new("tar")
        .arg("xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(st.success());
    fs::read_dir(into).unwrap().flatten().next().unwrap().path()
}

fn manifest(top: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(top.join("manifest.json")).unwrap()).unwrap()
}

fn warnings_of(m: &serde_json::Value, kind: &str) -> Vec<(String, String)> {
    m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == kind)
        .map(|w| {
            (
                w["path"].as_str().unwrap().to_owned(),
                w["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A WAL database of `rows` rows of `blob` random bytes, each with the canary.
fn make_db(path: &Path, rows: i64, blob: i64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = Connection::open(path).unwrap();
    c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, note TEXT, v BLOB)")
        .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    let note = String::from_utf8(CANARY.to_vec()).unwrap();
    for i in 1..=rows {
        tx.execute(
            "INSERT INTO t VALUES(?1, ?2, randomblob(?3))",
            rusqlite::params![i, note, blob],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn sqlite_snapshot_is_consistent_while_a_writer_commits() {
    let w = World::new();
    let db = w.src.join("memory/agent.sqlite");
    make_db(&db, 8000, 1000);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut i = 8001i64;
            while !stop.load(Ordering::Relaxed) {
                c.execute("INSERT INTO t VALUES(?1, 'w', randomblob(200))", [i])
                    .unwrap();
                i += 1;
            }
            i - 1
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(w.src.join("memory/agent.sqlite-wal").exists());
    let out = run(w.plain(&["-v"]));
    stop.store(true, Ordering::Relaxed);
    let last = writer.join().unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("SQLite online backup"),
        "captured with the backup API"
    );
    let top = extract(&w.archives()[0], &w.home.join("x"));
    assert!(
        !top.join("memory/agent.sqlite-wal").exists(),
        "-wal not archived"
    );
    assert!(
        !top.join("memory/agent.sqlite-shm").exists(),
        "-shm not archived"
    );
    let m = manifest(&top);
    assert!(warnings_of(&m, "sqlite-fallback").is_empty());
    let c = Connection::open(top.join("memory/agent.sqlite")).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let (n, lo, hi): (i64, i64, i64) = c
        .query_row("SELECT count(*), min(id), max(id) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (lo, n),
        (1, hi),
        "a prefix 1..k of the commits, without gaps"
    );
    assert!(hi >= 8000 && hi <= last, "k={hi}, writer reached {last}");
    assert!(last > 8000, "the writer committed during the backup");
}

#[test]
fn transcripts_end_at_a_line_boundary_and_locks_are_honoured() {
    let w = World::new();
    let sessions = w.src.join("agents/main/sessions");
    fs::create_dir_all(&sessions).unwrap();
    // a transcript being written: its lock's pid (this test) is alive
    fs::write(
        sessions.join("a.jsonl"),
        b"{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"te",
    )
    .unwrap();
    fs::write(
        sessions.join("a.jsonl.lock"),
        format!("{{\"pid\":{}}}", std::process::id()),
    )
    .unwrap();
    // a finished transcript with a stale lock (dead pid): no wait, no warning
    fs::write(sessions.join("b.jsonl"), b"{\"n\":1}\n").unwrap();
    fs::write(sessions.join("b.jsonl.lock"), b"{\"pid\":999999999}").unwrap();
    // a log growing throughout the backup, written in half lines
    let log = w.src.join("gateway.log");
    // big enough that appends land while it is read
    fs::write(
        &log,
        format!("line 0 {} and ends\n", "x".repeat(80)).repeat(80_000),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                f.write_all(format!("line {i} begins").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                f.write_all(b" and ends\n").unwrap();
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    let out = run(w.plain(&["--lock-wait", "400ms"]));
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    assert!(out.status.success());
    assert!(
        took >= Duration::from_millis(400),
        "waited for the live lock"
    );
    let err = stderr(&out);
    assert!(err.contains("[live-lock]"), "{err}");
    let top = extract(&w.archives()[0], &w.home.join("x"));
    let m = manifest(&top);
    let a = fs::read(top.join("agents/main/sessions/a.jsonl")).unwrap();
    assert_eq!(a, b"{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(warnings_of(&m, "live-lock").len(), 1);
    assert_eq!(
        warnings_of(&m, "live-lock")[0].0,
        "agents/main/sessions/a.jsonl"
    );
    assert_eq!(
        fs::read(top.join("agents/main/sessions/b.jsonl")).unwrap(),
        b"{\"n\":1}\n"
    );
    assert!(
        !top.join("agents/main/sessions/a.jsonl.lock").exists(),
        "lock files are not archived"
    );
    let got = fs::read(top.join("gateway.log")).unwrap();
    let now = fs::read(&log).unwrap();
    assert!(
        got.ends_with(b"\n") && now.starts_with(&got),
        "a line-boundary prefix"
    );
    for line in String::from_utf8(got).unwrap().lines() {
        assert!(line.ends_with(" and ends"), "no half line: {line:?}");
    }
    let grew = warnings_of(&m, "changed-while-read");
    assert!(
        grew.iter()
            .any(|(p, d)| p == "gateway.log" && d.contains("grew") && d.contains("line boundary")),
        "{grew:?}"
    );
    // every manifest warning is in the summary on stderr
    for wn in m["warnings"].as_array().unwrap() {
        let kind = wn["kind"].as_str().unwrap();
        assert!(
            err.contains(&format!("{} [{kind}]", wn["path"].as_str().unwrap())),
            "{kind} not in summary"
        );
    }

    // --strict: same run, archive written, but exit 1
    let out = run(w.plain(&["--lock-wait", "0s", "--strict"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--strict"));
    assert_eq!(w.archives().len(), 2, "the archive was still written");
    // without warnings --strict succeeds
    fs::remove_file(sessions.join("a.jsonl.lock")).unwrap();
    fs::remove_file(sessions.join("b.jsonl.lock")).unwrap();
    fs::write(sessions.join("a.jsonl"), b"{\"n\":1}\n").unwrap();
    let out = run(w.plain(&["--strict"]));
    assert!(out.status.success());
}

#[test]
fn bad_lock_wait_is_a_usage_error() {
    let w = World::new();
    let out = run(w.plain(&["--lock-wait", "soon"]));
    assert_eq!(out.status.code(), Some(2));
}

/// Waits until the child has a non-empty staged file, or panics.
fn wait_for_staging(w: &World, child: &mut Child) {
    let t = Instant::now();
    while !w.staged_file_present() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before staging was seen"
        );
        assert!(t.elapsed() < Duration::from_secs(30), "no staging seen");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn no_staged_plaintext_survives() {
    let w = World::new();
    fs::write(w.src.join("secureclaw.json"), b"{}").unwrap();
    make_db(&w.src.join("memory/big.sqlite"), 24_000, 1500);

    // 1. a normal run
    let out = run(w.encrypted(&[]));
    assert!(out.status.success());
    assert!(w.staging_dirs().is_empty());
    assert!(w.canary_hits().is_empty(), "{:?}", w.canary_hits());

    // 2. SIGTERM while the database is captured or archived
    let mut child = w
        .encrypted(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_staging(&w, &mut child);
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a clean exit through the error path"
    );
    assert!(stderr(&out).contains("interrupted"));
    assert!(w.staging_dirs().is_empty(), "staging removed on SIGTERM");
    assert!(w.canary_hits().is_empty(), "{:?}", w.canary_hits());
    assert_eq!(w.archives().len(), 1);

    // 3. kill -9 leaves staging behind; the next run shreds it and says so
    let mut child = w
        .encrypted(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_staging(&w, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(w.staging_dirs().len(), 1, "kill -9 cannot clean up");
    let out = run(w.encrypted(&[]));
    assert!(out.status.success());
    assert!(stderr(&out).contains("stale staging"), "reported");
    assert!(w.staging_dirs().is_empty());
    assert!(w.canary_hits().is_empty(), "{:?}", w.canary_hits());
    assert_eq!(w.archives().len(), 2);
}

/// Issue 13: a quiet `*.log`/`*.jsonl` whose last line has no newline is
/// archived whole (it used to be cut to its last line boundary: `api.log`
/// 28 → 0 bytes, `s1.jsonl` 29 → 16, exit 0) — just written or long quiet.
/// A file that is appended to while the backup looks at it is still cut.
#[test]
fn quiet_line_files_without_a_final_newline_are_archived_whole() {
    let w = World::new();
    let api = b"GET /health 200 in 3 ms, ok!";
    assert_eq!(api.len(), 28);
    fs::write(w.src.join("api.log"), api).unwrap();
    let s1 = b"{\"n\":1}\n{\"n\":2}\n{\"role\":\"user";
    assert_eq!(s1.len(), 29);
    fs::create_dir_all(w.src.join("agents/main/sessions")).unwrap();
    fs::write(w.src.join("agents/main/sessions/s1.jsonl"), s1).unwrap();
    // long quiet: modified a day ago
    fs::write(w.src.join("old.log"), b"first\nsecond, unterminated").unwrap();
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(86_400);
    fs::File::options()
        .write(true)
        .open(w.src.join("old.log"))
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
    // appended to in half lines while the backup runs
    let busy = w.src.join("busy.log");
    fs::write(&busy, b"line 0 begins").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (busy, stop) = (busy.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&busy).unwrap();
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b" and ends\n").unwrap();
                f.write_all(format!("line {i} begins").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let out = run(w.plain(&[]));
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let top = extract(&w.archives()[0], &w.home.join("x"));
    assert_eq!(fs::read(top.join("api.log")).unwrap(), api);
    assert_eq!(
        fs::read(top.join("agents/main/sessions/s1.jsonl")).unwrap(),
        s1
    );
    assert_eq!(
        fs::read(top.join("old.log")).unwrap(),
        b"first\nsecond, unterminated"
    );
    let got = fs::read(top.join("busy.log")).unwrap();
    assert!(
        got.ends_with(b" and ends\n"),
        "cut at a line boundary: {:?}",
        String::from_utf8_lossy(&got)
    );
    let m = manifest(&top);
    assert!(warnings_of(&m, "partial-line").is_empty());
    assert!(!warnings_of(&m, "changed-while-read")
        .iter()
        .any(|(p, _)| p == "api.log" || p.ends_with("s1.jsonl") || p == "old.log"));
}
