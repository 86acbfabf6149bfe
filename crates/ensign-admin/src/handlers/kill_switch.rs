//! `/kill-switches`: kill-switch bindings (list, create, read, replace,
//! delete; editors, within the environments of their targets: those of the
//! binding replaced or deleted and those of its replacement), and per flag:
//! `/flags/{set}/{key}/kill-switch` (bindings, open and closed kills) and
//! `/flags/{set}/{key}/environments/{env}/kill-switch/restore` (a human puts
//! the configuration from before the kill back).

use axum::Json;
use axum::response::{IntoResponse, Response};
use ensign_storage::model::Actor;
use ensign_storage::{KillSwitchBinding, StorageError};
use http::StatusCode;

use super::{Shared, versioned};
use crate::auth::{Editor, Writer};
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{IfMatch, JsonBody, PathParams, created, path_segment, tagged};
use crate::wire::kill_switch::{Binding, BindingInput, FlagKillSwitch, KillRecord, RestoreRequest};

/// The actor of a binding change: the caller must be allowed to change every
/// environment the `bindings` act in (the stored one and its replacement).
fn binding_actor<'b>(
    writer: &Writer,
    bindings: impl IntoIterator<Item = &'b KillSwitchBinding>,
    comment: Option<String>,
) -> Result<Actor, ApiError> {
    let mut environments = bindings
        .into_iter()
        .flat_map(|binding| &binding.targets)
        .map(|target| target.environment.as_str())
        .peekable();
    match environments.peek().copied() {
        Some(first) if writer.is_limited() => {
            for environment in environments {
                writer.in_environment(environment, None)?;
            }
            writer.in_environment(first, comment)
        }
        _ => writer.everywhere(comment),
    }
}

/// The version a write over the stored binding `current` must find: the one
/// whose environments were checked (`If-Match`, when sent, must name it), so
/// a binding changed after the check is never overwritten or deleted.
fn checked_version(
    current: &KillSwitchBinding,
    if_match: Option<i64>,
) -> Result<i64, StorageError> {
    match if_match {
        Some(expected) if expected != current.version => Err(StorageError::VersionMismatch {
            resource: format!("kill-switch binding \"{}\"", current.name),
            current: current.version,
            expected,
        }),
        _ => Ok(current.version),
    }
}

/// Every binding, by name.
#[utoipa::path(get, operation_id = "listKillSwitches", path = "/kill-switches", tag = "kill switch",
    responses((status = 200, description = "The bindings", body = Vec<Binding>), ReadErrors))]
pub(crate) async fn list(state: Shared) -> Result<Json<Vec<Binding>>, ApiError> {
    let bindings = state.storage.kill_switch_bindings().await?;
    Ok(Json(bindings.into_iter().map(Into::into).collect()))
}

/// Creates a binding.
#[utoipa::path(post, operation_id = "createKillSwitch", path = "/kill-switches", tag = "kill switch",
    request_body = BindingInput,
    responses((status = 201, description = "Created", body = Binding,
        headers(("ETag" = String, description = "The version"))), WriteErrors))]
pub(crate) async fn create(
    state: Shared,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<BindingInput>,
) -> Result<Response, ApiError> {
    let Some(name) = body.name.clone() else {
        return Err(ApiError::invalid_at("/name", "is required"));
    };
    let (binding, comment) = body.split(name);
    let actor = binding_actor(&writer, [&binding], comment)?;
    let binding = state
        .storage
        .create_kill_switch_binding(&actor, binding)
        .await?;
    let location = format!("/api/v1/kill-switches/{}", path_segment(&binding.name));
    Ok(created(binding.version, &location, Binding::from(binding)))
}

/// One binding.
#[utoipa::path(get, operation_id = "getKillSwitch", path = "/kill-switches/{name}", tag = "kill switch",
    params(("name" = String, Path, description = "The binding name", example = "checkout-errors")),
    responses((status = 200, description = "The binding", body = Binding,
        headers(("ETag" = String, description = "The version"))), ReadErrors))]
pub(crate) async fn read(
    state: Shared,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    let binding = state.storage.kill_switch_binding(&name).await?;
    Ok(tagged(binding.version, Binding::from(binding)))
}

/// Replaces a binding (its name stays).
#[utoipa::path(put, operation_id = "putKillSwitch", path = "/kill-switches/{name}", tag = "kill switch",
    params(("name" = String, Path, description = "The binding name", example = "checkout-errors"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = BindingInput,
    responses((status = 200, description = "Replaced", body = Binding,
        headers(("ETag" = String, description = "The new version"))), WriteErrors))]
