//! `GET /ofrep/v1/events`: server-sent events telling OFREP clients to
//! re-fetch (`{"type":"refetchEvaluation","etag":…}`) after every change of the
//! flags their selector sees, with comment lines to keep idle connections open.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::OfrepState;

/// Query parameters of the event stream.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    selector: Option<String>,
    /// The stream key of a token (checked by the router's guard).
    key: Option<String>,
}

/// The `key` query parameter of an event stream URI, if any.
pub fn stream_key_of(uri: &http::Uri) -> Option<String> {
    Query::<EventsQuery>::try_from_uri(uri).ok()?.0.key
}

/// Percent-encodes a selector for a query string.
pub fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Opens an event stream.
pub async fn subscribe(
    State(state): State<OfrepState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let header = headers
        .get(ensign_context::SELECTOR_HEADER)
        .and_then(|v| v.to_str().ok());
    let selector = match ensign_context::parse_selector(header.or(query.selector.as_deref())) {
        Ok(selector) => selector,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"errorCode": "GENERAL", "errorDetails": error.to_string()})),
            )
                .into_response();
        }
    };
    let Some(slot) = state.streams.try_open() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::RETRY_AFTER,
                ensign_http::STREAM_RETRY_AFTER_SECONDS.to_string(),
            )],
            axum::Json(json!({"errorCode": "GENERAL", "errorDetails": state.streams.refusal()})),
        )
            .into_response();
    };
    let (sender, receiver) = mpsc::channel::<Result<Bytes, Infallible>>(8);
    tokio::spawn(async move {
        let _slot = slot;
        let mut updates = state.store.subscribe();
        let mut seen = updates.borrow_and_update().clone();
        if sender
            .send(Ok(Bytes::from_static(b": connected\n\n")))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let frame = tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = sender.closed() => return,
                () = tokio::time::sleep(state.config.sse_keep_alive) => Bytes::from_static(b": keep-alive\n\n"),
                changed = updates.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let published = updates.borrow_and_update().clone();
                    let changed = state.store.selection_changed(&seen, &published, selector.as_ref());
                    seen = published.clone();
                    if !changed {
                        continue;
                    }
                    let event = json!({"type": "refetchEvaluation", "etag": published.generation.to_string()});
                    Bytes::from(format!("data: {event}\n\n"))
                }
            };
            if sender.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(ReceiverStream::new(receiver)),
    )
        .into_response()
}
