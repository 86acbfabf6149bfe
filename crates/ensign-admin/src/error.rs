//! The one error body of the admin API, and where every failure becomes it:
//!
//! ```json
//! {"error": {"code": "invalid", "message": "...", "problems": [{"path": "/variants", "message": "..."}]}}
//! ```
//!
//! `problems` appears only on 422 (and on 400 when a query parameter is at
//! fault). Storage errors map here and nowhere else; a 500 says only "internal
//! error" and a 503 only that the database is unavailable, with the details in
//! the log.

use axum::response::{IntoResponse, Response};
use ensign_storage::StorageError;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::openapi::{Content, Ref, RefOr};

/// What kind of failure an error is; each code has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed (bad JSON syntax, bad header, bad query).
    BadRequest,
    /// 401: no valid bearer token or session.
    Unauthorized,
    /// 403: the token's role or environments do not allow this.
    Forbidden,
    /// 404: the resource (or route) does not exist.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the resource exists already, or is not in a state that allows this.
    Conflict,
    /// 412: `If-Match` names a version that is no longer current.
    PreconditionFailed,
    /// 413: the request body is over the limit.
    PayloadTooLarge,
    /// 422: the input is invalid; `problems` lists every problem.
    Invalid,
    /// 429: too many failed sign-ins, or wrong secrets from this address;
    /// retry later (`Retry-After` says when, where known).
    TooManyRequests,
    /// 500: something failed inside; details are in the server log.
    Internal,
    /// 503: the database cannot be reached, or too many password sign-ins
    /// are being checked; retry later.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// One problem with the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemBody {
    /// JSON Pointer into the request body (`""`: the whole body).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The error body of every failed request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The kind of failure.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// Every problem with the input (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemBody>,
}

/// A failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    problems: Vec<ProblemBody>,
    /// `Retry-After` of a 429, in seconds.
    retry_after: Option<u64>,
}

/// The message of a 422.
fn problem_count(n: usize) -> String {
    match n {
        1 => "the input has 1 problem".to_owned(),
        n => format!("the input has {n} problems"),
    }
}

/// The message of every 500.
const INTERNAL_MESSAGE: &str = "internal error";
/// The message of every 503.
const UNAVAILABLE_MESSAGE: &str = "the database is unavailable; retry later";

impl ApiError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            problems: Vec::new(),
            retry_after: None,
        }
    }

    /// 429 with `Retry-After`: the client address sent too many wrong secrets.
    pub fn throttled(throttled: ensign_http::Throttled) -> Self {
        ApiError {
            retry_after: Some(throttled.retry_after.as_secs()),
            ..ApiError::new(
                ErrorCode::TooManyRequests,
                "too many wrong tokens from this address; retry after the Retry-After seconds",
            )
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Unauthorized, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// 500, after logging `detail`.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "admin request failed");
        ApiError::new(ErrorCode::Internal, INTERNAL_MESSAGE)
    }

    /// 422 with `problems` (each a JSON Pointer and a message).
    pub fn invalid(problems: Vec<ProblemBody>) -> Self {
        ApiError {
            code: ErrorCode::Invalid,
            message: problem_count(problems.len()),
            problems,
            retry_after: None,
        }
    }

    /// 422 with one problem.
    pub fn invalid_at(path: &str, message: impl Into<String>) -> Self {
        ApiError::invalid(vec![ProblemBody {
            path: path.to_owned(),
            message: message.into(),
        }])
    }

    /// The kind of failure.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The problems (422 only).
    pub fn problems(&self) -> &[ProblemBody] {
        &self.problems
    }

    /// Rewrites the problems' paths (storage reports some relative to its
    /// model; handlers point them into their request body). Problems that end
    /// up identical are reported once.
    pub fn map_paths(mut self, rewrite: impl Fn(&str) -> String) -> Self {
        let mut seen = Vec::with_capacity(self.problems.len());
        for problem in self.problems {
            let problem = ProblemBody {
                path: rewrite(&problem.path),
                message: problem.message,
            };
            if !seen.contains(&problem) {
                seen.push(problem);
            }
        }
        if self.code == ErrorCode::Invalid {
            self.message = problem_count(seen.len());
        }
        self.problems = seen;
        self
    }

    /// The body this error is sent with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                problems: self.problems.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.status(), self.message)
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StorageError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            mismatch @ StorageError::VersionMismatch { .. } => ApiError::new(
                ErrorCode::PreconditionFailed,
                format!("{mismatch}; read it again and retry with its current ETag"),
            ),
            shared @ StorageError::Shared(_) => ApiError::forbidden(shared.to_string()),
            StorageError::Invalid(problems) => ApiError::invalid(
                problems
                    .into_iter()
                    .map(|p| ProblemBody {
                        path: p.path,
                        message: p.message,
                    })
                    .collect(),
            ),
            StorageError::Unavailable(source) => {
                tracing::warn!(error = %source, "admin request failed: the database is unavailable");
                ApiError::new(ErrorCode::Unavailable, UNAVAILABLE_MESSAGE)
            }
            StorageError::Internal(source) => ApiError::internal(&source),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self.code {
            ErrorCode::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ErrorCode::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ErrorCode::TooManyRequests => {
                if let Some(seconds) = self.retry_after {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
            }
            _ => {}
        }
        response
    }
}

