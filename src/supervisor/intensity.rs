//! The restart-intensity window: a pure state machine, no clock of its own.
//!
//! A supervisor may restart its children at most `max_restarts` times within
//! any window of `max_seconds`; one restart more and it gives up (OTP's
//! `intensity` and `period`). The window keeps the instants of at most
//! `max_restarts` recent restarts in a ring buffer, so recording a restart
//! costs the same after ten restarts or ten million: Erlang's supervisor walks
//! its whole restart history instead.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Restart instants within the current window, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Intensity {
    max_restarts: usize,
    period: Duration,
    recent: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max_restarts: u32, period: Duration) -> Self {
        let max_restarts = max_restarts as usize;
        Intensity {
            max_restarts,
            period,
            // Never more than `max_restarts` entries; cap the upfront
            // allocation for huge limits.
            recent: VecDeque::with_capacity(max_restarts.min(1024)),
        }
    }

    /// Records a restart at `now`; returns `false` if it is one too many:
    /// `max_restarts` restarts already happened in the `period` before `now`
    /// (a restart at `t` counts while `now - t < period`).
    pub(crate) fn record(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= self.max_restarts {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// How many recorded restarts are still inside the window at `now`.
    pub(crate) fn used(&self, now: Instant) -> usize {
        self.recent
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.period)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, checked the slow way: count every earlier accepted
    /// restart that is still inside the window.
    fn model(max: usize, period: Duration, times: &[Instant]) -> Vec<bool> {
        let mut accepted: Vec<Instant> = Vec::new();
        let mut out = Vec::new();
        for &now in times {
            let inside = accepted
                .iter()
                .filter(|&&t| now.saturating_duration_since(t) < period)
                .count();
            let ok = inside < max;
            if ok {
                accepted.push(now);
            }
            out.push(ok);
        }
        out
    }

    proptest! {
        #[test]
        fn ring_buffer_agrees_with_the_definition(
            max in 0u32..6,
            period_ms in 1u64..50,
            gaps in proptest::collection::vec(0u64..30, 0..60),
        ) {
            let start = Instant::now();
            let mut now = start;
            let times: Vec<Instant> = gaps
                .iter()
                .map(|g| { now += Duration::from_millis(*g); now })
                .collect();
            let period = Duration::from_millis(period_ms);
            let mut window = Intensity::new(max, period);
            let got: Vec<bool> = times.iter().map(|t| window.record(*t)).collect();
            prop_assert_eq!(got, model(max as usize, period, &times));
            prop_assert!(window.recent.len() <= max as usize);
        }
    }

    #[test]
    fn trips_at_max_restarts_plus_one_within_the_window() {
        let t = Instant::now();
        let mut w = Intensity::new(3, Duration::from_secs(5));
        assert!(w.record(t));
        assert!(w.record(t));
        assert!(w.record(t));
        assert!(!w.record(t + Duration::from_secs(4)));
        assert_eq!(w.used(t + Duration::from_secs(4)), 3);
        assert!(w.record(t + Duration::from_secs(5)));
        assert_eq!(w.used(t + Duration::from_secs(5)), 1);
    }

    #[test]
    fn zero_restarts_allowed_trips_at_once() {
        let mut w = Intensity::new(0, Duration::from_secs(5));
        assert!(!w.record(Instant::now()));
    }
}
