//! `push`: copy every archive of one store (the local destination) that
//! another (a tier) lacks, verify each copy, then apply the tier's retention
//! ([`crate::prune`] with the tier's rules). Written against [`Store`]: what
//! the source and the target are is their business.
//!
//! Per archive (oldest first):
//! - unencrypted `.tar.gz` archives are refused (plaintext never leaves the
//!   host): skipped with a warning, and the run ends with exit 5;
//! - archives the tier's retention would drop at once are not uploaded;
//! - present = an object of the same size and a sidecar object naming the
//!   local sidecar's digest: skipped (idempotent, no download);
//! - same size but no (or another) sidecar: an interrupted earlier push; the
//!   object is read back, and if its SHA-256 is the local sidecar's, only the
//!   sidecar is written;
//! - otherwise uploaded all-or-nothing ([`Store::put`]), then its size
//!   (metadata) and SHA-256 (read back, streamed) are compared with the local
//!   sidecar, and only then is the sidecar written: the sidecar on the tier
//!   is what marks an archive as copied.
//! - the archive's companions (`.sig` signature, `.meta` description) are
//!   copied after the archive is verified and before its sidecar, and on
//!   every later push whose copy is found present or completed: each one
//!   the tier lacks or holds with other bytes is written
//!   ([`Store::put_small`]); one already equal is left alone (idempotent).
//!
//! A tier that cannot even be listed (unreachable, credentials refused, a
//! replicated store without quorum) fails every archive that would be copied,
//! each named in the report, with the store's condensed error and hint.
//!
//! Retention runs only when every copy succeeded.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{config, Config, TierConfig, TierPolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Events;
use crate::store::{self, Container, Store, Upload};

/// What one push to one tier did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub tier: String,
    pub url: String,
    /// Uploaded and verified.
    pub uploaded: Vec<String>,
    /// Found complete on the tier without a sidecar (an interrupted push):
    /// verified by reading back, sidecar written.
    pub completed: Vec<String>,
    /// Already on the tier with a matching sidecar.
    pub present: Vec<String>,
    /// Unencrypted archives refused.
    pub refused_plaintext: Vec<String>,
    /// Older than the tier's retention: not uploaded.
    pub beyond_retention: Vec<String>,
    /// `(archive, message)` of copies that failed.
    pub failed: Vec<(String, String)>,
    /// Objects removed by the tier's retention.
    pub pruned: Vec<String>,
    /// Temporaries of interrupted runs removed (directory tiers).
    pub stale_removed: Vec<String>,
    pub bytes_uploaded: u64,
    #[serde(skip)]
    pub failure_kinds: Vec<ErrorKind>,
    /// The hint of the first failure (credentials, endpoint…).
    #[serde(skip)]
    pub first_hint: Option<String>,
}

impl PushReport {
    pub fn human(&self) -> String {
        let mut s = format!(
            "{} ({}): {} uploaded, {} completed, {} already there",
            self.tier,
            self.url,
            self.uploaded.len(),
            self.completed.len(),
            self.present.len()
        );
        for n in &self.uploaded {
            s.push_str(&format!("\n  uploaded and verified  {n}"));
        }
        for n in &self.completed {
            s.push_str(&format!("\n  verified, sidecar added {n}"));
        }
        for n in &self.beyond_retention {
            s.push_str(&format!("\n  not copied (older than the tier keeps) {n}"));
        }
        for n in &self.refused_plaintext {
            s.push_str(&format!("\n  REFUSED (unencrypted)  {n}"));
        }
        for (n, m) in &self.failed {
            s.push_str(&format!("\n  FAILED  {n}: {m}"));
        }
        for n in &self.pruned {
            s.push_str(&format!("\n  pruned  {n}"));
        }
        s
    }

