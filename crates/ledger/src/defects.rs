//! Deliberate defects for checking the simulator's checkers: compiled only
//! into simulation builds (`--cfg stele_sim`, see `scripts/sim`), never into
//! the product, and switched on per thread (turmoil runs a whole simulated
//! cluster on one thread, so concurrent simulations do not interfere).

use std::cell::Cell;

/// A defect `stele-sim --bug NAME` can switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// Admission ignores the parent hash (invariant 2: `parent_hash =
    /// head.hash`).
    SkipParentCheck,
    /// M-of-N counts signatures, not distinct keys, and an approval by a key
    /// that already signed is kept (invariant 2: M distinct approvers).
    DoubleCountSigner,
    /// A node answers decisions however old its evidence of being current
    /// (invariant 6: stale nodes fail closed).
    ServeStale,
    /// A node installs any verified snapshot, even one that does not extend
    /// its chain (invariant 4: no rollback by snapshot).
    SnapshotRegress,
    /// The decision log records a decision under the version before the one
    /// that made it (invariant 5: the record names the version that made
    /// the decision).
    LogWrongVersion,
    /// The leader never makes Raft's membership follow the member set the
    /// ledger committed (membership follows only signed versions).
    IgnoreMemberSet,
}

impl Defect {
    pub const ALL: [Defect; 6] = [
        Defect::SkipParentCheck,
        Defect::DoubleCountSigner,
        Defect::ServeStale,
        Defect::SnapshotRegress,
        Defect::LogWrongVersion,
        Defect::IgnoreMemberSet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::SkipParentCheck => "skip-parent-check",
            Defect::DoubleCountSigner => "double-count-signer",
            Defect::ServeStale => "serve-stale",
            Defect::SnapshotRegress => "snapshot-regress",
            Defect::LogWrongVersion => "log-wrong-version",
            Defect::IgnoreMemberSet => "ignore-member-set",
        }
    }

    pub fn parse(name: &str) -> Option<Defect> {
        Defect::ALL.into_iter().find(|d| d.name() == name)
    }
}

thread_local! {
    static ACTIVE: Cell<Option<Defect>> = const { Cell::new(None) };
}

/// Switches `defect` on for this thread (`None`: the code as shipped).
pub fn activate(defect: Option<Defect>) {
    ACTIVE.with(|active| active.set(defect));
}

/// Whether `defect` is on for this thread.
pub fn active(defect: Defect) -> bool {
    ACTIVE.with(|active| active.get()) == Some(defect)
}
