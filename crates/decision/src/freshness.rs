//! The freeze defence (invariant 6): a node answers decisions only while it
//! has evidence, younger than `max_staleness`, that it is current. A leader's
//! evidence is its last quorum acknowledgement; a follower's or learner's is
//! the moment its leader last heard from a quorum, as carried on each
//! AppendEntries (arrival time minus the leader's quorum-ack age).
//!
//! Evidence counts only once this node has applied everything that was
//! committed when the evidence was given: a node that hears from its leader
//! but is still catching up (after a restart, or compiling a backlog) is not
//! current, and stays stale until its state machine reaches that point.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Milliseconds after `base`; evidence may predate `base` (negative).
const NO_EVIDENCE: i64 = i64::MIN;
/// Evidence waiting for the state machine to catch up. Newer evidence makes
/// older evidence useless, so only the latest few are kept.
const MAX_WAITING: usize = 64;

pub struct Freshness {
    base: Instant,
    max_staleness: Duration,
    /// When the freshest usable evidence was true, or NO_EVIDENCE.
    evidence_ms: AtomicI64,
    /// The state machine's position: applied log index + 1, 0 before any.
    applied: AtomicU64,
    /// `(evidence_ms, commit index + 1)` pairs not yet applied up to.
    waiting: Mutex<VecDeque<(i64, u64)>>,
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
            evidence_ms: AtomicI64::new(NO_EVIDENCE),
            applied: AtomicU64::new(0),
            waiting: Mutex::new(VecDeque::new()),
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.base.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Records evidence of being current as of `age` ago, usable once this
    /// node has applied the log up to `commit` (the leader's commit index
    /// when it gave the evidence; `None` when nothing was committed). A
    /// leader's own evidence.
    ///
    /// The age and commit may come from a peer: evidence older than
    /// `max_staleness` is no evidence at all, and nothing here can wrap,
    /// whatever numbers the peer sends.
    pub fn note(&self, age: Duration, commit: Option<u64>) {
        if let Some(at) = self.ago(age) {
            self.note_at(at, commit);
        }
    }

    /// A follower's evidence: as [`Freshness::note`], but no fresher than
    /// `echoed_ms` on this node's own clock ([`Freshness::clock_ms`]), the
    /// moment it sent a reply its leader had received before the quorum
    /// ack that `age` measures. A message held up in the network carries an
    /// old echo, and so old evidence, however small its age. An echo from
    /// this node's future is no evidence.
    pub fn note_echoed(&self, age: Duration, echoed_ms: u64, commit: Option<u64>) {
        let (Some(at), Ok(echoed)) = (self.ago(age), i64::try_from(echoed_ms)) else {
            return;
        };
        if echoed > self.now_ms() {
            return;
        }
        self.note_at(at.min(echoed), commit);
    }

