//! Request extraction and versioned responses, all failing with the one error
//! body:
//!
//! - [`JsonBody`]: a JSON body within [`MAX_REQUEST_BODY`](crate::MAX_REQUEST_BODY);
//!   bad syntax is 400, a value of the wrong shape 422 with its JSON Pointer
//!   ([`BodyBytes`]: the same body unparsed);
//! - [`Params`]: query parameters (400 when they do not parse);
//! - [`PathParams`]: percent-decoded path segments (400 when not UTF-8);
//! - [`IfMatch`]: `If-Match: "<version>"` (400 when malformed);
//! - [`tagged`] / [`created`]: JSON answers with `ETag: "<version>"`;
//! - [`media_type`]: the body's `Content-Type` without its parameters.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The media type of a request body: its `Content-Type` without parameters,
/// in lowercase (`application/json`), if it has one.
pub(crate) fn media_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
}

/// A JSON request body deserialized into `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let BodyBytes(bytes) = BodyBytes::from_request(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A request body within [`MAX_REQUEST_BODY`](crate::MAX_REQUEST_BODY), not
/// yet parsed.
#[derive(Debug)]
pub(crate) struct BodyBytes(pub Bytes);

impl<S> FromRequest<S> for BodyBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("the request body is over {} bytes", crate::MAX_REQUEST_BODY),
                    )
                } else {
                    ApiError::bad_request(format!(
                        "the request body could not be read: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        Ok(BodyBytes(bytes))
    }
}

/// Parses a JSON body: syntax errors (the whole body is checked first) are
/// 400, shape errors 422 with the JSON Pointer of the offending value.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON request body is required"));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(format!("the request body is not valid JSON: {error}"))
    })?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = pointer(error.path());
        shape_problem(path, &error.into_inner())
    })
}

/// A 422 for a value of the wrong shape at `path`; a missing field is reported
/// at the field's own path.
fn shape_problem(path: String, error: &serde_json::Error) -> ApiError {
    let text = error.to_string();
    // serde_json appends the position; the pointer says where already.
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return ApiError::invalid_at(&format!("{path}/{}", escape(field)), "is required");
    }
    ApiError::invalid_at(&path, message)
}

/// A JSON Pointer segment with `~` and `/` escaped (RFC 6901).
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The JSON Pointer of a serde path.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&escape(key));
            }
            Segment::Enum { variant } => {
                pointer.push('/');
                pointer.push_str(&escape(variant));
            }
            Segment::Unknown => pointer.push_str("/?"),
        }
    }
    pointer
}

/// Query parameters deserialized into `T`.
#[derive(Debug)]
pub(crate) struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Params(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Path parameters deserialized into `T`.
#[derive(Debug)]
pub(crate) struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// The most digits of a version in `If-Match` (every 18-digit number fits an
/// `i64`; the OpenAPI document's pattern says the same).
const MAX_VERSION_DIGITS: usize = 18;

/// The version an `If-Match` header names; `None` without the header (or with
/// `*`), so the write applies to whatever version is current.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let Some(value) = values.next() else {
            return Ok(IfMatch(None));
        };
        let malformed = || {
            ApiError::bad_request(
                "If-Match must be one ETag this API sent, like \"3\" (or *)".to_owned(),
            )
        };
        if values.next().is_some() {
            return Err(malformed());
        }
        let text = value.to_str().map_err(|_| malformed())?.trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        text.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|digits| {
                (1..=MAX_VERSION_DIGITS).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|digits| digits.parse::<i64>().ok())
            .map(|version| IfMatch(Some(version)))
            .ok_or_else(malformed)
    }
}

/// The `ETag` of `version`.
pub(crate) fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// 200 with `body` and its `ETag`.
pub(crate) fn tagged<T: Serialize>(version: i64, body: T) -> Response {
    ([(header::ETAG, etag(version))], axum::Json(body)).into_response()
}

/// 201 with `body`, its `ETag` and its `Location`.
pub(crate) fn created<T: Serialize>(version: i64, location: &str, body: T) -> Response {
    let mut response = (StatusCode::CREATED, tagged(version, body)).into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A URL path segment with everything but unreserved characters
/// percent-encoded (for `Location` headers).
pub(crate) fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
