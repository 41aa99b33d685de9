//! The read side of "where an archive lives": an [`ArchiveRef`] names either a
//! local file (in the destination or a NAS directory) or an object in an
//! offsite tier, and offers what `verify`, `restore` and `drill` need from it
//! — its name for messages, its size, a sequential reader, its sidecar
//! state, the keyless structure check ([`ArchiveRef::inspect`]) and the
//! decrypt → gunzip tar stream ([`ArchiveRef::open_tar_stream`]). Callers are
//! written once against it; what differs between a file and an object (how
//! bytes are fetched, the wording of a hint) stays in here. An entry of any
//! [`Store`] becomes one with [`ArchiveRef::in_store`], and the catalogue
//! reads entries it only borrows through [`inspect_entry`] and
//! [`sidecar_status_entry`]. With trusted signers configured, every reader
//! passes the provenance gate here first ([`ArchiveRef::check_provenance`],
//! then [`ArchiveRef::open_tar_stream_checked`]). `latest`, `latest:TYPE` and
//! bare archive names are resolved in a store by [`resolve_named`], the one place for it.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::crypto::{self, Format, HeaderInfo, Identities};
use crate::error::{Error, Result};
use crate::sign::{Checked, StreamGuard, Trust};
use crate::store::{self, ArchiveName, BackupType, SidecarStatus, Store};

use super::Remote;

/// An archive to read: a local file, or an entry in a tier.
pub enum ArchiveRef {
    /// A file on a local filesystem (the destination, a NAS mount).
    Local(PathBuf),
    /// An object in an offsite tier.
    Remote(Remote),
}

impl ArchiveRef {
    /// Entry `name` of `store`: the file itself when the store is a local
    /// directory (read in place), else the object.
    pub fn in_store(store: Box<dyn Store>, name: &str) -> Result<ArchiveRef> {
        Ok(match store.local_path(name) {
            Some(p) => ArchiveRef::Local(p),
            None => ArchiveRef::Remote(Remote::new(store, name)?),
        })
    }

    /// The name used in messages and reports: the path, or the object's URL.
    pub fn label(&self) -> PathBuf {
        match self {
            ArchiveRef::Local(p) => p.clone(),
            ArchiveRef::Remote(r) => PathBuf::from(r.url()),
        }
    }

    /// Whether the archive is an object in an offsite tier.
    pub fn is_remote(&self) -> bool {
        matches!(self, ArchiveRef::Remote(_))
    }

    /// The whole archive as a sequential stream; its own I/O errors are
    /// operational errors on its name (exit 1).
    pub fn open(&self) -> Result<Box<dyn Read + Send>> {
        match self {
            ArchiveRef::Local(p) => store::local::open_file(p, "opening archive"),
            ArchiveRef::Remote(r) => r.tier.open(&r.name),
        }
    }

    /// The sidecar compared with the SHA-256 of the archive's bytes (read
    /// streamed).
    pub fn sidecar_status(&self) -> Result<SidecarStatus> {
        match self {
            ArchiveRef::Local(p) => store::check_sidecar(p),
            ArchiveRef::Remote(r) => store::sidecar_status(r.tier.as_ref(), &r.name),
        }
    }

    /// The keyless structure check (age header and payload length, OpenPGP
    /// packet sequence), reporting the recipients. A local file is read in
    /// place. A stored binary age object needs only its first MiB and its
    /// size (no download); armored age and OpenPGP need positioned reads to
    /// the end of the packet sequence, so the object is spooled to a private
    /// temporary file (ciphertext only), removed afterwards.
    pub fn inspect(&self) -> Result<HeaderInfo> {
        match self {
            ArchiveRef::Local(p) => crypto::inspect(p),
            ArchiveRef::Remote(r) => inspect_object(r.tier.as_ref(), &r.name),
        }
    }

