//! The Connect protocol on the evaluation port: unary RPCs with JSON or binary
//! protobuf bodies, and the server-streaming `EventStream` with Connect
//! envelopes (as `@openfeature/flagd-web-provider` uses it).
//!
//! JSON follows the protobuf JSON mapping as flagd emits it: lowerCamelCase
//! names, unpopulated plain fields emitted, unset optional fields omitted,
//! 64-bit integers as strings.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use ensign_engine::RequestedType;
use ensign_proto::{evaluation_v1 as v1, evaluation_v2 as v2, schema_v1};
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use prost::Message;
use serde_json::{Map, Value, json};
use tokio_stream::wrappers::ReceiverStream;

use crate::FlagdState;
use crate::events::Event;
use crate::outcome::{self, ApiVersion, FlagOutcome, Outcome, TypedValue};
use crate::status::{ApiError, Code};
use ensign_proto::convert::struct_to_json;

/// The message codec a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Json,
    Proto,
}

/// The procedures of an evaluation service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Resolve(RequestedType),
    ResolveAll,
    EventStream,
}

impl Method {
    fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "ResolveBoolean" => Method::Resolve(RequestedType::Boolean),
            "ResolveString" => Method::Resolve(RequestedType::String),
            "ResolveFloat" => Method::Resolve(RequestedType::Float),
            "ResolveInt" => Method::Resolve(RequestedType::Integer),
            "ResolveObject" => Method::Resolve(RequestedType::Object),
            "ResolveAll" => Method::ResolveAll,
            "EventStream" => Method::EventStream,
            _ => return None,
        })
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `application/json`, `application/proto`, optionally with parameters.
fn unary_codec(content_type: &str) -> Option<Codec> {
    match content_type.split(';').next().map(str::trim) {
        Some("application/json") => Some(Codec::Json),
        Some("application/proto") => Some(Codec::Proto),
        _ => None,
    }
}

/// `application/connect+json`, `application/connect+proto`.
fn streaming_codec(content_type: &str) -> Option<Codec> {
    match content_type.split(';').next().map(str::trim) {
        Some("application/connect+json") => Some(Codec::Json),
        Some("application/connect+proto") => Some(Codec::Proto),
        _ => None,
    }
}

fn error_response(error: &ApiError, status: StatusCode) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        error.to_connect_json().to_string(),
    )
        .into_response()
}

/// A Connect error answer before any handling: an end-of-stream message
/// (HTTP 200) for streaming content types, else a unary error.
pub(crate) fn early_error(headers: &HeaderMap, error: &ApiError) -> Response {
    match streaming_codec(content_type(headers)) {
        Some(codec) => streaming_response(codec, Body::from(end_of_stream(Some(error)))),
        None => unary_error(error),
    }
}

fn unary_error(error: &ApiError) -> Response {
    error_response(error, error.code.http())
}

/// Handles `POST /{service}/{method}` for Connect clients.
pub async fn handle(
    State(state): State<FlagdState>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (Some(version), Some(method)) = (
        ApiVersion::from_service_name(&service),
        Method::parse(&method),
    ) else {
        let error = ApiError::new(
            Code::Unimplemented,
            format!("unknown procedure /{service}/{method}"),
        );
        return error_response(&error, StatusCode::NOT_FOUND);
    };
    if method == Method::ResolveAll && version == ApiVersion::V2 {
        let error = ApiError::new(Code::Unimplemented, "flagd.evaluation.v2 has no ResolveAll");
        return error_response(&error, StatusCode::NOT_FOUND);
    }
    let content_type = content_type(&headers).to_owned();
    let body = match read_body(body, state.config.max_request_body).await {
        Ok(body) => body,
        Err(error) => return unary_error(&error),
    };
    if method == Method::EventStream {
        let Some(codec) = streaming_codec(&content_type) else {
            return unsupported_media_type(&content_type);
        };
        return event_stream(&state, &headers, codec);
    }
    let Some(codec) = unary_codec(&content_type) else {
        return unsupported_media_type(&content_type);
    };
    let result = unary(&state, version, method, &headers, codec, &body);
    match result {
        Ok(bytes) => {
            let content_type = match codec {
                Codec::Json => "application/json",
                Codec::Proto => "application/proto",
            };
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        Err(error) => unary_error(&error),
    }
}

fn unsupported_media_type(content_type: &str) -> Response {
    let error = ApiError::new(
        Code::InvalidArgument,
        format!("unsupported content type \"{content_type}\""),
    );
    error_response(&error, StatusCode::UNSUPPORTED_MEDIA_TYPE)
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            Code::ResourceExhausted,
            format!("request body over {limit} bytes"),
        )),
        Err(error) => Err(ApiError::new(
            Code::InvalidArgument,
            format!("reading the request: {error}"),
        )),
    }
}

