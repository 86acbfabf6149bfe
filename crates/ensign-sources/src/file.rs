//! File sources: load a flag document, then follow every change of it.
//!
//! # How changes are noticed
//!
//! Writers change files in three ways, and all three must be served quickly:
//! in place (truncate and write), by atomic rename (an editor writes a temp
//! file and renames it over the original), and by a Kubernetes ConfigMap
//! symlink swap (`dir/flags.json -> ..data/flags.json`, `..data -> ..2026_…`,
//! and the update renames a new `..data` symlink over the old one). Watching
//! the file itself misses the last two, so the source watches *directories*
//! (non-recursively, inotify through `notify`):
//!
//! - the directory the path is in (where renames and `..data` swaps happen),
//! - the directory the path resolves to through its symlinks (where in-place
//!   edits of a symlink's target happen),
//!
//! and re-resolves both after every check, so the watch follows swaps.
//!
//! Any event in those directories (except reads, which this source causes
//! itself) starts a short debounce, [`DEBOUNCE`] after the last event and at
//! most [`MAX_DEBOUNCE`] after the first, to let a writer finish. Then the path
//! is read again, following symlinks, and its content is hashed; only content
//! that differs from the last applied document is parsed and applied. A poll
//! every [`POLL_INTERVAL`] does the same check in case events were lost (the
//! inotify queue overflowed, a directory was replaced, a symlink elsewhere in
//! the path changed) or no watch could be set up.
//!
//! # Failures
//!
//! A document that cannot be read or is invalid is rejected whole through
//! [`Store::reject_update`] (which logs it and counts it in
//! `ensign_source_errors_total`); the store keeps serving the last good
//! document, and the store's readiness stays false until a first valid load.
//!
//! A failure seen right after an event may be a writer caught half-way (an
//! in-place write between truncate and write, a file briefly missing during an
//! editor's backup-and-replace), so it is only reported if the same failure is
//! still there [`CONFIRM_FAILURE_AFTER`] later. Failures at start are reported
//! at once. The same failure (same content, or same I/O error) is reported
//! once, not on every poll.
//!
//! Reading, parsing and publishing run on tokio's blocking pool, never on
//! the runtime's core threads. Documents are limited by the [`Limits`] the
//! source runs with: `ensign serve` passes `--max-flag-document-bytes`
//! ([`DEFAULT_MAX_DOCUMENT_BYTES`] unless set). A file over the size limit is
//! refused by its length before it is read, like any invalid update.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ensign_engine::document::{self, Format, Limits};
use ensign_store::Store;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::spec::{SourceKind, SourceSpec};

/// How long to wait after the last event before reading the file.
pub const DEBOUNCE: Duration = Duration::from_millis(5);

/// The longest wait between the first event of a burst and the read.
pub const MAX_DEBOUNCE: Duration = Duration::from_millis(25);

/// How often the file is checked when no event arrives.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How long a failure seen after an event must persist before it is reported.
pub const CONFIRM_FAILURE_AFTER: Duration = Duration::from_millis(250);

