//! Key rotation (plan, then apply). The dry run proves, with a full
//! authenticated decrypt of every archive, which ones the given identities
//! open, and writes nothing. The real run streams each archive decrypt →
//! re-encrypt to the new recipients into an owner-only temp file (no plaintext
//! byte on disk), verifies it (structure and checksum), and replaces the old
//! one atomically; a journal per archive makes an interrupted run resumable:
//! every archive is old or new, and re-running finishes the job.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::archive::extract::stream_error;
use crate::archive::pipeline;
use crate::crypto::{Encryptor, Identities};
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::store::{self, ArchiveName, Container};

pub struct RotateOptions {
    pub dest: PathBuf,
    pub identities: Identities,
    pub new: Arc<dyn Encryptor>,
    pub dry_run: bool,
    pub keep_old: bool,
}

/// The verdict on one archive.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveRotation {
    pub archive: String,
    pub format: String,
    pub size: u64,
    /// Recipients knowable without a key (age stanza types, OpenPGP key ids).
    pub recipients: Vec<String>,
    pub opens: bool,
    pub error: Option<String>,
    /// The name it has (or would have) after rotation.
    pub new_name: String,
    pub rotated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    pub dry_run: bool,
    pub new_recipients: Vec<String>,
    pub archives: Vec<ArchiveRotation>,
    pub opened: usize,
    pub not_opened: Vec<String>,
    pub skipped_plaintext: Vec<String>,
    pub recovered: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    old: String,
    new: String,
    sha256: String,
}

fn journal_path(dest: &Path, old: &str) -> PathBuf {
    dest.join(format!(".secureclaw-backup.rotate.{old}.json"))
}

/// Finishes rotations that a killed run left between rename and sidecar.
fn recover(dest: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let Ok(rd) = fs::read_dir(dest) else {
        return Ok(done);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(".secureclaw-backup.rotate.") && name.ends_with(".json")) {
            continue;
        }
        let j: Option<Journal> = fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(j) = j {
            let new_path = dest.join(&j.new);
            if new_path.exists() && store::sha256_file(&new_path)? == j.sha256 {
                store::write_sidecar(&new_path, &j.sha256)?;
                if j.old != j.new {
                    let old = dest.join(&j.old);
                    let _ = fs::remove_file(store::sidecar_path(&old));
                    let _ = fs::remove_file(&old);
                }
                done.push(format!("finished the interrupted rotation of {}", j.old));
            } else {
                done.push(format!(
                    "{} was not yet replaced; it is rotated again",
                    j.old
                ));
            }
        }
        fs::remove_file(e.path()).at("removing", &e.path())?;
    }
    store::fsync_dir(dest)?;
    Ok(done)
}

fn new_name(a: &ArchiveName, new: &dyn Encryptor) -> String {
    format!("{}{}", a.stem(), new.format().suffix())
}

