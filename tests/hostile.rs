//! Hostile archives (issue 4 §1, SECURITY.md "Restore safety"). Archives are encrypted to a
//! *public* key, so anyone who can write the backup storage can make one that
//! decrypts fine: every archive here is built by hand (raw tar headers with
//! correct checksums), gzip'd and encrypted to the example key (age crate, or
//! stock `gpg` for OpenPGP), so that the restore rules are what stops it.
//!
//! For each case, with both backends and with and without a manifest.json that
//! agrees with the archive (as a forger would write it):
//! - `restore --no-snapshot` exits with the documented code (5 refused,
//!   3 integrity, 4 key; see `src/archive/extract.rs`);
//! - the whole watched area (the target, its parent where staging lives, a
//!   canary directory that absolute paths and links aim at) is byte- and
//!   mode-identical afterwards: nothing escaped, no `.target.restore-*`
//!   staging and no journal left;
//! - `verify -i` reports the same code (it shares the engine).
//!
//! Modes (setuid, sticky, 0777) are clamped, not refused.

mod support_security;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support_security::*;

const REFUSED: i32 = 5;
const INTEGRITY: i32 = 3;
const KEY: i32 = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variants {
    /// With a manifest that agrees, and without one (legacy).
    Both,
    /// The case is about the manifest itself.
    ManifestOnly,
}

/// Runs restore and verify on the archive at `archive` in `sb`, checking the
/// exit code and that the watched area is unchanged.
fn expect_rejected(
    sb: &Sandbox,
    archive: &Path,
    identity: &Path,
    expect: &[i32],
    label: &str,
) -> i32 {
    let before = snapshot(&sb.p("w"));
    let out = sb.run(&[
        "restore".as_ref(),
        archive.as_os_str(),
        "-i".as_ref(),
        identity.as_os_str(),
        "--target".as_ref(),
        sb.target().as_os_str(),
        "--no-snapshot".as_ref(),
    ]);
    assert!(
        expect.contains(&out.code),
        "{label}: restore exited {} (expected one of {expect:?})\n{}",
        out.code,
        out.text()
    );
    assert!(
        out.stderr.contains("error:"),
        "{label}: no clear error message:\n{}",
        out.text()
    );
    let after = snapshot(&sb.p("w"));
    assert!(
        before == after,
        "{label}: the target, its parent or the canary changed:\n{}",
        diff(&before, &after)
    );
    let v = sb.run(&[
        "verify".as_ref(),
        "-i".as_ref(),
        identity.as_os_str(),
        archive.as_os_str(),
    ]);
    assert_eq!(
        v.code,
        out.code,
        "{label}: verify -i exited {} but restore {}\nverify: {}\nrestore: {}",
        v.code,
        out.code,
        v.text(),
        out.text()
    );
    assert_eq!(
        snapshot(&sb.p("w")),
        after,
        "{label}: verify changed something"
    );
    out.code
}

/// Builds the hostile archive with `build` (after the top-level directory
/// entry) for every backend and variant, and expects `expect` from restore.
fn case(name: &str, variants: Variants, expect: &[i32], build: impl Fn(&mut Tar, &Sandbox)) {
    for backend in backends() {
        let manifests: &[bool] = match variants {
            Variants::Both => &[true, false],
            Variants::ManifestOnly => &[true],
        };
        for &with_manifest in manifests {
            let sb = Sandbox::new();
            populate_target(&sb.target());
            let mut t = Tar::new();
            t.top();
            build(&mut t, &sb);
            let tar = t.finish(with_manifest);
            let archive = write_archive(&sb.p("arch"), name, backend, &tar);
            let label = format!("{name} [{backend:?}, manifest: {with_manifest}]");
            expect_rejected(&sb, &archive, &backend.identity(), expect, &label);
        }
    }
}

fn canary(sb: &Sandbox) -> String {
    sb.p("w/canary").display().to_string()
}

// ------------------------------------------------------------------ paths

#[test]
fn dotdot_path() {
    case("dotdot", Variants::Both, &[REFUSED], |t, _| {
        t.file("secureclaw.json", 0o600, b"{}");
        let name = format!("{TOP}/../../escape-dotdot");
        t.raw(name.as_bytes(), ty::FILE, 0o600, b"", b"pwned");
        t.record("../../escape-dotdot", false, b"pwned");
    });
    case("dotdot-inner", Variants::Both, &[REFUSED], |t, _| {
        t.dir("credentials", 0o700);
        let name = format!("{TOP}/credentials/../../../w/canary/evil");
        t.raw(name.as_bytes(), ty::FILE, 0o600, b"", b"pwned");
        t.record("credentials/../../../w/canary/evil", false, b"pwned");
    });
}

#[test]
fn absolute_path() {
    case("absolute", Variants::Both, &[REFUSED], |t, sb| {
        let name = format!("{}/abs-evil", canary(sb));
        t.raw(name.as_bytes(), ty::FILE, 0o600, b"", b"pwned");
        t.record(&name, false, b"pwned");
    });
}

#[test]
fn empty_and_dot_components() {
    // (a backslash is an ordinary byte of a Linux name now: see
    // `backslash_names_are_plain_bytes`)
    for (i, rel) in ["credentials//x", "./credentials/./x"].iter().enumerate() {
        case(
            &format!("components-{i}"),
            Variants::Both,
            &[REFUSED],
            |t, _| {
                t.dir("credentials", 0o700);
                t.raw(
                    format!("{TOP}/{rel}").as_bytes(),
                    ty::FILE,
                    0o600,
                    b"",
                    b"x",
                );
                t.record(rel, false, b"x");
            },
        );
    }
}

#[test]
fn more_than_one_top_level_directory() {
    case("two-tops", Variants::Both, &[REFUSED], |t, _| {
        t.file("secureclaw.json", 0o600, b"{}");
        t.raw(b"weekly_20260101_000000/", ty::DIR, 0o700, b"", b"");
        t.raw(
            b"weekly_20260101_000000/secureclaw.json",
            ty::FILE,
            0o600,
            b"",
            b"{}",
        );
    });
    case("file-at-top", Variants::Both, &[REFUSED], |t, _| {
        t.raw(b"evil.sh", ty::FILE, 0o755, b"", b"#!/bin/sh\n");
    });
}

// ------------------------------------------------------------------ links

#[test]
fn symlink_then_write_through_it() {
    case("symlink-write", Variants::Both, &[REFUSED], |t, sb| {
        t.raw(
            format!("{TOP}/credentials").as_bytes(),
            ty::SYMLINK,
            0o777,
            canary(sb).as_bytes(),
            b"",
        );
        t.raw(
            format!("{TOP}/credentials/evil").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"pwned",
        );
        t.record("credentials", true, b"");
        t.record("credentials/evil", false, b"pwned");
    });
    case("symlink-relative", Variants::Both, &[REFUSED], |t, _| {
        t.raw(
            format!("{TOP}/agents").as_bytes(),
            ty::SYMLINK,
            0o777,
            b"../../canary",
            b"",
        );
        t.raw(
            format!("{TOP}/agents/evil").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"pwned",
        );
        t.record("agents/evil", false, b"pwned");
    });
}

/// The tar-rs CVE-2026-33056 pattern: a symlink, then a directory of the same
/// name with mode 0777, whose chmod would follow the link.
#[test]
fn symlink_then_same_named_dir_0777() {
    case("symlink-dir-0777", Variants::Both, &[REFUSED], |t, sb| {
        t.raw(
            format!("{TOP}/workspace").as_bytes(),
            ty::SYMLINK,
            0o777,
            canary(sb).as_bytes(),
            b"",
        );
        t.raw(
            format!("{TOP}/workspace/").as_bytes(),
            ty::DIR,
            0o777,
            b"",
            b"",
        );
        t.raw(
            format!("{TOP}/workspace/evil").as_bytes(),
            ty::FILE,
            0o666,
            b"",
            b"pwned",
        );
        t.record("workspace", true, b"");
        t.record("workspace/evil", false, b"pwned");
    });
}

#[test]
fn hardlink_inside() {
    case("hardlink-inside", Variants::Both, &[REFUSED], |t, _| {
        t.file("secureclaw.json", 0o600, b"{}");
        t.raw(
            format!("{TOP}/credentials.json").as_bytes(),
            ty::HARDLINK,
            0o600,
            format!("{TOP}/secureclaw.json").as_bytes(),
            b"",
        );
        t.record("credentials.json", false, b"");
    });
}

