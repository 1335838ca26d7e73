//! The invariants of DESIGN.md, checked against what a run left behind: the
//! ledgers on every node's disk and the history the clients recorded. Each
//! checker is written independently of the code it checks (its own chain
//! walk, its own signer count), so a defect in admission cannot hide itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use stele_ledger::{BundleFiles, Hash, TrustSet, Version};
use stele_policy::{Query, Snapshot};

use crate::faults::SPIKE_LATENCY_MAX_MS;
use crate::history::{Answer, History};
use crate::host::{BootLog, MAX_STALENESS};

/// Allowance on top of `max_staleness`: one heartbeat interval (DESIGN.md,
/// invariant 6) plus a message each way at the highest simulated latency
/// (evidence is timed at its arrival, the probe at its reply).
pub const STALENESS_SLACK: Duration =
    Duration::from_millis(HEARTBEAT_MS + 2 * SPIKE_LATENCY_MAX_MS);
const HEARTBEAT_MS: u64 = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// What each node holds at the end of a run.
pub struct Final {
    pub chains: BTreeMap<u64, Vec<Version>>,
    pub bundles: HashMap<Hash, BundleFiles>,
    /// Each node's decision logs, one per boot.
    pub decision_logs: BTreeMap<u64, Vec<BootLog>>,
}

pub fn check(history: &History, ended: &Final) -> Vec<Violation> {
    let mut found: Vec<Violation> = history.live.clone();
    let reference = one_chain(ended, &mut found);
    rollbacks_restore_their_target(&reference, &mut found);
    acknowledged_everywhere(history, ended, &mut found);
    monotonic_serving(history, &mut found);
    provenance(history, &reference, ended, &mut found);
    every_answer_logged(history, ended, &mut found);
    no_adversarial_version(history, ended, &reference, &mut found);
    bounded_staleness(history, &mut found);
    membership_follows_the_ledger(history, &reference, &mut found);
    if let Some(stuck) = &history.stuck {
        found.push(violation("liveness", stuck.clone()));
    }
    found
}

/// Membership changes only by signed versions: after healing, Raft's
/// membership is the member set of the last committed genesis or
/// `membership` version, every id with its role.
fn membership_follows_the_ledger(
    history: &History,
    reference: &[Version],
    found: &mut Vec<Violation>,
) {
    let Some(raft) = &history.raft_members else {
        found.push(violation(
            "membership follows the ledger",
            "after healing no member answered a status call".into(),
        ));
        return;
    };
    let listed: BTreeMap<u64, bool> = reference
        .iter()
        .rev()
        .find_map(|version| version.header.members.as_ref())
        .map(|set| {
            set.members()
                .iter()
                .map(|m| (m.id, m.role == stele_ledger::Role::Voter))
                .collect()
        })
        .unwrap_or_default();
    if *raft != listed {
        found.push(violation(
            "membership follows the ledger",
            format!(
                "after healing Raft's members (id, voter) are {raft:?}, and the last committed member set lists {listed:?}"
            ),
        ));
    }
}

/// Invariant 5, as the decision log proves it: every node's log verifies
/// (chained records, checkpoints signed by its key), and every decision a
/// node answered is in it, with the version, outcome and reasons it was
/// answered with.
fn every_answer_logged(history: &History, ended: &Final, found: &mut Vec<Violation>) {
    const LOGGED: &str = "5 provenance (decision log)";
    for (node, boots) in &ended.decision_logs {
        let mut records = HashMap::new();
        for boot in boots {
            match &boot.verified {
                Ok(logged) => records.extend(logged.iter().map(|r| (r.decision_id.as_str(), r))),
                Err(broken) => found.push(violation(
                    LOGGED,
                    format!(
                        "node {node}'s decision log {} does not verify: {broken}",
                        boot.dir.display()
                    ),
                )),
            }
        }
        let answered = history.decisions.iter().filter(|d| d.node == *node);
        let mut served = 0;
        let mut wrong = Vec::new();
        for decision in answered {
            let Answer::Served {
                seq,
                hash,
                decision_id,
                allow,
                reasons,
                errors,
            } = &decision.answer
            else {
                continue;
            };
            served += 1;
            let record = records.get(decision_id.as_str());
            let as_answered = record.is_some_and(|record| {
                record.seq == *seq
                    && record.hash.to_hex() == *hash
                    && record.decision == if *allow { "allow" } else { "deny" }
                    && record.reasons == *reasons
                    && record.errors == *errors
            });
            if !as_answered {
                let logged = record.map_or("not in its log".to_string(), |r| {
                    format!(
                        "logged as seq {} ({}) {}",
                        r.seq,
                        r.hash.short(),
                        r.decision
                    )
                });
                wrong.push(format!(
                    "decision {decision_id} answered at {} ms from seq {seq} ({}) {}: {logged}",
                    decision.at_ms,
                    &hash[..hash.len().min(12)],
                    if *allow { "allow" } else { "deny" },
                ));
            }
        }
        if let Some(first) = wrong.first() {
            found.push(violation(
                LOGGED,
                format!(
                    "node {node}: {} of the {served} decisions it answered are not in its log as answered; the first: {first}",
                    wrong.len()
                ),
            ));
        }
    }
}

