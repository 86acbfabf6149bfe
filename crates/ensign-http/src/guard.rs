//! A port's list of shared secrets, with the [`Throttle`] of failed ones: what
//! `--ofrep-auth-token`, `--evaluation-auth-token` and `--sync-auth-token`
//! configure. Each port shapes its own refusal (OFREP JSON, gRPC status,
//! Connect error) from the one [`Refusal`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::credentials::same_secret;
use crate::throttle::Throttle;

/// Why a request without a valid secret is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No secret, or not one of the port's: HTTP 401, gRPC UNAUTHENTICATED.
    Unauthenticated,
    /// The client address failed too often: HTTP 429, gRPC RESOURCE_EXHAUSTED,
    /// and `Retry-After` in whole seconds.
    Throttled {
        /// How long until the client may try again.
        retry_after: Duration,
    },
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn http_status(self) -> http::StatusCode {
        match self {
            Refusal::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            Refusal::Throttled { .. } => http::StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The gRPC status code of the refusal (16 UNAUTHENTICATED, 8
    /// RESOURCE_EXHAUSTED).
    pub fn grpc_code(self) -> i32 {
        match self {
            Refusal::Unauthenticated => 16,
            Refusal::Throttled { .. } => 8,
        }
    }

    /// The `Retry-After` value (seconds) of a throttled refusal.
    pub fn retry_after(self) -> Option<http::HeaderValue> {
        match self {
            Refusal::Unauthenticated => None,
            Refusal::Throttled { retry_after } => Some(retry_after.as_secs().into()),
        }
    }

    /// What went wrong, for the answer's message.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "a valid token is required (Authorization: Bearer <token>)",
            Refusal::Throttled { .. } => {
                "too many wrong tokens from this address; retry after the Retry-After seconds"
            }
        }
    }
}

/// A port's accepted secrets and its throttle of failures.
#[derive(Debug, Default)]
pub struct TokenGuard {
    tokens: Vec<String>,
    throttle: Arc<Throttle>,
}

impl TokenGuard {
    /// A guard accepting `tokens` (empty ones are dropped; none: every request
    /// passes), with a throttle of its own.
    pub fn new(tokens: &[String]) -> Self {
        TokenGuard::sharing(tokens, Arc::default())
    }

    /// A guard accepting `tokens` whose failures count in `throttle`.
    pub fn sharing(tokens: &[String], throttle: Arc<Throttle>) -> Self {
        TokenGuard {
            tokens: tokens
                .iter()
                .map(|token| token.trim())
                .filter(|token| !token.is_empty())
                .map(str::to_owned)
                .collect(),
            throttle,
        }
    }

    /// Whether the port asks for a secret at all.
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The throttle failures count in.
    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    /// The accepted secret equal to `presented`, if any (compared in constant
    /// time), without throttling; for callers that derive something from it.
    pub fn matching(&self, presented: &str) -> Option<&str> {
        let presented = presented.trim();
        self.tokens
            .iter()
            .find(|token| same_secret(token, presented))
            .map(String::as_str)
    }

    /// Admits a request from `client` presenting `presented`: always when the
    /// guard has no tokens; otherwise when the address is not throttled and
    /// the secret is one of the tokens. A wrong secret counts as a failure of
    /// the address; a missing one does not.
    pub fn admit(&self, presented: Option<&str>, client: Option<IpAddr>) -> Result<(), Refusal> {
        if !self.is_enabled() {
            return Ok(());
        }
        self.throttle
            .check(client)
            .map_err(|throttled| Refusal::Throttled {
                retry_after: throttled.retry_after,
            })?;
        let Some(presented) = presented.filter(|p| !p.trim().is_empty()) else {
            return Err(Refusal::Unauthenticated);
        };
        if self.matching(presented).is_some() {
            Ok(())
        } else {
            self.throttle.record_failure(client);
            Err(Refusal::Unauthenticated)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wrong_secrets_are_counted_and_throttled_missing_ones_are_not() {
        let guard = TokenGuard::sharing(
            &["a".repeat(32), String::new()],
            Arc::new(Throttle::new(2, Duration::from_secs(60), 10)),
        );
        let client = Some("192.0.2.1".parse().unwrap());
        let right = "a".repeat(32);
        assert_eq!(guard.admit(Some(&right), client), Ok(()));
        for _ in 0..5 {
            assert_eq!(guard.admit(None, client), Err(Refusal::Unauthenticated));
        }
        assert_eq!(guard.admit(Some(""), client), Err(Refusal::Unauthenticated));
        for _ in 0..2 {
            assert_eq!(
                guard.admit(Some("wrong"), client),
                Err(Refusal::Unauthenticated)
            );
        }
        let refusal = guard.admit(Some(&right), client).unwrap_err();
        assert_eq!(refusal.http_status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.grpc_code(), 8);
        assert_eq!(refusal.retry_after().unwrap(), "60");
        assert_eq!(
            guard.admit(Some(&right), Some("192.0.2.2".parse().unwrap())),
            Ok(())
        );
    }

    #[test]
    fn without_tokens_everything_passes() {
        let guard = TokenGuard::new(&[" ".to_owned()]);
        assert!(!guard.is_enabled());
        assert_eq!(guard.admit(None, None), Ok(()));
    }
}
