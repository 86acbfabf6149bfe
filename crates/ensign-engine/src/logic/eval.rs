//! Evaluation of compiled [`Node`]s against a context.
//!
//! Evaluation never fails: JsonLogic's reference semantics give every operator a
//! result for every input (NaN, null, false), and flagd's operators return null
//! on bad arguments. Recursion depth is bounded by the document depth limit.

use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::{Map, Value};

use super::val::{
    Val, format_number, less_than, loose_equals, strict_equals, to_js_string, to_number, truthy,
};
use super::{ArithmeticOp, CompareOp, EqualityOp, IterateOp, Node, Segment, VarPath, split_path};
use crate::FractionalGeneration;
use crate::fractional::{self, FractionalTrace};
use crate::semver;

/// The longest string `cat` builds, in bytes. Rules that double a string in a
/// `reduce` would otherwise grow it exponentially; past this bound `cat`
/// yields null.
const MAX_BUILT_STRING: usize = 1 << 20;

/// The longest array `merge` builds, for the same reason.
const MAX_BUILT_LIST: usize = 1 << 16;

/// What a rule is evaluated against: the context, and flagd's `$flagd` values.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The evaluation context (`targetingKey` included).
    pub context: &'a Map<String, Value>,
    /// `$flagd.flagKey`.
    pub flag_key: &'a str,
    /// `$flagd.timestamp`, unix seconds.
    pub now: i64,
    /// Which `fractional` bucketing to compute.
    pub generation: FractionalGeneration,
    /// Where every `fractional` that picks a bucket records how (explanations
    /// only; `None` when serving).
    pub trace: Option<&'a RefCell<Vec<FractionalTrace>>>,
}

/// The data `var` reads: the root context, an array element inside `map` and
/// friends, or `current`/`accumulator` inside `reduce`.
#[derive(Clone, Copy)]
enum Data<'a, 'd> {
    Root,
    Item(&'d Val<'a>),
    Reduce {
        current: &'d Val<'a>,
        accumulator: &'d Val<'a>,
    },
}

/// Evaluates `node` for `env`.
pub fn evaluate<'a>(node: &'a Node, env: &Env<'a>) -> Val<'a> {
    eval(node, env, Data::Root)
}

fn arg<'a>(args: &'a [Node], i: usize, env: &Env<'a>, data: Data<'a, '_>) -> Val<'a> {
    args.get(i).map_or(Val::Null, |n| eval(n, env, data))
}

