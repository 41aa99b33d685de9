//! Scheduling unattended backups (and drills) with a systemd user timer or
//! cron: the time rule, the units and crontab line, the env file. Prints
//! nothing; the `schedule` command renders the plan.
//!
//! systemd: a hardened oneshot service and a timer with exactly ONE
//! `OnCalendar=` line (the guide's timer had two, so it ran twice a day) and
//! `Persistent=true` (a run missed while the machine was off happens at boot).
//! The recipients come from an `EnvironmentFile=` of mode 0600
//! (`~/.config/secureclaw-backup/backup.env`, `SECURECLAW_BACKUP_KEY=…`), never
//! inline in the unit. `--install` writes the user units and the env-file
//! template; it never runs `systemctl` itself.
//!
//! Paths are written for each target's own syntax: in units `%` becomes `%%`
//! (specifiers) and, on `ExecStart=`, `$` becomes `$$` (environment
//! expansion), with C-style double quotes around words with spaces; in the
//! crontab line every word is single-quoted for `/bin/sh` and each `%` (which
//! cron turns into a newline) is written `\%` outside the quotes. What no
//! target can carry safely is refused with exit 2: control characters and
//! newlines anywhere (they would start a new unit line or crontab entry),
//! non-UTF-8 paths, and in units quotes and backslashes (systemd unquotes
//! `ExecStart=` and `ReadWritePaths=` differently). The data directory and
//! the destination are resolved (symlinks followed) before they are written.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::retention::parse_duration;
use crate::store::{self, BackupType};

/// Where the environment file lives, relative to `$HOME` (`%h` in units).
pub const ENV_FILE_REL: &str = ".config/secureclaw-backup/backup.env";

/// What runs the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// A systemd user service + timer pair
    Systemd,
    /// crontab lines
    Cron,
}

/// When to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Every day at hh:mm (weekly: Sundays).
    At {
        hour: u32,
        minute: u32,
        weekly: bool,
    },
    /// Every n minutes (n divides 60).
    Minutes(u32),
    /// Every n hours (n divides 24).
    Hours(u32),
}

impl When {
    pub fn parse(btype: BackupType, at: Option<&str>, every: Option<&str>) -> Result<When> {
        let weekly = btype == BackupType::Weekly;
        if let Some(e) = every {
            let d = parse_duration(e)?;
            let s = d.num_seconds();
            let bad = || {
                Error::usage(format!(
                    "--every {}: cannot be written as one calendar rule",
                    crate::text::cut(e, 80)
                ))
                    .hint("use minutes dividing an hour (5m, 10m, 15m, 20m, 30m), hours dividing a day (1h, 2h, 3h, 4h, 6h, 8h, 12h), 1d or 1w")
            };
            return match s {
                86_400 => Ok(When::At {
                    hour: 2,
                    minute: 0,
                    weekly: false,
                }),
                604_800 => Ok(When::At {
                    hour: 3,
                    minute: 0,
                    weekly: true,
                }),
                _ if s > 0 && s % 3600 == 0 && 24 % (s / 3600) == 0 => {
                    Ok(When::Hours((s / 3600) as u32))
                }
                _ if s > 0 && s < 3600 && s % 60 == 0 && 60 % (s / 60) == 0 => {
                    Ok(When::Minutes((s / 60) as u32))
                }
                _ => Err(bad()),
            };
        }
        let (hour, minute) = match at {
            None if weekly => (3, 0),
            None => (2, 0),
            Some(a) => parse_hhmm(a)?,
        };
        Ok(When::At {
            hour,
            minute,
            weekly,
        })
    }

    /// The systemd calendar expression.
    pub fn on_calendar(&self) -> String {
        match self {
            When::At {
                hour,
                minute,
                weekly: true,
            } => format!("Sun *-*-* {hour:02}:{minute:02}:00"),
            When::At {
                hour,
                minute,
                weekly: false,
            } => format!("*-*-* {hour:02}:{minute:02}:00"),
            When::Minutes(n) => format!("*-*-* *:00/{n}:00"),
            When::Hours(1) => "*-*-* *:00:00".into(),
            When::Hours(n) => format!("*-*-* 00/{n}:00:00"),
        }
    }

