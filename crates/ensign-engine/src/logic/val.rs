//! Runtime values of the JsonLogic evaluator and the JavaScript coercions that
//! JsonLogic's reference semantics are defined by.
//!
//! A [`Val`] borrows from the evaluation context or the compiled rule wherever it
//! can, so evaluating a rule copies no JSON.

use serde_json::{Map, Value};

/// A value produced while evaluating a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// JSON `null` (and JavaScript `undefined`).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number; JsonLogic computes in float64.
    Num(f64),
    /// A borrowed string.
    Str(&'a str),
    /// A string built during evaluation (`cat`, `substr`).
    String(String),
    /// A borrowed JSON array.
    Arr(&'a [Value]),
    /// A borrowed JSON object.
    Obj(&'a Map<String, Value>),
    /// An array built during evaluation (`map`, `merge`, `missing`, literals).
    List(Vec<Val<'a>>),
    /// An object built during evaluation (the whole context with `$flagd` added).
    Owned(Box<Map<String, Value>>),
}

impl<'a> Val<'a> {
    /// Borrows a JSON value.
    pub fn from_json(value: &'a Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(s),
            Value::Array(items) => Val::Arr(items),
            Value::Object(map) => Val::Obj(map),
        }
    }

    /// The string content, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// Whether this is an array of any kind.
    pub fn is_array(&self) -> bool {
        matches!(self, Val::Arr(_) | Val::List(_))
    }

    /// The number of elements, if this is an array.
    pub fn array_len(&self) -> Option<usize> {
        match self {
            Val::Arr(items) => Some(items.len()),
            Val::List(items) => Some(items.len()),
            _ => None,
        }
    }

    /// The elements of an array as values (empty for non-arrays).
    pub fn into_items(self) -> Vec<Val<'a>> {
        match self {
            Val::Arr(items) => items.iter().map(Val::from_json).collect(),
            Val::List(items) => items,
            _ => Vec::new(),
        }
    }

    /// Member `key` of an object, or element `key` of an array.
    pub fn member(&self, key: &str, index: Option<usize>) -> Option<Val<'a>> {
        match self {
            Val::Obj(map) => map.get(key).map(Val::from_json),
            Val::Owned(map) => map.get(key).map(|v| Val::from_json(v).into_owned()),
            Val::Arr(items) => index.and_then(|i| items.get(i)).map(Val::from_json),
            Val::List(items) => index.and_then(|i| items.get(i)).cloned(),
            Val::Str(s) => index.and_then(|i| char_at(s, i)).map(Val::String),
            Val::String(s) => index.and_then(|i| char_at(s, i)).map(Val::String),
            _ => None,
        }
    }

    /// Detaches a value that borrows from an [`Val::Owned`] map being dropped.
    fn into_owned(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Num(n) => Val::Num(n),
            Val::Str(s) => Val::String(s.to_owned()),
            Val::String(s) => Val::String(s),
            Val::Arr(items) => Val::List(
                items
                    .iter()
                    .map(|v| Val::from_json(v).into_owned())
                    .collect(),
            ),
            Val::Obj(map) => Val::Owned(Box::new(map.clone())),
            Val::List(items) => Val::List(items.into_iter().map(Val::into_owned).collect()),
            Val::Owned(map) => Val::Owned(map),
        }
    }

    /// The value as JSON (used for results and CBOR of objects).
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => number_to_json(*n),
            Val::Str(s) => Value::String((*s).to_owned()),
            Val::String(s) => Value::String(s.clone()),
            Val::Arr(items) => Value::Array(items.to_vec()),
            Val::Obj(map) => Value::Object((*map).clone()),
            Val::List(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Owned(map) => Value::Object((**map).clone()),
        }
    }
}

fn char_at(s: &str, index: usize) -> Option<String> {
    s.chars().nth(index).map(String::from)
}

