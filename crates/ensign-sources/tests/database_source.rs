//! The database source against the machine's PostgreSQL: replicas sharing one
//! database learn of every committed change, reload only the flag sets that
//! changed, resynchronise after losing their listener, and keep serving their
//! last snapshot through an outage, and observe how long a kill switch took
//! from the Alertmanager notification to serving.
//!
//! Each test creates a database of its own and drops it at the end, passed or
//! failed. PostgreSQL is found at `ENSIGN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it cannot be reached
//! the tests fail, they never skip.
//!
//! A "replica" here is what one `ensign serve` process runs: a store and
//! `run_database_source` with a storage (connection pool) of its own, so a
//! write through another storage reaches it only through LISTEN/NOTIFY.
//! Timings are not asserted (`scripts/propagation-bench.sh` measures them);
//! each wait is bounded so that a miss fails instead of hanging. The waits are
//! shorter than the periodic resync, so the periodic resync cannot be what
//! makes a test pass.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ensign_engine::{Context, EvaluationOptions, FlagChange, Snapshot};
use ensign_metrics::Metrics;
use ensign_sources::database::RESYNC_INTERVAL;
use ensign_sources::{DATABASE_SOURCE, run_database_source};
use ensign_storage::model::{Actor, FlagKind};
use ensign_storage::{NewFlag, Storage};
use ensign_store::Store;
use serde_json::{Map, Value, json};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for any healthy machine, and well below the periodic resync.
const WAIT: Duration = Duration::from_secs(10);
const _: () = assert!(WAIT.as_secs() * 2 < RESYNC_INTERVAL.as_secs());

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

// ---------------------------------------------------------------------------
// PostgreSQL: URLs, a database per test

/// A PostgreSQL URL taken apart: `scheme://userinfo@host:port/database?query`.
#[derive(Debug, Clone)]
struct PgUrl {
    scheme: String,
    userinfo: Option<String>,
    host_port: String,
    query: Option<String>,
}

impl PgUrl {
    fn parse(url: &str) -> PgUrl {
        let (scheme, rest) = url
            .split_once("://")
            .unwrap_or_else(|| panic!("\"{url}\" is not a postgres:// URL"));
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query.to_owned())),
            None => (rest, None),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo.to_owned()), host_port),
            None => (None, authority),
        };
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        PgUrl {
            scheme: scheme.to_owned(),
            userinfo,
            host_port,
            query,
        }
    }

    /// This server's URL for `database`, through `host_port` if given, with an
    /// `application_name` if given.
    fn to(
        &self,
        database: &str,
        host_port: Option<&str>,
        application_name: Option<&str>,
    ) -> String {
        let mut url = format!("{}://", self.scheme);
        if let Some(userinfo) = &self.userinfo {
            url.push_str(userinfo);
            url.push('@');
        }
        url.push_str(host_port.unwrap_or(&self.host_port));
        url.push('/');
        url.push_str(database);
        let mut query: Vec<String> = self.query.iter().cloned().collect();
        if let Some(name) = application_name {
            query.push(format!("application_name={name}"));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }
}

