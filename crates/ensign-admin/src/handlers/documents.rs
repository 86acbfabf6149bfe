//! `/export` and `/import`: flagd JSON documents, one flag set in one
//! environment at a time. Segments travel as `$evaluators` and targeting keeps
//! its `$ref`s, so exporting what was imported serves the same evaluations.
//! The document is validated whole before anything is written (422 with every
//! problem at its JSON Pointer into the document).

use axum::Json;
use ensign_storage::StorageError;
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
/// environment's configuration replaced, `$evaluators` become segments.
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
    if writer.is_limited() {
        shared_segments_unchanged(&state, &flag_set, &document).await?;
        existing_flags_only(&state, &flag_set, &document).await?;
    }
    let imported = state
        .storage
        .import(&actor, &query.environment, &flag_set, &document)
        .await?;
    Ok(Json(ImportResult {
        environment: query.environment,
        flag_set,
        imported,
    }))
}

/// Creating a flag set or a flag reaches every environment, so a token
/// limited to some environments may import only into flags that exist.
async fn existing_flags_only(
    state: &Shared,
    flag_set: &str,
    document: &Value,
) -> Result<(), ApiError> {
    let beyond = |what: String| {
        ApiError::forbidden(format!(
            "{what} does not exist; creating it reaches every environment, \
             and this token may only change some"
        ))
    };
    match state.storage.flag_set(flag_set).await {
        Ok(_) => {}
        Err(StorageError::NotFound(_)) => return Err(beyond(format!("flag set \"{flag_set}\""))),
        Err(other) => return Err(other.into()),
    }
    let keys: Vec<&str> = match document.get("flags") {
        Some(Value::Object(flags)) => flags.keys().map(String::as_str).collect(),
        Some(Value::Array(flags)) => flags
            .iter()
            .filter_map(|flag| flag.get("key").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    };
    for key in keys {
        match state.storage.flag(flag_set, key).await {
            Ok(_) => {}
            Err(StorageError::NotFound(_)) => {
                return Err(beyond(format!("flag \"{flag_set}/{key}\"")));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

/// Segments are shared by every environment, so a token limited to some
/// environments may import only `$evaluators` that are new or unchanged.
async fn shared_segments_unchanged(
    state: &Shared,
    flag_set: &str,
    document: &Value,
) -> Result<(), ApiError> {
    let Some(Value::Object(evaluators)) = document.get("$evaluators") else {
        return Ok(());
    };
    for (key, rule) in evaluators {
        match state.storage.segment(flag_set, key).await {
            Ok(segment) if &segment.rule != rule => {
                return Err(ApiError::forbidden(format!(
                    "segment \"{flag_set}/{key}\" is shared by every environment; \
                     this token may only change some, so it cannot change the segment"
                )));
            }
            Ok(_) | Err(StorageError::NotFound(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}
