//! The restore engine (README "Restore safety"): plan, then apply.
//!
//! 1. lock the target, finish or roll back an interrupted restore, refuse
//!    while a gateway runs on it;
//! 2. decrypt → gunzip → untar into a 0700 staging directory beside the target
//!    under the rules of [`crate::archive::extract`], every layer read to its end;
//! 3. compare with the manifest (legacy archives without one: warn, and put the
//!    old daily script's misplaced transcripts back under `sessions/`);
//! 4. snapshot the current tree as an encrypted `pre-restore_…` archive;
//! 5. carry over components the archive lacks, swap atomically ([`crate::swap`]);
//! 6. validate and print the next steps.
//!
//! `--dry-run` does steps 1–3 without writing anything and prints the plan.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::archive::extract::{self, Discard, Limits, Outcome, Sink, StagingSink};
use crate::archive::pipeline;
use crate::backup::{self, BackupOptions, BackupReport};
use crate::crypto::{Encryptor, Identities};
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::manifest::RelPath;
use crate::store::BackupType;
use crate::tier::ArchiveRef;

pub struct RestoreOptions {
    /// A local file or directory, or an object in an offsite tier (streamed
    /// through the same authenticated path, no local copy).
    pub archive: ArchiveRef,
    pub target: PathBuf,
    /// Where the pre-restore snapshot goes.
    pub dest: PathBuf,
    pub dry_run: bool,
    /// `None` with `no_snapshot == false` is refused before anything happens.
    pub snapshot_to: Option<Arc<dyn Encryptor>>,
    pub no_snapshot: bool,
    pub stop_gateway: bool,
    pub identities: Identities,
}

/// What a restore did or (dry run) would do: the [`RestorePlan`] (its fields
/// appear at the top level of the JSON document) and what applying it gave.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    #[serde(flatten)]
    pub plan: RestorePlan,
    pub dry_run: bool,
    pub snapshot: Option<BackupReport>,
    pub validation: Option<crate::validate::Report>,
    pub next_steps: Vec<String>,
    /// Measured phases (name, seconds): decrypt+extract, verify, snapshot, swap, validate.
    pub phases: Vec<(String, f64)>,
    pub seconds: f64,
}

/// A restore decided (README "Restore safety"): built after the archive was
/// read to its end and compared with its manifest, before anything in the
/// target changes. `--dry-run` renders it; the real run applies it
/// ([`apply_restore`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestorePlan {
    pub archive: PathBuf,
    pub target: PathBuf,
    pub format: &'static str,
    pub legacy: bool,
    pub files: usize,
    pub bytes: u64,
    /// What was checked before the plan was made.
    pub checked: Vec<String>,
    /// Units (top-level components; `agents/<id>/<child>`) replaced by the archive.
    pub replaced: Vec<String>,
    /// Units the archive adds.
    pub added: Vec<String>,
    /// Units of the current tree that the archive lacks: carried over as they are.
    pub kept: Vec<String>,
    /// Entries the backup saw but did not archive that the current tree
    /// still has: carried over too.
    pub carried: Vec<String>,
    /// Whether the current tree is saved first.
    pub pre_restore_snapshot: SnapshotPlan,
    pub gateway: GatewayPlan,
    /// What an interrupted earlier run left, and what was done about it.
    pub recovered: Vec<String>,
    pub warnings: Vec<String>,
}

/// The pre-restore snapshot of the current tree.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SnapshotPlan {
    /// Saved as an encrypted `pre-restore_…` archive in `dest` (a dry run
    /// does not resolve the recipients: `recipients` is empty there).
    Save {
        dest: PathBuf,
        recipients: Vec<String>,
    },
    /// The target is empty or missing: nothing to save.
    NothingToSave,
    /// `--no-snapshot`.
    Skipped,
}

/// What happens to a SecureClaw gateway running on the target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GatewayPlan {
    pub action: GatewayAction,
    /// The gateways found on the target: a dry run only looks; a real run
    /// has refused, or stopped these, before reading the archive.
    pub pids: Vec<i32>,
}

/// The gateway rule of a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayAction {
    /// Refuse while one runs (exit 5).
    Refuse,
    /// `--stop-gateway`: SIGTERM, then wait for it to exit.
    Stop,
}

