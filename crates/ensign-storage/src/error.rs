//! Storage errors: a small set of domain kinds. Driver errors become these
//! here, by SQLSTATE and error kind, never by message text, and their details
//! stay in logs.

use ensign_engine::Problem;

/// What went wrong with a storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The resource does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A resource with the same key exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// The resource changed since the version the caller read.
    #[error("{resource} changed: it is at version {current}, the request expected {expected}")]
    VersionMismatch {
        /// What was written.
        resource: String,
        /// The version now stored.
        current: i64,
        /// The version the caller expected.
        expected: i64,
    },
    /// The change would reach what every environment shares (each item
    /// named), and it was allowed to change one environment only.
    #[error("this change may only reach one environment, but would change what every environment shares: {}", .0.join(", "))]
    Shared(Vec<String>),
    /// The input is invalid; every problem with its JSON Pointer.
    #[error("invalid input: {}", .0.iter().map(|p| format!("{} {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// The database cannot be reached now; retry later.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else; details are logged, not shown.
    #[error("storage failure")]
    Internal(#[source] sqlx::Error),
}

impl StorageError {
    /// An invalid-input error with one problem.
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        StorageError::Invalid(vec![Problem {
            path: path.to_owned(),
            message: message.into(),
            severity: ensign_engine::document::Severity::Error,
        }])
    }
}

/// Maps a driver error: unique violations are conflicts, connection trouble is
/// unavailability, the rest internal.
pub(crate) fn from_sqlx(error: sqlx::Error, what: &str) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StorageError::Conflict(what.to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StorageError::NotFound(what.to_owned())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StorageError::Unavailable(error),
        sqlx::Error::RowNotFound => StorageError::NotFound(what.to_owned()),
        _ => StorageError::Internal(error),
    }
}

/// The result of a storage operation.
pub type Result<T> = std::result::Result<T, StorageError>;
