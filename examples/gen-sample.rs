//! Generate a realistic, deterministic, fake SecureClaw data directory.
//!
//! ```text
//! cargo run --example gen-sample -- DIR [--size small|large|huge] [--seed N] [--files N]
//! ```
//!
//! * `--size small` (default): a few MB, 2 agents.
//! * `--size large`: about 1 GiB, 10 agents, a few thousand files; about 60 % of
//!   the bytes are compressible text (transcripts, logs), the rest random blobs.
//! * `--size huge`: about 5 GiB, 16 agents.
//! * `--files N`: only the minimal config plus N files of 1 KiB under
//!   `workspace/many/` (many-small-files benchmark).
//!
//! The output depends only on the arguments (seeded hand-written PRNG, fixed
//! clock), never on the wall clock. Every secret file (mode 0600) contains the
//! canary `SECURECLAW-CANARY-7f3a9c` so that tests can scan archives for
//! plaintext leaks; the memory databases contain it too. All secrets are fake.
//!
//! Standalone on purpose: it uses no code from the `secureclaw_backup` library.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Canary string present in every secret file.
const CANARY: &str = "SECURECLAW-CANARY-7f3a9c";

/// Fixed "now" of the sample: 2026-02-14T09:30:00Z, in milliseconds.
const BASE_MS: u64 = 1_771_061_400_000;

const MIB: u64 = 1024 * 1024;

const USAGE: &str = "usage: gen-sample DIR [--size small|large|huge] [--seed N] [--files N]";

// ---------------------------------------------------------------- PRNG

/// xorshift64* seeded through splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &'a [&'a T]) -> &'a T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A float in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }

    fn hex(&mut self, nbytes: usize) -> String {
        let mut b = vec![0u8; nbytes];
        self.fill(&mut b);
        hex::encode(b)
    }

    fn uuid(&mut self) -> String {
        let h = self.hex(16);
        format!(
            "{}-{}-4{}-{:x}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            8 + self.below(4),
            &h[17..20],
            &h[20..32]
        )
    }
}

// ---------------------------------------------------------------- text

const WORDS: &[&str] = &[
    "the",
    "agent",
    "gateway",
    "session",
    "backup",
    "memory",
    "config",
    "token",
    "channel",
    "message",
    "user",
    "model",
    "request",
    "response",
    "file",
    "directory",
    "workspace",
    "plugin",
    "hook",
    "device",
    "account",
    "schedule",
    "report",
    "summary",
    "deploy",
    "server",
    "client",
    "queue",
    "error",
    "warning",
    "restart",
    "update",
    "version",
    "release",
    "branch",
    "commit",
    "review",
    "test",
    "build",
    "script",
    "command",
    "output",
    "input",
    "value",
    "list",
    "table",
    "index",
    "search",
    "result",
    "query",
    "context",
    "prompt",
    "reply",
    "draft",
    "email",
    "calendar",
    "meeting",
    "tomorrow",
    "today",
    "yesterday",
    "week",
    "month",
    "morning",
    "evening",
    "project",
    "task",
    "issue",
    "ticket",
    "customer",
    "invoice",
    "payment",
    "budget",
    "travel",
    "flight",
    "hotel",
    "booking",
    "weather",
    "forecast",
    "note",
    "reminder",
    "idea",
    "plan",
    "step",
    "first",
    "second",
    "next",
    "then",
    "after",
    "before",
    "because",
    "while",
    "with",
    "without",
    "for",
    "from",
    "into",
    "over",
    "under",
    "about",
    "again",
    "also",
    "only",
    "just",
    "still",
    "already",
    "maybe",
    "probably",
    "certainly",
    "quickly",
    "carefully",
    "please",
    "thanks",
    "sure",
    "okay",
    "great",
    "good",
    "better",
    "simple",
    "complex",
    "small",
    "large",
    "new",
    "old",
    "recent",
    "previous",
    "current",
    "local",
    "remote",
    "secure",
    "encrypted",
    "private",
    "public",
    "shared",
    "daily",
    "weekly",
    "monthly",
    "check",
    "verify",
    "restore",
    "read",
    "write",
    "open",
    "close",
    "send",
    "receive",
    "create",
    "delete",
    "move",
    "copy",
    "rename",
    "compare",
    "explain",
    "describe",
    "suggest",
    "recommend",
    "consider",
    "remember",
    "forget",
    "find",
    "fix",
    "improve",
    "reduce",
    "increase",
    "measure",
    "compute",
    "estimate",
    "a",
    "an",
    "this",
    "that",
    "these",
    "those",
    "it",
    "we",
    "you",
    "they",
    "i",
    "is",
    "are",
    "was",
    "were",
    "will",
    "would",
    "can",
    "could",
    "should",
    "might",
    "must",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "not",
    "no",
    "yes",
    "and",
    "or",
    "but",
    "if",
    "when",
    "where",
    "how",
    "what",
    "which",
    "who",
    "why",
    "all",
    "some",
    "many",
    "few",
    "more",
    "less",
    "most",
    "every",
    "each",
    "other",
    "same",
    "different",
    "important",
    "urgent",
    "optional",
    "ready",
    "done",
    "pending",
    "failed",
    "succeeded",
    "running",
    "stopped",
    "linux",
    "docker",
    "python",
    "rust",
    "database",
    "sqlite",
    "json",
    "api",
    "key",
    "password",
    "login",
    "network",
    "port",
    "socket",
    "disk",
    "cpu",
    "latency",
    "throughput",
    "minutes",
    "seconds",
    "hours",
    "days",
];

const POOL_SENTENCES: usize = 16_384;

/// One gateway log line ending in '\n'; `note` is a sentence with its trailing space.
fn log_line(rng: &mut Rng, clock: &mut Clock, note: Option<&[u8]>, b: &mut Vec<u8>, t: u64) {
    clock.push(b, t);
    b.push(b' ');
    let (tpl, kind) = LOG_TEMPLATES[rng.below(LOG_TEMPLATES.len() as u64) as usize];
    b.extend_from_slice(tpl.as_bytes());
    match kind {
        1 => push_hex(b, rng.next(), 8),
        2 => {
            b.extend_from_slice(b"+1555555");
            push_pad(b, rng.below(10_000), 4);
        }
        _ => push_u64(b, rng.below(5_000)),
    }
    if let Some(s) = note {
        b.extend_from_slice(b" note=");
        b.extend_from_slice(&s[..s.len() - 1]);
    }
    b.push(b'\n');
}

