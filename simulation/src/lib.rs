//! # stele-sim
//!
//! Whole stele clusters under turmoil: the product's nodes (openraft, the
//! state machine, every gRPC service and the Raft transport) on simulated
//! hosts, network and time, with the in-memory store as their disks. A seed
//! fixes everything: the workload, the attacks, the faults, Raft's election
//! timeouts and the network's delays; the run's trace hashes to a digest
//! that the same seed reproduces. After the faults heal, the checkers test
//! DESIGN.md's invariants against the nodes' ledgers, their decision logs
//! and what clients saw.
//!
//! What it does not do: replace the product's parts with stand-ins (only
//! the network, the disks and time are simulated), or run without the
//! simulation build's cfgs (`scripts/sim`), where no run would reproduce.

pub mod adversary;
pub mod checkers;
pub mod faults;
pub mod fixtures;
pub mod history;
pub mod host;
pub mod net;
pub mod probe;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use stele_store::Backend;

use crate::checkers::{Final, Violation};
use crate::faults::{Faults, LATENCY};
use crate::history::Shared;
use crate::host::{Disk, LogDir, Observed};
use crate::workload::{CONVERGE_BOUND, Workload};

/// One simulation's parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Hosts that run a node (3 to 5).
    pub nodes: u64,
    /// How many of them start as voters; the rest join during the run.
    pub voters: u64,
    /// How long the workload and the faults run, in simulated time.
    pub duration: Duration,
    /// A deliberate defect to switch on (simulation builds only).
    pub defect: Option<String>,
    /// Crash the leader between committing a `membership` version and
    /// finishing Raft's change (twice at most). Off by default: a run with
    /// them reproduces from its seed in a fresh process, not after other
    /// runs in the same one (docs/SIMULATION.md).
    pub crash_points: bool,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 5,
            voters: 3,
            duration: Duration::from_secs(60),
            defect: None,
            crash_points: false,
        }
    }
}

/// What one seed did and found.
pub struct Report {
    pub seed: u64,
    pub digest: String,
    pub violations: Vec<Violation>,
    pub simulated_ms: u64,
    pub commits: usize,
    pub decisions: usize,
    pub faults: usize,
    pub tally: BTreeMap<String, u64>,
    pub trace: Vec<String>,
}

/// Whether this is a simulation build (`scripts/sim`): the deliberate
/// defects are compiled in (`--cfg stele_sim`), and turmoil seeds every
/// simulated host's tokio scheduler (`--cfg tokio_unstable`). Elsewhere a
/// run would not reproduce from its seed, so none starts.
pub const SIMULATION_BUILD: bool = cfg!(all(stele_sim, tokio_unstable));

/// A defect switched on for this thread until dropped.
struct DefectOn;

impl Drop for DefectOn {
    fn drop(&mut self) {
        #[cfg(stele_sim)]
        stele_ledger::defects::activate(None);
    }
}

/// Switches `name` on for this thread, or explains why it cannot be.
fn activate(defect: Option<&str>) -> Result<DefectOn, String> {
    #[cfg(stele_sim)]
    {
        use stele_ledger::defects::Defect;
        let parsed = match defect {
            None => None,
            Some(name) => Some(Defect::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
                format!("unknown defect {name:?}; known: {}", known.join(", "))
            })?),
        };
        stele_ledger::defects::activate(parsed);
    }
    #[cfg(not(stele_sim))]
    let _ = defect;
    Ok(DefectOn)
}

