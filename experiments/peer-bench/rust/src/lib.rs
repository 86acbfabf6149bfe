//! Thin resolution glue around `flagd-evaluation-engine` 0.1.0, for the peer benchmark.
//!
//! The crate offers a flag parser (`FlagParser::parse_string`) and a targeting evaluator
//! (`Operator::apply(flag_key, rule_json, ctx) -> Option<variant>`), but no flag store and no
//! "resolve a flag" call: lookup, DISABLED, STATIC/DEFAULT and the variant lookup live in the
//! `open-feature-flagd` provider. [`Store::resolve`] does the same steps (flagd semantics),
//! minus the provider's async store, cache and error objects. It stringifies each targeting
//! rule once at load, while the provider calls `FeatureFlag::get_targeting()` twice per
//! evaluation; `Operator::apply` itself parses and compiles the rule on every call, and the
//! crate has no way to keep a compiled rule.

use std::borrow::Cow;
use std::collections::HashMap;

use flagd_evaluation_engine::{FeatureFlag, FlagParser, FlagdEvaluationError, Operator};
use open_feature::EvaluationContext;
use serde_json::Value;

/// Number of rotating contexts (a power of two).
pub const N_CONTEXTS: usize = 1024;

/// Context `i` as defined in `benches/scenarios/README.md`.
pub fn context(i: usize) -> EvaluationContext {
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
    EvaluationContext::default()
        .with_targeting_key(format!("user-{i}"))
        .with_custom_field("email", format!("user-{i}@{}", DOMAINS[i % 7]))
        .with_custom_field("country", COUNTRIES[i % 8])
        .with_custom_field("plan", if i % 6 == 5 { "free" } else { "pro" })
        .with_custom_field("age", (17 + 6 * (i % 9)) as i64)
        .with_custom_field("appVersion", format!("2.{}.{}", i % 11, i % 13))
}

/// All `N_CONTEXTS` contexts.
pub fn contexts() -> Vec<EvaluationContext> {
    (0..N_CONTEXTS).map(context).collect()
}

/// How a resolution ended (flagd reasons; errors collapsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Static,
    TargetingMatch,
    Default,
    Disabled,
    FlagNotFound,
    Error,
}

/// Result of [`Store::resolve`]: the reason and, when there is one, the variant's value.
#[derive(Debug)]
pub struct Resolution<'a> {
    pub reason: Reason,
    pub value: Option<&'a Value>,
}

impl Resolution<'_> {
    fn without_value(reason: Reason) -> Self {
        Self {
            reason,
            value: None,
        }
    }
}

struct Entry {
    flag: FeatureFlag,
    /// `None` when the flag has no targeting (absent or `{}`).
    targeting: Option<String>,
}

/// Parsed flags plus the crate's targeting evaluator.
pub struct Store {
    flags: HashMap<String, Entry>,
    operator: Operator,
}

impl Store {
    /// Parses a flagd document ("load+compile": the crate compiles nothing ahead of time).
    pub fn load(document: &str) -> Result<Self, FlagdEvaluationError> {
        let parsed = FlagParser::parse_string(document)?;
        let flags = parsed
            .flags
            .into_iter()
            .map(|(key, flag)| {
                let rule = flag.get_targeting();
                let targeting = (rule != "{}").then_some(rule);
                (key, Entry { flag, targeting })
            })
            .collect();
        Ok(Self {
            flags,
            operator: Operator::new(),
        })
    }

    /// Number of flags held.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether the store holds no flag.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Resolves one flag the way flagd does (protocol notes §4.2, type check left out).
    pub fn resolve(&self, key: &str, ctx: &EvaluationContext) -> Resolution<'_> {
        let Some(entry) = self.flags.get(key) else {
            return Resolution::without_value(Reason::FlagNotFound);
        };
        self.resolve_entry(key, entry, ctx)
    }

    /// Resolves every enabled flag (there is no bulk call in the crate); returns how many
    /// gave a value.
    pub fn resolve_all(&self, ctx: &EvaluationContext) -> usize {
        self.flags
            .iter()
            .filter(|(_, e)| e.flag.state != "DISABLED")
            .filter(|(key, e)| self.resolve_entry(key, e, ctx).value.is_some())
            .count()
    }

    fn resolve_entry<'a>(
        &'a self,
        key: &str,
        e: &'a Entry,
        ctx: &EvaluationContext,
    ) -> Resolution<'a> {
        let flag = &e.flag;
        if flag.state == "DISABLED" {
            return Resolution::without_value(Reason::Disabled);
        }
        let default = || Cow::Borrowed(flag.default_variant.as_str());
        let (variant, reason) = match &e.targeting {
            None => (default(), Reason::Static),
            Some(rule) => match self.operator.apply(key, rule, ctx) {
                Ok(Some(variant)) => (Cow::Owned(variant), Reason::TargetingMatch),
                Ok(None) => (default(), Reason::Default),
                Err(_) => return Resolution::without_value(Reason::Error),
            },
        };
        match flag.variants.get(variant.as_ref()) {
            Some(value) => Resolution {
                reason,
                value: Some(value),
            },
            None => Resolution::without_value(Reason::Error),
        }
    }
}
