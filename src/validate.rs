//! Post-restore validation of a SecureClaw data directory (the guide's
//! validation script, done right): the directory is owner-only, `secureclaw.json`
//! parses as JSON5 (what the application really reads; `jq .` rejects comments
//! and trailing commas), credentials and agents are counted, every path in the
//! tree is owner-only (directories 0700, files 0600 or 0700 when the owner may
//! execute them), and an interrupted restore is reported.
//!
//! With `fix`, permissions are repaired top-down (a directory is tightened
//! before its entries are looked at, so nobody else can swap them meanwhile):
//! directories get 0700, files 0600 (0700 with the owner's execute bit); a
//! directory never gets 0600 and symbolic links are never followed or changed.
//! `restore` calls [`validate`] after it swaps and prints [`Report::human`].

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;

use crate::error::Result;

/// The config file's name inside the data directory.
pub const CONFIG_FILE: &str = "secureclaw.json";
/// Configs larger than this are not parsed (the real ones are a few KiB).
const MAX_CONFIG: u64 = 16 * 1024 * 1024;
/// Offenders shown in the human table per check (JSON has them all).
const MAX_SHOWN: usize = 20;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth a look, but the data directory is usable.
    Warn,
    /// The restore is not usable as is.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// Offending paths, or what `--fix` changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>) -> Self {
        Check {
            name: name.to_owned(),
            status,
            detail: detail.into(),
            items: Vec::new(),
        }
    }
}

/// The whole validation: `ok` is false when any check failed (warnings allowed).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
    pub next_steps: Vec<String>,
}

impl Report {
    /// A per-check table, then the next steps.
    pub fn human(&self) -> String {
        let w = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:<w$}  STATUS  DETAIL\n", "CHECK");
        for c in &self.checks {
            out.push_str(&format!(
                "{:<w$}  {:<6}  {}\n",
                c.name,
                c.status.label(),
                c.detail
            ));
            for item in c.items.iter().take(MAX_SHOWN) {
                out.push_str(&format!("{:<w$}          {item}\n", ""));
            }
            if c.items.len() > MAX_SHOWN {
                out.push_str(&format!(
                    "{:<w$}          … and {} more (see --json)\n",
                    "",
                    c.items.len() - MAX_SHOWN
                ));
            }
        }
        let failed = self.failed();
        out.push('\n');
        if failed == 0 {
            out.push_str("All checks passed.\n");
        } else {
            out.push_str(&format!("{failed} check(s) failed.\n"));
        }
        if !self.next_steps.is_empty() {
            out.push_str("\nNext steps:\n");
            for s in &self.next_steps {
                out.push_str(&format!("  - {s}\n"));
            }
        }
        out
    }

    /// Number of failed checks.
    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }
}

/// Validates the data directory at `target`; with `fix`, repairs permissions.
pub fn validate(target: &Path, fix: bool) -> Result<Report> {
    validate_kept(target, fix, None)
}

/// [`validate`] after a restore that kept the components `kept` (paths
/// relative to `target`) of the tree it replaced: the restore judges what it
/// wrote, so a path below a kept component that is not owner-only is a
/// warning (`kept-permissions`), not a failure, and so is a missing
/// `secureclaw.json` (the archive had none).
pub fn validate_restored(target: &Path, kept: &[&Path]) -> Result<Report> {
    validate_kept(target, false, Some(kept))
}

