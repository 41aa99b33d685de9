//! Where things are: the SecureClaw data directory (DESIGN §4), the home
//! directory, and the runtime directory for lock files.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The user's home directory from `$HOME`.
pub fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::usage("HOME is not set").hint("set HOME, or pass --source/--target and --dest")
        })
}

/// The data directory: `--source`/`--target` if given, else
/// `$SECURECLAW_STATE_DIR`, `$SECURECLAW_DIR`, the legacy `$OPENCLAW_STATE_DIR`
/// / `$CLAWDBOT_STATE_DIR`, else `~/.secureclaw`.
pub fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    for var in [
        "SECURECLAW_STATE_DIR",
        "SECURECLAW_DIR",
        "OPENCLAW_STATE_DIR",
        "CLAWDBOT_STATE_DIR",
    ] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(v));
        }
    }
    Ok(home()?.join(".secureclaw"))
}

/// The directory for our lock files: `$XDG_RUNTIME_DIR`, else `$TMPDIR`, else
/// `/tmp`, in a per-user 0700 subdirectory.
pub fn runtime_dir() -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(tmp_dir);
    base.join(format!("secureclaw-backup-{uid}"))
}

/// `$TMPDIR`, else `/tmp`.
pub fn tmp_dir() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Makes `p` absolute without resolving symlinks in its last component.
pub fn absolute(p: &std::path::Path) -> PathBuf {
    if let (Some(parent), Some(name)) = (p.parent(), p.file_name()) {
        let parent = if parent.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            parent
        };
        if let Ok(c) = parent.canonicalize() {
            return c.join(name);
        }
    }
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}
