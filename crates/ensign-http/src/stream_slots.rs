//! A bound on the long-lived streams of one kind (OFREP SSE, flagd
//! `EventStream`, sync `SyncFlags`): a stream takes a slot when it opens and
//! gives it back when it ends, however it ends. Open streams are reported in
//! `ensign_open_streams{kind}`, refusals in `ensign_streams_refused_total{kind}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ensign_metrics::{Metrics, StreamLabels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// The default number of streams of one kind a port keeps open at once.
pub const DEFAULT_MAX_STREAMS: usize = 2_000;

/// How long a client refused a stream is asked to wait (`Retry-After`, seconds).
pub const STREAM_RETRY_AFTER_SECONDS: u32 = 5;

/// The slots of one kind of stream. Cheap to clone; clones share the slots.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    kind: &'static str,
    max: usize,
    taken: AtomicUsize,
    open: Gauge,
    refused: Counter,
}

impl StreamSlots {
    /// `max` slots for streams of `kind` (`sse`, `event_stream`, `sync`),
    /// reported in `metrics`.
    pub fn new(kind: &'static str, max: usize, metrics: &Metrics) -> StreamSlots {
        let labels = StreamLabels {
            kind: kind.to_owned(),
        };
        StreamSlots {
            shared: Arc::new(Shared {
                kind,
                max,
                taken: AtomicUsize::new(0),
                open: metrics.open_streams.get_or_create(&labels).clone(),
                refused: metrics.streams_refused.get_or_create(&labels).clone(),
            }),
        }
    }

    /// A slot for one more stream, or `None` (counted and logged) when all
    /// are taken.
    pub fn try_open(&self) -> Option<StreamSlot> {
        let shared = &self.shared;
        let taken = shared
            .taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < shared.max).then_some(taken + 1)
            });
        if taken.is_err() {
            shared.refused.inc();
            tracing::debug!(
                kind = shared.kind,
                max = shared.max,
                "stream refused: every slot is taken"
            );
            return None;
        }
        shared.open.inc();
        Some(StreamSlot {
            shared: Arc::clone(shared),
        })
    }

    /// The most streams open at once.
    pub fn max(&self) -> usize {
        self.shared.max
    }

    /// The message a refused client gets.
    pub fn refusal(&self) -> String {
        format!(
            "too many open {} streams on this server (limit {}); retry later",
            self.shared.kind, self.shared.max
        )
    }
}

/// One stream's slot, given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    shared: Arc<Shared>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.shared.taken.fetch_sub(1, Ordering::AcqRel);
        self.shared.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_refused_and_given_back() {
        let metrics = Metrics::new();
        let slots = StreamSlots::new("sse", 2, &metrics);
        let first = slots.try_open();
        let second = slots.clone().try_open();
        assert!(first.is_some() && second.is_some());
        assert!(slots.try_open().is_none());
        let text = metrics.render();
        assert!(
            text.contains(r#"ensign_open_streams{kind="sse"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ensign_streams_refused_total{kind="sse"} 1"#),
            "{text}"
        );
        drop(first);
        assert!(slots.try_open().is_some());
        let text = metrics.render();
        assert!(
            text.contains(r#"ensign_open_streams{kind="sse"} 1"#),
            "{text}"
        );
    }
}