/// A plan and what applying it needs: the target lock (held until the
/// restore is over), the verified staging tree (removed if it is not
/// swapped in), the extraction outcome.
pub struct PreparedRestore {
    pub plan: RestorePlan,
    // dropped in this order: the sink's descriptors, the staging tree, then the lock
    sink: Option<StagingSink>,
    staging: Option<StagingGuard>,
    outcome: Outcome,
    kept: Vec<RelPath>,
    snapshot_to: Option<Arc<dyn Encryptor>>,
    phases: Vec<(String, f64)>,
    mark: Instant,
    started: Instant,
    _lock: Option<crate::lock::DirLock>,
}

/// Removes the staging tree on every way out of a restore that did not
/// finish (as before the plan was a value: also after a failed swap).
struct StagingGuard {
    path: PathBuf,
    done: bool,
}

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if !self.done {
            let _ = crate::swap::remove_tree(&self.path);
        }
    }
}

/// Replacement units of a tree given its relative paths: top-level entries,
/// except `agents/`, whose units are `agents/<id>/<child>` so that restoring a
/// partial agent backup never drops an agent's other data.
pub fn units<'a>(paths: impl Iterator<Item = &'a [u8]>) -> BTreeSet<RelPath> {
    let mut out = BTreeSet::new();
    for p in paths {
        let comps: Vec<&[u8]> = p.split(|&b| b == b'/').collect();
        if comps[0] == b"agents" && comps.len() >= 2 {
            let depth = comps.len().min(3);
            out.insert(RelPath::new(comps[..depth].join(&b'/')));
        } else {
            out.insert(RelPath::from(comps[0]));
        }
    }
    let slashes = |u: &RelPath| u.as_bytes().iter().filter(|&&b| b == b'/').count();
    // an agent dir listed alone only counts when it has no children listed
    let with_children: BTreeSet<Vec<u8>> = out
        .iter()
        .filter(|u| slashes(u) == 2)
        .filter_map(|u| {
            let b = u.as_bytes();
            b.iter().rposition(|&c| c == b'/').map(|i| b[..i].to_vec())
        })
        .collect();
    out.retain(|u| !(slashes(u) == 1 && with_children.contains(u.as_bytes())));
    if out.iter().any(|u| u.as_bytes().starts_with(b"agents/")) {
        out.remove(b"agents".as_slice());
    }
    out
}

fn tree_units(root: &Path) -> Result<BTreeSet<RelPath>> {
    let mut paths: Vec<Vec<u8>> = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(Error::io("listing", root, e)),
    };
    let join = |parts: &[&[u8]]| parts.join(&b'/');
    for e in rd {
        let e = e.at("listing", root)?;
        let name = e.file_name();
        let name = name.as_bytes();
        if name == b"agents" && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            paths.push(b"agents".to_vec());
            for a in fs::read_dir(e.path()).at("listing", &e.path())?.flatten() {
                let an = a.file_name();
                paths.push(join(&[b"agents", an.as_bytes()]));
                if a.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    for c in fs::read_dir(a.path()).at("listing", &a.path())?.flatten() {
                        paths.push(join(&[b"agents", an.as_bytes(), c.file_name().as_bytes()]));
                    }
                }
            }
        } else {
            paths.push(name.to_vec());
        }
    }
    Ok(units(paths.iter().map(Vec::as_slice)))
}

/// Streams a legacy plaintext backup directory as a tar under its own name.
fn directory_stream(dir: &Path) -> Result<pipeline::StageReader> {
    let top = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::usage(format!("{} has no name", dir.display())))?;
    let dir = dir.to_owned();
    let (w, r) = pipeline::pipe();
    std::thread::spawn(move || {
        let mut aw = crate::archive::writer::ArchiveWriter::new(w, &top);
        let sel = match crate::source::Selection::new(BackupType::Weekly, &[], None) {
            Ok(s) => s,
            Err(e) => {
                let w = aw.finish_without_manifest().ok();
                if let Some(w) = w {
                    w.fail(crate::error::into_io(e));
                }
                return;
            }
        };
        let mut warnings = Vec::new();
        let res = aw.add_top_unmarked(0).and_then(|_| {
            crate::source::walk(&dir, &sel, &mut warnings, &mut |item| {
                use std::os::unix::fs::MetadataExt;
                match item {
                    crate::source::Item::Dir { rel, meta } => aw.add_dir(rel, 0o700, meta.mtime()),
                    crate::source::Item::File { rel, path, .. } => aw.add_file(rel, path),
                    crate::source::Item::Symlink { rel, target, meta } => {
                        aw.add_symlink(rel, target, meta.mtime())
                    }
                }
            })
        });
        match (res, aw.finish_without_manifest()) {
            (Ok(()), Ok(_w)) => {}
            (Err(e), Ok(w)) => w.fail(crate::error::into_io(e)),
            _ => {}
        }
    });
    Ok(r)
}

