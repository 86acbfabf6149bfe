//! `/slos`: SLOs (Sloth `prometheus/v1` specs, one SLO each, named
//! `<service>-<slo>`) from `--slo` files (read-only: writes are 409) and from
//! the database (versioned, audited); and `/slos/{name}/status`, the SLO's
//! burn rates and budget read from Prometheus.
//!
//! The status route answers 2xx JSON with a `status` whatever Prometheus does
//! (`unreachable` when it cannot be asked or answers garbage, `no-data` when
//! the series are missing), because analysis tools (Argo Rollouts' web
//! provider) misread non-2xx or non-JSON answers. Only an SLO that does not
//! exist is a 404, so a misspelt name fails an analysis instead of passing
//! it; that 404 (and any other error of the route) carries
//! `"status": "unknown"` beside the usual error body. See ADR 0011.

use axum::Json;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ensign_engine::document::Format;
use ensign_slo::status::{Assessment, BurnRates, ErrorRatios};
use ensign_slo::window::all_windows;
use ensign_slo::{Spec, Status};
use ensign_storage::{StorageError, StoredSlo};
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Shared, versioned};
use crate::auth::Editor;
use crate::error::{ApiError, ErrorCode, ProblemBody, ReadErrors, WriteErrors};
use crate::extract::{IfMatch, PathParams, created, media_type, path_segment, tagged};
use crate::prometheus::Sample;
use crate::slos::FileSlo;

/// An SLO as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Slo {
    /// `<service>-<slo>` (the rules' `sloth_id`).
    pub name: String,
    /// The service.
    pub service: String,
    /// The SLO's name within the service.
    pub slo: String,
    /// The objective in percent.
    pub objective: f64,
    /// What the SLO promises.
    pub description: String,
    /// `file` (from `--slo`, read-only) or `api` (stored).
    pub source: String,
    /// The spec file, for file SLOs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Whether the API may change or delete it.
    pub read_only: bool,
    /// The Sloth spec holding this one SLO.
    #[schema(value_type = Object)]
    pub spec: Value,
    /// The stored version (`null` for file SLOs).
    pub version: Option<i64>,
    /// When the stored SLO last changed (unix milliseconds).
    pub updated_at: Option<i64>,
}

/// The status of an SLO (always answered 200, see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloStatus {
    /// The SLO.
    pub name: String,
    /// `ok`, `warning` (a ticket condition holds), `critical` (a page
    /// condition holds), `exhausted` (no budget left this period), `no-data`
    /// or `unreachable` (Prometheus could not be read).
    #[schema(value_type = String, example = "ok")]
    pub status: Status,
    /// The objective in percent.
    pub objective: f64,
    /// The error budget as a ratio (0.001 for 99.9 %).
    pub error_budget: f64,
    /// Burn rate (error ratio / budget) per window, `5m` … `3d` and the
    /// period `30d`; `null` without data.
    #[schema(value_type = Object)]
    pub burn_rates: BurnRates,
    /// The share of the period's budget left (1 untouched, ≤ 0 spent).
    pub error_budget_remaining: Option<f64>,
    /// The window scale the rules were generated with (1: real time).
    pub window_scale: u32,
    /// When Prometheus was asked (unix milliseconds).
    pub checked_at: i64,
    /// Why the status is `unreachable` or `no-data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An SLO found by name.
enum Found<'s> {
    File(&'s FileSlo),
    Stored(StoredSlo),
}

