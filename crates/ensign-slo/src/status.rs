//! An SLO's status from its error ratio per window, judged exactly as the
//! generated alerts judge it.
//!
//! Burn rate per window = error ratio / error budget. Then, first match wins:
//!
//! 1. `no-data`: no window has a ratio (no series, or no traffic: 0/0 is NaN);
//! 2. `critical`: a page condition holds (1h and 5m above 14.4, or 6h and
//!    30m above 6);
//! 3. `exhausted`: the budget left over the period is ≤ 0;
//! 4. `warning`: a ticket condition holds (1d and 2h above 3, or 3d and 6h
//!    above 1);
//! 5. `ok`.
//!
//! A window without a ratio satisfies no condition. `unreachable` is never
//! computed here: the server reports it when Prometheus cannot answer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::rules::{AlertSeverity, BURN_RATE_ALERTS};
use crate::spec::round;
use crate::window::{PERIOD, Window, all_windows};

/// What an SLO's status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Burning within budget.
    Ok,
    /// A ticket condition holds: slow burn.
    Warning,
    /// A page condition holds: fast burn.
    Critical,
    /// The period's error budget is spent.
    Exhausted,
    /// No window has data.
    NoData,
    /// The metrics could not be read (set by the server, never by [`assess`]).
    Unreachable,
}

impl Status {
    /// The status as it appears on the wire (`no-data`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Exhausted => "exhausted",
            Status::NoData => "no-data",
            Status::Unreachable => "unreachable",
        }
    }
}

/// Error ratios (0 to 1) by nominal window name (`5m` … `3d`, `30d`).
/// Values that are not finite (NaN from 0/0) count as missing.
pub type ErrorRatios = BTreeMap<String, f64>;

/// Burn rate per window, every window listed (shortest first, the period
/// last) with `null` where there is no data.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnRates(Vec<(Window, Option<f64>)>);

impl BurnRates {
    /// The burn rate over the window named `name`, if it had data.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(window, _)| window.name == name)
            .and_then(|(_, rate)| *rate)
    }

    fn above(&self, window: Window, factor: f64) -> bool {
        self.get(window.name).is_some_and(|rate| rate > factor)
    }
}

impl Serialize for BurnRates {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (window, rate) in &self.0 {
            map.serialize_entry(window.name, rate)?;
        }
        map.end()
    }
}

/// The judgement of one SLO.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// The status.
    pub status: Status,
    /// Burn rate per window.
    pub burn_rates: BurnRates,
    /// The share of the period's budget left (1 untouched, ≤ 0 spent), if
    /// the period ratio is known.
    pub error_budget_remaining: Option<f64>,
}

/// Judges an SLO with error budget `budget` (0.001 for 99.9 %) from its error
/// ratios.
pub fn assess(budget: f64, ratios: &ErrorRatios) -> Assessment {
    let burn_rates = BurnRates(
        all_windows()
            .map(|window| {
                let rate = ratios
                    .get(window.name)
                    .copied()
                    .filter(|ratio| ratio.is_finite())
                    .map(|ratio| round(ratio / budget))
                    .filter(|rate| rate.is_finite());
                (window, rate)
            })
            .collect(),
    );
    let error_budget_remaining = burn_rates.get(PERIOD.name).map(|rate| round(1.0 - rate));
    let holds = |severity: AlertSeverity| {
        BURN_RATE_ALERTS
            .iter()
            .filter(|condition| condition.severity == severity)
            .any(|condition| {
                burn_rates.above(condition.short, condition.factor)
                    && burn_rates.above(condition.long, condition.factor)
            })
    };
    let status = if burn_rates.0.iter().all(|(_, rate)| rate.is_none()) {
        Status::NoData
    } else if holds(AlertSeverity::Page) {
        Status::Critical
    } else if error_budget_remaining.is_some_and(|left| left <= 0.0) {
        Status::Exhausted
    } else if holds(AlertSeverity::Ticket) {
        Status::Warning
    } else {
        Status::Ok
    };
    Assessment {
        status,
        burn_rates,
        error_budget_remaining,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const BUDGET: f64 = 0.001;

    /// Ratios from burn rates per window.
    fn ratios(burns: &[(&str, f64)]) -> ErrorRatios {
        burns
            .iter()
            .map(|(window, burn)| ((*window).to_owned(), burn * BUDGET))
            .collect()
    }

    fn status(burns: &[(&str, f64)]) -> Status {
        assess(BUDGET, &ratios(burns)).status
    }

    #[test]
    fn no_series_or_no_traffic_is_no_data() {
        assert_eq!(assess(BUDGET, &ErrorRatios::new()).status, Status::NoData);
        let nan: ErrorRatios = [("5m".to_owned(), f64::NAN), ("1h".to_owned(), f64::NAN)]
            .into_iter()
            .collect();
        let assessment = assess(BUDGET, &nan);
        assert_eq!(assessment.status, Status::NoData);
        assert_eq!(assessment.burn_rates.get("5m"), None);
    }

    #[test]
    fn page_conditions_are_critical_when_both_windows_burn() {
        assert_eq!(status(&[("5m", 15.0), ("1h", 14.5)]), Status::Critical);
        assert_eq!(status(&[("30m", 7.0), ("6h", 6.5)]), Status::Critical);
        // One window alone is not enough: the short one says it has stopped,
        // or the long one says too little budget went.
        assert_eq!(status(&[("5m", 15.0), ("1h", 10.0)]), Status::Ok);
        assert_eq!(status(&[("5m", 2.0), ("1h", 20.0)]), Status::Ok);
        assert_eq!(status(&[("5m", 14.4), ("1h", 14.4)]), Status::Ok);
    }

    #[test]
    fn ticket_conditions_are_warnings() {
        assert_eq!(status(&[("2h", 3.5), ("1d", 3.1)]), Status::Warning);
        assert_eq!(status(&[("6h", 1.2), ("3d", 1.1)]), Status::Warning);
        assert_eq!(status(&[("6h", 1.2), ("3d", 0.9)]), Status::Ok);
        // A missing window satisfies nothing.
        assert_eq!(status(&[("6h", 2.0)]), Status::Ok);
    }

    #[test]
    fn a_spent_budget_is_exhausted_unless_it_burns_fast() {
        let spent = [("5m", 0.5), ("30d", 1.0)];
        let assessment = assess(BUDGET, &ratios(&spent));
        assert_eq!(assessment.status, Status::Exhausted);
        assert_eq!(assessment.error_budget_remaining, Some(0.0));
        assert_eq!(
            status(&[("5m", 20.0), ("1h", 20.0), ("30d", 2.0)]),
            Status::Critical
        );
        assert_eq!(
            status(&[("2h", 4.0), ("1d", 4.0), ("30d", 1.5)]),
            Status::Exhausted
        );
    }

    #[test]
    fn the_assessment_serializes_every_window_in_order() {
        let assessment = assess(BUDGET, &ratios(&[("5m", 0.5), ("30d", 0.25)]));
        let json = serde_json::to_string(&assessment).unwrap();
        assert_eq!(
            json,
            "{\"status\":\"ok\",\"burnRates\":{\"5m\":0.5,\"30m\":null,\"1h\":null,\"2h\":null,\
             \"6h\":null,\"1d\":null,\"3d\":null,\"30d\":0.25},\"errorBudgetRemaining\":0.75}"
        );
        assert_eq!(
            serde_json::to_value(Status::NoData).unwrap(),
            serde_json::json!("no-data")
        );
        assert_eq!(Status::Unreachable.as_str(), "unreachable");
    }
}