pub(crate) async fn update(
    state: Shared,
    PathParams(name): PathParams<String>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    JsonBody(body): JsonBody<BindingInput>,
) -> Result<Response, ApiError> {
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::invalid_at(
            "/name",
            "a binding cannot be renamed; create a new one",
        ));
    }
    let (binding, comment) = body.split(name.clone());
    let (state, name, writer, binding, comment) = (&state, &name, &writer, &binding, &comment);
    let stored = versioned(if_match, || async move {
        // The binding being replaced must be in the caller's environments
        // too, not only its replacement.
        let current = state.storage.kill_switch_binding(name).await?;
        let actor = match binding_actor(writer, [&current, binding], comment.clone()) {
            Ok(actor) => actor,
            Err(refused) => return Ok(Err(refused)),
        };
        let version = checked_version(&current, if_match)?;
        state
            .storage
            .update_kill_switch_binding(&actor, name, binding.clone(), Some(version))
            .await
            .map(Ok)
    })
    .await??;
    Ok(tagged(stored.version, Binding::from(stored)))
}

/// Deletes a binding; what it did stays in the flags' kill-switch history.
#[utoipa::path(delete, operation_id = "deleteKillSwitch", path = "/kill-switches/{name}", tag = "kill switch",
    params(("name" = String, Path, description = "The binding name", example = "checkout-errors"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub(crate) async fn delete(
    state: Shared,
    PathParams(name): PathParams<String>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
) -> Result<Response, ApiError> {
    let (state, name, writer) = (&state, &name, &writer);
    versioned(if_match, || async move {
        let current = state.storage.kill_switch_binding(name).await?;
        let actor = match binding_actor(writer, [&current], None) {
            Ok(actor) => actor,
            Err(refused) => return Ok(Err(refused)),
        };
        let version = checked_version(&current, if_match)?;
        state
            .storage
            .delete_kill_switch_binding(&actor, name, Some(version))
            .await
            .map(Ok)
    })
    .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A flag's kill-switch status.
async fn status(state: &Shared, set: &str, key: &str) -> Result<FlagKillSwitch, ApiError> {
    state.storage.flag(set, key).await?;
    let bindings = state
        .storage
        .kill_switch_bindings()
        .await?
        .into_iter()
        .filter(|b| b.targets.iter().any(|t| t.flag_set == set && t.flag == key))
        .map(Into::into)
        .collect();
    let (active, history): (Vec<KillRecord>, Vec<KillRecord>) = state
        .storage
        .kill_records(set, key)
        .await?
        .into_iter()
        .map(KillRecord::from)
        .partition(|r| r.restored_at.is_none());
    Ok(FlagKillSwitch {
        bindings,
        active,
        history,
    })
}

/// The flag's kill switch: the bindings that target it, its open kills, and
/// the latest closed ones.
#[utoipa::path(get, operation_id = "getFlagKillSwitch", path = "/flags/{set}/{key}/kill-switch", tag = "kill switch",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner")),
    responses((status = 200, description = "The flag's kill switch", body = FlagKillSwitch), ReadErrors))]
pub(crate) async fn flag_status(
    state: Shared,
    PathParams((set, key)): PathParams<(String, String)>,
) -> Result<Json<FlagKillSwitch>, ApiError> {
    Ok(Json(status(&state, &set, &key).await?))
}

/// Restores the flag in the environment by hand: the configuration from
/// before its first open kill is put back, and every open kill is closed.
/// 404 when no kill is open.
#[utoipa::path(post, operation_id = "restoreFlagKillSwitch",
    path = "/flags/{set}/{key}/environments/{env}/kill-switch/restore", tag = "kill switch",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("env" = String, Path, description = "The environment key", example = "production")),
    request_body(content = Option<RestoreRequest>),
    responses((status = 200, description = "Restored; the flag's kill switch now", body = FlagKillSwitch),
        WriteErrors))]
pub(crate) async fn restore(
    state: Shared,
    PathParams((set, key, env)): PathParams<(String, String, String)>,
    Editor(writer): Editor,
    body: axum::body::Bytes,
) -> Result<Json<FlagKillSwitch>, ApiError> {
    let request: RestoreRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RestoreRequest::default()
    } else {
        // `null` is no request, as the document's nullable body says.
        crate::extract::parse_json::<Option<RestoreRequest>>(&body)?.unwrap_or_default()
    };
    let actor = writer.in_environment(&env, request.comment)?;
    state
        .storage
        .restore_killed_flag(&actor, &set, &key, &env)
        .await?;
    Ok(Json(status(&state, &set, &key).await?))
}
