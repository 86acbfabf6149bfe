//! `/session`: the web UI's sign-in (`POST`, no credentials needed), who is
//! signed in (`GET`) and sign-out (`DELETE`).
//!
//! Signing in takes an API token (or the bootstrap token) or a user's name and
//! password, and answers with the session and the cookie `ensign_session`
//! (`HttpOnly; Secure; SameSite=Strict; Path=/`), valid for 12 hours whatever
//! happens. Wrong credentials are 401 with one message whether the name is
//! unknown or the password wrong, after a short delay; a name with too many
//! failures in a row is refused (429) for a while. The body must be JSON
//! (`Content-Type: application/json`, which a cross-site form cannot send)
//! and is at most [`MAX_LOGIN_BODY`] bytes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use ensign_storage::model::Principal;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::Shared;
use crate::auth::{
    Caller, ClientIp, CookieSession, SESSION_COOKIE, identify, same_secret, throttled,
};
use crate::error::{ApiError, ErrorCode, WriteErrors};
use crate::extract::parse_json;
use crate::wire::{LoginRequest, Session};

/// How long a session lasts, whatever happens (12 hours), in milliseconds.
pub const SESSION_LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;

/// The largest sign-in body, in bytes.
pub const MAX_LOGIN_BODY: usize = 8 * 1024;

/// How long a failed sign-in waits before it answers.
const FAILURE_DELAY: Duration = Duration::from_millis(500);

/// Failures in a row after which a name is refused for [`LOCKOUT`].
const LOCKOUT_AFTER: u32 = 10;

/// How long a name stays refused after its last failure; also how long a
/// failure is remembered.
const LOCKOUT: Duration = Duration::from_secs(5 * 60);

/// How many names the failure count remembers at most (memory is bounded).
const MAX_TRACKED_NAMES: usize = 10_000;

/// Failed password sign-ins per user name, in memory (per process).
#[derive(Debug, Default)]
pub(crate) struct LoginFailures {
    by_name: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginFailures {
    /// How much longer `name` is refused, if it is.
    fn locked(&self, name: &str, now: Instant) -> Option<Duration> {
        let by_name = self.by_name.lock().ok()?;
        let (count, last) = by_name.get(name)?;
        let until = *last + LOCKOUT;
        (*count >= LOCKOUT_AFTER && until > now).then(|| until - now)
    }

    /// Counts a failure of `name`.
    fn failed(&self, name: &str, now: Instant) {
        let Ok(mut by_name) = self.by_name.lock() else {
            return;
        };
        if by_name.len() >= MAX_TRACKED_NAMES && !by_name.contains_key(name) {
            by_name.retain(|_, (_, last)| *last + LOCKOUT > now);
            if by_name.len() >= MAX_TRACKED_NAMES {
                by_name.clear();
            }
        }
        let entry = by_name.entry(name.to_owned()).or_insert((0, now));
        if entry.1 + LOCKOUT <= now {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }

    /// Forgets the failures of `name` after a successful sign-in.
    fn succeeded(&self, name: &str) {
        if let Ok(mut by_name) = self.by_name.lock() {
            by_name.remove(name);
        }
    }
}

/// The answer for a caller.
fn session_body(caller: &Caller) -> Session {
    Session {
        actor: caller.actor.clone(),
        role: caller.role.into(),
        environments: caller.environments.clone(),
        csrf_token: caller.session.as_ref().map(|s| s.csrf_token.clone()),
        expires_at: caller.session.as_ref().map(|s| s.expires_at),
    }
}

/// A `Set-Cookie` value for the session cookie.
fn cookie(value: &str, max_age_seconds: i64) -> HeaderValue {
    let text = format!(
        "{SESSION_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age_seconds}"
    );
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("ensign_session=; Max-Age=0"))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The error of every failed sign-in.
async fn rejected() -> ApiError {
    tokio::time::sleep(FAILURE_DELAY).await;
    ApiError::unauthorized("the credentials are not valid")
}

/// Who the credentials of `request` sign in as.
async fn principal(state: &Shared, request: LoginRequest) -> Result<Principal, ApiError> {
    match (request.token, request.username, request.password) {
        (Some(token), None, None) => {
            let bootstrap = state
                .bootstrap_token
                .as_deref()
                .is_some_and(|b| same_secret(b, &token));
            if bootstrap {
                return Ok(Principal::Bootstrap(ensign_storage::hash_secret(&token)));
            }
            match state.storage.verify_token(&token).await? {
                Some(token) => Ok(Principal::Token(token)),
                None => Err(rejected().await),
            }
        }
        (None, Some(name), Some(password)) => {
            let failures = &state.login_failures;
            if let Some(wait) = failures.locked(&name, Instant::now()) {
                return Err(ApiError::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "too many failed sign-ins for this name; retry in {} s",
                        wait.as_secs().max(1)
                    ),
                ));
            }
            match state.storage.verify_password(&name, &password).await? {
                Some(user) => {
                    failures.succeeded(&name);
                    Ok(Principal::User(user))
                }
                None => {
                    failures.failed(&name, Instant::now());
                    Err(rejected().await)
                }
            }
        }
        _ => Err(ApiError::invalid_at(
            "",
            "send either \"token\", or \"username\" and \"password\"",
        )),
    }
}

