//! The `sem_ver` custom JsonLogic operator: semantic-version comparison as
//! flagd does it.
//!
//! A rule reads `{"sem_ver": [version, operator, version]}`. The engine
//! evaluates the three arguments, stringifies numbers (`1` → `"1"`, `1.5` →
//! `"1.5"`), checks the arity and hands the strings to [`compare`]; a `None`
//! answer becomes JsonLogic `null`, which sends the flag to its default variant.
//!
//! The semantics follow flagd's Go evaluator, which prefixes a `v` and defers
//! to `golang.org/x/mod/semver`:
//!
//! * Operators: `=`, `!=`, `<`, `<=`, `>`, `>=` compare by SemVer 2.0.0
//!   precedence; `^` holds when both majors are equal and `~` when both major
//!   and minor are equal (pre-release and patch are ignored by those two).
//!   Any other operator (`==`, `===`, `""`, …) is invalid.
//! * Syntax: one optional leading `v` or `V`, then `MAJOR[.MINOR[.PATCH]]`.
//!   The shorthands `1` and `1.2` mean `1.0.0` and `1.2.0`, and are only
//!   accepted bare: a pre-release or build suffix needs all three parts.
//!   Numeric parts are ASCII digits without leading zeros; a fourth part
//!   (`2.0.0.0`), empty parts, signs and whitespace make the version invalid.
//! * `-PRERELEASE` and `+BUILD` are dot-separated, non-empty identifiers of
//!   `[0-9A-Za-z-]`; numeric pre-release identifiers may not have leading
//!   zeros (build identifiers may). Build metadata never affects the result.
//! * Precedence (SemVer 2.0.0 §11): major, minor, patch numerically; a
//!   pre-release sorts below its release; pre-release identifiers compare
//!   numerically when both are numeric, byte-wise when both are alphanumeric,
//!   numeric below alphanumeric, and a shorter list below a longer one that
//!   it prefixes.
//!
//! Numbers are compared as validated digit strings (length first, then
//! bytes), so components of any size work without overflow. Nothing here
//! allocates or panics.

use std::cmp::Ordering;

/// Compares `left` and `right` with `operator`; `None` means the operator's
/// arguments are invalid (flagd then yields null, so the flag falls to its default).
pub(crate) fn compare(left: &str, operator: &str, right: &str) -> Option<bool> {
    let operator = Operator::parse(operator)?;
    let left = Version::parse(left)?;
    let right = Version::parse(right)?;
    Some(operator.holds(&left, &right))
}

/// A `sem_ver` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    /// `=`: equal precedence.
    Equal,
    /// `!=`: different precedence.
    NotEqual,
    /// `<`: lower precedence.
    Less,
    /// `<=`: lower or equal precedence.
    LessOrEqual,
    /// `>`: higher precedence.
    Greater,
    /// `>=`: higher or equal precedence.
    GreaterOrEqual,
    /// `^`: same major version.
    SameMajor,
    /// `~`: same major and minor version.
    SameMinor,
}

impl Operator {
    /// Recognises an operator token; anything else is `None`.
    fn parse(token: &str) -> Option<Self> {
        Some(match token {
            "=" => Self::Equal,
            "!=" => Self::NotEqual,
            "<" => Self::Less,
            "<=" => Self::LessOrEqual,
            ">" => Self::Greater,
            ">=" => Self::GreaterOrEqual,
            "^" => Self::SameMajor,
            "~" => Self::SameMinor,
            _ => return None,
        })
    }

    /// Whether `left operator right` holds.
    fn holds(self, left: &Version<'_>, right: &Version<'_>) -> bool {
        match self {
            Self::Equal => left.precedence(right).is_eq(),
            Self::NotEqual => left.precedence(right).is_ne(),
            Self::Less => left.precedence(right).is_lt(),
            Self::LessOrEqual => left.precedence(right).is_le(),
            Self::Greater => left.precedence(right).is_gt(),
            Self::GreaterOrEqual => left.precedence(right).is_ge(),
            Self::SameMajor => compare_numbers(left.major, right.major).is_eq(),
            Self::SameMinor => {
                compare_numbers(left.major, right.major).is_eq()
                    && compare_numbers(left.minor, right.minor).is_eq()
            }
        }
    }
}

