//! The freeze defence (invariant 6): a node answers decisions only while it
//! has evidence, younger than `max_staleness`, that it is current. A leader's
//! evidence is its last quorum acknowledgement; a follower's or learner's is
//! the moment its leader last heard from a quorum, as carried on each
//! AppendEntries (arrival time minus the leader's quorum-ack age).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

const NO_EVIDENCE: u64 = u64::MAX;

pub struct Freshness {
    base: Instant,
    max_staleness: Duration,
    /// Milliseconds after `base` of the freshest evidence, or NO_EVIDENCE.
    evidence_ms: AtomicU64,
}

/// Why a node cannot show it is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale {
    /// How old the freshest evidence is; `None` when there never was any.
    pub age: Option<Duration>,
    pub max_staleness: Duration,
}

impl Freshness {
    pub fn new(max_staleness: Duration) -> Freshness {
        Freshness {
            base: Instant::now(),
            max_staleness,
            evidence_ms: AtomicU64::new(NO_EVIDENCE),
        }
    }

    pub fn max_staleness(&self) -> Duration {
        self.max_staleness
    }

    /// Records evidence of being current as of `age` ago.
    pub fn note(&self, age: Duration) {
        let now = self.base.elapsed();
        let at = now.saturating_sub(age).as_millis() as u64;
        let mut current = self.evidence_ms.load(Ordering::Relaxed);
        while current == NO_EVIDENCE || at > current {
            match self.evidence_ms.compare_exchange_weak(
                current,
                at,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
    }

    /// How old the freshest evidence is.
    pub fn age(&self) -> Option<Duration> {
        let at = self.evidence_ms.load(Ordering::Relaxed);
        (at != NO_EVIDENCE).then(|| {
            self.base
                .elapsed()
                .saturating_sub(Duration::from_millis(at))
        })
    }

    /// `Ok` while the evidence is younger than the bound.
    pub fn check(&self) -> Result<(), Stale> {
        match self.age() {
            Some(age) if age <= self.max_staleness => Ok(()),
            age => Err(Stale {
                age,
                max_staleness: self.max_staleness,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn evidence_ages_out_after_the_bound() {
        let freshness = Freshness::new(Duration::from_secs(5));
        assert_eq!(freshness.check().unwrap_err().age, None);
        tokio::time::advance(Duration::from_secs(1)).await;
        freshness.note(Duration::from_millis(200));
        assert!(freshness.check().is_ok());
        tokio::time::advance(Duration::from_millis(4_700)).await;
        assert!(freshness.check().is_ok());
        tokio::time::advance(Duration::from_millis(200)).await;
        let stale = freshness.check().unwrap_err();
        assert_eq!(stale.age, Some(Duration::from_millis(5_100)));
    }

    #[tokio::test(start_paused = true)]
    async fn older_evidence_never_replaces_newer() {
        let freshness = Freshness::new(Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(10)).await;
        freshness.note(Duration::from_secs(1));
        freshness.note(Duration::from_secs(4));
        assert_eq!(freshness.age(), Some(Duration::from_secs(1)));
    }
}
