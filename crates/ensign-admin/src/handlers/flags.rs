//! `/flags`: list with filters and paging, create, read, patch lifecycle data,
//! delete, archive and restore (changes that reach every environment), and
//! per-environment configuration: replace, toggle, copy from another
//! environment.

use axum::Json;
use axum::response::{IntoResponse, Response};
use ensign_storage::model::FlagStage;
use ensign_storage::{FlagFilter, FlagPatch};
use http::StatusCode;

use super::{Shared, strip_environment, versioned};
use crate::auth::Editor;
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{IfMatch, JsonBody, Params, PathParams, created, path_segment, tagged};
use crate::wire::FlagPatch as FlagPatchBody;
use crate::wire::{
    CopyRequest, Flag, FlagConfigPut, FlagPage, FlagQuery, NewFlag, Stage, ToggleRequest,
};

/// The default page size.
const DEFAULT_LIMIT: i64 = 50;

/// A page of flags matching the filters, by flag set and key.
#[utoipa::path(get, operation_id = "listFlags", path = "/flags", tag = "flags", params(FlagQuery),
    responses((status = 200, description = "A page of flags", body = FlagPage), ReadErrors))]
pub(crate) async fn list(
    state: Shared,
    Params(query): Params<FlagQuery>,
) -> Result<Json<FlagPage>, ApiError> {
    let state_filter = match query.state.as_deref() {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("enabled") => Some("ENABLED".to_owned()),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Some("DISABLED".to_owned()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "state must be ENABLED or DISABLED, not \"{other}\""
            )));
        }
    };
    let filter = FlagFilter {
        flag_set: query.flag_set,
        environment: query.environment.clone(),
        state: state_filter,
        stage: query.stage.map(Into::into),
        kind: query.kind.map(Into::into),
        tag: query.tag,
        owner: query.owner,
        query: query.q,
    };
    let page = state
        .storage
        .flags(
            &filter,
            query.limit.unwrap_or(DEFAULT_LIMIT),
            query.offset.unwrap_or(0),
        )
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|flag| {
            let mut flag = Flag::from(flag);
            if let Some(environment) = &query.environment {
                flag.environments.retain(|env, _| env == environment);
            }
            flag
        })
        .collect();
    Ok(Json(FlagPage {
        items,
        total: page.total,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// Creates a flag with a configuration in every environment.
#[utoipa::path(post, operation_id = "createFlag", path = "/flags", tag = "flags", request_body = NewFlag,
    responses((status = 201, description = "Created", body = Flag,
        headers(("ETag" = String, description = "The version"), ("Location" = String, description = "The new flag"))),
        WriteErrors))]
pub(crate) async fn create(
    state: Shared,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<NewFlag>,
) -> Result<Response, ApiError> {
    let (new, comment) = body.split();
    let actor = writer.everywhere(comment)?;
    // The storage reports each environment's problems under
    // `/environments/<env>`; a configuration the body did not give per
    // environment came from the top-level fields.
    let explicit: Vec<String> = new.environments.keys().cloned().collect();
    let environments = state.storage.environments().await?;
    let flag = state
        .storage
        .create_flag(&actor, new)
        .await
        .map_err(|error| {
            ApiError::from(error).map_paths(|path| {
                environments
                    .iter()
                    .filter(|e| !explicit.contains(&e.key))
                    .fold(path.to_owned(), |path, e| strip_environment(&path, &e.key))
            })
        })?;
    let location = format!(
        "/api/v1/flags/{}/{}",
        path_segment(&flag.flag_set),
        path_segment(&flag.key)
    );
    Ok(created(flag.version, &location, Flag::from(flag)))
}

/// One flag.
#[utoipa::path(get, operation_id = "getFlag", path = "/flags/{set}/{key}", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key (percent-encoded)", example = "banner")),
    responses((status = 200, description = "The flag", body = Flag,
        headers(("ETag" = String, description = "The version"))), ReadErrors))]
pub(crate) async fn read(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let flag = state.storage.flag(&set, &key).await?;
    Ok(tagged(flag.version, Flag::from(flag)))
}

/// Changes a flag's lifecycle data (description, owner, tags, kind, stage,
/// expiry, metadata).
#[utoipa::path(patch, operation_id = "updateFlag", path = "/flags/{set}/{key}", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = FlagPatchBody,
    responses((status = 200, description = "Updated", body = Flag,
        headers(("ETag" = String, description = "The new version"))), WriteErrors))]
pub(crate) async fn update(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<FlagPatchBody>,
) -> Result<Response, ApiError> {
    let (patch, comment) = body.split();
    let actor = writer.everywhere(comment)?;
    patch_flag(&state, &actor, (&set, &key), patch, if_match).await
}

async fn patch_flag(
    state: &Shared,
    actor: &ensign_storage::model::Actor,
    (set, key): (&str, &str),
    patch: FlagPatch,
    if_match: Option<i64>,
) -> Result<Response, ApiError> {
    let environments = state.storage.environments().await?;
    let flag = versioned(if_match, || {
        state
            .storage
            .update_flag(actor, set, key, patch.clone(), if_match)
    })
    .await
    .map_err(|error| {
        // Metadata problems are reported per environment; the body has one.
        error.map_paths(|path| {
            environments
                .iter()
                .fold(path.to_owned(), |path, e| strip_environment(&path, &e.key))
        })
    })?;
    Ok(tagged(flag.version, Flag::from(flag)))
}

/// Deletes a flag and its configurations (archiving keeps it).
#[utoipa::path(delete, operation_id = "deleteFlag", path = "/flags/{set}/{key}", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
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
        state.storage.delete_flag(&actor, &set, &key, if_match)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Replaces the flag's configuration in one environment.
