//! Archive names: `<type>_<YYYYMMDD_HHMMSS>[_N].tar.gz[.age|.gpg]` in UTC (README.md,
//! "Archive format"), and the old scripts' `<type>_<time>/` directories. A name that
//! does not parse is "unrecognised" and never touched, in any store.

use chrono::{NaiveDateTime, TimeZone, Utc};

/// The kind of backup, which decides its contents and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupType {
    Daily,
    Weekly,
    PreDeploy,
    /// Snapshot of the target taken by `restore` before it swaps.
    PreRestore,
}

impl BackupType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Daily => "daily",
            BackupType::Weekly => "weekly",
            BackupType::PreDeploy => "pre-deploy",
            BackupType::PreRestore => "pre-restore",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "daily" => BackupType::Daily,
            "weekly" => BackupType::Weekly,
            "pre-deploy" => BackupType::PreDeploy,
            "pre-restore" => BackupType::PreRestore,
            _ => return None,
        })
    }
    pub const ALL: [BackupType; 4] = [
        BackupType::Daily,
        BackupType::Weekly,
        BackupType::PreDeploy,
        BackupType::PreRestore,
    ];
}

/// How an entry of the destination is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Container {
    Age,
    OpenPgp,
    /// Unencrypted `.tar.gz` (legacy basic mode or `--insecure-plaintext`).
    TarGz,
    /// The old basic script's plaintext backup directory.
    Directory,
}

impl Container {
    pub fn suffix(self) -> &'static str {
        match self {
            Container::Age => ".tar.gz.age",
            Container::OpenPgp => ".tar.gz.gpg",
            Container::TarGz => ".tar.gz",
            Container::Directory => "",
        }
    }
}

/// A parsed archive name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveName {
    pub btype: BackupType,
    /// UTC time from the name.
    pub time: chrono::DateTime<Utc>,
    /// Same-second suffix (`_1`, `_2` …), 0 when absent.
    pub seq: u32,
    pub container: Container,
    /// The file or directory name.
    pub name: String,
}

impl ArchiveName {
    /// The top-level directory inside the archive: `<type>_<timestamp>[_N]`.
    pub fn stem(&self) -> String {
        stem(self.btype, self.time, self.seq)
    }
}

pub fn stem(btype: BackupType, time: chrono::DateTime<Utc>, seq: u32) -> String {
    let ts = time.format("%Y%m%d_%H%M%S");
    if seq == 0 {
        format!("{}_{ts}", btype.as_str())
    } else {
        format!("{}_{ts}_{seq}", btype.as_str())
    }
}

/// Parses a destination entry's name; `is_dir` tells whether it is a directory.
pub fn parse_name(name: &str, is_dir: bool) -> Option<ArchiveName> {
    let (base, container) = if is_dir {
        (name, Container::Directory)
    } else if let Some(b) = name.strip_suffix(".tar.gz.age") {
        (b, Container::Age)
    } else if let Some(b) = name.strip_suffix(".tar.gz.gpg") {
        (b, Container::OpenPgp)
    } else if let Some(b) = name.strip_suffix(".tar.gz") {
        (b, Container::TarGz)
    } else {
        return None;
    };
    let btype = BackupType::ALL
        .into_iter()
        .find(|t| base.starts_with(&format!("{}_", t.as_str())))?;
    let rest = &base[btype.as_str().len() + 1..];
    if rest.len() < 15 {
        return None;
    }
    let (ts, tail) = rest.split_at(15);
    let naive = NaiveDateTime::parse_from_str(ts, "%Y%m%d_%H%M%S").ok()?;
    let seq = if tail.is_empty() {
        0
    } else {
        let n = tail.strip_prefix('_')?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
            return None;
        }
        n.parse().ok()?
    };
    Some(ArchiveName {
        btype,
        time: Utc.from_utc_datetime(&naive),
        seq,
        container,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let a = parse_name("daily_20261123_020000.tar.gz.age", false).unwrap();
        assert_eq!(a.btype, BackupType::Daily);
        assert_eq!(a.container, Container::Age);
        assert_eq!(a.seq, 0);
        assert_eq!(a.stem(), "daily_20261123_020000");
        let b = parse_name("pre-deploy_20261123_020000_2.tar.gz.gpg", false).unwrap();
        assert_eq!(b.btype, BackupType::PreDeploy);
        assert_eq!(b.seq, 2);
        assert_eq!(b.stem(), "pre-deploy_20261123_020000_2");
        let d = parse_name("weekly_20261123_020000", true).unwrap();
        assert_eq!(d.container, Container::Directory);
        assert!(parse_name("daily_20261123_020000.tar.gz.age.sha256", false).is_none());
        assert!(parse_name("daily_2026.tar.gz", false).is_none());
        assert!(parse_name("notes.txt", false).is_none());
        assert!(parse_name("daily_20261123_020000_01.tar.gz", false).is_none());
        assert!(parse_name("daily_20261399_020000.tar.gz", false).is_none());
    }
}
