//! flagd-testbed conformance: runs the official Gherkin scenarios against the
//! engine, with no transport, under fractional generations v2 and v3.
//!
//! In scope: every `evaluator/gherkin/*.feature` (evaluator suite, flags from
//! `evaluator/flags/testkit-flags.json`) and the provider-level
//! `gherkin/{targeting,evaluation,disabled,metadata}.feature` (flags as the
//! launchpad configures them, see [`fixtures`]). Provider-level scenarios get
//! in-process/file semantics, because the engine is what those providers embed.
//!
//! The testbed is found at `../shared/flagd-testbed` next to the repository
//! (or `ENSIGN_TESTBED_DIR`). When it is absent the test passes with a notice,
//! unless `CI` is set.
//!
//! The run prints, per file and generation, how many cases (plain scenarios
//! plus outline rows) passed and failed, every excluded case with its reason,
//! and every out-of-scope file; it fails if any case that runs fails.
//!
//! Run: `cargo test -p ensign-engine --test conformance -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod gherkin;
mod plan;
mod steps;

/// Prints past the test harness's output capture (which only intercepts the
/// `print!` family), so `cargo test` always shows the conformance counts.
macro_rules! report {
    () => {
        report!("")
    };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use ensign_engine::FractionalGeneration;

use crate::fixtures::Fixtures;
use crate::gherkin::Case;
use crate::plan::{Disposition, disposition, generation_label};
use crate::steps::{StepFailure, World};

const DEFAULT_TESTBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/flagd-testbed");
const GENERATIONS: [FractionalGeneration; 2] = [FractionalGeneration::V2, FractionalGeneration::V3];

/// A feature file in scope, read and expanded.
struct FeatureFile {
    /// Path relative to the testbed root.
    path: String,
    cases: Vec<Case>,
}

/// Consecutive excluded cases of one scenario / examples block, with one reason.
struct ExclusionGroup {
    what: String,
    reason: String,
    cases: usize,
}

/// One case that ran and failed.
struct Failure {
    file: String,
    generation: FractionalGeneration,
    case: String,
    failure: StepFailure,
}

/// The counts of one file under one generation.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    excluded: Vec<ExclusionGroup>,
}

impl Tally {
    fn excluded_cases(&self) -> usize {
        self.excluded.iter().map(|g| g.cases).sum()
    }

    fn exclude(&mut self, what: String, reason: String) {
        if let Some(last) = self.excluded.last_mut()
            && last.what == what
            && last.reason == reason
        {
            last.cases += 1;
            return;
        }
        self.excluded.push(ExclusionGroup {
            what,
            reason,
            cases: 1,
        });
    }
}

/// The counts of one generation over all files.
#[derive(Default)]
struct Total {
    passed: usize,
    failed: usize,
    excluded: usize,
}

#[test]
fn flagd_testbed_conformance() {
    let Some(testbed) = locate_testbed() else {
        return;
    };
    report!("conformance: testbed at {}", testbed.display());
    let fixtures = Fixtures::load(&testbed);
    let files = in_scope_files(&testbed);

    let mut failures = Vec::new();
    let mut totals: Vec<(FractionalGeneration, Total)> = Vec::new();
    let mut tallies: Vec<Vec<Tally>> = files.iter().map(|_| Vec::new()).collect();
    for generation in GENERATIONS {
        let providers = fixtures.providers(generation);
        let mut total = Total::default();
        for (file, file_tallies) in files.iter().zip(&mut tallies) {
            let mut tally = Tally::default();
            for case in &file.cases {
                match disposition(case, generation) {
                    Disposition::Excluded(reason) => tally.exclude(group_label(case), reason),
                    Disposition::Run => match World::new(&providers).run(&case.steps) {
                        Ok(()) => tally.passed += 1,
                        Err(failure) => {
                            tally.failed += 1;
                            failures.push(Failure {
                                file: file.path.clone(),
                                generation,
                                case: case_label(case),
                                failure,
                            });
                        }
                    },
                }
            }
            total.passed += tally.passed;
            total.failed += tally.failed;
            total.excluded += tally.excluded_cases();
            file_tallies.push(tally);
        }
        totals.push((generation, total));
    }

    print_report(&testbed, &files, &tallies, &totals, &failures);

    for (generation, total) in &totals {
        assert!(
            total.passed + total.failed > 0,
            "no case ran under {}: the harness is broken",
            generation_label(*generation)
        );
    }
    assert!(
        failures.is_empty(),
        "{} conformance case(s) failed; see the list above",
        failures.len()
    );
}

/// The testbed directory, or `None` (after a notice) when it is absent outside CI.
fn locate_testbed() -> Option<PathBuf> {
    let lookup = find_testbed(
        env::var_os("ENSIGN_TESTBED_DIR").map(PathBuf::from),
        Path::new(DEFAULT_TESTBED),
        env::var_os("CI").is_some(),
    );
    match lookup {
        Lookup::Found(path) => Some(path),
        Lookup::Skip(notice) => {
            report!("{notice}");
            None
        }
        Lookup::Fail(message) => panic!("{message}"),
    }
}

/// What to do about the testbed's location.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// Run against this directory.
    Found(PathBuf),
    /// Pass without running, printing this notice.
    Skip(String),
    /// Fail the test with this message.
    Fail(String),
}

