//! `/export` and `/import`: flagd JSON documents, one flag set in one
//! environment at a time. Segments travel as `$evaluators` and targeting keeps
//! its `$ref`s, so exporting what was imported serves the same evaluations.
//! The document is validated whole before anything is written (422 with every
//! problem at its JSON Pointer into the document), and so is the caller's
//! scope (403 for a limited caller whose import reaches every environment).

use axum::Json;
use ensign_storage::{ImportScope, StorageError};
use serde_json::Value;

use super::Shared;
use crate::auth::Editor;
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{JsonBody, Params};
use crate::wire::{ExportQuery, ImportQuery, ImportResult};

/// The flagd document one flag set serves in one environment (archived flags
/// left out).
#[utoipa::path(get, operation_id = "exportDocument", path = "/export", tag = "documents", params(ExportQuery),
    responses((status = 200, description = "A flagd flag definition document", body = Value), ReadErrors))]
pub(crate) async fn export(
    state: Shared,
    Params(query): Params<ExportQuery>,
) -> Result<Json<Value>, ApiError> {
    state.storage.environment(&query.environment).await?;
    let document = state
        .storage
        .export(&query.environment, &query.flag_set)
        .await?;
    Ok(Json(document))
}

/// Imports a flagd document into one environment of a flag set: new flags
/// are created (disabled in the other environments), existing flags get this
/// environment's configuration replaced and the document's metadata,
/// `$evaluators` become segments. A caller limited to environments may only
/// change the environment's configurations: when the document would also
/// change what every environment shares (a new flag set, flag or segment, a
/// changed segment, a flag's metadata), the import is 403, names every such
/// item, and writes nothing.
#[utoipa::path(post, operation_id = "importDocument", path = "/import", tag = "documents", params(ImportQuery),
    request_body(content = Value, description = "A flagd flag definition document"),
    responses((status = 200, description = "Imported", body = ImportResult), WriteErrors))]
pub(crate) async fn import(
    state: Shared,
    Params(query): Params<ImportQuery>,
    Editor(writer): Editor,
    JsonBody(document): JsonBody<Value>,
) -> Result<Json<ImportResult>, ApiError> {
    let actor = writer.in_environment(&query.environment, None)?;
    let flag_set = match query.flag_set {
        Some(set) => set,
        None => document
            .pointer("/metadata/flagSetId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::invalid_at(
                    "/metadata/flagSetId",
                    "name the flag set with ?flagSet= or in the document's metadata",
                )
            })?,
    };
    let scope = if writer.is_limited() {
        ImportScope::OneEnvironment
    } else {
        ImportScope::AllEnvironments
    };
    let imported = state
        .storage
        .import(&actor, &query.environment, &flag_set, &document, scope)
        .await
        .map_err(|error| match error {
            StorageError::Shared(changes) => ApiError::forbidden(format!(
                "{} may only change configurations in \"{}\"; this import would also change \
                 what every environment shares: {}",
                actor.name,
                query.environment,
                changes.join(", ")
            )),
            other => other.into(),
        })?;
    Ok(Json(ImportResult {
        environment: query.environment,
        flag_set,
        imported,
    }))
}