fn validate_kept(target: &Path, fix: bool, kept: Option<&[&Path]>) -> Result<Report> {
    let restore = kept.is_some();
    let kept = kept.unwrap_or(&[]);
    let mut checks = Vec::new();
    let mut next_steps = Vec::new();

    // Journal first: it matters even when the target is missing.
    let journal = crate::swap::journal_path(target).ok();
    if let Some(j) = journal.as_ref().filter(|j| fs::symlink_metadata(j).is_ok()) {
        let mut c = Check::new(
            "restore-journal",
            Status::Warn,
            format!("an interrupted restore left {}", j.display()),
        );
        c.items
            .push("run the restore again: it finishes or rolls back the interrupted one".into());
        checks.push(c);
        next_steps.push(format!(
            "finish or roll back the interrupted restore recorded in {} before using this directory",
            j.display()
        ));
    }

    let target_check = check_target(target, fix);
    let usable = target_check.status != Status::Fail
        || fs::metadata(target).map(|m| m.is_dir()).unwrap_or(false);
    checks.push(target_check);
    if !usable {
        next_steps.push(format!(
            "restore the data directory into {} (secureclaw-backup restore ARCHIVE --target {})",
            target.display(),
            target.display()
        ));
        return Ok(finish(checks, next_steps));
    }

    let mut config = check_config(target);
    if restore && config.status == Status::Fail && !target.join(CONFIG_FILE).exists() {
        // after a restore, a missing config is one the archive did not have
        // (a kept one would be there): not what the restore wrote
        config.status = Status::Warn;
        config.detail = format!("{} (the archive holds none)", config.detail);
    }
    let config_failed = config.status == Status::Fail;
    checks.push(config);
    if config_failed {
        let bak = target.join(format!("{CONFIG_FILE}.bak"));
        if bak.is_file() {
            next_steps.push(format!(
                "fix {CONFIG_FILE} (see the error above) or go back to the previous config {}",
                bak.display()
            ));
        } else {
            next_steps.push(format!("fix {CONFIG_FILE} (see the error above)"));
        }
    }

    checks.push(check_credentials(target));
    checks.push(check_agents(target));

    let perms = check_permissions(target, fix, kept);
    if perms.iter().any(|c| c.status != Status::Ok) && !fix {
        next_steps.push(format!(
            "repair permissions: secureclaw-backup validate --target {} --fix",
            target.display()
        ));
    }
    checks.extend(perms);

    next_steps.push("run `secureclaw doctor` to check the configuration and channels".into());
    next_steps.push(
        "start the gateway with `secureclaw gateway` and check that the channels connect".into(),
    );
    if target.join("credentials/whatsapp").is_dir() {
        next_steps.push(
            "WhatsApp credentials were restored: if WhatsApp does not connect, relink the device \
             (the restored session may be older than the one WhatsApp knows)"
                .into(),
        );
    }
    Ok(finish(checks, next_steps))
}

fn finish(checks: Vec<Check>, next_steps: Vec<String>) -> Report {
    Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        checks,
        next_steps,
    }
}

fn check_target(target: &Path, fix: bool) -> Check {
    let shown = target.display();
    let lmeta = match fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) => return Check::new("target", Status::Fail, format!("{shown}: {e}")),
    };
    let note = if lmeta.file_type().is_symlink() {
        " (through a symbolic link)"
    } else {
        ""
    };
    let meta = match fs::metadata(target) {
        Ok(m) => m,
        Err(e) => return Check::new("target", Status::Fail, format!("{shown}: {e}")),
    };
    if !meta.is_dir() {
        return Check::new(
            "target",
            Status::Fail,
            format!("{shown} is not a directory{note}"),
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if meta.uid() != euid() {
        return Check::new(
            "target",
            Status::Fail,
            format!(
                "{shown} is owned by uid {}, not by you ({})",
                meta.uid(),
                euid()
            ),
        );
    }
    if mode & 0o077 == 0 {
        return Check::new(
            "target",
            Status::Ok,
            format!("{shown}: directory, mode {mode:04o}{note}"),
        );
    }
    if fix {
        // The top level is the operator's own choice of path: follow it.
        return match fs::set_permissions(target, fs::Permissions::from_mode(0o700)) {
            Ok(()) => Check::new(
                "target",
                Status::Ok,
                format!("{shown}: directory, mode {mode:04o} → 0700 (fixed){note}"),
            ),
            Err(e) => Check::new(
                "target",
                Status::Fail,
                format!("{shown}: mode {mode:04o}, could not set 0700: {e}"),
            ),
        };
    }
    Check::new(
        "target",
        Status::Fail,
        format!("{shown}: mode {mode:04o}, others can access it (want 0700)"),
    )
}

fn check_config(target: &Path) -> Check {
    let path = target.join(CONFIG_FILE);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(_) => return Check::new("config", Status::Fail, format!("{CONFIG_FILE} is missing")),
    };
    if !meta.is_file() {
        return Check::new(
            "config",
            Status::Fail,
            format!("{CONFIG_FILE} is not a regular file"),
        );
    }
    if meta.len() > MAX_CONFIG {
        return Check::new(
            "config",
            Status::Fail,
            format!(
                "{CONFIG_FILE} is {} bytes, too large to be a config",
                meta.len()
            ),
        );
    }
    let mut text = String::new();
    if let Err(e) = fs::File::open(&path).and_then(|f| f.take(MAX_CONFIG).read_to_string(&mut text))
    {
        return Check::new(
            "config",
            Status::Fail,
            format!("{CONFIG_FILE} cannot be read: {e}"),
        );
    }
    match json5::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(m)) => Check::new(
            "config",
            Status::Ok,
            format!("{CONFIG_FILE} parses as JSON5 ({} top-level keys)", m.len()),
        ),
        Ok(_) => Check::new(
            "config",
            Status::Fail,
            format!("{CONFIG_FILE} parses, but is not an object"),
        ),
        Err(e) => Check::new(
            "config",
            Status::Fail,
            format!(
                "{CONFIG_FILE} is not valid JSON5: {}",
                json5_error_position(&e)
            ),
        ),
    }
}

