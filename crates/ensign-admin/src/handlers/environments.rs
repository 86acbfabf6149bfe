//! `/environments`: list, create (admin), read, rename (admin).

use axum::Json;
use axum::response::Response;

use super::{Shared, versioned};
use crate::auth::Admin;
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{IfMatch, JsonBody, PathParams, created, path_segment, tagged};
use crate::wire::{Environment, EnvironmentPatch, NewEnvironment};

/// Every environment, in creation order.
#[utoipa::path(get, operation_id = "listEnvironments", path = "/environments", tag = "environments",
    responses((status = 200, description = "The environments", body = Vec<Environment>), ReadErrors))]
pub(crate) async fn list(state: Shared) -> Result<Json<Vec<Environment>>, ApiError> {
    let environments = state.storage.environments().await?;
    Ok(Json(environments.into_iter().map(Into::into).collect()))
}

/// Creates an environment; every existing flag starts disabled in it.
#[utoipa::path(post, operation_id = "createEnvironment", path = "/environments", tag = "environments",
    request_body = NewEnvironment,
    responses((status = 201, description = "Created", body = Environment,
        headers(("ETag" = String, description = "The version"), ("Location" = String, description = "The new environment"))),
        WriteErrors))]
pub(crate) async fn create(
    state: Shared,
    Admin(writer): Admin,
    JsonBody(body): JsonBody<NewEnvironment>,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(body.comment)?;
    let name = body.name.unwrap_or_else(|| body.key.clone());
    let environment = state
        .storage
        .create_environment(&actor, &body.key, &name)
        .await?;
    let location = format!("/api/v1/environments/{}", path_segment(&environment.key));
    Ok(created(
        environment.version,
        &location,
        Environment::from(environment),
    ))
}

/// One environment.
#[utoipa::path(get, operation_id = "getEnvironment", path = "/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "The environment key", example = "production")),
    responses((status = 200, description = "The environment", body = Environment,
        headers(("ETag" = String, description = "The version"))), ReadErrors))]
pub(crate) async fn read(
    state: Shared,
    PathParams(env): PathParams<String>,
) -> Result<Response, ApiError> {
    let environment = state.storage.environment(&env).await?;
    Ok(tagged(environment.version, Environment::from(environment)))
}

/// Renames an environment.
#[utoipa::path(patch, operation_id = "updateEnvironment", path = "/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "The environment key", example = "production"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body = EnvironmentPatch,
    responses((status = 200, description = "Renamed", body = Environment,
        headers(("ETag" = String, description = "The new version"))), WriteErrors))]
pub(crate) async fn update(
    state: Shared,
    PathParams(env): PathParams<String>,
    IfMatch(if_match): IfMatch,
    Admin(writer): Admin,
    JsonBody(body): JsonBody<EnvironmentPatch>,
) -> Result<Response, ApiError> {
    let actor = writer.in_environment(&env, body.comment)?;
    let environment = versioned(if_match, || {
        state
            .storage
            .rename_environment(&actor, &env, &body.name, if_match)
    })
    .await?;
    Ok(tagged(environment.version, Environment::from(environment)))
}