/// The old daily script copied `agents/<id>/sessions` into `agents/<id>/`
/// before that directory existed, so transcripts landed in `agents/<id>/`.
/// Moves such files back under `sessions/` (legacy archives only).
fn fix_legacy_transcripts(staging: &Path, events: &dyn Events) -> Result<Vec<String>> {
    let mut moved = Vec::new();
    let agents = staging.join("agents");
    let Ok(rd) = fs::read_dir(&agents) else {
        return Ok(moved);
    };
    for a in rd.flatten() {
        if !a.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let mut misplaced = Vec::new();
        for f in fs::read_dir(a.path()).at("listing", &a.path())?.flatten() {
            let n = f.file_name();
            let b = n.as_bytes();
            let is_file = f.file_type().map(|t| t.is_file()).unwrap_or(false);
            if is_file && (b.ends_with(b".jsonl") || b == b"sessions.json") {
                misplaced.push(n);
            }
        }
        if misplaced.is_empty() {
            continue;
        }
        let sessions = a.path().join("sessions");
        if fs::symlink_metadata(&sessions).is_ok_and(|m| !m.is_dir()) {
            // `sessions` is not a directory in this archive: leave it as it is
            continue;
        }
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&sessions)
                .at("creating", &sessions)?;
        }
        for n in misplaced {
            let to = sessions.join(&n);
            if to.exists() {
                continue;
            }
            fs::rename(a.path().join(&n), &to).at("moving", &to)?;
            let rel = [b"agents", a.file_name().as_bytes(), n.as_bytes()].join(&b'/');
            moved.push(crate::manifest::show(&rel));
        }
    }
    if !moved.is_empty() {
        events.warn(format!(
            "legacy archive: moved {} transcript file(s) that the old daily script misplaced back under agents/<id>/sessions/",
            moved.len()
        ));
    }
    Ok(moved)
}

fn free_bytes(dir: &Path) -> u64 {
    rustix::fs::statvfs(dir)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(u64::MAX)
}

/// Runs a restore (or a dry run) end to end, from a local archive (file or
/// legacy directory) or a stored object alike: [`plan_restore`], then, unless
/// a dry run, [`apply_restore`].
pub fn run_restore(opts: &RestoreOptions, events: &dyn Events) -> Result<RestoreReport> {
    let prepared = plan_restore(opts, events)?;
    if opts.dry_run {
        let seconds = prepared.started.elapsed().as_secs_f64();
        return Ok(RestoreReport {
            phases: prepared.phases.clone(),
            plan: prepared.plan.clone(),
            dry_run: true,
            snapshot: None,
            validation: None,
            next_steps: vec![],
            seconds,
        });
    }
    apply_restore(prepared, events)
}