fn eval<'a>(node: &'a Node, env: &Env<'a>, data: Data<'a, '_>) -> Val<'a> {
    match node {
        Node::Literal(value) => Val::from_json(value),
        Node::List(items) => Val::List(items.iter().map(|n| eval(n, env, data)).collect()),
        Node::Var(var) => {
            let found = match &var.path {
                VarPath::Static(path) => lookup(path, env, data),
                VarPath::Dynamic(path) => {
                    let path = eval(path, env, data);
                    let path = if path.is_null() {
                        Vec::new()
                    } else {
                        split_path(&to_js_string(&path))
                    };
                    lookup(&path, env, data)
                }
            };
            // A null value takes the default too, as flagd and both reference
            // evaluators do (json-logic-js alone returns the null).
            match found {
                Some(value) if !value.is_null() => value,
                _ => var
                    .default
                    .as_ref()
                    .map_or(Val::Null, |d| eval(d, env, data)),
            }
        }
        Node::Missing(args) => missing(args, env, data),
        Node::MissingSome(args) => {
            let need = to_number(&arg(args, 0, env, data));
            let keys = arg(args, 1, env, data);
            let total = keys.array_len().unwrap_or(0);
            let absent = missing_keys(keys.into_items(), env, data);
            if (total - absent.len()) as f64 >= need {
                Val::List(Vec::new())
            } else {
                Val::List(absent)
            }
        }
        Node::If(args) => {
            let mut pairs = args.chunks_exact(2);
            for pair in &mut pairs {
                if truthy(&eval(&pair[0], env, data)) {
                    return eval(&pair[1], env, data);
                }
            }
            pairs
                .remainder()
                .first()
                .map_or(Val::Null, |otherwise| eval(otherwise, env, data))
        }
        Node::Equality(op, args) => {
            let (a, b) = (arg(args, 0, env, data), arg(args, 1, env, data));
            Val::Bool(match op {
                EqualityOp::Loose => loose_equals(&a, &b),
                EqualityOp::Strict => strict_equals(&a, &b),
                EqualityOp::LooseNot => !loose_equals(&a, &b),
                EqualityOp::StrictNot => !strict_equals(&a, &b),
            })
        }
        Node::Not(args) => Val::Bool(!truthy(&arg(args, 0, env, data))),
        Node::Truthy(args) => Val::Bool(truthy(&arg(args, 0, env, data))),
        Node::And(args) => {
            let mut last = Val::Null;
            for n in args {
                last = eval(n, env, data);
                if !truthy(&last) {
                    break;
                }
            }
            last
        }
        Node::Or(args) => {
            let mut last = Val::Null;
            for n in args {
                last = eval(n, env, data);
                if truthy(&last) {
                    break;
                }
            }
            last
        }
        Node::Compare(op, args) => compare(*op, args, env, data),
        Node::Arithmetic(op, args) => Val::Num(arithmetic(*op, args, env, data)),
        Node::Cat(args) => {
            let mut out = String::new();
            for n in args {
                let v = eval(n, env, data);
                if !v.is_null() {
                    match v.as_str() {
                        Some(s) => out.push_str(s),
                        None => out.push_str(&to_js_string(&v)),
                    }
                }
                if out.len() > MAX_BUILT_STRING {
                    return Val::Null;
                }
            }
            Val::String(out)
        }
        Node::Substr(args) => substr(
            &arg(args, 0, env, data),
            args.get(1).map(|n| to_number(&eval(n, env, data))),
            args.get(2).map(|n| to_number(&eval(n, env, data))),
        ),
        Node::In(args) => {
            let needle = arg(args, 0, env, data);
            let haystack = arg(args, 1, env, data);
            Val::Bool(contains(&haystack, &needle))
        }
        Node::Merge(args) => {
            let mut out = Vec::new();
            for n in args {
                let v = eval(n, env, data);
                if v.is_array() {
                    out.extend(v.into_items());
                } else {
                    out.push(v);
                }
                if out.len() > MAX_BUILT_LIST {
                    return Val::Null;
                }
            }
            Val::List(out)
        }
        Node::Iterate(op, array, rule) => iterate(*op, array, rule, env, data),
        Node::Reduce(parts) => {
            let [array, rule, initial] = &**parts;
            let items = eval(array, env, data);
            let mut accumulator = eval(initial, env, data);
            if !items.is_array() {
                return accumulator;
            }
            for current in items.into_items() {
                let scope = Data::Reduce {
                    current: &current,
                    accumulator: &accumulator,
                };
                accumulator = eval(rule, env, scope);
            }
            accumulator
        }
        Node::Fractional(f) => fractional::evaluate(f, env, &|n| eval(n, env, data)),
        Node::SemVer(args) => {
            if args.len() != 3 {
                return Val::Null;
            }
            let (left, op, right) = (
                arg(args, 0, env, data),
                arg(args, 1, env, data),
                arg(args, 2, env, data),
            );
            let (Some(left), Some(right)) = (version_text(&left), version_text(&right)) else {
                return Val::Null;
            };
            let op = match op.as_str() {
                Some(op) => Cow::Borrowed(op),
                None => Cow::Owned(to_js_string(&op)),
            };
            semver::compare(&left, &op, &right).map_or(Val::Null, Val::Bool)
        }
        Node::StartsWith(args) => string_test(args, env, data, |s, a| s.starts_with(a)),
        Node::EndsWith(args) => string_test(args, env, data, |s, a| s.ends_with(a)),
    }
}

fn lookup<'a>(path: &[Segment], env: &Env<'a>, data: Data<'a, '_>) -> Option<Val<'a>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(whole_data(env, data));
    };
    let mut current = match data {
        Data::Root => {
            if &*first.key == "$flagd" {
                return flagd_value(rest, env);
            }
            Val::from_json(env.context.get(&*first.key)?)
        }
        Data::Item(item) => item.member(&first.key, first.index)?,
        Data::Reduce {
            current,
            accumulator,
        } => match &*first.key {
            "current" => current.clone(),
            "accumulator" => accumulator.clone(),
            _ => return None,
        },
    };
    for segment in rest {
        if current.is_null() {
            return None;
        }
        current = current.member(&segment.key, segment.index)?;
    }
    Some(current)
}

