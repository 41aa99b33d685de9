//! `Manifest::parse` on arbitrary bytes: never panics; the streaming parser
//! (used by restore) accepts exactly the same manifests; what is accepted
//! serializes and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secureclaw_backup::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let parsed = Manifest::parse(data);
    let streamed = Manifest::from_reader(data);
    assert_eq!(parsed.as_ref().ok(), streamed.as_ref().ok());
    if let Ok(m) = parsed {
        let again = Manifest::parse(&m.to_json()).expect("a parsed manifest re-parses");
        assert_eq!(again, m);
        assert_eq!(m.json_len(), m.to_json().len() as u64);
        let _ = m.to_text();
        assert_eq!(m.by_path().len(), m.entries.len());
    }
});
