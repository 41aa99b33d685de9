//! Verification of archives. Without a key: the sidecar's SHA-256 and the
//! ciphertext structure (age header / OpenPGP packets), reporting recipients.
//! With identities: additionally a full authenticated decrypt to the end, gzip
//! to the end, every tar entry judged by the restore rules and compared with
//! the manifest — the same code path as restore, writing nothing.

use std::path::{Path, PathBuf};

use crate::archive::extract::{self, Discard, Limits, Sink};
use crate::archive::pipeline;
use crate::crypto::{self, Identities};
use crate::error::{Error, Result};
use crate::store::{self, SidecarStatus};

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub archive: PathBuf,
    pub format: crypto::Format,
    pub size: u64,
    pub recipients: Vec<String>,
    pub sidecar: SidecarStatus,
    /// Whether the payload was decrypted and checked entry by entry.
    pub full: bool,
    pub files: Option<usize>,
    pub bytes: Option<u64>,
    pub legacy: Option<bool>,
    pub backup_type: Option<String>,
    pub created: Option<String>,
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// The report of a keyless check: header `info` and sidecar state, plus a
    /// warning when the archive is not encrypted.
    pub fn keyless(
        archive: PathBuf,
        info: crypto::HeaderInfo,
        sidecar: SidecarStatus,
        mut warnings: Vec<String>,
    ) -> Self {
        if !info.format.is_encrypted() {
            warnings.push("the archive is not encrypted".to_owned());
        }
        VerifyReport {
            archive,
            format: info.format,
            size: info.length,
            recipients: info.recipients,
            sidecar,
            full: false,
            files: None,
            bytes: None,
            legacy: None,
            backup_type: None,
            created: None,
            warnings,
        }
    }
}

/// Keyless verification; a sidecar mismatch is an integrity error.
pub fn verify_keyless(path: &Path) -> Result<VerifyReport> {
    let info = crypto::inspect(path)?;
    let sidecar = store::check_sidecar(path)?;
    check_sidecar_status(path, &sidecar)?;
    let mut warnings = Vec::new();
    if sidecar == SidecarStatus::Missing {
        warnings.push("no .sha256 sidecar: the file's checksum could not be compared".to_owned());
    }
    Ok(VerifyReport::keyless(
        path.to_owned(),
        info,
        sidecar,
        warnings,
    ))
}

fn check_sidecar_status(path: &Path, s: &SidecarStatus) -> Result<()> {
    match s {
        SidecarStatus::Mismatch { expected, actual } => Err(Error::integrity(format!(
            "{}: SHA-256 {actual} does not match its sidecar ({expected})",
            path.display()
        ))
        .hint(
            "the archive was modified or damaged after it was written (or a `rotate` was interrupted: run it again); use another archive or copy",
        )),
        SidecarStatus::Malformed => Err(Error::integrity(format!(
            "{}: the .sha256 sidecar is malformed",
            store::sidecar_path(path).display()
        ))
        .hint("the sidecar holds `<64 hex digits>  <name>`; restore it from a copy or remove it")),
        _ => Ok(()),
    }
}

/// Full verification with identities: everything restore checks, nothing written.
pub fn verify_full(path: &Path, identities: &Identities) -> Result<VerifyReport> {
    let report = verify_keyless(path)?;
    let (_format, stream) = pipeline::open_tar_stream(path, identities)?;
    check_tar_stream(report, stream)
}

/// Full verification of an archive in an offsite tier: the keyless checks
/// (sidecar object, header), then the object streamed again through the same
/// decrypt → gunzip → entry checks as a local file. Nothing is written.
pub fn verify_full_remote(
    remote: &crate::tier::Remote,
    identities: &Identities,
) -> Result<VerifyReport> {
    let report = crate::tier::verify_keyless(remote)?;
    let (_format, stream) = crate::tier::open_tar_stream(remote, identities)?;
    check_tar_stream(report, stream)
}

fn check_tar_stream(
    mut report: VerifyReport,
    stream: pipeline::StageReader,
) -> Result<VerifyReport> {
    let outcome = extract::extract(stream, &mut Discard as &mut dyn Sink, &Limits::default())?;
    match &outcome.manifest {
        Some(m) => {
            extract::check_manifest(&outcome, m)?;
            report.backup_type = Some(m.backup_type.clone());
            report.created = Some(m.created.clone());
            for w in &m.warnings {
                report.warnings.push(format!(
                    "at backup time: {} [{}] {}",
                    w.path, w.kind, w.detail
                ));
            }
        }
        None => report
            .warnings
            .push("legacy archive without manifest.json: file hashes could not be checked".into()),
    }
    report.full = true;
    report.files = Some(outcome.files.len());
    report.bytes = Some(outcome.bytes);
    report.legacy = Some(outcome.manifest.is_none());
    Ok(report)
}
