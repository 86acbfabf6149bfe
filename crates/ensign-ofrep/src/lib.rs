//! OFREP, the OpenFeature Remote Evaluation Protocol (service/openapi.yaml
//! 0.3.0), on its own port:
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: one flag; 200 with value, variant,
//!   reason and metadata (no value: "use the code default"), 404 for an unknown
//!   flag, 400 for bad contexts and evaluation errors;
//! - `POST /ofrep/v1/evaluate/flags`: every flag, with an `ETag` that changes
//!   derived from the context and the evaluated answer (so it covers the
//!   selected configuration, the context and time-based rules); `If-None-Match`
//!   answers 304; `eventStreams` advertises the SSE endpoint;
//! - `GET /ofrep/v1/events`: server-sent `refetchEvaluation` events after every
//!   change of the selected flags.
//!
//! `Flagd-Selector` selects as on the other ports (a `selector` query
//! parameter does on the event stream, where browsers cannot set headers).
//!
//! Optional tokens (`--ofrep-auth-token`) guard every route: evaluation takes
//! `Authorization: Bearer` or `X-API-Key`; the event stream takes those too
//! or, since browsers' `EventSource` (which the OFREP web provider uses)
//! sends no headers, a `key` query parameter holding the token's *stream
//! key*: a hash of the token that opens the event stream and nothing else, so
//! the token itself never travels in a URL. The bulk answer advertises the
//! stream URL with the key of the token it was called with. Wrong tokens or
//! keys count against the client address's budget (`ensign_http::Throttle`:
//! 429 with `Retry-After` once it is spent). With CORS origins
//! configured, preflights echo the requested headers (a `*` would not cover
//! `Authorization`) and the `ETag` is exposed to scripts.

mod events;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ensign_context::ContextRules;
use ensign_engine::{ErrorCode, Flag, FlagValue, Reason, Resolution, Selector};
use ensign_store::Store;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// Settings of the OFREP port.
#[derive(Debug, Clone)]
pub struct OfrepConfig {
    /// Static and header-mapped context.
    pub context: ContextRules,
    /// The largest request body, in bytes.
    pub max_request_body: usize,
    /// Tokens accepted as `Authorization: Bearer` or `X-API-Key`; empty: no auth.
    pub tokens: Vec<String>,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_origins: Vec<String>,
    /// A comment line is sent on idle event streams this often.
    pub sse_keep_alive: Duration,
    /// The most event streams open at once; more are refused with 503.
    pub max_streams: usize,
}

impl Default for OfrepConfig {
    fn default() -> Self {
        OfrepConfig {
            context: ContextRules::default(),
            max_request_body: 1_000_000,
            tokens: Vec::new(),
            cors_origins: Vec::new(),
            sse_keep_alive: Duration::from_secs(15),
            max_streams: ensign_http::DEFAULT_MAX_STREAMS,
        }
    }
}

/// What the OFREP handlers share.
#[derive(Debug, Clone)]
pub struct OfrepState {
    /// The flags.
    pub store: Arc<Store>,
    /// The settings.
    pub config: Arc<OfrepConfig>,
    /// Cancelled at shutdown; event streams end on it.
    pub shutdown: CancellationToken,
    /// The event-stream slots, [`OfrepConfig::max_streams`] of them.
    pub streams: ensign_http::StreamSlots,
}

impl OfrepState {
    /// The state of a port serving `store` with `config`, whose event streams
    /// end when `shutdown` is cancelled.
    pub fn new(store: Arc<Store>, config: OfrepConfig, shutdown: CancellationToken) -> Self {
        let streams = ensign_http::StreamSlots::new("sse", config.max_streams, store.metrics());
        OfrepState {
            store,
            config: Arc::new(config),
            shutdown,
            streams,
        }
    }
}

/// The OFREP routes, with auth and CORS as configured.
pub fn router(state: OfrepState) -> Router {
    let guards = Arc::new(Guards::new(&state.config.tokens));
    let evaluation = Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate_flag))
        .route("/ofrep/v1/evaluate/flags", post(evaluate_all))
        .route("/ofrep/v1/evaluate/flags/", post(evaluate_all))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&guards),
            authorize,
        ));
    let events = Router::new()
        .route("/ofrep/v1/events", get(events::subscribe))
        .route_layer(axum::middleware::from_fn_with_state(
            guards,
            authorize_events,
        ));
    let router = evaluation.merge(events).with_state(state.clone());
    // Browser providers read the bulk ETag to send `If-None-Match`.
    let router = match ensign_http::cors(&state.config.cors_origins, &[header::ETAG]) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(axum::middleware::from_fn(json_errors))
}

/// The most bytes of a non-JSON error body kept as `errorDetails`.
const MAX_ERROR_DETAILS: usize = 1024;