    /// The error a run with refusals or failures ends with.
    pub fn error(&self) -> Option<Error> {
        if !self.failed.is_empty() {
            let kind = if self.failure_kinds.contains(&ErrorKind::Integrity) {
                ErrorKind::Integrity
            } else {
                ErrorKind::Operational
            };
            let (n, m) = &self.failed[0];
            let again = "run push again: it resumes where it stopped (the tier's retention was not applied)";
            return Some(
                Error::new(
                    kind,
                    format!(
                        "push to {}: {} archive(s) not copied; first: {n}: {m}",
                        self.tier,
                        self.failed.len()
                    ),
                )
                .hint(match &self.first_hint {
                    Some(h) => format!(
                        "{h} (push resumes where it stopped; the tier's retention was not applied)"
                    ),
                    None => format!("fix the cause and {again}"),
                }),
            );
        }
        if !self.refused_plaintext.is_empty() {
            return Some(
                Error::refused(format!(
                    "push to {}: refused to copy {} unencrypted archive(s): {}",
                    self.tier,
                    self.refused_plaintext.len(),
                    self.refused_plaintext.join(", ")
                ))
                .hint("plaintext never leaves the host: re-encrypt them (`rotate`) or remove them; the encrypted archives were copied"),
            );
        }
        None
    }
}

/// Pushes every configured tier named in `names` (every configured tier when
/// empty) from `from`. Returns the reports and the error the run ends with, if
/// any: a failure in one tier does not stop the others.
pub fn push_all(
    cfg: &Config,
    cfg_path: &Path,
    names: &[String],
    from: &dyn Store,
    events: &dyn Events,
) -> Result<(Vec<PushReport>, Option<Error>)> {
    let selected: Vec<&TierConfig> = if names.is_empty() {
        cfg.tier.iter().collect()
    } else {
        names
            .iter()
            .map(|n| cfg.tier(n, cfg_path))
            .collect::<Result<_>>()?
    };
    if selected.is_empty() {
        return Err(
            Error::usage(format!("no tiers configured in {}", cfg_path.display())).hint(
                "add [[tier]] entries (name, url, keep_within…) to the configuration; see \"Offsite tiers\" in the README",
            ),
        );
    }
    let now = Utc::now();
    let mut reports = Vec::new();
    let mut first_err: Option<Error> = None;
    for tc in selected {
        let res = (|| {
            let policy = tc.policy()?;
            let t = super::open(tc)?;
            events.info(format!("pushing to {} ({})…", tc.name, t.url()));
            push(&tc.name, from, t.as_ref(), policy.as_ref(), now, events)
        })();
        match res {
            Ok(r) => {
                if let Some(e) = r.error() {
                    first_err.get_or_insert(e);
                }
                reports.push(r);
            }
            Err(e) => {
                events.warn(format!("{}: {}", tc.name, e.message));
                reports.push(PushReport {
                    tier: tc.name.clone(),
                    url: tc.url.clone(),
                    failed: vec![(String::new(), e.message.clone())],
                    ..Default::default()
                });
                first_err.get_or_insert(e.context(format!("push to {}", tc.name)));
            }
        }
    }
    Ok((reports, first_err))
}

