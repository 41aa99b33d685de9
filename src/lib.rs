//! secureclaw-backup: encrypted, verifiable backups of a SecureClaw data
//! directory, and safe, atomic restores. See DESIGN in the README for the data
//! flow; each module's doc says what it owns.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod error;
pub mod lock;
pub mod paths;
pub mod process;
pub mod store;
pub mod ui;

pub use error::{Error, ErrorKind, Result};
