//! Consistent capture of live files while SecureClaw keeps running (README
//! "What is backed up"). The backup engine hands every regular file of the walk to
//! [`Capturer::archive_file`], which picks how to read it:
//!
//! * SQLite databases (`*.sqlite`, `*.sqlite3`, `*.db` with the SQLite header)
//!   are snapshotted with the online backup API into a staged file
//!   ([`sqlite`], [`staging`]), archived under their own name and mode, and
//!   the staged copy is shredded at once. If the snapshot fails or does not
//!   finish within [`LiveOptions::sqlite_timeout`], the file is read plainly
//!   (bounded) and a `sqlite-fallback` warning says the copy may be torn.
//! * Their `-wal`, `-shm` and `-journal` siblings are skipped silently: the
//!   snapshot already contains every committed transaction of the WAL, and a
//!   restored database must not be paired with a foreign WAL. They are not
//!   warnings (nothing is lost), so `--strict` is not tripped by every live
//!   database.
//! * `*.jsonl` transcripts and `*.log` files are archived whole when quiet,
//!   and as a prefix ending at a line boundary while a writer appends (a
//!   session write lock is held, or the file changes as we look) ([`jsonl`]).
//! * Everything else is read bounded by [`ArchiveWriter::add_file`].
//!
//! Warning kinds added here: `sqlite-fallback`, `live-lock`, `partial-line`
//! (and `changed-while-read` for grown line files).

pub mod jsonl;
pub mod sqlite;
pub mod staging;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::archive::writer::ArchiveWriter;
use crate::error::Result;
use crate::events::Events;

/// Default `--lock-wait`.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long an online SQLite backup may take before we fall back.
pub const DEFAULT_SQLITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Tunables of live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// How long to wait for a live session write lock (`--lock-wait`).
    pub lock_wait: Duration,
    /// Time budget of one SQLite online backup.
    pub sqlite_timeout: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            lock_wait: DEFAULT_LOCK_WAIT,
            sqlite_timeout: DEFAULT_SQLITE_TIMEOUT,
        }
    }
}

/// Per-run capture state: the options and the (lazily created) staging
/// directory, which is shredded when this is dropped, on every path out.
pub struct Capturer<'a> {
    opts: LiveOptions,
    staging: staging::Staging,
    events: &'a dyn Events,
}

impl<'a> Capturer<'a> {
    /// Staging goes under [`crate::paths::runtime_dir`].
    pub fn new(opts: LiveOptions, events: &'a dyn Events) -> Self {
        // an unusable runtime directory was refused by the locks already;
        // staging re-verifies whatever base it gets
        let base = crate::paths::runtime_dir()
            .map(|rt| rt.path.clone())
            .unwrap_or_else(|_| crate::paths::runtime_candidate());
        Self::with_staging_base(opts, base, events)
    }

    pub fn with_staging_base(
        opts: LiveOptions,
        base: std::path::PathBuf,
        events: &'a dyn Events,
    ) -> Self {
        Capturer {
            opts,
            staging: staging::Staging::new(base),
            events,
        }
    }

    /// Archives the regular file `path` as `rel` with the right capture.
    pub fn archive_file<W: Write>(
        &mut self,
        aw: &mut ArchiveWriter<W>,
        rel: &[u8],
        path: &Path,
    ) -> Result<()> {
        let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
        // the kinds are told by ASCII suffixes, which a lossy view keeps
        let name = String::from_utf8_lossy(name);
        let name = name.as_ref();
        if sqlite::sidecar_of(name, path).is_some() {
            return Ok(());
        }
        if sqlite::is_database(name, path) {
            return self.archive_sqlite(aw, rel, path);
        }
        if jsonl::is_line_file(name) {
            return jsonl::archive(aw, rel, path, self.opts.lock_wait);
        }
        aw.add_file(rel, path)
    }