    /// The five cron time fields.
    pub fn cron(&self) -> String {
        match self {
            When::At {
                hour,
                minute,
                weekly: true,
            } => format!("{minute} {hour} * * 0"),
            When::At {
                hour,
                minute,
                weekly: false,
            } => format!("{minute} {hour} * * *"),
            When::Minutes(n) => format!("*/{n} * * * *"),
            When::Hours(1) => "0 * * * *".into(),
            When::Hours(n) => format!("0 */{n} * * *"),
        }
    }

    /// Whether backups on this schedule are incremental: an interval under
    /// a day (README "Incremental backups": `--every 1h` writes a full at
    /// the first run of the day and links after it).
    pub fn incremental(&self) -> bool {
        matches!(self, When::Minutes(_) | When::Hours(_))
    }

    fn describe(&self) -> String {
        match self {
            When::At {
                hour,
                minute,
                weekly: true,
            } => format!("Sundays at {hour:02}:{minute:02}"),
            When::At {
                hour,
                minute,
                weekly: false,
            } => format!("daily at {hour:02}:{minute:02}"),
            When::Minutes(n) => format!("every {n} minutes"),
            When::Hours(1) => "hourly".into(),
            When::Hours(n) => format!("every {n} hours"),
        }
    }
}

fn parse_hhmm(s: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::usage(format!(
            "--at {}: not a time of day",
            crate::text::cut(s, 80)
        ))
        .hint("write HH:MM, e.g. 02:00 or 23:30")
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || s.len() > 5 {
        return Err(bad());
    }
    Ok((h, m))
}

/// Everything `schedule` prints or installs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub unit_base: String,
    pub service: String,
    pub timer: String,
    pub cron: String,
    pub env_template: String,
    /// The `status` line that monitors this schedule ([`monitor_line`]).
    pub monitor: String,
}

/// Quotes a word for a systemd unit line: `%` doubled (specifiers); with
/// `exec`, `$` doubled too (`ExecStart=` expands `$VAR` and `${VAR}`); words
/// with spaces or `;` in C-style double quotes. Quotes and backslashes are
/// refused before ([`check_path`]).
pub fn systemd_quote(s: &str, exec: bool) -> String {
    let mut s = s.replace('%', "%%");
    if exec {
        s = s.replace('$', "$$");
    }
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        return s;
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes a word for /bin/sh in a crontab line. Cron turns an unescaped `%`
/// into a newline and drops the backslash of `\%`; a backslash before that
/// (a path `a\%b`) would escape the escape. So every `%` is written as
/// `'\%'` between closed single quotes: the character before the `\%` is then
/// always a quote, and sh sees a bare `%`, which it leaves alone.
pub fn shell_quote_cron(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''").replace('%', "'\\%'"))
}

/// Refuses a path that a unit file or a crontab line cannot carry safely.
pub fn check_path(what: &str, path: &Path, scheduler: Scheduler) -> Result<()> {
    let Some(s) = path.to_str() else {
        return Err(Error::usage(format!(
            "{what} {} is not UTF-8: it cannot be written into a schedule",
            crate::text::Safe(path)
        ))
        .hint("rename the directory (or use a symlink with a plain name) and run again"));
    };
    if s.chars().any(crate::text::is_unsafe_char) {
        return Err(Error::usage(format!(
            "{what} {} contains a newline or another control character: it would inject lines into the schedule",
            crate::text::Safe(path)
        ))
        .hint("use a path without control characters (rename the directory, or point to it through a symlink with a plain name)"));
    }
    if scheduler == Scheduler::Systemd && s.contains(['"', '\'', '\\']) {
        return Err(Error::usage(format!(
            "{what} {} contains a quote or a backslash, which systemd unit settings do not read back the same way",
            crate::text::Safe(path)
        ))
        .hint("use `schedule cron`, or a path without quotes and backslashes (a symlink with a plain name works)"));
    }
    Ok(())
}

/// The path with symlinks resolved when it exists (a symlinked data dir
/// would otherwise be archived as the link), else as given.
pub fn resolved(path: PathBuf) -> PathBuf {
    fs::canonicalize(&path).unwrap_or(path)
}

/// Builds the units and crontab lines.
/// What a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Backup(BackupType),
    /// The weekly restore drill (needs an identity: `SECURECLAW_BACKUP_IDENTITY`
    /// in the env file, so only on a host allowed to hold one).
    Drill,
}

