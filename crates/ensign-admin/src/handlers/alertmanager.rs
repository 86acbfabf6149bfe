//! `/integrations/alertmanager`: the Alertmanager webhook (payload version
//! 4) and its receiver tokens (admin only).
//!
//! The webhook has its own authentication and is outside the API token
//! middleware: `Authorization: Bearer <secret>` or Basic `<user>:<secret>`,
//! where the secret is `ENSIGN_ALERTMANAGER_TOKEN` (any user name) or a
//! receiver's secret (Basic: the user name must be the receiver's). API
//! tokens are refused here, and these secrets are refused everywhere else.
//! A refused call is 401 before the body is read, and changes nothing; wrong
//! secrets count against the client address (`auth::throttled`: 429 with
//! `Retry-After` past 10 a minute).
//!
//! A receiver may be limited to environments: its alerts act only on
//! targets there (an alert's own `ensign_environment` label and bindings
//! alike), and a resolved alert closes or schedules nothing elsewhere. Other
//! targets are answered `out_of_scope`, logged and audited
//! (`kill_switch.out_of_scope`), and left alone; the answer is still 200.
//!
//! The body is bounded ([`MAX_WEBHOOK_BODY`]); malformed JSON is 400, a
//! wrong shape or version 422. Each alert is handled in one transaction
//! (see the storage's kill switch); the answer is 200 once every alert is
//! committed, 503 when the database is unavailable (Alertmanager retries;
//! alerts already committed are then duplicates and act once).

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ensign_storage::{ActionOutcome, Alert, KillAction, StorageError};
use http::{HeaderMap, StatusCode};

use super::Shared;
use crate::auth::{Admin, ClientIp, same_secret, throttled};
use crate::error::{ApiError, ErrorCode, ReadErrors, WriteErrors};
use crate::extract::{JsonBody, PathParams, parse_json};
use crate::wire::kill_switch::{
    AlertmanagerPayload, CreatedReceiver, NewReceiver, Receiver, WebhookAction, WebhookAnswer,
};

/// The largest webhook body accepted, in bytes.
pub const MAX_WEBHOOK_BODY: usize = 256 * 1024;

/// The most alerts one notification may carry.
const MAX_ALERTS: usize = 1000;

/// The most labels one alert may carry.
const MAX_LABELS: usize = 128;

/// The longest fingerprint accepted.
const MAX_FINGERPRINT: usize = 128;

/// The secret and, for Basic, the user name of an `Authorization` header.
fn credentials(headers: &HeaderMap) -> Option<(Option<String>, String)> {
    let (scheme, rest) = ensign_http::authorization(headers)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| (None, rest.to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, secret) = text.split_once(':')?;
    (!secret.is_empty()).then(|| (Some(user.to_owned()), secret.to_owned()))
}

/// Who called the webhook.
#[derive(Debug)]
struct Sender {
    /// The receiver's name; `None`: the shared `ENSIGN_ALERTMANAGER_TOKEN`.
    receiver: Option<String>,
    /// The environments its alerts may act in (`None`: all).
    environments: Option<Vec<String>>,
}

/// Who the caller is, if it may call the webhook.
async fn sender(state: &Shared, headers: &HeaderMap) -> Result<Option<Sender>, StorageError> {
    let Some((user, secret)) = credentials(headers) else {
        return Ok(None);
    };
    if state
        .alertmanager_token
        .as_deref()
        .is_some_and(|token| same_secret(token, &secret))
    {
        return Ok(Some(Sender {
            receiver: None,
            environments: None,
        }));
    }
    let receiver = state.storage.verify_alertmanager_receiver(&secret).await?;
    Ok(receiver
        .filter(|r| user.is_none_or(|user| user == r.name))
        .map(|r| Sender {
            receiver: Some(r.name),
            environments: r.environments,
        }))
}

/// Parses an RFC 3339 time (`2026-11-29T18:00:00.123456789Z`, or with an
/// offset) into unix milliseconds.
fn rfc3339_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first_three: String = fraction[..digits]
            .chars()
            .chain("00".chars())
            .take(3)
            .collect();
        millis = first_three.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (number(text.len() - 5..text.len() - 3)? * 60
                + number(text.len() - 2..text.len())?)
        }
        _ => return None,
    };
    // Days since 1970-01-01 in the proleptic Gregorian calendar, counting
    // years from March so that the leap day is the last day of a year.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// The alerts of a payload, checked; 422 with the JSON Pointer of every
