//! Evaluation as the flagd API performs it, independent of the transport:
//! selector, context assembly, resolution, metrics, and the differences between
//! evaluation.v1, evaluation.v2 and schema.v1 (wire contract §1.6).

use ensign_engine::{FlagValue, Reason, RequestedType, Resolution, Selector, ValueType};
use serde_json::{Map, Value};

use crate::FlagdState;
use crate::status::{ApiError, Code};

/// The three evaluation services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `flagd.evaluation.v1.Service`.
    V1,
    /// `flagd.evaluation.v2.Service`.
    V2,
    /// `schema.v1.Service` (deprecated, still served).
    SchemaV1,
}

impl ApiVersion {
    /// Every service, for routing.
    pub const ALL: [ApiVersion; 3] = [ApiVersion::V1, ApiVersion::V2, ApiVersion::SchemaV1];

    /// The fully qualified gRPC service name.
    pub fn service_name(self) -> &'static str {
        match self {
            ApiVersion::V1 => "flagd.evaluation.v1.Service",
            ApiVersion::V2 => "flagd.evaluation.v2.Service",
            ApiVersion::SchemaV1 => "schema.v1.Service",
        }
    }

    /// The service with this fully qualified name.
    pub fn from_service_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.service_name() == name)
    }
}

/// A value shaped by the requested type.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    /// `ResolveBoolean`.
    Bool(bool),
    /// `ResolveString`.
    String(String),
    /// `ResolveFloat` (and every number in `ResolveAll`).
    Float(f64),
    /// `ResolveInt`.
    Int(i64),
    /// `ResolveObject`.
    Object(Map<String, Value>),
}

impl TypedValue {
    fn of(value: &FlagValue, requested: RequestedType) -> TypedValue {
        match (value, requested) {
            (FlagValue::Bool(b), _) => TypedValue::Bool(*b),
            (FlagValue::String(s), _) => TypedValue::String(s.clone()),
            (FlagValue::Number(n), RequestedType::Integer) => TypedValue::Int(
                n.as_i64()
                    .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
            ),
            (FlagValue::Number(n), _) => TypedValue::Float(n.as_f64().unwrap_or(0.0)),
            (FlagValue::Object(o), _) => TypedValue::Object(o.clone()),
        }
    }

    /// The zero value evaluation.v1 sends when there is no value.
    fn zero(requested: RequestedType) -> TypedValue {
        match requested {
            RequestedType::Boolean => TypedValue::Bool(false),
            RequestedType::String => TypedValue::String(String::new()),
            RequestedType::Integer => TypedValue::Int(0),
            RequestedType::Float => TypedValue::Float(0.0),
            RequestedType::Object => TypedValue::Object(Map::new()),
        }
    }
}

/// A successful single-flag answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The value; `None` only on evaluation.v2 ("use the code default").
    pub value: Option<TypedValue>,
    /// The variant; `None` only on evaluation.v2.
    pub variant: Option<String>,
    /// The reason as sent on the wire.
    pub reason: &'static str,
    /// Selector reflection overlaid by flag-set and flag metadata.
    pub metadata: Map<String, Value>,
}

/// One flag of a bulk answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagOutcome {
    /// The flag key.
    pub key: String,
    /// The reason.
    pub reason: &'static str,
    /// The variant, empty when none.
    pub variant: String,
    /// The value typed by the flag's variants (the zero value for disabled flags).
    pub value: Option<TypedValue>,
    /// Flag metadata.
    pub metadata: Map<String, Value>,
}

/// A request's selector from the `Flagd-Selector` header.
pub fn parse_selector(header: Option<&str>) -> Result<Option<Selector>, ApiError> {
    ensign_context::parse_selector(header)
        .map_err(|e| ApiError::new(Code::InvalidArgument, e.to_string()))
}

fn with_flag_metadata(
    mut metadata: Map<String, Value>,
    resolution_metadata: &ensign_engine::Metadata,
) -> Map<String, Value> {
    for (key, value) in resolution_metadata {
        metadata.insert(key.clone(), value.to_json());
    }
    metadata
}

