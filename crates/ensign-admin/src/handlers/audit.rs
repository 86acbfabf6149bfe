//! `/audit`: the append-only audit log, newest first, paged backwards by id.
//! Entries about what only admins may read (tokens, users, sessions,
//! Alertmanager receivers) are left out for everyone else.

use axum::Json;

use ensign_storage::model::Role;

use super::Shared;
use crate::auth::Caller;
use crate::error::{ApiError, ReadErrors};
use crate::extract::Params;
use crate::wire::{AuditEntry, AuditPage, AuditQuery};

/// The default page size.
const DEFAULT_LIMIT: i64 = 50;
/// The largest page.
const MAX_LIMIT: i64 = 500;

/// The resource types whose entries only admins may read, as they may read
/// the resources themselves (`/tokens`, `/users`, sessions, receivers).
const ADMIN_ONLY_RESOURCE_TYPES: [&str; 4] = ["token", "user", "session", "alertmanager_receiver"];

/// Audit entries matching the filters, newest first (for non-admins, without
/// entries about tokens, users, sessions and Alertmanager receivers).
#[utoipa::path(get, operation_id = "listAuditEntries", path = "/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of entries", body = AuditPage), ReadErrors))]
pub(crate) async fn list(
    state: Shared,
    caller: Caller,
    Params(query): Params<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let filter = ensign_storage::AuditFilter {
        resource_type: query.resource_type,
        resource_key: query.resource_key,
        actor: query.actor,
        environment: query.environment,
        before: query.before,
        hidden_resource_types: if caller.role == Role::Admin {
            Vec::new()
        } else {
            ADMIN_ONLY_RESOURCE_TYPES.map(str::to_owned).to_vec()
        },
    };
    let entries = state.storage.audit_log(&filter, limit).await?;
    let next_before = match entries.last() {
        Some(last) if entries.len() as i64 == limit => Some(last.id),
        _ => None,
    };
    Ok(Json(AuditPage {
        items: entries.into_iter().map(AuditEntry::from).collect(),
        next_before,
    }))
}
