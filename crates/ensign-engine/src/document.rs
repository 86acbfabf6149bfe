//! Flag documents in flagd's format (JSON or YAML): parsing within limits,
//! validation that reports every problem with its JSON Pointer, and compilation
//! into [`Flag`]s.
//!
//! Two severities:
//! - an **error** makes the document unusable (bad structure, a default variant
//!   that names no variant, mixed variant types) and rejects it whole;
//! - a **warning** leaves the document usable: a flag whose targeting cannot be
//!   compiled (unknown operator, unresolved `$ref`) loads and answers
//!   `PARSE_ERROR`, as in flagd; unknown properties are ignored.
//!
//! See `docs/adr/0004-validation-severity.md`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::logic::compile::{self, escape_pointer};
use crate::metadata::{Metadata, MetadataValue};
use crate::snapshot::{Flag, FlagState, Targeting};
use crate::value::FlagValue;

/// The syntax of a flag document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (a superset of JSON).
    Yaml,
}

impl Format {
    /// The format a file name implies: YAML for `.yaml`/`.yml`, JSON otherwise.
    pub fn from_path(path: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else {
            Format::Json
        }
    }
}

/// Bounds on what a document may be.
///
/// The rule bounds hold targeting rules as they are served and compiled, with
/// every `{"$ref": name}` replaced by the evaluator it names: a small document
/// whose rules reference a large evaluator many times would otherwise grow
/// without bound when inlined (into sync payloads and exports) and compiled.
/// They are checked while counting, before anything is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest document accepted, in bytes.
    pub max_document_bytes: usize,
    /// The deepest nesting of arrays and objects accepted.
    pub max_depth: usize,
    /// The largest targeting rule of one flag, in bytes of compact JSON with
    /// its `$ref`s inlined.
    pub max_rule_bytes: usize,
    /// The most expressions (operators, operands, literals) one flag's
    /// targeting rule compiles to, with its `$ref`s inlined.
    pub max_rule_nodes: usize,
    /// The largest total of every flag's [`max_rule_bytes`](Limits::max_rule_bytes)
    /// measure in one document.
    pub max_document_rule_bytes: usize,
    /// The largest total of every flag's [`max_rule_nodes`](Limits::max_rule_nodes)
    /// measure in one document.
    pub max_document_rule_nodes: usize,
}

impl Default for Limits {
    /// 64 MiB and 64 levels; per flag 1 MiB and 50,000 expressions of
    /// targeting (real rules are a few hundred bytes to a few KiB; an `in`
    /// list of 10,000 user ids is about 400 KB and one expression); per
    /// document 16 MiB and 500,000 expressions of targeting, so one document
    /// compiles to at most some tens of MB whatever its `$ref`s.
    fn default() -> Self {
        Limits {
            max_document_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_rule_bytes: 1024 * 1024,
            max_rule_nodes: 50_000,
            max_document_rule_bytes: 16 * 1024 * 1024,
            max_document_rule_nodes: 500_000,
        }
    }
}

/// How serious a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The document is rejected.
    Error,
    /// The document loads; the message says what will behave unexpectedly.
    Warning,
}

/// One problem found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON Pointer to the offending value (`""` is the whole document).
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
    /// Whether it rejects the document.
    pub severity: Severity,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level} at {path}: {}", self.message)
    }
}

/// A document that was rejected, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid flag document: {}", summary(.problems))]
pub struct DocumentError {
    /// Errors first, then warnings, each in document order.
    pub problems: Vec<Problem>,
}

fn summary(problems: &[Problem]) -> String {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A loaded document and the warnings it produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The compiled document.
    pub document: FlagDocument,
    /// Problems that did not reject the document.
    pub warnings: Vec<Problem>,
}

/// A validated, compiled flag document.
#[derive(Debug, Clone, Default)]
pub struct FlagDocument {
    /// The flags in document order.
    pub flags: Vec<Arc<Flag>>,
    /// The document's flag-set metadata.
    pub metadata: Metadata,
}

