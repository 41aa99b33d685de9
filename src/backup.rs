//! The backup engine (README "Archive format"): walk → tar → parallel gzip → encryptor →
//! owner-only temp file in the destination → finish every layer → fsync →
//! keyless verification of what is on disk → no-replace rename → fsync the
//! directory → `.sha256` sidecar → `.sig` signature (`--sign-key`, hashed
//! while the ciphertext streams, see [`crate::sign`]) → `.meta` description
//! (see [`crate::meta`]).
//! On any error the temp file is removed; no file with an archive name exists
//! until the archive has been verified. Plaintext only ever exists in memory.
//!
//! Full archives and the archives of an incremental chain (README
//! "Incremental backups"; [`crate::incremental`] writes their tar stream) go
//! through the same pipeline; for a chain, the state file is replaced only
//! after the archive and its companions are committed.

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
    /// Signs the archive while it streams to disk (`--sign-key`): the
    /// `.sig` is written beside it once it is committed (README "Signed
    /// archives"). Every archive of this pipeline, full or link, is signed.
    pub sign: Option<crate::sign::SigningKey>,
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
    /// The `.meta` description written beside the archive.
    pub meta: PathBuf,
    /// The chain id (`backup --incremental`; `None` for a plain full).
    pub chain: Option<String>,
    /// The archive's level in its chain (0: the chain's full).
    pub level: Option<u32>,
    /// The predecessor's archive file name (a link only).
    pub previous: Option<String>,
    /// Why this incremental run started a new chain.
    pub new_chain_reason: Option<String>,
    /// Files stored in this archive (a link: those that changed).
    pub stored: u64,
    /// Files a link records as unchanged (stored by an earlier link).
    pub unchanged: u64,
    /// Bytes of file data stored in this archive.
    pub stored_bytes: u64,
    /// `<archive>.sig` (`--sign-key`).
    pub signature: Option<PathBuf>,
    /// The signing key's fingerprint.
    pub signer: Option<String>,
}

/// Counts and hashes the ciphertext on its way to the file.
struct HashingFile {
    file: File,
    state: Arc<Mutex<(Sha256, u64)>>,
    writeback: store::Writeback,
    /// The signature's hasher (`--sign-key`): the same bytes, no second read.
    signing: Arc<Mutex<Option<crate::sign::SignHasher>>>,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.writeback.advance(&self.file, n as u64);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.update(&buf[..n]);
        st.1 += n as u64;
        if let Some(h) = self
            .signing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            h.update(&buf[..n]);
        }
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
    run_backup_chain(opts, live, None, events)
}

/// `backup --incremental`: how chains are made.
#[derive(Debug, Clone, Default)]
pub struct IncrementalOptions {
    /// `--reread`: hash the files the state calls unchanged.
    pub reread: bool,
    /// `--full-every`, `--max-links`, `--max-chain-size`.
    pub policy: crate::incremental::ChainPolicy,
}

impl BackupReport {
    /// The warnings that are not notes (what `--strict` counts).
    pub fn serious(&self) -> usize {
        self.warnings.iter().filter(|w| !w.is_note()).count()
    }

    /// `--strict` with serious warnings: exit 1 although the archive was
    /// written; `None` when there are none.
    pub fn strict_failure(&self) -> Option<Error> {
        let serious = self.serious();
        (serious > 0).then(|| {
            Error::operational(format!(
                "--strict: the backup has {serious} warning(s) (the archive was written and is valid)"
            ))
            .hint("run again later, or drop --strict to accept warnings")
        })
    }
}

/// What the pipeline writes between the top directory and the manifest.
enum Content<'a> {
    /// A plain full (manifest version 2).
    Full,
    /// An archive of an incremental chain, as decided under the state lock.
    Chain(&'a crate::incremental::Prepared),
}

/// What [`write_archive`] wrote.
struct Written {
    /// Over the archive's bytes (`--sign-key`).
    signature: Option<crate::sign::ArchiveSignature>,
    hash: String,
    size: u64,
    manifest: Manifest,
    chain: Option<crate::manifest::Chain>,
    /// The state to commit (a chain archive only).
    state: Option<crate::incremental::NewState>,
    stored: u64,
    unchanged: u64,
    stored_bytes: u64,
}

