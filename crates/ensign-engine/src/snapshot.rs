//! Compiled flags, and snapshots that merge the flags of several sources.
//!
//! A [`Snapshot`] is immutable: servers build a new one when a source changes
//! and swap it in atomically. Flags are shared between snapshots (`Arc`), so a
//! change to one source does not recompile the others.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::document::FlagDocument;
use crate::fractional::FractionalTrace;
use crate::logic::{self, Env, Node, val::Val};
use crate::metadata::{Metadata, MetadataValue};
use crate::resolution::{ErrorCode, Reason, Resolution};
use crate::value::{FlagValue, RequestedType, ValueType};

/// The evaluation context: `targetingKey` plus any attributes.
pub type Context = Map<String, Value>;

/// Flag keys are hashed with FNV-1a rather than SipHash: the index is built from
/// configuration and only read by requests, so collisions cannot be forced into
/// it, and short keys hash several times faster.
type KeyHasher = std::hash::BuildHasherDefault<Fnv1a>;

/// The 64-bit FNV-1a hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Metadata of unknown flags.
static NO_METADATA: Metadata = Metadata::new();

/// Which `fractional` bucketing generation to compute.
///
/// See `docs/adr/0001-fractional-bucketing-generation.md` for which SDKs and
/// flagd versions compute which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FractionalGeneration {
    /// flagd 0.15–0.16, `@openfeature/flagd-core` 4.x: murmur3 of the UTF-8 string.
    V2,
    /// The accepted successor: murmur3 of the deterministic CBOR encoding.
    #[default]
    V3,
}

impl FractionalGeneration {
    /// Parses `v2` or `v3`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "v2" | "V2" => Some(FractionalGeneration::V2),
            "v3" | "V3" => Some(FractionalGeneration::V3),
            _ => None,
        }
    }
}

/// Per-engine evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvaluationOptions {
    /// The bucketing generation of `fractional`.
    pub fractional: FractionalGeneration,
}

/// Whether a flag is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagState {
    /// Evaluated normally.
    Enabled,
    /// Answers `DISABLED` with no value; targeting is not run.
    Disabled,
}

impl FlagState {
    /// `ENABLED` or `DISABLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagState::Enabled => "ENABLED",
            FlagState::Disabled => "DISABLED",
        }
    }
}

/// A flag's targeting, compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Targeting {
    /// No rule (absent or `{}`): the default variant is served with `STATIC`.
    None,
    /// A compiled rule.
    Rule(Node),
    /// A rule that could not be compiled; every evaluation is a `PARSE_ERROR`.
    Broken(String),
}

/// One compiled flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    key: String,
    state: FlagState,
    variants: Vec<(String, FlagValue)>,
    value_type: Option<ValueType>,
    default_variant: Option<usize>,
    targeting: Targeting,
    metadata: Metadata,
    flag_set_id: Option<String>,
    definition: Map<String, Value>,
}

