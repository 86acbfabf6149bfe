//! The management port (flagd's `-m/--management-port`, default 8014).
//!
//! One listener serves, over HTTP/1.1 and cleartext HTTP/2 (h2c with prior
//! knowledge):
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok`, always (liveness) |
//! | `GET /readyz` | `200 ok` once every source has loaded and while not draining, else `412` (as flagd) |
//! | `GET /metrics` | the Prometheus text exposition of [`Metrics`](ensign_store::Store::metrics) |
//! | gRPC `grpc.health.v1.Health/Check` and `Watch` | `SERVING` when ready, else `NOT_SERVING`, for the server as a whole (service `""`) |
//!
//! Requests whose content type is `application/grpc` (or `application/grpc+…`,
//! `application/grpc;…`) go to the gRPC health service; everything else goes
//! to the HTTP routes ([`router`]). gRPC-Web is not served here.
//!
//! # Shutting down
//!
//! Readiness can be forced down before the server stops, so that load
//! balancers stop routing to an instance that is about to exit: on SIGTERM the
//! binary first calls [`ManagementState::start_draining`] (`/readyz` answers
//! 412 and gRPC health `NOT_SERVING` from then on), waits for the load balancer
//! to notice, then cancels the shutdown token given to [`serve`], which stops
//! accepting connections and lets open ones finish (for at most
//! [`DRAIN_TIMEOUT`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ensign_store::Store;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceExt;

/// flagd's default management port.
pub const DEFAULT_PORT: u16 = 8014;

/// The content type of `/metrics` (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The gRPC health service name whose status [`serve`] reports: `""`, the
/// server as a whole.
pub const HEALTH_SERVICE: &str = "";

/// How long [`serve`] waits for open connections after shutdown before it
/// returns anyway. gRPC health `Watch` streams are ended at shutdown, so only
/// slow clients take this long.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the management endpoints report on: the store and the draining flag.
///
/// Cheap to clone; clones share the flag.
#[derive(Debug, Clone)]
pub struct ManagementState {
    store: Arc<Store>,
    draining: Arc<watch::Sender<bool>>,
}

impl ManagementState {
    /// State reporting on `store`, not draining.
    pub fn new(store: Arc<Store>) -> ManagementState {
        ManagementState {
            store,
            draining: Arc::new(watch::Sender::new(false)),
        }
    }

    /// The store whose readiness and metrics are reported.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Forces readiness down for good: `/readyz` answers 412 and gRPC health
    /// `NOT_SERVING` from now on. Call it first when shutting down.
    pub fn start_draining(&self) {
        let changed = self
            .draining
            .send_if_modified(|draining| !std::mem::replace(draining, true));
        if changed {
            tracing::info!("draining: readiness is now down");
        }
    }

    /// Whether [`start_draining`](Self::start_draining) was called.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Whether the server should receive traffic: every source has loaded
    /// once and the server is not draining.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.store.is_ready()
    }
}

/// The HTTP routes of the management port: `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: ManagementState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ManagementState>) -> (StatusCode, &'static str) {
    if state.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::PRECONDITION_FAILED, "not ready")
    }
}

async fn metrics(State(state): State<ManagementState>) -> Response {
    let text = state.store.metrics().render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(METRICS_CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

/// Whether a request is gRPC (not gRPC-Web) by its content type.
fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('+') || rest.starts_with(';'))
}

/// Serves the management port on `listener`, within `limits` (as every other
/// port), until `shutdown` is cancelled, then drains: readiness goes down, no
/// new connection is accepted, and open connections get up to
/// [`DRAIN_TIMEOUT`] to finish.
///
/// Only a failure to set up the server is an error; failures of single
/// connections or accepts are logged.
pub async fn serve(
    listener: TcpListener,
    state: ManagementState,
    limits: ensign_http::ListenerLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let local_addr = listener.local_addr()?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(HEALTH_SERVICE, serving_status(&state))
        .await;
    let health_task = tokio::spawn(track_health(state.clone(), reporter, shutdown.clone()));

    let http = router(state.clone());
    let grpc = tonic::service::Routes::new(health_service)
        .prepare()
        .into_axum_router();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let routes = if is_grpc(&request) { &grpc } else { &http };
        routes.clone().oneshot(request.map(axum::body::Body::new))
    });

    tracing::info!(%local_addr, "management port listening");
    let draining = state.clone();
    let stop_accepting = CancellationToken::new();
    let stopped = stop_accepting.clone();
    let shutdown_watch = shutdown.clone();
    tokio::spawn(async move {
        shutdown_watch.cancelled().await;
        draining.start_draining();
        stopped.cancel();
    });
    let config = ensign_http::ListenerConfig {
        limits,
        drain: DRAIN_TIMEOUT,
        ..ensign_http::ListenerConfig::new("management", Arc::clone(state.store.metrics()))
    };
    ensign_http::serve(listener, None, service, config, stop_accepting).await;
    if let Err(error) = health_task.await {
        tracing::warn!(%error, "management port: health tracking task failed");
    }
    tracing::info!(%local_addr, "management port stopped");
    Ok(())
}

fn serving_status(state: &ManagementState) -> ServingStatus {
    if state.is_ready() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Keeps the gRPC health status equal to readiness until shutdown, then
/// reports `NOT_SERVING` and ends `Watch` streams (after that last update) so
/// that they do not hold up the drain.
async fn track_health(
    state: ManagementState,
    mut reporter: HealthReporter,
    shutdown: CancellationToken,
) {
    let mut published = state.store.subscribe();
    let mut draining = state.draining.subscribe();
    let mut reported = None;
    loop {
        let status = serving_status(&state);
        if reported != Some(status) {
            reporter.set_service_status(HEALTH_SERVICE, status).await;
            tracing::debug!(?status, "gRPC health status");
            reported = Some(status);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            // Both senders live as long as `state`, so these never fail.
            _ = published.changed() => {}
            _ = draining.changed() => {}
        }
    }
    reporter
        .set_service_status(HEALTH_SERVICE, ServingStatus::NotServing)
        .await;
    // Dropping the status ends every Watch stream once it has sent NOT_SERVING;
    // a Check on a connection still open answers NOT_FOUND from now on.
    reporter.clear_service_status(HEALTH_SERVICE).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn with_content_type(value: &str) -> Request<()> {
        Request::builder()
            .header(header::CONTENT_TYPE, value)
            .body(())
            .unwrap()
    }

    #[test]
    fn grpc_is_recognised_by_content_type() {
        assert!(is_grpc(&with_content_type("application/grpc")));
        assert!(is_grpc(&with_content_type("application/grpc+proto")));
        assert!(is_grpc(&with_content_type(
            "application/grpc;charset=utf-8"
        )));
        assert!(!is_grpc(&with_content_type("application/grpc-web")));
        assert!(!is_grpc(&with_content_type("application/json")));
        assert!(!is_grpc(&Request::new(())));
    }
}
