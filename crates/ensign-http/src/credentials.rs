//! Reading secrets off requests, the same way on every port: the
//! `Authorization` header's scheme and credentials, and a comparison of
//! secrets that does not leak where they differ through its timing.

use http::{HeaderMap, header};

/// The scheme and credentials of the `Authorization` header, both trimmed;
/// the credentials may be empty. `None` without the header, or when it is not
/// text or has no credentials part.
pub fn authorization(headers: &HeaderMap) -> Option<(&str, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim().split_once(' ')?;
    Some((scheme, credentials.trim()))
}

/// The credentials of an `Authorization: Bearer <secret>` header (the scheme
/// is case-insensitive, RFC 9110 §11.1), possibly empty.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers)
        .and_then(|(scheme, secret)| scheme.eq_ignore_ascii_case("bearer").then_some(secret))
}

/// The fewest characters a shared secret given to `ensign serve` may have
/// (`ENSIGN_ADMIN_TOKEN`, `--alertmanager-token`, the port tokens): 32
/// characters of `openssl rand -hex 32` are 128 bits.
pub const MIN_SECRET_LENGTH: usize = 32;

/// Checks a shared secret given as `option` against [`MIN_SECRET_LENGTH`];
/// the error is one line naming the option and the rule.
pub fn check_secret_strength(option: &str, secret: &str) -> Result<(), String> {
    let length = secret.trim().chars().count();
    if length < MIN_SECRET_LENGTH {
        return Err(format!(
            "{option}: a shared secret needs at least {MIN_SECRET_LENGTH} characters \
             (this one has {length}); make one with `openssl rand -hex 32`"
        ));
    }
    Ok(())
}

/// Compares secrets without an early exit that would time the match.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
        assert_eq!(
            authorization(&headers("Basic dTpw")),
            Some(("Basic", "dTpw"))
        );
    }

    #[test]
    fn short_secrets_are_refused_by_name() {
        assert_eq!(
            check_secret_strength("--sync-auth-token", "short"),
            Err(
                "--sync-auth-token: a shared secret needs at least 32 characters (this one \
                 has 5); make one with `openssl rand -hex 32`"
                    .to_owned()
            )
        );
        assert!(check_secret_strength("X", &"a".repeat(31)).is_err());
        assert!(check_secret_strength("X", &" a".repeat(16)).is_err());
        assert_eq!(check_secret_strength("X", &"a".repeat(32)), Ok(()));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
