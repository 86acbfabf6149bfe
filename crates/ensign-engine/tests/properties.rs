//! Property tests of the engine's public API.
//!
//! - `fractional` bucketing: the bucket mapping stays in range, resolution is
//!   deterministic, shares follow the weights, raising a weight never takes a
//!   key away from that variant, and resolution agrees with a reference model
//!   built from `ensign_engine::hashing`; each under both bucketing generations.
//! - Robustness: arbitrary JSON documents, generated flags with arbitrary
//!   JsonLogic, and mutations of valid documents load or are rejected, and
//!   evaluate for arbitrary contexts, without panicking and with the invariants
//!   that [`Resolution`] documents.
//! - Parse limits: documents nested 10,000 levels deep are rejected with a
//!   clear message instead of overflowing the stack, in JSON and in YAML.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ensign_engine::document::{self, Format, Limits};
use ensign_engine::hashing::{bucket, cbor, murmur3_x86_32};
use ensign_engine::{
    Context, ErrorCode, EvaluationOptions, FlagValue, FractionalGeneration, Reason, RequestedType,
    Resolution, Snapshot, Source,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// Both bucketing generations; every fractional property is checked under each.
const GENERATIONS: [FractionalGeneration; 2] = [FractionalGeneration::V2, FractionalGeneration::V3];

const REQUESTED_TYPES: [RequestedType; 5] = [
    RequestedType::Boolean,
    RequestedType::String,
    RequestedType::Integer,
    RequestedType::Float,
    RequestedType::Object,
];

/// The evaluation time used throughout (unix seconds).
const NOW: i64 = 1_700_000_000;

/// Loads `document` and builds a one-source snapshot for `generation`.
fn snapshot(document: &Value, generation: FractionalGeneration) -> Snapshot {
    let loaded = document::load_value(document, &Limits::default())
        .unwrap_or_else(|error| panic!("document rejected: {error}\n{document:#}"));
    Snapshot::build(
        vec![Source::new("p", loaded.document)],
        EvaluationOptions {
            fractional: generation,
        },
    )
}

/// The name of the `index`th variant of the generated fractional flags.
fn variant_name(index: usize) -> String {
    format!("v{index}")
}

/// A document with one string flag `flag_key` whose targeting is a shorthand
/// `fractional` (bucketing by flag key and targeting key) over `weights`.
fn fractional_document(flag_key: &str, weights: &[u32]) -> Value {
    fractional_document_by(flag_key, weights, None)
}

/// As [`fractional_document`], with an explicit bucketing expression if given.
fn fractional_document_by(flag_key: &str, weights: &[u32], bucket_by: Option<Value>) -> Value {
    let variants: Map<String, Value> = (0..weights.len())
        .map(|i| (variant_name(i), Value::from(format!("value {i}"))))
        .collect();
    let mut arguments: Vec<Value> = bucket_by.into_iter().collect();
    arguments.extend(
        weights
            .iter()
            .enumerate()
            .map(|(i, weight)| json!([variant_name(i), weight])),
    );
    json!({
        "flags": {
            flag_key: {
                "state": "ENABLED",
                "variants": variants,
                "defaultVariant": variant_name(0),
                "targeting": { "fractional": arguments },
            }
        }
    })
}

fn context_with_key(targeting_key: &str) -> Context {
    let mut context = Context::new();
    context.insert("targetingKey".to_owned(), Value::from(targeting_key));
    context
}

/// The variant `key` resolves to, asserting that `fractional` chose it.
fn variant_for<'s>(snapshot: &'s Snapshot, flag_key: &str, context: &Context) -> &'s str {
    let resolution = snapshot.resolve(flag_key, RequestedType::String, context, NOW);
    assert_eq!(resolution.reason, Reason::TargetingMatch, "{resolution:?}");
    resolution
        .variant
        .expect("a targeting match names its variant")
}

