//! Integers in request bodies as JSON Schema counts them: `1488` and
//! `1488.0` are the same integer (JSON has one number type; JavaScript and
//! schema-driven clients send either), so both are accepted wherever the
//! OpenAPI document says `integer`. A fraction, or a number outside the
//! 64-bit range, is refused like any other value of the wrong type (422 with
//! its JSON Pointer).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Number;

/// 2^63: the first whole float past `i64::MAX`.
const I64_END: f64 = 9_223_372_036_854_775_808.0;

/// The integer `number` is, if it is one that fits an `i64`.
fn whole(number: &Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (-I64_END..I64_END).contains(f))
            // In range and whole: the conversion is exact.
            .map(|f| f as i64)
    })
}

fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let number = Number::deserialize(d)?;
    whole(&number).ok_or_else(|| D::Error::custom(format!("expected an integer, not {number}")))
}

/// An `i64` field that also takes integral floats (`5.0`).
pub(super) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    integer(d)
}

/// An optional `i64` field (`null`: none) that also takes integral floats.
pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<Number>::deserialize(d)?
        .map(|number| {
            whole(&number)
                .ok_or_else(|| D::Error::custom(format!("expected an integer, not {number}")))
        })
        .transpose()
}

/// A present optional `i64` field of a patch (`null`: clear it, absent: keep
/// it) that also takes integral floats.
pub(super) fn present_optional<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<i64>>, D::Error> {
    optional(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "required")]
        n: i64,
    }

    fn parse(value: serde_json::Value) -> Result<i64, String> {
        serde_json::from_value::<Body>(value)
            .map(|b| b.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        assert_eq!(parse(json!({"n": 4418})), Ok(4418));
        assert_eq!(parse(json!({"n": 4418.0})), Ok(4418));
        assert_eq!(parse(json!({"n": -3.0})), Ok(-3));
        assert_eq!(parse(json!({"n": i64::MIN})), Ok(i64::MIN));
        assert!(parse(json!({"n": 1.5})).is_err());
        assert!(parse(json!({"n": 1e19})).is_err());
        assert!(parse(json!({"n": u64::MAX})).is_err());
        assert!(parse(json!({"n": "3"})).is_err());
    }
}
