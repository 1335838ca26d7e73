//! The clients' side of a run: set the cluster up, then, until the fault
//! phase ends, a random mix (from the seed) of honest writes of every kind,
//! membership changes and attacks; after healing, show the cluster still
//! commits and converges (liveness).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use stele_client::Client;
use stele_ledger::{BundleFiles, Hash, Kind, MemberSet, Proposal, Reason, Role, Version};
use stele_proto::v1::{
    Approval as WireApproval, ApproveRequest, BootstrapRequest, ProposalState, ProposalStatus,
    StatusRequest,
};

use crate::adversary;
use crate::fixtures::{self, Book, Keys};
use crate::history::{Commit, Shared, now_ms};
use crate::net;

const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// After healing, a write must commit within this much simulated time…
pub const COMMIT_BOUND: Duration = Duration::from_secs(30);
/// …and every member must serve it within this much.
pub const CONVERGE_BOUND: Duration = Duration::from_secs(45);

/// Sends a proposal to one node.
pub async fn send(
    client: &Client,
    version: &Version,
    bundle: &BundleFiles,
    commit_only: bool,
) -> Result<ProposalStatus, stele_client::Error> {
    let proposal = Proposal {
        version: version.clone(),
        bundle: bundle.clone(),
    };
    client.submit(&proposal, commit_only).await
}

/// How a write ended, as far as the client can tell.
pub enum Outcome {
    Committed(u64),
    Pending,
    Refused(Reason),
    Unknown,
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Committed(seq) => format!("committed seq={seq}"),
            Outcome::Pending => "pending".into(),
            Outcome::Refused(reason) => format!("refused {reason}"),
            Outcome::Unknown => "unknown".into(),
        }
    }
}

pub struct Workload {
    pub rng: StdRng,
    pub keys: Keys,
    pub book: Book,
    pub history: Shared,
    pub clients: Vec<(u64, Client)>,
    /// The hosts that run nodes; the first `voters` start as the cluster.
    nodes: Vec<u64>,
    /// The members as last reported (writes go mostly to them), and the
    /// voters among them.
    members: Vec<u64>,
    voting: Vec<u64>,
    voters: u64,
    membership: Vec<Step>,
    seed: u64,
    duration_ms: u64,
    pub observed: crate::host::Observed,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    AddLearner(u64),
    Promote(u64),
    RemoveAVoter,
}

impl Workload {
    pub fn new(
        seed: u64,
        nodes: u64,
        voters: u64,
        duration: Duration,
        history: Shared,
        observed: crate::host::Observed,
    ) -> Result<Workload, String> {
        let mut clients = Vec::new();
        for id in 1..=nodes {
            let addr = net::addr(id);
            clients.push((
                id,
                Client::from_channel(
                    &addr,
                    net::channel(&addr).map_err(|e| e.to_string())?,
                    CALL_TIMEOUT,
                ),
            ));
        }
        let mut membership = Vec::new();
        for id in voters + 1..=nodes {
            membership.push(Step::AddLearner(id));
            membership.push(Step::Promote(id));
        }
        if nodes > voters {
            membership.push(Step::RemoveAVoter);
        }
        Ok(Workload {
            rng: StdRng::seed_from_u64(seed.wrapping_mul(0x2545_f491_4f6c_dd1d)),
            keys: Keys::from_seed(seed),
            book: Book::default(),
            history,
            clients,
            nodes: (1..=nodes).collect(),
            members: (1..=voters).collect(),
            voting: (1..=voters).collect(),
            voters,
            membership,
            seed,
            duration_ms: duration.as_millis() as u64,
            observed,
        })
    }

    /// A node to send a request to: mostly a member, sometimes any node
    /// (a non-member must refuse, not misroute).
    pub fn any_client(&mut self) -> (u64, Client) {
        let node = if self.rng.gen_bool(0.9) {
            self.members[self.rng.gen_range(0..self.members.len())]
        } else {
            self.nodes[self.rng.gen_range(0..self.nodes.len())]
        };
        (node, self.client(node).clone())
    }

