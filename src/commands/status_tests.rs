//! `status`'s rendering of a destination's report.

use super::*;
use chrono::TimeDelta;
use secureclaw_backup::events::Silent;

/// The report of `d` with a bare `--max-age` of `hours`.
fn report(d: &std::path::Path, hours: i64, now: chrono::DateTime<Utc>) -> Report {
    let max_age = MaxAge::any(TimeDelta::hours(hours));
    status::report(&LocalStore::new(d), &max_age, Depth::Check, now, &Silent).unwrap()
}

#[test]
fn stale_and_fresh_are_said() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let now = Utc::now();
    let h = human(&report(d, 25, now));
    assert!(h.contains("STALE: no backup at all"), "{h}");
    let name = format!(
        "daily_{}.tar.gz",
        (now - TimeDelta::hours(2)).format("%Y%m%d_%H%M%S")
    );
    std::fs::write(d.join(&name), [0x1f, 0x8b, 8, 0]).unwrap();
    let digest = store::sha256_file(&d.join(&name)).unwrap();
    store::write_sidecar(&d.join(&name), &digest).unwrap();
    let h = human(&report(d, 25, now));
    assert!(h.contains("\nOK: the newest backup is 2h old"), "{h}");
    assert!(h.contains(" ok         "), "sidecar column padded: {h}");
    assert!(human(&report(d, 1, now)).contains("STALE"));
}
