//! Resolving a static flag allocates nothing: values, variant names and
//! metadata are borrowed from the snapshot. An instrumented allocator checks it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::System;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ensign_engine::document::{Limits, load_value};
use ensign_engine::{Context, EvaluationOptions, Reason, RequestedType, Snapshot, Source};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The allocator's counters are global: the tests of this file run one at a
/// time, set-up included, so none allocates while another measures.
static MEASURING: Mutex<()> = Mutex::new(());

fn measuring() -> MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn static_and_disabled_flags_resolve_without_allocating() {
    // Held for the whole test: its set-up allocates too.
    let _measuring = measuring();
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

/// A segment of about 6 KB: an `in` over 250 e-mail addresses.
fn large_segment() -> serde_json::Value {
    let emails: Vec<String> = (0..250)
        .map(|i| format!("user-{i:05}@example.com"))
        .collect();
    json!({"in": [{"var": "email"}, emails]})
}

/// The attack of issue #11: a small document whose one rule references a
/// 6 KB evaluator thousands of times. Inlined it would be 24 MB of JSON and
/// compile to a tree as large; it is refused by counting, before any copy.
#[test]
fn a_rule_multiplying_a_large_evaluator_is_refused_without_building_it() {
    // Held for the whole test: its set-up allocates too.
    let _measuring = measuring();
    let segment = large_segment();
    let segment_bytes = segment.to_string().len();
    assert!((5_000..7_000).contains(&segment_bytes), "{segment_bytes}");
    let refs = 4_000;
    let document = json!({
        "$evaluators": {"customers": segment},
        "flags": {"banner": {
            "state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"or": vec![json!({"$ref": "customers"}); refs]}, "on", "off"]}
        }}
    });
    assert!(document.to_string().len() < 100_000);

    let region = Region::new(GLOBAL);
    let error = load_value(&document, &Limits::default()).unwrap_err();
    let allocated = region.change().bytes_allocated;

    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(error.problems[0].path, "/flags/banner/targeting");
    assert!(
        error.problems[0]
            .message
            .contains("limit of 1048576 bytes per flag"),
        "{error}"
    );
    // Inlining would need more than refs × segment_bytes (24 MB); what is
    // allocated is the walk over the document's own 4,000 references.
    assert!(
        allocated < 1024 * 1024,
        "{allocated} bytes allocated to refuse the document"
    );
}

/// Many flags, each within the per-flag limits, together over the
/// per-document limit: refused, and no flag past the limit is compiled.
#[test]
fn rules_together_over_the_document_limit_are_refused_with_bounded_allocation() {
    // Held for the whole test: its set-up allocates too.
    let _measuring = measuring();
    let refs = 150; // about 900 KB per flag once inlined, under 1 MiB
    let rule = json!({"or": vec![json!({"$ref": "customers"}); refs]});
    let flags: serde_json::Map<String, serde_json::Value> = (0..40)
        .map(|i| {
            let flag = json!({"state": "ENABLED", "variants": {"on": true}, "targeting": rule});
            (format!("flag-{i:02}"), flag)
        })
        .collect();
    let document = json!({"$evaluators": {"customers": large_segment()}, "flags": flags});

    let region = Region::new(GLOBAL);
    let error = load_value(&document, &Limits::default()).unwrap_err();
    let allocated = region.change().bytes_allocated;

    let first = &error.problems[0];
    assert!(
        first
            .message
            .contains("limit of 16777216 bytes per document"),
        "{error}"
    );
    // `{"or":[` and `]}` around the references and their commas.
    let per_flag = 7 + refs * large_segment().to_string().len() + (refs - 1) + 2;
    let fitting = 16 * 1024 * 1024 / per_flag;
    assert_eq!(first.path, format!("/flags/flag-{fitting:02}/targeting"));
    // The flags within the limit were compiled and inlined (as JSON values,
    // some times their bytes); the ones over it were not.
    let within = fitting * per_flag;
    assert!(
        allocated < 8 * within,
        "{allocated} bytes allocated to refuse the document"
    );
}
