//! "Backup success means restore success" (issue 13): every kind of file
//! name, size and layout that `backup` accepts with exit 0 is restored — onto
//! a fresh target and over the live tree — byte-, mode- (owner-only, as the
//! README says) and mtime-identical (seconds); the pre-restore snapshot of the
//! live tree restores too; and stock `age -d | tar xzf -` gives the same
//! names (GNU tar reads the long-name records' bytes). Restoring never
//! removes what the backup saw but did not archive (sockets, FIFOs, absolute
//! symlinks, lock files).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// rel path (bytes) → (kind, mode, mtime in seconds, content or link target);
/// links have mode 0, special files are `('o', 0, 0, [])`. The root is left out.
type Tree = BTreeMap<Vec<u8>, (char, u32, i64, Vec<u8>)>;

fn tree(root: &Path) -> Tree {
    walk(root)
        .into_iter()
        .filter(|e| !e.rel.is_empty())
        .map(|e| {
            let ft = e.meta.file_type();
            let v = if ft.is_symlink() {
                ('l', 0, e.meta.mtime(), e.data)
            } else if ft.is_dir() {
                ('d', e.perm(), e.meta.mtime(), vec![])
            } else if ft.is_file() {
                ('f', e.perm(), e.meta.mtime(), e.data)
            } else {
                ('o', 0, 0, vec![])
            };
            (e.rel, v)
        })
        .collect()
}

/// What a restore gives for a source tree: owner-only modes, and what the
/// backup skips (lock files, special files, links leaving the tree) absent.
fn restorable(t: &Tree) -> Tree {
    t.iter()
        .filter(|(k, (kind, _, _, target))| {
            !k.ends_with(b".lock")
                && *kind != 'o'
                && !(*kind == 'l' && (target.starts_with(b"/") || target.starts_with(b"../../../")))
        })
        .map(|(k, (kind, mode, mtime, data))| {
            let mode = match kind {
                'd' => 0o700,
                'l' => 0,
                _ if mode & 0o100 != 0 => 0o700,
                _ => 0o600,
            };
            (k.clone(), (*kind, mode, *mtime, data.clone()))
        })
        .collect()
}

