//! Criterion benches: flagd-evaluation-engine 0.1.0 on the shared scenarios.
//!
//! The 10k document is read from `$ENSIGN_FLAGS_10K`, or generated with gen_10k.py.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use peer_bench_rust::{N_CONTEXTS, Reason, Store, contexts};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../benches/scenarios")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn flags_10k() -> String {
    if let Some(path) = std::env::var_os("ENSIGN_FLAGS_10K") {
        return read(Path::new(&path));
    }
    let out = std::env::temp_dir().join(format!("peer-bench-10k-{}.json", std::process::id()));
    let status = std::process::Command::new("python3")
        .arg(scenarios_dir().join("gen_10k.py"))
        .arg(&out)
        .status()
        .expect("run gen_10k.py");
    assert!(status.success(), "gen_10k.py failed");
    let text = read(&out);
    let _ = std::fs::remove_file(&out);
    text
}

/// A document with only the `bulk-*` flags of flags.json, for resolve-all.
fn bulk_only(document: &str) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(document).expect("flags.json is JSON");
    let flags = doc["flags"].as_object_mut().expect("flags object");
    flags.retain(|k, _| k.starts_with("bulk-"));
    doc.to_string()
}

fn main() {
    let text = read(&scenarios_dir().join("flags.json"));
    let store = Store::load(&text).expect("load flags.json");
    let bulk = Store::load(&bulk_only(&text)).expect("load bulk flags");
    let text_10k = flags_10k();
    let ctxs = contexts();

    // Sanity: the scenarios resolve as the README says.
    let matched = ctxs
        .iter()
        .filter(|c| store.resolve("rule-flag", c).value == Some(&"on".into()))
        .count();
    let mut split = std::collections::BTreeMap::new();
    for c in &ctxs {
        let r = store.resolve("fractional-flag", c);
        assert_eq!(r.reason, Reason::TargetingMatch, "fractional-flag");
        *split
            .entry(r.value.and_then(|v| v.as_str()).unwrap_or("?"))
            .or_insert(0) += 1;
    }
    assert!(
        ctxs.iter()
            .all(|c| store.resolve("rule-flag", c).reason == Reason::TargetingMatch)
    );
    assert_eq!(bulk.len(), 100);
    assert_eq!(bulk.resolve_all(&ctxs[0]), 100);
    assert_eq!(Store::load(&text_10k).expect("load 10k").len(), 10_000);
    eprintln!("rule-flag matched {matched}/{N_CONTEXTS}; fractional split {split:?}");

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let single = [
        ("static", "static-flag"),
        ("fractional", "fractional-flag"),
        ("rule_5_conditions", "rule-flag"),
        ("missing_flag", "missing-flag"),
        ("disabled_flag", "disabled-flag"),
    ];
    for (name, key) in single {
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & (N_CONTEXTS - 1);
                black_box(store.resolve(black_box(key), &ctxs[i]).reason)
            })
        });
    }
    let mut i = 0;
    c.bench_function("resolve_all_100", |b| {
        b.iter(|| {
            i = (i + 1) & (N_CONTEXTS - 1);
            black_box(bulk.resolve_all(&ctxs[i]))
        })
    });

    let mut group = c.benchmark_group("load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("load_compile_10k", |b| {
        b.iter(|| Store::load(black_box(&text_10k)).map(|s| s.len()).ok())
    });
    group.finish();

    c.final_summary();
}