pub fn plan(exe: &Path, btype: BackupType, when: &When, source: &Path, dest: &Path) -> Plan {
    plan_job(exe, Job::Backup(btype), when, source, dest)
}

/// Builds the units and crontab lines for a backup or a drill.
pub fn plan_job(exe: &Path, job: Job, when: &When, source: &Path, dest: &Path) -> Plan {
    let t = match job {
        Job::Backup(b) => b.as_str(),
        Job::Drill => "drill",
    };
    let unit_base = format!("secureclaw-backup-{t}");
    let incr = matches!(job, Job::Backup(_)) && when.incremental();
    let job_args: Vec<String> = match job {
        Job::Backup(_) => ["backup", "--type", t]
            .into_iter()
            .map(String::from)
            .chain(incr.then(|| "--incremental".to_owned()))
            .chain([
                "--source".into(),
                systemd_quote(&source.to_string_lossy(), true),
            ])
            .collect(),
        Job::Drill => vec!["drill".into()],
    };
    let exec = [systemd_quote(&exe.to_string_lossy(), true), "-q".into()]
        .into_iter()
        .chain(job_args)
        .chain([
            "--dest".into(),
            systemd_quote(&dest.to_string_lossy(), true),
        ])
        .collect::<Vec<String>>()
        .join(" ");
    let service = format!(
        "# Written by secureclaw-backup schedule. Recipients come from the\n\
         # EnvironmentFile (mode 0600): SECURECLAW_BACKUP_KEY=<public recipients>.\n\
         [Unit]\n\
         Description=SecureClaw encrypted backup ({t})\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         EnvironmentFile=%h/{ENV_FILE_REL}\n\
         ExecStart={exec}\n\
         Nice=10\n\
         UMask=0077\n\
         NoNewPrivileges=true\n\
         PrivateTmp=true\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         ReadWritePaths={} {}\n\
         # The lock file lives under $XDG_RUNTIME_DIR/secureclaw-backup-<uid>.\n\
         RuntimeDirectory=secureclaw-backup-{uid}\n\
         RuntimeDirectoryMode=0700\n\
         RuntimeDirectoryPreserve=yes\n",
        systemd_quote(&dest.to_string_lossy(), false),
        systemd_quote(&source.to_string_lossy(), false),
        uid = rustix::process::getuid().as_raw(),
    );
    let timer = format!(
        "# Written by secureclaw-backup schedule: {desc}.\n\
         [Unit]\n\
         Description=SecureClaw encrypted backup ({t}), {desc}\n\
         \n\
         [Timer]\n\
         OnCalendar={cal}\n\
         Persistent=true\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        desc = when.describe(),
        cal = when.on_calendar(),
    );
    let cmd = match job {
        Job::Backup(_) => format!(
            "{} -q backup --type {t}{} --source {} --dest {}",
            shell_quote_cron(&exe.to_string_lossy()),
            if incr { " --incremental" } else { "" },
            shell_quote_cron(&source.to_string_lossy()),
            shell_quote_cron(&dest.to_string_lossy()),
        ),
        Job::Drill => format!(
            "{} -q drill --dest {}",
            shell_quote_cron(&exe.to_string_lossy()),
            shell_quote_cron(&dest.to_string_lossy()),
        ),
    };
    let cron = format!(
        "# secureclaw-backup: {t} backup, {desc}. Errors are mailed by cron (MAILTO);\n\
         # the recipients come from the env file (mode 0600).\n\
         {fields} set -a; . \"$HOME/{ENV_FILE_REL}\"; set +a; {cmd}\n",
        desc = when.describe(),
        fields = when.cron(),
    );
    let key =
        env_key_value(std::env::var("SECURECLAW_BACKUP_KEY").ok().as_deref()).unwrap_or_default();
    let env_template = format!(
        "# secureclaw-backup: environment of scheduled backups. Keep this file mode 0600.\n\
         # PUBLIC recipients only: age1…, an SSH public key, an OpenPGP fingerprint or a\n\
         # certificate file path (comma-separated for several). Never a private key.\n\
         SECURECLAW_BACKUP_KEY={key}\n"
    );
    let monitor = monitor_line(job, when, dest);
    Plan {
        unit_base,
        service,
        timer,
        cron,
        env_template,
        monitor,
    }
}