impl Flag {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: String,
        state: FlagState,
        variants: Vec<(String, FlagValue)>,
        default_variant: Option<usize>,
        targeting: Targeting,
        metadata: Metadata,
        flag_set_id: Option<String>,
        definition: Map<String, Value>,
    ) -> Self {
        let value_type = variants.first().map(|(_, v)| v.value_type());
        Flag {
            key,
            state,
            variants,
            value_type,
            default_variant,
            targeting,
            metadata,
            flag_set_id,
            definition,
        }
    }

    /// The flag key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Enabled or disabled.
    pub fn state(&self) -> FlagState {
        self.state
    }

    /// The variants in document order.
    pub fn variants(&self) -> &[(String, FlagValue)] {
        &self.variants
    }

    /// The type shared by all variants.
    pub fn value_type(&self) -> Option<ValueType> {
        self.value_type
    }

    /// The default variant's name, if the flag has one.
    pub fn default_variant(&self) -> Option<&str> {
        self.default_variant.map(|i| self.variants[i].0.as_str())
    }

    /// Flag-set metadata overlaid by the flag's own.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The flag set this flag belongs to (`metadata.flagSetId`).
    pub fn flag_set_id(&self) -> Option<&str> {
        self.flag_set_id.as_deref()
    }

    /// The normalised definition (`state`, `variants`, `defaultVariant`,
    /// `targeting` with `$ref`s inlined), as flagd's sync payload carries it.
    pub fn definition(&self) -> &Map<String, Value> {
        &self.definition
    }

    /// The targeting compile error, if the flag answers `PARSE_ERROR`.
    pub fn targeting_error(&self) -> Option<&str> {
        match &self.targeting {
            Targeting::Broken(message) => Some(message),
            _ => None,
        }
    }

    /// Evaluates the flag without a type check.
    pub fn evaluate(
        &self,
        context: &Context,
        now: i64,
        options: &EvaluationOptions,
    ) -> Resolution<'_, &FlagValue> {
        self.evaluate_traced(context, now, options, None)
    }

    /// Evaluates the flag like [`Flag::evaluate`] and reports how every
    /// `fractional` reached placed the context (for explanations; serving
    /// uses [`Flag::evaluate`], which records nothing).
    pub fn explain(
        &self,
        context: &Context,
        now: i64,
        options: &EvaluationOptions,
    ) -> (Resolution<'_, &FlagValue>, Vec<FractionalTrace>) {
        let trace = RefCell::new(Vec::new());
        let resolution = self.evaluate_traced(context, now, options, Some(&trace));
        (resolution, trace.into_inner())
    }

    fn evaluate_traced(
        &self,
        context: &Context,
        now: i64,
        options: &EvaluationOptions,
        trace: Option<&RefCell<Vec<FractionalTrace>>>,
    ) -> Resolution<'_, &FlagValue> {
        if self.state == FlagState::Disabled {
            return self.code_default(Reason::Disabled);
        }
        let rule = match &self.targeting {
            Targeting::None => return self.default(Reason::Static),
            Targeting::Broken(message) => {
                return Resolution::failed(
                    ErrorCode::ParseError,
                    format!("flag \"{}\" has invalid targeting: {message}", self.key),
                    &self.metadata,
                );
            }
            Targeting::Rule(rule) => rule,
        };
        let env = Env {
            context,
            flag_key: &self.key,
            now,
            generation: options.fractional,
            trace,
        };
        let name = match logic::evaluate(rule, &env) {
            Val::Null => return self.default(Reason::Default),
            Val::Str(s) => self.variant_index(s),
            Val::String(s) => self.variant_index(&s),
            Val::Bool(true) => self.variant_index("true"),
            Val::Bool(false) => self.variant_index("false"),
            Val::Num(n) => self.variant_index(&logic::val::format_number(n)),
            // flagd: an array or object result names no variant.
            other => Err(logic::val::to_js_string(&other)),
        };
        match name {
            Ok(index) => {
                let (name, value) = &self.variants[index];
                Resolution {
                    value: Some(value),
                    variant: Some(name),
                    reason: Reason::TargetingMatch,
                    error: None,
                    metadata: &self.metadata,
                }
            }
            Err(name) => Resolution::failed(
                ErrorCode::General,
                format!(
                    "targeting of flag \"{}\" returned \"{name}\", which is not a variant",
                    self.key
                ),
                &self.metadata,
            ),
        }
    }

    /// Evaluates the flag and checks the value against the requested type.
    pub fn resolve(
        &self,
        requested: RequestedType,
        context: &Context,
        now: i64,
        options: &EvaluationOptions,
    ) -> Resolution<'_, &FlagValue> {
        let resolution = self.evaluate(context, now, options);
        let Some(value) = resolution.value else {
            return resolution;
        };
        if let Err(message) = check_type(value, requested) {
            return Resolution::failed(
                ErrorCode::TypeMismatch,
                format!("flag \"{}\": {message}", self.key),
                &self.metadata,
            );
        }
        resolution
    }

    fn variant_index(&self, name: &str) -> Result<usize, String> {
        self.variants
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| name.to_owned())
    }

    fn default(&self, reason: Reason) -> Resolution<'_, &FlagValue> {
        match self.default_variant {
            Some(index) => {
                let (name, value) = &self.variants[index];
                Resolution {
                    value: Some(value),
                    variant: Some(name),
                    reason,
                    error: None,
                    metadata: &self.metadata,
                }
            }
            None => self.code_default(Reason::Default),
        }
    }

    /// No value: the caller's code default applies.
    fn code_default(&self, reason: Reason) -> Resolution<'_, &FlagValue> {
        Resolution {
            value: None,
            variant: None,
            reason,
            error: None,
            metadata: &self.metadata,
        }
    }
}

