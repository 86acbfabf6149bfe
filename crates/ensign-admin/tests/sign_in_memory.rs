//! Password sign-ins sent at once hold bounded memory: each Argon2id check
//! takes 19 MiB, and only `CONCURRENT_PASSWORD_CHECKS` run at a time, however
//! many wrong passwords arrive together. The instrumented allocator counts
//! live heap bytes (every thread, the blocking pool's included), sampled for
//! their peak.
//!
//! Alone in its own test binary, so no other test's allocations count.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::alloc::System;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use ensign_admin::{AdminState, CONCURRENT_PASSWORD_CHECKS};
use ensign_storage::Storage;
use http::{Method, Request, StatusCode};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tower::ServiceExt;
use tower::util::Oneshot;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes now.
fn live_bytes() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// Samples the live heap bytes every millisecond until stopped; the highest
/// seen. A check holds its memory for tens of milliseconds, so it cannot hide
/// between samples; sampling can only miss a peak, never invent one.
struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicIsize>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakSampler {
    fn start() -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicIsize::new(live_bytes()));
        let thread = std::thread::spawn({
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(live_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        PeakSampler { stop, peak, thread }
    }

    fn stop(self) -> isize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// The memory of one Argon2id check (the storage's parameters: 19 MiB).
const CHECK_BYTES: isize = 19 * 1024 * 1024;

/// The tests measure the whole process's heap: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An admin router on a fresh SQLite database (kept in `dir`).
async fn router(dir: &tempfile::TempDir) -> Router {
    let url = format!("sqlite://{}", dir.path().join("ensign.db").display());
    let storage = Storage::connect(&url).await.unwrap();
    storage.migrate().await.unwrap();
    ensign_admin::router(AdminState::new(storage, None))
}

/// A wrong password for user `user-<i>` (a different name each time, so the
/// per-name lockout refuses none of them before its check; unknown names
/// cost the same check).
fn sign_in(router: &Router, i: usize) -> Oneshot<Router, Request<Body>> {
    let body = json!({"username": format!("user-{i}"), "password": "not the password"});
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    router.clone().oneshot(request)
}

/// One check first, so lazily built state (the decoy hash for unknown names,
/// connection pools) is in place before the peak is measured; the live heap
/// bytes then.
async fn warm_up(router: &Router) -> isize {
    let warm = sign_in(router, usize::MAX).await.unwrap();
    assert_eq!(warm.status(), StatusCode::UNAUTHORIZED);
    live_bytes()
}

/// Asserts that `peak` bytes over the baseline are within the checks that may
/// run at once, plus two checks' worth for everything else the requests hold.
fn assert_bounded(peak: isize) {
    eprintln!("peak {} MiB over the baseline", peak / (1024 * 1024));
    let bound = (CONCURRENT_PASSWORD_CHECKS as isize + 2) * CHECK_BYTES;
    assert!(
        peak <= bound,
        "peak {} MiB over the baseline, bound {} MiB",
        peak / (1024 * 1024),
        bound / (1024 * 1024)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_wrong_passwords_at_once_hold_a_bounded_number_of_checks() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let router = router(&dir).await;
    let baseline = warm_up(&router).await;

    let sampler = PeakSampler::start();
    let attempts = 60;
    let handles: Vec<_> = (0..attempts)
        .map(|i| tokio::spawn(sign_in(&router, i)))
        .collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap().unwrap().status());
    }
    let peak = sampler.stop() - baseline;

    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED), "{statuses:?}");
    // Without the bound all sixty ran at once (over 800 MiB).
    assert_bounded(peak);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_sign_ins_keep_their_check_until_its_hash_ends() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let router = router(&dir).await;
    let baseline = warm_up(&router).await;

    // Sixty sign-ins one after the other, each abandoned after 10 ms (a
    // client that hangs up), long before its hash ends: the hash runs on
    // regardless, so its check must stay taken until it is done.
    let sampler = PeakSampler::start();
    for i in 0..60 {
        let abandoned = tokio::time::timeout(Duration::from_millis(10), sign_in(&router, i)).await;
        assert!(abandoned.is_err(), "a check took under 10 ms");
    }
    // Every hash started has ended once all checks are free again.
    let checks = CONCURRENT_PASSWORD_CHECKS;
    let all_free = (0..checks).map(|i| tokio::spawn(sign_in(&router, 1000 + i)));
    for reply in all_free {
        reply.await.unwrap().unwrap();
    }
    assert_bounded(sampler.stop() - baseline);
}
