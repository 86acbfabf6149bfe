//! flagd's `fractional` operator in its two live bucketing generations.
//!
//! Both hash with MurmurHash3 x86 32-bit (seed 0) and map the hash onto the
//! total weight with `(hash × total) >> 32`; they differ in what is hashed:
//! - v2 hashes the UTF-8 bytes of the bucketing string, or of
//!   `flagKey + targetingKey` for the shorthand form;
//! - v3 hashes the deterministic CBOR encoding of the bucketing value (string,
//!   number, boolean or object), or of the array `[flagKey, targetingKey]`.
//!
//! See `docs/adr/0001-fractional-bucketing-generation.md`.
//!
//! When the [`Env`] carries a trace (explanations only; serving passes none),
//! every `fractional` that picks a bucket also records a [`FractionalTrace`]:
//! what was hashed, the bucket, and each variant's range.

use crate::FractionalGeneration;
use crate::hashing::{Murmur3, Sink, bucket, cbor};
use crate::logic::val::{Val, to_js_string};
use crate::logic::{Env, Fractional, Node, Weight};

/// How one `fractional` placed a context: recorded only when explaining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FractionalTrace {
    /// The hashed value as text: the bucketing value (JSON unless a string),
    /// or for the shorthand `flagKey` + `targetingKey` (v2) or the JSON array
    /// `[flagKey, targetingKey]` (v3).
    pub bucket_by: String,
    /// The bucket the hash fell into, `0 <= bucket < total_weight`.
    pub bucket: u32,
    /// The sum of the weights.
    pub total_weight: u32,
    /// Every entry in order with its range of buckets.
    pub buckets: Vec<BucketRange>,
    /// The variant chosen (`None` when its expression is not a scalar).
    pub variant: Option<String>,
}

/// One entry of a traced `fractional`: buckets `from <= b < to` pick `variant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRange {
    /// The entry's variant (`None` when its expression is not a scalar).
    pub variant: Option<String>,
    /// The entry's weight.
    pub weight: u32,
    /// The first bucket of the range.
    pub from: u32,
    /// One past the last bucket of the range.
    pub to: u32,
}

/// The largest total weight flagd accepts.
const MAX_TOTAL_WEIGHT: u64 = i32::MAX as u64;

/// Evaluates `fractional`; null whenever flagd yields null (no usable bucketing
/// value, malformed entry, non-integer weight, zero or oversized total).
pub(crate) fn evaluate<'a>(
    fractional: &'a Fractional,
    env: &Env<'a>,
    eval: &dyn Fn(&'a Node) -> Val<'a>,
) -> Val<'a> {
    if fractional.buckets.is_empty() {
        return Val::Null;
    }
    let Some(hash) = hash(fractional, env, eval) else {
        return Val::Null;
    };
    let mut weights = [0u32; 16];
    let mut dynamic = Vec::new();
    let weights: &mut [u32] = if fractional.buckets.len() <= weights.len() {
        &mut weights[..fractional.buckets.len()]
    } else {
        dynamic.resize(fractional.buckets.len(), 0);
        &mut dynamic
    };
    let mut total: u64 = 0;
    for (slot, entry) in weights.iter_mut().zip(&fractional.buckets) {
        let weight = match &entry.weight {
            Weight::Fixed(w) => *w,
            Weight::Invalid => return Val::Null,
            Weight::Dynamic(node) => match eval(node) {
                Val::Num(w) if w.fract() == 0.0 => w.clamp(0.0, f64::from(u32::MAX)) as u32,
                _ => return Val::Null,
            },
        };
        *slot = weight;
        total += u64::from(weight);
    }
    if total == 0 || total > MAX_TOTAL_WEIGHT {
        return Val::Null;
    }
    let chosen = bucket(hash, total as u32);
    if let Some(trace) = env.trace {
        let record = describe(fractional, env, eval, weights, chosen, total as u32);
        trace.borrow_mut().push(record);
    }
    let mut running: u64 = 0;
    for (weight, entry) in weights.iter().zip(&fractional.buckets) {
        running += u64::from(*weight);
        if u64::from(chosen) < running {
            return match eval(&entry.variant) {
                variant @ (Val::Null
                | Val::Bool(_)
                | Val::Num(_)
                | Val::Str(_)
                | Val::String(_)) => variant,
                _ => Val::Null,
            };
        }
    }
    Val::Null
}

