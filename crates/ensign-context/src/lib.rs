//! What every evaluation surface (flagd RPC, sync, OFREP) does the same way
//! before evaluating: assemble the context (request, then header-mapped
//! values, then the server's static values, each overriding the one before;
//! wire contract §1.9), read the `Flagd-Selector` header, and read the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use ensign_engine::{Selector, SelectorError};
use serde_json::{Map, Value};

/// The header that selects a flag set or source.
pub const SELECTOR_HEADER: &str = "flagd-selector";

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

/// A request's selector from the `Flagd-Selector` header value (absent or
/// blank: none).
pub fn parse_selector(header: Option<&str>) -> Result<Option<Selector>, SelectorError> {
    match header.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => Selector::parse(text).map(Some),
    }
}

/// The metadata flagd reflects back for a request's selector
/// (`{"flagSetId": …}` or `{"source": …}`; empty without one).
pub fn selector_metadata(selector: Option<&Selector>) -> Map<String, Value> {
    let mut metadata = Map::new();
    if let Some(selector) = selector {
        let (key, value) = selector.reflection();
        metadata.insert(key.to_owned(), Value::from(value));
    }
    metadata
}

/// The current time in unix seconds, for `$flagd.timestamp`.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The current time in unix milliseconds, for records and latencies.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn selectors_come_from_the_header() {
        assert_eq!(parse_selector(None), Ok(None));
        assert_eq!(parse_selector(Some("  ")), Ok(None));
        assert_eq!(
            parse_selector(Some("flagSetId=web")),
            Ok(Some(Selector::FlagSet("web".to_owned())))
        );
        assert!(parse_selector(Some("team=web")).is_err());
    }

    #[test]
    fn selectors_longer_than_the_limit_are_refused_saying_so() {
        let longest = format!(
            "flagSetId={}",
            "w".repeat(ensign_engine::MAX_SELECTOR_BYTES - 10)
        );
        assert!(parse_selector(Some(&longest)).is_ok());
        let over = format!("{longest}w");
        assert_eq!(
            parse_selector(Some(&over)).map_err(|e| e.to_string()),
            Err("the selector is 1025 bytes long; the limit is 1024 bytes".to_owned())
        );
    }
}