/// A float as JSON: whole numbers as integers, non-finite numbers as `null`.
pub fn number_to_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// JsonLogic truthiness: JavaScript's, except that an empty array is false.
pub fn truthy(value: &Val<'_>) -> bool {
    match value {
        Val::Null => false,
        Val::Bool(b) => *b,
        Val::Num(n) => *n != 0.0 && !n.is_nan(),
        Val::Str(s) => !s.is_empty(),
        Val::String(s) => !s.is_empty(),
        Val::Arr(items) => !items.is_empty(),
        Val::List(items) => !items.is_empty(),
        Val::Obj(_) | Val::Owned(_) => true,
    }
}

/// JavaScript `ToNumber`.
pub fn to_number(value: &Val<'_>) -> f64 {
    match value {
        Val::Null => 0.0,
        Val::Bool(b) => f64::from(u8::from(*b)),
        Val::Num(n) => *n,
        Val::Str(s) => string_to_number(s),
        Val::String(s) => string_to_number(s),
        Val::Arr(_) | Val::List(_) => string_to_number(&to_js_string(value)),
        Val::Obj(_) | Val::Owned(_) => f64::NAN,
    }
}

/// JavaScript `ToNumber` of a string: trimmed decimal (or hex/octal/binary
/// integer) literal, `Infinity`, or NaN; the empty string is 0.
pub fn string_to_number(text: &str) -> f64 {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return 0.0;
    }
    let radix_literal = |prefix: &str, radix: u32| {
        trimmed
            .strip_prefix(prefix)
            .map(|digits| match u64::from_str_radix(digits, radix) {
                Ok(n) if !digits.starts_with('+') && !digits.starts_with('-') => n as f64,
                _ => f64::NAN,
            })
    };
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(n) = radix_literal(prefix, radix) {
            return n;
        }
    }
    let unsigned = trimmed.trim_start_matches(['+', '-']);
    if unsigned == "Infinity" {
        return if trimmed.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    // Rust accepts "inf", "nan" and similar words that JavaScript does not.
    let is_decimal = !unsigned.is_empty()
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && trimmed.len() - unsigned.len() <= 1;
    if !is_decimal {
        return f64::NAN;
    }
    trimmed.parse::<f64>().unwrap_or(f64::NAN)
}

/// JavaScript `String(value)`.
pub fn to_js_string(value: &Val<'_>) -> String {
    js_string_within(value, MAX_JOIN_DEPTH)
}

/// Arrays nested deeper than this print as empty strings: contexts built by
/// callers that skip the parsers' depth limits cannot exhaust the stack.
const MAX_JOIN_DEPTH: usize = 64;

fn js_string_within(value: &Val<'_>, depth: usize) -> String {
    if depth == 0 {
        return String::new();
    }
    match value {
        Val::Null => "null".to_owned(),
        Val::Bool(b) => b.to_string(),
        Val::Num(n) => format_number(*n),
        Val::Str(s) => (*s).to_owned(),
        Val::String(s) => s.clone(),
        Val::Arr(items) => join_js(items.iter().map(Val::from_json), depth - 1),
        Val::List(items) => join_js(items.iter().cloned(), depth - 1),
        Val::Obj(_) | Val::Owned(_) => "[object Object]".to_owned(),
    }
}

/// `Array.prototype.join(",")`: null elements become empty strings.
fn join_js<'a>(items: impl Iterator<Item = Val<'a>>, depth: usize) -> String {
    let mut out = String::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !item.is_null() {
            out.push_str(&js_string_within(&item, depth));
        }
    }
    out
}

/// JavaScript `Number.prototype.toString()` for a float64.
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    // Shortest round-trip digits, then JavaScript's choice of notation.
    let repr = format!("{:e}", n);
    let (mantissa, exponent) = repr.split_once('e').unwrap_or((&repr, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    let point = exponent + 1; // position of the decimal point relative to the digits
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if k <= point && point <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (point - k) as usize));
    } else if 0 < point && point <= 21 {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if point > 0 { '+' } else { '-' });
        out.push_str(&(point - 1).abs().to_string());
    }
    out
}

/// The primitive a value becomes in JavaScript comparisons (`ToPrimitive`).
enum Primitive<'v> {
    Null,
    Bool(bool),
    Num(f64),
    Str(std::borrow::Cow<'v, str>),
}

