//! `schedule`: unattended backups with a systemd user timer or cron. Prints
//! (or with `--install` writes) the units or the crontab line of
//! [`secureclaw_backup::schedule`], then the next steps; it never runs `systemctl` or
//! edits a crontab itself.

use std::path::PathBuf;

use serde_json::json;

use crate::ui::Ui;
use secureclaw_backup::error::{Error, Result};
use secureclaw_backup::schedule::{self, Scheduler};
use secureclaw_backup::store::{self, BackupType};

use super::TypeArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerArg {
    /// A systemd user service + timer pair
    Systemd,
    /// crontab lines
    Cron,
}

impl From<SchedulerArg> for Scheduler {
    fn from(s: SchedulerArg) -> Self {
        match s {
            SchedulerArg::Systemd => Scheduler::Systemd,
            SchedulerArg::Cron => Scheduler::Cron,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// systemd (user service + timer) or cron (crontab lines)
    #[arg(value_enum)]
    pub scheduler: SchedulerArg,
    /// Backup type to schedule
    #[arg(
        long = "type",
        value_name = "TYPE",
        value_enum,
        default_value = "daily"
    )]
    pub btype: TypeArg,
    /// Time of day, HH:MM (default 02:00 for daily, Sunday 03:00 for weekly)
    #[arg(long, value_name = "HH:MM", conflicts_with = "every")]
    pub at: Option<String>,
    /// Run at a fixed interval instead: 15m, 30m, 1h, 6h, 1d… (divides an hour or a day)
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
    /// Write the units (systemd) and the env-file template for the current user
    #[arg(long)]
    pub install: bool,
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Data directory (default $SECURECLAW_STATE_DIR, $SECURECLAW_DIR, ~/.secureclaw)
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Schedule the restore drill instead of a backup (weekly by default; the env
    /// file must then name an identity: SECURECLAW_BACKUP_IDENTITY=/path/to/key)
    #[arg(long)]
    pub drill: bool,
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    let btype: BackupType = args.btype.into();
    // a drill runs weekly (Sundays) unless told otherwise
    let when_type = if args.drill {
        BackupType::Weekly
    } else {
        btype
    };
    let when = schedule::When::parse(when_type, args.at.as_deref(), args.every.as_deref())?;
    let exe = std::env::current_exe().map_err(|e| {
        Error::operational(format!("cannot find this program's path: {e}"))
            .hint("run secureclaw-backup by its absolute path")
    })?;
    let source = schedule::resolved(secureclaw_backup::paths::absolute(
        &secureclaw_backup::paths::data_dir(args.source.clone())?,
    ));
    let dest = schedule::resolved(secureclaw_backup::paths::absolute(
        &secureclaw_backup::store::dest_or_default(args.dest.as_deref())?,
    ));
    schedule::check_path("the program's path", &exe, args.scheduler.into())?;
    schedule::check_path("the data directory", &source, args.scheduler.into())?;
    schedule::check_path("the destination", &dest, args.scheduler.into())?;
    let job = if args.drill {
        schedule::Job::Drill
    } else {
        schedule::Job::Backup(btype)
    };
    let p = schedule::plan_job(&exe, job, &when, &source, &dest);
    let env_path = secureclaw_backup::paths::home()?.join(schedule::ENV_FILE_REL);
    let service_name = format!("{}.service", p.unit_base);
    let timer_name = format!("{}.timer", p.unit_base);

    let mut installed = Vec::new();
    if args.install {
        if let Err(why) =
            schedule::env_key_value(std::env::var("SECURECLAW_BACKUP_KEY").ok().as_deref())
        {
            ui.warn(why);
        }
        if schedule::install_env_file(&env_path, &p.env_template, &mut |w| ui.warn(w))? {
            installed.push(env_path.clone());
        }
        secureclaw_backup::store::ensure_private_dir(&dest)?;
        if args.scheduler == SchedulerArg::Systemd {
            let dir = schedule::config_home()?.join("systemd/user");
            store::mkdir_private(&dir)?;
            for (name, text) in [(&service_name, &p.service), (&timer_name, &p.timer)] {
                let path = dir.join(name);
                store::write_replace(&path, text.as_bytes(), 0o600)?;
                installed.push(path);
            }
        }
    }
    let next = schedule::next_steps(
        args.scheduler.into(),
        &p,
        &env_path,
        args.drill,
        args.install,
    );
    let mut human = String::new();
    match args.scheduler {
        SchedulerArg::Systemd => {
            human.push_str(&format!(
                "# ~/.config/systemd/user/{service_name}\n{}\n",
                p.service
            ));
            human.push_str(&format!(
                "# ~/.config/systemd/user/{timer_name}\n{}",
                p.timer
            ));
        }
        SchedulerArg::Cron => human.push_str(&p.cron),
    }
    if ui.quiet && !ui.json && !args.install {
        // -q: only what was asked for, the units or the cron line (no steps)
        return ui.data(&human);
    }
    if !installed.is_empty() {
        human.push_str("\nWritten:\n");
        for i in &installed {
            human.push_str(&format!("  {}\n", i.display()));
        }
    }
    human.push_str("\nNext steps:\n");
    for n in &next {
        human.push_str(&format!("  - {n}\n"));
    }
    let out = match args.scheduler {
        SchedulerArg::Systemd => json!({
            "ok": true,
            "scheduler": "systemd",
            "type": btype,
            "on_calendar": when.on_calendar(),
            "units": { service_name.clone(): p.service, timer_name.clone(): p.timer },
            "env_file": env_path,
            "installed": installed,
            "next_steps": next,
        }),
        SchedulerArg::Cron => json!({
            "ok": true,
            "scheduler": "cron",
            "type": btype,
            "cron": when.cron(),
            "crontab": p.cron,
            "env_file": env_path,
            "installed": installed,
            "next_steps": next,
        }),
    };
    ui.result(human, out);
    Ok(())
}
