//! Variant values and the types a caller can ask for.

use std::fmt;

/// The value of one variant. All variants of a flag share one [`ValueType`].
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    /// A boolean variant.
    Bool(bool),
    /// A string variant.
    String(String),
    /// A number variant, kept as written (integers stay exact).
    Number(serde_json::Number),
    /// An object variant.
    Object(serde_json::Map<String, serde_json::Value>),
}

impl FlagValue {
    /// The type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            FlagValue::Bool(_) => ValueType::Boolean,
            FlagValue::String(_) => ValueType::String,
            FlagValue::Number(_) => ValueType::Number,
            FlagValue::Object(_) => ValueType::Object,
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FlagValue::Bool(b) => serde_json::Value::Bool(*b),
            FlagValue::String(s) => serde_json::Value::String(s.clone()),
            FlagValue::Number(n) => serde_json::Value::Number(n.clone()),
            FlagValue::Object(o) => serde_json::Value::Object(o.clone()),
        }
    }
}

/// The type of a flag's variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `true` / `false` variants.
    Boolean,
    /// String variants.
    String,
    /// Number variants (integer and float requests both read them).
    Number,
    /// Object variants.
    Object,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Boolean => "boolean",
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Object => "object",
        })
    }
}

/// The type a caller requests, as in OpenFeature's typed resolve calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestedType {
    /// `resolveBoolean`.
    Boolean,
    /// `resolveString`.
    String,
    /// `resolveInteger`: a whole number within ±(2^53 − 1).
    Integer,
    /// `resolveFloat`.
    Float,
    /// `resolveObject`.
    Object,
}

impl RequestedType {
    /// Parses `boolean`, `string`, `integer`, `float` or `object`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "boolean" | "bool" => RequestedType::Boolean,
            "string" => RequestedType::String,
            "integer" | "int" => RequestedType::Integer,
            "float" | "number" | "double" => RequestedType::Float,
            "object" => RequestedType::Object,
            _ => return None,
        })
    }
}

impl fmt::Display for RequestedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestedType::Boolean => "boolean",
            RequestedType::String => "string",
            RequestedType::Integer => "integer",
            RequestedType::Float => "float",
            RequestedType::Object => "object",
        })
    }
}
