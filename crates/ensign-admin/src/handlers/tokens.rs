//! `/tokens` (admin only): list, create (the answer carries the secret, once),
//! revoke.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::Shared;
use crate::auth::Admin;
use crate::error::{ApiError, ReadErrors, WriteErrors};
use crate::extract::{JsonBody, PathParams};
use crate::wire::{CreatedToken, NewToken, Token};

/// The name the bootstrap token acts as; no stored token may take it.
const RESERVED_NAME: &str = "bootstrap";

/// Every token (without secrets), by name, revoked ones included.
#[utoipa::path(get, operation_id = "listTokens", path = "/tokens", tag = "tokens",
    responses((status = 200, description = "The tokens", body = Vec<Token>), ReadErrors))]
pub(crate) async fn list(state: Shared, _admin: Admin) -> Result<Json<Vec<Token>>, ApiError> {
    let tokens = state.storage.tokens().await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

/// Creates a token. The secret is in this answer only; it is stored hashed.
#[utoipa::path(post, operation_id = "createToken", path = "/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, description = "Created; the secret is shown this once", body = CreatedToken),
        WriteErrors))]
pub(crate) async fn create(
    state: Shared,
    Admin(writer): Admin,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(body.comment)?;
    if body.name.trim() == RESERVED_NAME {
        return Err(ApiError::invalid_at(
            "/name",
            "\"bootstrap\" is reserved for the ENSIGN_ADMIN_TOKEN token",
        ));
    }
    let new = ensign_storage::NewToken {
        name: body.name,
        role: body.role.into(),
        environments: body.environments,
    };
    let (token, secret) = state.storage.create_token(&actor, new).await?;
    let body = CreatedToken {
        token: token.into(),
        secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revokes a token; it stops working at once.
#[utoipa::path(delete, operation_id = "revokeToken", path = "/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "The token name", example = "ci-deploy")),
    responses((status = 200, description = "Revoked", body = Token), WriteErrors))]
pub(crate) async fn revoke(
    state: Shared,
    PathParams(name): PathParams<String>,
    Admin(writer): Admin,
) -> Result<Json<Token>, ApiError> {
    let actor = writer.everywhere(None)?;
    let token = state.storage.revoke_token(&actor, &name).await?;
    Ok(Json(token.into()))
}