/// The variant chosen for each of `count` keys `user-<i>`.
fn variants_of_keys(snapshot: &Snapshot, flag_key: &str, count: usize) -> Vec<String> {
    let mut context = Context::new();
    (0..count)
        .map(|i| {
            context.insert("targetingKey".to_owned(), Value::from(format!("user-{i}")));
            variant_for(snapshot, flag_key, &context).to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Bucket range
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// `(hash × total) >> 32` lies in `[0, total)` for every hash and every total
    /// flagd accepts.
    #[test]
    fn bucket_is_below_the_total(hash in any::<u32>(), total in 1..=i32::MAX as u32) {
        prop_assert!(bucket(hash, total) < total);
    }
}

#[test]
fn bucket_is_below_the_total_at_the_extremes() {
    for total in [1, 2, 3, 100, i32::MAX as u32 - 1, i32::MAX as u32] {
        for hash in [0, 1, i32::MAX as u32, 1 << 31, u32::MAX - 1, u32::MAX] {
            assert!(bucket(hash, total) < total, "hash {hash}, total {total}");
        }
    }
    assert_eq!(bucket(u32::MAX, i32::MAX as u32), i32::MAX as u32 - 1);
}

// ---------------------------------------------------------------------------
// Determinism and agreement with a reference model
// ---------------------------------------------------------------------------

/// Weights for a fractional: 1 to 8 entries, with a total flagd accepts.
fn weights_strategy() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        prop::collection::vec(0u32..=100, 1..=8),
        prop::collection::vec(0u32..=1_000_000, 1..=8),
        prop::collection::vec(0u32..=200_000_000, 1..=8),
    ]
}

/// A value for the explicit bucketing expression's context attribute.
fn bucketing_value_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        json_strategy(2),
    ]
}

/// The variant the engine should choose: `murmur3(input) → bucket → running
/// sum of the weights`, with `input` what the generation hashes for the
/// shorthand form. `None` when flagd yields null (zero total).
fn reference_variant(
    generation: FractionalGeneration,
    flag_key: &str,
    targeting_key: &str,
    weights: &[u32],
) -> Option<String> {
    let input = match generation {
        FractionalGeneration::V2 => format!("{flag_key}{targeting_key}").into_bytes(),
        FractionalGeneration::V3 => {
            let mut encoded = Vec::new();
            cbor::head(&mut encoded, 4, 2);
            cbor::text(&mut encoded, flag_key);
            cbor::text(&mut encoded, targeting_key);
            encoded
        }
    };
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return None;
    }
    let chosen = u64::from(bucket(murmur3_x86_32(&input, 0), total as u32));
    let mut running = 0;
    weights.iter().enumerate().find_map(|(i, &weight)| {
        running += u64::from(weight);
        (chosen < running).then(|| variant_name(i))
    })
}

