//! Evaluation contexts: protobuf `Struct` ↔ JSON, and the assembly flagd does
//! before every evaluation (request context, then header-mapped values, then
//! the server's static context, each overriding the one before).

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

/// How the server adds to every request's context (`-X` and `-H` options).
#[derive(Debug, Clone, Default)]
pub struct ContextRules {
    /// `--context-value key=value`: added to every context, overriding the request.
    pub static_values: Map<String, Value>,
    /// `--context-from-header Header=key`: a request header's value under `key`.
    pub from_headers: Vec<(http::HeaderName, String)>,
}

impl ContextRules {
    /// The context to evaluate with: `request`, then headers, then static values.
    pub fn assemble<'h>(
        &self,
        mut request: Map<String, Value>,
        header: impl Fn(&http::HeaderName) -> Option<&'h str>,
    ) -> Map<String, Value> {
        for (name, key) in &self.from_headers {
            if let Some(value) = header(name) {
                request.insert(key.clone(), Value::from(value));
            }
        }
        for (key, value) in &self.static_values {
            request.insert(key.clone(), value.clone());
        }
        request
    }
}

/// A protobuf `Struct` as a JSON object.
pub fn struct_to_json(value: prost_types::Struct) -> Map<String, Value> {
    value
        .fields
        .into_iter()
        .map(|(key, value)| (key, value_to_json(value)))
        .collect()
}

fn value_to_json(value: prost_types::Value) -> Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => Number::from_f64(n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.into_iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(inner)) => Value::Object(struct_to_json(inner)),
    }
}

/// A JSON object as a protobuf `Struct`.
pub fn json_to_struct(map: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), json_to_value(value)))
            .collect(),
    }
}

fn json_to_value(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structs_round_trip_through_json() {
        let original = json!({"a": 1.5, "b": [true, null, "x"], "c": {"d": {}}});
        let Value::Object(map) = original.clone() else {
            unreachable!()
        };
        assert_eq!(
            Value::Object(struct_to_json(json_to_struct(&map))),
            original
        );
    }

    #[test]
    fn static_values_override_headers_which_override_the_request() {
        let rules = ContextRules {
            static_values: [("env".to_owned(), json!("prod"))].into_iter().collect(),
            from_headers: vec![(http::HeaderName::from_static("x-user"), "user".to_owned())],
        };
        let Value::Object(request) = json!({"env": "dev", "user": "mallory", "plan": "pro"}) else {
            unreachable!()
        };
        let context = rules.assemble(request, |name| (name == "x-user").then_some("alice"));
        assert_eq!(
            Value::Object(context),
            json!({"env": "prod", "user": "alice", "plan": "pro"})
        );
    }
}