    /// The archive's tar stream through the decrypt → gunzip pipeline, each
    /// stage on its own thread, streamed (no local copy of a stored object).
    /// Key errors surface here, before any data is read.
    pub fn open_tar_stream(
        &self,
        identities: &Identities,
    ) -> Result<(Format, crate::archive::pipeline::StageReader)> {
        let hint = match self {
            ArchiveRef::Local(_) => {
                "name the archive file itself (not its .sha256 sidecar); if it is, it is damaged"
            }
            ArchiveRef::Remote(_) => {
                "name the archive itself (not its .sha256 sidecar); if it is, it is damaged"
            }
        };
        crate::archive::pipeline::open_tar_reader(self.open()?, &self.label(), hint, identities)
    }
}

impl ArchiveRef {
    /// The archive's `.sig`: the file beside it, or the object beside it. A
    /// missing one is refused (exit 5) with the archive named.
    pub fn read_sig(&self) -> Result<Vec<u8>> {
        match self {
            ArchiveRef::Local(p) => crate::sign::read_sig(p),
            ArchiveRef::Remote(r) => {
                let sig_name = format!("{}{}", r.name, crate::sign::SIG_SUFFIX);
                match r.tier.read_small(&sig_name)? {
                    Some(b) => Ok(b),
                    None => Err(Error::refused(format!(
                        "{} has no signature ({} is missing), and trusted signers are configured",
                        r.url(),
                        r.tier.label(&sig_name)
                    ))
                    .hint("nothing was read or changed; push the archive again from a host that has its .sig, or use a signed archive")),
                }
            }
        }
    }