fn to_primitive<'v>(value: &'v Val<'_>) -> Primitive<'v> {
    match value {
        Val::Null => Primitive::Null,
        Val::Bool(b) => Primitive::Bool(*b),
        Val::Num(n) => Primitive::Num(*n),
        Val::Str(s) => Primitive::Str((*s).into()),
        Val::String(s) => Primitive::Str(s.as_str().into()),
        other => Primitive::Str(to_js_string(other).into()),
    }
}

/// JavaScript loose equality (`==`).
pub fn loose_equals(a: &Val<'_>, b: &Val<'_>) -> bool {
    // Arrays and objects are only equal to themselves in JavaScript; values
    // from JSON never share identity, so two of them are never equal.
    let is_compound =
        |v: &Val<'_>| matches!(v, Val::Arr(_) | Val::List(_) | Val::Obj(_) | Val::Owned(_));
    if is_compound(a) && is_compound(b) {
        return false;
    }
    if a.is_null() || b.is_null() {
        return a.is_null() && b.is_null();
    }
    match (to_primitive(a), to_primitive(b)) {
        (Primitive::Str(x), Primitive::Str(y)) => x == y,
        (Primitive::Bool(x), Primitive::Bool(y)) => x == y,
        (x, y) => primitive_number(&x) == primitive_number(&y),
    }
}

fn primitive_number(p: &Primitive<'_>) -> f64 {
    match p {
        Primitive::Null => 0.0,
        Primitive::Bool(b) => f64::from(u8::from(*b)),
        Primitive::Num(n) => *n,
        Primitive::Str(s) => string_to_number(s),
    }
}

/// JavaScript strict equality (`===`).
pub fn strict_equals(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// JavaScript `a < b` (`or_equal` for `<=`): strings compare by code units,
/// everything else as numbers; NaN compares false.
pub fn less_than(a: &Val<'_>, b: &Val<'_>, or_equal: bool) -> bool {
    let (pa, pb) = (to_primitive(a), to_primitive(b));
    if let (Primitive::Str(x), Primitive::Str(y)) = (&pa, &pb) {
        let ordering = x.encode_utf16().cmp(y.encode_utf16());
        return if or_equal {
            ordering.is_le()
        } else {
            ordering.is_lt()
        };
    }
    let (x, y) = (primitive_number(&pa), primitive_number(&pb));
    if or_equal { x <= y } else { x < y }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_like_javascript() {
        let cases = [
            (1.0, "1"),
            (-1.0, "-1"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123456.789, "123456.789"),
            (-0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (2f64.powi(53), "9007199254740992"),
        ];
        for (n, expected) in cases {
            assert_eq!(format_number(n), expected, "{n}");
        }
    }

    #[test]
    fn strings_convert_to_numbers_like_javascript() {
        assert_eq!(string_to_number(" 12 "), 12.0);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x10"), 16.0);
        assert_eq!(string_to_number("1e3"), 1000.0);
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert!(string_to_number("12abc").is_nan());
        assert!(string_to_number("inf").is_nan());
        assert!(string_to_number("--1").is_nan());
    }

    #[test]
    fn loose_equality_follows_javascript() {
        assert!(loose_equals(&Val::Num(1.0), &Val::Str("1")));
        assert!(loose_equals(&Val::Bool(true), &Val::Num(1.0)));
        assert!(loose_equals(&Val::Bool(false), &Val::Str("")));
        assert!(loose_equals(&Val::Null, &Val::Null));
        assert!(!loose_equals(&Val::Null, &Val::Num(0.0)));
        assert!(!loose_equals(&Val::Str("a"), &Val::Str("b")));
        assert!(loose_equals(
            &Val::List(vec![Val::Num(1.0), Val::Num(2.0)]),
            &Val::Str("1,2")
        ));
    }

    #[test]
    fn comparisons_follow_javascript() {
        assert!(less_than(&Val::Str("a"), &Val::Str("b"), false));
        assert!(less_than(&Val::Str("10"), &Val::Str("9"), false));
        assert!(!less_than(&Val::Num(10.0), &Val::Str("9"), false));
        assert!(less_than(&Val::Null, &Val::Num(1.0), false));
        assert!(!less_than(&Val::Str("x"), &Val::Num(1.0), true));
    }
}