/// Invariant 1: every node's ledger is a prefix of one chain, and that chain
/// links: seq i+1 follows seq i, and names its hash as parent.
fn one_chain(ended: &Final, found: &mut Vec<Violation>) -> Vec<Version> {
    let longest = ended
        .chains
        .values()
        .max_by_key(|chain| chain.len())
        .cloned()
        .unwrap_or_default();
    for (node, chain) in &ended.chains {
        if let Some(i) = (0..chain.len()).find(|&i| chain[i].hash() != longest[i].hash()) {
            found.push(violation(
                "1 write-once (no fork)",
                format!(
                    "node {node} holds {} at seq {}, another node {}",
                    chain[i].hash().short(),
                    i + 1,
                    longest[i].hash().short()
                ),
            ));
        }
    }
    let mut parent = Hash::ZERO;
    for (i, version) in longest.iter().enumerate() {
        if version.header.seq != i as u64 + 1 || version.header.parent_hash != parent {
            found.push(violation(
                "2 admission (seq and parent)",
                format!(
                    "seq {} ({}) does not follow its predecessor: parent {} where {} was expected",
                    i + 1,
                    version.hash().short(),
                    version.header.parent_hash.short(),
                    parent.short()
                ),
            ));
            break;
        }
        parent = version.hash();
    }
    longest
}

/// Invariant 7: every acknowledged commit is on every final member.
fn acknowledged_everywhere(history: &History, ended: &Final, found: &mut Vec<Violation>) {
    for commit in &history.commits {
        for node in &history.final_members {
            let Some(chain) = ended.chains.get(node) else {
                continue;
            };
            let held = chain.get(commit.seq as usize - 1).map(Version::hash);
            if held != Some(commit.hash) {
                found.push(violation(
                    "7 nothing acknowledged is lost",
                    format!(
                        "seq {} ({}) was acknowledged at {} ms but member {node} holds {}",
                        commit.seq,
                        commit.hash.short(),
                        commit.at_ms,
                        held.map_or("nothing".into(), |h| h.short())
                    ),
                ));
                return;
            }
        }
    }
}

/// Invariant 4: the seq a node serves never decreases, restarts included.
fn monotonic_serving(history: &History, found: &mut Vec<Violation>) {
    let mut last: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for decision in &history.decisions {
        let Answer::Served { seq, .. } = decision.answer else {
            continue;
        };
        if let Some(&(before, at)) = last.get(&decision.node)
            && seq < before
        {
            found.push(violation(
                "4 monotonic serving",
                format!(
                    "node {} served seq {before} at {at} ms, then seq {seq} at {} ms",
                    decision.node, decision.at_ms
                ),
            ));
            return;
        }
        last.insert(decision.node, (seq, decision.at_ms));
    }
}

/// Invariant 5: each served decision names a version of the final chain,
/// and re-evaluating it against that version's bundle gives the same answer.
fn provenance(history: &History, reference: &[Version], ended: &Final, found: &mut Vec<Violation>) {
    let mut compiled: HashMap<Hash, Snapshot> = HashMap::new();
    for decision in &history.decisions {
        let Answer::Served {
            seq,
            hash,
            allow,
            reasons,
            errors,
            ..
        } = &decision.answer
        else {
            continue;
        };
        let Some(version) = reference.get(*seq as usize - 1) else {
            found.push(violation(
                "5 provenance",
                format!(
                    "node {} decided with seq {seq}, which no final ledger holds",
                    decision.node
                ),
            ));
            return;
        };
        if version.hash().to_hex() != *hash {
            found.push(violation(
                "5 provenance",
                format!(
                    "node {} decided with seq {seq} as {}, but the final chain's seq {seq} is {}",
                    decision.node,
                    &hash[..hash.len().min(12)],
                    version.hash().short()
                ),
            ));
            return;
        }
        let digest = version.header.bundle_digest;
        let Some(bundle) = ended.bundles.get(&digest) else {
            found.push(violation(
                "5 provenance",
                format!("no node holds the bundle of seq {seq} ({digest})"),
            ));
            return;
        };
        let snapshot = compiled
            .entry(digest)
            .or_insert_with(|| Snapshot::compile(bundle).expect("a committed bundle compiles"));
        let probe = &decision.probe;
        let query = Query::parse(
            &format!("User::\"{}\"", probe.principal),
            &format!("Action::\"{}\"", probe.action),
            "Doc::\"d1\"",
            Some(&format!("{{\"level\":{}}}", probe.level)),
        )
        .expect("a well-formed probe");
        let again = snapshot
            .evaluate(&query)
            .expect("the probe fits the schema");
        let again_allow = again.decision == stele_policy::Outcome::Allow;
        if again_allow != *allow || again.reasons != *reasons || again.errors != *errors {
            found.push(violation(
                "5 provenance",
                format!(
                    "node {} answered allow={allow} reasons={reasons:?} under seq {seq}; offline, that version says allow={again_allow} reasons={:?}",
                    decision.node, again.reasons
                ),
            ));
            return;
        }
    }
}

