//! Crash safety of incremental chains (README "Incremental backups"):
//! `backup --incremental` killed with SIGKILL at random points of its run,
//! the tree changing between runs. After every kill:
//!
//! - the state file is absent, or names only committed archives (each in the
//!   destination under its final name, with its sidecar and description);
//! - no archive in the destination is a link whose predecessor is missing
//!   (read from its `.meta`, else from the manifest inside it, decrypted
//!   with the example key);
//! - the next run either continues the state's chain (level + 1, previous =
//!   the state's archive) or starts a new chain and says why; an archive the
//!   killed run committed without saving the state makes it start a new one
//!   (a link after the state's newest would fork the chain);
//! - the chain the state describes restores with stock age and GNU tar
//!   (`age -d -i KEY F | tar --listed-incremental=/dev/null -xzf -` per
//!   link, in order) to exactly the source tree.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BLOB: usize = 512 * 1024;
const BLOBS: usize = 40;

/// About 20 MiB of incompressible blobs and a few small files.
fn generate(root: &Path, rng: &mut Rng) {
    write_file(
        &root.join("secureclaw.json"),
        b"{ gateway: { port: 1 } }\n",
        0o600,
    );
    write_file(&root.join("credentials/oauth.json"), b"{\"t\":1}", 0o600);
    for i in 0..BLOBS {
        write_file(
            &root.join(format!("workspace/data/blob-{i:03}.bin")),
            &rng.bytes(BLOB),
            0o600,
        );
    }
    write_file(
        &root.join("agents/main/sessions/s.jsonl"),
        b"{\"n\":0}\n",
        0o600,
    );
}

/// The changes before run `n`: a quarter of the blobs rewritten (so the
/// link takes a while), a transcript appended, a file added, one deleted,
/// one renamed.
fn mutate(root: &Path, rng: &mut Rng, n: usize) {
    use std::io::Write;
    for _ in 0..BLOBS / 4 {
        let i = rng.below(BLOBS as u64);
        write_file(
            &root.join(format!("workspace/data/blob-{i:03}.bin")),
            &rng.bytes(BLOB),
            0o600,
        );
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("agents/main/sessions/s.jsonl"))
        .unwrap();
    writeln!(f, "{{\"n\":{n}}}").unwrap();
    write_file(&root.join(format!("state/item-{n}.json")), b"{}", 0o600);
    if n >= 2 {
        let _ = fs::remove_file(root.join(format!("state/item-{}.json", n - 2)));
    }
    let renamed = root.join(format!("notes/r-{}.md", n.saturating_sub(1)));
    if renamed.exists() {
        fs::rename(&renamed, root.join(format!("notes/r-{n}.md"))).unwrap();
    } else {
        write_file(&root.join(format!("notes/r-{n}.md")), b"notes\n", 0o644);
    }
}

fn backup_cmd(sb: &Sandbox, src: &Path, dest: &Path) -> Command {
    let mut c = sb.cmd();
    c.args([
        "--json",
        "backup",
        "--incremental",
        "--type",
        "weekly",
        "--no-prune",
        "-r",
        &age_recipient(),
        "--source",
    ])
    .arg(src)
    .arg("--dest")
    .arg(dest);
    c
}

