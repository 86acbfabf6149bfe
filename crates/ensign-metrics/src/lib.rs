//! Every Prometheus metric Ensign exports, registered once in one registry.
//!
//! Label values are bounded: flag labels come from configuration (unknown keys
//! are counted under [`UNKNOWN_FLAG`]), methods and services from a fixed list.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The flag label of evaluations of keys that do not exist, so that request
/// input cannot grow the label set.
pub const UNKNOWN_FLAG: &str = "__unknown__";

/// Labels of `ensign_evaluations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvaluationLabels {
    /// The flag key, or [`UNKNOWN_FLAG`].
    pub flag: String,
    /// The variant served, empty when none.
    pub variant: String,
    /// The resolution reason.
    pub reason: String,
}

/// Labels of request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The API service (`flagd.evaluation.v1.Service`, `ofrep`, ...).
    pub service: String,
    /// The method (`ResolveBoolean`, ...).
    pub method: String,
    /// The transport (`grpc`, `grpc-web`, `connect`, `http`).
    pub protocol: String,
}

/// Labels of stream metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// The stream kind (`event_stream`, `sync`, `sse`).
    pub kind: String,
}

/// Labels of source metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The source name (its URI).
    pub source: String,
}

/// Labels of `ensign_killswitch_actions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KillSwitchActionLabels {
    /// `disable`, `variant`, `zero_weight`, `restore` or `none`.
    pub action: String,
    /// What happened (`applied`, `dry_run`, `duplicate`, `restored`, ...).
    pub outcome: String,
}

/// Labels of `ensign_killswitch_webhook_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `ok`, `unauthorized`, `bad_request`, `too_large`, `unavailable` or `error`.
    pub outcome: String,
}

/// Labels of listener metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// The port (`evaluation`, `sync`, `ofrep`, `admin`, `management`).
    pub listener: String,
}

/// Labels of `ensign_connection_timeouts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionTimeoutLabels {
    /// The port (`evaluation`, `sync`, `ofrep`, `admin`, `management`).
    pub listener: String,
    /// `header_read` (closed with a request unfinished) or `idle` (closed
    /// with no request in flight).
    pub timeout: String,
}

