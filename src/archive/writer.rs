//! Building the tar stream. A file is archived with exactly the size its tar
//! header announces: read bounded, zero-padded if it shrank, and reported as a
//! warning if it changed while it was read, so the archive is always valid.
//!
//! Names are written as their bytes (GNU long-name records beyond 100
//! bytes, which GNU tar reads), with the mtime in seconds; in-tree symlinks
//! are symlink entries (GNU long-link records for long targets). The two
//! manifest entries come last, each marked by a PAX `comment` record.
//!
//! Archives of an incremental chain (README "Incremental backups") write each
//! directory as a GNU dumpdir entry (type `D`, what `tar --format=gnu
//! --listed-incremental` writes): its data lists every name the directory
//! holds at this point ([`dumpdir`]), so `tar --listed-incremental=/dev/null
//! -x` deletes what is gone. The type `D` member carries the list as data,
//! not as the `GNU.dumpdir` PAX record of `--format=posix`, because names may
//! contain newlines, which the tar crate's PAX parser cannot take in a value;
//! GNU tar reads both. Unchanged files are not stored, only recorded
//! ([`ArchiveWriter::record`]) for the manifest.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::manifest::{
    CountingWriter, Entry, EntryKind, LinkManifest, Manifest, Mode, RelPath, Sha256Digest, Warning,
};

/// The control character of a dumpdir entry: what the archive does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    /// `Y`: a non-directory stored in this archive.
    Stored,
    /// `N`: a non-directory not stored here (unchanged since the previous link).
    Unchanged,
    /// `D`: a directory (always stored, with its own dumpdir).
    Dir,
}

impl Dump {
    pub fn code(self) -> u8 {
        match self {
            Dump::Stored => b'Y',
            Dump::Unchanged => b'N',
            Dump::Dir => b'D',
        }
    }
}

/// The GNU dumpdir of a directory: for each child (names in byte order, as
/// GNU tar writes them) its control character, the name and a NUL, then one
/// more NUL. An empty directory's dumpdir is a single NUL.
pub fn dumpdir<'a>(children: impl IntoIterator<Item = (Dump, &'a [u8])>) -> Vec<u8> {
    let mut v: Vec<(Dump, &[u8])> = children.into_iter().collect();
    v.sort_by(|a, b| a.1.cmp(b.1));
    let mut out = Vec::new();
    for (d, name) in v {
        out.push(d.code());
        out.extend_from_slice(name);
        out.push(0);
    }
    out.push(0);
    out
}

/// What [`ArchiveWriter::finish_doc`] needs of a manifest.
struct Doc<'a> {
    entries: &'a [Entry],
    txt: String,
    json_len: u64,
    write_json: &'a dyn Fn(&mut dyn Write) -> io::Result<()>,
    to_json: &'a dyn Fn() -> Vec<u8>,
}

/// Writes tar entries under `<top>/`.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    top: String,
    pub entries: Vec<Entry>,
    pub warnings: Vec<Warning>,
    pub bytes: u64,
}

fn mode_bits(mode: u32) -> Mode {
    Mode((mode & 0o7777) as u16)
}

/// A failed write of the tar stream (the layers below: gzip, encryption,
/// the archive file).
fn write_error(e: io::Error) -> Error {
    Error::operational(format!("writing the archive: {e}"))
        .hint("check free space and permissions where the archive is written, then run again")
}

fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode & 0o7777);
    h.set_mtime(mtime.max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// What reading a file for its entry saw.
#[derive(Debug)]
pub struct ReadOutcome {
    /// Zero bytes appended because the file ended early (it shrank).
    pub padded: u64,
    /// Whether the file had more bytes after the archived ones.
    pub more_after: bool,
    /// Its metadata after the read.
    pub after: Option<std::fs::Metadata>,
}

/// Reads exactly `size` bytes from a file that may change under us: stops at
/// `size`, pads with zeros when the file ends early, and hashes what it yields.
struct BoundedReader<'a> {
    inner: io::Take<&'a mut File>,
    remaining: u64,
    padded: u64,
    hasher: Sha256,
}

