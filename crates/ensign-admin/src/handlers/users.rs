//! `/users` (admin only): the people who sign in to the web UI with a
//! password. List, create, delete; a deleted user's sessions end at once.
//! Passwords are never shown, logged or audited.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::Shared;
use crate::auth::Admin;
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{JsonBody, PathParams};
use crate::wire::{NewUser, User};

/// Every user, by name.
#[utoipa::path(get, operation_id = "listUsers", path = "/users", tag = "users",
    responses((status = 200, description = "The users", body = Vec<User>), ReadErrors))]
pub(crate) async fn list(state: Shared, _admin: Admin) -> Result<Json<Vec<User>>, ApiError> {
    let users = state.storage.users().await?;
    Ok(Json(users.into_iter().map(Into::into).collect()))
}

/// Creates a user; the password is stored as an Argon2id hash only.
#[utoipa::path(post, operation_id = "createUser", path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, description = "Created", body = User), WriteErrors))]
pub(crate) async fn create(
    state: Shared,
    Admin(writer): Admin,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(body.comment)?;
    let new = ensign_storage::NewUser {
        name: body.name,
        password: body.password,
        role: body.role.into(),
        environments: body.environments,
    };
    let user = state.storage.create_user(&actor, new).await?;
    Ok((StatusCode::CREATED, Json(User::from(user))).into_response())
}

/// Deletes a user; their sessions end at once.
#[utoipa::path(delete, operation_id = "deleteUser", path = "/users/{name}", tag = "users",
    params(("name" = String, Path, description = "The user's name", example = "ada@example.com")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub(crate) async fn delete(
    state: Shared,
    PathParams(name): PathParams<String>,
    Admin(writer): Admin,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    state.storage.delete_user(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
