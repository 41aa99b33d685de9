//! Restoring and verifying links of incremental chains through the binary
//! (README "Restoring a chain"): an encrypted chain (a full and four links
//! with deletions, renames, file↔directory changes) written through the
//! library (`incremental::write_link` → gzip → age, sidecar and `.meta` as
//! `backup` writes them), restored with `restore LINK` to exactly the tree
//! at each link; missing, tampered, mis-described and hostile links refused
//! with the target unchanged; `verify`, `list`, `rotate`, `drill`, and a
//! chain pushed to a NAS directory restored from there.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use common::*;
use secureclaw_backup::archive::writer::ArchiveWriter;
use secureclaw_backup::capture::LiveOptions;
use secureclaw_backup::events::Silent;
use secureclaw_backup::incremental::{decide, write_link, ChainPolicy, LinkOptions, Loaded, State};
use secureclaw_backup::manifest::Chain as ChainPos;
use secureclaw_backup::meta::{meta_name, Meta};
use secureclaw_backup::source::Selection;
use secureclaw_backup::store::{self, BackupType};

fn time(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
}

fn key() -> String {
    example_key("age-example.key").display().to_string()
}

/// A data directory, a destination, and the chain written so far.
struct ChainHost {
    env: Sandbox,
    src: PathBuf,
    dest: PathBuf,
    /// Archive names, the full first.
    names: Vec<String>,
    /// The source tree (path → node, modes aside) at each archive.
    trees: Vec<BTreeMap<String, Node>>,
    state: Option<State>,
}

/// The tree below `root` without modes (restore clamps them) and without
/// what a backup leaves out (stale session locks).
fn content(root: &Path) -> BTreeMap<String, Node> {
    snapshot(root)
        .into_iter()
        .filter(|(k, _)| !k.ends_with(".lock"))
        .map(|(k, (_, n))| (k, n))
        .collect()
}

