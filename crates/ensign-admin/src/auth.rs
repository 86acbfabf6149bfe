//! Who is calling and what they may do.
//!
//! Authentication ([`authenticate`], a middleware on every route but
//! `openapi.json`): `Authorization: Bearer <secret>` is either the bootstrap
//! token from `ENSIGN_ADMIN_TOKEN` (compared in constant time; an admin acting
//! as `token:bootstrap`) or an API token the storage verifies by its hash
//! (acting as `token:<name>`). No or an unknown token is 401. A viewer's
//! non-read request is refused here, before its body is read.
//!
//! Authorization (the [`Editor`] and [`Admin`] extractors, then a scope):
//!
//! | role   | may                                                            |
//! |--------|----------------------------------------------------------------|
//! | viewer | read everything but tokens                                     |
//! | editor | also write flags, segments, flag sets, import                  |
//! | admin  | also write environments and tokens, and read tokens            |
//!
//! A token limited to environments may only make per-environment changes
//! (configure, toggle, copy into, import into, rename) in those environments;
//! changes that reach every environment (creating, patching, archiving or
//! deleting flags, flag sets, segments, environments, tokens) are refused. The
//! only way a handler gets the [`Actor`] its write needs is through
//! [`Writer::everywhere`] or [`Writer::in_environment`], so no write can skip
//! the scope check. Refusals are 403.
//!
//! The actor's comment, recorded in the audit log, comes from the
//! `X-Ensign-Comment` header or, without it, the body's `comment` field.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ensign_storage::model::{Actor, Role, Token};
use http::request::Parts;
use http::{Method, header};

use crate::AdminState;
use crate::error::ApiError;

/// The header that carries the actor's comment.
pub const COMMENT_HEADER: &str = "x-ensign-comment";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The actor name recorded in the audit log (`token:<name>`).
    pub actor: String,
    /// What the caller may do.
    pub role: Role,
    /// The environments it may change (`None`: all).
    pub environments: Option<Vec<String>>,
}

impl Caller {
    fn bootstrap() -> Self {
        Caller {
            actor: "token:bootstrap".to_owned(),
            role: Role::Admin,
            environments: None,
        }
    }

    fn from_token(token: Token) -> Self {
        Caller {
            actor: format!("token:{}", token.name),
            role: token.role,
            environments: token.environments,
        }
    }
}

/// Compares secrets without an early exit that would time the match.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The secret of an `Authorization: Bearer <secret>` header (scheme
/// case-insensitive).
fn bearer(parts: &http::HeaderMap) -> Option<&str> {
    let value = parts.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authentication middleware: puts a [`Caller`] into the request.
pub(crate) async fn authenticate(
    State(state): State<Arc<AdminState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(secret) = bearer(request.headers()) else {
        return ApiError::unauthorized("send an API token as Authorization: Bearer <token>")
            .into_response();
    };
    let bootstrap = state
        .bootstrap_token
        .as_deref()
        .is_some_and(|token| same_secret(token, secret));
    let caller = if bootstrap {
        Caller::bootstrap()
    } else {
        match state.storage.verify_token(secret).await {
            Ok(Some(token)) => Caller::from_token(token),
            Ok(None) => {
                return ApiError::unauthorized("the token is unknown or revoked").into_response();
            }
            Err(error) => return ApiError::from(error).into_response(),
        }
    };
    if caller.role == Role::Viewer && !is_read(request.method()) {
        return ApiError::forbidden(format!("{} is a viewer: it may only read", caller.actor))
            .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal(&"a route is not behind the authentication layer"))
    }
}

/// A caller allowed to write at some role; turned into an [`Actor`] once the
/// scope of the write is known.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    caller: Caller,
    header_comment: Option<String>,
}

impl Writer {
    async fn extract(parts: &mut Parts, needed: Role) -> Result<Writer, ApiError> {
        let caller = Caller::from_request_parts(parts, &()).await?;
        if caller.role < needed {
            return Err(ApiError::forbidden(format!(
                "{} is {} {}; this needs the {} role",
                caller.actor,
                if caller.role == Role::Viewer {
                    "a"
                } else {
                    "an"
                },
                caller.role.as_str(),
                needed.as_str()
            )));
        }
        let header_comment = match parts.headers.get(COMMENT_HEADER) {
            None => None,
            Some(value) => {
                let text = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                    ApiError::bad_request("the X-Ensign-Comment header is not UTF-8")
                })?;
                Some(text.trim().to_owned()).filter(|t| !t.is_empty())
            }
        };
        Ok(Writer {
            caller,
            header_comment,
        })
    }

    /// The actor of a change that reaches every environment.
    pub(crate) fn everywhere(&self, body_comment: Option<String>) -> Result<Actor, ApiError> {
        if let Some(environments) = &self.caller.environments {
            return Err(ApiError::forbidden(format!(
                "{} may only change the environments {}; this change reaches every environment",
                self.caller.actor,
                quoted(environments)
            )));
        }
        Ok(self.actor(body_comment))
    }

    /// The actor of a change to `environment` only.
    pub(crate) fn in_environment(
        &self,
        environment: &str,
        body_comment: Option<String>,
    ) -> Result<Actor, ApiError> {
        if let Some(environments) = &self.caller.environments
            && !environments.iter().any(|e| e == environment)
        {
            return Err(ApiError::forbidden(format!(
                "{} may only change the environments {}, not \"{environment}\"",
                self.caller.actor,
                quoted(environments)
            )));
        }
        Ok(self.actor(body_comment))
    }

    /// Whether the caller is limited to some environments.
    pub(crate) fn is_limited(&self) -> bool {
        self.caller.environments.is_some()
    }

    fn actor(&self, body_comment: Option<String>) -> Actor {
        Actor {
            name: self.caller.actor.clone(),
            comment: self.header_comment.clone().or_else(|| {
                body_comment
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
            }),
        }
    }
}

fn quoted(environments: &[String]) -> String {
    environments
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A caller with at least the editor role.
#[derive(Debug, Clone)]
pub(crate) struct Editor(pub Writer);

impl<S: Send + Sync> FromRequestParts<S> for Editor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Writer::extract(parts, Role::Editor).await.map(Editor)
    }
}

/// A caller with the admin role.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub Writer);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Writer::extract(parts, Role::Admin).await.map(Admin)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bearer_secrets() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