/// [`run_backup_live`], and with `incremental` the next archive of the
/// chain (a link, or a full that starts a new chain and says why).
pub fn run_backup_chain(
    opts: &BackupOptions,
    live: &LiveOptions,
    incremental: Option<&IncrementalOptions>,
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
    // the state file is locked from its reading to its replacement
    let prepared = match incremental {
        Some(inc) => Some(crate::incremental::prepare(
            opts.btype,
            &opts.source,
            &opts.dest,
            &inc.policy,
            inc.reread,
            now,
            events,
        )?),
        None => None,
    };
    let content = match &prepared {
        Some(p) => Content::Chain(p),
        None => Content::Full,
    };
    let temp = store::temp_name(&opts.dest, "archive");
    crate::capture::sweep_stale_staging(events);
    let result = write_archive(opts, live, &stem, now, &temp, content, events);
    let written = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let hash = written.hash.clone();
    let (size, manifest) = (written.size, &written.manifest);
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
    // the signature, before success is reported (full archives and links alike)
    let signature = match &written.signature {
        Some(sig) => Some(crate::sign::write_sig(&final_path, sig).map_err(|e| {
            e.context(format!(
                "the archive {} was written, but its signature (.sig) was not",
                final_path.display()
            ))
        })?),
        None => None,
    };
    // the companions after the sidecar (README "Incremental backups"): the
    // description, then, for a chain, the state that names this archive
    let final_name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = describe(opts, &final_name, manifest, format, written.chain.clone());
    let meta_path = crate::meta::write_beside(&final_path, &meta).map_err(|e| {
        e.context(format!(
            "the archive {final_name} was written, but its description (.meta) was not"
        ))
    })?;
    if let (Some(p), Some(st)) = (&prepared, written.state) {
        crate::incremental::commit_state(p, st, &final_name).map_err(|e| {
            e.context(format!(
                "the archive {final_name} was written, but the incremental state was not \
                 saved (the next run starts a new chain)"
            ))
        })?;
    }
    let new_chain_reason = prepared
        .as_ref()
        .and_then(|p| p.new_chain())
        .map(|r| r.to_string());
    drop(prepared);
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
        warnings: manifest.warnings.clone(),
        pruned,
        seconds: started.elapsed().as_secs_f64(),
        meta: meta_path,
        level: written.chain.as_ref().map(|c| c.level),
        previous: written.chain.as_ref().and_then(|c| c.previous.clone()),
        chain: written.chain.map(|c| c.id),
        new_chain_reason,
        stored: written.stored,
        unchanged: written.unchanged,
        stored_bytes: written.stored_bytes,
        signer: written.signature.as_ref().map(|s| s.fingerprint.clone()),
        signature,
    })
}