impl Read for BoundedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        // a large file must not delay the reaction to Ctrl-C/SIGTERM
        crate::process::check_interrupted().map_err(crate::error::into_io)?;
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            // the file shrank: pad to the announced size
            n = want;
            buf[..n].fill(0);
            self.padded += n as u64;
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(out: W, top: &str) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        ArchiveWriter {
            tar,
            top: top.to_owned(),
            entries: Vec::new(),
            warnings: Vec::new(),
            bytes: 0,
        }
    }

    fn full_path(&self, rel: &[u8]) -> Vec<u8> {
        let mut path = Vec::with_capacity(self.top.len() + 1 + rel.len());
        path.extend_from_slice(self.top.as_bytes());
        path.push(b'/');
        path.extend_from_slice(rel);
        path
    }

    fn append(&mut self, mut h: tar::Header, rel: &[u8], data: impl Read) -> io::Result<()> {
        let path = self.full_path(rel);
        self.tar
            .append_data(&mut h, Path::new(OsStr::from_bytes(&path)), data)
    }

    /// The top-level directory entry, with the mark of this archive version
    /// (only the marked entries are the manifest: see [`crate::manifest`]).
    pub fn add_top(&mut self, mtime: i64) -> Result<()> {
        self.tar
            .append_pax_extensions([("comment", crate::manifest::ARCHIVE_MARK.as_bytes())])
            .map_err(write_error)?;
        self.add_top_unmarked(mtime)
    }

    /// The top-level directory entry of a stream without a manifest (a legacy
    /// directory read as a tar): its `manifest.txt` stays the old script's.
    pub fn add_top_unmarked(&mut self, mtime: i64) -> Result<()> {
        let h = header(tar::EntryType::Directory, 0, 0o700, mtime);
        self.append(h, b"", io::empty()).map_err(write_error)
    }

    /// The top-level directory of a chain archive: marked, with its dumpdir.
    pub fn add_top_dumpdir(&mut self, mtime: i64, dumpdir: &[u8]) -> Result<()> {
        self.tar
            .append_pax_extensions([("comment", crate::manifest::ARCHIVE_MARK.as_bytes())])
            .map_err(write_error)?;
        let h = header(
            tar::EntryType::new(b'D'),
            dumpdir.len() as u64,
            0o700,
            mtime,
        );
        self.append(h, b"", dumpdir).map_err(write_error)
    }

    /// A directory of a chain archive: a GNU dumpdir entry (type `D`) whose
    /// data is `dumpdir` (see [`dumpdir`]).
    pub fn add_dumpdir(&mut self, rel: &[u8], mode: u32, mtime: i64, dumpdir: &[u8]) -> Result<()> {
        let h = header(tar::EntryType::new(b'D'), dumpdir.len() as u64, mode, mtime);
        self.dir_entry(h, rel, mode, mtime, dumpdir)
    }

    /// Records an entry an earlier link of the chain stored (an unchanged
    /// file) for the manifest, without writing anything.
    pub fn record(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    pub fn add_dir(&mut self, rel: &[u8], mode: u32, mtime: i64) -> Result<()> {
        let h = header(tar::EntryType::Directory, 0, mode, mtime);
        self.dir_entry(h, rel, mode, mtime, &[][..])
    }

    /// A directory entry `rel/` with header `h` and `data` (a dumpdir, or
    /// nothing), recorded for the manifest.
    fn dir_entry(
        &mut self,
        h: tar::Header,
        rel: &[u8],
        mode: u32,
        mtime: i64,
        data: &[u8],
    ) -> Result<()> {
        let mut with_slash = rel.to_vec();
        with_slash.push(b'/');
        self.append(h, &with_slash, data).map_err(write_error)?;
        self.entries.push(Entry {
            path: RelPath::from(rel),
            kind: EntryKind::Dir,
            size: 0,
            mode: mode_bits(mode),
            sha256: None,
            mtime: Some(mtime.max(0)),
            target: None,
        });
        Ok(())
    }

    /// A symlink entry `rel` → `target` (the caller checked that the target
    /// is relative and stays inside the tree).
    pub fn add_symlink(&mut self, rel: &[u8], target: &[u8], mtime: i64) -> Result<()> {
        let mut h = header(tar::EntryType::Symlink, 0, 0o777, mtime);
        let path = self.full_path(rel);
        self.tar
            .append_link(
                &mut h,
                Path::new(OsStr::from_bytes(&path)),
                Path::new(OsStr::from_bytes(target)),
            )
            .map_err(write_error)?;
        self.entries.push(Entry {
            path: RelPath::from(rel),
            kind: EntryKind::Symlink,
            size: 0,
            mode: Mode(0o777),
            sha256: None,
            mtime: Some(mtime.max(0)),
            target: Some(RelPath::from(target)),
        });
        Ok(())
    }

    /// Archives the regular file at `path` as `rel`. The size is taken from the
    /// open descriptor; changes while reading become a warning.
    pub fn add_file(&mut self, rel: &[u8], path: &Path) -> Result<()> {
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warn(
                    rel,
                    "vanished",
                    "deleted while the backup ran; not archived",
                );
                return Ok(());
            }
            Err(e) => return Err(Error::io("opening", path, e)),
        };
        let meta = file.metadata().at("reading metadata of", path)?;
        if !meta.is_file() {
            self.warn(
                rel,
                "replaced",
                "no longer a regular file when opened; not archived",
            );
            return Ok(());
        }
        self.add_open_file(rel, path, &mut file, &meta)
    }

    /// Archives an already open regular file (also used for staged captures).
    pub fn add_open_file(
        &mut self,
        rel: &[u8],
        path: &Path,
        file: &mut File,
        meta: &std::fs::Metadata,
    ) -> Result<()> {
        let size = meta.len();
        let o = self.add_open_file_as(rel, path, file, size, meta.mode(), meta.mtime())?;
        // did it change while we read it?
        let changed = o.after.as_ref().is_some_and(|a| {
            a.mtime() != meta.mtime() || a.mtime_nsec() != meta.mtime_nsec() || a.len() != size
        });
        if o.padded > 0 {
            self.warn(
                rel,
                "changed-while-read",
                format!(
                    "shrank while read; {} bytes zero-padded to the archived size {size}",
                    o.padded
                ),
            );
        } else if o.more_after {
            self.warn(
                rel,
                "changed-while-read",
                format!("grew while read; archived its first {size} bytes"),
            );
        } else if changed {
            self.warn(
                rel,
                "changed-while-read",
                "modified while read; archived content may mix old and new data",
            );
        }
        Ok(())
    }

    /// Archives the first `size` bytes of an open file as `rel` with the given
    /// mode and mtime (a staged snapshot keeps its original's), records the
    /// entry, and reports what the read saw; warnings are left to the caller.
    /// Stops with an error if a termination signal arrives while reading.
    pub fn add_open_file_as(
        &mut self,
        rel: &[u8],
        path: &Path,
        file: &mut File,
        size: u64,
        mode: u32,
        mtime: i64,
    ) -> Result<ReadOutcome> {
        let h = header(tar::EntryType::Regular, size, mode, mtime);
        let mut reader = BoundedReader {
            inner: file.take(size),
            remaining: size,
            padded: 0,
            hasher: Sha256::new(),
        };
        let res = self.append(h, rel, &mut reader);
        if let Err(e) = res {
            if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
                return Err(inner.clone());
            }
            // a read error of the source vs. a write error of the archive
            return Err(
                Error::operational(format!("archiving {}: {e}", path.display()))
                    .hint("check the file and the destination's free space, then run again"),
            );
        }
        let padded = reader.padded;
        let digest = Sha256Digest(reader.hasher.finalize().into());
        let after = file.metadata().ok();
        let mut more_after = false;
        let mut remaining_probe = [0u8; 1];
        if padded == 0 {
            more_after = file
                .read(&mut remaining_probe)
                .map(|n| n > 0)
                .unwrap_or(false);
        }
        self.entries.push(Entry {
            path: RelPath::from(rel),
            kind: EntryKind::File,
            size,
            mode: mode_bits(mode),
            sha256: Some(digest),
            mtime: Some(mtime.max(0)),
            target: None,
        });
        self.bytes += size;
        Ok(ReadOutcome {
            padded,
            more_after,
            after,
        })
    }

    pub fn warn(&mut self, rel: &[u8], kind: &str, detail: impl Into<String>) {
        self.warnings.push(Warning {
            path: RelPath::from(rel),
            kind: kind.to_owned(),
            detail: detail.into(),
        });
    }

    /// Ends the tar without a manifest (a legacy directory read as a stream).
    pub fn finish_without_manifest(self) -> Result<W> {
        self.tar.into_inner().map_err(write_error)
    }

    /// Appends `manifest.txt` and `manifest.json` (last, each marked by its
    /// PAX `comment`, under names the data's top level does not use: see
    /// [`crate::manifest::manifest_names`]), ends the tar and returns the
    /// inner writer, which the caller must still finish.
    /// `manifest.json` is serialized twice — once to learn its length for the
    /// tar header, once straight into the stream — rather than held in memory
    /// (tens of MB for 200 000 files).
    pub fn finish(self, manifest: &Manifest, mtime: i64) -> Result<W> {
        let doc = Doc {
            entries: &manifest.entries,
            txt: manifest.to_text(),
            json_len: manifest.json_len(),
            write_json: &|w| manifest.write_json(w),
            to_json: &|| manifest.to_json(),
        };
        self.finish_doc(doc, mtime)
    }

    /// [`ArchiveWriter::finish`] for an archive of a chain: its manifest
    /// carries the chain.
    pub fn finish_link(self, manifest: &LinkManifest, mtime: i64) -> Result<W> {
        let doc = Doc {
            entries: &manifest.manifest.entries,
            txt: manifest.to_text(),
            json_len: manifest.json_len(),
            write_json: &|w| manifest.write_json(w),
            to_json: &|| manifest.to_json(),
        };
        self.finish_doc(doc, mtime)
    }

    fn finish_doc(mut self, doc: Doc<'_>, mtime: i64) -> Result<W> {
        let taken: std::collections::BTreeSet<&[u8]> = doc
            .entries
            .iter()
            .map(|e| e.path.as_bytes())
            .filter(|p| !p.contains(&b'/'))
            .collect();
        let (txt_name, json_name) = crate::manifest::manifest_names(&taken);
        let txt = doc.txt;
        self.tar
            .append_pax_extensions([("comment", crate::manifest::TXT_MARK.as_bytes())])
            .map_err(write_error)?;
        self.append(
            header(tar::EntryType::Regular, txt.len() as u64, 0o600, mtime),
            txt_name.as_bytes(),
            txt.as_bytes(),
        )
        .map_err(write_error)?;
        self.tar
            .append_pax_extensions([("comment", crate::manifest::JSON_MARK.as_bytes())])
            .map_err(write_error)?;
        let len = doc.json_len;
        let path = format!("{}/{json_name}", self.top);
        let mut h = header(tar::EntryType::Regular, len, 0o600, mtime);
        if path.len() < 100 && h.set_path(&path).is_ok() {
            h.set_cksum();
            let out = self.tar.get_mut();
            out.write_all(h.as_bytes()).map_err(write_error)?;
            let mut counted = CountingWriter {
                inner: &mut *out,
                count: 0,
            };
            (doc.write_json)(&mut counted).map_err(write_error)?;
            if counted.count != len {
                return Err(Error::operational(format!(
                    "manifest.json came out as {} bytes, announced {len}",
                    counted.count
                )));
            }
            let pad = ((512 - len % 512) % 512) as usize;
            out.write_all(&[0u8; 512][..pad]).map_err(write_error)?;
        } else {
            // a top-level name too long for a plain header: tar writes the
            // long-name extension, from a buffer
            let json = (doc.to_json)();
            self.append(h, json_name.as_bytes(), &json[..])
                .map_err(write_error)?;
        }
        self.tar.into_inner().map_err(write_error)
    }
}
