//! Verification of archives. Without a key: the sidecar's SHA-256 and the
//! ciphertext structure (age header / OpenPGP packets), reporting recipients.
//! With identities: additionally a full authenticated decrypt to the end, gzip
//! to the end, every tar entry judged by the restore rules and compared with
//! the manifest — the same code path as restore, writing nothing.
//!
//! With trusted signers ([`verify_keyless_trusted`], [`verify_full`]),
//! the provenance gate comes first (README "Signed archives"): the archive's
//! signature (every link's, for a chain) by a trusted signer, verified over
//! its bytes before anything is decrypted; with a key, the signed manifest's
//! host, type and time are then compared with the name. Without a key the
//! signature is checked but cannot be bound to the name (said in a warning).

use std::path::PathBuf;

use crate::archive::extract::{self, Discard, Limits, Sink};
use crate::crypto::{self, Identities};
use crate::error::{Error, Result};
use crate::store::{self, SidecarStatus};
use crate::tier::ArchiveRef;

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub archive: PathBuf,
    pub format: crypto::Format,
    pub size: u64,
    pub recipients: Vec<String>,
    /// The recipients by their keys (README "Which key opens an archive"):
    /// age/ssh public keys and OpenPGP fingerprints with subkey ids from
    /// the `.meta` beside the archive, else what `recipients` (the header's
    /// stanza types, subkey ids) tells.
    pub keys: Vec<String>,
    /// Where `keys` were read: `meta` or `header`.
    pub keys_from: &'static str,
    /// With identities: which recipient each identity given is (README
    /// "Which key opens an archive").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opened_by: Vec<String>,
    pub sidecar: SidecarStatus,
    /// Whether the payload was decrypted and checked entry by entry.
    pub full: bool,
    pub files: Option<usize>,
    pub bytes: Option<u64>,
    pub legacy: Option<bool>,
    pub backup_type: Option<String>,
    pub created: Option<String>,
    pub warnings: Vec<String>,
    /// A link of an incremental chain: the chain and every archive checked.
    pub chain: Option<crate::restore::chain::ChainReport>,
    /// With trusted signers: who signed it (README "Signed archives"); for
    /// a chain, its last link.
    pub signature: Option<crate::sign::Provenance>,
    /// With a key: the host the (authenticated) manifest names.
    pub host: Option<String>,
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
            keys: Vec::new(),
            keys_from: "header",
            opened_by: Vec::new(),
            sidecar,
            full: false,
            files: None,
            bytes: None,
            legacy: None,
            backup_type: None,
            created: None,
            warnings,
            chain: None,
            signature: None,
            host: None,
        }
    }
}

/// Keyless verification of a local file or a stored object: the structure
/// check ([`ArchiveRef::inspect`]), then the sidecar against the SHA-256 of
/// the bytes read back; a mismatch or a malformed sidecar is an integrity
/// error.
pub fn verify_keyless(src: &ArchiveRef) -> Result<VerifyReport> {
    let info = src.inspect()?;
    let sidecar = src.sidecar_status()?;
    check_sidecar_status(src, &sidecar)?;
    let mut warnings = Vec::new();
    if sidecar == SidecarStatus::Missing {
        warnings.push(
            match src {
                ArchiveRef::Local(_) => {
                    "no .sha256 sidecar: the file's checksum could not be compared"
                }
                ArchiveRef::Remote(_) => {
                    "no .sha256 sidecar on the tier: an interrupted push? run push again"
                }
            }
            .to_owned(),
        );
    }
    let mut report = VerifyReport::keyless(src.label(), info.clone(), sidecar, warnings);
    // the .meta beside it names the keys (README "Which key opens an archive")
    let rs = match src {
        ArchiveRef::Local(p) => crate::keymatch::recipients(p, &info, &[]),
        ArchiveRef::Remote(_) => crate::keymatch::from_header(&info, &[]),
    };
    report.keys = rs.lines();
    report.keys_from = rs.from;
    // a link: every predecessor present, with a good header and sidecar
    if let Some(c) = crate::restore::chain::find(src)? {
        report.warnings.extend(c.check_keyless(true)?.1);
        report.chain = Some(c.report());
    }
    Ok(report)
}

