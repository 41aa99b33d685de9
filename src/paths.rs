//! Where things are: the SecureClaw data directory (README "What is backed
//! up"), the home directory, and the private runtime directory for lock
//! files and staging (SECURITY.md, "Local attacker model").

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

/// The private runtime directory for lock files and plaintext staging,
/// verified before use: created 0700, opened with `O_NOFOLLOW`, and checked
/// (a directory owned by the effective uid, mode exactly 0700) through the
/// opened descriptor.
#[derive(Debug)]
pub struct RuntimeDir {
    pub path: PathBuf,
    pub fd: std::os::fd::OwnedFd,
}

static RUNTIME: std::sync::OnceLock<Result<RuntimeDir>> = std::sync::OnceLock::new();

/// The candidate runtime directory: `secureclaw-backup-<uid>` in
/// `$XDG_RUNTIME_DIR`, else `$TMPDIR`, else `/tmp`.
pub fn runtime_candidate() -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(tmp_dir);
    base.join(format!("secureclaw-backup-{uid}"))
}

/// The fallback runtime directory, per user under the XDG state directory:
/// `$XDG_STATE_HOME/secureclaw-backup/run`, else
/// `~/.local/state/secureclaw-backup/run`.
pub fn runtime_fallback() -> Result<PathBuf> {
    let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(s) if std::path::Path::new(&s).is_absolute() => PathBuf::from(s),
        _ => home()?.join(".local").join("state"),
    };
    Ok(state.join("secureclaw-backup").join("run"))
}

/// The verified runtime directory of this process (chosen once). When the
/// candidate ([`runtime_candidate`]) is unusable — another user's, a
/// symlink, or writable by others — a warning names it and the per-user fallback
/// ([`runtime_fallback`]) is used; nothing in the unusable one is touched.
/// Neither usable: refused (exit 5).
pub fn runtime_dir() -> Result<&'static RuntimeDir> {
    RUNTIME
        .get_or_init(|| choose_runtime(&runtime_candidate(), runtime_fallback()))
        .as_ref()
        .map_err(Clone::clone)
}

fn choose_runtime(candidate: &std::path::Path, fallback: Result<PathBuf>) -> Result<RuntimeDir> {
    let why = match crate::fsx::private_dir(candidate) {
        Ok(fd) => {
            return Ok(RuntimeDir {
                path: candidate.to_owned(),
                fd,
            })
        }
        Err(why) => why,
    };
    let fallback = fallback.map_err(|e| {
        Error::refused(format!(
            "the runtime directory {} is unusable ({why}), and there is no fallback: {}",
            candidate.display(),
            e.message
        ))
        .hint("set XDG_RUNTIME_DIR to a private directory (owned by you, mode 0700), or set HOME")
    })?;
    match crate::fsx::private_dir_all(&fallback) {
        Ok(fd) => {
            let who = match why {
                crate::fsx::Untrusted::Foreign(_) | crate::fsx::Untrusted::Symlink => {
                    "; another user may have created it"
                }
                _ => "",
            };
            crate::text::warn(format!(
                "not using the runtime directory {} ({why}{who}); using {} instead",
                candidate.display(),
                fallback.display()
            ));
            Ok(RuntimeDir { path: fallback, fd })
        }
        Err(why2) => Err(Error::refused(format!(
            "no private runtime directory: {} is unusable ({why}), and so is {} ({why2})",
            candidate.display(),
            fallback.display()
        ))
        .hint(
            "set XDG_RUNTIME_DIR to a private directory (owned by you, mode 0700), then run again",
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unusable_candidate_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let cand = d.path().join("cand");
        let fb = d.path().join("state/secureclaw-backup/run");
        // a symlink to a private directory is not followed
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&real, &cand).unwrap();
        let rt = choose_runtime(&cand, Ok(fb.clone())).unwrap();
        assert_eq!(rt.path, fb);
        // wrong mode
        std::fs::remove_file(&cand).unwrap();
        std::fs::create_dir(&cand).unwrap();
        std::fs::set_permissions(&cand, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert_eq!(choose_runtime(&cand, Ok(fb.clone())).unwrap().path, fb);
        // a good candidate is used
        std::fs::set_permissions(&cand, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(choose_runtime(&cand, Ok(fb.clone())).unwrap().path, cand);
        // neither usable: refused
        std::fs::set_permissions(&cand, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&fb, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = choose_runtime(&cand, Ok(fb.clone())).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Refused);
    }
}
