//! `/session`: the web UI's sign-in (`POST`, no credentials needed), who is
//! signed in (`GET`) and sign-out (`DELETE`).
//!
//! Signing in takes an API token (or the bootstrap token) or a user's name and
//! password, and answers with the session and the cookie `ensign_session`
//! (`HttpOnly; Secure; SameSite=Strict; Path=/`), valid for 12 hours whatever
//! happens. Wrong credentials are 401 with one message whether the name is
//! unknown or the password wrong, after a short delay. The body must be JSON
//! (`Content-Type: application/json`, which a cross-site form cannot send)
//! and is at most [`MAX_LOGIN_BODY`] bytes.
//!
//! Password sign-ins are bounded ([`PasswordSignIns`]):
//!
//! - every attempt counts against its name *before* the password is checked,
//!   so attempts sent at once count too: after [`LOCKOUT_AFTER`] attempts in a
//!   row without a success the name is refused (429) for [`LOCKOUT`];
//! - at most [`CONCURRENT_PASSWORD_CHECKS`] Argon2id checks (19 MiB each) run
//!   at once (a check keeps its place until its hash ends, even when its
//!   request is abandoned); a sign-in waits up to [`CHECK_WAIT`] for one,
//!   then is refused with 503 and `Retry-After` (the server is busy, whoever
//!   asks);
//! - at most [`MAX_TRACKED_NAMES`] names are remembered: when full, forgotten
//!   are first the names whose failures expired, then the oldest names that
//!   are not locked out. Locked-out names are never forgotten before their
//!   lockout ends, so sign-ins with many new names cannot unlock one; when
//!   every remembered name is locked out, new names are refused with 503.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use ensign_storage::model::Principal;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tokio::sync::Semaphore;

use super::Shared;
use crate::auth::{
    Caller, ClientIp, CookieSession, SESSION_COOKIE, identify, same_secret, throttled,
};
use crate::error::{ApiError, ErrorCode, ReadErrors, SignInErrors};
use crate::extract::{media_type, parse_json};
use crate::wire::{LoginRequest, Session};

/// How long a session lasts, whatever happens (12 hours), in milliseconds.
pub const SESSION_LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;

/// The largest sign-in body, in bytes.
pub const MAX_LOGIN_BODY: usize = 8 * 1024;

/// How many password checks run at once. Each Argon2id check holds 19 MiB
/// on a blocking thread for tens of milliseconds: four bound that memory to
/// 76 MiB and still check about a hundred sign-ins a second.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 4;

/// How long a password sign-in waits for a free check before it is refused
/// (503). Waiting costs no hashing memory; a burst of people signing in at
/// once passes, a flood is refused.
const CHECK_WAIT: Duration = Duration::from_secs(1);

/// How long a failed sign-in waits before it answers.
const FAILURE_DELAY: Duration = Duration::from_millis(500);

/// Attempts in a row without a success after which a name is refused for
/// [`LOCKOUT`].
const LOCKOUT_AFTER: u32 = 10;

/// How long a name stays refused after its last attempt; also how long an
/// attempt is remembered.
const LOCKOUT: Duration = Duration::from_secs(5 * 60);

/// How many names the attempt count remembers at most (memory is bounded:
/// names are at most [`ensign_storage::MAX_USER_NAME_BYTES`] long).
const MAX_TRACKED_NAMES: usize = 10_000;

/// How many of the oldest names not locked out are forgotten at once when
/// the count is full (so making room is not a scan per new name).
const FORGET_AT_ONCE: usize = MAX_TRACKED_NAMES / 8;

/// The attempts of one name.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    /// Attempts in a row without a success.
    count: u32,
    /// When the last one started.
    last: Instant,
}

impl Attempts {
    fn expired(&self, now: Instant) -> bool {
        self.last + LOCKOUT <= now
    }

    /// How much longer the name is refused, if it is.
    fn locked(&self, now: Instant) -> Option<Duration> {
        let until = self.last + LOCKOUT;
        (self.count >= LOCKOUT_AFTER && until > now).then(|| until - now)
    }
}

