//! `list`: every archive in the destination, newest first, with its type, time,
//! size, format, recipients (read from the header without a key) and sidecar
//! state. Legacy plaintext directories and `.tar.gz` files of the old scripts are
//! shown as such, pre-restore snapshots in their own section, and anything else
//! as "not recognised" (never touched by `prune`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::error::Result;
use crate::manifest::human_bytes;
use crate::store::{self, ArchiveName, BackupType, Container, SidecarStatus};
use crate::ui::Ui;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Destination directory (default $BACKUP_ROOT, ~/backups/secureclaw)
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Check every archive against its .sha256 sidecar (reads all archives)
    #[arg(long)]
    pub check: bool,
    /// List an offsite tier of the configuration instead (names, sizes, sidecars)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["dest", "check"])]
    pub tier: Option<String>,
    #[command(flatten)]
    pub config: super::push::ConfigArgs,
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
    /// `present`, `missing`, `ok`, `mismatch`, `malformed`, `unreadable` or `n/a`.
    pub sidecar: String,
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
        sidecar: "n/a".into(),
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
            "present"
        } else {
            "missing"
        }
        .into()
    } else {
        match store::check_sidecar(&path) {
            Ok(SidecarStatus::Ok) => "ok".into(),
            Ok(SidecarStatus::Missing) => "missing".into(),
            Ok(SidecarStatus::Mismatch { .. }) => "mismatch".into(),
            Ok(SidecarStatus::Malformed) => "malformed".into(),
            Err(_) => "unreadable".into(),
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

/// Reads the destination.
pub fn scan(dest: &Path, check: bool, ui: &Ui) -> Result<Listing> {
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
        ui.progress(total, "checking sidecars")
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

fn format_label(e: &Entry) -> String {
    match e.format.as_str() {
        "legacy-directory" => "legacy plaintext dir".into(),
        "plaintext" if e.legacy => "legacy plaintext".into(),
        "plaintext" => "PLAINTEXT".into(),
        "damaged" => "DAMAGED".into(),
        f => f.to_owned(),
    }
}

fn table(entries: &[Entry]) -> String {
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.btype.as_str().to_owned(),
                e.time.format("%Y-%m-%d %H:%M:%S").to_string()
                    + &if e.seq > 0 {
                        format!(" #{}", e.seq)
                    } else {
                        String::new()
                    },
                human_bytes(e.size),
                e.sidecar.clone(),
                format_label(e),
                if e.recipients.is_empty() {
                    "-".into()
                } else {
                    e.recipients.join(", ")
                },
            ]
        })
        .collect();
    let head = [
        "TYPE",
        "TIME (UTC)",
        "SIZE",
        "SIDECAR",
        "FORMAT",
        "RECIPIENTS",
    ];
    let mut w = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: [&str; 6]| {
        let mut l = String::from(" ");
        for (i, c) in r.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            l.push(' ');
            if i == 2 {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else if i == 5 {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            }
            l.push(' ');
        }
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut out = line(head);
    for (r, e) in rows.iter().zip(entries) {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
        if let Some(p) = &e.problem {
            out.push_str(&format!("      damaged: {p}\n"));
        }
    }
    out
}

/// The human rendering of a listing.
pub fn human(l: &Listing) -> String {
    let mut out = String::new();
    if !l.exists {
        return format!("No backups: {} does not exist.\n", l.dest.display());
    }
    out.push_str(&format!("Backups in {}:\n", l.dest.display()));
    if l.archives.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&table(&l.archives));
    }
    if !l.pre_restore.is_empty() {
        out.push_str("\nPre-restore snapshots (made by restore; undo a restore with them):\n");
        out.push_str(&table(&l.pre_restore));
    }
    if !l.orphan_sidecars.is_empty() {
        out.push_str(&format!(
            "\nSidecars without their archive: {}\n",
            l.orphan_sidecars.join(", ")
        ));
    }
    if !l.unrecognised.is_empty() {
        out.push_str(&format!(
            "\nNot recognised (never touched): {}\n",
            l.unrecognised.join(", ")
        ));
    }
    out
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    if let Some(name) = &args.tier {
        return super::push::list_tier(name, &args.config, ui);
    }
    let dest = store::dest_or_default(args.dest.as_deref())?;
    let l = scan(&dest, args.check, ui)?;
    let bad = l
        .archives
        .iter()
        .chain(&l.pre_restore)
        .filter(|e| matches!(e.sidecar.as_str(), "mismatch" | "malformed" | "unreadable"))
        .count();
    if bad > 0 {
        ui.warn(format!(
            "{bad} archive(s) do not match their sidecar: run `secureclaw-backup verify` on them"
        ));
    }
    let mut doc = json!(l);
    doc["ok"] = json!(true);
    ui.result(human(&l), doc);
    Ok(())
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
        let l = scan(d, false, &Ui::default()).unwrap();
        assert_eq!(l.archives.len(), 3);
        assert_eq!(l.archives[0].format, "damaged");
        assert_eq!(l.archives[0].sidecar, "present");
        assert_eq!(l.archives[1].format, "plaintext");
        assert!(l.archives[1].legacy);
        assert_eq!(l.archives[1].sidecar, "missing");
        assert_eq!(l.archives[2].format, "legacy-directory");
        assert_eq!(l.archives[2].size, 3);
        assert_eq!(l.pre_restore.len(), 1);
        assert_eq!(
            l.orphan_sidecars,
            vec!["weekly_20260101_020000.tar.gz.gpg.sha256"]
        );
        assert_eq!(l.unrecognised, vec!["notes.txt"]);
        let h = human(&l);
        assert!(h.contains("DAMAGED") && h.contains("damaged: "), "{h}");
        assert!(h.contains("legacy plaintext dir"), "{h}");
        assert!(h.contains("Pre-restore snapshots"), "{h}");
        let checked = scan(d, true, &Ui::default()).unwrap();
        assert_eq!(checked.archives[0].sidecar, "malformed");
    }

    #[test]
    fn missing_dest_is_empty() {
        let t = tempfile::tempdir().unwrap();
        let l = scan(&t.path().join("none"), false, &Ui::default()).unwrap();
        assert!(!l.exists);
        assert!(human(&l).contains("does not exist"));
    }
}