/// What a restore over the live tree `before` gives: the restorable entries,
/// and what the backup skipped, left as it was.
fn over_live(before: &Tree) -> Tree {
    let mut want = restorable(before);
    for (k, v) in before {
        if !want.contains_key(k) {
            want.insert(k.clone(), v.clone());
        }
    }
    want
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn key() -> PathBuf {
    example_key("age-example.key")
}

/// `backup --type weekly` of `src` into `dest`: the archive path.
fn backup(env: &Sandbox, src: &Path, dest: &Path) -> PathBuf {
    let o = env
        .cmd()
        .arg("backup")
        .args(["--type", "weekly", "--json", "-r", &age_recipient()])
        .arg("--source")
        .arg(src)
        .arg("--dest")
        .arg(dest)
        .output()
        .unwrap();
    assert_eq!(
        code(&o),
        0,
        "backup failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    PathBuf::from(v["backup"]["archive"].as_str().unwrap())
}

/// `restore ARCHIVE --target T` with a snapshot into `snapshots`: the JSON
/// report.
fn restore(env: &Sandbox, archive: &Path, target: &Path) -> serde_json::Value {
    let o = env
        .cmd()
        .arg("restore")
        .arg(archive)
        .arg("-i")
        .arg(key())
        .args(["-r", &age_recipient(), "--json"])
        .arg("--target")
        .arg(target)
        .arg("--dest")
        .arg(env.p("snapshots"))
        .output()
        .unwrap();
    assert_eq!(
        code(&o),
        0,
        "restore failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn assert_same(label: &str, got: &Tree, want: &Tree) {
    if got == want {
        return;
    }
    let mut msg = String::new();
    for (k, v) in want {
        match got.get(k) {
            None => msg.push_str(&format!("missing {:?}\n", String::from_utf8_lossy(k))),
            Some(g) if g != v => msg.push_str(&format!(
                "differs {:?}: got ({}, {:o}, {}, {} bytes) want ({}, {:o}, {}, {} bytes)\n",
                String::from_utf8_lossy(k),
                g.0,
                g.1,
                g.2,
                g.3.len(),
                v.0,
                v.1,
                v.2,
                v.3.len()
            )),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        msg.push_str(&format!("extra {:?}\n", String::from_utf8_lossy(k)));
    }
    panic!("{label}: trees differ:\n{msg}");
}

/// The names `age -d | tar xzf -` gives below the archive's top directory.
fn stock_extract(env: &Sandbox, archive: &Path, into: &Path) -> PathBuf {
    fs::create_dir_all(into).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg("age -d -i \"$1\" \"$2\" | tar xzf - -C \"$3\"")
        .arg("sh")
        .arg(key())
        .arg(archive)
        .arg(into)
        .env("HOME", env.p("env/home"))
        .status()
        .unwrap();
    assert!(st.success(), "age -d | tar xzf - failed");
    fs::read_dir(into).unwrap().next().unwrap().unwrap().path()
}

/// A source tree with every kind of name, size and layout.
fn make_hard_tree(src: &Path) {
    make_tree(src);
    let names: Vec<Vec<u8>> = vec![
        b"a\\b.json".to_vec(),
        b"\xE9t\xE9.json".to_vec(),          // Latin-1
        b"credentials/\xFF\xFEraw".to_vec(), // not UTF-8 at all
        b"with space .txt".to_vec(),
        b"new\nline".to_vec(),
        b"-rf".to_vec(),
        b"--help".to_vec(),
        "日本語のメモ.md".as_bytes().to_vec(),
        "emoji-🦀.txt".as_bytes().to_vec(),
        b"tab\there".to_vec(),
        b"quote\"'`$(x)".to_vec(),
        b"manifest.json".to_vec(),
        b"manifest.txt".to_vec(),
        b"manifest-1.json".to_vec(),
        b"agents/main/manifest.json".to_vec(),
        [b"c".repeat(250), b".json".to_vec()].concat(), // 255 bytes
    ];
    for (i, n) in names.iter().enumerate() {
        write_file(&src.join(os(n)), format!("content {i}\n").as_bytes(), 0o600);
    }
    // a directory with a non-UTF-8 name, holding a file
    write_file(&src.join(os(b"d\xE9r/inner.txt")), b"inner", 0o600);
    // sizes around the tar block size, empty, large and incompressible
    for n in [0usize, 1, 511, 512, 513, 1 << 20] {
        let data: Vec<u8> = (0..n)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect();
        write_file(&src.join(format!("sizes/{n}.bin")), &data, 0o600);
    }
    // modes: executable, group/world bits (clamped on restore)
    write_file(&src.join("modes/run.sh"), b"#!/bin/sh\n", 0o700);
    write_file(&src.join("modes/shared.txt"), b"x", 0o644);
    fs::set_permissions(src.join("modes"), fs::Permissions::from_mode(0o755)).unwrap();
    // line files whose last line has no newline, quiet (issue 13)
    write_file(
        &src.join("logs/api.log"),
        b"GET /health 200 in 3 ms ok",
        0o600,
    );
    write_file(
        &src.join("agents/main/sessions/s1.jsonl"),
        b"{\"n\":1}\n{\"n\":2,\"t\":\"unfinis",
        0o600,
    );
    // a path near 4,000 bytes (255-byte components), and deep nesting
    let mut deep = src.join("deep");
    let mut rel_len = "deep".len();
    while 3990 - rel_len > 256 {
        let c = "p".repeat(255);
        deep.push(&c);
        rel_len += 256;
    }
    let last = "q".repeat(3990 - rel_len - 1);
    write_file(&deep.join(&last), b"deep file", 0o600);
    let mut nest = src.join("nest");
    for _ in 0..300 {
        nest.push("n");
    }
    write_file(&nest.join("leaf"), b"leaf", 0o600);
    // in-tree relative symlinks: to a file, a directory, upwards, dangling
    fs::create_dir_all(src.join("workspace/venv/lib")).unwrap();
    write_file(&src.join("workspace/venv/lib/site.py"), b"# site", 0o600);
    std::os::unix::fs::symlink("lib", src.join("workspace/venv/lib64")).unwrap();
    std::os::unix::fs::symlink("../../secureclaw.json", src.join("workspace/venv/cfg")).unwrap();
    std::os::unix::fs::symlink("./lib/site.py", src.join("workspace/venv/site")).unwrap();
    std::os::unix::fs::symlink("credentials", src.join("creds-link")).unwrap();
    std::os::unix::fs::symlink("gone", src.join("workspace/dangling")).unwrap();
    std::os::unix::fs::symlink(os(b"\xE9t\xE9.json"), src.join("latin1-link")).unwrap();
    // mtimes: old, recent, future (files, directories, links)
    set_mtime(&src.join("sizes/0.bin"), 1_000_000_000);
    set_mtime(&src.join("sizes/1.bin"), 4_102_444_800);
    set_mtime(&src.join("workspace/venv/lib64"), 1_234_567_890);
    set_mtime(&src.join("workspace/venv/lib"), 1_111_111_111);
    set_mtime(&src.join("modes"), 1_222_222_222);
}

/// Things the backup sees but does not archive, inside replaced components.
fn make_skipped(src: &Path) {
    let sock = src.join("credentials/agent.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::mem::forget(_l);
    let st = Command::new("mkfifo")
        .arg(src.join("credentials/pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink("/etc/hostname", src.join("credentials/abs-link")).unwrap();
    std::os::unix::fs::symlink("../../../outside", src.join("agents/main/escape")).unwrap();
    write_file(&src.join("credentials/held.lock"), b"{\"pid\":1}", 0o600);
}

#[test]
fn every_kind_of_name_size_and_layout_round_trips() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_hard_tree(&src);
    make_skipped(&src);
    let before = tree(&src);
    let want = restorable(&before);
    let archive = backup(&env, &src, &env.p("dest"));

    // 1. onto a fresh target
    let fresh = env.p("fresh");
    restore(&env, &archive, &fresh);
    assert_same("fresh target", &tree(&fresh), &want);

    // 2. stock tools give the same names and bytes
    let top = stock_extract(&env, &archive, &env.p("stock"));
    let mut stock = tree(&top);
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(top.join("manifest-2.json")).unwrap()).unwrap();
    assert_eq!(m["version"], 2);
    for mf in ["manifest-2.json", "manifest-2.txt"] {
        assert!(stock.remove(mf.as_bytes()).is_some(), "{mf} in the archive");
    }
    let names = |t: &Tree| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&stock), names(&want));
    for (k, v) in &want {
        assert_eq!(stock[k].3, v.3, "{:?}", String::from_utf8_lossy(k));
        if v.0 == 'f' {
            assert_eq!(stock[k].2, v.2, "mtime of {:?}", String::from_utf8_lossy(k));
        }
    }
    // the manifest lists non-UTF-8 names exactly, and symlinks with targets
    let entries = m["entries"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["path_hex"] == hex::encode(b"\xE9t\xE9.json") && e["type"] == "file"));
    assert!(entries.iter().any(|e| e["path"] == "workspace/venv/lib64"
        && e["type"] == "symlink"
        && e["target"] == "lib"));
    let kinds: Vec<&str> = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"non-utf8-name") && !kinds.contains(&"partial-line"));

    // 3. over the live tree: identical again, and nothing the backup skipped
    //    (socket, FIFO, links leaving the tree, lock file) was removed
    fs::write(src.join("credentials/oauth.json"), b"changed since").unwrap();
    fs::remove_file(src.join(os(b"\xE9t\xE9.json"))).unwrap();
    let live_before = tree(&src);
    let r = restore(&env, &archive, &src);
    let snap = PathBuf::from(r["restore"]["snapshot"]["archive"].as_str().unwrap());
    let live_want = over_live(&before);
    assert_same("over the live tree", &tree(&src), &live_want);

    // 4. the pre-restore snapshot of the live tree restores as well
    let from_snap = env.p("from-snapshot");
    restore(&env, &snap, &from_snap);
    assert_same(
        "pre-restore snapshot",
        &tree(&from_snap),
        &restorable(&live_before),
    );
}