fn server_url() -> String {
    std::env::var("ENSIGN_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// A connection to the server's maintenance database, or a failure that says
/// what is missing.
async fn admin_connection() -> PgConnection {
    let url = server_url();
    let options = PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("ENSIGN_TEST_POSTGRES_URL \"{url}\": {e}"));
    match tokio::time::timeout(WAIT, PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!(
            "PostgreSQL is unreachable at {url}: {error}. These tests need PostgreSQL and do not \
             skip: start it, or point ENSIGN_TEST_POSTGRES_URL at one."
        ),
        Err(_) => panic!(
            "PostgreSQL at {url} did not answer within {WAIT:?}. These tests need PostgreSQL and \
             do not skip: start it, or point ENSIGN_TEST_POSTGRES_URL at one."
        ),
    }
}

/// Runs one statement on the maintenance database.
async fn admin_execute(sql: String) -> u64 {
    let mut connection = admin_connection().await;
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = connection.close().await;
    result.rows_affected()
}

/// Counts rows of a one-value query on the maintenance database.
async fn admin_count(sql: String) -> i64 {
    let mut connection = admin_connection().await;
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_one(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = connection.close().await;
    count
}

/// A database of its own for one test, migrated, dropped when the test ends.
struct Database {
    name: String,
    server: PgUrl,
    /// Direct storage: the writes of the tests (as the admin API would make
    /// them, from a process that is neither replica).
    admin: Storage,
}

impl Database {
    async fn create() -> Database {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "ensign_sources_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin_execute(format!("CREATE DATABASE {name}")).await;
        // From here on the database is dropped, whatever happens.
        let guard = DropDatabase(name.clone());
        let server = PgUrl::parse(&server_url());
        let url = server.to(&name, None, Some("ensign-test-admin"));
        let admin = Storage::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        admin
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating {url}: {e}"));
        std::mem::forget(guard);
        Database {
            name,
            server,
            admin,
        }
    }

    /// The URL a replica connects with (directly, or through `proxy`).
    fn url(&self, application_name: &str, proxy: Option<&Proxy>) -> String {
        let via = proxy.map(|p| p.address.to_string());
        self.server
            .to(&self.name, via.as_deref(), Some(application_name))
    }

    /// Terminates the backends of this database whose last query was a
    /// `LISTEN`: the replicas' change listeners. Returns how many.
    async fn kill_listeners(&self) -> u64 {
        admin_count(format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()) AS killed",
            self.name
        ))
        .await as u64
    }

    /// How many listeners are connected to this database now.
    async fn listeners(&self) -> i64 {
        admin_count(format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'LISTEN%'",
            self.name
        ))
        .await
    }

    /// Waits until exactly `expected` listeners are connected.
    async fn wait_for_listeners(&self, expected: i64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.listeners().await;
            if now == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{expected} listeners expected on {}, {now} connected after {WAIT:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        drop(DropDatabase(self.name.clone()));
    }
}

/// Drops the database when dropped (replicas still connected are cut off).
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A runtime of its own: this may run inside a test's runtime.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(admin_execute(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("dropping database {} failed", self.0);
        }
    }
}

// ---------------------------------------------------------------------------
// Flags

fn actor() -> Actor {
    Actor::new("automation:database-source-test")
}

