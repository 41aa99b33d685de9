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
    /// Trusted signers (README "Signed archives"): with them, each archive's
    /// signature and binding are checked before it is decrypted, and the
    /// real run needs a signing key that is itself a trusted signer.
    pub trust: crate::sign::Trust,
    /// Signs each re-encrypted archive (the rotating operator's key); without
    /// it an old signature, which no longer matches, is removed.
    pub sign: Option<crate::sign::SigningKey>,
}

/// What a rotation will do with one archive (decided without a key).
#[derive(Debug, Clone, Serialize)]
pub struct ArchivePlan {
    pub archive: String,
    pub format: String,
    pub size: u64,
    /// Recipients knowable without a key (age stanza types, OpenPGP key ids):
    /// which identity can open it. The given identities are tried together,
    /// so which one of them did is not known.
    pub recipients: Vec<String>,
    /// The name it has (or would have) after rotation.
    pub new_name: String,
    pub step: Step,
}

/// The step a rotation takes for one archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Dry run: a full authenticated decrypt proves the identities open it;
    /// nothing is written.
    Prove,
    /// Decrypt → re-encrypt to the new recipients → verify → replace.
    Reencrypt,
    /// As `Reencrypt`, the old archive kept as `<name>.pre-rotate`.
    ReencryptKeepOld,
}

/// A rotation decided, before any archive is decrypted: rendered by the
/// dry run's report, executed by [`execute`].
#[derive(Debug, Clone, Serialize)]
pub struct RotatePlan {
    pub dry_run: bool,
    pub new_recipients: Vec<String>,
    /// The encrypted archives, oldest first.
    pub archives: Vec<ArchivePlan>,
    /// Unencrypted archives: nothing to rotate.
    pub skipped_plaintext: Vec<String>,
    /// Rotations a killed run left, finished first (real run only).
    pub recovered: Vec<String>,
}

/// The verdict on one archive: its plan (flattened in the JSON) and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveRotation {
    #[serde(flatten)]
    pub plan: ArchivePlan,
    pub opens: bool,
    pub error: Option<String>,
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
    /// Archives refused by the provenance gate (no valid signature by a
    /// trusted signer, or not bound to their name): not rotated.
    pub refused: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    old: String,
    new: String,
    sha256: String,
    /// The new archive's signature (`.sig` content), written with it.
    #[serde(default)]
    sig: Option<String>,
}

fn journal_path(dest: &Path, old: &str) -> PathBuf {
    dest.join(format!(".secureclaw-backup.rotate.{old}.json"))
}

