//! File sources against real files and real inotify: every way a file can
//! change must reach the store. Timings are not asserted here (a benchmark
//! measures the reload latency); each wait is bounded so a miss fails fast.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ensign_engine::{EvaluationOptions, Limits};
use ensign_metrics::Metrics;
use ensign_sources::{SourceSpec, run_file_source};
use ensign_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for any healthy machine; misses fail instead of hanging.
const WAIT: Duration = Duration::from_secs(5);

/// A document with one flag `f` whose default variant is `variant`.
fn flags(variant: &str) -> String {
    format!(
        r#"{{"flags": {{"f": {{"state": "ENABLED", "variants": {{"a": "A", "b": "B", "c": "C"}}, "defaultVariant": "{variant}"}}}}}}"#
    )
}

struct Running {
    store: Arc<Store>,
    name: String,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn start(uri: &str) -> Running {
        Running::start_within(uri, Limits::default())
    }

    fn start_within(uri: &str, limits: Limits) -> Running {
        let spec: SourceSpec = uri.parse().expect("file source");
        let name = spec.name().to_owned();
        let store = Arc::new(Store::new(
            [name.clone()],
            EvaluationOptions::default(),
            Arc::new(Metrics::new()),
        ));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_file_source(
            spec,
            limits,
            Arc::clone(&store),
            shutdown.clone(),
        ));
        Running {
            store,
            name,
            shutdown,
            task,
        }
    }

    fn variant(&self) -> Option<String> {
        self.store
            .snapshot()
            .get("f")
            .and_then(|flag| flag.default_variant().map(str::to_owned))
    }

    /// Waits until the served default variant of `f` is `expected`.
    async fn wait_for_variant(&self, expected: &str) {
        let mut updates = self.store.subscribe();
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                if self.variant().as_deref() == Some(expected) {
                    return;
                }
                updates.changed().await.expect("store alive");
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "variant {expected:?} not served within {WAIT:?}; serving {:?}",
            self.variant()
        );
    }

    fn errors(&self) -> u64 {
        let text = self.store.metrics().render();
        let prefix = format!("ensign_source_errors_total{{source=\"{}\"}} ", self.name);
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |count| count.trim().parse().expect("a counter"))
    }

    /// Waits until at least `expected` errors have been counted.
    async fn wait_for_errors(&self, expected: u64) {
        let waited = tokio::time::timeout(WAIT, async {
            while self.errors() < expected {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{expected} errors not counted within {WAIT:?}; counted {}",
            self.errors()
        );
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("source stops on shutdown")
            .expect("source task did not panic");
    }
}

fn uri(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Writes `content` to a temp file in the same directory and renames it over `path`.
fn replace_atomically(path: &Path, content: &str) {
    let temp = path.with_extension("json.tmp");
    fs::write(&temp, content).unwrap();
    fs::rename(&temp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_at_start_and_follows_in_place_edits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    fs::write(&path, flags("a")).unwrap();
    let source = Running::start(&uri(&path));
    source.wait_for_variant("a").await;
    assert!(source.store.is_ready());

    fs::write(&path, flags("b")).unwrap();
    source.wait_for_variant("b").await;
    fs::write(&path, flags("c")).unwrap();
    source.wait_for_variant("c").await;
    assert_eq!(source.errors(), 0);
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_atomic_renames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    fs::write(&path, flags("a")).unwrap();
    let source = Running::start(&uri(&path));
    source.wait_for_variant("a").await;

    replace_atomically(&path, &flags("b"));
    source.wait_for_variant("b").await;
    replace_atomically(&path, &flags("c"));
    source.wait_for_variant("c").await;
    assert_eq!(source.errors(), 0);
    source.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_configmap_symlink_swaps() {
    // The layout kubelet maintains for a mounted ConfigMap.
    {
        use std::os::unix::fs::symlink;

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write_version = |version: &str, variant: &str| {
            fs::create_dir(root.join(version)).unwrap();
            fs::write(root.join(version).join("flags.json"), flags(variant)).unwrap();
        };
        write_version("..2026_11_29_10_00_00.1", "a");
        symlink("..2026_11_29_10_00_00.1", root.join("..data")).unwrap();
        symlink("..data/flags.json", root.join("flags.json")).unwrap();

        let source = Running::start(&uri(&root.join("flags.json")));
        source.wait_for_variant("a").await;

        for (version, variant) in [
            ("..2026_11_29_10_05_00.2", "b"),
            ("..2026_11_29_10_10_00.3", "c"),
        ] {
            write_version(version, variant);
            symlink(version, root.join("..data_tmp")).unwrap();
            fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
            source.wait_for_variant(variant).await;
        }
        assert_eq!(source.errors(), 0);
        source.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_updates_keep_the_last_good_flags_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.yaml");
    fs::write(
        &path,
        "flags:\n  f:\n    state: ENABLED\n    variants: {a: 1, b: 2}\n    defaultVariant: a\n",
    )
    .unwrap();
    let source = Running::start(&uri(&path));
    source.wait_for_variant("a").await;

    // Valid YAML, invalid document: the default variant names no variant.
    replace_atomically(
        &path,
        "flags:\n  f:\n    state: ENABLED\n    variants: {a: 1}\n    defaultVariant: zzz\n",
    );
    source.wait_for_errors(1).await;
    assert_eq!(source.variant().as_deref(), Some("a"));
    assert_eq!(source.store.latest().generation, 1);

    // Not even YAML.
    replace_atomically(&path, "flags: [unclosed\n");
    source.wait_for_errors(2).await;
    assert_eq!(source.variant().as_deref(), Some("a"));

    replace_atomically(
        &path,
        "flags:\n  f:\n    state: ENABLED\n    variants: {a: 1, b: 2}\n    defaultVariant: b\n",
    );
    source.wait_for_variant("b").await;
    assert_eq!(source.errors(), 2, "each bad document is counted once");
    source.stop().await;
}

/// Issue #11: a valid 50 MB document was served, and every bulk answer was
/// then 52 MB. Over the limit, a valid document is an invalid update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_the_size_limit_keeps_the_last_good_flags_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    fs::write(&path, flags("a")).unwrap();
    let limit = 4096;
    let source = Running::start_within(
        &uri(&path),
        Limits {
            max_document_bytes: limit,
            ..Limits::default()
        },
    );
    source.wait_for_variant("a").await;

    // Valid, but over the limit (padded with a long metadata value).
    let padded = |variant: &str, size: usize| {
        let document = flags(variant);
        let padding = "x".repeat(size - document.len() - r#","metadata":{"p":""}"#.len());
        let padded = format!(
            r#"{},"metadata":{{"p":"{padding}"}}}}"#,
            &document[..document.len() - 1]
        );
        assert_eq!(padded.len(), size);
        padded
    };
    replace_atomically(&path, &padded("b", limit + 1));
    source.wait_for_errors(1).await;
    assert_eq!(source.variant().as_deref(), Some("a"));
    assert_eq!(source.store.latest().generation, 1);

    // At the limit it is served.
    replace_atomically(&path, &padded("c", limit));
    source.wait_for_variant("c").await;
    assert_eq!(source.errors(), 1);
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_is_loaded_once_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.json");
    let source = Running::start(&uri(&path));
    source.wait_for_errors(1).await;
    assert!(!source.store.is_ready());
    assert_eq!(source.variant(), None);

    replace_atomically(&path, &flags("b"));
    source.wait_for_variant("b").await;
    assert!(source.store.is_ready());
    assert_eq!(source.errors(), 1, "the missing file is counted once");
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_at_start_is_retried_until_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    fs::write(&path, "{ not json").unwrap();
    let source = Running::start(&uri(&path));
    source.wait_for_errors(1).await;
    assert!(!source.store.is_ready());

    fs::write(&path, flags("c")).unwrap();
    source.wait_for_variant("c").await;
    assert!(source.store.is_ready());
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_path_is_a_file_source_named_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.json");
    fs::write(&path, flags("a")).unwrap();
    let bare = path.display().to_string();
    let source = Running::start(&bare);
    assert_eq!(source.name, bare);
    source.wait_for_variant("a").await;
    source.stop().await;
}