/// All of Ensign's metrics.
pub struct Metrics {
    registry: Registry,
    /// Evaluations by flag, variant and reason.
    pub evaluations: Family<EvaluationLabels, Counter>,
    /// Request latency in seconds by service, method and protocol.
    pub request_duration: Family<RequestLabels, Histogram>,
    /// Streams open now, by kind.
    pub open_streams: Family<StreamLabels, Gauge>,
    /// Streams refused because every slot of their kind was taken, by kind.
    pub streams_refused: Family<StreamLabels, Counter>,
    /// Connections open now, by listener.
    pub open_connections: Family<ListenerLabels, Gauge>,
    /// Connections closed at once because the listener was at its limit.
    pub connections_refused: Family<ListenerLabels, Counter>,
    /// Connections closed by the header-read or idle timeout.
    pub connection_timeouts: Family<ConnectionTimeoutLabels, Counter>,
    /// Source updates rejected, by source.
    pub source_errors: Family<SourceLabels, Counter>,
    /// Source updates applied, by source.
    pub source_updates: Family<SourceLabels, Counter>,
    /// Seconds from a database commit to its flags being served here.
    pub propagation: Histogram,
    /// Times the database change listener was listening again after losing
    /// its connection (or failing to make it).
    pub database_listener_reconnects: Counter,
    /// The generation of the snapshot being served.
    pub snapshot_generation: Gauge,
    /// Kill-switch actions by action and outcome.
    pub killswitch_actions: Family<KillSwitchActionLabels, Counter>,
    /// Alertmanager webhook calls by outcome.
    pub killswitch_webhook_requests: Family<WebhookLabels, Counter>,
    /// Seconds from an Alertmanager notification being received to this
    /// replica serving the snapshot its kill switch changed.
    pub killswitch_propagation: Histogram,
    snapshot_age: Gauge<f64, AtomicU64>,
    snapshot_published_at: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ensign");
        let evaluations = Family::<EvaluationLabels, Counter>::default();
        registry.register(
            "evaluations",
            "Flag evaluations by flag, variant and reason",
            evaluations.clone(),
        );
        let request_duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to about 1.6 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Request latency by service, method and protocol",
            request_duration.clone(),
        );
        let open_streams = Family::<StreamLabels, Gauge>::default();
        registry.register(
            "open_streams",
            "Streams open now, by kind",
            open_streams.clone(),
        );
        let streams_refused = Family::<StreamLabels, Counter>::default();
        registry.register(
            "streams_refused",
            "Streams refused because the port's stream limit was reached, by kind",
            streams_refused.clone(),
        );
        let open_connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Connections open now, by listener",
            open_connections.clone(),
        );
        let connections_refused = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed on accept because the listener was at its connection limit",
            connections_refused.clone(),
        );
        let connection_timeouts = Family::<ConnectionTimeoutLabels, Counter>::default();
        registry.register(
            "connection_timeouts",
            "Connections closed by the header-read or the idle timeout, by listener",
            connection_timeouts.clone(),
        );
        let source_errors = Family::<SourceLabels, Counter>::default();
        registry.register(
            "source_errors",
            "Source updates rejected (the last good flags keep serving)",
            source_errors.clone(),
        );
        let source_updates = Family::<SourceLabels, Counter>::default();
        registry.register(
            "source_updates",
            "Source updates applied",
            source_updates.clone(),
        );
        let propagation = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "propagation_seconds",
            "Seconds from a committed flag change to serving it on this replica",
            propagation.clone(),
        );
        let database_listener_reconnects = Counter::default();
        registry.register(
            "database_listener_reconnects",
            "Times the PostgreSQL change listener was listening again after losing its connection",
            database_listener_reconnects.clone(),
        );
        let snapshot_generation = Gauge::default();
        registry.register(
            "snapshot_generation",
            "Generation of the flag snapshot being served",
            snapshot_generation.clone(),
        );
        let snapshot_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "snapshot_age_seconds",
            "Seconds since the snapshot being served was published",
            snapshot_age.clone(),
        );
        let killswitch_actions = Family::<KillSwitchActionLabels, Counter>::default();
        registry.register(
            "killswitch_actions",
            "Kill-switch actions by action and outcome",
            killswitch_actions.clone(),
        );
        let killswitch_webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "killswitch_webhook_requests",
            "Alertmanager webhook requests by outcome",
            killswitch_webhook_requests.clone(),
        );
        // 1 ms to about 16 s.
        let killswitch_propagation = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "killswitch_propagation_seconds",
            "Seconds from an Alertmanager notification being received to this replica serving the flags its kill switch changed",
            killswitch_propagation.clone(),
        );
        Metrics {
            registry,
            killswitch_actions,
            killswitch_webhook_requests,
            killswitch_propagation,
            evaluations,
            request_duration,
            open_streams,
            streams_refused,
            open_connections,
            connections_refused,
            connection_timeouts,
            source_errors,
            source_updates,
            propagation,
            database_listener_reconnects,
            snapshot_generation,
            snapshot_age,
            snapshot_published_at: AtomicU64::new(unix_millis()),
        }
    }

    /// Records that snapshot `generation` was just published.
    pub fn snapshot_published(&self, generation: u64) {
        self.snapshot_generation.set(generation as i64);
        self.snapshot_published_at
            .store(unix_millis(), Ordering::Relaxed);
    }

    /// Counts one evaluation.
    pub fn count_evaluation(&self, flag: Option<&str>, variant: Option<&str>, reason: &str) {
        self.evaluations
            .get_or_create(&EvaluationLabels {
                flag: flag.unwrap_or(UNKNOWN_FLAG).to_owned(),
                variant: variant.unwrap_or_default().to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one kill-switch action.
    pub fn count_killswitch_action(&self, action: &str, outcome: &str) {
        self.killswitch_actions
            .get_or_create(&KillSwitchActionLabels {
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one Alertmanager webhook request.
    pub fn count_webhook_request(&self, outcome: &str) {
        self.killswitch_webhook_requests
            .get_or_create(&WebhookLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let published = self.snapshot_published_at.load(Ordering::Relaxed);
        let age = unix_millis().saturating_sub(published) as f64 / 1000.0;
        self.snapshot_age.set(age);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_families_with_labels() {
        let metrics = Metrics::new();
        metrics.count_evaluation(Some("banner"), Some("on"), "STATIC");
        metrics.count_evaluation(None, None, "ERROR");
        metrics.snapshot_published(7);
        metrics.count_killswitch_action("disable", "applied");
        metrics.count_webhook_request("unauthorized");
        metrics.killswitch_propagation.observe(0.004);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"ensign_killswitch_actions_total{action="disable",outcome="applied"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ensign_killswitch_webhook_requests_total{outcome="unauthorized"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("ensign_killswitch_propagation_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ensign_evaluations_total{flag="banner",variant="on",reason="STATIC"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"flag="__unknown__",variant="",reason="ERROR""#),
            "{text}"
        );
        assert!(text.contains("ensign_snapshot_generation 7"), "{text}");
        assert!(
            text.contains("# TYPE ensign_snapshot_age_seconds gauge"),
            "{text}"
        );
    }
}