/// Finishes rotations that a killed run left between rename and sidecar
/// (and the `.meta` description, which follows its archive).
fn recover(dest: &Path, new: &dyn Encryptor) -> Result<Vec<String>> {
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
                follow_sig(dest, &j.old, &j.new, j.sig.as_deref())?;
                follow_meta(dest, &j.old, &j.new, new)?;
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

/// Runs the dry run or the rotation: [`plan`], then [`execute`], under the
/// destination lock.
pub fn run_rotate(opts: &RotateOptions, events: &dyn Events) -> Result<RotateReport> {
    let _lock = crate::lock::lock_dir(&opts.dest, "backup destination")?;
    let plan = plan(opts, events)?;
    execute(&plan, opts, events)
}

/// Decides the rotation: finishes what a killed run left and removes its
/// temp files (real run only), lists the archives and reads each one's
/// header without a key. The caller holds the destination lock.
pub fn plan(opts: &RotateOptions, events: &dyn Events) -> Result<RotatePlan> {
    // with signers, the real run signs with a trusted key (or not at all)
    rotating_signer(opts, chrono::Utc::now())?;
    let recovered = if opts.dry_run {
        vec![]
    } else {
        recover(&opts.dest, opts.new.as_ref())?
    };
    for r in &recovered {
        events.warn(r);
    }
    if !opts.dry_run {
        for stale in store::remove_stale_temps(&opts.dest) {
            events.warn(format!("removed {stale}, left by an interrupted run"));
        }
    }
    let all = store::list_archives(&opts.dest)?;
    if all.is_empty() {
        return Err(
            Error::operational(format!("no archives in {}", opts.dest.display()))
                .hint("pass --dest with the directory that holds the archives"),
        );
    }
    let step = match (opts.dry_run, opts.keep_old) {
        (true, _) => Step::Prove,
        (false, false) => Step::Reencrypt,
        (false, true) => Step::ReencryptKeepOld,
    };
    let mut plan = RotatePlan {
        dry_run: opts.dry_run,
        new_recipients: opts.new.describe(),
        archives: vec![],
        skipped_plaintext: vec![],
        recovered,
    };
    for a in all {
        if !matches!(a.container, Container::Age | Container::OpenPgp) {
            plan.skipped_plaintext.push(a.name.clone());
            continue;
        }
        let path = opts.dest.join(&a.name);
        let info = crate::crypto::inspect(&path);
        plan.archives.push(ArchivePlan {
            archive: a.name.clone(),
            format: info
                .as_ref()
                .map(|i| i.format.family().to_owned())
                .unwrap_or_else(|_| "damaged".into()),
            size: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            recipients: info.map(|i| i.recipients).unwrap_or_default(),
            new_name: new_name(&a, opts.new.as_ref()),
            step,
        });
    }
    Ok(plan)
}

/// Takes each archive's step: proves it opens (dry run) or re-encrypts it.
/// An archive that fails is reported and the others go on.
pub fn execute(
    plan: &RotatePlan,
    opts: &RotateOptions,
    events: &dyn Events,
) -> Result<RotateReport> {
    let mut report = RotateReport {
        dry_run: plan.dry_run,
        new_recipients: plan.new_recipients.clone(),
        archives: vec![],
        opened: 0,
        not_opened: vec![],
        skipped_plaintext: plan.skipped_plaintext.clone(),
        recovered: plan.recovered.clone(),
        refused: vec![],
    };
    let now = chrono::Utc::now();
    let signer = rotating_signer(opts, now)?;
    for p in &plan.archives {
        let path = opts.dest.join(&p.archive);
        events.info(format!("{}: checking…", p.archive));
        // with signers: the signature and its binding, before re-encrypting
        let proved = match (p.step, &opts.trust) {
            (Step::Prove, _) | (_, crate::sign::Trust::Signers(_)) => {
                crate::verify::verify_full(
                    &crate::tier::ArchiveRef::Local(path.clone()),
                    &opts.identities,
                    &opts.trust,
                    events,
                )
                .and_then(|r| match (&signer, &r.host) {
                    (Some(s), Some(h)) if !s.trusts_host(h) => Err(Error::refused(format!(
                        "{}: the signing key {} is not trusted for its host {:?} ({})",
                        p.archive,
                        s.fingerprint,
                        crate::text::cut(h, 80),
                        crate::text::cut(&s.principals_text(), 200)
                    ))
                    .hint("nothing was changed; sign with that host's key, or add the host to the key's principals in the signers file")),
                    _ => Ok(()),
                })
            }
            _ => Ok(()),
        };
        let res = proved.and_then(|()| match p.step {
            Step::Prove => Ok(()),
            Step::Reencrypt | Step::ReencryptKeepOld => rotate_one(
                opts,
                events,
                &p.archive,
                &path,
                &p.new_name,
                p.step == Step::ReencryptKeepOld,
            ),
        });
        let mut entry = ArchiveRotation {
            plan: p.clone(),
            opens: false,
            error: None,
            rotated: false,
        };
        match res {
            Ok(()) => {
                entry.opens = true;
                entry.rotated = p.step != Step::Prove;
                report.opened += 1;
            }
            Err(e) => {
                events.warn(format!("{}: {}", p.archive, e.message));
                entry.error = Some(e.message.clone());
                if e.kind == crate::error::ErrorKind::Refused {
                    report.refused.push(p.archive.clone());
                } else {
                    report.not_opened.push(p.archive.clone());
                }
            }
        }
        report.archives.push(entry);
    }
    Ok(report)
}

/// Re-encrypts one archive; the old one stays until the new one is verified.
fn rotate_one(
    opts: &RotateOptions,
    events: &dyn Events,
    name: &str,
    path: &Path,
    new_name: &str,
    keep_old: bool,
) -> Result<()> {
    crate::process::check_interrupted()?;
    let (mut plain, guard) = open_checked(opts, path, events.progress(0, name))?;
    let temp = store::temp_name(&opts.dest, "rotate");
    let hasher = Arc::new(std::sync::Mutex::new(
        opts.sign.as_ref().map(|k| k.hasher()).transpose()?,
    ));
    let res = (|| -> Result<String> {
        let file = store::create_private(&temp)?;
        let sync = file.try_clone().at("opening", &temp)?;
        let tee = SignTee {
            file,
            hasher: hasher.clone(),
        };
        let mut enc = opts
            .new
            .wrap_output(Box::new(io::BufWriter::with_capacity(1 << 20, tee)))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            crate::process::check_interrupted()?;
            let n = match plain.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(e).context(format!("decrypting {name}"))),
            };
            enc.write_all(&buf[..n]).at("writing", &temp)?;
        }
        // the old archive's signature over exactly the bytes decrypted
        if let Some(g) = guard {
            g.finish()?;
        }
        enc.finish().at("writing", &temp)?;
        sync.sync_all().at("syncing", &temp)?;
        opts.new.verify_written(&temp)?;
        store::sha256_file(&temp)
    })();
    // the new signature, over the new archive's bytes (the rotating key)
    let res = res.and_then(|sha| {
        let size = fs::metadata(&temp).at("reading metadata of", &temp)?.len();
        let sig = match hasher.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(h) if h.bytes() == size => Some(h.finish()?.armored),
            Some(h) => {
                return Err(Error::integrity(format!(
                    "the signature covers {} bytes but the re-encrypted archive has {size}",
                    h.bytes()
                )))
            }
            None => None,
        };
        Ok((sha, sig))
    });
    let (sha, sig) = match res {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
    };
    let jpath = journal_path(&opts.dest, name);
    {
        let mut f = store::create_private(&jpath)?;
        let j = Journal {
            old: name.to_owned(),
            new: new_name.to_owned(),
            sha256: sha.clone(),
            sig: sig.clone(),
        };
        f.write_all(&serde_json::to_vec(&j).unwrap_or_default())
            .at("writing", &jpath)?;
        f.sync_all().at("syncing", &jpath)?;
    }
    if keep_old {
        let keep = opts.dest.join(format!("{name}.pre-rotate"));
        let _ = fs::remove_file(&keep);
        fs::hard_link(path, &keep).at("keeping the old archive as", &keep)?;
    }
    let final_path = opts.dest.join(new_name);
    let renamed = if new_name == name {
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
    follow_sig(&opts.dest, name, new_name, sig.as_deref())?;
    follow_meta(&opts.dest, name, new_name, opts.new.as_ref())?;
    if new_name != name {
        let _ = fs::remove_file(store::sidecar_path(path));
        fs::remove_file(path).at("removing the old archive", path)?;
    }
    fs::remove_file(&jpath).at("removing", &jpath)?;
    store::fsync_dir(&opts.dest)?;
    Ok(())
}

