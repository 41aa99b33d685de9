//! Append-only text files read while they grow: JSONL session transcripts and
//! logs (`*.jsonl`, `*.log`).
//!
//! A quiet file is archived whole, whether or not its last line ends in a
//! newline. Only while a writer is really appending — its session lock is
//! held, or the file changes while we look at it — is the archived entry cut
//! to a prefix that ends at a line boundary, so a restore never holds half a
//! line that was still being written: the size is taken when the file is
//! opened, the cut (after the last `\n` within that size) is found by reading
//! the end of that region with positioned reads, and only then is the tar
//! header written with exactly that size. A trailing unterminated JSONL line
//! that parses as a complete JSON object or array is kept.
//!
//! A file whose last line is unterminated and that was modified in the last
//! [`RECENT`] is watched for up to [`WATCH`]: if it changes, it is being
//! appended to.
//!
//! Session write locks (`<file>.lock`, JSON with a `pid`) are honoured: while
//! the lock's pid is alive we wait (up to `--lock-wait`, polling every 50 ms)
//! for it to go away; if it is still held we archive the line-boundary prefix
//! and warn (`live-lock`). A lock whose pid is dead is stale and ignored.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::archive::writer::ArchiveWriter;
use crate::error::{Error, Result};

/// Window read backwards while looking for the last newline.
const WINDOW: u64 = 64 * 1024;
/// Poll interval while waiting for a session lock.
const POLL: Duration = Duration::from_millis(50);
/// A file modified longer ago than this is quiet.
pub const RECENT: Duration = Duration::from_secs(2);
/// How long a recently modified file with an unterminated last line is
/// watched for appends.
pub const WATCH: Duration = Duration::from_millis(100);

/// Whether `name` is a line-oriented file archived at a line boundary.
pub fn is_line_file(name: &str) -> bool {
    name.ends_with(".jsonl") || name.ends_with(".log")
}

/// The length of the longest prefix of the first `size` bytes of `file` that
/// ends at a line boundary. With `json_tail`, an unterminated last line that
/// is a complete JSON object or array (and fits in the window) is kept.
pub fn line_boundary(file: &File, size: u64, json_tail: bool) -> io::Result<u64> {
    let mut end = size;
    let mut buf = vec![0u8; WINDOW as usize];
    while end > 0 {
        let start = end.saturating_sub(WINDOW);
        let win = &mut buf[..(end - start) as usize];
        match file.read_exact_at(win, start) {
            Ok(()) => {}
            // it shrank under us: the bounded read pads and warns
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(size),
            Err(e) => return Err(e),
        }
        if end == size && win.last() == Some(&b'\n') {
            return Ok(size);
        }
        if let Some(i) = win.iter().rposition(|&b| b == b'\n') {
            let cut = start + i as u64 + 1;
            if end == size && json_tail && complete_json(&win[i + 1..]) {
                return Ok(size);
            }
            return Ok(cut);
        }
        if end == size && start == 0 && json_tail && complete_json(win) {
            return Ok(size);
        }
        end = start;
    }
    Ok(0)
}

