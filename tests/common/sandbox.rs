//! Running the real binary: a sandbox with its own HOME, runtime and temp
//! dirs and a watched area, the result of a run, small probes of the host.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::tree::write_file;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_secureclaw-backup"))
}

/// The repository (keys-example/, scripts/, docs).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    /// stdout parsed as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// A sandbox: `env/{home,run,tmp}` for the process (`HOME`,
/// `XDG_RUNTIME_DIR`, `TMPDIR`; `GNUPGHOME` is `env/home/.gnupg`), `w/` the
/// watched area (`w/parent/target`'s parent, `w/canary/keep` that absolute
/// paths and links aim at), `arch/` for archives. Anything else is the test's.
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
        write_file(&dir.path().join("w/canary/keep"), b"canary", 0o600);
        Sandbox { dir }
    }
    /// A path inside the sandbox.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// The restore target of the watched area.
    pub fn target(&self) -> PathBuf {
        self.p("w/parent/target")
    }
    /// The binary with a clean environment pointing into the sandbox.
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
    /// Runs the binary; text output.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        run_cmd(self.cmd().args(args))
    }
    /// Runs the binary; the raw output, logged to the test's stderr.
    pub fn output(&self, args: &[&str]) -> Output {
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

/// Runs `c` to completion; text output.
pub fn run_cmd(c: &mut Command) -> Out {
    let o = c.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The exit code (-1 for a signal).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// stdout parsed as one JSON value.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A tmpfs mounted by the test (created with mode 0700); unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`128m`, `4m`...) at `at`; why not, on error.
    pub fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(at)
            .unwrap();
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if o.status.success() {
            Ok(Tmpfs(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
