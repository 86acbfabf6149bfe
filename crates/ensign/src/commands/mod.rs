//! One module per subcommand, plus what they share.

pub mod client;
pub mod eval;
pub mod flags;
pub mod migrate;
pub mod serve;
pub mod slo;
pub mod token;
pub mod user;
pub mod validate;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use ensign_engine::document::{self, Format, Limits, Loaded};

/// Reads and loads the flag document at `path` (YAML by extension, else
/// JSON), within the engine's default limits (the file's size checked first).
pub fn load_file(path: &str) -> anyhow::Result<Result<Loaded, document::DocumentError>> {
    let limits = Limits::default();
    let bytes = ensign_sources::read_limited(std::path::Path::new(path), limits.max_document_bytes)
        .with_context(|| format!("reading {path}"))?;
    let text = String::from_utf8(bytes).with_context(|| format!("{path} is not UTF-8 text"))?;
    Ok(document::load(&text, Format::from_path(path), &limits))
}

/// The current time in unix seconds, for `$flagd.timestamp`.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