/// Pre-generated JSON-safe sentences stored back to back, so that a text of n
/// sentences is one memcpy of n consecutive ones (cheap even in debug builds).
struct Pool {
    /// plain sentences, each ending in ". " (or "? ", "! ")
    plain: Vec<u8>,
    plain_at: Vec<usize>,
    /// the same kind of text with JSON-escaped paragraph breaks (`\\n\\n`)
    para: Vec<u8>,
    para_at: Vec<usize>,
    /// tool output: log-like lines, each ending in a JSON-escaped newline
    tool: Vec<u8>,
    tool_at: Vec<usize>,
}

impl Pool {
    fn new(rng: &mut Rng) -> Self {
        let build = |rng: &mut Rng, breaks: bool| {
            let mut data = Vec::with_capacity(POOL_SENTENCES * 80);
            let mut at = Vec::with_capacity(POOL_SENTENCES + 1);
            for _ in 0..POOL_SENTENCES {
                at.push(data.len());
                if breaks && rng.chance(20) {
                    data.extend_from_slice(b"\\n\\n");
                }
                let n = rng.range(5, 22);
                for i in 0..n {
                    let w = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
                    if i == 0 {
                        data.push(w[0].to_ascii_uppercase());
                        data.extend_from_slice(&w[1..]);
                    } else {
                        data.push(b' ');
                        data.extend_from_slice(w);
                        if i + 1 < n && rng.chance(7) {
                            data.push(b',');
                        }
                    }
                }
                data.extend_from_slice(match rng.below(10) {
                    0 => b"? ",
                    1 => b"! ",
                    _ => b". ",
                });
            }
            at.push(data.len());
            (data, at)
        };
        let (plain, plain_at) = build(rng, false);
        let (para, para_at) = build(rng, true);
        let mut tool = Vec::with_capacity(POOL_SENTENCES * 100);
        let mut tool_at = Vec::with_capacity(POOL_SENTENCES + 1);
        let mut clock = Clock::default();
        let mut t = BASE_MS - 30 * 86_400_000;
        for _ in 0..POOL_SENTENCES {
            tool_at.push(tool.len());
            t += rng.below(300_000);
            let note = if rng.chance(15) {
                let i = rng.below(POOL_SENTENCES as u64) as usize;
                Some(&plain[plain_at[i]..plain_at[i + 1]])
            } else {
                None
            };
            log_line(rng, &mut clock, note, &mut tool, t);
            tool.pop();
            tool.extend_from_slice(b"\\n");
        }
        tool_at.push(tool.len());
        Pool {
            plain,
            plain_at,
            para,
            para_at,
            tool,
            tool_at,
        }
    }

    /// `n` consecutive JSON-escaped lines of tool output.
    fn tool_output(&self, rng: &mut Rng, buf: &mut Vec<u8>, n: u64) {
        let n = n.clamp(1, 64) as usize;
        let i = rng.below((POOL_SENTENCES - n) as u64) as usize;
        buf.extend_from_slice(&self.tool[self.tool_at[i]..self.tool_at[i + n]]);
    }

    /// One plain sentence, with its trailing space.
    fn sentence<'a>(&'a self, rng: &mut Rng) -> &'a [u8] {
        let i = rng.below(POOL_SENTENCES as u64) as usize;
        &self.plain[self.plain_at[i]..self.plain_at[i + 1]]
    }

    /// Appends `n` (1..=64) consecutive sentences without the final space;
    /// `para` = text with JSON-escaped paragraph breaks.
    fn text(&self, rng: &mut Rng, buf: &mut Vec<u8>, n: u64, para: bool) {
        let (data, at) = if para {
            (&self.para, &self.para_at)
        } else {
            (&self.plain, &self.plain_at)
        };
        let n = n.clamp(1, 64) as usize;
        let i = rng.below((POOL_SENTENCES - n) as u64) as usize;
        let mut t = &data[at[i]..at[i + n] - 1];
        if t.starts_with(b"\\n\\n") {
            t = &t[4..];
        }
        buf.extend_from_slice(t);
    }
}

const fn digits2() -> [u8; 200] {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
}

const fn hex2() -> [u8; 512] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [0u8; 512];
    let mut i = 0;
    while i < 256 {
        t[2 * i] = HEX[i >> 4];
        t[2 * i + 1] = HEX[i & 15];
        i += 1;
    }
    t
}

