//! Faults from the seed: partitions (random halves, the leader cut off, one
//! node cut off), messages held then released, latency spikes, host bounces
//! and crashes (a power loss) with a later restart; often several at once.
//! Everything heals when the fault phase ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::history::Shared;
use crate::host::Observed;
use crate::net::host;

/// Normal link latency (the most a message takes outside a spike).
pub const LATENCY: Duration = Duration::from_millis(5);
/// The highest latency a spike sets.
pub const SPIKE_LATENCY_MAX_MS: u64 = 400;

#[derive(Clone, Debug)]
enum Fault {
    Halves,
    IsolateLeader,
    IsolateNode(u64),
    Hold(u64, u64),
    Latency(u64),
    Bounce(u64),
    Crash(u64),
}

/// What a started fault did, so that ending it undoes exactly that.
enum Undo {
    Cut(Vec<(u64, u64)>),
    Held(u64, u64),
    Latency,
    Restart(u64),
    Nothing,
}

pub struct Faults {
    nodes: Vec<u64>,
    /// (at ms, fault, lasts ms), in time order.
    plan: Vec<(u64, Fault, u64)>,
    next: usize,
    /// (ends at ms, undo) of faults in force.
    active: Vec<(u64, Undo)>,
    cuts: BTreeMap<(u64, u64), u32>,
    holds: BTreeMap<(u64, u64), u32>,
    down: BTreeSet<u64>,
    spikes: u32,
    heal_at_ms: u64,
    healed: bool,
    rng: StdRng,
    /// Each node's "the power went" flag, read when its host restarts.
    power: BTreeMap<u64, Arc<AtomicBool>>,
    started: usize,
    /// The leader last seen between a membership version's commit and the
    /// end of Raft's change (a crash point is drawn once per such moment).
    mid_change: Option<u64>,
    crash_points: u32,
    crash_points_on: bool,
}

/// How long a leader crashed at the membership crash point stays down.
const CRASH_POINT_DOWN_MS: u64 = 3_000;
/// At most this many crash points a run (a learner that cannot catch up
/// keeps every leader mid-change, and each would be crashed in turn).
const MAX_CRASH_POINTS: u32 = 2;

