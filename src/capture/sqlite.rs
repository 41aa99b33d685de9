//! Consistent snapshots of live SQLite databases with SQLite's online backup
//! API, copied into a staged file.
//!
//! The source is opened read-only (`SQLITE_OPEN_READ_ONLY | NO_MUTEX`); if that
//! fails (e.g. a WAL database whose `-shm` cannot be used read-only) it is
//! opened normally with a busy timeout and `PRAGMA query_only`, so its content
//! is never changed. The copy runs in steps with short pauses so writers can
//! progress; when a writer's commit restarts the copy, the step grows until
//! one step copies the whole database inside a single read transaction (which
//! never blocks writers in WAL mode). The result is always a consistent
//! database: the state of one commit.
//!
//! Side effects on the source are those of any SQLite reader: a WAL database
//! that nobody has open gets (empty) `-wal`/`-shm` files, and in the
//! read-write fallback a hot journal left by a crashed writer is rolled back,
//! as the application itself would do on its next open. Logical content is
//! never changed.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// The 16-byte header of every SQLite 3 database file.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// File name endings of databases we capture (when the header matches).
pub const EXTENSIONS: [&str; 3] = [".sqlite", ".sqlite3", ".db"];
/// Sibling files of a database that are never archived on their own.
pub const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];
/// First step size, in pages (4 MiB at the default page size).
const FIRST_STEP: i32 = 1024;
/// Pause between steps, so writers can commit.
const PAUSE: Duration = Duration::from_millis(2);
/// Busy timeout of the source connection.
const BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// Whether `name` has a database file name ending.
pub fn has_db_extension(name: &str) -> bool {
    EXTENSIONS
        .iter()
        .any(|e| name.len() > e.len() && name.ends_with(e))
}

/// Whether the regular file at `path` starts with the SQLite header.
pub fn has_magic(path: &Path) -> bool {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
    else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 16];
    f.read_exact(&mut head).is_ok() && &head == MAGIC
}

/// Whether `path` is a database we capture with the online backup API.
pub fn is_database(name: &str, path: &Path) -> bool {
    has_db_extension(name) && has_magic(path)
}

/// If `name` is a `-wal`/`-shm`/`-journal` sibling of a SQLite database next
/// to it, the database's path.
pub fn sidecar_of(name: &str, path: &Path) -> Option<PathBuf> {
    let base = SIDECARS.iter().find_map(|s| name.strip_suffix(s))?;
    if !has_db_extension(base) {
        return None;
    }
    let db = path.with_file_name(base);
    has_magic(&db).then_some(db)
}

/// How a snapshot went.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub pages: i32,
    /// How many times a writer's commit restarted the copy.
    pub restarts: u32,
    /// Whether the source had to be opened read-write (read-only failed).
    pub read_write: bool,
    pub elapsed: Duration,
}

/// Why a snapshot could not be taken (the caller falls back to a plain read).
#[derive(Debug)]
pub enum Failure {
    /// The copy did not finish within the timeout.
    Timeout(Duration),
    /// SQLite refused (corrupt database, unreadable file…).
    Sqlite(String),
    /// A termination signal arrived: not a fallback case, abort the run.
    Interrupted(Error),
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Opening is lazy: make SQLite read the schema (and the WAL index) now,
/// retrying while writers hold the lock.
fn probe(c: &Connection, deadline: Instant) -> std::result::Result<(), Failure> {
    c.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| Failure::Sqlite(e.to_string()))?;
    loop {
        match c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())) {
            Ok(()) => return Ok(()),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                crate::process::check_interrupted().map_err(Failure::Interrupted)?;
                std::thread::sleep(PAUSE);
            }
            Err(e) if is_busy(&e) => return Err(Failure::Timeout(Duration::ZERO)),
            Err(e) => return Err(Failure::Sqlite(e.to_string())),
        }
    }
}

/// Opens the source read-only, else read-write with `query_only`.
fn open_source(path: &Path, deadline: Instant) -> std::result::Result<(Connection, bool), Failure> {
    let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let first_err = match Connection::open_with_flags(path, ro) {
        Ok(c) => match probe(&c, deadline) {
            Ok(()) => return Ok((c, false)),
            Err(Failure::Sqlite(m)) => m,
            Err(other) => return Err(other),
        },
        Err(e) => e.to_string(),
    };
    let rw = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, rw).map_err(|e| {
        Failure::Sqlite(format!(
            "read-only open failed ({first_err}); read-write open failed: {e}"
        ))
    })?;
    c.pragma_update(None, "query_only", true)
        .map_err(|e| Failure::Sqlite(e.to_string()))?;
    match probe(&c, deadline) {
        Ok(()) => Ok((c, true)),
        Err(Failure::Sqlite(m)) => Err(Failure::Sqlite(format!(
            "read-only open failed ({first_err}); then: {m}"
        ))),
        Err(other) => Err(other),
    }
}

