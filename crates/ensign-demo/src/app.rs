//! The demo's HTTP routes: the flag-guarded `/checkout`, `/metrics`,
//! `/healthz` and `/readyz`, with every request counted and timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use open_feature::{Client, EvaluationContext};
use serde_json::json;

use crate::faults::FaultSchedule;
use crate::metrics::DemoMetrics;

/// The safe checkout path: what the service does when the flag is off,
/// disabled, missing or unreachable (the code default).
pub const SAFE_PATH: &str = "stable";

/// The flag-guarded new checkout path, the one a bad release breaks.
pub const NEW_PATH: &str = "v2";

/// The Prometheus text exposition content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which flag guards the new path, and which value selects it.
#[derive(Debug, Clone)]
pub struct CheckoutFlag {
    /// The flag key (a string flag), e.g. `checkout-v2`.
    pub key: String,
    /// The flag value that selects the new path; any other value, or an
    /// evaluation error, selects [`SAFE_PATH`].
    pub new_path_value: String,
}

/// How broken the new path is: the faults it injects.
#[derive(Debug, Clone, Copy)]
pub struct BadRelease {
    /// Share of new-path requests answered with HTTP 500 (0 to 1).
    pub error_rate: f64,
    /// Share of new-path requests delayed by `latency` (0 to 1).
    pub latency_rate: f64,
    /// The injected delay.
    pub latency: Duration,
}

/// Everything a request handler needs.
pub struct DemoState {
    flags: Client,
    flag: CheckoutFlag,
    errors: FaultSchedule,
    slow: FaultSchedule,
    latency: Duration,
    metrics: DemoMetrics,
    ready: AtomicBool,
}

impl std::fmt::Debug for DemoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoState")
            .field("flag", &self.flag)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl DemoState {
    /// State for a service that reads `flag` through `flags` and breaks as
    /// `bad` says on the new path. Not ready until [`DemoState::set_ready`].
    pub fn new(flags: Client, flag: CheckoutFlag, bad: BadRelease) -> Self {
        Self {
            flags,
            flag,
            errors: FaultSchedule::new(bad.error_rate),
            slow: FaultSchedule::new(bad.latency_rate),
            latency: bad.latency,
            metrics: DemoMetrics::new(),
            ready: AtomicBool::new(false),
        }
    }

    /// Marks the service ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The metrics, for tests and the binary.
    pub fn metrics(&self) -> &DemoMetrics {
        &self.metrics
    }
}

/// The router over every route.
pub fn router(state: Arc<DemoState>) -> Router {
    Router::new()
        .route("/checkout", get(checkout))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts and times every request by route and status code.
async fn track(State(state): State<Arc<DemoState>>, request: Request, next: Next) -> Response {
    let route = DemoMetrics::route_label(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_request(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Query of `/checkout`.
#[derive(Debug, serde::Deserialize)]
struct CheckoutQuery {
    /// The targeting key of the evaluation (default `anonymous`).
    user: Option<String>,
}

/// Evaluates the flag, then runs the chosen path.
async fn checkout(
    State(state): State<Arc<DemoState>>,
    Query(query): Query<CheckoutQuery>,
) -> Response {
    let user = query.user.unwrap_or_else(|| "anonymous".to_owned());
    let context = EvaluationContext::default().with_targeting_key(user);
    let value = state
        .flags
        .get_string_value(&state.flag.key, Some(&context), None)
        .await
        .unwrap_or_else(|_| SAFE_PATH.to_owned());
    let path = if value == state.flag.new_path_value {
        NEW_PATH
    } else {
        SAFE_PATH
    };
    state.metrics.observe_path(path);
    let mut status = StatusCode::OK;
    if path == NEW_PATH {
        if state.slow.next() {
            tokio::time::sleep(state.latency).await;
        }
        if state.errors.next() {
            status = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let mut response = (status, Json(json!({"path": path, "flag": value}))).into_response();
    response
        .headers_mut()
        .insert("x-checkout-path", HeaderValue::from_static(path));
    response
}

/// The Prometheus exposition.
async fn metrics(State(state): State<Arc<DemoState>>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// 200 once start-up is over and until shutdown begins, else 503.
async fn readyz(State(state): State<Arc<DemoState>>) -> Response {
    if state.is_ready() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping").into_response()
    }
}
