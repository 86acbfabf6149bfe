//! Trying a flag out in the editor, writing nothing:
//!
//! - `POST /flags/{set}/{key}/environments/{env}/evaluate` evaluates the flag
//!   as stored now, with the engine and the flag set's segments, for a
//!   context: the answer OFREP serves once the change has propagated (static
//!   and header context of `ensign serve` aside), with an explanation that
//!   shows how every `fractional` reached placed the context;
//! - `POST /flags/{set}/{key}/environments/{env}/validate` checks a
//!   configuration (the `PUT` body) exactly as the `PUT` does, and reports every
//!   problem with its pointer instead of refusing; a body that is not the
//!   `PUT`'s shape at all is refused as the `PUT` refuses it (400 / 422).
//!
//! Both are reads: viewers may call them.

use axum::Json;
use ensign_engine::document::{Limits, Severity, load_value};
use ensign_engine::{Context, FlagState, Reason};
use serde_json::Value;

use super::{Shared, strip_environment};
use crate::auth::Caller;
use crate::error::{ApiError, ReadErrors};
use crate::extract::{JsonBody, PathParams};
use crate::wire::{
    EvaluateRequest, Evaluation, ExplanationStep, FlagConfigPut, FractionalStep, ProblemSeverity,
    Validation, ValidationProblem,
};

/// Whether a rule holds a `fractional` anywhere.
fn mentions_fractional(rule: &Value) -> bool {
    let mut pending = vec![rule];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if map.contains_key("fractional") {
                    return true;
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    false
}

/// Evaluates the flag as stored now in one environment for a context, and
/// explains the answer.
#[utoipa::path(post, operation_id = "evaluateFlag", path = "/flags/{set}/{key}/environments/{env}/evaluate", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("env" = String, Path, description = "The environment key", example = "production")),
    request_body = EvaluateRequest,
    responses((status = 200, description = "The answer and how it came about", body = Evaluation), ReadErrors))]
pub(crate) async fn evaluate(
    state: Shared,
    PathParams((set, key, env)): PathParams<(String, String, String)>,
    _caller: Caller,
    JsonBody(body): JsonBody<EvaluateRequest>,
) -> Result<Json<Evaluation>, ApiError> {
    let document = state.storage.flag_document(&env, &set, &key).await?;
    let loaded =
        load_value(&document, &Limits::default()).map_err(|error| ApiError::internal(&error))?;
    let Some(flag) = loaded.document.flags.iter().find(|f| f.key() == key) else {
        let message = format!("flag \"{set}/{key}\" is archived: it is not served");
        return Ok(Json(Evaluation {
            value: None,
            variant: None,
            reason: Reason::Error.as_str().to_owned(),
            error_code: Some(ensign_engine::ErrorCode::FlagNotFound.as_str().to_owned()),
            error_message: Some(message.clone()),
            explanation: vec![ExplanationStep::Text(message)],
        }));
    };
    let now = ensign_context::now();
    let context: Context = body.context;
    let (resolution, traces) = flag.explain(&context, now, &state.evaluation);
    let default = match flag.default_variant() {
        Some(variant) => format!("the default variant \"{variant}\" is served"),
        None => "there is no default variant: the application's code default applies".to_owned(),
    };
    let mut explanation = Vec::new();
    let mut say = |text: String| explanation.push(ExplanationStep::Text(text));
    if flag.state() == FlagState::Disabled {
        say(format!(
            "The flag is DISABLED in \"{env}\": no rule runs and the application's code default applies."
        ));
    } else if let Some(error) = flag.targeting_error() {
        say(format!(
            "The targeting rule is invalid ({error}): every evaluation is an error."
        ));
    } else if resolution.reason == Reason::Static {
        say(format!("The flag has no targeting rule: {default}."));
    } else {
        say("The flag is ENABLED: its targeting rule runs on the context.".to_owned());
        let rule = flag.definition().get("targeting").unwrap_or(&Value::Null);
        if traces.is_empty() && mentions_fractional(rule) {
            say(
                "No fractional reached placed the context (a fractional needs a targetingKey or its bucketing value)."
                    .to_owned(),
            );
        }
    }
    explanation.extend(
        traces
            .into_iter()
            .map(|trace| ExplanationStep::Fractional(FractionalStep::from(trace))),
    );
    let mut say = |text: String| explanation.push(ExplanationStep::Text(text));
    match (resolution.reason, resolution.variant, &resolution.error) {
        (Reason::TargetingMatch, Some(variant), _) => {
            say(format!(
                "The rule chose \"{variant}\": that variant is served."
            ));
        }
        (Reason::Default, _, None) if flag.state() == FlagState::Enabled => {
            say(format!("The rule chose no variant (null): {default}."));
        }
        (_, _, Some(error)) if flag.targeting_error().is_none() => {
            say(format!("The evaluation failed: {}.", error.message));
        }
        _ => {}
    }
    Ok(Json(Evaluation {
        value: resolution.value.map(ensign_engine::FlagValue::to_json),
        variant: resolution.variant.map(str::to_owned),
        reason: resolution.reason.as_str().to_owned(),
        error_code: resolution
            .error
            .as_ref()
            .map(|e| e.code.as_str().to_owned()),
        error_message: resolution.error.as_ref().map(|e| e.message.to_string()),
        explanation,
    }))
}

/// Checks a configuration exactly as `PUT .../environments/{env}` would,
/// writing nothing: 200 with every problem of a configuration of the right
/// shape; a body of another shape is 422, as for the `PUT`.
#[utoipa::path(post, operation_id = "validateFlagConfig", path = "/flags/{set}/{key}/environments/{env}/validate", tag = "flags",
    params(("set" = String, Path, description = "The flag set key", example = "web"),
        ("key" = String, Path, description = "The flag key", example = "banner"),
        ("env" = String, Path, description = "The environment key", example = "production")),
    request_body = FlagConfigPut,
    responses((status = 200, description = "Whether the PUT would accept it, and every problem", body = Validation), ReadErrors))]
pub(crate) async fn validate(
    state: Shared,
    PathParams((set, key, env)): PathParams<(String, String, String)>,
    _caller: Caller,
    JsonBody(body): JsonBody<FlagConfigPut>,
) -> Result<Json<Validation>, ApiError> {
    let (config, _) = body.split();
    let problems: Vec<ValidationProblem> = state
        .storage
        .validate_flag_config(&set, &key, &env, &config)
        .await?
        .into_iter()
        .map(|problem| ValidationProblem {
            pointer: strip_environment(&problem.path, &env),
            message: problem.message,
            severity: match problem.severity {
                Severity::Error => ProblemSeverity::Error,
                Severity::Warning => ProblemSeverity::Warning,
            },
        })
        .collect();
    let valid = !problems
        .iter()
        .any(|p| p.severity == ProblemSeverity::Error);
    Ok(Json(Validation { valid, problems }))
}