/// Copies the database at `src` into the (empty, staged) file `dest` with the
/// online backup API, giving up after `timeout`.
pub fn snapshot(
    src: &Path,
    dest: &Path,
    timeout: Duration,
) -> std::result::Result<Snapshot, Failure> {
    let started = Instant::now();
    let (source, read_write) = open_source(src, started + timeout).map_err(|f| match f {
        Failure::Timeout(_) => Failure::Timeout(timeout),
        other => other,
    })?;
    let sql = |e: rusqlite::Error| Failure::Sqlite(e.to_string());
    let mut target = Connection::open_with_flags(
        dest,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    // no journal next to the staged copy, no fsync: it is shredded anyway
    target
        .query_row("PRAGMA journal_mode=OFF", [], |_| Ok(()))
        .map_err(sql)?;
    target
        .pragma_update(None, "synchronous", "OFF")
        .map_err(sql)?;
    let mut restarts = 0u32;
    let pages = {
        let backup = Backup::new(&source, &mut target).map_err(sql)?;
        let mut step = FIRST_STEP;
        let mut last_remaining = i32::MAX;
        loop {
            crate::process::check_interrupted().map_err(Failure::Interrupted)?;
            match backup.step(step).map_err(sql)? {
                StepResult::Done => break backup.progress().pagecount,
                StepResult::More => {
                    let p = backup.progress();
                    if p.remaining >= last_remaining {
                        // a commit restarted the copy: copy more per step, up
                        // to all of it in one read transaction
                        restarts += 1;
                        step = if step < 0 || step >= p.pagecount / 2 {
                            -1
                        } else {
                            step * 4
                        };
                    }
                    last_remaining = p.remaining;
                }
                // Busy, Locked: try again after the pause
                _ => {}
            }
            if started.elapsed() >= timeout {
                return Err(Failure::Timeout(timeout));
            }
            std::thread::sleep(PAUSE);
        }
    };
    target.close().map_err(|(_, e)| sql(e))?;
    drop(source);
    Ok(Snapshot {
        pages,
        restarts,
        read_write,
        elapsed: started.elapsed(),
    })
}

/// Opens a finished staged snapshot for archiving.
pub fn open_staged(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io("opening staged snapshot", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn make_db(path: &Path, wal: bool, rows: i64) -> Connection {
        let c = Connection::open(path).unwrap();
        if wal {
            c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
                .unwrap();
        }
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for i in 1..=rows {
            tx.execute("INSERT INTO t VALUES(?1, zeroblob(1000))", [i])
                .unwrap();
        }
        tx.commit().unwrap();
        c
    }

    fn check_prefix(path: &Path) -> i64 {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let (n, max): (i64, i64) = c
            .query_row("SELECT count(*), coalesce(max(id),0) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(n, max, "rows 1..k without gaps");
        n
    }

    #[test]
    fn names_and_sidecars() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("a.sqlite");
        drop(make_db(&db, false, 1));
        std::fs::write(d.path().join("b.db"), b"not a database at all").unwrap();
        assert!(is_database("a.sqlite", &db));
        assert!(!is_database("b.db", &d.path().join("b.db")));
        assert!(!has_db_extension(".db"));
        assert!(has_db_extension("x.sqlite3"));
        assert_eq!(
            sidecar_of("a.sqlite-wal", &d.path().join("a.sqlite-wal")),
            Some(db.clone())
        );
        assert_eq!(
            sidecar_of("a.sqlite-journal", &d.path().join("a.sqlite-journal")),
            Some(db)
        );
        assert_eq!(sidecar_of("b.db-wal", &d.path().join("b.db-wal")), None);
        assert_eq!(sidecar_of("c.txt-wal", &d.path().join("c.txt-wal")), None);
    }

    #[test]
    fn snapshot_while_a_writer_commits() {
        for wal in [true, false] {
            let d = tempfile::tempdir().unwrap();
            let src = d.path().join("m.sqlite");
            drop(make_db(&src, wal, 3000));
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (src, stop) = (src.clone(), stop.clone());
                std::thread::spawn(move || {
                    let c = Connection::open(&src).unwrap();
                    c.busy_timeout(Duration::from_secs(5)).unwrap();
                    let mut i = 3001i64;
                    while !stop.load(Ordering::Relaxed) {
                        c.execute("INSERT INTO t VALUES(?1, randomblob(500))", [i])
                            .unwrap();
                        i += 1;
                    }
                    i - 1
                })
            };
            std::thread::sleep(Duration::from_millis(30));
            let dest = d.path().join("copy.sqlite");
            std::fs::File::create(&dest).unwrap();
            let snap = snapshot(&src, &dest, Duration::from_secs(30)).unwrap();
            stop.store(true, Ordering::Relaxed);
            let last = writer.join().unwrap();
            let k = check_prefix(&dest);
            eprintln!("wal={wal} k={k} last={last} {snap:?}");
            assert!(
                k >= 3000 && k <= last,
                "wal={wal} k={k} last={last} {snap:?}"
            );
        }
    }

    #[test]
    fn closed_wal_database_without_shm() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("w.sqlite");
        drop(make_db(&src, true, 20));
        assert!(!d.path().join("w.sqlite-wal").exists());
        let before = std::fs::read(&src).unwrap();
        let dest = d.path().join("copy");
        std::fs::File::create(&dest).unwrap();
        let snap = snapshot(&src, &dest, Duration::from_secs(10)).unwrap();
        eprintln!(
            "{snap:?} wal={} shm={}",
            d.path().join("w.sqlite-wal").exists(),
            d.path().join("w.sqlite-shm").exists()
        );
        assert_eq!(std::fs::read(&src).unwrap(), before);
        assert_eq!(check_prefix(&dest), 20);
    }

    #[test]
    fn source_is_not_modified() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("m.db");
        drop(make_db(&src, false, 50));
        let before = std::fs::read(&src).unwrap();
        let dest = d.path().join("copy");
        std::fs::File::create(&dest).unwrap();
        let snap = snapshot(&src, &dest, Duration::from_secs(10)).unwrap();
        assert!(!snap.read_write);
        assert_eq!(std::fs::read(&src).unwrap(), before);
        assert_eq!(check_prefix(&dest), 50);
    }
}