/// An explicit override must be a testbed; the default location may be absent,
/// which skips locally and fails under CI.
fn find_testbed(override_dir: Option<PathBuf>, default_dir: &Path, ci: bool) -> Lookup {
    if let Some(path) = override_dir {
        return if is_testbed(&path) {
            Lookup::Found(path)
        } else {
            Lookup::Fail(format!(
                "ENSIGN_TESTBED_DIR={} is not a flagd-testbed checkout",
                path.display()
            ))
        };
    }
    if is_testbed(default_dir) {
        return Lookup::Found(default_dir.to_path_buf());
    }
    if ci {
        return Lookup::Fail(format!(
            "conformance: testbed not found at {} and CI is set; provide it or set ENSIGN_TESTBED_DIR",
            default_dir.display()
        ));
    }
    Lookup::Skip(format!(
        "skipping conformance: testbed not found at {} (set ENSIGN_TESTBED_DIR to run it)",
        default_dir.display()
    ))
}

#[test]
fn absent_testbed_skips_locally_and_fails_in_ci() {
    let nowhere = Path::new("/nonexistent/flagd-testbed");
    assert!(
        matches!(find_testbed(None, nowhere, false), Lookup::Skip(notice)
        if notice.starts_with("skipping conformance: testbed not found at /nonexistent/flagd-testbed"))
    );
    assert!(matches!(find_testbed(None, nowhere, true), Lookup::Fail(_)));
    assert!(matches!(
        find_testbed(Some(nowhere.to_path_buf()), nowhere, false),
        Lookup::Fail(_)
    ));
}

fn is_testbed(path: &Path) -> bool {
    path.join("evaluator/gherkin").is_dir() && path.join("gherkin").is_dir()
}

/// Reads the in-scope feature files; an unreadable one fails the test.
fn in_scope_files(testbed: &Path) -> Vec<FeatureFile> {
    let mut paths = feature_files(testbed, "evaluator/gherkin");
    assert!(
        !paths.is_empty(),
        "no evaluator feature files under {}",
        testbed.display()
    );
    paths.extend(plan::PROVIDER_FILES.iter().map(|p| (*p).to_owned()));
    paths
        .into_iter()
        .map(|path| {
            let feature = read_feature(testbed, &path).unwrap_or_else(|e| panic!("{e}"));
            let cases = gherkin::expand(&feature)
                .unwrap_or_else(|e| panic!("{path}: cannot expand outlines: {e}"));
            FeatureFile { path, cases }
        })
        .collect()
}

/// `*.feature` files of `dir` (relative to the testbed), sorted.
fn feature_files(testbed: &Path, dir: &str) -> Vec<String> {
    let full = testbed.join(dir);
    let mut names: Vec<String> = fs::read_dir(&full)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", full.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".feature"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    names.sort();
    names
}

fn read_feature(testbed: &Path, path: &str) -> Result<gherkin::Feature, String> {
    let text =
        fs::read_to_string(testbed.join(path)).map_err(|e| format!("cannot read {path}: {e}"))?;
    gherkin::parse(&text).map_err(|e| format!("{path}: {e}"))
}

/// `"Scenario" (line 12)` or `"Outline" (line 12), Examples "v2" (line 30)`.
fn group_label(case: &Case) -> String {
    let mut label = format!("{:?} (line {})", case.scenario, case.scenario_line);
    if let Some(example) = &case.example {
        label.push_str(&format!(
            ", Examples {:?} (line {})",
            example.block_name, example.block_line
        ));
    }
    label
}

/// The group label plus the examples row.
fn case_label(case: &Case) -> String {
    let mut label = group_label(case);
    if let Some(example) = &case.example {
        let values: Vec<String> = example
            .values
            .iter()
            .map(|(column, value)| format!("{column}={value:?}"))
            .collect();
        label.push_str(&format!(
            ", row line {} [{}]",
            example.row_line,
            values.join(", ")
        ));
    }
    label
}

fn print_report(
    testbed: &Path,
    files: &[FeatureFile],
    tallies: &[Vec<Tally>],
    totals: &[(FractionalGeneration, Total)],
    failures: &[Failure],
) {
    report!();
    report!(
        "conformance: provider-level files run with in-process/file semantics (the engine is what in-process providers embed)"
    );
    for (file, file_tallies) in files.iter().zip(tallies) {
        for ((generation, _), tally) in totals.iter().zip(file_tallies) {
            let excluded = tally.excluded_cases();
            let mut line = format!(
                "conformance {} [{}]: {} passed, {} failed",
                file.path,
                generation_label(*generation),
                tally.passed,
                tally.failed
            );
            if excluded > 0 {
                line.push_str(&format!(", {excluded} excluded"));
            }
            report!("{line}");
            for group in &tally.excluded {
                report!(
                    "    excluded {} case(s): {} -- {}",
                    group.cases,
                    group.what,
                    group.reason
                );
            }
        }
    }

    report!();
    for path in feature_files(testbed, "gherkin") {
        if plan::PROVIDER_FILES.contains(&path.as_str()) {
            continue;
        }
        let size = match read_feature(testbed, &path).and_then(|f| {
            gherkin::expand(&f)
                .map(|cases| (f.scenarios.len(), cases.len()))
                .map_err(|e| e.to_string())
        }) {
            Ok((scenarios, cases)) => format!("{scenarios} scenarios, {cases} cases"),
            Err(error) => format!("could not be read: {error}"),
        };
        report!(
            "conformance not run: {path} ({size}) -- {}",
            plan::out_of_scope_reason(&path)
        );
    }

    report!();
    for (generation, total) in totals {
        report!(
            "conformance total [{}]: {} passed, {} failed, {} excluded",
            generation_label(*generation),
            total.passed,
            total.failed,
            total.excluded
        );
    }

    if !failures.is_empty() {
        report!();
        report!("conformance failures:");
        for failure in failures {
            report!(
                "  FAIL {} [{}] {}\n       step line {}: {}\n       {}",
                failure.file,
                generation_label(failure.generation),
                failure.case,
                failure.failure.line,
                failure.failure.step,
                failure.failure.message
            );
        }
    }
}
