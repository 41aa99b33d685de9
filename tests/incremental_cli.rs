//! `backup --incremental` through the binary (README "Incremental
//! backups"): a full and several links over a tree that changes between runs
//! (append, add, delete, rename, file↔directory), each restored with the
//! README's stock one-liner (`age -d … | tar --listed-incremental=/dev/null
//! -xzf -` per link, in order; and the gpg form) into an empty directory and
//! compared with the source; an unchanged re-run stores no file data; the
//! `.meta` beside every archive; why a new chain starts.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// `--json backup --incremental` of `src` into `dest` (weekly: the whole
/// tree); returns the report's `backup` object.
fn backup(sb: &Sandbox, src: &Path, dest: &Path, r: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--json",
        "backup",
        "--type",
        "weekly",
        "--no-prune",
        "-r",
        r,
        "--source",
        s(src),
        "--dest",
        s(dest),
    ];
    args.extend_from_slice(extra);
    let o = sb.output(&args);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    j["backup"].clone()
}

fn name_of(report: &serde_json::Value) -> String {
    Path::new(report["archive"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The README's stock restore: every archive of `chain` in order into one
/// empty directory with `decrypt | tar --listed-incremental=/dev/null
/// -xzf -`. Returns the restored tree (below the chain id).
fn stock_restore(dest: &Path, chain: &[String], into: &Path, decrypt: &dyn Fn(&Path) -> Command) {
    let _ = fs::remove_dir_all(into);
    fs::create_dir_all(into).unwrap();
    for a in chain {
        let mut dec = decrypt(&dest.join(a))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new("tar")
            .args(["--listed-incremental=/dev/null", "-xzf", "-"])
            .current_dir(into)
            .stdin(dec.stdout.take().unwrap())
            .output()
            .unwrap();
        let d = dec.wait_with_output().unwrap();
        assert!(
            d.status.success(),
            "decrypting {a}: {}",
            String::from_utf8_lossy(&d.stderr)
        );
        assert!(
            out.status.success(),
            "tar -G -x of {a}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn age_decrypt(f: &Path) -> Command {
    let mut c = Command::new("age");
    c.arg("-d")
        .arg("-i")
        .arg(example_key("age-example.key"))
        .arg(f);
    c
}

/// The restored tree under `<into>/<chain id>/`, without the last link's
/// manifest, and the source's, without the roots.
fn compare(src: &Path, into: &Path, chain_id: &str, what: &str) {
    let mut got = snapshot(&into.join(chain_id));
    got.remove("");
    assert!(got.remove("manifest.json").is_some(), "{what}: no manifest");
    got.remove("manifest.txt");
    let mut want = snapshot(src);
    want.remove("");
    assert!(
        got == want,
        "{what}: restored tree differs:\n{}",
        diff(&want, &got)
    );
}

fn tree(src: &Path) {
    write_file(
        &src.join("secureclaw.json"),
        b"{ gateway: { port: 1 } }\n",
        0o600,
    );
    write_file(&src.join("credentials/oauth.json"), b"{\"t\":1}", 0o600);
    write_file(
        &src.join("agents/main/sessions/a.jsonl"),
        b"{\"role\":\"user\"}\n",
        0o600,
    );
    write_file(
        &src.join("agents/main/sessions/b.jsonl"),
        b"{\"role\":\"assistant\"}\n",
        0o600,
    );
    write_file(&src.join("workspace/notes.md"), b"notes\n", 0o644);
    write_file(&src.join("workspace/old/x.txt"), b"x\n", 0o644);
    write_file(
        &src.join("state/queue"),
        b"a file, later a directory\n",
        0o600,
    );
    std::os::unix::fs::symlink("notes.md", src.join("workspace/latest")).unwrap();
}

/// The change sets between runs, one per link.
fn change(src: &Path, step: usize) -> &'static str {
    use std::io::Write;
    match step {
        1 => {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(src.join("agents/main/sessions/a.jsonl"))
                .unwrap();
            f.write_all(b"{\"role\":\"assistant\",\"content\":\"appended\"}\n")
                .unwrap();
            write_file(&src.join("agents/main/sessions/c.jsonl"), b"new\n", 0o600);
            "append and add"
        }
        2 => {
            fs::remove_file(src.join("agents/main/sessions/b.jsonl")).unwrap();
            fs::rename(
                src.join("workspace/notes.md"),
                src.join("workspace/notes-2.md"),
            )
            .unwrap();
            fs::remove_file(src.join("workspace/latest")).unwrap();
            std::os::unix::fs::symlink("notes-2.md", src.join("workspace/latest")).unwrap();
            "delete and rename"
        }
        3 => {
            fs::remove_file(src.join("state/queue")).unwrap();
            write_file(&src.join("state/queue/item-1.json"), b"{}", 0o600);
            fs::remove_dir_all(src.join("workspace/old")).unwrap();
            write_file(&src.join("workspace/old"), b"now a file\n", 0o644);
            "file to directory and directory to file"
        }
        4 => {
            fs::rename(src.join("workspace"), src.join("work")).unwrap();
            write_file(
                &src.join("secureclaw.json"),
                b"{ gateway: { port: 2 } }\n",
                0o600,
            );
            "directory renamed, config edited"
        }
        _ => unreachable!(),
    }
}

#[test]
fn a_chain_restores_with_stock_age_and_gnu_tar() {
    let sb = Sandbox::new();
    let src = sb.p("src");
    let dest = sb.p("dest");
    tree(&src);
    let r = age_recipient();
    let full = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(full["level"], 0, "{full}");
    assert_eq!(
        full["new_chain_reason"], "no incremental state yet",
        "{full}"
    );
    let chain_id = full["chain"].as_str().unwrap().to_owned();
    let mut chain = vec![name_of(&full)];
    assert_eq!(chain_id, chain[0].trim_end_matches(".tar.gz.age"));
    assert_eq!(full["stored"], 7, "{full}");
    let into = sb.p("restored");
    stock_restore(&dest, &chain, &into, &age_decrypt);
    compare(&src, &into, &chain_id, "the full");
    for step in 1..=4 {
        let what = change(&src, step);
        let l = backup(&sb, &src, &dest, &r, &["--incremental"]);
        assert_eq!(l["chain"], chain_id.as_str(), "{what}: {l}");
        assert_eq!(l["level"], step as u64, "{what}: {l}");
        assert_eq!(l["previous"], chain.last().unwrap().as_str(), "{what}");
        assert!(l["new_chain_reason"].is_null(), "{what}: {l}");
        let stored = l["stored"].as_u64().unwrap();
        assert!(
            (1..=3).contains(&stored),
            "{what}: only what changed is stored: {l}"
        );
        chain.push(name_of(&l));
        stock_restore(&dest, &chain, &into, &age_decrypt);
        compare(&src, &into, &chain_id, what);
    }
    // an unchanged re-run stores no file data
    let same = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(same["level"], 5, "{same}");
    assert_eq!(same["stored"], 0, "{same}");
    assert_eq!(same["stored_bytes"], 0, "{same}");
    assert_eq!(same["unchanged"], same["files"], "{same}");
    chain.push(name_of(&same));
    stock_restore(&dest, &chain, &into, &age_decrypt);
    compare(&src, &into, &chain_id, "the unchanged re-run");
    // --reread finds nothing either, and the chain goes on
    let rr = backup(&sb, &src, &dest, &r, &["--incremental", "--reread"]);
    assert_eq!(
        (rr["level"].as_u64(), rr["stored"].as_u64()),
        (Some(6), Some(0)),
        "{rr}"
    );
    chain.push(name_of(&rr));

    // every archive has its description: type, recipient, chain position
    for (i, a) in chain.iter().enumerate() {
        let p = dest.join(format!("{a}.meta"));
        let m: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(m["archive"], a.as_str());
        assert_eq!(m["type"], "weekly");
        assert_eq!(m["encryption"], "age");
        assert_eq!(m["recipients"][0]["kind"], "age");
        assert_eq!(m["recipients"][0]["id"], r.as_str());
        assert_eq!(m["chain"]["id"], chain_id.as_str());
        assert_eq!(m["chain"]["level"], i as u64);
        if i == 0 {
            assert!(m["chain"]["previous"].is_null());
        } else {
            assert_eq!(m["chain"]["previous"], chain[i - 1].as_str());
        }
    }

    // a new chain, and why: --max-links; a lost predecessor; a lost state
    let capped = backup(&sb, &src, &dest, &r, &["--incremental", "--max-links", "6"]);
    assert_eq!(capped["level"], 0, "{capped}");
    let why = capped["new_chain_reason"].as_str().unwrap();
    assert!(why.contains("--max-links"), "{why}");
    let second = capped["chain"].as_str().unwrap().to_owned();
    assert_ne!(second, chain_id);
    let l1 = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(
        (l1["chain"].as_str(), l1["level"].as_u64()),
        (Some(&*second), Some(1))
    );
    fs::remove_file(dest.join(name_of(&capped))).unwrap();
    let lost = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(lost["level"], 0, "{lost}");
    let why = lost["new_chain_reason"].as_str().unwrap();
    assert!(
        why.contains(&name_of(&capped)) && why.contains("not in the destination"),
        "{why}"
    );
    let state_dir = sb.p("env/home/.local/state/secureclaw-backup/incremental");
    let states: Vec<PathBuf> = fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(states.len(), 1, "{states:?}");
    fs::write(&states[0], b"{ damaged").unwrap();
    let damaged = backup(
        &sb,
        &src,
        &dest,
        &r,
        &["--incremental", "--full-every", "12h"],
    );
    assert_eq!(damaged["level"], 0, "{damaged}");
    assert!(
        damaged["new_chain_reason"]
            .as_str()
            .unwrap()
            .contains("damaged"),
        "{damaged}"
    );
}

#[test]
fn a_plain_full_has_a_description_and_no_chain() {
    let sb = Sandbox::new();
    let src = sb.p("src");
    let dest = sb.p("dest");
    tree(&src);
    let full = backup(&sb, &src, &dest, &age_recipient(), &[]);
    assert!(full["chain"].is_null() && full["level"].is_null(), "{full}");
    assert_eq!(full["stored"], full["files"], "{full}");
    let a = name_of(&full);
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(dest.join(format!("{a}.meta"))).unwrap()).unwrap();
    assert_eq!(m["archive"], a.as_str());
    assert!(m.get("chain").is_none(), "{m}");
    // no state file: a plain full is not part of a chain
    assert!(!sb
        .p("env/home/.local/state/secureclaw-backup/incremental")
        .exists());
    // flags that only mean something with --incremental are refused
    for flag in [
        &["--reread"][..],
        &["--max-links", "3"],
        &["--full-every", "1h"],
    ] {
        let mut args = vec!["backup", "-r", "x", "--source", s(&src), "--dest", s(&dest)];
        args.extend_from_slice(flag);
        let o = sb.output(&args);
        assert_eq!(code(&o), 2, "{flag:?}");
    }
}

#[test]
fn a_chain_restores_with_stock_gpg_and_gnu_tar() {
    if !have_gpg() {
        eprintln!("SKIPPED: gpg is not installed");
        return;
    }
    let sb = Sandbox::new();
    let src = sb.p("src");
    let dest = sb.p("dest");
    tree(&src);
    let cert = example_key("openpgp-example.pub.asc").display().to_string();
    // a GnuPG home with the example secret key, for the stock decryption
    let home = sb.p("gnupg");
    fs::create_dir_all(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let o = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args(["--batch", "--quiet", "--import"])
        .arg(example_key("openpgp-example.sec.asc"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let gpg = |f: &Path| {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &home)
            .args(["--batch", "--quiet", "--decrypt"])
            .arg(f);
        c
    };
    let full = backup(&sb, &src, &dest, &cert, &["--incremental"]);
    let chain_id = full["chain"].as_str().unwrap().to_owned();
    let mut chain = vec![name_of(&full)];
    assert!(chain[0].ends_with(".tar.gz.gpg"));
    for step in 1..=3 {
        let what = change(&src, step);
        let l = backup(&sb, &src, &dest, &cert, &["--incremental"]);
        assert_eq!(l["level"], step as u64, "{what}: {l}");
        chain.push(name_of(&l));
    }
    let into = sb.p("restored");
    stock_restore(&dest, &chain, &into, &gpg);
    compare(&src, &into, &chain_id, "the gpg chain");
    // the description names the primary fingerprint and the subkey
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(dest.join(format!("{}.meta", chain[3]))).unwrap())
            .unwrap();
    assert_eq!(m["encryption"], "openpgp");
    let r = &m["recipients"][0];
    assert_eq!(r["kind"], "openpgp");
    let fpr = r["id"].as_str().unwrap().to_ascii_uppercase();
    assert_eq!(fpr.len(), 40, "{m}");
    assert!(fpr.ends_with(&pgp_keyid().to_ascii_uppercase()), "{m}");
    // the encryption subkey, as stock gpg lists the certificate's subkeys
    let o = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args(["--batch", "--show-keys", "--with-subkey-fingerprints"])
        .arg(example_key("openpgp-example.pub.asc"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&o.stdout).to_ascii_uppercase();
    let sub = r["subkey"].as_str().unwrap().to_ascii_uppercase();
    assert_eq!(sub.len(), 16, "{m}");
    assert!(!fpr.ends_with(&sub), "the subkey, not the primary: {m}");
    assert!(
        listing
            .lines()
            .any(|l| l.trim().len() == 40 && l.trim().ends_with(&sub)),
        "{sub} is not a subkey of the certificate:\n{listing}"
    );
}

/// `--max-chain-size`: a new full before the chain's archives (with the
/// next link: as large as the newest, the first after a full from what
/// changed since) outgrow 130 % of its full, beyond 16 MiB; `unlimited` and
/// `[backup] max_chain_size` of the configuration.
#[test]
fn a_chain_that_outgrows_its_full_gets_a_new_one() {
    let sb = Sandbox::new();
    let src = sb.p("src");
    let dest = sb.p("dest");
    let r = age_recipient();
    let mut rng = Rng(0x5eed_c4a1);
    fs::create_dir_all(&src).unwrap();
    // incompressible: archive bytes = file bytes
    write_file(&src.join("big.bin"), &rng.bytes(40 << 20), 0o600);
    let full = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(full["level"], 0);
    // 10 MiB changed per run: the first link is not estimated
    let grow = |rng: &mut Rng| write_file(&src.join("hot.bin"), &rng.bytes(10 << 20), 0o600);
    grow(&mut rng);
    let l1 = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(l1["level"], 1, "{l1}");
    // 10 MiB of links + the next 10: past max(30 % of 40 MiB, 16 MiB)
    grow(&mut rng);
    let cut = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(cut["level"], 0, "{cut}");
    let why = cut["new_chain_reason"].as_str().unwrap();
    assert!(why.contains("--max-chain-size 130%"), "{why}");
    // the same step with the limit lifted continues the chain
    grow(&mut rng);
    let l = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(l["level"], 1, "{l}");
    grow(&mut rng);
    let l = backup(
        &sb,
        &src,
        &dest,
        &r,
        &["--incremental", "--max-chain-size", "unlimited"],
    );
    assert_eq!(l["level"], 2, "{l}");
    // [backup] max_chain_size, under the flag
    let cfg = sb.p("config.toml");
    fs::write(&cfg, "[backup]\nmax_chain_size = \"200%\"\n").unwrap();
    grow(&mut rng);
    let l = backup(
        &sb,
        &src,
        &dest,
        &r,
        &["--incremental", "--config", s(&cfg)],
    );
    assert_eq!(l["level"], 3, "{l}");
    grow(&mut rng);
    let c = backup(
        &sb,
        &src,
        &dest,
        &r,
        &[
            "--incremental",
            "--config",
            s(&cfg),
            "--max-chain-size",
            "101%",
        ],
    );
    assert_eq!(c["level"], 0, "{c}");
    // the first link after a full is estimated from the files that changed
    // since: 20 MiB rewritten is past max(30 % of 50 MiB, 16 MiB)
    write_file(&src.join("hot.bin"), &rng.bytes(20 << 20), 0o600);
    let f = backup(&sb, &src, &dest, &r, &["--incremental"]);
    assert_eq!(f["level"], 0, "{f}");
    let why = f["new_chain_reason"].as_str().unwrap();
    // random data: about its size (gzip adds a little)
    let est: u64 = why
        .split("estimated at ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{why}"));
    assert!((20 << 20..21 << 20).contains(&est), "{why}");
    // a bad value in either place is a usage error naming it
    let o = sb.output(&[
        "backup",
        "--incremental",
        "--max-chain-size",
        "90%",
        "-r",
        &r,
    ]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--max-chain-size"));
    fs::write(&cfg, "[backup]\nmax_chain_size = \"1.3\"\n").unwrap();
    let o = sb.output(&[
        "backup",
        "--incremental",
        "--source",
        s(&src),
        "--dest",
        s(&dest),
        "-r",
        &r,
        "--config",
        s(&cfg),
    ]);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("max_chain_size") && err.contains("config.toml"),
        "{err}"
    );
}
