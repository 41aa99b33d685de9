//! Legacy backups: the old scripts' plaintext backup directories, streamed as
//! a tar through the same checks as an archive, and the transcripts their
//! daily script misplaced.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::archive::pipeline;
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::store::BackupType;

/// Streams a legacy plaintext backup directory as a tar under its own name.
pub(super) fn directory_stream(dir: &Path) -> Result<pipeline::StageReader> {
    let top = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::usage(format!("{} has no name", dir.display())))?;
    let dir = dir.to_owned();
    let (w, r) = pipeline::pipe();
    std::thread::spawn(move || {
        let mut aw = crate::archive::writer::ArchiveWriter::new(w, &top);
        let sel = match crate::source::Selection::new(BackupType::Weekly, &[], None) {
            Ok(s) => s,
            Err(e) => {
                let w = aw.finish_without_manifest().ok();
                if let Some(w) = w {
                    w.fail(crate::error::into_io(e));
                }
                return;
            }
        };
        let mut warnings = Vec::new();
        let res = aw.add_top_unmarked(0).and_then(|_| {
            crate::source::walk(&dir, &sel, &mut warnings, &mut |item| {
                use std::os::unix::fs::MetadataExt;
                match item {
                    crate::source::Item::Dir { rel, meta } => aw.add_dir(rel, 0o700, meta.mtime()),
                    crate::source::Item::File { rel, path, .. } => aw.add_file(rel, path),
                    crate::source::Item::Symlink { rel, target, meta } => {
                        aw.add_symlink(rel, target, meta.mtime())
                    }
                }
            })
        });
        match (res, aw.finish_without_manifest()) {
            (Ok(()), Ok(_w)) => {}
            (Err(e), Ok(w)) => w.fail(crate::error::into_io(e)),
            _ => {}
        }
    });
    Ok(r)
}

/// The old daily script copied `agents/<id>/sessions` into `agents/<id>/`
/// before that directory existed, so transcripts landed in `agents/<id>/`.
/// Moves such files back under `sessions/` (legacy archives only).
pub(super) fn fix_legacy_transcripts(staging: &Path, events: &dyn Events) -> Result<Vec<String>> {
    let mut moved = Vec::new();
    let agents = staging.join("agents");
    let Ok(rd) = fs::read_dir(&agents) else {
        return Ok(moved);
    };
    for a in rd.flatten() {
        if !a.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let mut misplaced = Vec::new();
        for f in fs::read_dir(a.path()).at("listing", &a.path())?.flatten() {
            let n = f.file_name();
            let b = n.as_bytes();
            let is_file = f.file_type().map(|t| t.is_file()).unwrap_or(false);
            if is_file && (b.ends_with(b".jsonl") || b == b"sessions.json") {
                misplaced.push(n);
            }
        }
        if misplaced.is_empty() {
            continue;
        }
        let sessions = a.path().join("sessions");
        if fs::symlink_metadata(&sessions).is_ok_and(|m| !m.is_dir()) {
            // `sessions` is not a directory in this archive: leave it as it is
            continue;
        }
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&sessions)
                .at("creating", &sessions)?;
        }
        for n in misplaced {
            let to = sessions.join(&n);
            if to.exists() {
                continue;
            }
            fs::rename(a.path().join(&n), &to).at("moving", &to)?;
            let rel = [b"agents", a.file_name().as_bytes(), n.as_bytes()].join(&b'/');
            moved.push(crate::manifest::show(&rel));
        }
    }
    if !moved.is_empty() {
        events.warn(format!(
            "legacy archive: moved {} transcript file(s) that the old daily script misplaced back under agents/<id>/sessions/",
            moved.len()
        ));
    }
    Ok(moved)
}