/// The maximum age that fits a schedule: the interval and a margin of one
/// more interval, at most an hour (a run's duration and a late start), so a
/// daily at 02:00 is stale from 03:00 the next day (25h, the guide's value),
/// an hourly one after 2h, one every 15 minutes after 30m: the first missed
/// run is noticed, a slow one is not an alarm.
pub fn monitor_max_age(when: &When) -> chrono::TimeDelta {
    let interval = match when {
        When::At { weekly: true, .. } => chrono::TimeDelta::weeks(1),
        When::At { weekly: false, .. } => chrono::TimeDelta::days(1),
        When::Minutes(n) => chrono::TimeDelta::minutes(i64::from(*n)),
        When::Hours(n) => chrono::TimeDelta::hours(i64::from(*n)),
    };
    interval + interval.min(chrono::TimeDelta::hours(1))
}

/// A duration as the monitoring line writes it: whole hours up to three
/// days (`25h`, `2h`), else the compact form (`7d1h`, `30m`).
fn max_age_text(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds();
    if s % 3600 == 0 && s < 3 * 86_400 {
        format!("{}h", s / 3600)
    } else {
        crate::retention::format_duration(d)
    }
}

/// The `status` command that monitors a backup schedule: its type judged by
/// its own newest backup with [`monitor_max_age`]
/// (`secureclaw-backup status --dest D --max-age daily=2h`). A drill is
/// watched through its job's exit status; its line checks the backups with
/// the default rule.
pub fn monitor_line(job: Job, when: &When, dest: &Path) -> String {
    let dest = sh_word(&dest.to_string_lossy());
    match job {
        Job::Backup(t) => format!(
            "secureclaw-backup status --dest {dest} --max-age {}={}",
            t.as_str(),
            max_age_text(monitor_max_age(when))
        ),
        Job::Drill => format!("secureclaw-backup status --dest {dest}"),
    }
}

