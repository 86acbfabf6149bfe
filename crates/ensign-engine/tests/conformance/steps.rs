//! The testbed's step vocabulary, executed against the engine.
//!
//! A [`World`] holds what the `Given` steps set up (the provider, options, the
//! flag to evaluate and the context), `When the flag was evaluated with details`
//! resolves it, and the `Then` steps compare the outcome the way an OpenFeature
//! SDK reports it: a resolution without a value (code default, disabled, error)
//! yields the caller's fallback value.
//!
//! Values in steps are typed by the flag type (`Boolean`, `String`, `Integer`,
//! `Float`, `Object`) and compared typed: `0.0` equals `0`, JSON objects compare
//! structurally. Object texts may carry `\"` escapes (the evaluator suite writes
//! `{\"a\": 1}` in tables); they are read as plain quotes when the text is not
//! valid JSON as written.
//!
//! Every unsupported or malformed step is a failure of its case, never a skip.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ensign_engine::{Context, FlagValue, MetadataValue, RequestedType, Selector};
use serde_json::{Map, Number, Value};

use crate::fixtures::{Provider, Providers};
use crate::gherkin::Step;

/// The typed flag kinds of `a <Type>-flag with key ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagType {
    /// `Boolean-flag`.
    Boolean,
    /// `String-flag`.
    String,
    /// `Integer-flag`.
    Integer,
    /// `Float-flag`.
    Float,
    /// `Object-flag`.
    Object,
}

impl FlagType {
    fn parse(name: &str) -> Result<FlagType, String> {
        Ok(match name {
            "Boolean" => FlagType::Boolean,
            "String" => FlagType::String,
            "Integer" => FlagType::Integer,
            "Float" => FlagType::Float,
            "Object" => FlagType::Object,
            other => return Err(format!("unknown flag type {other:?}")),
        })
    }

    fn requested(self) -> RequestedType {
        match self {
            FlagType::Boolean => RequestedType::Boolean,
            FlagType::String => RequestedType::String,
            FlagType::Integer => RequestedType::Integer,
            FlagType::Float => RequestedType::Float,
            FlagType::Object => RequestedType::Object,
        }
    }

    /// Reads a fallback or expected value written in a step.
    fn parse_value(self, text: &str) -> Result<Value, String> {
        match self {
            FlagType::Boolean => parse_bool(text).map(Value::Bool),
            FlagType::String => Ok(Value::String(text.to_owned())),
            FlagType::Integer => parse_integer(text),
            FlagType::Float => parse_float(text),
            FlagType::Object => match parse_json_text(text)? {
                object @ Value::Object(_) => Ok(object),
                other => Err(format!("{other} is not a JSON object")),
            },
        }
    }

    /// Whether `actual` is the value `expected` for this type.
    fn same_value(self, expected: &Value, actual: &Value) -> bool {
        match self {
            FlagType::Integer | FlagType::Float => match (expected, actual) {
                (Value::Number(e), Value::Number(a)) => match (e.as_i64(), a.as_i64()) {
                    (Some(e), Some(a)) => e == a,
                    _ => e.as_f64().is_some() && e.as_f64() == a.as_f64(),
                },
                _ => false,
            },
            _ => expected == actual,
        }
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{other:?} is not a boolean")),
    }
}

fn parse_integer(text: &str) -> Result<Value, String> {
    if let Ok(value) = text.parse::<i64>() {
        return Ok(Value::from(value));
    }
    text.parse::<u64>()
        .map(Value::from)
        .map_err(|_| format!("{text:?} is not an integer"))
}

fn parse_float(text: &str) -> Result<Value, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a float"))?;
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| format!("{text:?} is not a finite float"))
}

/// JSON as written, or with `\"` read as `"` when that is what makes it JSON.
fn parse_json_text(text: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(first) if text.contains("\\\"") => serde_json::from_str(&text.replace("\\\"", "\""))
            .map_err(|_| format!("{text:?} is not JSON: {first}")),
        Err(error) => Err(format!("{text:?} is not JSON: {error}")),
    }
}

/// A context value of `with type "<type>" and with value "<value>"`.
fn parse_context_value(type_name: &str, text: &str) -> Result<Value, String> {
    match type_name {
        "String" => Ok(Value::String(text.to_owned())),
        "Integer" => parse_integer(text),
        "Float" => parse_float(text),
        "Boolean" => parse_bool(text).map(Value::Bool),
        "Object" => match parse_json_text(text)? {
            object @ Value::Object(_) => Ok(object),
            other => Err(format!("{other} is not a JSON object")),
        },
        other => Err(format!("unknown context value type {other:?}")),
    }
}

