//! The windows of multiwindow multi-burn-rate alerting, the SLO period, and
//! the window scale.
//!
//! Recording rules and the status always name a window by its nominal name
//! (`5m`, `1h`, `30d`): `slo:sli_error:ratio_rate5m` stays the 5-minute ratio's
//! name at every scale, so dashboards, alerts and the status endpoint never
//! change with it. A [`WindowScale`] of N divides the time range each
//! recording looks back over (and the period) by N, so an hour of burn fits in
//! a minute of a demo; the ranges are written in Prometheus duration syntax
//! (`5m` / 60 = `5s`).

use std::fmt;

/// One window: its nominal name and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The nominal name, as in `slo:sli_error:ratio_rate<name>`.
    pub name: &'static str,
    /// The nominal length in seconds.
    pub seconds: u64,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The windows the alerts look at, shortest first.
pub const SLI_WINDOWS: [Window; 7] = [
    Window {
        name: "5m",
        seconds: 5 * MINUTE,
    },
    Window {
        name: "30m",
        seconds: 30 * MINUTE,
    },
    Window {
        name: "1h",
        seconds: HOUR,
    },
    Window {
        name: "2h",
        seconds: 2 * HOUR,
    },
    Window {
        name: "6h",
        seconds: 6 * HOUR,
    },
    Window {
        name: "1d",
        seconds: DAY,
    },
    Window {
        name: "3d",
        seconds: 3 * DAY,
    },
];

/// The SLO period the error budget is spent over.
pub const PERIOD: Window = Window {
    name: "30d",
    seconds: 30 * DAY,
};

/// Every window with a recorded error ratio: the alert windows, then the period.
pub fn all_windows() -> impl Iterator<Item = Window> {
    SLI_WINDOWS.into_iter().chain(std::iter::once(PERIOD))
}

/// The shortest range a scaled window may look back over.
const MIN_SCALED_MILLIS: u64 = 1000;

/// How much every window (and the period) is compressed: N divides each.
/// 1 (the default) is real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowScale(u32);

impl Default for WindowScale {
    fn default() -> Self {
        WindowScale::ONE
    }
}

impl fmt::Display for WindowScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl WindowScale {
    /// Real time.
    pub const ONE: WindowScale = WindowScale(1);

    /// The largest scale that keeps every window at least one second long.
    pub const MAX: u32 = (SLI_WINDOWS[0].seconds * 1000 / MIN_SCALED_MILLIS) as u32;

    /// A scale of `divisor`; refused when it is 0 or would make a window
    /// shorter than one second.
    pub fn new(divisor: u32) -> Result<WindowScale, String> {
        if divisor == 0 {
            return Err("the window scale must be at least 1".to_owned());
        }
        let scale = WindowScale(divisor);
        let shortest = SLI_WINDOWS[0];
        let millis = scale.millis(shortest);
        if millis < MIN_SCALED_MILLIS {
            return Err(format!(
                "a window scale of {divisor} makes the {} window {millis}ms; every window must \
                 stay at least 1s long (the largest scale is {})",
                shortest.name,
                WindowScale::MAX
            ));
        }
        Ok(scale)
    }

    /// Parses a scale given as text (a command-line option).
    pub fn parse(text: &str) -> Result<WindowScale, String> {
        let divisor = text.trim().parse::<u32>().map_err(|_| {
            format!(
                "the window scale \"{text}\" is not a whole number from 1 to {}",
                Self::MAX
            )
        })?;
        WindowScale::new(divisor)
    }

    /// The divisor.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The scaled length of `window` in milliseconds (rounded down).
    pub fn millis(self, window: Window) -> u64 {
        window.seconds * 1000 / u64::from(self.0)
    }

    /// The scaled range of `window` in Prometheus duration syntax.
    pub fn range(self, window: Window) -> String {
        prometheus_duration(self.millis(window))
    }
}

/// `millis` in Prometheus duration syntax, largest units first, e.g. `1h12m`,
/// `42s857ms`; `0ms` for zero.
pub fn prometheus_duration(millis: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("d", DAY * 1000),
        ("h", HOUR * 1000),
        ("m", MINUTE * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    if millis == 0 {
        return "0ms".to_owned();
    }
    let mut rest = millis;
    let mut text = String::new();
    for (unit, size) in UNITS {
        let count = rest / size;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
            rest -= count * size;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_use_the_largest_units() {
        assert_eq!(prometheus_duration(300_000), "5m");
        assert_eq!(prometheus_duration(5_000), "5s");
        assert_eq!(prometheus_duration(86_400_000), "1d");
        assert_eq!(prometheus_duration(4_320_000), "1h12m");
        assert_eq!(prometheus_duration(42_857), "42s857ms");
        assert_eq!(prometheus_duration(0), "0ms");
    }

    #[test]
    fn scale_one_keeps_the_nominal_windows() {
        for window in all_windows() {
            assert_eq!(WindowScale::ONE.range(window), window.name);
        }
    }

    #[test]
    fn a_scale_divides_every_window_and_the_period() {
        let scale = WindowScale::new(60).unwrap();
        let ranges: Vec<String> = all_windows().map(|w| scale.range(w)).collect();
        assert_eq!(
            ranges,
            ["5s", "30s", "1m", "2m", "6m", "24m", "1h12m", "12h"]
        );
    }

    #[test]
    fn scales_that_shrink_a_window_below_a_second_are_refused() {
        assert_eq!(WindowScale::MAX, 300);
        assert!(WindowScale::new(300).is_ok());
        let error = WindowScale::new(301).unwrap_err();
        assert!(error.contains("5m window 996ms"), "{error}");
        assert!(WindowScale::new(0).is_err());
        assert!(WindowScale::parse("sixty").is_err());
        assert!(WindowScale::parse("-1").is_err());
        assert_eq!(
            WindowScale::parse(" 7 ").unwrap().range(SLI_WINDOWS[0]),
            "42s857ms"
        );
    }
}