/// Steps 1–3: locks the target, finishes or rolls back an interrupted
/// restore and applies the gateway rule (a dry run only sweeps dead staging
/// and looks), reads the whole archive (into a staging directory beside the
/// target, or, in a dry run, nowhere) and compares it with its manifest, and
/// decides what happens to the current tree. Nothing in the target has
/// changed when this returns.
pub fn plan_restore(opts: &RestoreOptions, events: &dyn Events) -> Result<PreparedRestore> {
    let started = Instant::now();
    if !opts.dry_run && !opts.no_snapshot && opts.snapshot_to.is_none() {
        return Err(Error::refused(
            "no recipients for the pre-restore snapshot of the current tree",
        )
        .hint("pass -r RECIPIENT or set SECURECLAW_BACKUP_KEY so the current tree is saved encrypted first, or pass --no-snapshot to skip that safety net"));
    }
    let label = opts.archive.label();
    let is_dir = match &opts.archive {
        ArchiveRef::Remote(_) => false,
        ArchiveRef::Local(p) => fs::metadata(p).at("opening archive", p)?.is_dir(),
    };
    // a data directory reached through a symlink is restored where it really is
    let target = match fs::symlink_metadata(&opts.target) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(&opts.target).at("resolving the target symlink", &opts.target)?
        }
        _ => crate::paths::absolute(&opts.target),
    };
    let lock = crate::lock::lock_dir(&target, "restore target")?;
    let mut recovered = Vec::new();
    let gateway = GatewayPlan {
        action: if opts.stop_gateway {
            GatewayAction::Stop
        } else {
            GatewayAction::Refuse
        },
        pids: if opts.dry_run {
            // plaintext staging that dead runs left beside the target goes first,
            // also in a dry run (nothing of the target is touched)
            for r in crate::swap::sweep_dead_staging(&target)? {
                events.warn(&r);
                recovered.push(r);
            }
            if swap_pending(&target) {
                recovered.push(
                    "an interrupted restore is pending; a real restore finishes or rolls it back first"
                        .to_owned(),
                );
            }
            crate::gateway::find_live(&target)
                .iter()
                .map(|g| g.pid)
                .collect()
        } else {
            recovered = crate::swap::recover(&target)?;
            for r in &recovered {
                events.warn(r);
            }
            crate::gateway::ensure_stopped(
                &target,
                opts.stop_gateway,
                Duration::from_secs(30),
                events,
            )?
        },
    };
    let (format, stream) = if is_dir {
        events.warn(format!(
            "{} is an unencrypted legacy backup directory",
            label.display()
        ));
        (crate::crypto::Format::Gzip, directory_stream(&label)?)
    } else {
        // the keyless structure check `verify` makes first (age payload
        // length, OpenPGP packet sequence): a truncated file or trailing data
        // after the ciphertext is an integrity failure, as with `verify -i`
        opts.archive.inspect()?;
        opts.archive.open_tar_stream(&opts.identities)?
    };
    if !format.is_encrypted() && !is_dir {
        events.warn(format!("{} is not encrypted", label.display()));
    }
    let staging = if opts.dry_run {
        None
    } else {
        Some(StagingGuard {
            path: crate::swap::create_staging(&target)?,
            done: false,
        })
    };
    let mut checked = Vec::new();
    if !is_dir {
        checked.push("the ciphertext's structure, without a key".to_owned());
    }
    if format.is_encrypted() {
        checked.push("authenticated decryption to the end".to_owned());
    }
    checked.push("every entry by the restore rules, gzip and tar to the end".to_owned());
    let ctx = Context {
        target,
        format,
        recovered,
        gateway,
        checked,
        started,
    };
    // on an error, `stage` has removed the staging tree (still under the lock)
    let mut prepared = stage(opts, ctx, staging, stream, events)?;
    prepared._lock = Some(lock);
    Ok(prepared)
}

fn swap_pending(target: &Path) -> bool {
    crate::swap::journal_path(target)
        .map(|j| j.exists())
        .unwrap_or(false)
}

/// What [`plan_restore`] knows before it reads the archive.
struct Context {
    target: PathBuf,
    format: crate::crypto::Format,
    recovered: Vec<String>,
    gateway: GatewayPlan,
    checked: Vec<String>,
    started: Instant,
}