/// The largest integer a float64 holds exactly: integer requests stay within it.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn check_type(value: &FlagValue, requested: RequestedType) -> Result<(), String> {
    let ok = match (requested, value) {
        (RequestedType::Boolean, FlagValue::Bool(_))
        | (RequestedType::String, FlagValue::String(_))
        | (RequestedType::Float, FlagValue::Number(_))
        | (RequestedType::Object, FlagValue::Object(_)) => true,
        (RequestedType::Integer, FlagValue::Number(n)) => {
            let whole = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
            if !whole {
                return Err(format!("the value {n} is not an integer"));
            }
            n.as_f64().is_some_and(|f| f.abs() <= MAX_SAFE_INTEGER)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "requested {requested}, but the value is {}",
            value.value_type()
        ))
    }
}

/// A named document with its priority given by position in [`Snapshot::build`].
#[derive(Debug, Clone)]
pub struct Source {
    /// The source's name (a file URI, `database`, ...); selectors match it.
    pub name: Arc<str>,
    /// The compiled document.
    pub document: Arc<FlagDocument>,
}

impl Source {
    /// A source named `name`.
    pub fn new(name: impl Into<Arc<str>>, document: FlagDocument) -> Self {
        Source {
            name: name.into(),
            document: Arc::new(document),
        }
    }
}

/// Which flags a request sees: flagd's `Flagd-Selector`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `flagSetId=<id>`; the empty id selects flags without a set.
    FlagSet(String),
    /// `source=<name>`, or a bare `<name>`.
    Source(String),
}

/// The longest selector accepted, in bytes (blanks around it included): far
/// beyond any flag-set id or source name, and small enough that what clients
/// send cannot make the per-selector work and caches of the servers large.
pub const MAX_SELECTOR_BYTES: usize = 1024;

/// A selector that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A `key=value` selector with a key other than `flagSetId` or `source`.
    #[error("unsupported selector key \"{0}\": use flagSetId=<id> or source=<name>")]
    UnsupportedKey(String),
    /// Longer than [`MAX_SELECTOR_BYTES`] (the length it has).
    #[error("the selector is {0} bytes long; the limit is {MAX_SELECTOR_BYTES} bytes")]
    TooLong(usize),
}

impl Selector {
    /// Parses `flagSetId=…`, `source=…` or a bare source name, of at most
    /// [`MAX_SELECTOR_BYTES`].
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.len() > MAX_SELECTOR_BYTES {
            return Err(SelectorError::TooLong(text.len()));
        }
        let text = text.trim();
        match text.split_once('=') {
            Some(("flagSetId", id)) => Ok(Selector::FlagSet(id.to_owned())),
            Some(("source", name)) => Ok(Selector::Source(name.to_owned())),
            Some((key, _)) => Err(SelectorError::UnsupportedKey(key.to_owned())),
            None => Ok(Selector::Source(text.to_owned())),
        }
    }

    /// The metadata flagd reflects back for this selector.
    pub fn reflection(&self) -> (&'static str, &str) {
        match self {
            Selector::FlagSet(id) => ("flagSetId", id),
            Selector::Source(name) => ("source", name),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, value) = self.reflection();
        write!(f, "{key}={value}")
    }
}

