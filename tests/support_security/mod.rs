//! Helpers of the security tests (hostile.rs, crash.rs, secrets.rs): a sandbox
//! that runs the real binary in a clean environment, a hand-written tar
//! builder (512-byte headers with correct checksums, PAX `x` records, GNU `L`/`K`
//! long names, any typeflag), gzip, encryption with the age crate or stock gpg,
//! manifests, and tree snapshots (paths, modes, contents) for before/after
//! comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

pub const TOP: &str = "daily_20260101_000000";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_secureclaw-backup"))
}

pub fn key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("keys-example")
        .join(name)
}

pub fn age_pub() -> String {
    fs::read_to_string(key("age-example.pub"))
        .unwrap()
        .trim()
        .to_owned()
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

// ---------------------------------------------------------------- running

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A sandbox: `env/{home,run,tmp}` for the process, `w/` the watched area
/// (target's parent, canary, snapshot destination), `arch/` for archives.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "env/home", "env/run", "env/tmp", "w/parent", "w/canary", "arch",
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir.path().join(d))
                .unwrap();
        }
        write_mode(&dir.path().join("w/canary/keep"), b"canary", 0o600);
        Sandbox { dir }
    }
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn target(&self) -> PathBuf {
        self.p("w/parent/target")
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.p("env/home"))
            .env("XDG_RUNTIME_DIR", self.p("env/run"))
            .env("TMPDIR", self.p("env/tmp"))
            .env("GNUPGHOME", self.p("env/home/.gnupg"))
            .stdin(Stdio::null());
        c
    }
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        run_cmd(self.cmd().args(args))
    }
}

pub fn run_cmd(c: &mut Command) -> Out {
    let o = c.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------- trees

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
    Other(u32),
}

/// Relative path → (permission bits incl. setuid/sticky, node). The root is "".
pub type Tree = BTreeMap<String, (u32, Node)>;

pub fn snapshot(root: &Path) -> Tree {
    let mut t = Tree::new();
    if fs::symlink_metadata(root).is_ok() {
        snap_into(root, "", &mut t);
    }
    t
}

fn snap_into(p: &Path, rel: &str, t: &mut Tree) {
    let m = fs::symlink_metadata(p).unwrap();
    let mode = m.mode() & 0o7777;
    let ft = m.file_type();
    if ft.is_dir() {
        t.insert(rel.to_owned(), (mode, Node::Dir));
        let mut names: Vec<_> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            snap_into(&p.join(&n), &r, t);
        }
    } else if ft.is_file() {
        t.insert(rel.to_owned(), (mode, Node::File(fs::read(p).unwrap())));
    } else if ft.is_symlink() {
        t.insert(
            rel.to_owned(),
            (mode, Node::Link(fs::read_link(p).unwrap())),
        );
    } else {
        t.insert(rel.to_owned(), (mode, Node::Other(m.mode())));
    }
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

