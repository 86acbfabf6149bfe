//! The listener loop every Ensign port uses: HTTP/1.1 and HTTP/2 on one socket
//! (cleartext HTTP/2 by prior knowledge, as gRPC clients speak it, or TLS with
//! ALPN), and graceful draining.
//!
//! Shutdown order: the caller cancels the token; the loop stops accepting,
//! asks every connection to finish (HTTP/2 GOAWAY, HTTP/1 close after the
//! current response) and waits up to the drain timeout for in-flight requests.
//! Long-lived streams must end themselves on the same token.
//!
//! Every request carries its client's address as a [`ClientAddr`] extension;
//! [`TokenGuard`] and [`Throttle`] refuse wrong shared secrets and throttle
//! client addresses that send too many of them.

mod credentials;
mod guard;
mod throttle;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

pub use credentials::{
    MIN_SECRET_LENGTH, authorization, bearer, check_secret_strength, same_secret,
};
pub use guard::{Refusal, TokenGuard};
pub use throttle::{ClientAddr, Throttle, Throttled, client_ip};
pub use tokio_util::sync::CancellationToken as Shutdown;

/// HTTP/2 settings for a listener.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    /// Send pings to idle connections this often (none when `None`).
    pub keep_alive_interval: Option<Duration>,
    /// Most concurrent streams per connection.
    pub max_concurrent_streams: u32,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            keep_alive_interval: None,
            max_concurrent_streams: 1024,
        }
    }
}

/// Loads a TLS acceptor from PEM files, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert_path: &Path, key_path: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading certificate {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `service` on `listener` until `shutdown` is cancelled, then drains
/// connections for at most `drain`.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    http2: Http2Settings,
    shutdown: CancellationToken,
    drain: Duration,
) where
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        // Keep-alive pings need a timer; without one hyper panics per connection.
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(http2.keep_alive_interval)
        .max_concurrent_streams(http2.max_concurrent_streams);
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Every request carries its client's address (for throttling).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            service.clone(),
            move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                request
            },
        ));
        let builder = builder.clone();
        match &tls {
            None => {
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match acceptor.accept(stream).await {
                        Ok(stream) => stream,
                        Err(error) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                    };
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!(addr = ?local, "listener closed; draining connections");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(addr = ?local, ?drain, "drain timeout reached; closing remaining connections");
    }
}

/// CORS for browser clients of `origins` (`*`: any), or none when empty.
/// Requested headers are echoed back (a `*` never covers `Authorization` in
/// the Fetch standard); `exposed` lists the response headers scripts may read.
pub fn cors(origins: &[String], exposed: &[http::HeaderName]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| http::HeaderValue::from_str(o).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::POST, http::Method::GET, http::Method::OPTIONS])
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(exposed.to_vec())
            .max_age(Duration::from_secs(7200)),
    )
}