/// The largest flag file `ensign serve` reads unless told otherwise: 8 MiB,
/// some thousands of flags, an order of magnitude above large real
/// configurations. Every bulk answer (OFREP bulk evaluation, sync payloads)
/// carries the whole document to every client, and gRPC clients refuse
/// messages over 4 MiB by default, so larger documents serve badly anyway.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// Runs the file source `spec` until `shutdown` is cancelled: loads the file
/// into the store's slot named `spec.name`, then applies every change, each
/// within `limits`.
///
/// Never returns an error: a missing, invalid or over-limit file is reported
/// through [`Store::reject_update`] and retried, and a failure to set up
/// inotify falls back to polling every [`POLL_INTERVAL`] (logged as a warning).
pub async fn run_file_source(
    spec: SourceSpec,
    limits: Limits,
    store: Arc<Store>,
    shutdown: CancellationToken,
) {
    let SourceKind::File { path, format } = spec.kind;
    let changed = Arc::new(Notify::new());
    let watcher = match new_watcher(Arc::clone(&changed)) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(
                source = spec.name,
                %error,
                poll_interval = ?POLL_INTERVAL,
                "cannot watch for file changes; polling only"
            );
            None
        }
    };
    let reloader = Arc::new(Mutex::new(Reloader {
        name: spec.name,
        path,
        format,
        limits,
        store,
        watcher,
        watched: Vec::new(),
        applied: None,
        reported: None,
        pending: None,
    }));

    let mut outcome = check(&reloader, Confirm::Now).await;
    let mut poll = tokio::time::interval_at(Instant::now() + POLL_INTERVAL, POLL_INTERVAL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // (first event of the burst, when to read)
    let mut debounce: Option<(Instant, Instant)> = None;
    let mut confirm_at: Option<Instant> = None;
    loop {
        if outcome == Outcome::NeedsConfirmation {
            confirm_at = Some(Instant::now() + CONFIRM_FAILURE_AFTER);
        }
        outcome = Outcome::Settled;
        let wake_at = match (debounce.map(|(_, at)| at), confirm_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = changed.notified() => {
                let now = Instant::now();
                let first = debounce.map_or(now, |(first, _)| first);
                debounce = Some((first, (now + DEBOUNCE).min(first + MAX_DEBOUNCE)));
            }
            () = sleep_until(wake_at), if wake_at.is_some() => {
                let now = Instant::now();
                if debounce.is_some_and(|(_, at)| at <= now) {
                    debounce = None;
                }
                if confirm_at.is_some_and(|at| at <= now) {
                    confirm_at = None;
                }
                outcome = check(&reloader, Confirm::IfRepeated).await;
            }
            _ = poll.tick() => {
                outcome = check(&reloader, Confirm::IfRepeated).await;
            }
        }
    }
    tracing::debug!(source = lock(&reloader).name, "file source stopped");
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// An inotify watcher that wakes `changed` on every event but reads.
fn new_watcher(changed: Arc<Notify>) -> notify::Result<RecommendedWatcher> {
    notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            let is_read = matches!(event.kind, EventKind::Access(access)
                if access != AccessKind::Close(AccessMode::Write));
            if !is_read {
                changed.notify_one();
            }
        }
        Err(error) => {
            // Lost or broken events: check rather than miss a change.
            tracing::debug!(%error, "file watch error");
            changed.notify_one();
        }
    })
}

/// Whether a failure may be reported on first sight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirm {
    /// Report at once (the initial load).
    Now,
    /// Report only a failure already seen by the previous check.
    IfRepeated,
}

/// What a check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Applied, unchanged, or a failure reported (or already reported).
    Settled,
    /// A new failure that should be checked again before it is reported.
    NeedsConfirmation,
}

/// Runs one check on the blocking pool.
async fn check(reloader: &Arc<Mutex<Reloader>>, confirm: Confirm) -> Outcome {
    let reloader = Arc::clone(reloader);
    match tokio::task::spawn_blocking(move || lock(&reloader).check(confirm)).await {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::error!(%error, "file source check failed");
            Outcome::Settled
        }
    }
}

fn lock(reloader: &Mutex<Reloader>) -> MutexGuard<'_, Reloader> {
    // A panic mid-check leaves consistent state (fields are assigned whole).
    reloader
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A failure to turn the file into a document.
struct Failure {
    /// Identifies this failure: the same content or the same I/O error.
    fingerprint: u64,
    reason: String,
}

/// The state of one file source between checks.
struct Reloader {
    name: String,
    path: PathBuf,
    format: Format,
    limits: Limits,
    store: Arc<Store>,
    watcher: Option<RecommendedWatcher>,
    /// Canonical directories being watched.
    watched: Vec<PathBuf>,
    /// Hash of the content last applied.
    applied: Option<u64>,
    /// Fingerprint of the failure last reported.
    reported: Option<u64>,
    /// Fingerprint of a failure seen once and not yet reported.
    pending: Option<u64>,
}