impl Found<'_> {
    fn spec(&self) -> Result<Spec, ApiError> {
        match self {
            Found::File(slo) => Ok(slo.spec().clone()),
            Found::Stored(slo) => ensign_slo::spec::from_value(&slo.spec)
                .map_err(|error| ApiError::internal(&format!("stored SLO {}: {error}", slo.name))),
        }
    }

    fn to_wire(&self) -> Result<Slo, ApiError> {
        let spec = self.spec()?;
        let Some(slo) = spec.slos.first() else {
            return Err(ApiError::internal(&"an SLO spec without its SLO"));
        };
        let (name, source, file, version, updated_at) = match self {
            Found::File(found) => (
                found.name().to_owned(),
                "file",
                Some(found.path().to_owned()),
                None,
                None,
            ),
            Found::Stored(found) => (
                found.name.clone(),
                "api",
                None,
                Some(found.version),
                Some(found.updated_at),
            ),
        };
        Ok(Slo {
            name,
            service: spec.service.clone(),
            slo: slo.name.clone(),
            objective: slo.objective,
            description: slo.description.clone(),
            source: source.to_owned(),
            read_only: file.is_some(),
            file,
            spec: spec.to_value(),
            version,
            updated_at,
        })
    }
}

async fn find<'s>(state: &'s Shared, name: &str) -> Result<Found<'s>, ApiError> {
    if let Some(file) = state.slos.file(name) {
        return Ok(Found::File(file));
    }
    Ok(Found::Stored(state.storage.slo(name).await?))
}

/// A 409 for a write to a file SLO.
fn read_only(file: &FileSlo) -> ApiError {
    ApiError::conflict(format!(
        "SLO \"{}\" comes from the spec file {} given to --slo; change the file instead",
        file.name(),
        file.path()
    ))
}

/// Every SLO: the file SLOs, then the stored ones (by name; a stored SLO a
/// file SLO shadows is left out).
#[utoipa::path(get, operation_id = "listSlos", path = "/slos", tag = "slos",
    responses((status = 200, description = "The SLOs", body = Vec<Slo>), ReadErrors))]
pub(crate) async fn list(state: Shared) -> Result<Json<Vec<Slo>>, ApiError> {
    let mut slos = Vec::new();
    for file in &state.slos.files {
        slos.push(Found::File(file).to_wire()?);
    }
    for stored in state.storage.slos().await? {
        if state.slos.file(&stored.name).is_none() {
            slos.push(Found::Stored(stored).to_wire()?);
        }
    }
    Ok(Json(slos))
}

/// One SLO (stored SLOs with their `ETag`).
#[utoipa::path(get, operation_id = "getSlo", path = "/slos/{name}", tag = "slos",
    params(("name" = String, Path, description = "`<service>-<slo>`", example = "checkout-availability")),
    responses((status = 200, description = "The SLO", body = Slo,
        headers(("ETag" = String, description = "The version (stored SLOs)"))), ReadErrors))]
pub(crate) async fn read(
    state: Shared,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    let found = find(&state, &name).await?;
    let body = found.to_wire()?;
    Ok(match body.version {
        Some(version) => tagged(version, body),
        None => Json(body).into_response(),
    })
}

/// The format of an SLO body: JSON when sent as JSON (`application/json`,
/// `...+json`), YAML when sent as YAML; without either, JSON when it starts
/// with `{`, else YAML.
fn spec_format(headers: &HeaderMap, text: &str) -> Format {
    match media_type(headers).as_deref() {
        Some(media) if media == "application/json" || media.ends_with("+json") => Format::Json,
        Some(media) if media.ends_with("yaml") => Format::Yaml,
        _ if text.trim_start().starts_with('{') => Format::Json,
        _ => Format::Yaml,
    }
}

/// Creates a stored SLO (201) or replaces it (200; send `If-Match` with its
/// ETag, else 409). The body is a Sloth `prometheus/v1` spec, JSON or YAML
/// (see [`spec_format`]), holding exactly the SLO `name` names; 409 for a
/// file SLO.
#[utoipa::path(put, operation_id = "putSlo", path = "/slos/{name}", tag = "slos",
    params(("name" = String, Path, description = "`<service>-<slo>`", example = "checkout-availability"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the SLO to replace")),
    request_body(content = Object, description = "A Sloth prometheus/v1 spec with this one SLO: JSON (application/json, or a body starting with `{`) or YAML (application/yaml)",
        content_type = "application/json",
        example = json!({"version": "prometheus/v1", "service": "checkout", "slos": [{
            "name": "availability", "objective": 99.9,
            "sli": {"events": {
                "error_query": "sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))",
                "total_query": "sum(rate(http_requests_total[{{.window}}]))"}},
            "alerting": {"name": "CheckoutAvailability"}}]})),
    responses(
        (status = 200, description = "Replaced", body = Slo, headers(("ETag" = String, description = "The new version"))),
        (status = 201, description = "Created", body = Slo, headers(("ETag" = String, description = "The version"))),
        WriteErrors))]