/// Runs one seed to the end and checks it.
pub fn run(config: &SimConfig) -> Result<Report, String> {
    if !SIMULATION_BUILD {
        return Err("this is not a simulation build, so a run would not reproduce from its seed and --bug has no defects to switch on: build and run the simulator with scripts/sim (it sets --cfg stele_sim --cfg tokio_unstable)".into());
    }
    if !(3..=5).contains(&config.nodes) || config.voters == 0 || config.voters > config.nodes {
        return Err(format!(
            "--nodes must be 3 to 5 and --voters 1 to --nodes (got {} and {})",
            config.nodes, config.voters
        ));
    }
    let _defect = activate(config.defect.as_deref())?;
    history::take_live_violations();
    stele_store::seed_thread_rng(config.seed);
    let seed = config.seed;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(LATENCY)
        .simulation_duration(config.duration + CONVERGE_BOUND + Duration::from_secs(30))
        .build();
    let history = Shared::default();
    let observed = Observed::default();
    let disks: BTreeMap<u64, Disk> = (1..=config.nodes).map(|id| (id, Disk::default())).collect();
    let log_root =
        tempfile::tempdir().map_err(|e| format!("a directory for decision logs: {e}"))?;
    let logs = LogDir {
        root: Arc::new(log_root.path().to_path_buf()),
        seed,
    };
    let genesis = fixtures::genesis(seed, config.voters).0.hash();
    for (&id, disk) in &disks {
        let (disk, observed, history) = (disk.clone(), observed.clone(), history.clone());
        let logs = logs.clone();
        sim.host(net::host(id), move || {
            host::run(
                id,
                disk.clone(),
                observed.clone(),
                history.clone(),
                logs.clone(),
                genesis,
            )
        });
    }
    let done = Arc::new(AtomicBool::new(false));
    {
        let (history, done, config) = (history.clone(), done.clone(), config.clone());
        let observed = observed.clone();
        sim.client("ops", async move {
            let workload = Workload::new(
                seed,
                config.nodes,
                config.voters,
                config.duration,
                history,
                observed,
            )?;
            workload.run(done).await
        });
    }
    {
        let (history, done) = (history.clone(), done.clone());
        let nodes: Vec<u64> = (1..=config.nodes).collect();
        sim.client("probe", probe::run(seed, nodes, history, done));
    }
    let power = disks
        .iter()
        .map(|(&id, disk)| (id, disk.power_lost.clone()))
        .collect();
    let mut faults = Faults::plan(seed, config.nodes, config.duration, power);
    if config.crash_points {
        faults.crash_at_membership_changes();
    }
    let mut failure = None;
    loop {
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => {
                failure = Some(error.to_string());
                break;
            }
        }
        let now_ms = sim.elapsed().as_millis() as u64;
        faults.tick(&mut sim, now_ms, &observed, &history);
    }
    let simulated_ms = sim.elapsed().as_millis() as u64;
    drop(sim);
    let ended = collect(seed, &disks)?;
    let mut history = std::mem::take(&mut *history.lock());
    for (node, chain) in &ended.chains {
        let head = chain.last().map_or("none".into(), |v| {
            format!("{} {}", v.header.seq, v.hash().to_hex())
        });
        history.event(simulated_ms, format!("final node={node} head={head}"));
    }
    let mut violations = checkers::check(&history, &ended);
    if let Some(error) = failure {
        violations.insert(
            0,
            Violation {
                invariant: "simulation ran to the end",
                detail: error,
            },
        );
    }
    Ok(Report {
        seed,
        digest: history.digest(),
        violations,
        simulated_ms,
        commits: history.commits.len(),
        decisions: history.decisions.len(),
        faults: faults.started(),
        tally: history.tally.clone(),
        trace: history.trace().to_vec(),
    })
}

/// Reads every node's ledger and bundles off its disk, and closes and
/// verifies its decision logs.
fn collect(seed: u64, disks: &BTreeMap<u64, Disk>) -> Result<Final, String> {
    let mut chains = BTreeMap::new();
    let mut bundles = HashMap::new();
    let mut decision_logs = BTreeMap::new();
    for (&id, disk) in disks {
        decision_logs.insert(
            id,
            disk.close_decision_logs(&host::log_key(seed, id).public_key()),
        );
        let stored = disk
            .backend
            .load()
            .map_err(|e| format!("node {id}'s store: {e}"))?;
        for version in &stored.versions {
            let digest = version.header.bundle_digest;
            if let Some(bundle) = disk.backend.bundle(&digest).map_err(|e| e.to_string())? {
                bundles.insert(digest, bundle);
            }
        }
        chains.insert(id, stored.versions);
    }
    Ok(Final {
        chains,
        bundles,
        decision_logs,
    })
}