/// The flag key and context of a request, in either codec.
fn decode_request(
    codec: Codec,
    method: Method,
    body: &[u8],
) -> Result<(String, Map<String, Value>), ApiError> {
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::new(Code::InvalidArgument, format!("invalid request: {e}"))
    };
    match codec {
        Codec::Proto => {
            // Requests are wire-identical across the three services.
            if method == Method::ResolveAll {
                let request = v1::ResolveAllRequest::decode(body).map_err(|e| invalid(&e))?;
                Ok((
                    String::new(),
                    request.context.map(struct_to_json).unwrap_or_default(),
                ))
            } else {
                let request = v1::ResolveBooleanRequest::decode(body).map_err(|e| invalid(&e))?;
                Ok((
                    request.flag_key,
                    request.context.map(struct_to_json).unwrap_or_default(),
                ))
            }
        }
        Codec::Json => {
            let request: Value = if body.is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_slice(body).map_err(|e| invalid(&e))?
            };
            let Value::Object(mut fields) = request else {
                return Err(invalid(&"the body must be a JSON object"));
            };
            let key = match fields
                .remove("flagKey")
                .or_else(|| fields.remove("flag_key"))
            {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(key)) => key,
                Some(_) => return Err(invalid(&"flagKey must be a string")),
            };
            let context = match fields.remove("context") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(context)) => context,
                Some(_) => return Err(invalid(&"context must be an object")),
            };
            Ok((key, context))
        }
    }
}

fn unary(
    state: &FlagdState,
    version: ApiVersion,
    method: Method,
    headers: &HeaderMap,
    codec: Codec,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let (key, context) = decode_request(codec, method, body)?;
    let selector =
        outcome::parse_selector(headers.get("flagd-selector").and_then(|v| v.to_str().ok()))?;
    let context = state.config.context.assemble(context, |name| {
        headers.get(name).and_then(|v| v.to_str().ok())
    });
    match method {
        Method::Resolve(requested) => {
            let outcome =
                outcome::resolve(state, version, requested, &key, &context, selector.as_ref())?;
            Ok(match codec {
                Codec::Json => typed_json(version, outcome).to_string().into_bytes(),
                Codec::Proto => typed_proto(version, requested, outcome),
            })
        }
        Method::ResolveAll => {
            let (flags, reflected) = outcome::resolve_all(state, &context, selector.as_ref());
            Ok(match codec {
                Codec::Json => all_json(version, flags, reflected).to_string().into_bytes(),
                Codec::Proto => all_proto(version, flags, reflected),
            })
        }
        Method::EventStream => Err(ApiError::new(
            Code::InvalidArgument,
            "EventStream is a streaming procedure",
        )),
    }
}

/// A value in the protobuf JSON mapping.
fn value_json(value: TypedValue) -> Value {
    match value {
        TypedValue::Bool(b) => Value::Bool(b),
        TypedValue::String(s) => Value::String(s),
        TypedValue::Float(f) => double_json(f),
        // int64 is a string in the protobuf JSON mapping.
        TypedValue::Int(i) => Value::String(i.to_string()),
        TypedValue::Object(o) => Value::Object(o),
    }
}

