//! Trees on disk: writing files with exact modes, the two sample data
//! directories, one walker and the snapshots built from it (for
//! before/after comparisons), archive listings, canary searches, and a
//! deterministic PRNG for test data.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The secret planted in `make_tree`'s files.
pub const CANARY: &str = "SECURECLAW-CANARY-test-4d2f";

/// Writes `data` at `path` with exactly `mode` (parents created 0700).
pub fn write_file(path: &Path, data: &[u8], mode: u32) {
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
    f.write_all(data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A small data directory following SECURECLAW-LAYOUT.md (secrets hold [`CANARY`]).
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

/// A small SecureClaw-like tree with assorted modes, as the "current" target.
pub fn populate_target(root: &Path) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .unwrap();
    write_file(
        &root.join("secureclaw.json"),
        b"{ gateway: { port: 1 } }\n",
        0o600,
    );
    write_file(
        &root.join("credentials/oauth.json"),
        b"{\"old\":true}\n",
        0o600,
    );
    write_file(
        &root.join("agents/main/sessions/s1.jsonl"),
        b"{\"old\":1}\n",
        0o644,
    );
    write_file(&root.join("workspace/notes.md"), b"old notes\n", 0o640);
    fs::set_permissions(root.join("workspace"), fs::Permissions::from_mode(0o750)).unwrap();
}

/// One entry of a walk: its path relative to the root (empty for the root),
/// its metadata (not following links), and its content (files) or link
/// target (symlinks).
pub struct Entry {
    pub rel: Vec<u8>,
    pub meta: fs::Metadata,
    pub data: Vec<u8>,
}

impl Entry {
    /// The relative path as text (lossy).
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.rel).into_owned()
    }
    /// Permission bits including setuid, setgid and sticky.
    pub fn perm(&self) -> u32 {
        self.meta.mode() & 0o7777
    }
}

/// Every entry below `root` and `root` itself (first), names sorted, links
/// not followed. Empty when `root` does not exist.
pub fn walk(root: &Path) -> Vec<Entry> {
    fn into(p: &Path, rel: Vec<u8>, out: &mut Vec<Entry>) {
        let meta = fs::symlink_metadata(p).unwrap();
        let ft = meta.file_type();
        let data = if ft.is_file() {
            fs::read(p).unwrap()
        } else if ft.is_symlink() {
            fs::read_link(p).unwrap().as_os_str().as_bytes().to_vec()
        } else {
            Vec::new()
        };
        let is_dir = ft.is_dir();
        out.push(Entry {
            rel: rel.clone(),
            meta,
            data,
        });
        if is_dir {
            let mut names: Vec<_> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(n.as_bytes());
                into(&p.join(&n), r, out);
            }
        }
    }
    let mut out = Vec::new();
    if fs::symlink_metadata(root).is_ok() {
        into(root, Vec::new(), &mut out);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
    /// Anything else, with its full `st_mode`.
    Other(u32),
}

/// Relative path → (permission bits incl. setuid/sticky, node). The root is "".
pub type Tree = BTreeMap<String, (u32, Node)>;

/// The tree below `root` (and `root` itself, as ""); empty if it is missing.
pub fn snapshot(root: &Path) -> Tree {
    walk(root)
        .into_iter()
        .map(|e| {
            let ft = e.meta.file_type();
            let node = if ft.is_dir() {
                Node::Dir
            } else if ft.is_file() {
                Node::File(e.data.clone())
            } else if ft.is_symlink() {
                Node::Link(PathBuf::from(std::ffi::OsStr::from_bytes(&e.data)))
            } else {
                Node::Other(e.meta.mode())
            };
            (e.name(), (e.perm(), node))
        })
        .collect()
}

/// A short description of how two trees differ (for assertion messages).
pub fn diff(a: &Tree, b: &Tree) -> String {
    let mut s = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => s.push_str(&format!("  - {k} (gone)\n")),
            Some(w) if w != v => s.push_str(&format!(
                "  ~ {k} (mode {:o} -> {:o}, {})\n",
                v.0,
                w.0,
                if v.1 == w.1 {
                    "same content"
                } else {
                    "content differs"
                }
            )),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            s.push_str(&format!("  + {k} (new)\n"));
        }
    }
    s
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

/// Every file under `root` whose content contains `needle` (or whose name
/// does). Uses `grep -F` (fast) where it exists, else a scan in-process.
pub fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    if let Ok(text) = std::str::from_utf8(needle) {
        let o = Command::new("grep")
            .args(["-rlaF", "--", text])
            .arg(root)
            .stderr(Stdio::null())
            .output();
        if let Ok(o) = o {
            if o.status.code() == Some(0) || o.status.code() == Some(1) {
                let mut hits: Vec<PathBuf> = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(PathBuf::from)
                    .collect();
                hits.extend(names_containing(root, needle));
                return hits;
            }
        }
    }
    files_containing_slow(root, needle)
}

fn names_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        if p.as_os_str()
            .as_encoded_bytes()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(p.clone());
        }
        if fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    hits
}

fn files_containing_slow(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if p.as_os_str()
            .as_encoded_bytes()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(p.clone());
        }
        if m.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if m.is_file() {
            if let Ok(d) = fs::read(&p) {
                if d.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.clone());
                }
            }
        }
    }
    hits
}

/// A deterministic PRNG (xorshift64*), so test data is reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}