    /// The provenance gate (see [`crate::sign::gate`]): with trusted
    /// signers, the `.sig` is read, its key checked against them and the
    /// signature verified over the whole archive (one read) — before any
    /// byte is decrypted. `None` when no signers are configured.
    pub fn check_provenance(
        &self,
        trust: &Trust,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Checked>> {
        let Trust::Signers(signers) = trust else {
            return Ok(None);
        };
        let label = self.label();
        if let ArchiveRef::Local(p) = self {
            if p.is_dir() {
                return Err(Error::refused(format!(
                    "{} is a legacy plaintext backup directory: it cannot be signed, and trusted signers are configured",
                    p.display()
                ))
                .hint("nothing was changed; restore a signed archive, or run without --signers (SECURECLAW_BACKUP_SIGNERS) if you trust this directory"));
            }
        }
        let sig = self.read_sig()?;
        // trust is judged before the archive is opened
        crate::sign::SigCheck::new(&label, &sig, signers, now)?;
        let mut r = self.open()?;
        Checked::verify(&label, sig, signers.clone(), now, &mut r).map(Some)
    }

    /// [`ArchiveRef::open_tar_stream`] for an archive that passed the gate:
    /// the bytes are read again through the same signature check; finish
    /// the guard (and bind the provenance, [`crate::sign::gate::bind`])
    /// before committing anything. Without `checked`, no guard.
    pub fn open_tar_stream_checked(
        &self,
        identities: &Identities,
        checked: Option<&Checked>,
    ) -> Result<(
        Format,
        crate::archive::pipeline::StageReader,
        Option<StreamGuard>,
    )> {
        let Some(c) = checked else {
            let (f, s) = self.open_tar_stream(identities)?;
            return Ok((f, s, None));
        };
        let (reader, guard) = c.guard(self.open()?)?;
        let (f, s) = crate::archive::pipeline::open_tar_reader(
            reader,
            &self.label(),
            "name the archive itself (not its .sig or .sha256); if it is, it is damaged",
            identities,
        )?;
        Ok((f, s, Some(guard)))
    }

    /// [`ArchiveRef::open_tar_stream_checked`], moving `pb` by the
    /// archive's bytes as decryption reads them (its total: the archive's
    /// size), for the progress of a restore.
    pub fn open_tar_stream_shown(
        &self,
        identities: &Identities,
        checked: Option<&Checked>,
        pb: Box<dyn crate::events::Progress>,
    ) -> Result<(
        Format,
        crate::archive::pipeline::StageReader,
        Option<StreamGuard>,
    )> {
        pb.set_total(match self {
            ArchiveRef::Local(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            ArchiveRef::Remote(r) => r.tier.size(&r.name).ok().flatten().unwrap_or(0),
        });
        let raw: Box<dyn Read + Send> = Box::new(crate::events::Reading::new(self.open()?, pb));
        let (reader, guard) = match checked {
            Some(c) => {
                let (r, g) = c.guard(raw)?;
                (r, Some(g))
            }
            None => (raw, None),
        };
        let (f, s) = crate::archive::pipeline::open_tar_reader(
            reader,
            &self.label(),
            "name the archive itself (not its .sig or .sha256); if it is, it is damaged",
            identities,
        )?;
        Ok((f, s, guard))
    }
}

/// [`ArchiveRef::check_provenance`] of entry `name` of any store (a link of
/// a chain, an archive `list` checks): its `<name>.sig` from the same store.
pub fn check_provenance_entry(
    store: &dyn Store,
    name: &str,
    trust: &Trust,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Checked>> {
    let Trust::Signers(signers) = trust else {
        return Ok(None);
    };
    let label = PathBuf::from(store.label(name));
    let sig_name = format!("{name}{}", crate::sign::SIG_SUFFIX);
    let Some(sig) = store.read_small(&sig_name)? else {
        return Err(Error::refused(format!(
            "{} has no signature ({} is missing), and trusted signers are configured",
            label.display(),
            store.label(&sig_name)
        ))
        .hint("nothing was read or changed; copy the .sig along with the archive, or use a signed archive (backup --sign-key)"));
    };
    crate::sign::SigCheck::new(&label, &sig, signers, now)?;
    let mut r = store.open(name)?;
    Checked::verify(&label, sig, signers.clone(), now, &mut r).map(Some)
}

/// [`ArchiveRef::inspect`] of entry `name` of any store: read in place when
/// the store is a local directory, else as an object.
pub fn inspect_entry(store: &dyn Store, name: &str) -> Result<HeaderInfo> {
    match store.local_path(name) {
        Some(p) => crypto::inspect(&p),
        None => inspect_object(store, name),
    }
}

/// [`ArchiveRef::sidecar_status`] of entry `name` of any store.
pub fn sidecar_status_entry(store: &dyn Store, name: &str) -> Result<SidecarStatus> {
    match store.local_path(name) {
        Some(p) => store::check_sidecar(&p),
        None => store::sidecar_status(store, name),
    }
}

/// The keyless check of a stored object (see [`ArchiveRef::inspect`]).
fn inspect_object(tier: &dyn Store, name: &str) -> Result<HeaderInfo> {
    let url = tier.label(name);
    let size = tier.size(name)?.ok_or_else(|| {
        Error::operational(format!("{url}: no such object"))
            .hint("check the name with `list --tier NAME`")
    })?;
    let head = tier.read_range(name, 0, 1 << 20)?;
    let bad = |what: String| {
        Error::integrity(format!("{url}: {what}")).hint(
            "the stored copy is damaged or was replaced; push it again or use another archive",
        )
    };
    match Format::detect(&head) {
        Some(Format::Age) => {
            let header = crypto::age::parse_header(&head)
                .map_err(|e| bad(format!("not a valid age file: {e}")))?;
            let payload = size - header.len as u64;
            if !crypto::age::payload_length_ok(payload) {
                return Err(bad(format!(
                        "not a valid age file: payload of {payload} bytes cannot be a complete age stream (truncated or padded)"
                    )));
            }
            Ok(HeaderInfo {
                format: Format::Age,
                recipients: header.recipients(),
                length: size,
            })
        }
        Some(Format::Gzip) => Ok(HeaderInfo {
            format: Format::Gzip,
            recipients: vec![],
            length: size,
        }),
        Some(_) => {
            let tmp = crate::paths::tmp_dir();
            let dir = tempfile::Builder::new()
                .prefix(".secureclaw-backup-inspect")
                .tempdir_in(&tmp)
                .map_err(|e| Error::io("creating a temporary directory in", &tmp, e))?;
            let path = dir.path().join(name);
            {
                let mut f = store::create_private(&path)?;
                let mut r = tier.open(name)?;
                io::copy(&mut r, &mut f)
                    .map_err(|e| crate::error::from_io(e, "spooling", &path))?;
            }
            crypto::inspect(&path).map_err(|mut e| {
                e.message = e.message.replace(&path.display().to_string(), &url);
                e
            })
        }
        None => Err(bad(
            "not an archive this tool knows: neither age, OpenPGP nor gzip".to_owned(),
        )),
    }
}

/// An ARCHIVE argument that names an archive in a store rather than a path
/// (README "Looking inside an archive"): `latest`, `latest:TYPE`, or a bare
/// file name (no `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// The newest archive of the type; of any type but `pre-restore` when `None`.
    Latest(Option<BackupType>),
    /// A file name without `/`, looked up in the store.
    Name(String),
}

impl Named {
    /// What `arg` names: `None` for a path (it has a `/`, or is `.`/`..`/empty);
    /// `latest:` with an unknown type is a usage error.
    pub fn parse(arg: &str) -> Result<Option<Named>> {
        if arg == "latest" {
            return Ok(Some(Named::Latest(None)));
        }
        if let Some(t) = arg.strip_prefix("latest:") {
            return match BackupType::parse(t) {
                Some(t) => Ok(Some(Named::Latest(Some(t)))),
                None => Err(Error::usage(format!(
                    "{arg:?}: unknown backup type {t:?}"
                ))
                .hint("write latest, or latest:daily, latest:weekly, latest:pre-deploy, latest:pre-restore")),
            };
        }
        if arg.is_empty() || arg.contains('/') || arg == "." || arg == ".." {
            return Ok(None);
        }
        Ok(Some(Named::Name(arg.to_owned())))
    }
}

/// The one resolution of a [`Named`] archive in `store`, for every command
/// that takes an ARCHIVE (restore, verify, ls, diff, drill).
///
/// `Latest`: the newest archive file (by the time and sequence in its name;
/// legacy directories are never "latest") of the type, or of any type but
/// `pre-restore`, among those `accept` takes (every one: `&|_| true`; a
/// caller can narrow it, e.g. to archives with a valid signature). `Name`:
/// that entry of the store, which must exist (`accept` is not asked: the
/// operator named it).
pub fn resolve_named(
    store: Box<dyn Store>,
    named: &Named,
    accept: &dyn Fn(&ArchiveName) -> bool,
) -> Result<ArchiveRef> {
    match named {
        Named::Latest(btype) => {
            let index = store::index(store.as_ref())?;
            let candidates: Vec<ArchiveName> = index
                .names()
                .into_iter()
                .filter(|a| a.container != store::Container::Directory)
                .filter(|a| match btype {
                    Some(t) => a.btype == *t,
                    None => a.btype != BackupType::PreRestore,
                })
                .collect();
            let what = match btype {
                Some(t) => format!("no {} archive", t.as_str()),
                None => "no archive".to_owned(),
            };
            // newest first, asking `accept` only until it takes one (a
            // signature check reads the whole archive)
            let mut by_age: Vec<&ArchiveName> = candidates.iter().collect();
            by_age.sort_by_key(|a| std::cmp::Reverse((a.time, a.seq)));
            let newest = by_age.into_iter().find(|a| accept(a)).cloned();
            match newest {
                Some(a) => ArchiveRef::in_store(store, &a.name),
                None if candidates.is_empty() => {
                    Err(Error::operational(format!("{what} in {}", store.url())).hint(
                        "make a backup first, or name the destination with --dest (or the tier with --tier)",
                    ))
                }
                None => Err(Error::operational(format!(
                    "{what} in {} is usable: none of the {} found was accepted",
                    store.url(),
                    candidates.len()
                ))
                .hint("see the warnings above, and `list` for what is there")),
            }
        }
        Named::Name(name) => {
            let exists = match store.local_path(name) {
                Some(p) => std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() || m.is_dir()),
                None => store.size(name)?.is_some(),
            };
            if !exists {
                return Err(Error::operational(format!(
                    "no archive {name:?} in {}",
                    store.url()
                ))
                .hint("see the names with `list` (or `list --tier NAME`), or give the archive's path"));
            }
            ArchiveRef::in_store(store, name)
        }
    }
}

impl From<&Path> for ArchiveRef {
    fn from(p: &Path) -> Self {
        ArchiveRef::Local(p.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    fn dest() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in [
            "daily_20261201_020000.tar.gz.age",
            "daily_20261201_020000_1.tar.gz.age",
            "weekly_20261130_020000.tar.gz.gpg",
            "pre-restore_20261202_020000.tar.gz.age",
            "notes.txt",
        ] {
            std::fs::write(t.path().join(f), b"x").unwrap();
        }
        // a legacy directory is never latest
        std::fs::create_dir(t.path().join("daily_20261203_000000")).unwrap();
        t
    }

    fn name_of(r: ArchiveRef) -> String {
        r.label()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn store(t: &tempfile::TempDir) -> Box<dyn Store> {
        Box::new(LocalStore::new(t.path()))
    }

    #[test]
    fn latest_is_the_newest_by_time_and_sequence_and_the_filter_narrows_it() {
        let t = dest();
        let all = |_: &ArchiveName| true;
        let latest = |n: &str, accept: &dyn Fn(&ArchiveName) -> bool| {
            let named = Named::parse(n).unwrap().unwrap();
            resolve_named(store(&t), &named, accept).map(name_of)
        };
        assert_eq!(
            latest("latest", &all).unwrap(),
            "daily_20261201_020000_1.tar.gz.age"
        );
        assert_eq!(
            latest("latest:weekly", &all).unwrap(),
            "weekly_20261130_020000.tar.gz.gpg"
        );
        assert_eq!(
            latest("latest:pre-restore", &all).unwrap(),
            "pre-restore_20261202_020000.tar.gz.age"
        );
        let not_seq = |a: &ArchiveName| a.seq == 0;
        assert_eq!(
            latest("latest:daily", &not_seq).unwrap(),
            "daily_20261201_020000.tar.gz.age"
        );
        let none = |_: &ArchiveName| false;
        let e = latest("latest", &none).unwrap_err();
        assert!(
            e.message.contains("none of the 3 found was accepted"),
            "{}",
            e.message
        );
        let e = latest("latest:pre-deploy", &all).unwrap_err();
        assert!(
            e.message.starts_with("no pre-deploy archive in"),
            "{}",
            e.message
        );
        // a bare name must be there; a legacy directory by name is
        assert_eq!(
            latest("weekly_20261130_020000.tar.gz.gpg", &none).unwrap(),
            "weekly_20261130_020000.tar.gz.gpg"
        );
        assert_eq!(
            latest("daily_20261203_000000", &all).unwrap(),
            "daily_20261203_000000"
        );
        let e = latest("daily_20200101_000000.tar.gz.age", &all).unwrap_err();
        assert!(e
            .message
            .starts_with("no archive \"daily_20200101_000000.tar.gz.age\""));
    }

    #[test]
    fn what_names_a_path_and_what_a_store_entry() {
        assert_eq!(Named::parse("latest").unwrap(), Some(Named::Latest(None)));
        assert_eq!(
            Named::parse("latest:daily").unwrap(),
            Some(Named::Latest(Some(BackupType::Daily)))
        );
        let e = Named::parse("latest:hourly").unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Usage);
        for path in ["./latest", "/abs/a.tar.gz.age", "dir/x", "", ".", ".."] {
            assert_eq!(Named::parse(path).unwrap(), None, "{path:?}");
        }
        assert_eq!(
            Named::parse("a.tar.gz.age").unwrap(),
            Some(Named::Name("a.tar.gz.age".to_owned()))
        );
    }
}
