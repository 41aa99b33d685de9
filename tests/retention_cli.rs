//! Calendar retention and per-type freshness through the binary (issue 15,
//! items 5 and 6): `prune` with per-type `--keep-*` flags and the reason of
//! every decision (human and JSON), 30 days of hourly archive names pruned by
//! the defaults, chains described by `.meta` files kept whole or cut from
//! their newest end, `status --max-age TYPE=…`, the per-type Prometheus
//! gauges, the monitoring line `schedule` prints for its interval, and
//! `status --tier` over NAS directory tiers (a fleet, one exit code).
//!
//! Retention reads only names and `.meta` files, never an archive's bytes, so
//! prune tests use empty placeholder archives; `status` reads the newest
//! archive of each type, so its tests use small gzip-looking files with a
//! correct sidecar.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Output;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use serde_json::Value;

use common::{code, json, s, Garage, Sandbox};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d_%H%M%S").to_string()
}

/// `<type>_<time>` for `t`.
fn stem(btype: &str, t: DateTime<Utc>) -> String {
    format!("{btype}_{}", stamp(t))
}

/// An empty placeholder archive (prune never reads an archive's bytes).
fn placeholder(dest: &Path, btype: &str, t: DateTime<Utc>) -> String {
    let name = format!("{}.tar.gz.age", stem(btype, t));
    fs::write(dest.join(&name), b"").unwrap();
    name
}

/// A gzip-looking archive with a correct sidecar (what `status` reads).
fn fake_archive(dest: &Path, btype: &str, t: DateTime<Utc>) -> String {
    let name = format!("{}.tar.gz", stem(btype, t));
    let path = dest.join(&name);
    fs::write(&path, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let digest = secureclaw_backup::store::sha256_file(&path).unwrap();
    secureclaw_backup::store::write_sidecar(&path, &digest).unwrap();
    name
}

/// Writes the `.meta` of `name`: link `level` of chain `chain` on top of
/// `previous` (an archive file name).
fn meta(dest: &Path, name: &str, chain: &str, level: u32, previous: Option<&str>) {
    let a = secureclaw_backup::store::parse_name(name, false).unwrap();
    let mut m =
        secureclaw_backup::meta::Meta::new(name, a.btype.as_str(), &stamp(a.time), "web-1", "age");
    m.chain = Some(secureclaw_backup::manifest::Chain {
        id: chain.to_owned(),
        level,
        previous: previous.map(str::to_owned),
    });
    fs::write(
        dest.join(secureclaw_backup::meta::meta_name(name)),
        m.to_bytes(),
    )
    .unwrap();
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn decisions(j: &Value) -> &Vec<Value> {
    j["decisions"].as_array().unwrap()
}

fn kept_stems(j: &Value) -> BTreeSet<String> {
    decisions(j)
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["stem"].as_str().unwrap().to_owned())
        .collect()
}

/// The current hour, so that every simulated run is in the past.
fn this_hour() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap()
}

