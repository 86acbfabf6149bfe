//! The SQL behind [`Storage`](crate::Storage): one module per resource, and the
//! write transaction every change goes through.

pub mod audit;
pub mod documents;
pub mod environments;
pub mod flag_sets;
pub mod flags;
pub mod kill_switch;
pub mod segments;
pub mod slos;
pub mod tokens;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{Result, StorageError, from_sqlx};
use crate::model::Actor;
use crate::{Backend, CHANGES_CHANNEL, Change, Storage, now_millis};

/// A value bound to a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

pub(crate) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Int(n) => query.bind(n),
        };
    }
    query
}

/// Reads a JSON text column.
pub(crate) fn json_column(row: &AnyRow, column: &str) -> Result<Value> {
    let text: String = row.try_get(column).map_err(|e| from_sqlx(e, column))?;
    serde_json::from_str(&text)
        .map_err(|e| StorageError::Internal(sqlx::Error::Decode(Box::new(e))))
}

/// Reads an optional JSON text column.
pub(crate) fn optional_json_column(row: &AnyRow, column: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(column).map_err(|e| from_sqlx(e, column))?;
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StorageError::Internal(sqlx::Error::Decode(Box::new(e))))
}

pub(crate) fn get<T>(row: &AnyRow, column: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column).map_err(|e| from_sqlx(e, column))
}

/// A write in progress: the transaction, its audit entries, and the
/// environments whose served flags it may change.
pub(crate) struct Write<'s> {
    storage: &'s Storage,
    pub(crate) tx: Transaction<'static, Any>,
    actor: Actor,
    touched: Option<Change>,
    alert_received_at: Option<i64>,
}

impl<'s> Write<'s> {
    /// Starts a write. On SQLite the transaction takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first cannot
    /// upgrade once another connection has written, and fails with
    /// `SQLITE_BUSY` instead of waiting out the busy timeout.
    pub(crate) async fn begin(storage: &'s Storage, actor: &Actor) -> Result<Write<'s>> {
        let tx = match storage.backend {
            Backend::Sqlite => storage.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => storage.pool.begin().await,
        }
        .map_err(|e| from_sqlx(e, "database"))?;
        Ok(Write {
            storage,
            tx,
            actor: actor.clone(),
            touched: None,
            alert_received_at: None,
        })
    }

    /// Records that served flags of `environment` (`None`: all) may change.
    pub(crate) fn touches(&mut self, environment: Option<&str>) {
        let environment = match (&self.touched, environment) {
            (None, Some(env)) => Some(env.to_owned()),
            (
                Some(Change {
                    environment: Some(a),
                    ..
                }),
                Some(b),
            ) if a == b => Some(b.to_owned()),
            _ => None,
        };
        self.touched = Some(Change {
            environment,
            ..Change::default()
        });
    }

    /// Marks the change as the effect of an Alertmanager notification
    /// received at `received_at` (unix milliseconds).
    pub(crate) fn caused_by_alert(&mut self, received_at: i64) {
        self.alert_received_at = Some(received_at);
    }

    /// Appends an audit entry.
    pub(crate) async fn audit(
        &mut self,
        action: &str,
        resource_type: &str,
        resource_key: &str,
        environment: Option<&str>,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, resource_type, resource_key, environment, before_value, after_value, comment) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(now_millis())
        .bind(self.actor.name.clone())
        .bind(action.to_owned())
        .bind(resource_type.to_owned())
        .bind(resource_key.to_owned())
        .bind(environment.map(str::to_owned))
        .bind(before.map(Value::to_string))
        .bind(after.map(Value::to_string))
        .bind(self.actor.comment.clone())
        .execute(&mut *self.tx)
        .await
        .map_err(|e| from_sqlx(e, "audit entry"))?;
        Ok(())
    }

    /// Commits; on PostgreSQL the change notification is part of the commit.
    pub(crate) async fn commit(mut self) -> Result<()> {
        if let Some(change) = &mut self.touched {
            change.committed_at = now_millis();
            change.alert_received_at = self.alert_received_at;
        }
        if let (Some(change), Backend::Postgres) = (&self.touched, self.storage.backend) {
            let payload = serde_json::to_string(change).unwrap_or_default();
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(payload)
                .execute(&mut *self.tx)
                .await
                .map_err(|e| from_sqlx(e, "change notification"))?;
        }
        self.tx
            .commit()
            .await
            .map_err(|e| from_sqlx(e, "database"))?;
        if let Some(change) = self.touched {
            self.storage.announce(change);
        }
        Ok(())
    }
}

/// The error for a guarded `UPDATE`/`DELETE` (`... AND version = $n`) that
/// matched no row: the resource changed (or went) since it was read. Reads the
/// version now stored with `current` (a one-column `version` query binding
/// `binds`) so the error says what it is.
pub(crate) async fn stale(
    write: &mut Write<'_>,
    resource: String,
    current: &'static str,
    binds: Vec<Bind>,
    expected: i64,
) -> StorageError {
    let row = bind_all(sqlx::query(current), binds)
        .fetch_optional(&mut *write.tx)
        .await;
    match row {
        Ok(Some(row)) => match row.try_get::<i64, _>("version") {
            Ok(current) => StorageError::VersionMismatch {
                resource,
                current,
                expected,
            },
            Err(e) => from_sqlx(e, "version"),
        },
        Ok(None) => StorageError::NotFound(resource),
        Err(e) => from_sqlx(e, &resource),
    }
}

/// Checks an expected version against the stored one.
pub(crate) fn check_version(resource: &str, current: i64, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(expected) if expected != current => Err(StorageError::VersionMismatch {
            resource: resource.to_owned(),
            current,
            expected,
        }),
        _ => Ok(()),
    }
}
