//! A fresh, migrated database per test, on SQLite (a file in a temporary
//! directory) or on the machine's PostgreSQL (a new database, dropped when the
//! test ends, passed or failed).
//!
//! PostgreSQL is found at `ENSIGN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached
//! the PostgreSQL tests fail; they never skip.

use std::str::FromStr as _;
use std::time::Duration;

use ensign_storage::{Backend, Storage};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The server the PostgreSQL tests create their databases on.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `ENSIGN_TEST_POSTGRES_URL`, or the local default.
pub fn postgres_admin_url() -> String {
    std::env::var("ENSIGN_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` pointing at database `name` instead (query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// An admin connection to the PostgreSQL server, or a test failure that says
/// what is missing.
pub async fn postgres_admin() -> PgConnection {
    let url = postgres_admin_url();
    let options = PgConnectOptions::from_str(&url).unwrap_or_else(|e| {
        panic!("ENSIGN_TEST_POSTGRES_URL \"{url}\" is not a PostgreSQL URL: {e}")
    });
    match tokio::time::timeout(
        Duration::from_secs(10),
        PgConnection::connect_with(&options),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!(
            "PostgreSQL is unreachable at {url}: {error}. The storage suite runs against \
             PostgreSQL and does not skip: start PostgreSQL or point ENSIGN_TEST_POSTGRES_URL at one."
        ),
        Err(_) => panic!(
            "PostgreSQL at {url} did not answer within 10 s. The storage suite runs against \
             PostgreSQL and does not skip: start PostgreSQL or point ENSIGN_TEST_POSTGRES_URL at one."
        ),
    }
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { database: String },
}

/// A migrated storage on a database of its own.
pub struct TestDb {
    /// The storage under test.
    pub storage: Storage,
    /// The URL `storage` was connected with.
    pub url: String,
    cleanup: Cleanup,
}

impl TestDb {
    /// A storage on a new SQLite file.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("ensign.db").display());
        let storage = connect_and_migrate(&url).await;
        assert_eq!(storage.backend(), Backend::Sqlite);
        TestDb {
            storage,
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A storage on a new PostgreSQL database.
    pub async fn postgres() -> TestDb {
        let mut admin = postgres_admin().await;
        let database = format!("ensign_test_{:016x}", rand::random::<u64>());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {database}: {e}"));
        let _ = admin.close().await;
        // From here on the database is dropped even if connecting fails.
        let cleanup = Cleanup::Postgres {
            database: database.clone(),
        };
        let url = with_database(&postgres_admin_url(), &database);
        let guard = DropGuard(Some(cleanup));
        let storage = connect_and_migrate(&url).await;
        assert_eq!(storage.backend(), Backend::Postgres);
        TestDb {
            storage,
            url,
            cleanup: guard.defuse(),
        }
    }
}

async fn connect_and_migrate(url: &str) -> Storage {
    let storage = Storage::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e} ({e:?})"));
    storage
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrating {url}: {e} ({e:?})"));
    storage
}

/// Drops the database when a test ends before it got its `TestDb`.
struct DropGuard(Option<Cleanup>);

impl DropGuard {
    fn defuse(mut self) -> Cleanup {
        self.0.take().expect("cleanup taken once")
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { database }) = self.0.take() {
            drop_database(database);
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { database } = &self.cleanup {
            drop_database(database.clone());
        }
    }
}

/// Drops a test database from a thread of its own (this may run while a test
/// unwinds, inside the test's runtime). `WITH (FORCE)` ends the pool's
/// connections still open.
fn drop_database(database: String) {
    let worker = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let url = postgres_admin_url();
            let Ok(options) = PgConnectOptions::from_str(&url) else {
                return;
            };
            if let Ok(Ok(mut admin)) = tokio::time::timeout(
                Duration::from_secs(10),
                PgConnection::connect_with(&options),
            )
            .await
            {
                let statement = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
                if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await
                {
                    eprintln!("could not drop test database {database}: {error}");
                }
                let _ = admin.close().await;
            }
        });
    });
    let _ = worker.join();
}