/// Invariants 2 and 3: no version an adversary built is on any node, and
/// every version of the chain carries M valid signatures from distinct keys
/// of the trust set in force (counted here, not by admission's code).
fn no_adversarial_version(
    history: &History,
    ended: &Final,
    reference: &[Version],
    found: &mut Vec<Violation>,
) {
    for (node, chain) in &ended.chains {
        if let Some(version) = chain
            .iter()
            .find(|v| history.adversarial.contains_key(&v.hash()))
        {
            found.push(violation(
                "2 admission (adversarial version admitted)",
                format!(
                    "node {node} holds seq {} ({}), built by the {} attack",
                    version.header.seq,
                    version.hash().short(),
                    history.adversarial[&version.hash()]
                ),
            ));
            return;
        }
    }
    let mut trust: Option<&TrustSet> = None;
    for version in reference {
        // Genesis is signed by the set it declares; every later version by
        // the set in force before it.
        if trust.is_none() {
            trust = version.header.trust.as_ref();
        }
        if let Some(in_force) = trust {
            let hash = version.hash();
            let signers: BTreeSet<_> = version
                .signatures
                .iter()
                .filter(|a| in_force.keys().contains(&a.key) && a.key.verifies(&hash, &a.signature))
                .map(|a| a.key)
                .collect();
            if (signers.len() as u32) < in_force.threshold() {
                found.push(violation(
                    "2 admission (M distinct approvers)",
                    format!(
                        "seq {} carries {} distinct valid approver(s) of the trust set in force, {} required",
                        version.header.seq,
                        signers.len(),
                        in_force.threshold()
                    ),
                ));
                return;
            }
        }
        if let Some(declared) = &version.header.trust {
            trust = Some(declared);
        }
    }
}

/// Invariant 3: a rollback restores exactly the bundle of its target.
fn rollbacks_restore_their_target(reference: &[Version], found: &mut Vec<Violation>) {
    for version in reference {
        if let stele_ledger::Kind::Rollback { to_seq } = version.header.kind {
            let target = to_seq
                .checked_sub(1)
                .and_then(|i| reference.get(i as usize))
                .filter(|target| target.header.seq < version.header.seq);
            if target.map(|t| t.header.bundle_digest) != Some(version.header.bundle_digest) {
                found.push(violation(
                    "3 no rollback",
                    format!(
                        "seq {} rolls back to seq {to_seq} with a bundle that is not that version's",
                        version.header.seq
                    ),
                ));
                return;
            }
        }
    }
}

/// Invariant 6: a node that answers at time t serves every version
/// acknowledged before t − max_staleness − slack.
fn bounded_staleness(history: &History, found: &mut Vec<Violation>) {
    let bound = (MAX_STALENESS + STALENESS_SLACK).as_millis() as u64;
    for decision in &history.decisions {
        let Answer::Served { seq, .. } = decision.answer else {
            continue;
        };
        let Some(cutoff) = decision.at_ms.checked_sub(bound) else {
            continue;
        };
        if let Some(missed) = history
            .commits
            .iter()
            .filter(|c| c.at_ms <= cutoff && c.seq > seq)
            .min_by_key(|c| c.at_ms)
        {
            found.push(violation(
                "6 bounded staleness",
                format!(
                    "node {} served seq {seq} at {} ms, but seq {} was acknowledged at {} ms, more than {bound} ms earlier",
                    decision.node, decision.at_ms, missed.seq, missed.at_ms
                ),
            ));
            return;
        }
    }
}
