//! `/flag-sets/{set}/segments`: list, read (with the flags using it), create
//! or replace, delete (refused while flags use it). Segments are shared by
//! every environment.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::{Shared, versioned};
use crate::auth::Editor;
use crate::error::{ApiError, ErrorCode, ReadErrors, WriteErrors};
use crate::extract::{IfMatch, JsonBody, PathParams, created, path_segment, tagged};
use crate::wire::{Segment, SegmentPut};

/// The segments of a flag set, by key.
#[utoipa::path(get, operation_id = "listSegments", path = "/flag-sets/{set}/segments", tag = "segments",
    params(("set" = String, Path, description = "The flag set key", example = "web")),
    responses((status = 200, description = "The segments", body = Vec<Segment>), ReadErrors))]
pub(crate) async fn list(
    state: Shared,
    PathParams(set): PathParams<String>,
) -> Result<Json<Vec<Segment>>, ApiError> {
    state.storage.flag_set(&set).await?;
    let segments = state.storage.segments(&set).await?;
    Ok(Json(segments.into_iter().map(Into::into).collect()))
}

/// One segment, with the flags whose targeting references it.
#[utoipa::path(get, operation_id = "getSegment", path = "/flag-sets/{set}/segments/{key}", tag = "segments",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The segment key", example = "beta")),
    responses((status = 200, description = "The segment", body = Segment,
        headers(("ETag" = String, description = "The version"))), ReadErrors))]
pub(crate) async fn read(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let segment = state.storage.segment(&set, &key).await?;
    let used_by = state.storage.segment_users(&set, &key).await?;
    Ok(tagged(
        segment.version,
        Segment {
            used_by: Some(used_by),
            ..segment.into()
        },
    ))
}

/// Creates a segment (201), or replaces it (200; send `If-Match` with its
/// ETag, else 409).
#[utoipa::path(put, operation_id = "putSegment", path = "/flag-sets/{set}/segments/{key}", tag = "segments",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The segment key", example = "beta"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the segment to replace")),
    request_body = SegmentPut,
    responses(
        (status = 200, description = "Replaced", body = Segment, headers(("ETag" = String, description = "The new version"))),
        (status = 201, description = "Created", body = Segment, headers(("ETag" = String, description = "The version"))),
        WriteErrors))]
pub(crate) async fn put(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<SegmentPut>,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(body.comment)?;
    if if_match.is_some() {
        // If-Match names a current version: it cannot create.
        match state.storage.segment(&set, &key).await {
            Err(ensign_storage::StorageError::NotFound(what)) => {
                return Err(ApiError::new(
                    ErrorCode::PreconditionFailed,
                    format!("{what} does not exist; create it without If-Match"),
                ));
            }
            Err(other) => return Err(other.into()),
            Ok(_) => {}
        }
    }
    let segment = state
        .storage
        .put_segment(&actor, &set, &key, &body.description, body.rule, if_match)
        .await
        .map_err(|error| match error {
            ensign_storage::StorageError::Conflict(what) => ApiError::conflict(format!(
                "{what} already exists; send If-Match with its ETag to replace it"
            )),
            other => other.into(),
        })?;
    let used_by = state.storage.segment_users(&set, &key).await?;
    let version = segment.version;
    let body = Segment {
        used_by: Some(used_by),
        ..segment.into()
    };
    if version == 1 {
        let location = format!(
            "/api/v1/flag-sets/{}/segments/{}",
            path_segment(&set),
            path_segment(&key)
        );
        Ok(created(version, &location, body))
    } else {
        Ok(tagged(version, body))
    }
}

/// Deletes a segment no flag references.
#[utoipa::path(delete, operation_id = "deleteSegment", path = "/flag-sets/{set}/segments/{key}", tag = "segments",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The segment key", example = "beta"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub(crate) async fn delete(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    versioned(if_match, || {
        state.storage.delete_segment(&actor, &set, &key, if_match)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
