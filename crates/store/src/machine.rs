//! The policy state machine's logic, free of storage and clocks: the chain
//! state admission needs, the versions, the pending proposals, and applying
//! one command to them. Given the same state and the same request, every
//! node computes the same response and the same changes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use stele_ledger::limits::MAX_RESTORE_LEDGER_BYTES;
use stele_ledger::{
    Approval, BundleFiles, ChainState, Hash, Head, Proposal, PublicKey, Reason, Rejection, Restore,
    Review, TrustSet, Version,
};
use stele_policy::{BundleError, Snapshot, checked_snapshot};

use crate::command::{Command, ProposalState, ProposalStatus, Refusal, Request, Response};

/// Most proposals held at once; a full table refuses new ones.
pub const MAX_PENDING: usize = 32;

/// Most closed proposals (superseded or withdrawn) kept for their authors
/// to see, besides the pending ones; past it the one that lapses first goes.
pub const MAX_CLOSED: usize = 32;

/// A proposal collecting approvals; or, once `closed`, a record of one that
/// no longer can (without its bundle), kept until it would have lapsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub version: Version,
    pub bundle: Arc<BundleFiles>,
    pub expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Closed>,
}

/// Why a proposal closed without committing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closed {
    /// Another version committed on its parent first.
    Superseded { by: Hash, seq: u64 },
    /// Taken back, by these signers (its proposer, or M approvers).
    Withdrawn { by: Vec<PublicKey> },
}

/// What an applied command changed, for the storage to persist and the node
/// to publish.
pub enum Change {
    /// A version joined the chain. `compiled` is its bundle, compiled by the
    /// admission check; `None` only below the head of a restore, whose
    /// versions join at once and are never served.
    Appended {
        version: Arc<Version>,
        bundle: Arc<BundleFiles>,
        compiled: Option<Arc<Snapshot>>,
    },
    PendingStored(Arc<Pending>),
    PendingRemoved(Hash),
}

/// A bundle's digest and its compiled, tested snapshot.
type CheckedBundle = (Hash, Arc<Snapshot>);

/// The replicated state every node applies commands to.
#[derive(Clone, Default)]
pub struct Machine {
    chain: ChainState,
    /// Shared with the clones the node publishes: cloning the machine
    /// copies pointers, not versions.
    versions: Vec<Arc<Version>>,
    pending: BTreeMap<Hash, Arc<Pending>>,
    /// Closed proposals, each `closed`, bundle-less: stored beside the
    /// pending ones and expiring like them.
    closed: BTreeMap<Hash, Arc<Pending>>,
    clock_ms: u64,
    /// The last bundle that passed the admission check, shared with this
    /// machine's clones: the leader checks a command on a clone before it
    /// logs it, then applies it, and the check (a pure function of the
    /// bundle's bytes) need not run twice.
    last_checked: Arc<Mutex<Option<CheckedBundle>>>,
}

impl Machine {
    /// An empty machine whose chain accepts only this genesis, when given.
    pub fn new(pinned_genesis: Option<Hash>) -> Machine {
        Machine {
            chain: pinned_genesis
                .map(ChainState::pinned_to)
                .unwrap_or_default(),
            ..Machine::default()
        }
    }