/// Reads the archive into `staging` (or nowhere), checks it and makes the plan.
fn stage(
    opts: &RestoreOptions,
    ctx: Context,
    staging: Option<StagingGuard>,
    stream: pipeline::StageReader,
    events: &dyn Events,
) -> Result<PreparedRestore> {
    let Context {
        target,
        format,
        recovered,
        gateway,
        mut checked,
        started,
    } = ctx;
    let target = target.as_path();
    let staging_path = staging.as_ref().map(|g| g.path.clone());
    let staging_dir = staging_path.as_deref();
    let mut phases: Vec<(String, f64)> = Vec::new();
    let mut mark = Instant::now();
    let mut lap = |name: &str, phases: &mut Vec<(String, f64)>| {
        phases.push((name.to_owned(), mark.elapsed().as_secs_f64()));
        mark = Instant::now();
    };
    // every restored path must fit PATH_MAX below the target itself (the
    // staging directory's longer name does not count: it is written through
    // directory descriptors)
    let mut limits = Limits {
        max_rel_len: extract::PATH_MAX.saturating_sub(target.as_os_str().len() + 1),
        ..Limits::default()
    };
    let mut sink = staging_dir.map(StagingSink::new).transpose()?;
    let outcome: Outcome = match (&mut sink, staging_dir) {
        (Some(k), Some(s)) => {
            // keep 64 MiB of headroom on the filesystem
            limits.max_total_bytes = free_bytes(s).saturating_sub(64 << 20);
            extract::extract(stream, k as &mut dyn Sink, &limits)?
        }
        _ => extract::extract(stream, &mut Discard as &mut dyn Sink, &limits)?,
    };
    lap("decrypt+extract", &mut phases);
    let mut warnings = Vec::new();
    let legacy = outcome.manifest.is_none();
    match &outcome.manifest {
        Some(m) => {
            extract::check_manifest(&outcome, m)?;
            checked.push("every file's size and SHA-256 against the manifest".to_owned());
            for w in &m.warnings {
                warnings.push(format!(
                    "at backup time: {} [{}] {}",
                    w.path, w.kind, w.detail
                ));
            }
        }
        None => {
            let w = "legacy archive without manifest.json: every safety rule was applied, but file hashes could not be checked".to_owned();
            events.warn(&w);
            warnings.push(w);
        }
    }
    if let (Some(s), true) = (staging_dir, legacy) {
        for m in fix_legacy_transcripts(s, events)? {
            warnings.push(format!("moved misplaced transcript {m} under sessions/"));
        }
    }
    lap("verify", &mut phases);
    let new_units = match staging_dir {
        Some(s) => tree_units(s)?,
        None => units(outcome.paths()),
    };
    let cur_units = tree_units(target)?;
    let replaced: Vec<RelPath> = new_units.intersection(&cur_units).cloned().collect();
    let added: Vec<RelPath> = new_units.difference(&cur_units).cloned().collect();
    let kept: Vec<RelPath> = cur_units
        .difference(&new_units)
        .filter(|u| {
            // a kept agent child whose agent the archive replaces wholesale is dropped
            !(u.as_bytes().starts_with(b"agents/") && new_units.contains(b"agents".as_slice()))
        })
        .cloned()
        .collect();
    // what a kept unit brings along already is not counted twice
    let carried = match &outcome.manifest {
        Some(m) => {
            let (shown, paths) = select_skipped(target, staging_dir, m, &outcome);
            shown
                .into_iter()
                .zip(paths)
                .filter(|(_, p)| !kept.iter().any(|k| p.starts_with(k.as_path())))
                .map(|(s, _)| s)
                .collect()
        }
        None => vec![],
    };
    let target_has_data = fs::read_dir(target)
        .map(|mut r| r.next().is_some())
        .unwrap_or(false);
    let pre_restore_snapshot = if opts.no_snapshot {
        SnapshotPlan::Skipped
    } else if !target_has_data {
        SnapshotPlan::NothingToSave
    } else {
        SnapshotPlan::Save {
            dest: opts.dest.clone(),
            recipients: opts
                .snapshot_to
                .as_ref()
                .map(|e| e.describe())
                .unwrap_or_default(),
        }
    };
    let shown = |v: &[RelPath]| v.iter().map(RelPath::to_string).collect::<Vec<_>>();
    let plan = RestorePlan {
        archive: opts.archive.label(),
        target: target.to_owned(),
        format: format.family(),
        legacy,
        files: outcome.files.len(),
        bytes: outcome.bytes,
        checked,
        replaced: shown(&replaced),
        added: shown(&added),
        kept: shown(&kept),
        carried,
        pre_restore_snapshot,
        gateway,
        recovered,
        warnings,
    };
    Ok(PreparedRestore {
        plan,
        sink,
        staging,
        outcome,
        kept,
        snapshot_to: opts.snapshot_to.clone(),
        phases,
        mark,
        started,
        _lock: None,
    })
}

