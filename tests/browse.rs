//! Looking inside archives and taking part of one back, through the real
//! binary (README "Looking inside an archive"): `ls` (human, JSON, a path
//! filter, without a key), `diff` (archive against archive, against a live
//! directory, with excluded files), `restore --include` (a file, a glob,
//! into a fresh target, into an existing one whose rest is kept, hostile
//! patterns refused), the per-file dry run, and `latest`, `latest:TYPE` and
//! bare names wherever an archive is named.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{archives, example_key, s as p, write_file, Out, Sandbox};

/// 2026-11-24 02:00:00 UTC, a Tuesday.
const TUESDAY: i64 = 1_795_485_600;

fn set_mtime(path: &Path, t: i64) {
    let st = Command::new("touch")
        .args(["-h", "-d", &format!("@{t}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Every entry below `root` (deepest first) and `root` get mtime `t`.
fn set_mtimes(root: &Path, t: i64) {
    let mut all = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            }
            all.push(e.path());
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in all {
        set_mtime(&p, t);
    }
    set_mtime(root, t);
}

/// The data directory: a config, two credentials, a session, a
/// weekly-only workspace file, a lock file; dirs 0700, files 0600.
fn data_tree(root: &Path) {
    write_file(&root.join("secureclaw.json"), b"{ port: 1 }\n", 0o600);
    write_file(&root.join("credentials/oauth.json"), b"{\"t\":1}", 0o600);
    write_file(&root.join("credentials/slack.json"), b"{\"s\":22}", 0o600);
    write_file(
        &root.join("agents/main/sessions/s1.jsonl"),
        b"{\"role\":\"user\"}\n",
        0o600,
    );
    write_file(&root.join("workspace/notes.md"), b"# notes\n", 0o600);
    fs::set_permissions(root, fs::Permissions::from_mode(0o700)).unwrap();
    set_mtimes(root, TUESDAY);
}

struct Env {
    env: Sandbox,
    data: PathBuf,
    dest: PathBuf,
    key: PathBuf,
}

impl Env {
    fn new() -> Env {
        let env = Sandbox::new();
        let data = env.p("data");
        data_tree(&data);
        let key = env.p("age.key");
        fs::copy(example_key("age-example.key"), &key).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let dest = env.p("dest");
        Env {
            env,
            data,
            dest,
            key,
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut c = self.env.cmd();
        c.env("SECURECLAW_BACKUP_KEY", common::age_recipient());
        let o = common::run_cmd(c.args(args));
        eprintln!(
            "$ secureclaw-backup {}\n{}{}exit {}",
            args.join(" "),
            o.stdout,
            o.stderr,
            o.code
        );
        o
    }

    /// A backup of the data directory; returns the new archive.
    fn backup(&self, btype: &str) -> PathBuf {
        let before = archives(&self.dest);
        let o = self.run(&[
            "-q",
            "backup",
            "--no-prune",
            "--type",
            btype,
            "--source",
            p(&self.data),
            "--dest",
            p(&self.dest),
        ]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        archives(&self.dest)
            .into_iter()
            .find(|a| !before.contains(a))
            .expect("a new archive")
    }

    fn k(&self) -> &str {
        p(&self.key)
    }

    /// `restore ARCHIVE --include PATTERN…` into the empty directory
    /// `fresh` (succeeding); returns it and the files it got.
    fn restore_fresh(&self, archive: &Path, include: &[&str]) -> (PathBuf, Vec<String>) {
        let fresh = self.env.p("fresh");
        let mut args = vec![
            "restore",
            p(archive),
            "-i",
            self.k(),
            "--target",
            p(&fresh),
            "--no-snapshot",
        ];
        for i in include {
            args.extend(["--include", i]);
        }
        let o = self.run(&args);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let files = common::walk(&fresh)
            .iter()
            .filter(|x| x.meta.is_file())
            .map(|x| x.name())
            .collect();
        (fresh, files)
    }
}

fn name(a: &Path) -> &str {
    a.file_name().unwrap().to_str().unwrap()
}

const LISTING: &str = "\
drwx------  0 2026-11-24 02:00:00 agents/
drwx------  0 2026-11-24 02:00:00 agents/main/
drwx------  0 2026-11-24 02:00:00 agents/main/sessions/
-rw------- 16 2026-11-24 02:00:00 agents/main/sessions/s1.jsonl
drwx------  0 2026-11-24 02:00:00 credentials/
-rw-------  7 2026-11-24 02:00:00 credentials/oauth.json
-rw-------  8 2026-11-24 02:00:00 credentials/slack.json
-rw------- 12 2026-11-24 02:00:00 secureclaw.json
";

#[test]
fn ls_lists_the_manifest_filters_paths_and_says_what_it_needs() {
    let e = Env::new();
    let a = e.backup("daily");
    let o = e.run(&["ls", p(&a), "-i", e.k()]);
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout, LISTING);
    assert!(
        o.stderr
            .contains("(age): 4 files, 4 directories, 0 symlinks"),
        "{}",
        o.stderr
    );

    // a path filter: the directory and what lies below it; a glob
    let o = e.run(&["ls", p(&a), "-i", e.k(), "credentials"]);
    assert_eq!(
        o.stdout,
        "\
drwx------ 0 2026-11-24 02:00:00 credentials/
-rw------- 7 2026-11-24 02:00:00 credentials/oauth.json
-rw------- 8 2026-11-24 02:00:00 credentials/slack.json
"
    );
    let o = e.run(&["ls", p(&a), "-i", e.k(), "*.jsonl"]);
    assert_eq!(
        o.stdout,
        "-rw------- 16 2026-11-24 02:00:00 agents/main/sessions/s1.jsonl\n"
    );
    let o = e.run(&["ls", p(&a), "-i", e.k(), "nothing/here"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("nothing in"), "{}", o.stderr);
    assert_eq!(o.stdout, "");

    // JSON: one document, the manifest's fields per entry
    let o = e.run(&["--json", "ls", p(&a), "-i", e.k(), "credentials/oauth.json"]);
    assert_eq!(o.code, 0);
    let d = o.json();
    assert_eq!(d["ok"], true);
    assert_eq!(d["ls"]["format"], "age");
    assert_eq!(d["ls"]["backup_type"], "daily");
    assert_eq!(d["ls"]["files"], 1);
    let entries = d["ls"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["path"], "credentials/oauth.json");
    assert_eq!(entries[0]["type"], "file");
    assert_eq!(entries[0]["size"], 7);
    assert_eq!(entries[0]["mode"], "0600");
    assert_eq!(entries[0]["mtime"], TUESDAY);
    assert_eq!(entries[0]["sha256"].as_str().unwrap().len(), 64);

    // without an identity: what is needed, exit 4, nothing on stdout
    let o = e.run(&["ls", p(&a)]);
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr
            .contains("reading its manifest needs a key that opens it"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("age archive (encrypted to age1"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("pass -i FILE"), "{}", o.stderr);
    let o = e.run(&["--json", "ls", p(&a)]);
    assert_eq!(o.code, 4);
    assert_eq!(o.json()["error"]["kind"], "key");
}

#[test]
fn diff_between_archives_and_against_the_live_directory() {
    let e = Env::new();
    let old = e.backup("daily");
    // since then: one file changed, one removed, one added, one made
    // executable; a lock file, the weekly-only workspace and an excluded
    // file also appear, and are no difference for a daily backup
    write_file(&e.data.join("secureclaw.json"), b"{ port: 2 }\n", 0o600);
    fs::remove_file(e.data.join("credentials/slack.json")).unwrap();
    write_file(&e.data.join("credentials/github.json"), b"{}", 0o600);
    fs::set_permissions(
        e.data.join("agents/main/sessions/s1.jsonl"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    write_file(
        &e.data.join("agents/main/sessions/s1.jsonl.lock"),
        b"1",
        0o600,
    );
    write_file(&e.data.join("workspace/more.md"), b"more", 0o600);
    write_file(&e.data.join("scratch.tmp"), b"tmp", 0o600);

    const DIFF: &str = "\
+ credentials/github.json
- credentials/slack.json
~ agents/main/sessions/s1.jsonl (mode)
~ secureclaw.json (content)
";
    // archive against the live directory, with the backup's --exclude
    let o = e.run(&[
        "diff",
        p(&old),
        p(&e.data),
        "-i",
        e.k(),
        "--exclude",
        "*.tmp",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, DIFF);
    assert!(
        o.stderr
            .contains("1 added, 1 removed, 2 changed, 1 the same"),
        "{}",
        o.stderr
    );
    // without the exclude, the excluded file is a difference
    let o = e.run(&["diff", p(&old), p(&e.data), "-i", e.k()]);
    assert!(o.stdout.contains("+ scratch.tmp\n"), "{}", o.stdout);
    // as a weekly would see it: the workspace file is new
    let o = e.run(&[
        "diff",
        p(&old),
        p(&e.data),
        "-i",
        e.k(),
        "--type",
        "weekly",
        "--exclude",
        "*.tmp",
    ]);
    assert!(o.stdout.contains("+ workspace/more.md\n"), "{}", o.stdout);
    assert!(o.stdout.contains("+ workspace/notes.md\n"), "{}", o.stdout);

    // archive against archive: the same differences (scratch.tmp left out)
    fs::remove_file(e.data.join("scratch.tmp")).unwrap();
    let new = e.backup("daily");
    let o = e.run(&["diff", p(&old), p(&new), "-i", e.k()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, DIFF);
    // no differences: nothing on stdout, still exit 0
    let o = e.run(&["diff", p(&new), p(&new), "-i", e.k()]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""));

    let o = e.run(&["--json", "diff", p(&old), p(&new), "-i", e.k()]);
    assert_eq!(o.code, 0);
    let d = o.json();
    assert_eq!(d["ok"], true);
    assert_eq!(
        d["diff"]["added"],
        serde_json::json!(["credentials/github.json"])
    );
    assert_eq!(
        d["diff"]["removed"],
        serde_json::json!(["credentials/slack.json"])
    );
    assert_eq!(
        d["diff"]["changed"],
        serde_json::json!([
            {"path": "agents/main/sessions/s1.jsonl", "what": ["mode"]},
            {"path": "secureclaw.json", "what": ["content"]}
        ])
    );
    assert_eq!(d["diff"]["counts"]["changed"], 2);

    // an archive side needs its key
    let o = e.run(&["diff", p(&old), p(&e.data)]);
    assert_eq!(o.code, 4, "{}", o.stderr);
}

#[test]
fn restore_include_takes_back_a_file_or_a_glob_and_keeps_the_rest() {
    let e = Env::new();
    let a = e.backup("daily");
    // the live tree moves on
    write_file(&e.data.join("credentials/oauth.json"), b"{\"t\":2}", 0o600);
    write_file(&e.data.join("credentials/slack.json"), b"{\"s\":99}", 0o600);
    write_file(&e.data.join("secureclaw.json"), b"{ port: 3 }\n", 0o600);
    write_file(&e.data.join("credentials/new.json"), b"new", 0o600);
    let before = common::snapshot(&e.data);

    // one file
    let o = e.run(&[
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&e.data),
        "--dest",
        p(&e.dest),
        "--include",
        "credentials/oauth.json",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(&format!(
            "restored {} (age) into {}: 1 of 4 files (--include credentials/oauth.json), 43 B\n  \
             from the archive: credentials/oauth.json\n  \
             kept as is:       agents, credentials/new.json, credentials/slack.json, secureclaw.json, workspace\n  \
             files: 0 added, 1 changed, 0 removed, 0 unchanged, 5 kept\n    \
             ~ credentials/oauth.json\n",
            p(&a),
            p(&e.data)
        )),
        "{}",
        o.stdout
    );
    assert_eq!(
        fs::read(e.data.join("credentials/oauth.json")).unwrap(),
        b"{\"t\":1}"
    );
    let mode = fs::metadata(e.data.join("credentials/oauth.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // everything else exactly as it was (content, mode)
    let after = common::snapshot(&e.data);
    let changed = common::diff(&before, &after);
    for line in changed.lines() {
        assert!(line.contains("credentials/oauth.json"), "{changed}");
    }
    // the previous tree was saved first
    assert!(archives(&e.dest)
        .iter()
        .any(|a| name(a).starts_with("pre-restore_")));

    // a glob: both credentials back, the file the archive lacks kept
    let o = e.run(&[
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&e.data),
        "--dest",
        p(&e.dest),
        "--include",
        "credentials/*.json",
        "--include",
        "no-such-thing",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("--include \"no-such-thing\" matches nothing in the archive"),
        "{}",
        o.stderr
    );
    assert_eq!(
        fs::read(e.data.join("credentials/slack.json")).unwrap(),
        b"{\"s\":22}"
    );
    assert_eq!(
        fs::read(e.data.join("credentials/new.json")).unwrap(),
        b"new"
    );
    assert_eq!(
        fs::read(e.data.join("secureclaw.json")).unwrap(),
        b"{ port: 3 }\n"
    );
    assert!(e.data.join("workspace/notes.md").is_file());

    // a directory is replaced as a whole: what the archive lacks below it goes
    let o = e.run(&[
        "--json",
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&e.data),
        "--dest",
        p(&e.dest),
        "--include",
        "credentials",
        "--dry-run",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let d = o.json();
    assert_eq!(d["restore"]["include"], serde_json::json!(["credentials"]));
    assert_eq!(
        d["restore"]["changes"]["removed"],
        serde_json::json!(["credentials/new.json"])
    );
    assert_eq!(d["restore"]["changes"]["counts"]["unchanged"], 2);

    // into a fresh directory: an extract of the selection only
    let (_, files) = e.restore_fresh(&a, &["agents/*/sessions/*.jsonl"]);
    assert_eq!(files, ["agents/main/sessions/s1.jsonl"]);

    // nothing matches: exit 1, the target untouched
    let before = common::snapshot(&e.data);
    let o = e.run(&[
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&e.data),
        "--no-snapshot",
        "--include",
        "nothing/*",
    ]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("nothing in"), "{}", o.stderr);
    assert_eq!(common::diff(&before, &common::snapshot(&e.data)), "");
}

#[test]
fn hostile_include_patterns_are_usage_errors() {
    let e = Env::new();
    let a = e.backup("daily");
    let before = common::snapshot(&e.data);
    for bad in [
        "../x",
        "/etc/passwd",
        "credentials/../../x",
        "./secureclaw.json",
        "",
    ] {
        let o = e.run(&[
            "restore",
            p(&a),
            "-i",
            e.k(),
            "--target",
            p(&e.data),
            "--no-snapshot",
            "--include",
            bad,
        ]);
        assert_eq!(o.code, 2, "{bad:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("is not a path inside the data directory"),
            "{bad:?}: {}",
            o.stderr
        );
        let o = e.run(&["ls", p(&a), "-i", e.k(), bad]);
        assert_eq!(o.code, 2, "ls {bad:?}: {}", o.stderr);
    }
    assert_eq!(common::diff(&before, &common::snapshot(&e.data)), "");
    assert!(!e.env.p("x").exists());
}

#[test]
fn dry_run_reports_per_file_and_nothing_on_the_tree_it_produced() {
    let e = Env::new();
    let a = e.backup("daily");
    let target = e.env.target();
    let o = e.run(&[
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&target),
        "--no-snapshot",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // onto the tree it just produced: no change at all
    let o = e.run(&[
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&target),
        "--dry-run",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("  files: 0 added, 0 changed, 0 removed, 4 unchanged, 0 kept\n"),
        "{}",
        o.stdout
    );
    let o = e.run(&[
        "--json",
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&target),
        "--dry-run",
    ]);
    let c = &o.json()["restore"]["changes"];
    assert_eq!(
        c["counts"],
        serde_json::json!({"added": 0, "changed": 0, "removed": 0, "unchanged": 4, "kept": 0})
    );

    // the target moves on: each kind of difference, per file
    write_file(&target.join("secureclaw.json"), b"{ port: 9 }\n", 0o600);
    fs::remove_file(target.join("credentials/slack.json")).unwrap();
    write_file(&target.join("credentials/extra.json"), b"x", 0o600);
    write_file(&target.join("workspace/w.md"), b"w", 0o600);
    let before = common::snapshot(&target);
    let o = e.run(&[
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&target),
        "--dry-run",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(
            "  from the archive: agents/main/sessions, credentials, secureclaw.json\n  kept as is:       workspace\n  files: 1 added, 1 changed, 1 removed, 2 unchanged, 1 kept\n    + credentials/slack.json\n    ~ secureclaw.json\n    - credentials/extra.json\n"
        ),
        "{}",
        o.stdout
    );
    let o = e.run(&[
        "--json",
        "restore",
        p(&a),
        "-i",
        e.k(),
        "--target",
        p(&target),
        "--dry-run",
    ]);
    let c = o.json()["restore"]["changes"].clone();
    assert_eq!(c["added"], serde_json::json!(["credentials/slack.json"]));
    assert_eq!(c["changed"], serde_json::json!(["secureclaw.json"]));
    assert_eq!(c["removed"], serde_json::json!(["credentials/extra.json"]));
    assert_eq!(c["kept"], serde_json::json!(["workspace/w.md"]));
    // a dry run writes nothing
    assert_eq!(common::diff(&before, &common::snapshot(&target)), "");
}

#[test]
fn latest_latest_type_and_bare_names_wherever_an_archive_is_named() {
    let e = Env::new();
    let weekly = e.backup("weekly");
    write_file(&e.data.join("secureclaw.json"), b"{ port: 7 }\n", 0o600);
    let daily = e.backup("daily");
    let dest = p(&e.dest);

    // ls: latest is the daily, latest:weekly the weekly, a bare name works
    let label = |o: &Out| o.json()["ls"]["archive"].as_str().unwrap().to_owned();
    let o = e.run(&["--json", "ls", "latest", "--dest", dest, "-i", e.k()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(label(&o), p(&daily));
    let o = e.run(&["--json", "ls", "latest:weekly", "--dest", dest, "-i", e.k()]);
    assert_eq!(label(&o), p(&weekly));
    let o = e.run(&["--json", "ls", name(&weekly), "--dest", dest, "-i", e.k()]);
    assert_eq!(label(&o), p(&weekly));
    // $BACKUP_ROOT is the default destination
    let mut c = e.env.cmd();
    c.env("BACKUP_ROOT", &e.dest)
        .args(["--json", "ls", "latest:daily", "-i", e.k()]);
    let o = common::run_cmd(&mut c);
    assert_eq!(label(&o), p(&daily), "{}", o.stderr);

    // verify, diff, drill take them too
    let o = e.run(&[
        "--json",
        "verify",
        "latest",
        "latest:weekly",
        "--dest",
        dest,
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = o.json();
    assert_eq!(v["verified"][0]["archive"], p(&daily));
    assert_eq!(v["verified"][1]["archive"], p(&weekly));
    let o = e.run(&[
        "diff",
        "latest:weekly",
        "latest",
        "--dest",
        dest,
        "-i",
        e.k(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "~ secureclaw.json (content)\n");
    let o = e.run(&[
        "--json",
        "drill",
        "--archive",
        "latest:weekly",
        "--dest",
        dest,
        "-i",
        e.k(),
        "--scratch",
        p(&e.env.p("env/tmp")),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()["drill"]["archive"], p(&weekly));

    // restore latest:weekly; the pre-restore snapshot it makes is never "latest"
    let target = e.env.target();
    let o = e.run(&[
        "--json",
        "restore",
        "latest:weekly",
        "--dest",
        dest,
        "-i",
        e.k(),
        "--target",
        p(&target),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()["restore"]["archive"], p(&weekly));
    assert!(target.join("workspace/notes.md").is_file());
    // again, over the tree: this one saves a pre-restore snapshot first
    let o = e.run(&[
        "restore",
        "latest:weekly",
        "--dest",
        dest,
        "-i",
        e.k(),
        "--target",
        p(&target),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(archives(&e.dest)
        .iter()
        .any(|a| name(a).starts_with("pre-restore_")));
    let o = e.run(&[
        "--json",
        "restore",
        "latest",
        "--dest",
        dest,
        "-i",
        e.k(),
        "--target",
        p(&target),
        "--dry-run",
    ]);
    assert_eq!(o.json()["restore"]["archive"], p(&daily));

    // what cannot be resolved says so
    let o = e.run(&["ls", "latest:pre-deploy", "--dest", dest, "-i", e.k()]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("no pre-deploy archive in"),
        "{}",
        o.stderr
    );
    let o = e.run(&["ls", "latest:monthly", "--dest", dest, "-i", e.k()]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("unknown backup type"), "{}", o.stderr);
    let o = e.run(&[
        "ls",
        "daily_20200101_000000.tar.gz.age",
        "--dest",
        dest,
        "-i",
        e.k(),
    ]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("no archive \"daily_20200101_000000.tar.gz.age\" in"),
        "{}",
        o.stderr
    );
    let o = e.run(&["ls", "latest", "--dest", p(&e.env.p("empty")), "-i", e.k()]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("no archive in"), "{}", o.stderr);
}

/// The acceptance of issue 16: a new operator finds, inspects and takes
/// back one file from last Tuesday's backup in two commands.
#[test]
fn one_file_from_last_tuesdays_backup_in_two_commands() {
    let e = Env::new();
    e.backup("daily");
    // since Tuesday the credential was overwritten by mistake
    write_file(&e.data.join("credentials/slack.json"), b"oops", 0o600);
    let cmd = |args: &[&str]| {
        let mut c = e.env.cmd();
        c.env("BACKUP_ROOT", &e.dest)
            .env("SECURECLAW_STATE_DIR", &e.data)
            .env("SECURECLAW_BACKUP_IDENTITY", &e.key)
            .env("SECURECLAW_BACKUP_KEY", common::age_recipient());
        common::run_cmd(c.args(args))
    };
    // 1. find and inspect
    let o = cmd(&["ls", "latest", "credentials"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("-rw------- 8 2026-11-24 02:00:00 credentials/slack.json\n"),
        "{}",
        o.stdout
    );
    // 2. take it back
    let o = cmd(&["restore", "latest", "--include", "credentials/slack.json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        fs::read(e.data.join("credentials/slack.json")).unwrap(),
        b"{\"s\":22}"
    );
    assert_eq!(
        fs::read(e.data.join("credentials/oauth.json")).unwrap(),
        b"{\"t\":1}"
    );
}

#[test]
fn ls_of_a_plaintext_archive_without_manifest_needs_no_key() {
    let e = Env::new();
    fs::create_dir_all(&e.dest).unwrap();
    let tar = common::benign_tar(
        &[("secureclaw.json", b"{}"), ("credentials/a.json", b"abc")],
        false,
    );
    fs::write(
        e.dest.join("daily_20261124_020000.tar.gz"),
        common::gzip(&tar),
    )
    .unwrap();
    let o = e.run(&[
        "--json",
        "ls",
        "daily_20261124_020000.tar.gz",
        "--dest",
        p(&e.dest),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let d = o.json();
    assert_eq!(d["ls"]["legacy"], true);
    assert_eq!(d["ls"]["format"], "plaintext");
    let paths: Vec<&str> = d["ls"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["credentials", "credentials/a.json", "secureclaw.json"]
    );
    // modes as a restore writes them
    assert_eq!(d["ls"]["entries"][1]["mode"], "0600");
    assert_eq!(d["ls"]["entries"][1]["size"], 3);
}

#[test]
fn latest_in_a_tier() {
    let e = Env::new();
    let a = e.backup("daily");
    let nas = e.env.p("nas");
    fs::create_dir_all(&nas).unwrap();
    let config = e.env.p("config.toml");
    fs::write(
        &config,
        format!("[[tier]]\nname = \"nas\"\nurl = \"{}\"\n", p(&nas)),
    )
    .unwrap();
    let o = e.run(&["push", "--dest", p(&e.dest), "--config", p(&config)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = e.run(&[
        "--json",
        "ls",
        "latest",
        "--tier",
        "nas",
        "--config",
        p(&config),
        "-i",
        e.k(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()["ls"]["archive"], p(&nas.join(name(&a))));
    let o = e.run(&[
        "verify",
        "latest:daily",
        "--tier",
        "nas",
        "--config",
        p(&config),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(name(&a)) || o.stderr.contains(name(&a)),
        "{}",
        o.text()
    );
}

#[test]
fn include_and_ls_on_a_link_of_an_incremental_chain() {
    let e = Env::new();
    let backup = |e: &Env| -> PathBuf {
        let o = e.run(&[
            "--json",
            "backup",
            "--type",
            "weekly",
            "--incremental",
            "--no-prune",
            "--source",
            p(&e.data),
            "--dest",
            p(&e.dest),
        ]);
        assert_eq!(o.code, 0, "{}", o.text());
        PathBuf::from(o.json()["backup"]["archive"].as_str().unwrap())
    };
    backup(&e);
    // the link: one file changed, one directory gone, one file new
    write_file(&e.data.join("secureclaw.json"), b"{ port: 5 }\n", 0o600);
    fs::remove_dir_all(e.data.join("workspace")).unwrap();
    write_file(&e.data.join("credentials/new.json"), b"n", 0o600);
    let link = backup(&e);
    // ls of the link lists the whole tree at that link
    let o = e.run(&["--json", "ls", p(&link), "-i", e.k(), "credentials"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let paths: Vec<String> = o.json()["ls"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "credentials",
            "credentials/new.json",
            "credentials/oauth.json",
            "credentials/slack.json"
        ]
    );
    // a file from the full and one from the link, out of the whole chain
    let (fresh, files) = e.restore_fresh(&link, &["credentials/oauth.json", "secureclaw.json"]);
    assert_eq!(files, ["credentials/oauth.json", "secureclaw.json"]);
    assert_eq!(
        fs::read(fresh.join("secureclaw.json")).unwrap(),
        b"{ port: 5 }\n"
    );
    // what the link removed is not there, selected or not
    let o = e.run(&[
        "restore",
        p(&link),
        "-i",
        e.k(),
        "--target",
        p(&e.env.p("fresh2")),
        "--no-snapshot",
        "--include",
        "workspace",
    ]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("nothing in"), "{}", o.stderr);
}
