//! The flag snapshot every API serves from.
//!
//! Sources (files now, the database later) hand the store a new compiled
//! document for their slot; the store merges all slots into a new immutable
//! [`Snapshot`], swaps it in atomically and notifies subscribers. Readers never
//! wait for a writer: evaluation loads the current snapshot lock-free.
//!
//! Subscribers (event streams, sync streams, SSE) receive the latest
//! [`Published`] snapshot through a `watch` channel and compute their own diff
//! against the snapshot they saw last, so a slow subscriber skips intermediate
//! versions but never misses a change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use ensign_engine::{EvaluationOptions, FlagDocument, Selector, Snapshot, Source};
use ensign_metrics::{Metrics, SourceLabels};
use tokio::sync::watch;

/// Two publications (seen, current) and a selector.
type SelectionPair = (u64, u64, Option<Selector>);

/// Last-evaluated times (unix seconds) per flag set and key, updated with one
/// atomic store per evaluation and read by a periodic flush, never written to a
/// database on the request path.
type EvaluationMarks = HashMap<String, HashMap<String, AtomicI64>>;

/// A snapshot as published, with its generation (1 for the first).
#[derive(Debug, Clone)]
pub struct Published {
    /// Increases by one with every publication.
    pub generation: u64,
    /// The merged flags.
    pub snapshot: Arc<Snapshot>,
}

/// One configured source: a file (one document) or a group such as the
/// database (one document per flag set), at one priority.
#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    /// `None` until the source delivered its first valid content.
    sources: Option<Vec<Source>>,
}

#[derive(Debug)]
struct Writer {
    slots: Vec<Slot>,
    generation: u64,
}

/// The served snapshot and its sources.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    /// Whether the flags a selector sees differ between two publications,
    /// computed once for every subscriber of that selector.
    selection_changes: Mutex<HashMap<SelectionPair, bool>>,
    /// When each flag was last evaluated, by flag set ("" for none) and key.
    last_evaluated: ArcSwap<EvaluationMarks>,
    writer: Mutex<Writer>,
    options: EvaluationOptions,
    published: watch::Sender<Published>,
    metrics: Arc<Metrics>,
}

impl Store {
    /// A store with one empty slot per source name, lowest priority first.
    pub fn new(
        source_names: impl IntoIterator<Item = impl Into<Arc<str>>>,
        options: EvaluationOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = source_names
            .into_iter()
            .map(|name| Slot {
                name: name.into(),
                sources: None,
            })
            .collect();
        let empty = Arc::new(Snapshot::build(Vec::new(), options));
        let (published, _) = watch::channel(Published {
            generation: 0,
            snapshot: Arc::clone(&empty),
        });
        Store {
            current: ArcSwap::new(empty),
            selection_changes: Mutex::default(),
            last_evaluated: ArcSwap::default(),
            writer: Mutex::new(Writer {
                slots,
                generation: 0,
            }),
            options,
            published,
            metrics,
        }
    }

    /// The snapshot to evaluate against, without locking.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The metrics this store reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The evaluation settings of every snapshot.
    pub fn options(&self) -> EvaluationOptions {
        self.options
    }

    /// The names of the sources, lowest priority first.
    pub fn source_names(&self) -> Vec<Arc<str>> {
        self.lock()
            .slots
            .iter()
            .map(|s| Arc::clone(&s.name))
            .collect()
    }