/// Creates flag set `set` when missing and a string flag `key` in it, enabled
/// everywhere, variants `a`, `b`, `c`, serving `default`.
async fn create_flag(storage: &Storage, set: &str, key: &str, default: &str) {
    if storage.flag_set(set).await.is_err() {
        storage
            .create_flag_set(&actor(), set, set, Map::new())
            .await
            .unwrap_or_else(|e| panic!("creating flag set {set}: {e}"));
    }
    let variants = match json!({"a": "A", "b": "B", "c": "C"}) {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    storage
        .create_flag(
            &actor(),
            NewFlag {
                flag_set: set.to_owned(),
                key: key.to_owned(),
                description: String::new(),
                owner: String::new(),
                tags: Vec::new(),
                kind: FlagKind::Operational,
                expires_at: None,
                metadata: Map::new(),
                state: "ENABLED".to_owned(),
                variants,
                default_variant: Some(default.to_owned()),
                targeting: None,
                environments: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("creating flag {set}/{key}: {e}"));
}

/// Makes `key` of `set` serve `variant` in `environment`.
async fn set_variant(storage: &Storage, set: &str, key: &str, environment: &str, variant: &str) {
    let flag = storage.flag(set, key).await.expect("flag exists");
    let mut config = flag.environments[environment].clone();
    config.default_variant = Some(variant.to_owned());
    storage
        .set_flag_config(&actor(), set, key, environment, config, None)
        .await
        .unwrap_or_else(|e| panic!("configuring {set}/{key} in {environment}: {e}"));
}

/// The variant `key` evaluates to (no context), or why it failed.
fn evaluate(snapshot: &Snapshot, key: &str) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let resolution = snapshot.resolve_string(key, &Context::new(), now);
    match (resolution.error, resolution.variant) {
        (None, Some(variant)) => Ok(variant.to_owned()),
        (Some(error), _) => Err(error.message.into_owned()),
        (None, None) => Err(format!("no variant ({:?})", resolution.reason)),
    }
}

// ---------------------------------------------------------------------------
// Replicas

/// What one `ensign serve` process runs for the database.
struct Replica {
    name: &'static str,
    store: Arc<Store>,
    /// The replica's own storage (its own pool and local change broadcast).
    storage: Storage,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Replica {
    /// Starts a replica serving `environment` from `url`; `listen_url` is the
    /// URL its change listener uses (normally `url`).
    async fn start(name: &'static str, url: &str, listen_url: &str, environment: &str) -> Replica {
        let storage = Storage::connect(url)
            .await
            .unwrap_or_else(|e| panic!("replica {name} connecting to {url}: {e}"));
        let store = Arc::new(Store::new(
            [DATABASE_SOURCE],
            EvaluationOptions::default(),
            Arc::new(Metrics::new()),
        ));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_database_source(
            storage.clone(),
            listen_url.to_owned(),
            environment.to_owned(),
            Arc::clone(&store),
            shutdown.clone(),
        ));
        Replica {
            name,
            store,
            storage,
            shutdown,
            task,
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.store.snapshot())
    }

    /// Waits until the served snapshot satisfies `done`.
    async fn wait_until(&self, what: &str, done: impl Fn(&Snapshot) -> bool) {
        let mut updates = self.store.subscribe();
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                if done(&self.store.snapshot()) {
                    return;
                }
                updates.changed().await.expect("store alive");
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "replica {}: {what} not served within {WAIT:?} (generation {}, errors {})",
            self.name,
            self.store.latest().generation,
            self.metric("ensign_source_errors_total{source=\"database\"}"),
        );
    }

    /// Waits until `key` evaluates to `variant`.
    async fn wait_for_variant(&self, key: &str, variant: &str) {
        self.wait_until(&format!("{key} = {variant}"), |snapshot| {
            evaluate(snapshot, key).as_deref() == Ok(variant)
        })
        .await;
    }

    /// Waits until a metric reaches `at_least` (counters are updated just
    /// after the snapshot is published).
    async fn wait_for_metric(&self, series: &str, at_least: f64) {
        let deadline = Instant::now() + WAIT;
        while self.metric(series) < at_least {
            assert!(
                Instant::now() < deadline,
                "replica {}: {series} is {} after {WAIT:?}, expected at least {at_least}",
                self.name,
                self.metric(series)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The value of a metric line (`name{labels}`), 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        let prefix = format!("{series} ");
        self.store
            .metrics()
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0.0, |value| value.trim().parse().expect("a number"))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap_or_else(|_| panic!("replica {} did not stop within {WAIT:?}", self.name))
            .expect("source task did not panic");
    }
}

/// The document of flag set `set` in a snapshot.
fn document_of(snapshot: &Snapshot, set: &str) -> Arc<ensign_engine::FlagDocument> {
    let name = format!("{DATABASE_SOURCE}:{set}");
    snapshot
        .sources()
        .iter()
        .find(|source| *source.name == *name)
        .map(|source| Arc::clone(&source.document))
        .unwrap_or_else(|| panic!("no source {name} in the snapshot"))
}

// ---------------------------------------------------------------------------
// A TCP proxy that can cut the database off

/// Forwards a loopback port to PostgreSQL. It can stall (forward nothing
/// and answer nothing, as an unreachable network), refuse new connections
/// (keeping the open ones), or cut the database off entirely (close every
/// open connection and refuse new ones); until restored.
struct Proxy {
    address: SocketAddr,
    upstream: String,
    /// Cancelled to stop accepting.
    accepting: std::sync::Mutex<CancellationToken>,
    /// Cancelled to close the open connections.
    connections: std::sync::Mutex<CancellationToken>,
    /// While true, nothing is forwarded.
    stalled: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Proxy {
            address: listener.local_addr().expect("proxy address"),
            upstream: upstream.to_owned(),
            accepting: std::sync::Mutex::new(CancellationToken::new()),
            connections: std::sync::Mutex::new(CancellationToken::new()),
            stalled: watch::Sender::new(false),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let accepting = CancellationToken::new();
        *self.accepting.lock().unwrap() = accepting.clone();
        let connections = self.connections.lock().unwrap().clone();
        let upstream = self.upstream.clone();
        let stalled = self.stalled.subscribe();
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    // Dropping the listener refuses new connections.
                    () = accepting.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                let (connections, upstream) = (connections.clone(), upstream.clone());
                let mut stalled = stalled.clone();
                tokio::spawn(async move {
                    // Dropping both ends (at the end of this task) closes the
                    // connection on both sides.
                    connections
                        .run_until_cancelled(async move {
                            if stalled.wait_for(|s| !*s).await.is_err() {
                                return;
                            }
                            let Ok(server) = TcpStream::connect(&upstream).await else {
                                return;
                            };
                            let (client_read, client_write) = client.into_split();
                            let (server_read, server_write) = server.into_split();
                            tokio::join!(
                                pump(client_read, server_write, stalled.clone()),
                                pump(server_read, client_write, stalled),
                            );
                        })
                        .await;
                });
            }
        });
    }

    /// Forwards nothing, accepts connections but does not answer them.
    fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Refuses new connections; the open ones keep working.
    fn refuse_new(&self) {
        self.accepting.lock().unwrap().cancel();
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.refuse_new();
        let mut connections = self.connections.lock().unwrap();
        connections.cancel();
        *connections = CancellationToken::new();
    }

    /// Forwards again and accepts connections again, on the same port.
    async fn restore(&self) {
        self.stalled.send_replace(false);
        if !self.accepting.lock().unwrap().is_cancelled() {
            return;
        }
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot listen on {} again: {error}",
                        self.address
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }
}

