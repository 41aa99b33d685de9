//! The catalogue of any store (the local destination, a NAS directory, a
//! bucket): every archive, newest first, with its type, time, size, format,
//! recipients (read from the header without a key) and sidecar state, to the
//! [`Depth`] asked (a tier is listed from its names and sizes alone). Legacy
//! plaintext directories and `.tar.gz` files of the old scripts are described
//! as such, pre-restore snapshots apart, and anything else as "not
//! recognised" (never touched by `prune`). What `list` and `status` show;
//! prints nothing. Each archive's signature state comes from its `.sig`
//! ([`scan_trusted`] verifies it against trusted signers).

use std::path::PathBuf;

use serde::Serialize;

use crate::error::Result;
use crate::events::Events;
use crate::store::{self, BackupType, Container, Listed, SidecarStatus, Store};
use crate::tier::reference;

/// How much of each archive is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Nothing but the names and the `.meta` descriptions: format from the
    /// name, sidecar present or missing, chain and level.
    Names,
    /// The header (format, recipients, damage); sidecar present or missing.
    Headers,
    /// The header, and the whole archive against its sidecar.
    Check,
}

/// The state of an archive's `.sha256` sidecar, as `list` and `status` show
/// it (serialized in these spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sidecar {
    /// Present (not checked: `list` without `--check`).
    Present,
    /// No sidecar.
    Missing,
    /// Checked: the archive matches it.
    Ok,
    /// Checked: the archive does not match it.
    Mismatch,
    /// Checked: the sidecar is not a digest line.
    Malformed,
    /// Checked: the archive or the sidecar could not be read.
    Unreadable,
    /// A legacy directory has no sidecar to speak of.
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Sidecar {
    /// The spelling shown and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Sidecar::Present => "present",
            Sidecar::Missing => "missing",
            Sidecar::Ok => "ok",
            Sidecar::Mismatch => "mismatch",
            Sidecar::Malformed => "malformed",
            Sidecar::Unreadable => "unreadable",
            Sidecar::NotApplicable => "n/a",
        }
    }

    /// Checked and found wrong (mismatch, malformed or unreadable).
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            Sidecar::Mismatch | Sidecar::Malformed | Sidecar::Unreadable
        )
    }
}

impl std::fmt::Display for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One archive as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub btype: BackupType,
    /// UTC time from the name.
    pub time: chrono::DateTime<chrono::Utc>,
    pub seq: u32,
    pub container: Container,
    /// `age`, `age-armored`, `openpgp`, `openpgp-armored`, `plaintext`,
    /// `legacy-directory`, or `damaged`.
    pub format: String,
    pub encrypted: bool,
    /// Made by the old shell scripts (plaintext directory, or `.tar.gz` without sidecar).
    pub legacy: bool,
    pub size: u64,
    /// age stanza types or OpenPGP key ids (public data).
    pub recipients: Vec<String>,
    /// The recipients by their keys, from the `.meta` beside the archive
    /// (age/ssh public keys, OpenPGP fingerprint and subkey); empty without one.
    pub keys: Vec<String>,
    /// The sidecar's state.
    pub sidecar: Sidecar,
    /// Why the header could not be read, when `format` is `damaged` (or
    /// why its `.meta` description was not used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The incremental chain it belongs to, from its `.meta` description
    /// (`None`: a full on its own, or an archive without a description).
    pub chain: Option<String>,
    /// Its level in that chain: 0 for a full.
    pub level: u32,
    /// Its `.sig` (README "Signed archives"): unsigned, present (not
    /// checked), or, with trusted signers, valid (who signed) or invalid (why).
    pub signature: crate::sign::SigState,
}

/// What is in a store.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The store's directory or URL.
    pub dest: PathBuf,
    pub exists: bool,
    /// daily, weekly and pre-deploy archives, newest first.
    pub archives: Vec<Entry>,
    /// Pre-restore snapshots, newest first.
    pub pre_restore: Vec<Entry>,
    /// Sidecars whose archive is gone.
    pub orphan_sidecars: Vec<String>,
    /// Other entries: never touched by this tool.
    pub unrecognised: Vec<String>,
}

