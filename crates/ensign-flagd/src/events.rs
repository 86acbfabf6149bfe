//! The `EventStream` RPC's events, independent of the transport:
//! `provider_ready` on connect, `configuration_change` with the changed keys,
//! `keep_alive` after 20 s of silence, `provider_shutdown` when the server stops.

use std::sync::Arc;

use ensign_engine::{Selector, Snapshot};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

use crate::FlagdState;
use crate::status::{ApiError, Code};

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `provider_ready`, `configuration_change`, `keep_alive` or `provider_shutdown`.
    pub kind: &'static str,
    /// The event data (empty except for `configuration_change`).
    pub data: Map<String, Value>,
}

impl Event {
    fn empty(kind: &'static str) -> Self {
        Event {
            kind,
            data: Map::new(),
        }
    }
}

/// Starts an event stream for `selector`; it ends when the receiver is dropped,
/// at the server's stream deadline (with `DEADLINE_EXCEEDED`) or at shutdown
/// (after `provider_shutdown`). With every stream slot of the port taken, it
/// is refused with `RESOURCE_EXHAUSTED`.
pub fn subscribe(
    state: &FlagdState,
    selector: Option<Selector>,
) -> Result<mpsc::Receiver<Result<Event, ApiError>>, ApiError> {
    let slot = state
        .streams
        .try_open()
        .ok_or_else(|| ApiError::new(Code::ResourceExhausted, state.streams.refusal()))?;
    let (sender, receiver) = mpsc::channel(16);
    let store = Arc::clone(&state.store);
    let config = Arc::clone(&state.config);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let mut updates = store.subscribe();
        let mut seen: Arc<Snapshot> = Arc::clone(&updates.borrow_and_update().snapshot);
        if sender
            .send(Ok(Event::empty("provider_ready")))
            .await
            .is_err()
        {
            return;
        }
        let deadline = config.stream_deadline.map(|d| Instant::now() + d);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = sender.send(Ok(Event::empty("provider_shutdown"))).await;
                    return;
                }
                () = async { sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                    let _ = sender
                        .send(Err(ApiError::new(Code::DeadlineExceeded, "stream deadline reached")))
                        .await;
                    return;
                }
                () = sender.closed() => return,
                changed = updates.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let current = Arc::clone(&updates.borrow_and_update().snapshot);
                    let changes = current.changes_since(&seen, selector.as_ref());
                    seen = current;
                    if changes.is_empty() {
                        continue;
                    }
                    let flags = changes
                        .into_iter()
                        .map(|(key, change)| {
                            (key, serde_json::json!({ "type": change.as_str() }))
                        })
                        .collect();
                    let mut data = Map::new();
                    data.insert("flags".to_owned(), Value::Object(flags));
                    Event { kind: "configuration_change", data }
                }
                () = sleep(config.keep_alive) => Event::empty("keep_alive"),
            };
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Ok(receiver)
}
