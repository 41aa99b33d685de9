//! The restore drill: the production checklist's "test restore on a clean
//! system" and "document time to complete restore (RTO)". Restores an archive
//! into a scratch directory through the real restore path (full verification,
//! atomic swap, validation), reports the time per phase against the RTO, and
//! shreds the scratch tree afterwards. The scratch parent is often the shared
//! `$TMPDIR`: the scratch directory gets a random name (never one someone
//! created first), and trees are swept and shredded relative to directory
//! descriptors, only when they are ours (SECURITY.md, "Local attacker model").

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::crypto::Identities;
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::restore::{run_restore, RestoreOptions};
use crate::store::{self, BackupType};

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
    /// How many archives the restore read: 1 for a full, the full and every
    /// link up to it for a link of an incremental chain.
    pub chain_length: usize,
    /// The chain's id, for a link of an incremental chain.
    pub chain: Option<String>,
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

/// The newest archive (not a pre-restore snapshot) in `dest` that the
/// identities given can open, told without a key ([`crate::keymatch`]: the
/// `.meta` recipients, else the header; an archive whose header cannot tell
/// is tried). Each archive passed over is reported (`-v`). Without
/// identities (gpg-agent), the newest archive.
pub fn newest_openable(dest: &Path, ids: &Identities, events: &dyn Events) -> Result<PathBuf> {
    use crate::keymatch::{holders, judge, recipients, Verdict};
    let hs = holders(ids);
    if hs.is_empty() {
        return newest_archive(dest);
    }
    let all: Vec<_> = store::list_archives(dest)?
        .into_iter()
        .filter(|a| a.btype != BackupType::PreRestore && a.container != store::Container::Directory)
        .collect();
    let mut first_refusal: Option<(String, String)> = None;
    for a in all.iter().rev() {
        let path = dest.join(&a.name);
        let Ok(info) = crate::crypto::inspect(&path) else {
            events.detail(format!(
                "drill: passing over {} (its header is damaged)",
                a.name
            ));
            continue;
        };
        match judge(info.format, &recipients(&path, &info, &[]), &hs) {
            Verdict::Cannot(why) => {
                events.detail(format!("drill: passing over {}: {why}", a.name));
                first_refusal.get_or_insert((a.name.clone(), why));
            }
            _ => return Ok(path),
        }
    }
    Err(match first_refusal {
        Some((name, why)) => Error::key(format!(
            "no archive in {} opens with the identities given; the newest, {name}: {why}",
            dest.display()
        ))
        .hint("pass the identity the archives were made for (`verify ARCHIVE` names their recipients), or --archive"),
        None => Error::operational(format!("no archive to drill in {}", dest.display()))
            .hint("make a backup first, or pass --archive"),
    })
}

/// Overwrites every file with zeros, fsyncs, then removes the tree; walked
/// relative to directory descriptors, never following a symlink.
pub fn shred_tree(root: &Path) -> Result<()> {
    crate::fsx::shred_tree(root).at("securely deleting", root)
}

/// Prefix of scratch directory names: `secureclaw-drill-<pid>-<random>`.
const SCRATCH_PREFIX: &str = "secureclaw-drill-";

/// Shreds the plaintext scratch trees of drills that were killed: our own
/// directories (not symlinks) in `parent` whose pid is dead. Another user's
/// are left alone, with a warning.
fn sweep_scratch(pfd: &OwnedFd, parent: &Path, events: &dyn Events) -> Result<()> {
    for name in crate::fsx::names(pfd).at("listing", parent)? {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(SCRATCH_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(Some(st)) = crate::fsx::lstat_at(pfd, name) else {
            continue;
        };
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory
            || st.st_uid != crate::fsx::euid()
        {
            events.warn(format!(
                "ignoring {}: not a directory of this user",
                parent.join(name).display()
            ));
            continue;
        }
        if pid == std::process::id() as i32 || crate::process::pid_alive(pid) {
            continue;
        }
        crate::fsx::shred_tree_at(pfd, name).at("securely deleting", &parent.join(name))?;
        events.warn(format!("shredded {name}, left by an interrupted drill"));
    }
    Ok(())
}

pub fn run_drill(
    archive: &Path,
    identities: Identities,
    trust: crate::sign::Trust,
    scratch_parent: &Path,
    rto: Duration,
    events: &dyn Events,
) -> Result<DrillReport> {
    let started = Instant::now();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(scratch_parent)
        .at("creating scratch directory", scratch_parent)?;
    let pfd = rustix::fs::open(
        scratch_parent,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("opening", scratch_parent, e.into()))?;
    // plaintext scratch trees of drills that were killed: shred them first
    sweep_scratch(&pfd, scratch_parent, events)?;
    let prefix = format!("{SCRATCH_PREFIX}{}-", std::process::id());
    let (name, _fd) = crate::fsx::create_unique_dir(&pfd, &prefix)
        .map_err(|e| Error::io("creating a scratch directory in", scratch_parent, e))?;
    let scratch = scratch_parent.join(&name);
    let res = run_restore(
        &RestoreOptions {
            archive: crate::tier::ArchiveRef::Local(archive.to_owned()),
            target: scratch.join("data"),
            dest: scratch.join("snapshots"),
            dry_run: false,
            snapshot_to: None,
            no_snapshot: true,
            stop_gateway: false,
            identities,
            include: vec![],
            // the provenance gate of restore (README "Signed archives")
            trust,
            sign: None,
        },
        events,
    );
    let shredded = crate::fsx::shred_tree_at(&pfd, &name).at("securely deleting", &scratch);
    let r = res?;
    shredded?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(DrillReport {
        archive: archive.to_owned(),
        files: r.plan.files,
        bytes: r.plan.bytes,
        phases: r.phases,
        seconds,
        rto_seconds: rto.as_secs_f64(),
        within_rto: seconds <= rto.as_secs_f64(),
        validation_ok: r.validation.map(|v| v.ok).unwrap_or(false),
        chain_length: r.plan.chain.as_ref().map_or(1, |c| c.links.len()),
        chain: r.plan.chain.map(|c| c.id),
    })
}
