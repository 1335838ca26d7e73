//! What a simulation saw: every event in order (the trace, hashed into the
//! digest that makes a run reproducible), the commits clients were told of,
//! the decisions nodes answered, and the versions adversaries built.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use stele_ledger::Hash;

/// A commit a client was told of (`committed` or `already_committed`).
#[derive(Clone, Debug)]
pub struct Commit {
    pub at_ms: u64,
    pub seq: u64,
    pub hash: Hash,
}

/// One decision request the probes send.
#[derive(Clone, Debug)]
pub struct Probe {
    pub principal: &'static str,
    pub action: &'static str,
    pub level: i64,
}

/// What a node answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Served {
        seq: u64,
        hash: String,
        /// The id the node gave the decision (its log record's).
        decision_id: String,
        allow: bool,
        reasons: Vec<String>,
        errors: Vec<String>,
    },
    /// Refused because the node could not show it is current.
    Stale,
    /// No answer (down, cut off, no policy yet, timed out).
    Failed,
}

#[derive(Clone, Debug)]
pub struct Decision {
    pub node: u64,
    pub at_ms: u64,
    pub probe: Probe,
    pub answer: Answer,
}

#[derive(Default)]
pub struct History {
    trace: Vec<String>,
    pub commits: Vec<Commit>,
    pub decisions: Vec<Decision>,
    /// Versions built by adversaries, which must never be admitted.
    pub adversarial: BTreeMap<Hash, &'static str>,
    /// The cluster's members once it converged after healing.
    pub final_members: Vec<u64>,
    /// Raft's membership after healing (node id, voter), as the node that
    /// took the last write reports it: it must be the last committed
    /// member set.
    pub raft_members: Option<std::collections::BTreeMap<u64, bool>>,
    /// Violations seen as the run went, besides the checks at the end.
    pub live: Vec<crate::checkers::Violation>,
    /// A liveness failure after healing, if any.
    pub stuck: Option<String>,
    /// How many operations of each kind ran (and how they ended).
    pub tally: BTreeMap<String, u64>,
}

impl History {
    pub fn event(&mut self, at_ms: u64, text: impl AsRef<str>) {
        self.trace.push(format!("{at_ms} {}", text.as_ref()));
    }

    pub fn count(&mut self, what: impl Into<String>) {
        *self.tally.entry(what.into()).or_default() += 1;
    }

    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// SHA-256 of the trace: equal digests, equal runs.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for line in &self.trace {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }
}

/// The history, shared by the simulated clients and the driver.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<History>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, History> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self, what: impl Into<String>) {
        self.lock().count(what);
    }

    /// Records a violation seen during the run, that the checks at the end
    /// could not see (also kept for the panic hook, see [`live_violation`]).
    pub fn violation(&self, invariant: &'static str, detail: String) {
        live_violation(format!("invariant {invariant}: {detail}"));
        self.lock()
            .live
            .push(crate::checkers::Violation { invariant, detail });
    }

    /// Records an event at the current host's simulated time.
    pub fn event(&self, text: impl AsRef<str>) {
        self.lock().event(now_ms(), text);
    }
}

std::thread_local! {
    /// Violations seen while the run goes on, kept outside the history so
    /// that they can still be reported if a node's panic aborts the run.
    static LIVE: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records a violation seen during the run, for the panic hook: a panic in
/// a node ends the run before the checkers do.
pub fn live_violation(text: String) {
    LIVE.with(|live| live.borrow_mut().push(text));
}

/// Takes the violations seen during the run so far.
pub fn take_live_violations() -> Vec<String> {
    LIVE.with(|live| std::mem::take(&mut *live.borrow_mut()))
}

/// The simulated time of the host running this code, in milliseconds.
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}