fn pair(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

impl Faults {
    pub fn plan(
        seed: u64,
        nodes: u64,
        duration: Duration,
        power: BTreeMap<u64, Arc<AtomicBool>>,
    ) -> Faults {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0fa1_7500);
        let nodes: Vec<u64> = (1..=nodes).collect();
        let heal_at_ms = duration.as_millis() as u64;
        let mut plan = Vec::new();
        let mut at = 2_000;
        loop {
            at += rng.gen_range(500..6_000);
            if at + 1_000 >= heal_at_ms {
                break;
            }
            let node = nodes[rng.gen_range(0..nodes.len())];
            let other = nodes[rng.gen_range(0..nodes.len())];
            let fault = match rng.gen_range(0..8) {
                0 => Fault::Halves,
                1 => Fault::IsolateLeader,
                2 => Fault::IsolateNode(node),
                3 if node != other => Fault::Hold(node, other),
                4 => Fault::Latency(rng.gen_range(50..=SPIKE_LATENCY_MAX_MS)),
                5 => Fault::Bounce(node),
                6 => Fault::Crash(node),
                _ => Fault::IsolateLeader,
            };
            plan.push((at, fault, rng.gen_range(500..8_000)));
        }
        Faults {
            nodes,
            plan,
            next: 0,
            active: Vec::new(),
            cuts: BTreeMap::new(),
            holds: BTreeMap::new(),
            down: BTreeSet::new(),
            spikes: 0,
            heal_at_ms,
            healed: false,
            rng,
            power,
            started: 0,
            mid_change: None,
            crash_points: 0,
            crash_points_on: false,
        }
    }

    /// Adds the crash point between a committed `membership` version and
    /// the end of Raft's change.
    pub fn crash_at_membership_changes(&mut self) {
        self.crash_points_on = true;
    }

    /// How many faults started (a crash of a node already down does not).
    pub fn started(&self) -> usize {
        self.started
    }

    /// Starts and ends whatever is due at `now_ms`; heals everything at the
    /// end of the fault phase.
    pub fn tick(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        now_ms: u64,
        observed: &Observed,
        history: &Shared,
    ) {
        if self.healed {
            return;
        }
        if now_ms >= self.heal_at_ms {
            for (_, undo) in std::mem::take(&mut self.active) {
                self.undo(sim, undo);
            }
            self.healed = true;
            history
                .lock()
                .event(now_ms, "heal: every link repaired, every host up");
            return;
        }
        let mut ended = Vec::new();
        self.active.retain_mut(|(ends, undo)| {
            if *ends <= now_ms {
                ended.push(std::mem::replace(undo, Undo::Nothing));
                false
            } else {
                true
            }
        });
        for undo in ended {
            self.undo(sim, undo);
        }
        self.crash_point(sim, now_ms, observed, history);
        while let Some((at, fault, lasts)) = self.plan.get(self.next).cloned()
            && at <= now_ms
        {
            self.next += 1;
            let (undo, text) = self.start(sim, fault, observed);
            if !matches!(undo, Undo::Nothing) || text.starts_with("bounce") {
                self.started += 1;
            }
            history
                .lock()
                .event(now_ms, format!("fault {text} for {lasts}ms"));
            self.active.push((now_ms + lasts, undo));
        }
    }

    /// The crash point between committing a `membership` version and
    /// finishing the change it asks of Raft: half the times a leader is
    /// seen there, it loses power, so that another leader must finish it.
    fn crash_point(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        now_ms: u64,
        observed: &Observed,
        history: &Shared,
    ) {
        if !self.crash_points_on {
            return;
        }
        let leader = observed.leader_mid_change();
        let new = leader.is_some() && leader != self.mid_change;
        self.mid_change = leader;
        let Some(leader) = leader.filter(|_| new) else {
            return;
        };
        if self.crash_points >= MAX_CRASH_POINTS || !self.rng.gen_bool(0.5) {
            return;
        }
        self.down.insert(leader);
        observed.forget(leader);
        sim.crash(host(leader));
        let undo = Undo::Restart(leader);
        self.started += 1;
        self.crash_points += 1;
        history.lock().event(
            now_ms,
            format!("fault crash point: leader {leader} between a committed member set and Raft's change, for {CRASH_POINT_DOWN_MS}ms"),
        );
        history
            .lock()
            .count("crash point: leader mid membership change");
        self.active.push((now_ms + CRASH_POINT_DOWN_MS, undo));
    }

    fn start(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        fault: Fault,
        observed: &Observed,
    ) -> (Undo, String) {
        match fault {
            Fault::Halves => {
                let mut shuffled = self.nodes.clone();
                shuffled.shuffle(&mut self.rng);
                let (left, right) = shuffled.split_at(self.rng.gen_range(1..shuffled.len()));
                let text = format!("partition {left:?} | {right:?}");
                (self.cut(sim, left, right), text)
            }
            Fault::IsolateLeader => {
                let leader = observed.leader().unwrap_or(self.nodes[0]);
                (
                    self.isolate(sim, leader),
                    format!("isolate leader {leader}"),
                )
            }
            Fault::IsolateNode(node) => (self.isolate(sim, node), format!("isolate {node}")),
            Fault::Hold(a, b) => {
                let key = pair(a, b);
                let count = self.holds.entry(key).or_default();
                *count += 1;
                if *count == 1 {
                    sim.hold(host(a), host(b));
                }
                (Undo::Held(a, b), format!("hold {a}<->{b}"))
            }
            // Overlapping spikes: the latest sets the ceiling until all end.
            Fault::Latency(ms) => {
                self.spikes += 1;
                sim.set_max_message_latency(Duration::from_millis(ms));
                (Undo::Latency, format!("latency up to {ms}ms"))
            }
            Fault::Bounce(node) if !self.down.contains(&node) => {
                sim.bounce(host(node));
                (Undo::Nothing, format!("bounce {node}"))
            }
            Fault::Crash(node) if !self.down.contains(&node) => {
                self.down.insert(node);
                self.power[&node].store(true, Ordering::Release);
                observed.forget(node);
                sim.crash(host(node));
                (Undo::Restart(node), format!("crash {node}"))
            }
            Fault::Bounce(node) | Fault::Crash(node) => {
                (Undo::Nothing, format!("(node {node} already down)"))
            }
        }
    }

    fn isolate(&mut self, sim: &mut turmoil::Sim<'_>, node: u64) -> Undo {
        let others: Vec<u64> = self.nodes.iter().copied().filter(|n| *n != node).collect();
        self.cut(sim, &[node], &others)
    }

    fn cut(&mut self, sim: &mut turmoil::Sim<'_>, left: &[u64], right: &[u64]) -> Undo {
        let mut links = Vec::new();
        for &a in left {
            for &b in right {
                let count = self.cuts.entry(pair(a, b)).or_default();
                *count += 1;
                if *count == 1 {
                    sim.partition(host(a), host(b));
                }
                links.push(pair(a, b));
            }
        }
        Undo::Cut(links)
    }

    fn undo(&mut self, sim: &mut turmoil::Sim<'_>, undo: Undo) {
        match undo {
            Undo::Cut(links) => {
                for link in links {
                    let count = self.cuts.get_mut(&link).expect("a counted link");
                    *count -= 1;
                    if *count == 0 {
                        sim.repair(host(link.0), host(link.1));
                    }
                }
            }
            Undo::Held(a, b) => {
                let count = self.holds.get_mut(&pair(a, b)).expect("a counted hold");
                *count -= 1;
                if *count == 0 {
                    sim.release(host(a), host(b));
                }
            }
            Undo::Latency => {
                self.spikes -= 1;
                if self.spikes == 0 {
                    sim.set_max_message_latency(LATENCY);
                }
            }
            Undo::Restart(node) => {
                self.down.remove(&node);
                sim.bounce(host(node));
            }
            Undo::Nothing => {}
        }
    }
}