/// Where a JSON5 error is, never what is there: the parser's own message
/// quotes the offending line, and a config line holds tokens and keys.
fn json5_error_position(e: &json5::Error) -> String {
    match e {
        json5::Error::Message {
            location: Some(l), ..
        } => format!(
            "syntax error at line {}, column {} (the line is not shown: it may hold a secret; open the file to fix it)",
            l.line, l.column
        ),
        json5::Error::Message { location: None, .. } => {
            "syntax error (position unknown; the text is not shown: it may hold a secret)".to_owned()
        }
    }
}

/// Counts regular files under `dir` (no symlinks followed).
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => n += count_files(&e.path()),
            Ok(t) if t.is_file() => n += 1,
            _ => {}
        }
    }
    n
}

fn check_credentials(target: &Path) -> Check {
    let dir = target.join("credentials");
    if !fs::symlink_metadata(&dir)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        return Check::new(
            "credentials",
            Status::Warn,
            "no credentials/ directory: channels will need to be linked again",
        );
    }
    let n = count_files(&dir);
    if n == 0 {
        Check::new(
            "credentials",
            Status::Warn,
            "credentials/ is empty: channels will need to be linked again",
        )
    } else {
        Check::new("credentials", Status::Ok, format!("{n} credential file(s)"))
    }
}

fn check_agents(target: &Path) -> Check {
    let dir = target.join("agents");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Check::new("agents", Status::Warn, "no agents/ directory");
    };
    let mut agents = 0;
    let mut transcripts = 0;
    let mut misplaced = Vec::new();
    for e in rd.flatten() {
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        agents += 1;
        transcripts += count_jsonl(&e.path().join("sessions"));
        let stray = count_jsonl(&e.path());
        if stray > 0 {
            misplaced.push(format!(
                "agents/{}: {stray} transcript(s) outside sessions/ (the old script's layout; the app does not read them there)",
                crate::text::Safe(e.file_name())
            ));
        }
    }
    let mut c = Check::new(
        "agents",
        if agents == 0 || !misplaced.is_empty() {
            Status::Warn
        } else {
            Status::Ok
        },
        format!("{agents} agent(s), {transcripts} session transcript(s)"),
    );
    c.items = misplaced;
    c
}

