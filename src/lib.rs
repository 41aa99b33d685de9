//! secureclaw-backup: encrypted, verifiable backups of a SecureClaw data
//! directory, and safe, atomic restores. README.md describes the commands and
//! the archive format, SECURITY.md the threat model, docs/ARCHITECTURE.md the
//! layers; each module's doc says what it owns.
//!
//! This is the engine; the command line (clap parsing, rendering) lives in the
//! binary (`src/main.rs`, `src/cli.rs`, `src/commands/`, `src/ui.rs`), and
//! nothing here depends on it: engines report progress and warnings through
//! [`events::Events`] and return their results; [`text`] makes outside text
//! safe to print. The entry points, re-exported at the top level:
//!
//! - [`run_backup`] ([`BackupOptions`] → [`BackupReport`]),
//! - [`run_restore`] ([`RestoreOptions`] → [`RestoreReport`]), or in two
//!   steps: [`plan_restore`] (→ a [`RestorePlan`], what `--dry-run` shows)
//!   and [`apply_restore`],
//! - [`verify_keyless`] and [`verify_full`] (→ [`VerifyReport`]),
//! - [`prune_dest`] (retention applied to a destination),
//! - [`run_rotate`] ([`RotateOptions`] → [`RotateReport`]), through a
//!   [`RotatePlan`],
//! - [`run_drill`] (→ [`DrillReport`]),
//! - [`status_report`] (→ [`StatusReport`]) and [`validate`] (→ [`ValidateReport`]),
//! - [`Error`], [`ErrorKind`] (the exit codes) and [`Result`].
//!
//! The modules stay public for the integration tests and fuzz targets.
#![forbid(unsafe_code)]

pub mod archive;
pub mod backup;
pub mod browse;
pub mod capture;
pub mod catalog;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod events;
pub mod fsx;
pub mod gateway;
pub mod incremental;
pub mod keygen;
pub mod keymatch;
pub mod lock;
pub mod manifest;
pub mod meta;
pub mod paths;
pub mod pgzip;
pub mod process;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod rotate;
pub mod schedule;
pub mod sign;
pub mod source;
pub mod status;
pub mod store;
pub mod swap;
pub mod text;
pub mod tier;
pub mod validate;
pub mod verify;

pub use backup::{run_backup, BackupOptions, BackupReport};
pub use drill::{run_drill, DrillReport};
pub use error::{Error, ErrorKind, Result};
pub use prune::prune_dest;
pub use restore::{
    apply_restore, plan_restore, run_restore, RestoreOptions, RestorePlan, RestoreReport,
};
pub use rotate::{run_rotate, RotateOptions, RotatePlan, RotateReport};
pub use status::{report as status_report, Report as StatusReport};
pub use validate::{validate, Report as ValidateReport};
pub use verify::{verify_full, verify_keyless, VerifyReport};