/// "00".."99": two digits per lookup (cheap even in unoptimised builds).
const DIGITS2: [u8; 200] = digits2();
/// "00".."ff".
const HEX2: [u8; 512] = hex2();

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        tmp[i] = DIGITS2[d];
        tmp[i + 1] = DIGITS2[d + 1];
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        tmp[i] = DIGITS2[d];
        tmp[i + 1] = DIGITS2[d + 1];
    } else {
        i -= 1;
        tmp[i] = b'0' + n as u8;
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Zero-padded decimal; `width` is 2, 3 or 4.
fn push_pad(buf: &mut Vec<u8>, n: u64, width: usize) {
    let n = n as usize;
    match width {
        2 => buf.extend_from_slice(&DIGITS2[n % 100 * 2..n % 100 * 2 + 2]),
        3 => {
            buf.push(b'0' + (n / 100 % 10) as u8);
            buf.extend_from_slice(&DIGITS2[n % 100 * 2..n % 100 * 2 + 2]);
        }
        _ => {
            buf.extend_from_slice(&DIGITS2[n / 100 % 100 * 2..n / 100 % 100 * 2 + 2]);
            buf.extend_from_slice(&DIGITS2[n % 100 * 2..n % 100 * 2 + 2]);
        }
    }
}

fn hex8(n: u32) -> [u8; 8] {
    let [a, b, c, d] = n.to_be_bytes();
    let (a, b, c, d) = (
        a as usize * 2,
        b as usize * 2,
        c as usize * 2,
        d as usize * 2,
    );
    [
        HEX2[a],
        HEX2[a + 1],
        HEX2[b],
        HEX2[b + 1],
        HEX2[c],
        HEX2[c + 1],
        HEX2[d],
        HEX2[d + 1],
    ]
}

/// Lowercase hex of the low `digits` (4, 8 or 16) nibbles of `n`.
fn push_hex(buf: &mut Vec<u8>, n: u64, digits: usize) {
    match digits {
        4 => buf.extend_from_slice(&hex8(n as u32)[4..]),
        8 => buf.extend_from_slice(&hex8(n as u32)),
        _ => {
            buf.extend_from_slice(&hex8((n >> 32) as u32));
            buf.extend_from_slice(&hex8(n as u32));
        }
    }
}

/// Appends an RFC 3339 UTC timestamp with milliseconds.
fn push_ts(buf: &mut Vec<u8>, ms: u64) {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    push_pad(buf, y as u64, 4);
    buf.push(b'-');
    push_pad(buf, m as u64, 2);
    buf.push(b'-');
    push_pad(buf, d as u64, 2);
    buf.push(b'T');
    push_pad(buf, sod / 3600, 2);
    buf.push(b':');
    push_pad(buf, sod / 60 % 60, 2);
    buf.push(b':');
    push_pad(buf, sod % 60, 2);
    buf.push(b'.');
    push_pad(buf, ms % 1000, 3);
    buf.push(b'Z');
}

/// `push_ts` with the "YYYY-MM-DDT" prefix cached per day.
#[derive(Default)]
struct Clock {
    day: u64,
    prefix: Vec<u8>,
}

impl Clock {
    fn push(&mut self, buf: &mut Vec<u8>, ms: u64) {
        let day = ms / 86_400_000;
        if day != self.day || self.prefix.is_empty() {
            self.day = day;
            self.prefix.clear();
            push_ts(&mut self.prefix, ms);
            self.prefix.truncate(11);
        }
        buf.extend_from_slice(&self.prefix);
        let r = ms % 86_400_000;
        let h = (r / 3_600_000) as usize * 2;
        let m = (r / 60_000 % 60) as usize * 2;
        let s = (r / 1000 % 60) as usize * 2;
        let milli = (r % 1000) as usize;
        let ms2 = milli % 100 * 2;
        buf.extend_from_slice(&[
            DIGITS2[h],
            DIGITS2[h + 1],
            b':',
            DIGITS2[m],
            DIGITS2[m + 1],
            b':',
            DIGITS2[s],
            DIGITS2[s + 1],
            b'.',
            b'0' + (milli / 100) as u8,
            DIGITS2[ms2],
            DIGITS2[ms2 + 1],
            b'Z',
        ]);
    }
}

fn ts_string(ms: u64) -> String {
    let mut b = Vec::new();
    push_ts(&mut b, ms);
    String::from_utf8(b).expect("ascii")
}

const AGENT_IDS: &[&str] = &[
    "main",
    "research",
    "ops",
    "coder",
    "support",
    "writer",
    "finance",
    "home",
    "travel",
    "scheduler",
    "inbox",
    "social",
    "health",
    "legal",
    "shopping",
    "tutor",
    "security",
    "music",
    "garden",
    "archive",
];

/// Log message templates and the kind of value that follows: 0 = number,
/// 1 = hex id, 2 = phone number.
const LOG_TEMPLATES: &[(&str, u8)] = &[
    ("info  [gateway/ws] client connected conn=", 1),
    ("info  [gateway/ws] client disconnected conn=", 1),
    ("debug [gateway/rpc] chat.send ok durationMs=", 0),
    ("info  [agent/run] run started runId=", 1),
    ("info  [agent/run] run finished runId=", 1),
    ("debug [agent/tools] exec exitCode=0 bytes=", 0),
    ("warn  [agent/model] rate limited, retrying in ms=", 0),
    ("info  [channels/whatsapp] message received chat=", 2),
    ("info  [channels/whatsapp] message delivered id=", 1),
    ("debug [memory] upserted memory rowid=", 1),
    ("debug [memory] search hits=", 0),
    ("info  [cron] job fired job=", 2),
    ("warn  [channels/telegram] long poll timeout after ms=", 0),
    ("error [agent/tools] browser.open failed status=", 0),
    ("info  [sessions] compacted session entries=", 0),
    ("debug [heartbeat] tick seq=", 0),
];

// ---------------------------------------------------------------- plan

#[derive(Clone, Copy, PartialEq)]
enum Size {
    Small,
    Large,
    Huge,
}

struct Plan {
    agents: usize,
    sessions_per_agent: usize,
    transcript_bytes: u64,
    log_files: usize,
    log_bytes: u64,
    blobs: usize,
    blob_bytes: u64,
    text_files: usize,
    text_bytes: u64,
    memory_rows: usize,
}

impl Plan {
    fn for_size(size: Size) -> Plan {
        let (total, agents, sessions, logs, blobs, texts, rows) = match size {
            Size::Small => (4 * MIB, 2, 4, 2, 3, 16, 300),
            Size::Large => (1024 * MIB, 10, 150, 8, 48, 1200, 600),
            Size::Huge => (5 * 1024 * MIB, 16, 250, 20, 160, 2500, 800),
        };
        let f = |p: u64| total * p / 100;
        Plan {
            agents,
            sessions_per_agent: sessions,
            transcript_bytes: f(45),
            log_files: logs,
            log_bytes: f(10),
            blobs,
            blob_bytes: f(42),
            text_files: texts,
            text_bytes: f(3),
            memory_rows: rows,
        }
    }
}

/// Splits `total` into `n` parts with random weights in [0.2, 1.8].
fn split(rng: &mut Rng, total: u64, n: usize) -> Vec<u64> {
    let w: Vec<f64> = (0..n).map(|_| 0.2 + 1.6 * rng.unit()).collect();
    let sum: f64 = w.iter().sum();
    w.iter()
        .map(|x| ((total as f64) * x / sum) as u64)
        .collect()
}

// ---------------------------------------------------------------- writer

/// One writer per job; jobs run on several threads, each with its own PRNG
/// stream derived from (seed, job number), so the output does not depend on
/// scheduling or on the number of threads.
struct Gen<'a> {
    root: &'a Path,
    rng: Rng,
    pool: &'a Pool,
    clock: Clock,
    files: u64,
    bytes: u64,
}