/// A word for a POSIX shell: as is when it is made of safe characters,
/// else in single quotes.
fn sh_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The value written for `SECURECLAW_BACKUP_KEY=` in the env file, from the
/// variable as set when `schedule` runs: the recipients themselves, not a
/// reference to the variable (a timer or cron job does not see the login
/// shell's environment, and recipients are public). Normalised to one line
/// (comma-separated), relative recipient-file paths made absolute (the job
/// runs elsewhere), single-quoted when it has spaces (an SSH key), so that
/// both `sh` (`set -a; . FILE`) and systemd's `EnvironmentFile=` read it.
/// `Ok("")` when unset; `Err(why)` when it cannot be written safely (a
/// secret key, control characters, a quote).
pub fn env_key_value(raw: Option<&str>) -> std::result::Result<String, String> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(String::new());
    };
    if crate::crypto::recipients::secret_kind(raw.as_bytes()).is_some() {
        return Err(
            "SECURECLAW_BACKUP_KEY holds a SECRET key, not written: put the PUBLIC recipient there"
                .into(),
        );
    }
    let specs = crate::crypto::recipients::split_specs(&[raw.to_owned()]);
    let mut parts = Vec::new();
    for s in specs {
        if s.chars().any(crate::text::is_unsafe_char) || s.contains(['\'', '"', '\\', '$', '`']) {
            return Err(
                "SECURECLAW_BACKUP_KEY has control characters or quotes, not written: write the recipients into the env file by hand".into(),
            );
        }
        let path = Path::new(&s);
        let is_file_path =
            !s.starts_with("age1") && !s.starts_with("ssh-") && (s.contains('/') || path.is_file());
        if is_file_path && path.is_relative() {
            parts.push(crate::paths::absolute(path).to_string_lossy().into_owned());
        } else {
            parts.push(s);
        }
    }
    let value = parts.join(",");
    if value.contains(|c: char| c.is_whitespace() || "#;&|<>()*?[]~".contains(c)) {
        Ok(format!("'{value}'"))
    } else {
        Ok(value)
    }
}

/// The steps left to the operator after `schedule` (printed and in the JSON
/// report): the env file's key, the drill's identity, enabling the timer or
/// adding the crontab line, monitoring.
pub fn next_steps(
    scheduler: Scheduler,
    p: &Plan,
    env_path: &Path,
    drill: bool,
    installed: bool,
) -> Vec<String> {
    let service_name = format!("{}.service", p.unit_base);
    let timer_name = format!("{}.timer", p.unit_base);
    let mut next = Vec::new();
    let key_known = p
        .env_template
        .lines()
        .any(|l| l.starts_with("SECURECLAW_BACKUP_KEY=") && l != "SECURECLAW_BACKUP_KEY=");
    next.push(if key_known {
        format!(
            "{} takes SECURECLAW_BACKUP_KEY (the PUBLIC recipients) from your environment now: check it there (mode 0600)",
            env_path.display()
        )
    } else {
        format!(
            "put your PUBLIC recipient(s) in {} as SECURECLAW_BACKUP_KEY=… (mode 0600)",
            env_path.display()
        )
    });
    if drill {
        next.push(format!(
            "the drill decrypts: add SECURECLAW_BACKUP_IDENTITY=/path/to/identity to {} (only on a host allowed to hold the key), and SECURECLAW_BACKUP_PASSPHRASE_FILE=/path/to/passphrase-file (mode 0600) if the identity is passphrase-protected",
            env_path.display()
        ));
    }
    match scheduler {
        Scheduler::Systemd => {
            if !installed {
                next.push(format!(
                    "save the units as ~/.config/systemd/user/{service_name} and {timer_name} (or run again with --install)"
                ));
            }
            next.push(format!(
                "systemctl --user daemon-reload && systemctl --user enable --now {timer_name}"
            ));
            next.push(
                "loginctl enable-linger \"$USER\"   # so the timer runs while you are logged out"
                    .into(),
            );
            next.push(format!("check: systemctl --user list-timers {timer_name}; journalctl --user -u {service_name}"));
        }
        Scheduler::Cron => {
            next.push(
                "add the line with `crontab -e` (this command never edits your crontab)".into(),
            );
        }
    }
    next.push(format!(
        "monitor: {} (exit 6 when stale; --prometheus FILE for node_exporter; with several schedules, give one --max-age TYPE=… per type in one status call)",
        p.monitor
    ));

    next
}

/// `$XDG_CONFIG_HOME`, else `~/.config`.
pub fn config_home() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x));
    }
    Ok(crate::paths::home()?.join(".config"))
}