/// The parts of a resolution that determinism is about.
fn outcome(
    resolution: &Resolution<'_, &FlagValue>,
) -> (Option<FlagValue>, Option<String>, Reason, Option<ErrorCode>) {
    (
        resolution.value.cloned(),
        resolution.variant.map(str::to_owned),
        resolution.reason,
        resolution.error_code(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same document and context resolve to the same outcome in two
    /// snapshots built from separately loaded copies of the document, and on
    /// repeated resolution in one snapshot: shorthand and explicit bucketing.
    #[test]
    fn same_input_same_variant(
        flag_key in "[a-z0-9_-]{1,12}",
        weights in weights_strategy(),
        targeting_key in any::<String>(),
        bucketing_value in bucketing_value_strategy(),
        explicit in any::<bool>(),
    ) {
        let bucket_by = explicit.then(|| json!({"var": "bucket"}));
        let document = fractional_document_by(&flag_key, &weights, bucket_by);
        let mut context = context_with_key(&targeting_key);
        context.insert("bucket".to_owned(), bucketing_value);
        for generation in GENERATIONS {
            let first = snapshot(&document, generation);
            let second = snapshot(&document, generation);
            let expected = outcome(&first.resolve(&flag_key, RequestedType::String, &context, NOW));
            prop_assert_eq!(
                &outcome(&second.resolve(&flag_key, RequestedType::String, &context, NOW)),
                &expected
            );
            prop_assert_eq!(
                &outcome(&first.resolve(&flag_key, RequestedType::String, &context, NOW)),
                &expected
            );
        }
    }

    /// The shorthand `fractional` chooses exactly the variant that the
    /// generation's hash input, [`murmur3_x86_32`], [`bucket`]
    /// and a running sum of the weights choose.
    #[test]
    fn resolution_matches_the_reference_model(
        flag_key in "[a-zA-Z0-9_.-]{1,16}",
        weights in weights_strategy(),
        targeting_keys in prop::collection::vec("\\PC{1,24}", 1..16),
    ) {
        let document = fractional_document(&flag_key, &weights);
        for generation in GENERATIONS {
            let snapshot = snapshot(&document, generation);
            for targeting_key in &targeting_keys {
                let context = context_with_key(targeting_key);
                let resolution = snapshot.resolve(&flag_key, RequestedType::String, &context, NOW);
                match reference_variant(generation, &flag_key, targeting_key, &weights) {
                    Some(expected) => {
                        prop_assert_eq!(resolution.reason, Reason::TargetingMatch);
                        prop_assert_eq!(resolution.variant, Some(expected.as_str()));
                    }
                    // A zero total yields null: the default variant, reason DEFAULT.
                    None => {
                        prop_assert_eq!(resolution.reason, Reason::Default);
                        prop_assert_eq!(resolution.variant, Some("v0"));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Distribution
// ---------------------------------------------------------------------------

/// The weight vectors whose shares are checked over 100,000 keys.
const SHARE_CASES: [&[u32]; 5] = [
    &[25, 25, 25, 25],
    &[10, 90],
    &[1, 2, 3, 4],
    &[50, 50],
    &[1, 99],
];

/// Over the keys `user-0` … `user-99999`, each variant's share of keys is within
/// one percentage point of its share of the total weight.
fn shares_follow_weights(generation: FractionalGeneration) {
    const KEYS: usize = 100_000;
    let mut flags = Map::new();
    for (case, weights) in SHARE_CASES.iter().enumerate() {
        let document = fractional_document(&format!("shares-{case}"), weights);
        flags.extend(document["flags"].as_object().cloned().unwrap_or_default());
    }
    let snapshot = snapshot(&json!({ "flags": flags }), generation);
    let mut counts: Vec<Vec<usize>> = SHARE_CASES.iter().map(|w| vec![0; w.len()]).collect();
    let mut context = Context::new();
    for i in 0..KEYS {
        context.insert("targetingKey".to_owned(), Value::from(format!("user-{i}")));
        for (case, count) in counts.iter_mut().enumerate() {
            let variant = variant_for(&snapshot, &format!("shares-{case}"), &context);
            let index: usize = variant[1..].parse().expect("variants are named v<i>");
            count[index] += 1;
        }
    }
    for (weights, count) in SHARE_CASES.iter().zip(&counts) {
        let total: u32 = weights.iter().sum();
        for (weight, hits) in weights.iter().zip(count) {
            let expected = 100.0 * f64::from(*weight) / f64::from(total);
            let observed = 100.0 * *hits as f64 / KEYS as f64;
            assert!(
                (observed - expected).abs() < 1.0,
                "{generation:?}, weights {weights:?}: expected {expected:.2}%, observed {observed:.2}%"
            );
        }
    }
}

#[test]
fn shares_follow_weights_v2() {
    shares_follow_weights(FractionalGeneration::V2);
}

#[test]
fn shares_follow_weights_v3() {
    shares_follow_weights(FractionalGeneration::V3);
}

// ---------------------------------------------------------------------------
// Monotonicity
// ---------------------------------------------------------------------------

/// How many keys the monotonicity properties follow.
const MONOTONIC_KEYS: usize = 2_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Raising one variant's weight never moves a key out of that variant, at
    /// any position, under both generations.
    ///
    /// Why it holds although the running-sum walk shifts the ranges of the
    /// variants after the raised one: write `x = hash / 2^32 ∈ [0, 1)`, `T` for
    /// the total, `S` for the sum of the weights up to and including variant
    /// `i`. A key is in `i` when `S − wᵢ ≤ ⌊xT⌋ < S`. Raising `wᵢ` by `d`
    /// makes the bucket `⌊x(T + d)⌋` and the range of `i` `[S − wᵢ, S + d)`.
    /// The bucket never falls (`x ≥ 0`), so it stays at or above `S − wᵢ`; and it
    /// rises by less than `d` (`x < 1`): `x(T + d) = xT + xd < S + d`, so it
    /// stays below `S + d`. The key stays in `i`.
    ///
    /// This is specific to the `(hash × total) >> 32` mapping, which scales with
    /// the total; it would not hold for `hash mod total`. And it is the only
    /// guarantee: keys of the other variants can move between them (see
    /// `raising_a_weight_can_move_keys_between_other_variants`).
    #[test]
    fn raising_a_weight_keeps_the_keys_of_that_variant(
        flag_key in "[a-z]{1,10}",
        weights in weights_strategy(),
        position in any::<Index>(),
        increase in prop_oneof![1u32..=10, 1u32..=1_000, 1u32..=100_000_000],
    ) {
        let raised = position.index(weights.len());
        let mut raised_weights = weights.clone();
        raised_weights[raised] += increase;
        prop_assume!(weights.iter().any(|&w| w > 0));
        let target = variant_name(raised);
        for generation in GENERATIONS {
            let before = variants_of_keys(&snapshot(&fractional_document(&flag_key, &weights), generation), &flag_key, MONOTONIC_KEYS);
            let after = variants_of_keys(&snapshot(&fractional_document(&flag_key, &raised_weights), generation), &flag_key, MONOTONIC_KEYS);
            for (i, (was, is)) in before.iter().zip(&after).enumerate() {
                prop_assert!(
                    was != &target || is == &target,
                    "{:?}: user-{} left {} ({} → {}) when its weight rose {:?} → {:?}",
                    generation, i, target, was, is, weights, raised_weights
                );
            }
        }
    }
}

/// The limit of the monotonicity guarantee: raising variant 0 of `[1, 1, 1]` to
/// 3 shifts the ranges of variants 1 and 2 (`[1, 2)` and `[2, 3)` of 3 become
/// `[3, 4)` and `[4, 5)` of 5), and some keys of variant 2 land in variant 1.
#[test]
fn raising_a_weight_can_move_keys_between_other_variants() {
    for generation in GENERATIONS {
        let before = variants_of_keys(
            &snapshot(&fractional_document("shift", &[1, 1, 1]), generation),
            "shift",
            MONOTONIC_KEYS,
        );
        let after = variants_of_keys(
            &snapshot(&fractional_document("shift", &[3, 1, 1]), generation),
            "shift",
            MONOTONIC_KEYS,
        );
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(was, is)| *was == "v2" && *is == "v1")
            .count();
        assert!(
            moved > 0,
            "{generation:?}: expected keys to move from v2 to v1"
        );
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(was, is)| was != "v0" || is == "v0"),
            "{generation:?}: a key left the raised variant"
        );
    }
}

// ---------------------------------------------------------------------------
// No panics
// ---------------------------------------------------------------------------

/// Strings that mean something to the engine, and some that do not.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "flags",
            "state",
            "ENABLED",
            "DISABLED",
            "variants",
            "defaultVariant",
            "targeting",
            "metadata",
            "$evaluators",
            "$ref",
            "flagSetId",
            "key",
            "on",
            "off",
            "v0",
            "v1",
            "targetingKey",
            "email",
            "age",
            "version",
            "tier",
            "$flagd",
            "$flagd.flagKey",
            "$flagd.timestamp",
            "1.2.3",
            "v1.0.0-rc.1+build",
            "0x1f",
            "-Infinity",
            "NaN",
            "1e308",
            "a.b.c",
            "0",
            "-1",
            "true",
            "null",
            "current",
            "accumulator",
            "~1/",
            "é",
            "\u{0}",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
        any::<String>(),
    ]
}

/// A JSON number: integers (signed and above `i64::MAX`) and finite floats.
fn number_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-5i64..=5).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            0.5,
            -0.0,
            1e-300,
            9_007_199_254_740_993.0,
            4_294_967_296.0,
            2_147_483_648.0
        ])
        .prop_map(Value::from),
    ]
}