/// Parses, validates and compiles a document.
pub fn load(text: &str, format: Format, limits: &Limits) -> Result<Loaded, DocumentError> {
    let value = parse(text, format, limits).map_err(|message| DocumentError {
        problems: vec![Problem {
            path: String::new(),
            message,
            severity: Severity::Error,
        }],
    })?;
    load_value(&value, limits)
}

/// Validates and compiles an already parsed document.
pub fn load_value(value: &Value, limits: &Limits) -> Result<Loaded, DocumentError> {
    if depth(value) > limits.max_depth {
        return Err(DocumentError {
            problems: vec![Problem {
                path: String::new(),
                message: format!("the document nests deeper than {} levels", limits.max_depth),
                severity: Severity::Error,
            }],
        });
    }
    let mut checker = Checker::new(*limits);
    let document = checker.document(value);
    let (errors, warnings): (Vec<_>, Vec<_>) = checker
        .problems
        .into_iter()
        .partition(|p| p.severity == Severity::Error);
    if errors.is_empty() {
        Ok(Loaded { document, warnings })
    } else {
        let mut problems = errors;
        problems.extend(warnings);
        Err(DocumentError { problems })
    }
}

/// Parses `text` (JSON, or YAML, a superset of JSON) into a JSON value within
/// `limits` (size; YAML flow nesting is refused before the parser sees it), or
/// says why it cannot. Shared by every YAML/JSON input Ensign reads.
pub fn parse(text: &str, format: Format, limits: &Limits) -> Result<Value, String> {
    if text.len() > limits.max_document_bytes {
        return Err(format!(
            "the document is {} bytes; the limit is {}",
            text.len(),
            limits.max_document_bytes
        ));
    }
    if text.trim().is_empty() {
        return Err("the document is empty".to_owned());
    }
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}")),
        Format::Yaml => {
            // The YAML parser's cost grows with the square of flow nesting
            // before its own depth limit applies: refuse deep nesting first.
            if flow_depth(text) > limits.max_depth {
                return Err(format!(
                    "the document nests deeper than {} levels",
                    limits.max_depth
                ));
            }
            serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
        }
    }
}

/// The deepest nesting of YAML flow collections (`[`, `{`) outside quoted
/// scalars and comments, in one pass. An overestimate is harmless: documents
/// that deep are refused anyway.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = ' ';
    for c in text.chars() {
        match (quote, c) {
            _ if comment => comment = c != '\n',
            (Some('"'), '"') if previous != '\\' => quote = None,
            (Some('\''), '\'') => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    deepest
}

/// Nesting depth without recursion, so no input can exhaust the stack.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((value, level)) = stack.pop() {
        deepest = deepest.max(level);
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, level + 1))),
            _ => {}
        }
    }
    deepest
}

struct Checker {
    problems: Vec<Problem>,
    limits: Limits,
    /// Inlined targeting bytes of the flags compiled so far.
    rule_bytes: usize,
    /// Targeting expressions of the flags compiled so far.
    rule_nodes: usize,
}

/// The document's `$evaluators`, with the size of each measured at most once.
struct Evaluators<'e> {
    rules: &'e Map<String, Value>,
    /// Compact-JSON bytes of each evaluator measured so far (saturated at the
    /// per-flag limit: anything larger is refused anyway).
    bytes: HashMap<&'e str, usize>,
}

impl<'e> Evaluators<'e> {
    fn new(rules: &'e Map<String, Value>) -> Self {
        Evaluators {
            rules,
            bytes: HashMap::new(),
        }
    }

    /// The evaluator a `{"$ref": name}` object is replaced by, if `map` is one
    /// and names an evaluator (what [`inline_references`] replaces).
    fn referenced(&self, map: &Map<String, Value>) -> Option<(&'e str, &'e Value)> {
        match (map.len(), map.get("$ref")) {
            (1, Some(Value::String(name))) => self.rules.get_key_value(name.as_str()),
            _ => None,
        }
        .map(|(name, rule)| (name.as_str(), rule))
    }