#[test]
fn hardlink_outside() {
    case("hardlink-abs", Variants::Both, &[REFUSED], |t, sb| {
        let tgt = format!("{}/keep", canary(sb));
        t.raw(
            format!("{TOP}/keep").as_bytes(),
            ty::HARDLINK,
            0o600,
            tgt.as_bytes(),
            b"",
        );
        t.record("keep", false, b"");
    });
    case("hardlink-dotdot", Variants::Both, &[REFUSED], |t, _| {
        t.raw(
            format!("{TOP}/keep").as_bytes(),
            ty::HARDLINK,
            0o600,
            b"../../w/canary/keep",
            b"",
        );
        t.record("keep", false, b"");
    });
}

// ------------------------------------------------------------------ special files

#[test]
fn char_device() {
    case("chardev", Variants::Both, &[REFUSED], |t, _| {
        t.raw(format!("{TOP}/null").as_bytes(), ty::CHAR, 0o666, b"", b"");
        t.record("null", false, b"");
    });
}

#[test]
fn block_device() {
    case("blockdev", Variants::Both, &[REFUSED], |t, _| {
        t.raw(format!("{TOP}/sda").as_bytes(), ty::BLOCK, 0o660, b"", b"");
        t.record("sda", false, b"");
    });
}

#[test]
fn fifo() {
    case("fifo", Variants::Both, &[REFUSED], |t, _| {
        t.raw(format!("{TOP}/pipe").as_bytes(), ty::FIFO, 0o600, b"", b"");
        t.record("pipe", false, b"");
    });
}

#[test]
fn other_typeflags() {
    // contiguous file, PAX global header, and an unknown type
    for (i, flag) in [ty::CONTIGUOUS, ty::PAX_GLOBAL, b'Z']
        .into_iter()
        .enumerate()
    {
        case(
            &format!("typeflag-{i}"),
            Variants::Both,
            &[REFUSED],
            |t, _| {
                t.raw(format!("{TOP}/odd").as_bytes(), flag, 0o600, b"", b"data");
                t.record("odd", false, b"data");
            },
        );
    }
    // a well-formed GNU sparse file (one 4-byte segment in a 1 MiB file)
    case("typeflag-sparse", Variants::Both, &[REFUSED], |t, _| {
        t.gnu = true;
        t.header_patched(
            format!("{TOP}/sparse").as_bytes(),
            ty::GNU_SPARSE,
            0o600,
            4,
            b"",
            |h| {
                h[386..397].copy_from_slice(format!("{:011o}", 0).as_bytes());
                h[398..409].copy_from_slice(format!("{:011o}", 4).as_bytes());
                // a final empty segment at the end sets the real size
                h[410..421].copy_from_slice(format!("{:011o}", 1 << 20).as_bytes());
                h[422..433].copy_from_slice(format!("{:011o}", 0).as_bytes());
                h[483..494].copy_from_slice(format!("{:011o}", 1 << 20).as_bytes());
            },
        );
        t.data(b"data");
        t.record("sparse", false, b"data");
    });
}

// ------------------------------------------------------------------ duplicates