/// JSON scalars.
fn scalar_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number_strategy(),
        interesting_string().prop_map(Value::from),
    ]
}

/// JSON trees at most `depth` levels of arrays and objects deep.
fn json_strategy(depth: u32) -> impl Strategy<Value = Value> {
    scalar_strategy().prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((interesting_string(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Every operator the compiler knows, and one it does not.
const OPERATORS: &[&str] = &[
    "var",
    "missing",
    "missing_some",
    "if",
    "?:",
    "==",
    "===",
    "!=",
    "!==",
    "!",
    "!!",
    "and",
    "or",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "min",
    "max",
    "cat",
    "substr",
    "in",
    "merge",
    "map",
    "filter",
    "all",
    "some",
    "none",
    "reduce",
    "fractional",
    "sem_ver",
    "starts_with",
    "ends_with",
    "$ref",
    "no_such_operator",
];

/// JsonLogic rules: operators applied to argument lists, context lookups and
/// literals, nested a few levels deep.
fn rule_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        3 => scalar_strategy(),
        3 => prop::sample::select(vec![
            "targetingKey", "email", "age", "version", "tier", "nested.list.0", "$flagd.flagKey",
            "$flagd.timestamp", "", "current", "accumulator", "missing",
        ])
        .prop_map(|path| json!({ "var": path })),
        1 => Just(json!({ "$ref": "shared" })),
        1 => Just(json!({ "$ref": "absent" })),
        1 => prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">=", "^", "~", "x"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            4 => (prop::sample::select(OPERATORS), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(op, args)| json!({ op: args })),
            2 => (prop::sample::select(OPERATORS), inner.clone()).prop_map(|(op, arg)| json!({ op: arg })),
            2 => (
                prop::option::of(inner.clone()),
                prop::collection::vec(
                    (prop::sample::select(vec!["a", "b", "c", "z"]), prop::option::of(prop_oneof![
                        number_strategy(),
                        inner.clone(),
                    ])),
                    0..5,
                ),
            )
                .prop_map(|(bucket_by, buckets)| {
                    let mut arguments: Vec<Value> = bucket_by.into_iter().collect();
                    arguments.extend(buckets.into_iter().map(|(variant, weight)| match weight {
                        Some(weight) => json!([variant, weight]),
                        None => json!([variant]),
                    }));
                    json!({ "fractional": arguments })
                }),
            1 => prop::collection::vec(inner, 0..4).prop_map(Value::Array),
        ]
    })
}

