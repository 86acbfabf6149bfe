//! How long a file change takes to be served: from the write (in place, by
//! atomic rename, or by a ConfigMap `..data` symlink swap) to the store
//! publishing the new snapshot. The target is 100 ms; this prints the
//! distribution rather than asserting it.
//!
//! `cargo bench -p ensign-sources --bench reload_latency [-- ITERATIONS]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensign_engine::{EvaluationOptions, Limits};
use ensign_metrics::{Metrics, SourceLabels};
use ensign_sources::{SourceSpec, run_file_source};
use ensign_store::Store;
use tokio_util::sync::CancellationToken;

/// A document of `count` flags with targeting; `generation` changes every
/// default variant so that each write is a real change.
fn document(count: usize, generation: usize) -> String {
    let variant = if generation.is_multiple_of(2) {
        "on"
    } else {
        "off"
    };
    let mut out = String::from(r#"{"flags": {"#);
    for index in 0..count {
        if index > 0 {
            out.push(',');
        }
        write!(
            out,
            r#""flag-{index}": {{"state": "ENABLED", "variants": {{"on": true, "off": false}}, "defaultVariant": "{variant}", "targeting": {{"if": [{{"in": ["@example.com", {{"var": "email"}}]}}, "on", {{"fractional": [["a", 50], ["b", 50]]}}]}}}}"#
        )
        .unwrap();
    }
    out.push_str("}}");
    out
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    InPlace,
    AtomicRename,
    SymlinkSwap,
}

fn write_change(mode: Mode, root: &Path, generation: usize, content: &str) {
    let path = root.join("flags.json");
    match mode {
        Mode::InPlace => fs::write(&path, content).unwrap(),
        Mode::AtomicRename => {
            let temp = root.join(".flags.json.tmp");
            fs::write(&temp, content).unwrap();
            fs::rename(&temp, &path).unwrap();
        }
        Mode::SymlinkSwap => {
            let version = format!("..v{generation}");
            fs::create_dir(root.join(&version)).unwrap();
            fs::write(root.join(&version).join("flags.json"), content).unwrap();
            symlink(&version, &root.join("..data_tmp"));
            fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        }
    }
}

#[cfg(unix)]
fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[cfg(not(unix))]
compile_error!(
    "the reload-latency benchmark swaps symlinks as Kubernetes ConfigMaps do, which needs Unix"
);

/// The latency of each change, and how many updates were rejected.
async fn measure(mode: Mode, flags: usize, iterations: usize) -> (Vec<Duration>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let first = document(flags, 0);
    if let Mode::SymlinkSwap = mode {
        fs::create_dir(root.join("..v0")).unwrap();
        fs::write(root.join("..v0/flags.json"), &first).unwrap();
        symlink("..v0", &root.join("..data"));
        symlink("..data/flags.json", &root.join("flags.json"));
    } else {
        fs::write(root.join("flags.json"), &first).unwrap();
    }
    let spec: SourceSpec = format!("file:{}", root.join("flags.json").display())
        .parse()
        .unwrap();
    let name = spec.name().to_owned();
    let store = Arc::new(Store::new(
        [name.clone()],
        EvaluationOptions::default(),
        Arc::new(Metrics::new()),
    ));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_file_source(
        spec,
        Limits::default(),
        Arc::clone(&store),
        shutdown.clone(),
    ));
    let mut updates = store.subscribe();
    while updates.borrow_and_update().generation < 1 {
        updates.changed().await.unwrap();
    }

    let mut latencies = Vec::with_capacity(iterations);
    for generation in 1..=iterations {
        let content = document(flags, generation);
        let started = Instant::now();
        write_change(mode, root, generation, &content);
        let expected = generation as u64 + 1;
        tokio::time::timeout(Duration::from_secs(10), async {
            while updates.borrow_and_update().generation < expected {
                updates.changed().await.unwrap();
            }
        })
        .await
        .expect("change served");
        latencies.push(started.elapsed());
        // Let the writer's trailing events settle so iterations are independent.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
    let errors = store
        .metrics()
        .source_errors
        .get_or_create(&SourceLabels { source: name })
        .get();
    (latencies, errors)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() {
    let iterations = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(50);
    println!("reload latency, {iterations} changes each (target: 100 ms)");
    for flags in [1, 1_000] {
        for mode in [Mode::InPlace, Mode::AtomicRename, Mode::SymlinkSwap] {
            let (mut latencies, errors) = measure(mode, flags, iterations).await;
            latencies.sort();
            println!(
                "{flags:>5} flags  {:<13} p50 {:>7.2?}  p95 {:>7.2?}  max {:>7.2?}  rejected {errors}",
                format!("{mode:?}"),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.95),
                latencies[latencies.len() - 1],
            );
        }
    }
}
