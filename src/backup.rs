//! The backup engine (README "Archive format"): walk → tar → parallel gzip → encryptor →
//! owner-only temp file in the destination → finish every layer → fsync →
//! keyless verification of what is on disk → no-replace rename → fsync the
//! directory → `.sha256` sidecar. On any error the temp file is removed; no
//! file with an archive name exists until the archive has been verified.
//! Plaintext only ever exists in memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::archive::writer::ArchiveWriter;
use crate::capture::{Capturer, LiveOptions};
use crate::crypto::{EncryptWriter, Encryptor, Format};
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::manifest::{Manifest, Warning, FORMAT, VERSION};
use crate::pgzip::ParGzWriter;
use crate::source::{self, Item, Selection};
use crate::store::{self, BackupType};

/// Default gzip level: see the README's performance section for the measurements.
pub const DEFAULT_LEVEL: u32 = 3;

/// What to back up, where, and to whom.
pub struct BackupOptions {
    pub btype: BackupType,
    pub source: PathBuf,
    pub dest: PathBuf,
    pub excludes: Vec<String>,
    pub level: u32,
    pub threads: usize,
    /// `None` writes an unencrypted `.tar.gz` (`--insecure-plaintext`).
    pub encryptor: Option<Arc<dyn Encryptor>>,
    /// Retention applied to this backup's type after it succeeded (`None`: `--no-prune`).
    pub prune: Option<crate::retention::Retention>,
}

/// The result of a backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    pub archive: PathBuf,
    pub sidecar: PathBuf,
    pub format: &'static str,
    pub backup_type: BackupType,
    pub size: u64,
    pub files: u64,
    pub directories: u64,
    pub bytes: u64,
    pub sha256: String,
    pub recipients: Vec<String>,
    pub warnings: Vec<Warning>,
    /// Archives of this type removed by retention afterwards.
    pub pruned: Vec<String>,
    pub seconds: f64,
}

