//! The listener loop every Ensign port uses: HTTP/1.1 and HTTP/2 on one socket
//! (cleartext HTTP/2 by prior knowledge, as gRPC clients speak it, or TLS with
//! ALPN), connection limits, and graceful draining.
//!
//! Every listener bounds, from one [`ListenerLimits`]: the time a client may
//! take to send a request's headers (and its TLS handshake), the time a
//! connection may stay open with no request in flight, and the number of
//! connections open at once (further ones are accepted and closed at once, so
//! a flood cannot exhaust the process's file descriptors and take down the
//! other ports). Streams in progress (gRPC, SSE) are in flight, never idle;
//! [`StreamSlots`] bounds how many of them a port keeps open.
//!
//! Shutdown order: the caller cancels the token; the loop stops accepting,
//! asks every connection to finish (HTTP/2 GOAWAY, HTTP/1 close after the
//! current response) and waits up to the drain timeout for in-flight requests,
//! then closes the connections still open. Long-lived streams must end
//! themselves on the same token.
//!
//! Every request carries its client's address as a [`ClientAddr`] extension;
//! [`TokenGuard`] and [`Throttle`] refuse wrong shared secrets and throttle
//! client addresses that send too many of them.

mod connection;
mod credentials;
mod guard;
mod stream_slots;
mod throttle;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ensign_metrics::{ConnectionTimeoutLabels, ListenerLabels, Metrics};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use connection::{Activity, Ending, Tracked, TrackedIo};

pub use connection::{TrackedBody, TrackedFuture};
pub use credentials::{
    MIN_SECRET_LENGTH, authorization, bearer, check_secret_strength, same_secret,
};
pub use guard::{Refusal, TokenGuard};
pub use stream_slots::{DEFAULT_MAX_STREAMS, STREAM_RETRY_AFTER_SECONDS, StreamSlot, StreamSlots};
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

/// The bounds every listener puts on its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// How long a client may take to send a request's headers, counted from
    /// accept (TLS handshake included) and, on a kept-alive HTTP/1
    /// connection, from the first byte of the next request; the connection is
    /// dropped when it passes. `None`: unbounded.
    pub header_read_timeout: Option<Duration>,
    /// How long a connection may stay open with no request in flight before
    /// it is closed (HTTP/2: GOAWAY). A stream in progress is in flight.
    /// `None`: forever.
    pub idle_timeout: Option<Duration>,
    /// The most connections open at once; further connections are accepted
    /// and closed at once (counted in `ensign_connections_refused_total`).
    pub max_connections: usize,
}

impl ListenerLimits {
    /// The default header-read timeout: generous for any real client, short
    /// enough that half-sent headers do not pile up.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default idle timeout: above the 60 s idle timeouts of common load
    /// balancers and proxies (which must close first) and above OFREP
    /// providers' 30 s polling interval, so pollers keep their connection.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    /// The default connection limit per listener.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// File descriptors kept out of the listeners' share: the database pool,
    /// flag files and their watches, logs, the runtime.
    pub const RESERVED_FILE_DESCRIPTORS: u64 = 256;

    /// These limits with `max_connections` lowered, with a warning, so that
    /// `listeners` listeners each at their limit and
    /// [`RESERVED_FILE_DESCRIPTORS`](Self::RESERVED_FILE_DESCRIPTORS) fit in
    /// `open_files` (the process's limit; `None`: unlimited).
    pub fn fit_open_files(self, listeners: usize, open_files: Option<u64>) -> ListenerLimits {
        let Some(open_files) = open_files else {
            return self;
        };
        let share =
            open_files.saturating_sub(Self::RESERVED_FILE_DESCRIPTORS) / listeners.max(1) as u64;
        let share = usize::try_from(share).unwrap_or(usize::MAX).max(1);
        if self.max_connections <= share {
            return self;
        }
        tracing::warn!(
            open_files,
            listeners,
            requested = self.max_connections,
            max_connections = share,
            "the open-files limit (ulimit -n) is too low for the connection limit of every \
             listener; lowering it so that a flood on one port cannot exhaust file descriptors"
        );
        ListenerLimits {
            max_connections: share,
            ..self
        }
    }
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            header_read_timeout: Some(Self::DEFAULT_HEADER_READ_TIMEOUT),
            idle_timeout: Some(Self::DEFAULT_IDLE_TIMEOUT),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Raises the process's soft limit on open files to its hard limit (as Go's
/// runtime does at start) and returns the soft limit in force, `None` when
/// unlimited. A failure to raise it is logged and the current limit returned.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => getrlimit(Resource::Nofile).current,
        Err(error) => {
            tracing::warn!(%error, soft = ?limit.current, hard = ?limit.maximum, "could not raise the open-files limit");
            limit.current
        }
    }
}

