//! `/flag-sets`: list, create, read, replace name and metadata, delete (with
//! its flags and segments). Flag-set changes reach every environment.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::{Shared, versioned};
use crate::auth::Editor;
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{IfMatch, JsonBody, PathParams, created, path_segment, tagged};
use crate::wire::{FlagSet, FlagSetUpdate, NewFlagSet};

/// Every flag set, by key.
#[utoipa::path(get, operation_id = "listFlagSets", path = "/flag-sets", tag = "flag sets",
    responses((status = 200, description = "The flag sets", body = Vec<FlagSet>), ReadErrors))]
pub(crate) async fn list(state: Shared) -> Result<Json<Vec<FlagSet>>, ApiError> {
    let sets = state.storage.flag_sets().await?;
    Ok(Json(sets.into_iter().map(Into::into).collect()))
}

/// Creates a flag set.
#[utoipa::path(post, operation_id = "createFlagSet", path = "/flag-sets", tag = "flag sets",
    request_body = NewFlagSet,
    responses((status = 201, description = "Created", body = FlagSet,
        headers(("ETag" = String, description = "The version"), ("Location" = String, description = "The new flag set"))),
        WriteErrors))]
pub(crate) async fn create(
    state: Shared,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<NewFlagSet>,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(body.comment)?;
    let name = body.name.unwrap_or_else(|| body.key.clone());
    let set = state
        .storage
        .create_flag_set(&actor, &body.key, &name, body.metadata)
        .await?;
    let location = format!("/api/v1/flag-sets/{}", path_segment(&set.key));
    Ok(created(set.version, &location, FlagSet::from(set)))
}

/// One flag set.
#[utoipa::path(get, operation_id = "getFlagSet", path = "/flag-sets/{set}", tag = "flag sets",
    params(("set" = String, Path, description = "The flag set key", example = "web")),
    responses((status = 200, description = "The flag set", body = FlagSet,
        headers(("ETag" = String, description = "The version"))), ReadErrors))]
pub(crate) async fn read(
    state: Shared,
    PathParams(set): PathParams<String>,
) -> Result<Response, ApiError> {
    let set = state.storage.flag_set(&set).await?;
    Ok(tagged(set.version, FlagSet::from(set)))
}

/// Replaces a flag set's name and metadata.
#[utoipa::path(put, operation_id = "updateFlagSet", path = "/flag-sets/{set}", tag = "flag sets",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = FlagSetUpdate,
    responses((status = 200, description = "Updated", body = FlagSet,
        headers(("ETag" = String, description = "The new version"))), WriteErrors))]
pub(crate) async fn update(
    state: Shared,
    PathParams(set): PathParams<String>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<FlagSetUpdate>,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(body.comment)?;
    let updated = versioned(if_match, || {
        state
            .storage
            .update_flag_set(&actor, &set, &body.name, body.metadata.clone(), if_match)
    })
    .await?;
    Ok(tagged(updated.version, FlagSet::from(updated)))
}

/// Deletes a flag set with its flags and segments.
#[utoipa::path(delete, operation_id = "deleteFlagSet", path = "/flag-sets/{set}", tag = "flag sets",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub(crate) async fn delete(
    state: Shared,
    PathParams(set): PathParams<String>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    state
        .storage
        .delete_flag_set(&actor, &set, if_match)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