fn complete_json(fragment: &[u8]) -> bool {
    let first = fragment.iter().find(|b| !b.is_ascii_whitespace());
    matches!(first, Some(b'{') | Some(b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(fragment).is_ok()
}

/// The session lock next to `path`: `<file>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// The pid of a lock file if the lock exists and its pid is alive.
pub fn live_lock_pid(lock: &Path) -> Option<i32> {
    let bytes = std::fs::read(lock).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let pid = i32::try_from(v.get("pid")?.as_i64()?).ok()?;
    crate::process::pid_alive(pid).then_some(pid)
}

/// Waits up to `wait` for the session lock of `path` to be released (or its
/// owner to die). Returns the pid that still holds it after the wait.
pub fn wait_for_lock(path: &Path, wait: Duration) -> Result<Option<i32>> {
    let lock = lock_path(path);
    let started = Instant::now();
    loop {
        let Some(pid) = live_lock_pid(&lock) else {
            return Ok(None);
        };
        if started.elapsed() >= wait {
            return Ok(Some(pid));
        }
        crate::process::check_interrupted()?;
        std::thread::sleep(
            POLL.min(wait.saturating_sub(started.elapsed()))
                .max(Duration::from_millis(1)),
        );
    }
}

/// Archives the line file `path` as `rel`: waits for its session lock, then
/// archives a prefix ending at a line boundary, with warnings for what was
/// left out.
pub fn archive<W: Write>(
    aw: &mut ArchiveWriter<W>,
    rel: &[u8],
    path: &Path,
    lock_wait: Duration,
) -> Result<()> {
    let waited = Instant::now();
    let held = wait_for_lock(path, lock_wait)?;
    let waited = waited.elapsed();
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            aw.warn(
                rel,
                "vanished",
                "deleted while the backup ran; not archived",
            );
            return Ok(());
        }
        Err(e) => return Err(Error::io("opening", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", path, e))?;
    if !meta.is_file() {
        aw.warn(
            rel,
            "replaced",
            "no longer a regular file when opened; not archived",
        );
        return Ok(());
    }
    let size = meta.len();
    let json_tail = rel.ends_with(b".jsonl");
    let boundary =
        line_boundary(&file, size, json_tail).map_err(|e| Error::io("reading", path, e))?;
    let appending = held.is_some() || (boundary < size && being_appended(&file, &meta));
    let cut = if appending { boundary } else { size };
    let o = aw.add_open_file_as(rel, path, &mut file, cut, meta.mode(), meta.mtime())?;
    let after = o.after.as_ref().map_or(size, |a| a.len());
    if let Some(pid) = held {
        aw.warn(
            rel,
            "live-lock",
            format!(
                "session write lock held by running pid {pid} after waiting {:.1} s; archived the first {cut} bytes, ending at a line boundary",
                waited.as_secs_f64()
            ),
        );
    }
    if o.padded > 0 {
        aw.warn(
            rel,
            "changed-while-read",
            format!(
                "shrank while read; {} bytes zero-padded to the archived size {cut}",
                o.padded
            ),
        );
    } else if after > size {
        aw.warn(
            rel,
            "changed-while-read",
            format!("grew while read (from {size} to {after} bytes); archived the first {cut} bytes, ending at a line boundary"),
        );
    } else if cut < size {
        aw.warn(
            rel,
            "partial-line",
            format!("ends in an unfinished line; archived the first {cut} of {size} bytes, ending at a line boundary"),
        );
    } else if o
        .after
        .as_ref()
        .is_some_and(|a| a.mtime() != meta.mtime() || a.mtime_nsec() != meta.mtime_nsec())
    {
        aw.warn(
            rel,
            "changed-while-read",
            "modified while read; archived content may mix old and new data",
        );
    }
    Ok(())
}

/// Whether the open file changes (size or mtime) within [`WATCH`], when it
/// was modified within the last [`RECENT`] (a writer between two writes).
fn being_appended(file: &File, at_open: &std::fs::Metadata) -> bool {
    let changed = |m: &std::fs::Metadata| {
        m.len() != at_open.len()
            || m.mtime() != at_open.mtime()
            || m.mtime_nsec() != at_open.mtime_nsec()
    };
    let recent = at_open
        .modified()
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .is_none_or(|age| age < RECENT);
    if !recent {
        return false;
    }
    let started = Instant::now();
    loop {
        match file.metadata() {
            Ok(m) if changed(&m) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        if started.elapsed() >= WATCH || crate::process::interrupted() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut_of(content: &[u8], json: bool) -> u64 {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, content).unwrap();
        let f = File::open(&p).unwrap();
        line_boundary(&f, content.len() as u64, json).unwrap()
    }

    #[test]
    fn cuts_at_the_last_newline() {
        assert_eq!(cut_of(b"", false), 0);
        assert_eq!(cut_of(b"a\nb\n", false), 4);
        assert_eq!(cut_of(b"a\nb", false), 2);
        assert_eq!(cut_of(b"no newline", false), 0);
        assert_eq!(cut_of(b"{\"a\":1}\n{\"b\":", true), 8);
        // a complete JSON line without its newline is kept
        assert_eq!(cut_of(b"{\"a\":1}\n{\"b\":2}", true), 15);
        assert_eq!(cut_of(b"{\"b\":2}", true), 7);
        assert_eq!(cut_of(b"{\"a\":1}\n12", true), 8);
        // a long last line spanning several windows
        let mut big = b"first\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 3 * WINDOW as usize + 10));
        assert_eq!(cut_of(&big, false), 6);
        let mut big2 = big.clone();
        big2.push(b'\n');
        assert_eq!(cut_of(&big2, false), big2.len() as u64);
    }

    #[test]
    fn stale_and_live_locks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.jsonl");
        let lock = lock_path(&p);
        assert_eq!(lock.file_name().unwrap(), "s.jsonl.lock");
        assert_eq!(wait_for_lock(&p, Duration::from_secs(5)).unwrap(), None);
        std::fs::write(&lock, br#"{"pid": 999999999, "createdAt": "x"}"#).unwrap();
        let t = Instant::now();
        assert_eq!(wait_for_lock(&p, Duration::from_secs(5)).unwrap(), None);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a dead pid's lock is stale"
        );
        let me = std::process::id() as i32;
        std::fs::write(&lock, format!("{{\"pid\": {me}}}")).unwrap();
        let t = Instant::now();
        assert_eq!(
            wait_for_lock(&p, Duration::from_millis(200)).unwrap(),
            Some(me)
        );
        assert!(t.elapsed() >= Duration::from_millis(200));
        // released while we wait
        let l2 = lock.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::remove_file(l2).unwrap();
        });
        assert_eq!(wait_for_lock(&p, Duration::from_secs(5)).unwrap(), None);
        h.join().unwrap();
    }
}
