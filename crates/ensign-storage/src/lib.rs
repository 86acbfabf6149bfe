//! Flag management storage: PostgreSQL in production, SQLite as the embedded
//! default, through one code path (sqlx's `Any` driver, portable SQL, JSON as
//! text, times as unix milliseconds).
//!
//! Every write runs in a transaction that also appends to the audit log and,
//! on PostgreSQL, sends `NOTIFY ensign_changes` so other replicas reload
//! (delivered at commit, so never before the data is visible). Writes that
//! name a version check it inside the transaction, and every `UPDATE` or
//! `DELETE` of a versioned row matches the version it was based on: a stale
//! version is a [`StorageError::VersionMismatch`] (with the version now
//! stored), never a lost update, also between concurrent writers. On SQLite a
//! write takes the write lock when it begins (`BEGIN IMMEDIATE`), so
//! concurrent writers wait for each other within the busy timeout.

mod error;
pub mod model;
mod queries;

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::sync::broadcast;

pub use error::{Result, StorageError};
pub use queries::audit::AuditFilter;
pub use queries::documents::ImportScope;
pub use queries::flags::{FlagFilter, FlagPatch, NewFlag, Page};
pub use queries::kill_switch::{
    ALERTMANAGER_ACTOR, ActionOutcome, Alert, AlertAction, AlertStatus, AlertmanagerReceiver,
    KillAction, KillRecord, KillSwitchBinding, KillTarget, OnResolved, RestoreResult,
};
pub use queries::sessions::actor_name;
pub use queries::slos::StoredSlo;
pub use queries::tokens::{NewToken, hash_secret};
pub use queries::users::{MAX_PASSWORD_BYTES, MAX_USER_NAME_BYTES, MIN_PASSWORD_CHARS, NewUser};

/// The PostgreSQL channel replicas listen on.
pub const CHANGES_CHANNEL: &str = "ensign_changes";

/// Which database is behind the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL: shared by replicas, changes announced with NOTIFY.
    Postgres,
    /// SQLite: one process, changes announced in-process.
    Sqlite,
}

/// A committed change: which environment's flags may differ (`None`: all),
/// and when it was committed. It travels as the JSON payload of `NOTIFY`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The environment key, or `None` when every environment is affected.
    pub environment: Option<String>,
    /// Commit time, unix milliseconds (for propagation latency).
    #[serde(default)]
    pub committed_at: i64,
    /// When the Alertmanager notification behind this change (a kill switch
    /// acting) was received, unix milliseconds: replicas observe webhook →
    /// served latency from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_received_at: Option<i64>,
}

impl Change {
    /// Whether served flags of `environment` may have changed.
    pub fn affects(&self, environment: &str) -> bool {
        self.environment.as_deref().is_none_or(|e| e == environment)
    }
}

/// The storage.
#[derive(Debug, Clone)]
pub struct Storage {
    pool: AnyPool,
    backend: Backend,
    local_changes: broadcast::Sender<Change>,
}

/// Milliseconds since the unix epoch.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Storage {
    /// Connects to `url` (`postgres://…` or `sqlite://…`; a SQLite file is
    /// created when missing).
    pub async fn connect(url: &str) -> Result<Storage> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StorageError::invalid(
                "/databaseUrl",
                format!("unsupported database URL \"{url}\": use postgres://… or sqlite://…"),
            ));
        };
        let url = match backend {
            Backend::Sqlite => sqlite_url(url),
            Backend::Postgres => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Postgres => 16,
                Backend::Sqlite => 4,
            })
            .acquire_timeout(std::time::Duration::from_secs(2))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *connection)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *connection)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| error::from_sqlx(e, "database"))?;
        let (local_changes, _) = broadcast::channel(64);
        Ok(Storage {
            pool,
            backend,
            local_changes,
        })
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Postgres => sqlx::migrate!("../../migrations/postgres"),
            Backend::Sqlite => sqlx::migrate!("../../migrations/sqlite"),
        };
        migrator.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => error::from_sqlx(e, "migration"),
            other => StorageError::Internal(sqlx::Error::Migrate(Box::new(other))),
        })
    }

    /// The database behind this storage.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool (for listeners and health checks).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Changes committed by this process.
    pub fn local_changes(&self) -> broadcast::Receiver<Change> {
        self.local_changes.subscribe()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| error::from_sqlx(e, "database"))
    }

    pub(crate) fn announce(&self, change: Change) {
        let _ = self.local_changes.send(change);
    }
}

/// `sqlite://path` with the file created when missing.
fn sqlite_url(url: &str) -> String {
    match sqlx::sqlite::SqliteConnectOptions::from_str(url) {
        Ok(_) if url.contains("mode=") => url.to_owned(),
        _ if url.contains('?') => format!("{url}&mode=rwc"),
        _ => format!("{url}?mode=rwc"),
    }
}
