//! `Manifest::parse` on arbitrary bytes: never panics; what it accepts
//! serializes and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secureclaw_backup::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let again = Manifest::parse(&m.to_json()).expect("a parsed manifest re-parses");
        assert_eq!(again, m);
        let _ = m.to_text();
        assert_eq!(m.by_path().len(), m.entries.len());
    }
});