impl<'a> Gen<'a> {
    fn new(root: &'a Path, pool: &'a Pool, seed: u64, job: u64) -> Self {
        Gen {
            root,
            rng: Rng::new(seed ^ job.wrapping_mul(0xD1B5_4A32_D192_ED03)),
            pool,
            clock: Clock::default(),
            files: 0,
            bytes: 0,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Creates `rel` (and missing parents, same mode) with `mode` from the start.
    fn mkdir(&self, rel: &str, mode: u32) -> io::Result<()> {
        let p = self.path(rel);
        if p.is_dir() {
            return Ok(());
        }
        if let Some(parent) = Path::new(rel).parent() {
            if !parent.as_os_str().is_empty() {
                self.mkdir(parent.to_str().expect("utf-8 path"), mode)?;
            }
        }
        match DirBuilder::new().mode(mode).create(&p) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()), // another job
            r => r?,
        }
        if mode & 0o077 != 0 {
            // the umask may have removed group/other bits
            fs::set_permissions(&p, Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    fn create(&mut self, rel: &str, mode: u32) -> io::Result<File> {
        let p = self.path(rel);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&p)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        if mode & 0o077 != 0 {
            f.set_permissions(Permissions::from_mode(mode))?;
        }
        self.files += 1;
        Ok(f)
    }

    fn write(&mut self, rel: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let mut f = self.create(rel, mode)?;
        f.write_all(data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn secret(&mut self, rel: &str, data: &str) -> io::Result<()> {
        debug_assert!(data.contains(CANARY), "{rel} lacks the canary");
        self.write(rel, 0o600, data.as_bytes())
    }

    fn fake_key(&mut self, label: &str) -> String {
        format!("{CANARY}-{label}-{}", self.rng.hex(16))
    }

    // ------------------------------------------------------------ config

    fn config_text(&mut self, agents: &[String], gw_token: &str, generation: u32) -> String {
        let list: String = agents
            .iter()
            .map(|a| format!("      {{ id: \"{a}\", name: \"{}\", }},\n", title(a)))
            .collect();
        format!(
            r#"// SecureClaw configuration — generated sample, all secrets are fake.
// Written by `secureclaw configure` (config generation {generation}).
{{
  meta: {{ lastTouchedVersion: "2026.2.{generation}", lastTouchedAt: "{ts}", }},
  gateway: {{
    port: 18789, // ws://127.0.0.1:18789
    bind: "loopback",
    mode: "local",
    auth: {{
      mode: "token",
      token: "{gw_token}",
    }},
  }},
  /* Agents: one workspace each, memory in memory/<agentId>.sqlite */
  agents: {{
    defaults: {{
      model: {{ primary: "anthropic/claude-sonnet-4-5", fallbacks: ["openai/gpt-5-mini",], }},
      workspace: "~/.secureclaw/workspace",
      heartbeat: {{ every: "30m", }},
      sandbox: {{ mode: "non-main", }},
    }},
    list: [
{list}    ],
  }},
  channels: {{
    whatsapp: {{ enabled: true, dmPolicy: "pairing", allowFrom: ["+15555550123",], }},
    telegram: {{ enabled: false, botToken: "{tg}", }},
  }},
  hooks: {{ onStart: "hooks/on-start.sh", }},
  logging: {{ level: "info", file: "logs/gateway.log", redactSensitive: "tools", }},
  plugins: {{ entries: {{ "weather-tool": {{ enabled: true, }}, }}, }},
}}
"#,
            ts = ts_string(BASE_MS - u64::from(3 - generation.min(3)) * 86_400_000),
            tg = self.fake_key("telegram"),
        )
    }

    fn write_config(&mut self, agents: &[String], full: bool) -> io::Result<()> {
        let gw_token = self.fake_key("gw");
        let cfg = self.config_text(agents, &gw_token, 3);
        self.secret("secureclaw.json", &cfg)?;
        if !full {
            return Ok(());
        }
        let old_token = self.fake_key("gw");
        let bak = self.config_text(agents, &old_token, 2);
        self.secret("secureclaw.json.bak", &bak)?;
        let bak1 = self.config_text(&agents[..1], &old_token, 1);
        self.secret("secureclaw.json.bak.1", &bak1)?;
        let env = format!(
            "# SecureClaw environment (fake keys)\n\
             ANTHROPIC_API_KEY=sk-ant-api03-{}\n\
             OPENAI_API_KEY=sk-proj-{}\n\
             OPENROUTER_API_KEY=sk-or-v1-{}\n\
             BRAVE_API_KEY={}\n\
             SECURECLAW_GATEWAY_TOKEN={gw_token}\n",
            self.fake_key("anthropic"),
            self.fake_key("openai"),
            self.fake_key("openrouter"),
            self.fake_key("brave"),
        );
        self.secret(".env", &env)?;
        let keys = serde_json::json!({
            "version": 1,
            "providers": {
                "anthropic": { "apiKey": self.fake_key("anthropic"), "addedAt": ts_string(BASE_MS - 40 * 86_400_000) },
                "openai": { "apiKey": self.fake_key("openai"), "organization": "org-sample" },
                "google": { "apiKey": self.fake_key("gemini") },
            }
        });
        self.secret("llm-api-keys.json", &pretty(&keys))
    }

    fn write_credentials(&mut self) -> io::Result<()> {
        let oauth = serde_json::json!({
            "anthropic": {
                "type": "oauth",
                "access": self.fake_key("oauth-access"),
                "refresh": self.fake_key("oauth-refresh"),
                "expires": BASE_MS + 3_600_000,
            },
            "google-gemini-cli": {
                "type": "oauth",
                "access": self.fake_key("ya29"),
                "refresh": self.fake_key("1//refresh"),
                "expires": BASE_MS + 1_800_000,
                "email": "sample.user@example.com",
            }
        });
        self.secret("credentials/oauth.json", &pretty(&oauth))?;
        for account in ["default", "work"] {
            let dir = format!("credentials/whatsapp/{account}");
            self.mkdir(&dir, 0o700)?;
            let creds = serde_json::json!({
                "noiseKey": { "private": self.fake_key("noise"), "public": self.rng.hex(32) },
                "signedIdentityKey": { "private": self.fake_key("identity"), "public": self.rng.hex(32) },
                "registrationId": self.rng.below(16_384),
                "advSecretKey": self.fake_key("adv"),
                "me": { "id": format!("1555555{:04}:7@s.whatsapp.net", self.rng.below(10_000)), "name": "Sample" },
                "platform": "android",
            });
            self.secret(&format!("{dir}/creds.json"), &pretty(&creds))?;
            for i in 1..=4 {
                let pk = serde_json::json!({ "keyId": i, "private": self.fake_key("prekey"), "public": self.rng.hex(32) });
                self.secret(&format!("{dir}/pre-key-{i}.json"), &pretty(&pk))?;
            }
            let sess = serde_json::json!({ "_sessions": { self.rng.hex(33): { "rootKey": self.fake_key("root"), "chainKey": self.rng.hex(32) } } });
            let name = format!("{dir}/session-1555555{:04}.0.json", self.rng.below(10_000));
            self.secret(&name, &pretty(&sess))?;
            let sync = serde_json::json!({ "keyData": self.fake_key("appstate"), "timestamp": BASE_MS / 1000 });
            let name = format!("{dir}/app-state-sync-key-AAAAA{}.json", self.rng.hex(3));
            self.secret(&name, &pretty(&sync))?;
        }
        Ok(())
    }

    fn write_identity(&mut self) -> io::Result<()> {
        let dev = serde_json::json!({
            "version": 1,
            "deviceId": self.rng.hex(32),
            "publicKeyPem": format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", self.rng.hex(44)),
            "privateKeyPem": format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", self.fake_key("ed25519")),
            "createdAtMs": BASE_MS - 90 * 86_400_000,
        });
        self.secret("identity/device.json", &pretty(&dev))?;
        let paired = serde_json::json!({
            self.rng.hex(32): { "displayName": "Pixel 9", "platform": "android", "role": "operator",
                "token": self.fake_key("device"), "pairedAtMs": BASE_MS - 20 * 86_400_000 },
            self.rng.hex(32): { "displayName": "MacBook", "platform": "macos", "role": "operator",
                "token": self.fake_key("device"), "pairedAtMs": BASE_MS - 5 * 86_400_000 },
        });
        self.secret("devices/paired.json", &pretty(&paired))
    }

    // ------------------------------------------------------------ agents

    fn transcript(&mut self, target: u64, session_id: &str, mut t: u64, cwd: &str) -> Vec<u8> {
        let mut b: Vec<u8> = Vec::with_capacity(target as usize + 16 * 1024);
        b.extend_from_slice(b"{\"type\":\"session\",\"version\":3,\"id\":\"");
        b.extend_from_slice(session_id.as_bytes());
        b.extend_from_slice(b"\",\"timestamp\":\"");
        self.clock.push(&mut b, t);
        b.extend_from_slice(b"\",\"cwd\":\"");
        b.extend_from_slice(cwd.as_bytes());
        b.extend_from_slice(b"\"}\n");
        let mut parent = self.rng.next() & 0xffff_ffff;
        while (b.len() as u64) < target {
            // user turn
            t += self.rng.range(20_000, 3_600_000);
            parent = self.msg(&mut b, parent, t, "user", 1, 3);
            // tool calls
            for _ in 0..self.rng.below(3) {
                t += self.rng.range(800, 9_000);
                parent = self.tool_pair(&mut b, parent, t);
            }
            t += self.rng.range(1_500, 40_000);
            parent = self.msg(&mut b, parent, t, "assistant", 2, 14);
        }
        b
    }

    fn line_head(&mut self, b: &mut Vec<u8>, parent: u64, t: u64) -> u64 {
        let id = self.rng.next() & 0xffff_ffff;
        b.extend_from_slice(b"{\"type\":\"message\",\"id\":\"");
        push_hex(b, id, 8);
        b.extend_from_slice(b"\",\"parentId\":\"");
        push_hex(b, parent, 8);
        b.extend_from_slice(b"\",\"timestamp\":\"");
        self.clock.push(b, t);
        b.extend_from_slice(b"\",\"message\":{\"role\":\"");
        id
    }

    fn msg(&mut self, b: &mut Vec<u8>, parent: u64, t: u64, role: &str, lo: u64, hi: u64) -> u64 {
        let id = self.line_head(b, parent, t);
        b.extend_from_slice(role.as_bytes());
        b.extend_from_slice(b"\",\"content\":[{\"type\":\"text\",\"text\":\"");
        let n = self.rng.range(lo, hi);
        self.pool.text(&mut self.rng, b, n, role == "assistant");
        b.extend_from_slice(b"\"}],\"timestamp\":");
        push_u64(b, t);
        if role == "assistant" {
            b.extend_from_slice(b",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input\":");
            push_u64(b, self.rng.range(800, 60_000));
            b.extend_from_slice(b",\"output\":");
            push_u64(b, self.rng.range(20, 2_000));
            b.extend_from_slice(b"},\"stopReason\":\"stop\"");
        }
        b.extend_from_slice(b"}}\n");
        id
    }

    fn tool_pair(&mut self, b: &mut Vec<u8>, parent: u64, t: u64) -> u64 {
        let tools: &[&str] = &["exec", "read", "web_search", "memory_search", "browser"];
        let tool = self.rng.pick(tools);
        let call = self.rng.next();
        let id = self.line_head(b, parent, t);
        b.extend_from_slice(b"assistant\",\"content\":[{\"type\":\"toolCall\",\"id\":\"call_");
        push_hex(b, call, 16);
        b.extend_from_slice(b"\",\"name\":\"");
        b.extend_from_slice(tool.as_bytes());
        b.extend_from_slice(b"\",\"arguments\":{\"input\":\"");
        let n = self.rng.range(1, 2);
        self.pool.text(&mut self.rng, b, n, false);
        b.extend_from_slice(b"\"}}],\"timestamp\":");
        push_u64(b, t);
        b.extend_from_slice(b"}}\n");
        let t2 = t + self.rng.range(50, 5_000);
        let id2 = self.line_head(b, id, t2);
        b.extend_from_slice(b"toolResult\",\"toolCallId\":\"call_");
        push_hex(b, call, 16);
        b.extend_from_slice(b"\",\"toolName\":\"");
        b.extend_from_slice(tool.as_bytes());
        b.extend_from_slice(b"\",\"content\":[{\"type\":\"text\",\"text\":\"");
        let n = self.rng.range(1, 12);
        self.pool.tool_output(&mut self.rng, b, n);
        b.extend_from_slice(b"\"}],\"isError\":false,\"timestamp\":");
        push_u64(b, t);
        b.extend_from_slice(b"}}\n");
        id2
    }

    fn log_line(&mut self, b: &mut Vec<u8>, t: u64) {
        let note = if self.rng.chance(15) {
            Some(self.pool.sentence(&mut self.rng))
        } else {
            None
        };
        log_line(&mut self.rng, &mut self.clock, note, b, t);
    }

    fn write_agent(&mut self, agent: &str, sizes: &[u64], rows: usize) -> io::Result<()> {
        let base = format!("agents/{agent}");
        self.mkdir(&format!("{base}/agent"), 0o700)?;
        self.mkdir(&format!("{base}/sessions"), 0o700)?;
        let auth = serde_json::json!({
            "version": 1,
            "profiles": {
                "anthropic:default": { "type": "api_key", "provider": "anthropic", "key": self.fake_key("anthropic") },
                "openai:default": { "type": "api_key", "provider": "openai", "key": self.fake_key("openai") },
                "anthropic:oauth": { "type": "oauth", "provider": "anthropic", "access": self.fake_key("access"), "refresh": self.fake_key("refresh"), "expires": BASE_MS + 7_200_000 },
            },
            "lastGood": { "anthropic": "anthropic:default" },
        });
        self.secret(&format!("{base}/agent/auth-profiles.json"), &pretty(&auth))?;

        let mut index = serde_json::Map::new();
        let cwd = "/home/sample/.secureclaw/workspace";
        let n = sizes.len() as u64;
        for (i, &size) in sizes.iter().enumerate() {
            let sid = self.rng.uuid();
            let start = BASE_MS - (n - i as u64) * 6 * 3_600_000 - self.rng.below(3_600_000);
            let topic = i % 4 == 1;
            let main_size = if topic { size * 7 / 10 } else { size };
            let data = self.transcript(main_size, &sid, start, cwd);
            self.write(&format!("{base}/sessions/{sid}.jsonl"), 0o644, &data)?;
            if topic {
                let tid = self.rng.range(2, 400);
                let data = self.transcript(size - main_size, &sid, start + 60_000, cwd);
                self.write(
                    &format!("{base}/sessions/{sid}-topic-{tid}.jsonl"),
                    0o644,
                    &data,
                )?;
            }
            let key = if i == 0 {
                format!("agent:{agent}:main")
            } else {
                format!(
                    "agent:{agent}:whatsapp:dm:+1555555{:04}",
                    self.rng.below(10_000)
                )
            };
            index.insert(
                key,
                serde_json::json!({
                    "sessionId": sid,
                    "updatedAt": start + 3_600_000,
                    "chatType": "direct",
                    "lastChannel": "whatsapp",
                    "deliveryContext": { "channel": "whatsapp", "to": "+15555550123", "replyToken": self.fake_key("reply") },
                    "inputTokens": self.rng.below(200_000),
                    "outputTokens": self.rng.below(40_000),
                }),
            );
        }
        let index = serde_json::Value::Object(index);
        self.secret(&format!("{base}/sessions/sessions.json"), &pretty(&index))?;
        self.write_memory(agent, rows)
    }

    fn write_memory(&mut self, agent: &str, rows: usize) -> io::Result<()> {
        let rel = format!("memory/{agent}.sqlite");
        drop(self.create(&rel, 0o600)?); // empty file = new database, mode 0600 from the start
        let db = rusqlite::Connection::open(self.path(&rel)).map_err(io::Error::other)?;
        let mut fill = || -> rusqlite::Result<u64> {
            db.execute_batch(
                "PRAGMA journal_mode=MEMORY; -- sample data: no fsync, no journal file
                 PRAGMA synchronous=OFF;
                 PRAGMA user_version=4;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE memories (
                   id INTEGER PRIMARY KEY,
                   agent_id TEXT NOT NULL,
                   kind TEXT NOT NULL,
                   content TEXT NOT NULL,
                   source TEXT,
                   importance REAL NOT NULL DEFAULT 0.5,
                   embedding BLOB,
                   created_at TEXT NOT NULL,
                   updated_at TEXT NOT NULL
                 );
                 CREATE INDEX memories_agent_kind ON memories(agent_id, kind);",
            )?;
            db.execute(
                "INSERT INTO meta VALUES ('schema', 'secureclaw-memory-v4'), ('model', 'text-embedding-3-small')",
                [],
            )?;
            let tx = db.unchecked_transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT INTO memories (agent_id, kind, content, source, importance, embedding, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                let kinds = ["fact", "preference", "episode", "todo", "contact"];
                for i in 0..rows {
                    let mut text = Vec::new();
                    let n = self.rng.range(1, 6);
                    self.pool.text(&mut self.rng, &mut text, n, false);
                    let mut content = String::from_utf8(text).expect("ascii");
                    if i == rows / 2 {
                        content = format!(
                            "User shared their weather API key: {CANARY}-memory. Keep it private."
                        );
                    }
                    let mut emb = vec![0u8; 384];
                    self.rng.fill(&mut emb);
                    let created = BASE_MS - self.rng.below(120 * 86_400_000);
                    st.execute(rusqlite::params![
                        agent,
                        kinds[i % kinds.len()],
                        content,
                        format!("session:{}", self.rng.uuid()),
                        self.rng.unit(),
                        emb,
                        ts_string(created),
                        ts_string(created + self.rng.below(86_400_000)),
                    ])?;
                }
            }
            tx.commit()?;
            Ok(0)
        };
        fill().map_err(io::Error::other)?;
        drop(db);
        let len = fs::metadata(self.path(&rel))?.len();
        self.bytes += len;
        Ok(())
    }

    // ------------------------------------------------------------ misc dirs

    fn write_misc(&mut self, agents: &[String]) -> io::Result<()> {
        self.write(
            "extensions/weather-tool/package.json",
            0o644,
            br#"{
  "name": "@sample/weather-tool",
  "version": "1.2.0",
  "main": "index.js",
  "secureclaw": { "extensions": ["./index.js"] }
}
"#,
        )?;
        self.write(
            "extensions/weather-tool/index.js",
            0o644,
            b"export default function register(api) {\n  api.registerTool({\n    name: 'weather',\n    description: 'Current weather for a city',\n    async run({ city }) {\n      return `Sunny in ${city}`;\n    },\n  });\n}\n",
        )?;
        self.write(
            "extensions/weather-tool/bin/refresh",
            0o755,
            b"#!/bin/sh\nexec node \"$(dirname \"$0\")/../index.js\" --refresh\n",
        )?;
        self.write(
            "hooks/on-start.sh",
            0o755,
            b"#!/bin/sh\n# SecureClaw on-start hook (sample)\nset -eu\nlogger -t secureclaw \"gateway starting, state dir ${SECURECLAW_STATE_DIR:-$HOME/.secureclaw}\"\n",
        )?;
        let mut pending = Vec::new();
        for i in 0..5 {
            pending.push(serde_json::json!({
                "id": self.rng.uuid(),
                "agentId": agents[i % agents.len()],
                "channel": "whatsapp",
                "to": "+15555550123",
                "enqueuedAt": ts_string(BASE_MS - 60_000 * (5 - i as u64)),
                "attempts": i,
            }));
        }
        self.write(
            "state/queue.json",
            0o644,
            pretty(&serde_json::json!({ "version": 1, "pending": pending })).as_bytes(),
        )?;
        self.write(
            "workspace/AGENTS.md",
            0o644,
            b"# Workspace\n\nFiles the agents created. Sample data, nothing real.\n",
        )
    }

    /// `logs/gateway.log` (i = 0, newest) or `logs/gateway.log.<i>`, about one day each.
    fn write_log(&mut self, i: usize, size: u64) -> io::Result<()> {
        let name = if i == 0 {
            "logs/gateway.log".to_string()
        } else {
            format!("logs/gateway.log.{i}")
        };
        let mut f = self.create(&name, 0o644)?;
        let mut t = BASE_MS - (i as u64 + 1) * 86_400_000;
        let mut b = Vec::with_capacity(4 * MIB as usize + 4096);
        let mut written = 0;
        let step = (86_400_000 * 160 / size.max(1)).max(2);
        while written < size {
            b.clear();
            while (b.len() as u64) < (size - written).min(4 * MIB) {
                t += self.rng.below(step) + 1;
                self.log_line(&mut b, t);
            }
            f.write_all(&b)?;
            written += b.len() as u64;
        }
        self.bytes += written;
        Ok(())
    }

    /// Text files the agents wrote: notes, CSV ledgers, JS modules.
    fn write_text(&mut self, i: usize, size: u64) -> io::Result<()> {
        let mut b = Vec::with_capacity(size as usize + 512);
        let rel = match i % 4 {
            0 | 1 => {
                b.extend_from_slice(b"# ");
                let s = self.pool.sentence(&mut self.rng);
                b.extend_from_slice(&s[..s.len() - 2]);
                b.extend_from_slice(b"\n\n");
                while (b.len() as u64) < size {
                    let n = self.rng.range(2, 8);
                    self.pool.text(&mut self.rng, &mut b, n, false);
                    b.extend_from_slice(b"\n\n");
                }
                format!("workspace/notes/note-{i:05}.md")
            }
            2 => {
                b.extend_from_slice(b"date,account,amount,category,memo\n");
                while (b.len() as u64) < size {
                    let day = BASE_MS - self.rng.below(365) * 86_400_000;
                    self.clock.push(&mut b, day);
                    b.extend_from_slice(b",ACC-");
                    push_pad(&mut b, self.rng.below(100), 3);
                    b.push(b',');
                    push_u64(&mut b, self.rng.below(100_000));
                    b.push(b'.');
                    push_pad(&mut b, self.rng.below(100), 2);
                    b.push(b',');
                    b.extend_from_slice(self.rng.pick(WORDS).as_bytes());
                    b.push(b',');
                    b.extend_from_slice(self.rng.pick(WORDS).as_bytes());
                    b.push(b'\n');
                }
                format!("workspace/projects/data/ledger-{i:05}.csv")
            }
            _ => {
                while (b.len() as u64) < size {
                    b.extend_from_slice(b"// ");
                    let s = self.pool.sentence(&mut self.rng);
                    b.extend_from_slice(s);
                    b.extend_from_slice(b"\nexport function ");
                    b.extend_from_slice(self.rng.pick(WORDS).as_bytes());
                    b.push(b'_');
                    push_hex(&mut b, self.rng.next(), 4);
                    b.extend_from_slice(b"(input) {\n  return input.map((x) => x * ");
                    push_u64(&mut b, self.rng.below(100));
                    b.extend_from_slice(b");\n}\n\n");
                }
                format!("workspace/projects/site/src/module-{i:05}.js")
            }
        };
        self.write(&rel, 0o644, &b)
    }

    /// An incompressible blob: random segments (2-8 KiB, any byte offset) of a
    /// shared random table, with a plausible magic number. Cheap even in a debug
    /// build (memcpy instead of one PRNG call per 8 bytes); deflate/gzip cannot
    /// compress it (its window is far smaller than the table).
    fn write_blob(&mut self, i: usize, size: u64, table: &[u8]) -> io::Result<()> {
        let (rel, magic): (String, &[u8]) = match i % 3 {
            0 => (
                format!("workspace/media/photo-{i:04}.jpg"),
                b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
            ),
            1 => (
                format!("workspace/downloads/archive-{i:04}.zip"),
                b"PK\x03\x04",
            ),
            _ => (
                format!("workspace/media/recording-{i:04}.ogg"),
                b"OggS\x00\x02",
            ),
        };
        let mut f = self.create(&rel, 0o644)?;
        let mut buf = Vec::with_capacity(MIB as usize);
        let mut left = size;
        let mut first = true;
        while left > 0 {
            let n = left.min(MIB) as usize;
            buf.clear();
            while buf.len() < n {
                let len = (self.rng.range(2048, 8192) as usize)
                    .min(n - buf.len())
                    .min(table.len());
                let off = self.rng.below((table.len() - len + 1) as u64) as usize;
                buf.extend_from_slice(&table[off..off + len]);
            }
            if first {
                let m = magic.len().min(n);
                buf[..m].copy_from_slice(&magic[..m]);
                first = false;
            }
            f.write_all(&buf)?;
            left -= n as u64;
        }
        self.bytes += size;
        Ok(())
    }

    /// Files `start..end` of the many-small-files tree (1000 per directory).
    fn write_many(&mut self, start: u64, end: u64) -> io::Result<()> {
        let mut b = Vec::with_capacity(2048);
        for i in start..end {
            b.clear();
            while b.len() < 1023 {
                b.extend_from_slice(self.pool.sentence(&mut self.rng));
            }
            b.truncate(1023);
            b.push(b'\n');
            self.write(
                &format!("workspace/many/d{:04}/f{i:07}.txt", i / 1000),
                0o644,
                &b,
            )?;
        }
        Ok(())
    }
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("json");
    s.push('\n');
    s
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------- main

struct Args {
    dir: PathBuf,
    size: Size,
    seed: u64,
    files: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut dir = None;
    let mut size = Size::Small;
    let mut seed = 1u64;
    let mut files = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--size" => {
                size = match value("--size")?.as_str() {
                    "small" => Size::Small,
                    "large" => Size::Large,
                    "huge" => Size::Huge,
                    other => return Err(format!("unknown size {other:?} (small, large, huge)")),
                }
            }
            "--seed" => {
                seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--files" => {
                files = Some(
                    value("--files")?
                        .parse()
                        .map_err(|e| format!("--files: {e}"))?,
                )
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let dir = dir.ok_or("missing DIR")?;
    Ok(Args {
        dir,
        size,
        seed,
        files,
    })
}

enum Job<'p> {
    Base(&'p [String], bool),
    Agent(&'p str, &'p [u64], usize),
    Log(usize, u64),
    Text(usize, u64),
    Blob(usize, u64),
    Many(u64, u64),
}

fn run(args: &Args) -> io::Result<(u64, u64)> {
    let mut rng = Rng::new(args.seed);
    let pool = Pool::new(&mut rng);
    let root = args.dir.as_path();
    let dirs = Gen::new(root, &pool, args.seed, 0);
    let mut table = Vec::new();
    let plan = args.files.is_none().then(|| Plan::for_size(args.size));
    let mut split_or_empty = |total: fn(&Plan) -> (u64, usize)| {
        plan.as_ref().map_or_else(Vec::new, |p| {
            let (bytes, n) = total(p);
            split(&mut rng, bytes, n)
        })
    };
    let sizes = split_or_empty(|p| (p.transcript_bytes, p.agents * p.sessions_per_agent));
    let log_sizes = split_or_empty(|p| (p.log_bytes, p.log_files));
    let text_sizes = split_or_empty(|p| (p.text_bytes, p.text_files));
    let blob_sizes = split_or_empty(|p| (p.blob_bytes, p.blobs));
    let agents: Vec<String> = match &plan {
        Some(p) => AGENT_IDS[..p.agents]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        None => vec!["main".to_string()],
    };
    let mut jobs = vec![Job::Base(&agents, plan.is_some())];
    if let Some(plan) = &plan {
        for d in [
            "credentials",
            "identity",
            "devices",
            "agents",
            "memory",
            "extensions/weather-tool",
            "extensions/disabled", // deliberately empty
            "hooks",
            "state",
            "logs",
            "workspace",
        ] {
            dirs.mkdir(d, 0o700)?;
        }
        dirs.mkdir("extensions/weather-tool/bin", 0o755)?;
        for d in [
            "notes",
            "projects/site/src",
            "projects/data",
            "media",
            "downloads",
        ] {
            dirs.mkdir(&format!("workspace/{d}"), 0o755)?;
        }
        // random table for the blobs, filled in parallel (deterministic per chunk)
        table = vec![0u8; plan.blob_bytes.min(64 * MIB) as usize];
        std::thread::scope(|s| {
            for (k, chunk) in table.chunks_mut(4 * MIB as usize).enumerate() {
                let seed = rng.next() ^ k as u64;
                s.spawn(move || Rng::new(seed).fill(chunk));
            }
        });
        let spa = plan.sessions_per_agent;
        for (a, agent) in agents.iter().enumerate() {
            jobs.push(Job::Agent(
                agent,
                &sizes[a * spa..(a + 1) * spa],
                plan.memory_rows,
            ));
        }
        jobs.extend(blob_sizes.iter().enumerate().map(|(i, &s)| Job::Blob(i, s)));
        jobs.extend(log_sizes.iter().enumerate().map(|(i, &s)| Job::Log(i, s)));
        jobs.extend(text_sizes.iter().enumerate().map(|(i, &s)| Job::Text(i, s)));
    } else if let Some(n) = args.files {
        dirs.mkdir("workspace", 0o700)?;
        dirs.mkdir("workspace/many", 0o700)?;
        for d in 0..n.div_ceil(1000) {
            dirs.mkdir(&format!("workspace/many/d{d:04}"), 0o755)?;
        }
        jobs.extend((0..n.div_ceil(1000)).map(|d| Job::Many(d * 1000, (d * 1000 + 1000).min(n))));
    }

    // Run the jobs on a few threads; job k always uses PRNG stream k.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let results: Vec<io::Result<(u64, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> io::Result<(u64, u64)> {
                    let (mut files, mut bytes) = (0, 0);
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(k) else { break };
                        let mut g = Gen::new(root, &pool, args.seed, k as u64 + 1);
                        match *job {
                            Job::Base(agents, full) => {
                                g.write_config(agents, full)?;
                                if full {
                                    g.write_credentials()?;
                                    g.write_identity()?;
                                    g.write_misc(agents)?;
                                }
                            }
                            Job::Agent(agent, sizes, rows) => g.write_agent(agent, sizes, rows)?,
                            Job::Log(i, size) => g.write_log(i, size)?,
                            Job::Text(i, size) => g.write_text(i, size)?,
                            Job::Blob(i, size) => g.write_blob(i, size, &table)?,
                            Job::Many(a, b) => g.write_many(a, b)?,
                        }
                        files += g.files;
                        bytes += g.bytes;
                    }
                    Ok((files, bytes))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread panicked"))
            .collect()
    });
    let (mut files, mut bytes) = (0, 0);
    for r in results {
        let (f, b) = r?;
        files += f;
        bytes += b;
    }
    Ok((files, bytes))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gen-sample: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match fs::read_dir(&args.dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                eprintln!(
                    "gen-sample: {} exists and is not empty; refusing to write into it",
                    args.dir.display()
                );
                return ExitCode::from(2);
            }
            if let Err(e) = fs::set_permissions(&args.dir, Permissions::from_mode(0o700)) {
                eprintln!("gen-sample: {}: {e}", args.dir.display());
                return ExitCode::from(1);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let made = args
                .dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| DirBuilder::new().mode(0o700).create(&args.dir));
            if let Err(e) = made {
                eprintln!("gen-sample: cannot create {}: {e}", args.dir.display());
                return ExitCode::from(1);
            }
        }
        Err(e) => {
            eprintln!("gen-sample: {}: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    }
    let start = Instant::now();
    match run(&args) {
        Ok((files, bytes)) => {
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "gen-sample: {}: {files} files, {bytes} bytes ({:.1} MiB) in {secs:.2} s ({:.0} MB/s); canary {CANARY}",
                args.dir.display(),
                bytes as f64 / MIB as f64,
                bytes as f64 / 1e6 / secs.max(1e-9),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-sample: error: {e}");
            ExitCode::from(1)
        }
    }
}