fn whole_data<'a>(env: &Env<'a>, data: Data<'a, '_>) -> Val<'a> {
    match data {
        Data::Root => {
            let mut map = env.context.clone();
            map.insert("$flagd".to_owned(), flagd_object(env));
            Val::Owned(Box::new(map))
        }
        Data::Item(item) => item.clone(),
        Data::Reduce {
            current,
            accumulator,
        } => {
            let mut map = Map::new();
            map.insert("current".to_owned(), current.to_json());
            map.insert("accumulator".to_owned(), accumulator.to_json());
            Val::Owned(Box::new(map))
        }
    }
}

fn flagd_object(env: &Env<'_>) -> Value {
    let mut map = Map::new();
    map.insert("flagKey".to_owned(), Value::from(env.flag_key));
    map.insert("timestamp".to_owned(), Value::from(env.now));
    Value::Object(map)
}

fn flagd_value<'a>(rest: &[Segment], env: &Env<'a>) -> Option<Val<'a>> {
    match rest {
        [] => match flagd_object(env) {
            Value::Object(map) => Some(Val::Owned(Box::new(map))),
            _ => None,
        },
        [field] if &*field.key == "flagKey" => Some(Val::Str(env.flag_key)),
        [field] if &*field.key == "timestamp" => Some(Val::Num(env.now as f64)),
        _ => None,
    }
}

fn missing<'a>(args: &'a [Node], env: &Env<'a>, data: Data<'a, '_>) -> Val<'a> {
    let first = arg(args, 0, env, data);
    let keys = if first.is_array() {
        first.into_items()
    } else {
        let mut keys = vec![first];
        keys.extend(args.iter().skip(1).map(|n| eval(n, env, data)));
        keys
    };
    Val::List(missing_keys(keys, env, data))
}

fn missing_keys<'a>(keys: Vec<Val<'a>>, env: &Env<'a>, data: Data<'a, '_>) -> Vec<Val<'a>> {
    keys.into_iter()
        .filter(|key| {
            let path = split_path(&to_js_string(key));
            match lookup(&path, env, data) {
                None | Some(Val::Null) => true,
                Some(value) => value.as_str() == Some(""),
            }
        })
        .collect()
}

fn compare<'a>(op: CompareOp, args: &'a [Node], env: &Env<'a>, data: Data<'a, '_>) -> Val<'a> {
    let a = arg(args, 0, env, data);
    let b = arg(args, 1, env, data);
    let result = match op {
        CompareOp::Less | CompareOp::LessOrEqual => {
            let or_equal = op == CompareOp::LessOrEqual;
            if args.len() >= 3 {
                // The between form: a < b < c, with c evaluated only when needed.
                less_than(&a, &b, or_equal) && less_than(&b, &arg(args, 2, env, data), or_equal)
            } else {
                less_than(&a, &b, or_equal)
            }
        }
        CompareOp::Greater => less_than(&b, &a, false),
        CompareOp::GreaterOrEqual => less_than(&b, &a, true),
    };
    Val::Bool(result)
}

fn arithmetic<'a>(op: ArithmeticOp, args: &'a [Node], env: &Env<'a>, data: Data<'a, '_>) -> f64 {
    let number = |i: usize| to_number(&arg(args, i, env, data));
    match op {
        ArithmeticOp::Add => args.iter().map(|n| to_number(&eval(n, env, data))).sum(),
        ArithmeticOp::Multiply => {
            if args.is_empty() {
                return f64::NAN;
            }
            args.iter()
                .map(|n| to_number(&eval(n, env, data)))
                .product()
        }
        ArithmeticOp::Subtract if args.len() == 1 => -number(0),
        ArithmeticOp::Subtract => number(0) - number(1),
        ArithmeticOp::Divide => number(0) / number(1),
        ArithmeticOp::Remainder => number(0) % number(1),
        ArithmeticOp::Min => {
            args.iter()
                .map(|n| to_number(&eval(n, env, data)))
                .fold(f64::INFINITY, |acc, x| {
                    if x.is_nan() || acc.is_nan() {
                        f64::NAN
                    } else {
                        acc.min(x)
                    }
                })
        }
        ArithmeticOp::Max => {
            args.iter()
                .map(|n| to_number(&eval(n, env, data)))
                .fold(f64::NEG_INFINITY, |acc, x| {
                    if x.is_nan() || acc.is_nan() {
                        f64::NAN
                    } else {
                        acc.max(x)
                    }
                })
        }
    }
}