#[test]
fn symlinked_data_dir_backs_up_and_restores_where_it_points() {
    let env = Sandbox::new();
    let real = env.p("data/secureclaw");
    make_tree(&real);
    let link = env.p("env/home/.secureclaw");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let before = tree(&real);
    let want = restorable(&before);
    let archive = backup(&env, &link, &env.p("dest"));
    fs::write(real.join("secureclaw.json"), b"// damaged\n").unwrap();
    let r = restore(&env, &archive, &link);
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link stays"
    );
    assert_eq!(fs::read_link(&link).unwrap(), real);
    assert_same("through the link", &tree(&real), &over_live(&before));
    assert_eq!(
        r["restore"]["target"].as_str().unwrap(),
        real.to_str().unwrap()
    );
    // and onto a fresh target reached through a symlink
    let real2 = env.p("data/second");
    fs::create_dir_all(&real2).unwrap();
    let link2 = env.p("env/home/second");
    std::os::unix::fs::symlink(&real2, &link2).unwrap();
    restore(&env, &archive, &link2);
    assert_same("fresh through a link", &tree(&real2), &want);
}

/// One SIGINT while a restore extracts: acted on within moments (it used to
/// wait for the whole extraction), exit 1, nothing left.
#[test]
fn sigint_during_restore_stops_the_extraction() {
    interrupted_restore(1);
}

/// Two SIGINTs while a restore extracts: the second does not kill the
/// process before its cleanup (it used to, leaving the plaintext staging
/// directory beside the target).
#[test]
fn sigint_twice_during_restore_leaves_no_plaintext() {
    interrupted_restore(2);
}

