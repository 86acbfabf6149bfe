//! The sync payload: a flagd document of the flags visible through a selector,
//! shaped as flagd sends it (`$evaluators` inlined, flag-set metadata merged
//! into each flag, `source` named, `defaultVariant` `""` for code defaults),
//! and a cache so that a change fanned out to many streams is serialised once
//! per selector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ensign_engine::metadata::metadata_to_json;
use ensign_engine::{Selector, Snapshot};
use ensign_store::Published;
use serde_json::{Map, Value};

/// The payload for `selector` of `snapshot`.
pub fn render(snapshot: &Snapshot, selector: Option<&Selector>) -> String {
    let mut flags = Map::new();
    for flag in snapshot.flags(selector) {
        let mut entry = flag.definition().clone();
        if entry.get("defaultVariant").is_none_or(Value::is_null) {
            entry.insert("defaultVariant".to_owned(), Value::from(""));
        }
        if let Some(source) = snapshot.source_of(selector, flag.key()) {
            entry.insert("source".to_owned(), Value::from(source));
        }
        if !flag.metadata().is_empty() {
            entry.insert(
                "metadata".to_owned(),
                Value::Object(metadata_to_json(flag.metadata())),
            );
        }
        flags.insert(flag.key().to_owned(), Value::Object(entry));
    }
    let mut document = Map::new();
    document.insert("flags".to_owned(), Value::Object(flags));
    Value::Object(document).to_string()
}

/// The rendered payloads of one generation, per selector.
#[derive(Debug, Default)]
struct Rendered {
    generation: u64,
    payloads: HashMap<Option<Selector>, Arc<str>>,
}

/// Payloads of the latest generation, per selector.
#[derive(Debug, Default)]
pub struct PayloadCache {
    entries: Mutex<Rendered>,
}

impl PayloadCache {
    /// The payload of `published` for `selector`, rendered at most once.
    pub fn get(&self, published: &Published, selector: Option<&Selector>) -> Arc<str> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.generation != published.generation {
            *entries = Rendered {
                generation: published.generation,
                payloads: HashMap::new(),
            };
        }
        Arc::clone(
            entries
                .payloads
                .entry(selector.cloned())
                .or_insert_with(|| render(&published.snapshot, selector).into()),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ensign_engine::document::{Limits, load_value};
    use ensign_engine::{EvaluationOptions, Source};
    use serde_json::json;

    #[test]
    fn payload_inlines_evaluators_and_merges_metadata() {
        let document = json!({
            "metadata": {"flagSetId": "web", "version": 3},
            "$evaluators": {"pro": {"==": [{"var": "plan"}, "pro"]}},
            "flags": {
                "a": {"state": "ENABLED", "variants": {"x": 1}, "metadata": {"owner": "me"},
                      "targeting": {"if": [{"$ref": "pro"}, "x", null]}},
                "b": {"state": "DISABLED", "variants": {"y": true}}
            }
        });
        let loaded = load_value(&document, &Limits::default()).unwrap();
        let snapshot = Snapshot::build(
            vec![Source::new("flags.json", loaded.document)],
            EvaluationOptions::default(),
        );
        let payload: Value = serde_json::from_str(&render(&snapshot, None)).unwrap();
        assert_eq!(
            payload,
            json!({"flags": {
                "a": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "",
                      "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "x", null]},
                      "source": "flags.json",
                      "metadata": {"flagSetId": "web", "version": 3, "owner": "me"}},
                "b": {"state": "DISABLED", "variants": {"y": true}, "defaultVariant": "",
                      "source": "flags.json", "metadata": {"flagSetId": "web", "version": 3}}
            }})
        );
        let other = Selector::parse("flagSetId=other").unwrap();
        assert_eq!(render(&snapshot, Some(&other)), r#"{"flags":{}}"#);
    }
}