/// The answer to a path no route matches.
pub(crate) async fn no_route(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// The answer to a method a route does not have.
pub(crate) async fn no_method(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not answer {method}", uri.path()),
    )
}

/// OpenAPI responses of the error codes a route can answer with, each with the
/// [`ErrorBody`] schema.
pub(crate) fn documented(
    codes: &[ErrorCode],
) -> std::collections::BTreeMap<String, RefOr<ResponseDoc>> {
    codes
        .iter()
        .map(|code| {
            let description = match code {
                ErrorCode::BadRequest => "Malformed request (JSON syntax, header or query)",
                ErrorCode::Unauthorized => "No valid bearer token or session",
                ErrorCode::Forbidden => "The token's role or environments do not allow this",
                ErrorCode::NotFound => "No such resource",
                ErrorCode::MethodNotAllowed => "No such method",
                ErrorCode::Conflict => "The resource exists already or is in the wrong state",
                ErrorCode::PreconditionFailed => "If-Match names a stale version",
                ErrorCode::PayloadTooLarge => "The request body is over the limit",
                ErrorCode::Invalid => "Invalid input: every problem with its JSON Pointer",
                ErrorCode::TooManyRequests => "Too many sign-ins; retry later",
                ErrorCode::Internal => "Internal error",
                ErrorCode::Unavailable => "The database is unavailable; retry later",
            };
            let response = utoipa::openapi::ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build();
            (code.status().as_u16().to_string(), RefOr::T(response))
        })
        .collect()
}

/// The errors a read can answer with (documentation only).
pub(crate) struct ReadErrors;

impl utoipa::IntoResponses for ReadErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<ResponseDoc>> {
        documented(&[
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ])
    }
}

/// The errors a write can answer with (documentation only).
pub(crate) struct WriteErrors;

impl utoipa::IntoResponses for WriteErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<ResponseDoc>> {
        documented(&[
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PreconditionFailed,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Invalid,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ])
    }
}

/// The errors a password or token sign-in can answer with (documentation only):
/// 401 for wrong credentials, 429 while a name is locked out, 503 when the
/// database (or the password check) cannot answer now.
pub(crate) struct SignInErrors;

impl utoipa::IntoResponses for SignInErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<ResponseDoc>> {
        documented(&[
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Invalid,
            ErrorCode::TooManyRequests,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_one_code_each_without_internals() {
        let secret_detail = || sqlx::Error::Protocol("password=hunter2 at db.internal:5432".into());
        let cases = [
            (
                StorageError::NotFound("flag \"a/b\"".into()),
                ErrorCode::NotFound,
            ),
            (
                StorageError::Conflict("flag set \"web\"".into()),
                ErrorCode::Conflict,
            ),
            (
                StorageError::VersionMismatch {
                    resource: "flag \"a/b\"".into(),
                    current: 3,
                    expected: 2,
                },
                ErrorCode::PreconditionFailed,
            ),
            (StorageError::invalid("/key", "bad"), ErrorCode::Invalid),
            (
                StorageError::Unavailable(secret_detail()),
                ErrorCode::Unavailable,
            ),
            (StorageError::Internal(secret_detail()), ErrorCode::Internal),
        ];
        for (storage, code) in cases {
            let error = ApiError::from(storage);
            assert_eq!(error.code(), code);
            let body = serde_json::to_string(&error.body()).unwrap_or_default();
            assert!(!body.contains("hunter2"), "{body}");
        }
        let internal = ApiError::from(StorageError::Internal(secret_detail()));
        assert_eq!(internal.body().error.message, "internal error");
        assert_eq!(internal.code().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn rewritten_problem_paths_are_reported_once() {
        let problem = |path: &str| ProblemBody {
            path: path.to_owned(),
            message: "names no variant".to_owned(),
        };
        let error = ApiError::invalid(vec![
            problem("/environments/staging/defaultVariant"),
            problem("/environments/production/defaultVariant"),
        ])
        .map_paths(|p| {
            p.rsplit_once('/')
                .map(|(_, last)| format!("/{last}"))
                .unwrap_or_default()
        });
        assert_eq!(error.problems(), [problem("/defaultVariant")]);
        assert_eq!(error.body().error.message, "the input has 1 problem");
    }
}