/// The flag a scenario evaluates.
#[derive(Debug, Clone)]
struct FlagRequest {
    kind: FlagType,
    key: String,
    fallback: Value,
}

/// An owned copy of a resolution, as an SDK would report it.
#[derive(Debug, Clone)]
struct Outcome {
    /// The resolved value, or the fallback when the engine returned none.
    value: Value,
    /// Whether the value came from the engine.
    from_engine: bool,
    variant: Option<String>,
    reason: &'static str,
    error_code: Option<&'static str>,
    error_message: Option<String>,
    metadata: Vec<(String, MetadataValue)>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.from_engine {
            "engine"
        } else {
            "fallback"
        };
        write!(
            f,
            "value {} ({source}), variant {:?}, reason {}",
            self.value, self.variant, self.reason
        )?;
        match (&self.error_code, &self.error_message) {
            (Some(code), Some(message)) => write!(f, ", error {code}: {message}"),
            _ => write!(f, ", no error"),
        }
    }
}

/// A step that did not hold, or could not be executed.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// The step as written after substitution (`Then the reason should be "X"`).
    pub step: String,
    /// 1-based line of the step.
    pub line: usize,
    /// Expected versus got, or why the step could not run.
    pub message: String,
}

/// The state of one case.
pub struct World<'p> {
    providers: &'p Providers,
    provider: Option<&'p Provider>,
    selector: Option<Selector>,
    flag: Option<FlagRequest>,
    context: Context,
    outcome: Option<Outcome>,
}

impl<'p> World<'p> {
    /// A fresh world over the setups of one generation.
    pub fn new(providers: &'p Providers) -> Self {
        World {
            providers,
            provider: None,
            selector: None,
            flag: None,
            context: Context::new(),
            outcome: None,
        }
    }

    /// Runs every step; stops at the first failure, as Cucumber does.
    pub fn run(&mut self, steps: &[Step]) -> Result<(), StepFailure> {
        for step in steps {
            self.step(step).map_err(|message| StepFailure {
                step: format!("{} {}", step.keyword, step.text),
                line: step.line,
                message,
            })?;
        }
        if self.outcome.is_none() {
            return Err(StepFailure {
                step: "(end of scenario)".to_owned(),
                line: steps.last().map_or(0, |s| s.line),
                message: "the scenario never evaluated a flag".to_owned(),
            });
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        if step.doc_string.is_some() {
            return Err("no step of this vocabulary takes a doc string".to_owned());
        }
        let text = step.text.as_str();
        let takes_table = text == "the resolved metadata should contain";
        if !takes_table && !step.table.is_empty() {
            return Err("this step does not take a data table".to_owned());
        }

        if text == "an evaluator" {
            self.provider = Some(&self.providers.evaluator);
            return Ok(());
        }
        if let Some([name]) = captures(text, "a {} flagd provider") {
            self.provider = Some(match name.as_str() {
                "stable" => &self.providers.stable,
                "metadata" => &self.providers.metadata,
                other => return Err(format!("the {other:?} provider setup is not modelled")),
            });
            return Ok(());
        }
        if let Some([name, type_name, value]) =
            captures(text, "an option \"{}\" of type \"{}\" with value \"{}\"")
        {
            return self.option(&name, &type_name, &value);
        }
        for pattern in [
            "a {}-flag with key \"{}\" and a default value \"{}\"",
            "a {}-flag with key \"{}\" and a fallback value \"{}\"",
        ] {
            if let Some([kind, key, fallback]) = captures(text, pattern) {
                let kind = FlagType::parse(&kind)?;
                let fallback = kind
                    .parse_value(&fallback)
                    .map_err(|e| format!("fallback value: {e}"))?;
                self.flag = Some(FlagRequest {
                    kind,
                    key,
                    fallback,
                });
                return Ok(());
            }
        }
        if let Some([key, type_name, value]) = captures(
            text,
            "a context containing a key \"{}\", with type \"{}\" and with value \"{}\"",
        ) {
            let value = parse_context_value(&type_name, &value)?;
            self.context.insert(key, value);
            return Ok(());
        }
        if let Some([outer, inner, value]) = captures(
            text,
            "a context containing a nested property with outer key \"{}\" and inner key \"{}\", with value \"{}\"",
        ) {
            let entry = self
                .context
                .entry(outer.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(object) = entry else {
                return Err(format!("context key {outer:?} is not an object"));
            };
            object.insert(inner, Value::String(value));
            return Ok(());
        }
        if let Some([value]) = captures(
            text,
            "a context containing a targeting key with value \"{}\"",
        ) {
            self.context
                .insert("targetingKey".to_owned(), Value::String(value));
            return Ok(());
        }
        if text == "the flag was evaluated with details" {
            return self.evaluate();
        }
        if let Some([expected]) = captures(text, "the resolved details value should be \"{}\"") {
            return self.check_value(&expected);
        }
        if let Some([expected]) = captures(text, "the reason should be \"{}\"") {
            let outcome = self.outcome()?;
            return expect_eq("reason", &expected, outcome.reason, outcome);
        }
        if let Some([expected]) = captures(text, "the error-code should be \"{}\"") {
            let outcome = self.outcome()?;
            let got = outcome.error_code.unwrap_or("");
            return expect_eq("error code", &expected, got, outcome);
        }
        if let Some([expected]) = captures(text, "the variant should be \"{}\"") {
            let outcome = self.outcome()?;
            let got = outcome.variant.as_deref().unwrap_or("");
            return expect_eq("variant", &expected, got, outcome);
        }
        if text == "the resolved metadata is empty" {
            let outcome = self.outcome()?;
            if outcome.metadata.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "expected no metadata, got {}",
                metadata_text(&outcome.metadata)
            ));
        }
        if takes_table {
            return self.check_metadata(step);
        }
        Err("step not in the supported vocabulary".to_owned())
    }