#[test]
fn prune_dry_run_per_type_flags_and_reasons() {
    let sb = Sandbox::new();
    let dest = sb.p("dest");
    fs::create_dir(&dest).unwrap();
    let top = this_hour();
    // three days of hourly dailies, six weekly, four pre-deploy
    let dailies: Vec<DateTime<Utc>> = (0..72).map(|i| top - TimeDelta::hours(i)).collect();
    for t in &dailies {
        placeholder(&dest, "daily", *t);
    }
    for w in 0..6 {
        placeholder(
            &dest,
            "weekly",
            top - TimeDelta::weeks(w) - TimeDelta::minutes(1),
        );
    }
    for i in 0..4 {
        placeholder(
            &dest,
            "pre-deploy",
            top - TimeDelta::days(i) - TimeDelta::minutes(2),
        );
    }
    let before = names(&dest);
    let args = [
        "prune",
        "--dest",
        s(&dest),
        "--dry-run",
        "--keep-hourly",
        "daily=6",
        "--keep-daily",
        "2",
        "--keep-weekly",
        "3",
        "--keep-last",
        "pre-deploy=2",
    ];
    let o = sb.output(&[&["--json"][..], &args].concat());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(names(&dest), before, "a dry run changes nothing");
    let j = json(&o);
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["policy"]["daily"]["keep_hourly"], 6);
    assert_eq!(j["policy"]["daily"]["keep_daily"], 2);
    assert_eq!(j["policy"]["pre-deploy"]["keep_last"], 2);
    // every decision carries its reasons, structured and as text
    for d in decisions(&j) {
        assert!(!d["reason"].as_str().unwrap().is_empty(), "{d}");
        assert!(!d["reasons"].as_array().unwrap().is_empty(), "{d}");
    }
    // daily: the 6 newest hours, and the newest of each of the 2 newest days
    let mut want: BTreeSet<String> = dailies[..6].iter().map(|t| stem("daily", *t)).collect();
    let mut days = BTreeSet::new();
    for t in &dailies {
        if days.len() < 2 && days.insert(t.date_naive()) {
            want.insert(stem("daily", *t));
        }
    }
    let kept = kept_stems(&j);
    let kept_daily: BTreeSet<String> = kept
        .iter()
        .filter(|s| s.starts_with("daily_"))
        .cloned()
        .collect();
    assert_eq!(kept_daily, want);
    assert_eq!(kept.iter().filter(|s| s.starts_with("weekly_")).count(), 3);
    assert_eq!(
        kept.iter().filter(|s| s.starts_with("pre-deploy_")).count(),
        2
    );
    let find = |stem: &str| {
        decisions(&j)
            .iter()
            .find(|d| d["stem"] == stem)
            .unwrap_or_else(|| panic!("no decision for {stem}"))
            .clone()
    };
    let newest = find(&stem("daily", top));
    assert_eq!(
        newest["reasons"][0],
        serde_json::json!({"rule": "last", "n": 1, "of": 2})
    );
    assert_eq!(newest["reasons"][1]["rule"], "bucket");
    assert_eq!(newest["reasons"][1]["unit"], "hourly");
    assert_eq!(newest["reasons"][1]["n"], 1);
    assert_eq!(newest["reasons"][1]["of"], 6);
    assert_eq!(newest["reasons"][2]["unit"], "daily");
    assert!(newest["reason"].as_str().unwrap().contains("hourly bucket"));
    assert!(newest["reason"].as_str().unwrap().contains("daily bucket"));
    let oldest = find(&stem("daily", dailies[71]));
    assert_eq!(oldest["keep"], false);
    assert_eq!(oldest["reasons"][0]["rule"], "dropped");
    assert_eq!(
        oldest["reason"],
        "dropped: beyond the last 2, 6 hourly buckets, 2 daily buckets"
    );
    let dropped_deploy = find(&stem(
        "pre-deploy",
        top - TimeDelta::days(3) - TimeDelta::minutes(2),
    ));
    assert_eq!(dropped_deploy["reason"], "dropped: beyond the last 2");
    let n_dropped = decisions(&j).iter().filter(|d| d["keep"] == false).count();
    assert_eq!(j["would_remove"].as_array().unwrap().len(), n_dropped);

    // The human rendering: the rules, and one line per backup with its reasons.
    let o = sb.output(&args);
    assert_eq!(code(&o), 0);
    let h = stdout(&o);
    assert!(h.contains("Rules (UTC calendar buckets):"), "{h}");
    // a bare --keep-daily N also keeps the N newest (the old count)
    assert!(h.contains("daily        last 2, 6 hourly, 2 daily"), "{h}");
    assert!(h.contains("pre-deploy   last 2"), "{h}");
    let line = h
        .lines()
        .find(|l| l.contains(&stem("daily", dailies[71])))
        .unwrap();
    assert!(
        line.starts_with("would remove") && line.contains("dropped: beyond the last 2, 6 hourly"),
        "{line}"
    );
    let line = h.lines().find(|l| l.contains(&stem("daily", top))).unwrap();
    assert!(
        line.starts_with("keep") && line.contains("hourly bucket"),
        "{line}"
    );
    assert!(h.contains("would be removed (dry run: nothing changed)"));
    assert_eq!(names(&dest), before);

    // The old flags keep their meaning.
    let o = sb.output(&[
        "--json",
        "prune",
        "--dest",
        s(&dest),
        "--dry-run",
        "--keep-pre-deploy",
        "1",
        "--keep-daily",
        "3",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    let kept = kept_stems(&j);
    assert_eq!(
        kept.iter().filter(|s| s.starts_with("pre-deploy_")).count(),
        1
    );
    // 3 days of daily backups, and never fewer than the 3 newest
    let mut want: BTreeSet<String> = dailies[..3].iter().map(|t| stem("daily", *t)).collect();
    let mut days = BTreeSet::new();
    for t in &dailies {
        if days.len() < 3 && days.insert(t.date_naive()) {
            want.insert(stem("daily", *t));
        }
    }
    let kept_daily: BTreeSet<String> = kept
        .iter()
        .filter(|s| s.starts_with("daily_"))
        .cloned()
        .collect();
    assert_eq!(kept_daily, want);
    assert_eq!(kept.iter().filter(|s| s.starts_with("weekly_")).count(), 4);

    // Bad values are usage errors naming the flag.
    for bad in [
        &["--keep-daily", "3", "--keep-daily", "4"][..],
        &["--keep-hourly", "hourly=3"],
        &["--keep-within", "soon"],
        &["--keep-pre-deploy", "daily=1"],
        &["--keep-last", "pre-deploy=1", "--keep-pre-deploy", "2"],
    ] {
        let o = sb.output(&[&["prune", "--dest", s(&dest), "--dry-run"][..], bad].concat());
        assert_eq!(code(&o), 2, "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--keep-"), "{bad:?}: {}", stderr(&o));
    }
    assert_eq!(names(&dest), before);
}