#[test]
fn duplicate_file_twice() {
    case("dup-file", Variants::Both, &[REFUSED], |t, _| {
        t.file("secureclaw.json", 0o600, b"{ first: 1 }");
        t.raw(
            format!("{TOP}/secureclaw.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"{ second: 2 }",
        );
    });
}

#[test]
fn duplicate_file_then_dir() {
    case("dup-file-dir", Variants::Both, &[REFUSED], |t, _| {
        t.file("credentials", 0o600, b"x");
        t.raw(
            format!("{TOP}/credentials/").as_bytes(),
            ty::DIR,
            0o700,
            b"",
            b"",
        );
        t.raw(
            format!("{TOP}/credentials/a.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"{}",
        );
    });
    case("dup-dir-file", Variants::Both, &[REFUSED], |t, _| {
        t.dir("credentials", 0o700);
        t.raw(
            format!("{TOP}/credentials").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"x",
        );
    });
    case("dup-dir-dir", Variants::Both, &[REFUSED], |t, _| {
        t.dir("credentials", 0o700);
        t.raw(
            format!("{TOP}/credentials/").as_bytes(),
            ty::DIR,
            0o777,
            b"",
            b"",
        );
    });
    case("dup-top", Variants::Both, &[REFUSED], |t, _| {
        t.top();
    });
    // a manifest name (streamed, never staged) reused by a directory or twice
    case("dup-manifest-dir", Variants::Both, &[REFUSED], |t, _| {
        for (name, ty, data) in [
            ("manifest.txt", ty::FILE, &b"x"[..]),
            ("manifest.txt/", ty::DIR, &b""[..]),
        ] {
            t.raw(format!("{TOP}/{name}").as_bytes(), ty, 0o600, b"", data);
        }
    });
    case("dup-manifest-file", Variants::Both, &[REFUSED], |t, _| {
        for _ in 0..2 {
            t.raw(
                format!("{TOP}/manifest.txt").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                b"x",
            );
        }
    });
}

// ------------------------------------------------------------------ PAX / GNU overrides

#[test]
fn pax_path_override() {
    case("pax-path-dotdot", Variants::Both, &[REFUSED], |t, _| {
        t.pax(&[("path", format!("{TOP}/../../escape-pax").as_bytes())]);
        t.raw(
            format!("{TOP}/benign").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"pwned",
        );
        t.record("benign", false, b"pwned");
    });
    case("pax-path-absolute", Variants::Both, &[REFUSED], |t, sb| {
        let abs = format!("{}/pax-abs", canary(sb));
        t.pax(&[("path", abs.as_bytes())]);
        t.raw(
            format!("{TOP}/benign").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"pwned",
        );
        t.record("benign", false, b"pwned");
    });
    case("pax-path-other-top", Variants::Both, &[REFUSED], |t, _| {
        t.file("secureclaw.json", 0o600, b"{}");
        t.pax(&[("path", b"weekly_20260101_000000/x")]);
        t.raw(
            format!("{TOP}/benign").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"x",
        );
        t.record("benign", false, b"x");
    });
    case("pax-path-nul", Variants::Both, &[REFUSED], |t, _| {
        t.pax(&[("path", format!("{TOP}/a\0/../../x").as_bytes())]);
        t.raw(
            format!("{TOP}/benign").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"x",
        );
        t.record("benign", false, b"x");
    });
}

#[test]
fn pax_linkpath_override() {
    case("pax-linkpath-file", Variants::Both, &[REFUSED], |t, sb| {
        t.pax(&[("linkpath", canary(sb).as_bytes())]);
        t.raw(
            format!("{TOP}/benign").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"x",
        );
        t.record("benign", false, b"x");
    });
    case(
        "pax-linkpath-symlink",
        Variants::Both,
        &[REFUSED],
        |t, sb| {
            t.pax(&[("linkpath", canary(sb).as_bytes())]);
            t.raw(
                format!("{TOP}/link").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"harmless",
                b"",
            );
            t.raw(
                format!("{TOP}/link/evil").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                b"pwned",
            );
            t.record("link/evil", false, b"pwned");
        },
    );
}

#[test]
fn gnu_long_name_override() {
    case("gnu-longname-dotdot", Variants::Both, &[REFUSED], |t, _| {
        t.gnu = true;
        t.gnu_longname(format!("{TOP}/../../escape-gnu").as_bytes());
        t.raw(
            format!("{TOP}/benign").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"pwned",
        );
        t.record("benign", false, b"pwned");
    });
    case(
        "gnu-longname-absolute",
        Variants::Both,
        &[REFUSED],
        |t, sb| {
            t.gnu = true;
            t.gnu_longname(format!("{}/gnu-abs", canary(sb)).as_bytes());
            t.raw(
                format!("{TOP}/benign").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                b"pwned",
            );
            t.record("benign", false, b"pwned");
        },
    );
    case(
        "gnu-longlink-hardlink",
        Variants::Both,
        &[REFUSED],
        |t, sb| {
            t.gnu = true;
            t.gnu_longlink(format!("{}/keep", canary(sb)).as_bytes());
            t.raw(
                format!("{TOP}/keep").as_bytes(),
                ty::HARDLINK,
                0o600,
                b"x",
                b"",
            );
            t.record("keep", false, b"");
        },
    );
}

#[test]
fn pax_size_disagreeing_with_header() {
    // the header says 5 bytes, PAX says 1024: a parser that believes the
    // header would read the rest as further (hidden) entries
    case("pax-size", Variants::Both, &[REFUSED], |t, _| {
        let mut hidden = Tar::new();
        hidden.raw(
            format!("{TOP}/hidden").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"smuggled",
        );
        let mut payload = b"abcde".to_vec();
        payload.resize(512, 0);
        payload.extend_from_slice(&hidden.buf);
        payload.resize(1024, 0);
        t.pax(&[("size", b"1024")]);
        t.header(format!("{TOP}/notes").as_bytes(), ty::FILE, 0o600, 5, b"");
        t.buf.extend_from_slice(&payload);
        t.record("notes", false, &payload);
    });
    case("pax-size-invalid", Variants::Both, &[REFUSED], |t, _| {
        t.pax(&[("size", b"-1")]);
        t.raw(
            format!("{TOP}/notes").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"abcde",
        );
        t.record("notes", false, b"abcde");
    });
}

// ------------------------------------------------------------------ names

/// A non-UTF-8 name is data now (backups archive such names), but the
/// manifest must list its exact bytes: a lossy record does not match.
#[test]
fn non_utf8_name() {
    case("non-utf8", Variants::ManifestOnly, &[INTEGRITY], |t, _| {
        let mut name = format!("{TOP}/caf").into_bytes();
        name.push(0xE9);
        t.raw(&name, ty::FILE, 0o600, b"", b"x");
        t.record("caf\u{FFFD}", false, b"x");
    });
}

/// A NUL byte inside a name (possible only through a PAX `path` record) is
/// still refused.
#[test]
fn nul_in_a_name() {
    case("nul-name", Variants::Both, &[REFUSED], |t, _| {
        t.pax(&[("path", format!("{TOP}/cred\0entials.json").as_bytes())]);
        t.raw(format!("{TOP}/x").as_bytes(), ty::FILE, 0o600, b"", b"x");
        t.record("cred\0entials.json", false, b"x");
    });
}

#[test]
fn over_long_names() {
    // a component beyond 255 bytes
    case("long-component", Variants::Both, &[REFUSED], |t, _| {
        let rel = "c".repeat(300);
        t.pax(&[("path", format!("{TOP}/{rel}").as_bytes())]);
        t.raw(format!("{TOP}/x").as_bytes(), ty::FILE, 0o600, b"", b"x");
        t.record(&rel, false, b"x");
    });
    // a path beyond 4096 bytes (GNU long name)
    case("long-path", Variants::Both, &[REFUSED], |t, _| {
        t.gnu = true;
        let rel = vec!["d".repeat(200); 25].join("/");
        t.gnu_longname(format!("{TOP}/{rel}").as_bytes());
        t.raw(format!("{TOP}/x").as_bytes(), ty::FILE, 0o600, b"", b"x");
        t.record(&rel, false, b"x");
    });
}

/// A name within the archive limit that does not fit below the target
/// (target path + name beyond PATH_MAX): refused, nothing left behind.
/// `verify` has no target, so it is not compared here.
#[test]
fn long_path_beyond_path_max_of_staging() {
    for backend in backends() {
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let mut t = Tar::new();
        t.gnu = true;
        t.top();
        // 4090 bytes in the archive; with the staging prefix well above 4096
        let mut rel = vec!["e".repeat(200); 20].join("/");
        rel.push('/');
        rel.push_str(&"f".repeat(4090 - TOP.len() - 1 - rel.len()));
        let full = format!("{TOP}/{rel}");
        assert_eq!(full.len(), 4090);
        t.gnu_longname(full.as_bytes());
        t.raw(format!("{TOP}/x").as_bytes(), ty::FILE, 0o600, b"", b"x");
        let tar = t.finish(false);
        let archive = write_archive(&sb.p("arch"), "path-max", backend, &tar);
        let before = snapshot(&sb.p("w"));
        let out = sb.run(&[
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            "--target".as_ref(),
            sb.target().as_os_str(),
            "--no-snapshot".as_ref(),
        ]);
        assert_eq!(out.code, REFUSED, "{backend:?}: {}", out.text());
        let after = snapshot(&sb.p("w"));
        assert!(before == after, "{}", diff(&before, &after));
    }
}

// ------------------------------------------------------------------ modes

/// setuid, setgid, sticky and 0777 modes are clamped (files 0600, or 0700 with
/// the owner's execute bit; directories 0700), not refused.
#[test]
fn setuid_sticky_0777_modes_are_clamped() {
    for backend in backends() {
        for with_manifest in [true, false] {
            let sb = Sandbox::new();
            populate_target(&sb.target());
            let mut t = Tar::new();
            t.top();
            t.dir("credentials", 0o1777);
            t.dir("agents", 0o777);
            t.dir("agents/main", 0o2775);
            t.dir("agents/main/agent", 0o7777);
            t.file("credentials/oauth.json", 0o4755, b"{\"new\":1}");
            t.file("credentials/world.json", 0o666, b"{}");
            t.file("agents/main/agent/run.sh", 0o6777, b"#!/bin/sh\n");
            t.file("agents/main/agent/auth.json", 0o1644, b"{}");
            t.file("secureclaw.json", 0o777 & !0o100, b"{ new: true }");
            let tar = t.finish(with_manifest);
            let archive = write_archive(&sb.p("arch"), "modes", backend, &tar);
            let label = format!("modes [{backend:?}, manifest: {with_manifest}]");
            let id = backend.identity();
            let v = sb.run(&[
                "verify".as_ref(),
                "-i".as_ref(),
                id.as_os_str(),
                archive.as_os_str(),
            ]);
            assert_eq!(v.code, 0, "{label}: {}", v.text());
            let out = sb.run(&[
                "restore".as_ref(),
                archive.as_os_str(),
                "-i".as_ref(),
                id.as_os_str(),
                "--target".as_ref(),
                sb.target().as_os_str(),
                "--no-snapshot".as_ref(),
            ]);
            assert_eq!(out.code, 0, "{label}: {}", out.text());
            let tree = snapshot(&sb.target());
            let mode = |p: &str| {
                tree.get(p)
                    .unwrap_or_else(|| panic!("{label}: {p} missing"))
                    .0
            };
            assert_eq!(mode(""), 0o700, "{label}: target");
            for d in ["credentials", "agents", "agents/main", "agents/main/agent"] {
                assert_eq!(mode(d), 0o700, "{label}: {d}");
            }
            assert_eq!(mode("credentials/oauth.json"), 0o700, "{label}");
            assert_eq!(mode("credentials/world.json"), 0o600, "{label}");
            assert_eq!(mode("agents/main/agent/run.sh"), 0o700, "{label}");
            assert_eq!(mode("agents/main/agent/auth.json"), 0o600, "{label}");
            assert_eq!(mode("secureclaw.json"), 0o600, "{label}");
            // nothing of the archive is anything but a 0600/0700 file or a 0700 dir
            for (p, (m, n)) in &tree {
                if p.starts_with("workspace") || p.starts_with("agents/main/sessions") {
                    continue; // kept from the old tree, untouched
                }
                match n {
                    Node::Dir => assert_eq!(*m, 0o700, "{label}: {p}"),
                    Node::File(_) => assert!(*m == 0o600 || *m == 0o700, "{label}: {p} {m:o}"),
                    other => panic!("{label}: {p} is {other:?}"),
                }
            }
            // the components the archive lacks are kept as they were
            assert_eq!(mode("workspace"), 0o750, "{label}");
            assert_eq!(
                tree["workspace/notes.md"],
                (0o640, Node::File(b"old notes\n".to_vec()))
            );
            let left: Vec<_> = fs::read_dir(sb.p("w/parent"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                left,
                vec![std::ffi::OsString::from("target")],
                "{label}: leftovers"
            );
        }
    }
}

// ------------------------------------------------------------------ resources

/// Peak resident memory (KiB) of a child, sampled from /proc while it runs.
fn run_measured(mut c: Command) -> (Out, u64) {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let ro = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut so, &mut s);
        s
    });
    let re = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut se, &mut s);
        s
    });
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/status")) {
            for l in s.lines() {
                if let Some(v) = l.strip_prefix("VmHWM:") {
                    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kb);
                }
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = Out {
        code: status.code().unwrap_or(-1),
        stdout: ro.join().unwrap(),
        stderr: re.join().unwrap(),
    };
    (out, peak)
}

