//! The command line as an operator meets it, through the real binary: what
//! `-q` prints (nothing on success), the JSON contract (`ok` on every
//! document, usage errors as JSON), passphrases for unattended runs, bash
//! completion driven in a real bash, man pages, a closed stdout, and the
//! small wording rules of the human output.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{code, example_key, s as p, write_file, Sandbox};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exactly one JSON document on stdout, with a boolean `ok`.
fn doc(o: &Output) -> serde_json::Value {
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", out(o), err(o)));
    assert_eq!(docs.len(), 1, "one document: {}", out(o));
    let d = docs.into_iter().next().unwrap();
    assert!(d["ok"].is_boolean(), "no top-level ok: {d}");
    d
}

/// A small data directory that backs up and restores without any warning.
fn quiet_tree(root: &Path) {
    write_file(
        &root.join("secureclaw.json"),
        b"// config\n{ gateway: { port: 18789, }, }\n",
        0o600,
    );
    write_file(&root.join("credentials/oauth.json"), b"{\"t\":1}", 0o600);
    write_file(
        &root.join("agents/main/sessions/s1.jsonl"),
        b"{\"role\":\"user\"}\n",
        0o600,
    );
    fs::set_permissions(root, fs::Permissions::from_mode(0o700)).unwrap();
}

/// An example key copied to an owner-only file (the checked-out copies are
/// 0644 and would draw the "group/other-readable identity" warning).
fn private_copy(env: &Sandbox, name: &str) -> PathBuf {
    let to = env.p(name);
    fs::copy(example_key(name), &to).unwrap();
    fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
    to
}

fn age_pub(name: &str) -> String {
    fs::read_to_string(example_key(name))
        .unwrap()
        .trim()
        .to_owned()
}

/// Sandbox with a data dir, a destination and one age backup of it.
struct Setup {
    env: Sandbox,
    data: PathBuf,
    dest: PathBuf,
    key: PathBuf,
    archive: PathBuf,
}

