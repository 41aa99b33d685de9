//! Offsite tiers (issue 9, issue 18): a NAS tier as a plain directory
//! (always), and an S3 tier against a real distributed object store: three
//! Garage nodes on 127.0.0.1 (`scripts/garage-cluster`, replication factor
//! 3), bounded in time and stopped at the end, also when this process dies.
//!
//! The tests without faults share one cluster, started on first use, each
//! under its own prefix; the tests that stop nodes start a cluster of their
//! own. When Garage is not installed (`scripts/garage-cluster install`), the
//! shared tests run on moto (`scripts/s3-test-server`) and the node-failure
//! tests are skipped, each with a notice on stderr that shows even when the
//! test passes; with `SECURECLAW_REQUIRE_GARAGE=1` (set by `scripts/test`
//! once Garage is built) they fail instead.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

fn key() -> String {
    example_key("age-example.key")
        .to_string_lossy()
        .into_owned()
}

/// Incompressible bytes (xorshift), so the archive is about as large.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

struct Host {
    env: Sandbox,
    src: PathBuf,
    dest: PathBuf,
    config: PathBuf,
}

impl Host {
    fn new(big: usize) -> Host {
        let env = Sandbox::new();
        let src = env.p("data");
        make_tree(&src);
        if big > 0 {
            write_file(&src.join("state/blob.bin"), &noise(big, 7), 0o600);
        }
        let dest = env.p("backups");
        let config = env.p("config.toml");
        Host {
            env,
            src,
            dest,
            config,
        }
    }

    fn write_config(&self, text: &str) {
        fs::write(&self.config, text).unwrap();
    }