    /// Rebuilds a machine from a verified chain and the pending proposals
    /// stored or received with it (storage at start, snapshots). The pending
    /// ones are checked as a new proposal is, and a forged one (a signature
    /// that does not verify, a parent that is not the head, a bundle that is
    /// not its digest's) is dropped: returned is the machine and how many
    /// were dropped. Honest nodes hold the same pending proposals, all of
    /// which pass, so dropping keeps them in step.
    pub fn from_parts(
        chain: ChainState,
        versions: Vec<Version>,
        pending: Vec<Pending>,
        clock_ms: u64,
    ) -> (Machine, usize) {
        assert_eq!(
            chain.head().map_or(0, |h| h.seq),
            versions.len() as u64,
            "the chain state and the versions describe the same chain"
        );
        let offered = pending.len();
        let (closed, pending): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|held| held.closed.is_some());
        // A record only, never admitted: kept while it has not lapsed.
        let mut closed: Vec<Pending> = closed
            .into_iter()
            .filter(|record| record.expires_at_ms > clock_ms)
            .collect();
        closed
            .sort_by_key(|record| std::cmp::Reverse((record.expires_at_ms, record.version.hash())));
        closed.truncate(MAX_CLOSED);
        let closed: BTreeMap<Hash, Arc<Pending>> = closed
            .into_iter()
            .map(|record| (record.version.hash(), Arc::new(record)))
            .collect();
        let pending: BTreeMap<Hash, Arc<Pending>> = pending
            .into_iter()
            .filter(|held| still_pending(&chain, held) && !held.version.header.expired_at(clock_ms))
            .map(|mut held| {
                // The hold is not signed: the version's own expiry caps it.
                if let Some(at) = held.version.header.expires_at {
                    held.expires_at_ms = held.expires_at_ms.min(at.saturating_mul(1000));
                }
                held
            })
            .take(MAX_PENDING)
            .map(|p| (p.version.hash(), Arc::new(p)))
            .collect();
        let dropped = offered - pending.len() - closed.len();
        let machine = Machine {
            chain,
            versions: versions.into_iter().map(Arc::new).collect(),
            pending,
            closed,
            clock_ms,
            last_checked: Arc::default(),
        };
        (machine, dropped)
    }

    pub fn chain(&self) -> &ChainState {
        &self.chain
    }

    pub fn head(&self) -> Option<Head> {
        self.chain.head()
    }

    pub fn trust(&self) -> Option<&TrustSet> {
        self.chain.trust()
    }

    pub fn versions(&self) -> impl ExactSizeIterator<Item = &Version> + Clone {
        self.versions.iter().map(|version| version.as_ref())
    }

    pub fn version(&self, seq: u64) -> Option<&Version> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.versions.get(index).map(|version| version.as_ref())
    }

    pub fn pending(&self) -> impl Iterator<Item = &Arc<Pending>> {
        self.pending.values()
    }

    pub fn pending_proposal(&self, id: &Hash) -> Option<&Arc<Pending>> {
        self.pending.get(id)
    }

    /// Proposals that closed without committing, until they would have
    /// lapsed.
    pub fn closed(&self) -> impl Iterator<Item = &Arc<Pending>> {
        self.closed.values()
    }

    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Where a pending proposal stands: its signers against the threshold
    /// admission applies, and when it lapses.
    pub fn pending_status(&self, held: &Pending) -> ProposalStatus {
        let version = &held.version;
        let approvals = self.chain.approvals(version);
        ProposalStatus {
            proposal_id: version.hash(),
            state: ProposalState::Pending,
            signatures: approvals.signers,
            threshold: approvals.threshold,
            seq: None,
            expires_at_ms: Some(held.expires_at_ms),
        }
    }

    /// Applies one command. Deterministic: it reads only `self` and `request`.
    pub fn apply(&mut self, request: Request, changes: &mut Vec<Change>) -> Response {
        // Expiry is judged by this entry's own stamp: one entry stamped
        // far ahead (a leader's clock jump) must not expire every later
        // version, as it would if judged by the clock that only moves
        // forward.
        let stamped_ms = request.time_ms;
        self.clock_ms = self.clock_ms.max(request.time_ms);
        self.expire(changes);
        match request.command {
            Command::Propose {
                proposal,
                commit_only,
                pending_ttl_ms,
            } => {
                let Proposal { version, bundle } = *proposal;
                let id = version.hash();
                // Signatures already collected for the same version count too.
                let (version, bundle, hold) = match self.pending.get(&id) {
                    Some(held) => (
                        merge(&held.version, &version.signatures),
                        held.bundle.clone(),
                        Some(held.expires_at_ms),
                    ),
                    None => (
                        version,
                        Arc::new(bundle),
                        (!commit_only).then(|| self.clock_ms.saturating_add(pending_ttl_ms)),
                    ),
                };
                self.consider(version, bundle, hold, stamped_ms, changes)
            }
            Command::Approve {
                proposal_id,
                approvals,
            } => {
                if let Some(seq) = self.chain.seq_of(&proposal_id) {
                    return self.already_committed(seq);
                }
                let Some(held) = self.pending.get(&proposal_id).cloned() else {
                    return Response::Refused(Refusal::new(
                        Reason::UnknownProposal,
                        format!(
                            "no pending proposal {proposal_id}: it expired, was refused, was overtaken by another version, or never existed"
                        ),
                    ));
                };
                let version = merge(&held.version, &approvals);
                self.consider(
                    version,
                    held.bundle.clone(),
                    Some(held.expires_at_ms),
                    stamped_ms,
                    changes,
                )
            }
            Command::Restore { ledger } => self.restore(ledger.as_bytes(), stamped_ms, changes),
            Command::Withdraw {
                proposal_id,
                approvals,
            } => self.withdraw(proposal_id, &approvals, changes),
        }
    }

    /// Takes a pending proposal back, on a withdrawal signed by its proposer
    /// (the approver its author names) or by M approvers of the trust set
    /// in force. Every signature must be a valid withdrawal by an approver.
    fn withdraw(
        &mut self,
        id: Hash,
        approvals: &[Approval],
        changes: &mut Vec<Change>,
    ) -> Response {
        let Some(held) = self.pending.get(&id).cloned() else {
            return Response::Refused(Refusal::new(
                Reason::UnknownProposal,
                format!(
                    "no pending proposal {id} to withdraw: it committed, expired, was superseded or withdrawn, or never existed"
                ),
            ));
        };
        let Some(trust) = self.chain.trust() else {
            return Response::Refused(Refusal::new(
                Reason::UnknownProposal,
                "a genesis is not withdrawn: it lapses, or another is bootstrapped",
            ));
        };
        for approval in approvals {
            if !trust.contains(&approval.key) {
                return Response::Refused(Rejection::UnknownKey { key: approval.key }.into());
            }
            if !approval.key.verifies_withdrawal(&id, &approval.signature) {
                return Response::Refused(Refusal::new(
                    Reason::BadSignature,
                    format!(
                        "the signature by {} is not its withdrawal of {id} (an approval does not count as one)",
                        approval.key
                    ),
                ));
            }
        }
        let signers: Vec<PublicKey> = {
            let mut keys: Vec<PublicKey> = approvals.iter().map(|a| a.key).collect();
            keys.sort();
            keys.dedup();
            keys
        };
        let author = &held.version.header.author;
        let by_proposer = signers.iter().any(|key| {
            trust.name_of(key) == Some(author.as_str())
                || (trust.approvers().is_none()
                    && *author == format!("key {}", &key.to_hex()[..16]))
        });
        let by_quorum = trust.distinct_signers(signers.iter()) >= trust.threshold();
        if !by_proposer && !by_quorum {
            return Response::Refused(Refusal::new(
                Reason::BelowThreshold,
                format!(
                    "a withdrawal is signed by the proposal's author ({author}) or by {} approvers; this one has {} other signer(s)",
                    trust.threshold(),
                    signers.len()
                ),
            ));
        }
        let threshold = trust.threshold();
        let signatures = self.chain.approvals(&held.version).signers;
        self.pending.remove(&id);
        self.close(&held, Closed::Withdrawn { by: signers }, changes);
        Response::Accepted(ProposalStatus {
            proposal_id: id,
            state: ProposalState::Withdrawn,
            signatures,
            threshold,
            seq: None,
            expires_at_ms: Some(held.expires_at_ms),
        })
    }

    /// Keeps a record of a proposal that can no longer commit, without its
    /// bundle, until it would have lapsed.
    fn close(&mut self, held: &Pending, why: Closed, changes: &mut Vec<Change>) {
        let record = Arc::new(Pending {
            version: held.version.clone(),
            bundle: Arc::default(),
            expires_at_ms: held.expires_at_ms,
            closed: Some(why),
        });
        let id = record.version.hash();
        self.closed.insert(id, record.clone());
        changes.push(Change::PendingStored(record));
        if self.closed.len() > MAX_CLOSED
            && let Some(first) = self
                .closed
                .iter()
                .min_by_key(|(id, record)| (record.expires_at_ms, **id))
                .map(|(id, _)| *id)
        {
            self.closed.remove(&first);
            changes.push(Change::PendingRemoved(first));
        }
    }

    /// Every pending proposal, once `by` committed at `seq` on their parent.
    fn supersede_pending(&mut self, by: Hash, seq: u64, changes: &mut Vec<Change>) {
        for (id, held) in std::mem::take(&mut self.pending) {
            if id == by {
                changes.push(Change::PendingRemoved(id));
            } else {
                self.close(&held, Closed::Superseded { by, seq }, changes);
            }
        }
    }

    /// A whole chain onto an empty one (`cluster init --ledger`): verified
    /// from the pinned genesis, ending in a membership version that has not
    /// expired at `stamped_ms`, its head's bundle compiled and tested. The
    /// versions below the head committed in the cluster the ledger comes
    /// from, so their own expiry is long past and not judged: the head's
    /// signers vouch for them by its parent hash.
    fn restore(&mut self, ledger: &[u8], stamped_ms: u64, changes: &mut Vec<Change>) -> Response {
        if let Some(ours) = self.chain.head() {
            // Its head's hash covers the whole chain below it: committed
            // already, whatever came after.
            let theirs = (ledger.len() <= MAX_RESTORE_LEDGER_BYTES)
                .then(|| stele_ledger::export::decode(ledger).ok())
                .flatten()
                .and_then(|entries| entries.versions.last().map(Version::hash));
            if let Some(seq) = theirs.and_then(|hash| self.chain.seq_of(&hash)) {
                return self.already_committed(seq);
            }
            return Response::Refused(Refusal::new(
                Reason::ChainExists,
                format!(
                    "this cluster holds a chain already (head seq {}), and a restore starts an empty one only: start the new cluster's nodes on empty --data directories",
                    ours.seq
                ),
            ));
        }
        let restore = match stele_ledger::restore::verify(ledger, self.chain.clone()) {
            Ok(restore) => restore,
            Err(error) => {
                return Response::Refused(Refusal::new(
                    error.reason(),
                    format!("restore refused: {error}"),
                ));
            }
        };
        let head = restore.head();
        if let Some(at) = head.header.expires_at
            && head.header.expired_at(stamped_ms)
        {
            return Response::Refused(Refusal::new(
                Reason::ProposalExpired,
                format!(
                    "the restore's membership version (seq {}) expired at {at} (Unix seconds) and the leader's clock is past it: make and sign it again",
                    head.seq()
                ),
            ));
        }
        let digest = head.header.bundle_digest;
        let head_bundle = restore
            .entries
            .bundles
            .get(&digest)
            .expect("a verified chain holds its bundles");
        let compiled = RefCell::new(None);
        if let Err(error) = self.compile_and_test(digest, head_bundle, &compiled) {
            return Response::Refused(
                Rejection::BundleInvalid {
                    message: error.to_string(),
                }
                .into(),
            );
        }
        let seq = head.seq();
        let head_hash = head.hash();
        let Restore { chain, entries } = restore;
        let bundles: BTreeMap<Hash, Arc<BundleFiles>> = entries
            .bundles
            .into_iter()
            .map(|(digest, files)| (digest, Arc::new(files)))
            .collect();
        for version in entries.versions {
            let version = Arc::new(version);
            let is_head = version.seq() == seq;
            self.versions.push(version.clone());
            changes.push(Change::Appended {
                bundle: bundles[&version.header.bundle_digest].clone(),
                compiled: is_head.then(|| compiled.borrow().clone()).flatten(),
                version,
            });
        }
        self.chain = chain;
        // Proposals held for the empty chain (a genesis) are stale now.
        self.supersede_pending(head_hash, seq, changes);
        self.committed(seq, ProposalState::Committed)
    }

    /// Admission for a new or grown proposal: commit it when its signatures
    /// suffice, hold it while they do not (if `hold` gives an expiry), refuse
    /// it otherwise, or when its own expiry has passed at `stamped_ms`.
    fn consider(
        &mut self,
        version: Version,
        bundle: Arc<BundleFiles>,
        hold: Option<u64>,
        stamped_ms: u64,
        changes: &mut Vec<Change>,
    ) -> Response {
        let id = version.hash();
        if let Some(at) = version.header.expires_at
            && version.header.expired_at(stamped_ms)
            && self.chain.seq_of(&id).is_none()
        {
            if self.pending.remove(&id).is_some() {
                changes.push(Change::PendingRemoved(id));
            }
            return Response::Refused(Refusal::new(
                Reason::ProposalExpired,
                format!(
                    "version {id} expired at {at} (Unix seconds, as it says) and the leader's clock is past it: make and sign it again"
                ),
            ));
        }
        // A pending proposal is held no longer than it may commit.
        let hold = hold.map(|until| match version.header.expires_at {
            Some(at) => until.min(at.saturating_mul(1000)),
            None => until,
        });
        let compiled = RefCell::new(None);
        // `review` checks the bundle's digest before it calls this.
        let digest = version.header.bundle_digest;
        let check = |files: &BundleFiles| self.compile_and_test(digest, files, &compiled);
        let approvals = match self.chain.review(&version, &bundle, &check) {
            Ok(Review::Valid { approvals, .. }) => approvals,
            Ok(Review::AlreadyCommitted { seq }) => {
                return self.already_committed(seq);
            }
            Err(rejection) => {
                // A proposal whose parent is no longer the head never will be.
                if matches!(
                    rejection,
                    Rejection::StaleParent { .. } | Rejection::Gap { .. }
                ) && self.pending.remove(&id).is_some()
                {
                    changes.push(Change::PendingRemoved(id));
                }
                return Response::Refused(rejection.into());
            }
        };
        let status = |state, expires_at_ms| {
            Response::Accepted(ProposalStatus {
                proposal_id: id,
                state,
                signatures: approvals.signers,
                threshold: approvals.threshold,
                seq: (state != ProposalState::Pending).then_some(version.seq()),
                expires_at_ms,
            })
        };
        match (&approvals.shortfall, hold) {
            (None, _) => {
                let compiled = compiled
                    .into_inner()
                    .expect("the bundle check passed, so it compiled the bundle");
                let response = status(ProposalState::Committed, None);
                self.chain.append(&version);
                let version = Arc::new(version);
                self.versions.push(version.clone());
                // Every other pending proposal names the old head as parent.
                self.supersede_pending(id, version.seq(), changes);
                if self.closed.remove(&id).is_some() {
                    // Withdrawn once, proposed again, committed now.
                    changes.push(Change::PendingRemoved(id));
                }
                changes.push(Change::Appended {
                    version,
                    bundle,
                    compiled: Some(compiled),
                });
                response
            }
            (Some(shortfall), None) => Response::Refused(shortfall.clone().into()),
            (Some(_), Some(expires_at_ms)) => {
                if !self.pending.contains_key(&id) && self.pending.len() >= MAX_PENDING {
                    return Response::Refused(Refusal::new(
                        Reason::TooManyPending,
                        format!(
                            "{MAX_PENDING} proposals are already pending; approve some or let them expire first"
                        ),
                    ));
                }
                let response = status(ProposalState::Pending, Some(expires_at_ms));
                let held = Arc::new(Pending {
                    version,
                    bundle,
                    expires_at_ms,
                    closed: None,
                });
                // Withdrawn once and proposed again: pending again.
                self.closed.remove(&id);
                self.pending.insert(id, held.clone());
                changes.push(Change::PendingStored(held));
                response
            }
        }
    }

    fn already_committed(&self, seq: u64) -> Response {
        self.committed(seq, ProposalState::AlreadyCommitted)
    }

    fn committed(&self, seq: u64, state: ProposalState) -> Response {
        let version = &self.versions[(seq - 1) as usize];
        let threshold = self.chain.trust().map_or(0, TrustSet::threshold);
        Response::Accepted(ProposalStatus {
            proposal_id: version.hash(),
            state,
            signatures: version.distinct_signers() as u32,
            threshold,
            seq: Some(seq),
            expires_at_ms: None,
        })
    }

    /// Drops pending proposals, and records of closed ones, whose time has
    /// passed.
    fn expire(&mut self, changes: &mut Vec<Change>) {
        let now = self.clock_ms;
        for table in [&mut self.pending, &mut self.closed] {
            let expired: Vec<Hash> = table
                .iter()
                .filter(|(_, held)| held.expires_at_ms <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                table.remove(&id);
                changes.push(Change::PendingRemoved(id));
            }
        }
    }
}