impl Reloader {
    fn check(&mut self, confirm: Confirm) -> Outcome {
        self.update_watches();
        let failure = match self.load() {
            Ok(()) => {
                self.reported = None;
                self.pending = None;
                return Outcome::Settled;
            }
            Err(failure) => failure,
        };
        if self.reported == Some(failure.fingerprint) {
            return Outcome::Settled;
        }
        if confirm == Confirm::Now || self.pending == Some(failure.fingerprint) {
            self.pending = None;
            self.reported = Some(failure.fingerprint);
            self.store.reject_update(&self.name, &failure.reason);
            Outcome::Settled
        } else {
            self.pending = Some(failure.fingerprint);
            Outcome::NeedsConfirmation
        }
    }

    /// Reads the file and applies it if it changed.
    fn load(&mut self) -> Result<(), Failure> {
        let bytes = read_limited(&self.path, self.limits.max_document_bytes).map_err(|error| {
            let mut hasher = DefaultHasher::new();
            "io".hash(&mut hasher);
            error.kind().hash(&mut hasher);
            error.to_string().hash(&mut hasher);
            Failure {
                fingerprint: hasher.finish(),
                reason: format!("cannot read {}: {error}", self.path.display()),
            }
        })?;
        let hash = content_hash(&bytes);
        if self.applied == Some(hash) {
            return Ok(());
        }
        let failure = |reason: String| Failure {
            fingerprint: hash,
            reason,
        };
        let text = std::str::from_utf8(&bytes).map_err(|error| {
            failure(format!(
                "{} is not UTF-8 text: {error}",
                self.path.display()
            ))
        })?;
        let loaded = document::load(text, self.format, &self.limits)
            .map_err(|error| failure(format!("{}: {error}", self.path.display())))?;
        for warning in &loaded.warnings {
            tracing::warn!(source = self.name, %warning, "flag document warning");
        }
        let flags = loaded.document.flags.len();
        if self
            .store
            .replace_source(&self.name, loaded.document)
            .is_none()
        {
            return Err(failure(format!(
                "the store has no source named {:?}",
                self.name
            )));
        }
        self.applied = Some(hash);
        tracing::debug!(
            source = self.name,
            path = %self.path.display(),
            flags,
            "file source loaded"
        );
        Ok(())
    }

    /// Watches the directories that [`directories_to_watch`] names now, and
    /// stops watching the ones it no longer names.
    fn update_watches(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let wanted = directories_to_watch(&self.path);
        self.watched.retain(|dir| {
            if wanted.contains(dir) {
                return true;
            }
            // The directory may be gone already, which ends its watch anyway.
            let _ = watcher.unwatch(dir);
            false
        });
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => self.watched.push(dir),
                Err(error) => tracing::debug!(
                    source = self.name,
                    dir = %dir.display(),
                    %error,
                    "cannot watch directory; the poll will retry"
                ),
            }
        }
    }
}

/// The canonical directory of `path` and the directory of its resolved
/// target, without duplicates. Either is left out while it does not exist.
fn directories_to_watch(path: &Path) -> Vec<PathBuf> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut dirs = Vec::with_capacity(2);
    if let Ok(dir) = std::fs::canonicalize(parent) {
        dirs.push(dir);
    }
    if let Some(dir) = std::fs::canonicalize(path)
        .ok()
        .and_then(|target| target.parent().map(Path::to_path_buf))
        && !dirs.contains(&dir)
    {
        dirs.push(dir);
    }
    dirs
}

/// Reads `path` (following symlinks), refusing more than `limit` bytes: by
/// its length before reading when it has one (a regular file), else once
/// `limit + 1` bytes have been read.
pub fn read_limited(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    let too_large = |size: String| {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("the file is {size} bytes; the limit is {limit} bytes"),
        )
    };
    let file = File::open(path)?;
    let size_hint = file.metadata().map_or(0, |meta| meta.len());
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if size_hint > limit_u64 {
        return Err(too_large(size_hint.to_string()));
    }
    let capacity = usize::try_from(size_hint).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit_u64.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(too_large(format!("more than {limit}")));
    }
    Ok(bytes)
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    "content".hash(&mut hasher);
    bytes.hash(&mut hasher);
    hasher.finish()
}