impl Entry {
    /// The FORMAT column of `list`: legacy and damaged archives said so.
    pub fn format_label(&self) -> String {
        match self.format.as_str() {
            "legacy-directory" => "legacy plaintext dir".into(),
            "plaintext" if self.legacy => "legacy plaintext".into(),
            "plaintext" => "PLAINTEXT".into(),
            "damaged" => "DAMAGED".into(),
            f => f.to_owned(),
        }
    }

    /// The TIME (UTC) column of `list`: the time, and ` #N` for the N-th
    /// archive of the same second.
    pub fn time_label(&self) -> String {
        let time = self.time.format("%Y-%m-%d %H:%M:%S").to_string();
        match self.seq {
            0 => time,
            n => format!("{time} #{n}"),
        }
    }

    /// The RECIPIENTS column of `list`: the keys, else the recipients, else `-`.
    pub fn recipients_label(&self) -> String {
        if !self.keys.is_empty() {
            self.keys.join(", ")
        } else if self.recipients.is_empty() {
            "-".into()
        } else {
            self.recipients.join(", ")
        }
    }

    /// The LEVEL column of `list`: `-` for an archive on its own, `full` for
    /// a chain's full, `link N` for its N-th link.
    pub fn level_label(&self) -> String {
        match (&self.chain, self.level) {
            (None, _) => "-".into(),
            (Some(_), 0) => "full".into(),
            (Some(_), n) => format!("link {n}"),
        }
    }
}

impl Listing {
    /// Every archive, pre-restore snapshots too, newest first.
    pub fn newest_first(&self) -> Vec<&Entry> {
        let mut all: Vec<&Entry> = self.archives.iter().chain(&self.pre_restore).collect();
        all.sort_by(|a, b| (b.time, b.seq, &b.name).cmp(&(a.time, a.seq, &a.name)));
        all
    }

    /// Orphan sidecars and unrecognised entries together, sorted.
    pub fn not_ours(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .orphan_sidecars
            .iter()
            .chain(&self.unrecognised)
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Names of the archives, newest first, without a valid signature by a
    /// trusted signer (restore refuses them).
    pub fn unsigned(&self) -> Vec<&str> {
        self.newest_first()
            .into_iter()
            .filter(|e| !e.signature.is_valid())
            .map(|e| e.name.as_str())
            .collect()
    }

    /// Archives whose sidecar check failed.
    pub fn bad_sidecars(&self) -> usize {
        self.archives
            .iter()
            .chain(&self.pre_restore)
            .filter(|e| e.sidecar.is_bad())
            .count()
    }
}

/// An archive as the listing of a tier shows it (from names and sizes alone).
#[derive(Debug, Clone, Serialize)]
pub struct Brief<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub btype: BackupType,
    pub time: chrono::DateTime<chrono::Utc>,
    pub size: u64,
    /// `age`, `openpgp` or `plaintext`.
    pub format: &'a str,
    /// `present` or `missing`.
    pub sidecar: Sidecar,
    /// `unsigned`, or `present` (a `.sig` is there; not checked here).
    pub signature: &'a crate::sign::SigState,
    /// The chain and level from its `.meta` (null and 0 for an archive on
    /// its own), as `list --json`.
    pub chain: Option<&'a str>,
    pub level: u32,
}

impl<'a> From<&'a Entry> for Brief<'a> {
    fn from(e: &'a Entry) -> Self {
        Brief {
            name: &e.name,
            btype: e.btype,
            time: e.time,
            size: e.size,
            format: &e.format,
            sidecar: e.sidecar,
            signature: &e.signature,
            chain: e.chain.as_deref(),
            level: e.level,
        }
    }
}

