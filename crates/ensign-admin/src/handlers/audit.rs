//! `/audit`: the append-only audit log, newest first, paged backwards by id.

use axum::Json;

use super::Shared;
use crate::error::{ApiError, ReadErrors};
use crate::extract::Params;
use crate::wire::{AuditEntry, AuditPage, AuditQuery};

/// The default page size.
const DEFAULT_LIMIT: i64 = 50;
/// The largest page.
const MAX_LIMIT: i64 = 500;

/// Audit entries matching the filters, newest first.
#[utoipa::path(get, operation_id = "listAuditEntries", path = "/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of entries", body = AuditPage), ReadErrors))]
pub(crate) async fn list(
    state: Shared,
    Params(query): Params<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let filter = ensign_storage::AuditFilter {
        resource_type: query.resource_type,
        resource_key: query.resource_key,
        actor: query.actor,
        environment: query.environment,
        before: query.before,
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
