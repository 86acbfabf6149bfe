//! The database as a flag source: the served environment's flags, one flagd
//! document per flag set (named `database:<flagSet>`), reloaded when a change
//! is committed.
//!
//! Changes arrive from this process (`Storage::local_changes`) and, on
//! PostgreSQL, from every replica through `LISTEN ensign_changes`. Only flag
//! sets whose document changed are recompiled. After the listener reconnects,
//! and every [`RESYNC_INTERVAL`] anyway, the whole environment is reloaded,
//! so a missed notification is never a missed change. While the database is
//! unreachable the last loaded flags keep serving: a failed load (or one
//! without an answer within 10 s) is counted as a rejected update
//! and retried every 500 ms. Losing the listener's connection starts such a
//! load at once, so an outage is noticed, and its end picked up, without
//! waiting for the listener to reconnect.
//!
//! Publishing a change that carries `alertReceivedAt` (a kill switch acted on
//! an Alertmanager notification) observes
//! `ensign_killswitch_propagation_seconds`: notification received → this
//! replica serves the changed flags.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ensign_engine::document::{Limits, load_value};
use ensign_engine::{FlagDocument, Source};
use ensign_metrics::Metrics;
use ensign_storage::{Backend, CHANGES_CHANNEL, Change, Storage};
use ensign_store::Store;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The store slot the database fills.
pub const DATABASE_SOURCE: &str = "database";

/// A full reload this often, whatever was notified.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Retry delay after a failed load.
const RETRY: Duration = Duration::from_millis(500);

/// A load that takes longer failed (the database does not answer); it is
/// retried like any other failed load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting the listener may take before it is tried again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often last-evaluated times are written to the database.
pub const EVALUATION_FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// Writes the last-evaluated times the store recorded since the previous
/// flush (for flags of a flag set) to the database; `flushed` remembers what
/// was written. Returns how many flags were updated.
pub async fn flush_evaluations(
    storage: &Storage,
    store: &Store,
    flushed: &mut HashMap<(String, String), i64>,
) -> Result<usize, ensign_storage::StorageError> {
    let fresh: Vec<(String, String, i64)> = store
        .evaluated_flags()
        .into_iter()
        .filter_map(|(flag_set, key, at)| flag_set.map(|set| (set, key, at * 1000)))
        .filter(|(set, key, at)| flushed.get(&(set.clone(), key.clone())) != Some(at))
        .collect();
    storage.record_evaluations(&fresh).await?;
    for (set, key, at) in &fresh {
        flushed.insert((set.clone(), key.clone()), *at);
    }
    Ok(fresh.len())
}

/// Flushes last-evaluated times every [`EVALUATION_FLUSH_INTERVAL`] and once
/// more at shutdown (bounded), off the request path.
async fn flush_periodically(storage: Storage, store: Arc<Store>, shutdown: CancellationToken) {
    let mut flushed = HashMap::new();
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(EVALUATION_FLUSH_INTERVAL) => false,
        };
        let flush = flush_evaluations(&storage, &store, &mut flushed);
        match tokio::time::timeout(LOAD_TIMEOUT, flush).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not record last-evaluated times"),
            Err(_) => tracing::warn!("recording last-evaluated times timed out"),
        }
        if stopping {
            return;
        }
    }
}

/// Compiled documents by flag set, with the JSON they came from.
#[derive(Default)]
struct Loaded {
    documents: HashMap<String, (String, Arc<FlagDocument>)>,
    /// Whether the store has the database's flags yet (even none).
    published: bool,
}

/// Serves `environment` from `storage` into `store` until `shutdown`.
/// `database_url` is used to LISTEN on PostgreSQL.
pub async fn run_database_source(
    storage: Storage,
    database_url: String,
    environment: String,
    store: Arc<Store>,
    shutdown: CancellationToken,
) {
    tokio::spawn(flush_periodically(
        storage.clone(),
        Arc::clone(&store),
        shutdown.clone(),
    ));
    let (notify, mut notified) = mpsc::channel::<Option<Change>>(64);
    if storage.backend() == Backend::Postgres {
        tokio::spawn(listen(
            database_url,
            Arc::clone(store.metrics()),
            notify.clone(),
            shutdown.clone(),
        ));
    }
    let mut local = storage.local_changes();
    let mut loaded = Loaded::default();
    let mut pending: Option<Option<Change>> = Some(None);
    // Every load reads the whole environment, so the periodic resync is due
    // RESYNC_INTERVAL after the last successful one, however many
    // notifications (of other environments, say) arrive meanwhile.
    let mut resync_at = Instant::now() + RESYNC_INTERVAL;
    loop {
        if let Some(change) = pending.take() {
            // Bounded, and abandoned at shutdown: a database that does not
            // answer must neither stall this loop nor the server's exit.
            // (`reload` changes `loaded` only after its last await.)
            let loading = reload(&storage, &environment, &store, &mut loaded, change.as_ref());
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = tokio::time::timeout(LOAD_TIMEOUT, loading) => result.unwrap_or_else(|_| {
                    Err(format!(
                        "loading environment \"{environment}\": no answer within {LOAD_TIMEOUT:?}"
                    ))
                }),
            };
            match result {
                Ok(()) => resync_at = Instant::now() + RESYNC_INTERVAL,
                Err(reason) => {
                    store.reject_update(DATABASE_SOURCE, &reason);
                    pending = Some(None);
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY) => continue,
                    }
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = local.recv() => match change {
                Ok(change) if change.affects(&environment) => pending = Some(Some(change)),
                Ok(_) => {}
                // Lagged: changes were missed, so reload everything.
                Err(_) => pending = Some(None),
            },
            Some(change) = notified.recv() => match change {
                Some(change) if !change.affects(&environment) => {}
                change => pending = Some(change),
            },
            () = tokio::time::sleep_until(resync_at) => pending = Some(None),
        }
    }
}