    /// Bytes of `rule` as compact JSON once its `$ref`s are inlined, counted
    /// without building it; `None` as soon as the count passes `limit`.
    fn inlined_bytes(&mut self, rule: &Value, limit: usize) -> Option<usize> {
        let mut total = 0usize;
        self.count_inlined(rule, &mut total, limit).then_some(total)
    }

    /// Adds `value`'s inlined bytes to `total`; false once it passes `limit`.
    fn count_inlined(&mut self, value: &Value, total: &mut usize, limit: usize) -> bool {
        match value {
            Value::Object(map) => {
                if let Some((name, rule)) = self.referenced(map) {
                    let bytes = *self
                        .bytes
                        .entry(name)
                        .or_insert_with(|| json_bytes(rule, limit).unwrap_or(usize::MAX));
                    *total = total.saturating_add(bytes);
                } else {
                    // Braces and commas, then `"key":value` per member.
                    *total = total.saturating_add(1 + map.len().max(1));
                    for (key, member) in map {
                        let key_bytes = json_bytes(key, usize::MAX).unwrap_or(usize::MAX);
                        *total = total.saturating_add(key_bytes).saturating_add(1);
                        if !self.count_inlined(member, total, limit) {
                            return false;
                        }
                    }
                }
            }
            Value::Array(items) => {
                *total = total.saturating_add(1 + items.len().max(1));
                for item in items {
                    if !self.count_inlined(item, total, limit) {
                        return false;
                    }
                }
            }
            scalar => {
                *total = total.saturating_add(json_bytes(scalar, limit).unwrap_or(usize::MAX))
            }
        }
        *total <= limit
    }
}