fn count_jsonl(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_type().map(|t| t.is_file()).unwrap_or(false)
                        && e.file_name().to_string_lossy().ends_with(".jsonl")
                })
                .count()
        })
        .unwrap_or(0)
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The mode a path should have, or `None` when it already is owner-only.
pub fn wanted_mode(is_dir: bool, mode: u32) -> Option<u32> {
    if mode & 0o077 == 0 {
        return None;
    }
    // Directories, and files the owner may execute, get 0700; other files 0600.
    Some(if is_dir || mode & 0o100 != 0 {
        0o700
    } else {
        0o600
    })
}

struct Walk<'a> {
    fix: bool,
    /// Components the restore kept from the current tree (not written by it).
    kept: &'a [&'a Path],
    offenders: Vec<String>,
    /// Offenders inside a kept component (a warning: the restore did not write them).
    kept_offenders: Vec<String>,
    fixed: Vec<String>,
    symlinks: usize,
    checked: usize,
}

impl Walk<'_> {
    /// Records an offender, apart when it lies in a kept component.
    fn offend(&mut self, rel: &Path, msg: String) {
        if self.kept.iter().any(|k| rel.starts_with(k)) {
            self.kept_offenders.push(msg);
        } else {
            self.offenders.push(msg);
        }
    }
}

/// The permissions check of what was restored, and (when a restore kept
/// components of the current tree that are not owner-only) a warning about
/// those.
fn check_permissions(target: &Path, fix: bool, kept: &[&Path]) -> Vec<Check> {
    let mut w = Walk {
        fix,
        kept,
        offenders: Vec::new(),
        kept_offenders: Vec::new(),
        fixed: Vec::new(),
        symlinks: 0,
        checked: 0,
    };
    walk_dir(target, Path::new(""), &mut w);
    let kept_check = (!w.kept_offenders.is_empty()).then(|| {
        let mut c = Check::new(
            "kept-permissions",
            Status::Warn,
            format!(
                "{} path(s) not owner-only in what the restore kept from the current tree (not restored)",
                w.kept_offenders.len()
            ),
        );
        c.items = std::mem::take(&mut w.kept_offenders);
        c
    });
    let links = if w.symlinks > 0 {
        format!(", {} symbolic link(s) not followed", w.symlinks)
    } else {
        String::new()
    };
    if !w.offenders.is_empty() {
        let mut c = Check::new(
            "permissions",
            Status::Fail,
            format!(
                "{} of {} path(s) not owner-only{}{links}",
                w.offenders.len(),
                w.checked,
                if fix { " and not fixable" } else { "" }
            ),
        );
        c.items = w.offenders;
        c.items
            .extend(w.fixed.iter().map(|f| format!("fixed: {f}")));
        return vec![c].into_iter().chain(kept_check).collect();
    }
    let mut c = Check::new(
        "permissions",
        Status::Ok,
        if w.fixed.is_empty() {
            format!("{} path(s), all owner-only{links}", w.checked)
        } else {
            format!(
                "{} path(s), {} fixed, now all owner-only{links}",
                w.checked,
                w.fixed.len()
            )
        },
    );
    c.items = w.fixed.into_iter().map(|f| format!("fixed: {f}")).collect();
    vec![c].into_iter().chain(kept_check).collect()
}

/// Checks the entries of `dir` (shown relative as `rel`), top-down.
fn walk_dir(dir: &Path, rel: &Path, w: &mut Walk<'_>) {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            w.offend(rel, format!("{}: cannot be listed: {e}", shown(rel)));
            return;
        }
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = rel.join(e.file_name());
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(err) => {
                w.offend(&rel, format!("{}: {err}", shown(&rel)));
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            w.symlinks += 1;
            continue;
        }
        if !ft.is_dir() && !ft.is_file() {
            continue;
        }
        w.checked += 1;
        let mode = meta.mode() & 0o7777;
        if meta.uid() != euid() {
            w.offend(
                &rel,
                format!(
                    "{}: owned by uid {}, not by you ({}); fix with chown",
                    shown(&rel),
                    meta.uid(),
                    euid()
                ),
            );
        } else if let Some(want) = wanted_mode(ft.is_dir(), mode) {
            let kind = if ft.is_dir() { "directory" } else { "file" };
            if w.fix {
                match chmod_nofollow(&path, ft.is_dir(), want) {
                    Ok(()) => w
                        .fixed
                        .push(format!("{} {mode:04o} → {want:04o}", shown(&rel))),
                    Err(err) => w.offend(
                        &rel,
                        format!(
                            "{}: {kind} mode {mode:04o}, could not set {want:04o}: {err}",
                            shown(&rel)
                        ),
                    ),
                }
            } else {
                w.offend(
                    &rel,
                    format!("{}: {kind} mode {mode:04o} (want {want:04o})", shown(&rel)),
                );
            }
        }
        if ft.is_dir() {
            walk_dir(&path, &rel, w);
        }
    }
}

