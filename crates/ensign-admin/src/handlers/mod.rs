//! The route handlers, one module per resource. Each handler is annotated for
//! the OpenAPI document; `routes.rs` registers them all. Handlers convert
//! between the wire shapes and the storage, pick the scope of each write (see
//! `auth`), and point storage problems into their request body.

pub(crate) mod alertmanager;
pub(crate) mod audit;
pub(crate) mod documents;
pub(crate) mod environments;
pub(crate) mod flag_sets;
pub(crate) mod flags;
pub(crate) mod kill_switch;
pub(crate) mod segments;
pub(crate) mod slos;
pub(crate) mod tokens;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use ensign_storage::StorageError;

use crate::AdminState;
use crate::error::ApiError;

/// The state every handler extracts.
pub(crate) type Shared = State<Arc<AdminState>>;

/// How often a write without `If-Match` is tried when other writers keep
/// getting in between its read and its write.
const BLIND_WRITE_ATTEMPTS: usize = 10;

/// Runs `write`. With `If-Match` a version mismatch is the caller's 412.
/// Without it the caller asked for "whatever is current", so after a
/// concurrent change the write is read again and retried (the storage never
/// loses either update); if others keep winning, the answer is 409.
pub(crate) async fn versioned<T, F, Fut>(if_match: Option<i64>, mut write: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(StorageError::VersionMismatch { resource, .. }) if if_match.is_none() => {
                if attempt == BLIND_WRITE_ATTEMPTS {
                    return Err(ApiError::conflict(format!(
                        "{resource} kept changing while this request tried to change it; retry"
                    )));
                }
                attempt += 1;
            }
            other => return other.map_err(ApiError::from),
        }
    }
}

/// A storage problem path under `/environments/<environment>` without that
/// prefix (storage reports configuration problems by environment; a request
/// body may hold the configuration at its top level).
pub(crate) fn strip_environment(path: &str, environment: &str) -> String {
    let prefix = format!("/environments/{}", crate::extract::escape(environment));
    match path.strip_prefix(&prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_owned(),
        _ => path.to_owned(),
    }
}
