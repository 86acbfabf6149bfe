//! Fuzz target: parse an arbitrary flag document as JSON and as YAML and, when
//! it loads, evaluate every flag for an arbitrary context.
//!
//! Input layout: `document [0x00 context]`. Everything before the first NUL byte
//! is the document (lossily decoded as UTF-8); what follows is the context. A
//! context that parses as a JSON object is used as it is; any other bytes become
//! the `targetingKey` of a small fixed context, so that they still drive
//! `fractional` bucketing. Without a NUL the fixed context is used.
//!
//! Each loaded document is evaluated under both bucketing generations: every
//! flag with every requested type, `resolve_all` with and without a flag-set
//! selector, and a flag that does not exist. Besides "no panic, no stack
//! overflow", the target checks the invariants `Resolution` documents, so that a
//! logic slip shows up as a crash too.

#![no_main]

use ensign_engine::document::{self, Format, Limits};
use ensign_engine::{
    Context, ErrorCode, EvaluationOptions, FlagValue, FractionalGeneration, Reason, RequestedType,
    Resolution, Selector, Snapshot, Source,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The evaluation time: a fixed instant, so runs are reproducible.
const NOW: i64 = 1_700_000_000;

const GENERATIONS: [FractionalGeneration; 2] = [FractionalGeneration::V2, FractionalGeneration::V3];

const REQUESTED_TYPES: [RequestedType; 5] = [
    RequestedType::Boolean,
    RequestedType::String,
    RequestedType::Integer,
    RequestedType::Float,
    RequestedType::Object,
];

fuzz_target!(|input: &[u8]| {
    let (document_bytes, context_bytes) = match input.iter().position(|&byte| byte == 0) {
        Some(split) => (&input[..split], Some(&input[split + 1..])),
        None => (input, None),
    };
    let text = String::from_utf8_lossy(document_bytes);
    let context = context_from(context_bytes);
    for format in [Format::Json, Format::Yaml] {
        if let Ok(loaded) = document::load(&text, format, &Limits::default()) {
            for generation in GENERATIONS {
                let source = Source::new("fuzz", loaded.document.clone());
                let snapshot = Snapshot::build(
                    vec![source],
                    EvaluationOptions {
                        fractional: generation,
                    },
                );
                evaluate_everything(&snapshot, &context);
            }
        }
    }
});

/// The evaluation context the input's second part describes.
fn context_from(bytes: Option<&[u8]>) -> Context {
    let mut context = Context::new();
    if let Some(bytes) = bytes {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) {
            return map;
        }
        context.insert(
            "targetingKey".to_owned(),
            Value::String(String::from_utf8_lossy(bytes).into_owned()),
        );
    } else {
        context.insert("targetingKey".to_owned(), Value::from("fuzz-user"));
    }
    context.insert("email".to_owned(), Value::from("someone@example.com"));
    context.insert("age".to_owned(), Value::from(42));
    context.insert("version".to_owned(), Value::from("1.2.3"));
    context
}

fn evaluate_everything(snapshot: &Snapshot, context: &Context) {
    let keys: Vec<String> = snapshot
        .flags(None)
        .map(|flag| flag.key().to_owned())
        .collect();
    for key in &keys {
        for requested in REQUESTED_TYPES {
            let resolution = snapshot.resolve(key, requested, context, NOW);
            check_invariants(&resolution, Some(requested));
        }
    }
    let all: Vec<_> = snapshot.resolve_all(None, context, NOW).collect();
    assert_eq!(
        all.len(),
        keys.len(),
        "resolve_all must yield each visible flag once"
    );
    for (_, resolution) in &all {
        check_invariants(resolution, None);
    }
    if let Some(set) = snapshot.flags(None).find_map(|flag| flag.flag_set_id()) {
        let selector = Selector::FlagSet(set.to_owned());
        for (flag, resolution) in snapshot.resolve_all(Some(&selector), context, NOW) {
            assert_eq!(flag.flag_set_id(), Some(set));
            check_invariants(&resolution, None);
        }
    }
    let missing = snapshot.resolve("\u{0}no such flag", RequestedType::String, context, NOW);
    if !keys.iter().any(|key| key == "\u{0}no such flag") {
        assert_eq!(missing.error_code(), Some(ErrorCode::FlagNotFound));
    }
}

/// What every resolution promises: an error exactly when the reason is `ERROR`,
/// a variant with every value, and (for typed requests) a value of that type.
fn check_invariants(resolution: &Resolution<'_, &FlagValue>, requested: Option<RequestedType>) {
    assert_eq!(
        resolution.error.is_some(),
        resolution.reason == Reason::Error,
        "error set exactly when the reason is ERROR: {resolution:?}"
    );
    if let Some(value) = resolution.value {
        assert!(
            resolution.variant.is_some(),
            "a value without a variant: {resolution:?}"
        );
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
            assert!(matches, "{requested} request answered with {value:?}");
        }
    }
}
