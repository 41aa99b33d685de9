//! Offsite tiers (issue 9): a NAS tier as a plain directory (always), and an
//! S3 tier against a real S3-compatible server (moto, started on 127.0.0.1
//! by `scripts/s3-test-server`, bounded in time and killed at the end). When
//! python3/pip/moto are unavailable, the S3 tests print why and skip.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn key() -> String {
    example_key("age-example.key")
        .to_string_lossy()
        .into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
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
    env: Env,
    src: PathBuf,
    dest: PathBuf,
    config: PathBuf,
}

impl Host {
    fn new(big: usize) -> Host {
        let env = Env::new();
        let src = env.path("data");
        make_tree(&src);
        if big > 0 {
            write_file(&src.join("state/blob.bin"), &noise(big, 7), 0o600);
        }
        let dest = env.path("backups");
        let config = env.path("config.toml");
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
    let nas = h.env.path("nas/secureclaw");
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
    let target = h.env.path("restored");
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

// ---------------------------------------------------------------- S3 (moto)

struct Moto {
    child: Child,
    port: u16,
    creds: Vec<(String, String)>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // the script's EXIT trap kills moto
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install_moto() -> Result<(), String> {
    static ONCE: std::sync::Mutex<Option<Result<(), String>>> = std::sync::Mutex::new(None);
    let mut g = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = g.as_ref() {
        return r.clone();
    }
    let r = if !have("python3") {
        Err("python3 not found".to_owned())
    } else {
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
    };
    *g = Some(r.clone());
    r
}

fn moto() -> Option<Moto> {
    if let Err(why) = install_moto() {
        eprintln!("SKIPPED: no S3 test server: {why}");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = tempfile::tempdir().unwrap().keep().join("moto.env");
    let child = Command::new(repo().join("scripts/s3-test-server"))
        .args([&port.to_string(), s(&state), "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut m = Moto {
        child,
        port,
        creds: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = fs::read_to_string(&state) {
            if t.ends_with("READY\n") {
                for l in t.lines() {
                    if let Some((k, v)) = l.split_once('=') {
                        m.creds.push((k.to_owned(), v.to_owned()));
                    }
                }
                break;
            }
        }
        if Instant::now() > deadline || m.child.try_wait().ok().flatten().is_some() {
            eprintln!("SKIPPED: moto did not start on 127.0.0.1:{port}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(m)
}

impl Moto {
    fn env(&self) -> Vec<(String, String)> {
        let mut e = self.creds.clone();
        e.push((
            "AWS_ENDPOINT_URL".into(),
            format!("http://127.0.0.1:{}", self.port),
        ));
        e.push(("AWS_ALLOW_HTTP".into(), "true".into()));
        e.push(("AWS_REGION".into(), "us-east-1".into()));
        e
    }
}

fn s3_config(h: &Host, prefix: &str, extra: &str) {
    h.write_config(&format!(
        "[[tier]]\nname = \"cloud\"\nurl = \"s3://secureclaw-test/{prefix}\"\n{extra}"
    ));
}

#[test]
fn s3_multipart_push_verify_restore_and_retention() {
    let Some(m) = moto() else { return };
    let env = m.env();
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
    let target = h.env.path("restored");
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
    let Some(m) = moto() else { return };
    let env = m.env();
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
    // run again: completes, verifies
    let o = h.run(&env, &["push", "--config", &cfg, "--dest", &dest, "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["push"][0]["uploaded"][0], big.as_str());
    let url = format!("s3://secureclaw-test/fleet/host-b/{big}");
    let o = h.run(&env, &["verify", &url]);
    assert_eq!(code(&o), 0);

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
    }
    // the real secret never shows either
    let real = &m
        .creds
        .iter()
        .find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY")
        .unwrap()
        .1;
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