/// The trace of a `fractional` that picked bucket `chosen` of `total`
/// (explanations only: evaluates the bucketing value and variants again).
fn describe<'a>(
    fractional: &'a Fractional,
    env: &Env<'a>,
    eval: &dyn Fn(&'a Node) -> Val<'a>,
    weights: &[u32],
    chosen: u32,
    total: u32,
) -> FractionalTrace {
    let text = |value: &Val<'_>| match value {
        Val::Null | Val::Arr(_) | Val::List(_) | Val::Obj(_) | Val::Owned(_) => None,
        other => Some(
            other
                .as_str()
                .map_or_else(|| to_js_string(other), str::to_owned),
        ),
    };
    let shorthand = || {
        let key = targeting_key(env).unwrap_or_default();
        match env.generation {
            FractionalGeneration::V2 => format!("{}{key}", env.flag_key),
            FractionalGeneration::V3 => serde_json::json!([env.flag_key, key]).to_string(),
        }
    };
    let bucket_by = match fractional.bucket_by.as_ref().map(eval) {
        None | Some(Val::Null) => shorthand(),
        Some(value) => value
            .as_str()
            .map_or_else(|| value.to_json().to_string(), str::to_owned),
    };
    let mut from = 0u32;
    let mut variant = None;
    let buckets = weights
        .iter()
        .zip(&fractional.buckets)
        .map(|(weight, entry)| {
            let name = text(&eval(&entry.variant));
            let to = from.saturating_add(*weight);
            if (from..to).contains(&chosen) {
                variant.clone_from(&name);
            }
            let range = BucketRange {
                variant: name,
                weight: *weight,
                from,
                to,
            };
            from = to;
            range
        })
        .collect();
    FractionalTrace {
        bucket_by,
        bucket: chosen,
        total_weight: total,
        buckets,
        variant,
    }
}

/// The targeting key when it is a non-empty string.
fn targeting_key<'a>(env: &Env<'a>) -> Option<&'a str> {
    match env.context.get("targetingKey") {
        Some(serde_json::Value::String(key)) if !key.is_empty() => Some(key),
        _ => None,
    }
}

fn hash<'a>(
    fractional: &'a Fractional,
    env: &Env<'a>,
    eval: &dyn Fn(&'a Node) -> Val<'a>,
) -> Option<u32> {
    let bucketing_value = fractional.bucket_by.as_ref().map(eval);
    let mut hasher = Murmur3::new(0);
    match env.generation {
        FractionalGeneration::V2 => match &bucketing_value {
            // flagd drops a null bucketing value and falls back to the shorthand.
            None | Some(Val::Null) => {
                hasher.write(env.flag_key.as_bytes());
                hasher.write(targeting_key(env)?.as_bytes());
            }
            Some(value) => hasher.write(value.as_str()?.as_bytes()),
        },
        FractionalGeneration::V3 => match &bucketing_value {
            None => {
                let key = targeting_key(env)?;
                cbor::head(&mut hasher, 4, 2);
                cbor::text(&mut hasher, env.flag_key);
                cbor::text(&mut hasher, key);
            }
            Some(value) => encode_bucketing_value(&mut hasher, value)?,
        },
    }
    Some(hasher.finish())
}

/// v3 accepts strings, numbers, booleans and objects; null and arrays yield null.
fn encode_bucketing_value(out: &mut impl Sink, value: &Val<'_>) -> Option<()> {
    match value {
        Val::Null | Val::Arr(_) | Val::List(_) => return None,
        Val::Bool(b) => cbor::bool(out, *b),
        Val::Num(n) => cbor::number(out, *n),
        Val::Str(s) => cbor::text(out, s),
        Val::String(s) => cbor::text(out, s),
        Val::Obj(map) => encode_object(out, map),
        Val::Owned(map) => encode_object(out, map),
    }
    Some(())
}

/// Deterministic CBOR of a JSON value: map keys sorted by their encoded bytes.
fn encode_json(out: &mut impl Sink, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => cbor::null(out),
        Value::Bool(b) => cbor::bool(out, *b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => cbor::unsigned(out, u),
            (None, Some(i)) => cbor::negative(out, (-1 - i) as u64),
            _ => cbor::number(out, n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cbor::text(out, s),
        Value::Array(items) => {
            cbor::head(out, 4, items.len() as u64);
            for item in items {
                encode_json(out, item);
            }
        }
        Value::Object(map) => encode_object(out, map),
    }
}

fn encode_object(out: &mut impl Sink, map: &serde_json::Map<String, serde_json::Value>) {
    let mut entries: Vec<(Vec<u8>, &serde_json::Value)> = map
        .iter()
        .map(|(key, item)| {
            let mut encoded_key = Vec::with_capacity(key.len() + 2);
            cbor::text(&mut encoded_key, key);
            (encoded_key, item)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    cbor::head(out, 5, entries.len() as u64);
    for (key, item) in entries {
        out.put(&key);
        encode_json(out, item);
    }
}