/// Copies one direction of a proxied connection, holding data while stalled;
/// at the end of input the other side's writing half is dropped (shut down).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut stalled: watch::Receiver<bool>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if stalled.wait_for(|s| !*s).await.is_err() || to.write_all(&buffer[..read]).await.is_err()
        {
            return;
        }
    }
}

/// Evaluates `key` through `store` every millisecond until stopped, counting
/// evaluations, failed ones, and checks that found the store not ready.
struct Evaluator {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(u64, Vec<String>, u64)>,
}

impl Evaluator {
    fn start(store: Arc<Store>, key: &'static str) -> Evaluator {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let (mut total, mut failures, mut not_ready) = (0, Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    total += 1;
                    if let Err(error) = evaluate(&store.snapshot(), key) {
                        failures.push(error);
                    }
                    if !store.is_ready() {
                        not_ready += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (total, failures, not_ready)
            }
        });
        Evaluator { stop, task }
    }

    async fn finish(self) -> (u64, Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("evaluator did not panic")
    }
}

// ---------------------------------------------------------------------------
// Tests

/// A change committed anywhere reaches both replicas: through NOTIFY when
/// another process wrote it, and on the writing replica through its local
/// broadcast too. Both observe the propagation histogram, and the change is
/// what SDK streams diff on (`changes_since` names the flag as updated).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_change_reaches_both_replicas() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let url_a = database.url("replica-a", None);
    let url_b = database.url("replica-b", None);
    let a = Replica::start("a", &url_a, &url_a, "production").await;
    let b = Replica::start("b", &url_b, &url_b, "production").await;
    for replica in [&a, &b] {
        replica.wait_for_variant("banner", "a").await;
        assert!(replica.store.is_ready());
    }
    database.wait_for_listeners(2).await;
    let before = [a.snapshot(), b.snapshot()];

    // Written by a third process: both replicas learn it through NOTIFY.
    set_variant(&database.admin, "shop", "banner", "production", "b").await;
    for (replica, before) in [&a, &b].into_iter().zip(&before) {
        replica.wait_for_variant("banner", "b").await;
        let changes = replica.snapshot().changes_since(before, None);
        assert_eq!(
            changes.into_iter().collect::<Vec<_>>(),
            vec![("banner".to_owned(), FlagChange::Update)],
            "replica {}",
            replica.name
        );
    }

    // Written through replica a's own storage; a new flag, too.
    set_variant(&a.storage, "shop", "banner", "production", "c").await;
    create_flag(&a.storage, "shop", "checkout", "b").await;
    for replica in [&a, &b] {
        replica.wait_for_variant("banner", "c").await;
        replica.wait_for_variant("checkout", "b").await;
        // A publication caused by a notification (or the local broadcast) is
        // observed. Not necessarily one per change: the first may have been
        // picked up by the resync that follows LISTEN (no commit time), and
        // one load may pick up several changes.
        replica
            .wait_for_metric("ensign_propagation_seconds_count", 1.0)
            .await;
    }
    a.stop().await;
    b.stop().await;
}