/// Gives every error answer OFREP's shape, `{"errorCode", "errorDetails"}` as
/// `application/json`: the ones the handlers write already have it; unknown
/// routes, wrong methods and axum's extractor rejections (plain text or
/// empty) are rewritten here, keeping their status and headers (`Allow`).
async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let details = match status {
        StatusCode::NOT_FOUND => "no such OFREP route".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on this route"),
        _ => {
            let text = http_body_util::Limited::new(body, MAX_ERROR_DETAILS)
                .collect()
                .await
                .ok()
                .map(|body| String::from_utf8_lossy(&body.to_bytes()).trim().to_owned())
                .filter(|text| !text.is_empty());
            text.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let body = json!({"errorCode": "GENERAL", "errorDetails": details}).to_string();
    Response::from_parts(parts, Body::from(body))
}

/// An OFREP error answer.
struct Failure {
    status: StatusCode,
    key: Option<String>,
    code: &'static str,
    details: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        if let Some(key) = self.key {
            body.insert("key".to_owned(), Value::from(key));
        }
        body.insert("errorCode".to_owned(), Value::from(self.code));
        body.insert("errorDetails".to_owned(), Value::from(self.details));
        (self.status, axum::Json(Value::Object(body))).into_response()
    }
}

/// The port's tokens, and their stream keys for the event stream; failures of
/// both count in one throttle.
#[derive(Debug)]
struct Guards {
    tokens: ensign_http::TokenGuard,
    stream_keys: ensign_http::TokenGuard,
}

impl Guards {
    fn new(tokens: &[String]) -> Self {
        let keys: Vec<String> = tokens
            .iter()
            .filter(|token| !token.trim().is_empty())
            .map(|token| stream_key(token))
            .collect();
        let tokens = ensign_http::TokenGuard::new(tokens);
        let stream_keys = ensign_http::TokenGuard::sharing(&keys, Arc::clone(tokens.throttle()));
        Guards {
            tokens,
            stream_keys,
        }
    }
}

/// The token a request presents: `Authorization: Bearer` or `X-API-Key`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    ensign_http::bearer(headers).or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

/// The stream key of `token`: what the event stream accepts as `?key=` in its
/// place. A SHA-256 of the token under a label, base64url: it cannot be turned
/// back into the token, and opens nothing but the event stream.
pub fn stream_key(token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"ensign ofrep event stream key\n")
        .chain_update(token.trim().as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

fn refused(refusal: ensign_http::Refusal) -> Response {
    let mut response = (
        refusal.http_status(),
        axum::Json(
            json!({"errorCode": "GENERAL", "errorDetails": match refusal {
                ensign_http::Refusal::Unauthenticated =>
                    "a valid bearer token or X-API-Key is required",
                ensign_http::Refusal::Throttled { .. } => refusal.message(),
            }}),
        ),
    )
        .into_response();
    let headers = response.headers_mut();
    match refusal.retry_after() {
        Some(seconds) => headers.insert(header::RETRY_AFTER, seconds),
        None => headers.insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        ),
    };
    response
}

async fn authorize(State(guards): State<Arc<Guards>>, request: Request, next: Next) -> Response {
    let client = ensign_http::client_ip(request.extensions());
    match guards
        .tokens
        .admit(presented_token(request.headers()), client)
    {
        Ok(()) => next.run(request).await,
        Err(refusal) => refused(refusal),
    }
}

async fn authorize_events(
    State(guards): State<Arc<Guards>>,
    request: Request,
    next: Next,
) -> Response {
    let client = ensign_http::client_ip(request.extensions());
    let admitted = match presented_token(request.headers()) {
        Some(token) => guards.tokens.admit(Some(token), client),
        None => {
            let key = events::stream_key_of(request.uri());
            guards.stream_keys.admit(key.as_deref(), client)
        }
    };
    match admitted {
        Ok(()) => next.run(request).await,
        Err(refusal) => refused(refusal),
    }
}

/// The request's context and selector, or the failure to answer with.
async fn read_request(
    state: &OfrepState,
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
) -> Result<(Map<String, Value>, Option<Selector>), Failure> {
    let failure = |status, code, details: String| Failure {
        status,
        key: key.map(str::to_owned),
        code,
        details,
    };
    let limit = state.config.max_request_body;
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Err(failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "GENERAL",
                format!("the request body is over {limit} bytes"),
            ));
        }
    };
    let context = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        let invalid =
            |details: String| failure(StatusCode::BAD_REQUEST, "INVALID_CONTEXT", details);
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(mut request)) => match request.remove("context") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(context)) => context,
                Some(_) => return Err(invalid("\"context\" must be an object".to_owned())),
            },
            Ok(_) => return Err(invalid("the body must be a JSON object".to_owned())),
            Err(error) => return Err(invalid(format!("the body is not valid JSON: {error}"))),
        }
    };
    let selector = ensign_context::parse_selector(
        headers
            .get(ensign_context::SELECTOR_HEADER)
            .and_then(|v| v.to_str().ok()),
    )
    .map_err(|e| failure(StatusCode::BAD_REQUEST, "GENERAL", e.to_string()))?;
    let context = state.config.context.assemble(context, |name| {
        headers.get(name).and_then(|v| v.to_str().ok())
    });
    Ok((context, selector))
}