/// A flag in a snapshot, with the source it came from.
#[derive(Debug, Clone)]
struct Entry {
    flag: Arc<Flag>,
    source: usize,
}

/// An immutable, merged view of every source's flags.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    options: EvaluationOptions,
    sources: Vec<Source>,
    /// Every flag of a key, highest priority first.
    by_key: HashMap<Box<str>, Vec<Entry>, KeyHasher>,
    /// The key order of the unselected view: document order, first source first.
    keys: Vec<Box<str>>,
}

impl Snapshot {
    /// Merges `sources`; a later source has higher priority.
    pub fn build(sources: Vec<Source>, options: EvaluationOptions) -> Snapshot {
        let mut by_key: HashMap<Box<str>, Vec<Entry>, KeyHasher> = HashMap::default();
        let mut keys = Vec::new();
        for (source_index, source) in sources.iter().enumerate() {
            for flag in &source.document.flags {
                let slot = by_key.entry(flag.key.as_str().into()).or_default();
                if slot.is_empty() {
                    keys.push(flag.key.as_str().into());
                }
                slot.insert(
                    0,
                    Entry {
                        flag: Arc::clone(flag),
                        source: source_index,
                    },
                );
            }
        }
        Snapshot {
            options,
            sources,
            by_key,
            keys,
        }
    }

    /// The evaluation settings.
    pub fn options(&self) -> &EvaluationOptions {
        &self.options
    }

    /// The sources, lowest priority first.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The flag `key` as seen without a selector: the highest-priority one.
    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.get_selected(None, key)
    }

    /// The flag `key` as seen through `selector`.
    pub fn get_selected(&self, selector: Option<&Selector>, key: &str) -> Option<&Flag> {
        let entries = self.by_key.get(key)?;
        match selector {
            None => entries.first(),
            Some(_) => entries.iter().find(|entry| self.matches(selector, entry)),
        }
        .map(|entry| &*entry.flag)
    }

    /// The source a visible flag came from.
    pub fn source_of(&self, selector: Option<&Selector>, key: &str) -> Option<&str> {
        self.by_key
            .get(key)?
            .iter()
            .find(|entry| self.matches(selector, entry))
            .map(|entry| &*self.sources[entry.source].name)
    }

    fn matches(&self, selector: Option<&Selector>, entry: &Entry) -> bool {
        match selector {
            None => true,
            Some(Selector::FlagSet(id)) => entry.flag.flag_set_id().unwrap_or("") == id,
            Some(Selector::Source(name)) => &*self.sources[entry.source].name == name,
        }
    }

    /// Every flag visible through `selector`, one per key, in document order.
    pub fn flags<'s>(&'s self, selector: Option<&'s Selector>) -> impl Iterator<Item = &'s Flag> {
        self.keys
            .iter()
            .filter_map(move |key| self.get_selected(selector, key))
    }

    /// Resolves `key` for `context` at `now` (unix seconds), checking the type.
    pub fn resolve(
        &self,
        key: &str,
        requested: RequestedType,
        context: &Context,
        now: i64,
    ) -> Resolution<'_, &FlagValue> {
        self.resolve_selected(None, key, requested, context, now)
    }

    /// [`Snapshot::resolve`] through a selector.
    pub fn resolve_selected(
        &self,
        selector: Option<&Selector>,
        key: &str,
        requested: RequestedType,
        context: &Context,
        now: i64,
    ) -> Resolution<'_, &FlagValue> {
        match self.get_selected(selector, key) {
            Some(flag) => flag.resolve(requested, context, now, &self.options),
            None => not_found(),
        }
    }

    /// Evaluates every flag visible through `selector`, without type checks.
    pub fn resolve_all<'s>(
        &'s self,
        selector: Option<&'s Selector>,
        context: &'s Context,
        now: i64,
    ) -> impl Iterator<Item = (&'s Flag, Resolution<'s, &'s FlagValue>)> {
        self.flags(selector)
            .map(move |flag| (flag, flag.evaluate(context, now, &self.options)))
    }

    /// Resolves a boolean flag.
    pub fn resolve_boolean(&self, key: &str, context: &Context, now: i64) -> Resolution<'_, bool> {
        self.resolve(key, RequestedType::Boolean, context, now)
            .map(|v| matches!(v, FlagValue::Bool(true)))
    }

    /// Resolves a string flag.
    pub fn resolve_string(&self, key: &str, context: &Context, now: i64) -> Resolution<'_, &str> {
        self.resolve(key, RequestedType::String, context, now)
            .map(|v| match v {
                FlagValue::String(s) => s.as_str(),
                _ => "",
            })
    }

    /// Resolves an integer flag (whole numbers within ±(2^53 − 1)).
    pub fn resolve_integer(&self, key: &str, context: &Context, now: i64) -> Resolution<'_, i64> {
        self.resolve(key, RequestedType::Integer, context, now)
            .map(|v| match v {
                FlagValue::Number(n) => n
                    .as_i64()
                    .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
                _ => 0,
            })
    }

    /// Resolves a float flag.
    pub fn resolve_float(&self, key: &str, context: &Context, now: i64) -> Resolution<'_, f64> {
        self.resolve(key, RequestedType::Float, context, now)
            .map(|v| match v {
                FlagValue::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                _ => f64::NAN,
            })
    }

    /// Resolves an object flag.
    pub fn resolve_object(
        &self,
        key: &str,
        context: &Context,
        now: i64,
    ) -> Resolution<'_, &Map<String, Value>> {
        static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        self.resolve(key, RequestedType::Object, context, now)
            .map(|v| match v {
                FlagValue::Object(o) => o,
                _ => &EMPTY,
            })
    }
}

