//! secureclaw-backup: encrypted, verifiable backups of a SecureClaw data
//! directory, and safe, atomic restores. README.md describes the commands and
//! the archive format, SECURITY.md the threat model; each module's doc says
//! what it owns.
#![forbid(unsafe_code)]

pub mod archive;
pub mod backup;
pub mod capture;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod fsx;
pub mod gateway;
pub mod keygen;
pub mod lock;
pub mod manifest;
pub mod paths;
pub mod pgzip;
pub mod process;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod rotate;
pub mod schedule;
pub mod source;
pub mod status;
pub mod store;
pub mod swap;
pub mod tier;
pub mod ui;
pub mod validate;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