/// Valid flags of each variant type with generated targeting.
fn generated_document_strategy() -> impl Strategy<Value = Value> {
    let variants = prop_oneof![
        Just(json!({ "a": "A", "b": "B", "c": "C", "true": "T", "false": "F", "1": "one" })),
        Just(json!({ "true": true, "false": false })),
        Just(
            json!({ "a": 1, "b": 2.5, "c": -9_007_199_254_740_993_i64, "z": 18_446_744_073_709_551_615_u64 })
        ),
        Just(json!({ "a": {}, "b": { "nested": [1, 2] } })),
    ];
    (
        prop::collection::vec((variants, rule_strategy(), any::<bool>(), any::<bool>()), 1..4),
        rule_strategy(),
    )
        .prop_map(|(flags, shared)| {
            let flags: Map<String, Value> = flags
                .into_iter()
                .enumerate()
                .map(|(i, (variants, rule, enabled, has_default))| {
                    // Targeting must be an object; other rules become a condition.
                    let targeting = if rule.is_object() { rule } else { json!({ "if": [rule, "a", null] }) };
                    let default = variants.as_object().and_then(|v| v.keys().next().cloned());
                    let flag = json!({
                        "state": if enabled { "ENABLED" } else { "DISABLED" },
                        "variants": variants,
                        "defaultVariant": if has_default { default.map_or(Value::Null, Value::from) } else { Value::Null },
                        "targeting": targeting,
                        "metadata": { "flagSetId": format!("set-{}", i % 2), "n": i },
                    });
                    (format!("flag-{i}"), flag)
                })
                .collect();
            json!({ "$evaluators": { "shared": shared }, "flags": flags })
        })
}

/// Valid documents the mutations start from.
fn templates() -> Vec<Value> {
    vec![
        json!({
            "$evaluators": { "is_gold": { "==": [{ "var": "tier" }, "gold"] } },
            "metadata": { "flagSetId": "set", "team": "growth" },
            "flags": {
                "rollout": {
                    "state": "ENABLED",
                    "variants": { "on": true, "off": false },
                    "defaultVariant": "off",
                    "targeting": { "fractional": [{ "var": "email" }, ["on", 10], ["off", 90]] },
                },
                "gold": {
                    "state": "ENABLED",
                    "variants": { "a": "A", "b": "B" },
                    "defaultVariant": "a",
                    "targeting": { "if": [{ "$ref": "is_gold" }, "b", null] },
                    "metadata": { "owner": "x", "weight": 1.5 },
                },
            },
        }),
        json!({
            "flags": [
                {
                    "key": "versioned",
                    "state": "ENABLED",
                    "variants": { "new": { "ui": 2 }, "old": { "ui": 1 } },
                    "defaultVariant": "old",
                    "targeting": { "if": [
                        { "sem_ver": [{ "var": "version" }, ">=", "1.2.0"] }, "new",
                        { "starts_with": [{ "var": "email" }, "admin"] }, "new",
                        "old",
                    ] },
                },
                {
                    "key": "numbers",
                    "state": "DISABLED",
                    "variants": { "one": 1, "big": 9_007_199_254_740_993_u64, "half": 0.5 },
                    "defaultVariant": "half",
                    "targeting": { "fractional": [["one"], ["big", 2], ["half", { "+": [1, { "var": "age" }] }]] },
                },
            ]
        }),
        json!({
            "flags": {
                "reduce": {
                    "state": "ENABLED",
                    "variants": { "3": 3, "6": 6 },
                    "defaultVariant": null,
                    "targeting": { "cat": [{ "reduce": [{ "var": "nested.list" }, { "+": [{ "var": "current" }, { "var": "accumulator" }] }, 0] }] },
                },
                "missing": {
                    "state": "ENABLED",
                    "variants": { "[]": "none missing", "x": "x" },
                    "targeting": { "if": [{ "missing_some": [1, ["email", "age"]] }, "x", { "substr": [{ "var": "targetingKey" }, -3, 2] }] },
                },
            }
        }),
    ]
}