pub(crate) async fn put(
    state: Shared,
    PathParams(name): PathParams<String>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    if let Some(file) = state.slos.file(&name) {
        return Err(read_only(file));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let spec = ensign_slo::spec::parse_as(text, spec_format(&headers, text)).map_err(|error| {
        ApiError::invalid(
            error
                .problems
                .into_iter()
                .map(|p| ProblemBody {
                    path: p.path,
                    message: p.message,
                })
                .collect(),
        )
    })?;
    if if_match.is_some() {
        // If-Match names a current version: it cannot create.
        match state.storage.slo(&name).await {
            Err(StorageError::NotFound(what)) => {
                return Err(ApiError::new(
                    ErrorCode::PreconditionFailed,
                    format!("{what} does not exist; create it without If-Match"),
                ));
            }
            Err(other) => return Err(other.into()),
            Ok(_) => {}
        }
    }
    let stored = state
        .storage
        .put_slo(&actor, &name, &spec, if_match)
        .await
        .map_err(|error| match error {
            StorageError::Conflict(what) => ApiError::conflict(format!(
                "{what} already exists; send If-Match with its ETag to replace it"
            )),
            other => other.into(),
        })?;
    let version = stored.version;
    let body = Found::Stored(stored).to_wire()?;
    if version == 1 {
        Ok(created(
            version,
            &format!("/api/v1/slos/{}", path_segment(&name)),
            body,
        ))
    } else {
        Ok(tagged(version, body))
    }
}

/// Deletes a stored SLO (409 for a file SLO).
#[utoipa::path(delete, operation_id = "deleteSlo", path = "/slos/{name}", tag = "slos",
    params(("name" = String, Path, description = "`<service>-<slo>`", example = "checkout-availability"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on")),
    responses((status = 204, description = "Deleted"), WriteErrors))]
pub(crate) async fn delete(
    state: Shared,
    PathParams(name): PathParams<String>,
    IfMatch(if_match): IfMatch,
    Editor(writer): Editor,
) -> Result<Response, ApiError> {
    let actor = writer.everywhere(None)?;
    if let Some(file) = state.slos.file(&name) {
        return Err(read_only(file));
    }
    versioned(if_match, || {
        state.storage.delete_slo(&actor, &name, if_match)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The SLO's status from Prometheus: burn rate per window, budget left, and
/// `status`. Always 200 with JSON but for an unknown SLO (404, with
/// `"status": "unknown"`).
#[utoipa::path(get, operation_id = "getSloStatus", path = "/slos/{name}/status", tag = "slos",
    params(("name" = String, Path, description = "`<service>-<slo>`", example = "checkout-availability")),
    responses((status = 200, description = "The status, also when Prometheus cannot be read", body = SloStatus),
        ReadErrors))]
pub(crate) async fn status(state: Shared, PathParams(name): PathParams<String>) -> Response {
    match assess(&state, &name).await {
        Ok(status) => Json(status).into_response(),
        Err(error) => {
            let mut body = serde_json::to_value(error.body()).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut body {
                map.insert("status".to_owned(), Value::from("unknown"));
            }
            (error.code().status(), Json(body)).into_response()
        }
    }
}

/// The instant query for every recorded error ratio of SLO `id`.
fn ratios_query(id: &str) -> String {
    let windows: Vec<&str> = all_windows().map(|w| w.name).collect();
    format!(
        "{{__name__=~\"{PREFIX}({})\", sloth_id=\"{}\"}}",
        windows.join("|"),
        id.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

/// The prefix of the recorded error ratios' names.
const PREFIX: &str = "slo:sli_error:ratio_rate";

async fn assess(state: &Shared, name: &str) -> Result<SloStatus, ApiError> {
    let spec = find(state, name).await?.spec()?;
    let Some(slo) = spec.slos.first() else {
        return Err(ApiError::internal(&"an SLO spec without its SLO"));
    };
    let budget = slo.error_budget();
    let checked_at = ensign_context::now_millis();
    let (assessment, message) = match &state.slos.prometheus {
        None => (
            unreachable(budget),
            Some("no Prometheus is configured (ensign serve --prometheus-url)".to_owned()),
        ),
        Some(prometheus) => match prometheus.query(&ratios_query(name)).await {
            Err(error) => (unreachable(budget), Some(error.to_string())),
            Ok(samples) => {
                let assessment = ensign_slo::assess(budget, &worst_ratios(samples));
                let message = (assessment.status == Status::NoData).then(|| {
                    format!(
                        "Prometheus at {} has no error ratios of {name} (are the rules of \
                         `ensign slo rules` loaded, and is there traffic?)",
                        prometheus.url()
                    )
                });
                (assessment, message)
            }
        },
    };
    Ok(SloStatus {
        name: name.to_owned(),
        status: assessment.status,
        objective: slo.objective,
        error_budget: budget,
        burn_rates: assessment.burn_rates,
        error_budget_remaining: assessment.error_budget_remaining,
        window_scale: state.slos.window_scale.get(),
        checked_at,
        message,
    })
}

/// The error ratio per window of the recorded series: with several series for
/// a window (a query grouped by region) the worst counts; NaN (no traffic)
/// only when no series of the window has a number.
fn worst_ratios(samples: Vec<Sample>) -> ErrorRatios {
    let mut ratios = ErrorRatios::new();
    for sample in samples {
        let Some(window) = sample
            .labels
            .get("__name__")
            .and_then(|n| n.strip_prefix(PREFIX))
        else {
            continue;
        };
        let ratio = ratios.entry(window.to_owned()).or_insert(f64::NAN);
        if sample.value.is_finite() && (ratio.is_nan() || sample.value > *ratio) {
            *ratio = sample.value;
        }
    }
    ratios
}

/// An assessment without data, marked `unreachable`.
fn unreachable(budget: f64) -> Assessment {
    Assessment {
        status: Status::Unreachable,
        ..ensign_slo::assess(budget, &ErrorRatios::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, region: &str, value: f64) -> Sample {
        Sample {
            labels: [("__name__", name), ("region", region)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            value,
        }
    }

    #[test]
    fn the_worst_series_of_a_window_counts() {
        let ratios = worst_ratios(vec![
            sample("slo:sli_error:ratio_rate5m", "eu", 0.001),
            sample("slo:sli_error:ratio_rate5m", "us", f64::NAN),
            sample("slo:sli_error:ratio_rate5m", "ap", 0.02),
            sample("slo:sli_error:ratio_rate1h", "eu", f64::NAN),
            sample("slo:sli_error:ratio_rate1h", "us", 0.0),
            sample("slo:sli_error:ratio_rate3d", "eu", f64::NAN),
            sample("up", "eu", 1.0),
        ]);
        assert_eq!(ratios.get("5m"), Some(&0.02));
        assert_eq!(ratios.get("1h"), Some(&0.0));
        assert!(ratios["3d"].is_nan());
        assert_eq!(ratios.len(), 3);
    }

    #[test]
    fn the_query_selects_every_window_of_one_slo() {
        assert_eq!(
            ratios_query("checkout-availability"),
            "{__name__=~\"slo:sli_error:ratio_rate(5m|30m|1h|2h|6h|1d|3d|30d)\", \
             sloth_id=\"checkout-availability\"}"
        );
    }
}