#[utoipa::path(put, operation_id = "configureFlag", path = "/flags/{set}/{key}/environments/{env}", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("env" = String, Path, description = "The environment key", example = "production"),
        ("If-Match" = Option<String>, Header, description = "The flag's ETag the change is based on")),
    request_body = FlagConfigPut,
    responses((status = 200, description = "Configured", body = Flag,
        headers(("ETag" = String, description = "The flag's new version"))), WriteErrors))]
pub(crate) async fn configure(
    state: Shared,
    PathParams((set, key, env)): PathParams<(String, String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<FlagConfigPut>,
) -> Result<Response, ApiError> {
    let (config, comment) = body.split();
    let actor = writer.in_environment(&env, comment)?;
    let flag = versioned(if_match, || {
        state
            .storage
            .set_flag_config(&actor, &set, &key, &env, config.clone(), if_match)
    })
    .await
    // The body is the configuration itself.
    .map_err(|error| error.map_paths(|path| strip_environment(path, &env)))?;
    Ok(tagged(flag.version, Flag::from(flag)))
}

/// Turns the flag on or off in one environment.
#[utoipa::path(post, operation_id = "toggleFlag", path = "/flags/{set}/{key}/environments/{env}/toggle", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("env" = String, Path, description = "The environment key", example = "production"),
        ("If-Match" = Option<String>, Header, description = "The flag's ETag the toggle is based on")),
    request_body = ToggleRequest,
    responses((status = 200, description = "Toggled", body = Flag,
        headers(("ETag" = String, description = "The flag's new version"))), WriteErrors))]
pub(crate) async fn toggle(
    state: Shared,
    PathParams((set, key, env)): PathParams<(String, String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<ToggleRequest>,
) -> Result<Response, ApiError> {
    let actor = writer.in_environment(&env, body.comment)?;
    let flag = versioned(if_match, || {
        state
            .storage
            .toggle_flag(&actor, &set, &key, &env, body.enabled, if_match)
    })
    .await?;
    Ok(tagged(flag.version, Flag::from(flag)))
}

/// Copies the flag's configuration from one environment to another.
#[utoipa::path(post, operation_id = "copyFlagConfig", path = "/flags/{set}/{key}/copy", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("If-Match" = Option<String>, Header, description = "The flag's ETag the copy is based on")),
    request_body = CopyRequest,
    responses((status = 200, description = "Copied", body = Flag,
        headers(("ETag" = String, description = "The flag's new version"))), WriteErrors))]
pub(crate) async fn copy(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<CopyRequest>,
) -> Result<Response, ApiError> {
    let actor = writer.in_environment(&body.to, body.comment.clone())?;
    if body.from == body.to {
        return Err(ApiError::invalid_at("/to", "must differ from \"from\""));
    }
    let flag = versioned(if_match, || {
        state
            .storage
            .copy_flag_config(&actor, &set, &key, &body.from, &body.to, if_match)
    })
    .await?;
    Ok(tagged(flag.version, Flag::from(flag)))
}

/// Archives a flag: it stays, but is no longer served or listed by default.
#[utoipa::path(post, operation_id = "archiveFlag", path = "/flags/{set}/{key}/archive", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, description = "Archived", body = Flag,
        headers(("ETag" = String, description = "The new version"))), WriteErrors))]
pub(crate) async fn archive(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    let flag = state.storage.flag(&set, &key).await?;
    if flag.stage == FlagStage::Archived {
        return Err(ApiError::conflict(format!(
            "flag \"{set}/{key}\" is archived already"
        )));
    }
    let patch = FlagPatch {
        stage: Some(FlagStage::Archived),
        ..FlagPatch::default()
    };
    patch_flag(&state, &actor, (&set, &key), patch, if_match).await
}

/// Restores an archived flag to the stage it had before it was archived
/// (from the audit log; `active` when unknown).
#[utoipa::path(post, operation_id = "restoreFlag", path = "/flags/{set}/{key}/restore", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, description = "Restored", body = Flag,
        headers(("ETag" = String, description = "The new version"))), WriteErrors))]
pub(crate) async fn restore(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    let flag = state.storage.flag(&set, &key).await?;
    if flag.stage != FlagStage::Archived {
        return Err(ApiError::conflict(format!(
            "flag \"{set}/{key}\" is not archived"
        )));
    }
    let stage = stage_before_archiving(&state, &set, &key).await?;
    let patch = FlagPatch {
        stage: Some(stage),
        ..FlagPatch::default()
    };
    patch_flag(&state, &actor, (&set, &key), patch, if_match).await
}

/// The stage the flag had when it was last archived, from the audit log.
async fn stage_before_archiving(
    state: &Shared,
    set: &str,
    key: &str,
) -> Result<FlagStage, ApiError> {
    let filter = ensign_storage::AuditFilter {
        resource_type: Some("flag".to_owned()),
        resource_key: Some(format!("{set}/{key}")),
        ..Default::default()
    };
    let entries = state.storage.audit_log(&filter, 100).await?;
    let stage_of = |value: Option<&serde_json::Value>| {
        value
            .and_then(|v| v.get("stage"))
            .and_then(|s| serde_json::from_value::<Stage>(s.clone()).ok())
    };
    let previous = entries
        .iter()
        .find(|e| e.action == "flag.stage" && stage_of(e.after.as_ref()) == Some(Stage::Archived))
        .and_then(|e| stage_of(e.before.as_ref()))
        .filter(|stage| *stage != Stage::Archived);
    Ok(previous.map_or(FlagStage::Active, Into::into))
}
