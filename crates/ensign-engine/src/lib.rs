//! Ensign's evaluation engine: flagd-compatible flag documents, compiled once,
//! resolved many times.
//!
//! The crate is pure: no async runtime, no I/O, no wire or database types. The
//! clock is an input (`now`, unix seconds) and so is the bucketing generation.
//!
//! The life of a flag document:
//! 1. [`document::load`] parses JSON or YAML (size and depth bounded), validates
//!    every flag and reports each problem with its JSON Pointer, and compiles the
//!    targeting rules into [`logic`] trees. A document with any error is rejected
//!    whole.
//! 2. [`Snapshot::build`] merges loaded documents from named sources by priority
//!    (later wins), indexes flags by key and by flag set.
//! 3. [`Flag::resolve`] (or the typed shorthands on [`Snapshot`]) evaluates a flag
//!    for a context, borrowing values and metadata from the snapshot.

pub mod document;
mod fractional;
pub mod hashing;
pub mod logic;
pub mod metadata;
mod resolution;
mod semver;
mod snapshot;
mod value;

pub use document::{DocumentError, FlagDocument, Format, Limits, Loaded, Problem};
pub use fractional::{BucketRange, FractionalTrace};
pub use metadata::{Metadata, MetadataValue};
pub use resolution::{ErrorCode, Reason, Resolution, ResolutionError};
pub use snapshot::{
    Context, EvaluationOptions, Flag, FlagChange, FlagState, FractionalGeneration,
    MAX_SELECTOR_BYTES, Selector, SelectorError, Snapshot, Source,
};
pub use value::{FlagValue, RequestedType, ValueType};