/// One edit to a document: at the node reached by following `path` (each step
/// picks a child modulo the number of children), replace it, remove one of its
/// members, or add a member.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Vec<Index>, Value),
    Remove(Vec<Index>, Index),
    Insert(Vec<Index>, String, Value),
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    let path = || prop::collection::vec(any::<Index>(), 0..8);
    prop_oneof![
        (path(), json_strategy(3)).prop_map(|(p, v)| Mutation::Replace(p, v)),
        (path(), rule_strategy()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        (path(), any::<Index>()).prop_map(|(p, i)| Mutation::Remove(p, i)),
        (path(), interesting_string(), json_strategy(2))
            .prop_map(|(p, k, v)| Mutation::Insert(p, k, v)),
    ]
}

/// The node `path` leads to, stopping early at a scalar.
fn node_at<'v>(mut value: &'v mut Value, path: &[Index]) -> &'v mut Value {
    for step in path {
        let children = match &*value {
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            _ => 0,
        };
        if children == 0 {
            break;
        }
        let chosen = step.index(children);
        value = match value {
            Value::Array(items) => &mut items[chosen],
            Value::Object(map) => map.values_mut().nth(chosen).expect("index within length"),
            _ => unreachable!("only containers have children"),
        };
    }
    value
}

fn apply(document: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::Replace(path, replacement) => *node_at(document, path) = replacement.clone(),
        Mutation::Remove(path, member) => match node_at(document, path) {
            Value::Array(items) if !items.is_empty() => {
                items.remove(member.index(items.len()));
            }
            Value::Object(map) if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(member.index(map.len()))
                    .cloned()
                    .expect("index within length");
                map.remove(&key);
            }
            _ => {}
        },
        Mutation::Insert(path, key, value) => match node_at(document, path) {
            Value::Array(items) => items.push(value.clone()),
            Value::Object(map) => {
                map.insert(key.clone(), value.clone());
            }
            _ => {}
        },
    }
}

/// Contexts: the attributes rules read, arbitrary attributes, arbitrary values.
fn context_strategy() -> impl Strategy<Value = Context> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "targetingKey",
            "email",
            "age",
            "version",
            "tier",
            "nested",
            "bucket",
            "$flagd"
        ])
        .prop_map(str::to_owned),
        interesting_string(),
    ];
    let nested =
        prop::collection::vec(json_strategy(2), 0..5).prop_map(|list| json!({ "list": list }));
    (
        prop::collection::vec((name, json_strategy(3)), 0..8),
        nested,
    )
        .prop_map(|(entries, nested)| {
            let mut context: Context = entries.into_iter().collect();
            context.entry("nested").or_insert(nested);
            context
        })
}

/// Loads `document` and, when it is accepted, resolves every flag with every
/// requested type under both generations, checking what [`Resolution`] promises.
fn load_and_evaluate(
    document: &Value,
    contexts: &[Context],
    now: i64,
) -> Result<bool, TestCaseError> {
    let Ok(loaded) = document::load_value(document, &Limits::default()) else {
        return Ok(false);
    };
    for generation in GENERATIONS {
        let snapshot = Snapshot::build(
            vec![Source::new("p", loaded.document.clone())],
            EvaluationOptions {
                fractional: generation,
            },
        );
        let keys: Vec<String> = snapshot
            .flags(None)
            .map(|flag| flag.key().to_owned())
            .collect();
        for context in contexts {
            for key in &keys {
                for requested in REQUESTED_TYPES {
                    check_resolution(
                        &snapshot.resolve(key, requested, context, now),
                        Some(requested),
                    )?;
                }
                let _ = snapshot.resolve_boolean(key, context, now);
                let _ = snapshot.resolve_integer(key, context, now);
                let _ = snapshot.resolve_float(key, context, now);
            }
            let all: Vec<_> = snapshot.resolve_all(None, context, now).collect();
            prop_assert_eq!(all.len(), keys.len());
            for (_, resolution) in &all {
                check_resolution(resolution, None)?;
            }
            let absent = snapshot.resolve("not a flag", RequestedType::String, context, now);
            if !keys.iter().any(|key| key == "not a flag") {
                prop_assert_eq!(absent.error_code(), Some(ErrorCode::FlagNotFound));
            }
        }
    }
    Ok(true)
}

