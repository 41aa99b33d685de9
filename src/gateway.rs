//! Detection of a running SecureClaw gateway (README "Recovery runbook",
//! SECURITY.md "Local attacker model"): the lock file
//! `secureclaw-<uid>/gateway.<hash>.lock` under `$TMPDIR` (the gateway's
//! default is `/tmp`, so both are read) holds JSON
//! with the pid, the config path and, on Linux, the process start time
//! (`startTime`, field 22 of `/proc/<pid>/stat`). A lock whose pid is dead is
//! stale. Processes are only ever signalled by the pid in such a lock, never
//! by name.
//!
//! Both directories are shared places (SECURITY.md, "Local attacker model"):
//! a lock directory is trusted only when it is ours and not a symlink (opened
//! `O_NOFOLLOW`, checked by `fstat`), a lock file only when it is a regular
//! file owned by us (opened `O_NOFOLLOW`, read at most 64 KiB), and the pid
//! only when its process runs as our uid (real and effective uid in
//! `/proc/<pid>/status`) and, when the lock records `startTime`, started at
//! that time (so a reused pid is not taken for the gateway). Anything else is
//! ignored with a warning. SIGTERM goes through a pidfd opened before those
//! checks, so the signal reaches the process that was checked.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::fsx::{self, NotOurs};

/// The largest lock file read.
const MAX_LOCK: u64 = 64 * 1024;

/// A live gateway using a given data directory's config.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gateway {
    pub pid: i32,
    pub lock: PathBuf,
    pub config_path: String,
    /// `startTime` of the lock, when it has one.
    pub start_time: Option<u64>,
}

/// The lock directories: `$TMPDIR/secureclaw-<uid>/` and `/tmp/secureclaw-<uid>/`.
pub fn lock_dirs() -> Vec<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    let mut dirs = vec![crate::paths::tmp_dir().join(format!("secureclaw-{uid}"))];
    let tmp = PathBuf::from("/tmp").join(format!("secureclaw-{uid}"));
    if !dirs.contains(&tmp) {
        dirs.push(tmp);
    }
    dirs
}

/// Finds live gateways whose config lies in `data_dir`; what was ignored
/// (foreign directories and files) goes to `warnings`.
pub fn scan(data_dir: &Path, warnings: &mut Vec<String>) -> Vec<Gateway> {
    let want = crate::paths::absolute(data_dir);
    let mut found = Vec::new();
    for dir in lock_dirs() {
        let fd = match fsx::open_dir(&dir) {
            Ok(fd) => fd,
            Err(_) => {
                if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                    warnings.push(format!(
                        "ignoring the gateway lock directory {}: it is a symbolic link",
                        dir.display()
                    ));
                }
                continue;
            }
        };
        if let Err(why) = fsx::check_owned(&fd) {
            warnings.push(format!(
                "ignoring the gateway lock directory {}: {why}",
                dir.display()
            ));
            continue;
        }
        let Ok(names) = fsx::names(&fd) else { continue };
        for name in names {
            let name = name.to_string_lossy().into_owned();
            if !(name.starts_with("gateway.") && name.ends_with(".lock")) {
                continue;
            }
            let path = dir.join(&name);
            let text = match fsx::read_owned_file_at(&fd, &name, MAX_LOCK) {
                Ok((t, _)) => t,
                Err(NotOurs::Missing) => continue,
                Err(NotOurs::TooLarge(n)) => {
                    warnings.push(format!(
                        "ignoring the gateway lock {}: {n} bytes is not a lock file",
                        path.display()
                    ));
                    continue;
                }
                Err(NotOurs::Untrusted(why)) => {
                    warnings.push(format!(
                        "ignoring the gateway lock {}: {why}",
                        path.display()
                    ));
                    continue;
                }
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
                continue;
            };
            let pid = v
                .get("pid")
                .and_then(|p| p.as_i64())
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0);
            let start_time = v.get("startTime").and_then(|s| s.as_u64());
            let cfg = v.get("configPath").and_then(|c| c.as_str()).unwrap_or("");
            let cfg_dir = Path::new(cfg).parent().map(crate::paths::absolute);
            if cfg_dir.as_deref() != Some(want.as_path()) || !crate::process::pid_alive(pid) {
                continue;
            }
            if let Err(why) = check_process(pid, start_time) {
                warnings.push(format!(
                    "ignoring the gateway lock {}: pid {pid} {why}",
                    path.display()
                ));
                continue;
            }
            found.push(Gateway {
                pid,
                lock: path,
                config_path: cfg.to_owned(),
                start_time,
            });
        }
    }
    found
}