/// Describes one listed archive of `store`, to `depth`.
pub fn describe(store: &dyn Store, l: &Listed, depth: Depth) -> Entry {
    let a = &l.archive;
    let mut e = Entry {
        name: a.name.clone(),
        btype: a.btype,
        time: a.time,
        seq: a.seq,
        container: a.container,
        format: String::new(),
        encrypted: false,
        legacy: false,
        size: l.size,
        recipients: Vec::new(),
        keys: Vec::new(),
        sidecar: Sidecar::NotApplicable,
        problem: None,
        chain: None,
        level: 0,
        signature: if l.signed() {
            crate::sign::SigState::Present { signer: None }
        } else {
            crate::sign::SigState::Unsigned
        },
    };
    if a.container == Container::Directory {
        e.format = "legacy-directory".into();
        e.legacy = true;
        e.size = store.size(&a.name).ok().flatten().unwrap_or(0);
        return e;
    }
    if depth == Depth::Names {
        e.format = match a.container {
            Container::Age => "age",
            Container::OpenPgp => "openpgp",
            _ => "plaintext",
        }
        .into();
        e.encrypted = a.container != Container::TarGz;
    } else {
        match reference::inspect_entry(store, &a.name) {
            Ok(h) => {
                e.format = serde_json::to_value(h.format)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                if h.format == crate::crypto::Format::Gzip {
                    e.format = "plaintext".into();
                }
                e.encrypted = h.format.is_encrypted();
                e.recipients = h.recipients.clone();
                // the keyless description beside a local archive names the keys
                if let Some(p) = store.local_path(&a.name) {
                    e.keys = crate::keymatch::meta_keys(&p);
                }
                e.size = h.length;
            }
            Err(err) => {
                e.format = "damaged".into();
                // The row already names the file: keep the message short.
                let full = store.label(&a.name);
                e.problem = Some(
                    err.message
                        .replace(&format!("{full}: "), "")
                        .replace(&full, &a.name),
                );
            }
        }
    }
    e.sidecar = match (depth, l.sidecar) {
        (Depth::Check, _) => match reference::sidecar_status_entry(store, &a.name) {
            Ok(SidecarStatus::Ok) => Sidecar::Ok,
            Ok(SidecarStatus::Missing) => Sidecar::Missing,
            Ok(SidecarStatus::Mismatch { .. }) => Sidecar::Mismatch,
            Ok(SidecarStatus::Malformed) => Sidecar::Malformed,
            Err(_) => Sidecar::Unreadable,
        },
        (_, true) => Sidecar::Present,
        (_, false) => Sidecar::Missing,
    };
    e.legacy = a.container == Container::TarGz && !l.sidecar;
    // at every depth: one small read per archive with a `.meta`
    chain_position(store, l, &mut e);
    e
}

/// The chain and level of a listed archive, from its `.meta` description
/// when it has one (a hint: restore and `verify -i` prove it).
fn chain_position(store: &dyn Store, l: &Listed, e: &mut Entry) {
    let name = crate::meta::meta_name(&l.archive.name);
    if !l.companions.contains(&name) {
        return;
    }
    let read = store.read_small(&name).and_then(|b| match b {
        Some(b) => crate::meta::Meta::parse(&b, &l.archive.name, &name).map(Some),
        None => Ok(None),
    });
    match read {
        Ok(Some(m)) => {
            e.level = m.level();
            e.chain = m.chain.map(|c| c.id);
        }
        Ok(None) => {}
        Err(err) => {
            if e.problem.is_none() {
                e.problem = Some(err.message);
            }
        }
    }
}

/// Reads the store, to `depth`. With [`Depth::Check`], every archive is read
/// against its sidecar under one progress counter over their bytes.
pub fn scan(store: &dyn Store, depth: Depth, events: &dyn Events) -> Result<Listing> {
    scan_trusted(store, depth, &crate::sign::Trust::Unchecked, events)
}

/// The signature state of a described entry (beyond [`Depth::Names`]):
/// with signers, each signed archive is verified over its bytes.
pub fn sign_state(store: &dyn Store, l: &Listed, trust: &crate::sign::Trust, e: &mut Entry) {
    if l.archive.container == Container::Directory {
        return;
    }
    e.signature = crate::sign::gate::entry_state(
        store,
        &l.archive.name,
        l.signed(),
        trust,
        chrono::Utc::now(),
    );
}

