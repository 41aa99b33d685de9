//! Hand-written tar streams: 512-byte headers with correct checksums, PAX `x`
//! records, GNU `L`/`K` long names, any typeflag; the manifest.json a
//! forger would write for them; gzip; benign archives.

use std::io::Write;

use sha2::{Digest, Sha256};

/// The top-level directory of the hand-built archives.
pub const TOP: &str = "daily_20260101_000000";

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
