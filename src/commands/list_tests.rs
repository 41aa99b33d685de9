//! `list`'s rendering of a scanned destination.

use super::*;
use secureclaw_backup::events::Silent;
use std::fs;

#[test]
fn renders_damaged_legacy_and_snapshots() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::write(d.join("daily_20260301_020000.tar.gz.age"), b"garbage").unwrap();
    fs::write(d.join("daily_20260227_020000.tar.gz"), [0x1f, 0x8b, 8, 0]).unwrap();
    fs::create_dir(d.join("daily_20260227_020000")).unwrap();
    fs::write(d.join("daily_20260227_020000/a"), "abc").unwrap();
    fs::write(d.join("pre-restore_20260301_030000.tar.gz.age"), b"x").unwrap();
    let l = catalog::scan(&LocalStore::new(d), Depth::Headers, &Silent).unwrap();
    let h = human(&l);
    assert!(h.contains("DAMAGED") && h.contains("damaged: "), "{h}");
    assert!(h.contains("legacy plaintext dir"), "{h}");
    assert!(h.contains("Pre-restore snapshots"), "{h}");
    // every row names its file
    assert!(h.contains(" daily_20260301_020000.tar.gz.age "), "{h}");
    assert!(
        h.contains(" pre-restore_20260301_030000.tar.gz.age "),
        "{h}"
    );
}

#[test]
fn missing_dest_is_said() {
    let t = tempfile::tempdir().unwrap();
    let l = catalog::scan(
        &LocalStore::new(t.path().join("none")),
        Depth::Headers,
        &Silent,
    )
    .unwrap();
    assert!(human(&l).contains("does not exist"));
}