/// [`scan`], with the signature of every archive checked against `trust`'s
/// signers (when configured; else only the key each `.sig` names).
pub fn scan_trusted(
    store: &dyn Store,
    depth: Depth,
    trust: &crate::sign::Trust,
    events: &dyn Events,
) -> Result<Listing> {
    let index = store::index(store)?;
    let check = depth == Depth::Check;
    let pb = if check {
        let total = index
            .archives
            .iter()
            .filter(|l| l.archive.container != Container::Directory)
            .map(|l| l.size)
            .sum();
        events.progress(total, "checking sidecars")
    } else {
        crate::events::no_progress()
    };
    let mut main = Vec::new();
    let mut pre = Vec::new();
    for l in index.archives.iter().rev() {
        let mut e = describe(store, l, depth);
        if depth != Depth::Names {
            sign_state(store, l, trust, &mut e);
        }
        if e.container != Container::Directory {
            pb.advance(e.size);
        }
        if l.archive.btype == BackupType::PreRestore {
            pre.push(e);
        } else {
            main.push(e);
        }
    }
    pb.finish();
    Ok(Listing {
        dest: PathBuf::from(store.url()),
        exists: store.problem().is_none(),
        archives: main,
        pre_restore: pre,
        orphan_sidecars: index.orphan_sidecars,
        unrecognised: index.unrecognised,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Silent;
    use crate::store::LocalStore;
    use std::fs;

    #[test]
    fn lists_and_classifies() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        // A real-looking age header is not needed: a damaged file is shown, not fatal.
        fs::write(d.join("daily_20260301_020000.tar.gz.age"), b"garbage").unwrap();
        fs::write(d.join("daily_20260301_020000.tar.gz.age.sha256"), "x").unwrap();
        fs::write(d.join("daily_20260228_020000.tar.gz"), [0x1f, 0x8b, 8, 0]).unwrap();
        fs::create_dir(d.join("daily_20260227_020000")).unwrap();
        fs::write(d.join("daily_20260227_020000/a"), "abc").unwrap();
        fs::write(d.join("pre-restore_20260301_030000.tar.gz.age"), b"x").unwrap();
        fs::write(d.join("weekly_20260101_020000.tar.gz.gpg.sha256"), "x").unwrap();
        fs::write(d.join("notes.txt"), "x").unwrap();
        let l = scan(&LocalStore::new(d), Depth::Headers, &Silent).unwrap();
        assert_eq!(l.archives.len(), 3);
        assert_eq!(l.archives[0].format, "damaged");
        assert_eq!(l.archives[0].sidecar, Sidecar::Present);
        assert_eq!(l.archives[1].format, "plaintext");
        assert!(l.archives[1].legacy);
        assert_eq!(l.archives[1].sidecar, Sidecar::Missing);
        assert_eq!(l.archives[2].format, "legacy-directory");
        assert_eq!(l.archives[2].size, 3);
        assert_eq!(l.pre_restore.len(), 1);
        assert_eq!(
            l.orphan_sidecars,
            vec!["weekly_20260101_020000.tar.gz.gpg.sha256"]
        );
        assert_eq!(l.unrecognised, vec!["notes.txt"]);
        let checked = scan(&LocalStore::new(d), Depth::Check, &Silent).unwrap();
        assert_eq!(checked.archives[0].sidecar, Sidecar::Malformed);
    }

    #[test]
    fn sidecar_spellings() {
        for (s, text) in [
            (Sidecar::Present, "present"),
            (Sidecar::Missing, "missing"),
            (Sidecar::Ok, "ok"),
            (Sidecar::Mismatch, "mismatch"),
            (Sidecar::Malformed, "malformed"),
            (Sidecar::Unreadable, "unreadable"),
            (Sidecar::NotApplicable, "n/a"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(text));
            assert_eq!(s.to_string(), text);
            assert_eq!(format!("{s:<6}|"), format!("{text:<6}|"));
        }
    }

    #[test]
    fn missing_dest_is_empty() {
        let t = tempfile::tempdir().unwrap();
        let l = scan(
            &LocalStore::new(t.path().join("none")),
            Depth::Headers,
            &Silent,
        )
        .unwrap();
        assert!(!l.exists);
        assert!(l.archives.is_empty());
    }
}