/// Creates the env file if absent (0600, exclusive); an existing one with an
/// empty `SECURECLAW_BACKUP_KEY=` gets the template's key line. Returns
/// whether it was written; an existing file others can read is reported to
/// `warn`.
pub fn install_env_file(path: &Path, template: &str, warn: &mut dyn FnMut(String)) -> Result<bool> {
    if let Some(dir) = path.parent() {
        store::mkdir_private(dir)?;
    }
    match store::open_private_new(path) {
        Ok(mut f) => {
            f.write_all(template.as_bytes()).at("writing", path)?;
            f.sync_all().at("syncing", path)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = fs::symlink_metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                warn(format!(
                    "{} has mode {mode:04o}; make it owner-only: chmod 600 {}",
                    path.display(),
                    path.display()
                ));
            }
            // an env file left with an empty key by an earlier run gets the
            // recipients now known; a key already there is never changed
            let key_line = template
                .lines()
                .find(|l| l.starts_with("SECURECLAW_BACKUP_KEY="))
                .filter(|l| *l != "SECURECLAW_BACKUP_KEY=");
            if let Some(key_line) = key_line {
                if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
                    let text = fs::read_to_string(path).at("reading", path)?;
                    if text.lines().any(|l| l == "SECURECLAW_BACKUP_KEY=") {
                        let filled: String = text
                            .split_inclusive('\n')
                            .map(|l| {
                                if l.trim_end_matches('\n') == "SECURECLAW_BACKUP_KEY=" {
                                    format!("{key_line}\n")
                                } else {
                                    l.to_owned()
                                }
                            })
                            .collect();
                        store::write_replace(path, filled.as_bytes(), 0o600)?;
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        }
        Err(e) => Err(Error::io("creating", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(unit: &str, key: &str) -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn when_rules() {
        let d = BackupType::Daily;
        assert_eq!(When::parse(d, None, None).unwrap().cron(), "0 2 * * *");
        assert_eq!(
            When::parse(d, Some("02:00"), None).unwrap().cron(),
            "0 2 * * *"
        );
        assert_eq!(
            When::parse(d, Some("23:30"), None).unwrap().on_calendar(),
            "*-*-* 23:30:00"
        );
        assert_eq!(
            When::parse(d, None, Some("1h")).unwrap().cron(),
            "0 * * * *"
        );
        assert_eq!(
            When::parse(d, None, Some("1h")).unwrap().on_calendar(),
            "*-*-* *:00:00"
        );
        assert_eq!(
            When::parse(d, None, Some("6h")).unwrap().cron(),
            "0 */6 * * *"
        );
        assert_eq!(
            When::parse(d, None, Some("6h")).unwrap().on_calendar(),
            "*-*-* 00/6:00:00"
        );
        assert_eq!(
            When::parse(d, None, Some("15m")).unwrap().cron(),
            "*/15 * * * *"
        );
        assert_eq!(
            When::parse(d, None, Some("15m")).unwrap().on_calendar(),
            "*-*-* *:00/15:00"
        );
        let w = BackupType::Weekly;
        assert_eq!(When::parse(w, None, None).unwrap().cron(), "0 3 * * 0");
        assert_eq!(
            When::parse(w, None, None).unwrap().on_calendar(),
            "Sun *-*-* 03:00:00"
        );
        for bad in ["7h", "45m", "90m", "30s", "0s"] {
            assert!(When::parse(d, None, Some(bad)).is_err(), "{bad}");
        }
        for bad in ["24:00", "2", "02:60", "x:y", "002:00"] {
            assert!(When::parse(d, Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_under_a_day_are_incremental() {
        let exe = Path::new("/usr/local/bin/secureclaw-backup");
        let (src, dest) = (Path::new("/home/u/.secureclaw"), Path::new("/b"));
        for (every, incr) in [
            (Some("1h"), true),
            (Some("15m"), true),
            (Some("6h"), true),
            (Some("1d"), false),
            (None, false),
        ] {
            let when = When::parse(BackupType::Daily, None, every).unwrap();
            assert_eq!(when.incremental(), incr, "{every:?}");
            let p = plan(exe, BackupType::Daily, &when, src, dest);
            let exec = keys(&p.service, "ExecStart").join("\n");
            assert_eq!(exec.contains(" --incremental "), incr, "{every:?}: {exec}");
            assert!(exec.contains("backup --type daily"), "{exec}");
            assert_eq!(
                p.cron.contains(" --incremental "),
                incr,
                "{every:?}: {}",
                p.cron
            );
        }
        // the drill is never a backup, whatever its interval
        let when = When::parse(BackupType::Daily, None, Some("1h")).unwrap();
        let p = plan_job(exe, Job::Drill, &when, src, dest);
        assert!(!p.service.contains("--incremental") && !p.cron.contains("--incremental"));
    }

    #[test]
    fn units_have_one_calendar_and_hardening() {
        let when = When::parse(BackupType::Daily, None, None).unwrap();
        let p = plan(
            Path::new("/usr/local/bin/secureclaw-backup"),
            BackupType::Daily,
            &when,
            Path::new("/home/u/.secureclaw"),
            Path::new("/home/u/backups/secure claw"),
        );
        assert_eq!(keys(&p.timer, "OnCalendar"), vec!["*-*-* 02:00:00"]);
        assert_eq!(keys(&p.timer, "Persistent"), vec!["true"]);
        for (k, v) in [
            ("ProtectSystem", "strict"),
            ("ProtectHome", "read-only"),
            ("PrivateTmp", "true"),
            ("NoNewPrivileges", "true"),
            ("UMask", "0077"),
            ("Type", "oneshot"),
        ] {
            assert_eq!(keys(&p.service, k), vec![v], "{k}");
        }
        assert_eq!(
            keys(&p.service, "ReadWritePaths"),
            vec!["\"/home/u/backups/secure claw\" /home/u/.secureclaw"]
        );
        assert_eq!(
            keys(&p.service, "EnvironmentFile"),
            vec!["%h/.config/secureclaw-backup/backup.env"]
        );
        assert!(keys(&p.service, "Environment").is_empty(), "no key inline");
        assert!(keys(&p.service, "ExecStart")[0]
            .starts_with("/usr/local/bin/secureclaw-backup -q backup --type daily"));
        assert!(p.cron.contains("\n0 2 * * * set -a;"));
        assert!(p.cron.contains("'/home/u/backups/secure claw'"));
        assert!(p.env_template.contains("SECURECLAW_BACKUP_KEY="));
    }

    #[test]
    fn env_key_value_writes_the_recipients() {
        assert_eq!(env_key_value(None).unwrap(), "");
        assert_eq!(env_key_value(Some("  ")).unwrap(), "");
        assert_eq!(env_key_value(Some("age1abc")).unwrap(), "age1abc");
        // several, newline or comma separated: one line
        assert_eq!(
            env_key_value(Some("age1abc\nage1def,")).unwrap(),
            "age1abc,age1def"
        );
        // an SSH key has spaces: quoted for sh and systemd alike
        assert_eq!(
            env_key_value(Some("ssh-ed25519 AAAAC3 me@host")).unwrap(),
            "'ssh-ed25519 AAAAC3 me@host'"
        );
        // a relative recipients file: absolute, the job runs elsewhere
        let v = env_key_value(Some("keys/backup.pub")).unwrap();
        assert!(v.starts_with('/') && v.ends_with("/keys/backup.pub"), "{v}");
        // never a secret, never something that breaks out of the line
        assert!(env_key_value(Some(
            "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
        ))
        .is_err());
        assert!(env_key_value(Some("age1abc'; rm -rf ~; '")).is_err());
        assert!(env_key_value(Some("age1abc$(id)")).is_err());
        assert!(env_key_value(Some("age1abc\u{1b}[2J")).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(systemd_quote("/a/b", true), "/a/b");
        assert_eq!(systemd_quote("/a b/%c", true), "\"/a b/%%c\"");
        assert_eq!(systemd_quote("/a/${HOME}$x", true), "/a/$${HOME}$$x");
        assert_eq!(systemd_quote("/a/${HOME}", false), "/a/${HOME}");
        assert_eq!(shell_quote_cron("/a b/%c"), "'/a b/'\\%'c'");
        assert_eq!(shell_quote_cron("it's"), "'it'\\''s'");
        assert_eq!(shell_quote_cron("w\\%d"), "'w\\'\\%'d'");
        for bad in ["/a\nb", "/a\rb", "/a\x1bb", "/a\u{202e}b"] {
            for sch in [Scheduler::Cron, Scheduler::Systemd] {
                let e = check_path("dest", Path::new(bad), sch).unwrap_err();
                assert_eq!(e.kind, crate::error::ErrorKind::Usage);
                assert!(!e.message.contains('\n'));
            }
        }
        assert!(check_path("d", Path::new("/a\\%b 'c'"), Scheduler::Cron).is_ok());
        assert!(check_path("d", Path::new("/a\\b"), Scheduler::Systemd).is_err());
        assert!(check_path("d", Path::new("/a b/%h/${X}"), Scheduler::Systemd).is_ok());
    }

    /// `systemd-analyze verify` on the generated units, when it is installed.
    #[test]
    fn systemd_analyze_verifies_units() {
        let Ok(out) = std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output()
        else {
            println!("skipped: systemd-analyze is not installed");
            return;
        };
        if !out.status.success() {
            println!("skipped: systemd-analyze does not run here");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let src = t.path().join("src");
        let dest = t.path().join("dest");
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(&dest).unwrap();
        for (btype, when) in [
            (
                BackupType::Daily,
                When::parse(BackupType::Daily, Some("02:00"), None).unwrap(),
            ),
            (
                BackupType::Weekly,
                When::parse(BackupType::Weekly, None, Some("6h")).unwrap(),
            ),
        ] {
            let p = plan(&exe, btype, &when, &src, &dest);
            let svc = t.path().join(format!("{}.service", p.unit_base));
            let tmr = t.path().join(format!("{}.timer", p.unit_base));
            fs::write(&svc, &p.service).unwrap();
            fs::write(&tmr, &p.timer).unwrap();
            let out = std::process::Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&svc)
                .arg(&tmr)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Only complaints about our own files count (the host may lack a
            // running systemd; messages about other units are not ours).
            let ours: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains(&p.unit_base))
                .collect();
            assert!(ours.is_empty(), "systemd-analyze: {stderr}");
            if !out.status.success() {
                println!(
                    "note: systemd-analyze exited {:?}: {stderr}",
                    out.status.code()
                );
            }
            let cal = std::process::Command::new("systemd-analyze")
                .args(["calendar", &when.on_calendar()])
                .output()
                .unwrap();
            assert!(
                cal.status.success(),
                "calendar {}: {:?}",
                when.on_calendar(),
                cal
            );
        }
    }

    #[test]
    fn drill_job_runs_the_drill_weekly() {
        let when = When::parse(BackupType::Weekly, None, None).unwrap();
        let p = plan_job(
            Path::new("/usr/bin/secureclaw-backup"),
            Job::Drill,
            &when,
            Path::new("/home/u/.secureclaw"),
            Path::new("/home/u/backups"),
        );
        assert_eq!(p.unit_base, "secureclaw-backup-drill");
        assert!(p
            .service
            .contains("ExecStart=/usr/bin/secureclaw-backup -q drill --dest /home/u/backups"));
        assert!(
            p.cron.contains("0 3 * * 0") && p.cron.contains(" -q drill --dest /home/u/backups")
        );
        assert_eq!(p.timer.matches("OnCalendar=").count(), 1);
    }
}