/// Why a password sign-in is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The name had too many attempts; refused for this much longer.
    Locked(Duration),
    /// Every remembered name is locked out; no new name can be counted.
    Full,
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Locked(wait) => ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "too many failed sign-ins for this name; retry in {} s",
                    wait.as_secs().max(1)
                ),
            ),
            Refusal::Full => ApiError::new(
                ErrorCode::Unavailable,
                "too many names are locked out after failed sign-ins; retry later",
            ),
        }
    }
}

/// What bounds password sign-ins (per process): the attempts per user name
/// and the password checks running at once.
#[derive(Debug)]
pub(crate) struct PasswordSignIns {
    attempts: Mutex<HashMap<String, Attempts>>,
    checks: Arc<Semaphore>,
}

impl Default for PasswordSignIns {
    fn default() -> Self {
        PasswordSignIns {
            attempts: Mutex::default(),
            checks: Arc::new(Semaphore::new(CONCURRENT_PASSWORD_CHECKS)),
        }
    }
}

impl PasswordSignIns {
    /// Counts an attempt of `name` before its password is checked, unless the
    /// name is refused.
    fn attempt(&self, name: &str, now: Instant) -> Result<(), Refusal> {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = attempts.get_mut(name) {
            if let Some(wait) = known.locked(now) {
                return Err(Refusal::Locked(wait));
            }
            if known.expired(now) {
                known.count = 0;
            }
            known.count += 1;
            known.last = now;
            return Ok(());
        }
        if attempts.len() >= MAX_TRACKED_NAMES && !make_room(&mut attempts, now) {
            return Err(Refusal::Full);
        }
        attempts.insert(
            name.to_owned(),
            Attempts {
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// Forgets the attempts of `name` after a successful sign-in.
    fn succeeded(&self, name: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }
}

/// Forgets expired names, then (if that is not enough) the oldest names that
/// are not locked out; whether there is room for a new name now.
fn make_room(attempts: &mut HashMap<String, Attempts>, now: Instant) -> bool {
    attempts.retain(|_, a| !a.expired(now));
    if attempts.len() < MAX_TRACKED_NAMES {
        return true;
    }
    let mut unlocked: Vec<(Instant, String)> = attempts
        .iter()
        .filter(|(_, a)| a.locked(now).is_none())
        .map(|(name, a)| (a.last, name.clone()))
        .collect();
    unlocked.sort_unstable();
    for (_, name) in unlocked.into_iter().take(FORGET_AT_ONCE) {
        attempts.remove(&name);
    }
    attempts.len() < MAX_TRACKED_NAMES
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
    media_type(headers).as_deref() == Some("application/json")
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
        (None, Some(name), Some(password)) => password_principal(state, &name, &password).await,
        _ => Err(ApiError::invalid_at(
            "",
            "send either \"token\", or \"username\" and \"password\"",
        )),
    }
}

/// The user `name` if `password` is theirs, within the bounds of
/// [`PasswordSignIns`]: the attempt is counted first, then the password is
/// checked when a check is free.
async fn password_principal(
    state: &Shared,
    name: &str,
    password: &str,
) -> Result<Principal, ApiError> {
    if name.len() > ensign_storage::MAX_USER_NAME_BYTES {
        // No user has such a name; nothing to count or check.
        return Err(rejected().await);
    }
    let guard = &state.password_sign_ins;
    guard.attempt(name, Instant::now())?;
    let check = tokio::time::timeout(CHECK_WAIT, Arc::clone(&guard.checks).acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "too many sign-ins are being checked at once; retry in a few seconds",
            )
        })?;
    // The check keeps its permit until its hash ends, even if this request
    // is abandoned before.
    let user = state
        .storage
        .verify_password_holding(name, password, check)
        .await?;
    match user {
        Some(user) => {
            guard.succeeded(name);
            Ok(Principal::User(user))
        }
        None => Err(rejected().await),
    }
}