fn shown(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        // a name from the (restored) tree: escaped, on one line
        crate::text::Safe(rel).to_string()
    }
}

/// Changes the mode of `path` without following a symbolic link: the path is
/// opened with `O_PATH | O_NOFOLLOW`, its type re-checked on the descriptor, and
/// the mode set through `/proc/self/fd` (the inode just opened, never a link).
fn chmod_nofollow(path: &Path, is_dir: bool, mode: u32) -> std::io::Result<()> {
    use rustix::fs::{FileType, Mode, OFlags};
    let mut flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if is_dir {
        flags |= OFlags::DIRECTORY;
    }
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    let ft = FileType::from_raw_mode(st.st_mode);
    let expected = if is_dir {
        FileType::Directory
    } else {
        FileType::RegularFile
    };
    if ft != expected {
        return Err(std::io::Error::other("changed while being checked"));
    }
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match rustix::fs::chmod(proc_path.as_str(), Mode::from_raw_mode(mode)) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT) if !is_dir => {
            // No /proc: open the file itself (never a link) and fchmod it.
            let f = rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(Into::into)
        }
        Err(rustix::io::Errno::NOENT) => {
            let f = rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn set(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    /// A good data directory, owner-only.
    fn good_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        set(d, 0o700);
        fs::write(d.join(CONFIG_FILE), "{\"gateway\": {\"port\": 18789}}").unwrap();
        for dir in [
            "credentials/whatsapp/default",
            "agents/main/agent",
            "agents/main/sessions",
            "hooks",
        ] {
            fs::create_dir_all(d.join(dir)).unwrap();
        }
        fs::write(d.join("credentials/oauth.json"), "{}").unwrap();
        fs::write(d.join("credentials/whatsapp/default/creds.json"), "{}").unwrap();
        fs::write(d.join("agents/main/agent/auth-profiles.json"), "{}").unwrap();
        fs::write(d.join("agents/main/sessions/sessions.json"), "{}").unwrap();
        fs::write(d.join("agents/main/sessions/abc.jsonl"), "{}\n").unwrap();
        fs::write(d.join("hooks/run.sh"), "#!/bin/sh\n").unwrap();
        // Tighten everything like the app does.
        for p in walk_all(d) {
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                set(&p, 0o700);
            } else {
                set(&p, 0o600);
            }
        }
        set(&d.join("hooks/run.sh"), 0o700);
        t
    }

    fn walk_all(d: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(d).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk_all(&e.path()));
            }
        }
        out
    }

    fn check<'a>(r: &'a Report, name: &str) -> &'a Check {
        r.checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {r:#?}"))
    }

    #[test]
    fn good_tree_passes() {
        let t = good_tree();
        let r = validate(t.path(), false).unwrap();
        assert!(r.ok, "{}", r.human());
        assert_eq!(check(&r, "credentials").detail, "2 credential file(s)");
        assert_eq!(
            check(&r, "agents").detail,
            "1 agent(s), 1 session transcript(s)"
        );
        assert_eq!(check(&r, "permissions").status, Status::Ok);
        assert!(r.next_steps.iter().any(|s| s.contains("secureclaw doctor")));
        assert!(r
            .next_steps
            .iter()
            .any(|s| s.contains("secureclaw gateway")));
        assert!(r.next_steps.iter().any(|s| s.contains("WhatsApp")));
        let h = r.human();
        assert!(h.contains("All checks passed."), "{h}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["ok"], true);
        assert_eq!(j["checks"][0]["status"], "ok");
    }

    #[test]
    fn json5_config_is_accepted() {
        let t = good_tree();
        fs::write(
            t.path().join(CONFIG_FILE),
            "// SecureClaw config\n{\n  gateway: { port: 18789, },  /* block */\n  agents: ['main',],\n}\n",
        )
        .unwrap();
        let r = validate(t.path(), false).unwrap();
        assert!(r.ok, "{}", r.human());
        assert!(check(&r, "config").detail.contains("JSON5"));
    }

    #[test]
    fn broken_config_fails() {
        let t = good_tree();
        fs::write(
            t.path().join(CONFIG_FILE),
            "{\"gateway\": {\"port\": 18789}",
        )
        .unwrap();
        let r = validate(t.path(), false).unwrap();
        assert!(!r.ok);
        assert_eq!(check(&r, "config").status, Status::Fail);
        assert!(r.human().contains("1 check(s) failed"));

        fs::write(t.path().join(CONFIG_FILE), "[1, 2]").unwrap();
        let r = validate(t.path(), false).unwrap();
        assert!(check(&r, "config").detail.contains("not an object"));

        fs::remove_file(t.path().join(CONFIG_FILE)).unwrap();
        let r = validate(t.path(), false).unwrap();
        assert!(check(&r, "config").detail.contains("missing"));
    }

    #[test]
    fn hostile_names_are_shown_escaped() {
        let t = good_tree();
        let name = "\x1b[2Jevil\nall checks passed\u{202e}";
        let f = t.path().join("credentials").join(name);
        fs::write(&f, "{}").unwrap();
        set(&f, 0o644);
        let r = validate(t.path(), false).unwrap();
        let h = r.human();
        assert!(
            h.contains("\\x1b[2Jevil\\nall checks passed\\u{202e}"),
            "{h}"
        );
        assert!(
            !h.lines().any(|l| l.starts_with("all checks passed")),
            "{h}"
        );
    }

    #[test]
    fn config_errors_show_the_position_not_the_line() {
        let t = good_tree();
        let token = "sk-canary-0123456789abcdef";
        fs::write(
            t.path().join(CONFIG_FILE),
            format!("{{\n  gateway: {{ token: \"{token}\" oops }}\n}}\n"),
        )
        .unwrap();
        let r = validate(t.path(), false).unwrap();
        let c = check(&r, "config");
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("line 2, column"), "{}", c.detail);
        let all = format!("{} {}", r.human(), serde_json::to_string(&r).unwrap());
        assert!(!all.contains(token) && !all.contains("oops"), "{all}");
    }

    #[test]
    fn missing_target_fails_alone() {
        let t = tempfile::tempdir().unwrap();
        let r = validate(&t.path().join("nope"), false).unwrap();
        assert!(!r.ok);
        assert_eq!(r.checks.len(), 1);
        assert_eq!(r.checks[0].name, "target");
        let f = t.path().join("file");
        fs::write(&f, "x").unwrap();
        let r = validate(&f, false).unwrap();
        assert!(r.checks[0].detail.contains("not a directory"));
    }

    #[test]
    fn bad_permissions_reported_then_fixed() {
        let t = good_tree();
        let d = t.path();
        set(d, 0o755);
        set(&d.join("credentials"), 0o755);
        set(&d.join("credentials/whatsapp"), 0o777);
        set(&d.join("credentials/oauth.json"), 0o644);
        set(&d.join("hooks/run.sh"), 0o755);
        set(&d.join("agents/main/sessions/abc.jsonl"), 0o640);
        // A symlink pointing outside, at a file others can read: never followed.
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "x").unwrap();
        set(&victim, 0o644);
        symlink(&victim, d.join("credentials/link")).unwrap();

        let r = validate(d, false).unwrap();
        assert!(!r.ok);
        assert_eq!(check(&r, "target").status, Status::Fail);
        let p = check(&r, "permissions");
        assert_eq!(p.status, Status::Fail);
        assert_eq!(p.items.len(), 5, "{:#?}", p.items);
        assert!(p.detail.contains("1 symbolic link(s) not followed"));
        assert!(r.next_steps.iter().any(|s| s.contains("--fix")));
        // Nothing changed without --fix.
        assert_eq!(mode_of(&d.join("credentials/oauth.json")), 0o644);

        let r = validate(d, true).unwrap();
        assert!(r.ok, "{}", r.human());
        assert_eq!(mode_of(d), 0o700);
        assert_eq!(mode_of(&d.join("credentials")), 0o700);
        assert_eq!(mode_of(&d.join("credentials/whatsapp")), 0o700);
        assert_eq!(mode_of(&d.join("credentials/oauth.json")), 0o600);
        assert_eq!(mode_of(&d.join("hooks/run.sh")), 0o700);
        assert_eq!(mode_of(&d.join("agents/main/sessions/abc.jsonl")), 0o600);
        assert_eq!(mode_of(&victim), 0o644, "symlink target must not change");
        assert_eq!(check(&r, "permissions").items.len(), 5);

        // Now clean.
        let r = validate(d, false).unwrap();
        assert!(r.ok);
        assert!(check(&r, "permissions").items.is_empty());
    }

    #[test]
    fn unlistable_directory_fixed_top_down() {
        let t = good_tree();
        let d = t.path();
        // 0066 on a directory: owner cannot list it, others can write.
        set(&d.join("agents/main/sessions"), 0o066);
        let r = validate(d, false).unwrap();
        let p = check(&r, "permissions");
        assert!(
            p.items.iter().any(|i| i.contains("cannot be listed"))
                || rustix::process::geteuid().is_root(),
            "{p:#?}"
        );
        let r = validate(d, true).unwrap();
        assert!(r.ok, "{}", r.human());
        assert_eq!(mode_of(&d.join("agents/main/sessions")), 0o700);
        assert_eq!(
            check(&r, "agents").detail,
            "1 agent(s), 1 session transcript(s)"
        );
    }

    #[test]
    fn wanted_modes() {
        assert_eq!(wanted_mode(true, 0o700), None);
        assert_eq!(wanted_mode(true, 0o755), Some(0o700));
        assert_eq!(wanted_mode(true, 0o644), Some(0o700));
        assert_eq!(wanted_mode(false, 0o644), Some(0o600));
        assert_eq!(wanted_mode(false, 0o755), Some(0o700));
        assert_eq!(wanted_mode(false, 0o400), None);
    }

    #[test]
    fn journal_and_legacy_layout_reported() {
        let t = good_tree();
        let target = t.path().join("data");
        fs::create_dir(&target).unwrap();
        set(&target, 0o700);
        fs::write(target.join(CONFIG_FILE), "{}").unwrap();
        set(&target.join(CONFIG_FILE), 0o600);
        fs::create_dir_all(target.join("agents/a1")).unwrap();
        set(&target.join("agents"), 0o700);
        set(&target.join("agents/a1"), 0o700);
        fs::write(target.join("agents/a1/x.jsonl"), "").unwrap();
        set(&target.join("agents/a1/x.jsonl"), 0o600);
        let j = crate::swap::journal_path(&target).unwrap();
        assert_eq!(j, t.path().join(".data.secureclaw-restore.json"));
        fs::write(&j, "{}").unwrap();
        let r = validate(&target, false).unwrap();
        assert!(r.ok, "warnings do not fail: {}", r.human());
        assert_eq!(check(&r, "restore-journal").status, Status::Warn);
        assert_eq!(check(&r, "agents").status, Status::Warn);
        assert!(check(&r, "agents").items[0].contains("outside sessions/"));
        assert_eq!(check(&r, "credentials").status, Status::Warn);
    }
}