/// The keyless description of the archive just committed as `name`.
fn describe(
    opts: &BackupOptions,
    name: &str,
    manifest: &Manifest,
    format: Format,
    chain: Option<crate::manifest::Chain>,
) -> crate::meta::Meta {
    let mut m = crate::meta::Meta::new(
        name,
        opts.btype.as_str(),
        &manifest.timestamp,
        &manifest.host,
        format.family(),
    );
    m.recipients = opts
        .encryptor
        .as_ref()
        .map(|e| e.meta_recipients())
        .unwrap_or_default();
    m.chain = chain;
    m
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
/// Returns the SHA-256 of the file, its size, the manifest and, for a chain
/// archive, its place and the state to commit.
fn write_archive(
    opts: &BackupOptions,
    live: &LiveOptions,
    stem: &str,
    now: chrono::DateTime<Utc>,
    temp: &Path,
    content: Content<'_>,
    events: &dyn Events,
) -> Result<Written> {
    let file = store::create_private(temp)?;
    let sync_handle = file.try_clone().at("opening", temp)?;
    let state = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let signing = Arc::new(Mutex::new(
        opts.sign.as_ref().map(|k| k.hasher()).transpose()?,
    ));
    let sink = BufWriter::with_capacity(
        256 * 1024,
        HashingFile {
            file,
            state: state.clone(),
            writeback: store::Writeback::default(),
            signing: signing.clone(),
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
    let (gz, manifest, link) = match content {
        Content::Full => {
            let (gz, m) = write_full(gz, opts, live, stem, now, events)?;
            (gz, m, None)
        }
        Content::Chain(p) => {
            let dest_abs = crate::paths::absolute(&opts.dest);
            let sel = Selection::new(opts.btype, &opts.excludes, Some(dest_abs))?;
            let lo = crate::incremental::LinkOptions {
                btype: opts.btype,
                source: opts.source.clone(),
                stem: stem.to_owned(),
                now,
                host: hostname(),
                recipients: opts
                    .encryptor
                    .as_ref()
                    .map(|e| e.describe())
                    .unwrap_or_default(),
                reread: p.reread,
                live: live.clone(),
            };
            let out =
                crate::incremental::write_link(gz, &lo, &sel, &p.plan, p.prev.as_ref(), events)?;
            let rest = (
                out.manifest.chain,
                out.state,
                out.stored,
                out.unchanged,
                out.stored_bytes,
            );
            (out.out, out.manifest.manifest, Some(rest))
        }
    };
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
    let files = manifest
        .entries
        .iter()
        .filter(|e| e.kind == crate::manifest::EntryKind::File)
        .count() as u64;
    let bytes = manifest.entries.iter().map(|e| e.size).sum();
    let (chain, state, stored, unchanged, stored_bytes) = match link {
        Some((c, st, s, u, b)) => (Some(c), Some(st), s, u, b),
        None => (None, None, files, 0, bytes),
    };
    // the signature over exactly the bytes written (and verified above)
    let signature = match signing.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(h) if h.bytes() == size => Some(h.finish()?),
        Some(h) => {
            return Err(Error::integrity(format!(
                "the signature covers {} bytes but the archive has {size}",
                h.bytes()
            )))
        }
        None => None,
    };
    Ok(Written {
        signature,
        hash: hex::encode(hasher.finalize()),
        size,
        manifest,
        chain,
        state,
        stored,
        unchanged,
        stored_bytes,
    })
}

/// The tar stream of a plain full (manifest version 2) into `gz`.
fn write_full<W: Write>(
    gz: W,
    opts: &BackupOptions,
    live: &LiveOptions,
    stem: &str,
    now: chrono::DateTime<Utc>,
    events: &dyn Events,
) -> Result<(W, Manifest)> {
    let dest_abs = crate::paths::absolute(&opts.dest);
    let sel = Selection::new(opts.btype, &opts.excludes, Some(dest_abs))?;
    // bytes of the tar stream, moved as they are written; on a terminal the
    // total comes from a walk of the sizes first
    let pb: Arc<dyn crate::events::Progress> = Arc::from(events.progress(0, "backup"));
    if events.shows_progress() {
        pb.set_total(tar_size(&opts.source, &sel)?);
    }
    let mut aw = ArchiveWriter::new(crate::events::Counting::new(gz, pb.clone()), stem);
    let mtime = now.timestamp();
    aw.add_top(mtime)?;
    let mut walk_warnings: Vec<Warning> = Vec::new();
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
            Item::File { rel, path, .. } => capturer.archive_file(&mut aw, rel, path),
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
    let gz = aw.finish(&manifest, mtime)?.into_inner();
    Ok((gz, manifest))
}

/// About the bytes of the tar stream of what `sel` takes from `source`
/// (a header per entry, file data padded to 512 bytes): the total of the
/// backup's progress, from a walk of the sizes (nothing is read).
fn tar_size(source: &Path, sel: &Selection) -> Result<u64> {
    let mut total = 1024u64;
    source::walk(source, sel, &mut Vec::new(), &mut |item| {
        total += 512;
        if let Item::File { meta, .. } = item {
            total += meta.len().div_ceil(512) * 512;
        }
        Ok(())
    })?;
    Ok(total)
}