/// [`scan`] without the warnings.
pub fn find_live(data_dir: &Path) -> Vec<Gateway> {
    scan(data_dir, &mut Vec::new())
}

/// Checks that process `pid` runs as our uid (real and effective uid, from
/// `/proc/<pid>/status`) and, given a start time, started then (field 22 of
/// `/proc/<pid>/stat`). Returns why not.
pub fn check_process(pid: i32, start_time: Option<u64>) -> std::result::Result<(), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot be inspected ({e})"))?;
    let uids: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|u| u.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let me = rustix::process::getuid().as_raw();
    let eme = rustix::process::geteuid().as_raw();
    match uids.as_slice() {
        [real, eff, ..] if *real == me && *eff == eme => {}
        [real, ..] => return Err(format!("belongs to uid {real}, not to this user ({me})")),
        [] => return Err("has no readable owner".to_owned()),
    }
    if let Some(want) = start_time {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("cannot be inspected ({e})"))?;
        let have = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(19))
            .and_then(|s| s.parse::<u64>().ok());
        if have != Some(want) {
            return Err(format!(
                "started at {} (clock ticks since boot), not at the lock's startTime {want}: the pid was reused",
                have.map(|h| h.to_string()).unwrap_or_else(|| "?".to_owned())
            ));
        }
    }
    Ok(())
}

/// Sends SIGTERM to `g` after checking again that its process is ours,
/// through a pidfd opened before the check (falls back to `kill` on kernels
/// without pidfds). Returns why it did not.
fn terminate(g: &Gateway) -> std::result::Result<(), String> {
    let pid = rustix::process::Pid::from_raw(g.pid).ok_or("is not a valid pid")?;
    let pidfd: Option<OwnedFd> =
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
    check_process(g.pid, g.start_time)?;
    let res = match &pidfd {
        Some(fd) => rustix::process::pidfd_send_signal(fd.as_fd(), rustix::process::Signal::TERM),
        None => rustix::process::kill_process(pid, rustix::process::Signal::TERM),
    };
    res.map_err(|e| format!("could not be signalled: {e}"))
}

/// Refuses while a gateway uses `data_dir`, or stops it with SIGTERM (then
/// waits up to `wait`) when `stop` is set. Returns the pids of the gateways
/// that were running (and are stopped now).
pub fn ensure_stopped(
    data_dir: &Path,
    stop: bool,
    wait: Duration,
    events: &dyn Events,
) -> Result<Vec<i32>> {
    let mut warnings = Vec::new();
    let live = scan(data_dir, &mut warnings);
    for w in &warnings {
        events.warn(w);
    }
    if live.is_empty() {
        return Ok(vec![]);
    }
    if !stop {
        let g = &live[0];
        return Err(Error::refused(format!(
            "a SecureClaw gateway (pid {}) is running on {} (lock {})",
            g.pid,
            data_dir.display(),
            g.lock.display()
        ))
        .hint("stop it first (e.g. `systemctl --user stop secureclaw`), or pass --stop-gateway to send it SIGTERM"));
    }
    for g in &live {
        match terminate(g) {
            Ok(()) => events.info(format!("stopping gateway pid {} (SIGTERM)", g.pid)),
            Err(why) => events.warn(format!("not signalling pid {}: it {why}", g.pid)),
        }
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if live.iter().all(|g| {
            !crate::process::pid_alive(g.pid) || check_process(g.pid, g.start_time).is_err()
        }) {
            return Ok(live.iter().map(|g| g.pid).collect());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::refused(format!(
        "the gateway did not exit within {} s of SIGTERM",
        wait.as_secs()
    ))
    .hint("stop it by hand, then run restore again"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_passes_and_start_time_must_match() {
        let me = std::process::id() as i32;
        assert!(check_process(me, None).is_ok());
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let st: u64 = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        assert!(check_process(me, Some(st)).is_ok());
        assert!(check_process(me, Some(st + 1))
            .unwrap_err()
            .contains("reused"));
        // pid 1 runs as root: ours only when we are root
        if rustix::process::getuid().as_raw() != 0 {
            assert!(check_process(1, None).is_err());
        }
    }
}