/// Signs in with an API token or a user's name and password; sets the session
/// cookie.
#[utoipa::path(post, operation_id = "createSession", path = "/session", tag = "session",
    request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = Session,
        headers(("Set-Cookie" = String, description = "ensign_session=<secret>; HttpOnly; Secure; SameSite=Strict; Path=/"))),
        WriteErrors))]
pub(crate) async fn login(
    state: Shared,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(ApiError::bad_request(
            "send the credentials as JSON (Content-Type: application/json)",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_LOGIN_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("a sign-in body is at most {MAX_LOGIN_BODY} bytes"),
            )
        })?;
    let request: LoginRequest = parse_json(&bytes)?;
    // A token sign-in is a guess of a bearer token: throttled like one.
    let with_token = request.token.is_some();
    let principal = throttled(&state, client, with_token, principal(&state, request)).await?;
    let (session, secret) = state
        .storage
        .create_session(&principal, SESSION_LIFETIME_MS)
        .await?;
    let mut caller = Caller::from_principal(&principal);
    caller.session = Some(CookieSession {
        secret: secret.clone(),
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    });
    let mut response = Json(session_body(&caller)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&secret, SESSION_LIFETIME_MS / 1000),
    );
    Ok(response)
}

/// Who the caller is (by session cookie or bearer token).
#[utoipa::path(get, operation_id = "getSession", path = "/session", tag = "session",
    responses((status = 200, description = "The caller", body = Session), (status = 401, description = "Not signed in")))]
pub(crate) async fn read(
    state: Shared,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Json<Session>, ApiError> {
    let caller = identify(&state, client, &Method::GET, &headers).await?;
    Ok(Json(session_body(&caller)))
}

/// Signs out: the session is deleted and the cookie cleared. Without a live
/// session there is nothing to end, and the answer is the same.
#[utoipa::path(delete, operation_id = "deleteSession", path = "/session", tag = "session",
    responses((status = 204, description = "Signed out; the cookie is cleared"),
        (status = 403, description = "The session cookie came without its X-CSRF-Token")))]
pub(crate) async fn logout(
    state: Shared,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match identify(&state, client, &Method::DELETE, &headers).await {
        Ok(Caller {
            actor,
            session: Some(session),
            ..
        }) => {
            let actor = ensign_storage::model::Actor::new(actor);
            state
                .storage
                .delete_session(&actor, &session.secret)
                .await?;
        }
        Ok(_) => {}
        Err(error) if error.code() == ErrorCode::Unauthorized => {}
        Err(error) => return Err(error),
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie("", 0))],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_many_failures_in_a_row_are_refused_for_a_while() {
        let failures = LoginFailures::default();
        let start = Instant::now();
        for _ in 0..LOCKOUT_AFTER - 1 {
            failures.failed("alice", start);
        }
        assert_eq!(failures.locked("alice", start), None);
        failures.failed("alice", start);
        assert_eq!(failures.locked("alice", start), Some(LOCKOUT));
        assert_eq!(failures.locked("bob", start), None);
        assert_eq!(failures.locked("alice", start + LOCKOUT), None);
        failures.succeeded("alice");
        assert_eq!(failures.locked("alice", start), None);
    }

    #[test]
    fn failures_are_forgotten_after_the_lockout() {
        let failures = LoginFailures::default();
        let start = Instant::now();
        for _ in 0..LOCKOUT_AFTER - 1 {
            failures.failed("alice", start);
        }
        failures.failed("alice", start + LOCKOUT);
        assert_eq!(failures.locked("alice", start + LOCKOUT), None);
    }

    #[test]
    fn cookies_are_http_only_secure_and_strict() {
        let value = cookie("abc", 60);
        assert_eq!(
            value.to_str().unwrap_or_default(),
            "ensign_session=abc; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=60"
        );
    }
}