/// Steps 4–6 of a plan made by [`plan_restore`] (not a dry run): the
/// encrypted snapshot of the current tree, the carry-over, the atomic swap,
/// the validation.
pub fn apply_restore(prepared: PreparedRestore, events: &dyn Events) -> Result<RestoreReport> {
    let mut p = prepared;
    let Some(staging) = p.staging.as_ref().map(|g| g.path.clone()) else {
        return Err(
            Error::operational("a dry-run plan cannot be applied: nothing was staged")
                .hint("run restore without --dry-run"),
        );
    };
    let staging = staging.as_path();
    let target = p.plan.target.clone();
    let target = target.as_path();
    let lap = |name: &str, phases: &mut Vec<(String, f64)>, mark: &mut Instant| {
        phases.push((name.to_owned(), mark.elapsed().as_secs_f64()));
        *mark = Instant::now();
    };
    let mut report = RestoreReport {
        plan: p.plan.clone(),
        dry_run: false,
        snapshot: None,
        validation: None,
        next_steps: vec![],
        phases: vec![],
        seconds: 0.0,
    };
    crate::process::check_interrupted()?;
    // snapshot of what is there now
    if let (SnapshotPlan::Save { dest, .. }, Some(enc)) =
        (&p.plan.pre_restore_snapshot, &p.snapshot_to)
    {
        events.info("saving an encrypted snapshot of the current tree…");
        let snap = backup::run_backup(
            &BackupOptions {
                btype: BackupType::PreRestore,
                source: target.to_owned(),
                dest: dest.clone(),
                excludes: vec![],
                level: backup::DEFAULT_LEVEL,
                threads: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                encryptor: Some(enc.clone()),
                prune: None,
            },
            events,
        )
        .map_err(|e| e.context("saving the pre-restore snapshot (nothing was restored)"))?;
        events.info(format!("snapshot: {}", snap.archive.display()));
        report.snapshot = Some(snap);
    }
    lap("snapshot", &mut p.phases, &mut p.mark);
    crate::process::check_interrupted()?;
    if fs::symlink_metadata(target).is_ok() {
        for w in link_or_carry(target, staging, p.kept.iter().map(RelPath::as_path))? {
            events.warn(&w);
            report.plan.warnings.push(w);
        }
        if let Some(m) = &p.outcome.manifest {
            // chosen again now that the kept units are in the staged tree
            let (carried, carry) = select_skipped(target, Some(staging), m, &p.outcome);
            let mut kept: Vec<String> = carried
                .iter()
                .map(|c| {
                    format!("kept {c} from the current tree (seen but not archived at backup time)")
                })
                .collect();
            kept.extend(link_or_carry(
                target,
                staging,
                carry.iter().map(PathBuf::as_path),
            )?);
            report.plan.carried = carried;
            for w in kept {
                events.detail(&w);
                report.plan.warnings.push(w);
            }
        }
    }
    if let Some(sink) = &mut p.sink {
        // carried-over entries and moved transcripts touched directories
        sink.set_dir_mtimes(&p.outcome.dir_mtimes)?;
    }
    crate::swap::commit(target, staging, &report.plan.archive, events)?;
    lap("swap", &mut p.phases, &mut p.mark);
    let validation = crate::validate::validate(target, false)?;
    lap("validate", &mut p.phases, &mut p.mark);
    report.phases = std::mem::take(&mut p.phases);
    report.next_steps = next_steps(target, &report, &validation);
    report.validation = Some(validation);
    report.seconds = p.started.elapsed().as_secs_f64();
    if let Some(g) = &mut p.staging {
        g.done = true;
    }
    Ok(report)
}

/// Whether every proper prefix of `rel` below `root` is a real directory
/// (no symlink on the way).
fn real_parents(root: &Path, rel: &[u8]) -> bool {
    let mut p = root.to_owned();
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        p.push(std::ffi::OsStr::from_bytes(c));
        if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    true
}