/// How one port listens: everything [`serve`] needs besides the socket, TLS,
/// the service and the shutdown token.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The port's name in logs and in metrics' `listener` label
    /// (`evaluation`, `sync`, `ofrep`, `admin`, `management`).
    pub name: &'static str,
    /// HTTP/2 settings.
    pub http2: Http2Settings,
    /// Connection limits.
    pub limits: ListenerLimits,
    /// How long in-flight requests may take to finish at shutdown.
    pub drain: Duration,
    /// Where connections are counted.
    pub metrics: Arc<Metrics>,
}

impl ListenerConfig {
    /// The default drain timeout.
    pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

    /// A listener named `name` with default settings and limits.
    pub fn new(name: &'static str, metrics: Arc<Metrics>) -> ListenerConfig {
        ListenerConfig {
            name,
            http2: Http2Settings::default(),
            limits: ListenerLimits::default(),
            drain: Self::DEFAULT_DRAIN,
            metrics,
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

/// The counters one listener's connections report to.
#[derive(Clone)]
struct ConnectionCounters {
    header_timeouts: prometheus_client::metrics::counter::Counter,
    idle_timeouts: prometheus_client::metrics::counter::Counter,
}

impl ConnectionCounters {
    fn new(metrics: &Metrics, name: &str) -> Self {
        let counter = |timeout: &str| {
            metrics
                .connection_timeouts
                .get_or_create(&ConnectionTimeoutLabels {
                    listener: name.to_owned(),
                    timeout: timeout.to_owned(),
                })
                .clone()
        };
        ConnectionCounters {
            header_timeouts: counter("header_read"),
            idle_timeouts: counter("idle"),
        }
    }

    fn count(&self, ending: Ending) {
        match ending {
            Ending::HeaderTimeout => self.header_timeouts.inc(),
            Ending::Idle => self.idle_timeouts.inc(),
            Ending::Finished => 0,
        };
    }
}

/// Serves `service` on `listener` until `shutdown` is cancelled, within the
/// limits of `config`, then drains connections for at most `config.drain`.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    config: ListenerConfig,
    shutdown: CancellationToken,
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
        .keep_alive_interval(config.http2.keep_alive_interval)
        .max_concurrent_streams(config.http2.max_concurrent_streams);
    let builder = Arc::new(builder);
    let labels = ListenerLabels {
        listener: config.name.to_owned(),
    };
    let open = config
        .metrics
        .open_connections
        .get_or_create(&labels)
        .clone();
    let refused = config
        .metrics
        .connections_refused
        .get_or_create(&labels)
        .clone();
    let counters = ConnectionCounters::new(&config.metrics, config.name);
    let limits = config.limits;
    let mut connections = JoinSet::new();
    let mut at_limit = false;
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                open.set(connections.len() as i64);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(%error, listener = config.name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= limits.max_connections {
            // Closing at once frees the descriptor and tells the client to go
            // elsewhere; leaving it in the backlog would only make it wait.
            drop(stream);
            refused.inc();
            if !at_limit {
                tracing::warn!(
                    listener = config.name,
                    max_connections = limits.max_connections,
                    "connection limit reached; closing new connections until some close"
                );
                at_limit = true;
            }
            continue;
        }
        if at_limit {
            tracing::info!(listener = config.name, "below the connection limit again");
            at_limit = false;
        }
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        // Every request carries its client's address (for throttling).
        let addressed = tower::ServiceExt::map_request(
            service.clone(),
            move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                request
            },
        );
        let service = TowerToHyperService::new(Tracked::new(addressed, Arc::clone(&activity)));
        let (builder, tls, shutdown, counters) = (
            Arc::clone(&builder),
            tls.clone(),
            shutdown.clone(),
            counters.clone(),
        );
        connections.spawn(async move {
            let ending = match tls {
                None => {
                    serve_connection(&builder, stream, service, &activity, &limits, &shutdown).await
                }
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    let handshake = match limits.header_read_timeout {
                        Some(timeout) => tokio::time::timeout(timeout, handshake).await,
                        None => Ok(handshake.await),
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            serve_connection(
                                &builder, stream, service, &activity, &limits, &shutdown,
                            )
                            .await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            Ending::Finished
                        }
                        Err(_) => Ending::HeaderTimeout,
                    }
                }
            };
            if ending != Ending::Finished {
                tracing::debug!(%peer, ?ending, "connection closed by a timeout");
            }
            counters.count(ending);
        });
        open.set(connections.len() as i64);
    }
    drop(listener);
    tracing::info!(addr = ?local, listener = config.name, "listener closed; draining connections");
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(config.drain, drained).await.is_err() {
        tracing::warn!(addr = ?local, drain = ?config.drain, "drain timeout reached; closing remaining connections");
        connections.shutdown().await;
    }
    open.set(0);
}

/// Serves one accepted (and, with TLS, decrypted) connection until it ends.
async fn serve_connection<I, S, B>(
    builder: &Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<Tracked<S>>,
    activity: &Arc<Activity>,
    limits: &ListenerLimits,
    shutdown: &CancellationToken,
) -> Ending
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(TrackedIo::new(io, Arc::clone(activity)));
    let connection = builder.serve_connection_with_upgrades(io, service);
    connection::drive(connection, activity, limits, shutdown).await
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