    /// The cluster's members now (voters and learners).
    pub fn current_members(&self) -> impl Iterator<Item = u64> + '_ {
        self.members.iter().copied()
    }

    pub async fn run(mut self, done: Arc<AtomicBool>) -> turmoil::Result {
        let result = self.drive().await;
        done.store(true, Ordering::Release);
        result
    }

    async fn drive(&mut self) -> turmoil::Result {
        if !self.init().await {
            return Ok(());
        }
        while now_ms() < self.duration_ms {
            tokio::time::sleep(Duration::from_millis(self.rng.gen_range(100..400))).await;
            if now_ms() >= self.duration_ms {
                break;
            }
            let roll = self.rng.gen_range(0..100);
            match roll {
                0..30 => self.update().await,
                30..42 => self.pending_then_approved().await,
                42..49 => self.rollback().await,
                49..53 => self.rotate().await,
                53..60 => self.change_membership().await,
                _ => adversary::attack(self).await,
            }
        }
        self.after_healing().await;
        Ok(())
    }

    /// Starts Raft at node 1 from the signed genesis every node is pinned
    /// to, and commits it; false (recorded as stuck) when node 1 refuses.
    async fn init(&mut self) -> bool {
        let (genesis, bundle) = fixtures::genesis(self.seed, self.voters);
        let request = BootstrapRequest {
            genesis: Proposal {
                version: genesis.clone(),
                bundle: bundle.clone(),
            }
            .encode()
            .into_bytes(),
            ledger: Vec::new(),
        };
        loop {
            match self.client(1).bootstrap(request.clone()).await {
                Ok(_) => break,
                // Node 1 still starting, or held by a fault: again.
                Err(error) if error.reason().is_none() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(refused) => {
                    self.history.lock().stuck =
                        Some(format!("the bootstrap was refused: {refused}"));
                    return false;
                }
            }
        }
        self.history
            .event(format!("init voters=1..={}", self.voters));
        while self.book.head().is_none() {
            let (node, _) = self.any_client();
            let outcome = self.propose(node, &genesis, &bundle, true).await;
            self.history
                .event(format!("genesis at node={node}: {}", outcome.label()));
            if !matches!(outcome, Outcome::Committed(_)) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.resync().await;
            }
        }
        true
    }

    pub fn client(&self, node: u64) -> &Client {
        &self.clients[(node - 1) as usize].1
    }

    /// `count` distinct approvers of the trust set in force, at random.
    pub fn approvers(&mut self, count: usize) -> Vec<stele_ledger::SecretKey> {
        let trust = self.book.trust().expect("genesis is committed");
        let set = self.keys.set_of(&trust);
        let mut keys = self.keys.set(set);
        keys.shuffle(&mut self.rng);
        keys.truncate(count);
        keys
    }

    /// Sends a proposal to `node` and learns what happened.
    pub async fn propose(
        &mut self,
        node: u64,
        version: &Version,
        bundle: &BundleFiles,
        commit_only: bool,
    ) -> Outcome {
        self.book.remember(version, bundle);
        let reply = send(self.client(node), version, bundle, commit_only).await;
        self.outcome(version.hash(), reply)
    }

    pub fn outcome(
        &mut self,
        hash: Hash,
        reply: Result<ProposalStatus, stele_client::Error>,
    ) -> Outcome {
        match reply {
            Ok(status) => match (status.state(), status.seq) {
                (ProposalState::Committed | ProposalState::AlreadyCommitted, Some(seq)) => {
                    self.history.lock().commits.push(Commit {
                        at_ms: now_ms(),
                        seq,
                        hash,
                    });
                    self.book.advance_to(hash);
                    Outcome::Committed(seq)
                }
                (ProposalState::Pending, _) => Outcome::Pending,
                _ => Outcome::Unknown,
            },
            Err(error) => match error.reason() {
                Some(reason) => Outcome::Refused(reason),
                None => Outcome::Unknown,
            },
        }
    }

    /// Learns the committed head from any node that can confirm it.
    pub async fn resync(&mut self) {
        for _ in 0..self.clients.len() {
            let (_, client) = self.any_client();
            if let Ok(Some(head)) = client.cluster_head().await {
                self.book.advance_to(head.hash);
                return;
            }
        }
    }

    /// Writes one honest version and records the outcome.
    async fn write(&mut self, label: &str, version: Version, bundle: BundleFiles) -> Outcome {
        let (node, _) = self.any_client();
        let outcome = self.propose(node, &version, &bundle, true).await;
        self.settle(label, node, &outcome).await;
        outcome
    }

    pub async fn settle(&mut self, label: &str, node: u64, outcome: &Outcome) {
        self.history
            .event(format!("{label} at node={node}: {}", outcome.label()));
        self.history.count(format!(
            "{label}: {}",
            outcome.label().split(' ').next().unwrap_or_default()
        ));
        if !matches!(outcome, Outcome::Committed(_)) {
            self.resync().await;
        }
    }

    async fn update(&mut self) {
        let bundle = fixtures::bundle(&mut self.rng);
        let keys = self.approvers(2);
        let version = self.book.next(&bundle, Kind::Update, None, "update", &keys);
        self.write("update", version, bundle).await;
    }

    /// Proposed with one signature at one node, approved at another.
    async fn pending_then_approved(&mut self) {
        let bundle = fixtures::bundle(&mut self.rng);
        let keys = self.approvers(2);
        let first = self
            .book
            .next(&bundle, Kind::Update, None, "pending", &keys[..1]);
        let (node, _) = self.any_client();
        let outcome = self.propose(node, &first, &bundle, false).await;
        if !matches!(outcome, Outcome::Pending) {
            self.settle("propose-pending", node, &outcome).await;
            return;
        }
        self.history
            .event(format!("propose-pending at node={node}: pending"));
        let hash = first.hash();
        let outcome = self.approve(hash, &keys[1], keys[1].sign(&hash)).await;
        self.settle("approve", node, &outcome).await;
    }

    pub async fn approve(
        &mut self,
        hash: Hash,
        key: &stele_ledger::SecretKey,
        signature: stele_ledger::Signature,
    ) -> Outcome {
        let (_, client) = self.any_client();
        let reply = client
            .approve(ApproveRequest {
                proposal_id: hash.to_hex(),
                approvals: vec![WireApproval {
                    key: key.public_key().to_hex(),
                    signature: signature.to_hex(),
                }],
            })
            .await;
        self.outcome(hash, reply)
    }

    async fn rollback(&mut self) {
        let Some((head_seq, _)) = self.book.head() else {
            return;
        };
        if head_seq < 2 {
            return;
        }
        let to_seq = self.rng.gen_range(1..head_seq);
        let bundle = self.book.bundle_of(to_seq).expect("known").clone();
        let keys = self.approvers(2);
        let version = self
            .book
            .next(&bundle, Kind::Rollback { to_seq }, None, "rollback", &keys);
        self.write("rollback", version, bundle).await;
    }

    async fn rotate(&mut self) {
        let Some((head_seq, _)) = self.book.head() else {
            return;
        };
        let trust = self.book.trust().expect("genesis is committed");
        let next = 1 - self.keys.set_of(&trust);
        let bundle = self.book.bundle_of(head_seq).expect("known").clone();
        let mut keys = self.approvers(2);
        keys.extend(self.keys.set(next).into_iter().take(2));
        let version = self.book.next(
            &bundle,
            Kind::Rotate,
            Some(self.keys.trust(next)),
            "rotate",
            &keys,
        );
        self.write("rotate", version, bundle).await;
    }

    /// The next planned membership change, as a `membership` version
    /// signed by two approvers: the only way membership changes.
    async fn change_membership(&mut self) {
        let Some(step) = self.membership.first().copied() else {
            return;
        };
        let Some((head_seq, _)) = self.book.head() else {
            return;
        };
        let Some(set) = self.book.members() else {
            return;
        };
        let mut members = set.members().to_vec();
        match step {
            Step::AddLearner(id) => members.push(fixtures::member(id, Role::Learner)),
            Step::Promote(id) => {
                for member in members.iter_mut().filter(|m| m.id == id) {
                    member.role = Role::Voter;
                }
            }
            Step::RemoveAVoter => {
                let voters: Vec<u64> = set.voter_ids().collect();
                let id = voters[self.rng.gen_range(0..voters.len())];
                members.retain(|m| m.id != id);
            }
        }
        let Ok(new) = MemberSet::new(members) else {
            self.membership.remove(0);
            return;
        };
        let bundle = self.book.bundle_of(head_seq).expect("known").clone();
        let keys = self.approvers(2);
        let mut version = self
            .book
            .next(&bundle, Kind::Membership, None, "membership", &[]);
        version.header = version.header.listing(new.clone());
        let version = fixtures::signed(version, &keys);
        let outcome = self.write("membership", version, bundle).await;
        // Whatever the answer said, the ledger decides (a timed-out write
        // may have committed; `write` resynced the known head).
        if let Some(set) = self.book.members() {
            if set == new {
                self.membership.remove(0);
            }
            self.members = set.members().iter().map(|m| m.id).collect();
            self.voting = set.voter_ids().collect();
        }
        self.history.event(format!(
            "membership {step:?}: {} voters={:?}",
            outcome.label(),
            self.voting
        ));
    }

    /// After the faults heal: a write commits within [`COMMIT_BOUND`], and
    /// every member then serves it within [`CONVERGE_BOUND`].
    async fn after_healing(&mut self) {
        let healed = self.duration_ms;
        let mut committed = None;
        while now_ms() < healed + COMMIT_BOUND.as_millis() as u64 {
            self.resync().await;
            let bundle = fixtures::bundle(&mut self.rng);
            let keys = self.approvers(2);
            let version = self.book.next(&bundle, Kind::Update, None, "final", &keys);
            let (node, _) = self.any_client();
            let outcome = self.propose(node, &version, &bundle, true).await;
            self.history
                .event(format!("final at node={node}: {}", outcome.label()));
            if let Outcome::Committed(seq) = outcome {
                committed = Some((node, seq));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let Some((node, seq)) = committed else {
            let mut history = self.history.lock();
            history.final_members = self.members.clone();
            history.stuck = Some(format!(
                "no write committed within {COMMIT_BOUND:?} of healing"
            ));
            return;
        };
        self.raft_follows_the_ledger(node, healed).await;
        let members = self.members(node).await;
        let mut lagging: BTreeSet<u64> = members.iter().copied().collect();
        while !lagging.is_empty() && now_ms() < healed + CONVERGE_BOUND.as_millis() as u64 {
            for id in lagging.clone() {
                let served = self.client(id).served().await;
                if let Ok(Some(served)) = served
                    && served.seq >= seq
                {
                    lagging.remove(&id);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut history = self.history.lock();
        history.final_members = members.clone();
        if !lagging.is_empty() {
            history.stuck = Some(format!(
                "members {lagging:?} did not serve seq {seq} within {CONVERGE_BOUND:?} of healing"
            ));
        }
        history.event(now_ms(), format!("converged members={members:?} seq={seq}"));
    }

    /// Waits (within [`CONVERGE_BOUND`] of healing) until Raft's membership
    /// at `node` is the last member set the ledger committed, and records
    /// what it was last.
    async fn raft_follows_the_ledger(&mut self, node: u64, healed: u64) {
        let listed: std::collections::BTreeMap<u64, bool> = self
            .book
            .members()
            .map(|set| {
                set.members()
                    .iter()
                    .map(|m| (m.id, m.role == Role::Voter))
                    .collect()
            })
            .unwrap_or_default();
        loop {
            let status = self
                .client(node)
                .status(StatusRequest { local_only: false })
                .await;
            if let Ok(status) = status {
                let raft: std::collections::BTreeMap<u64, bool> =
                    status.members.iter().map(|m| (m.id, m.voter)).collect();
                let done = raft == listed;
                self.history.lock().raft_members = Some(raft);
                if done {
                    return;
                }
            }
            if now_ms() >= healed + CONVERGE_BOUND.as_millis() as u64 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The cluster's members, as `node` reports them.
    async fn members(&mut self, node: u64) -> Vec<u64> {
        for _ in 0..50 {
            let status = self
                .client(node)
                .status(StatusRequest { local_only: false });
            if let Ok(reply) = status.await {
                return reply.members.iter().map(|m| m.id).collect();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.members.clone()
    }
}