    fn option(&mut self, name: &str, type_name: &str, value: &str) -> Result<(), String> {
        match (name, type_name, value) {
            // The engine has no cache: "disabled" is exactly its behaviour.
            ("cache", "CacheType", "disabled") => Ok(()),
            ("selector", "String", selector) => {
                let parsed =
                    Selector::parse(selector).map_err(|e| format!("selector {selector:?}: {e}"))?;
                self.selector = Some(parsed);
                Ok(())
            }
            _ => Err(format!(
                "provider option {name:?} of type {type_name:?} = {value:?} is not modelled"
            )),
        }
    }

    fn evaluate(&mut self) -> Result<(), String> {
        let provider = self
            .provider
            .ok_or("no evaluator or provider was set up before the evaluation")?;
        let flag = self
            .flag
            .as_ref()
            .ok_or("no flag was chosen before the evaluation")?;
        // flagd's context assembly: the static context overrides the request's.
        let mut context = self.context.clone();
        for (key, value) in &provider.static_context {
            context.insert(key.clone(), value.clone());
        }
        let resolution = provider.snapshot.resolve_selected(
            self.selector.as_ref(),
            &flag.key,
            flag.kind.requested(),
            &context,
            now_unix_seconds(),
        );
        let value = resolution.value.map(FlagValue::to_json);
        self.outcome = Some(Outcome {
            from_engine: value.is_some(),
            value: value.unwrap_or_else(|| flag.fallback.clone()),
            variant: resolution.variant.map(str::to_owned),
            reason: resolution.reason.as_str(),
            error_code: resolution.error_code().map(|code| code.as_str()),
            error_message: resolution.error.as_ref().map(|e| e.message.to_string()),
            metadata: resolution
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
        Ok(())
    }

    fn outcome(&self) -> Result<&Outcome, String> {
        self.outcome
            .as_ref()
            .ok_or_else(|| "checked before `the flag was evaluated with details`".to_owned())
    }

    fn check_value(&self, expected_text: &str) -> Result<(), String> {
        let outcome = self.outcome()?;
        let flag = self.flag.as_ref().ok_or("no flag was chosen")?;
        let expected = flag
            .kind
            .parse_value(expected_text)
            .map_err(|e| format!("expected value: {e}"))?;
        if flag.kind.same_value(&expected, &outcome.value) {
            Ok(())
        } else {
            Err(format!("expected value {expected}, got {outcome}"))
        }
    }

    fn check_metadata(&self, step: &Step) -> Result<(), String> {
        let outcome = self.outcome()?;
        let Some((header, rows)) = step.table.split_first() else {
            return Err("the metadata table is missing".to_owned());
        };
        if header.cells != ["key", "metadata_type", "value"] {
            return Err(format!(
                "unexpected metadata table header {:?}",
                header.cells
            ));
        }
        let mut problems = Vec::new();
        for row in rows {
            let [key, type_name, value] = row.cells.as_slice() else {
                return Err(format!("metadata row on line {} is malformed", row.line));
            };
            let expected = parse_metadata_value(type_name, value)?;
            let got = outcome
                .metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v);
            match got {
                Some(got) if metadata_matches(&expected, got) => {}
                Some(got) => problems.push(format!(
                    "{key}: expected {type_name} {value}, got {}",
                    got.to_json()
                )),
                None => problems.push(format!("{key}: expected {type_name} {value}, missing")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} (resolved metadata: {})",
                problems.join("; "),
                metadata_text(&outcome.metadata)
            ))
        }
    }
}