    fn cmd(&self, extra_env: &[(String, String)]) -> Command {
        let mut c = self.env.cmd();
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, extra_env: &[(String, String)], args: &[&str]) -> std::process::Output {
        let out = self.cmd(extra_env).args(args).output().unwrap();
        eprintln!(
            "$ secureclaw-backup {}\n{}{}exit {:?}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        );
        out
    }

    /// One backup; returns the archive's name.
    fn backup(&self, btype: &str) -> String {
        let before = archives(&self.dest);
        let o = self.run(
            &[],
            &[
                "backup",
                "--type",
                btype,
                "--source",
                s(&self.src),
                "--dest",
                s(&self.dest),
                "-r",
                &age_recipient(),
                "--no-prune",
            ],
        );
        assert_eq!(code(&o), 0);
        let after = archives(&self.dest);
        let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
        assert_eq!(new.len(), 1);
        new[0].file_name().unwrap().to_string_lossy().into_owned()
    }

    /// Renames an archive (and its sidecar, fixing the name inside) to
    /// `days` days ago.
    fn age_archive(&self, name: &str, days: i64, btype: &str) -> String {
        let t = chrono::Utc::now() - chrono::TimeDelta::days(days);
        let new = format!("{btype}_{}.tar.gz.age", t.format("%Y%m%d_%H%M%S"));
        fs::rename(self.dest.join(name), self.dest.join(&new)).unwrap();
        let side = fs::read_to_string(self.dest.join(format!("{name}.sha256"))).unwrap();
        fs::remove_file(self.dest.join(format!("{name}.sha256"))).unwrap();
        let digest = side.split_whitespace().next().unwrap();
        fs::write(
            self.dest.join(format!("{new}.sha256")),
            format!("{digest}  {new}\n"),
        )
        .unwrap();
        new
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn nas_tier_push_list_verify_restore_prune() {
    let h = Host::new(0);
    let nas = h.env.p("nas/secureclaw");
    h.write_config(&format!(
        "[[tier]]\nname = \"nas\"\nurl = \"{}\"\nkeep_within = \"30d\"\n",
        nas.display()
    ));
    let cfg = s(&h.config).to_owned();
    let dest = s(&h.dest).to_owned();
    let a1 = h.backup("daily");
    let old = h.age_archive(&a1, 45, "daily");
    let a2 = h.backup("daily");
    let recent = h.age_archive(&a2, 3, "daily");
    let newest = h.backup("daily");
    // a plaintext archive is refused (exit 5), the others copied
    let o = h.run(
        &[],
        &[
            "backup",
            "--source",
            s(&h.src),
            "--dest",
            &dest,
            "--insecure-plaintext",
            "--no-prune",
        ],
    );
    assert_eq!(code(&o), 0);
    let o = h.run(&[], &["push", "--config", &cfg, "--dest", &dest, "--json"]);
    assert_eq!(code(&o), 5, "plaintext refused → exit 5");
    let v = json(&o);
    let rep = &v["push"][0];
    assert_eq!(rep["refused_plaintext"].as_array().unwrap().len(), 1);
    assert_eq!(rep["uploaded"].as_array().unwrap().len(), 2);
    // the 45-day-old archive is beyond the tier's 30 days: not copied
    assert_eq!(rep["beyond_retention"][0], old.as_str());
    let on_nas = names_in(&nas);
    assert!(on_nas.contains(&recent) && on_nas.contains(&format!("{recent}.sha256")));
    assert!(on_nas.contains(&newest));
    assert!(!on_nas.contains(&old));
    assert!(
        !on_nas.iter().any(|n| n.ends_with(".tar.gz")),
        "no plaintext on the NAS"
    );
    assert!(!on_nas.iter().any(|n| n.ends_with(".tmp")));
    // the sidecar on the tier is the sha256sum line
    let side = fs::read_to_string(nas.join(format!("{newest}.sha256"))).unwrap();
    assert!(side.ends_with(&format!("  {newest}\n")));

    // idempotent: nothing uploaded the second time
    let plain: Vec<_> = names_in(&h.dest)
        .into_iter()
        .filter(|n| n.ends_with(".tar.gz") || n.ends_with(".tar.gz.sha256"))
        .collect();
    for p in plain {
        fs::remove_file(h.dest.join(p)).unwrap();
    }
    let o = h.run(&[], &["push", "--config", &cfg, "--dest", &dest, "--json"]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["push"][0]["uploaded"].as_array().unwrap().len(), 0);
    assert_eq!(v["push"][0]["present"].as_array().unwrap().len(), 2);

    // a damaged copy on the tier is detected by verify, and repaired by push
    let mut bytes = fs::read(nas.join(&recent)).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    fs::write(nas.join(&recent), &bytes).unwrap();
    let o = h.run(&[], &["verify", "--config", &cfg, "--tier", "nas", &recent]);
    assert_eq!(code(&o), 3);
    fs::write(
        nas.join(format!("{recent}.sha256")),
        "0".repeat(64) + "  x\n",
    )
    .unwrap();
    let o = h.run(&[], &["push", "--config", &cfg, "--dest", &dest, "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["push"][0]["uploaded"][0], recent.as_str());

    // list, verify keyless and keyed
    let o = h.run(&[], &["list", "--config", &cfg, "--tier", "nas", "--json"]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["archives"].as_array().unwrap().len(), 2);
    assert_eq!(v["archives"][0]["name"], newest.as_str());
    assert_eq!(v["archives"][0]["sidecar"], "present");
    let o = h.run(
        &[],
        &[
            "verify", "--config", &cfg, "--tier", "nas", &newest, &recent,
        ],
    );
    assert_eq!(code(&o), 0);
    let o = h.run(
        &[],
        &[
            "verify",
            "--config",
            &cfg,
            "--tier",
            "nas",
            &newest,
            "-i",
            &key(),
        ],
    );
    assert_eq!(code(&o), 0);

    // restore from the tier
    let target = h.env.p("restored");
    let o = h.run(
        &[],
        &[
            "restore",
            "--config",
            &cfg,
            "--tier",
            "nas",
            &newest,
            "-i",
            &key(),
            "--target",
            s(&target),
            "--no-snapshot",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(
        fs::read(target.join("credentials/oauth.json")).unwrap(),
        fs::read(h.src.join("credentials/oauth.json")).unwrap()
    );

    // retention per tier: age the recent copy on the NAS past 30 days
    let t = chrono::Utc::now() - chrono::TimeDelta::days(40);
    let aged = format!("daily_{}.tar.gz.age", t.format("%Y%m%d_%H%M%S"));
    fs::rename(nas.join(&recent), nas.join(&aged)).unwrap();
    fs::rename(
        nas.join(format!("{recent}.sha256")),
        nas.join(format!("{aged}.sha256")),
    )
    .unwrap();
    fs::write(nas.join("notes.txt"), "mine").unwrap();
    let o = h.run(
        &[],
        &[
            "prune",
            "--config",
            &cfg,
            "--tier",
            "nas",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["would_remove"].as_array().unwrap().len(), 2);
    assert!(nas.join(&aged).exists());
    let o = h.run(&[], &["prune", "--config", &cfg, "--tier", "nas"]);
    assert_eq!(code(&o), 0);
    assert!(!nas.join(&aged).exists());
    assert!(!nas.join(format!("{aged}.sha256")).exists());
    assert!(nas.join(&newest).exists());
    assert!(
        nas.join("notes.txt").exists(),
        "unrecognised files untouched"
    );
    // backup --push: one backup, then every tier
    let o = h.run(
        &[],
        &[
            "backup",
            "--source",
            s(&h.src),
            "--dest",
            &dest,
            "-r",
            &age_recipient(),
            "--no-prune",
            "--push",
            "--config",
            &cfg,
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    let v = json(&o);
    let made = v["backup"]["archive"].as_str().unwrap();
    let made = Path::new(made).file_name().unwrap().to_str().unwrap();
    // (the 3-day-old archive whose NAS copy was pruned above is copied again)
    assert!(v["push"][0]["uploaded"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(made)));
    assert!(nas.join(made).exists() && nas.join(format!("{made}.sha256")).exists());
    // unknown tier: usage error
    let o = h.run(&[], &["list", "--config", &cfg, "--tier", "cloud"]);
    assert_eq!(code(&o), 2);
}

// ---------------------------------------------------------------- S3 servers

/// The bucket both servers create, with a key allowed on it.
const BUCKET: &str = "secureclaw-test";

/// Which S3 server a test talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// Three Garage nodes on 127.0.0.1 (`scripts/garage-cluster`).
    Garage,
    /// moto (`scripts/s3-test-server`): the fallback when Garage is not
    /// installed, with a notice.
    Moto,
}

/// A line straight to the process's stderr: libtest captures only the print
/// macros, so this shows in the test output even when the test passes.
fn notice(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "tiers: {msg}");
}

/// `scripts/test` sets this once it has Garage: then a cluster that does not
/// start fails the tests instead of falling back to moto.
fn require_garage() -> bool {
    std::env::var("SECURECLAW_REQUIRE_GARAGE").is_ok_and(|v| v == "1")
}

/// An S3 server process: a Garage cluster's `start` process, or moto's script.
/// Both scripts stop their servers when they get SIGTERM or when this test
/// process is gone (`--watch`), and are bounded in time.
struct S3Server {
    backend: Backend,
    child: Child,
    /// A private temporary directory: the script's state and its stderr
    /// (Garage: the DIR of `garage-cluster`, which removes it when it stops).
    base: PathBuf,
    /// Garage: the cluster's state directory.
    dir: PathBuf,
    /// AWS_* variables for the key allowed on [`BUCKET`], and the node
    /// endpoints (`GARAGE_S3_ENDPOINT_n`).
    vars: Vec<(String, String)>,
    /// Why the tests run on moto.
    fallback: Option<String>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = fs::remove_dir_all(&self.base);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn garage_script() -> PathBuf {
    repo().join("scripts/garage-cluster")
}

/// Whether the pinned Garage is installed (`garage-cluster install --check`).
fn garage_installed() -> Result<(), String> {
    static R: OnceLock<Result<(), String>> = OnceLock::new();
    R.get_or_init(|| {
        let o = Command::new(garage_script())
            .args(["install", "--check"])
            .output()
            .map_err(|e| format!("running scripts/garage-cluster: {e}"))?;
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
        }
    })
    .clone()
}

/// Waits for `file` to end with `READY`, parsing its `K=V` lines.
fn wait_ready(child: &mut Child, file: &Path, secs: u64) -> Option<Vec<(String, String)>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(t) = fs::read_to_string(file) {
            if t.ends_with("READY\n") {
                return Some(
                    t.lines()
                        .filter_map(|l| l.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                );
            }
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new three-node Garage cluster (bucket and key made).
fn start_garage() -> Result<S3Server, String> {
    garage_installed()?;
    let base = tempfile::Builder::new()
        .prefix("secureclaw-garage-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let dir = base.clone();
    let log = base.join("start.stderr");
    let t0 = Instant::now();
    let child = Command::new(garage_script())
        .arg("start")
        .arg(&dir)
        .args(["1800", "--watch", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("running scripts/garage-cluster: {e}"))?;
    let mut srv = S3Server {
        backend: Backend::Garage,
        child,
        base: base.clone(),
        dir: dir.clone(),
        vars: Vec::new(),
        fallback: None,
    };
    match wait_ready(&mut srv.child, &dir.join("env"), 120) {
        Some(vars) => srv.vars = vars,
        None => {
            let why = fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "the Garage cluster did not start within 120 s: {}",
                why.trim()
            ));
        }
    }
    notice(&format!(
        "three-node Garage cluster ready in {:.1} s ({})",
        t0.elapsed().as_secs_f64(),
        srv.endpoint(1)
    ));
    Ok(srv)
}

fn install_moto() -> Result<(), String> {
    static ONCE: OnceLock<Result<(), String>> = OnceLock::new();
    ONCE.get_or_init(|| {
        if !have("python3") {
            return Err("python3 not found".to_owned());
        }
        let o = Command::new(repo().join("scripts/s3-test-server"))
            .arg("--install")
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "installing moto failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    })
    .clone()
}

/// moto on a free port of 127.0.0.1.
fn start_moto(fallback: String) -> Result<S3Server, String> {
    install_moto()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = tempfile::Builder::new()
        .prefix("secureclaw-moto-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let state = base.join("moto.env");
    let child = Command::new(repo().join("scripts/s3-test-server"))
        .args([
            &port.to_string(),
            s(&state),
            "1800",
            &std::process::id().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut srv = S3Server {
        backend: Backend::Moto,
        child,
        base: base.clone(),
        dir: base,
        vars: Vec::new(),
        fallback: Some(fallback),
    };
    let Some(mut vars) = wait_ready(&mut srv.child, &state, 60) else {
        return Err(format!("moto did not start on 127.0.0.1:{port}"));
    };
    vars.push((
        "AWS_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{port}"),
    ));
    vars.push(("AWS_ALLOW_HTTP".into(), "true".into()));
    vars.push(("AWS_REGION".into(), "us-east-1".into()));
    srv.vars = vars;
    Ok(srv)
}

impl S3Server {
    /// The server the non-fault tests share (one per test process, started
    /// on first use, stopped by its script once this process is gone). Each
    /// test uses its own prefix. Garage; moto with a notice when Garage is
    /// not installed; `None` (with a notice) when neither can run.
    fn shared(test: &str) -> Option<&'static S3Server> {
        static SHARED: OnceLock<Result<S3Server, String>> = OnceLock::new();
        let r = SHARED.get_or_init(|| match start_garage() {
            Ok(s) => Ok(s),
            Err(why) if require_garage() => Err(why),
            Err(why) => {
                start_moto(why.clone()).map_err(|m| format!("no Garage ({why}) and no moto ({m})"))
            }
        });
        match r {
            Ok(srv) => {
                if let Some(why) = &srv.fallback {
                    notice(&format!("NOTICE: {test} runs on moto, not Garage: {why}"));
                }
                Some(srv)
            }
            Err(why) if require_garage() => {
                panic!("{test}: SECURECLAW_REQUIRE_GARAGE=1 but {why}")
            }
            Err(why) => {
                notice(&format!("SKIPPED {test}: no S3 test server: {why}"));
                None
            }
        }
    }

    /// A cluster of the test's own, for tests that stop nodes. `None` (with
    /// a notice) without Garage: moto has no nodes to stop.
    fn own_garage(test: &str) -> Option<S3Server> {
        match start_garage() {
            Ok(s) => Some(s),
            Err(why) if require_garage() => {
                panic!("{test}: SECURECLAW_REQUIRE_GARAGE=1 but {why}")
            }
            Err(why) => {
                notice(&format!(
                    "SKIPPED {test}: it stops Garage nodes, and Garage is unavailable: {why}"
                ));
                None
            }
        }
    }

    fn var(&self, k: &str) -> String {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} not in the server's state file"))
    }

    /// The environment of a host talking to this server (node 1 on Garage).
    fn env(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .cloned()
            .collect()
    }

    /// [`S3Server::env`] with other credentials.
    fn env_with(&self, creds: &[(String, String)]) -> Vec<(String, String)> {
        let mut e: Vec<_> = self
            .env()
            .into_iter()
            .filter(|(k, _)| !creds.iter().any(|(c, _)| c == k))
            .collect();
        e.extend(creds.iter().cloned());
        e
    }

    /// Garage node `n`'s S3 endpoint.
    fn endpoint(&self, n: usize) -> String {
        self.var(&format!("GARAGE_S3_ENDPOINT_{n}"))
    }

    /// [`S3Server::env`] talking to Garage node `n`.
    fn env_via(&self, n: usize) -> Vec<(String, String)> {
        self.env_with(&[("AWS_ENDPOINT_URL".into(), self.endpoint(n))])
    }

    fn ctl(&self, args: &[&str]) -> String {
        assert_eq!(self.backend, Backend::Garage);
        let t0 = Instant::now();
        let o = Command::new(garage_script())
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .output()
            .unwrap();
        eprintln!(
            "$ garage-cluster {} ({:.1} s)\n{}",
            args.join(" "),
            t0.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "garage-cluster {args:?} failed");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Stops Garage node `n` (SIGKILL with `kill`, else SIGTERM).
    fn stop_node(&self, n: usize, kill: bool) {
        let n = n.to_string();
        if kill {
            self.ctl(&["stop-node", &n, "--kill"]);
        } else {
            self.ctl(&["stop-node", &n]);
        }
    }

    fn start_node(&self, n: usize) {
        self.ctl(&["start-node", &n.to_string()]);
    }

    /// A new bucket with a key allowed on it only: that key's AWS variables.
    fn new_bucket(&self, name: &str) -> Vec<(String, String)> {
        self.ctl(&["new-bucket", name])
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The test's own view of `bucket` (object_store, not the tool).
    fn client(&self, bucket: &str, env: &[(String, String)]) -> Client {
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(get("AWS_ENDPOINT_URL"))
            .with_allow_http(true)
            .with_region(get("AWS_REGION"))
            .with_bucket_name(bucket)
            .with_access_key_id(get("AWS_ACCESS_KEY_ID"))
            .with_secret_access_key(get("AWS_SECRET_ACCESS_KEY"))
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap();
        Client {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            s3,
        }
    }
}

/// A plain S3 client for checking what the bucket holds.
struct Client {
    rt: tokio::runtime::Runtime,
    s3: object_store::aws::AmazonS3,
}

impl Client {
    /// `(name, size)` of the objects directly under `prefix`.
    fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        use object_store::ObjectStore;
        let p = object_store::path::Path::from(prefix);
        let r = self
            .rt
            .block_on(self.s3.list_with_delimiter(Some(&p)))
            .unwrap();
        let mut v: Vec<_> = r
            .objects
            .into_iter()
            .map(|m| (m.location.filename().unwrap().to_owned(), m.size))
            .collect();
        v.sort();
        v
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        use object_store::ObjectStoreExt;
        let p = object_store::path::Path::from(key);
        match self
            .rt
            .block_on(async { self.s3.get(&p).await?.bytes().await })
        {
            Ok(b) => Some(b.to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("GET {key}: {e}"),
        }
    }

    fn head(&self, key: &str) -> Option<u64> {
        use object_store::ObjectStoreExt;
        let p = object_store::path::Path::from(key);
        match self.rt.block_on(self.s3.head(&p)) {
            Ok(m) => Some(m.size),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("HEAD {key}: {e}"),
        }
    }
}

/// Every archive of `names` (and its sidecar) in `bucket/prefix` holds
/// exactly the local bytes: SHA-256 of the object read back against the
/// local file's.
fn assert_exact_copies(c: &Client, prefix: &str, h: &Host, names: &[String]) {
    for n in names {
        let remote = c
            .get(&format!("{prefix}/{n}"))
            .unwrap_or_else(|| panic!("{prefix}/{n} missing"));
        let local = fs::read(h.dest.join(n)).unwrap();
        assert_eq!(remote.len(), local.len(), "{n}: size");
        assert_eq!(sha256_hex(&remote), sha256_hex(&local), "{n}: bytes");
        let side = c.get(&format!("{prefix}/{n}.sha256")).unwrap();
        assert_eq!(side, format!("{}  {n}\n", sha256_hex(&local)).into_bytes());
    }
}

fn s3_config(h: &Host, prefix: &str, extra: &str) {
    h.write_config(&format!(
        "[[tier]]\nname = \"cloud\"\nurl = \"s3://{BUCKET}/{prefix}\"\n{extra}"
    ));
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Runs `push -v --json`; `at_part` runs once the upload's first part was
/// queued (the push stopped with SIGSTOP meanwhile). Returns the exit code, the JSON report and stderr.
fn push_with_event(
    h: &Host,
    env: &[(String, String)],
    at_part: impl FnOnce(),
) -> (i32, serde_json::Value, String) {
    let mut child = h
        .cmd(env)
        .args([
            "push",
            "--config",
            s(&h.config),
            "--dest",
            s(&h.dest),
            "--json",
            "-v",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    let mut at_part = Some(at_part);
    while err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("part 1/") {
            if let Some(f) = at_part.take() {
                // frozen meanwhile, so that the event lands mid-upload
                signal(child.id(), "STOP");
                f();
                signal(child.id(), "CONT");
            }
        }
        line.clear();
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "$ secureclaw-backup push -v --json (with an event at part 1)\n{}{seen}exit {:?}",
        String::from_utf8_lossy(&out.stdout),
        out.status.code()
    );
    assert!(at_part.is_none(), "no part was queued: {seen}");
    (code(&out), json(&out), seen)
}

/// The store's error text in `msg` is condensed: no XML, no entities, no
/// second copy of the same text.
fn assert_condensed(msg: &str) {
    for junk in [
        "<?xml", "<Error>", "<Code>", "&quot;", "&lt;", "&amp;", "&#",
    ] {
        assert!(!msg.contains(junk), "{junk:?} in the message: {msg}");
    }
    for l in msg.lines() {
        assert!(l.len() < 700, "a {} byte line: {l}", l.len());
        // the store's answer once, and no phrase of 20+ characters twice
        // (names and URLs may repeat: `NAME: FAILED: reading NAME: …`)
        assert!(l.matches("Server returned").count() <= 1, "twice: {l}");
        let parts: Vec<&str> = l
            .split(['(', ')', ':', ';'])
            .map(str::trim)
            .filter(|p| p.len() >= 20 && p.contains(' '))
            .collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{p:?} twice in: {l}");
        }
    }
}

#[test]
fn s3_multipart_push_verify_restore_and_retention() {
    let Some(srv) = S3Server::shared("s3_multipart_push_verify_restore_and_retention") else {
        return;
    };
    let env = srv.env();
    let h = Host::new(12 << 20);
    s3_config(
        &h,
        "fleet/host-a",
        "keep_within = \"30d\"\nkeep_yearly = \"forever\"\n",
    );
    let cfg = s(&h.config).to_owned();
    let dest = s(&h.dest).to_owned();
    let big = h.backup("weekly");
    assert!(fs::metadata(h.dest.join(&big)).unwrap().len() > 8 << 20);
    // > 8 MiB: multipart, verified by reading back
    let o = h.run(
        &env,
        &["push", "--config", &cfg, "--dest", &dest, "--json", "-v"],
    );
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["push"][0]["uploaded"][0], big.as_str());
    assert!(String::from_utf8_lossy(&o.stderr).contains("multipart upload completed"));
    // the object is exactly the local bytes (read back by another client)
    let client = srv.client(BUCKET, &env);
    assert_exact_copies(&client, "fleet/host-a", &h, std::slice::from_ref(&big));
    // idempotent
    let o = h.run(&env, &["push", "--config", &cfg, "--dest", &dest, "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["push"][0]["present"][0], big.as_str());
    let o = h.run(
        &env,
        &["list", "--config", &cfg, "--tier", "cloud", "--json"],
    );
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["archives"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["archives"][0]["size"].as_u64().unwrap(),
        fs::metadata(h.dest.join(&big)).unwrap().len()
    );
    // verify an s3:// URL, keyless and keyed
    let url = format!("s3://secureclaw-test/fleet/host-a/{big}");
    let o = h.run(&env, &["verify", "--config", &cfg, &url, "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["verified"][0]["sidecar"], "ok");
    let o = h.run(&env, &["verify", &url, "-i", &key()]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("decrypted and authenticated"));
    // restore from the bucket, streamed
    let target = h.env.p("restored");
    let o = h.run(
        &env,
        &[
            "restore",
            &url,
            "-i",
            &key(),
            "--target",
            s(&target),
            "--no-snapshot",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(
        fs::read(target.join("state/blob.bin")).unwrap(),
        fs::read(h.src.join("state/blob.bin")).unwrap()
    );
    // retention per tier: another host process pushes older dailies to the
    // same prefix with a config without retention, then the 30-day tier
    // prunes them (last year's newest stays: keep_yearly = "forever")
    let h2 = Host::new(0);
    s3_config(&h2, "fleet/host-a", "");
    let d1 = h2.backup("daily");
    let d1 = h2.age_archive(&d1, 45, "daily");
    let d2 = h2.backup("daily");
    let now = chrono::Utc::now();
    let old_year = chrono::Datelike::year(&now) - 2;
    let lastyear = format!("daily_{old_year}1231_020000.tar.gz.age");
    {
        let digest = fs::read_to_string(h2.dest.join(format!("{d2}.sha256"))).unwrap();
        let digest = digest.split_whitespace().next().unwrap().to_owned();
        fs::rename(h2.dest.join(&d2), h2.dest.join(&lastyear)).unwrap();
        fs::remove_file(h2.dest.join(format!("{d2}.sha256"))).unwrap();
        fs::write(
            h2.dest.join(format!("{lastyear}.sha256")),
            format!("{digest}  {lastyear}\n"),
        )
        .unwrap();
    }
    let d3 = h2.backup("daily");
    let o = h2.run(
        &env,
        &["push", "--config", s(&h2.config), "--dest", s(&h2.dest)],
    );
    assert_eq!(code(&o), 0);
    let o = h.run(
        &env,
        &["prune", "--config", &cfg, "--tier", "cloud", "--json"],
    );
    assert_eq!(code(&o), 0);
    let removed: Vec<String> = json(&o)["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let d1_year = chrono::Datelike::year(&(now - chrono::TimeDelta::days(45)));
    if d1_year == chrono::Datelike::year(&now) {
        assert_eq!(removed, [d1.clone(), format!("{d1}.sha256")]);
    } else {
        assert!(removed.is_empty(), "newest of last year kept");
    }
    let o = h.run(
        &env,
        &["list", "--config", &cfg, "--tier", "cloud", "--json"],
    );
    let names: Vec<String> = json(&o)["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&lastyear),
        "keep_yearly keeps last year's newest"
    );
    assert!(names.contains(&big));
    assert!(names.contains(&d3));
    assert_eq!(names.contains(&d1), d1_year != chrono::Datelike::year(&now));
}

#[test]
fn s3_interrupted_push_resumes_and_wrong_credentials_fail_clearly() {
    let Some(srv) =
        S3Server::shared("s3_interrupted_push_resumes_and_wrong_credentials_fail_clearly")
    else {
        return;
    };
    let env = srv.env();
    let h = Host::new(40 << 20);
    s3_config(&h, "fleet/host-b", "keep_within = \"90d\"\n");
    let cfg = s(&h.config).to_owned();
    let dest = s(&h.dest).to_owned();
    let big = h.backup("weekly");

    // kill -9 the push after its first part was queued
    let mut child = h
        .cmd(&env)
        .args(["push", "--config", &cfg, "--dest", &dest, "-v"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("part 1/") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("part 1/"), "push output: {seen}");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // nothing visible: the multipart upload was never completed
    let o = h.run(
        &env,
        &["list", "--config", &cfg, "--tier", "cloud", "--json"],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["archives"].as_array().unwrap().len(), 0);
    // … as another client sees it: no object under the key, none listed
    let client = srv.client(BUCKET, &env);
    assert_eq!(client.head(&format!("fleet/host-b/{big}")), None);
    assert_eq!(client.get(&format!("fleet/host-b/{big}")), None);
    assert!(client.list("fleet/host-b").is_empty());
    // run again: completes, verifies
    let o = h.run(&env, &["push", "--config", &cfg, "--dest", &dest, "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["push"][0]["uploaded"][0], big.as_str());
    let url = format!("s3://secureclaw-test/fleet/host-b/{big}");
    let o = h.run(&env, &["verify", &url]);
    assert_eq!(code(&o), 0);
    assert_exact_copies(&client, "fleet/host-b", &h, std::slice::from_ref(&big));

    // wrong credentials: exit 1, a clear message, no secret in it
    let secret = "wrongSECRETvalue1234567890abcdefghijklmn";
    let mut bad: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .cloned()
        .collect();
    bad.push(("AWS_ACCESS_KEY_ID".into(), "AKIAWRONGWRONGWRONG1".into()));
    bad.push(("AWS_SECRET_ACCESS_KEY".into(), secret.into()));
    for args in [
        vec!["push", "--config", &cfg, "--dest", &dest],
        vec!["list", "--config", &cfg, "--tier", "cloud"],
        vec!["verify", &url],
    ] {
        let o = h.run(&bad, &args);
        assert_eq!(code(&o), 1, "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!all.contains(secret), "secret leaked: {all}");
        assert!(
            all.contains("credentials"),
            "no hint about credentials: {all}"
        );
        assert_condensed(&all);
    }
    if srv.backend == Backend::Garage {
        // a region other than the cluster's s3_region: refused, and said so
        let other = srv.env_with(&[("AWS_REGION".into(), "us-east-1".into())]);
        let o = h.run(&other, &["list", "--config", &cfg, "--tier", "cloud"]);
        assert_eq!(code(&o), 1);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("AuthorizationHeaderMalformed"), "{err}");
        assert!(
            err.contains("hint: the store expects another region"),
            "{err}"
        );
        assert_condensed(&err);
    }
    // the real secret never shows either
    let real = srv.var("AWS_SECRET_ACCESS_KEY");
    let o = h.run(
        &env,
        &[
            "verify",
            "s3://secureclaw-test/fleet/host-b/daily_20200101_000000.tar.gz.age",
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(!String::from_utf8_lossy(&o.stderr).contains(real.as_str()));
}

#[test]
fn s3_listing_during_a_push_never_shows_a_sidecar_without_its_archive() {
    let test = "s3_listing_during_a_push_never_shows_a_sidecar_without_its_archive";
    let Some(srv) = S3Server::shared(test) else {
        return;
    };
    let env = srv.env();
    let prefix = "fleet/host-l";
    // three single-request archives and a multipart one
    let h = Host::new(2 << 20);
    s3_config(&h, prefix, "");
    let mut names = vec![h.backup("daily"), h.backup("daily"), h.backup("weekly")];
    write_file(&h.src.join("state/blob.bin"), &noise(10 << 20, 9), 0o600);
    names.push(h.backup("weekly"));
    let size: std::collections::HashMap<String, u64> = names
        .iter()
        .map(|n| (n.clone(), fs::metadata(h.dest.join(n)).unwrap().len()))
        .collect();
    let client = srv.client(BUCKET, &env);
    let done = AtomicBool::new(false);
    let (o, (listings, with_sidecar, bad)) = std::thread::scope(|sc| {
        let lister = sc.spawn(|| {
            let (mut listings, mut with_sidecar, mut bad) = (0, 0, Vec::new());
            while !done.load(Ordering::SeqCst) {
                let objs = client.list(prefix);
                listings += 1;
                for (n, _) in &objs {
                    let Some(a) = n.strip_suffix(".sha256") else {
                        continue;
                    };
                    with_sidecar += 1;
                    match objs.iter().find(|(m, _)| m == a) {
                        Some((_, sz)) if Some(sz) == size.get(a) => {}
                        other => bad.push(format!("{n} listed with {other:?}")),
                    }
                }
            }
            (listings, with_sidecar, bad)
        });
        let o = h.run(
            &env,
            &["push", "--config", s(&h.config), "--dest", s(&h.dest)],
        );
        done.store(true, Ordering::SeqCst);
        (o, lister.join().unwrap())
    });
    assert_eq!(code(&o), 0);
    eprintln!("{listings} listings during the push, {with_sidecar} sidecars seen");
    assert!(
        bad.is_empty(),
        "a sidecar without its complete archive: {bad:?}"
    );
    assert!(
        listings >= 3 && with_sidecar >= 1,
        "the lister saw the push"
    );
    // after it: everything, exactly the local bytes
    // (each archive, its sidecar and its .meta description, which push
    // carries as a companion)
    let after = client.list(prefix);
    assert_eq!(after.len(), 3 * names.len(), "{after:?}");
    assert_exact_copies(&client, prefix, &h, &names);
}

#[test]
fn s3_fleet_two_hosts_push_and_prune_side_by_side() {
    let test = "s3_fleet_two_hosts_push_and_prune_side_by_side";
    let Some(srv) = S3Server::shared(test) else {
        return;
    };
    let env = srv.env();
    // one bucket, one prefix per host (same key)
    let hosts = [Host::new(0), Host::new(0)];
    let mut old = Vec::new();
    let mut recent = Vec::new();
    for (i, (h, btype)) in hosts.iter().zip(["daily", "weekly"]).enumerate() {
        let a = h.backup(btype);
        old.push(h.age_archive(&a, 45 + i as i64, btype));
        recent.push(h.backup(btype));
        // first without retention, so that the old archives go up too
        s3_config(h, &format!("fleet/web-{}", i + 1), "");
    }
    let side_by_side = |args: &[&str]| -> Vec<std::process::Output> {
        let children: Vec<_> = hosts
            .iter()
            .map(|h| {
                let mut a: Vec<&str> = args.to_vec();
                a.extend(["--config", s(&h.config)]);
                if a[0] == "push" {
                    a.extend(["--dest", s(&h.dest)]);
                }
                h.cmd(&env)
                    .args(&a)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| {
                let o = c.wait_with_output().unwrap();
                eprintln!(
                    "$ secureclaw-backup {}\n{}{}exit {:?}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr),
                    o.status.code()
                );
                o
            })
            .collect()
    };
    for (i, o) in side_by_side(&["push", "--json"]).iter().enumerate() {
        assert_eq!(code(o), 0);
        let mut up: Vec<String> = json(o)["push"][0]["uploaded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        up.sort();
        assert_eq!(up, [old[i].clone(), recent[i].clone()]);
    }
    // each host lists only its own archives
    let listed = |i: usize| -> Vec<String> {
        let h = &hosts[i];
        let o = h.run(
            &env,
            &[
                "list",
                "--config",
                s(&h.config),
                "--tier",
                "cloud",
                "--json",
            ],
        );
        assert_eq!(code(&o), 0);
        json(&o)["archives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for i in 0..2 {
        let mut want = vec![recent[i].clone(), old[i].clone()];
        want.sort();
        let mut got = listed(i);
        got.sort();
        assert_eq!(got, want, "host {i} sees exactly its own archives");
    }
    // now with 30 days of retention: both prune at once, each its own
    for (i, h) in hosts.iter().enumerate() {
        s3_config(
            h,
            &format!("fleet/web-{}", i + 1),
            "keep_within = \"30d\"\n",
        );
    }
    for (i, o) in side_by_side(&["prune", "--tier", "cloud", "--json"])
        .iter()
        .enumerate()
    {
        assert_eq!(code(o), 0);
        let removed = &json(o)["removed"];
        assert_eq!(
            removed,
            &serde_json::json!([old[i].clone(), format!("{}.sha256", old[i])])
        );
    }
    let client = srv.client(BUCKET, &env);
    for (i, r) in recent.iter().enumerate() {
        assert_eq!(listed(i), std::slice::from_ref(r));
        assert_exact_copies(
            &client,
            &format!("fleet/web-{}", i + 1),
            &hosts[i],
            std::slice::from_ref(r),
        );
    }
    if srv.backend != Backend::Garage {
        notice(&format!(
            "NOTICE: {test}: the bucket-per-host part needs Garage; ran the prefix part only"
        ));
        return;
    }
    // a bucket and a key per host: Garage's permissions are per bucket
    let own = srv.new_bucket("secureclaw-web-3");
    let env3 = srv.env_with(&own);
    let h3 = Host::new(0);
    h3.write_config("[[tier]]\nname = \"cloud\"\nurl = \"s3://secureclaw-web-3\"\nkeep_within = \"30d\"\n[[tier]]\nname = \"shared\"\nurl = \"s3://secureclaw-test/fleet/web-1\"\n");
    let a3 = h3.backup("daily");
    let o = h3.run(
        &env3,
        &[
            "push",
            "--config",
            s(&h3.config),
            "--dest",
            s(&h3.dest),
            "--tier",
            "cloud",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["push"][0]["uploaded"][0], a3.as_str());
    let o = h3.run(
        &env3,
        &[
            "list",
            "--config",
            s(&h3.config),
            "--tier",
            "cloud",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["archives"][0]["name"], a3.as_str());
    // its key cannot read the shared bucket …
    let o = h3.run(
        &env3,
        &["list", "--config", s(&h3.config), "--tier", "shared"],
    );
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("credentials"), "{err}");
    assert_condensed(&err);
    let other = format!("s3://{BUCKET}/fleet/web-1/{}", recent[0]);
    let o = h3.run(&env3, &["verify", &other]);
    assert_eq!(code(&o), 1, "cannot read another host's archive");
    // … and the shared key cannot read the host's bucket
    let o = h3.run(
        &env,
        &["list", "--config", s(&h3.config), "--tier", "cloud"],
    );
    assert_eq!(code(&o), 1);
    assert_exact_copies(
        &srv.client("secureclaw-web-3", &env3),
        "",
        &h3,
        std::slice::from_ref(&a3),
    );
}

// ------------------------------------------------- node failures (Garage)

#[test]
fn garage_one_node_down_before_and_during_a_push() {
    let Some(c) = S3Server::own_garage("garage_one_node_down_before_and_during_a_push") else {
        return;
    };
    let env = c.env();
    let h = Host::new(20 << 20);
    s3_config(&h, "fleet/host-f", "keep_within = \"90d\"\n");
    let a1 = h.backup("weekly");
    // node 3 down before the push: 2 of 3 is a quorum
    c.stop_node(3, false);
    let o = h.run(
        &env,
        &[
            "push",
            "--config",
            s(&h.config),
            "--dest",
            s(&h.dest),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["push"][0]["uploaded"][0], a1.as_str());
    c.start_node(3);
    // node 2 killed while the parts of the next archive go up
    write_file(&h.src.join("state/blob.bin"), &noise(20 << 20, 11), 0o600);
    let a2 = h.backup("daily");
    let (rc, v, _) = push_with_event(&h, &env, || c.stop_node(2, true));
    assert_eq!(rc, 0);
    assert_eq!(v["push"][0]["uploaded"], serde_json::json!([a2.clone()]));
    assert_eq!(v["push"][0]["present"], serde_json::json!([a1.clone()]));
    // read back with node 2 still down: node 3 missed all of a1
    let url = |n: &str| format!("s3://{BUCKET}/fleet/host-f/{n}");
    for n in [&a1, &a2] {
        let o = h.run(&env, &["verify", &url(n), "-i", &key()]);
        assert_eq!(code(&o), 0, "{n}");
    }
    // and through node 3 with node 1 down: served by the nodes that were
    // down during either upload
    c.start_node(2);
    c.stop_node(1, false);
    let via3 = c.env_via(3);
    for n in [&a1, &a2] {
        let o = h.run(&via3, &["verify", &url(n), "-i", &key()]);
        assert_eq!(code(&o), 0, "{n} through node 3");
    }
    let client = c.client(BUCKET, &via3);
    assert_exact_copies(&client, "fleet/host-f", &h, &[a1.clone(), a2.clone()]);
}

#[test]
fn garage_two_nodes_down_push_fails_clearly_and_the_next_push_finishes() {
    let test = "garage_two_nodes_down_push_fails_clearly_and_the_next_push_finishes";
    let Some(c) = S3Server::own_garage(test) else {
        return;
    };
    let env = c.env();
    let h = Host::new(20 << 20);
    s3_config(&h, "fleet/host-q", "keep_within = \"90d\"\n");
    let client = c.client(BUCKET, &env);
    let complete = |n: &str| -> bool {
        let o = h.run(
            &env,
            &[
                "list",
                "--config",
                s(&h.config),
                "--tier",
                "cloud",
                "--json",
            ],
        );
        assert_eq!(code(&o), 0);
        json(&o)["archives"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == n && a["sidecar"] == "present")
    };
    let check_failure = |rc: i32, v: &serde_json::Value, err: &str, name: &str| {
        assert_eq!(rc, 1, "no quorum: operational error");
        let rep = &v["push"][0];
        assert_eq!(rep["uploaded"], serde_json::json!([]));
        assert_eq!(rep["failed"][0][0], name);
        let last = err
            .lines()
            .rev()
            .find(|l| l.contains("error"))
            .unwrap_or("");
        assert!(
            last.contains("cloud") && last.contains(name),
            "the tier and the archive named: {last}"
        );
        assert_condensed(err);
        assert_condensed(rep["failed"][0][1].as_str().unwrap());
    };

    // two of three nodes down before the push
    let a1 = h.backup("weekly");
    c.stop_node(2, false);
    c.stop_node(3, false);
    let t0 = Instant::now();
    let o = h.run(
        &env,
        &[
            "push",
            "--config",
            s(&h.config),
            "--dest",
            s(&h.dest),
            "--json",
        ],
    );
    eprintln!("failed in {:.1} s", t0.elapsed().as_secs_f64());
    check_failure(
        code(&o),
        &json(&o),
        &String::from_utf8_lossy(&o.stderr),
        &a1,
    );
    c.start_node(2);
    c.start_node(3);
    assert!(!complete(&a1), "nothing reported that is not complete");

    // the next push finishes the job
    let o = h.run(
        &env,
        &[
            "push",
            "--config",
            s(&h.config),
            "--dest",
            s(&h.dest),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["push"][0]["uploaded"][0], a1.as_str());
    assert!(complete(&a1));

    // two nodes killed during a multipart upload
    write_file(&h.src.join("state/blob.bin"), &noise(24 << 20, 13), 0o600);
    let a2 = h.backup("daily");
    let (rc, v, err) = push_with_event(&h, &env, || {
        c.stop_node(2, true);
        c.stop_node(3, true);
    });
    check_failure(rc, &v, &err, &a2);
    assert_eq!(v["push"][0]["present"], serde_json::json!([a1.clone()]));
    c.start_node(2);
    c.start_node(3);
    assert!(!complete(&a2), "nothing reported that is not complete");
    assert_eq!(
        client.get(&format!("fleet/host-q/{a2}.sha256")),
        None,
        "no sidecar for an incomplete copy"
    );
    let o = h.run(
        &env,
        &[
            "push",
            "--config",
            s(&h.config),
            "--dest",
            s(&h.dest),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0);
    let rep = &json(&o)["push"][0];
    let done: Vec<_> = [&rep["uploaded"], &rep["completed"]]
        .iter()
        .flat_map(|a| a.as_array().unwrap().clone())
        .collect();
    assert_eq!(done, [serde_json::json!(a2.clone())]);
    let o = h.run(
        &env,
        &[
            "verify",
            &format!("s3://{BUCKET}/fleet/host-q/{a2}"),
            "-i",
            &key(),
        ],
    );
    assert_eq!(code(&o), 0);
    assert_exact_copies(&client, "fleet/host-q", &h, &[a1, a2]);
}

/// Bytes written by process `pid` so far (`wchar` of /proc/PID/io; socket
/// reads do not count in `rchar`).
fn wchar(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn garage_node_killed_during_a_restore_from_the_bucket() {
    let Some(c) = S3Server::own_garage("garage_node_killed_during_a_restore_from_the_bucket")
    else {
        return;
    };
    let env = c.env();
    let h = Host::new(64 << 20);
    s3_config(&h, "fleet/host-r", "");
    let a = h.backup("weekly");
    let o = h.run(
        &env,
        &["push", "--config", s(&h.config), "--dest", s(&h.dest)],
    );
    assert_eq!(code(&o), 0);
    let url = format!("s3://{BUCKET}/fleet/host-r/{a}");
    // restore over an existing tree, and kill -9 node `victim` once 8 MB
    // were restored (written to the staging directory)
    let restore = |target: &Path, victim: usize| -> std::process::Output {
        let child = h
            .cmd(&env)
            .args([
                "restore",
                &url,
                "-i",
                &key(),
                "--target",
                s(target),
                "--no-snapshot",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        while wchar(pid) < 8 << 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let written = wchar(pid);
        // frozen meanwhile, so that the node dies mid-restore
        signal(pid, "STOP");
        c.stop_node(victim, true);
        signal(pid, "CONT");
        let out = child.wait_with_output().unwrap();
        eprintln!(
            "$ secureclaw-backup restore {url} (node {victim} killed after {written} bytes written)\n{}exit {:?}",
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        );
        assert!(
            (8 << 20..60 << 20).contains(&written),
            "the restore was under way when the node died"
        );
        out
    };

    // a node other than the one the client talks to: completes through the others
    let t1 = h.env.p("t1/secureclaw");
    make_tree(&t1);
    let o = restore(&t1, 3);
    assert_eq!(code(&o), 0);
    assert_eq!(
        fs::read(t1.join("state/blob.bin")).unwrap(),
        fs::read(h.src.join("state/blob.bin")).unwrap()
    );
    c.start_node(3);

    // the node the client talks to: fails, and the target is as it was
    let t2 = h.env.p("t2/secureclaw");
    make_tree(&t2);
    write_file(&t2.join("state/mine.txt"), b"before the restore", 0o600);
    let before = snapshot(&t2);
    let around = names_in(&h.env.p("t2"));
    let o = restore(&t2, 1);
    assert_eq!(code(&o), 1, "the endpoint died: operational error");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&url) || err.contains(&a),
        "names the archive: {err}"
    );
    assert_condensed(&err);
    assert!(snapshot(&t2) == before, "the target changed");
    assert_eq!(names_in(&h.env.p("t2")), around, "nothing left beside it");
}