/// Pushes the archives of `from` to the tier `to` and applies `policy`.
pub fn push(
    tier_name: &str,
    from: &dyn Store,
    to: &dyn Store,
    policy: Option<&TierPolicy>,
    now: DateTime<Utc>,
    events: &dyn Events,
) -> Result<PushReport> {
    let mut r = PushReport {
        tier: tier_name.to_owned(),
        url: to.url(),
        ..Default::default()
    };
    let _lock = crate::lock::lock_dir(&to.lock_key(), "push tier")?;
    r.stale_removed = to.cleanup();
    let local_index = store::index(from)?;
    let local = local_index.names();
    let remote = match store::index(to) {
        Ok(x) => x,
        // the tier cannot be listed (unreachable, refused, a replicated store
        // without quorum): every archive that would be copied is not
        Err(e)
            if local
                .iter()
                .any(|a| !matches!(a.container, Container::Directory | Container::TarGz)) =>
        {
            for a in &local {
                match a.container {
                    Container::Directory => {}
                    Container::TarGz => r.refused_plaintext.push(a.name.clone()),
                    _ => {
                        r.failure_kinds.push(e.kind);
                        r.failed.push((a.name.clone(), e.message.clone()));
                    }
                }
            }
            r.first_hint = e.hint;
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    let sizes: HashMap<&str, u64> = remote
        .archives
        .iter()
        .map(|l| (l.archive.name.as_str(), l.size))
        .collect();
    // what the tier's retention would drop right after the copy
    let doomed: HashSet<String> = match policy {
        Some(p) => {
            // with each archive's chain position (its .meta), so that a
            // link the retention keeps never goes up without its predecessors
            let mut all = crate::prune::candidates(to, &remote);
            all.extend(
                crate::prune::candidates(from, &local_index)
                    .into_iter()
                    .filter(|c| !sizes.contains_key(c.name.name.as_str())),
            );
            config::plan(p, &all, now)
                .into_iter()
                .filter(|d| !d.keep)
                .flat_map(|d| d.entries)
                .collect()
        }
        None => Default::default(),
    };
    for a in &local {
        match a.container {
            Container::Directory => {
                events.detail(format!(
                    "{}: legacy plaintext directory, not pushed",
                    a.name
                ));
                continue;
            }
            Container::TarGz => {
                events.warn(format!(
                    "{}: unencrypted archive, refusing to push it to {tier_name}",
                    a.name
                ));
                r.refused_plaintext.push(a.name.clone());
                continue;
            }
            _ => {}
        }
        if doomed.contains(&a.name) {
            events.detail(format!(
                "{}: older than {tier_name} keeps, not copied",
                a.name
            ));
            r.beyond_retention.push(a.name.clone());
            continue;
        }
        match push_one(
            from,
            to,
            &a.name,
            sizes.get(a.name.as_str()).copied(),
            events,
        ) {
            Ok(Outcome::Present) => r.present.push(a.name.clone()),
            Ok(Outcome::Completed) => r.completed.push(a.name.clone()),
            Ok(Outcome::Uploaded(n)) => {
                r.bytes_uploaded += n;
                r.uploaded.push(a.name.clone());
            }
            Ok(Outcome::Vanished) => {
                events.detail(format!("{}: removed locally meanwhile, skipped", a.name));
            }
            Err(e) => {
                events.warn(format!("{}: {}", a.name, e.message));
                if r.first_hint.is_none() {
                    r.first_hint = e.hint.clone();
                }
                r.failure_kinds.push(e.kind);
                r.failed.push((a.name.clone(), e.message));
            }
        }
    }
    if let Some(p) = policy {
        if r.failed.is_empty() {
            let plan = crate::prune::plan(to, &|a| config::plan(p, a, now))?;
            r.pruned = crate::prune::apply(to, &plan, &mut |n| {
                events.detail(format!("removed {}", to.label(n)))
            })?;
        } else {
            events.warn(format!(
                "{tier_name}: not applying retention after failed copies"
            ));
        }
    }
    Ok(r)
}

enum Outcome {
    Present,
    Completed,
    Uploaded(u64),
    Vanished,
}

fn push_one(
    from: &dyn Store,
    to: &dyn Store,
    name: &str,
    remote_size: Option<u64>,
    events: &dyn Events,
) -> Result<Outcome> {
    let side_name = store::sidecar_name(name);
    let expected = match store::read_sidecar_of(from, name)? {
        Some(d) if !d.is_empty() => d,
        Some(_) => {
            return Err(Error::integrity(format!(
                "{}: the local sidecar is malformed",
                from.label(&side_name)
            ))
            .hint("check the archive with `verify`; a good archive's sidecar can be rewritten with `sha256sum`"))
        }
        None => {
            if from.size(name)?.is_none() {
                return Ok(Outcome::Vanished);
            }
            return Err(Error::integrity(format!(
                "{}: no .sha256 sidecar, so a copy cannot be verified",
                from.label(name)
            ))
            .hint("check the archive with `verify -i`, then write its sidecar: sha256sum NAME > NAME.sha256 (in the destination)"));
        }
    };
    let Some(size) = from.size(name)? else {
        return Ok(Outcome::Vanished);
    };
    let url = to.label(name);
    if remote_size == Some(size) {
        if store::read_sidecar_of(to, name)?.as_deref() == Some(expected.as_str()) {
            copy_companions(from, to, name, events)?;
            events.detail(format!("{name}: already on the tier"));
            return Ok(Outcome::Present);
        }
        // an interrupted push: the object may be complete
        let (actual, _) = store::digest(to, name)?;
        if actual == expected {
            copy_companions(from, to, name, events)?;
            to.put_small(&side_name, store::sidecar_line(&expected, name).as_bytes())?;
            events.info(format!(
                "{name}: verified the copy on the tier, sidecar written"
            ));
            return Ok(Outcome::Completed);
        }
    }
    events.info(format!("uploading {name} ({size} bytes) to {}", to.url()));
    let label = from.label(name);
    let mut reader = from.open(name)?;
    let upload = Upload {
        reader: &mut reader,
        size,
        expected: &expected,
        label: &label,
    };
    to.put(name, upload, events)?;
    let stored = to.size(name)?;
    if stored != Some(size) {
        return Err(Error::integrity(format!(
            "{url}: stored size {} differs from the local {size} bytes",
            stored.map_or("none".to_owned(), |s| s.to_string())
        ))
        .hint("run push again; if it persists, check the storage"));
    }
    let (actual, _) = store::digest(to, name)?;
    if actual != expected {
        return Err(Error::integrity(format!(
            "{url}: read back SHA-256 {actual} differs from the sidecar ({expected})"
        ))
        .hint("run push again; if it persists, check the storage"));
    }
    copy_companions(from, to, name, events)?;
    to.put_small(&side_name, store::sidecar_line(&expected, name).as_bytes())?;
    events.detail(format!("{name}: stored, size and SHA-256 verified"));
    Ok(Outcome::Uploaded(size))
}

/// Copies archive `name`'s companions (`.sig`, `.meta`) that `from` holds to
/// `to`, each only when the tier lacks it or holds other bytes (so a push
/// that finds everything in place writes nothing). A companion the source
/// does not have is left alone on the tier.
fn copy_companions(
    from: &dyn Store,
    to: &dyn Store,
    name: &str,
    events: &dyn Events,
) -> Result<()> {
    for c in store::companion_names(name) {
        let Some(local) = from.read_small(&c)? else {
            continue;
        };
        if to.read_small(&c)?.as_deref() == Some(local.as_slice()) {
            continue;
        }
        to.put_small(&c, &local)?;
        events.detail(format!("{c}: copied to the tier"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Silent;
    use crate::store::DirStore;
    use std::fs;

    #[test]
    fn companions_follow_the_archive_and_a_second_push_writes_nothing() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let n = "daily_20260301_020000.tar.gz.age";
        let body = b"age ciphertext stand-in";
        fs::write(src.path().join(n), body).unwrap();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
        fs::write(
            src.path().join(format!("{n}.sha256")),
            store::sidecar_line(&digest, n),
        )
        .unwrap();
        fs::write(src.path().join(format!("{n}.sig")), "signature").unwrap();
        fs::write(src.path().join(format!("{n}.meta")), "{}").unwrap();
        let from = DirStore::new(src.path().to_owned());
        let to = DirStore::new(dst.path().to_owned());
        let now = Utc::now();
        let r = push("t", &from, &to, None, now, &Silent).unwrap();
        assert_eq!(r.uploaded, [n]);
        for c in [".sha256", ".sig", ".meta"] {
            assert_eq!(
                fs::read(dst.path().join(format!("{n}{c}"))).unwrap(),
                fs::read(src.path().join(format!("{n}{c}"))).unwrap()
            );
        }
        // a re-signed archive: the next push carries the new signature
        fs::write(src.path().join(format!("{n}.sig")), "new signature").unwrap();
        let r = push("t", &from, &to, None, now, &Silent).unwrap();
        assert_eq!(r.present, [n]);
        assert_eq!(
            fs::read(dst.path().join(format!("{n}.sig"))).unwrap(),
            b"new signature"
        );
        // all in place: nothing is written (the files keep their inode)
        let ino = |c: &str| {
            std::os::unix::fs::MetadataExt::ino(
                &fs::metadata(dst.path().join(format!("{n}{c}"))).unwrap(),
            )
        };
        let before = (ino(".sig"), ino(".meta"));
        push("t", &from, &to, None, now, &Silent).unwrap();
        assert_eq!((ino(".sig"), ino(".meta")), before);
    }
}
