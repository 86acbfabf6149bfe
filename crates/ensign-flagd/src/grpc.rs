//! The three evaluation services as tonic services (gRPC, and gRPC-Web through
//! `tonic-web`), all answering from the same [`outcome`](crate::outcome) logic.

use std::pin::Pin;

use ensign_engine::RequestedType;
use ensign_proto::{evaluation_v1 as v1, evaluation_v2 as v2, schema_v1};
use futures_util::{Stream, StreamExt};
use prost::Message;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::FlagdState;
use crate::events;
use crate::outcome::{self, ApiVersion, FlagOutcome, Outcome, TypedValue};
use ensign_proto::convert::{json_to_struct, struct_to_json};

/// A server stream of events in a service's message type.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn header<'m>(metadata: &'m MetadataMap, name: &str) -> Option<&'m str> {
    metadata.get(name).and_then(|v| v.to_str().ok())
}

/// Resolves one flag for a gRPC request and shapes the answer.
fn unary<T: From<Outcome>>(
    state: &FlagdState,
    version: ApiVersion,
    requested: RequestedType,
    metadata: &MetadataMap,
    key: &str,
    context: Option<prost_types::Struct>,
) -> Result<Response<T>, Status> {
    let selector =
        outcome::parse_selector(header(metadata, "flagd-selector")).map_err(|e| e.to_status())?;
    let context = state
        .config
        .context
        .assemble(context.map(struct_to_json).unwrap_or_default(), |name| {
            header(metadata, name.as_str())
        });
    outcome::resolve(state, version, requested, key, &context, selector.as_ref())
        .map(|outcome| Response::new(T::from(outcome)))
        .map_err(|e| e.to_status())
}

fn event_stream<T>(
    state: &FlagdState,
    metadata: &MetadataMap,
    to_message: fn(events::Event) -> T,
) -> Result<Response<EventStream<T>>, Status>
where
    T: Send + 'static,
{
    let selector =
        outcome::parse_selector(header(metadata, "flagd-selector")).map_err(|e| e.to_status())?;
    let receiver = events::subscribe(state, selector).map_err(|e| e.to_status())?;
    let stream = ReceiverStream::new(receiver)
        .map(move |item| item.map(to_message).map_err(|e| e.to_status()));
    Ok(Response::new(Box::pin(stream)))
}

fn bool_value(value: Option<TypedValue>) -> Option<bool> {
    match value {
        Some(TypedValue::Bool(b)) => Some(b),
        _ => None,
    }
}

fn string_value(value: Option<TypedValue>) -> Option<String> {
    match value {
        Some(TypedValue::String(s)) => Some(s),
        _ => None,
    }
}

fn float_value(value: Option<TypedValue>) -> Option<f64> {
    match value {
        Some(TypedValue::Float(f)) => Some(f),
        _ => None,
    }
}

fn int_value(value: Option<TypedValue>) -> Option<i64> {
    match value {
        Some(TypedValue::Int(i)) => Some(i),
        _ => None,
    }
}

fn object_value(value: Option<TypedValue>) -> Option<prost_types::Struct> {
    match value {
        Some(TypedValue::Object(o)) => Some(json_to_struct(&o)),
        _ => None,
    }
}

/// An object value where the field is plain: prost represents message fields
/// as `Option` either way, so absence stays absence.
fn object_message(value: Option<TypedValue>) -> Option<Option<prost_types::Struct>> {
    Some(object_value(value))
}

/// `From<Outcome>` for responses whose value and variant are plain fields
/// (evaluation.v1, schema.v1): absent becomes the zero value.
macro_rules! plain_response {
    ($($message:ty => $extract:ident),* $(,)?) => {$(
        impl From<Outcome> for $message {
            fn from(outcome: Outcome) -> Self {
                Self {
                    value: $extract(outcome.value).unwrap_or_default(),
                    reason: outcome.reason.to_owned(),
                    variant: outcome.variant.unwrap_or_default(),
                    metadata: Some(json_to_struct(&outcome.metadata)),
                }
            }
        }
    )*};
}

/// `From<Outcome>` for evaluation.v2 responses, whose value and variant are optional.
macro_rules! optional_response {
    ($($message:ty => $extract:ident),* $(,)?) => {$(
        impl From<Outcome> for $message {
            fn from(outcome: Outcome) -> Self {
                Self {
                    value: $extract(outcome.value),
                    reason: outcome.reason.to_owned(),
                    variant: outcome.variant,
                    metadata: Some(json_to_struct(&outcome.metadata)),
                }
            }
        }
    )*};
}

plain_response! {
    v1::ResolveBooleanResponse => bool_value,
    v1::ResolveStringResponse => string_value,
    v1::ResolveFloatResponse => float_value,
    v1::ResolveIntResponse => int_value,
    v1::ResolveObjectResponse => object_message,
    schema_v1::ResolveBooleanResponse => bool_value,
    schema_v1::ResolveStringResponse => string_value,
    schema_v1::ResolveFloatResponse => float_value,
    schema_v1::ResolveIntResponse => int_value,
    schema_v1::ResolveObjectResponse => object_message,
}

optional_response! {
    v2::ResolveBooleanResponse => bool_value,
    v2::ResolveStringResponse => string_value,
    v2::ResolveFloatResponse => float_value,
    v2::ResolveIntResponse => int_value,
    v2::ResolveObjectResponse => object_value,
}

