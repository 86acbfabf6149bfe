//! The OpenAPI document's frame (info, bearer security, tags, shared
//! schemas) and the handler serving the generated document. The paths come
//! from the handlers' `#[utoipa::path]` annotations as `routes.rs` registers
//! them, so the document cannot list a route the router lacks or miss one it
//! has.

use std::sync::Arc;

use axum::Extension;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, header};
use utoipa::Modify;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi, RefOr, Type};

use crate::error::{ApiError, ErrorBody, ErrorCode, ErrorDetail, ProblemBody, documented};

/// The frame the routes are added to.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Ensign admin API",
        description = "Manage environments, flag sets, segments, flags and API tokens; read the \
            audit log; import and export flagd documents. Send `Authorization: Bearer <token>`. \
            Single resources carry `ETag: \"<version>\"`; send it back as `If-Match` to make \
            a write conditional (412 when stale). Errors share one body shape."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "environments", description = "Deployment environments"),
        (name = "flag sets", description = "Flag sets (flagd flagSetId)"),
        (name = "segments", description = "Shared audience rules ($evaluators)"),
        (name = "flags", description = "Flags and their configuration per environment"),
        (name = "audit", description = "The append-only audit log"),
        (name = "documents", description = "flagd document import and export"),
        (name = "tokens", description = "API tokens (admin only)"),
        (name = "kill switch", description = "The SLO-linked kill switch: the Alertmanager webhook, \
            its receivers, bindings from alert labels to flag actions, per-flag status and restore"),
        (name = "slos", description = "SLOs (Sloth prometheus/v1 specs) and their status from Prometheus"),
        (name = "meta", description = "This document"),
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode, ProblemBody))
)]
pub(crate) struct Frame;

/// Adds the bearer security scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // The Alertmanager webhook also takes Basic `<receiver>:<secret>`.
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// What `If-Match` may be ([`IfMatch`](crate::extract::IfMatch) reads it):
/// `*`, or one ETag this API sent (a version of at most 18 digits, quoted).
pub(crate) const IF_MATCH_PATTERN: &str = r#"^(\*|"[0-9]{1,18}")$"#;

/// Every operation of `openapi`.
fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds the error responses of `codes` that `operation` does not list yet.
fn add_errors(operation: &mut Operation, codes: &[ErrorCode]) {
    for (status, response) in documented(codes) {
        operation
            .responses
            .responses
            .entry(status)
            .or_insert(response);
    }
}

/// Says what the authentication middleware enforces on the routes it guards:
/// 401 without valid credentials, 403 when the role, the environments or the
/// CSRF token do not allow the request, 429 while the client address is
/// throttled for wrong secrets.
pub(crate) fn describe_guard(openapi: &mut OpenApi) {
    for operation in operations(openapi) {
        add_errors(
            operation,
            &[
                ErrorCode::Unauthorized,
                ErrorCode::Forbidden,
                ErrorCode::TooManyRequests,
            ],
        );
    }
}

/// Says what the extractors and layers around every handler enforce, so the
/// annotations need not repeat it: an `If-Match` header has the shape
/// [`IF_MATCH_PATTERN`] (else 400) and a stale one is 412; a JSON body is
/// refused with 400 (not JSON), 413 (over the limit) or 422 (not the
/// documented shape); any request may meet 500 or 503.
pub(crate) fn describe_extractors(openapi: &mut OpenApi) {
    for operation in operations(openapi) {
        let mut conditional = false;
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && parameter.parameter_in == ParameterIn::Header
                && parameter.name.eq_ignore_ascii_case("if-match")
            {
                *parameter = if_match(parameter);
                conditional = true;
            }
        }
        if conditional {
            add_errors(
                operation,
                &[ErrorCode::BadRequest, ErrorCode::PreconditionFailed],
            );
        }
        if operation.request_body.is_some() {
            add_errors(
                operation,
                &[
                    ErrorCode::BadRequest,
                    ErrorCode::PayloadTooLarge,
                    ErrorCode::Invalid,
                ],
            );
        }
        add_errors(operation, &[ErrorCode::Internal, ErrorCode::Unavailable]);
    }
}

/// The `If-Match` parameter `parameter` with its pattern and an example.
fn if_match(parameter: &Parameter) -> Parameter {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(IF_MATCH_PATTERN))
        .description(Some(
            "`*`, or an ETag this API sent (`\"<version>\"`); without it the write applies \
             to the current version",
        ))
        .build();
    ParameterBuilder::from(parameter.clone())
        .schema(Some(schema))
        .example(Some("\"1\"".into()))
        .build()
}

/// The serialized document (empty if it could not be serialized).
#[derive(Debug, Clone)]
pub(crate) struct Document(pub Arc<Bytes>);

/// This OpenAPI document.
#[utoipa::path(get, operation_id = "getOpenApiDocument", path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI document of this API", body = Value)))]
pub(crate) async fn document(Extension(Document(bytes)): Extension<Document>) -> Response {
    if bytes.is_empty() {
        return ApiError::new(ErrorCode::Internal, "internal error").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Bytes::clone(&bytes),
    )
        .into_response()
}
