//! What the state machine publishes for the rest of the node: a read view of
//! the machine (for reads and leader pre-checks) and the compiled snapshot
//! decisions are answered from. Readers never lock: one atomic load each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use stele_ledger::Head;
use stele_policy::Snapshot;
use tokio::sync::watch;

use crate::machine::Machine;

/// The newest committed version, compiled.
pub struct Served {
    pub head: Head,
    /// `head.hash` in hex, as every decision prints it.
    pub hash_hex: String,
    pub snapshot: Arc<Snapshot>,
}

impl Served {
    pub fn new(head: Head, snapshot: Arc<Snapshot>) -> Served {
        Served {
            head,
            hash_hex: head.hash.to_hex(),
            snapshot,
        }
    }
}

/// The served version as loaded: held by one reader, without a lock.
pub type ServedGuard = Guard<Option<Arc<Served>>>;

pub struct Published {
    machine: ArcSwap<Machine>,
    served: ArcSwapOption<Served>,
    served_head: watch::Sender<Option<Head>>,
    /// Pending proposals from the store or a snapshot that did not verify.
    dropped_pending: AtomicU64,
}

impl Published {
    pub fn new() -> Arc<Published> {
        Arc::new(Published {
            machine: ArcSwap::from_pointee(Machine::default()),
            served: ArcSwapOption::empty(),
            served_head: watch::channel(None).0,
            dropped_pending: AtomicU64::new(0),
        })
    }

    /// The machine as of the last applied entry.
    pub fn machine(&self) -> Arc<Machine> {
        self.machine.load_full()
    }

    /// The snapshot decisions use now (the hot path: no lock, no refcount).
    pub fn served(&self) -> ServedGuard {
        self.served.load()
    }

    /// Changes of the served head, for waiters (`min_version`, `WatchHead`).
    pub fn watch_served(&self) -> watch::Receiver<Option<Head>> {
        self.served_head.subscribe()
    }

    /// How many stored or received pending proposals were dropped because
    /// they did not verify (see [`Machine::from_parts`]).
    pub fn dropped_pending(&self) -> u64 {
        self.dropped_pending.load(Ordering::Relaxed)
    }

    pub(crate) fn pending_dropped(&self, count: usize) {
        self.dropped_pending
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_machine(&self, machine: Machine) {
        self.machine.store(Arc::new(machine));
    }

    /// Starts serving `served`. The served seq never decreases (invariant 4):
    /// anything else is a bug in the caller, so it stops the node. In a
    /// node only the state machine calls this, after it applied the version;
    /// it is public so that the decision path can be tested and measured on
    /// a snapshot of its own.
    pub fn serve(&self, served: Served) {
        let current = self.served.load().as_ref().map(|s| s.head);
        #[cfg(stele_sim)]
        let current = current.filter(|_| {
            !stele_ledger::defects::active(stele_ledger::defects::Defect::SnapshotRegress)
        });
        if let Some(current) = current {
            assert!(
                served.head.seq > current.seq
                    || (served.head.seq == current.seq && served.head.hash == current.hash),
                "serving would move back from seq {} to seq {}",
                current.seq,
                served.head.seq
            );
        }
        let head = served.head;
        self.served.store(Some(Arc::new(served)));
        self.served_head.send_replace(Some(head));
    }
}