fn check_sidecar_status(src: &ArchiveRef, s: &SidecarStatus) -> Result<()> {
    let label = src.label();
    match (s, src) {
        (SidecarStatus::Mismatch { expected, actual }, ArchiveRef::Local(_)) => Err(Error::integrity(format!(
            "{}: SHA-256 {actual} does not match its sidecar ({expected})",
            label.display()
        ))
        .hint(
            "the archive was modified or damaged after it was written (or a `rotate` was interrupted: run it again); use another archive or copy",
        )),
        (SidecarStatus::Mismatch { expected, actual }, ArchiveRef::Remote(_)) => Err(Error::integrity(format!(
            "{}: SHA-256 {actual} does not match its sidecar ({expected})",
            label.display()
        ))
        .hint("the stored copy was modified or damaged; push it again from a good local copy, or use another archive")),
        (SidecarStatus::Malformed, ArchiveRef::Local(p)) => Err(Error::integrity(format!(
            "{}: the .sha256 sidecar is malformed",
            store::sidecar_path(p).display()
        ))
        .hint("the sidecar holds `<64 hex digits>  <name>`; restore it from a copy or remove it")),
        (SidecarStatus::Malformed, ArchiveRef::Remote(_)) => Err(Error::integrity(format!(
            "{}.sha256: the sidecar is malformed",
            label.display()
        ))
        .hint("the sidecar holds `<64 hex digits>  <name>`; push again to rewrite it")),
        _ => Ok(()),
    }
}

/// The report of a full check from what was read.
fn report_outcome(mut report: VerifyReport, outcome: extract::Outcome) -> Result<VerifyReport> {
    match &outcome.manifest {
        Some(m) => {
            extract::check_manifest(&outcome, m)?;
            crate::keymatch::check_meta(&report.archive, &m.recipients)?;
            report.backup_type = Some(m.backup_type.clone());
            report.created = Some(m.created.clone());
            report.host = Some(m.host.clone());
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

/// The gate of a chain or of one archive: the provenance of the archive
/// itself (of its last link, for a chain), and, for one archive, what was
/// verified (for the in-stream re-check of a full verification).
fn gate(
    src: &ArchiveRef,
    trust: &crate::sign::Trust,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(
    Option<crate::sign::Provenance>,
    Option<crate::sign::Checked>,
)> {
    if !trust.is_checked() {
        return Ok((None, None));
    }
    if let Some(mut c) = crate::restore::chain::find(src)? {
        c.check_provenance(trust, now)?;
        return Ok((c.provenance().cloned(), None));
    }
    let checked = src.check_provenance(trust, now)?;
    Ok((checked.as_ref().map(|c| c.provenance.clone()), checked))
}

/// [`verify_keyless`] behind the provenance gate: with trusted signers, the
/// signature (every link's, for a chain) is verified first; without a key it
/// cannot be bound to the archive's name, which a warning says.
pub fn verify_keyless_trusted(
    src: &ArchiveRef,
    trust: &crate::sign::Trust,
) -> Result<VerifyReport> {
    let (provenance, _) = gate(src, trust, chrono::Utc::now())?;
    let mut report = verify_keyless(src)?;
    if provenance.is_some() {
        report.warnings.push(
            "signature valid; without a key its signed host, type and time were not compared with the name (pass -i for that)".to_owned(),
        );
    }
    report.signature = provenance;
    Ok(report)
}

/// Full verification with identities, of a local file or a stored object:
/// the keyless checks, then the archive (every link, for a chain) streamed
/// through the same decrypt → gunzip → entry checks as restore, moving a
/// progress counter by its bytes. Nothing is written. Behind the provenance
/// gate when signers are configured: the signature verified before anything
/// is decrypted, the bytes decrypted checked against it again, and the
/// manifest's host, type and time bound to the name (every link's).
pub fn verify_full(
    src: &ArchiveRef,
    identities: &Identities,
    trust: &crate::sign::Trust,
    events: &dyn crate::events::Events,
) -> Result<VerifyReport> {
    let now = chrono::Utc::now();
    if let Some(mut c) = crate::restore::chain::find(src)? {
        if trust.is_checked() {
            c.check_provenance(trust, now)?;
        }
        let mut report = verify_keyless(src)?;
        report.signature = c.provenance().cloned();
        let sink = &mut Discard as &mut dyn Sink;
        let outcome = c.extract(sink, &Limits::default(), identities, events)?;
        return report_outcome(report, outcome);
    }
    let checked = if trust.is_checked() {
        src.check_provenance(trust, now)?
    } else {
        None
    };
    let mut report = verify_keyless(src)?;
    let (_format, stream, guard) =
        src.open_tar_stream_shown(identities, checked.as_ref(), events.progress(0, "verify"))?;
    let outcome = extract::extract(stream, &mut Discard as &mut dyn Sink, &Limits::default())?;
    if let Some(g) = guard {
        let p = g.finish()?;
        crate::sign::gate::bind(&src.label(), &p, outcome.manifest.as_ref())?;
        report.signature = Some(p);
    }
    report_outcome(report, outcome)
}