/// An error exactly when the reason is `ERROR`; a variant with every value; a
/// value of the requested type.
fn check_resolution(
    resolution: &Resolution<'_, &FlagValue>,
    requested: Option<RequestedType>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        resolution.error.is_some(),
        resolution.reason == Reason::Error,
        "{:?}",
        resolution
    );
    if let Some(value) = resolution.value {
        prop_assert!(resolution.variant.is_some(), "{:?}", resolution);
        if let Some(requested) = requested {
            let matches = matches!(
                (requested, value),
                (RequestedType::Boolean, FlagValue::Bool(_))
                    | (RequestedType::String, FlagValue::String(_))
                    | (
                        RequestedType::Integer | RequestedType::Float,
                        FlagValue::Number(_)
                    )
                    | (RequestedType::Object, FlagValue::Object(_))
            );
            prop_assert!(matches, "{} request answered with {:?}", requested, value);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary JSON trees: almost all are rejected, none panics.
    #[test]
    fn arbitrary_json_never_panics(
        document in json_strategy(6),
        contexts in prop::collection::vec(context_strategy(), 1..3),
        now in any::<i64>(),
    ) {
        load_and_evaluate(&document, &contexts, now)?;
        let wrapped = json!({ "flags": document });
        load_and_evaluate(&wrapped, &contexts, now)?;
    }

    /// Valid flags with generated JsonLogic targeting load (unknown operators
    /// and unresolved `$ref`s are warnings) and evaluate without panicking.
    #[test]
    fn generated_rules_never_panic(
        document in generated_document_strategy(),
        contexts in prop::collection::vec(context_strategy(), 1..4),
        now in any::<i64>(),
    ) {
        let accepted = load_and_evaluate(&document, &contexts, now)?;
        prop_assert!(accepted, "a well-formed document was rejected: {:#}", document);
    }

    /// Valid documents after a few random edits: loaded or rejected, never a panic.
    #[test]
    fn mutated_documents_never_panic(
        template in prop::sample::select(templates()),
        mutations in prop::collection::vec(mutation_strategy(), 1..5),
        contexts in prop::collection::vec(context_strategy(), 1..3),
        now in any::<i64>(),
    ) {
        let mut document = template;
        for mutation in &mutations {
            apply(&mut document, mutation);
        }
        load_and_evaluate(&document, &contexts, now)?;
    }
}

#[test]
fn templates_are_valid() {
    for template in templates() {
        let loaded = document::load_value(&template, &Limits::default());
        assert!(loaded.is_ok(), "{loaded:?}");
    }
}

// ---------------------------------------------------------------------------
// Parse limits
// ---------------------------------------------------------------------------

/// The levels of nesting of the hostile documents.
const HOSTILE_DEPTH: usize = 10_000;

/// Asserts that `text` is rejected with a single document-level error whose
/// message says the nesting is too deep, and returns the message.
fn assert_rejected_as_too_deep(text: &str, format: Format) -> String {
    let error = match document::load(text, format, &Limits::default()) {
        Ok(_) => panic!("{format:?}: a document nested too deep was accepted"),
        Err(error) => error,
    };
    assert_eq!(error.problems.len(), 1, "{error}");
    let message = &error.problems[0].message;
    assert_eq!(error.problems[0].path, "", "{error}");
    assert!(
        message.contains("recursion limit") || message.contains("nests deeper"),
        "{format:?}: the message does not say the document is too deep: {message}"
    );
    message.clone()
}

#[test]
fn deeply_nested_arrays_are_rejected() {
    let open = "[".repeat(HOSTILE_DEPTH);
    let balanced = format!("{open}{}", "]".repeat(HOSTILE_DEPTH));
    for format in [Format::Json, Format::Yaml] {
        assert_rejected_as_too_deep(&open, format);
        assert_rejected_as_too_deep(&balanced, format);
    }
}

#[test]
fn deeply_nested_objects_are_rejected() {
    let open = "{\"a\":".repeat(HOSTILE_DEPTH);
    let balanced = format!("{open}1{}", "}".repeat(HOSTILE_DEPTH));
    let in_targeting = format!(
        "{{\"flags\":{{\"f\":{{\"state\":\"ENABLED\",\"variants\":{{\"a\":1}},\"targeting\":{balanced}}}}}}}"
    );
    for format in [Format::Json, Format::Yaml] {
        assert_rejected_as_too_deep(&open, format);
        assert_rejected_as_too_deep(&balanced, format);
        assert_rejected_as_too_deep(&in_targeting, format);
    }
}

#[test]
fn deeply_nested_yaml_block_style_is_rejected() {
    // Block style needs indentation growing with depth: 1,000 levels is ~1 MB.
    let text: String = (0..1_000)
        .map(|level| format!("{}a:\n", " ".repeat(level)))
        .collect();
    assert_rejected_as_too_deep(&format!("{text}{}1\n", " ".repeat(1_000)), Format::Yaml);
    let list: String = (0..1_000)
        .map(|level| format!("{}-\n", " ".repeat(level)))
        .collect();
    assert_rejected_as_too_deep(&list, Format::Yaml);
}

/// Deeper than the engine's limit (64) but within the parsers' (128): the
/// engine's own depth check answers.
#[test]
fn nesting_beyond_the_configured_depth_is_rejected() {
    let depth = 100;
    let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for format in [Format::Json, Format::Yaml] {
        let message = assert_rejected_as_too_deep(&text, format);
        assert!(
            message.contains("nests deeper than 64 levels"),
            "{format:?}: {message}"
        );
    }
}

// ---------------------------------------------------------------------------
// Explanations
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An explanation resolves exactly as evaluation does, and its trace names
    /// the bucket, contiguous ranges over the total weight, and the chosen
    /// variant, whose range holds the bucket.
    #[test]
    fn explanations_agree_with_evaluation(
        weights in weights_strategy(),
        key in "[a-z0-9]{0,12}",
        v3 in any::<bool>(),
    ) {
        let generation = if v3 { FractionalGeneration::V3 } else { FractionalGeneration::V2 };
        let snapshot = snapshot(&fractional_document("rollout", &weights), generation);
        let flag = snapshot.get("rollout").unwrap();
        let context = context_with_key(&key);
        let options = EvaluationOptions { fractional: generation };
        let evaluated = flag.evaluate(&context, NOW, &options);
        let (explained, traces) = flag.explain(&context, NOW, &options);
        prop_assert_eq!(&explained, &evaluated);
        let total: u32 = weights.iter().sum();
        if key.is_empty() || total == 0 {
            prop_assert!(traces.is_empty());
            return Ok(());
        }
        prop_assert_eq!(traces.len(), 1);
        let trace = &traces[0];
        prop_assert_eq!(trace.total_weight, total);
        prop_assert!(trace.bucket < total);
        prop_assert_eq!(trace.buckets.len(), weights.len());
        let mut from = 0;
        for (range, weight) in trace.buckets.iter().zip(&weights) {
            prop_assert_eq!(range.from, from);
            prop_assert_eq!(range.to - range.from, *weight);
            from = range.to;
        }
        prop_assert_eq!(from, total);
        prop_assert_eq!(trace.variant.as_deref(), evaluated.variant);
        let chosen = trace.buckets.iter().find(|r| r.from <= trace.bucket && trace.bucket < r.to).unwrap();
        prop_assert_eq!(&chosen.variant, &trace.variant);
        let expected_bucket_by = if v3 {
            json!(["rollout", key]).to_string()
        } else {
            format!("rollout{key}")
        };
        prop_assert_eq!(&trace.bucket_by, &expected_bucket_by);
    }
}

