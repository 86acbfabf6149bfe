//! `flagd.sync.v1.FlagSyncService` for in-process providers: `SyncFlags`
//! streams a full payload on connect and after every change of the selected
//! flags, with the server's static context as `sync_context`; `FetchAllFlags`
//! answers once; `GetMetadata` (deprecated) returns the static context.
//!
//! The selector comes from the `flagd-selector` header, else the request body.
//!
//! With tokens (`--sync-auth-token`), every call must carry one as
//! `authorization: Bearer <token>` metadata: refusals are UNAUTHENTICATED, and
//! a client address with too many wrong tokens gets RESOURCE_EXHAUSTED with
//! `retry-after` (seconds) until its window ends.

pub mod payload;

use std::pin::Pin;
use std::sync::Arc;

use ensign_engine::Selector;
use ensign_proto::convert::{Struct, json_to_struct};
use ensign_proto::sync_v1::flag_sync_service_server::{FlagSyncService, FlagSyncServiceServer};
use ensign_proto::sync_v1::{
    FetchAllFlagsRequest, FetchAllFlagsResponse, GetMetadataRequest, GetMetadataResponse,
    SyncFlagsRequest, SyncFlagsResponse,
};
use ensign_store::Store;
use futures_util::Stream;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use payload::PayloadCache;

/// How often the sync port pings idle HTTP/2 connections, to find dead
/// clients of long-lived streams. Clients' own pings are never answered with
/// GOAWAY (no ENHANCE_YOUR_CALM), whatever their keepalive settings.
pub const KEEP_ALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Settings of the sync service.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The static context (`-X`), sent as `sync_context` and by `GetMetadata`.
    pub static_context: Map<String, Value>,
    /// `--disable-sync-metadata`: `GetMetadata` answers `UNIMPLEMENTED`.
    pub disable_metadata: bool,
    /// The most `SyncFlags` streams open at once; more are refused with
    /// `RESOURCE_EXHAUSTED`.
    pub max_streams: usize,
    /// Tokens clients must send as `authorization: Bearer`; empty: none.
    pub tokens: Vec<String>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            static_context: Map::new(),
            disable_metadata: false,
            max_streams: ensign_http::DEFAULT_MAX_STREAMS,
            tokens: Vec::new(),
        }
    }
}

/// The sync service.
#[derive(Debug, Clone)]
pub struct SyncService {
    store: Arc<Store>,
    config: Arc<SyncConfig>,
    shutdown: CancellationToken,
    payloads: Arc<PayloadCache>,
    streams: ensign_http::StreamSlots,
}

impl SyncService {
    /// A service serving `store`, ending its streams when `shutdown` is cancelled.
    pub fn new(store: Arc<Store>, config: SyncConfig, shutdown: CancellationToken) -> Self {
        let streams = ensign_http::StreamSlots::new("sync", config.max_streams, store.metrics());
        SyncService {
            store,
            config: Arc::new(config),
            shutdown,
            payloads: Arc::default(),
            streams,
        }
    }

    /// The routes of the sync port.
    pub fn into_router(self, max_message_size: usize) -> axum::Router {
        let guard = Arc::new(ensign_http::TokenGuard::new(&self.config.tokens));
        tonic::service::Routes::new(
            FlagSyncServiceServer::new(self).max_decoding_message_size(max_message_size),
        )
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(guard, authorize))
    }

    /// What the payload cache holds now (its bounds are
    /// [`payload::MAX_CACHED_PAYLOADS`] and [`payload::MAX_CACHED_PAYLOAD_BYTES`]).
    pub fn cached_payloads(&self) -> payload::CacheUsage {
        self.payloads.usage()
    }

    fn sync_context(&self) -> Struct {
        json_to_struct(&self.config.static_context)
    }
}

/// Admits calls with a valid token (every call when there are none).
async fn authorize(
    axum::extract::State(guard): axum::extract::State<Arc<ensign_http::TokenGuard>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let client = ensign_http::client_ip(request.extensions());
    match guard.admit(ensign_http::bearer(request.headers()), client) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // A trailers-only answer: its headers are the call's metadata.
            let mut response =
                Status::new(refusal.grpc_code().into(), refusal.message()).into_http();
            if let Some(seconds) = refusal.retry_after() {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, seconds);
            }
            response
        }
    }
}

fn selector<T>(request: &Request<T>, body_selector: &str) -> Result<Option<Selector>, Status> {
    let header = request
        .metadata()
        .get(ensign_context::SELECTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    ensign_context::parse_selector(header.or(Some(body_selector)))
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A stream of sync messages.
pub type SyncStream = Pin<Box<dyn Stream<Item = Result<SyncFlagsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FlagSyncService for SyncService {
    type SyncFlagsStream = SyncStream;

    async fn sync_flags(
        &self,
        request: Request<SyncFlagsRequest>,
    ) -> Result<Response<Self::SyncFlagsStream>, Status> {
        let selector = selector(&request, &request.get_ref().selector)?;
        let slot = self
            .streams
            .try_open()
            .ok_or_else(|| Status::resource_exhausted(self.streams.refusal()))?;
        let (sender, receiver) = mpsc::channel(4);
        let service = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let sync_context = service.sync_context();
            let mut updates = service.store.subscribe();
            let published = updates.borrow_and_update().clone();
            let mut seen = published.clone();
            let first = SyncFlagsResponse {
                flag_configuration: service
                    .payloads
                    .get(&published, selector.as_ref())
                    .to_string(),
                sync_context: Some(sync_context.clone()),
            };
            if sender.send(Ok(first)).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    () = service.shutdown.cancelled() => return,
                    () = sender.closed() => return,
                    changed = updates.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let published = updates.borrow_and_update().clone();
                        let changed = service.store.selection_changed(&seen, &published, selector.as_ref());
                        seen = published.clone();
                        if !changed {
                            continue;
                        }
                        let message = SyncFlagsResponse {
                            flag_configuration: service.payloads.get(&published, selector.as_ref()).to_string(),
                            sync_context: Some(sync_context.clone()),
                        };
                        if sender.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn fetch_all_flags(
        &self,
        request: Request<FetchAllFlagsRequest>,
    ) -> Result<Response<FetchAllFlagsResponse>, Status> {
        let selector = selector(&request, &request.get_ref().selector)?;
        let published = self.store.latest();
        Ok(Response::new(FetchAllFlagsResponse {
            flag_configuration: self.payloads.get(&published, selector.as_ref()).to_string(),
        }))
    }

    async fn get_metadata(
        &self,
        _request: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        if self.config.disable_metadata {
            return Err(Status::unimplemented("sync metadata is disabled"));
        }
        Ok(Response::new(GetMetadataResponse {
            metadata: Some(self.sync_context()),
        }))
    }
}