/// Entries the backup saw but did not archive (manifest warnings such as a
/// socket, an absolute symlink, a lock file, the destination inside the
/// source, or a non-UTF-8 name in an older archive) and that the current tree
/// still has: linked into the staged tree, so that replacing their component
/// does not delete them. Only where the archive has their parent directory
/// (top-level ones are kept components already) and no entry of their own,
/// and only through real directories on both sides (without a staging tree,
/// in a dry run: through the archive's directories). Returns their shown
/// names and their paths.
fn select_skipped(
    target: &Path,
    staging: Option<&Path>,
    m: &crate::manifest::Manifest,
    outcome: &Outcome,
) -> (Vec<String>, Vec<PathBuf>) {
    let mut rels: BTreeSet<Vec<u8>> = BTreeSet::new();
    for w in m.warnings.iter().filter(|w| w.is_skip()) {
        let rel = w.path.as_bytes();
        if w.kind == "non-utf8-name" {
            // older versions recorded such a name lossily: find it again
            let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
                Some(i) => (&rel[..i], &rel[i + 1..]),
                None => (&b""[..], rel),
            };
            let dir = target.join(std::ffi::OsStr::from_bytes(parent));
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let n = e.file_name();
                if std::str::from_utf8(n.as_bytes()).is_err()
                    && n.to_string_lossy().as_bytes() == name
                {
                    let mut full = parent.to_vec();
                    if !full.is_empty() {
                        full.push(b'/');
                    }
                    full.extend_from_slice(n.as_bytes());
                    rels.insert(full);
                }
            }
        } else {
            rels.insert(rel.to_vec());
        }
    }
    let mut kept = Vec::new();
    let mut carry: Vec<PathBuf> = Vec::new();
    for rel in rels {
        let Some(i) = rel.iter().rposition(|&b| b == b'/') else {
            continue; // a top-level entry is a component of its own
        };
        let in_archive = outcome.files.contains_key(rel.as_slice())
            || outcome.dirs.contains(rel.as_slice())
            || outcome.symlinks.contains_key(rel.as_slice());
        if in_archive || !outcome.dirs.contains(&rel[..i]) {
            continue;
        }
        let p = Path::new(std::ffi::OsStr::from_bytes(&rel)).to_owned();
        let staged_ok = match staging {
            Some(s) => real_parents(s, &rel) && fs::symlink_metadata(s.join(&p)).is_err(),
            None => archived_parents(outcome, &rel),
        };
        if !real_parents(target, &rel)
            || !staged_ok
            || fs::symlink_metadata(target.join(&p)).is_err()
        {
            continue;
        }
        kept.push(crate::manifest::show(&rel));
        carry.push(p);
    }
    (kept, carry)
}

/// Whether every proper prefix of `rel` is a directory of the archive (and
/// none a symbolic link).
fn archived_parents(outcome: &Outcome, rel: &[u8]) -> bool {
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    (1..comps.len()).all(|i| {
        let prefix = comps[..i].join(&b'/');
        outcome.dirs.contains(prefix.as_slice())
            && !outcome.symlinks.contains_key(prefix.as_slice())
    })
}

/// Whether no proper prefix of `rel` below `root` exists as anything but a
/// directory (missing ones are created).
fn no_link_on_the_way(root: &Path, rel: &[u8]) -> bool {
    let mut p = root.to_owned();
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        p.push(std::ffi::OsStr::from_bytes(c));
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            _ => return false,
        }
    }
    true
}

/// Brings `paths` of the current tree into the staged one by hard links
/// ([`link_tree_at`]). Never through a symlink of the staged tree (an archive
/// that holds a link where the current tree has a directory): such a path is
/// left out, and the returned warnings say so.
fn link_or_carry<'a>(
    target: &Path,
    staging: &Path,
    paths: impl Iterator<Item = &'a Path>,
) -> Result<Vec<String>> {
    use rustix::fs::{Mode, OFlags};
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("opening", p, e.into()))
    };
    let (tfd, sfd) = (open(target)?, open(staging)?);
    let mut warnings = Vec::new();
    for p in paths {
        let rel = p.as_os_str().as_bytes();
        if !no_link_on_the_way(staging, rel) {
            warnings.push(format!(
                "not kept: {} (the archive has a symbolic link on its way)",
                crate::manifest::show(rel)
            ));
            continue;
        }
        // missing parents (an agent the archive lacks): 0700
        let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        for i in 1..comps.len() {
            let parent = comps[..i].join(&b'/');
            match rustix::fs::mkdirat(&sfd, parent.as_slice(), Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(Error::io("creating", &staging.join(p), e.into())),
            }
        }
        link_tree_at(target, &tfd, staging, &sfd, rel)?;
    }
    Ok(warnings)
}

