//! What is backed up (DESIGN §4): a deterministic, streaming walk of the data
//! directory that yields directories and regular files in sorted order, applies
//! the backup type's selection and `--exclude` globs, and reports everything it
//! skips (lock files, sockets, FIFOs, devices, symlinks, the destination) as
//! manifest warnings. Symlinks are never followed.

use std::fs::{self, Metadata};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, IoContext, Result};
use crate::manifest::Warning;
use crate::store::BackupType;

/// Top-level directories left out of `daily` and `pre-deploy` backups.
pub const WEEKLY_ONLY: [&str; 2] = ["workspace", "logs"];

/// Selection rules for one run.
pub struct Selection {
    pub btype: BackupType,
    excludes: GlobSet,
    /// Absolute destination directory, skipped when it lies inside the source.
    pub dest: Option<PathBuf>,
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
        Ok(Selection {
            btype,
            excludes: b.build().map_err(|e| Error::usage(e.to_string()))?,
            dest,
        })
    }

    fn excluded_by_user(&self, rel: &str) -> bool {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        self.excludes.is_match(rel) || self.excludes.is_match(base)
    }
}

/// What the walk found.
pub enum Item<'a> {
    Dir {
        rel: &'a str,
        meta: &'a Metadata,
    },
    File {
        rel: &'a str,
        path: &'a Path,
        meta: &'a Metadata,
    },
}

/// Walks `root` in sorted order, calling `visit` for each directory (before its
/// children) and regular file; skipped entries are appended to `warnings`.
pub fn walk(
    root: &Path,
    sel: &Selection,
    warnings: &mut Vec<Warning>,
    visit: &mut dyn FnMut(Item<'_>) -> Result<()>,
) -> Result<()> {
    let meta = fs::symlink_metadata(root).at("reading source directory", root)?;
    if !meta.is_dir() {
        return Err(
            Error::operational(format!("source {} is not a directory", root.display()))
                .hint("pass the SecureClaw data directory with --source (default ~/.secureclaw)"),
        );
    }
    walk_dir(root, "", sel, warnings, visit)
}

fn warn(warnings: &mut Vec<Warning>, rel: &str, kind: &str, detail: impl Into<String>) {
    warnings.push(Warning {
        path: rel.to_owned(),
        kind: kind.to_owned(),
        detail: detail.into(),
    });
}

fn walk_dir(
    dir: &Path,
    rel_dir: &str,
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
        let Some(name) = name.to_str() else {
            warn(
                warnings,
                &format!("{rel_dir}{}", name.to_string_lossy()),
                "non-utf8-name",
                "file name is not UTF-8; not archived",
            );
            continue;
        };
        let rel = format!("{rel_dir}{name}");
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // vanished
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let ft = meta.file_type();
        if rel_dir.is_empty()
            && sel.btype != BackupType::Weekly
            && sel.btype != BackupType::PreRestore
            && WEEKLY_ONLY.contains(&name)
            && ft.is_dir()
        {
            continue;
        }
        if sel
            .dest
            .as_deref()
            .is_some_and(|d| crate::paths::absolute(&path) == d)
        {
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
            let target = fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            warn(
                warnings,
                &rel,
                "symlink",
                format!("symbolic link to {target:?}; not followed, not archived"),
            );
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
            walk_dir(&path, &format!("{rel}/"), sel, warnings, visit)?;
        } else if ft.is_file() {
            if name.ends_with(".lock") {
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
