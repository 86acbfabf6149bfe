//! The admin REST API, served on the admin port under `/api/v1`: environments,
//! flag sets, segments, flags (with per-environment configuration, toggles,
//! copies between environments, archive and restore), API tokens, the audit
//! log, import / export of flagd documents, and SLOs with their status read
//! from Prometheus. The OpenAPI document is
//! generated from the handlers' annotations and served at
//! `/api/v1/openapi.json`.
//!
//! Conventions that hold for every route:
//!
//! - JSON on the wire is camelCase (`flagSet`, `defaultVariant`, ...); enum
//!   values are lowercase (`release`, `archived`, `editor`); times are unix
//!   milliseconds. The storage model is snake_case, so the API has its own wire
//!   types ([`wire`]) and converts at the boundary; flagd documents (import,
//!   export) keep flagd's own field names.
//! - Every single resource carries a version, sent as `ETag: "<version>"`;
//!   writes accept `If-Match: "<version>"` and answer 412 when it is stale.
//! - Every error has one body shape ([`error::ErrorBody`]); invalid input is
//!   422 with every problem found and its JSON Pointer into the request body,
//!   and nothing is written. 5xx bodies never carry internals.
//! - Every route except `openapi.json` needs `Authorization: Bearer <token>`
//!   (the `auth` module has the rules); every write names its actor and
//!   optional comment, which the storage appends to the audit log in the same
//!   transaction.

mod auth;
mod docs;
pub mod error;
mod extract;
mod handlers;
pub mod prometheus;
mod routes;
pub mod slos;
pub mod wire;

use std::fmt;
use std::sync::Arc;

use ensign_storage::Storage;

pub use auth::COMMENT_HEADER;
pub use routes::{openapi, router};
pub use slos::{FileSlo, SloSettings};

/// The largest request body accepted (flagd documents included), in bytes.
pub const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// Where everything is kept.
    pub storage: Storage,
    /// The bootstrap admin token (`ENSIGN_ADMIN_TOKEN`), if configured; an
    /// empty string counts as none.
    pub bootstrap_token: Option<String>,
    /// SLOs from files, and where their status is read.
    pub slos: Arc<SloSettings>,
}

impl AdminState {
    /// State over `storage`, with an optional bootstrap admin token.
    pub fn new(storage: Storage, bootstrap_token: Option<String>) -> Self {
        AdminState {
            storage,
            bootstrap_token: bootstrap_token.filter(|t| !t.trim().is_empty()),
            slos: Arc::default(),
        }
    }

    /// The same state with SLO files and a Prometheus to read their status from.
    pub fn with_slos(mut self, slos: SloSettings) -> Self {
        self.slos = Arc::new(slos);
        self
    }
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("storage", &self.storage)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .field("slos", &self.slos)
            .finish()
    }
}