fn setup() -> Setup {
    let env = Sandbox::new();
    let data = env.p("data");
    quiet_tree(&data);
    let dest = env.p("dest");
    let key = private_copy(&env, "age-example.key");
    let o = env.output(&[
        "-q",
        "backup",
        "--source",
        p(&data),
        "--dest",
        p(&dest),
        "-r",
        &age_pub("age-example.pub"),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let archive = common::archives(&dest).pop().expect("an archive");
    Setup {
        env,
        data,
        dest,
        key,
        archive,
    }
}

/// A configuration with one NAS (directory) tier.
fn nas_config(env: &Sandbox) -> PathBuf {
    let nas = env.p("nas");
    fs::create_dir_all(&nas).unwrap();
    let config = env.p("config.toml");
    fs::write(
        &config,
        format!(
            "[[tier]]\nname = \"nas\"\nurl = \"{}\"\nkeep_within = \"30d\"\n",
            p(&nas)
        ),
    )
    .unwrap();
    config
}

fn assert_silent(o: &Output, what: &str) {
    assert_eq!(code(o), 0, "{what}: {}", err(o));
    assert_eq!(out(o), "", "{what}: -q printed on stdout");
    assert_eq!(err(o), "", "{what}: -q printed on stderr");
}

#[test]
fn quiet_success_prints_nothing() {
    let s = setup();
    let env = &s.env;
    // the backup of setup() ran with -q as well
    let o = env.output(&[
        "-q",
        "backup",
        "--source",
        p(&s.data),
        "--dest",
        p(&s.dest),
        "-r",
        &age_pub("age-example.pub"),
    ]);
    assert_silent(&o, "backup");
    let o = env.output(&["-q", "verify", p(&s.archive)]);
    assert_silent(&o, "verify (keyless)");
    let o = env.output(&["-q", "verify", p(&s.archive), "-i", p(&s.key)]);
    assert_silent(&o, "verify -i");
    let o = env.output(&["-q", "prune", "--dest", p(&s.dest)]);
    assert_silent(&o, "prune");
    let o = env.output(&["-q", "prune", "--dest", p(&s.dest), "--dry-run"]);
    assert_silent(&o, "prune --dry-run");
    let o = env.output(&["-q", "list", "--dest", p(&s.dest)]);
    assert_silent(&o, "list");
    let o = env.output(&["-q", "status", "--dest", p(&s.dest)]);
    assert_silent(&o, "status");
    let target = env.p("restored");
    let o = env.output(&[
        "-q",
        "restore",
        p(&s.archive),
        "-i",
        p(&s.key),
        "--target",
        p(&target),
        "--dest",
        p(&s.dest),
        "--no-snapshot",
    ]);
    assert_silent(&o, "restore");
    assert!(target.join("credentials/oauth.json").is_file());
    let o = env.output(&["-q", "validate", "--target", p(&target)]);
    assert_silent(&o, "validate");
    let o = env.output(&[
        "-q",
        "drill",
        "--dest",
        p(&s.dest),
        "-i",
        p(&s.key),
        "--scratch",
        p(&env.p("env/tmp")),
    ]);
    assert_silent(&o, "drill");
    let o = env.output(&["-q", "man", "--dir", p(&env.p("man"))]);
    assert_silent(&o, "man --dir");
    let o = env.output(&["-q", "keygen", "age", "--out", p(&env.p("keys"))]);
    assert_silent(&o, "keygen");
    assert!(env.p("keys").read_dir().unwrap().count() >= 2);
    let o = env.output(&[
        "-q",
        "schedule",
        "cron",
        "--install",
        "--source",
        p(&s.data),
        "--dest",
        p(&s.dest),
    ]);
    assert_silent(&o, "schedule --install");
    let o = env.output(&[
        "-q",
        "rotate",
        "--dest",
        p(&s.dest),
        "-i",
        p(&s.key),
        "-r",
        &age_pub("age-example-protected.pub"),
        "--dry-run",
    ]);
    assert_silent(&o, "rotate --dry-run");
    let config = nas_config(env);
    let o = env.output(&["-q", "push", "--dest", p(&s.dest), "--config", p(&config)]);
    assert_silent(&o, "push");
    let o = env.output(&["-q", "list", "--tier", "nas", "--config", p(&config)]);
    assert_silent(&o, "list --tier");
    let o = env.output(&[
        "-q",
        "verify",
        "--tier",
        "nas",
        "--config",
        p(&config),
        s.archive.file_name().unwrap().to_str().unwrap(),
    ]);
    assert_silent(&o, "verify --tier");
    let o = env.output(&["-q", "prune", "--tier", "nas", "--config", p(&config)]);
    assert_silent(&o, "prune --tier");

    // without -q the same commands do print their summary
    let o = env.output(&["verify", p(&s.archive)]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).contains("1 verified"), "{}", out(&o));
}

#[test]
fn quiet_keeps_warnings_and_errors() {
    let s = setup();
    let env = &s.env;
    // a group-readable identity: the warning still shows under -q
    let loose = env.p("loose.key");
    fs::copy(&s.key, &loose).unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
    let o = env.output(&["-q", "verify", p(&s.archive), "-i", p(&loose)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(out(&o), "");
    assert!(err(&o).starts_with("warning: identity file"), "{}", err(&o));
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    // an error: exit code, error and hint on stderr, nothing on stdout
    let o = env.output(&["-q", "verify", p(&env.p("nope.tar.gz.age"))]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert_eq!(out(&o), "");
    assert!(err(&o).contains("error:") && err(&o).contains("hint:"));
}

/// The cron line the tool generates runs with -q and promises that only
/// errors are mailed: a successful backup as that line runs it says nothing.
#[test]
fn cron_line_is_quiet_on_success() {
    let s = setup();
    let env = &s.env;
    let o = env.output(&[
        "schedule",
        "cron",
        "--source",
        p(&s.data),
        "--dest",
        p(&s.dest),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(text.contains("Errors are mailed"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(" -q backup"))
        .unwrap_or_else(|| panic!("no -q backup line: {text}"));
    // run the command part of the line (after `set +a;`) with the key in the env
    let cmd = line.split("set +a; ").nth(1).unwrap();
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.p("env/home"))
        .env("TMPDIR", env.p("env/tmp"))
        .env("SECURECLAW_BACKUP_KEY", age_pub("age-example.pub"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_silent(&o, "the cron line's backup");
}

// ---------------------------------------------------------------- JSON

#[test]
fn every_json_document_has_ok() {
    let s = setup();
    let env = &s.env;
    let recipient = age_pub("age-example.pub");
    let src = ["--source", p(&s.data), "--dest", p(&s.dest)];
    let o = env.output(&[&["--json", "backup", "-r", &recipient][..], &src[..]].concat());
    assert_eq!(doc(&o)["ok"], true, "backup");
    assert_eq!(doc(&o)["backup"]["format"], "age");
    let o = env.output(&["--json", "verify", p(&s.archive)]);
    assert_eq!(doc(&o)["ok"], true, "verify");
    let o = env.output(&["--json", "list", "--dest", p(&s.dest)]);
    assert_eq!(doc(&o)["ok"], true, "list");
    let o = env.output(&["--json", "prune", "--dest", p(&s.dest), "--dry-run"]);
    assert_eq!(doc(&o)["ok"], true, "prune");
    let o = env.output(&["--json", "status", "--dest", p(&s.dest)]);
    assert_eq!(doc(&o)["ok"], true, "status");
    let empty = env.p("empty");
    fs::create_dir(&empty).unwrap();
    let o = env.output(&["--json", "status", "--dest", p(&empty)]);
    assert_eq!(code(&o), 6);
    assert_eq!(doc(&o)["ok"], false, "status, stale");
    let target = env.p("restored");
    let o = env.output(&[
        "--json",
        "restore",
        p(&s.archive),
        "-i",
        p(&s.key),
        "--target",
        p(&target),
        "--no-snapshot",
    ]);
    assert_eq!(doc(&o)["ok"], true, "restore: {}", err(&o));
    let o = env.output(&["--json", "validate", "--target", p(&target)]);
    assert_eq!(doc(&o)["ok"], true, "validate");
    let o = env.output(&[
        "--json",
        "drill",
        "--dest",
        p(&s.dest),
        "-i",
        p(&s.key),
        "--scratch",
        p(&env.p("env/tmp")),
    ]);
    assert_eq!(doc(&o)["ok"], true, "drill");
    let o = env.output(&[
        "--json",
        "rotate",
        "--dest",
        p(&s.dest),
        "-i",
        p(&s.key),
        "-r",
        &age_pub("age-example-protected.pub"),
        "--dry-run",
    ]);
    assert_eq!(doc(&o)["ok"], true, "rotate: {}", err(&o));
    let o = env.output(&["--json", "schedule", "cron", "--dest", p(&s.dest)]);
    assert_eq!(doc(&o)["ok"], true, "schedule");
    let o = env.output(&["--json", "keygen", "age", "--out", p(&env.p("keys"))]);
    assert_eq!(doc(&o)["ok"], true, "keygen");
    let o = env.output(&["--json", "man", "--dir", p(&env.p("man"))]);
    let d = doc(&o);
    assert_eq!(d["ok"], true, "man");
    assert!(d["pages"].as_array().unwrap().len() > 10);
    let config = nas_config(env);
    let o = env.output(&[
        "--json",
        "push",
        "--dest",
        p(&s.dest),
        "--config",
        p(&config),
    ]);
    assert_eq!(doc(&o)["ok"], true, "push: {}", err(&o));
    let o = env.output(&["--json", "list", "--tier", "nas", "--config", p(&config)]);
    assert_eq!(doc(&o)["ok"], true, "list --tier");
    let o = env.output(&[
        "--json",
        "prune",
        "--tier",
        "nas",
        "--config",
        p(&config),
        "--dry-run",
    ]);
    assert_eq!(doc(&o)["ok"], true, "prune --tier");
    // push without any tier configured: an error document
    let o = env.output(&["--json", "push", "--dest", p(&s.dest)]);
    assert_ne!(code(&o), 0);
    let d = doc(&o);
    assert_eq!(d["ok"], false, "push");
    assert_eq!(d["error"]["exit_code"], code(&o));
    // an error document for a failed command
    let o = env.output(&["--json", "verify", p(&env.p("missing.tar.gz.age"))]);
    assert_eq!(code(&o), 1);
    assert_eq!(doc(&o)["ok"], false, "verify of a missing file");
}

#[test]
fn usage_errors_are_json_under_json() {
    let env = Sandbox::new();
    for args in [
        &["--json", "backup", "--no-such-option"][..],
        &["backup", "--json", "--type", "hourly"][..],
        &["--json", "no-such-command"][..],
        &["--json", "restore"][..],
    ] {
        let o = env.output(args);
        assert_eq!(code(&o), 2, "{args:?}");
        let d = doc(&o);
        assert_eq!(d["ok"], false);
        assert_eq!(d["error"]["kind"], "usage", "{d}");
        assert_eq!(d["error"]["exit_code"], 2);
        assert!(!d["error"]["message"].as_str().unwrap().is_empty());
        // clap's own explanation stays on stderr
        assert!(err(&o).contains("error:"), "{}", err(&o));
    }
    // without --json: no JSON, only the text on stderr
    let o = env.output(&["backup", "--no-such-option"]);
    assert_eq!(code(&o), 2);
    assert_eq!(out(&o), "");
    // help is not an error
    let o = env.output(&["--json", "backup", "--help"]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).contains("--type"));
}

#[test]
fn completions_refuse_json() {
    let env = Sandbox::new();
    let o = env.output(&["--json", "completions", "bash"]);
    assert_eq!(code(&o), 2);
    let d = doc(&o);
    assert_eq!(d["ok"], false);
    assert_eq!(d["error"]["kind"], "usage");
    assert!(err(&o).contains("shell script"), "{}", err(&o));
}

#[test]
fn openpgp_is_spelled_openpgp() {
    let env = Sandbox::new();
    let data = env.p("data");
    quiet_tree(&data);
    let dest = env.p("dest");
    let cert = example_key("openpgp-example.pub.asc");
    let o = env.output(&[
        "--json",
        "backup",
        "--source",
        p(&data),
        "--dest",
        p(&dest),
        "-r",
        p(&cert),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let d = doc(&o);
    assert_eq!(d["backup"]["format"], "openpgp", "{d}");
    let archive = common::archives(&dest).pop().unwrap();
    let o = env.output(&["--json", "verify", p(&archive)]);
    let d = doc(&o);
    assert_eq!(d["verified"][0]["format"], "openpgp", "{d}");
    assert!(!out(&o).contains("open-pgp"));
}

#[test]
fn status_of_a_missing_destination_is_an_operational_error() {
    let env = Sandbox::new();
    let dest = env.p("not-mounted");
    let o = env.output(&["--json", "status", "--dest", p(&dest)]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    let d = doc(&o);
    assert_eq!(d["ok"], false);
    let problems = d["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("does not exist")),
        "{d}"
    );
    assert!(err(&o).contains("does not exist"), "{}", err(&o));
    // a file where the directory should be
    fs::write(env.p("file"), b"x").unwrap();
    let o = env.output(&["status", "--dest", p(&env.p("file"))]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("Not a directory"), "{}", err(&o));
}

// ---------------------------------------------------------- passphrases

/// A backup to the passphrase-protected example age key.
fn protected_setup() -> (Sandbox, PathBuf, PathBuf) {
    let env = Sandbox::new();
    let data = env.p("data");
    quiet_tree(&data);
    let dest = env.p("dest");
    let o = env.output(&[
        "-q",
        "backup",
        "--source",
        p(&data),
        "--dest",
        p(&dest),
        "-r",
        &age_pub("age-example-protected.pub"),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let archive = common::archives(&dest).pop().unwrap();
    let key = private_copy(&env, "age-example-protected.key");
    (env, archive, key)
}

/// Runs without a controlling terminal (a new session), stdin from /dev/null:
/// as cron and systemd timers run.
fn run_detached(env: &Sandbox, args: &[&str], extra_env: &[(&str, &Path)]) -> Output {
    let mut c = env.cmd();
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let bin = c.get_program().to_owned();
    let mut detached = Command::new("setsid");
    detached
        .arg("-w")
        .arg(bin)
        .args(args)
        .env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::null());
    detached.output().expect("setsid (util-linux)")
}

#[test]
fn passphrase_file_from_the_environment() {
    let (env, archive, key) = protected_setup();
    let pass = env.p("pass");
    write_file(&pass, b"example\n", 0o600);
    let o = run_detached(
        &env,
        &["-q", "verify", p(&archive), "-i", p(&key)],
        &[("SECURECLAW_BACKUP_PASSPHRASE_FILE", &pass)],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(err(&o), "");
    // restore (and so drill, rotate) takes it too
    let o = run_detached(
        &env,
        &[
            "-q",
            "restore",
            p(&archive),
            "-i",
            p(&key),
            "--target",
            p(&env.p("restored")),
            "--no-snapshot",
        ],
        &[("SECURECLAW_BACKUP_PASSPHRASE_FILE", &pass)],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    // --passphrase-file wins over the variable
    let bad = env.p("bad");
    write_file(&bad, b"not it\n", 0o600);
    let o = run_detached(
        &env,
        &[
            "verify",
            p(&archive),
            "-i",
            p(&key),
            "--passphrase-file",
            p(&pass),
        ],
        &[("SECURECLAW_BACKUP_PASSPHRASE_FILE", &bad)],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    // a wrong passphrase in the file: one try, "wrong passphrase", exit 4
    let o = run_detached(
        &env,
        &["verify", p(&archive), "-i", p(&key)],
        &[("SECURECLAW_BACKUP_PASSPHRASE_FILE", &bad)],
    );
    assert_eq!(code(&o), 4, "{}", err(&o));
    assert!(err(&o).contains("wrong passphrase"), "{}", err(&o));
    assert!(!err(&o).contains("try again"), "{}", err(&o));
}

#[test]
fn no_terminal_and_no_passphrase_file_says_how_to_give_one() {
    let (env, archive, key) = protected_setup();
    for args in [
        &["verify", p(&archive), "-i", p(&key)][..],
        &[
            "restore",
            p(&archive),
            "-i",
            p(&key),
            "--target",
            p(&env.p("t")),
            "--no-snapshot",
        ][..],
    ] {
        let o = run_detached(&env, args, &[]);
        assert_eq!(code(&o), 4, "{}", err(&o));
        let e = err(&o);
        assert!(e.contains("a passphrase is needed"), "{e}");
        assert!(!e.contains("wrong passphrase"), "{e}");
        assert!(e.contains("SECURECLAW_BACKUP_PASSPHRASE_FILE"), "{e}");
        assert!(e.contains("--passphrase-file"), "{e}");
        assert!(!env.p("t").join("secureclaw.json").exists());
    }
    // OpenPGP: the same message
    let data = env.p("data");
    let dest = env.p("pgp");
    let o = env.output(&[
        "-q",
        "backup",
        "--source",
        p(&data),
        "--dest",
        p(&dest),
        "-r",
        p(&example_key("openpgp-example-protected.pub.asc")),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let archive = common::archives(&dest).pop().unwrap();
    let key = private_copy(&env, "openpgp-example-protected.sec.asc");
    let o = run_detached(&env, &["verify", p(&archive), "-i", p(&key)], &[]);
    assert_eq!(code(&o), 4, "{}", err(&o));
    assert!(err(&o).contains("a passphrase is needed"), "{}", err(&o));
    assert!(
        err(&o).contains("SECURECLAW_BACKUP_PASSPHRASE_FILE"),
        "{}",
        err(&o)
    );
}

/// Types `answers` into a pseudo-terminal (`script` from util-linux) and
/// returns everything the terminal showed, and the exit code.
fn on_a_terminal(env: &Sandbox, args: &[&str], answers: &[&str]) -> Option<(String, i32)> {
    if !common::have("script") {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return None;
    }
    let bin = common::bin();
    let mut line = shell_words(&[p(&bin)]);
    line.push(' ');
    line.push_str(&shell_words(args));
    let log = env.p("typescript");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, p(&log)])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.p("env/home"))
        .env("TMPDIR", env.p("env/tmp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for a in answers {
        // give the prompt time to turn echo off before the answer arrives
        std::thread::sleep(std::time::Duration::from_millis(700));
        stdin.write_all(format!("{a}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    Some((out(&o), code(&o)))
}

fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn one_clean_prompt_and_the_same_tries_for_age_and_openpgp() {
    let (env, archive, key) = protected_setup();
    // age: three wrong passphrases, each asked with our own prompt
    let Some((screen, rc)) = on_a_terminal(
        &env,
        &["verify", p(&archive), "-i", p(&key)],
        &["wrong1", "wrong2", "wrong3"],
    ) else {
        return;
    };
    assert_eq!(rc, 4, "{screen}");
    let prompt = format!("Passphrase for age identity {}: ", p(&key));
    assert_eq!(screen.matches(&prompt).count(), 3, "{screen:?}");
    assert!(
        !screen
            .chars()
            .any(|c| ('\u{2066}'..='\u{2069}').contains(&c)),
        "bidi isolates in {screen:?}"
    );
    assert!(!screen.contains("Type passphrase"), "{screen:?}");
    assert!(
        screen.contains("wrong passphrase for identity file"),
        "{screen}"
    );
    let age_tries = screen.matches("Passphrase for").count();
    // the right one on the second try
    let (screen, rc) = on_a_terminal(
        &env,
        &["verify", p(&archive), "-i", p(&key)],
        &["wrong", "example"],
    )
    .unwrap();
    assert_eq!(rc, 0, "{screen}");
    assert!(screen.contains("try again"), "{screen}");

    // OpenPGP: the same number of tries
    let data = env.p("data");
    let dest = env.p("pgp");
    let o = env.output(&[
        "-q",
        "backup",
        "--source",
        p(&data),
        "--dest",
        p(&dest),
        "-r",
        p(&example_key("openpgp-example-protected.pub.asc")),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let archive = common::archives(&dest).pop().unwrap();
    let key = private_copy(&env, "openpgp-example-protected.sec.asc");
    let (screen, rc) = on_a_terminal(
        &env,
        &["verify", p(&archive), "-i", p(&key)],
        &["wrong1", "wrong2", "wrong3"],
    )
    .unwrap();
    assert_eq!(rc, 4, "{screen}");
    assert_eq!(
        screen.matches("Passphrase for OpenPGP key").count(),
        age_tries,
        "{screen}"
    );
    assert!(screen.contains("wrong passphrase"), "{screen}");
}

// ------------------------------------------------- completions, man, pipes

/// The subcommands and, for each, one of its own options.
const SUB_OPTIONS: &[(&str, &str, &str)] = &[
    ("backup", "--ty", "--type"),
    ("restore", "--no-sn", "--no-snapshot"),
    ("verify", "--ti", "--tier"),
    ("list", "--ch", "--check"),
    ("prune", "--dry", "--dry-run"),
    ("status", "--max", "--max-age"),
    ("schedule", "--ins", "--install"),
    ("keygen", "--passphrase-f", "--passphrase-file"),
    ("validate", "--fi", "--fix"),
    ("completions", "--he", "--help"),
    ("man", "--di", "--dir"),
    ("rotate", "--keep-o", "--keep-old"),
    ("drill", "--rt", "--rto"),
    ("push", "--ti", "--tier"),
    ("ls", "--de", "--dest"),
    ("diff", "--exc", "--exclude"),
];

#[test]
fn bash_completes_options_of_every_subcommand() {
    if !common::have("bash") {
        eprintln!("skipped: bash is not installed");
        return;
    }
    let env = Sandbox::new();
    let o = env.output(&["completions", "bash"]);
    assert_eq!(code(&o), 0);
    let script = env.p("completion.bash");
    fs::write(&script, &o.stdout).unwrap();
    // every subcommand of --help is in the table above
    let help = out(&env.output(&["--help"]));
    let subs: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .collect();
    for s in &subs {
        assert!(
            SUB_OPTIONS.iter().any(|(n, _, _)| n == s),
            "subcommand {s} has no completion test"
        );
    }
    let mut driver = format!("source {}\n", shell_words(&[p(&script)]));
    // the function bash calls for the program, as `complete -p` shows it
    driver.push_str(
        "spec=$(complete -p secureclaw-backup) || exit 9\n\
         fn=${spec#*-F }; fn=${fn%% *}\n",
    );
    for (sub, partial, _) in SUB_OPTIONS {
        // what bash does on `secureclaw-backup SUB PARTIAL<TAB>`
        driver.push_str(&format!(
            "COMP_WORDS=(secureclaw-backup {sub} {partial}); COMP_CWORD=2; COMP_LINE='secureclaw-backup {sub} {partial}'; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()\n\
             \"$fn\" secureclaw-backup {partial} {sub}\n\
             echo \"{sub}: ${{COMPREPLY[*]}}\"\n"
        ));
    }
    // the subcommand names themselves, and a global option after a subcommand
    driver.push_str(
        "COMP_WORDS=(secureclaw-backup ro); COMP_CWORD=1; COMPREPLY=()\n\
         \"$fn\" secureclaw-backup ro secureclaw-backup\n\
         echo \"top: ${COMPREPLY[*]}\"\n\
         COMP_WORDS=(secureclaw-backup backup --js); COMP_CWORD=2; COMPREPLY=()\n\
         \"$fn\" secureclaw-backup --js backup\n\
         echo \"global: ${COMPREPLY[*]}\"\n",
    );
    let o = Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(&driver)
        .output()
        .unwrap();
    let text = out(&o);
    assert!(o.status.success(), "{text}\n{}", err(&o));
    for (sub, _, want) in SUB_OPTIONS {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{sub}: ")))
            .unwrap_or_else(|| panic!("no result for {sub}: {text}"));
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert!(words.contains(want), "{sub}: {line}");
    }
    assert!(text.contains("top: rotate\n"), "{text}");
    assert!(text.contains("global: --json"), "{text}");
}

/// Runs the binary with stdout a pipe whose reader is already gone.
fn with_closed_stdout(env: &Sandbox, args: &[&str]) -> Output {
    let mut child = env
        .cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // close the reading end before the program writes
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let s = setup();
    let env = &s.env;
    for args in [
        &["completions", "zsh"][..],
        &["completions", "bash"][..],
        &["man"][..],
        &["--help"][..],
        &["backup", "--help"][..],
        &["list", "--dest", p(&s.dest)][..],
        &["--json", "list", "--dest", p(&s.dest)][..],
        &["verify", p(&s.archive)][..],
    ] {
        let o = with_closed_stdout(env, args);
        assert_eq!(code(&o), 0, "{args:?}: {}", err(&o));
        assert!(!err(&o).contains("panicked"), "{args:?}: {}", err(&o));
        assert!(!err(&o).contains("Broken pipe"), "{args:?}: {}", err(&o));
    }
    // and with a real shell pipeline
    let bin = common::bin();
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} completions zsh | head -1; echo \"rc=${{PIPESTATUS:-x}}\"",
            shell_words(&[p(&bin)])
        ))
        .output()
        .unwrap();
    assert!(
        out(&o).starts_with("#compdef secureclaw-backup"),
        "{}",
        out(&o)
    );
    assert!(!err(&o).contains("panicked"), "{}", err(&o));
}

#[test]
fn man_pages_document_every_subcommand_and_option() {
    let env = Sandbox::new();
    let dir = env.p("man1");
    let o = env.output(&["man", "--dir", p(&dir)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains("man -l"), "{}", out(&o));
    let top = fs::read_to_string(dir.join("secureclaw-backup.1")).unwrap();
    assert!(top.starts_with(".ie") || top.contains(".TH"), "{top}");
    for (sub, _, want) in SUB_OPTIONS {
        let page = dir.join(format!("secureclaw-backup-{sub}.1"));
        let roff = fs::read_to_string(&page).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        assert_eq!(
            fs::metadata(&page).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(roff.contains(&want.replace('-', "\\-")), "{sub}: {want}");
        // the global options are on every page
        assert!(roff.contains("\\-\\-json"), "{sub}");
        if common::have("man") {
            let o = Command::new("man")
                .args(["-l", "-P", "cat"])
                .arg(&page)
                .env("MANWIDTH", "200")
                .env("LC_ALL", "C")
                .output()
                .unwrap();
            let text = out(&o);
            if o.status.success() && !text.is_empty() {
                assert!(text.contains(want), "man -l {sub}: {text}");
                assert!(text.contains(&format!("secureclaw-backup-{sub}")), "{text}");
            }
        }
        // the top page lists the subcommand
        assert!(top.contains(sub), "{sub} not on the top page");
    }
    // one page on stdout
    let o = env.output(&["man", "backup"]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).contains("\\-\\-compression\\-level"));
    let o = env.output(&["man", "nope"]);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("one of:"), "{}", err(&o));
}

// ------------------------------------------------------- small wordings

#[test]
fn verify_words_are_plain() {
    let s = setup();
    let env = &s.env;
    let o = env.output(&["verify", p(&s.archive)]);
    assert_eq!(code(&o), 0);
    let e = err(&o);
    assert!(e.contains("sidecar ok)"), "{e}");
    assert!(!e.contains("Ok") && !e.contains("Missing"), "{e}");
    fs::remove_file(format!("{}.sha256", p(&s.archive))).unwrap();
    let o = env.output(&["verify", p(&s.archive)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("sidecar missing)"), "{}", err(&o));
}

#[test]
fn legacy_verify_does_not_claim_a_manifest() {
    if !common::have("tar") {
        eprintln!("skipped: tar is not installed");
        return;
    }
    let s = setup();
    let env = &s.env;
    // the old shell script's plain archive: tar czf of the data directory
    let legacy = env.p("daily_20240101_000000.tar.gz");
    let st = Command::new("tar")
        .arg("czf")
        .arg(&legacy)
        .arg("-C")
        .arg(s.data.parent().unwrap())
        .arg("data")
        .status()
        .unwrap();
    assert!(st.success());
    let o = env.output(&["verify", p(&legacy), "-i", p(&s.key)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("without manifest.json"), "{e}");
    assert!(!e.contains("checked against the manifest"), "{e}");
    assert!(e.contains("no manifest to check them against"), "{e}");
    let o = env.output(&["--json", "verify", p(&legacy), "-i", p(&s.key)]);
    let d = doc(&o);
    assert_eq!(d["verified"][0]["format"], "plaintext", "{d}");
    assert_eq!(d["verified"][0]["legacy"], true, "{d}");
}

/// A backup with a warning (a FIFO is never archived): `-q` shows the
/// warning and nothing else; `--strict` makes it exit 1 and the JSON says
/// `ok: false` as well.
#[test]
fn quiet_backup_shows_its_warnings_and_strict_json_is_not_ok() {
    if !common::have("mkfifo") {
        eprintln!("skipped: mkfifo is not installed");
        return;
    }
    let env = Sandbox::new();
    let data = env.p("data");
    quiet_tree(&data);
    assert!(Command::new("mkfifo")
        .arg(data.join("credentials/pipe"))
        .status()
        .unwrap()
        .success());
    let dest = env.p("dest");
    let r = age_pub("age-example.pub");
    let args = ["--source", p(&data), "--dest", p(&dest), "-r", &r];
    let o = env.output(&[&["-q", "backup"][..], &args[..]].concat());
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(out(&o), "");
    let e = err(&o);
    assert!(
        e.starts_with("warning: ") && e.contains("credentials/pipe"),
        "{e}"
    );
    assert!(e.lines().all(|l| l.starts_with("warning: ")), "{e}");
    let o = env.output(&[&["--json", "backup", "--strict"][..], &args[..]].concat());
    assert_eq!(code(&o), 1, "{}", err(&o));
    let d = doc(&o);
    assert_eq!(d["ok"], false, "{d}");
    assert!(
        d["backup"]["archive"].is_string(),
        "the archive was written: {d}"
    );
}

#[test]
fn schedule_install_writes_the_recipients() {
    let env = Sandbox::new();
    let data = env.p("data");
    quiet_tree(&data);
    let dest = env.p("dest");
    let ssh = fs::read_to_string(example_key("ssh-example.pub"))
        .unwrap()
        .trim()
        .to_owned();
    let age = age_pub("age-example.pub");
    let key = format!("{age}\n{ssh}");
    let env_file = env.p("env/home/.config/secureclaw-backup/backup.env");
    // an earlier run without the variable left the key empty
    let o = env.output(&[
        "schedule",
        "cron",
        "--install",
        "--source",
        p(&data),
        "--dest",
        p(&dest),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(fs::read_to_string(&env_file)
        .unwrap()
        .contains("\nSECURECLAW_BACKUP_KEY=\n"));
    let o = env
        .cmd()
        .env("SECURECLAW_BACKUP_KEY", &key)
        .args([
            "schedule",
            "cron",
            "--install",
            "--source",
            p(&data),
            "--dest",
            p(&dest),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = fs::read_to_string(&env_file).unwrap();
    assert!(!text.contains("\nSECURECLAW_BACKUP_KEY=\n"), "{text}");
    assert_eq!(
        fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // sh reads it back as the recipients, as the cron line does
    let o = Command::new("sh")
        .arg("-c")
        .arg("set -a; . \"$1\"; set +a; printf %s \"$SECURECLAW_BACKUP_KEY\"")
        .arg("sh")
        .arg(&env_file)
        .env_clear()
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("{age},{ssh}"));
    // and the backup works with exactly that value
    let o = env
        .cmd()
        .env("SECURECLAW_BACKUP_KEY", out(&o))
        .args(["-q", "backup", "--source", p(&data), "--dest", p(&dest)])
        .output()
        .unwrap();
    assert_silent(&o, "backup with the env file's key");
}
