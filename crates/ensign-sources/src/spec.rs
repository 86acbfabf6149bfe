//! Parsing `--uri` values into [`SourceSpec`]s.
//!
//! # Source names
//!
//! A source's name is what selectors (`Flagd-Selector: source=…`) match and
//! what the metrics label `source` shows. Ensign names a source exactly as
//! flagd does: by the URI as configured, with a leading `file:` removed and
//! nothing else changed (no normalisation, no canonicalisation). So
//! `--uri file:flags/allFlags.json` and `--uri flags/allFlags.json` are both
//! named `flags/allFlags.json`, which is what the flagd testbed's scenarios
//! select on; `./flags/allFlags.json` is a different name.
//!
//! flagd strips the prefix with the regular expression `^file:`, so
//! `file:///etc/flags.json` is named `///etc/flags.json` there; Ensign does the
//! same, and the path `///etc/flags.json` opens `/etc/flags.json`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use ensign_engine::Format;

/// Where a source's flags come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceKind {
    /// A local file, JSON or YAML by extension, watched for changes.
    File {
        /// The path to read (symlinks are followed on every read).
        path: PathBuf,
        /// The document syntax, from the file name's extension.
        format: Format,
    },
}

/// A configured flag source: its name and where it reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// The name selectors match and metrics report: the URI as given, minus
    /// a leading `file:` (see the [module documentation](self)).
    pub name: String,
    /// Where the flags come from.
    pub kind: SourceKind,
}

impl SourceSpec {
    /// A file source reading `path`, named by `path` as given.
    pub fn file(path: impl Into<String>) -> SourceSpec {
        let name = path.into();
        let format = Format::from_path(&name);
        SourceSpec {
            kind: SourceKind::File {
                path: PathBuf::from(&name),
                format,
            },
            name,
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Why a `--uri` value is not a usable source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceSpecError {
    /// The value is empty (or `file:` with no path).
    #[error("empty source URI {uri:?}: expected file:PATH or a path")]
    Empty {
        /// The value as given.
        uri: String,
    },
    /// A kind of source flagd has but Ensign does not support yet.
    #[error(
        "source {uri:?}: {kind} sources are not supported yet; use a file source (file:PATH or a path)"
    )]
    Unsupported {
        /// The value as given.
        uri: String,
        /// What kind of source it names (`http`, `grpc`, `kubernetes`, ...).
        kind: UnsupportedKind,
    },
}

/// A source kind that is recognised but not implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedKind {
    /// `http://` or `https://`.
    Http,
    /// `grpc://`, `grpcs://` and gRPC resolver schemes (`envoy`, `dns`, `uds`, `xds`).
    Grpc,
    /// `core.openfeature.dev/<namespace>/<name>` (a Kubernetes `FeatureFlag` resource).
    Kubernetes,
    /// `gs://`, `azblob://`, `s3://`.
    ObjectStore,
    /// Any other `scheme://` URI.
    Other,
}

impl fmt::Display for UnsupportedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnsupportedKind::Http => "HTTP",
            UnsupportedKind::Grpc => "gRPC",
            UnsupportedKind::Kubernetes => "Kubernetes",
            UnsupportedKind::ObjectStore => "object storage",
            UnsupportedKind::Other => "URL",
        })
    }
}

/// The URI scheme before `://`, if the value has one.
fn url_scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

impl FromStr for SourceSpec {
    type Err = SourceSpecError;

    fn from_str(uri: &str) -> Result<SourceSpec, SourceSpecError> {
        if let Some(path) = uri.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SourceSpecError::Empty {
                    uri: uri.to_owned(),
                });
            }
            return Ok(SourceSpec::file(path));
        }
        if uri.is_empty() {
            return Err(SourceSpecError::Empty {
                uri: uri.to_owned(),
            });
        }
        let unsupported = |kind| {
            Err(SourceSpecError::Unsupported {
                uri: uri.to_owned(),
                kind,
            })
        };
        if let Some(scheme) = url_scheme(uri) {
            return unsupported(match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => UnsupportedKind::Http,
                "grpc" | "grpcs" | "envoy" | "dns" | "uds" | "xds" => UnsupportedKind::Grpc,
                "gs" | "azblob" | "s3" => UnsupportedKind::ObjectStore,
                _ => UnsupportedKind::Other,
            });
        }
        if uri.starts_with("core.openfeature.dev/") {
            return unsupported(UnsupportedKind::Kubernetes);
        }
        Ok(SourceSpec::file(uri))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn file(uri: &str) -> (String, PathBuf, Format) {
        let spec: SourceSpec = uri.parse().expect("a file source");
        let SourceKind::File { path, format } = spec.kind;
        (spec.name, path, format)
    }

    #[test]
    fn file_sources_are_named_by_the_path_as_given() {
        assert_eq!(
            file("file:flags/allFlags.json"),
            (
                "flags/allFlags.json".to_owned(),
                PathBuf::from("flags/allFlags.json"),
                Format::Json
            )
        );
        assert_eq!(
            file("rawflags/selector-flags.json").0,
            "rawflags/selector-flags.json"
        );
        assert_eq!(file("./a/b.json").0, "./a/b.json");
        assert_eq!(file("/etc/ensign/flags.YAML").2, Format::Yaml);
        assert_eq!(file("file:flags.yml").2, Format::Yaml);
        assert_eq!(
            file("file:///etc/flags.json").1,
            PathBuf::from("///etc/flags.json")
        );
    }

    #[test]
    fn other_schemes_are_not_supported_yet() {
        for (uri, kind) in [
            ("http://localhost/flags.json", UnsupportedKind::Http),
            ("HTTPS://example.invalid/f", UnsupportedKind::Http),
            ("grpc://localhost:8015", UnsupportedKind::Grpc),
            ("envoy://localhost:9211/svc", UnsupportedKind::Grpc),
            ("s3://bucket/flags.json", UnsupportedKind::ObjectStore),
            (
                "core.openfeature.dev/default/flags",
                UnsupportedKind::Kubernetes,
            ),
            ("ftp://host/flags.json", UnsupportedKind::Other),
        ] {
            let error = uri.parse::<SourceSpec>().unwrap_err();
            assert_eq!(
                error,
                SourceSpecError::Unsupported {
                    uri: uri.to_owned(),
                    kind
                }
            );
            assert!(error.to_string().contains("not supported yet"), "{error}");
        }
    }

    #[test]
    fn empty_values_are_rejected() {
        assert!(matches!(
            "".parse::<SourceSpec>(),
            Err(SourceSpecError::Empty { .. })
        ));
        assert!(matches!(
            "file:".parse::<SourceSpec>(),
            Err(SourceSpecError::Empty { .. })
        ));
    }
}
