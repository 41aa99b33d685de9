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
//! Steps 1–3 are [`plan_restore`] (→ a [`RestorePlan`]), steps 4–6
//! [`apply_restore`]; `--dry-run` does steps 1–3 without writing anything and
//! renders the plan. What is replaced, added and kept is decided per unit
//! (`units`), carried over by `carry`; `legacy` reads the old scripts'
//! plaintext backup directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::archive::extract::{self, Discard, Limits, Outcome, Sink, StagingSink};
use crate::backup::{self, BackupOptions, BackupReport};
use crate::crypto::{Encryptor, Identities};
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::manifest::RelPath;
use crate::store::BackupType;
use crate::tier::ArchiveRef;

mod carry;
pub mod chain;
mod legacy;
pub mod select;
mod units;

use carry::{link_or_carry, select_skipped};
use legacy::{directory_stream, fix_legacy_transcripts};
use units::tree_units;
pub use units::units;

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
    /// Trusted signers (README "Signed archives"): with them, the archive
    /// must carry a valid signature by one of them, bound to its name,
    /// before anything is decrypted or changed.
    pub trust: crate::sign::Trust,
    /// Signs the pre-restore snapshot (`--sign-key`).
    pub sign: Option<crate::sign::SigningKey>,
    /// `--include PATH|GLOB`: only these entries are swapped in, the rest of
    /// the target is kept (empty: the whole archive; see `select`).
    pub include: Vec<String>,
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