/// A success or failure item for `flag`'s resolution.
fn item(key: &str, resolution: &Resolution<'_, &FlagValue>) -> Result<Value, Failure> {
    let metadata = Value::Object(ensign_engine::metadata::metadata_to_json(
        resolution.metadata,
    ));
    if let Some(error) = &resolution.error {
        let status = match error.code {
            ErrorCode::FlagNotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match error.code {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
            ErrorCode::TypeMismatch | ErrorCode::General => "GENERAL",
        };
        return Err(Failure {
            status,
            key: Some(key.to_owned()),
            code,
            details: error.message.to_string(),
        });
    }
    let mut body = Map::new();
    body.insert("key".to_owned(), Value::from(key));
    body.insert("reason".to_owned(), Value::from(resolution.reason.as_str()));
    if let Some(variant) = resolution.variant {
        body.insert("variant".to_owned(), Value::from(variant));
    }
    if let Some(value) = resolution.value {
        body.insert("value".to_owned(), value.to_json());
    }
    body.insert("metadata".to_owned(), metadata);
    Ok(Value::Object(body))
}

fn count(state: &OfrepState, flag: Option<&Flag>, resolution: &Resolution<'_, &FlagValue>) {
    state.store.record_evaluation(
        flag.map(|flag| (flag.flag_set_id(), flag.key())),
        resolution.variant,
        resolution.reason.as_str(),
        ensign_context::now(),
    );
}

async fn evaluate_flag(
    State(state): State<OfrepState>,
    key: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path(key)) = key else {
        return Failure {
            status: StatusCode::BAD_REQUEST,
            key: None,
            code: "GENERAL",
            details: "the flag key in the path is not valid percent-encoded UTF-8".to_owned(),
        }
        .into_response();
    };
    let (context, selector) = match read_request(&state, &headers, body, Some(&key)).await {
        Ok(request) => request,
        Err(failure) => return failure.into_response(),
    };
    let snapshot = state.store.snapshot();
    let flag = snapshot.get_selected(selector.as_ref(), &key);
    let resolution = match flag {
        Some(flag) => flag.evaluate(&context, ensign_context::now(), snapshot.options()),
        None => Resolution {
            value: None,
            variant: None,
            reason: Reason::Error,
            error: Some(ensign_engine::ResolutionError {
                code: ErrorCode::FlagNotFound,
                message: format!("flag \"{key}\" does not exist").into(),
            }),
            metadata: &EMPTY_METADATA,
        },
    };
    count(&state, flag, &resolution);
    match item(&key, &resolution) {
        Ok(mut body) => {
            if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                let mut merged = ensign_context::selector_metadata(selector.as_ref());
                merged.append(metadata);
                *metadata = merged;
            }
            axum::Json(body).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

static EMPTY_METADATA: ensign_engine::Metadata = ensign_engine::Metadata::new();

/// The ETag of a bulk answer: a hash of the evaluation context and of the
/// answer itself, so it changes with the selected configuration, with the
/// context, and with time-based rules whose answer moved.
fn etag(context: &Map<String, Value>, body: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // serde_json's map is ordered, so equal contexts serialise equally.
    Value::Object(context.clone()).to_string().hash(&mut hasher);
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|candidate| candidate == etag || candidate == "*")
}

async fn evaluate_all(State(state): State<OfrepState>, headers: HeaderMap, body: Body) -> Response {
    let (context, selector) = match read_request(&state, &headers, body, None).await {
        Ok(request) => request,
        Err(failure) => return failure.into_response(),
    };
    let snapshot = state.store.snapshot();
    let flags: Vec<Value> = snapshot
        .resolve_all(selector.as_ref(), &context, ensign_context::now())
        .map(|(flag, resolution)| {
            count(&state, Some(flag), &resolution);
            item(flag.key(), &resolution).unwrap_or_else(|failure| {
                json!({"key": flag.key(), "errorCode": failure.code, "errorDetails": failure.details})
            })
        })
        .collect();
    // The stream key of the token this call was admitted with, for clients
    // (browsers' EventSource) that cannot send it as a header.
    let key = (!state.config.tokens.is_empty())
        .then(|| presented_token(&headers).map(stream_key))
        .flatten();
    let query: Vec<String> = [
        selector
            .as_ref()
            .map(|selector| format!("selector={}", events::encode_query(&selector.to_string()))),
        key.map(|key| format!("key={key}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let stream_uri = if query.is_empty() {
        "/ofrep/v1/events".to_owned()
    } else {
        format!("/ofrep/v1/events?{}", query.join("&"))
    };
    let answer = json!({
        "flags": flags,
        "metadata": ensign_context::selector_metadata(selector.as_ref()),
        "eventStreams": [{
            "type": "sse",
            "endpoint": {"requestUri": stream_uri},
            "inactivityDelaySec": 120
        }]
    });
    let body = answer.to_string();
    let etag = etag(&context, body.as_bytes());
    if matches_etag(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body,
    )
        .into_response()
}