/// JavaScript `String(source).substr(start, length)`, with JsonLogic's negative
/// length meaning "stop that many characters before the end".
fn substr<'a>(source: &Val<'a>, start: Option<f64>, length: Option<f64>) -> Val<'a> {
    let text = match source.as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(to_js_string(source)),
    };
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len() as f64;
    let integer = |n: f64| if n.is_nan() { 0.0 } else { n.trunc() };
    let mut from = integer(start.unwrap_or(0.0));
    if from < 0.0 {
        from = (len + from).max(0.0);
    }
    let from = from.min(len);
    let end = match length {
        None => len,
        Some(n) if integer(n) < 0.0 => (len + integer(n)).max(from),
        Some(n) => (from + integer(n)).min(len),
    };
    Val::String(
        chars[from as usize..end.max(from) as usize]
            .iter()
            .collect(),
    )
}

fn contains(haystack: &Val<'_>, needle: &Val<'_>) -> bool {
    if let Some(text) = haystack.as_str() {
        return match needle.as_str() {
            Some(n) => text.contains(n),
            None => text.contains(&to_js_string(needle)),
        };
    }
    match haystack {
        Val::Arr(items) => items
            .iter()
            .any(|item| strict_equals(&Val::from_json(item), needle)),
        Val::List(items) => items.iter().any(|item| strict_equals(item, needle)),
        _ => false,
    }
}

fn iterate<'a>(
    op: IterateOp,
    array: &'a Node,
    rule: &'a Node,
    env: &Env<'a>,
    data: Data<'a, '_>,
) -> Val<'a> {
    let items = eval(array, env, data).into_items();
    let test = |item: &Val<'a>| truthy(&eval(rule, env, Data::Item(item)));
    match op {
        IterateOp::Map => Val::List(
            items
                .iter()
                .map(|item| eval(rule, env, Data::Item(item)))
                .collect(),
        ),
        IterateOp::Filter => Val::List(items.into_iter().filter(|item| test(item)).collect()),
        IterateOp::All => Val::Bool(!items.is_empty() && items.iter().all(test)),
        IterateOp::Some => Val::Bool(items.iter().any(test)),
        IterateOp::None => Val::Bool(!items.iter().any(test)),
    }
}

/// A `sem_ver` argument as text: strings as they are, numbers as JavaScript
/// prints them; anything else is not a version.
fn version_text<'v>(value: &'v Val<'_>) -> Option<Cow<'v, str>> {
    match value {
        Val::Num(n) => Some(Cow::Owned(format_number(*n))),
        other => other.as_str().map(Cow::Borrowed),
    }
}

fn string_test<'a>(
    args: &'a [Node],
    env: &Env<'a>,
    data: Data<'a, '_>,
    test: fn(&str, &str) -> bool,
) -> Val<'a> {
    if args.len() != 2 {
        return Val::Null;
    }
    let (subject, affix) = (arg(args, 0, env, data), arg(args, 1, env, data));
    match (subject.as_str(), affix.as_str()) {
        (Some(s), Some(a)) => Val::Bool(test(s, a)),
        _ => Val::Null,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::logic::compile;
    use serde_json::json;

    fn run(rule: Value) -> Value {
        let (node, problems) = compile(&rule, &Map::new());
        assert!(problems.is_empty(), "{problems:?}");
        let context = Map::new();
        let env = Env {
            context: &context,
            flag_key: "f",
            now: 0,
            generation: FractionalGeneration::V3,
            trace: None,
        };
        evaluate(&node, &env).to_json()
    }

    #[test]
    fn doubling_rules_stop_at_the_size_bounds() {
        let ones: Vec<u8> = vec![1; 40];
        let doubling_list = json!({"reduce": [ones, {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]});
        // 2^40 elements without the bound; with it, the work stays bounded.
        let list = run(doubling_list);
        assert!(
            list.as_array().is_some_and(|l| l.len() <= MAX_BUILT_LIST),
            "{list}"
        );
        let doubling_text = json!({"reduce": [ones, {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "ab"]});
        let text = run(doubling_text);
        assert!(text.as_str().is_some_and(|t| t.len() <= MAX_BUILT_STRING));
        let small = json!({"reduce": [[1, 1], {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]});
        assert_eq!(run(small), json!([1, 1, 1, 1]));
    }
}