/// With trusted signers, the rotating operator's signing key (a real run
/// needs one) and who it is trusted as; refused (exit 5) when it is missing
/// or not itself a trusted signer. `None` without signers or in a dry run.
fn rotating_signer(
    opts: &RotateOptions,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<crate::sign::Provenance>> {
    let crate::sign::Trust::Signers(signers) = &opts.trust else {
        return Ok(None);
    };
    if opts.dry_run {
        return Ok(None);
    }
    match &opts.sign {
        None => Err(Error::refused(
            "trusted signers are configured, but no signing key was given: the re-encrypted archives would be unsigned, and refused",
        )
        .hint("nothing was changed; pass --sign-key FILE (or SECURECLAW_BACKUP_SIGNING_KEY) with a key the signers file trusts")),
        Some(k) => crate::sign::gate::probe(k, signers, now).map(Some),
    }
}

/// The old archive's payload; with trusted signers read through the check of
/// its signature (the guard, finished before the new archive is kept).
fn open_checked(
    opts: &RotateOptions,
    path: &Path,
    pb: Box<dyn crate::events::Progress>,
) -> Result<(Box<dyn Read + Send>, Option<crate::sign::StreamGuard>)> {
    let crate::sign::Trust::Signers(signers) = &opts.trust else {
        return Ok((pipeline::open_payload(path, &opts.identities, pb)?.1, None));
    };
    let sig = crate::sign::read_sig(path)?;
    let check = crate::sign::SigCheck::new(path, &sig, signers, chrono::Utc::now())?;
    let format = crate::crypto::Format::detect(&crate::crypto::read_head(path)?)
        .filter(|f| f.is_encrypted())
        .ok_or_else(|| {
            Error::integrity(format!("{} is not an encrypted archive", path.display()))
        })?;
    let file = fs::File::open(path).at("opening archive", path)?;
    pb.set_total(file.metadata().map(|m| m.len()).unwrap_or(0));
    let src: Box<dyn Read + Send> = Box::new(crate::events::Reading::new(
        store::SourceFile::new(io::BufReader::with_capacity(256 * 1024, file), path),
        pb,
    ));
    let (src, guard) = crate::sign::gate::guarded(src, check);
    let dec = opts.identities.decryptor(format)?;
    let plain = pipeline::spawn_stage(dec.decrypt(format, src)?);
    Ok((Box::new(plain), Some(guard)))
}

/// The new archive's file, its bytes hashed for the signature on the way.
struct SignTee {
    file: fs::File,
    hasher: Arc<std::sync::Mutex<Option<crate::sign::SignHasher>>>,
}

impl Write for SignTee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(h) = self
            .hasher
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

/// The `.sig` of archive `old`, now re-encrypted as `new`: `sig` (the new
/// signature) written as `new`'s, replacing any; without one, a signature
/// that no longer matches is removed. The old name's `.sig` goes when the
/// name changed. Idempotent (a resumed rotation calls it again).
fn follow_sig(dest: &Path, old: &str, new: &str, sig: Option<&str>) -> Result<()> {
    let new_path = dest.join(new);
    match sig {
        Some(s) => {
            crate::sign::gate::replace_sig(&new_path, s)?;
        }
        None => match fs::remove_file(crate::sign::sig_path(&new_path)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing the stale signature of", &new_path, e)),
        },
    }
    if old != new {
        let old_sig = crate::sign::sig_path(&dest.join(old));
        match fs::remove_file(&old_sig) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &old_sig, e)),
        }
    }
    Ok(())
}

