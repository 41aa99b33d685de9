//! The one support module of the integration tests (each test file has
//! `mod common;`): `sandbox` runs the real binary in a clean environment,
//! `tree` writes and snapshots trees, `tar` builds archives by hand, `keys`
//! holds the example keys and encrypts to them, `users` creates real users
//! and runs commands as them.
#![allow(dead_code, unused_imports)]

pub mod garage;
pub mod keys;
pub mod sandbox;
pub mod tar;
pub mod tree;
pub mod users;

pub use garage::Garage;
pub use keys::*;
pub use sandbox::*;
pub use tar::*;
pub use tree::*;
pub use users::*;
