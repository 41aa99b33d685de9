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
//! [`sidecar_status_entry`].

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::crypto::{self, Format, HeaderInfo, Identities};
use crate::error::{Error, Result};
use crate::store::{self, SidecarStatus, Store};

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

impl From<&Path> for ArchiveRef {
    fn from(p: &Path) -> Self {
        ArchiveRef::Local(p.to_owned())
    }
}