#[test]
fn thirty_days_of_hourly_names_pruned_with_defaults_keep_seven_days() {
    let sb = Sandbox::new();
    let dest = sb.p("dest");
    fs::create_dir(&dest).unwrap();
    let top = this_hour();
    let runs: Vec<DateTime<Utc>> = (0..30 * 24).map(|i| top - TimeDelta::hours(i)).collect();
    for t in &runs {
        placeholder(&dest, "daily", *t);
    }
    let o = sb.output(&["--json", "prune", "--dest", s(&dest)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    let kept = kept_stems(&j);
    // the newest backup of each of the 7 newest days: 7 days, not 7 hours
    // (and the 7 newest, what the old count kept)
    let mut days = BTreeSet::new();
    let mut want: BTreeSet<String> = runs
        .iter()
        .filter(|t| days.len() < 7 && days.insert(t.date_naive()))
        .map(|t| stem("daily", *t))
        .collect();
    assert_eq!(want.len(), 7);
    want.extend(runs[..7].iter().map(|t| stem("daily", *t)));
    assert_eq!(kept, want);
    let left: Vec<String> = names(&dest).into_iter().collect();
    assert_eq!(left.len(), want.len(), "{left:?}");
    // seven calendar days, today's included (the count planner kept 7 hours)
    let oldest = secureclaw_backup::store::parse_name(&left[0], false).unwrap();
    assert_eq!(
        oldest.time.date_naive(),
        top.date_naive() - TimeDelta::days(6),
        "kept span starts {}",
        oldest.time
    );
    assert!(top - oldest.time > TimeDelta::days(5));
    assert_eq!(j["removed"].as_array().unwrap().len(), 30 * 24 - want.len());
    // pruning again changes nothing
    let o = sb.output(&["--json", "prune", "--dest", s(&dest)]);
    assert_eq!(json(&o)["removed"].as_array().unwrap().len(), 0);
}

#[test]
fn thirty_days_of_hourly_chains_keep_seven_whole_days() {
    // An hourly incremental schedule: each day a chain (the 00:00 run is the
    // full), every later hour a link. The defaults keep 7 days of hours.
    let sb = Sandbox::new();
    let dest = sb.p("dest");
    fs::create_dir(&dest).unwrap();
    let top = this_hour();
    let first = (top - TimeDelta::days(29))
        .duration_trunc(TimeDelta::days(1))
        .unwrap();
    let mut prev: Option<String> = None;
    let mut t = first;
    let mut all = Vec::new();
    while t <= top {
        let name = placeholder(&dest, "daily", t);
        let level = chrono::Timelike::hour(&t);
        let chain = stem("daily", t.duration_trunc(TimeDelta::days(1)).unwrap());
        meta(
            &dest,
            &name,
            &chain,
            level,
            if level == 0 { None } else { prev.as_deref() },
        );
        all.push(t);
        prev = Some(name);
        t += TimeDelta::hours(1);
    }
    let o = sb.output(&["--json", "prune", "--dest", s(&dest)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    let kept = kept_stems(&j);
    let last_days: BTreeSet<_> = {
        let mut d: Vec<_> = all.iter().map(|t| t.date_naive()).collect();
        d.dedup();
        d.into_iter().rev().take(7).collect()
    };
    let want: BTreeSet<String> = all
        .iter()
        .filter(|t| last_days.contains(&t.date_naive()))
        .map(|t| stem("daily", *t))
        .collect();
    assert_eq!(kept, want, "every hour of the 7 newest days");
    // each kept link's predecessor is still there, with its .meta
    let left = names(&dest);
    for d in decisions(&j).iter().filter(|d| d["keep"] == true) {
        if let Some(p) = d["chain"]["predecessor"].as_str() {
            assert!(left.contains(&format!("{p}.tar.gz.age")), "{p}");
            assert!(left.contains(&format!("{p}.tar.gz.age.meta")), "{p}");
        }
    }
    assert_eq!(left.len(), 2 * want.len(), "archives and their .meta only");
}

#[test]
fn chain_kept_whole_or_cut_from_its_newest_end() {
    let sb = Sandbox::new();
    let dest = sb.p("dest");
    fs::create_dir(&dest).unwrap();
    let h = |d: u32, hour: u32| Utc.with_ymd_and_hms(2026, 6, d, hour, 0, 0).unwrap();
    // chain A spans midnight: full 06-10 22:00, links 23:00, 06-11 00:00, 01:00;
    // chain B: full 06-11 02:00, link 03:00.
    let a: Vec<String> = [h(10, 22), h(10, 23), h(11, 0), h(11, 1)]
        .iter()
        .map(|t| placeholder(&dest, "daily", *t))
        .collect();
    for (i, n) in a.iter().enumerate() {
        meta(
            &dest,
            n,
            "A",
            i as u32,
            i.checked_sub(1).map(|p| a[p].as_str()),
        );
    }
    let b: Vec<String> = [h(11, 2), h(11, 3)]
        .iter()
        .map(|t| placeholder(&dest, "daily", *t))
        .collect();
    meta(&dest, &b[0], "B", 0, None);
    meta(&dest, &b[1], "B", 1, Some(&b[0]));
    // an old full before chains (no .meta)
    let old = placeholder(&dest, "daily", h(9, 2));

    // the default 7 days, with the newest-N floor at 1 (else all 7 backups
    // here would be among the 7 newest)
    let flags = ["--keep-last", "daily=1"];
    let o = sb.output(
        &[
            &["--json", "prune", "--dest", s(&dest), "--dry-run"][..],
            &flags,
        ]
        .concat(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    let by = |n: &str| {
        let st = n.trim_end_matches(".tar.gz.age");
        decisions(&j)
            .iter()
            .find(|d| d["stem"] == st)
            .unwrap()
            .clone()
    };
    // B whole: its newest link is 06-11's backup, the full is needed by it
    assert_eq!(
        by(&b[1])["reason"],
        "last (1 of 1); daily bucket 2026-06-11 (1 of 7)"
    );
    assert_eq!(
        by(&b[0])["reason"],
        format!(
            "needed by kept link {}",
            b[1].trim_end_matches(".tar.gz.age")
        )
    );
    assert_eq!(by(&b[0])["chain"]["level"], 0);
    // A cut from its newest end: 06-10's newest (23:00) and its full kept,
    // the links of 06-11 dropped
    assert_eq!(by(&a[1])["keep"], true);
    assert_eq!(by(&a[0])["keep"], true);
    assert_eq!(by(&a[0])["reasons"][0]["rule"], "needed-by");
    assert_eq!(by(&a[2])["keep"], false);
    assert_eq!(by(&a[3])["keep"], false);
    assert_eq!(by(&old)["keep"], true);
    let h_out =
        stdout(&sb.output(&[&["prune", "--dest", s(&dest), "--dry-run"][..], &flags].concat()));
    assert!(h_out.contains("[chain A level 1]"), "{h_out}");

    // The real run removes exactly the dropped links and their .meta.
    let o = sb.output(&[&["--json", "prune", "--dest", s(&dest)][..], &flags].concat());
    assert_eq!(code(&o), 0);
    let left = names(&dest);
    for n in [&a[2], &a[3]] {
        assert!(!left.contains(n.as_str()) && !left.contains(&format!("{n}.meta")));
    }
    for n in [&a[0], &a[1], &b[0], &b[1]] {
        assert!(
            left.contains(n.as_str()) && left.contains(&format!("{n}.meta")),
            "{n}"
        );
    }

    // --keep-last daily=1: B's newest link keeps B whole; A goes whole.
    let o = sb.output(&[
        "--json",
        "prune",
        "--dest",
        s(&dest),
        "--keep-last",
        "daily=1",
        "--keep-daily",
        "0",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let left = names(&dest);
    assert!(left.contains(b[0].as_str()) && left.contains(b[1].as_str()));
    assert!(!left.contains(a[0].as_str()) && !left.contains(a[1].as_str()));
    assert!(!left.contains(old.as_str()));
}

#[test]
fn status_per_type_max_age_names_the_stale_type_and_metrics_per_type() {
    let sb = Sandbox::new();
    let dest = sb.p("dest");
    fs::create_dir(&dest).unwrap();
    let now = Utc::now();
    fake_archive(&dest, "daily", now - TimeDelta::days(31));
    let fresh_daily_link_chain = now - TimeDelta::days(30);
    let newest_daily = fake_archive(&dest, "daily", fresh_daily_link_chain);
    meta(
        &dest,
        &newest_daily,
        "c",
        2,
        Some("daily_20260101_000000.tar.gz"),
    );
    fake_archive(&dest, "pre-deploy", now - TimeDelta::minutes(10));

    // today's rule (the newest of any type): the fresh pre-deploy makes it OK
    let o = sb.output(&["status", "--dest", s(&dest)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let prom = sb.p("backup.prom");
    let o = sb.output(&[
        "--json",
        "status",
        "--dest",
        s(&dest),
        "--max-age",
        "daily=25h",
        "--max-age",
        "pre-deploy=1h",
        "--prometheus",
        s(&prom),
    ]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["ok"], false);
    assert_eq!(j["stale"], true);
    assert_eq!(j["stale_types"], serde_json::json!(["daily"]));
    assert_eq!(j["max_age_seconds"], Value::Null);
    let daily = &j["types"][0];
    assert_eq!(daily["type"], "daily");
    assert_eq!(daily["stale"], true);
    assert_eq!(daily["max_age_seconds"], 90_000);
    assert_eq!(daily["chain_length"], 3);
    assert_eq!(j["types"][2]["stale"], false);
    assert_eq!(j["types"][1]["stale"], Value::Null, "weekly not judged");
    let err = stderr(&o);
    assert!(err.contains("daily (newest 30d"), "{err}");
    assert!(!err.contains("pre-deploy ("), "{err}");

    let o = sb.output(&["status", "--dest", s(&dest), "--max-age", "daily=25h"]);
    assert_eq!(code(&o), 6);
    let h = stdout(&o);
    assert!(h.contains("STALE: daily: the newest is 30d"), "{h}");
    assert!(h.contains("CHAIN"), "{h}");

    let m = fs::read_to_string(&prom).unwrap();
    for want in [
        "secureclaw_backup_age_seconds{type=\"daily\"} ",
        "secureclaw_backup_age_seconds{type=\"pre-deploy\"} ",
        "secureclaw_backup_size_bytes{type=\"daily\"} 8\n",
        "secureclaw_backup_chain_length{type=\"daily\"} 3\n",
        "secureclaw_backup_chain_length{type=\"pre-deploy\"} 1\n",
        "secureclaw_backup_last_success_timestamp_seconds{type=\"pre-deploy\"} ",
        "secureclaw_backup_type_stale{type=\"daily\"} 1\n",
        "secureclaw_backup_type_stale{type=\"pre-deploy\"} 0\n",
        "secureclaw_backup_type_max_age_seconds{type=\"daily\"} 90000\n",
        "secureclaw_backup_stale 1\n",
    ] {
        assert!(m.contains(want), "{want:?} in\n{m}");
    }
    assert!(!m.contains("secureclaw_backup_max_age_seconds "), "{m}");
    let daily_ts = m
        .lines()
        .find(|l| l.starts_with("secureclaw_backup_last_success_timestamp_seconds{type=\"daily\"}"))
        .unwrap();
    assert!(daily_ts.ends_with(&fresh_daily_link_chain.timestamp().to_string()));

    // A bare DURATION and a typed one together; a bad type is a usage error.
    let o = sb.output(&[
        "status",
        "--dest",
        s(&dest),
        "--max-age",
        "1h",
        "--max-age",
        "pre-deploy=1h",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = sb.output(&["status", "--dest", s(&dest), "--max-age", "hourly=1h"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn schedule_prints_the_monitoring_line_of_its_interval() {
    let sb = Sandbox::new();
    let dest = sb.p("dest");
    let src = sb.p("data");
    fs::create_dir_all(&src).unwrap();
    for (ty, when, want) in [
        ("daily", &["--at", "02:00"][..], "--max-age daily=25h"),
        ("daily", &["--every", "1h"], "--max-age daily=2h"),
        ("daily", &["--every", "15m"], "--max-age daily=30m"),
        ("daily", &["--every", "6h"], "--max-age daily=7h"),
        ("weekly", &[], "--max-age weekly=7d1h"),
        ("pre-deploy", &["--every", "1d"], "--max-age pre-deploy=25h"),
    ] {
        for sched in ["cron", "systemd"] {
            let o = sb.output(
                &[
                    &["--json", "schedule", sched, "--type", ty][..],
                    when,
                    &["--dest", s(&dest), "--source", s(&src)],
                ]
                .concat(),
            );
            assert_eq!(code(&o), 0, "{ty} {when:?}: {}", stderr(&o));
            let j = json(&o);
            let steps: Vec<&str> = j["next_steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let line = steps
                .iter()
                .find(|l| l.starts_with("monitor: "))
                .unwrap_or_else(|| panic!("{steps:?}"));
            assert!(
                line.contains(&format!(
                    "secureclaw-backup status --dest {} {want}",
                    s(&dest)
                )),
                "{ty} {when:?}: {line}"
            );
            assert!(!line.contains("25h") || want.contains("25h"), "{line}");
        }
    }
}

/// A tier directory holding a fresh or a stale daily.
fn tier_dir(root: &Path, name: &str, age: TimeDelta) -> std::path::PathBuf {
    let d = root.join(name);
    fs::create_dir_all(&d).unwrap();
    fake_archive(&d, "daily", Utc::now() - age);
    d
}

#[test]
fn status_tier_watches_a_fleet_with_one_exit_code() {
    let sb = Sandbox::new();
    let nas = sb.p("nas");
    let a = tier_dir(&nas, "web-1", TimeDelta::hours(2));
    let b = tier_dir(&nas, "web-2", TimeDelta::days(3));
    let c = tier_dir(&nas, "web-3", TimeDelta::minutes(30));
    let cfg = sb.p("config.toml");
    fs::write(
        &cfg,
        format!(
            "[[tier]]\nname = \"web-1\"\nurl = \"{}\"\n[[tier]]\nname = \"web-2\"\nurl = \"{}\"\n",
            s(&a),
            s(&b)
        ),
    )
    .unwrap();
    let before: Vec<_> = [&a, &b, &c].iter().map(|d| names(d)).collect();
    let prom = sb.p("fleet.prom");
    // two configured tiers and one given by its directory
    let o = sb.output(&[
        "--json",
        "status",
        "--config",
        s(&cfg),
        "--tier",
        "web-1",
        "--tier",
        "web-2",
        "--tier",
        s(&c),
        "--max-age",
        "daily=25h",
        "--prometheus",
        s(&prom),
    ]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["ok"], false);
    assert_eq!(j["stale_stores"], serde_json::json!(["web-2"]));
    let stores = j["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 3);
    assert_eq!(stores[0]["tier"], "web-1");
    assert_eq!(stores[0]["ok"], true);
    assert_eq!(stores[1]["stale_types"], serde_json::json!(["daily"]));
    assert_eq!(stores[2]["dest"], s(&c));
    assert_eq!(
        stores[0]["checked"], false,
        "judged from the listing and headers"
    );
    let err = stderr(&o);
    assert!(
        err.contains("web-2") && err.contains("daily (newest 3d"),
        "{err}"
    );
    assert!(!err.contains("web-1:"), "{err}");
    let m = fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains("secureclaw_backup_type_stale{tier=\"web-2\",type=\"daily\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("secureclaw_backup_type_stale{tier=\"web-1\",type=\"daily\"} 0\n"),
        "{m}"
    );
    assert!(m.contains(&format!(
        "secureclaw_backup_age_seconds{{tier=\"{}\",type=\"daily\"}} ",
        s(&c)
    )));
    // watching never writes to a tier
    let after: Vec<_> = [&a, &b, &c].iter().map(|d| names(d)).collect();
    assert_eq!(before, after);

    // all fresh: exit 0, one line per store in the human report
    let o = sb.output(&[
        "status",
        "--config",
        s(&cfg),
        "--tier",
        "web-1",
        "--tier",
        s(&c),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let h = stdout(&o);
    assert!(
        h.contains("== web-1 ==") && h.contains("OK: 2 store(s) fresh."),
        "{h}"
    );

    // a store that is not there is a broken setup (exit 1) and wins over stale
    let gone = nas.join("web-9");
    let o = sb.output(&[
        "--json",
        "status",
        "--config",
        s(&cfg),
        "--tier",
        "web-2",
        "--tier",
        s(&gone),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("web-9"), "{}", stderr(&o));
    // an unknown tier name is a usage error
    let o = sb.output(&["status", "--config", s(&cfg), "--tier", "nope"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn tier_prune_uses_calendar_keys_and_chains_on_a_nas_tier() {
    let sb = Sandbox::new();
    let nas = sb.p("nas");
    fs::create_dir_all(&nas).unwrap();
    // five days of a chain a day (full 00:00, links 01:00..03:00)
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 5, d, h, 0, 0).unwrap();
    let mut all = Vec::new();
    for d in 1..=5 {
        let mut prev: Option<String> = None;
        for h in 0..4 {
            let n = placeholder(&nas, "daily", day(d, h));
            meta(&nas, &n, &format!("c{d}"), h, prev.as_deref());
            prev = Some(n.clone());
            all.push(n);
        }
    }
    fs::write(nas.join("notes.txt"), "mine").unwrap();
    let cfg = sb.p("config.toml");
    fs::write(
        &cfg,
        format!(
            "[[tier]]\nname = \"nas\"\nurl = \"{}\"\nkeep_daily = 2\n",
            s(&nas)
        ),
    )
    .unwrap();
    let args = ["prune", "--config", s(&cfg), "--tier", "nas"];
    let o = sb.output(&[&["--json"][..], &args, &["--dry-run"]].concat());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["policy"]["daily"]["keep_daily"], 2);
    assert_eq!(j["policy"]["daily"]["keep_last"], 1);
    let kept = kept_stems(&j);
    let want: BTreeSet<String> = all[12..]
        .iter()
        .map(|n| n.trim_end_matches(".tar.gz.age").to_owned())
        .collect();
    assert_eq!(kept, want, "the chains of the 2 newest days, whole");
    // the run removes the older chains whole, with their .meta
    let o = sb.output(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let left = names(&nas);
    let mut expect: BTreeSet<String> = all[12..]
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}.meta")])
        .collect();
    expect.insert("notes.txt".into());
    assert_eq!(left, expect);
    // a tier's rules live in its configuration, not in flags
    let o = sb.output(&[&args[..], &["--keep-daily", "3"]].concat());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("[[tier]]"), "{}", stderr(&o));
}

/// The binary in `sb` with the cluster's variables, logged.
fn run_s3(g: &Garage, sb: &Sandbox, args: &[&str]) -> Output {
    let o = sb
        .cmd()
        .envs(g.vars.iter().cloned())
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ secureclaw-backup {}\n{}{}exit {:?}",
        args.join(" "),
        stdout(&o),
        stderr(&o),
        o.status.code()
    );
    o
}
#[test]
fn status_tier_over_s3_prefixes_from_a_monitoring_host() {
    let Some(g) = Garage::start("status_tier_over_s3_prefixes_from_a_monitoring_host") else {
        return;
    };
    let bucket = "secureclaw-test";
    // two hosts push to a prefix each; web-2's daily is 3 days old
    let mut urls = Vec::new();
    for (host, age_days) in [("web-1", 0i64), ("web-2", 3)] {
        let sb = Sandbox::new();
        let src = sb.p("data");
        common::make_tree(&src);
        let dest = sb.p("backups");
        let o = run_s3(
            &g,
            &sb,
            &[
                "backup",
                "--source",
                s(&src),
                "--dest",
                s(&dest),
                "-r",
                &common::age_recipient(),
                "--no-prune",
            ],
        );
        assert_eq!(code(&o), 0);
        if age_days > 0 {
            let name = names(&dest)
                .into_iter()
                .find(|n| n.ends_with(".tar.gz.age"))
                .unwrap();
            let old = Utc::now() - TimeDelta::days(age_days);
            let new = format!("daily_{}.tar.gz.age", stamp(old));
            fs::rename(dest.join(&name), dest.join(&new)).unwrap();
            let side = fs::read_to_string(dest.join(format!("{name}.sha256"))).unwrap();
            let digest = side.split_whitespace().next().unwrap().to_owned();
            fs::write(
                dest.join(format!("{new}.sha256")),
                format!("{digest}  {new}\n"),
            )
            .unwrap();
            for suffix in [".sha256", ".meta", ".sig"] {
                let _ = fs::remove_file(dest.join(format!("{name}{suffix}")));
            }
        }
        let url = format!("s3://{bucket}/fleet/status-{host}");
        let cfg = sb.p("config.toml");
        fs::write(
            &cfg,
            format!("[[tier]]\nname = \"cloud\"\nurl = \"{url}\"\n"),
        )
        .unwrap();
        let o = run_s3(&g, &sb, &["push", "--config", s(&cfg), "--dest", s(&dest)]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        urls.push(url);
    }
    // the monitoring host: no configuration, only the bucket's credentials
    let mon = Sandbox::new();
    let prom = mon.p("fleet.prom");
    let o = run_s3(
        &g,
        &mon,
        &[
            "--json",
            "status",
            "--tier",
            &urls[0],
            "--tier",
            &urls[1],
            "--max-age",
            "daily=25h",
            "--prometheus",
            s(&prom),
        ],
    );
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["stale_stores"], serde_json::json!([urls[1].clone()]));
    assert_eq!(j["stores"][0]["ok"], true, "{j:#}");
    assert_eq!(j["stores"][0]["types"][0]["chain_length"], 1);
    assert_eq!(j["stores"][1]["stale_types"], serde_json::json!(["daily"]));
    assert!(stderr(&o).contains("daily (newest 3d"), "{}", stderr(&o));
    let m = fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains(&format!(
            "secureclaw_backup_type_stale{{tier=\"{}\",type=\"daily\"}} 1\n",
            urls[1]
        )),
        "{m}"
    );
    // the fresh one alone: exit 0
    let o = run_s3(
        &g,
        &mon,
        &["status", "--tier", &urls[0], "--max-age", "daily=25h"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