/// problem.
fn alerts_of(payload: AlertmanagerPayload, received_at: i64) -> Result<Vec<Alert>, ApiError> {
    let mut problems = Vec::new();
    let mut problem = |path: String, message: &str| {
        problems.push(crate::error::ProblemBody {
            path,
            message: message.to_owned(),
        });
    };
    if payload.version != "4" {
        problem(
            "/version".into(),
            "only Alertmanager webhook payload version \"4\" is understood",
        );
    }
    if payload.alerts.len() > MAX_ALERTS {
        problem("/alerts".into(), "at most 1000 alerts per notification");
    }
    let mut alerts = Vec::with_capacity(payload.alerts.len());
    for (i, alert) in payload.alerts.into_iter().enumerate().take(MAX_ALERTS) {
        if alert.fingerprint.is_empty() || alert.fingerprint.len() > MAX_FINGERPRINT {
            problem(
                format!("/alerts/{i}/fingerprint"),
                "use 1 to 128 characters",
            );
        }
        if alert.labels.len() > MAX_LABELS {
            problem(format!("/alerts/{i}/labels"), "at most 128 labels");
        }
        let Some(starts_at) = rfc3339_millis(&alert.starts_at) else {
            problem(format!("/alerts/{i}/startsAt"), "not an RFC 3339 time");
            continue;
        };
        alerts.push(Alert {
            fingerprint: alert.fingerprint,
            status: alert.status.into(),
            starts_at,
            labels: alert.labels,
            receiver: payload.receiver.clone(),
            received_at,
        });
    }
    if problems.is_empty() {
        Ok(alerts)
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// The `outcome` label of a webhook answer.
fn webhook_outcome(error: &ApiError) -> &'static str {
    match error.code() {
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::TooManyRequests => "throttled",
        ErrorCode::BadRequest | ErrorCode::Invalid => "bad_request",
        ErrorCode::PayloadTooLarge => "too_large",
        ErrorCode::Unavailable => "unavailable",
        _ => "error",
    }
}

/// Receives an Alertmanager notification: alerts labelled `ensign_flag` and
/// alerts matching kill-switch bindings act on flags, once per fingerprint,
/// status and start.
#[utoipa::path(post, operation_id = "alertmanagerWebhook", path = "/integrations/alertmanager",
    tag = "kill switch", security(("bearer" = []), ("basic" = [])),
    request_body = AlertmanagerPayload,
    responses((status = 200, description = "Every alert is recorded; what was done", body = WebhookAnswer),
        (status = 429, description = "Too many wrong secrets from this address; retry after `Retry-After` seconds"),
        WriteErrors))]
pub(crate) async fn webhook(
    state: Shared,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received_at = ensign_context::now_millis();
    match receive(&state, client, &headers, body, received_at).await {
        Ok(actions) => {
            state.metrics.count_webhook_request("ok");
            for action in &actions {
                let kind = action
                    .action
                    .as_deref()
                    .and_then(KillAction::parse)
                    .map_or("none", |a| a.kind());
                state
                    .metrics
                    .count_killswitch_action(kind, action.outcome.as_str());
            }
            let actions = actions.into_iter().map(WebhookAction::from).collect();
            Json(WebhookAnswer { actions }).into_response()
        }
        Err(error) => {
            state.metrics.count_webhook_request(webhook_outcome(&error));
            error.into_response()
        }
    }
}