/// Counts the bytes written to it, failing once they pass a limit.
struct ByteCounter {
    bytes: usize,
    limit: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes = self.bytes.saturating_add(buf.len());
        if self.bytes > self.limit {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of `value` as compact JSON, written nowhere; `None` past `limit`.
fn json_bytes<T: serde::Serialize + ?Sized>(value: &T, limit: usize) -> Option<usize> {
    let mut counter = ByteCounter { bytes: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.bytes)
}

static EMPTY_OBJECT: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn pointer(base: &str, segment: &str) -> String {
    format!("{base}/{}", escape_pointer(segment))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Checker {
    fn new(limits: Limits) -> Self {
        Checker {
            problems: Vec::new(),
            limits,
            rule_bytes: 0,
            rule_nodes: 0,
        }
    }

    fn error(&mut self, path: String, message: String) {
        self.problems.push(Problem {
            path,
            message,
            severity: Severity::Error,
        });
    }

    fn warning(&mut self, path: String, message: String) {
        self.problems.push(Problem {
            path,
            message,
            severity: Severity::Warning,
        });
    }

    fn document(&mut self, value: &Value) -> FlagDocument {
        let Value::Object(root) = value else {
            self.error(
                String::new(),
                format!(
                    "a flag document must be an object, not {}",
                    type_name(value)
                ),
            );
            return FlagDocument::default();
        };
        for key in root.keys() {
            if !matches!(
                key.as_str(),
                "flags" | "$evaluators" | "metadata" | "$schema"
            ) {
                self.warning(pointer("", key), "unknown property, ignored".to_owned());
            }
        }
        let metadata = match root.get("metadata") {
            Some(value) => self.metadata("/metadata", value),
            None => Metadata::new(),
        };
        let mut evaluators = Evaluators::new(match root.get("$evaluators") {
            None => &EMPTY_OBJECT,
            Some(Value::Object(map)) => map,
            Some(other) => {
                self.error(
                    "/$evaluators".to_owned(),
                    format!("must be an object of named rules, not {}", type_name(other)),
                );
                &EMPTY_OBJECT
            }
        });
        let mut flags = Vec::new();
        match root.get("flags") {
            None => self.error(
                String::new(),
                "missing required property \"flags\"".to_owned(),
            ),
            Some(Value::Object(map)) => {
                for (key, definition) in map {
                    let path = pointer("/flags", key);
                    if let Some(flag) =
                        self.flag(&path, key, definition, &metadata, &mut evaluators)
                    {
                        flags.push(Arc::new(flag));
                    }
                }
            }
            Some(Value::Array(items)) => {
                let mut seen = std::collections::HashSet::new();
                for (i, definition) in items.iter().enumerate() {
                    let path = format!("/flags/{i}");
                    let key = match definition.get("key") {
                        Some(Value::String(key)) => key,
                        _ => {
                            self.error(
                                path,
                                "a flag in the array form needs a string \"key\"".to_owned(),
                            );
                            continue;
                        }
                    };
                    if !seen.insert(key.as_str()) {
                        self.error(
                            format!("{path}/key"),
                            format!("duplicate flag key \"{key}\""),
                        );
                        continue;
                    }
                    if let Some(flag) =
                        self.flag(&path, key, definition, &metadata, &mut evaluators)
                    {
                        flags.push(Arc::new(flag));
                    }
                }
            }
            Some(other) => self.error(
                "/flags".to_owned(),
                format!(
                    "must be an object keyed by flag key, or an array, not {}",
                    type_name(other)
                ),
            ),
        }
        FlagDocument { flags, metadata }
    }

    fn metadata(&mut self, path: &str, value: &Value) -> Metadata {
        let Value::Object(map) = value else {
            self.error(
                path.to_owned(),
                format!("metadata must be an object, not {}", type_name(value)),
            );
            return Metadata::new();
        };
        let mut metadata = Metadata::new();
        for (key, value) in map {
            let entry = match value {
                Value::String(s) => MetadataValue::String(s.clone()),
                Value::Number(n) => MetadataValue::Number(n.clone()),
                Value::Bool(b) => MetadataValue::Bool(*b),
                // flagd drops null metadata values.
                Value::Null => continue,
                other => {
                    self.error(
                        pointer(path, key),
                        format!(
                            "metadata values must be strings, numbers or booleans, not {}",
                            type_name(other)
                        ),
                    );
                    continue;
                }
            };
            metadata.insert(key.clone(), entry);
        }
        metadata
    }

    fn flag(
        &mut self,
        path: &str,
        key: &str,
        definition: &Value,
        set_metadata: &Metadata,
        evaluators: &mut Evaluators<'_>,
    ) -> Option<Flag> {
        let errors_before = self.error_count();
        if key.is_empty() {
            self.error(path.to_owned(), "flag keys must not be empty".to_owned());
        }
        let Value::Object(fields) = definition else {
            self.error(
                path.to_owned(),
                format!("a flag must be an object, not {}", type_name(definition)),
            );
            return None;
        };
        for field in fields.keys() {
            let known = matches!(
                field.as_str(),
                "state" | "variants" | "defaultVariant" | "targeting" | "metadata"
            ) || field == "key";
            if !known {
                self.warning(pointer(path, field), "unknown property, ignored".to_owned());
            }
        }
        let state = match fields.get("state") {
            Some(Value::String(s)) if s == "ENABLED" => FlagState::Enabled,
            Some(Value::String(s)) if s == "DISABLED" => FlagState::Disabled,
            Some(other) => {
                self.error(
                    format!("{path}/state"),
                    format!("must be \"ENABLED\" or \"DISABLED\", not {other}"),
                );
                FlagState::Enabled
            }
            None => {
                self.error(
                    path.to_owned(),
                    "missing required property \"state\"".to_owned(),
                );
                FlagState::Enabled
            }
        };
        let variants = self.variants(path, fields.get("variants"));
        let default_variant = match fields.get("defaultVariant") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => {
                let index = variants.iter().position(|(n, _)| n == name);
                if index.is_none() && !variants.is_empty() {
                    self.error(
                        format!("{path}/defaultVariant"),
                        format!("names no variant: \"{name}\""),
                    );
                }
                index
            }
            Some(other) => {
                self.error(
                    format!("{path}/defaultVariant"),
                    format!("must be a variant name or null, not {}", type_name(other)),
                );
                None
            }
        };
        let mut metadata = set_metadata.clone();
        if let Some(value) = fields.get("metadata") {
            metadata.extend(self.metadata(&format!("{path}/metadata"), value));
        }
        let (targeting, inlined) = self.targeting(path, fields.get("targeting"), evaluators);
        if self.error_count() > errors_before {
            return None;
        }
        let flag_set_id = match metadata.get("flagSetId") {
            Some(MetadataValue::String(id)) => Some(id.clone()),
            _ => None,
        };
        let mut definition = Map::new();
        definition.insert("state".to_owned(), Value::from(state.as_str()));
        definition.insert(
            "variants".to_owned(),
            Value::Object(
                variants
                    .iter()
                    .map(|(name, value)| (name.clone(), value.to_json()))
                    .collect(),
            ),
        );
        definition.insert(
            "defaultVariant".to_owned(),
            default_variant.map_or(Value::Null, |i| Value::from(variants[i].0.clone())),
        );
        if let Some(rule) = inlined {
            definition.insert("targeting".to_owned(), rule);
        }
        Some(Flag::new(
            key.to_owned(),
            state,
            variants,
            default_variant,
            targeting,
            metadata,
            flag_set_id,
            definition,
        ))
    }

    fn error_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    fn variants(&mut self, path: &str, value: Option<&Value>) -> Vec<(String, FlagValue)> {
        let path = format!("{path}/variants");
        let map = match value {
            Some(Value::Object(map)) if !map.is_empty() => map,
            Some(Value::Object(_)) => {
                self.error(path, "a flag needs at least one variant".to_owned());
                return Vec::new();
            }
            Some(other) => {
                self.error(
                    path,
                    format!(
                        "must be an object of named values, not {}",
                        type_name(other)
                    ),
                );
                return Vec::new();
            }
            None => {
                let parent = path.trim_end_matches("/variants").to_owned();
                self.error(parent, "missing required property \"variants\"".to_owned());
                return Vec::new();
            }
        };
        let mut variants = Vec::with_capacity(map.len());
        let mut first_type = None;
        for (name, value) in map {
            let variant_path = pointer(&path, name);
            if name.is_empty() {
                self.error(
                    variant_path.clone(),
                    "variant names must not be empty".to_owned(),
                );
            }
            let value = match value {
                Value::Bool(b) => FlagValue::Bool(*b),
                Value::String(s) => FlagValue::String(s.clone()),
                Value::Number(n) => FlagValue::Number(n.clone()),
                Value::Object(o) => FlagValue::Object(o.clone()),
                other => {
                    self.error(
                        variant_path,
                        format!(
                            "a variant must be a boolean, string, number or object, not {}",
                            type_name(other)
                        ),
                    );
                    continue;
                }
            };
            match first_type {
                None => first_type = Some((value.value_type(), name.clone())),
                Some((expected, ref first)) if expected != value.value_type() => {
                    let message = format!(
                        "all variants of a flag must have one type: \"{first}\" is {expected}, this one is {}",
                        value.value_type()
                    );
                    self.error(variant_path, message);
                    continue;
                }
                Some(_) => {}
            }
            variants.push((name.clone(), value));
        }
        variants
    }

    /// Compiles the targeting rule; returns it and its JSON with `$ref`s
    /// inlined. A rule over the [`Limits`] on rules is an error, found by
    /// counting before anything is copied.
    fn targeting(
        &mut self,
        path: &str,
        value: Option<&Value>,
        evaluators: &mut Evaluators<'_>,
    ) -> (Targeting, Option<Value>) {
        let rule = match value {
            None | Some(Value::Null) => return (Targeting::None, None),
            Some(Value::Object(map)) if map.is_empty() => return (Targeting::None, None),
            Some(rule @ Value::Object(_)) => rule,
            Some(other) => {
                self.error(
                    format!("{path}/targeting"),
                    format!("must be a JsonLogic object, not {}", type_name(other)),
                );
                return (Targeting::None, None);
            }
        };
        let Some(compile::Compiled { node, problems, .. }) =
            self.compile_within_limits(path, rule, evaluators)
        else {
            return (Targeting::None, None);
        };
        let inlined = inline_references(rule, evaluators);
        if problems.is_empty() {
            return (Targeting::Rule(node), Some(inlined));
        }
        let message = problems
            .iter()
            .map(|p| format!("{} at {}/targeting{}", p.message, path, p.path))
            .collect::<Vec<_>>()
            .join("; ");
        for problem in problems {
            self.warning(
                format!("{path}/targeting{}", problem.path),
                format!("{}; the flag will answer PARSE_ERROR", problem.message),
            );
        }
        (Targeting::Broken(message), Some(inlined))
    }

    /// Compiles `rule` if it stays within the per-flag and per-document rule
    /// limits (inlined bytes first, then compiled expressions), and adds it to
    /// the document's totals; otherwise reports which limit it passes at
    /// `<path>/targeting` and returns `None`.
    fn compile_within_limits(
        &mut self,
        path: &str,
        rule: &Value,
        evaluators: &mut Evaluators<'_>,
    ) -> Option<compile::Compiled> {
        let pointer = format!("{path}/targeting");
        let limits = self.limits;
        let Some(bytes) = evaluators.inlined_bytes(rule, limits.max_rule_bytes) else {
            self.error(
                pointer,
                format!(
                    "the targeting rule is over the limit of {} bytes per flag once its \"$ref\"s are inlined",
                    limits.max_rule_bytes
                ),
            );
            return None;
        };
        if self.rule_bytes.saturating_add(bytes) > limits.max_document_rule_bytes {
            self.error(
                pointer,
                format!(
                    "the targeting rules of this document are over the limit of {} bytes per document once their \"$ref\"s are inlined",
                    limits.max_document_rule_bytes
                ),
            );
            return None;
        }
        let document_nodes_left = limits
            .max_document_rule_nodes
            .saturating_sub(self.rule_nodes);
        let budget = limits.max_rule_nodes.min(document_nodes_left);
        match compile::compile_within(rule, evaluators.rules, budget) {
            Ok(compiled) => {
                self.rule_bytes += bytes;
                self.rule_nodes += compiled.nodes;
                Some(compiled)
            }
            Err(compile::NodeBudgetExceeded) => {
                let message = if budget == limits.max_rule_nodes {
                    format!(
                        "the targeting rule is over the limit of {} expressions per flag once its \"$ref\"s are inlined",
                        limits.max_rule_nodes
                    )
                } else {
                    format!(
                        "the targeting rules of this document are over the limit of {} expressions per document once their \"$ref\"s are inlined",
                        limits.max_document_rule_nodes
                    )
                };
                self.error(pointer, message);
                None
            }
        }
    }
}

/// The rule with every resolvable `{"$ref": name}` replaced by the named rule
/// (once, as flagd does), for sync payloads and exports.
fn inline_references(rule: &Value, evaluators: &Evaluators<'_>) -> Value {
    match rule {
        Value::Object(map) => {
            if let Some((_, target)) = evaluators.referenced(map) {
                return target.clone();
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), inline_references(v, evaluators)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| inline_references(item, evaluators))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use serde_json::json;

    fn evaluators() -> Map<String, Value> {
        let Value::Object(map) = json!({
            "pro": {"in": [{"var": "plan"}, ["pro", "enter\"prise/é"]]},
            "nested": {"$ref": "pro"}
        }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn inlined_bytes_are_counted_exactly_without_inlining() {
        let rules = evaluators();
        let mut evaluators = Evaluators::new(&rules);
        for rule in [
            json!({"if": [{"$ref": "pro"}, "a", "b"]}),
            json!({"or": [{"$ref": "pro"}, {"$ref": "nested"}, {"$ref": "absent"}, {"$ref": "pro", "x": 1}]}),
            json!({"in": [{"var": "k\u{1}"}, [], {}, [null, true, 1.5e300, -3]]}),
            json!({"$ref": "pro"}),
        ] {
            let inlined = inline_references(&rule, &evaluators).to_string();
            assert_eq!(
                evaluators.inlined_bytes(&rule, usize::MAX),
                Some(inlined.len()),
                "{inlined}"
            );
            assert_eq!(evaluators.inlined_bytes(&rule, inlined.len() - 1), None);
        }
    }

    /// A document with `flags` flags, each referencing `pro` `refs` times.
    fn referencing(flags: usize, refs: usize) -> Value {
        let rule = json!({"or": vec![json!({"$ref": "pro"}); refs]});
        let flags: Map<String, Value> = (0..flags)
            .map(|i| {
                let flag = json!({"state": "ENABLED", "variants": {"on": true}, "targeting": rule});
                (format!("f~{i}"), flag)
            })
            .collect();
        json!({"$evaluators": evaluators(), "flags": flags})
    }

    fn refused(document: &Value, limits: &Limits) -> Vec<Problem> {
        load_value(document, limits).unwrap_err().problems
    }

    #[test]
    fn rules_over_the_per_flag_limits_are_errors_at_their_targeting() {
        let one_ref = inline_references(&json!({"$ref": "pro"}), &Evaluators::new(&evaluators()))
            .to_string()
            .len();
        let limits = Limits {
            max_rule_bytes: 10 * one_ref,
            ..Limits::default()
        };
        assert!(load_value(&referencing(1, 8), &limits).is_ok());
        let problems = refused(&referencing(1, 10), &limits);
        assert_eq!(problems[0].path, "/flags/f~00/targeting");
        assert_eq!(problems[0].severity, Severity::Error);
        let limit = format!("limit of {} bytes per flag", 10 * one_ref);
        assert!(problems[0].message.contains(&limit), "{}", problems[0]);

        // `or`, then per reference: the `$ref`, `in`, `var` and the constant list.
        let limits = Limits {
            max_rule_nodes: 1 + 4 * 10,
            ..Limits::default()
        };
        assert!(load_value(&referencing(1, 10), &limits).is_ok());
        let problems = refused(&referencing(1, 11), &limits);
        assert_eq!(problems[0].path, "/flags/f~00/targeting");
        assert!(
            problems[0]
                .message
                .contains("limit of 41 expressions per flag"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn rules_over_the_per_document_limits_are_errors_at_the_flag_that_passes_them() {
        let limits = Limits {
            max_document_rule_nodes: 3 * 41,
            ..Limits::default()
        };
        assert!(load_value(&referencing(3, 10), &limits).is_ok());
        let problems = refused(&referencing(4, 10), &limits);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "/flags/f~03/targeting");
        assert!(
            problems[0]
                .message
                .contains("limit of 123 expressions per document"),
            "{}",
            problems[0]
        );

        let bytes = referencing(1, 10)["flags"]["f~0"]["targeting"]
            .to_string()
            .len();
        let rule_bytes = inline_references(
            &referencing(1, 10)["flags"]["f~0"]["targeting"],
            &Evaluators::new(&evaluators()),
        )
        .to_string()
        .len();
        assert!(rule_bytes > bytes);
        let limits = Limits {
            max_document_rule_bytes: 2 * rule_bytes,
            ..Limits::default()
        };
        assert!(load_value(&referencing(2, 10), &limits).is_ok());
        let problems = refused(&referencing(3, 10), &limits);
        assert_eq!(problems[0].path, "/flags/f~02/targeting");
        let limit = format!("limit of {} bytes per document", 2 * rule_bytes);
        assert!(problems[0].message.contains(&limit), "{}", problems[0]);
    }

    #[test]
    fn yaml_flow_depth_ignores_quotes_and_comments() {
        assert_eq!(flow_depth("a: [1, {b: [2]}]"), 3);
        assert_eq!(flow_depth("a: \"[[[[\" # {{{{\nb: '[['"), 0);
        assert_eq!(flow_depth("a: \"x\\\"[\" "), 0);
    }

    #[test]
    fn deep_yaml_is_refused_before_parsing() {
        let deep = "{\"a\":".repeat(200_000);
        let started = std::time::Instant::now();
        let error = load(&deep, Format::Yaml, &Limits::default()).unwrap_err();
        assert!(
            error.problems[0].message.contains("deeper than 64"),
            "{error}"
        );
        // Linear: a quadratic parser would take minutes here.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
