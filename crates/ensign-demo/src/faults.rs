//! Deterministic fault schedules: a rate of 0.25 makes exactly one request in
//! four fail, evenly spread, so tests and demos see the configured rate without
//! randomness.

use std::sync::atomic::{AtomicU64, Ordering};

/// Picks which requests get a fault so that, after `n` requests, exactly
/// `floor(n × rate)` of them got one.
#[derive(Debug)]
pub struct FaultSchedule {
    rate: f64,
    seen: AtomicU64,
}

impl FaultSchedule {
    /// A schedule for `rate` (clamped to 0..=1; NaN counts as 0).
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        Self {
            rate,
            seen: AtomicU64::new(0),
        }
    }

    /// The rate this schedule keeps.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether the next request gets the fault.
    pub fn next(&self) -> bool {
        let index = self.seen.fetch_add(1, Ordering::Relaxed);
        // Counts up to 2^53 are exact in f64, far beyond any demo run.
        let before = (index as f64 * self.rate).floor();
        let after = ((index + 1) as f64 * self.rate).floor();
        after > before
    }
}

#[cfg(test)]
mod tests {
    use super::FaultSchedule;

    fn faults_in(schedule: &FaultSchedule, requests: usize) -> usize {
        (0..requests).filter(|_| schedule.next()).count()
    }

    #[test]
    fn gives_exactly_the_rate_over_whole_periods() {
        assert_eq!(faults_in(&FaultSchedule::new(0.25), 400), 100);
        assert_eq!(faults_in(&FaultSchedule::new(0.5), 10), 5);
        assert_eq!(faults_in(&FaultSchedule::new(0.1), 1000), 100);
    }

    #[test]
    fn zero_and_one_are_never_and_always() {
        assert_eq!(faults_in(&FaultSchedule::new(0.0), 100), 0);
        assert_eq!(faults_in(&FaultSchedule::new(1.0), 100), 100);
    }

    #[test]
    fn out_of_range_rates_are_clamped() {
        assert_eq!(FaultSchedule::new(7.0).rate(), 1.0);
        assert_eq!(FaultSchedule::new(-1.0).rate(), 0.0);
        assert_eq!(FaultSchedule::new(f64::NAN).rate(), 0.0);
    }

    #[test]
    fn faults_are_spread_evenly() {
        let schedule = FaultSchedule::new(0.5);
        let pattern: Vec<bool> = (0..6).map(|_| schedule.next()).collect();
        assert_eq!(pattern, [false, true, false, true, false, true]);
    }
}
