//! The sync payload: a flagd document of the flags visible through a selector,
//! shaped as flagd sends it (`$evaluators` inlined, flag-set metadata merged
//! into each flag, `source` named, `defaultVariant` `""` for code defaults),
//! and a cache so that a change fanned out to many streams is serialised once
//! per selector.
//!
//! Selectors are client input, so the cache is bounded: a selector that
//! matches no flag is never cached (its payload is the empty document), and at
//! most [`MAX_CACHED_PAYLOADS`] payloads of at most [`MAX_CACHED_PAYLOAD_BYTES`]
//! together are kept per generation; past that, payloads are rendered per
//! request. Selectors that match flags are few (one per flag set and source).

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

/// The most payloads cached per generation: far more than the flag sets and
/// sources of a deployment, the only selectors that match anything.
pub const MAX_CACHED_PAYLOADS: usize = 64;

/// The most bytes of payloads cached per generation: several whole documents
/// of the default flag document limit.
pub const MAX_CACHED_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// The rendered payloads of one generation, per selector.
#[derive(Debug, Default)]
struct Rendered {
    generation: u64,
    payloads: HashMap<Option<Selector>, Arc<str>>,
    /// The payloads' length together.
    bytes: usize,
}

/// What a [`PayloadCache`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    /// Payloads cached.
    pub entries: usize,
    /// Their length together, in bytes.
    pub bytes: usize,
}

/// Payloads of the latest generation, per selector, within bounds.
#[derive(Debug)]
pub struct PayloadCache {
    entries: Mutex<Rendered>,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for PayloadCache {
    /// A cache of [`MAX_CACHED_PAYLOADS`] and [`MAX_CACHED_PAYLOAD_BYTES`].
    fn default() -> Self {
        PayloadCache::new(MAX_CACHED_PAYLOADS, MAX_CACHED_PAYLOAD_BYTES)
    }
}

impl PayloadCache {
    /// A cache of at most `max_entries` payloads of `max_bytes` together.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        PayloadCache {
            entries: Mutex::default(),
            max_entries,
            max_bytes,
        }
    }

    /// The payload of `published` for `selector`, rendered at most once while
    /// the cache has room, and never kept when the selector matches no flag.
    pub fn get(&self, published: &Published, selector: Option<&Selector>) -> Arc<str> {
        let mut entries = self.lock();
        if entries.generation != published.generation {
            *entries = Rendered {
                generation: published.generation,
                ..Rendered::default()
            };
        }
        if let Some(payload) = entries.payloads.get(&selector.cloned()) {
            return Arc::clone(payload);
        }
        let payload: Arc<str> = render(&published.snapshot, selector).into();
        let matches_nothing = published.snapshot.flags(selector).next().is_none();
        let fits = entries.payloads.len() < self.max_entries
            && entries.bytes.saturating_add(payload.len()) <= self.max_bytes;
        if fits && !matches_nothing {
            entries.bytes += payload.len();
            entries
                .payloads
                .insert(selector.cloned(), Arc::clone(&payload));
        }
        payload
    }

    /// What the cache holds now.
    pub fn usage(&self) -> CacheUsage {
        let entries = self.lock();
        CacheUsage {
            entries: entries.payloads.len(),
            bytes: entries.bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rendered> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
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

    /// A generation with flag sets `set-0` … `set-<sets - 1>`, one flag each.
    fn published(sets: usize) -> Published {
        let sources = (0..sets)
            .map(|i| {
                let document = json!({"metadata": {"flagSetId": format!("set-{i}")},
                    "flags": {"f": {"state": "ENABLED", "variants": {"on": true}}}});
                let loaded = load_value(&document, &Limits::default()).unwrap();
                Source::new(format!("s{i}.json"), loaded.document)
            })
            .collect();
        Published {
            generation: 1,
            snapshot: Arc::new(Snapshot::build(sources, EvaluationOptions::default())),
        }
    }

    fn set(i: usize) -> Selector {
        Selector::FlagSet(format!("set-{i}"))
    }

    #[test]
    fn selectors_matching_nothing_are_answered_but_never_cached() {
        let published = published(2);
        let cache = PayloadCache::default();
        for i in 0..1_000 {
            let selector = Selector::Source(format!("{i:01000}"));
            assert_eq!(&*cache.get(&published, Some(&selector)), r#"{"flags":{}}"#);
        }
        assert_eq!(
            cache.usage(),
            CacheUsage {
                entries: 0,
                bytes: 0
            }
        );
        let payload = cache.get(&published, Some(&set(1)));
        assert!(payload.contains("set-1"));
        assert!(Arc::ptr_eq(&payload, &cache.get(&published, Some(&set(1)))));
        assert_eq!(
            cache.usage(),
            CacheUsage {
                entries: 1,
                bytes: payload.len()
            }
        );
    }

    #[test]
    fn the_cache_stays_within_its_entries_and_bytes() {
        let published = published(10);
        let one = render(&published.snapshot, Some(&set(0))).len();

        let cache = PayloadCache::new(3, usize::MAX);
        for i in 0..10 {
            let payload = cache.get(&published, Some(&set(i)));
            assert_eq!(*payload, *render(&published.snapshot, Some(&set(i))));
        }
        assert_eq!(cache.usage().entries, 3);

        let cache = PayloadCache::new(usize::MAX, 4 * one + one / 2);
        for i in 0..10 {
            cache.get(&published, Some(&set(i)));
        }
        assert_eq!(cache.usage().entries, 4);
        assert!(cache.usage().bytes <= 4 * one + one / 2);

        // A new generation starts empty.
        let next = Published {
            generation: 2,
            ..published
        };
        cache.get(&next, None);
        assert_eq!(cache.usage().entries, 1);
    }
}
