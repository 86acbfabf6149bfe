//! Criterion benchmarks of the engine's hot paths, on the scenarios shared with
//! the peer benchmarks (`benches/scenarios/README.md` at the repository root):
//! the same flags, the same 1,024 rotating contexts.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ensign_engine::document::{self, Format, Limits};
use ensign_engine::{
    Context, EvaluationOptions, FractionalGeneration, RequestedType, Snapshot, Source,
};
use serde_json::{Value, json};

const SCENARIOS: &str = include_str!("../../../benches/scenarios/flags.json");
const NOW: i64 = 1_767_225_600;

/// Context `i` of the shared formula.
fn context(i: usize) -> Context {
    const COUNTRIES: [&str; 8] = ["US", "DE", "GB", "FR", "CA", "NL", "SE", "BR"];
    const DOMAINS: [&str; 7] = [
        "example.com",
        "acme.com",
        "mail.com",
        "corp.com",
        "shop.com",
        "dev.com",
        "example.org",
    ];
    let value = json!({
        "targetingKey": format!("user-{i}"),
        "email": format!("user-{i}@{}", DOMAINS[i % 7]),
        "country": COUNTRIES[i % 8],
        "plan": if i % 6 == 5 { "free" } else { "pro" },
        "age": 17 + 6 * (i % 9),
        "appVersion": format!("2.{}.{}", i % 11, i % 13),
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Flag `j` of the generated documents (`bulk_flag` in `gen_10k.py`).
fn bulk_flag(j: usize) -> Value {
    let bucket_by = json!({"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]});
    match j % 10 {
        9 => json!({
            "state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a",
            "targeting": {"fractional": [bucket_by, ["a", 50], ["b", 50]]}
        }),
        kind @ (1 | 4 | 7) => {
            let condition = match kind {
                1 => json!({"==": [{"var": "plan"}, "pro"]}),
                4 => json!({"in": [{"var": "country"}, ["US", "DE", "GB"]]}),
                _ => json!({">=": [{"var": "age"}, 18 + j % 50]}),
            };
            json!({
                "state": "ENABLED", "variants": {"on": "on", "off": "off"}, "defaultVariant": "off",
                "targeting": {"if": [condition, "on", "off"]}
            })
        }
        _ => match j % 3 {
            0 => {
                json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"})
            }
            1 => {
                json!({"state": "ENABLED", "variants": {"alpha": "alpha", "beta": "beta"}, "defaultVariant": "beta"})
            }
            _ => {
                json!({"state": "ENABLED", "variants": {"small": 1, "large": 100}, "defaultVariant": "large"})
            }
        },
    }
}

fn snapshot(text: &str, fractional: FractionalGeneration) -> Snapshot {
    let loaded = document::load(text, Format::Json, &Limits::default()).unwrap();
    Snapshot::build(
        vec![Source::new("bench", loaded.document)],
        EvaluationOptions { fractional },
    )
}

fn evaluation(c: &mut Criterion) {
    let contexts: Vec<Context> = (0..1024).map(context).collect();
    for generation in [FractionalGeneration::V3, FractionalGeneration::V2] {
        let name = format!("{generation:?}").to_lowercase();
        let snapshot = snapshot(SCENARIOS, generation);
        let mut group = c.benchmark_group(format!("evaluate/{name}"));
        for (scenario, key, requested) in [
            ("static", "static-flag", RequestedType::Boolean),
            ("fractional", "fractional-flag", RequestedType::String),
            ("rule_5_conditions", "rule-flag", RequestedType::String),
            ("missing_flag", "missing-flag", RequestedType::Boolean),
            ("disabled_flag", "disabled-flag", RequestedType::Boolean),
        ] {
            let mut i = 0;
            group.bench_function(scenario, |b| {
                b.iter(|| {
                    i = (i + 1) % contexts.len();
                    let resolution = snapshot.resolve(black_box(key), requested, &contexts[i], NOW);
                    black_box(resolution.reason)
                })
            });
        }
        group.finish();
    }

    let bulk: serde_json::Map<String, Value> = (0..100)
        .map(|j| (format!("bulk-{j:03}"), bulk_flag(j)))
        .collect();
    let bulk = snapshot(
        &json!({ "flags": bulk }).to_string(),
        FractionalGeneration::V3,
    );
    let mut i = 0;
    c.bench_function("resolve_all_100", |b| {
        b.iter(|| {
            i = (i + 1) % contexts.len();
            bulk.resolve_all(None, &contexts[i], NOW)
                .filter(|(_, r)| r.value.is_some())
                .count()
        })
    });

    let flags: serde_json::Map<String, Value> = (0..10_000)
        .map(|j| (format!("flag-{j:05}"), bulk_flag(j)))
        .collect();
    let text = json!({ "flags": flags }).to_string();
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function("load_compile_10k", |b| {
        b.iter(|| {
            let loaded =
                document::load(black_box(&text), Format::Json, &Limits::default()).unwrap();
            Snapshot::build(
                vec![Source::new("bench", loaded.document)],
                EvaluationOptions::default(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, evaluation);
criterion_main!(benches);
