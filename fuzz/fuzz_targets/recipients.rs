//! Recipient strings (`-r`, SECURECLAW_BACKUP_KEY) and identity files (`-i`):
//! splitting, classification, key-id normalisation, and loading identity files
//! of arbitrary content for both backends. Never panics.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use secureclaw_backup::crypto::recipients::{classify, normalize_key_id, split_specs};
use secureclaw_backup::crypto::{Format, Identities, PassphraseSource};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data).into_owned();
    for part in split_specs(std::slice::from_ref(&s)) {
        assert!(!part.is_empty() && part == part.trim());
        // (a comma may stay inside an SSH key's comment)
        assert!(!part.contains('\n'));
        let _ = classify(&part);
    }
    if let Some(id) = normalize_key_id(&s) {
        assert!(id.len() == 16 || id.len() == 40);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
    }

    // identity files: skip scrypt-protected inputs, whose work factor is the
    // input's to choose (slow by design, not a bug)
    if data.windows(6).any(|w| w == b"scrypt") || data.windows(14).any(|w| w == b"-----BEGIN AGE") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let id = dir.path().join("identity");
    std::fs::File::create(&id)
        .and_then(|mut f| f.write_all(data))
        .expect("write");
    let pass = dir.path().join("pass");
    std::fs::write(&pass, b"fuzz-passphrase\n").expect("write");
    if let Ok(ids) = Identities::load(&[id], PassphraseSource::new(Some(pass))) {
        let _ = ids.decryptor(Format::Age);
        let _ = ids.decryptor(Format::OpenPgp);
    }
});