fn expect_eq(what: &str, expected: &str, got: &str, outcome: &Outcome) -> Result<(), String> {
    if expected == got {
        Ok(())
    } else {
        Err(format!(
            "expected {what} {expected:?}, got {got:?} ({outcome})"
        ))
    }
}

/// Metadata values as typed in the tables.
#[derive(Debug, Clone, PartialEq)]
enum ExpectedMetadata {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

fn parse_metadata_value(type_name: &str, text: &str) -> Result<ExpectedMetadata, String> {
    Ok(match type_name {
        "String" => ExpectedMetadata::String(text.to_owned()),
        "Integer" => ExpectedMetadata::Integer(
            text.parse()
                .map_err(|_| format!("metadata {text:?} is not an integer"))?,
        ),
        "Float" => ExpectedMetadata::Float(
            text.parse()
                .map_err(|_| format!("metadata {text:?} is not a float"))?,
        ),
        "Boolean" => ExpectedMetadata::Boolean(parse_bool(text)?),
        other => return Err(format!("unknown metadata type {other:?}")),
    })
}

fn metadata_matches(expected: &ExpectedMetadata, got: &MetadataValue) -> bool {
    match (expected, got) {
        (ExpectedMetadata::String(e), MetadataValue::String(g)) => e == g,
        (ExpectedMetadata::Integer(e), MetadataValue::Number(g)) => {
            g.as_i64() == Some(*e) || g.as_f64() == Some(*e as f64)
        }
        (ExpectedMetadata::Float(e), MetadataValue::Number(g)) => g.as_f64() == Some(*e),
        (ExpectedMetadata::Boolean(e), MetadataValue::Bool(g)) => e == g,
        _ => false,
    }
}

fn metadata_text(metadata: &[(String, MetadataValue)]) -> String {
    let object: Map<String, Value> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    Value::Object(object).to_string()
}

fn now_unix_seconds() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(elapsed.as_secs()).expect("the clock fits i64 seconds")
}

/// Matches `text` against `pattern`, where each `{}` captures text up to the
/// next literal part. The last capture extends to the final literal suffix, so
/// values containing quotes (JSON objects) are captured whole.
fn captures<const N: usize>(text: &str, pattern: &str) -> Option<[String; N]> {
    let literals: Vec<&str> = pattern.split("{}").collect();
    assert_eq!(
        literals.len(),
        N + 1,
        "pattern {pattern:?} has not {N} captures"
    );
    let mut rest = text.strip_prefix(literals[0])?;
    let mut values = Vec::with_capacity(N);
    for (index, literal) in literals[1..].iter().enumerate() {
        let is_last = index + 1 == N;
        let (value, after) = if is_last {
            (rest.strip_suffix(literal)?, "")
        } else {
            rest.split_once(literal)?
        };
        values.push(value.to_owned());
        rest = after;
    }
    if !rest.is_empty() {
        return None;
    }
    values.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_values_with_quotes() {
        let text =
            r#"a context containing a key "k", with type "Object" and with value "{"a": 1}""#;
        let got = captures::<3>(
            text,
            "a context containing a key \"{}\", with type \"{}\" and with value \"{}\"",
        );
        assert_eq!(
            got,
            Some([
                "k".to_owned(),
                "Object".to_owned(),
                r#"{"a": 1}"#.to_owned()
            ])
        );
        assert_eq!(
            captures::<1>("the reason should be \"\"", "the reason should be \"{}\""),
            Some([String::new()])
        );
        assert_eq!(
            captures::<1>("the reason is \"X\"", "the reason should be \"{}\""),
            None
        );
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            FlagType::Object.parse_value(r#"{\"a\": 1}"#).unwrap(),
            serde_json::json!({"a": 1})
        );
        let float_zero = FlagType::Float.parse_value("0.0").unwrap();
        assert!(FlagType::Float.same_value(&float_zero, &serde_json::json!(0)));
        assert!(!FlagType::Integer.same_value(&serde_json::json!(1), &serde_json::json!(2)));
    }
}
