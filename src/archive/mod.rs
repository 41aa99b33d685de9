//! The payload format: a gzip'd tar whose entries live under one top-level
//! directory. [`writer`] builds it from the data directory (bounded reads of
//! live files, hashes while streaming, the manifest last); [`extract`] reads it
//! back under the restore safety rules (README.md and SECURITY.md, "Restore
//! safety") into a [`extract::Sink`].

pub mod extract;
pub mod pipeline;
pub mod writer;
