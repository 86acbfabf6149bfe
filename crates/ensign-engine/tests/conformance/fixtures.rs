//! The flag sources each testbed setup loads, rebuilt from the testbed's files.
//!
//! - `Given an evaluator` (evaluator suite): `evaluator/flags/testkit-flags.json`
//!   as the only source.
//! - `Given a stable flagd provider` (launchpad `configs/default.json`): source
//!   `flags/allFlags.json`, the deep merge of every `flags/*.json` whose name does
//!   not start with `selector-` (as launchpad generates it), then the
//!   higher-priority source `rawflags/selector-flags.json`; static context
//!   `injectedmetadata=set`.
//! - `Given a metadata flagd provider` (`configs/metadata.json`): the single
//!   source `rawflags/selector-flag-combined-metadata.json`.
//!
//! Source names are the configured URIs, because selector scenarios name them.
//! A file that does not load is a setup failure (panic), never a skip.

use std::fs;
use std::path::Path;

use ensign_engine::{
    Context, EvaluationOptions, Format, FractionalGeneration, Limits, Snapshot, Source, document,
};
use serde_json::{Map, Value};

/// Source name of the evaluator suite's flags.
pub const EVALUATOR_SOURCE: &str = "evaluator/flags/testkit-flags.json";
/// Source name of the merged provider-suite flags.
pub const ALL_FLAGS_SOURCE: &str = "flags/allFlags.json";
/// Source name of the selector flags.
pub const SELECTOR_SOURCE: &str = "rawflags/selector-flags.json";
/// Source name of the flag-set metadata flags.
pub const COMBINED_METADATA_SOURCE: &str = "rawflags/selector-flag-combined-metadata.json";

/// The loaded sources of every setup, independent of the fractional generation.
pub struct Fixtures {
    evaluator: Vec<Source>,
    stable: Vec<Source>,
    metadata: Vec<Source>,
    stable_static_context: Context,
}

/// One setup ready to evaluate: a snapshot and the static context the server
/// would merge into every request.
pub struct Provider {
    /// The flags.
    pub snapshot: Snapshot,
    /// `--context-value` pairs of the launchpad config.
    pub static_context: Context,
}

/// Every setup, built for one fractional generation.
pub struct Providers {
    /// `Given an evaluator`.
    pub evaluator: Provider,
    /// `Given a stable flagd provider`.
    pub stable: Provider,
    /// `Given a metadata flagd provider`.
    pub metadata: Provider,
}

impl Fixtures {
    /// Reads and compiles the testbed's flag files.
    pub fn load(testbed: &Path) -> Fixtures {
        let evaluator_flags = read_json(&testbed.join(EVALUATOR_SOURCE));
        let flags_dir = testbed.join("flags");
        let all_flags = merged_flag_files(&flags_dir);
        let selector_flags = read_json(&flags_dir.join("selector-flags.json"));
        let combined_metadata = read_json(&flags_dir.join("selector-flag-combined-metadata.json"));

        let launchpad_default = read_json(&testbed.join("launchpad/configs/default.json"));
        let stable_static_context = match launchpad_default.get("context-value") {
            Some(Value::Object(pairs)) => pairs.clone(),
            _ => panic!("launchpad/configs/default.json has no \"context-value\" object"),
        };
        check_config_sources(
            testbed,
            "launchpad/configs/default.json",
            &[ALL_FLAGS_SOURCE, SELECTOR_SOURCE],
        );
        check_config_sources(
            testbed,
            "launchpad/configs/metadata.json",
            &[COMBINED_METADATA_SOURCE],
        );

        Fixtures {
            evaluator: vec![source(EVALUATOR_SOURCE, &evaluator_flags)],
            stable: vec![
                source(ALL_FLAGS_SOURCE, &all_flags),
                source(SELECTOR_SOURCE, &selector_flags),
            ],
            metadata: vec![source(COMBINED_METADATA_SOURCE, &combined_metadata)],
            stable_static_context,
        }
    }

    /// Builds the snapshots of every setup for `generation`.
    pub fn providers(&self, generation: FractionalGeneration) -> Providers {
        let options = EvaluationOptions {
            fractional: generation,
        };
        let build = |sources: &[Source], static_context: &Context| Provider {
            snapshot: Snapshot::build(sources.to_vec(), options),
            static_context: static_context.clone(),
        };
        Providers {
            evaluator: build(&self.evaluator, &Context::new()),
            stable: build(&self.stable, &self.stable_static_context),
            metadata: build(&self.metadata, &Context::new()),
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Compiles `document` as the source `name`; a rejected document is fatal.
fn source(name: &str, document: &Value) -> Source {
    let text = document.to_string();
    match document::load(&text, Format::Json, &Limits::default()) {
        Ok(loaded) => Source::new(name, loaded.document),
        Err(error) => panic!("the engine rejects the testbed source {name}: {error}"),
    }
}

/// The launchpad's `allFlags.json`: every `flags/*.json` except `selector-*`,
/// deep-merged in file-name order.
fn merged_flag_files(flags_dir: &Path) -> Value {
    let mut names: Vec<String> = fs::read_dir(flags_dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", flags_dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", flags_dir.display()))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json") && !name.starts_with("selector-"))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no flag files in {}",
        flags_dir.display()
    );
    let mut merged = Value::Object(Map::new());
    for name in names {
        deep_merge(&mut merged, read_json(&flags_dir.join(name)));
    }
    merged
}

/// Merges objects key by key, recursively; anything else is replaced.
fn deep_merge(target: &mut Value, addition: Value) {
    match (target, addition) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (target, addition) => *target = addition,
    }
}

/// Guards the hard-coded source lists against a testbed whose configs changed.
fn check_config_sources(testbed: &Path, config: &str, expected: &[&str]) {
    let value = read_json(&testbed.join(config));
    let uris: Vec<&str> = value
        .get("sources")
        .and_then(Value::as_array)
        .map(|sources| {
            sources
                .iter()
                .filter_map(|s| s.get("uri").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        uris, expected,
        "{config} lists other sources than this harness models"
    );
}