/// Counts and hashes the ciphertext on its way to the file.
struct HashingFile {
    file: File,
    state: Arc<Mutex<(Sha256, u64)>>,
    writeback: store::Writeback,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.writeback.advance(&self.file, n as u64);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.update(&buf[..n]);
        st.1 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The `--insecure-plaintext` "encryption" layer.
struct PlainWriter(Box<dyn Write + Send>);

impl Write for PlainWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl EncryptWriter for PlainWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Makes one archive. The caller holds the source lock; this takes the
/// destination's.
pub fn run_backup(opts: &BackupOptions, events: &dyn Events) -> Result<BackupReport> {
    run_backup_live(opts, &LiveOptions::default(), events)
}

/// [`run_backup`] with explicit live-capture options (`--lock-wait`).
pub fn run_backup_live(
    opts: &BackupOptions,
    live: &LiveOptions,
    events: &dyn Events,
) -> Result<BackupReport> {
    let started = Instant::now();
    store::ensure_private_dir(&opts.dest)?;
    let _lock = crate::lock::lock_dir(&opts.dest, "backup destination")?;
    for stale in store::remove_stale_temps(&opts.dest) {
        events.warn(format!("removed {stale}, left by an interrupted run"));
    }
    let format = opts
        .encryptor
        .as_ref()
        .map(|e| e.format())
        .unwrap_or(Format::Gzip);
    let now = Utc::now();
    let mut seq = 0;
    while store::list_archives(&opts.dest)?
        .iter()
        .any(|a| a.btype == opts.btype && a.time == trunc(now) && a.seq == seq)
    {
        seq += 1;
    }
    let stem = store::stem(opts.btype, now, seq);
    let temp = store::temp_name(&opts.dest, "archive");
    crate::capture::sweep_stale_staging(events);
    let result = write_archive(opts, live, &stem, now, &temp, events);
    let (hash, size, manifest) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    // rename into place without replacing anything
    let final_path = loop {
        let name = format!("{}{}", store::stem(opts.btype, now, seq), format.suffix());
        let candidate = opts.dest.join(&name);
        match store::rename_noreplace(&temp, &candidate) {
            Ok(()) => break candidate,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && seq < 1000 => seq += 1,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(Error::io(
                    "renaming the archive into place as",
                    &candidate,
                    e,
                ));
            }
        }
    };
    store::fsync_dir(&opts.dest)?;
    let sidecar = store::write_sidecar(&final_path, &hash)?;
    let mut pruned = Vec::new();
    if let Some(policy) = &opts.prune {
        // still under the destination lock
        let decisions =
            crate::prune::prune_type(&opts.dest, opts.btype, policy, now, false, &mut |p| {
                events.detail(format!("removed {}", p.display()))
            })
            .map_err(|e| e.context("the backup succeeded, but pruning old archives failed"))?;
        for line in crate::prune::dropped_lines(&decisions, false) {
            events.info(line);
        }
        pruned = decisions
            .into_iter()
            .filter(|d| !d.keep)
            .map(|d| d.stem)
            .collect();
    }
    let files = manifest
        .entries
        .iter()
        .filter(|e| e.kind == crate::manifest::EntryKind::File)
        .count() as u64;
    Ok(BackupReport {
        archive: final_path,
        sidecar,
        format: format.family(),
        backup_type: opts.btype,
        size,
        files,
        directories: manifest.entries.len() as u64 - files,
        bytes: manifest.entries.iter().map(|e| e.size).sum(),
        sha256: hash,
        recipients: manifest.recipients.clone(),
        warnings: manifest.warnings,
        pruned,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Who a new archive is encrypted to: the recipients `recipients()`
/// resolves, or nobody with `--insecure-plaintext` (which contradicts `-r`,
/// and says what it means). No recipient at all is refused: an archive is
/// never unencrypted by default (SECURITY.md).
pub fn archive_encryptor(
    recipients_given: bool,
    insecure_plaintext: bool,
    recipients: impl FnOnce() -> Result<Option<Arc<dyn Encryptor>>>,
    events: &dyn Events,
) -> Result<Option<Arc<dyn Encryptor>>> {
    if insecure_plaintext {
        if recipients_given {
            return Err(
                Error::usage("--insecure-plaintext and -r contradict each other")
                    .hint("drop --insecure-plaintext to encrypt"),
            );
        }
        events.warn("--insecure-plaintext: this archive will NOT be encrypted; anyone who can read it reads every credential");
        return Ok(None);
    }
    match recipients()? {
        Some(e) => Ok(Some(e)),
        None => Err(Error::key("no recipient given: refusing to write an unencrypted archive")
            .hint("pass -r RECIPIENT (age1…, ssh key, OpenPGP key id) or set SECURECLAW_BACKUP_KEY; see `secureclaw-backup keygen`")),
    }
}

/// The most compression threads used: 4 per core, and never more than 64
/// (each one holds about 1 MiB of buffers; more only costs memory).
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (4 * cores).clamp(1, 64)
}

/// The compression threads for `--threads` (default: one per core), clamped
/// to [1, [`max_threads`]] with a warning when clamped.
pub fn compression_threads(asked: Option<usize>, events: &dyn Events) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let max = max_threads();
    match asked {
        None => cores.min(max),
        Some(0) => {
            events.warn("--threads 0: using 1 compression thread");
            1
        }
        Some(n) if n > max => {
            events.warn(format!(
                "--threads {n}: using {max} compression threads (the most, 4 per core up to 64)"
            ));
            max
        }
        Some(n) => n,
    }
}

fn trunc(t: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    use chrono::Timelike;
    t.with_nanosecond(0).unwrap_or(t)
}

/// Streams the archive into `temp`, finishes, fsyncs and verifies it.
/// Returns (SHA-256 of the file, its size, the manifest).
fn write_archive(
    opts: &BackupOptions,
    live: &LiveOptions,
    stem: &str,
    now: chrono::DateTime<Utc>,
    temp: &Path,
    events: &dyn Events,
) -> Result<(String, u64, Manifest)> {
    let file = store::create_private(temp)?;
    let sync_handle = file.try_clone().at("opening", temp)?;
    let state = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let sink = BufWriter::with_capacity(
        256 * 1024,
        HashingFile {
            file,
            state: state.clone(),
            writeback: store::Writeback::default(),
        },
    );
    let enc: Box<dyn EncryptWriter> = match &opts.encryptor {
        Some(e) => e.wrap_output(Box::new(sink))?,
        None => Box::new(PlainWriter(Box::new(sink))),
    };
    let werr = |e: io::Error| {
        Error::io("writing the archive", temp, e)
            .hint("check free space and permissions of the destination, then run again")
    };
    let gz = ParGzWriter::new(enc, opts.level, opts.threads).map_err(werr)?;
    let mut aw = ArchiveWriter::new(gz, stem);
    let mtime = now.timestamp();
    aw.add_top(mtime)?;
    let dest_abs = crate::paths::absolute(&opts.dest);
    let sel = Selection::new(opts.btype, &opts.excludes, Some(dest_abs))?;
    let mut walk_warnings: Vec<Warning> = Vec::new();
    let pb = events.progress(0, "backup");
    // owns the plaintext staging: shredded on every way out of this function
    let mut capturer = Capturer::new(live.clone(), events);
    source::walk(&opts.source, &sel, &mut walk_warnings, &mut |item| {
        crate::process::check_interrupted()?;
        match item {
            Item::Dir { rel, meta } => {
                use std::os::unix::fs::MetadataExt;
                aw.add_dir(rel, meta.mode(), meta.mtime())
            }
            Item::Symlink { rel, target, meta } => {
                use std::os::unix::fs::MetadataExt;
                aw.add_symlink(rel, target, meta.mtime())
            }
            Item::File { rel, path, .. } => {
                capturer.archive_file(&mut aw, rel, path)?;
                pb.set_position(aw.bytes);
                Ok(())
            }
        }
    })?;
    pb.finish();
    capturer.finish()?;
    let mut warnings = walk_warnings;
    warnings.append(&mut aw.warnings);
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        backup_type: opts.btype.as_str().into(),
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        timestamp: now.format("%Y%m%d_%H%M%S").to_string(),
        host: hostname(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source: crate::paths::absolute(&opts.source).display().to_string(),
        recipients: opts
            .encryptor
            .as_ref()
            .map(|e| e.describe())
            .unwrap_or_default(),
        entries: std::mem::take(&mut aw.entries),
        warnings,
    };
    let gz = aw.finish(&manifest, mtime)?;
    let enc = gz.finish().map_err(werr)?;
    enc.finish().map_err(werr)?;
    sync_handle.sync_all().map_err(werr)?;
    drop(sync_handle);
    // verify what is on disk before giving it an archive name
    match &opts.encryptor {
        Some(e) => {
            e.verify_written(temp)
                .map_err(|e| e.context("verifying the written archive"))?;
        }
        None => {
            let head = crate::crypto::read_head(temp)?;
            if Format::detect(&head) != Some(Format::Gzip) {
                return Err(Error::integrity("the written archive is not a gzip stream"));
            }
        }
    }
    let (hasher, size) = {
        let st = state.lock().unwrap_or_else(|p| p.into_inner());
        (st.0.clone(), st.1)
    };
    let on_disk = std::fs::metadata(temp)
        .at("reading metadata of", temp)?
        .len();
    if on_disk != size {
        return Err(Error::integrity(format!(
            "the written archive has {on_disk} bytes on disk but {size} were written"
        )));
    }
    Ok((hex::encode(hasher.finalize()), size, manifest))
}