    /// Subscribes to publications; the receiver starts at the current one.
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.subscribe()
    }

    /// The latest publication.
    pub fn latest(&self) -> Published {
        self.published.borrow().clone()
    }

    /// Whether every source has delivered a valid document at least once.
    pub fn is_ready(&self) -> bool {
        self.lock().slots.iter().all(|slot| slot.sources.is_some())
    }

    /// Replaces the document of source `name` and publishes the merged result.
    /// Returns the new generation, or `None` for an unknown source.
    pub fn replace_source(&self, name: &str, document: FlagDocument) -> Option<u64> {
        let source = Source {
            name: name.into(),
            document: Arc::new(document),
        };
        self.replace_group(name, vec![source])
    }

    /// Replaces every document of source group `name` (the database: one
    /// document per flag set, each a source of its own name) and publishes.
    /// Returns the new generation, or `None` for an unknown group.
    pub fn replace_group(&self, name: &str, sources: Vec<Source>) -> Option<u64> {
        let mut writer = self.lock();
        let slot = writer.slots.iter_mut().find(|s| &*s.name == name)?;
        slot.sources = Some(sources);
        let sources = writer
            .slots
            .iter()
            .filter_map(|slot| slot.sources.as_ref())
            .flatten()
            .cloned()
            .collect();
        let snapshot = Arc::new(Snapshot::build(sources, self.options));
        writer.generation += 1;
        let generation = writer.generation;
        self.current.store(Arc::clone(&snapshot));
        self.last_evaluated
            .store(Arc::new(self.carry_marks(&snapshot)));
        self.published.send_replace(Published {
            generation,
            snapshot,
        });
        self.metrics.snapshot_published(generation);
        self.metrics
            .source_updates
            .get_or_create(&SourceLabels {
                source: name.to_owned(),
            })
            .inc();
        tracing::info!(source = name, generation, "flags updated");
        Some(generation)
    }

    /// Whether the flags `selector` sees differ between `seen` and `current`.
    /// Streams ask this after every publication; the answer is computed once
    /// per pair of publications and selector, however many streams ask.
    pub fn selection_changed(
        &self,
        seen: &Published,
        current: &Published,
        selector: Option<&Selector>,
    ) -> bool {
        if seen.generation == current.generation {
            return false;
        }
        let key = (seen.generation, current.generation, selector.cloned());
        // Held while computing, so that concurrent askers wait for one answer.
        let mut answers = self
            .selection_changes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(changed) = answers.get(&key) {
            return *changed;
        }
        let changed = current.snapshot.has_changes_since(&seen.snapshot, selector);
        if answers.len() >= 1024 {
            answers.clear();
        }
        answers.insert(key, changed);
        changed
    }

    /// Counts one evaluation in the metrics and marks the flag as evaluated at
    /// `now` (unix seconds). `flag` is (flag set, key); `None` for unknown keys.
    pub fn record_evaluation(
        &self,
        flag: Option<(Option<&str>, &str)>,
        variant: Option<&str>,
        reason: &str,
        now: i64,
    ) {
        self.metrics
            .count_evaluation(flag.map(|(_, key)| key), variant, reason);
        if let Some((flag_set, key)) = flag
            && let Some(mark) = self
                .last_evaluated
                .load()
                .get(flag_set.unwrap_or(""))
                .and_then(|keys| keys.get(key))
        {
            mark.store(now, Ordering::Relaxed);
        }
    }

    /// Every flag evaluated since the store started: (flag set, key, unix seconds).
    pub fn evaluated_flags(&self) -> Vec<(Option<String>, String, i64)> {
        let marks = self.last_evaluated.load();
        let mut seen = Vec::new();
        for (flag_set, keys) in marks.iter() {
            for (key, at) in keys {
                let at = at.load(Ordering::Relaxed);
                if at > 0 {
                    let flag_set = (!flag_set.is_empty()).then(|| flag_set.clone());
                    seen.push((flag_set, key.clone(), at));
                }
            }
        }
        seen
    }

    /// Marks for every flag of `snapshot`, keeping the times already recorded.
    fn carry_marks(&self, snapshot: &Snapshot) -> EvaluationMarks {
        let previous = self.last_evaluated.load();
        let mut marks = EvaluationMarks::new();
        for source in snapshot.sources() {
            for flag in &source.document.flags {
                let flag_set = flag.flag_set_id().unwrap_or("");
                let at = previous
                    .get(flag_set)
                    .and_then(|keys| keys.get(flag.key()))
                    .map_or(0, |at| at.load(Ordering::Relaxed));
                marks
                    .entry(flag_set.to_owned())
                    .or_default()
                    .insert(flag.key().to_owned(), AtomicI64::new(at));
            }
        }
        marks
    }

    /// Records a rejected update of source `name`; the served flags stay as they are.
    pub fn reject_update(&self, name: &str, reason: &str) {
        self.metrics
            .source_errors
            .get_or_create(&SourceLabels {
                source: name.to_owned(),
            })
            .inc();
        tracing::warn!(
            source = name,
            reason,
            "flag update rejected; serving the last good flags"
        );
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave the slots half-written:
        // every mutation is a single assignment. Keep serving.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use ensign_engine::document::{Limits, load_value};
    use serde_json::json;

    fn document(default: &str) -> FlagDocument {
        let value = json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": default}}});
        load_value(&value, &Limits::default())
            .expect("valid")
            .document
    }

    #[test]
    fn publishes_merged_sources_in_priority_order() {
        let store = Store::new(
            ["low", "high"],
            EvaluationOptions::default(),
            Arc::default(),
        );
        let mut updates = store.subscribe();
        assert!(!store.is_ready());
        assert_eq!(store.replace_source("low", document("a")), Some(1));
        assert!(!store.is_ready());
        assert_eq!(store.replace_source("high", document("b")), Some(2));
        assert!(store.is_ready());
        assert_eq!(
            store.snapshot().get("f").and_then(|f| f.default_variant()),
            Some("b")
        );
        assert!(updates.has_changed().expect("sender alive"));
        assert_eq!(updates.borrow_and_update().generation, 2);
        assert_eq!(store.replace_source("unknown", document("a")), None);
        assert!(
            store
                .metrics()
                .render()
                .contains("ensign_snapshot_generation 2")
        );
    }

    #[test]
    fn evaluations_are_marked_and_survive_republication() {
        let store = Store::new(["only"], EvaluationOptions::default(), Arc::default());
        store.replace_source("only", document("a"));
        assert!(store.evaluated_flags().is_empty());
        store.record_evaluation(Some((None, "f")), Some("a"), "STATIC", 1_700);
        store.record_evaluation(Some((None, "unknown")), None, "ERROR", 1_800);
        store.record_evaluation(None, None, "ERROR", 1_900);
        assert_eq!(store.evaluated_flags(), vec![(None, "f".to_owned(), 1_700)]);
        store.replace_source("only", document("b"));
        assert_eq!(store.evaluated_flags(), vec![(None, "f".to_owned(), 1_700)]);
        assert!(
            store
                .metrics()
                .render()
                .contains(r#"ensign_evaluations_total{flag="f",variant="a",reason="STATIC"} 1"#)
        );
    }

    #[test]
    fn selection_changes_are_answered_per_publication_pair() {
        let store = Store::new(["only"], EvaluationOptions::default(), Arc::default());
        store.replace_source("only", document("a"));
        let first = store.latest();
        store.replace_source("only", document("a"));
        let same = store.latest();
        store.replace_source("only", document("b"));
        let changed = store.latest();
        assert!(!store.selection_changed(&first, &first, None));
        assert!(
            !store.selection_changed(&first, &same, None),
            "recompiled, same content"
        );
        assert!(store.selection_changed(&same, &changed, None));
        assert!(
            store.selection_changed(&same, &changed, None),
            "asked twice, same answer"
        );
        let other = Selector::parse("flagSetId=other").expect("selector");
        assert!(!store.selection_changed(&same, &changed, Some(&other)));
    }

    #[test]
    fn rejected_updates_keep_the_snapshot_and_count() {
        let store = Store::new(["only"], EvaluationOptions::default(), Arc::default());
        store.replace_source("only", document("a"));
        store.reject_update("only", "invalid JSON");
        assert_eq!(store.latest().generation, 1);
        assert!(
            store
                .metrics()
                .render()
                .contains(r#"ensign_source_errors_total{source="only"} 1"#)
        );
    }
}
