//! Injection into what the tool generates or prints, and odd inputs (issue 13):
//!
//! - `schedule`: a path with a newline is refused (exit 2), never a second
//!   crontab entry or unit line; `$`, `%`, spaces, quotes and `weird\%dir`
//!   reach the backup's argv unchanged, checked by running the crontab
//!   command through cron's `%` rule and `sh -c` into an argv-printing script,
//!   and for units by `systemd-analyze verify` plus a parser that follows
//!   systemd's unquoting rules; a symlinked data dir is written resolved.
//! - strings from an archive (manifest warnings, host) are printed with their
//!   control characters escaped (no ESC, BEL, C1 or bidi override reaches the
//!   terminal), in human output and in `--json`.
//! - identity and passphrase files: a FIFO, `/dev/zero` and a file over the
//!   bound are refused at once; a group-readable identity is used with a warning.
//! - `--threads 100000` is clamped, never a panic; an archive given as a pipe
//!   is a usage error; an OpenPGP compression bomb is refused (exit 5).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn json(o: &Out) -> serde_json::Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.text()))
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

/// The characters that must never reach a terminal raw.
fn assert_no_raw_controls(label: &str, s: &str) {
    for (i, c) in s.char_indices() {
        let bad = (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{label}: raw {c:?} at byte {i}:\n{s}");
    }
}

// ------------------------------------------------------------------ schedule

/// Cron's rule for the command field (Debian cron, do_command.c): an
/// unescaped `%` ends the command (the rest is stdin), `\%` is a `%`, any other
/// backslash is kept.
fn cron_command(field: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in field.chars() {
        if escaped {
            if c == '%' {
                out.pop();
            }
            out.push(c);
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            out.push(c);
            continue;
        }
        if c == '%' {
            break;
        }
        out.push(c);
    }
    out
}

/// A script that prints its arguments NUL-separated to the file `$ARGV_OUT`.
fn argv_printer(dir: &Path) -> PathBuf {
    let p = dir.join("argv-printer");
    fs::write(
        &p,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$ARGV_OUT\"\n",
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The crontab entries (non-comment lines) of a `schedule cron --json` run.
fn crontab_entries(o: &Out) -> Vec<String> {
    let j = json(o);
    j["crontab"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn schedule(sb: &Sandbox, scheduler: &str, source: &Path, dest: &Path) -> Out {
    sb.run(&[
        "--json".as_ref(),
        "schedule".as_ref(),
        scheduler.as_ref(),
        "--source".as_ref(),
        source.as_os_str(),
        "--dest".as_ref(),
        dest.as_os_str(),
    ])
}

#[test]
fn schedule_refuses_newlines_and_control_characters() {
    let sb = Sandbox::new();
    let src = sb.p("w/src");
    fs::create_dir_all(&src).unwrap();
    let pwned = sb.p("w/PWNED");
    let evil = format!(
        "{}/d\n* * * * * touch {} #",
        sb.p("w").display(),
        pwned.display()
    );
    for scheduler in ["cron", "systemd"] {
        for dest in [
            PathBuf::from(&evil),
            sb.p("w/a\rb"),
            sb.p("w/a\x1b]0;x\x07b"),
            sb.p("w/\u{202e}b"),
        ] {
            let o = schedule(&sb, scheduler, &src, &dest);
            assert_eq!(o.code, 2, "{scheduler} {dest:?}: {}", o.text());
            assert!(o.stderr.contains("control character"), "{}", o.stderr);
            // the error document names the path, escaped: no unit, no entry
            assert!(!o.stdout.contains("ExecStart") && !o.stdout.contains("crontab"));
            assert!(!o.text().lines().any(|l| l.starts_with("* * * * *")));
            assert!(
                !o.stdout.trim_end().contains('\n'),
                "one line of JSON: {}",
                o.stdout
            );
            assert_no_raw_controls("stderr", &o.stderr);
        }
        // a newline in the data directory too
        let o = schedule(&sb, scheduler, Path::new(&evil), &sb.p("w/dest"));
        assert_eq!(o.code, 2, "{}", o.text());
    }
    assert!(!pwned.exists());
}

#[test]
fn schedule_cron_line_gives_the_backup_its_exact_argv() {
    let sb = Sandbox::new();
    let printer = argv_printer(&sb.p("env/tmp"));
    let src = sb.p("w/src dir");
    fs::create_dir_all(&src).unwrap();
    for name in [
        "weird\\%dir",
        "100%",
        "${HOME} $(touch PWNED) `id`",
        "it's \"quoted\"",
        "a;b|c&d*",
        "back\\slash\\",
        "%%\\\\%",
    ] {
        let dest = sb.p("w").join(name);
        let o = schedule(&sb, "cron", &src, &dest);
        assert_eq!(o.code, 0, "{name}: {}", o.text());
        let entries = crontab_entries(&o);
        assert_eq!(entries.len(), 1, "{name}: {entries:?}");
        // five time fields, then the command
        let line = &entries[0];
        let field = line.splitn(6, ' ').nth(5).unwrap();
        let cmd = cron_command(field);
        let bin = bin().display().to_string();
        assert!(cmd.contains(&bin), "{cmd}");
        let cmd = cmd.replace(&bin, &printer.display().to_string());
        // the env file the line sources
        let home = sb.p("env/home");
        fs::create_dir_all(home.join(".config/secureclaw-backup")).unwrap();
        fs::write(
            home.join(".config/secureclaw-backup/backup.env"),
            "SECURECLAW_BACKUP_KEY=age1x\n",
        )
        .unwrap();
        let argv_out = sb.p("env/tmp/argv");
        let _ = fs::remove_file(&argv_out);
        let st = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("ARGV_OUT", &argv_out)
            .current_dir(sb.p("env/tmp"))
            .status()
            .unwrap();
        assert!(st.success(), "{name}: {cmd}");
        let got = fs::read(&argv_out).unwrap();
        let argv: Vec<String> = got
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect();
        assert_eq!(
            argv,
            vec![
                "-q".to_owned(),
                "backup".into(),
                "--type".into(),
                "daily".into(),
                "--source".into(),
                src.display().to_string(),
                "--dest".into(),
                dest.display().to_string(),
            ],
            "{name}: {line}"
        );
        assert!(!sb.p("env/tmp/PWNED").exists(), "{name}");
    }
}

/// systemd's unquoting of `ExecStart=` (`extract_first_word` with
/// `EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE`) after `$$` → `$` and `%%` → `%`;
/// panics on an unexpanded specifier or variable.
fn systemd_exec_argv(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, ' ' | '\t') => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                let n = chars.next().expect("dangling backslash");
                let v = match n {
                    'n' => '\n',
                    't' => '\t',
                    '\\' | '"' | '\'' | ' ' => n,
                    other => panic!("escape \\{other} in {line}"),
                };
                cur.get_or_insert_with(String::new).push(v);
            }
            (_, '%') => {
                assert_eq!(chars.next(), Some('%'), "unescaped specifier in {line}");
                cur.get_or_insert_with(String::new).push('%');
            }
            (_, '$') => {
                assert_eq!(chars.next(), Some('$'), "unescaped variable in {line}");
                cur.get_or_insert_with(String::new).push('$');
            }
            (_, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in {line}");
    words.extend(cur);
    words
}

/// systemd's reading of `ReadWritePaths=`: quoted words, `%%` → `%`, `$` literal.
fn systemd_paths(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' if !quoted => words.extend(cur.take()),
            '"' => {
                quoted = !quoted;
                cur.get_or_insert_with(String::new);
            }
            '\\' => panic!("backslash in {line}"),
            '%' => {
                assert_eq!(chars.next(), Some('%'), "unescaped specifier in {line}");
                cur.get_or_insert_with(String::new).push('%');
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes in {line}");
    words.extend(cur);
    words
}

fn have_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn schedule_systemd_units_carry_odd_paths_exactly() {
    let sb = Sandbox::new();
    let src = sb.p("w/src");
    fs::create_dir_all(&src).unwrap();
    for name in ["${HOME}", "$USER and %h", "100% sure", "a;b", "sp  ace"] {
        let dest = sb.p("w").join(name);
        let o = schedule(&sb, "systemd", &src, &dest);
        assert_eq!(o.code, 0, "{name}: {}", o.text());
        let j = json(&o);
        let units = j["units"].as_object().unwrap();
        let (svc_name, svc) = units.iter().find(|(k, _)| k.ends_with(".service")).unwrap();
        let svc = svc.as_str().unwrap();
        let exec: Vec<&str> = svc
            .lines()
            .filter_map(|l| l.strip_prefix("ExecStart="))
            .collect();
        assert_eq!(exec.len(), 1, "{svc}");
        let argv = systemd_exec_argv(exec[0]);
        assert_eq!(
            argv[1..],
            [
                "-q",
                "backup",
                "--type",
                "daily",
                "--source",
                &src.display().to_string(),
                "--dest",
                &dest.display().to_string()
            ],
            "{name}: {}",
            exec[0]
        );
        let rw: Vec<&str> = svc
            .lines()
            .filter_map(|l| l.strip_prefix("ReadWritePaths="))
            .collect();
        assert_eq!(
            systemd_paths(rw[0]),
            vec![dest.display().to_string(), src.display().to_string()]
        );
        if have_systemd_analyze() {
            let dir = sb.p("env/tmp").join(format!("units-{}", name.len()));
            fs::create_dir_all(&dir).unwrap();
            fs::create_dir_all(&dest).unwrap();
            for (n, text) in units {
                fs::write(dir.join(n), text.as_str().unwrap()).unwrap();
            }
            let out = Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(dir.join(svc_name))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let ours: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains(svc_name.as_str()))
                .collect();
            assert!(ours.is_empty(), "{name}: systemd-analyze: {stderr}\n{svc}");
        } else {
            eprintln!("systemd-analyze is not installed: checked with the parser only");
        }
    }
    // what units cannot carry is refused, not mangled
    for name in ["back\\slash", "quo\"te", "it's"] {
        let o = schedule(&sb, "systemd", &src, &sb.p("w").join(name));
        assert_eq!(o.code, 2, "{name}: {}", o.text());
        assert!(o.stderr.contains("schedule cron"), "{}", o.stderr);
    }
}

#[test]
fn schedule_resolves_a_symlinked_data_dir() {
    let sb = Sandbox::new();
    let real = sb.p("w/real-data");
    fs::create_dir_all(&real).unwrap();
    let link = sb.p("w/data-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let real = fs::canonicalize(&real).unwrap();
    for scheduler in ["cron", "systemd"] {
        let o = schedule(&sb, scheduler, &link, &sb.p("w/dest"));
        assert_eq!(o.code, 0, "{}", o.text());
        let text = o.stdout.clone();
        assert!(text.contains(&real.display().to_string()), "{text}");
        assert!(!text.contains("data-link"), "{text}");
    }
}

// ------------------------------------------------------------------ printing

/// A forged archive whose manifest carries terminal escapes: warnings and
/// host. Printed escaped by verify and restore, human and --json.
#[test]
fn archive_strings_are_printed_escaped() {
    let sb = Sandbox::new();
    populate_target(&sb.target());
    let evil =
        "\x1b[2J\x1b]0;owned\x07\x1b[32mrestore verified OK\x1b[0m\u{9b}31m\u{202e}txt.exe\u{7f}";
    let mut t = Tar::new();
    t.top();
    t.file("config.txt", 0o600, b"x");
    // a top-level name with escapes and a newline: listed by restore as "added"
    t.file("\x1b]0;x\x07evil\nrestore verified OK", 0o600, b"y");
    let mut m: serde_json::Value = serde_json::from_slice(&t.manifest_json()).unwrap();
    m["warnings"] =
        serde_json::json!([{"path": format!("a\n{evil}"), "kind": evil, "detail": evil}]);
    m["host"] = serde_json::json!(evil);
    let mjson = serde_json::to_vec(&m).unwrap();
    t.raw(
        format!("{TOP}/manifest.json").as_bytes(),
        b'0',
        0o600,
        b"",
        &mjson,
    );
    t.buf.extend(std::iter::repeat_n(0u8, 1024));
    let archive = write_archive(&sb.p("arch"), TOP, Backend::Age, &t.buf);
    let id = Backend::Age.identity();
    let runs: Vec<(&str, Vec<&std::ffi::OsStr>)> = vec![
        (
            "verify -i",
            vec![
                "verify".as_ref(),
                "-i".as_ref(),
                id.as_os_str(),
                archive.as_os_str(),
            ],
        ),
        (
            "verify -i --json",
            vec![
                "--json".as_ref(),
                "verify".as_ref(),
                "-i".as_ref(),
                id.as_os_str(),
                archive.as_os_str(),
            ],
        ),
        (
            "list",
            vec![
                "list".as_ref(),
                "--dest".as_ref(),
                sb.p("arch").into_os_string().leak(),
            ],
        ),
        (
            "restore --dry-run",
            vec![
                "restore".as_ref(),
                archive.as_os_str(),
                "-i".as_ref(),
                id.as_os_str(),
                "--target".as_ref(),
                sb.target().into_os_string().leak(),
                "--dry-run".as_ref(),
            ],
        ),
    ];
    let mut saw_warning = false;
    for (label, args) in runs {
        let o = sb.run(&args);
        assert_no_raw_controls(&format!("{label} stdout"), &o.stdout);
        assert_no_raw_controls(&format!("{label} stderr"), &o.stderr);
        if o.text().contains("\\x1b[32mrestore verified OK") {
            saw_warning = true;
            // the newline in the path is escaped: no line starts with the fake text
            assert!(
                !o.text().lines().any(|l| l.starts_with("\\x1b[2J")),
                "{label}: {}",
                o.text()
            );
        }
        if label.ends_with("--json") {
            assert_eq!(o.code, 0, "{}", o.text());
            // and it still parses, with the strings intact
            let j = json(&o);
            assert!(j.to_string().contains("restore verified OK"));
            assert!(
                o.stdout.contains("\\u001b") && o.stdout.contains("\\u202e"),
                "{}",
                o.stdout
            );
        }
    }
    assert!(saw_warning, "the manifest warning was shown somewhere");
    let o = sb.run(&[
        "restore".as_ref(),
        archive.as_os_str(),
        "-i".as_ref(),
        id.as_os_str(),
        "--target".as_ref(),
        sb.target().as_os_str(),
        "--dry-run".as_ref(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    // escaped (as \x1b or \u{1b}: names may come pre-escaped), on one line
    assert!(
        o.stdout.contains("evil\\nrestore verified OK"),
        "{}",
        o.stdout
    );
    assert_no_raw_controls("restore --dry-run stdout", &o.stdout);
    assert!(
        !o.text()
            .lines()
            .any(|l| l.starts_with("restore verified OK")),
        "{}",
        o.text()
    );
}

// ------------------------------------------------------------------ identity files

fn verify_with(sb: &Sandbox, args: &[&std::ffi::OsStr], timeout: Duration) -> (Out, Duration) {
    let start = Instant::now();
    let mut child = sb
        .cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "still running after {timeout:?} (killed): {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        start.elapsed(),
    )
}

fn a_real_archive(sb: &Sandbox) -> PathBuf {
    let tar = benign_tar(&[("config.txt", b"hello")], true);
    write_archive(&sb.p("arch"), TOP, Backend::Age, &tar)
}

#[test]
fn identity_files_that_are_not_regular_or_too_big_are_refused() {
    let sb = Sandbox::new();
    let archive = a_real_archive(&sb);
    let fifo = sb.p("env/tmp/id.fifo");
    mkfifo(&fifo);
    let big = sb.p("env/tmp/big-id");
    {
        let f = fs::File::create(&big).unwrap();
        f.set_len(5 * 1024 * 1024).unwrap();
    }
    for (id, expect) in [
        (fifo.clone(), "named pipe"),
        (PathBuf::from("/dev/zero"), "device"),
        (big.clone(), "larger than 4 MiB"),
    ] {
        let (o, took) = verify_with(
            &sb,
            &[
                "verify".as_ref(),
                "-i".as_ref(),
                id.as_os_str(),
                archive.as_os_str(),
            ],
            Duration::from_secs(20),
        );
        assert_eq!(o.code, 2, "{id:?}: {}", o.text());
        assert!(o.stderr.contains(expect), "{id:?}: {}", o.stderr);
        assert!(took < Duration::from_secs(10), "{id:?} took {took:?}");
    }
    // the same for --passphrase-file (an encrypted identity asks for it)
    let enc_id = sb.p("env/tmp/enc-id.age");
    {
        let mut r = age::scrypt::Recipient::new(age::secrecy::SecretString::from("pw".to_owned()));
        r.set_work_factor(10);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        std::io::Write::write_all(&mut w, &fs::read(example_key("age-example.key")).unwrap())
            .unwrap();
        w.finish().unwrap();
        write_file(&enc_id, &out, 0o600);
    }
    let pfifo = sb.p("env/tmp/pass.fifo");
    mkfifo(&pfifo);
    for (pf, expect) in [
        (pfifo, "named pipe"),
        (PathBuf::from("/dev/zero"), "device"),
    ] {
        let (o, took) = verify_with(
            &sb,
            &[
                "verify".as_ref(),
                "-i".as_ref(),
                enc_id.as_os_str(),
                "--passphrase-file".as_ref(),
                pf.as_os_str(),
                archive.as_os_str(),
            ],
            Duration::from_secs(20),
        );
        assert_eq!(o.code, 2, "{pf:?}: {}", o.text());
        assert!(o.stderr.contains(expect), "{pf:?}: {}", o.stderr);
        assert!(took < Duration::from_secs(10));
    }
}

#[test]
fn a_group_readable_identity_warns() {
    let sb = Sandbox::new();
    let archive = a_real_archive(&sb);
    let id = sb.p("env/tmp/id-0644");
    write_file(
        &id,
        &fs::read(example_key("age-example.key")).unwrap(),
        0o644,
    );
    let o = sb.run(&[
        "verify".as_ref(),
        "-i".as_ref(),
        id.as_os_str(),
        archive.as_os_str(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stderr.contains("mode 0644") && o.stderr.contains("chmod 600"),
        "{}",
        o.stderr
    );
    let id600 = sb.p("env/tmp/id-0600");
    write_file(
        &id600,
        &fs::read(example_key("age-example.key")).unwrap(),
        0o600,
    );
    let o = sb.run(&[
        "verify".as_ref(),
        "-i".as_ref(),
        id600.as_os_str(),
        archive.as_os_str(),
    ]);
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(!o.stderr.contains("chmod 600"), "{}", o.stderr);
}

#[test]
fn an_archive_given_as_a_pipe_is_a_usage_error() {
    let sb = Sandbox::new();
    let fifo = sb.p("env/tmp/archive.fifo");
    mkfifo(&fifo);
    for args in [
        vec!["verify".as_ref(), fifo.as_os_str()],
        vec![
            "verify".as_ref(),
            "-i".as_ref(),
            example_key("age-example.key").into_os_string().leak(),
            fifo.as_os_str(),
        ],
        vec![
            "restore".as_ref(),
            fifo.as_os_str(),
            "-i".as_ref(),
            example_key("age-example.key").into_os_string().leak(),
            "--target".as_ref(),
            sb.target().into_os_string().leak(),
            "--no-snapshot".as_ref(),
        ],
    ] {
        let (o, _) = verify_with(&sb, &args, Duration::from_secs(20));
        assert_eq!(o.code, 2, "{}", o.text());
        assert!(
            o.stderr.contains("ARCHIVE must be a regular file")
                && o.stderr.contains("save the stream to a file first"),
            "{}",
            o.stderr
        );
    }
}

#[test]
fn huge_thread_counts_are_clamped() {
    let sb = Sandbox::new();
    let src = sb.p("w/src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("secureclaw.json"), b"{}", 0o600);
    for n in ["100000", "10000"] {
        let o = sb.run(&[
            "backup".as_ref(),
            "--source".as_ref(),
            src.as_os_str(),
            "--dest".as_ref(),
            sb.p("arch").as_os_str(),
            "-r".as_ref(),
            age_recipient().as_ref(),
            "--threads".as_ref(),
            n.as_ref(),
            "--no-prune".as_ref(),
        ]);
        assert_eq!(o.code, 0, "--threads {n}: {}", o.text());
        assert!(
            o.stderr.contains(&format!("--threads {n}: using")),
            "{}",
            o.stderr
        );
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
}

// ------------------------------------------------------------------ OpenPGP bomb

/// A gzip stream of `tar` followed by endless zeros: stored deflate blocks
/// (the tar reader reads zeros after the end of the tar as padding, to the end).
fn gzip_then_zeros(tar: &[u8], blocks: usize) -> Vec<u8> {
    let mut g = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut stored = |data: &[u8]| {
        let n = data.len() as u16;
        g.push(0x00);
        g.extend_from_slice(&n.to_le_bytes());
        g.extend_from_slice(&(!n).to_le_bytes());
        g.extend_from_slice(data);
    };
    for chunk in tar.chunks(65535) {
        stored(chunk);
    }
    let zeros = vec![0u8; 65535];
    for _ in 0..blocks {
        stored(&zeros);
    }
    g
}

#[test]
fn openpgp_compression_bomb_is_refused() {
    use openpgp::parse::Parse;
    use openpgp::serialize::stream::{Compressor, Encryptor, LiteralWriter, Message};
    use openpgp::types::CompressionAlgorithm;
    use sequoia_openpgp as openpgp;
    use std::io::Write;

    let sb = Sandbox::new();
    let cert = openpgp::Cert::from_file(example_key("openpgp-example.pub.asc")).unwrap();
    let p = openpgp::policy::StandardPolicy::new();
    let recipients = cert
        .keys()
        .with_policy(&p, None)
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption();
    let tar = benign_tar(&[("secureclaw.json", b"{}")], true);
    let plain = gzip_then_zeros(&tar, 1024); // 64 MiB
    let mut sink = Vec::new();
    {
        let m = Message::new(&mut sink);
        let m = Encryptor::for_recipients(m, recipients).build().unwrap();
        // nested compression: each layer alone is within deflate's ×1,032
        let m = Compressor::new(m)
            .algo(CompressionAlgorithm::Zip)
            .build()
            .unwrap();
        let m = Compressor::new(m)
            .algo(CompressionAlgorithm::Zip)
            .build()
            .unwrap();
        let mut w = LiteralWriter::new(m).build().unwrap();
        w.write_all(&plain).unwrap();
        w.finalize().unwrap();
    }
    let ratio = plain.len() / sink.len();
    assert!(ratio > 10_000, "the bomb expands only ×{ratio}");
    let archive = sb.p("arch").join(format!("{TOP}.tar.gz.gpg"));
    write_file(&archive, &sink, 0o600);
    let id = Backend::Pgp.identity();
    let (o, _) = verify_with(
        &sb,
        &[
            "verify".as_ref(),
            "-i".as_ref(),
            id.as_os_str(),
            archive.as_os_str(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        o.code,
        5,
        "{} bytes → {} bytes: {}",
        sink.len(),
        plain.len(),
        o.text()
    );
    assert!(o.stderr.contains("compression bomb"), "{}", o.stderr);
    // an ordinary gpg-style compressed archive still verifies
    let gz = gzip(&tar);
    let mut sink = Vec::new();
    {
        let recipients = cert
            .keys()
            .with_policy(&p, None)
            .supported()
            .alive()
            .revoked(false)
            .for_transport_encryption();
        let m = Message::new(&mut sink);
        let m = Encryptor::for_recipients(m, recipients).build().unwrap();
        let m = Compressor::new(m)
            .algo(CompressionAlgorithm::Zlib)
            .build()
            .unwrap();
        let mut w = LiteralWriter::new(m).build().unwrap();
        w.write_all(&gz).unwrap();
        w.finalize().unwrap();
    }
    write_file(&archive, &sink, 0o600);
    let (o, _) = verify_with(
        &sb,
        &[
            "verify".as_ref(),
            "-i".as_ref(),
            id.as_os_str(),
            archive.as_os_str(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.code, 0, "{}", o.text());
}

#[test]
fn a_keyring_that_is_a_pipe_is_refused_at_once() {
    let sb = Sandbox::new();
    let src = sb.p("w/src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("secureclaw.json"), b"{}", 0o600);
    let fifo = sb.p("env/tmp/keyring.fifo");
    mkfifo(&fifo);
    let keyid = fs::read_to_string(example_key("openpgp-example.keyid")).unwrap();
    let (o, took) = verify_with(
        &sb,
        &[
            "backup".as_ref(),
            "--source".as_ref(),
            src.as_os_str(),
            "--dest".as_ref(),
            sb.p("arch").as_os_str(),
            "-r".as_ref(),
            keyid.trim().as_ref(),
            "--keyring".as_ref(),
            fifo.as_os_str(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(o.code, 2, "{}", o.text());
    assert!(
        o.stderr.contains("keyring") && o.stderr.contains("named pipe"),
        "{}",
        o.stderr
    );
    assert!(took < Duration::from_secs(10));
}