#[test]
fn explanations_show_the_bucketing_value_and_every_fractional_reached() {
    let document = json!({"flags": {"f": {
        "state": "ENABLED",
        "variants": {"a": 1, "b": 2, "c": 3},
        "defaultVariant": "a",
        "targeting": {"if": [
            {"==": [{"var": "plan"}, "pro"]},
            {"fractional": [{"var": "org"}, ["b", 1], ["c", 1]]},
            {"fractional": [{"var": "age"}, ["a", 0], ["b", 3]]}
        ]}
    }}});
    let snapshot = snapshot(&document, FractionalGeneration::V3);
    let flag = snapshot.get("f").unwrap();
    let options = EvaluationOptions::default();
    let context: Context = serde_json::from_value(json!({"plan": "pro", "org": "acme"})).unwrap();
    let (resolution, traces) = flag.explain(&context, NOW, &options);
    assert_eq!(traces.len(), 1, "only the fractional reached: {traces:?}");
    assert_eq!(traces[0].bucket_by, "acme");
    assert_eq!(traces[0].variant.as_deref(), resolution.variant);
    let context: Context = serde_json::from_value(json!({"age": 42})).unwrap();
    let (resolution, traces) = flag.explain(&context, NOW, &options);
    assert_eq!(traces[0].bucket_by, "42");
    assert_eq!(
        traces[0].buckets[0].to, 0,
        "a zero weight is an empty range"
    );
    assert_eq!(resolution.variant, Some("b"));
    // Without a usable bucketing value nothing is placed.
    let (resolution, traces) = flag.explain(&Context::new(), NOW, &options);
    assert!(traces.is_empty());
    assert_eq!(resolution.variant, Some("a"));
}