/// A tmpfs of `mb` MiB mounted by the test; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u32) -> Result<Tmpfs, String> {
        let o = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if o.status.success() {
            Ok(Tmpfs(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// gzip at the best level of `n` zero bytes, streamed (about 1000:1).
fn gzip_zeros_entry(n: u64, name: &str) -> Vec<u8> {
    use std::io::Write;
    let mut t = Tar::new();
    t.top();
    t.header(format!("{TOP}/{name}").as_bytes(), ty::FILE, 0o600, n, b"");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&t.buf).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        e.write_all(&zeros[..k]).unwrap();
        left -= k as u64;
    }
    // padding + end of archive are zeros too
    e.write_all(&[0u8; 1024]).unwrap();
    e.finish().unwrap()
}

const MEMORY_BOUND_KB: u64 = 256 * 1024;

/// A 1000:1 gzip bomb: 256 MiB of zeros in ~260 KB of ciphertext. Restored
/// into a 128 MiB tmpfs it is refused (5) from the header size, before any
/// disk fills; restored onto a large disk with a manifest that does not match
/// it streams through in bounded memory and fails (3), staging removed.
#[test]
fn gzip_bomb_1000_to_1() {
    const N: u64 = 256 << 20;
    let gz = gzip_zeros_entry(N, "bomb.bin");
    assert!(N / gz.len() as u64 >= 900, "ratio {}", N / gz.len() as u64);
    let backend = Backend::Age;
    let id = backend.identity();

    // (a) small tmpfs target
    let sb = Sandbox::new();
    match Tmpfs::mount(&sb.p("w/parent"), 128) {
        Err(e) => {
            eprintln!("SKIPPED the tmpfs part of gzip_bomb_1000_to_1: cannot mount a tmpfs ({e})")
        }
        Ok(_m) => {
            populate_target(&sb.target());
            let archive = sb.p("arch/bomb.tar.gz.age");
            write_mode(&archive, &age_encrypt(&gz), 0o600);
            let before = snapshot(&sb.p("w"));
            let mut c = sb.cmd();
            c.arg("restore")
                .arg(&archive)
                .arg("-i")
                .arg(&id)
                .arg("--target")
                .arg(sb.target())
                .arg("--no-snapshot");
            let (out, peak) = run_measured(c);
            assert_eq!(out.code, REFUSED, "{}", out.text());
            assert!(peak < MEMORY_BOUND_KB, "peak RSS {peak} KiB");
            assert!(
                before == snapshot(&sb.p("w")),
                "{}",
                diff(&before, &snapshot(&sb.p("w")))
            );
        }
    }

    // (b) large disk, a manifest that lies about the content: streams through
    let sb = Sandbox::new();
    populate_target(&sb.target());
    let mut m = Tar::new();
    m.record("bomb.bin", false, b"not the zeros");
    m.manifest[0].size = N;
    let mj = m.manifest_json();
    let mut tail = Tar::new();
    tail.raw(
        format!("{TOP}/manifest.json").as_bytes(),
        ty::FILE,
        0o600,
        b"",
        &mj,
    );
    tail.buf.extend(std::iter::repeat_n(0u8, 1024));
    // the bomb's own end-of-archive would stop the reader: rebuild without it
    let mut plain = Vec::new();
    {
        use std::io::Write;
        let mut t = Tar::new();
        t.top();
        t.header(
            format!("{TOP}/bomb.bin").as_bytes(),
            ty::FILE,
            0o600,
            N,
            b"",
        );
        let mut e = flate2::write::GzEncoder::new(&mut plain, flate2::Compression::best());
        e.write_all(&t.buf).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(N >> 20) {
            e.write_all(&zeros).unwrap();
        }
        e.write_all(&tail.buf).unwrap();
        e.finish().unwrap();
    }
    let archive = sb.p("arch/bomb2.tar.gz.age");
    write_mode(&archive, &age_encrypt(&plain), 0o600);
    let before = snapshot(&sb.p("w"));
    let mut c = sb.cmd();
    c.arg("restore")
        .arg(&archive)
        .arg("-i")
        .arg(&id)
        .arg("--target")
        .arg(sb.target())
        .arg("--no-snapshot");
    let (out, peak) = run_measured(c);
    assert_eq!(out.code, INTEGRITY, "{}", out.text());
    assert!(peak < MEMORY_BOUND_KB, "peak RSS {peak} KiB");
    assert!(
        before == snapshot(&sb.p("w")),
        "{}",
        diff(&before, &snapshot(&sb.p("w")))
    );
    let mut c = sb.cmd();
    c.arg("verify").arg("-i").arg(&id).arg(&archive);
    let (v, vpeak) = run_measured(c);
    assert_eq!(v.code, INTEGRITY, "{}", v.text());
    assert!(vpeak < MEMORY_BOUND_KB, "verify peak RSS {vpeak} KiB");
}

/// An entry whose header claims an exabyte (GNU base-256 size) followed by a
/// little data: refused before anything is written, in bounded memory.
#[test]
fn entry_claiming_exabytes() {
    case("exabytes", Variants::Both, &[REFUSED], |t, _| {
        t.header(
            format!("{TOP}/huge.bin").as_bytes(),
            ty::FILE,
            0o600,
            1u64 << 60,
            b"",
        );
        t.buf.extend(std::iter::repeat_n(0x41u8, 4096));
        t.record("huge.bin", false, b"");
    });
    case("exabytes-pax", Variants::Both, &[REFUSED], |t, _| {
        t.pax(&[("size", b"9000000000000000000")]);
        t.header(
            format!("{TOP}/huge.bin").as_bytes(),
            ty::FILE,
            0o600,
            0,
            b"",
        );
        t.buf.extend(std::iter::repeat_n(0x41u8, 4096));
        t.record("huge.bin", false, b"");
    });
    // memory and disk stay bounded on the restore side
    let sb = Sandbox::new();
    populate_target(&sb.target());
    let mut t = Tar::new();
    t.top();
    t.header(
        format!("{TOP}/huge.bin").as_bytes(),
        ty::FILE,
        0o600,
        1u64 << 60,
        b"",
    );
    t.buf.extend(std::iter::repeat_n(0u8, 1 << 20));
    let archive = write_archive(&sb.p("arch"), "exa", Backend::Age, &t.buf);
    let mut c = sb.cmd();
    c.arg("restore")
        .arg(&archive)
        .arg("-i")
        .arg(Backend::Age.identity())
        .arg("--target")
        .arg(sb.target())
        .arg("--no-snapshot");
    let (out, peak) = run_measured(c);
    assert_eq!(out.code, REFUSED, "{}", out.text());
    assert!(peak < MEMORY_BOUND_KB, "peak RSS {peak} KiB");
}

// ------------------------------------------------------------------ manifest

#[test]
fn entry_not_in_manifest() {
    case(
        "unlisted-file",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.file("secureclaw.json", 0o600, b"{}");
            t.raw(
                format!("{TOP}/extra.json").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                b"{}",
            );
        },
    );
    case(
        "unlisted-dir",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.file("secureclaw.json", 0o600, b"{}");
            t.raw(format!("{TOP}/extra/").as_bytes(), ty::DIR, 0o700, b"", b"");
        },
    );
}

#[test]
fn manifest_entry_missing() {
    case(
        "missing-file",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.file("secureclaw.json", 0o600, b"{}");
            t.record("credentials/oauth.json", false, b"{}");
        },
    );
    case(
        "missing-dir",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.file("secureclaw.json", 0o600, b"{}");
            t.record("identity", true, b"");
        },
    );
}

#[test]
fn manifest_wrong_hash() {
    case(
        "wrong-hash",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.file("secureclaw.json", 0o600, b"{ real: 1 }");
            t.manifest[0].sha256 = sha256_hex(b"{ declared: 1 }");
        },
    );
    case(
        "wrong-size",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.file("secureclaw.json", 0o600, b"{ real: 1 }");
            t.manifest[0].size += 1;
        },
    );
    case(
        "file-listed-as-dir",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.file("secureclaw.json", 0o600, b"{}");
            t.manifest[0].dir = true;
        },
    );
}

