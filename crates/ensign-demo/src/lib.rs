//! A small checkout service that reads its flags from Ensign through the
//! OpenFeature SDK and its OFREP provider (the one the flagd provider's REST
//! resolver wraps). Its
//! flag-guarded new path can be made to fail (HTTP 500) and slow down at set
//! rates, so the kill-switch and rollout demos have a bad release to catch.
//! It exports Prometheus metrics, starts slowly on demand and drains in-flight
//! requests on SIGTERM.

pub mod app;
pub mod faults;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use open_feature::{Client, OpenFeature};
use open_feature_ofrep::{OfrepOptions, OfrepProvider};
use tokio::net::TcpListener;

pub use app::{BadRelease, CheckoutFlag, DemoState, NEW_PATH, SAFE_PATH, router};

/// An OpenFeature client whose provider evaluates every flag with one OFREP
/// request to `base_url` (for Ensign, its OFREP port, e.g.
/// `http://127.0.0.1:8016`), so a kill switch shows on the very next request.
pub async fn ofrep_client(base_url: &str, connect_timeout: Duration) -> anyhow::Result<Client> {
    let options = OfrepOptions {
        base_url: base_url.trim_end_matches('/').to_owned(),
        connect_timeout,
        ..OfrepOptions::default()
    };
    let provider = OfrepProvider::new(options).await?;
    let mut api = OpenFeature::default();
    api.set_provider(provider).await;
    Ok(api.create_client())
}

/// How the server starts and stops.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// How long after start `/readyz` stays 503.
    pub startup_delay: Duration,
    /// How long in-flight requests may run on after shutdown begins.
    pub drain_timeout: Duration,
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops
/// accepting, reports not ready and lets in-flight requests finish (for at
/// most the drain timeout).
pub async fn serve(
    listener: TcpListener,
    state: Arc<DemoState>,
    lifecycle: Lifecycle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let warming = state.clone();
    let startup = tokio::spawn(async move {
        tokio::time::sleep(lifecycle.startup_delay).await;
        warming.set_ready(true);
        tracing::info!("ready");
    });
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = state.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        stopping.set_ready(false);
        tracing::info!("shutting down: draining in-flight requests");
        let _ = draining_tx.send(());
    });
    let drain_deadline = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(lifecycle.drain_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        served = server.into_future() => served.map_err(anyhow::Error::from),
        () = drain_deadline => {
            tracing::warn!("drain timeout: dropping requests still in flight");
            Ok(())
        }
    };
    startup.abort();
    outcome
}

/// Resolves at the first SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
