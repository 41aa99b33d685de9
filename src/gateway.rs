//! Detection of a running SecureClaw gateway (SECURECLAW-LAYOUT.md): the lock
//! file `$TMPDIR/secureclaw-<uid>/gateway.<hash>.lock` holds JSON with the pid
//! and the config path. A lock whose pid is dead is stale. Processes are only
//! ever signalled by the pid in such a lock, never by name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A live gateway using a given data directory's config.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gateway {
    pub pid: i32,
    pub lock: PathBuf,
    pub config_path: String,
}

fn lock_dirs() -> Vec<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    let mut dirs = vec![crate::paths::tmp_dir().join(format!("secureclaw-{uid}"))];
    let tmp = PathBuf::from("/tmp").join(format!("secureclaw-{uid}"));
    if !dirs.contains(&tmp) {
        dirs.push(tmp);
    }
    dirs
}

/// Finds live gateways whose config lies in `data_dir`.
pub fn find_live(data_dir: &Path) -> Vec<Gateway> {
    let want = crate::paths::absolute(data_dir);
    let mut found = Vec::new();
    for dir in lock_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("gateway.") && name.ends_with(".lock")) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let pid = v.get("pid").and_then(|p| p.as_i64()).unwrap_or(0) as i32;
            let cfg = v.get("configPath").and_then(|c| c.as_str()).unwrap_or("");
            let cfg_dir = Path::new(cfg).parent().map(crate::paths::absolute);
            if cfg_dir.as_deref() == Some(want.as_path()) && crate::process::pid_alive(pid) {
                found.push(Gateway {
                    pid,
                    lock: e.path(),
                    config_path: cfg.to_owned(),
                });
            }
        }
    }
    found
}

/// Refuses while a gateway uses `data_dir`, or stops it with SIGTERM (then
/// waits up to `wait`) when `stop` is set.
pub fn ensure_stopped(
    data_dir: &Path,
    stop: bool,
    wait: Duration,
    ui: &crate::ui::Ui,
) -> Result<()> {
    let live = find_live(data_dir);
    if live.is_empty() {
        return Ok(());
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
        ui.info(format!("stopping gateway pid {} (SIGTERM)", g.pid));
        if let Some(pid) = rustix::process::Pid::from_raw(g.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if live.iter().all(|g| !crate::process::pid_alive(g.pid)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::refused(format!(
        "the gateway did not exit within {} s of SIGTERM",
        wait.as_secs()
    ))
    .hint("stop it by hand, then run restore again"))
}
