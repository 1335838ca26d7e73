//! What the decision path counts: decisions by outcome and how long
//! evaluating them took. Plain atomics, a few relaxed adds per decision;
//! the node renders them for Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stele_policy::Outcome;

/// Upper bounds of the decision latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3, 250e-3,
];

#[derive(Default)]
pub struct DecisionCounters {
    allowed: AtomicU64,
    denied: AtomicU64,
    /// Requests that could not be evaluated (bad input).
    invalid: AtomicU64,
    /// Decisions not answered: no policy, stale, behind a minimum version,
    /// decision log unavailable.
    refused: AtomicU64,
    /// Per bucket of `LATENCY_BUCKETS`, then the overflow bucket.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_nanos: AtomicU64,
}

/// The counters as read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub allowed: u64,
    pub denied: u64,
    pub invalid: u64,
    pub refused: u64,
    /// Decisions per latency bucket (not cumulative), the overflow last.
    pub latency_buckets: [u64; LATENCY_BUCKETS.len() + 1],
    pub latency_sum: Duration,
}

impl DecisionCounters {
    /// One evaluated decision and how long evaluating it took.
    pub(crate) fn decided(&self, outcome: Outcome, took: Duration) {
        match outcome {
            Outcome::Allow => &self.allowed,
            Outcome::Deny => &self.denied,
        }
        .fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn invalid(&self) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, decisions: u64) {
        self.refused.fetch_add(decisions, Ordering::Relaxed);
    }

    pub fn read(&self) -> Counted {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counted {
            allowed: load(&self.allowed),
            denied: load(&self.denied),
            invalid: load(&self.invalid),
            refused: load(&self.refused),
            latency_buckets: std::array::from_fn(|i| load(&self.latency_buckets[i])),
            latency_sum: Duration::from_nanos(load(&self.latency_sum_nanos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_fall_in_their_latency_bucket() {
        let counters = DecisionCounters::default();
        counters.decided(Outcome::Allow, Duration::from_micros(3));
        counters.decided(Outcome::Deny, Duration::from_micros(30));
        counters.decided(Outcome::Deny, Duration::from_secs(1));
        counters.invalid();
        counters.refused(5);
        let counted = counters.read();
        assert_eq!(
            (
                counted.allowed,
                counted.denied,
                counted.invalid,
                counted.refused
            ),
            (1, 2, 1, 5)
        );
        assert_eq!(counted.latency_buckets[0], 1, "3 µs is under 5 µs");
        assert_eq!(counted.latency_buckets[3], 1, "30 µs is under 50 µs");
        assert_eq!(counted.latency_buckets[LATENCY_BUCKETS.len()], 1);
        assert_eq!(
            counted.latency_sum,
            Duration::from_micros(1_000_033),
            "{counted:?}"
        );
    }
}