#[test]
fn manifest_top_level_mismatch() {
    // the top-level directory must be <type>_<timestamp> of the manifest
    for backend in backends() {
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let mut t = Tar::new();
        t.file("secureclaw.json", 0o600, b"{}");
        let m = t.manifest_json();
        let mut t2 = Tar::new();
        let other = "weekly_20250101_000000";
        t2.raw(format!("{other}/").as_bytes(), ty::DIR, 0o700, b"", b"");
        t2.raw(
            format!("{other}/secureclaw.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"{}",
        );
        t2.raw(
            format!("{other}/manifest.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            &m,
        );
        let tar = t2.finish(false);
        let archive = write_archive(&sb.p("arch"), "top-mismatch", backend, &tar);
        expect_rejected(
            &sb,
            &archive,
            &backend.identity(),
            &[INTEGRITY],
            &format!("top mismatch [{backend:?}]"),
        );
    }
}

#[test]
fn manifest_malformed() {
    for backend in backends() {
        for (i, m) in [&b"{ not json"[..], br#"{"format":"other","version":1}"#]
            .iter()
            .enumerate()
        {
            let sb = Sandbox::new();
            populate_target(&sb.target());
            let mut t = Tar::new();
            t.top();
            t.file("secureclaw.json", 0o600, b"{}");
            t.raw(
                format!("{TOP}/manifest.json").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                m,
            );
            let tar = t.finish(false);
            let archive = write_archive(&sb.p("arch"), "bad-manifest", backend, &tar);
            expect_rejected(
                &sb,
                &archive,
                &backend.identity(),
                &[INTEGRITY],
                &format!("malformed manifest {i} [{backend:?}]"),
            );
        }
    }
}

// ------------------------------------------------------------------ ciphertext damage

fn benign_archive(backend: Backend, content: &[u8]) -> Vec<u8> {
    let tar = benign_tar(
        &[
            ("secureclaw.json", b"{}"),
            ("credentials/oauth.json", content),
        ],
        true,
    );
    backend.encrypt(&gzip(&tar))
}

/// Splits an OpenPGP message after its first packet (the PKESK).
fn first_packet_len(d: &[u8]) -> usize {
    let tag = d[0];
    assert!(tag & 0x80 != 0, "not an OpenPGP packet");
    if tag & 0x40 != 0 {
        // new format
        let l0 = d[1] as usize;
        if l0 < 192 {
            2 + l0
        } else if l0 < 224 {
            3 + ((l0 - 192) << 8) + d[2] as usize + 192
        } else if l0 == 255 {
            6 + u32::from_be_bytes([d[2], d[3], d[4], d[5]]) as usize
        } else {
            panic!("partial length for a PKESK")
        }
    } else {
        match tag & 3 {
            0 => 2 + d[1] as usize,
            1 => 3 + u16::from_be_bytes([d[1], d[2]]) as usize,
            2 => 5 + u32::from_be_bytes([d[1], d[2], d[3], d[4]]) as usize,
            _ => panic!("indeterminate length for a PKESK"),
        }
    }
}

fn header_len(backend: Backend, d: &[u8]) -> usize {
    match backend {
        Backend::Age => {
            let pos = d.windows(4).position(|w| w == b"\n---").unwrap();
            pos + 1 + d[pos + 1..].iter().position(|&b| b == b'\n').unwrap() + 1
        }
        Backend::Pgp => first_packet_len(d),
    }
}

fn damaged(name: &str, expect: &[i32], make: impl Fn(Backend) -> Vec<u8>) {
    for backend in backends() {
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let archive = sb.p(&format!("arch/{name}.{}", backend.suffix()));
        write_mode(&archive, &make(backend), 0o600);
        expect_rejected(
            &sb,
            &archive,
            &backend.identity(),
            expect,
            &format!("{name} [{backend:?}]"),
        );
    }
}

#[test]
fn header_of_a_spliced_onto_payload_of_b() {
    damaged("spliced", &[INTEGRITY], |b| {
        let a = benign_archive(b, b"{\"archive\":\"A\"}");
        let bb = benign_archive(b, &vec![b'B'; 300_000]);
        let mut out = a[..header_len(b, &a)].to_vec();
        out.extend_from_slice(&bb[header_len(b, &bb)..]);
        out
    });
}

#[test]
fn trailing_bytes_after_ciphertext() {
    damaged("trailing", &[INTEGRITY], |b| {
        let mut a = benign_archive(b, b"{}");
        a.extend_from_slice(&Rng(7).bytes(100));
        a
    });
    damaged("trailing-zeros", &[INTEGRITY], |b| {
        let mut a = benign_archive(b, b"{}");
        a.extend_from_slice(&[0u8; 512]);
        a
    });
}

#[test]
fn trailing_data_inside_the_payload() {
    // a second gzip member after the tar, and garbage after the gzip stream:
    // both decrypt fine
    damaged("second-gzip-member", &[INTEGRITY], |b| {
        let tar = benign_tar(&[("secureclaw.json", b"{}")], true);
        let mut gz = gzip(&tar);
        gz.extend_from_slice(&gzip(b"appended data after the end of the tar"));
        b.encrypt(&gz)
    });
    damaged("garbage-after-gzip", &[INTEGRITY], |b| {
        let tar = benign_tar(&[("secureclaw.json", b"{}")], true);
        let mut gz = gzip(&tar);
        gz.extend_from_slice(b"garbage garbage garbage");
        b.encrypt(&gz)
    });
    damaged("not-gzip", &[INTEGRITY], |b| {
        b.encrypt(&benign_tar(&[("secureclaw.json", b"{}")], true))
    });
    damaged("truncated-gzip", &[INTEGRITY], |b| {
        let gz = gzip(&benign_tar(
            &[("secureclaw.json", &Rng(3).bytes(100_000))],
            true,
        ));
        b.encrypt(&gz[..gz.len() / 2])
    });
    damaged("tar-without-end", &[INTEGRITY], |b| {
        let mut t = Tar::new();
        t.top();
        t.header(
            format!("{TOP}/cut.bin").as_bytes(),
            ty::FILE,
            0o600,
            100_000,
            b"",
        );
        t.buf.extend_from_slice(&[1u8; 5000]);
        b.encrypt(&gzip(&t.buf))
    });
}

#[test]
fn empty_file() {
    damaged("empty", &[INTEGRITY], |_| Vec::new());
}

#[test]
fn random_bytes() {
    for seed in 1..4u64 {
        damaged(&format!("random-{seed}"), &[INTEGRITY], |_| {
            Rng(seed * 7919).bytes(70_000)
        });
    }
    // random bytes behind a valid-looking magic
    damaged("random-with-magic", &[INTEGRITY], |b| {
        let mut d = match b {
            Backend::Age => b"age-encryption.org/v1\n".to_vec(),
            Backend::Pgp => vec![0x85, 0x01, 0x0c],
        };
        d.extend_from_slice(&Rng(99).bytes(10_000));
        d
    });
}

#[test]
fn flipped_byte_in_the_middle() {
    damaged("flipped", &[INTEGRITY], |b| {
        let mut a = benign_archive(b, &Rng(5).bytes(200_000));
        let mid = a.len() / 2;
        a[mid] ^= 0x01;
        a
    });
}

#[test]
fn truncated() {
    for (i, cut) in [2usize, 3, 100].into_iter().enumerate() {
        damaged(&format!("truncated-{i}"), &[INTEGRITY], |b| {
            let a = benign_archive(b, &Rng(11).bytes(200_000));
            let keep = match cut {
                2 => a.len() / 2,
                3 => a.len() - 1,
                _ => header_len(b, &a) + 10,
            };
            a[..keep].to_vec()
        });
    }
}

#[test]
fn wrong_key() {
    damaged("wrong-key", &[KEY], |b| match b {
        Backend::Age => {
            let other = age::x25519::Identity::generate().to_public();
            let enc =
                age::Encryptor::with_recipients(std::iter::once(&other as &dyn age::Recipient))
                    .unwrap();
            let mut out = Vec::new();
            let mut w = enc.wrap_output(&mut out).unwrap();
            std::io::Write::write_all(&mut w, &gzip(&benign_tar(&[("a", b"b")], true))).unwrap();
            w.finish().unwrap();
            out
        }
        // an archive for the *other* example certificate
        Backend::Pgp => {
            let home = tempfile::tempdir().unwrap();
            let imp = Command::new("gpg")
                .env("GNUPGHOME", home.path())
                .args(["--batch", "--no-autostart", "--quiet", "--import"])
                .arg(key("openpgp-example-protected.pub.asc"))
                .output()
                .unwrap();
            assert!(imp.status.success());
            let plain = sb_tmp_file(&gzip(&benign_tar(&[("a", b"b")], true)));
            let o = Command::new("gpg")
                .env("GNUPGHOME", home.path())
                .args([
                    "--batch",
                    "--no-autostart",
                    "--quiet",
                    "--encrypt",
                    "-z",
                    "0",
                    "--trust-model",
                    "always",
                    "-r",
                ])
                .arg("backup-protected@secureclaw.invalid")
                .arg("-o")
                .arg("-")
                .arg(plain.path())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        }
    });
}

fn sb_tmp_file(d: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, d).unwrap();
    f
}

// ------------------------------------------------------------------ snapshot ordering

/// Refusal happens before the pre-restore snapshot: with recipients given
/// (no --no-snapshot), a hostile archive leaves the snapshot destination
/// untouched (not even created).
#[test]
fn refused_before_the_pre_restore_snapshot() {
    for backend in backends() {
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let mut t = Tar::new();
        t.top();
        t.file("secureclaw.json", 0o600, b"{}");
        t.raw(
            format!("{TOP}/credentials").as_bytes(),
            ty::SYMLINK,
            0o777,
            canary(&sb).as_bytes(),
            b"",
        );
        let tar = t.finish(true);
        let archive = write_archive(&sb.p("arch"), "snap", backend, &tar);
        let before = snapshot(&sb.p("w"));
        let recipient = backend.recipient();
        let out = sb.run(&[
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            "--target".as_ref(),
            sb.target().as_os_str(),
            "-r".as_ref(),
            recipient.as_ref(),
            "--dest".as_ref(),
            sb.p("w/dest").as_os_str(),
        ]);
        assert_eq!(out.code, REFUSED, "{backend:?}: {}", out.text());
        assert!(!out.text().contains("snapshot:"), "{}", out.text());
        assert!(
            !sb.p("w/dest").exists(),
            "{backend:?}: the snapshot destination was created"
        );
        assert!(
            before == snapshot(&sb.p("w")),
            "{}",
            diff(&before, &snapshot(&sb.p("w")))
        );
    }
}

/// Sanity check of the harness: a benign hand-made archive restores (both
/// backends, with and without manifest) and its files arrive owner-only.
#[test]
fn benign_hand_made_archive_restores() {
    for backend in backends() {
        for with_manifest in [true, false] {
            let sb = Sandbox::new();
            populate_target(&sb.target());
            let tar = benign_tar(
                &[
                    ("secureclaw.json", b"{ restored: 1 }"),
                    ("credentials/oauth.json", b"{}"),
                ],
                with_manifest,
            );
            let archive = write_archive(&sb.p("arch"), "benign", backend, &tar);
            let out = sb.run(&[
                "restore".as_ref(),
                archive.as_os_str(),
                "-i".as_ref(),
                backend.identity().as_os_str(),
                "--target".as_ref(),
                sb.target().as_os_str(),
                "--no-snapshot".as_ref(),
            ]);
            assert_eq!(
                out.code,
                0,
                "{backend:?} manifest {with_manifest}: {}",
                out.text()
            );
            assert_eq!(
                fs::read(sb.target().join("secureclaw.json")).unwrap(),
                b"{ restored: 1 }"
            );
            let m = fs::metadata(sb.target().join("credentials/oauth.json")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
    }
}

/// A legacy archive (no manifest) where the old daily script's misplaced
/// transcripts would be moved under `agents/<id>/sessions/`, but
/// `sessions` is a file: not an operational failure.
#[test]
fn legacy_transcript_fix_with_sessions_as_a_file() {
    for backend in backends() {
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let tar = benign_tar(
            &[
                ("agents/main/sessions", b"not a directory"),
                ("agents/main/t1.jsonl", b"{\"t\":1}\n"),
            ],
            false,
        );
        let archive = write_archive(&sb.p("arch"), "legacy-sessions", backend, &tar);
        let out = sb.run(&[
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            "--target".as_ref(),
            sb.target().as_os_str(),
            "--no-snapshot".as_ref(),
        ]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.text());
        let t = snapshot(&sb.target());
        assert_eq!(
            t["agents/main/sessions"].1,
            Node::File(b"not a directory".to_vec())
        );
        assert_eq!(
            t["agents/main/t1.jsonl"].1,
            Node::File(b"{\"t\":1}\n".to_vec())
        );
    }
}

/// ASCII-armored ciphertexts (both backends read them): bytes after the armor
/// footer, and a truncated armor, are integrity failures too.
#[test]
fn armored_ciphertext_with_trailing_data_or_truncated() {
    let plain = gzip(&benign_tar(&[("secureclaw.json", b"{}")], true));
    let armored = |b: Backend| -> Vec<u8> {
        match b {
            Backend::Age => {
                let r: age::x25519::Recipient = age_pub().parse().unwrap();
                let enc =
                    age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                        .unwrap();
                let mut out = Vec::new();
                let aw = age::armor::ArmoredWriter::wrap_output(
                    &mut out,
                    age::armor::Format::AsciiArmor,
                )
                .unwrap();
                let mut w = enc.wrap_output(aw).unwrap();
                std::io::Write::write_all(&mut w, &plain).unwrap();
                w.finish().unwrap().finish().unwrap();
                out
            }
            Backend::Pgp => gpg_encrypt_armored(&plain),
        }
    };
    // the intact armored archive restores
    for backend in backends() {
        let sb = Sandbox::new();
        let archive = sb.p(&format!("arch/armored.{}", backend.suffix()));
        write_mode(&archive, &armored(backend), 0o600);
        let v = sb.run(&[
            "verify".as_ref(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            archive.as_os_str(),
        ]);
        assert_eq!(v.code, 0, "{backend:?}: {}", v.text());
    }
    // text after the footer: age's armor is strict. (An OpenPGP armor, made
    // to sit inside text such as an e-mail, tolerates text after its footer;
    // the message itself is still authenticated to its end, so that is not
    // checked here.)
    {
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let mut a = armored(Backend::Age);
        a.extend_from_slice(b"\nappended line after the armor\n");
        let archive = sb.p("arch/armored-trailing.tar.gz.age");
        write_mode(&archive, &a, 0o600);
        expect_rejected(
            &sb,
            &archive,
            &Backend::Age.identity(),
            &[INTEGRITY],
            "armored-trailing [Age]",
        );
    }
    damaged("armored-truncated", &[INTEGRITY], |b| {
        let a = armored(b);
        a[..a.len() * 2 / 3].to_vec()
    });
}

fn gpg_encrypt_armored(plain: &[u8]) -> Vec<u8> {
    let f = sb_tmp_file(plain);
    let home = tempfile::tempdir().unwrap();
    let imp = Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args(["--batch", "--no-autostart", "--quiet", "--import"])
        .arg(key("openpgp-example.pub.asc"))
        .output()
        .unwrap();
    assert!(imp.status.success());
    let o = Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args([
            "--batch",
            "--no-autostart",
            "--quiet",
            "--armor",
            "--encrypt",
            "-z",
            "0",
            "--trust-model",
            "always",
            "-r",
        ])
        .arg(pgp_keyid())
        .arg("-o")
        .arg("-")
        .arg(f.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// Ambiguous overrides that parsers resolve differently (tar-rs takes the
/// first PAX `path` and prefers a GNU long name over PAX; GNU tar takes the
/// last record and prefers PAX): an archive that is harmless for us could be
/// hostile for `age -d | tar xz`. Refused.
#[test]
fn ambiguous_pax_and_gnu_overrides() {
    case("pax-path-twice", Variants::Both, &[REFUSED], |t, _| {
        t.pax(&[
            ("path", format!("{TOP}/benign").as_bytes()),
            ("path", format!("{TOP}/../../escape-second").as_bytes()),
        ]);
        t.raw(
            format!("{TOP}/benign").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"x",
        );
        t.record("benign", false, b"x");
    });
    case(
        "gnu-longname-and-pax-path",
        Variants::Both,
        &[REFUSED],
        |t, _| {
            t.gnu = true;
            t.pax(&[("path", format!("{TOP}/../../escape-pax").as_bytes())]);
            t.gnu_longname(format!("{TOP}/benign").as_bytes());
            t.raw(
                format!("{TOP}/benign").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                b"x",
            );
            t.record("benign", false, b"x");
        },
    );
}

// ------------------------------------------------------------------ issue 13: new rules, same safety

/// Appends a manifest.json (when `with_manifest`) listing the recorded
/// entries plus `extra` (symlinks, byte names), optionally with the PAX mark
/// of a manifest entry, and ends the archive.
fn finish_with(
    mut t: Tar,
    with_manifest: bool,
    extra: &[serde_json::Value],
    marked: bool,
) -> Vec<u8> {
    if with_manifest {
        let mut m: serde_json::Value = serde_json::from_slice(&t.manifest_json()).unwrap();
        m["entries"]
            .as_array_mut()
            .unwrap()
            .extend(extra.iter().cloned());
        let m = serde_json::to_vec_pretty(&m).unwrap();
        if marked {
            t.pax(&[("comment", b"secureclaw-backup manifest.json")]);
        }
        t.raw(
            format!("{TOP}/manifest.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            &m,
        );
    }
    t.finish(false)
}

fn link_entry(path: &str, target: &str) -> serde_json::Value {
    serde_json::json!({"path": path, "type": "symlink", "size": 0, "mode": "0777", "target": target})
}

/// Like [`case`], with extra manifest entries from `build`.
fn case_x(
    name: &str,
    variants: Variants,
    expect: &[i32],
    build: impl Fn(&mut Tar, &Sandbox) -> Vec<serde_json::Value>,
) {
    for backend in backends() {
        let manifests: &[bool] = match variants {
            Variants::Both => &[true, false],
            Variants::ManifestOnly => &[true],
        };
        for &with_manifest in manifests {
            let sb = Sandbox::new();
            populate_target(&sb.target());
            let mut t = Tar::new();
            t.top();
            let extra = build(&mut t, &sb);
            let tar = finish_with(t, with_manifest, &extra, false);
            let archive = write_archive(&sb.p("arch"), name, backend, &tar);
            let label = format!("{name} [{backend:?}, manifest: {with_manifest}]");
            expect_rejected(&sb, &archive, &backend.identity(), expect, &label);
        }
    }
}

/// Restores `tar` into a fresh sandbox's populated target and expects
/// success; the canary and the target's parent (no staging, no journal) are
/// untouched. Returns the sandbox for further checks.
fn expect_restored(tar: &[u8], backend: Backend, label: &str) -> Sandbox {
    let sb = Sandbox::new();
    populate_target(&sb.target());
    let canary_before = snapshot(&sb.p("w/canary"));
    let archive = write_archive(&sb.p("arch"), "ok", backend, tar);
    let out = sb.run(&[
        "restore".as_ref(),
        archive.as_os_str(),
        "-i".as_ref(),
        backend.identity().as_os_str(),
        "--target".as_ref(),
        sb.target().as_os_str(),
        "--no-snapshot".as_ref(),
    ]);
    assert_eq!(out.code, 0, "{label}: {}", out.text());
    assert!(
        snapshot(&sb.p("w/canary")) == canary_before,
        "{label}: the canary changed"
    );
    let beside: Vec<_> = fs::read_dir(sb.p("w/parent"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("target")], "{label}");
    sb
}

/// Rule changed on purpose (issue 13): a backslash is an ordinary byte of a
/// Linux file name. `credentials/x\..\y` is one file of that literal name,
/// inside the tree; nothing is interpreted.
#[test]
fn backslash_names_are_plain_bytes() {
    for backend in backends() {
        for with_manifest in [true, false] {
            let mut t = Tar::new();
            t.top();
            t.dir("credentials", 0o700);
            t.file("credentials/x\\..\\y", 0o600, b"x");
            t.file("a\\b.json", 0o600, b"{}");
            let tar = t.finish(with_manifest);
            let sb = expect_restored(
                &tar,
                backend,
                &format!("backslash {backend:?} {with_manifest}"),
            );
            assert_eq!(
                fs::read(sb.target().join("credentials/x\\..\\y")).unwrap(),
                b"x"
            );
            assert_eq!(fs::read(sb.target().join("a\\b.json")).unwrap(), b"{}");
            assert!(!sb.target().join("y").exists());
        }
    }
}

/// Rule changed on purpose (issue 13): non-UTF-8 names restore with their
/// exact bytes when the manifest lists them (`path_hex`), and in legacy
/// archives without a manifest.
#[test]
fn non_utf8_names_listed_in_the_manifest_restore() {
    use std::os::unix::ffi::OsStrExt;
    for backend in backends() {
        for with_manifest in [true, false] {
            let mut t = Tar::new();
            t.top();
            let name = b"\xE9t\xE9.json";
            let mut full = format!("{TOP}/").into_bytes();
            full.extend_from_slice(name);
            t.raw(&full, ty::FILE, 0o600, b"", b"latin1");
            let extra = [
                serde_json::json!({"path": "?t?.json", "path_hex": hex::encode(name),
                "type": "file", "size": 6, "mode": "0600", "sha256": sha256_hex(b"latin1")}),
            ];
            let tar = finish_with(t, with_manifest, &extra, false);
            let sb = expect_restored(
                &tar,
                backend,
                &format!("latin1 {backend:?} {with_manifest}"),
            );
            let p = sb.target().join(std::ffi::OsStr::from_bytes(name));
            assert_eq!(fs::read(p).unwrap(), b"latin1");
        }
    }
}

/// In-tree relative symlinks restore (last, with their target); everything
/// that could write through one or leave the tree stays refused.
#[test]
fn in_tree_symlinks_restore() {
    for backend in backends() {
        for with_manifest in [true, false] {
            let mut t = Tar::new();
            t.top();
            t.dir("credentials", 0o700);
            t.file("credentials/oauth.json", 0o600, b"{}");
            t.raw(
                format!("{TOP}/creds").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"credentials",
                b"",
            );
            t.dir("venv", 0o700);
            t.dir("venv/lib", 0o700);
            t.raw(
                format!("{TOP}/venv/lib64").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"lib",
                b"",
            );
            t.raw(
                format!("{TOP}/venv/up").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"../credentials/oauth.json",
                b"",
            );
            t.raw(
                format!("{TOP}/dangling").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"not-there",
                b"",
            );
            let extra = [
                link_entry("creds", "credentials"),
                link_entry("venv/lib64", "lib"),
                link_entry("venv/up", "../credentials/oauth.json"),
                link_entry("dangling", "not-there"),
            ];
            let tar = finish_with(t, with_manifest, &extra, false);
            let sb = expect_restored(&tar, backend, &format!("links {backend:?} {with_manifest}"));
            let tg = sb.target();
            assert_eq!(
                fs::read_link(tg.join("creds")).unwrap(),
                Path::new("credentials")
            );
            assert_eq!(
                fs::read_link(tg.join("venv/lib64")).unwrap(),
                Path::new("lib")
            );
            assert_eq!(fs::read(tg.join("venv/up")).unwrap(), b"{}");
            assert!(fs::symlink_metadata(tg.join("dangling"))
                .unwrap()
                .file_type()
                .is_symlink());
        }
    }
}

#[test]
fn symlink_inside_the_tree_then_write_through_it() {
    case_x("inside-link-write", Variants::Both, &[REFUSED], |t, _| {
        t.dir("credentials", 0o700);
        t.raw(
            format!("{TOP}/l").as_bytes(),
            ty::SYMLINK,
            0o777,
            b"credentials",
            b"",
        );
        t.raw(
            format!("{TOP}/l/evil").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"pwned",
        );
        t.record("l/evil", false, b"pwned");
        vec![link_entry("l", "credentials")]
    });
    case_x(
        "inside-link-then-dir",
        Variants::Both,
        &[REFUSED],
        |t, _| {
            t.raw(
                format!("{TOP}/l").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"credentials",
                b"",
            );
            t.raw(format!("{TOP}/l/").as_bytes(), ty::DIR, 0o777, b"", b"");
            vec![link_entry("l", "credentials")]
        },
    );
    case_x(
        "file-then-link-same-name",
        Variants::Both,
        &[REFUSED],
        |t, _| {
            t.file("l", 0o600, b"x");
            t.raw(
                format!("{TOP}/l").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"credentials",
                b"",
            );
            vec![]
        },
    );
}

/// Targets that leave the tree: too many `..` for the link's depth, and a
/// `..` after a name (which could climb out through another link:
/// `d/l -> ..`, then `x -> d/l/..`), and absolute ones.
#[test]
fn symlink_targets_that_leave_the_tree() {
    for (i, (link, target)) in [
        ("a/b/l", "../../../canary"),
        ("x", "d/l/.."),
        ("x", "d/../../canary"),
        ("a/l", "/etc"),
        ("l", ".."),
    ]
    .iter()
    .enumerate()
    {
        case_x(
            &format!("link-escape-{i}"),
            Variants::Both,
            &[REFUSED],
            |t, _| {
                t.dir("d", 0o700);
                t.raw(
                    format!("{TOP}/d/l").as_bytes(),
                    ty::SYMLINK,
                    0o777,
                    b"..",
                    b"",
                );
                t.raw(
                    format!("{TOP}/{link}").as_bytes(),
                    ty::SYMLINK,
                    0o777,
                    target.as_bytes(),
                    b"",
                );
                vec![link_entry("d/l", ".."), link_entry(link, target)]
            },
        );
    }
}

#[test]
fn symlink_not_matching_the_manifest() {
    case_x(
        "link-unlisted",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.dir("credentials", 0o700);
            t.raw(
                format!("{TOP}/l").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"credentials",
                b"",
            );
            vec![]
        },
    );
    case_x(
        "link-other-target",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.dir("credentials", 0o700);
            t.dir("identity", 0o700);
            t.raw(
                format!("{TOP}/l").as_bytes(),
                ty::SYMLINK,
                0o777,
                b"credentials",
                b"",
            );
            vec![link_entry("l", "identity")]
        },
    );
    case_x(
        "link-listed-as-file",
        Variants::ManifestOnly,
        &[INTEGRITY],
        |t, _| {
            t.raw(format!("{TOP}/l").as_bytes(), ty::SYMLINK, 0o777, b"x", b"");
            t.record("l", false, b"");
            vec![]
        },
    );
}

/// The manifest mark: only a top-level file may carry it, and only once.
#[test]
fn manifest_marks_cannot_be_abused() {
    case("mark-in-subdir", Variants::Both, &[REFUSED], |t, _| {
        t.dir("credentials", 0o700);
        t.pax(&[("comment", b"secureclaw-backup manifest.json")]);
        t.raw(
            format!("{TOP}/credentials/m.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"{}",
        );
    });
    case(
        "two-manifests",
        Variants::ManifestOnly,
        &[REFUSED],
        |t, _| {
            let m = t.manifest_json();
            t.pax(&[("comment", b"secureclaw-backup manifest.json")]);
            t.raw(
                format!("{TOP}/manifest-1.json").as_bytes(),
                ty::FILE,
                0o600,
                b"",
                &m,
            );
        },
    );
}

/// New-format archives (top-level directory marked): a data file called
/// `manifest.json` is data; the marked `manifest-1.json` is the manifest.
/// The old format (nothing marked) keeps its top-level `manifest.json`.
#[test]
fn data_named_manifest_json_in_a_marked_archive() {
    for backend in backends() {
        let mut t = Tar::new();
        t.pax(&[("comment", b"secureclaw-backup archive 2")]);
        t.top();
        t.file("manifest.json", 0o600, b"{\"mine\":1}");
        t.file("manifest.txt", 0o600, b"my notes");
        let m = t.manifest_json();
        t.pax(&[("comment", b"secureclaw-backup manifest.json")]);
        t.raw(
            format!("{TOP}/manifest-1.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            &m,
        );
        let tar = t.finish(false);
        let sb = expect_restored(&tar, backend, "data manifest.json");
        assert_eq!(
            fs::read(sb.target().join("manifest.json")).unwrap(),
            b"{\"mine\":1}"
        );
        assert_eq!(
            fs::read(sb.target().join("manifest.txt")).unwrap(),
            b"my notes"
        );
        assert!(!sb.target().join("manifest-1.json").exists());
        // the same data manifest.json tampered with: an integrity failure
        let mut t = Tar::new();
        t.pax(&[("comment", b"secureclaw-backup archive 2")]);
        t.top();
        t.file("manifest.json", 0o600, b"{\"mine\":1}");
        let m = t.manifest_json();
        let mut t2 = Tar::new();
        t2.pax(&[("comment", b"secureclaw-backup archive 2")]);
        t2.top();
        t2.raw(
            format!("{TOP}/manifest.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            b"{\"evil\":1}",
        );
        t2.pax(&[("comment", b"secureclaw-backup manifest.json")]);
        t2.raw(
            format!("{TOP}/manifest-1.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            &m,
        );
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let archive = write_archive(&sb.p("arch"), "tampered", backend, &t2.finish(false));
        expect_rejected(
            &sb,
            &archive,
            &backend.identity(),
            &[INTEGRITY],
            "tampered data manifest.json",
        );
        drop(t);
    }
}

/// A path that fits below the target but not below the longer staging
/// directory name restores (extraction is relative to directory descriptors).
#[test]
fn path_near_path_max_of_the_target_restores() {
    for backend in backends() {
        let sb = Sandbox::new();
        let tlen = sb.target().as_os_str().len();
        // target + "/" + rel == 4095 bytes (PATH_MAX less the NUL)
        let want = 4095 - tlen - 1;
        let mut rel = vec!["g".repeat(200); want / 201].join("/");
        rel.push('/');
        rel.push_str(&"h".repeat(want - rel.len()));
        assert_eq!(tlen + 1 + rel.len(), 4095);
        let mut t = Tar::new();
        t.gnu = true;
        t.top();
        t.gnu_longname(format!("{TOP}/{rel}").as_bytes());
        t.raw(format!("{TOP}/x").as_bytes(), ty::FILE, 0o600, b"", b"deep");
        t.record(&rel, false, b"deep");
        let comps: Vec<&str> = rel.split('/').collect();
        for i in 1..comps.len() {
            t.record(&comps[..i].join("/"), true, b"");
        }
        let tar = t.finish(true);
        let archive = write_archive(&sb.p("arch"), "deep", backend, &tar);
        let out = sb.run(&[
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            "--target".as_ref(),
            sb.target().as_os_str(),
            "--no-snapshot".as_ref(),
        ]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.text());
        assert_eq!(fs::read(sb.target().join(&rel)).unwrap(), b"deep");
    }
}

/// An archive of an older version skipped non-UTF-8 names and recorded them
/// lossily as warnings: restoring it over the current tree keeps such files
/// in the components it replaces (they used to be deleted).
#[test]
fn names_skipped_by_an_older_backup_are_kept() {
    use std::os::unix::ffi::OsStrExt;
    for backend in backends() {
        let mut t = Tar::new();
        t.top();
        t.dir("credentials", 0o700);
        t.file("credentials/oauth.json", 0o600, b"{\"restored\":1}");
        let mut m: serde_json::Value = serde_json::from_slice(&t.manifest_json()).unwrap();
        m["warnings"] = serde_json::json!([{"path": "credentials/caf\u{FFFD}.json",
            "kind": "non-utf8-name", "detail": "file name is not UTF-8; not archived"}]);
        let m = serde_json::to_vec_pretty(&m).unwrap();
        t.raw(
            format!("{TOP}/manifest.json").as_bytes(),
            ty::FILE,
            0o600,
            b"",
            &m,
        );
        let tar = t.finish(false);
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let skipped = sb
            .target()
            .join(std::ffi::OsStr::from_bytes(b"credentials/caf\xE9.json"));
        fs::write(&skipped, b"latin1 name").unwrap();
        fs::write(sb.target().join("credentials/new-since.json"), b"{}").unwrap();
        let archive = write_archive(&sb.p("arch"), "v1", backend, &tar);
        let out = sb.run(&[
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            "--target".as_ref(),
            sb.target().as_os_str(),
            "--no-snapshot".as_ref(),
        ]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.text());
        assert_eq!(fs::read(&skipped).unwrap(), b"latin1 name");
        assert_eq!(
            fs::read(sb.target().join("credentials/oauth.json")).unwrap(),
            b"{\"restored\":1}"
        );
        // what the backup never saw is not kept: the component is the archive's
        assert!(!sb.target().join("credentials/new-since.json").exists());
    }
}

/// An archive whose `agents/main` is an (in-tree) symlink where the current
/// tree has a directory: the current tree's `agents/main/sessions` is not
/// carried over through the link (that would write through it into
/// `credentials/`); the restore says so.
#[test]
fn kept_components_are_never_carried_through_an_archive_symlink() {
    for backend in backends() {
        let mut t = Tar::new();
        t.top();
        t.dir("credentials", 0o700);
        t.file("credentials/oauth.json", 0o600, b"{}");
        t.dir("agents", 0o700);
        t.raw(
            format!("{TOP}/agents/main").as_bytes(),
            ty::SYMLINK,
            0o777,
            b"../credentials",
            b"",
        );
        let tar = finish_with(
            t,
            true,
            &[link_entry("agents/main", "../credentials")],
            false,
        );
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let archive = write_archive(&sb.p("arch"), "agent-link", backend, &tar);
        let out = sb.run(&[
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            "--target".as_ref(),
            sb.target().as_os_str(),
            "--no-snapshot".as_ref(),
        ]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.text());
        assert!(
            out.stderr.contains("not kept: agents/main/sessions"),
            "{}",
            out.text()
        );
        let tg = sb.target();
        assert!(fs::symlink_metadata(tg.join("agents/main"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(
            !tg.join("credentials/sessions").exists(),
            "nothing written through the link"
        );
        assert_eq!(fs::read(tg.join("credentials/oauth.json")).unwrap(), b"{}");
    }
}

/// Components the archive lacks are kept, also where the archive lacks
/// their parent (another agent), with their modes and mtimes.
#[test]
fn components_the_archive_lacks_are_kept_with_their_parents() {
    use std::os::unix::fs::MetadataExt;
    for backend in backends() {
        let mut t = Tar::new();
        t.top();
        t.dir("agents", 0o700);
        t.dir("agents/main", 0o700);
        t.dir("agents/main/agent", 0o700);
        t.file("agents/main/agent/auth.json", 0o600, b"{}");
        let tar = t.finish(true);
        let sb = Sandbox::new();
        populate_target(&sb.target());
        let other = sb.target().join("agents/other/sessions");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("x.jsonl"), b"{\"other\":1}\n").unwrap();
        let mtime = fs::metadata(other.join("x.jsonl")).unwrap().mtime();
        let archive = write_archive(&sb.p("arch"), "agents", backend, &tar);
        let out = sb.run(&[
            "restore".as_ref(),
            archive.as_os_str(),
            "-i".as_ref(),
            backend.identity().as_os_str(),
            "--target".as_ref(),
            sb.target().as_os_str(),
            "--no-snapshot".as_ref(),
        ]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.text());
        let tg = sb.target();
        assert_eq!(fs::read(other.join("x.jsonl")).unwrap(), b"{\"other\":1}\n");
        assert_eq!(fs::metadata(other.join("x.jsonl")).unwrap().mtime(), mtime);
        assert_eq!(
            fs::read(tg.join("agents/main/sessions/s1.jsonl")).unwrap(),
            b"{\"old\":1}\n"
        );
        assert_eq!(
            fs::read(tg.join("agents/main/agent/auth.json")).unwrap(),
            b"{}"
        );
        assert_eq!(
            fs::read(tg.join("workspace/notes.md")).unwrap(),
            b"old notes\n"
        );
        let ws = fs::metadata(tg.join("workspace")).unwrap();
        assert_eq!(
            ws.permissions().mode() & 0o777,
            0o750,
            "kept directory mode"
        );
    }
}
