//! The flagd evaluation API: `flagd.evaluation.v1.Service`,
//! `flagd.evaluation.v2.Service` and `schema.v1.Service`, every RPC, over gRPC,
//! gRPC-Web and Connect, on one port.
//!
//! Requests are routed by content type: `application/grpc*` (gRPC and gRPC-Web)
//! go to the tonic services, everything else to the Connect handler. Both
//! answer from [`outcome`], so the transports cannot drift apart.
//!
//! With `--evaluation-auth-token`, every request must carry one of the tokens
//! as `Authorization: Bearer` (gRPC metadata `authorization` for gRPC):
//! refusals are UNAUTHENTICATED (Connect `unauthenticated`, HTTP 401), and a
//! client address with too many wrong tokens gets RESOURCE_EXHAUSTED (HTTP
//! 429) with `Retry-After`. CORS preflights need no token.

pub mod connect;
pub mod events;
pub mod grpc;
pub mod outcome;
pub mod status;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use ensign_metrics::RequestLabels;
use ensign_proto::{evaluation_v1, evaluation_v2, schema_v1};
use ensign_store::Store;
use http::{Request, Response};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use ensign_context::ContextRules;

/// Settings of the evaluation API.
#[derive(Debug, Clone)]
pub struct FlagdConfig {
    /// Static and header-mapped context.
    pub context: ContextRules,
    /// The largest request body accepted, in bytes.
    pub max_request_body: usize,
    /// End event streams after this long (`None`: never), as `--stream-deadline`.
    pub stream_deadline: Option<Duration>,
    /// Silence after which an event stream sends `keep_alive`.
    pub keep_alive: Duration,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_origins: Vec<String>,
    /// The most `EventStream`s open at once on the port (all transports
    /// together); more are refused with `RESOURCE_EXHAUSTED`.
    pub max_streams: usize,
    /// Tokens clients must send as `Authorization: Bearer`; empty: none.
    pub tokens: Vec<String>,
}

impl Default for FlagdConfig {
    fn default() -> Self {
        FlagdConfig {
            context: ContextRules::default(),
            max_request_body: 1_000_000,
            stream_deadline: None,
            keep_alive: Duration::from_secs(20),
            cors_origins: Vec::new(),
            max_streams: ensign_http::DEFAULT_MAX_STREAMS,
            tokens: Vec::new(),
        }
    }
}

/// What every handler of the evaluation API shares.
#[derive(Debug, Clone)]
pub struct FlagdState {
    /// The flags.
    pub store: Arc<Store>,
    /// The settings.
    pub config: Arc<FlagdConfig>,
    /// Cancelled when the server shuts down; streams end on it.
    pub shutdown: CancellationToken,
    /// The `EventStream` slots, [`FlagdConfig::max_streams`] of them.
    pub streams: ensign_http::StreamSlots,
}

impl FlagdState {
    /// The state of a port serving `store` with `config`, whose streams end
    /// when `shutdown` is cancelled.
    pub fn new(store: Arc<Store>, config: FlagdConfig, shutdown: CancellationToken) -> Self {
        let streams =
            ensign_http::StreamSlots::new("event_stream", config.max_streams, store.metrics());
        FlagdState {
            store,
            config: Arc::new(config),
            shutdown,
            streams,
        }
    }
}

/// The routes of one port: gRPC and gRPC-Web to tonic, the rest to Connect.
pub fn service(
    state: FlagdState,
) -> impl tower::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let limit = state.config.max_request_body;
    let guard = Arc::new(ensign_http::TokenGuard::new(&state.config.tokens));
    let grpc = tonic::service::Routes::new(
        evaluation_v1::service_server::ServiceServer::new(grpc::EvaluationV1(state.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        evaluation_v2::service_server::ServiceServer::new(grpc::EvaluationV2(state.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        schema_v1::service_server::ServiceServer::new(grpc::SchemaV1(state.clone()))
            .max_decoding_message_size(limit),
    )
    .into_axum_router()
    .layer(tonic_web::GrpcWebLayer::new())
    .layer(axum::middleware::from_fn_with_state(
        Arc::clone(&guard),
        authorize,
    ));
    let connect = Router::new()
        .route("/{service}/{method}", post(connect::handle))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(guard, authorize));
    let exposed = [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "connect-content-encoding",
        "connect-accept-encoding",
    ]
    .map(http::HeaderName::from_static);
    let cors = ensign_http::cors(&state.config.cors_origins, &exposed);
    let metrics = Arc::clone(state.store.metrics());
    tower::service_fn(move |request: Request<hyper::body::Incoming>| {
        let protocol = protocol(&request);
        let labels = request_labels(request.uri().path(), protocol);
        let route = if protocol.starts_with("grpc") {
            grpc.clone()
        } else {
            connect.clone()
        };
        let cors = cors.clone();
        let metrics = Arc::clone(&metrics);
        async move {
            let started = Instant::now();
            let request = request.map(Body::new);
            let response = match cors {
                Some(cors) => {
                    tower::ServiceBuilder::new()
                        .layer(cors)
                        .service(route)
                        .oneshot(request)
                        .await
                }
                None => route.oneshot(request).await,
            };
            metrics
                .request_duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            response
        }
    })
}

/// Admits requests with a valid token (every request when there are none);
/// answers others in their own protocol.
async fn authorize(
    axum::extract::State(guard): axum::extract::State<Arc<ensign_http::TokenGuard>>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    let client = ensign_http::client_ip(request.extensions());
    let Err(refusal) = guard.admit(ensign_http::bearer(request.headers()), client) else {
        return next.run(request).await;
    };
    let error = status::ApiError::from_refusal(refusal);
    let mut response = if protocol(&request).starts_with("grpc") {
        let mut response = error.to_status().into_http::<Body>();
        // gRPC-Web clients expect their own content type back.
        if let Some(content_type) = request.headers().get(http::header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.clone());
        }
        response
    } else {
        connect::early_error(request.headers(), &error)
    };
    if let Some(seconds) = refusal.retry_after() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, seconds);
    }
    response
}

fn protocol<B>(request: &Request<B>) -> &'static str {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/grpc-web") {
        "grpc-web"
    } else if content_type.starts_with("application/grpc") {
        "grpc"
    } else {
        "connect"
    }
}

/// Labels from the path, limited to the known services and methods so that
/// arbitrary paths cannot grow the label set.
fn request_labels(path: &str, protocol: &str) -> RequestLabels {
    const METHODS: [&str; 7] = [
        "ResolveAll",
        "ResolveBoolean",
        "ResolveString",
        "ResolveFloat",
        "ResolveInt",
        "ResolveObject",
        "EventStream",
    ];
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts
        .next()
        .and_then(outcome::ApiVersion::from_service_name)
        .map_or("unknown", outcome::ApiVersion::service_name);
    let method = parts
        .next()
        .and_then(|m| METHODS.iter().find(|known| **known == m))
        .copied()
        .unwrap_or("unknown");
    RequestLabels {
        service: service.to_owned(),
        method: method.to_owned(),
        protocol: protocol.to_owned(),
    }
}
