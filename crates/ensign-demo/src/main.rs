//! `ensign-demo`: the checkout service the kill-switch and rollout demos run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ensign_demo::{BadRelease, CheckoutFlag, DemoState, Lifecycle, ofrep_client, serve};

/// A checkout service whose new path is guarded by a flag served by Ensign.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen.
    #[arg(long, env = "ENSIGN_DEMO_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Ensign's OFREP base URL (its OFREP port).
    #[arg(
        long,
        env = "ENSIGN_DEMO_OFREP_URL",
        default_value = "http://127.0.0.1:8016"
    )]
    ofrep_url: String,
    /// Connect timeout towards Ensign, in milliseconds.
    #[arg(long, env = "ENSIGN_DEMO_OFREP_TIMEOUT_MS", default_value_t = 500)]
    ofrep_timeout_ms: u64,
    /// The string flag that guards the new checkout path.
    #[arg(long, env = "ENSIGN_DEMO_FLAG", default_value = "checkout-v2")]
    flag: String,
    /// The flag value that selects the new path (anything else: the safe path).
    #[arg(long, env = "ENSIGN_DEMO_NEW_PATH_VALUE", default_value = "v2")]
    new_path_value: String,
    /// Share of new-path requests that fail with HTTP 500 (0 to 1).
    #[arg(long, env = "ENSIGN_DEMO_BAD_ERROR_RATE", default_value_t = 0.5, value_parser = rate)]
    bad_error_rate: f64,
    /// Share of new-path requests that are slowed down (0 to 1).
    #[arg(long, env = "ENSIGN_DEMO_BAD_LATENCY_RATE", default_value_t = 0.0, value_parser = rate)]
    bad_latency_rate: f64,
    /// The delay added to slowed-down requests, in milliseconds.
    #[arg(long, env = "ENSIGN_DEMO_BAD_LATENCY_MS", default_value_t = 250)]
    bad_latency_ms: u64,
    /// How long `/readyz` answers 503 after start, in milliseconds.
    #[arg(long, env = "ENSIGN_DEMO_STARTUP_DELAY_MS", default_value_t = 0)]
    startup_delay_ms: u64,
    /// How long in-flight requests may finish after SIGTERM, in milliseconds.
    #[arg(long, env = "ENSIGN_DEMO_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    drain_timeout_ms: u64,
}

/// A rate between 0 and 1.
fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a rate between 0 and 1")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let flags = ofrep_client(
        &args.ofrep_url,
        Duration::from_millis(args.ofrep_timeout_ms),
    )
    .await?;
    let state = Arc::new(DemoState::new(
        flags,
        CheckoutFlag {
            key: args.flag,
            new_path_value: args.new_path_value,
        },
        BadRelease {
            error_rate: args.bad_error_rate,
            latency_rate: args.bad_latency_rate,
            latency: Duration::from_millis(args.bad_latency_ms),
        },
    ));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(address = %listener.local_addr()?, ofrep = %args.ofrep_url, "listening");
    serve(
        listener,
        state,
        Lifecycle {
            startup_delay: Duration::from_millis(args.startup_delay_ms),
            drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        },
        ensign_demo::termination_signal(),
    )
    .await
}