/// A change to one flag set recompiles that set's document only: the other
/// sets' documents are the very same objects in the next snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_changed_flag_set_is_recompiled() {
    let database = Database::create().await;
    create_flag(&database.admin, "alpha", "alpha-flag", "a").await;
    create_flag(&database.admin, "beta", "beta-flag", "a").await;
    create_flag(&database.admin, "gamma", "gamma-flag", "a").await;
    let url_a = database.url("replica-a", None);
    let url_b = database.url("replica-b", None);
    let a = Replica::start("a", &url_a, &url_a, "production").await;
    let b = Replica::start("b", &url_b, &url_b, "production").await;
    for replica in [&a, &b] {
        replica.wait_for_variant("gamma-flag", "a").await;
    }
    database.wait_for_listeners(2).await;
    let before = [a.snapshot(), b.snapshot()];

    set_variant(&database.admin, "beta", "beta-flag", "production", "c").await;
    for (replica, before) in [&a, &b].into_iter().zip(&before) {
        replica.wait_for_variant("beta-flag", "c").await;
        let after = replica.snapshot();
        assert_eq!(
            replica.store.latest().generation,
            2,
            "replica {}: one publication for the load, one for the change",
            replica.name
        );
        for set in ["alpha", "gamma"] {
            assert!(
                Arc::ptr_eq(&document_of(before, set), &document_of(&after, set)),
                "replica {}: flag set {set} did not change but was recompiled",
                replica.name
            );
        }
        assert!(
            !Arc::ptr_eq(&document_of(before, "beta"), &document_of(&after, "beta")),
            "replica {}: flag set beta changed but its document is the old one",
            replica.name
        );
        assert_eq!(
            after
                .changes_since(before, None)
                .into_iter()
                .collect::<Vec<_>>(),
            vec![("beta-flag".to_owned(), FlagChange::Update)]
        );
    }
    a.stop().await;
    b.stop().await;
}