fn spawn(c: &mut Command) -> Child {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn is_archive_name(n: &str) -> bool {
    n.starts_with("weekly_") && n.ends_with(".tar.gz.age")
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What the state file says (None when there is none).
#[derive(Debug, Clone)]
struct St {
    chain: String,
    level: u64,
    archive: String,
    links: Vec<String>,
}

fn state_file(sb: &Sandbox) -> Option<PathBuf> {
    let dir = sb.p("env/home/.local/state/secureclaw-backup/incremental");
    names(&dir)
        .into_iter()
        .find(|n| n.ends_with(".json") && !n.starts_with('.'))
        .map(|n| dir.join(n))
}

fn read_state(sb: &Sandbox) -> Option<St> {
    let p = state_file(sb)?;
    let j: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap())
        .unwrap_or_else(|e| panic!("the state file {p:?} is not whole JSON: {e}"));
    Some(St {
        chain: j["chain_id"].as_str().unwrap().to_owned(),
        level: j["level"].as_u64().unwrap(),
        archive: j["archive"].as_str().unwrap().to_owned(),
        links: j["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
    })
}

/// `chain.previous` of an archive: from its `.meta`, else from the manifest
/// inside it (decrypted with the example key). `None` for a full.
fn previous_of(
    dest: &Path,
    a: &str,
    cache: &mut BTreeMap<String, Option<String>>,
) -> Option<String> {
    if let Some(p) = cache.get(a) {
        return p.clone();
    }
    let meta = dest.join(format!("{a}.meta"));
    let chain = if meta.exists() {
        let m: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap())
            .unwrap_or_else(|e| panic!("{a}.meta is not whole: {e}"));
        m["chain"].clone()
    } else {
        let sh = format!(
            "age -d -i '{}' '{}' | tar -xzOf - --wildcards '*/manifest.json'",
            example_key("age-example.key").display(),
            dest.join(a).display()
        );
        let o = Command::new("bash").arg("-c").arg(&sh).output().unwrap();
        assert!(
            o.status.success(),
            "{a} has an archive name but does not decrypt and untar: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        m["chain"].clone()
    };
    let prev = chain["previous"].as_str().map(str::to_owned);
    cache.insert(a.to_owned(), prev.clone());
    prev
}

fn stock_restore(dest: &Path, links: &[String], into: &Path) {
    let _ = fs::remove_dir_all(into);
    fs::create_dir_all(into).unwrap();
    for a in links {
        let sh = format!(
            "age -d -i '{}' '{}' | tar --listed-incremental=/dev/null -xzf -",
            example_key("age-example.key").display(),
            dest.join(a).display()
        );
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; {sh}"))
            .current_dir(into)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "stock restore of {a}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The invariants after a kill (or a completed run).
fn check_consistent(sb: &Sandbox, dest: &Path, cache: &mut BTreeMap<String, Option<String>>) {
    let present = names(dest);
    if let Some(st) = read_state(sb) {
        assert_eq!(st.links.last(), Some(&st.archive));
        assert_eq!(st.links.len() as u64, st.level + 1);
        for l in &st.links {
            for suffix in ["", ".sha256", ".meta"] {
                let n = format!("{l}{suffix}");
                assert!(
                    present.contains(&n),
                    "the state names {l}, but {n} is not in the destination"
                );
            }
        }
    }
    for a in present.iter().filter(|n| is_archive_name(n)) {
        if let Some(p) = previous_of(dest, a, cache) {
            assert!(
                present.contains(&p),
                "{a} is a link whose predecessor {p} is missing"
            );
        }
    }
}

#[test]
fn incremental_backup_killed_at_random_points() {
    let started = Instant::now();
    let sb = Sandbox::new();
    let src = sb.p("src");
    let dest = sb.p("dest");
    let mut rng = Rng(0x1c4e_0001);
    generate(&src, &mut rng);
    let mut cache = BTreeMap::new();

    let out = run_cmd(&mut backup_cmd(&sb, &src, &dest));
    assert_eq!(out.code, 0, "{}", out.text());
    // one complete link: how long a run takes, to aim the kills at
    mutate(&src, &mut rng, 1);
    let t0 = Instant::now();
    let out = run_cmd(&mut backup_cmd(&sb, &src, &dest));
    let span = t0.elapsed().as_millis() as u64 + 30;
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(out.json()["backup"]["level"], 1, "{}", out.text());
    eprintln!("a link takes {span} ms");

    let kills = 14;
    let (mut mid_write, mut committed_unsaved, mut new_chains, mut continued) = (0, 0, 0, 0);
    let into = sb.p("restored");
    for i in 0..kills {
        mutate(&src, &mut rng, i + 2);
        let before = read_state(&sb);
        let ms = span * i as u64 / kills as u64 + rng.below(span / kills as u64 + 1);
        let mut child = spawn(&mut backup_cmd(&sb, &src, &dest));
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        if names(&dest)
            .iter()
            .any(|n| n.starts_with(".secureclaw-backup."))
        {
            mid_write += 1;
        }
        check_consistent(&sb, &dest, &mut cache);
        let after_kill = read_state(&sb);
        // did the killed run commit an archive the state does not name?
        let known: BTreeSet<String> = after_kill
            .iter()
            .flat_map(|s| s.links.iter().cloned())
            .collect();
        let stray = names(&dest).into_iter().any(|n| {
            is_archive_name(&n)
                && !known.contains(&n)
                && after_kill.as_ref().is_some_and(|s| n > s.archive)
        });
        if stray {
            committed_unsaved += 1;
        }

        // the next run: continues the chain, or starts a new one and says why
        let out = run_cmd(&mut backup_cmd(&sb, &src, &dest));
        assert_eq!(out.code, 0, "run after kill {i} at {ms} ms: {}", out.text());
        let r = &out.json()["backup"];
        let now = read_state(&sb).expect("a completed run saves the state");
        let name = Path::new(r["archive"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(now.archive, name, "the state names the run's archive");
        match r["level"].as_u64().unwrap() {
            0 => {
                let why = r["new_chain_reason"].as_str().unwrap_or_default();
                assert!(!why.is_empty(), "a new chain without a reason: {r}");
                new_chains += 1;
            }
            l => {
                let prev = after_kill.as_ref().expect("a link needs a state");
                assert!(!stray, "a link after a stray archive forks the chain: {r}");
                assert_eq!(l, prev.level + 1, "{r}");
                assert_eq!(r["previous"].as_str(), Some(prev.archive.as_str()), "{r}");
                assert_eq!(now.chain, prev.chain);
                continued += 1;
            }
        }
        if stray {
            let why = r["new_chain_reason"].as_str().unwrap_or_default();
            assert!(why.contains("newer than the state"), "{why}");
        }
        // a kill never rewinds the state to before the previous completed run
        if let (Some(b), Some(a)) = (&before, &after_kill) {
            assert!(
                a.archive >= b.archive,
                "the state went back: {b:?} -> {a:?}"
            );
        }
        check_consistent(&sb, &dest, &mut cache);
        stock_restore(&dest, &now.links, &into);
        let mut got = snapshot(&into.join(&now.chain));
        got.remove("");
        got.remove("manifest.json");
        got.remove("manifest.txt");
        let mut want = snapshot(&src);
        want.remove("");
        assert!(
            got == want,
            "after kill {i} at {ms} ms, the chain restores to another tree:\n{}",
            diff(&want, &got)
        );
    }
    eprintln!(
        "{kills} kills: {mid_write} left a temp file (killed while writing), \
         {committed_unsaved} left a committed archive the state did not name; \
         the next runs continued the chain {continued} times and started {new_chains} new chains"
    );
    assert!(
        mid_write > 0,
        "no kill landed while an archive was being written"
    );
    // nothing stale is left once a run completes
    let left: Vec<String> = names(&dest)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "stale files: {left:?}");
    eprintln!("incremental crash test: {:?}", started.elapsed());
}