/// Implements one evaluation service: the five typed resolve methods and
/// `EventStream`, plus the service-specific items given (`ResolveAll`).
macro_rules! evaluation_service {
    ($service:ident, $module:ident, $version:expr, { $($extra:item)* }) => {
        evaluation_service!(@impl $service, $module, $version, { $($extra)* },
            resolve_boolean ResolveBooleanRequest ResolveBooleanResponse Boolean,
            resolve_string ResolveStringRequest ResolveStringResponse String,
            resolve_float ResolveFloatRequest ResolveFloatResponse Float,
            resolve_int ResolveIntRequest ResolveIntResponse Integer,
            resolve_object ResolveObjectRequest ResolveObjectResponse Object
        );
    };
    (@impl $service:ident, $module:ident, $version:expr, { $($extra:item)* },
        $($method:ident $request:ident $response:ident $requested:ident),*) => {
        #[tonic::async_trait]
        impl $module::service_server::Service for $service {
            $($extra)*

            $(
                async fn $method(
                    &self,
                    request: Request<$module::$request>,
                ) -> Result<Response<$module::$response>, Status> {
                    let (metadata, _, body) = request.into_parts();
                    unary(&self.0, $version, RequestedType::$requested, &metadata, &body.flag_key, body.context)
                }
            )*

            type EventStreamStream = EventStream<$module::EventStreamResponse>;

            async fn event_stream(
                &self,
                request: Request<$module::EventStreamRequest>,
            ) -> Result<Response<Self::EventStreamStream>, Status> {
                event_stream(&self.0, request.metadata(), |event| $module::EventStreamResponse {
                    r#type: event.kind.to_owned(),
                    data: Some(json_to_struct(&event.data)),
                })
            }
        }
    };
}

/// Resolves all flags for a ResolveAll request.
fn resolve_all(
    state: &FlagdState,
    metadata: &MetadataMap,
    context: Option<prost_types::Struct>,
) -> Result<(Vec<FlagOutcome>, serde_json::Map<String, serde_json::Value>), Status> {
    let selector =
        outcome::parse_selector(header(metadata, "flagd-selector")).map_err(|e| e.to_status())?;
    let context = state
        .config
        .context
        .assemble(context.map(struct_to_json).unwrap_or_default(), |name| {
            header(metadata, name.as_str())
        });
    Ok(outcome::resolve_all(state, &context, selector.as_ref()))
}

/// A ResolveAll answer as evaluation.v1 shapes it; `with_metadata` false gives
/// schema.v1's shape (the same field numbers without the metadata fields).
pub fn resolve_all_response(
    flags: Vec<FlagOutcome>,
    reflected: &serde_json::Map<String, serde_json::Value>,
    with_metadata: bool,
) -> v1::ResolveAllResponse {
    use v1::any_flag::Value as AnyValue;
    v1::ResolveAllResponse {
        flags: flags
            .into_iter()
            .map(|flag| {
                let any = v1::AnyFlag {
                    reason: flag.reason.to_owned(),
                    variant: flag.variant,
                    value: flag.value.map(|value| match value {
                        TypedValue::Bool(b) => AnyValue::BoolValue(b),
                        TypedValue::String(s) => AnyValue::StringValue(s),
                        TypedValue::Float(f) => AnyValue::DoubleValue(f),
                        TypedValue::Int(i) => AnyValue::DoubleValue(i as f64),
                        TypedValue::Object(o) => AnyValue::ObjectValue(json_to_struct(&o)),
                    }),
                    metadata: with_metadata.then(|| json_to_struct(&flag.metadata)),
                };
                (flag.key, any)
            })
            .collect(),
        metadata: with_metadata.then(|| json_to_struct(reflected)),
    }
}

/// `flagd.evaluation.v1.Service`.
#[derive(Debug, Clone)]
pub struct EvaluationV1(pub FlagdState);

evaluation_service!(EvaluationV1, v1, ApiVersion::V1, {
    async fn resolve_all(
        &self,
        request: Request<v1::ResolveAllRequest>,
    ) -> Result<Response<v1::ResolveAllResponse>, Status> {
        let (metadata, _, body) = request.into_parts();
        let (flags, reflected) = resolve_all(&self.0, &metadata, body.context)?;
        Ok(Response::new(resolve_all_response(flags, &reflected, true)))
    }
});

/// `flagd.evaluation.v2.Service`.
#[derive(Debug, Clone)]
pub struct EvaluationV2(pub FlagdState);

evaluation_service!(EvaluationV2, v2, ApiVersion::V2, {});

/// `schema.v1.Service`.
#[derive(Debug, Clone)]
pub struct SchemaV1(pub FlagdState);

evaluation_service!(SchemaV1, schema_v1, ApiVersion::SchemaV1, {
    async fn resolve_all(
        &self,
        request: Request<schema_v1::ResolveAllRequest>,
    ) -> Result<Response<schema_v1::ResolveAllResponse>, Status> {
        let (metadata, _, body) = request.into_parts();
        let (flags, reflected) = resolve_all(&self.0, &metadata, body.context)?;
        // schema.v1's message is evaluation.v1's without metadata: convert on the wire.
        let v1_shaped = resolve_all_response(flags, &reflected, false).encode_to_vec();
        schema_v1::ResolveAllResponse::decode(v1_shaped.as_slice())
            .map(Response::new)
            .map_err(|e| Status::internal(e.to_string()))
    }
});