fn double_json(f: f64) -> Value {
    if f.is_nan() {
        Value::from("NaN")
    } else if f.is_infinite() {
        Value::from(if f > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Value::from(f)
    }
}

fn typed_json(version: ApiVersion, outcome: Outcome) -> Value {
    let mut message = Map::new();
    if let Some(value) = outcome.value {
        message.insert("value".to_owned(), value_json(value));
    }
    message.insert("reason".to_owned(), Value::from(outcome.reason));
    match (outcome.variant, version) {
        (Some(variant), _) => {
            message.insert("variant".to_owned(), Value::from(variant));
        }
        (None, ApiVersion::V2) => {}
        (None, _) => {
            message.insert("variant".to_owned(), Value::from(""));
        }
    }
    message.insert("metadata".to_owned(), Value::Object(outcome.metadata));
    Value::Object(message)
}

fn typed_proto(version: ApiVersion, requested: RequestedType, outcome: Outcome) -> Vec<u8> {
    use ApiVersion::{SchemaV1, V1, V2};
    use RequestedType::{Boolean, Float, Integer, Object, String};
    match (version, requested) {
        (V1, Boolean) => v1::ResolveBooleanResponse::from(outcome).encode_to_vec(),
        (V1, String) => v1::ResolveStringResponse::from(outcome).encode_to_vec(),
        (V1, Float) => v1::ResolveFloatResponse::from(outcome).encode_to_vec(),
        (V1, Integer) => v1::ResolveIntResponse::from(outcome).encode_to_vec(),
        (V1, Object) => v1::ResolveObjectResponse::from(outcome).encode_to_vec(),
        (V2, Boolean) => v2::ResolveBooleanResponse::from(outcome).encode_to_vec(),
        (V2, String) => v2::ResolveStringResponse::from(outcome).encode_to_vec(),
        (V2, Float) => v2::ResolveFloatResponse::from(outcome).encode_to_vec(),
        (V2, Integer) => v2::ResolveIntResponse::from(outcome).encode_to_vec(),
        (V2, Object) => v2::ResolveObjectResponse::from(outcome).encode_to_vec(),
        (SchemaV1, Boolean) => schema_v1::ResolveBooleanResponse::from(outcome).encode_to_vec(),
        (SchemaV1, String) => schema_v1::ResolveStringResponse::from(outcome).encode_to_vec(),
        (SchemaV1, Float) => schema_v1::ResolveFloatResponse::from(outcome).encode_to_vec(),
        (SchemaV1, Integer) => schema_v1::ResolveIntResponse::from(outcome).encode_to_vec(),
        (SchemaV1, Object) => schema_v1::ResolveObjectResponse::from(outcome).encode_to_vec(),
    }
}

fn all_json(version: ApiVersion, flags: Vec<FlagOutcome>, reflected: Map<String, Value>) -> Value {
    let with_metadata = version == ApiVersion::V1;
    let flags: Map<String, Value> = flags
        .into_iter()
        .map(|flag| {
            let mut any = Map::new();
            any.insert("reason".to_owned(), Value::from(flag.reason));
            any.insert("variant".to_owned(), Value::from(flag.variant));
            if let Some(value) = flag.value {
                let (field, value) = match value {
                    TypedValue::Bool(b) => ("boolValue", Value::Bool(b)),
                    TypedValue::String(s) => ("stringValue", Value::String(s)),
                    TypedValue::Float(f) => ("doubleValue", double_json(f)),
                    TypedValue::Int(i) => ("doubleValue", double_json(i as f64)),
                    TypedValue::Object(o) => ("objectValue", Value::Object(o)),
                };
                any.insert(field.to_owned(), value);
            }
            if with_metadata {
                any.insert("metadata".to_owned(), Value::Object(flag.metadata));
            }
            (flag.key, Value::Object(any))
        })
        .collect();
    let mut message = Map::new();
    message.insert("flags".to_owned(), Value::Object(flags));
    if with_metadata {
        message.insert("metadata".to_owned(), Value::Object(reflected));
    }
    Value::Object(message)
}

fn all_proto(
    version: ApiVersion,
    flags: Vec<FlagOutcome>,
    reflected: Map<String, Value>,
) -> Vec<u8> {
    // schema.v1's message has the same field numbers as evaluation.v1's, minus metadata.
    crate::grpc::resolve_all_response(flags, &reflected, version == ApiVersion::V1).encode_to_vec()
}

/// A Connect envelope: flags byte, big-endian length, message.
fn envelope(flags: u8, message: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(flags);
    frame.put_u32(message.len() as u32);
    frame.put_slice(message);
    frame.freeze()
}

/// The end-of-stream envelope, with the error if the stream failed.
fn end_of_stream(error: Option<&ApiError>) -> Bytes {
    let body = match error {
        None => json!({}),
        Some(error) => json!({"error": error.to_connect_json()}),
    };
    envelope(0x02, body.to_string().as_bytes())
}

fn event_message(codec: Codec, event: Event) -> Bytes {
    match codec {
        Codec::Json => {
            let message = json!({"type": event.kind, "data": Value::Object(event.data)});
            envelope(0, message.to_string().as_bytes())
        }
        Codec::Proto => {
            // EventStreamResponse is wire-identical across the three services.
            let message = v1::EventStreamResponse {
                r#type: event.kind.to_owned(),
                data: Some(ensign_proto::convert::json_to_struct(&event.data)),
            };
            envelope(0, &message.encode_to_vec())
        }
    }
}

fn event_stream(state: &FlagdState, headers: &HeaderMap, codec: Codec) -> Response {
    let receiver =
        outcome::parse_selector(headers.get("flagd-selector").and_then(|v| v.to_str().ok()))
            .and_then(|selector| crate::events::subscribe(state, selector));
    let receiver = match receiver {
        Ok(receiver) => receiver,
        Err(error) => {
            // Streaming errors travel in the end-of-stream message with HTTP 200.
            return streaming_response(codec, Body::from(end_of_stream(Some(&error))));
        }
    };
    let frames = ReceiverStream::new(receiver)
        .map(Some)
        .chain(futures_util::stream::once(async { None }))
        .scan(false, move |ended, item| {
            if *ended {
                return std::future::ready(None);
            }
            let frame = match item {
                Some(Ok(event)) => event_message(codec, event),
                Some(Err(error)) => {
                    *ended = true;
                    end_of_stream(Some(&error))
                }
                None => {
                    *ended = true;
                    end_of_stream(None)
                }
            };
            std::future::ready(Some(Ok::<_, std::convert::Infallible>(frame)))
        });
    streaming_response(codec, Body::from_stream(frames))
}

fn streaming_response(codec: Codec, body: Body) -> Response {
    let content_type = match codec {
        Codec::Json => "application/connect+json",
        Codec::Proto => "application/connect+proto",
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