fn describe_diff(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> String {
    let mut s = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => s.push_str(&format!("  - {k}\n")),
            Some(w) if w != v => s.push_str(&format!("  ~ {k}\n")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        s.push_str(&format!("  + {k}\n"));
    }
    s
}

impl ChainHost {
    fn new() -> ChainHost {
        let env = Sandbox::new();
        let src = env.p("data");
        make_tree(&src);
        write_file(&src.join("workspace/old.md"), b"to be deleted\n", 0o600);
        write_file(&src.join("workspace/b.md"), b"to be renamed\n", 0o600);
        write_file(&src.join("state/x"), b"x is a file\n", 0o600);
        write_file(&src.join("state/d/inner.json"), b"{}", 0o600);
        std::os::unix::fs::symlink("report.md", src.join("workspace/latest.md")).unwrap();
        let dest = env.p("backups");
        fs::create_dir_all(&dest).unwrap();
        ChainHost {
            env,
            src,
            dest,
            names: vec![],
            trees: vec![],
            state: None,
        }
    }

    /// One archive of the chain at hour `h`, as `backup --incremental`
    /// writes it: encrypted to the example age key, its sidecar and its
    /// `.meta` beside it.
    fn archive(&mut self, h: u32) -> String {
        // names only: sizes unknown (0), so --max-chain-size never cuts here
        let present: BTreeMap<String, u64> = self.names.iter().map(|n| (n.clone(), 0)).collect();
        let loaded = match &self.state {
            Some(s) => Loaded::Found(s.clone()),
            None => Loaded::Missing,
        };
        let plan = decide(&loaded, &present, &ChainPolicy::default(), time(h));
        let stem = format!("weekly_20261201_{h:02}0000");
        let name = format!("{stem}.tar.gz.age");
        let opts = LinkOptions {
            btype: BackupType::Weekly,
            source: self.src.clone(),
            stem: stem.clone(),
            now: time(h),
            host: "test".into(),
            recipients: vec![age_recipient()],
            reread: false,
            live: LiveOptions::default(),
        };
        let sel = Selection::new(BackupType::Weekly, &[], None).unwrap();
        let enc = secureclaw_backup::crypto::parse_recipients(&[age_recipient()], None).unwrap();
        let path = self.dest.join(&name);
        let file = fs::File::create(&path).unwrap();
        let w = enc.wrap_output(Box::new(file)).unwrap();
        let gz = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
        let out = write_link(gz, &opts, &sel, &plan, self.state.as_ref(), &Silent).unwrap();
        out.out.finish().unwrap().finish().unwrap();
        let sha = store::sha256_file(&path).unwrap();
        store::write_sidecar(&path, &sha).unwrap();
        let mut m = Meta::new(
            &name,
            "weekly",
            &format!("20261201_{h:02}0000"),
            "test",
            "age",
        );
        m.recipients = enc.meta_recipients();
        m.chain = Some(out.manifest.chain.clone());
        secureclaw_backup::meta::write_beside(&path, &m).unwrap();
        self.state = Some(out.state.committed(&name));
        self.names.push(name.clone());
        self.trees.push(content(&self.src));
        name
    }

    /// A full and four links: edits, a deletion, a rename, a file that
    /// becomes a directory, a directory that becomes a file, a symlink
    /// retargeted, a new directory, a directory removed.
    fn five(&mut self) {
        let s = self.src.clone();
        self.archive(0);
        // 1: delete, rename, file → directory, edit
        fs::remove_file(s.join("workspace/old.md")).unwrap();
        fs::rename(s.join("workspace/b.md"), s.join("workspace/b2.md")).unwrap();
        fs::remove_file(s.join("state/x")).unwrap();
        write_file(&s.join("state/x/now-a-dir.json"), b"[1]", 0o600);
        write_file(
            &s.join("secureclaw.json"),
            b"{ gateway: { port: 1 } }\n",
            0o600,
        );
        self.archive(1);
        // 2: directory → file, symlink retargeted, new directory
        fs::remove_dir_all(s.join("state/d")).unwrap();
        write_file(&s.join("state/d"), b"d is a file now\n", 0o600);
        fs::remove_file(s.join("workspace/latest.md")).unwrap();
        std::os::unix::fs::symlink("b2.md", s.join("workspace/latest.md")).unwrap();
        write_file(&s.join("workspace/new/one.md"), b"one\n", 0o600);
        self.archive(2);
        // 3: nothing changed but a transcript appended
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(s.join("agents/main/sessions/abc.jsonl"))
            .unwrap();
        f.write_all(b"{\"role\":\"user\",\"content\":\"more\"}\n")
            .unwrap();
        drop(f);
        self.archive(3);
        // 4: a directory removed, a renamed file renamed back, a file deleted
        fs::remove_dir_all(s.join("workspace/new")).unwrap();
        fs::rename(s.join("workspace/b2.md"), s.join("workspace/b.md")).unwrap();
        fs::remove_file(s.join("state/queue.json")).unwrap();
        self.archive(4);
    }

    fn run(&self, args: &[&str]) -> Out {
        let o = self.env.run(args);
        eprintln!(
            "$ secureclaw-backup {}\n{}exit {}",
            args.join(" "),
            o.text(),
            o.code
        );
        o
    }

    fn path(&self, i: usize) -> String {
        self.dest.join(&self.names[i]).display().to_string()
    }

    /// `restore` of archive `i` into `target` without a snapshot.
    fn restore(&self, archive: &str, target: &Path) -> Out {
        self.run(&[
            "restore",
            archive,
            "-i",
            &key(),
            "--target",
            s(target),
            "--dest",
            s(&self.dest),
            "--no-snapshot",
            "--json",
        ])
    }

    fn assert_tree(&self, target: &Path, i: usize) {
        let got = content(target);
        assert!(
            got == self.trees[i],
            "the tree restored from {} differs from the source at that link:\n{}",
            self.names[i],
            describe_diff(&self.trees[i], &got)
        );
    }
}

#[test]
fn restore_of_each_link_gives_exactly_the_tree_at_that_link() {
    let mut h = ChainHost::new();
    h.five();
    for i in [4, 2, 0, 1, 3] {
        let target = h.env.p(&format!("restored-{i}"));
        let o = h.restore(&h.path(i), &target);
        assert_eq!(o.code, 0, "restore of link {i}: {}", o.text());
        h.assert_tree(&target, i);
        let r = &o.json()["restore"];
        assert_eq!(r["chain"]["level"], i as u64, "{r}");
        assert_eq!(r["chain"]["id"], "weekly_20261201_000000");
        let links: Vec<String> = r["chain"]["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(links, h.names[..=i].to_vec());
        assert!(
            r["checked"]
                .to_string()
                .contains(&format!("{} link(s)", i + 1)),
            "{r}"
        );
    }
    // over an existing tree (link 1's): the usual snapshot and swap
    let target = h.env.p("restored-1");
    let before: Vec<_> = archives(&h.dest);
    let o = h.run(&[
        "restore",
        &h.path(4),
        "-i",
        &key(),
        "--target",
        s(&target),
        "--dest",
        s(&h.dest),
        "-r",
        &age_recipient(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    h.assert_tree(&target, 4);
    let snaps: Vec<_> = archives(&h.dest)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(snaps.len(), 1, "one pre-restore snapshot: {snaps:?}");
    assert!(s(&snaps[0]).contains("pre-restore_"));
    // the snapshot holds link 1's tree: restoring it gives that tree back
    let back = h.env.p("back");
    let o = h.restore(s(&snaps[0]), &back);
    assert_eq!(o.code, 0, "{}", o.text());
    h.assert_tree(&back, 1);
    // a dry run of a link reads the whole chain and writes nothing
    let dry = h.env.p("dry");
    let o = h.run(&[
        "restore",
        &h.path(3),
        "-i",
        &key(),
        "--target",
        s(&dry),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(o.json()["restore"]["chain"]["level"], 3);
    assert!(content(&dry).len() <= 1, "a dry run writes nothing");
}

#[test]
fn verify_and_list_see_the_chain() {
    let mut h = ChainHost::new();
    h.five();
    // keyless: every predecessor present with a good sidecar and header
    let o = h.run(&["verify", &h.path(4), "--json"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let v = o.json();
    assert_eq!(v["verified"][0]["chain"]["level"], 4);
    assert_eq!(
        v["verified"][0]["chain"]["links"].as_array().unwrap().len(),
        5
    );
    assert_eq!(v["verified"][0]["full"], false);
    // with a key: every link decrypted and the tree checked
    let o = h.run(&["verify", &h.path(4), "-i", &key(), "--json"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let v = o.json();
    assert_eq!(v["verified"][0]["full"], true);
    assert_eq!(v["verified"][0]["chain"]["level"], 4);
    let files = v["verified"][0]["files"].as_u64().unwrap() as usize;
    let expected = h.trees[4]
        .values()
        .filter(|n| matches!(n, Node::File(_)))
        .count();
    assert_eq!(files, expected, "the files of the tree at link 4");
    // a damaged predecessor sidecar is named by keyless verify
    let side = h.dest.join(format!("{}.sha256", h.names[1]));
    let good = fs::read(&side).unwrap();
    fs::write(&side, format!("{}  {}\n", "0".repeat(64), h.names[1])).unwrap();
    let o = h.run(&["verify", &h.path(3)]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(o.text().contains(&h.names[1]), "{}", o.text());
    fs::write(&side, good).unwrap();

    // list --json: chain and level per archive, level 0 = full
    let plain = h.env.p("plain-src");
    make_tree(&plain);
    let o = h.run(&[
        "backup",
        "--type",
        "daily",
        "--source",
        s(&plain),
        "--dest",
        s(&h.dest),
        "-r",
        &age_recipient(),
        "--no-prune",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let o = h.run(&["list", "--dest", s(&h.dest), "--json"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let v = o.json();
    let rows = v["archives"].as_array().unwrap();
    for (i, n) in h.names.iter().enumerate() {
        let row = rows.iter().find(|r| r["name"] == n.as_str()).unwrap();
        assert_eq!(row["chain"], "weekly_20261201_000000", "{row}");
        assert_eq!(row["level"], i as u64, "{row}");
    }
    let daily = rows.iter().find(|r| r["type"] == "daily").unwrap();
    assert_eq!(daily["chain"], serde_json::Value::Null, "{daily}");
    assert_eq!(daily["level"], 0, "{daily}");
    let o = h.run(&["list", "--dest", s(&h.dest)]);
    assert!(o.stdout.contains("LEVEL"), "{}", o.stdout);
    assert!(o.stdout.contains("full"), "{}", o.stdout);
}

#[test]
fn a_missing_middle_link_is_exit_3_naming_it_and_the_target_unchanged() {
    let mut h = ChainHost::new();
    h.five();
    let target = h.env.p("current");
    make_tree(&target);
    let before = snapshot(&target);
    let gone = h.dest.join(&h.names[2]);
    fs::rename(&gone, h.env.p("moved-away")).unwrap();
    let o = h.run(&[
        "restore",
        &h.path(4),
        "-i",
        &key(),
        "--target",
        s(&target),
        "--dest",
        s(&h.dest),
        "-r",
        &age_recipient(),
    ]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(
        o.stderr.contains(&h.names[2]),
        "names the missing link: {}",
        o.stderr
    );
    assert!(o.stderr.contains("missing"), "{}", o.stderr);
    assert_eq!(snapshot(&target), before, "the target is unchanged");
    assert!(
        !archives(&h.dest)
            .iter()
            .any(|p| s(p).contains("pre-restore_")),
        "nothing was saved: the chain was refused first"
    );
    let (k, p4) = (key(), h.path(4));
    for args in [
        vec!["verify", p4.as_str()],
        vec!["verify", p4.as_str(), "-i", k.as_str()],
    ] {
        let o = h.run(&args);
        assert_eq!(o.code, 3, "{}", o.text());
        assert!(o.text().contains(&h.names[2]), "{}", o.text());
    }
    // the links before the gap still restore
    fs::rename(h.env.p("moved-away"), &gone).unwrap();
    let r = h.env.p("r1");
    assert_eq!(h.restore(&h.path(1), &r).code, 0);
    h.assert_tree(&r, 1);
}

#[test]
fn a_tampered_or_misdescribed_link_is_exit_3_and_the_target_unchanged() {
    let mut h = ChainHost::new();
    h.five();
    let target = h.env.p("current");
    make_tree(&target);
    let before = snapshot(&target);
    // one byte of a middle link's ciphertext
    let p = h.dest.join(&h.names[2]);
    let good = fs::read(&p).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x40;
    fs::write(&p, &bad).unwrap();
    let o = h.restore(&h.path(3), &target);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(
        o.stderr.contains(&h.names[2]),
        "names the damaged link: {}",
        o.stderr
    );
    assert_eq!(snapshot(&target), before, "the target is unchanged");
    let o = h.run(&["verify", &h.path(3)]);
    assert_eq!(
        o.code,
        3,
        "keyless: the sidecar no longer matches: {}",
        o.text()
    );
    assert!(o.text().contains(&h.names[2]), "{}", o.text());
    fs::write(&p, &good).unwrap();

    // a .meta that disagrees with the manifest: every description claims
    // another chain id, consistently (so only the manifests can tell)
    for n in &h.names {
        let mp = h.dest.join(meta_name(n));
        let t = fs::read_to_string(&mp).unwrap();
        assert!(t.contains("\"id\":\"weekly_20261201_000000\""), "{t}");
        fs::write(
            &mp,
            t.replace(
                "\"id\":\"weekly_20261201_000000\"",
                "\"id\":\"weekly_20261201_000001\"",
            ),
        )
        .unwrap();
    }
    let o = h.restore(&h.path(4), &target);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(
        o.stderr.contains("weekly_20261201_000001") && o.stderr.contains("weekly_20261201_000000"),
        "names both values: {}",
        o.stderr
    );
    assert!(o.stderr.contains(".meta"), "{}", o.stderr);
    assert_eq!(snapshot(&target), before);
    let o = h.run(&["verify", &h.path(4), "-i", &key()]);
    assert_eq!(o.code, 3, "{}", o.text());

    // a description whose predecessor is a link of another level
    for n in &h.names {
        let mp = h.dest.join(meta_name(n));
        let t = fs::read_to_string(&mp).unwrap();
        fs::write(
            &mp,
            t.replace(
                "\"id\":\"weekly_20261201_000001\"",
                "\"id\":\"weekly_20261201_000000\"",
            ),
        )
        .unwrap();
    }
    let mp = h.dest.join(meta_name(&h.names[3]));
    let mut m: Meta = serde_json::from_slice(&fs::read(&mp).unwrap()).unwrap();
    m.chain = Some(ChainPos {
        id: "weekly_20261201_000000".into(),
        level: 3,
        previous: Some(h.names[1].clone()),
    });
    fs::write(&mp, m.to_bytes()).unwrap();
    let o = h.restore(&h.path(4), &target);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(o.stderr.contains(&h.names[1]), "{}", o.stderr);
    assert_eq!(snapshot(&target), before);
}

#[test]
fn a_dumpdir_attack_inside_an_encrypted_link_is_refused_with_exit_5() {
    let mut h = ChainHost::new();
    h.archive(0);
    let target = h.env.p("current");
    make_tree(&target);
    let before = snapshot(&target);
    let canary = snapshot(&h.env.p("w"));
    // link 1, written by an attacker who holds the public key: a dumpdir
    // naming a path outside its directory
    for dd in [&b"Y../../w/canary/keep\0\0"[..], b"N..\0\0", b"Ya\0Ya\0\0"] {
        let name = "weekly_20261201_010000.tar.gz.age";
        let mut aw = ArchiveWriter::new(Vec::new(), "weekly_20261201_000000");
        aw.add_top_dumpdir(0, dd).unwrap();
        let tar = aw.finish_without_manifest().unwrap();
        let bytes = age_encrypt(&gzip(&tar));
        let path = h.dest.join(name);
        fs::write(&path, &bytes).unwrap();
        store::write_sidecar(&path, &store::sha256_file(&path).unwrap()).unwrap();
        let mut m = Meta::new(name, "weekly", "20261201_010000", "test", "age");
        m.chain = Some(ChainPos {
            id: "weekly_20261201_000000".into(),
            level: 1,
            previous: Some(h.names[0].clone()),
        });
        fs::write(h.dest.join(meta_name(name)), m.to_bytes()).unwrap();
        let o = h.restore(s(&path), &target);
        assert_eq!(o.code, 5, "{dd:?}: {}", o.text());
        assert!(o.stderr.contains(name), "names the link: {}", o.stderr);
        assert_eq!(snapshot(&target), before, "the target is unchanged");
        assert_eq!(snapshot(&h.env.p("w")), canary);
        let o = h.run(&["verify", s(&path), "-i", &key()]);
        assert_eq!(o.code, 5, "{}", o.text());
    }
}

#[test]
fn rotate_then_restore_and_drill_a_chain() {
    let mut h = ChainHost::new();
    h.five();
    // to OpenPGP: every archive renamed (.gpg), the chain still resolves
    if have_gpg() {
        let o = h.run(&[
            "rotate",
            "--dest",
            s(&h.dest),
            "-i",
            &key(),
            "-r",
            &Backend::Pgp.recipient(),
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        let gpg: Vec<String> = h
            .names
            .iter()
            .map(|n| n.replace(".tar.gz.age", ".tar.gz.gpg"))
            .collect();
        for n in &gpg {
            assert!(h.dest.join(n).is_file(), "{n}");
            assert!(
                h.dest.join(meta_name(n)).is_file(),
                "its description follows: {n}"
            );
        }
        for n in &h.names {
            assert!(!h.dest.join(n).exists() && !h.dest.join(meta_name(n)).exists());
        }
        let target = h.env.p("after-gpg");
        let o = h.run(&[
            "restore",
            s(&h.dest.join(&gpg[4])),
            "-i",
            s(&Backend::Pgp.identity()),
            "--target",
            s(&target),
            "--no-snapshot",
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        h.assert_tree(&target, 4);
        let o = h.run(&["verify", s(&h.dest.join(&gpg[3]))]);
        assert_eq!(o.code, 0, "{}", o.text());
        // and back to age
        let o = h.run(&[
            "rotate",
            "--dest",
            s(&h.dest),
            "-i",
            s(&Backend::Pgp.identity()),
            "-r",
            &age_recipient(),
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
    } else {
        eprintln!("NOTICE: gpg not installed: rotation to OpenPGP not tested");
        let o = h.run(&[
            "rotate",
            "--dest",
            s(&h.dest),
            "-i",
            &key(),
            "-r",
            &age_recipient(),
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
    }
    for n in &h.names {
        assert!(h.dest.join(n).is_file(), "{n}");
    }
    let target = h.env.p("after-age");
    let o = h.restore(&h.path(2), &target);
    assert_eq!(o.code, 0, "{}", o.text());
    h.assert_tree(&target, 2);

    // drill: the newest link, with the chain length beside the RTO
    let o = h.run(&["drill", "--dest", s(&h.dest), "-i", &key(), "--json"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let v = o.json();
    let d = if v["drill"].is_object() {
        &v["drill"]
    } else {
        &v
    };
    assert_eq!(d["chain_length"], 5, "{v}");
    assert!(
        s(Path::new(d["archive"].as_str().unwrap())).ends_with(&h.names[4]),
        "{v}"
    );
    let o = h.run(&["drill", "--dest", s(&h.dest), "-i", &key()]);
    assert!(o.text().contains("chain of 5"), "{}", o.text());
}

#[test]
fn a_chain_pushed_to_a_nas_directory_restores_from_there() {
    let mut h = ChainHost::new();
    h.five();
    let nas = h.env.p("nas/secureclaw");
    let config = h.env.p("config.toml");
    fs::write(
        &config,
        format!("[[tier]]\nname = \"nas\"\nurl = \"{}\"\n", nas.display()),
    )
    .unwrap();
    let o = h.run(&[
        "push",
        "--config",
        s(&config),
        "--dest",
        s(&h.dest),
        "--json",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    for n in &h.names {
        assert!(
            nas.join(n).is_file() && nas.join(format!("{n}.sha256")).is_file(),
            "{n}"
        );
        assert!(
            nas.join(meta_name(n)).is_file(),
            "the description is pushed: {n}"
        );
    }
    // the local copies are gone: only the tier has the chain
    fs::remove_dir_all(&h.dest).unwrap();
    let target = h.env.p("from-nas");
    let o = h.run(&[
        "restore",
        "--config",
        s(&config),
        "--tier",
        "nas",
        &h.names[3],
        "-i",
        &key(),
        "--target",
        s(&target),
        "--no-snapshot",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    h.assert_tree(&target, 3);
    let o = h.run(&[
        "verify",
        "--config",
        s(&config),
        "--tier",
        "nas",
        &h.names[4],
        "-i",
        &key(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    // a link missing on the tier is named
    fs::remove_file(nas.join(&h.names[1])).unwrap();
    let o = h.run(&[
        "verify",
        "--config",
        s(&config),
        "--tier",
        "nas",
        &h.names[4],
    ]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(o.text().contains(&h.names[1]), "{}", o.text());
}

// ------------------------------------------------------------------ S3

#[test]
fn a_chain_pushed_to_s3_restores_and_verifies_from_the_bucket() {
    let Some(g) = Garage::start("a_chain_pushed_to_s3_restores_and_verifies_from_the_bucket")
    else {
        return;
    };
    let mut h = ChainHost::new();
    h.five();
    let config = h.env.p("config.toml");
    let prefix = format!("chain-{}", std::process::id());
    fs::write(
        &config,
        format!("[[tier]]\nname = \"cloud\"\nurl = \"s3://secureclaw-test/{prefix}\"\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = h.env.cmd();
        for (k, v) in &g.vars {
            c.env(k, v);
        }
        let o = run_cmd(c.args(args));
        eprintln!(
            "$ secureclaw-backup {}\n{}exit {}",
            args.join(" "),
            o.text(),
            o.code
        );
        o
    };
    let cfg = s(&config).to_owned();
    let o = run(&["push", "--config", &cfg, "--dest", s(&h.dest), "--json"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let o = run(&["list", "--config", &cfg, "--tier", "cloud", "--json"]);
    assert_eq!(o.code, 0, "{}", o.text());
    let listed = o.stdout.clone();
    for n in &h.names {
        assert!(
            listed.contains(n.as_str()),
            "{n} is in the bucket: {listed}"
        );
    }
    // each archive's chain and level, from the `.meta` in the bucket
    let doc: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let rows = doc["archives"].as_array().unwrap();
    for (i, n) in h.names.iter().enumerate() {
        let row = rows.iter().find(|r| r["name"] == n.as_str()).unwrap();
        assert_eq!(row["level"], i as u64, "{row}");
        assert_eq!(row["chain"], "weekly_20261201_000000", "{row}");
    }
    // the local copies are gone: the bucket alone has the chain
    fs::remove_dir_all(&h.dest).unwrap();
    let target = h.env.p("from-s3");
    let o = run(&[
        "restore",
        "--config",
        &cfg,
        "--tier",
        "cloud",
        &h.names[4],
        "-i",
        &key(),
        "--target",
        s(&target),
        "--no-snapshot",
        "--json",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    h.assert_tree(&target, 4);
    assert_eq!(
        o.json()["restore"]["chain"]["links"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // an older link, named by its s3:// URL
    let url = format!("s3://secureclaw-test/{prefix}/{}", h.names[2]);
    let target = h.env.p("from-s3-2");
    let o = run(&[
        "restore",
        "--config",
        &cfg,
        &url,
        "-i",
        &key(),
        "--target",
        s(&target),
        "--no-snapshot",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    h.assert_tree(&target, 2);
    let o = run(&[
        "verify",
        "--config",
        &cfg,
        "--tier",
        "cloud",
        &h.names[4],
        "-i",
        &key(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    let o = run(&[
        "verify",
        "--config",
        &cfg,
        "--tier",
        "cloud",
        &h.names[4],
        "--json",
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert_eq!(o.json()["verified"][0]["chain"]["level"], 4);
    // a link missing from the bucket is named, and nothing is restored
    delete_object(&g.vars, &format!("{prefix}/{}", h.names[1]));
    let o = run(&["verify", "--config", &cfg, "--tier", "cloud", &h.names[3]]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(o.text().contains(&h.names[1]), "{}", o.text());
    let before = snapshot(&target);
    let o = run(&[
        "restore",
        "--config",
        &cfg,
        "--tier",
        "cloud",
        &h.names[3],
        "-i",
        &key(),
        "--target",
        s(&target),
        "--no-snapshot",
    ]);
    assert_eq!(o.code, 3, "{}", o.text());
    assert!(o.stderr.contains(&h.names[1]), "{}", o.stderr);
    assert_eq!(snapshot(&target), before, "the target is unchanged");
}

/// Removes one object of the test bucket (the test's own client).
fn delete_object(vars: &[(String, String)], key: &str) {
    use object_store::ObjectStoreExt;
    let get = |k: &str| {
        vars.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(get("AWS_ENDPOINT_URL"))
        .with_allow_http(true)
        .with_region(get("AWS_REGION"))
        .with_bucket_name("secureclaw-test")
        .with_access_key_id(get("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(get("AWS_SECRET_ACCESS_KEY"))
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(s3.delete(&object_store::path::Path::from(key)))
        .unwrap();
}

// ------------------------------------------------ chains made by the binary

#[test]
fn a_chain_made_by_backup_incremental_restores_at_each_link() {
    let mut h = ChainHost::new();
    let src = h.src.clone();
    let backup = |h: &ChainHost| -> String {
        let o = h.run(&[
            "--json",
            "backup",
            "--type",
            "weekly",
            "--incremental",
            "--no-prune",
            "-r",
            &age_recipient(),
            "--source",
            s(&h.src),
            "--dest",
            s(&h.dest),
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        let a = o.json()["backup"]["archive"].as_str().unwrap().to_owned();
        Path::new(&a)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let step = |h: &mut ChainHost, change: &dyn Fn()| {
        change();
        let n = backup(h);
        h.names.push(n);
        h.trees.push(content(&h.src));
    };
    step(&mut h, &|| {});
    step(&mut h, &|| {
        fs::remove_file(src.join("workspace/old.md")).unwrap();
        fs::rename(src.join("workspace/b.md"), src.join("workspace/b2.md")).unwrap();
        fs::remove_file(src.join("state/x")).unwrap();
        write_file(&src.join("state/x/inner.json"), b"[2]", 0o600);
    });
    step(&mut h, &|| {
        fs::remove_dir_all(src.join("state/d")).unwrap();
        write_file(&src.join("state/d"), b"a file now\n", 0o600);
        write_file(&src.join("workspace/report.md"), b"# edited\n", 0o600);
    });
    step(&mut h, &|| {
        fs::remove_dir_all(src.join("state/x")).unwrap();
        write_file(&src.join("state/x"), b"a file again\n", 0o600);
        fs::remove_file(src.join("workspace/latest.md")).unwrap();
    });
    let o = h.run(&["list", "--dest", s(&h.dest), "--json"]);
    let v = o.json();
    for (i, n) in h.names.iter().enumerate() {
        let row = v["archives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n.as_str())
            .unwrap_or_else(|| panic!("{n} listed: {v}"));
        assert_eq!(row["level"], i as u64, "{row}");
        assert_eq!(
            row["chain"],
            h.names[0].trim_end_matches(".tar.gz.age"),
            "{row}"
        );
    }
    for i in [3, 1, 0, 2] {
        let target = h.env.p(&format!("cli-{i}"));
        let o = h.restore(&h.path(i), &target);
        assert_eq!(o.code, 0, "{}", o.text());
        h.assert_tree(&target, i);
    }
    let o = h.run(&["verify", &h.path(3), "-i", &key()]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stdout.contains("level 3, 4 archive(s)") || o.stderr.contains("level 3, 4 archive(s)"),
        "{}",
        o.text()
    );
}