/// Hard-links the tree at `rel` of `target` into `staging` at the same
/// place, by paths relative to the two directories' descriptors (the staging
/// directory's longer name never pushes a path past PATH_MAX): each
/// non-directory is linked as the very inode (a symlink is linked, never
/// followed: its target and mtime stay), a regular file that cannot be
/// linked is copied; directories keep their mode and mtime.
fn link_tree_at(
    target: &Path,
    tfd: &std::os::fd::OwnedFd,
    staging: &Path,
    sfd: &std::os::fd::OwnedFd,
    rel: &[u8],
) -> Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
    use std::os::unix::fs::MetadataExt;
    let src = target.join(std::ffi::OsStr::from_bytes(rel));
    let dst = || staging.join(std::ffi::OsStr::from_bytes(rel));
    let m = fs::symlink_metadata(&src).at("reading", &src)?;
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    };
    if m.is_dir() {
        let mode = Mode::from_raw_mode(m.mode() & 0o7777);
        rustix::fs::mkdirat(sfd, rel, Mode::from_raw_mode(0o700))
            .map_err(|e| Error::io("creating", &dst(), e.into()))?;
        for e in fs::read_dir(&src).at("listing", &src)? {
            let e = e.at("listing", &src)?;
            let child = [rel, e.file_name().as_bytes()].join(&b'/');
            link_tree_at(target, tfd, staging, sfd, &child)?;
        }
        rustix::fs::chmodat(sfd, rel, mode, AtFlags::empty())
            .and_then(|()| rustix::fs::utimensat(sfd, rel, &times, AtFlags::SYMLINK_NOFOLLOW))
            .map_err(|e| Error::io("setting mode and mtime of", &dst(), e.into()))?;
        return Ok(());
    }
    if rustix::fs::linkat(tfd, rel, sfd, rel, AtFlags::empty()).is_ok() {
        return Ok(());
    }
    if m.is_file() {
        let mut from = fs::File::from(
            rustix::fs::openat(
                tfd,
                rel,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("opening", &src, e.into()))?,
        );
        let mut to = fs::File::from(
            rustix::fs::openat(
                sfd,
                rel,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(m.mode() & 0o7777),
            )
            .map_err(|e| Error::io("creating", &dst(), e.into()))?,
        );
        std::io::copy(&mut from, &mut to).at("copying", &src)?;
        rustix::fs::futimens(&to, &times)
            .map_err(|e| Error::io("setting mtime of", &dst(), e.into()))?;
        return Ok(());
    }
    if m.file_type().is_symlink() {
        let t = rustix::fs::readlinkat(tfd, rel, Vec::new())
            .map_err(|e| Error::io("reading link", &src, e.into()))?;
        rustix::fs::symlinkat(t.as_c_str(), sfd, rel)
            .and_then(|()| rustix::fs::utimensat(sfd, rel, &times, AtFlags::SYMLINK_NOFOLLOW))
            .map_err(|e| Error::io("creating link", &dst(), e.into()))?;
        return Ok(());
    }
    Err(Error::operational(format!(
        "cannot keep {}: it could not be hard-linked into the restored tree",
        src.display()
    ))
    .hint("move it out of the target, restore, and move it back"))
}

/// The validation's next steps, plus how to undo this restore.
fn next_steps(target: &Path, r: &RestoreReport, v: &crate::validate::Report) -> Vec<String> {
    let mut s = v.next_steps.clone();
    if let Some(snap) = &r.snapshot {
        s.push(format!(
            "to undo this restore: secureclaw-backup restore {} --target {} -i <identity>",
            snap.archive.display(),
            target.display()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_split_agents() {
        let u = units(
            [
                "secureclaw.json",
                "credentials/oauth.json",
                "agents",
                "agents/a",
                "agents/a/sessions/x.jsonl",
                "agents/a/agent/auth.json",
                "agents/b",
            ]
            .into_iter()
            .map(str::as_bytes),
        );
        let v: Vec<String> = u.iter().map(RelPath::to_string).collect();
        assert_eq!(
            v,
            vec![
                "agents/a/agent",
                "agents/a/sessions",
                "agents/b",
                "credentials",
                "secureclaw.json"
            ]
        );
    }
}
