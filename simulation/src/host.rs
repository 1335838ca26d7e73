//! One simulated stele node: the product's `Node` (openraft, the state
//! machine, every gRPC service) on the in-memory store, whose contents
//! outlive the host (a crash or bounce restarts the software on the same
//! "disk").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use stele_audit::{DecisionLog, LOG_KEY_FILE, LogConfig};
use stele_ledger::WallClock;
use stele_node::{Node, NodeConfig};
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
    /// The node's decision logs, one per boot (on the real disk, under the
    /// run's directory), kept open past a crash so that everything the node
    /// answered is written by the time the run ends.
    pub decision_logs: Arc<Mutex<Vec<Arc<DecisionLog>>>>,
    /// The latest simulated time this node's clock was read at, for the
    /// log's writer thread, which runs outside the simulated host.
    seen_ms: Arc<AtomicU64>,
    /// How many times the node started on this disk.
    boots: Arc<AtomicU64>,
}

impl Default for Disk {
    fn default() -> Disk {
        let backend = MemBackend::with_power_loss();
        Disk {
            log: MemLogStore::syncing(backend.clone()),
            backend,
            power_lost: Arc::default(),
            decision_logs: Arc::default(),
            seen_ms: Arc::default(),
            boots: Arc::default(),
        }
    }
}

/// One boot's decision log as the run left it: where it is, and its
/// records, or where it does not verify.
pub struct BootLog {
    pub dir: PathBuf,
    pub verified: Result<Vec<stele_audit::DecisionRecord>, stele_audit::Broken>,
}

impl Disk {
    /// Closes every decision log this node kept (each writes what it holds
    /// and signs a last checkpoint), and verifies each against `key`.
    pub fn close_decision_logs(&self, key: &stele_ledger::PublicKey) -> Vec<BootLog> {
        let held =
            std::mem::take(&mut *self.decision_logs.lock().unwrap_or_else(|e| e.into_inner()));
        held.into_iter()
            .map(|log| {
                log.close();
                let mut records = Vec::new();
                let verified = stele_audit::verify(log.dir(), key, &Default::default(), |record| {
                    records.push(record.clone())
                })
                .map(|_| records);
                BootLog {
                    dir: log.dir().to_path_buf(),
                    verified,
                }
            })
            .collect()
    }
}

/// Where a run keeps its nodes' decision logs, and the seed their keys
/// come from.
#[derive(Clone)]
pub struct LogDir {
    pub root: Arc<PathBuf>,
    pub seed: u64,
}

impl LogDir {
    fn node(&self, id: u64) -> PathBuf {
        self.root.join(format!("node{id}"))
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
    /// Raft's membership is not (yet) the member set of the ledger this
    /// node applied.
    behind_ledger: bool,
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

    /// The leader (in the highest term), when its Raft membership is not
    /// yet the member set its ledger committed: between a `membership`
    /// version's commit and the end of the change it asks of Raft.
    pub fn leader_mid_change(&self) -> Option<u64> {
        let leader = self.leader()?;
        self.lock()
            .get(&leader)
            .is_some_and(|view| view.behind_ledger)
            .then_some(leader)
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

    fn record(
        &self,
        id: u64,
        metrics: &openraft::RaftMetrics<u64, stele_store::MemberAddrs>,
        ledger: Option<&stele_ledger::MemberSet>,
    ) {
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
            behind_ledger: ledger.is_some_and(|set| !raft_is(set, metrics)),
        };
        self.lock().insert(id, view);
    }
}

/// Whether Raft's membership is exactly `set`: no joint configuration, the
/// same nodes, the same voters.
fn raft_is(
    set: &stele_ledger::MemberSet,
    metrics: &openraft::RaftMetrics<u64, stele_store::MemberAddrs>,
) -> bool {
    let membership = metrics.membership_config.membership();
    let nodes: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership.get_joint_config().len() == 1
        && nodes == set.members().iter().map(|m| m.id).collect()
        && voters == set.voter_ids().collect()
}

pub fn config(id: u64, data_dir: PathBuf) -> NodeConfig {
    let mut config = NodeConfig::new(
        id,
        data_dir,
        format!("0.0.0.0:{}", net::PORT)
            .parse()
            .expect("an address"),
        format!("0.0.0.0:{}", net::PEER_PORT)
            .parse()
            .expect("an address"),
    );
    config.advertise = Some(net::addr(id));
    config.peer_advertise = Some(net::peer_addr(id));
    config.max_staleness = MAX_STALENESS;
    config.pending_ttl = Duration::from_secs(10);
    config.min_version_wait = Duration::from_millis(500);
    // Small enough that snapshots are built, sent and installed in every run.
    config.snapshot_every = 16;
    config
}

/// The node's wall clock: simulated time. Read outside a simulated host (by
/// the decision log's writer thread), it gives the latest time the node saw.
fn clock(seen_ms: Arc<AtomicU64>) -> WallClock {
    Arc::new(move || {
        if let Some(elapsed) = turmoil::sim_elapsed() {
            seen_ms.fetch_max(elapsed.as_millis() as u64, Ordering::Relaxed);
        }
        EPOCH_MS + seen_ms.load(Ordering::Relaxed)
    })
}

/// Node `id`'s decision log key, from the seed (never from the OS: a run
/// reproduces from its seed).
pub fn log_key(seed: u64, id: u64) -> stele_ledger::SecretKey {
    use sha2::Digest;
    stele_ledger::SecretKey::from_seed(
        sha2::Sha256::digest(format!("stele-sim log key {seed} {id}")).into(),
    )
}

/// A new boot's decision log settings: its own directory (the previous
/// boot's writer may still be writing its own), the key in place.
fn decision_log(dir: &Path, seed: u64, id: u64, boot: u64) -> std::io::Result<LogConfig> {
    std::fs::create_dir_all(dir)?;
    let key = dir.join(LOG_KEY_FILE);
    if !key.exists() {
        std::fs::write(&key, log_key(seed, id).to_key_file())?;
    }
    let mut log = LogConfig::new(dir.join(format!("boot{boot}")));
    log.checkpoint_interval = Duration::from_secs(3600);
    Ok(log)
}

/// Runs node `id` until the simulation stops or crashes its host.
pub async fn run(
    id: u64,
    disk: Disk,
    observed: Observed,
    history: Shared,
    logs: LogDir,
    genesis: stele_ledger::Hash,
) -> turmoil::Result {
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
    let data_dir = logs.node(id);
    let mut config = config(id, data_dir.clone());
    config.genesis = Some(genesis);
    let boot = disk.boots.fetch_add(1, Ordering::Relaxed);
    config.decision_log = Some(decision_log(&data_dir, logs.seed, id, boot)?);
    let node = Node::start(
        config,
        disk.log.clone(),
        Arc::new(disk.backend.clone()),
        net::dial(),
        clock(disk.seen_ms.clone()),
    )
    .await?;
    if let Some(log) = node.state.decisions.log()
        && let Ok(mut held) = disk.decision_logs.lock()
    {
        held.push(log.clone());
    }
    let mut metrics = node.state.raft.metrics();
    let published = node.state.published.clone();
    tokio::spawn(async move {
        while metrics.changed().await.is_ok() {
            let current = metrics.borrow_and_update().clone();
            let machine = published.machine();
            observed.record(id, &current, machine.chain().members());
        }
    });
    let clients = net::incoming(net::PORT).await?;
    let peers = net::incoming(net::PEER_PORT).await?;
    node.serve(clients, peers, std::future::pending()).await?;
    Ok(())
}