    /// This node's freshness clock: milliseconds since it started.
    pub fn clock_ms(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0)
    }

    /// The moment `age` ago on this node's clock; `None` past the bound.
    fn ago(&self, age: Duration) -> Option<i64> {
        if age > self.max_staleness {
            return None;
        }
        let age_ms = i64::try_from(age.as_millis()).ok()?;
        Some(self.now_ms().saturating_sub(age_ms))
    }

    fn note_at(&self, at: i64, commit: Option<u64>) {
        let needed = commit.map_or(0, |index| index.saturating_add(1));
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if needed <= self.applied.load(Ordering::Acquire) {
            self.record(at);
        } else {
            if waiting.len() == MAX_WAITING {
                waiting.pop_front();
            }
            waiting.push_back((at, needed));
        }
    }

    /// The state machine has applied the log up to `index`: evidence that
    /// was waiting for it now counts.
    pub fn applied(&self, index: u64) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let position = index.saturating_add(1);
        self.applied.fetch_max(position, Ordering::AcqRel);
        let mut newest = None;
        waiting.retain(|&(at, needed)| {
            if needed <= position {
                newest = newest.max(Some(at));
                false
            } else {
                true
            }
        });
        if let Some(at) = newest {
            self.record(at);
        }
    }

    fn record(&self, at: i64) {
        self.evidence_ms.fetch_max(at, Ordering::AcqRel);
    }

    /// How old the freshest usable evidence is.
    pub fn age(&self) -> Option<Duration> {
        let at = self.evidence_ms.load(Ordering::Acquire);
        (at != NO_EVIDENCE).then(|| {
            Duration::from_millis(u64::try_from(self.now_ms().saturating_sub(at)).unwrap_or(0))
        })
    }

    /// `Ok` while the evidence is younger than the bound.
    pub fn check(&self) -> Result<(), Stale> {
        #[cfg(stele_sim)]
        if stele_ledger::defects::active(stele_ledger::defects::Defect::ServeStale) {
            return Ok(());
        }
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

    fn advance(ms: u64) -> impl Future<Output = ()> {
        tokio::time::advance(Duration::from_millis(ms))
    }

    #[tokio::test(start_paused = true)]
    async fn evidence_ages_out_after_the_bound() {
        let freshness = Freshness::new(Duration::from_secs(5));
        assert_eq!(freshness.check().unwrap_err().age, None);
        advance(1_000).await;
        freshness.note(Duration::from_millis(200), None);
        assert!(freshness.check().is_ok());
        advance(4_700).await;
        assert!(freshness.check().is_ok());
        advance(200).await;
        let stale = freshness.check().unwrap_err();
        assert_eq!(stale.age, Some(Duration::from_millis(5_100)));
    }

    #[tokio::test(start_paused = true)]
    async fn evidence_older_than_the_node_keeps_its_age() {
        let freshness = Freshness::new(Duration::from_secs(5));
        advance(500).await;
        freshness.note(Duration::from_millis(4_900), None);
        assert_eq!(freshness.age(), Some(Duration::from_millis(4_900)));
        advance(200).await;
        assert!(freshness.check().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_age_over_the_bound_or_near_u64_max_is_no_evidence() {
        let freshness = Freshness::new(Duration::from_secs(5));
        advance(10_000).await;
        freshness.note(Duration::from_millis(u64::MAX - 3_600_000), Some(u64::MAX));
        freshness.note(Duration::from_millis(5_001), None);
        assert_eq!(freshness.age(), None);
        // Real evidence still counts at once: nothing was recorded in the future.
        freshness.note(Duration::from_millis(100), None);
        assert_eq!(freshness.age(), Some(Duration::from_millis(100)));
        assert!(freshness.check().is_ok());
        freshness.applied(u64::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_message_brings_evidence_no_fresher_than_its_echo() {
        let freshness = Freshness::new(Duration::from_secs(5));
        advance(1_000).await;
        let sent = freshness.clock_ms();
        // Held in the network for 4 s, then delivered with a small age.
        advance(4_000).await;
        freshness.note_echoed(Duration::from_millis(100), sent, None);
        assert_eq!(freshness.age(), Some(Duration::from_secs(4)));
        // An echo from the future is no evidence.
        freshness.note_echoed(Duration::ZERO, freshness.clock_ms() + 1_000, None);
        assert_eq!(freshness.age(), Some(Duration::from_secs(4)));
        // A fresh round trip: fresh evidence.
        let sent = freshness.clock_ms();
        advance(30).await;
        freshness.note_echoed(Duration::from_millis(10), sent, None);
        assert_eq!(freshness.age(), Some(Duration::from_millis(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn older_evidence_never_replaces_newer() {
        let freshness = Freshness::new(Duration::from_secs(5));
        advance(10_000).await;
        freshness.note(Duration::from_secs(1), None);
        freshness.note(Duration::from_secs(4), None);
        assert_eq!(freshness.age(), Some(Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_behind_its_leaders_commit_is_not_current_until_it_applies() {
        let freshness = Freshness::new(Duration::from_secs(5));
        freshness.applied(10);
        freshness.note(Duration::ZERO, Some(40));
        assert_eq!(freshness.check().unwrap_err().age, None);
        freshness.applied(39);
        assert!(freshness.check().is_err());
        advance(300).await;
        freshness.applied(40);
        assert_eq!(freshness.age(), Some(Duration::from_millis(300)));
        freshness.note(Duration::ZERO, Some(40));
        assert_eq!(freshness.age(), Some(Duration::ZERO));
    }
}