/// Resolves one flag as `version` of the API answers it.
pub fn resolve(
    state: &FlagdState,
    version: ApiVersion,
    requested: RequestedType,
    key: &str,
    context: &Map<String, Value>,
    selector: Option<&Selector>,
) -> Result<Outcome, ApiError> {
    let snapshot = state.store.snapshot();
    let resolution =
        snapshot.resolve_selected(selector, key, requested, context, ensign_context::now());
    let exists = resolution.error_code() != Some(ensign_engine::ErrorCode::FlagNotFound);
    count(state, exists.then_some(key), &resolution);
    if let Some(error) = &resolution.error {
        return Err(ApiError::from_evaluation(error.code, &error.message));
    }
    let metadata = with_flag_metadata(
        ensign_context::selector_metadata(selector),
        resolution.metadata,
    );
    let variant = resolution.variant.map(str::to_owned);
    match (resolution.value, version) {
        (Some(value), _) => Ok(Outcome {
            value: Some(TypedValue::of(value, requested)),
            variant,
            reason: resolution.reason.as_str(),
            metadata,
        }),
        (None, ApiVersion::V2) => Ok(Outcome {
            value: None,
            variant: None,
            reason: resolution.reason.as_str(),
            metadata,
        }),
        // evaluation.v1 tells SDKs to use their code default by "not found".
        (None, ApiVersion::V1) if resolution.reason == Reason::Default => Err(ApiError::new(
            Code::NotFound,
            format!("flag \"{key}\" has no default variant; the caller's default applies"),
        )),
        // Disabled (v1 and schema.v1), and schema.v1's code default, which flagd
        // answers with the zero value and its internal reason FALLBACK.
        (None, _) => Ok(Outcome {
            value: Some(TypedValue::zero(requested)),
            variant: Some(String::new()),
            reason: if resolution.reason == Reason::Disabled {
                "DISABLED"
            } else {
                "FALLBACK"
            },
            metadata,
        }),
    }
}

/// Evaluates every visible flag (ResolveAll): code-default and failed flags are
/// left out, as flagd does; disabled flags are included with their type's zero
/// value and an empty variant.
pub fn resolve_all(
    state: &FlagdState,
    context: &Map<String, Value>,
    selector: Option<&Selector>,
) -> (Vec<FlagOutcome>, Map<String, Value>) {
    let snapshot = state.store.snapshot();
    let mut flags = Vec::new();
    for (flag, resolution) in snapshot.resolve_all(selector, context, ensign_context::now()) {
        count(state, Some(flag.key()), &resolution);
        if resolution.error.is_some()
            || (resolution.value.is_none() && resolution.reason != Reason::Disabled)
        {
            continue;
        }
        let requested = match flag.value_type() {
            Some(ValueType::Boolean) => RequestedType::Boolean,
            Some(ValueType::String) => RequestedType::String,
            Some(ValueType::Object) => RequestedType::Object,
            Some(ValueType::Number) | None => RequestedType::Float,
        };
        flags.push(FlagOutcome {
            key: flag.key().to_owned(),
            reason: resolution.reason.as_str(),
            variant: resolution.variant.unwrap_or_default().to_owned(),
            // Disabled flags carry the zero value of their type, as in flagd:
            // clients learn a flag's type from the value's field.
            value: Some(resolution.value.map_or_else(
                || TypedValue::zero(requested),
                |v| TypedValue::of(v, requested),
            )),
            metadata: with_flag_metadata(Map::new(), resolution.metadata),
        });
    }
    (flags, ensign_context::selector_metadata(selector))
}

fn count(state: &FlagdState, flag: Option<&str>, resolution: &Resolution<'_, &FlagValue>) {
    let flag_set = match resolution.metadata.get("flagSetId") {
        Some(ensign_engine::MetadataValue::String(id)) => Some(id.as_str()),
        _ => None,
    };
    state.store.record_evaluation(
        flag.map(|key| (flag_set, key)),
        resolution.variant,
        resolution.reason.as_str(),
        ensign_context::now(),
    );
}