fn not_found() -> Resolution<'static, &'static FlagValue> {
    Resolution::failed(ErrorCode::FlagNotFound, "flag not found", &NO_METADATA)
}

/// How a flag changed between two snapshots, as flagd's `configuration_change`
/// event names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagChange {
    /// The key appeared.
    Write,
    /// State, variants, default variant, targeting, metadata or source changed.
    Update,
    /// The key disappeared.
    Delete,
}

impl FlagChange {
    /// `write`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagChange::Write => "write",
            FlagChange::Update => "update",
            FlagChange::Delete => "delete",
        }
    }
}

/// JSON equality with numbers compared by value, as flagd compares them
/// (float64): `0`, `0.0` and `0e0` are the same.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => same_json_object(x, y),
        _ => a == b,
    }
}

fn same_json_object(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
}

fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.get(k).is_some_and(|w| match (v, w) {
                (MetadataValue::Number(x), MetadataValue::Number(y)) => x.as_f64() == y.as_f64(),
                _ => v == w,
            })
        })
}

impl Snapshot {
    /// Whether any flag visible through `selector` differs from `previous`:
    /// [`Snapshot::changes_since`] that stops at the first difference.
    pub fn has_changes_since(&self, previous: &Snapshot, selector: Option<&Selector>) -> bool {
        self.flags(selector)
            .any(|flag| !self.unchanged(previous, selector, flag))
            || previous
                .flags(selector)
                .any(|flag| self.get_selected(selector, flag.key()).is_none())
    }

    /// Whether `flag` (visible here) is visible and identical in `previous`.
    fn unchanged(&self, previous: &Snapshot, selector: Option<&Selector>, flag: &Flag) -> bool {
        let key = flag.key();
        previous.get_selected(selector, key).is_some_and(|old| {
            (std::ptr::eq(old, flag)
                || (same_json_object(&old.definition, &flag.definition)
                    && same_metadata(&old.metadata, &flag.metadata)))
                && previous.source_of(selector, key) == self.source_of(selector, key)
        })
    }

