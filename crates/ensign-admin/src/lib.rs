//! The admin REST API, served on the admin port under `/api/v1`: environments,
//! flag sets, segments, flags (with per-environment configuration, toggles,
//! copies between environments, archive and restore, and evaluation and
//! validation for the editor), API tokens, web UI users and sessions, the
//! audit log, import / export of flagd documents, the SLO-linked kill switch
//! (the Alertmanager webhook, receiver tokens, kill-switch bindings, per-flag
//! kill-switch status and manual restore), and SLOs with their status read
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
//! - Every route except `openapi.json` and `session` needs
//!   `Authorization: Bearer <token>` or the web UI's session cookie (with
//!   `X-CSRF-Token` on unsafe methods; the `auth` module has the rules);
//!   every write names its actor and optional comment, which the storage
//!   appends to the audit log in the same transaction.

mod auth;
mod docs;
pub mod error;
mod extract;
mod handlers;
pub mod prometheus;
mod restorer;
mod routes;
pub mod slos;
pub mod wire;

use std::fmt;
use std::sync::Arc;

use ensign_engine::EvaluationOptions;
use ensign_metrics::Metrics;
use ensign_storage::Storage;

pub use auth::{COMMENT_HEADER, CSRF_HEADER, SESSION_COOKIE};
pub use handlers::alertmanager::MAX_WEBHOOK_BODY;
pub use handlers::session::{CONCURRENT_PASSWORD_CHECKS, MAX_LOGIN_BODY, SESSION_LIFETIME_MS};
pub use restorer::{RESTORE_INTERVAL, run_due_restores};
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
    /// The Alertmanager webhook's shared secret (`ENSIGN_ALERTMANAGER_TOKEN`),
    /// if configured; an empty string counts as none.
    pub alertmanager_token: Option<String>,
    /// The environment alerts act on when they name none (the one this
    /// process serves).
    pub default_environment: String,
    /// Where the kill switch's counters go.
    pub metrics: Arc<Metrics>,
    /// SLOs from files, and where their status is read.
    pub slos: Arc<SloSettings>,
    /// How flags are evaluated for `.../evaluate` (the server's `--fractional`).
    pub evaluation: EvaluationOptions,
    /// Password sign-in attempts per name (for the lockout) and the password
    /// checks running now.
    password_sign_ins: Arc<handlers::session::PasswordSignIns>,
    /// Wrong secrets per client address (bearer tokens, token sign-ins, the
    /// webhook's secrets), throttled together.
    secret_failures: Arc<ensign_http::Throttle>,
}

impl AdminState {
    /// State over `storage`, with an optional bootstrap admin token, no
    /// Alertmanager token, `production` as the default environment of alerts,
    /// metrics of its own and no SLO files.
    pub fn new(storage: Storage, bootstrap_token: Option<String>) -> Self {
        AdminState {
            storage,
            bootstrap_token: bootstrap_token.filter(|t| !t.trim().is_empty()),
            alertmanager_token: None,
            default_environment: "production".to_owned(),
            metrics: Arc::new(Metrics::new()),
            slos: Arc::default(),
            evaluation: EvaluationOptions::default(),
            password_sign_ins: Arc::default(),
            secret_failures: Arc::default(),
        }
    }

    /// With the Alertmanager webhook's shared secret.
    pub fn with_alertmanager_token(mut self, token: Option<String>) -> Self {
        self.alertmanager_token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// With the environment alerts act on when they name none.
    pub fn with_default_environment(mut self, environment: impl Into<String>) -> Self {
        self.default_environment = environment.into();
        self
    }

    /// With the server's metrics.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same state with SLO files and a Prometheus to read their status from.
    pub fn with_slos(mut self, slos: SloSettings) -> Self {
        self.slos = Arc::new(slos);
        self
    }

    /// The same state evaluating flags with `options` (as the server serves
    /// them).
    pub fn with_evaluation(mut self, options: EvaluationOptions) -> Self {
        self.evaluation = options;
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
            .field(
                "alertmanager_token",
                &self.alertmanager_token.as_ref().map(|_| "<redacted>"),
            )
            .field("default_environment", &self.default_environment)
            .field("slos", &self.slos)
            .finish_non_exhaustive()
    }
}