/// A validated version, borrowing its parts from the input string.
///
/// Numeric parts are digit strings without leading zeros, so numeric order is
/// "shorter is smaller, then byte order". Build metadata is validated during
/// parsing and then dropped, since it never takes part in a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version<'a> {
    /// Major version digits.
    major: &'a str,
    /// Minor version digits (`"0"` when the input omitted it).
    minor: &'a str,
    /// Patch version digits (`"0"` when the input omitted it).
    patch: &'a str,
    /// Pre-release identifiers without the leading `-`, if any.
    prerelease: Option<&'a str>,
}

impl<'a> Version<'a> {
    /// Parses `text` with flagd's (x/mod/semver's) rules; `None` if invalid.
    fn parse(text: &'a str) -> Option<Self> {
        let text = text
            .strip_prefix('v')
            .or_else(|| text.strip_prefix('V'))
            .unwrap_or(text);

        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        if let Some(build) = build
            && !build.split('.').all(is_identifier)
        {
            return None;
        }

        let (core, prerelease) = match rest.split_once('-') {
            Some((core, prerelease)) => (core, Some(prerelease)),
            None => (rest, None),
        };
        if let Some(prerelease) = prerelease
            && !prerelease.split('.').all(is_prerelease_identifier)
        {
            return None;
        }

        let mut parts = core.split('.');
        let major = parts.next().filter(|part| is_number(part))?;
        let minor = parts.next();
        let patch = parts.next();
        if parts.next().is_some() {
            return None;
        }
        let (minor, patch) = match (minor, patch) {
            (Some(minor), Some(patch)) if is_number(minor) && is_number(patch) => (minor, patch),
            // Shorthands ("1", "1.2") carry no suffix in x/mod/semver.
            (Some(minor), None) if is_number(minor) && build.is_none() && prerelease.is_none() => {
                (minor, "0")
            }
            (None, None) if build.is_none() && prerelease.is_none() => ("0", "0"),
            _ => return None,
        };

        Some(Self {
            major,
            minor,
            patch,
            prerelease,
        })
    }

    /// SemVer 2.0.0 precedence (build metadata ignored).
    fn precedence(&self, other: &Self) -> Ordering {
        compare_numbers(self.major, other.major)
            .then_with(|| compare_numbers(self.minor, other.minor))
            .then_with(|| compare_numbers(self.patch, other.patch))
            .then_with(|| compare_prereleases(self.prerelease, other.prerelease))
    }
}

/// Whether `part` is a numeric identifier: ASCII digits, no leading zero
/// unless it is exactly `"0"`.
fn is_number(part: &str) -> bool {
    is_digits(part) && (part == "0" || !part.starts_with('0'))
}

/// Whether `part` is non-empty and made only of ASCII digits.
fn is_digits(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit())
}

/// Whether `part` is a non-empty identifier of `[0-9A-Za-z-]`.
fn is_identifier(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// Whether `part` is a valid pre-release identifier: an identifier that, if
/// all digits, has no leading zero.
fn is_prerelease_identifier(part: &str) -> bool {
    is_identifier(part) && (!is_digits(part) || is_number(part))
}

/// Orders two validated digit strings numerically without parsing them.
fn compare_numbers(left: &str, right: &str) -> Ordering {
    left.len().cmp(&right.len()).then_with(|| left.cmp(right))
}

/// Orders pre-release parts; a release (`None`) sorts above any pre-release.
fn compare_prereleases(left: Option<&str>, right: Option<&str>) -> Ordering {
    match (left, right) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(left), Some(right)) => {
            let mut left = left.split('.');
            let mut right = right.split('.');
            loop {
                match (left.next(), right.next()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(left), Some(right)) => {
                        let order = compare_identifiers(left, right);
                        if order.is_ne() {
                            return order;
                        }
                    }
                }
            }
        }
    }
}

