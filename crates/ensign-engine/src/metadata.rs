//! Flag and flag-set metadata: a flat map of string, number and boolean values.

use std::collections::BTreeMap;

/// One metadata value. flagd allows only primitives here.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// A string value.
    String(String),
    /// A number (flagd keeps every number as a float64; integers stay exact here).
    Number(serde_json::Number),
    /// A boolean value.
    Bool(bool),
}

impl MetadataValue {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            MetadataValue::String(s) => serde_json::Value::String(s.clone()),
            MetadataValue::Number(n) => serde_json::Value::Number(n.clone()),
            MetadataValue::Bool(b) => serde_json::Value::Bool(*b),
        }
    }
}

/// Metadata keyed by name, in name order.
pub type Metadata = BTreeMap<String, MetadataValue>;

/// Metadata as a JSON object.
pub fn metadata_to_json(metadata: &Metadata) -> serde_json::Map<String, serde_json::Value> {
    metadata
        .iter()
        .map(|(key, value)| (key.clone(), value.to_json()))
        .collect()
}
