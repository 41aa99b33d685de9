//! Keyless ciphertext verification on arbitrary bytes: the age header grammar
//! and `crypto::inspect` (age header + payload length, OpenPGP packet
//! sequence), as `verify` without `-i` and the post-write check use them.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use secureclaw_backup::crypto::{self, age, Format};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = age::parse_header(data) {
        assert!(h.len <= data.len());
        assert!(!h.stanzas.is_empty());
        assert!(data[..h.len].ends_with(b"\n"));
    }
    let _ = Format::detect(data);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("archive");
    std::fs::File::create(&p)
        .and_then(|mut f| f.write_all(data))
        .expect("write");
    if let Ok(info) = crypto::inspect(&p) {
        assert_eq!(info.length, data.len() as u64);
    }
});
