//! Evaluate feature flags served by Ensign (or flagd) with the OpenFeature Rust SDK.
//!
//! Two small helpers that an application would write once:
//! - [`connect`] registers the flagd provider (RPC resolver, gRPC) and returns a client;
//! - [`resolve`] turns an evaluation result into a value, falling back to the
//!   code default when the flag is missing, failed, or disabled.

use open_feature::{
    Client, EvaluationDetails, EvaluationReason, EvaluationResult, OpenFeature, StructValue, Value,
};
use open_feature_flagd::error::FlagdError;
use open_feature_flagd::{FlagdOptions, FlagdProvider, ResolverType};

/// Registers the flagd provider with the global OpenFeature API and returns a client.
///
/// The server is taken from the provider's usual environment variables:
/// `FLAGD_HOST` (default `localhost`) and `FLAGD_PORT` (default 8013).
pub async fn connect() -> Result<Client, FlagdError> {
    let provider = FlagdProvider::new(FlagdOptions {
        resolver_type: ResolverType::Rpc,
        // The RPC resolver of open-feature-flagd 0.3.0 does not subscribe to
        // the server's EventStream, so cached results would not be dropped when
        // a flag changes (they would live on for the cache TTL, 60 s). Without
        // the cache every evaluation asks the server and sees changes at once.
        cache_settings: None,
        ..FlagdOptions::default()
    })
    .await?;
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(provider).await;
    Ok(api.create_client())
}

/// What the application uses: a value, and why it is that value.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<T> {
    /// The flag's value, or the code default.
    pub value: T,
    /// The variant the server chose; `None` when the code default is used.
    pub variant: Option<String>,
    /// `STATIC`, `TARGETING_MATCH`, `DEFAULT`, `DISABLED`, or `ERROR`.
    pub reason: String,
    /// The error code (e.g. `FLAG_NOT_FOUND`) when the evaluation failed.
    pub error: Option<String>,
}

/// Resolves an evaluation result against the code default.
///
/// The Rust SDK (0.3.0) has no default-value argument: an evaluation either
/// succeeds or returns an error. flagd's evaluation.v1 API answers a disabled
/// flag with `reason=DISABLED`, an empty variant and the zero value (`""`,
/// `false`, `0`), which means "use your code default" — so does this function.
pub fn resolve<T>(result: EvaluationResult<EvaluationDetails<T>>, default: T) -> Resolved<T> {
    match result {
        Err(error) => Resolved {
            value: default,
            variant: None,
            reason: EvaluationReason::Error.to_string(),
            error: Some(error.code.to_string()),
        },
        Ok(details) => {
            let reason = details.reason.unwrap_or_default().to_string();
            let variant = details.variant.filter(|v| !v.is_empty());
            if variant.is_none() && (reason == "DISABLED" || reason == "DEFAULT") {
                Resolved { value: default, variant: None, reason, error: None }
            } else {
                Resolved { value: details.value, variant, reason, error: None }
            }
        }
    }
}

/// An object flag read into a typed struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// CSS colour, e.g. `#1e1e1e`.
    pub background: String,
    /// Font size in pixels.
    pub font_size: i64,
    /// Whether corners are rounded.
    pub rounded: bool,
}

impl Default for Theme {
    fn default() -> Self {
        Theme { background: "#ffffff".into(), font_size: 16, rounded: false }
    }
}

impl TryFrom<StructValue> for Theme {
    type Error = String;

    fn try_from(object: StructValue) -> Result<Self, Self::Error> {
        let field = |name: &str| object.fields.get(name).ok_or(format!("no field `{name}`"));
        // The provider hands every JSON number over as a float.
        let font_size = match field("fontSize")? {
            Value::Int(n) => *n,
            Value::Float(n) if n.fract() == 0.0 => *n as i64,
            other => return Err(format!("`fontSize` is not an integer: {other:?}")),
        };
        Ok(Theme {
            background: field("background")?.as_str().ok_or("`background` is not a string")?.into(),
            font_size,
            rounded: field("rounded")?.as_bool().ok_or("`rounded` is not a boolean")?,
        })
    }
}