/// The `.meta` description of archive `old`, now re-encrypted as `new`:
/// rewritten (atomically) as `new`'s, with the new encryption and
/// recipients; its chain position is kept as it was, as the manifest inside
/// (which rotation does not touch) still says it, and a link whose
/// predecessor was renamed finds it by its stem (`restore/chain.rs`).
/// Idempotent (a resumed rotation calls it again); an archive without a
/// description has none after either.
fn follow_meta(dest: &Path, old: &str, new: &str, enc: &dyn Encryptor) -> Result<()> {
    let old_path = dest.join(crate::meta::meta_name(old));
    let new_path = dest.join(crate::meta::meta_name(new));
    let bytes = match fs::read(&old_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading", &old_path, e)),
    };
    let label = old_path.display().to_string();
    let mut m = crate::meta::Meta::parse(&bytes, old, &label)
        .map_err(|e| e.context(format!("rotating {old}")))?;
    m.archive = new.to_owned();
    m.encryption = enc.format().family().to_owned();
    // what the manifest inside still names (checked at restore, verify -i)
    if m.backup_recipients.is_empty() {
        m.backup_recipients = std::mem::take(&mut m.recipients);
    }
    m.recipients = enc.meta_recipients();
    store::write_replace(&new_path, &m.to_bytes(), 0o600)?;
    if old != new {
        fs::remove_file(&old_path).at("removing", &old_path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Silent;
    use crate::restore::tests::{backup_of, example_age};

    #[test]
    fn the_plan_names_each_step_and_execute_takes_it() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("src"), t.path().join("b"));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("secureclaw.json"), "{}\n").unwrap();
        let (enc, ids) = example_age();
        let encrypted = backup_of(&src, &dest, Some(enc.clone()));
        let plain = backup_of(&src, &dest, None);
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        let mut opts = RotateOptions {
            dest: dest.clone(),
            identities: ids,
            new: enc,
            dry_run: true,
            keep_old: false,
            trust: Default::default(),
            sign: None,
        };

        let planned = plan(&opts, &Silent).unwrap();
        assert_eq!(planned.skipped_plaintext, vec![name(&plain)]);
        assert_eq!(planned.archives.len(), 1);
        let a = &planned.archives[0];
        assert_eq!(a.archive, name(&encrypted));
        assert_eq!(a.new_name, name(&encrypted));
        assert_eq!(a.recipients, vec!["X25519"]);
        assert_eq!(a.step, Step::Prove);
        let before = fs::read(&encrypted).unwrap();
        let r = execute(&planned, &opts, &Silent).unwrap();
        assert_eq!(
            (r.opened, r.archives[0].opens, r.archives[0].rotated),
            (1, true, false)
        );
        assert_eq!(
            fs::read(&encrypted).unwrap(),
            before,
            "a dry run writes nothing"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["archives"][0]["step"], "prove");
        assert_eq!(json["archives"][0]["archive"], name(&encrypted));

        opts.dry_run = false;
        opts.keep_old = true;
        let planned = plan(&opts, &Silent).unwrap();
        assert_eq!(planned.archives[0].step, Step::ReencryptKeepOld);
        let r = execute(&planned, &opts, &Silent).unwrap();
        assert!(r.archives[0].rotated && r.not_opened.is_empty());
        assert_ne!(fs::read(&encrypted).unwrap(), before, "re-encrypted");
        let kept = dest.join(format!("{}.pre-rotate", name(&encrypted)));
        assert_eq!(fs::read(kept).unwrap(), before);
    }

    /// Both phases of a rotation move a counter over each archive's bytes:
    /// the proving pass (the same full verification as `verify -i`) and the
    /// re-encryption; the total is the archive's size, and all of it is read.
    #[test]
    fn proving_and_re_encrypting_report_byte_progress() {
        use crate::events::{Collect, ProgressCall};
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("src"), t.path().join("b"));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("secureclaw.json"), "{}\n").unwrap();
        fs::write(src.join("big.bin"), vec![7u8; 3 << 20]).unwrap();
        let (enc, ids) = example_age();
        let archive = backup_of(&src, &dest, Some(enc.clone()));
        let size = fs::metadata(&archive).unwrap().len();
        let mut opts = RotateOptions {
            dest: dest.clone(),
            identities: ids,
            new: enc,
            dry_run: true,
            keep_old: false,
            trust: Default::default(),
            sign: None,
        };
        let moved = |calls: &[ProgressCall]| {
            let totals: Vec<u64> = calls
                .iter()
                .filter_map(|c| match c {
                    ProgressCall::SetTotal(t) => Some(*t),
                    _ => None,
                })
                .collect();
            let adv: u64 = calls
                .iter()
                .map(|c| match c {
                    ProgressCall::Advance(n) => *n,
                    _ => 0,
                })
                .sum();
            (totals, adv, calls.contains(&ProgressCall::Finish))
        };
        for dry_run in [true, false] {
            opts.dry_run = dry_run;
            let events = Collect::default();
            let planned = plan(&opts, &events).unwrap();
            execute(&planned, &opts, &events).unwrap();
            assert_eq!(
                moved(&events.progress_calls()),
                (vec![size], size, true),
                "dry run {dry_run}: {:?}",
                events.progress_calls()
            );
        }
    }

    #[test]
    fn an_empty_destination_is_an_error_before_any_plan() {
        let t = tempfile::tempdir().unwrap();
        let (enc, ids) = example_age();
        let opts = RotateOptions {
            dest: t.path().to_owned(),
            identities: ids,
            new: enc,
            dry_run: true,
            keep_old: false,
            trust: Default::default(),
            sign: None,
        };
        let e = plan(&opts, &Silent).unwrap_err();
        assert!(e.message.contains("no archives"), "{}", e.message);
    }
}
