//! One simulated stele node: the product's `Node` (openraft, the state
//! machine, every gRPC service) on the in-memory store, whose contents
//! outlive the host (a crash or bounce restarts the software on the same
//! "disk").

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use stele_node::{Node, NodeConfig, WallClock};
use stele_store::mem::{MemBackend, MemLogStore};
use stele_store::{Backend, LogId, Vote};

use crate::history::Shared;
use crate::net;

/// The simulated wall clock starts here (2026-01-01T00:00:00Z).
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// A node fails closed after this long without evidence of being current.
pub const MAX_STALENESS: Duration = Duration::from_secs(2);

/// What outlives the software: the Raft log and the state machine's
/// storage, sharing one write-ahead log. A bounce (the process restarts)
/// keeps every write; a crash (the power goes) loses the state-machine
/// writes no synced write followed, as RocksDB would.
#[derive(Clone)]
pub struct Disk {
    pub log: MemLogStore,
    pub backend: MemBackend,
    pub power_lost: Arc<AtomicBool>,
}

impl Default for Disk {
    fn default() -> Disk {
        let backend = MemBackend::with_power_loss();
        Disk {
            log: MemLogStore::syncing(backend.clone()),
            backend,
            power_lost: Arc::default(),
        }
    }
}

/// What the simulation observes of each running node's Raft state: who
/// believes it leads (for faults that target the leader), and each node's
/// vote and log position (for the peer that forges snapshots: it sees
/// AppendEntries on the unauthenticated Raft transport).
#[derive(Clone, Default)]
pub struct Observed(Arc<Mutex<BTreeMap<u64, RaftView>>>);

#[derive(Clone, Copy)]
struct RaftView {
    leading_term: Option<u64>,
    vote: Vote,
    /// The last log index, under the leader this node voted for.
    position: Option<LogId>,
}

impl Observed {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, RaftView>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node leading in the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.lock()
            .iter()
            .filter_map(|(id, view)| view.leading_term.map(|term| (term, *id)))
            .max()
            .map(|(_, id)| id)
    }

    /// Node `id`'s vote and log position.
    pub fn log_position(&self, id: u64) -> Option<(Vote, LogId)> {
        let view = *self.lock().get(&id)?;
        Some((view.vote, view.position?))
    }

    /// Node `id` is down: it observes nothing.
    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn record(&self, id: u64, metrics: &openraft::RaftMetrics<u64, openraft::BasicNode>) {
        let voted = metrics.vote.leader_id();
        let position = match (metrics.last_log_index, voted.voted_for()) {
            (Some(last), Some(node)) if metrics.vote.is_committed() => Some(LogId::new(
                openraft::CommittedLeaderId::new(voted.get_term(), node),
                last,
            )),
            _ => None,
        };
        let view = RaftView {
            leading_term: (metrics.state == ServerState::Leader).then_some(metrics.current_term),
            vote: metrics.vote,
            position,
        };
        self.lock().insert(id, view);
    }
}

pub fn config(id: u64) -> NodeConfig {
    let mut config = NodeConfig::new(
        id,
        PathBuf::new(),
        format!("0.0.0.0:{}", net::PORT)
            .parse()
            .expect("an address"),
    );
    config.advertise = Some(net::addr(id));
    config.max_staleness = MAX_STALENESS;
    config.pending_ttl = Duration::from_secs(10);
    config.min_version_wait = Duration::from_millis(500);
    // Small enough that snapshots are built, sent and installed in every run.
    config.snapshot_every = 16;
    config
}

fn clock() -> WallClock {
    Arc::new(|| EPOCH_MS + crate::history::now_ms())
}

/// Runs node `id` until the simulation stops or crashes its host.
pub async fn run(id: u64, disk: Disk, observed: Observed, history: Shared) -> turmoil::Result {
    observed.forget(id);
    if disk.power_lost.swap(false, Ordering::AcqRel) {
        let held = |disk: &Disk| {
            disk.backend
                .load()
                .map_or(0, |stored| stored.versions.len())
        };
        let before = held(&disk);
        disk.backend.lose_power();
        history.event(format!(
            "power back on node={id}: its state machine holds {} of the {before} versions it applied",
            held(&disk)
        ));
    }
    let node = Node::start(
        config(id),
        disk.log.clone(),
        Arc::new(disk.backend.clone()),
        net::dial(),
        clock(),
    )
    .await?;
    let mut metrics = node.state.raft.metrics();
    tokio::spawn(async move {
        while metrics.changed().await.is_ok() {
            let current = metrics.borrow_and_update().clone();
            observed.record(id, &current);
        }
    });
    let incoming = net::incoming().await?;
    node.serve(incoming, std::future::pending()).await?;
    Ok(())
}
