//! `push`: copy every local archive a tier lacks, verify each copy, then apply
//! the tier's retention.
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
//! - otherwise uploaded all-or-nothing ([`Tier::upload`]), then its size
//!   (metadata) and SHA-256 (read back, streamed) are compared with the local
//!   sidecar, and only then is the sidecar written: the sidecar on the tier
//!   is what marks an archive as copied.
//!
//! A tier that cannot even be listed (unreachable, credentials refused, a
//! replicated store without quorum) fails every archive that would be copied,
//! each named in the report, with the store's condensed error and hint.
//!
//! Retention runs only when every copy succeeded.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{config, Tier, TierPolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::retention::Decision;
use crate::store::{self, Container};
use crate::ui::Ui;

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

fn sidecar_line(digest: &str, name: &str) -> String {
    format!("{digest}  {name}\n")
}

/// Pushes the archives of `dest` to `tier` and applies `policy`.
pub fn push(
    tier_name: &str,
    tier: &dyn Tier,
    policy: Option<&TierPolicy>,
    dest: &Path,
    now: DateTime<Utc>,
    ui: &Ui,
) -> Result<PushReport> {
    let mut r = PushReport {
        tier: tier_name.to_owned(),
        url: tier.url(),
        ..Default::default()
    };
    let _lock = crate::lock::lock_dir(&tier.lock_key(), "push tier")?;
    r.stale_removed = tier.cleanup();
    let local = store::list_archives(dest)?;
    let (remote, objects) = match super::archives(tier) {
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
    let sizes: std::collections::HashMap<&str, u64> =
        objects.iter().map(|o| (o.name.as_str(), o.size)).collect();
    // what the tier's retention would drop right after the copy
    let doomed: std::collections::HashSet<String> = match policy {
        Some(p) => {
            let mut all = remote.clone();
            all.extend(
                local
                    .iter()
                    .filter(|a| !sizes.contains_key(a.name.as_str()))
                    .cloned(),
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
        let path = dest.join(&a.name);
        match a.container {
            Container::Directory => {
                ui.detail(format!(
                    "{}: legacy plaintext directory, not pushed",
                    a.name
                ));
                continue;
            }
            Container::TarGz => {
                ui.warn(format!(
                    "{}: unencrypted archive, refusing to push it to {tier_name}",
                    a.name
                ));
                r.refused_plaintext.push(a.name.clone());
                continue;
            }
            _ => {}
        }
        if doomed.contains(&a.name) {
            ui.detail(format!(
                "{}: older than {tier_name} keeps, not copied",
                a.name
            ));
            r.beyond_retention.push(a.name.clone());
            continue;
        }
        match push_one(
            tier,
            &a.name,
            &path,
            sizes.get(a.name.as_str()).copied(),
            ui,
        ) {
            Ok(Outcome::Present) => r.present.push(a.name.clone()),
            Ok(Outcome::Completed) => r.completed.push(a.name.clone()),
            Ok(Outcome::Uploaded(n)) => {
                r.bytes_uploaded += n;
                r.uploaded.push(a.name.clone());
            }
            Ok(Outcome::Vanished) => {
                ui.detail(format!("{}: removed locally meanwhile, skipped", a.name));
            }
            Err(e) => {
                ui.warn(format!("{}: {}", a.name, e.message));
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
            let (decisions, removed) = prune(tier, p, now, false, ui)?;
            let _ = decisions;
            r.pruned = removed;
        } else {
            ui.warn(format!(
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
    tier: &dyn Tier,
    name: &str,
    path: &Path,
    remote_size: Option<u64>,
    ui: &Ui,
) -> Result<Outcome> {
    let expected = match store::read_sidecar(path)? {
        Some(d) if !d.is_empty() => d,
        Some(_) => {
            return Err(Error::integrity(format!(
                "{}: the local sidecar is malformed",
                store::sidecar_path(path).display()
            ))
            .hint("check the archive with `verify`; a good archive's sidecar can be rewritten with `sha256sum`"))
        }
        None => {
            if !path.exists() {
                return Ok(Outcome::Vanished);
            }
            return Err(Error::integrity(format!(
                "{}: no .sha256 sidecar, so a copy cannot be verified",
                path.display()
            ))
            .hint("check the archive with `verify -i`, then write its sidecar: sha256sum NAME > NAME.sha256 (in the destination)"));
        }
    };
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let side_name = format!("{name}.sha256");
    let url = format!("{}/{name}", tier.url());
    if remote_size == Some(size) {
        let remote_digest = tier
            .read_small(&side_name)?
            .map(|b| super::parse_sidecar(&b));
        if remote_digest.as_deref() == Some(expected.as_str()) {
            ui.detail(format!("{name}: already on the tier"));
            return Ok(Outcome::Present);
        }
        // an interrupted push: the object may be complete
        let (actual, _) = super::sha256_remote(tier, name)?;
        if actual == expected {
            tier.put_small(&side_name, sidecar_line(&expected, name).as_bytes())?;
            ui.info(format!(
                "{name}: verified the copy on the tier, sidecar written"
            ));
            return Ok(Outcome::Completed);
        }
    }
    ui.info(format!("uploading {name} ({size} bytes) to {}", tier.url()));
    tier.upload(name, path, &expected, ui)?;
    let stored = tier.size(name)?;
    if stored != Some(size) {
        return Err(Error::integrity(format!(
            "{url}: stored size {} differs from the local {size} bytes",
            stored.map_or("none".to_owned(), |s| s.to_string())
        ))
        .hint("run push again; if it persists, check the storage"));
    }
    let (actual, _) = super::sha256_remote(tier, name)?;
    if actual != expected {
        return Err(Error::integrity(format!(
            "{url}: read back SHA-256 {actual} differs from the sidecar ({expected})"
        ))
        .hint("run push again; if it persists, check the storage"));
    }
    tier.put_small(&side_name, sidecar_line(&expected, name).as_bytes())?;
    ui.detail(format!("{name}: stored, size and SHA-256 verified"));
    Ok(Outcome::Uploaded(size))
}

/// Plans and (unless `dry_run`) applies a tier's retention. Returns the
/// decisions and the objects removed (or that would be).
pub fn prune(
    tier: &dyn Tier,
    policy: &TierPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
    ui: &Ui,
) -> Result<(Vec<Decision>, Vec<String>)> {
    let (archives, objects) = super::archives(tier)?;
    let decisions = config::plan(policy, &archives, now);
    let drop: Vec<String> = decisions
        .iter()
        .filter(|d| !d.keep)
        .flat_map(|d| d.entries.clone())
        .collect();
    let removed = if dry_run {
        let have: std::collections::HashSet<&str> =
            objects.iter().map(|o| o.name.as_str()).collect();
        drop.iter()
            .flat_map(|n| [n.clone(), format!("{n}.sha256")])
            .filter(|n| have.contains(n.as_str()))
            .collect()
    } else {
        super::remove(tier, &drop, ui)?
    };
    Ok((decisions, removed))
}
