//! Flag sources: where the flags the store serves come from.
//!
//! A source is configured by a `--uri` value, parsed into a [`SourceSpec`]
//! (see [`spec`] for how sources are named). Each source owns one slot of the
//! [`Store`](ensign_store::Store), created with the names of all sources in
//! priority order, and replaces its document there whenever it changes.
//!
//! File sources ([`run_file_source`]) each own one slot; the database
//! ([`run_database_source`]) owns a group slot with one document per flag set
//! of the served environment. Other flagd URI schemes parse to a "not
//! supported yet" error.
//!
//! Sources run until a [`CancellationToken`](tokio_util::sync::CancellationToken)
//! is cancelled, so one token can stop every task of the server.

pub mod database;
pub mod file;
pub mod spec;

pub use database::{DATABASE_SOURCE, flush_evaluations, run_database_source};
pub use file::{DEFAULT_MAX_DOCUMENT_BYTES, read_limited, run_file_source};
pub use spec::{SourceKind, SourceSpec, SourceSpecError, UnsupportedKind};
