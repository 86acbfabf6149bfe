//! Who is calling and what they may do.
//!
//! Authentication ([`identify`]; the [`authenticate`] middleware on every
//! route but `openapi.json` and `/session`):
//!
//! - `Authorization: Bearer <secret>` is either the bootstrap token from
//!   `ENSIGN_ADMIN_TOKEN` (compared in constant time; an admin acting as
//!   `token:bootstrap`) or an API token the storage verifies by its hash
//!   (acting as `token:<name>`);
//! - without it, the web UI's session cookie `ensign_session` names a live
//!   session (signed in with a password as `user:<name>`, with an API token,
//!   or with the bootstrap token). A cookie-authenticated request with an
//!   unsafe method must carry the session's CSRF token in `X-CSRF-Token`
//!   (compared in constant time), else it is refused with 403 before anything
//!   is read or changed.
//!
//! No or unknown credentials are 401. Wrong secrets (bearer tokens here, and
//! the token sign-in and webhook secrets elsewhere, through [`throttled`])
//! count against the client address: past 10 in a minute, its requests with a
//! secret are 429 with `Retry-After`, right secret or not, until the minute
//! ends (`ensign_http::Throttle`). A viewer's non-read request is refused
//! here, before its body is read (but evaluating and validating a flag
//! configuration, which write nothing).
//!
//! Authorization (the [`Editor`] and [`Admin`] extractors, then a scope):
//!
//! | role   | may                                                            |
//! |--------|----------------------------------------------------------------|
//! | viewer | read everything but tokens, users, receivers (and their audit entries); evaluate, validate |
//! | editor | also write flags, segments, flag sets, import                  |
//! | admin  | also write environments, tokens and users, and read them       |
//!
//! A caller limited to environments may only make per-environment changes
//! (configure, toggle, copy into, import into, rename) in those environments;
//! changes that reach every environment (creating, patching, archiving or
//! deleting flags, flag sets, segments, environments, tokens, users; an
//! import that would change any of them or a flag's metadata) are refused.
//! A kill-switch binding is changed only when every environment of its
//! stored and its new targets is the caller's, and an Alertmanager receiver
//! it creates must be limited to some of its environments. The only way a handler gets the [`Actor`] its write needs is
//! through [`Writer::everywhere`] or [`Writer::in_environment`], so no write
//! can skip the scope check. Refusals are 403.
//!
//! The actor's comment, recorded in the audit log, comes from the
//! `X-Ensign-Comment` header or, without it, the body's `comment` field.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ensign_storage::model::{Actor, Principal, Role, Token};
use http::request::Parts;
use http::{HeaderMap, Method, header};

use crate::AdminState;
use crate::error::ApiError;

/// The header that carries the actor's comment.
pub const COMMENT_HEADER: &str = "x-ensign-comment";

/// The name of the web UI's session cookie.
pub const SESSION_COOKIE: &str = "ensign_session";

/// The header that carries a session's CSRF token on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The actor name recorded in the audit log (`token:<name>`, `user:<name>`).
    pub actor: String,
    /// What the caller may do.
    pub role: Role,
    /// The environments it may change (`None`: all).
    pub environments: Option<Vec<String>>,
    /// The session, when the caller was authenticated by its cookie.
    pub session: Option<CookieSession>,
}

/// The session behind a cookie-authenticated caller.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieSession {
    /// The cookie's value (the session secret).
    pub secret: String,
    /// What unsafe requests must send as `X-CSRF-Token`.
    pub csrf_token: String,
    /// When the session ends (unix milliseconds).
    pub expires_at: i64,
}

impl std::fmt::Debug for CookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSession")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Caller {
    fn bootstrap() -> Self {
        Caller {
            actor: "token:bootstrap".to_owned(),
            role: Role::Admin,
            environments: None,
            session: None,
        }
    }

    fn from_token(token: Token) -> Self {
        Caller {
            actor: format!("token:{}", token.name),
            role: token.role,
            environments: token.environments,
            session: None,
        }
    }

    /// The caller a session principal acts as.
    pub(crate) fn from_principal(principal: &Principal) -> Self {
        match principal {
            Principal::User(user) => Caller {
                actor: ensign_storage::actor_name(principal),
                role: user.role,
                environments: user.environments.clone(),
                session: None,
            },
            Principal::Token(token) => Caller::from_token(token.clone()),
            Principal::Bootstrap(_) => Caller::bootstrap(),
        }
    }
}

pub(crate) use ensign_http::same_secret;

/// The secret of an `Authorization: Bearer <secret>` header, when not empty.
fn bearer(parts: &http::HeaderMap) -> Option<&str> {
    ensign_http::bearer(parts).filter(|secret| !secret.is_empty())
}