/// A change to another environment is not published: the next change that
/// is served comes with exactly one new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_in_another_environment_does_not_republish() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let url_a = database.url("replica-a", None);
    let url_b = database.url("replica-b", None);
    let a = Replica::start("a", &url_a, &url_a, "production").await;
    let b = Replica::start("b", &url_b, &url_b, "production").await;
    for replica in [&a, &b] {
        replica.wait_for_variant("banner", "a").await;
    }
    database.wait_for_listeners(2).await;
    let updates = "ensign_source_updates_total{source=\"database\"}";
    for replica in [&a, &b] {
        replica.wait_for_metric(updates, 1.0).await;
    }
    let generations = [a.store.latest().generation, b.store.latest().generation];

    set_variant(&database.admin, "shop", "banner", "staging", "c").await;
    set_variant(&b.storage, "shop", "banner", "development", "c").await;
    // Notifications arrive in commit order: once this one is served, the
    // others have been handled.
    set_variant(&database.admin, "shop", "banner", "production", "b").await;
    for (index, replica) in [&a, &b].into_iter().enumerate() {
        replica.wait_for_variant("banner", "b").await;
        assert_eq!(
            replica.store.latest().generation,
            generations[index] + 1,
            "replica {}: changes to staging and development were published",
            replica.name
        );
        replica.wait_for_metric(updates, 2.0).await;
        assert_eq!(replica.metric(updates), 2.0, "replica {}", replica.name);
    }
    a.stop().await;
    b.stop().await;
}

/// After the listener's connection is killed (`pg_terminate_backend`), a
/// change committed before it could reconnect (so nobody was notified) is
/// still served: the replica resynchronises once it listens again, well
/// before the periodic resync. The listeners connect through a proxy that
/// refuses new connections meanwhile; the replicas' pools connect directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_committed_while_the_listener_is_gone_is_picked_up() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let proxy = Proxy::start(&database.server.host_port).await;
    let a = Replica::start(
        "a",
        &database.url("replica-a", None),
        &database.url("replica-a-listener", Some(&proxy)),
        "production",
    )
    .await;
    let b = Replica::start(
        "b",
        &database.url("replica-b", None),
        &database.url("replica-b-listener", Some(&proxy)),
        "production",
    )
    .await;
    for replica in [&a, &b] {
        replica.wait_for_variant("banner", "a").await;
    }
    database.wait_for_listeners(2).await;

    proxy.refuse_new();
    let killed = database.kill_listeners().await;
    assert_eq!(killed, 2, "both replicas' listeners were connected");
    database.wait_for_listeners(0).await;
    // Let the replicas notice and reload (nothing changed yet).
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_variant(&database.admin, "shop", "banner", "production", "b").await;
    // Nothing tells the replicas; they go on serving what they had.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for replica in [&a, &b] {
        assert_eq!(evaluate(&replica.snapshot(), "banner").as_deref(), Ok("a"));
        assert!(replica.store.is_ready());
    }
    assert_eq!(database.listeners().await, 0);

    proxy.restore().await;
    for replica in [&a, &b] {
        replica.wait_for_variant("banner", "b").await;
    }
    database.wait_for_listeners(2).await;

    // And they listen again: the next change arrives by notification.
    set_variant(&database.admin, "shop", "banner", "production", "c").await;
    for replica in [&a, &b] {
        replica.wait_for_variant("banner", "c").await;
    }
    a.stop().await;
    b.stop().await;
}

/// The same with a listener killed while connections stay allowed (it
/// reconnects at once): a change right after is served either by the
/// notification or by the resync that follows the reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_listener_reconnects_and_keeps_delivering() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let url_a = database.url("replica-a", None);
    let a = Replica::start("a", &url_a, &url_a, "production").await;
    a.wait_for_variant("banner", "a").await;
    database.wait_for_listeners(1).await;
    for (round, variant) in ["b", "c", "a", "b"].into_iter().enumerate() {
        assert_eq!(database.kill_listeners().await, 1, "round {round}");
        set_variant(&database.admin, "shop", "banner", "production", variant).await;
        a.wait_for_variant("banner", variant).await;
        database.wait_for_listeners(1).await;
        // Listening again is counted (and logged with the outage's length).
        a.wait_for_metric(
            "ensign_database_listener_reconnects_total",
            round as f64 + 1.0,
        )
        .await;
    }
    a.stop().await;
}

