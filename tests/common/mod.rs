//! Shared helpers for the integration tests: run the real binary in a clean
//! environment, build small SecureClaw-like trees, snapshot trees for comparison.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const CANARY: &str = "SECURECLAW-CANARY-test-4d2f";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_secureclaw-backup"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example_key(name: &str) -> PathBuf {
    repo().join("keys-example").join(name)
}

pub fn age_recipient() -> String {
    fs::read_to_string(example_key("age-example.pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A sandbox: HOME, runtime and tmp dirs of its own.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "run", "tmp"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Env { dir }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("TMPDIR", self.path("tmp"))
            .stdin(std::process::Stdio::null());
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        eprintln!(
            "$ secureclaw-backup {}\n{}{}exit {:?}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        );
        out
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn write_file(path: &Path, content: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(p)
            .unwrap();
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A small data directory following SECURECLAW-LAYOUT.md.
pub fn make_tree(root: &Path) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .unwrap();
    write_file(
        &root.join("secureclaw.json"),
        format!("// JSON5 config\n{{\n  gateway: {{ port: 18789, token: '{CANARY}', }},\n}}\n")
            .as_bytes(),
        0o600,
    );
    write_file(&root.join("secureclaw.json.bak"), b"{}\n", 0o600);
    write_file(
        &root.join(".env"),
        format!("OPENAI_API_KEY={CANARY}\n").as_bytes(),
        0o600,
    );
    write_file(
        &root.join("llm-api-keys.json"),
        format!("{{\"k\":\"{CANARY}\"}}").as_bytes(),
        0o600,
    );
    write_file(&root.join("credentials/oauth.json"), b"{\"t\":1}", 0o600);
    write_file(
        &root.join("credentials/whatsapp/acct/creds.json"),
        CANARY.as_bytes(),
        0o600,
    );
    write_file(&root.join("identity/device.json"), b"{\"id\":\"d\"}", 0o600);
    write_file(&root.join("devices/paired.json"), b"[]", 0o600);
    write_file(
        &root.join("agents/main/agent/auth-profiles.json"),
        CANARY.as_bytes(),
        0o600,
    );
    write_file(
        &root.join("agents/main/sessions/sessions.json"),
        b"{}",
        0o600,
    );
    write_file(
        &root.join("agents/main/sessions/abc.jsonl"),
        b"{\"role\":\"user\",\"content\":\"hi\"}\n{\"role\":\"assistant\",\"content\":\"hello\"}\n",
        0o600,
    );
    // a stale session lock (its pid cannot exist): not archived, not waited for
    write_file(
        &root.join("agents/main/sessions/abc.jsonl.lock"),
        b"{\"pid\":2147483647}",
        0o600,
    );
    write_file(
        &root.join("hooks/on-start.sh"),
        b"#!/bin/sh\necho hi\n",
        0o755,
    );
    write_file(&root.join("workspace/report.md"), b"# report\n", 0o644);
    write_file(&root.join("logs/gateway.log"), b"started\n", 0o644);
    write_file(&root.join("state/queue.json"), b"[]", 0o600);
    // something that varies in size, for compression
    let mut big = Vec::new();
    for i in 0..20000u32 {
        big.extend_from_slice(
            format!("{{\"n\":{i},\"text\":\"line {}\"}}\n", i * 7919 % 1000).as_bytes(),
        );
    }
    write_file(&root.join("agents/main/sessions/big.jsonl"), &big, 0o600);
}

/// path → (kind, mode, content) for every entry below `root` (not following links).
pub type Snapshot = BTreeMap<String, (char, u32, Vec<u8>)>;

pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    (
                        'l',
                        mode,
                        fs::read_link(&p)
                            .unwrap()
                            .to_string_lossy()
                            .as_bytes()
                            .to_vec(),
                    ),
                );
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, vec![]));
                walk(root, &p, out);
            } else if m.is_file() {
                out.insert(rel, ('f', mode, fs::read(&p).unwrap()));
            } else {
                out.insert(rel, ('o', mode, vec![]));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Archives (not sidecars) in `dest`.
pub fn archives(dest: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dest)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    !n.starts_with('.')
                        && (n.ends_with(".tar.gz")
                            || n.ends_with(".tar.gz.age")
                            || n.ends_with(".tar.gz.gpg"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether `needle` occurs in any file below `root`.
pub fn contains_bytes(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    fn walk(dir: &Path, needle: &[u8], hits: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                walk(&p, needle, hits);
            } else if m.is_file() {
                if let Ok(data) = fs::read(&p) {
                    if data.windows(needle.len()).any(|w| w == needle) {
                        hits.push(p);
                    }
                }
            }
        }
    }
    walk(root, needle, &mut hits);
    hits
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
