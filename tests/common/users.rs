//! Real users for the shared-/tmp tests: a system user created (no home) if
//! missing, and a command run as that user through `setpriv` (tests run as
//! root).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

static USERADD: Mutex<()> = Mutex::new(());

/// A user's ids.
#[derive(Clone, Copy, Debug)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let o = Command::new("id").arg(flag).arg(name).output().ok()?;
    if !o.status.success() {
        return None;
    }
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// The system user `name`, created (no home) if missing.
pub fn user(name: &str) -> User {
    let _g = USERADD.lock().unwrap_or_else(|p| p.into_inner());
    // another test binary may hold /etc/passwd's lock (useradd then fails):
    // retry for a while
    let mut tries = 0;
    while id_of(name, "-u").is_none() {
        let o = Command::new("useradd")
            .args(["-M", "-r", "-U", "-s", "/usr/sbin/nologin", name])
            .output()
            .expect("useradd");
        tries += 1;
        if !o.status.success() && id_of(name, "-u").is_none() {
            assert!(
                tries < 50,
                "useradd {name} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    User {
        uid: id_of(name, "-u").unwrap(),
        gid: id_of(name, "-g").unwrap(),
    }
}

/// `program` run as `u` (real and effective ids, no supplementary groups).
pub fn as_user(u: User, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--clear-groups")
        .arg(program);
    c
}

/// `chown -R` without following links.
pub fn chown_r(p: &Path, u: User) {
    std::os::unix::fs::lchown(p, Some(u.uid), Some(u.gid)).unwrap();
    let m = fs::symlink_metadata(p).unwrap();
    if m.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_r(&e.unwrap().path(), u);
        }
    }
}