/// Outage: the database is cut off (every connection closed, new ones
/// refused). The replica keeps serving its last snapshot (zero failed
/// evaluations), stays ready, counts the failed loads, and serves a change
/// committed during the outage once the database is reachable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_keeps_serving_and_recovers() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let proxy = Proxy::start(&database.server.host_port).await;
    let url = database.url("replica-a", Some(&proxy));
    let a = Replica::start("a", &url, &url, "production").await;
    a.wait_for_variant("banner", "a").await;
    database.wait_for_listeners(1).await;
    let evaluator = Evaluator::start(Arc::clone(&a.store), "banner");
    let generation = a.store.latest().generation;
    let errors = "ensign_source_errors_total{source=\"database\"}";
    assert_eq!(a.metric(errors), 0.0);

    proxy.cut();
    database.wait_for_listeners(0).await;
    set_variant(&database.admin, "shop", "banner", "production", "b").await;
    // The replica notices it lost the database and counts the failed loads.
    let deadline = Instant::now() + WAIT;
    while a.metric(errors) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no failed load counted within {WAIT:?} of the outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A write through the replica's own storage fails fast and changes nothing.
    let started = Instant::now();
    let write = a
        .storage
        .toggle_flag(&actor(), "shop", "banner", "production", false, None)
        .await;
    assert!(
        matches!(write, Err(ensign_storage::StorageError::Unavailable(_))),
        "a write during the outage: {write:?}"
    );
    assert!(started.elapsed() < WAIT);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(evaluate(&a.snapshot(), "banner").as_deref(), Ok("a"));
    assert_eq!(a.store.latest().generation, generation);
    assert!(a.store.is_ready(), "readiness dropped during the outage");

    proxy.restore().await;
    a.wait_for_variant("banner", "b").await;
    database.wait_for_listeners(1).await;
    // Listening again: a change after recovery arrives as usual.
    set_variant(&database.admin, "shop", "banner", "production", "c").await;
    a.wait_for_variant("banner", "c").await;

    let (total, failures, not_ready) = evaluator.finish().await;
    assert!(total > 100, "only {total} evaluations ran");
    assert!(
        failures.is_empty(),
        "{} of {total} evaluations failed: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(
        not_ready, 0,
        "the store was not ready during {not_ready} checks"
    );
    assert!(a.metric(errors) >= 1.0);
    a.stop().await;
}

/// The database stops answering (an unreachable network: nothing is refused
/// or closed, nothing arrives). A change notified meanwhile starts a load that
/// cannot finish: evaluation goes on from the last snapshot, readiness stays,
/// the failed loads are counted, and once the network is back the change is
/// served. The listener connects directly here, so that the notification
/// arrives while the replica's pool is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unresponsive_database_keeps_serving_and_recovers() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let proxy = Proxy::start(&database.server.host_port).await;
    let a = Replica::start(
        "a",
        &database.url("replica-a", Some(&proxy)),
        &database.url("replica-a-listener", None),
        "production",
    )
    .await;
    a.wait_for_variant("banner", "a").await;
    database.wait_for_listeners(1).await;
    let evaluator = Evaluator::start(Arc::clone(&a.store), "banner");
    let errors = "ensign_source_errors_total{source=\"database\"}";

    proxy.stall();
    set_variant(&database.admin, "shop", "banner", "production", "b").await;
    // The load fails when the pool gives up (2 s) or at the load timeout (10 s).
    let deadline = Instant::now() + 2 * WAIT;
    while a.metric(errors) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no failed load counted within {:?} of the outage",
            2 * WAIT
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(evaluate(&a.snapshot(), "banner").as_deref(), Ok("a"));
    assert!(
        a.store.is_ready(),
        "readiness dropped while the database hung"
    );

    proxy.restore().await;
    a.wait_for_variant("banner", "b").await;
    let (total, failures, not_ready) = evaluator.finish().await;
    assert!(total > 100, "only {total} evaluations ran");
    assert!(
        failures.is_empty(),
        "{} of {total} evaluations failed",
        failures.len()
    );
    assert_eq!(not_ready, 0);
    a.stop().await;
}