/// Whether `held` is a proposal admission would hold on `chain`: within
/// limits, on the head, every signature by the trust set and valid, its
/// bundle its digest's, and still short of the threshold. Its bundle was
/// compiled when it was proposed; only its structure is checked again.
fn still_pending(chain: &ChainState, held: &Pending) -> bool {
    let verdict = chain.review(&held.version, &held.bundle, &stele_ledger::structural_only);
    let kept = matches!(
        &verdict,
        Ok(Review::Valid { approvals, .. }) if approvals.shortfall.is_some()
    );
    if !kept {
        let why = match verdict {
            Err(rejection) => rejection.to_string(),
            Ok(Review::AlreadyCommitted { seq }) => format!("it is committed at seq {seq}"),
            Ok(Review::Valid { .. }) => "its signatures already meet the threshold".into(),
        };
        tracing::warn!(proposal = %held.version.hash(), "dropped a stored or received pending proposal: {why}");
    }
    kept
}

/// The version with `approvals` added, one per key, in key order.
fn merge(version: &Version, approvals: &[Approval]) -> Version {
    let mut merged = version.clone();
    for approval in approvals {
        merged.add_approval(*approval);
    }
    merged
}

impl Machine {
    /// The admission check, keeping the compiled snapshot so that a
    /// committed bundle is compiled once.
    fn compile_and_test(
        &self,
        digest: Hash,
        bundle: &BundleFiles,
        compiled: &RefCell<Option<Arc<Snapshot>>>,
    ) -> Result<(), BundleError> {
        let last_checked = || {
            self.last_checked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some((checked, snapshot)) = last_checked().as_ref()
            && *checked == digest
        {
            *compiled.borrow_mut() = Some(snapshot.clone());
            return Ok(());
        }
        let (snapshot, _) = checked_snapshot(bundle)?;
        let snapshot = Arc::new(snapshot);
        *last_checked() = Some((digest, snapshot.clone()));
        *compiled.borrow_mut() = Some(snapshot);
        Ok(())
    }
}
