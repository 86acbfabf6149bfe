//! The kill switch's automatic restores: every [`RESTORE_INTERVAL`] the
//! restores that came due are applied (see
//! `Storage::apply_due_restores`). Each is a guarded transaction, so any
//! number of replicas may run this loop: a restore is applied once.

use std::sync::Arc;
use std::time::Duration;

use ensign_metrics::Metrics;
use ensign_storage::Storage;
use tokio_util::sync::CancellationToken;

/// How often due restores are looked for.
pub const RESTORE_INTERVAL: Duration = Duration::from_secs(1);

/// A pass that takes longer is abandoned (and the next one tries again).
const PASS_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies due restores every [`RESTORE_INTERVAL`] until `shutdown`,
/// counting each in `ensign_killswitch_actions_total{action="restore"}`.
pub async fn run_due_restores(
    storage: Storage,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RESTORE_INTERVAL) => {}
        }
        let now = ensign_context::now_millis();
        let pass = tokio::time::timeout(PASS_TIMEOUT, storage.apply_due_restores(now));
        let results = tokio::select! {
            () = shutdown.cancelled() => return,
            results = pass => results,
        };
        match results {
            Ok(Ok(results)) => {
                for result in results {
                    tracing::info!(record = result.record, action = %result.action, outcome = %result.outcome,
                        "kill switch: automatic restore");
                    metrics.count_killswitch_action("restore", &result.outcome);
                }
            }
            Ok(Err(error)) => {
                metrics.count_killswitch_action("restore", "error");
                tracing::warn!(%error, "kill switch: applying due restores failed; retrying");
            }
            Err(_) => tracing::warn!("kill switch: applying due restores timed out; retrying"),
        }
    }
}
