//! Resolving a static flag allocates nothing: values, variant names and
//! metadata are borrowed from the snapshot. An instrumented allocator checks it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::System;

use ensign_engine::document::{Limits, load_value};
use ensign_engine::{Context, EvaluationOptions, Reason, RequestedType, Snapshot, Source};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn static_and_disabled_flags_resolve_without_allocating() {
    let document = json!({
        "metadata": {"flagSetId": "web"},
        "flags": {
            "banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
                       "metadata": {"owner": "growth"}},
            "color": {"state": "ENABLED", "variants": {"red": "#f00"}, "defaultVariant": "red"},
            "off": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"}
        }
    });
    let loaded = load_value(&document, &Limits::default()).unwrap();
    let snapshot = Snapshot::build(
        vec![Source::new("flags.json", loaded.document)],
        EvaluationOptions::default(),
    );
    let mut context = Context::new();
    context.insert("targetingKey".to_owned(), json!("user-1"));

    let region = Region::new(GLOBAL);
    let mut served = 0;
    for _ in 0..1_000 {
        let banner = snapshot.resolve_boolean("banner", &context, 0);
        let color = snapshot.resolve("color", RequestedType::String, &context, 0);
        let off = snapshot.resolve("off", RequestedType::Boolean, &context, 0);
        served += usize::from(banner.value == Some(true))
            + usize::from(color.reason == Reason::Static)
            + usize::from(off.reason == Reason::Disabled);
    }
    let allocations = region.change().allocations;
    assert_eq!(served, 3_000);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in 3,000 static resolutions"
    );
}
