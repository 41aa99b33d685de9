//! Arbitrary bytes as a tar stream, extracted under the restore rules into a
//! fresh staging directory. Whatever the input, afterwards: nothing beside the
//! staging directory, no devices/FIFOs/sockets inside it, symlinks only as
//! reported (relative, inside the tree), directories 0700, files 0600 or
//! 0700; a failure is a refusal or an integrity error (never an operational
//! error caused by archive contents); a success staged exactly the files,
//! directories and symlinks it reports.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use secureclaw_backup::archive::extract::{check_link_target, extract, Limits, Sink, StagingSink};
use secureclaw_backup::ErrorKind;

fn walk(
    root: &Path,
    rel: &[u8],
    files: &mut BTreeMap<Vec<u8>, (u64, u32)>,
    dirs: &mut BTreeSet<Vec<u8>>,
    links: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let dir = if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    };
    for e in fs::read_dir(&dir).expect("staging is readable") {
        let e = e.expect("readdir");
        let name = e.file_name();
        let r = if rel.is_empty() {
            name.as_bytes().to_vec()
        } else {
            [rel, name.as_bytes()].join(&b'/')
        };
        let shown = String::from_utf8_lossy(&r).into_owned();
        let m = fs::symlink_metadata(e.path()).expect("lstat");
        let mode = m.permissions().mode() & 0o7777;
        let ft = m.file_type();
        if ft.is_dir() {
            assert_eq!(mode, 0o700, "directory {shown} has mode {mode:o}");
            dirs.insert(r.clone());
            walk(root, &r, files, dirs, links);
        } else if ft.is_file() {
            assert!(
                mode == 0o600 || mode == 0o700,
                "file {shown} has mode {mode:o}"
            );
            files.insert(r, (m.len(), mode));
        } else if ft.is_symlink() {
            let t = fs::read_link(e.path()).expect("readlink");
            let t = t.as_os_str().as_bytes().to_vec();
            assert!(
                check_link_target(&r, &t).is_ok(),
                "symlink {shown} leaves the tree"
            );
            links.insert(r, t);
        } else {
            panic!("staged entry {shown} is neither a file, a directory nor a symlink: {ft:?}");
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
        max_rel_len: 1024,
    };
    let mut sink = StagingSink::new(&stage).expect("staging opens");
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
    let mut links = BTreeMap::new();
    walk(&stage, b"", &mut files, &mut dirs, &mut links);
    match res {
        Ok(out) => {
            assert!(!out.top.is_empty());
            assert!(out.bytes <= limits.max_total_bytes);
            let staged: BTreeSet<&[u8]> = files.keys().map(Vec::as_slice).collect();
            let reported: BTreeSet<&[u8]> = out.files.keys().map(|k| k.as_bytes()).collect();
            assert_eq!(
                staged, reported,
                "staged files differ from the reported ones"
            );
            let reported: BTreeSet<Vec<u8>> =
                out.dirs.iter().map(|d| d.as_bytes().to_vec()).collect();
            assert_eq!(
                dirs, reported,
                "staged directories differ from the reported ones"
            );
            let reported: BTreeMap<Vec<u8>, Vec<u8>> = out
                .symlinks
                .iter()
                .map(|(k, l)| (k.as_bytes().to_vec(), l.target.as_bytes().to_vec()))
                .collect();
            assert_eq!(
                links, reported,
                "staged symlinks differ from the reported ones"
            );
            for (p, info) in &out.files {
                let (size, mode) = files[p.as_bytes()];
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