    fn archive_sqlite<W: Write>(
        &mut self,
        aw: &mut ArchiveWriter<W>,
        rel: &[u8],
        path: &Path,
    ) -> Result<()> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => m,
            // vanished or replaced since the walk saw it: the plain path reports it
            _ => return aw.add_file(rel, path),
        };
        let staged = match self.staging.create(".sqlite") {
            Ok(s) => s,
            Err(e) => {
                aw.warn(
                    rel,
                    "sqlite-fallback",
                    format!("could not stage an online backup ({}); archived a plain read, which may be inconsistent", e.message),
                );
                return aw.add_file(rel, path);
            }
        };
        match sqlite::snapshot(path, &staged.path, self.opts.sqlite_timeout) {
            Ok(snap) => {
                let mut file = sqlite::open_staged(&staged.path)?;
                let size = file
                    .metadata()
                    .map_err(|e| crate::Error::io("reading metadata of", &staged.path, e))?
                    .len();
                aw.add_open_file_as(
                    rel,
                    &staged.path,
                    &mut file,
                    size,
                    meta.mode(),
                    meta.mtime(),
                )?;
                drop(file);
                staged.shred()?;
                self.events.detail(format!(
                    "{}: SQLite online backup, {} pages in {:.0} ms ({} restart(s){})",
                    crate::manifest::show(rel),
                    snap.pages,
                    snap.elapsed.as_secs_f64() * 1000.0,
                    snap.restarts,
                    if snap.read_write {
                        ", read-write open"
                    } else {
                        ""
                    }
                ));
                Ok(())
            }
            Err(sqlite::Failure::Interrupted(e)) => Err(e),
            Err(f) => {
                staged.shred()?;
                let why = match f {
                    sqlite::Failure::Timeout(t) => format!(
                        "the online backup did not finish within {} s (the database kept changing)",
                        t.as_secs()
                    ),
                    sqlite::Failure::Sqlite(m) => format!("the online backup failed: {m}"),
                    sqlite::Failure::Interrupted(_) => unreachable!(),
                };
                aw.warn(
                    rel,
                    "sqlite-fallback",
                    format!("{why}; archived a plain read, which may be inconsistent"),
                );
                aw.add_file(rel, path)
            }
        }
    }

    /// Shreds and removes the staging directory, reporting failure.
    pub fn finish(self) -> Result<()> {
        self.staging.close()
    }
}

/// Shreds the staging left by runs that died (kill -9) and warns about each.
pub fn sweep_stale_staging(events: &dyn Events) {
    let Ok(rt) = crate::paths::runtime_dir() else {
        return;
    };
    for s in staging::sweep_stale(&rt.path) {
        let by = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        match s.result {
            Ok(()) => events.warn(format!(
                "securely deleted stale staging {} left by an interrupted run{by}",
                s.dir.display()
            )),
            Err(e) => events.warn(format!(
                "could not securely delete stale staging {} left by an interrupted run{by}: {e}",
                s.dir.display()
            )),
        }
    }
}

/// Parses a wait such as `500ms`, `5s`, `1m`, `1m30s` or a bare number of
/// seconds.
pub fn parse_wait(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}; write e.g. 500ms, 5s or 1m");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(n), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(n), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(n.saturating_mul(60)), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(n.saturating_mul(3600)), 1)
        } else {
            return Err(bad());
        };
        total = total.saturating_add(unit);
        rest = &rest[len..];
    }
    if total > Duration::from_secs(24 * 3600) {
        return Err(format!("{s:?} is too long (at most 24h)"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture_all(dir: &Path, opts: LiveOptions) -> ArchiveWriter<Vec<u8>> {
        let base = dir.join("rt");
        let mut c = Capturer::with_staging_base(opts, base.clone(), &crate::events::Silent);
        let mut aw = ArchiveWriter::new(Vec::new(), "top");
        let mut names: Vec<_> = std::fs::read_dir(dir.join("src"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        for n in names {
            c.archive_file(&mut aw, n.as_bytes(), &dir.join("src").join(&n))
                .unwrap();
        }
        c.finish().unwrap();
        let left: Vec<_> = std::fs::read_dir(&base)
            .map(|r| r.flatten().collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "staging removed: {left:?}");
        aw
    }

    fn wal_db(path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).unwrap();
        c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        c.execute_batch(
            "CREATE TABLE t(v BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<8000) INSERT INTO t SELECT zeroblob(1000) FROM n;",
        )
        .unwrap();
        c
    }

    #[test]
    fn sqlite_is_snapshotted_and_sidecars_skipped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("src")).unwrap();
        let _open = wal_db(&d.path().join("src/m.sqlite"));
        assert!(d.path().join("src/m.sqlite-wal").exists());
        let aw = capture_all(d.path(), LiveOptions::default());
        let paths: Vec<_> = aw.entries.iter().map(|e| e.path.as_bytes()).collect();
        assert_eq!(paths, [b"m.sqlite"]);
        assert!(aw.warnings.is_empty(), "{:?}", aw.warnings);
    }

    #[test]
    fn sqlite_timeout_falls_back_to_a_plain_read_with_a_warning() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("src")).unwrap();
        drop(wal_db(&d.path().join("src/m.db")));
        let opts = LiveOptions {
            sqlite_timeout: Duration::ZERO,
            ..LiveOptions::default()
        };
        let aw = capture_all(d.path(), opts);
        assert_eq!(aw.entries.len(), 1);
        assert_eq!(aw.warnings.len(), 1);
        assert_eq!(aw.warnings[0].kind, "sqlite-fallback");
        assert!(aw.warnings[0].detail.contains("did not finish"));
    }

    #[test]
    fn waits() {
        assert_eq!(parse_wait("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_wait("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_wait("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_wait("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_wait("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_wait("7").unwrap(), Duration::from_secs(7));
        for bad in ["", "s", "5x", "1.5s", "-1s", "ms", "48h"] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
    }
}