/// Shutdown is prompt even while a load waits on a database that does not
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_is_prompt_while_the_database_hangs() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let proxy = Proxy::start(&database.server.host_port).await;
    let a = Replica::start(
        "a",
        &database.url("replica-a", Some(&proxy)),
        &database.url("replica-a-listener", None),
        "production",
    )
    .await;
    a.wait_for_variant("banner", "a").await;
    database.wait_for_listeners(1).await;
    proxy.stall();
    // Notified, the replica starts a load that hangs.
    set_variant(&database.admin, "shop", "banner", "production", "b").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    a.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stopping took {:?}",
        started.elapsed()
    );
    proxy.restore().await;
}

/// A kill switch acting on an Alertmanager alert, through a third process
/// (the admin API's): both replicas serve the flag disabled, and each
/// observes the notification → served latency in
/// `ensign_killswitch_propagation_seconds` (the change carries the time the
/// alert was received).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_switch_reaches_both_replicas_with_its_latency() {
    let database = Database::create().await;
    create_flag(&database.admin, "shop", "banner", "a").await;
    let url_a = database.url("replica-a", None);
    let url_b = database.url("replica-b", None);
    let a = Replica::start("a", &url_a, &url_a, "production").await;
    let b = Replica::start("b", &url_b, &url_b, "production").await;
    for replica in [&a, &b] {
        replica.wait_for_variant("banner", "a").await;
    }
    database.wait_for_listeners(2).await;
    // Changes until each replica has published one through a notification:
    // then the full reload that follows LISTEN is over and cannot pick up
    // the kill unobserved (a change it picks up is served, not observed).
    for variant in ["b", "c", "a", "b", "c", "a", "b", "c", "a", "b"] {
        set_variant(&database.admin, "shop", "banner", "production", variant).await;
        for replica in [&a, &b] {
            replica.wait_for_variant("banner", variant).await;
        }
        let observed = |r: &Replica| r.metric("ensign_propagation_seconds_count") >= 1.0;
        if observed(&a) && observed(&b) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for replica in [&a, &b] {
        replica
            .wait_for_metric("ensign_propagation_seconds_count", 1.0)
            .await;
    }
    let received_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let alert = ensign_storage::Alert {
        fingerprint: "4f1c2b".to_owned(),
        status: ensign_storage::AlertStatus::Firing,
        starts_at: received_at - 60_000,
        labels: [("ensign_flag", "banner"), ("slo", "checkout-availability")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        receiver: "ensign".to_owned(),
        received_at,
    };
    let actions = database
        .admin
        .receive_alert(&alert, "production")
        .await
        .unwrap();
    assert_eq!(actions[0].outcome, ensign_storage::ActionOutcome::Applied);
    for replica in [&a, &b] {
        replica
            .wait_until("banner disabled", |snapshot| {
                snapshot.resolve_string("banner", &Context::new(), 0).reason
                    == ensign_engine::Reason::Disabled
            })
            .await;
        replica
            .wait_for_metric("ensign_killswitch_propagation_seconds_count", 1.0)
            .await;
    }
    // A repeat of the alert changes nothing and is not observed again.
    let repeat = database
        .admin
        .receive_alert(&alert, "production")
        .await
        .unwrap();
    assert_eq!(repeat[0].outcome, ensign_storage::ActionOutcome::Duplicate);
    for replica in [&a, &b] {
        assert_eq!(
            replica.metric("ensign_killswitch_propagation_seconds_count"),
            1.0,
            "replica {}",
            replica.name
        );
    }
    a.stop().await;
    b.stop().await;
}
