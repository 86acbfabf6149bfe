//! What a resolution returns: value, variant, reason, error code and metadata.
//!
//! The names and meanings follow OpenFeature and flagd 0.16: a resolution either
//! yields a variant's value, or tells the caller to use its code default (reason
//! `DEFAULT` or `DISABLED` with no value), or fails with an [`ErrorCode`].

use std::borrow::Cow;
use std::fmt;

use crate::metadata::Metadata;

/// Why a resolution produced what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The flag has no targeting; its default variant was served.
    Static,
    /// Targeting returned a variant of the flag.
    TargetingMatch,
    /// Targeting returned null (or the flag has no default variant): the default applies.
    Default,
    /// The flag is disabled; the caller's code default applies.
    Disabled,
    /// The resolution failed; see the error code.
    Error,
}

impl Reason {
    /// The OpenFeature spelling (`STATIC`, `TARGETING_MATCH`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::Error => "ERROR",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OpenFeature error codes the engine produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No flag with that key is visible.
    FlagNotFound,
    /// The flag's targeting could not be evaluated (unknown operator, unresolved `$ref`).
    ParseError,
    /// The flag's variants are not of the requested type.
    TypeMismatch,
    /// Targeting produced something that names no variant.
    General,
    /// The evaluation context is unusable (not an object, too deep).
    InvalidContext,
}

impl ErrorCode {
    /// The OpenFeature spelling (`FLAG_NOT_FOUND`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::General => "GENERAL",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed resolution: the code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolutionError {
    /// The OpenFeature error code.
    pub code: ErrorCode,
    /// What went wrong, for logs and error bodies.
    pub message: Cow<'static, str>,
}

/// The outcome of resolving one flag for one context.
///
/// `'s` borrows from the snapshot: values, variant names and metadata are not
/// copied, so serving a static flag allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution<'s, T> {
    /// The resolved value; `None` means "use the caller's code default".
    pub value: Option<T>,
    /// The variant name, when a variant was chosen.
    pub variant: Option<&'s str>,
    /// Why this outcome.
    pub reason: Reason,
    /// Set exactly when `reason` is [`Reason::Error`].
    pub error: Option<ResolutionError>,
    /// Flag-set metadata overlaid by the flag's own metadata (empty for unknown flags).
    pub metadata: &'s Metadata,
}

impl<'s, T> Resolution<'s, T> {
    /// Maps the value, keeping everything else.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Resolution<'s, U> {
        Resolution {
            value: self.value.map(f),
            variant: self.variant,
            reason: self.reason,
            error: self.error,
            metadata: self.metadata,
        }
    }

    /// The error code, if the resolution failed.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error.as_ref().map(|e| e.code)
    }

    pub(crate) fn failed(
        code: ErrorCode,
        message: impl Into<Cow<'static, str>>,
        metadata: &'s Metadata,
    ) -> Self {
        Resolution {
            value: None,
            variant: None,
            reason: Reason::Error,
            error: Some(ResolutionError {
                code,
                message: message.into(),
            }),
            metadata,
        }
    }
}
