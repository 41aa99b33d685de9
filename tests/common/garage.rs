//! A small three-node Garage cluster of one test (`scripts/garage-cluster`;
//! tests/tiers.rs keeps its own richer one, which stops and starts nodes).

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use super::repo;

/// A three-node Garage cluster on 127.0.0.1 (`scripts/garage-cluster`, as
/// in tests/tiers.rs), stopped when dropped or when this process is gone.
pub struct Garage {
    child: std::process::Child,
    base: PathBuf,
    /// The `AWS_*` variables that reach the cluster (endpoint, keys, region, bucket).
    pub vars: Vec<(String, String)>,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.base);
    }
}

impl Garage {
    /// `None` with a notice when Garage is not installed (a failure with
    /// `SECURECLAW_REQUIRE_GARAGE=1`, as `scripts/test` sets it).
    pub fn start(test: &str) -> Option<Garage> {
        let script = repo().join("scripts/garage-cluster");
        let required = std::env::var("SECURECLAW_REQUIRE_GARAGE").is_ok_and(|v| v == "1");
        let installed = std::process::Command::new(&script)
            .args(["install", "--check"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                !required,
                "{test}: SECURECLAW_REQUIRE_GARAGE=1 but Garage is not installed"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: Garage is not installed (scripts/garage-cluster install)"
            );
            return None;
        }
        let base = tempfile::Builder::new()
            .prefix("secureclaw-garage-")
            .tempdir()
            .unwrap()
            .keep();
        let child = std::process::Command::new(&script)
            .arg("start")
            .arg(&base)
            .args(["900", "--watch", &std::process::id().to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(base.join("start.stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut g = Garage {
            child,
            base: base.clone(),
            vars: vec![],
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Ok(t) = fs::read_to_string(base.join("env")) {
                if t.ends_with("READY\n") {
                    g.vars = t
                        .lines()
                        .filter_map(|l| l.split_once('='))
                        .filter(|(k, _)| k.starts_with("AWS_"))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect();
                    return Some(g);
                }
            }
            let dead = g.child.try_wait().ok().flatten().is_some();
            if dead || std::time::Instant::now() > deadline {
                panic!(
                    "{test}: the Garage cluster did not start: {}",
                    fs::read_to_string(base.join("start.stderr")).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