/// Sends `signals` SIGINTs while a restore extracts: it stops within moments,
/// exit 1, and leaves no staging directory (no plaintext) beside the target,
/// which is unchanged.
fn interrupted_restore(signals: usize) {
    let env = Sandbox::new();
    let src = env.p("src");
    make_tree(&src);
    // enough data that extraction takes a while
    let chunk: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    for i in 0..3000 {
        write_file(
            &src.join(format!("workspace/bulk/{:03}/{i}.bin", i / 100)),
            &chunk,
            0o600,
        );
    }
    let archive = backup(&env, &src, &env.p("dest"));
    let target = env.p("target");
    make_tree(&target);
    let before = tree(&target);
    let mut child = env
        .cmd()
        .arg("restore")
        .arg(&archive)
        .arg("-i")
        .arg(key())
        .arg("--no-snapshot")
        .arg("--target")
        .arg(&target)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let staging = || -> Vec<PathBuf> {
        fs::read_dir(env.p(""))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".target.restore-")
            })
            .collect()
    };
    let t0 = Instant::now();
    // wait until files are being staged
    loop {
        let s = staging();
        if s.iter().any(|d| d.join("workspace").exists()) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "staging never appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "restore ended before it was interrupted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    let sent = Instant::now();
    for _ in 0..signals {
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(1), "exit 1 after an interrupt");
    assert!(
        took < Duration::from_secs(5),
        "acted on the signal within {took:?}"
    );
    assert!(staging().is_empty(), "staging removed: {:?}", staging());
    assert!(tree(&target) == before, "target unchanged");
    // the whole restore takes much longer than the reaction did
    let t = Instant::now();
    let o = env
        .cmd()
        .arg("restore")
        .arg(&archive)
        .arg("-i")
        .arg(key())
        .arg("--no-snapshot")
        .arg("--target")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    let full = t.elapsed();
    assert!(
        took * 3 < full,
        "reacted in {took:?}, a whole restore takes {full:?}"
    );
}

/// The longest path a source allows (its own path + the name = PATH_MAX)
/// backs up and restores onto a target of the same length: the archive
/// name (top-level directory + path) is then beyond 4096 bytes, and the
/// staging directory's name longer still.
#[test]
fn the_longest_path_the_source_allows_round_trips() {
    let env = Sandbox::new();
    let src = env.p("s");
    make_tree(&src);
    let want_len = 4095 - src.as_os_str().len() - 1;
    let mut rel = PathBuf::from("long");
    let mut len = 4;
    while want_len - len > 256 {
        rel.push("L".repeat(255));
        len += 256;
    }
    rel.push("E".repeat(want_len - len - 1));
    assert_eq!(src.join(&rel).as_os_str().len(), 4095);
    write_file(&src.join(&rel), b"at the limit", 0o600);
    let want = restorable(&tree(&src));
    let archive = backup(&env, &src, &env.p("dest"));
    let target = env.p("t");
    assert_eq!(target.as_os_str().len(), src.as_os_str().len());
    restore(&env, &archive, &target);
    assert_same("longest path", &tree(&target), &want);
    // and over the live tree
    let before = tree(&src);
    restore(&env, &archive, &src);
    assert_same("longest path, live", &tree(&src), &over_live(&before));
    assert_eq!(fs::read(src.join(&rel)).unwrap(), b"at the limit");
}

/// A daily archive lacks `workspace/` and `logs/`: restored over the live
/// tree, they are kept exactly — modes, directory and symlink mtimes, links
/// as links, and a path as long as the target allows (the staging
/// directory's longer name does not get in the way).
#[test]
fn daily_restore_keeps_what_it_lacks_exactly() {
    let env = Sandbox::new();
    let src = env.p("src");
    make_hard_tree(&src);
    let want_len = 4095 - src.as_os_str().len() - 1;
    let mut rel = PathBuf::from("workspace/deep");
    let mut len = rel.as_os_str().len();
    while want_len - len > 256 {
        rel.push("W".repeat(255));
        len += 256;
    }
    rel.push("w".repeat(want_len - len - 1));
    write_file(&src.join(&rel), b"kept at the limit", 0o640);
    set_mtime(&src.join("workspace/deep"), 1_300_000_000);
    fs::set_permissions(src.join("workspace"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&src.join("workspace"), 1_200_000_000);
    let o = env
        .cmd()
        .arg("backup")
        .args(["--type", "daily", "--json", "-r", &age_recipient()])
        .arg("--source")
        .arg(&src)
        .arg("--dest")
        .arg(env.p("dest"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let archive = PathBuf::from(v["backup"]["archive"].as_str().unwrap());
    let before = tree(&src);
    restore(&env, &archive, &src);
    let lacks = |k: &[u8]| k.starts_with(b"workspace") || k.starts_with(b"logs");
    let mut want = over_live(&before);
    for (k, v) in &before {
        if lacks(k) {
            want.insert(k.clone(), v.clone());
        }
    }
    assert_same("daily over the live tree", &tree(&src), &want);
    assert_eq!(fs::read(src.join(&rel)).unwrap(), b"kept at the limit");
}