/// Orders two pre-release identifiers: numerically if both are numeric,
/// numeric below alphanumeric, otherwise by ASCII byte order.
fn compare_identifiers(left: &str, right: &str) -> Ordering {
    match (is_digits(left), is_digits(right)) {
        (true, true) => compare_numbers(left, right),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => left.cmp(right),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `compare(left, op, right) == expected`.
    #[track_caller]
    fn check(left: &str, op: &str, right: &str, expected: Option<bool>) {
        assert_eq!(
            compare(left, op, right),
            expected,
            "sem_ver [{left:?}, {op:?}, {right:?}]"
        );
    }

    /// Runs a table of `(left, op, right, expected)` rows.
    #[track_caller]
    fn check_all(rows: &[(&str, &str, &str, Option<bool>)]) {
        for &(left, op, right, expected) in rows {
            check(left, op, right, expected);
        }
    }

    /// JsonLogic `if` truthiness of an operator result: null and false are falsy.
    fn truthy(result: Option<bool>) -> bool {
        result == Some(true)
    }

    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const NULL: Option<bool> = None;

    /// testkit `equal-greater-lesser-version-flag` (with the extra `= 2.0.0.0`
    /// branch of flags/custom-ops.json).
    fn equal_greater_lesser(version: &str) -> &'static str {
        if truthy(compare(version, "=", "2.0.0")) {
            "equal"
        } else if truthy(compare(version, ">", "2.0.0")) {
            "greater"
        } else if truthy(compare(version, "<", "2.0.0")) {
            "lesser"
        } else if truthy(compare(version, "=", "2.0.0.0")) {
            "fail"
        } else {
            "none"
        }
    }

    /// testkit `major-minor-version-flag`.
    fn major_minor(version: &str) -> &'static str {
        if truthy(compare(version, "~", "3.0.0")) {
            "minor"
        } else if truthy(compare(version, "^", "3.0.0")) {
            "major"
        } else {
            "none"
        }
    }

    /// An `{"if": [rule, "match", "no-match"]}` flag.
    fn match_flag(result: Option<bool>) -> &'static str {
        if truthy(result) { "match" } else { "no-match" }
    }

    #[test]
    fn testbed_numeric_comparison() {
        for (version, expected) in [
            ("2.0.0", "equal"),
            ("2.1.0", "greater"),
            ("1.9.0", "lesser"),
            ("2.0.0-alpha", "lesser"),
            ("2.0.0.0", "none"),
        ] {
            assert_eq!(equal_greater_lesser(version), expected, "{version}");
        }
        check("2.0.0.0", "=", "2.0.0", NULL);
        check("2.0.0", "=", "2.0.0.0", NULL);
        check("2.0.0.0", "=", "2.0.0.0", NULL);
    }

    #[test]
    fn testbed_major_minor_range() {
        for (version, expected) in [("3.0.1", "minor"), ("3.1.0", "major"), ("4.0.0", "none")] {
            assert_eq!(major_minor(version), expected, "{version}");
        }
    }

    #[test]
    fn testbed_operator_errors() {
        // semver-invalid-version-flag and semver-invalid-operator-flag.
        check("not-a-version", "=", "1.0.0", NULL);
        check("1.0.0", "===", "1.0.0", NULL);
    }

    #[test]
    fn testbed_v_prefix() {
        for (version, expected) in [
            ("1.0.0", "match"),
            ("v1.0.0", "match"),
            ("V1.0.0", "match"),
            ("2.0.0", "no-match"),
        ] {
            assert_eq!(
                match_flag(compare(version, "=", "v1.0.0")),
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn testbed_partial_versions() {
        // Integer 1 and Float 1 both reach us as "1"; Float 1.2 as "1.2".
        for (version, expected) in [
            ("1.5.0", "match"),
            ("1.0.0", "match"),
            ("1.0", "match"),
            ("1", "match"),
            ("1.2", "match"),
            ("2.0.0", "no-match"),
        ] {
            assert_eq!(
                match_flag(compare(version, "^", "1")),
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn testbed_numeric_context() {
        for (version, expected) in [
            ("1.2", "match"),
            ("1.1", "no-match"),
            ("2", "match"),
            ("1", "no-match"),
        ] {
            assert_eq!(
                match_flag(compare(version, ">", "1.1")),
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn testbed_build_metadata() {
        for (version, expected) in [
            ("1.0.0", "match"),
            ("1.0.0+other", "match"),
            ("2.0.0", "no-match"),
        ] {
            assert_eq!(
                match_flag(compare(version, "=", "1.0.0+build")),
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn flagd_go_unit_rows() {
        // Operator table of flagd's own evaluator tests, plus its rule rows.
        check_all(&[
            ("v0.0.1", "", "v0.0.2", NULL),
            ("v0.0.1", "<", "v0.0.2", T),
            ("v0.0.1", "<", "v0.0.1", F),
            ("v0.0.1", "<=", "v0.0.2", T),
            ("v0.0.1", "<=", "v0.0.1", T),
            ("v0.0.1", "=", "v0.0.1", T),
            ("v0.0.2", "=", "v0.0.1", F),
            ("v0.0.2", "!=", "v0.0.1", T),
            ("v0.0.1", "!=", "v0.0.1", F),
            ("v0.0.2", ">=", "v0.0.1", T),
            ("v0.0.1", ">=", "v0.0.1", T),
            ("v0.0.1", ">=", "v0.0.2", F),
            ("v0.0.2", ">", "v0.0.1", T),
            ("v0.0.1", ">", "v0.0.1", F),
            ("v1.3.4", "^", "v1.5.3", T),
            ("v2.1.1", "^", "v1.1.1", F),
            ("v1.3.4", "~", "v1.3.1", T),
            ("v2.2.1", "~", "v2.1.1", F),
            ("1.0.0", ">", "0.1.0", T),
            ("1.0.1", ">", "1.0.0", T),
            ("1.0.0", ">", "1.0.0", F),
            ("1.2.3", "^", "1.5.6", T),
            ("1.2.3", "~", "1.2.6", T),
            ("2.2.3", "^", "1.2.3", F),
            ("1.3.3", "~", "1.2.6", F),
            ("0.0.1", ">", "1.0.0", F),
            ("invalid", ">", "1.0.0", NULL),
            ("1.0.0", "invalid", "1.0.0", NULL),
            ("1.0.0", ">", "invalid", NULL),
        ]);
    }

    #[test]
    fn every_operator_on_each_ordering() {
        // (left, right, =, !=, <, <=, >, >=)
        let rows: &[(&str, &str, [bool; 6])] = &[
            ("1.2.3", "1.2.3", [true, false, false, true, false, true]),
            ("1.2.3", "1.2.4", [false, true, true, true, false, false]),
            ("1.2.4", "1.2.3", [false, true, false, false, true, true]),
            ("1.3.0", "1.2.9", [false, true, false, false, true, true]),
            ("2.0.0", "1.9.9", [false, true, false, false, true, true]),
        ];
        for &(left, right, expected) in rows {
            for (op, want) in ["=", "!=", "<", "<=", ">", ">="].into_iter().zip(expected) {
                check(left, op, right, Some(want));
            }
        }
    }

    #[test]
    fn unknown_operators_are_invalid() {
        for op in [
            "===", "==", "!==", "<>", "=>", "=<", "~>", "^^", " =", "= ", "eq", "", "*",
        ] {
            check("1.0.0", op, "1.0.0", NULL);
        }
    }

    #[test]
    fn same_major_and_same_minor() {
        check_all(&[
            // `^` ignores order, minor, patch and pre-release.
            ("1.0.0", "^", "1.9.9", T),
            ("1.9.9", "^", "1.0.0", T),
            ("1.0.0-alpha", "^", "1.0.0", T),
            ("0.1.0", "^", "0.2.0", T),
            ("0.1.0", "^", "1.1.0", F),
            ("10.0.0", "^", "1.0.0", F),
            ("v2", "^", "2.5.1+build", T),
            // `~` ignores order, patch and pre-release.
            ("1.2.0", "~", "1.2.99", T),
            ("1.2.99", "~", "1.2.0", T),
            ("1.2.0-rc.1", "~", "1.2.3", T),
            ("1.2", "~", "1.2.7", T),
            ("1", "~", "1.0.5", T),
            ("1", "~", "1.1.0", F),
            ("1.2.0", "~", "2.2.0", F),
            ("1.2.0", "~", "1.20.0", F),
        ]);
    }

    #[test]
    fn prefixes() {
        check_all(&[
            ("v1.0.0", "=", "V1.0.0", T),
            ("V1.2", "=", "1.2.0", T),
            ("v1", "=", "1.0.0", T),
            ("vv1.0.0", "=", "1.0.0", NULL),
            ("Vv1.0.0", "=", "1.0.0", NULL),
            ("v", "=", "0.0.0", NULL),
            ("V", "=", "0.0.0", NULL),
            ("x1.0.0", "=", "1.0.0", NULL),
            ("=1.0.0", "=", "1.0.0", NULL),
        ]);
    }

    #[test]
    fn partial_versions() {
        check_all(&[
            ("1", "=", "1.0.0", T),
            ("1.2", "=", "1.2.0", T),
            ("1", "=", "1.0", T),
            ("0", "=", "0.0.0", T),
            ("1", "<", "1.0.1", T),
            ("1.2", ">", "1.1.9", T),
            ("1", ">", "1.0.0-rc.1", T),
            // Shorthands take no pre-release or build suffix.
            ("1-alpha", "=", "1.0.0-alpha", NULL),
            ("1.2-alpha", "=", "1.2.0-alpha", NULL),
            ("1+build", "=", "1.0.0", NULL),
            ("1.2+build", "=", "1.2.0", NULL),
            // Empty parts.
            ("1.", "=", "1.0.0", NULL),
            ("1.2.", "=", "1.2.0", NULL),
            (".1.2", "=", "0.1.2", NULL),
            ("1..2", "=", "1.0.2", NULL),
        ]);
    }

    #[test]
    fn invalid_versions() {
        for version in [
            "",
            " ",
            "2.0.0.0",
            "1.2.3.4.5",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "00.0.0",
            "a.b.c",
            "1.x.0",
            "1.2.x",
            "1.2.3a",
            "-1.0.0",
            "+1.0.0",
            "1.-1.0",
            " 1.0.0",
            "1.0.0 ",
            "1.0.0\n",
            "1.5e3",
            "1e+21",
            "NaN",
            "Infinity",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-+build",
            "1.0.0-alpha.",
            "1.0.0-.alpha",
            "1.0.0-alpha..1",
            "1.0.0-01",
            "1.0.0-alpha.007",
            "1.0.0-al_pha",
            "1.0.0-alpha beta",
            "1.0.0+build.",
            "1.0.0+build..1",
            "1.0.0+a+b",
            "1.0.0+bu!ld",
            "1.0.0-é",
            "１.0.0",
            "1.0.0\u{0}",
        ] {
            check(version, "=", "1.0.0", NULL);
            check("1.0.0", "!=", version, NULL);
        }
    }

    #[test]
    fn prerelease_precedence() {
        // SemVer 2.0.0 §11 example chain, each strictly below the next.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1-0",
            "1.0.1",
        ];
        for (index, lower) in chain.iter().enumerate() {
            for higher in chain.iter().skip(index + 1) {
                check(lower, "<", higher, T);
                check(higher, ">", lower, T);
                check(lower, "!=", higher, T);
                check(lower, ">=", higher, F);
            }
            check(lower, "=", lower, T);
        }
        check_all(&[
            ("2.0.0-alpha", "<", "2.0.0", T),
            ("2.0.0-alpha", "=", "2.0.0", F),
            ("2.0.0-alpha", ">", "1.99.99", T),
            // Numeric identifiers compare numerically, not lexically.
            ("1.0.0-2", "<", "1.0.0-10", T),
            ("1.0.0-rc.9", "<", "1.0.0-rc.10", T),
            // Numeric below alphanumeric, even when the digits "look" bigger.
            ("1.0.0-999", "<", "1.0.0-a", T),
            ("1.0.0-1a", ">", "1.0.0-999", T),
            // Alphanumerics compare by ASCII: uppercase before lowercase, '-' first.
            ("1.0.0-Beta", "<", "1.0.0-alpha", T),
            ("1.0.0--", "<", "1.0.0-0a", T),
            ("1.0.0-a-b", "<", "1.0.0-a.b", F),
            ("1.0.0-alpha-1", ">", "1.0.0-alpha", T),
            // Zero is a valid numeric identifier; hyphens inside are fine.
            ("1.0.0-0", "<", "1.0.0-1", T),
            ("1.0.0-0.3.7", "<", "1.0.0-x.7.z.92", T),
            ("1.0.0-x-y-z.--", "=", "1.0.0-x-y-z.--", T),
            // Equal pre-releases are equal; pre-release set must match exactly.
            ("1.0.0-alpha.1", "=", "1.0.0-alpha.1", T),
            ("1.0.0-alpha.1", "=", "1.0.0-alpha.01a", F),
        ]);
    }

    #[test]
    fn build_metadata_is_ignored() {
        check_all(&[
            ("1.0.0+build", "=", "1.0.0", T),
            ("1.0.0+a", "=", "1.0.0+b", T),
            ("1.0.0+a", "<", "1.0.0+b", F),
            ("1.0.0+b", ">", "1.0.0+a", F),
            ("1.0.0+20130313144700", "=", "1.0.0", T),
            ("1.0.0-beta+exp.sha.5114f85", "=", "1.0.0-beta", T),
            ("1.0.0-beta+exp", "<", "1.0.0+exp", T),
            ("1.0.0+001", "=", "1.0.0", T),
            ("1.0.0+-", "=", "1.0.0", T),
            ("1.0.0+build-1.x", "=", "1.0.0", T),
            ("v1.0.0+build", "=", "V1.0.0+other", T),
        ]);
    }

    #[test]
    fn huge_numbers_compare_without_overflow() {
        let big = "99999999999999999999.0.0";
        let bigger = "100000000000000000000.0.0";
        check_all(&[
            (big, "=", big, T),
            (big, ">", "18446744073709551615.0.0", T),
            (big, "<", bigger, T),
            (bigger, ">", big, T),
            (big, "^", "99999999999999999999.5.1", T),
            (big, "^", "99999999999999999998.0.0", F),
            (
                "1.99999999999999999999999.0",
                "~",
                "1.99999999999999999999999.7",
                T,
            ),
            (
                "1.0.99999999999999999999999",
                ">",
                "1.0.99999999999999999999998",
                T,
            ),
            (
                "1.0.0-99999999999999999999999",
                "<",
                "1.0.0-100000000000000000000000",
                T,
            ),
            ("1.0.0-99999999999999999999999", "<", "1.0.0-a", T),
            ("1.10.0", ">", "1.9.0", T),
            ("1.0.10", ">", "1.0.9", T),
            ("10.0.0", ">", "9.0.0", T),
        ]);
    }

    #[test]
    fn numbers_as_the_engine_stringifies_them() {
        check_all(&[
            ("1", "=", "1.0.0", T),
            ("1.5", "=", "1.5.0", T),
            ("0", "<", "0.0.1", T),
            ("1.10", ">", "1.9", T),
            // JavaScript formatting of non-integral or exotic numbers never
            // yields a valid version.
            ("1.25", ">", "1.2", T),
            ("-1", "<", "1", NULL),
            ("0.000001", "<", "1", NULL),
            ("1e-7", "<", "1", NULL),
            ("1e+21", ">", "1", NULL),
        ]);
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        // Multi-byte characters next to separators must not split a char.
        for version in [
            "é",
            "1.é",
            "1.0.0-é.1",
            "1.0.0+é",
            "vé",
            "Vé",
            "ü1.0.0",
            "1.0.0-\u{1F600}",
            "+",
            "-",
            ".",
            "..",
            "v.",
            "v-",
            "v+",
            "1-",
            "1+",
            "-+",
            "+-",
            "1.0.0-+",
            "1.0.0+-+",
        ] {
            for op in ["=", "^", "~", "<"] {
                check(version, op, "1.0.0", NULL);
                check("1.0.0", op, version, NULL);
            }
        }
    }
}