/// Signs in with an API token or a user's name and password; sets the session
/// cookie.
#[utoipa::path(post, operation_id = "createSession", path = "/session", tag = "session",
    security(()), request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = Session,
        headers(("Set-Cookie" = String, description = "ensign_session=<secret>; HttpOnly; Secure; SameSite=Strict; Path=/"))),
        SignInErrors))]
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
    responses((status = 200, description = "The caller", body = Session), ReadErrors,
        (status = 429, description = "Too many wrong secrets from this address; retry after `Retry-After` seconds")))]
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
    security(()), responses((status = 204, description = "Signed out; the cookie is cleared"),
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
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// How much longer `name` is refused, if it is.
    fn locked(sign_ins: &PasswordSignIns, name: &str, now: Instant) -> Option<Duration> {
        let attempts = sign_ins.attempts.lock().unwrap();
        attempts.get(name).and_then(|a| a.locked(now))
    }

    #[test]
    fn names_with_many_attempts_in_a_row_are_refused_for_a_while() {
        let sign_ins = PasswordSignIns::default();
        let start = Instant::now();
        for _ in 0..LOCKOUT_AFTER - 1 {
            sign_ins.attempt("alice", start).unwrap();
        }
        assert_eq!(locked(&sign_ins, "alice", start), None);
        sign_ins.attempt("alice", start).unwrap();
        assert_eq!(locked(&sign_ins, "alice", start), Some(LOCKOUT));
        assert_eq!(
            sign_ins.attempt("alice", start),
            Err(Refusal::Locked(LOCKOUT))
        );
        assert_eq!(sign_ins.attempt("bob", start), Ok(()));
        assert_eq!(locked(&sign_ins, "alice", start + LOCKOUT), None);
        sign_ins.succeeded("alice");
        assert_eq!(locked(&sign_ins, "alice", start), None);
    }

    #[test]
    fn attempts_count_before_the_check_so_a_race_cannot_pass_the_lockout() {
        // Every attempt is counted when it starts: the ones still being
        // checked count too, and the one after the limit is refused.
        let sign_ins = PasswordSignIns::default();
        let start = Instant::now();
        let allowed = (0..3 * LOCKOUT_AFTER)
            .filter(|_| sign_ins.attempt("alice", start).is_ok())
            .count();
        assert_eq!(allowed, LOCKOUT_AFTER as usize);
    }

    #[test]
    fn attempts_are_forgotten_after_the_lockout() {
        let sign_ins = PasswordSignIns::default();
        let start = Instant::now();
        for _ in 0..LOCKOUT_AFTER - 1 {
            sign_ins.attempt("alice", start).unwrap();
        }
        sign_ins.attempt("alice", start + LOCKOUT).unwrap();
        assert_eq!(locked(&sign_ins, "alice", start + LOCKOUT), None);
    }

    #[test]
    fn many_new_names_do_not_unlock_a_locked_name() {
        let sign_ins = PasswordSignIns::default();
        let start = Instant::now();
        for _ in 0..LOCKOUT_AFTER {
            sign_ins.attempt("victim", start).unwrap();
        }
        // Far more new names than are remembered, all within the lockout.
        for i in 0..3 * MAX_TRACKED_NAMES {
            let now = start + Duration::from_millis(i as u64 / 100);
            sign_ins.attempt(&format!("sprayed-{i}"), now).unwrap();
            assert!(sign_ins.attempts.lock().unwrap().len() <= MAX_TRACKED_NAMES);
        }
        let later = start + Duration::from_secs(1);
        assert!(locked(&sign_ins, "victim", later).is_some());
        assert!(matches!(
            sign_ins.attempt("victim", later),
            Err(Refusal::Locked(_))
        ));
        // The newest names are remembered; the oldest unlocked ones went.
        let attempts = sign_ins.attempts.lock().unwrap();
        assert!(attempts.contains_key(&format!("sprayed-{}", 3 * MAX_TRACKED_NAMES - 1)));
        assert!(!attempts.contains_key("sprayed-0"));
    }

    #[test]
    fn new_names_are_refused_when_every_remembered_name_is_locked_out() {
        let sign_ins = PasswordSignIns::default();
        let start = Instant::now();
        {
            let mut attempts = sign_ins.attempts.lock().unwrap();
            for i in 0..MAX_TRACKED_NAMES {
                let locked_out = Attempts {
                    count: LOCKOUT_AFTER,
                    last: start,
                };
                attempts.insert(format!("locked-{i}"), locked_out);
            }
        }
        assert_eq!(sign_ins.attempt("new", start), Err(Refusal::Full));
        assert!(matches!(
            sign_ins.attempt("locked-7", start),
            Err(Refusal::Locked(_))
        ));
        // Once the lockouts end there is room again.
        assert_eq!(sign_ins.attempt("new", start + LOCKOUT), Ok(()));
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