impl RestoreReport {
    /// The error of a restore that completed but whose validation failed
    /// (exit 3), or `None` when it passed or did not run.
    pub fn validation_failure(&self) -> Option<Error> {
        match &self.validation {
            Some(v) if !v.ok => Some(
                Error::validation(format!(
                    "the restore into {} is complete, but its validation failed: {} check(s)",
                    self.plan.target.display(),
                    v.failed()
                ))
                .hint(
                    "see the validation table above; the restored tree is in place (undo with the pre-restore snapshot named above)",
                ),
            ),
            _ => None,
        }
    }
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
    /// The `--include` patterns (empty: the whole archive).
    pub include: Vec<String>,
    /// File by file, what the restore does to the target (dry runs and
    /// `--include`; a full restore does not read the current tree twice).
    pub changes: Option<select::FileChanges>,
    /// A link of an incremental chain: the chain and every archive read
    /// (`restore/chain.rs`); `None` for an archive read on its own.
    pub chain: Option<chain::ChainReport>,
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
    snapshot_sign: Option<crate::sign::SigningKey>,
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
    // a hostile --include is refused before anything is read
    select::Selection::new(&opts.include)?;
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
    // a link of an incremental chain: its predecessors, from its store
    let mut found = if is_dir {
        None
    } else {
        chain::find(&opts.archive)?
    };
    // the provenance gate (README "Signed archives"): the signature of the
    // archive, or of every link of its chain, verified before any byte is
    // decrypted and before anything happens to the target
    let now = chrono::Utc::now();
    let provenance = match found.as_mut() {
        Some(c) => {
            c.check_provenance(&opts.trust, now)?;
            None
        }
        None => opts.archive.check_provenance(&opts.trust, now)?,
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
    let mut guard = None;
    let (format, stream) = if let Some(c) = found {
        (c.check_keyless(false)?.0, chain::Source::Chain(c))
    } else if is_dir {
        events.warn(format!(
            "{} is an unencrypted legacy backup directory",
            label.display()
        ));
        let s = directory_stream(&label)?;
        (crate::crypto::Format::Gzip, chain::Source::One(s))
    } else {
        // the keyless structure check `verify` makes first (age payload
        // length, OpenPGP packet sequence): a truncated file or trailing data
        // after the ciphertext is an integrity failure, as with `verify -i`
        opts.archive.inspect()?;
        let (f, s, g) = opts.archive.open_tar_stream_shown(
            &opts.identities,
            provenance.as_ref(),
            events.progress(0, "restore"),
        )?;
        guard = g;
        (f, chain::Source::One(s))
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
    if let chain::Source::Chain(c) = &stream {
        checked.push(c.checked());
    }
    let ctx = Context {
        guard,
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
    /// The signature check of the bytes read (one archive, signers configured).
    guard: Option<crate::sign::StreamGuard>,
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
    stream: chain::Source<'_>,
    events: &dyn Events,
) -> Result<PreparedRestore> {
    let Context {
        guard,
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
    let selection = select::Selection::new(&opts.include)?;
    let mut sink = staging_dir.map(StagingSink::new).transpose()?;
    let chain = stream.report();
    let mut outcome: Outcome = match (&mut sink, staging_dir) {
        (Some(k), Some(s)) => {
            // keep 64 MiB of headroom on the filesystem
            limits.max_total_bytes = free_bytes(s).saturating_sub(64 << 20);
            // --include: only the selection is staged, every entry still read
            let mut filtered;
            let k: &mut dyn Sink = match &selection {
                Some(sel) => {
                    filtered = select::Filtered::new(k, sel);
                    &mut filtered
                }
                None => k,
            };
            stream.extract(k, &limits, &opts.identities, events)?
        }
        _ => stream.extract(
            &mut Discard as &mut dyn Sink,
            &limits,
            &opts.identities,
            events,
        )?,
    };
    lap("decrypt+extract", &mut phases);
    // the signature over exactly the bytes read, bound to the name
    if let Some(g) = guard {
        let p = g.finish()?;
        crate::sign::gate::bind(&opts.archive.label(), &p, outcome.manifest.as_ref())?;
    }
    if opts.trust.is_checked() {
        checked.push(
            "the signature by a trusted signer over every byte, and the signed host, type and time against the name, before decrypting".to_owned(),
        );
    }
    let mut warnings = Vec::new();
    let legacy = outcome.manifest.is_none();
    match &outcome.manifest {
        Some(m) => {
            extract::check_manifest(&outcome, m)?;
            if let ArchiveRef::Local(p) = &opts.archive {
                crate::keymatch::check_meta(p, &m.recipients)?;
            }
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
    let mut replaced: Vec<RelPath> = new_units.intersection(&cur_units).cloned().collect();
    let mut added: Vec<RelPath> = new_units.difference(&cur_units).cloned().collect();
    let mut kept: Vec<RelPath> = cur_units
        .difference(&new_units)
        .filter(|u| {
            // a kept agent child whose agent the archive replaces wholesale is dropped
            !(u.as_bytes().starts_with(b"agents/") && new_units.contains(b"agents".as_slice()))
        })
        .cloned()
        .collect();
    // --include: the selected roots are replaced or added, the rest carried
    let picked = match &selection {
        Some(sel) => Some(select::pick(sel, &outcome, &opts.archive.label())?),
        None => None,
    };
    if let Some(p) = &picked {
        for u in &p.unmatched {
            let w = format!("--include {u:?} matches nothing in the archive");
            events.warn(&w);
            warnings.push(w);
        }
        outcome.dir_mtimes = p.dir_mtimes(&outcome, target);
        (replaced, added) = p.replaced_added(target);
        kept = p.carry_list(target)?;
    }
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
    let changes = if opts.dry_run || picked.is_some() {
        let carried_paths = match &outcome.manifest {
            Some(m) => select_skipped(target, staging_dir, m, &outcome).1,
            None => vec![],
        };
        let restored = |b: &[u8]| picked.as_ref().is_none_or(|p| p.selected.contains(b));
        Some(select::file_changes(
            target,
            &outcome,
            &restored,
            &kept,
            &carried_paths,
        )?)
    } else {
        None
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
        chain,
        include: selection
            .as_ref()
            .map(|s| s.patterns().to_vec())
            .unwrap_or_default(),
        changes,
    };
    Ok(PreparedRestore {
        plan,
        sink,
        staging,
        outcome,
        kept,
        snapshot_to: opts.snapshot_to.clone(),
        snapshot_sign: opts.sign.clone(),
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
                sign: p.snapshot_sign.clone(),
            },
            events,
        )
        .map_err(|e| e.context("saving the pre-restore snapshot (nothing was restored)"))?;
        events.info(format!("snapshot: {}", snap.archive.display()));
        report.snapshot = Some(snap);
    }
    lap("snapshot", &mut p.phases, &mut p.mark);
    crate::process::check_interrupted()?;
    // what comes from the current tree, not from the archive (validated as such)
    let mut carried_over: Vec<PathBuf> = Vec::new();
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
            carried_over = carry;
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
    let mut kept: Vec<&Path> = p.kept.iter().map(RelPath::as_path).collect();
    kept.extend(carried_over.iter().map(PathBuf::as_path));
    // --include into an empty target is an extract of the selection, not a
    // data directory: not validated as one
    let extract = !report.plan.include.is_empty() && p.kept.is_empty();
    let validation = match extract {
        true => None,
        false => Some(crate::validate::validate_restored(target, &kept)?),
    };
    lap("validate", &mut p.phases, &mut p.mark);
    report.phases = std::mem::take(&mut p.phases);
    if let Some(v) = &validation {
        report.next_steps = next_steps(target, &report, v);
    }
    report.validation = validation;
    report.seconds = p.started.elapsed().as_secs_f64();
    if let Some(g) = &mut p.staging {
        g.done = true;
    }
    Ok(report)
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
pub(crate) mod tests {
    use super::*;
    use crate::events::{Collect, Silent};

    /// The example age key: its encryptor and its identities.
    pub(crate) fn example_age() -> (Arc<dyn Encryptor>, Identities) {
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-example");
        let recipient = fs::read_to_string(keys.join("age-example.pub")).unwrap();
        let enc = crate::crypto::parse_recipients(&[recipient.trim().to_owned()], None).unwrap();
        // an owner-only copy: the example file's mode would earn a warning
        let private = tempfile::tempdir().unwrap();
        let key = private.path().join("age.key");
        fs::write(&key, fs::read(keys.join("age-example.key")).unwrap()).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ids = Identities::load(
            &[key],
            crate::crypto::PassphraseSource::from_flag_or_env(None),
        )
        .unwrap();
        (Arc::from(enc), ids)
    }

    /// A weekly backup of `src` into `dest` (encrypted unless `enc` is None).
    pub(crate) fn backup_of(src: &Path, dest: &Path, enc: Option<Arc<dyn Encryptor>>) -> PathBuf {
        let opts = BackupOptions {
            btype: BackupType::Weekly,
            source: src.to_owned(),
            dest: dest.to_owned(),
            excludes: vec![],
            level: 1,
            threads: 1,
            encryptor: enc,
            prune: None,
            sign: None,
        };
        backup::run_backup(&opts, &Silent).unwrap().archive
    }

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn the_dry_run_plan_is_what_the_real_run_applies() {
        let t = tempfile::tempdir().unwrap();
        let (src, target, dest) = (
            t.path().join("src"),
            t.path().join("data"),
            t.path().join("b"),
        );
        write(&src.join("secureclaw.json"), "{\"new\": true}\n");
        write(&src.join("credentials/oauth.json"), "{}\n");
        write(&target.join("secureclaw.json"), "{\"old\": true}\n");
        write(&target.join("notes.txt"), "mine\n");
        let (enc, ids) = example_age();
        let archive = backup_of(&src, &dest, Some(enc.clone()));
        let mut opts = RestoreOptions {
            archive: ArchiveRef::Local(archive),
            target: target.clone(),
            dest: dest.clone(),
            dry_run: true,
            snapshot_to: None,
            no_snapshot: false,
            stop_gateway: false,
            identities: ids,
            trust: Default::default(),
            sign: None,
            include: vec![],
        };

        let prepared = plan_restore(&opts, &Silent).unwrap();
        let plan = prepared.plan.clone();
        assert_eq!(plan.format, "age");
        assert!(!plan.legacy);
        assert_eq!(plan.replaced, vec!["secureclaw.json"]);
        assert_eq!(plan.added, vec!["credentials"]);
        assert_eq!(plan.kept, vec!["notes.txt"]);
        assert_eq!(plan.checked.len(), 4, "{:?}", plan.checked);
        assert!(plan.checked[3].contains("manifest"), "{:?}", plan.checked);
        assert!(
            matches!(&plan.pre_restore_snapshot, SnapshotPlan::Save { dest: d, .. } if *d == dest)
        );
        assert_eq!(plan.gateway.action, GatewayAction::Refuse);
        // a dry run's plan has nothing staged: applying it is refused
        let e = apply_restore(prepared, &Silent).unwrap_err();
        assert!(e.message.contains("dry-run"), "{}", e.message);
        assert!(!target.join("credentials").exists());
        let json = serde_json::to_value(run_restore(&opts, &Silent).unwrap()).unwrap();
        assert_eq!(json["dry_run"], true);
        assert_eq!(json["kept"], serde_json::json!(["notes.txt"]));
        assert_eq!(json["pre_restore_snapshot"]["kind"], "save");
        assert_eq!(json["gateway"]["action"], "refuse");

        opts.dry_run = false;
        opts.snapshot_to = Some(enc);
        let events = Collect::default();
        let r = run_restore(&opts, &events).unwrap();
        assert_eq!(r.plan.replaced, plan.replaced);
        assert_eq!(r.plan.added, plan.added);
        assert_eq!(r.plan.kept, plan.kept);
        assert!(r.snapshot.is_some());
        assert_eq!(
            fs::read_to_string(target.join("notes.txt")).unwrap(),
            "mine\n"
        );
        assert_eq!(
            fs::read_to_string(target.join("secureclaw.json")).unwrap(),
            "{\"new\": true}\n"
        );
        assert!(target.join("credentials/oauth.json").is_file());
        let said: Vec<String> = events.messages().into_iter().map(|(_, m)| m).collect();
        assert!(
            said.iter()
                .any(|m| m.starts_with("saving an encrypted snapshot")),
            "{said:?}"
        );
    }

    #[test]
    fn no_snapshot_and_an_empty_target_are_planned_as_such() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("src"), t.path().join("b"));
        write(&src.join("secureclaw.json"), "{}\n");
        let (enc, ids) = example_age();
        let archive = backup_of(&src, &dest, Some(enc));
        let mut opts = RestoreOptions {
            archive: ArchiveRef::Local(archive),
            target: t.path().join("empty"),
            dest,
            dry_run: true,
            snapshot_to: None,
            no_snapshot: false,
            stop_gateway: true,
            identities: ids,
            trust: Default::default(),
            sign: None,
            include: vec![],
        };
        let plan = plan_restore(&opts, &Silent).unwrap().plan;
        assert!(matches!(
            plan.pre_restore_snapshot,
            SnapshotPlan::NothingToSave
        ));
        assert_eq!(plan.gateway.action, GatewayAction::Stop);
        opts.no_snapshot = true;
        let plan = plan_restore(&opts, &Silent).unwrap().plan;
        assert!(matches!(plan.pre_restore_snapshot, SnapshotPlan::Skipped));
    }
}
