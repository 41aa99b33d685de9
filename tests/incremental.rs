//! Incremental chains at library level (README "Incremental backups"): a
//! full and three links written by `incremental::write_link`, applied in
//! order by real GNU tar (`tar --listed-incremental=/dev/null -xzf`) and by
//! our extractor (`extract_link` into a staging directory), each compared
//! with the source tree as it was at that link; hostile dumpdirs refused;
//! a chain made by GNU tar itself read by our extractor.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use secureclaw_backup::archive::extract::{self, Discard, Limits, Outcome, StagingSink};
use secureclaw_backup::archive::writer::{dumpdir, ArchiveWriter, Dump};
use secureclaw_backup::capture::LiveOptions;
use secureclaw_backup::events::{Collect, ProgressCall, Silent};
use secureclaw_backup::incremental::{
    decide, load_state, save_state, write_link, ChainPolicy, LinkOptions, LinkOutput, Loaded,
    NewChain, Plan, State,
};
use secureclaw_backup::manifest::LinkManifest;
use secureclaw_backup::source::Selection;
use secureclaw_backup::store::BackupType;
use secureclaw_backup::ErrorKind;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir(i64),
    File(Vec<u8>, i64),
    Link(Vec<u8>),
}

/// Every path below `root` with its kind, content/target and mtime.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    fn walk(dir: &Path, rel: &[u8], out: &mut BTreeMap<Vec<u8>, Node>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let mut r = rel.to_vec();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(e.file_name().as_bytes());
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(r, Node::Link(t.as_os_str().as_bytes().to_vec()));
            } else if m.is_dir() {
                walk(&p, &r.clone(), out);
                out.insert(r, Node::Dir(m.mtime()));
            } else {
                out.insert(r, Node::File(std::fs::read(&p).unwrap(), m.mtime()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, b"", &mut out);
    out
}

fn p(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

fn write(root: &Path, rel: &[u8], data: &[u8]) {
    let path = p(root, rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn time(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
}

/// One archive of the chain through the library: the plan from the state,
/// the tar stream from `write_link`, gzip'd; returns the archive's bytes,
/// the committed state and what was written.
fn link(
    src: &Path,
    prev: Option<&State>,
    present: &BTreeSet<String>,
    h: u32,
    reread: bool,
) -> (Vec<u8>, State, LinkOutput<()>, Plan) {
    let loaded = match prev {
        Some(s) => Loaded::Found(s.clone()),
        None => Loaded::Missing,
    };
    // names only: sizes unknown (0), so --max-chain-size never cuts here
    let present: BTreeMap<String, u64> = present.iter().map(|n| (n.clone(), 0)).collect();
    let plan = decide(&loaded, &present, &ChainPolicy::default(), time(h));
    let stem = format!("weekly_20261201_{h:02}0000");
    let opts = LinkOptions {
        btype: BackupType::Weekly,
        source: src.to_owned(),
        stem: stem.clone(),
        now: time(h),
        host: "test".into(),
        recipients: vec![],
        reread,
        live: LiveOptions::default(),
    };
    let sel = Selection::new(BackupType::Weekly, &[], None).unwrap();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let events = Collect::default();
    let out = write_link(gz, &opts, &sel, &plan, prev, &events).unwrap();
    // progress: a total known before the first byte, covering what is
    // stored, and movement by every byte of the tar stream
    let calls = events.progress_calls();
    let start = calls
        .iter()
        .position(|c| matches!(c, ProgressCall::Start(_, w) if w == "backup"))
        .unwrap_or_else(|| panic!("{calls:?}"));
    let ProgressCall::SetTotal(total) = calls[start + 1] else {
        panic!("no total first: {calls:?}");
    };
    let moved: u64 = calls
        .iter()
        .map(|c| match c {
            ProgressCall::Advance(n) => *n,
            _ => 0,
        })
        .sum();
    assert!(
        total >= out.stored_bytes,
        "total {total} < {}",
        out.stored_bytes
    );
    assert!(
        moved >= out.stored_bytes,
        "moved {moved} < {}",
        out.stored_bytes
    );
    assert!(calls.contains(&ProgressCall::Finish), "{calls:?}");
    let bytes = out.out.finish().unwrap();
    let name = format!("{stem}.tar.gz");
    let state = out.state.clone().committed(&name);
    let rest = LinkOutput {
        out: (),
        manifest: out.manifest,
        state: out.state,
        stored: out.stored,
        unchanged: out.unchanged,
        stored_bytes: out.stored_bytes,
    };
    (bytes, state, rest, plan)
}

fn gnu_tar_apply(archive: &Path, into: &Path) {
    let o = Command::new("tar")
        .arg("--listed-incremental=/dev/null")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .expect("GNU tar runs");
    assert!(
        o.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn without_manifest(mut t: BTreeMap<Vec<u8>, Node>) -> BTreeMap<Vec<u8>, Node> {
    t.remove(&b"manifest.json"[..]);
    t.remove(&b"manifest.txt"[..]);
    t
}

fn staging_dir(base: &Path) -> PathBuf {
    let d = base.join("staging");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// The entry names of a (plain) tar stream.
fn entry_names(tar_bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut ar = tar::Archive::new(tar_bytes);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect()
}

#[test]
fn a_full_and_three_links_restore_with_gnu_tar_and_with_our_extractor() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // the full
    write(&src, b"a.txt", b"alpha\n");
    write(&src, b"dir/b.txt", b"bravo\n");
    write(&src, b"dir/sub/c.txt", b"charlie\n");
    write(&src, b"x", b"x is a file\n");
    write(&src, b"old.txt", b"to be deleted\n");
    write(&src, b"caf\xE9.json", b"{\"latin1\": true}\n");
    write(&src, b"unchanged/big.bin", &vec![7u8; 300_000]);
    std::fs::create_dir(src.join("empty")).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();

    let mut present = BTreeSet::new();
    let mut archives: Vec<(PathBuf, Vec<u8>, LinkManifest)> = Vec::new();
    let mut snapshots = Vec::new();
    let mut state: Option<State> = None;
    let mut outs = Vec::new();
    for (h, change) in [(0u32, 0u32), (1, 1), (2, 2), (3, 3)] {
        match change {
            1 => {
                std::fs::remove_file(src.join("old.txt")).unwrap();
                // a rename
                std::fs::rename(src.join("dir/b.txt"), src.join("dir/b2.txt")).unwrap();
                // a file replaced by a directory
                std::fs::remove_file(src.join("x")).unwrap();
                write(&src, b"x/inner.txt", b"x is a directory now\n");
                write(&src, b"a.txt", b"alpha, edited\n");
                write(&src, b"new/one.txt", b"one\n");
            }
            2 => {
                // and back: the directory becomes a file again
                std::fs::remove_dir_all(src.join("x")).unwrap();
                write(&src, b"x", b"x is a file again\n");
                // a directory renamed, a symlink retargeted
                std::fs::rename(src.join("dir/sub"), src.join("dir/sub2")).unwrap();
                std::fs::remove_file(src.join("link")).unwrap();
                std::os::unix::fs::symlink("dir/b2.txt", src.join("link")).unwrap();
                // a name with a newline, in the dumpdir too
                write(&src, b"new/two\nlines.txt", b"two\n");
            }
            3 => {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(src.join("new/one.txt"))
                    .unwrap();
                f.write_all(b"appended\n").unwrap();
                std::fs::remove_file(p(&src, b"caf\xE9.json")).unwrap();
                write(&src, b"caf\xE9-2.json", b"{}\n");
            }
            _ => {}
        }
        let (bytes, st, out, plan) = link(&src, state.as_ref(), &present, h, false);
        match h {
            0 => assert_eq!(plan, Plan::Full(NewChain::NoState)),
            _ => assert!(matches!(&plan, Plan::Link(c) if c.level == h), "{plan:?}"),
        }
        let path = d.path().join(&st.archive);
        std::fs::write(&path, &bytes).unwrap();
        present.insert(st.archive.clone());
        assert_eq!(out.manifest.chain.id, "weekly_20261201_000000");
        assert_eq!(out.manifest.chain.level, h);
        archives.push((path, bytes, out.manifest.clone()));
        snapshots.push(snapshot(&src));
        // through the state file, as a run would
        let state_file = d.path().join("state/weekly.json");
        save_state(&state_file, &st).unwrap();
        match load_state(&state_file, BackupType::Weekly, &src) {
            Loaded::Found(back) => {
                assert_eq!(back, st);
                state = Some(back);
            }
            other => panic!("{other:?}"),
        }
        outs.push((out.stored, out.unchanged));
    }
    // unchanged files are not stored: only what changed is in a link
    assert_eq!(outs[0].1, 0);
    let l3 = entry_names(&gunzip(&archives[3].1));
    let has = |n: &[u8]| l3.iter().any(|e| e.ends_with(n));
    assert!(has(b"new/one.txt") && has(b"caf\xE9-2.json"));
    assert!(!has(b"unchanged/big.bin") && !has(b"a.txt") && !has(b"dir/b2.txt"));
    assert_eq!(outs[3].0, 2, "link 3 stores the appended and the new file");
    assert!(outs[3].1 >= 5, "{outs:?}");
    // every manifest lists the complete tree at its link
    let m3 = &archives[3].2.manifest;
    assert!(m3
        .entries
        .iter()
        .any(|e| e.path.as_bytes() == b"unchanged/big.bin"));
    assert!(!m3.entries.iter().any(|e| e.path.as_bytes() == b"old.txt"));

    // stock GNU tar, per link in order, into one directory
    let gnu = d.path().join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    for (i, (path, _, _)) in archives.iter().enumerate() {
        gnu_tar_apply(path, &gnu);
        let got = without_manifest(snapshot(&gnu.join("weekly_20261201_000000")));
        assert_eq!(got, snapshots[i], "GNU tar after link {i}");
    }
    assert_eq!(
        std::fs::read_dir(&gnu).unwrap().count(),
        1,
        "one directory for the whole chain"
    );

    // our extractor, per link in order, into staging, checked against each
    // link's manifest
    let staging = staging_dir(d.path());
    let mut sink = StagingSink::new(&staging).unwrap();
    let mut tree = Outcome::default();
    for (i, (_, bytes, lm)) in archives.iter().enumerate() {
        tree = extract::extract_link(
            flate2::read::GzDecoder::new(&bytes[..]),
            &mut sink,
            &Limits::default(),
            tree,
        )
        .unwrap_or_else(|e| panic!("link {i}: {e}"));
        assert_eq!(tree.chain.as_ref(), Some(&lm.chain));
        extract::check_manifest(&tree, tree.manifest.as_ref().unwrap())
            .unwrap_or_else(|e| panic!("link {i}: {e}"));
        assert_eq!(
            snapshot(&staging),
            snapshots[i],
            "our extractor after link {i}"
        );
    }
    assert_eq!(tree.links, 4);

    // a link alone, without its predecessors: an integrity failure naming why
    let e = extract::extract(
        flate2::read::GzDecoder::new(&archives[2].1[..]),
        &mut Discard,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Integrity, "{e}");
    assert!(e.message.contains("unchanged"), "{e}");
    // links out of order: link 3 over the full alone
    let full = extract::extract(
        flate2::read::GzDecoder::new(&archives[0].1[..]),
        &mut Discard,
        &Limits::default(),
    )
    .unwrap();
    let skipped = extract::extract_link(
        flate2::read::GzDecoder::new(&archives[3].1[..]),
        &mut Discard,
        &Limits::default(),
        full,
    );
    match skipped {
        Err(e) => assert_eq!(e.kind, ErrorKind::Integrity, "{e}"),
        Ok(t) => {
            let e = extract::check_manifest(&t, t.manifest.as_ref().unwrap()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Integrity, "{e}");
        }
    }
    // the manifests chain up
    for w in archives.windows(2) {
        let prev_name = w[0].0.file_name().unwrap().to_str().unwrap();
        w[1].2.follows(&w[0].2.chain, prev_name).unwrap();
    }
}

#[test]
fn reread_hashes_what_the_state_calls_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src, b"f.txt", b"content\n");
    write(&src, b"g.txt", b"other\n");
    let (_, st, _, _) = link(&src, None, &BTreeSet::new(), 0, false);
    let present: BTreeSet<String> = [st.archive.clone()].into();
    // the state's hash of f.txt no longer matches the file (as if the file
    // had been changed behind an unchanged stat)
    let mut bent = st.clone();
    bent.files.get_mut(&b"f.txt"[..]).unwrap().sha256.0[0] ^= 1;
    let (_, _, trusting, _) = link(&src, Some(&bent), &present, 1, false);
    assert_eq!((trusting.stored, trusting.unchanged), (0, 2));
    let (bytes, _, rereading, _) = link(&src, Some(&bent), &present, 1, true);
    assert_eq!((rereading.stored, rereading.unchanged), (1, 1));
    let names = entry_names(&gunzip(&bytes));
    assert!(names.iter().any(|n| n.ends_with(b"f.txt")));
    assert!(!names.iter().any(|n| n.ends_with(b"g.txt")));
}

/// A chain archive with the given dumpdir on the top directory (or on
/// `sub/` when `nested`), as our writer writes it.
fn with_dumpdir(dd: &[u8], nested: bool) -> Vec<u8> {
    let mut aw = ArchiveWriter::new(Vec::new(), "weekly_20261201_000000");
    if nested {
        aw.add_top_dumpdir(0, &dumpdir([(Dump::Dir, &b"sub"[..])]))
            .unwrap();
        aw.add_dumpdir(b"sub", 0o700, 0, dd).unwrap();
    } else {
        aw.add_top_dumpdir(0, dd).unwrap();
    }
    aw.finish_without_manifest().unwrap()
}

/// The same with GNU tar's POSIX form: a `GNU.dumpdir` PAX record.
fn with_pax_dumpdir(dd: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("GNU.dumpdir", dd)]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("top/").unwrap();
    h.set_mode(0o755);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn hostile_dumpdirs_are_refused() {
    let cases: [(&[u8], &str); 10] = [
        (b"Ya/b\0\0", "'/'"),
        (b"Y..\0\0", ".."),
        (b"Y.\0\0", "'.'"),
        (b"Y\0\0", "empty"),
        (b"Ya\0\0b\0\0", "follow its end"),
        (b"Ya\0Ya\0\0", "more than once"),
        (b"Da\0Ya\0\0", "more than once"),
        (b"Ra\0Tb\0\0", "rename"),
        (b"Qa\0\0", "control character"),
        (b"Ya\0", "does not end"),
    ];
    for (dd, why) in cases {
        for tar_bytes in [
            with_dumpdir(dd, false),
            with_dumpdir(dd, true),
            with_pax_dumpdir(dd),
        ] {
            let e = extract::extract(&tar_bytes[..], &mut Discard, &Limits::default())
                .expect_err(&format!("{dd:?} must be refused"));
            assert_eq!(e.kind, ErrorKind::Refused, "{dd:?}: {e}");
            assert!(e.message.contains(why), "{dd:?}: {e}");
        }
    }
    // an over-long name in a dumpdir, as for an entry
    let mut long = b"Y".to_vec();
    long.extend(vec![b'n'; 256]);
    long.extend_from_slice(b"\0\0");
    let e = extract::extract(
        &with_dumpdir(&long, false)[..],
        &mut Discard,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    // a well-formed dumpdir is accepted (nothing earlier to delete)
    extract::extract(
        &with_dumpdir(b"Dsub\0Ya\0\0", false)[..],
        &mut Discard,
        &Limits::default(),
    )
    .unwrap();
    extract::extract(
        &with_pax_dumpdir(b"Ya\0\0")[..],
        &mut Discard,
        &Limits::default(),
    )
    .unwrap();
    // a GNU.dumpdir record on a file entry is refused
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("GNU.dumpdir", &b"Ya\0\0"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("top/f").unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    let e = extract::extract(
        &b.into_inner().unwrap()[..],
        &mut Discard,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
}

#[test]
fn a_chain_made_by_gnu_tar_is_read_by_our_extractor() {
    // POSIX format: GNU.dumpdir PAX records; GNU format: type D members
    for format in ["posix", "gnu"] {
        gnu_chain(format);
    }
}

fn gnu_chain(format: &str) {
    let d = tempfile::tempdir().unwrap();
    let parent = d.path().join("parent");
    let top = parent.join("top");
    write(&top, b"a", b"a\n");
    write(&top, b"sub/b", b"b\n");
    write(&top, b"y", b"y is a file\n");
    write(&top, b"keep", b"kept\n");
    std::fs::create_dir(top.join("empty")).unwrap();
    std::os::unix::fs::symlink("keep", top.join("l")).unwrap();
    let snar = d.path().join("snar");
    let mut archives = Vec::new();
    let mut snaps = Vec::new();
    for i in 0..3 {
        match i {
            1 => {
                std::fs::remove_file(top.join("a")).unwrap();
                std::fs::rename(top.join("sub/b"), top.join("sub/b2")).unwrap();
                std::fs::remove_file(top.join("y")).unwrap();
                write(&top, b"y/z", b"y is a directory\n");
            }
            2 => {
                std::fs::remove_dir_all(top.join("y")).unwrap();
                write(&top, b"y", b"y is a file again\n");
                write(&top, b"c", b"c\n");
            }
            _ => {}
        }
        let out = d.path().join(format!("g{i}.tgz"));
        let o = Command::new("tar")
            .arg(format!("--format={format}"))
            .arg(format!("--listed-incremental={}", snar.display()))
            .arg("-C")
            .arg(&parent)
            .arg("-czf")
            .arg(&out)
            .arg("top")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        archives.push(std::fs::read(&out).unwrap());
        snaps.push(snapshot(&top));
        // GNU tar's change detection works on whole seconds of ctime here
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let staging = staging_dir(d.path());
    let mut sink = StagingSink::new(&staging).unwrap();
    let mut tree = Outcome::default();
    for (i, a) in archives.iter().enumerate() {
        tree = extract::extract_link(
            flate2::read::GzDecoder::new(&a[..]),
            &mut sink,
            &Limits::default(),
            tree,
        )
        .unwrap_or_else(|e| panic!("GNU {format} link {i}: {e}"));
        assert!(tree.manifest.is_none());
        assert_eq!(
            snapshot(&staging),
            snaps[i],
            "after GNU tar's {format} link {i}"
        );
    }
}

#[test]
fn a_link_cannot_write_below_an_earlier_links_symlink() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::write(&data, b"payload").unwrap();
    let top = "weekly_20261201_000000";
    // the full: directory d/ and the symlink l -> d
    let mut aw = ArchiveWriter::new(Vec::new(), top);
    aw.add_top_dumpdir(0, &dumpdir([(Dump::Dir, &b"d"[..]), (Dump::Stored, b"l")]))
        .unwrap();
    aw.add_dumpdir(b"d", 0o700, 0, &dumpdir([])).unwrap();
    aw.add_symlink(b"l", b"d", 0).unwrap();
    let full = aw.finish_without_manifest().unwrap();
    // the link keeps l and writes l/x: through the link into d/
    let mut aw = ArchiveWriter::new(Vec::new(), top);
    aw.add_top_dumpdir(
        0,
        &dumpdir([(Dump::Dir, &b"d"[..]), (Dump::Unchanged, b"l")]),
    )
    .unwrap();
    aw.add_dumpdir(b"d", 0o700, 0, &dumpdir([])).unwrap();
    let mut f = std::fs::File::open(&data).unwrap();
    aw.add_open_file_as(b"l/x", &data, &mut f, 7, 0o600, 0)
        .unwrap();
    let bad = aw.finish_without_manifest().unwrap();

    let staging = staging_dir(d.path());
    let mut sink = StagingSink::new(&staging).unwrap();
    let tree = extract::extract_link(&full[..], &mut sink, &Limits::default(), Outcome::default())
        .unwrap();
    let e = extract::extract_link(&bad[..], &mut sink, &Limits::default(), tree).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.message.contains("symbolic link"), "{e}");
    assert!(
        !staging.join("d/x").exists(),
        "nothing written through the link"
    );

    // a dumpdir that keeps (N) a directory of an earlier link as unchanged
    // non-directory: an integrity failure, not a silent merge
    let mut aw = ArchiveWriter::new(Vec::new(), top);
    aw.add_top_dumpdir(0, &dumpdir([(Dump::Unchanged, &b"d"[..])]))
        .unwrap();
    let odd = aw.finish_without_manifest().unwrap();
    let tree = extract::extract_link(
        &full[..],
        &mut Discard,
        &Limits::default(),
        Outcome::default(),
    )
    .unwrap();
    let e = extract::extract_link(&odd[..], &mut Discard, &Limits::default(), tree).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Integrity, "{e}");
    // links of another chain (another top-level directory) are not applied
    let other = with_dumpdir(b"\0", false);
    let mut aw = ArchiveWriter::new(Vec::new(), "weekly_20261202_000000");
    aw.add_top_dumpdir(0, b"\0").unwrap();
    let foreign = aw.finish_without_manifest().unwrap();
    let tree = extract::extract_link(
        &other[..],
        &mut Discard,
        &Limits::default(),
        Outcome::default(),
    )
    .unwrap();
    let e =
        extract::extract_link(&foreign[..], &mut Discard, &Limits::default(), tree).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Integrity, "{e}");
}

#[test]
fn a_dumpdir_cannot_delete_what_its_own_archive_stored_before_it() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::write(&data, b"payload").unwrap();
    let top = "weekly_20261201_000000";
    let mut aw = ArchiveWriter::new(Vec::new(), top);
    aw.add_top_dumpdir(0, &dumpdir([(Dump::Dir, &b"x"[..])]))
        .unwrap();
    aw.add_dumpdir(b"x", 0o700, 0, &dumpdir([])).unwrap();
    let full = aw.finish_without_manifest().unwrap();
    // x/new first, then the top directory's dumpdir, which drops x
    let mut aw = ArchiveWriter::new(Vec::new(), top);
    let mut f = std::fs::File::open(&data).unwrap();
    aw.add_open_file_as(b"x/new", &data, &mut f, 7, 0o600, 0)
        .unwrap();
    aw.add_top_dumpdir(0, b"\0").unwrap();
    let bad = aw.finish_without_manifest().unwrap();
    let staging = staging_dir(d.path());
    let mut sink = StagingSink::new(&staging).unwrap();
    let tree = extract::extract_link(&full[..], &mut sink, &Limits::default(), Outcome::default())
        .unwrap();
    let e = extract::extract_link(&bad[..], &mut sink, &Limits::default(), tree).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.message.contains("precede"), "{e}");
}

/// The state file is locked from its reading to its replacement: a second
/// run on the same state (same type, source and destination) is refused
/// (exit 5) while the first holds it, and goes ahead once it is released.
#[test]
fn the_state_file_is_locked_for_the_whole_run() {
    use std::os::unix::fs::DirBuilderExt;
    let d = tempfile::tempdir().unwrap();
    for sub in ["state", "run", "src", "dest"] {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(d.path().join(sub))
            .unwrap();
    }
    // this test binary's only use of the environment
    std::env::set_var("XDG_STATE_HOME", d.path().join("state"));
    std::env::set_var("XDG_RUNTIME_DIR", d.path().join("run"));
    let (src, dest) = (d.path().join("src"), d.path().join("dest"));
    let prep = || {
        secureclaw_backup::incremental::prepare(
            BackupType::Weekly,
            &src,
            &dest,
            &ChainPolicy::default(),
            false,
            time(1),
            &Silent,
        )
    };
    let first = prep().unwrap();
    assert!(matches!(first.plan, Plan::Full(NewChain::NoState)));
    assert!(first.path.starts_with(d.path().join("state")));
    let e = prep()
        .err()
        .expect("a second run on the same state is refused");
    assert_eq!(e.kind, ErrorKind::Refused, "{}", e.message);
    assert!(e.message.contains("incremental state"), "{}", e.message);
    drop(first);
    assert!(prep().is_ok());
}