pub fn write_mode(path: &Path, data: &[u8], mode: u32) {
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

/// A small SecureClaw-like tree with assorted modes, as the "current" target.
pub fn populate_target(root: &Path) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .unwrap();
    write_mode(
        &root.join("secureclaw.json"),
        b"{ gateway: { port: 1 } }\n",
        0o600,
    );
    write_mode(
        &root.join("credentials/oauth.json"),
        b"{\"old\":true}\n",
        0o600,
    );
    write_mode(
        &root.join("agents/main/sessions/s1.jsonl"),
        b"{\"old\":1}\n",
        0o644,
    );
    write_mode(&root.join("workspace/notes.md"), b"old notes\n", 0o640);
    fs::set_permissions(root.join("workspace"), fs::Permissions::from_mode(0o750)).unwrap();
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

// ---------------------------------------------------------------- tar

pub mod ty {
    pub const FILE: u8 = b'0';
    pub const HARDLINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const CONTIGUOUS: u8 = b'7';
    pub const PAX: u8 = b'x';
    pub const PAX_GLOBAL: u8 = b'g';
    pub const GNU_LONGNAME: u8 = b'L';
    pub const GNU_LONGLINK: u8 = b'K';
    pub const GNU_SPARSE: u8 = b'S';
}

/// One manifest entry as the hostile archive's author declares it.
#[derive(Clone, Debug)]
pub struct MEntry {
    pub path: String,
    pub dir: bool,
    pub size: u64,
    pub sha256: String,
}

/// A hand-built tar stream plus the manifest its author would write for it.
#[derive(Default)]
pub struct Tar {
    pub buf: Vec<u8>,
    pub manifest: Vec<MEntry>,
    /// GNU magic (`ustar  \0`) instead of POSIX ustar.
    pub gnu: bool,
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    assert!(s.len() <= w, "value {v} does not fit an octal field of {w}");
    field[..w].copy_from_slice(s.as_bytes());
    field[w] = 0;
}

pub fn sha256_hex(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    /// Writes one 512-byte header. `size` is what the header claims (the
    /// caller writes the data); sizes beyond the octal field use GNU base-256.
    pub fn header(&mut self, name: &[u8], typeflag: u8, mode: u32, size: u64, link: &[u8]) {
        self.header_patched(name, typeflag, mode, size, link, |_| {});
    }

    /// Like [`Tar::header`], with `patch` applied to the raw block before the
    /// checksum is computed (GNU sparse maps, odd fields).
    pub fn header_patched(
        &mut self,
        name: &[u8],
        typeflag: u8,
        mode: u32,
        size: u64,
        link: &[u8],
        patch: impl Fn(&mut [u8; 512]),
    ) {
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "use a PAX/GNU long name"
        );
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        if size < (1u64 << 33) {
            octal(&mut h[124..136], size);
        } else {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        octal(&mut h[136..148], 1_767_225_600);
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        if self.gnu {
            h[257..265].copy_from_slice(b"ustar  \0");
        } else {
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
        }
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        patch(&mut h);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.buf.extend_from_slice(&h);
    }

    /// Appends data and pads it to the block size.
    pub fn data(&mut self, d: &[u8]) {
        self.buf.extend_from_slice(d);
        let pad = (512 - d.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    /// A raw entry: header (with the real data size) and data. Not recorded in
    /// the manifest.
    pub fn raw(&mut self, name: &[u8], typeflag: u8, mode: u32, link: &[u8], data: &[u8]) {
        self.header(name, typeflag, mode, data.len() as u64, link);
        self.data(data);
    }

    /// A regular file `TOP/rel`, recorded in the manifest.
    pub fn file(&mut self, rel: &str, mode: u32, data: &[u8]) {
        self.raw(format!("{TOP}/{rel}").as_bytes(), ty::FILE, mode, b"", data);
        self.record(rel, false, data);
    }

    /// A directory `TOP/rel/`, recorded in the manifest.
    pub fn dir(&mut self, rel: &str, mode: u32) {
        self.raw(format!("{TOP}/{rel}/").as_bytes(), ty::DIR, mode, b"", b"");
        self.record(rel, true, b"");
    }

    /// The top-level directory entry.
    pub fn top(&mut self) {
        self.raw(format!("{TOP}/").as_bytes(), ty::DIR, 0o700, b"", b"");
    }

    /// Declares an entry in the manifest (as a hostile author would, to make
    /// the manifest agree with whatever the archive holds).
    pub fn record(&mut self, rel: &str, dir: bool, data: &[u8]) {
        self.manifest.push(MEntry {
            path: rel.to_owned(),
            dir,
            size: data.len() as u64,
            sha256: sha256_hex(data),
        });
    }

    /// A PAX extended header (`x`) for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) {
        let mut body = Vec::new();
        for (k, v) in records {
            // "<len> <key>=<value>\n" where len counts itself
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len = len.to_string().len() + rest;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.raw(b"PaxHeaders/x", ty::PAX, 0o644, b"", &body);
    }

    /// A GNU long-name (`L`) entry for the next entry.
    pub fn gnu_longname(&mut self, name: &[u8]) {
        let mut d = name.to_vec();
        d.push(0);
        self.raw(b"././@LongLink", ty::GNU_LONGNAME, 0o644, b"", &d);
    }

    /// A GNU long-link (`K`) entry for the next entry.
    pub fn gnu_longlink(&mut self, name: &[u8]) {
        let mut d = name.to_vec();
        d.push(0);
        self.raw(b"././@LongLink", ty::GNU_LONGLINK, 0o644, b"", &d);
    }

    /// The manifest.json its author would write for the recorded entries.
    pub fn manifest_json(&self) -> Vec<u8> {
        let entries: Vec<serde_json::Value> = self
            .manifest
            .iter()
            .map(|e| {
                if e.dir {
                    serde_json::json!({"path": e.path, "type": "dir", "size": 0, "mode": "0700"})
                } else {
                    serde_json::json!({"path": e.path, "type": "file", "size": e.size, "mode": "0600", "sha256": e.sha256})
                }
            })
            .collect();
        let m = serde_json::json!({
            "format": "secureclaw-backup-manifest",
            "version": 1,
            "type": "daily",
            "created": "2026-01-01T00:00:00Z",
            "timestamp": "20260101_000000",
            "host": "test",
            "tool_version": "0.1.0",
            "source": "/nonexistent",
            "recipients": [],
            "entries": entries,
            "warnings": [],
        });
        serde_json::to_vec_pretty(&m).unwrap()
    }

    /// Appends `TOP/manifest.json` (when `with_manifest`) and the end-of-archive
    /// marker.
    pub fn finish(mut self, with_manifest: bool) -> Vec<u8> {
        if with_manifest {
            let m = self.manifest_json();
            self.raw(
                format!("{TOP}/manifest.json").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                &m,
            );
        }
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }
}

pub fn gzip(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------- encryption

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Age,
    Pgp,
}

impl Backend {
    pub fn suffix(self) -> &'static str {
        match self {
            Backend::Age => "tar.gz.age",
            Backend::Pgp => "tar.gz.gpg",
        }
    }
    pub fn identity(self) -> PathBuf {
        match self {
            Backend::Age => key("age-example.key"),
            Backend::Pgp => key("openpgp-example.sec.asc"),
        }
    }
    pub fn recipient(self) -> String {
        match self {
            Backend::Age => age_pub(),
            Backend::Pgp => key("openpgp-example.pub.asc").display().to_string(),
        }
    }
    pub fn encrypt(self, plain: &[u8]) -> Vec<u8> {
        match self {
            Backend::Age => age_encrypt(plain),
            Backend::Pgp => gpg_encrypt(plain),
        }
    }
}

pub fn age_encrypt(plain: &[u8]) -> Vec<u8> {
    let r: age::x25519::Recipient = age_pub().parse().unwrap();
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    out
}

pub fn have_gpg() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        Command::new("gpg")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// The backends to test: age always, OpenPGP when `gpg` exists.
pub fn backends() -> Vec<Backend> {
    if have_gpg() {
        vec![Backend::Age, Backend::Pgp]
    } else {
        eprintln!("SKIPPED the OpenPGP variants: gpg is not installed");
        vec![Backend::Age]
    }
}

/// A GnuPG home (under the target dir) holding the example certificate.
fn gnupg_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // homes of earlier runs
        if let Ok(rd) = fs::read_dir(base) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with("security-gnupg-")
                {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let home = base.join(format!("security-gnupg-{}", std::process::id()));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&home)
            .unwrap();
        let o = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--no-autostart", "--quiet", "--import"])
            .arg(key("openpgp-example.pub.asc"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "gpg --import: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        home
    })
}

pub fn pgp_keyid() -> String {
    fs::read_to_string(key("openpgp-example.keyid"))
        .unwrap()
        .trim()
        .to_owned()
}

pub fn gpg_encrypt(plain: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gpg")
        .env("GNUPGHOME", gnupg_home())
        .args([
            "--batch",
            "--no-autostart",
            "--quiet",
            "--no-tty",
            "--encrypt",
            "-z",
            "0",
            "--trust-model",
            "always",
            "-r",
        ])
        .arg(pgp_keyid())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = plain.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        o.status.success(),
        "gpg --encrypt: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// tar → gzip → encrypt, written to `dir/<name>.<suffix>` (mode 0600).
pub fn write_archive(dir: &Path, name: &str, backend: Backend, tar: &[u8]) -> PathBuf {
    let p = dir.join(format!("{name}.{}", backend.suffix()));
    write_mode(&p, &backend.encrypt(&gzip(tar)), 0o600);
    p
}

/// A benign archive of `files` (relative path → content) under TOP.
pub fn benign_tar(files: &[(&str, &[u8])], with_manifest: bool) -> Vec<u8> {
    let mut t = Tar::new();
    t.top();
    let mut dirs = std::collections::BTreeSet::new();
    for (p, _) in files {
        let comps: Vec<&str> = p.split('/').collect();
        for i in 1..comps.len() {
            dirs.insert(comps[..i].join("/"));
        }
    }
    for d in &dirs {
        t.dir(d, 0o755);
    }
    for (p, d) in files {
        t.file(p, 0o644, d);
    }
    t.finish(with_manifest)
}
