//! What is backed up: a deterministic, streaming walk of the data directory
//! that yields directories, regular files and in-tree symlinks in sorted
//! order, applies the backup type's selection and `--exclude` globs, and
//! reports everything it skips (lock files, sockets, FIFOs, devices, symlinks
//! that are absolute or leave the tree, the destination) as manifest warnings.
//!
//! Names are bytes: any name Linux allows (not UTF-8, backslashes, newlines)
//! is archived. The root may be a symlink (`~/.secureclaw` → `/data/…`): it is
//! resolved once; symlinks inside the tree are never followed.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, IoContext, Result};
use crate::manifest::{RelPath, Warning};
use crate::store::BackupType;

/// Top-level directories left out of `daily` and `pre-deploy` backups.
pub const WEEKLY_ONLY: [&str; 2] = ["workspace", "logs"];

/// Selection rules for one run.
pub struct Selection {
    pub btype: BackupType,
    excludes: GlobSet,
    /// Absolute destination directory, skipped when it lies inside the source.
    pub dest: Option<PathBuf>,
    /// Its device and inode (found however the source is reached).
    dest_id: Option<(u64, u64)>,
}

impl Selection {
    pub fn new(btype: BackupType, excludes: &[String], dest: Option<PathBuf>) -> Result<Self> {
        let mut b = GlobSetBuilder::new();
        for pat in excludes {
            let g = GlobBuilder::new(pat)
                .literal_separator(false)
                .build()
                .map_err(|e| {
                    Error::usage(format!("--exclude {pat:?} is not a valid glob: {e}"))
                        .hint("use shell-style globs such as 'workspace/tmp/**' or '*.bak'")
                })?;
            b.add(g);
        }
        let dest_id = dest
            .as_deref()
            .and_then(|d| fs::metadata(d).ok())
            .map(|m| (m.dev(), m.ino()));
        Ok(Selection {
            btype,
            excludes: b.build().map_err(|e| Error::usage(e.to_string()))?,
            dest,
            dest_id,
        })
    }

    fn excluded_by_user(&self, rel: &[u8]) -> bool {
        let base = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
        self.excludes.is_match(Path::new(OsStr::from_bytes(rel)))
            || self.excludes.is_match(Path::new(OsStr::from_bytes(base)))
    }

    fn is_dest(&self, path: &Path, meta: &Metadata) -> bool {
        self.dest_id == Some((meta.dev(), meta.ino()))
            || self
                .dest
                .as_deref()
                .is_some_and(|d| crate::paths::absolute(path) == d)
    }
}

/// What the walk found.
pub enum Item<'a> {
    Dir {
        rel: &'a [u8],
        meta: &'a Metadata,
    },
    File {
        rel: &'a [u8],
        path: &'a Path,
        meta: &'a Metadata,
    },
    /// A relative symlink that resolves inside the tree (see
    /// [`crate::archive::extract::check_link_target`]).
    Symlink {
        rel: &'a [u8],
        target: &'a [u8],
        meta: &'a Metadata,
    },
}

/// The directory a backup of `root` reads: `root` itself, or where it points
/// when it is a symlink (only the root is resolved, never an entry inside).
pub fn resolve_root(root: &Path) -> Result<PathBuf> {
    let meta = fs::symlink_metadata(root).at("reading source directory", root)?;
    let resolved = if meta.file_type().is_symlink() {
        fs::canonicalize(root).at("resolving the source symlink", root)?
    } else {
        root.to_owned()
    };
    let meta = fs::symlink_metadata(&resolved).at("reading source directory", &resolved)?;
    if !meta.is_dir() {
        return Err(
            Error::operational(format!("source {} is not a directory", root.display()))
                .hint("pass the SecureClaw data directory with --source (default ~/.secureclaw)"),
        );
    }
    Ok(resolved)
}

/// Walks `root` (resolved by [`resolve_root`]) in sorted order, calling
/// `visit` for each directory (before its children), regular file and
/// in-tree symlink; skipped entries are appended to `warnings`.
pub fn walk(
    root: &Path,
    sel: &Selection,
    warnings: &mut Vec<Warning>,
    visit: &mut dyn FnMut(Item<'_>) -> Result<()>,
) -> Result<()> {
    let root = resolve_root(root)?;
    walk_dir(&root, b"", sel, warnings, visit)
}

fn warn(warnings: &mut Vec<Warning>, rel: &[u8], kind: &str, detail: impl Into<String>) {
    warnings.push(Warning {
        path: RelPath::from(rel),
        kind: kind.to_owned(),
        detail: detail.into(),
    });
}

fn walk_dir(
    dir: &Path,
    rel_dir: &[u8],
    sel: &Selection,
    warnings: &mut Vec<Warning>,
    visit: &mut dyn FnMut(Item<'_>) -> Result<()>,
) -> Result<()> {
    crate::process::check_interrupted()?;
    let mut names: Vec<_> = fs::read_dir(dir)
        .at("listing", dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .at("listing", dir)?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let name = name.as_bytes();
        let mut rel = rel_dir.to_vec();
        rel.extend_from_slice(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // vanished
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let ft = meta.file_type();
        if rel_dir.is_empty()
            && sel.btype != BackupType::Weekly
            && sel.btype != BackupType::PreRestore
            && WEEKLY_ONLY.iter().any(|w| w.as_bytes() == name)
            && ft.is_dir()
        {
            continue;
        }
        if ft.is_dir() && sel.is_dest(&path, &meta) {
            warn(
                warnings,
                &rel,
                "excluded-destination",
                "the backup destination lies inside the source; not archived",
            );
            continue;
        }
        if sel.excluded_by_user(&rel) {
            continue;
        }
        if ft.is_symlink() {
            let target = match fs::read_link(&path) {
                Ok(t) => t.into_os_string().into_vec(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("reading link", &path, e)),
            };
            match crate::archive::extract::check_link_target(&rel, &target) {
                Ok(()) => visit(Item::Symlink {
                    rel: &rel,
                    target: &target,
                    meta: &meta,
                })?,
                Err(why) => warn(
                    warnings,
                    &rel,
                    "symlink",
                    format!(
                        "symbolic link to {:?} ({why}); not followed, not archived",
                        crate::manifest::show(&target)
                    ),
                ),
            }
        } else if ft.is_socket() {
            warn(warnings, &rel, "socket", "socket; not archived");
        } else if ft.is_fifo() {
            warn(warnings, &rel, "fifo", "named pipe; not archived");
        } else if ft.is_block_device() || ft.is_char_device() {
            warn(warnings, &rel, "device", "device node; not archived");
        } else if ft.is_dir() {
            visit(Item::Dir {
                rel: &rel,
                meta: &meta,
            })?;
            rel.push(b'/');
            walk_dir(&path, &rel, sel, warnings, visit)?;
        } else if ft.is_file() {
            if name.ends_with(b".lock") {
                warn(warnings, &rel, "lock-file", "lock file; not archived");
                continue;
            }
            visit(Item::File {
                rel: &rel,
                path: &path,
                meta: &meta,
            })?;
        }
    }
    Ok(())
}