/// The value of the session cookie, from any `Cookie` header.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a `POST` to `path` (under `/api/v1`, with or without that prefix)
/// only computes an answer (`.../evaluate`, `.../validate` of a flag in an
/// environment), so viewers may send it.
fn writes_nothing(path: &str) -> bool {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    matches!(
        segments.as_slice(),
        [
            "",
            "flags",
            _,
            _,
            "environments",
            _,
            "evaluate" | "validate"
        ]
    )
}

/// Whether `hash` is the hash of the bootstrap token configured now.
pub(crate) fn is_current_bootstrap(state: &AdminState, hash: &str) -> bool {
    state
        .bootstrap_token
        .as_deref()
        .is_some_and(|token| same_secret(&ensign_storage::hash_secret(token), hash))
}

/// Who sent a request with `headers` and `method` from `client`: its bearer
/// token (checked under the throttle) or, without one, its session cookie
/// (with the CSRF check for unsafe methods).
pub(crate) async fn identify(
    state: &AdminState,
    client: ClientIp,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    if let Some(secret) = bearer(headers) {
        let verify = async {
            let bootstrap = state
                .bootstrap_token
                .as_deref()
                .is_some_and(|token| same_secret(token, secret));
            if bootstrap {
                return Ok(Caller::bootstrap());
            }
            match state.storage.verify_token(secret).await? {
                Some(token) => Ok(Caller::from_token(token)),
                None => Err(ApiError::unauthorized("the token is unknown or revoked")),
            }
        };
        return throttled(state, client, true, verify).await;
    }
    let Some(secret) = session_cookie(headers) else {
        return Err(ApiError::unauthorized(
            "send an API token as Authorization: Bearer <token>, or sign in",
        ));
    };
    let ended = || ApiError::unauthorized("the session has ended; sign in again");
    let session = state.storage.session(secret).await?.ok_or_else(ended)?;
    if let Principal::Bootstrap(hash) = &session.principal
        && !is_current_bootstrap(state, hash)
    {
        return Err(ended());
    }
    if !is_read(method) {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !same_secret(sent, &session.csrf_token) {
            return Err(ApiError::forbidden(
                "a change made with the session cookie must send the session's csrfToken as X-CSRF-Token",
            ));
        }
    }
    let mut caller = Caller::from_principal(&session.principal);
    caller.session = Some(CookieSession {
        secret: secret.to_owned(),
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    });
    Ok(caller)
}

/// The address of the request's client, if its listener recorded one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(ensign_http::client_ip(&parts.extensions)))
    }
}

/// Runs `verify`, the check of a secret `client` presented, under the admin
/// port's throttle: 429 while the address is throttled, and a 401 from
/// `verify` counts as a failure of the address. Without a presented secret
/// `verify` just runs (a missing secret is not a guess).
pub(crate) async fn throttled<T>(
    state: &AdminState,
    ClientIp(client): ClientIp,
    presented: bool,
    verify: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    if !presented {
        return verify.await;
    }
    state
        .secret_failures
        .check(client)
        .map_err(ApiError::throttled)?;
    let result = verify.await;
    if result
        .as_ref()
        .is_err_and(|error| error.code() == crate::error::ErrorCode::Unauthorized)
    {
        state.secret_failures.record_failure(client);
    }
    result
}

/// The authentication middleware: puts a [`Caller`] into the request.
pub(crate) async fn authenticate(
    State(state): State<Arc<AdminState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = ClientIp(ensign_http::client_ip(request.extensions()));
    let caller = match identify(&state, client, request.method(), request.headers()).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if caller.role == Role::Viewer
        && !is_read(request.method())
        && !writes_nothing(request.uri().path())
    {
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
    fn only_evaluate_and_validate_write_nothing() {
        assert!(writes_nothing(
            "/api/v1/flags/web/a%2Fb/environments/prod/evaluate"
        ));
        assert!(writes_nothing(
            "/api/v1/flags/web/a/environments/prod/validate"
        ));
        assert!(!writes_nothing(
            "/api/v1/flags/web/a/environments/prod/toggle"
        ));
        assert!(!writes_nothing(
            "/api/v1/flags/web/a/b/environments/prod/evaluate"
        ));
        assert!(!writes_nothing("/api/v1/flags/web/a/environments/prod"));
        assert!(writes_nothing("/flags/web/a/environments/prod/evaluate"));
    }

    #[test]
    fn session_cookies_among_others() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(session_cookie(&headers), None);
        headers.append(
            header::COOKIE,
            "theme=dark; ensign_session=abc".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        let mut headers = http::HeaderMap::new();
        headers.append(header::COOKIE, "ensign_session=".parse().unwrap());
        headers.append(header::COOKIE, "xensign_session=no".parse().unwrap());
        assert_eq!(session_cookie(&headers), None);
        headers.append(header::COOKIE, "a=1;ensign_session=def".parse().unwrap());
        assert_eq!(session_cookie(&headers), Some("def"));
    }
}
