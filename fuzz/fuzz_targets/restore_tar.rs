//! Arbitrary bytes as a tar stream, extracted under the restore rules into a
//! fresh staging directory. Whatever the input, afterwards: nothing beside the
//! staging directory, no symlinks/devices/FIFOs/sockets inside it, directories
//! 0700, files 0600 or 0700; a failure is a refusal or an integrity error
//! (never an operational error caused by archive contents); a success staged
//! exactly the files and directories it reports.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use secureclaw_backup::archive::extract::{extract, Limits, Sink, StagingSink};
use secureclaw_backup::ErrorKind;

fn walk(
    root: &Path,
    rel: &str,
    files: &mut BTreeMap<String, (u64, u32)>,
    dirs: &mut BTreeSet<String>,
) {
    let dir = if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(rel)
    };
    for e in fs::read_dir(&dir).expect("staging is readable") {
        let e = e.expect("readdir");
        let name = e.file_name().into_string().expect("staged names are UTF-8");
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let m = fs::symlink_metadata(e.path()).expect("lstat");
        let mode = m.permissions().mode() & 0o7777;
        let ft = m.file_type();
        if ft.is_dir() {
            assert_eq!(mode, 0o700, "directory {r} has mode {mode:o}");
            dirs.insert(r.clone());
            walk(root, &r, files, dirs);
        } else if ft.is_file() {
            assert!(mode == 0o600 || mode == 0o700, "file {r} has mode {mode:o}");
            files.insert(r, (m.len(), mode));
        } else {
            panic!("staged entry {r} is neither a file nor a directory: {ft:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let base = tempfile::tempdir().expect("tempdir");
    let stage = base.path().join("stage");
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&stage)
        .expect("mkdir");
    let limits = Limits {
        max_entries: 256,
        max_total_bytes: 1 << 20,
        max_path_len: 1024,
        max_component_len: 255,
    };
    let mut sink = StagingSink::new(&stage);
    let res = extract(data, &mut sink as &mut dyn Sink, &limits);

    let beside: Vec<_> = fs::read_dir(base.path())
        .expect("readdir")
        .map(|e| e.expect("readdir").file_name())
        .collect();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("stage")],
        "something was created beside the staging dir"
    );
    let mode = fs::symlink_metadata(&stage)
        .expect("lstat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o700);

    let mut files = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    walk(&stage, "", &mut files, &mut dirs);
    match res {
        Ok(out) => {
            assert!(!out.top.is_empty());
            assert!(out.bytes <= limits.max_total_bytes);
            let staged: BTreeSet<&String> = files.keys().collect();
            let reported: BTreeSet<&String> = out.files.keys().collect();
            assert_eq!(
                staged, reported,
                "staged files differ from the reported ones"
            );
            assert_eq!(
                dirs, out.dirs,
                "staged directories differ from the reported ones"
            );
            for (p, info) in &out.files {
                let (size, mode) = files[p];
                assert_eq!(size, info.size, "{p}: staged size");
                assert_eq!(
                    mode,
                    if info.executable { 0o700 } else { 0o600 },
                    "{p}: mode"
                );
            }
        }
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::Refused | ErrorKind::Integrity),
            "archive contents caused a {:?} error: {}",
            e.kind,
            e.message
        ),
    }
});
