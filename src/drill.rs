//! The restore drill: the production checklist's "test restore on a clean
//! system" and "document time to complete restore (RTO)". Restores an archive
//! into a scratch directory through the real restore path (full verification,
//! atomic swap, validation), reports the time per phase against the RTO, and
//! shreds the scratch tree afterwards.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::crypto::Identities;
use crate::error::{Error, IoContext, Result};
use crate::restore::{run_restore, RestoreOptions};
use crate::store::{self, BackupType};
use crate::ui::Ui;

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub archive: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub phases: Vec<(String, f64)>,
    pub seconds: f64,
    pub rto_seconds: f64,
    pub within_rto: bool,
    pub validation_ok: bool,
}

/// The newest archive (not a pre-restore snapshot) in `dest`.
pub fn newest_archive(dest: &Path) -> Result<PathBuf> {
    store::list_archives(dest)?
        .into_iter()
        .rfind(|a| a.btype != BackupType::PreRestore && a.container != store::Container::Directory)
        .map(|a| dest.join(a.name))
        .ok_or_else(|| {
            Error::operational(format!("no archive to drill in {}", dest.display()))
                .hint("make a backup first, or pass --archive")
        })
}

/// Overwrites every file with zeros, fsyncs, then removes the tree.
pub fn shred_tree(root: &Path) -> Result<()> {
    fn walk(p: &Path) -> Result<()> {
        let m = fs::symlink_metadata(p).at("reading", p)?;
        if m.is_dir() {
            for e in fs::read_dir(p).at("listing", p)? {
                walk(&e.at("listing", p)?.path())?;
            }
        } else if m.is_file() {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(p)
                .at("opening", p)?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = m.len();
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n]).at("overwriting", p)?;
                left -= n as u64;
            }
            f.sync_all().at("syncing", p)?;
            f.set_len(0).at("truncating", p)?;
        }
        Ok(())
    }
    if root.exists() {
        walk(root)?;
        fs::remove_dir_all(root).at("removing", root)?;
    }
    Ok(())
}

pub fn run_drill(
    archive: &Path,
    identities: Identities,
    scratch_parent: &Path,
    rto: Duration,
    ui: &Ui,
) -> Result<DrillReport> {
    let started = Instant::now();
    // plaintext scratch trees of drills that were killed: shred them first
    if let Ok(rd) = fs::read_dir(scratch_parent) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("secureclaw-drill-")
                .and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !crate::process::pid_alive(p)) {
                shred_tree(&e.path())?;
                ui.warn(format!("shredded {name}, left by an interrupted drill"));
            }
        }
    }
    let scratch = scratch_parent.join(format!("secureclaw-drill-{}", std::process::id()));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&scratch)
        .at("creating scratch directory", &scratch)?;
    let res = run_restore(
        &RestoreOptions {
            archive: archive.to_owned(),
            target: scratch.join("data"),
            dest: scratch.join("snapshots"),
            dry_run: false,
            snapshot_to: None,
            no_snapshot: true,
            stop_gateway: false,
            identities,
        },
        ui,
    );
    let shredded = shred_tree(&scratch);
    let r = res?;
    shredded?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(DrillReport {
        archive: archive.to_owned(),
        files: r.files,
        bytes: r.bytes,
        phases: r.phases,
        seconds,
        rto_seconds: rto.as_secs_f64(),
        within_rto: seconds <= rto.as_secs_f64(),
        validation_ok: r.validation.map(|v| v.ok).unwrap_or(false),
    })
}