/// Loads the environment's documents and publishes them when any changed.
async fn reload(
    storage: &Storage,
    environment: &str,
    store: &Store,
    loaded: &mut Loaded,
    change: Option<&Change>,
) -> Result<(), String> {
    let documents = storage
        .environment_documents(environment)
        .await
        .map_err(|e| format!("loading environment \"{environment}\": {e}"))?;
    let mut changed = documents.len() != loaded.documents.len() || !loaded.published;
    let mut next = HashMap::new();
    for (flag_set, document) in documents {
        let text = document.to_string();
        let compiled = match loaded.documents.get(&flag_set) {
            Some((previous, compiled)) if *previous == text => Arc::clone(compiled),
            _ => {
                changed = true;
                let compiled = load_value(&document, &Limits::default())
                    .map_err(|e| format!("flag set \"{flag_set}\": {e}"))?;
                Arc::new(compiled.document)
            }
        };
        next.insert(flag_set, (text, compiled));
    }
    loaded.documents = next;
    if !changed {
        return Ok(());
    }
    let mut sources: Vec<Source> = loaded
        .documents
        .iter()
        .map(|(flag_set, (_, document))| Source {
            name: format!("{DATABASE_SOURCE}:{flag_set}").into(),
            document: Arc::clone(document),
        })
        .collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    store.replace_group(DATABASE_SOURCE, sources);
    loaded.published = true;
    if let Some(change) = change {
        let now = ensign_context::now_millis();
        let since = |at: i64| (now - at).max(0) as f64 / 1000.0;
        if change.committed_at > 0 {
            store
                .metrics()
                .propagation
                .observe(since(change.committed_at));
        }
        // A kill switch's change: Alertmanager's notification → served here.
        if let Some(received_at) = change.alert_received_at {
            store
                .metrics()
                .killswitch_propagation
                .observe(since(received_at));
        }
    }
    Ok(())
}

/// Forwards PostgreSQL notifications; `None` asks for a full reload: when the
/// connection is lost (so that the loss is noticed and the reload retried
/// until the database answers again), and once listening again (anything
/// committed in between was not notified). Listening again after an outage
/// is logged with its length and counted in
/// `ensign_database_listener_reconnects_total`.
async fn listen(
    url: String,
    metrics: Arc<Metrics>,
    notify: mpsc::Sender<Option<Change>>,
    shutdown: CancellationToken,
) {
    // Since when the listener has been down, and how many connection
    // attempts have failed since; `None` while listening (and before the
    // first attempt).
    let mut outage: Option<(Instant, u32)> = None;
    loop {
        let connected = tokio::select! {
            () = shutdown.cancelled() => return,
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect_listener(&url)) => connected,
        };
        let mut listener = match connected {
            Ok(Ok(listener)) => listener,
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {CONNECT_TIMEOUT:?}"),
                };
                let failed_attempts = &mut outage.get_or_insert_with(|| (Instant::now(), 0)).1;
                *failed_attempts += 1;
                tracing::warn!(%error, attempt = *failed_attempts, "cannot listen for flag changes; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        if let Some((since, failed_attempts)) = outage.take() {
            metrics.database_listener_reconnects.inc();
            tracing::info!(
                down_for = ?since.elapsed(),
                attempts = failed_attempts + 1,
                "listening for flag changes again"
            );
        }
        // Anything committed while we were not listening is picked up here.
        if notify.send(None).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => {
                    let change =
                        serde_json::from_str::<Change>(notification.payload()).unwrap_or_default();
                    if notify.send(Some(change)).await.is_err() {
                        return;
                    }
                }
                // The connection is gone (`Ok(None)`: closed; without eager
                // reconnection `try_recv` returns at once instead of first
                // retrying to connect for up to the pool's acquire timeout).
                lost => {
                    outage = Some((Instant::now(), 0));
                    if let Err(error) = lost {
                        tracing::warn!(%error, "lost the change listener; reconnecting");
                    } else {
                        tracing::warn!("lost the change listener; reconnecting");
                    }
                    if notify.send(None).await.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// A listener on [`CHANGES_CHANNEL`] that reports a lost connection at once.
async fn connect_listener(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}
