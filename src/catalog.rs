//! The catalogue of a local destination: every archive, newest first, with its
//! type, time, size, format, recipients (read from the header without a key)
//! and sidecar state. Legacy plaintext directories and `.tar.gz` files of the
//! old scripts are described as such, pre-restore snapshots apart, and anything
//! else as "not recognised" (never touched by `prune`). What `list` and
//! `status` show; prints nothing.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::store::{self, ArchiveName, BackupType, Container, SidecarStatus};

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
    /// The sidecar's state.
    pub sidecar: Sidecar,
    /// Why the header could not be read, when `format` is `damaged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What is in a destination.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
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

/// Describes one archive. With `check`, the sidecar digest is verified
/// (reads the whole archive); otherwise only its presence is reported.
pub fn describe(dest: &Path, a: &ArchiveName, check: bool) -> Entry {
    let path = dest.join(&a.name);
    let mut e = Entry {
        name: a.name.clone(),
        btype: a.btype,
        time: a.time,
        seq: a.seq,
        container: a.container,
        format: String::new(),
        encrypted: false,
        legacy: false,
        size: 0,
        recipients: Vec::new(),
        sidecar: Sidecar::NotApplicable,
        problem: None,
    };
    if a.container == Container::Directory {
        e.format = "legacy-directory".into();
        e.legacy = true;
        e.size = dir_size(&path);
        return e;
    }
    e.size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
    match crate::crypto::inspect(&path) {
        Ok(h) => {
            e.format = serde_json::to_value(h.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if h.format == crate::crypto::Format::Gzip {
                e.format = "plaintext".into();
            }
            e.encrypted = h.format.is_encrypted();
            e.recipients = h.recipients;
            e.size = h.length;
        }
        Err(err) => {
            e.format = "damaged".into();
            // The row already names the file: keep the message short.
            let full = path.display().to_string();
            e.problem = Some(
                err.message
                    .replace(&format!("{full}: "), "")
                    .replace(&full, &a.name),
            );
        }
    }
    let sidecar_present = fs::symlink_metadata(store::sidecar_path(&path)).is_ok();
    e.sidecar = if !check {
        if sidecar_present {
            Sidecar::Present
        } else {
            Sidecar::Missing
        }
    } else {
        match store::check_sidecar(&path) {
            Ok(SidecarStatus::Ok) => Sidecar::Ok,
            Ok(SidecarStatus::Missing) => Sidecar::Missing,
            Ok(SidecarStatus::Mismatch { .. }) => Sidecar::Mismatch,
            Ok(SidecarStatus::Malformed) => Sidecar::Malformed,
            Err(_) => Sidecar::Unreadable,
        }
    };
    e.legacy = a.container == Container::TarGz && !sidecar_present;
    e
}

/// Total size of the regular files under `dir` (symlinks not followed).
fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Reads the destination. With `check`, every archive is read against its
/// sidecar, and `progress(total_bytes)` makes the bar that advances as they are.
pub fn scan(
    dest: &Path,
    check: bool,
    progress: &dyn Fn(u64) -> indicatif::ProgressBar,
) -> Result<Listing> {
    let archives = store::list_archives(dest)?;
    let exists = dest.is_dir();
    let total: u64 = if check {
        archives
            .iter()
            .filter_map(|a| fs::symlink_metadata(dest.join(&a.name)).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    } else {
        0
    };
    let pb = if check {
        progress(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut main = Vec::new();
    let mut pre = Vec::new();
    for a in archives.iter().rev() {
        let e = describe(dest, a, check);
        if e.container != Container::Directory {
            pb.inc(e.size);
        }
        if a.btype == BackupType::PreRestore {
            pre.push(e);
        } else {
            main.push(e);
        }
    }
    pb.finish_and_clear();
    let known: std::collections::HashSet<&str> = archives.iter().map(|a| a.name.as_str()).collect();
    let mut orphans = Vec::new();
    let mut other = Vec::new();
    if let Ok(rd) = fs::read_dir(dest) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if known.contains(name.as_str()) {
                continue;
            }
            if let Some(base) = name.strip_suffix(".sha256") {
                if known.contains(base) {
                    continue;
                }
                if store::parse_name(base, false).is_some() {
                    orphans.push(name);
                    continue;
                }
            }
            other.push(name);
        }
    }
    orphans.sort();
    other.sort();
    Ok(Listing {
        dest: dest.to_owned(),
        exists,
        archives: main,
        pre_restore: pre,
        orphan_sidecars: orphans,
        unrecognised: other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let l = scan(d, false, &|_| indicatif::ProgressBar::hidden()).unwrap();
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
        let checked = scan(d, true, &|_| indicatif::ProgressBar::hidden()).unwrap();
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
        let l = scan(&t.path().join("none"), false, &|_| {
            indicatif::ProgressBar::hidden()
        })
        .unwrap();
        assert!(!l.exists);
        assert!(l.archives.is_empty());
    }
}