    /// The flags visible through `selector` that differ between `previous` and
    /// this snapshot, by key (sorted).
    pub fn changes_since(
        &self,
        previous: &Snapshot,
        selector: Option<&Selector>,
    ) -> Vec<(String, FlagChange)> {
        let mut changes = Vec::new();
        for flag in self.flags(selector) {
            if previous.get_selected(selector, flag.key()).is_none() {
                changes.push((flag.key().to_owned(), FlagChange::Write));
            } else if !self.unchanged(previous, selector, flag) {
                changes.push((flag.key().to_owned(), FlagChange::Update));
            }
        }
        for flag in previous.flags(selector) {
            if self.get_selected(selector, flag.key()).is_none() {
                changes.push((flag.key().to_owned(), FlagChange::Delete));
            }
        }
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        changes
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::document::{self, Limits};
    use serde_json::json;

    fn source(name: &str, flags: Value) -> Source {
        let loaded = document::load_value(&flags, &Limits::default()).expect("valid document");
        Source::new(name, loaded.document)
    }

    fn flag(default: &str) -> Value {
        json!({"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": default})
    }

    #[test]
    fn later_sources_win_and_selectors_pick() {
        let snapshot = Snapshot::build(
            vec![
                source(
                    "one",
                    json!({"flags": {"k": flag("a"), "only-one": flag("a")}}),
                ),
                source(
                    "two",
                    json!({"flags": {"k": flag("b")}, "metadata": {"flagSetId": "set-2"}}),
                ),
            ],
            EvaluationOptions::default(),
        );
        let ctx = Context::new();
        let resolve = |selector: Option<&Selector>| {
            snapshot
                .resolve_selected(selector, "k", RequestedType::String, &ctx, 0)
                .variant
                .map(str::to_owned)
        };
        assert_eq!(resolve(None).as_deref(), Some("b"));
        let one = Selector::parse("source=one").expect("selector");
        assert_eq!(resolve(Some(&one)).as_deref(), Some("a"));
        let set = Selector::parse("flagSetId=set-2").expect("selector");
        assert_eq!(resolve(Some(&set)).as_deref(), Some("b"));
        let null_set = Selector::parse("flagSetId=").expect("selector");
        assert_eq!(resolve(Some(&null_set)).as_deref(), Some("a"));
        assert_eq!(
            snapshot
                .flags(Some(&set))
                .map(Flag::key)
                .collect::<Vec<_>>(),
            ["k"]
        );
        assert!(Selector::parse("owner=me").is_err());
    }

    #[test]
    fn changes_name_writes_updates_and_deletes() {
        let before = Snapshot::build(
            vec![source(
                "s",
                json!({"flags": {"kept": flag("a"), "changed": flag("a"), "gone": flag("a")}}),
            )],
            EvaluationOptions::default(),
        );
        let after = Snapshot::build(
            vec![source(
                "s",
                json!({"flags": {"kept": flag("a"), "changed": flag("b"), "new": flag("a")}}),
            )],
            EvaluationOptions::default(),
        );
        assert_eq!(
            after.changes_since(&before, None),
            vec![
                ("changed".to_owned(), FlagChange::Update),
                ("gone".to_owned(), FlagChange::Delete),
                ("new".to_owned(), FlagChange::Write),
            ]
        );
        assert!(after.changes_since(&after, None).is_empty());
        assert!(after.has_changes_since(&before, None));
        assert!(!after.has_changes_since(&after, None));
        let written_differently = Snapshot::build(
            vec![source(
                "s",
                json!({"flags": {"n": {"state": "ENABLED", "variants": {"zero": 0.0, "half": 0.5}, "defaultVariant": "zero"}}}),
            )],
            EvaluationOptions::default(),
        );
        let same_values = Snapshot::build(
            vec![source(
                "s",
                json!({"flags": {"n": {"state": "ENABLED", "variants": {"zero": 0, "half": 5e-1}, "defaultVariant": "zero"}}}),
            )],
            EvaluationOptions::default(),
        );
        assert!(
            same_values
                .changes_since(&written_differently, None)
                .is_empty()
        );
    }
}
