//! Which feature files are in scope, and which of their cases run under which
//! fractional generation.
//!
//! Rules, applied per case (feature + scenario + examples tags together):
//! 1. `@fractional-v1` anywhere: excluded (legacy bucketing, never implemented).
//! 2. `@fractional-v2` without `@fractional-v3`: runs under v2 only;
//!    `@fractional-v3` without `@fractional-v2`: under v3 only. Untagged cases
//!    run under both.
//! 3. `@deprecated`: excluded (superseded suites that SDK harnesses filter out).
//! 4. Tags of behaviour only a live provider or transport has (events, caching,
//!    connection, context enrichment, ...): excluded.
//! 5. Mode tags: the engine is what in-process and file providers embed, so a
//!    case tagged with modes must include `@in-process` or `@file`.
//!
//! Every exclusion carries its reason and is printed; nothing is dropped silently.

use ensign_engine::FractionalGeneration;

use crate::gherkin::Case;

/// The provider-level files the issue puts in scope (the rest need transport).
pub const PROVIDER_FILES: [&str; 4] = [
    "gherkin/targeting.feature",
    "gherkin/evaluation.feature",
    "gherkin/disabled.feature",
    "gherkin/metadata.feature",
];

/// Why a provider-level file outside the scope is not run.
pub fn out_of_scope_reason(file: &str) -> &'static str {
    match file {
        "gherkin/events.feature" => {
            "provider events (READY/ERROR/STALE/CHANGE) need a live provider and the launchpad restart/change API"
        }
        "gherkin/connection.feature" => {
            "connection, TLS, unix socket, reconnect and forbidden scenarios need a transport"
        }
        "gherkin/rpc-caching.feature" => "RPC provider caching and cache flushes need a transport",
        "gherkin/contextEnrichment.feature" => {
            "context enrichment (server static context through RPC / sync metadata, grace period) needs a server"
        }
        "gherkin/sync-payload.feature" => {
            "sync payload with --disable-sync-metadata needs the sync stream"
        }
        "gherkin/config.feature" => {
            "provider option and environment-variable defaults; no evaluation"
        }
        "gherkin/selector.feature" => {
            "in-process sync selector behaviour of the provider; not named in the issue's scope"
        }
        _ => "not named in the issue's scope (provider-level suite)",
    }
}

/// Tags of behaviour the engine alone does not have.
const LIVE_PROVIDER_TAGS: [(&str, &str); 14] = [
    ("@events", "provider events need a live provider"),
    ("@caching", "provider-side caching needs an RPC provider"),
    ("@grace", "grace periods need a connection that can be lost"),
    ("@reconnect", "reconnection needs a transport"),
    ("@unavailable", "an unavailable server needs a transport"),
    ("@forbidden", "HTTP 403 handling needs a transport"),
    ("@targetURI", "target URIs need a transport"),
    ("@customCert", "TLS certificates need a transport"),
    ("@unixsocket", "unix sockets need a transport"),
    ("@stream", "streams need a transport"),
    ("@sync", "the sync stream needs a transport"),
    ("@sync-payload", "sync payloads need the sync stream"),
    (
        "@contextEnrichment",
        "context enrichment needs a server's static context delivered to a provider",
    ),
    ("@os.linux", "OS-specific transport scenarios"),
];

/// What happens to a case under one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Run it.
    Run,
    /// Do not run it, for this reason.
    Excluded(String),
}

/// The label of a fractional generation in output.
pub fn generation_label(generation: FractionalGeneration) -> &'static str {
    match generation {
        FractionalGeneration::V2 => "v2",
        FractionalGeneration::V3 => "v3",
    }
}

/// Decides whether `case` runs under `generation`.
pub fn disposition(case: &Case, generation: FractionalGeneration) -> Disposition {
    if case.has_tag("@fractional-v1") {
        return Disposition::Excluded(
            "@fractional-v1: legacy float bucketing, excluded by the issue".to_owned(),
        );
    }
    let v2 = case.has_tag("@fractional-v2");
    let v3 = case.has_tag("@fractional-v3");
    match generation {
        FractionalGeneration::V2 if v3 && !v2 => {
            return Disposition::Excluded("@fractional-v3 only: not run under v2".to_owned());
        }
        FractionalGeneration::V3 if v2 && !v3 => {
            return Disposition::Excluded("@fractional-v2 only: not run under v3".to_owned());
        }
        _ => {}
    }
    if case.has_tag("@deprecated") {
        return Disposition::Excluded(
            "@deprecated: superseded by @no-default-variant; expects the old RPC answer \
             (ERROR/FLAG_NOT_FOUND) for a flag without default variant; SDK harnesses filter it out"
                .to_owned(),
        );
    }
    if let Some((tag, reason)) = LIVE_PROVIDER_TAGS.iter().find(|(tag, _)| case.has_tag(tag)) {
        return Disposition::Excluded(format!("{tag}: {reason}"));
    }
    let has_mode_tag = ["@rpc", "@in-process", "@file"]
        .iter()
        .any(|tag| case.has_tag(tag));
    if has_mode_tag && !case.has_tag("@in-process") && !case.has_tag("@file") {
        return Disposition::Excluded(
            "@rpc only: RPC-provider semantics; the engine has in-process/file semantics"
                .to_owned(),
        );
    }
    Disposition::Run
}