/// Runs the dry run or the rotation.
pub fn run_rotate(opts: &RotateOptions, events: &dyn Events) -> Result<RotateReport> {
    let _lock = crate::lock::lock_dir(&opts.dest, "backup destination")?;
    let recovered = if opts.dry_run {
        vec![]
    } else {
        recover(&opts.dest)?
    };
    for r in &recovered {
        events.warn(r);
    }
    if !opts.dry_run {
        for stale in store::remove_stale_temps(&opts.dest) {
            events.warn(format!("removed {stale}, left by an interrupted run"));
        }
    }
    let mut report = RotateReport {
        dry_run: opts.dry_run,
        new_recipients: opts.new.describe(),
        archives: vec![],
        opened: 0,
        not_opened: vec![],
        skipped_plaintext: vec![],
        recovered,
    };
    let all = store::list_archives(&opts.dest)?;
    if all.is_empty() {
        return Err(
            Error::operational(format!("no archives in {}", opts.dest.display()))
                .hint("pass --dest with the directory that holds the archives"),
        );
    }
    for a in all {
        if !matches!(a.container, Container::Age | Container::OpenPgp) {
            report.skipped_plaintext.push(a.name.clone());
            continue;
        }
        let path = opts.dest.join(&a.name);
        let info = crate::crypto::inspect(&path);
        let mut entry = ArchiveRotation {
            archive: a.name.clone(),
            format: info
                .as_ref()
                .map(|i| i.format.family().to_owned())
                .unwrap_or_else(|_| "damaged".into()),
            size: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            recipients: info.map(|i| i.recipients).unwrap_or_default(),
            opens: false,
            error: None,
            new_name: new_name(&a, opts.new.as_ref()),
            rotated: false,
        };
        events.info(format!("{}: checking…", a.name));
        let res = if opts.dry_run {
            crate::verify::verify_full(
                &crate::tier::ArchiveRef::Local(path.clone()),
                &opts.identities,
            )
            .map(|_| ())
        } else {
            rotate_one(opts, &a, &path, &entry.new_name)
        };
        match res {
            Ok(()) => {
                entry.opens = true;
                entry.rotated = !opts.dry_run;
                report.opened += 1;
            }
            Err(e) => {
                events.warn(format!("{}: {}", a.name, e.message));
                entry.error = Some(e.message.clone());
                report.not_opened.push(a.name.clone());
            }
        }
        report.archives.push(entry);
    }
    Ok(report)
}

/// Re-encrypts one archive; the old one stays until the new one is verified.
fn rotate_one(opts: &RotateOptions, a: &ArchiveName, path: &Path, new_name: &str) -> Result<()> {
    crate::process::check_interrupted()?;
    let (_format, mut plain) = pipeline::open_payload(path, &opts.identities)?;
    let temp = store::temp_name(&opts.dest, "rotate");
    let res = (|| -> Result<String> {
        let file = store::create_private(&temp)?;
        let sync = file.try_clone().at("opening", &temp)?;
        let mut enc = opts
            .new
            .wrap_output(Box::new(io::BufWriter::with_capacity(1 << 20, file)))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            crate::process::check_interrupted()?;
            let n = match plain.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(e).context(format!("decrypting {}", a.name))),
            };
            enc.write_all(&buf[..n]).at("writing", &temp)?;
        }
        enc.finish().at("writing", &temp)?;
        sync.sync_all().at("syncing", &temp)?;
        opts.new.verify_written(&temp)?;
        store::sha256_file(&temp)
    })();
    let sha = match res {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
    };
    let jpath = journal_path(&opts.dest, &a.name);
    {
        let mut f = store::create_private(&jpath)?;
        let j = Journal {
            old: a.name.clone(),
            new: new_name.to_owned(),
            sha256: sha.clone(),
        };
        f.write_all(&serde_json::to_vec(&j).unwrap_or_default())
            .at("writing", &jpath)?;
        f.sync_all().at("syncing", &jpath)?;
    }
    if opts.keep_old {
        let keep = opts.dest.join(format!("{}.pre-rotate", a.name));
        let _ = fs::remove_file(&keep);
        fs::hard_link(path, &keep).at("keeping the old archive as", &keep)?;
    }
    let final_path = opts.dest.join(new_name);
    let renamed = if new_name == a.name {
        fs::rename(&temp, &final_path)
    } else {
        store::rename_noreplace(&temp, &final_path)
    };
    if let Err(e) = renamed {
        let _ = fs::remove_file(&temp);
        let _ = fs::remove_file(&jpath);
        return Err(Error::io("replacing", &final_path, e));
    }
    store::fsync_dir(&opts.dest)?;
    store::write_sidecar(&final_path, &sha)?;
    if new_name != a.name {
        let _ = fs::remove_file(store::sidecar_path(path));
        fs::remove_file(path).at("removing the old archive", path)?;
    }
    fs::remove_file(&jpath).at("removing", &jpath)?;
    store::fsync_dir(&opts.dest)?;
    Ok(())
}