async fn receive(
    state: &Shared,
    client: ClientIp,
    headers: &HeaderMap,
    body: Body,
    received_at: i64,
) -> Result<Vec<ensign_storage::AlertAction>, ApiError> {
    let check = async {
        sender(state, headers).await?.ok_or_else(|| {
            ApiError::unauthorized(
                "send ENSIGN_ALERTMANAGER_TOKEN or a receiver secret as Authorization: Bearer <secret> or Basic",
            )
        })
    };
    let sender = throttled(state, client, credentials(headers).is_some(), check).await?;
    let bytes = axum::body::to_bytes(body, MAX_WEBHOOK_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is over {MAX_WEBHOOK_BODY} bytes (or could not be read)"),
            )
        })?;
    let payload: AlertmanagerPayload = parse_json(&bytes)?;
    let alerts = alerts_of(payload, received_at)?;
    let mut actions = Vec::new();
    for alert in &alerts {
        let handled = state
            .storage
            .receive_alert_within(
                alert,
                &state.default_environment,
                sender.environments.as_deref(),
            )
            .await
            .map_err(|error| match error {
                // Humans kept changing the flag: transient, so Alertmanager
                // is told to retry (a 4xx would make it give up this flush).
                StorageError::VersionMismatch { .. } => ApiError::new(
                    ErrorCode::Unavailable,
                    "the flags kept changing while the alert was applied; retry",
                ),
                other => other.into(),
            })?;
        for action in &handled {
            if action.outcome == ActionOutcome::OutOfScope {
                tracing::warn!(
                    receiver = sender.receiver.as_deref().unwrap_or_default(),
                    fingerprint = %action.fingerprint,
                    environment = action.environment.as_deref().unwrap_or_default(),
                    flag = action.flag.as_deref().unwrap_or_default(),
                    "kill switch: an alert asked for an environment its receiver may not act in; nothing was done"
                );
            }
        }
        actions.extend(handled);
    }
    Ok(actions)
}

/// Every receiver, by name (without secrets).
#[utoipa::path(get, operation_id = "listAlertmanagerReceivers", path = "/integrations/alertmanager/receivers",
    tag = "kill switch",
    responses((status = 200, description = "The receivers", body = Vec<Receiver>), ReadErrors))]
pub(crate) async fn list_receivers(
    state: Shared,
    _admin: Admin,
) -> Result<Json<Vec<Receiver>>, ApiError> {
    let receivers = state.storage.alertmanager_receivers().await?;
    Ok(Json(receivers.into_iter().map(Into::into).collect()))
}

/// Creates a receiver, optionally limited to environments (an admin limited
/// to environments must limit it to some of its own). Its secret is in this
/// answer only; it is stored hashed.
#[utoipa::path(post, operation_id = "createAlertmanagerReceiver", path = "/integrations/alertmanager/receivers",
    tag = "kill switch", request_body = NewReceiver,
    responses((status = 201, description = "Created; the secret is shown this once", body = CreatedReceiver),
        WriteErrors))]
pub(crate) async fn create_receiver(
    state: Shared,
    Admin(writer): Admin,
    JsonBody(body): JsonBody<NewReceiver>,
) -> Result<Response, ApiError> {
    let actor = match (body.environments.as_deref(), writer.is_limited()) {
        (Some([first, rest @ ..]), true) => {
            for environment in rest {
                writer.in_environment(environment, None)?;
            }
            writer.in_environment(first, body.comment)?
        }
        _ => writer.everywhere(body.comment)?,
    };
    let (receiver, secret) = state
        .storage
        .create_alertmanager_receiver(&actor, &body.name, body.environments)
        .await?;
    let body = CreatedReceiver {
        receiver: receiver.into(),
        secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Deletes a receiver; its secret stops working at once.
#[utoipa::path(delete, operation_id = "deleteAlertmanagerReceiver",
    path = "/integrations/alertmanager/receivers/{name}", tag = "kill switch",
    params(("name" = String, Path, description = "The receiver name")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub(crate) async fn delete_receiver(
    state: Shared,
    PathParams(name): PathParams<String>,
    Admin(writer): Admin,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    state
        .storage
        .delete_alertmanager_receiver(&actor, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http::header;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_millis("2026-11-29T18:00:00.123456789Z"),
            Some(1_795_975_200_123)
        );
        assert_eq!(
            rfc3339_millis("2026-11-29T19:00:00.1+01:00"),
            Some(1_795_975_200_100)
        );
        assert_eq!(
            rfc3339_millis("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        assert_eq!(rfc3339_millis("2026-13-01T00:00:00Z"), None);
        assert_eq!(rfc3339_millis("2026-11-29 18:00"), None);
        assert_eq!(rfc3339_millis("2026-11-29T18:00:00.Z"), None);
        assert_eq!(rfc3339_millis("2026-11-29T18:00:00+0100"), None);
    }

    #[test]
    fn basic_and_bearer_credentials() {
        let mut headers = HeaderMap::new();
        assert_eq!(credentials(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(credentials(&headers), Some((None, "s3cret".to_owned())));
        let basic = base64::engine::general_purpose::STANDARD.encode("am:s3cret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert_eq!(
            credentials(&headers),
            Some((Some("am".to_owned()), "s3cret".to_owned()))
        );
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(credentials(&headers), None);
    }
}
