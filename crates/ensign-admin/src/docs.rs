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
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::error::{ApiError, ErrorBody, ErrorCode, ErrorDetail, ProblemBody};

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
