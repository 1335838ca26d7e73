//! A steady stream of decisions at every node, each recorded with the
//! version that made it: the raw material of the staleness, monotonicity
//! and replay checkers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stele_client::Client;
use stele_ledger::Reason;
use stele_proto::v1::{CheckRequest, EntityRef, Outcome};

use crate::fixtures;
use crate::history::{Answer, Decision, Probe, Shared, now_ms};
use crate::net;

const CALL_TIMEOUT: Duration = Duration::from_millis(500);

pub fn request(probe: &Probe) -> CheckRequest {
    let entity = |kind: &str, id: &str| EntityRef {
        r#type: kind.into(),
        id: id.into(),
    };
    CheckRequest {
        principal: Some(entity("User", probe.principal)),
        action: Some(entity("Action", probe.action)),
        resource: Some(entity("Doc", "d1")),
        context_json: format!("{{\"level\":{}}}", probe.level),
        min_version: None,
    }
}

/// Asks `node` one question.
pub async fn ask(client: &Client, probe: &Probe) -> Answer {
    match client.check(request(probe)).await {
        Ok(reply) => {
            let Some(version) = reply.version else {
                return Answer::Failed;
            };
            Answer::Served {
                seq: version.seq,
                hash: version.hash,
                decision_id: reply.decision_id,
                allow: reply.decision == Outcome::Allow as i32,
                reasons: reply.reasons,
                errors: reply.errors,
            }
        }
        Err(error) if error.reason() == Some(Reason::Stale) => Answer::Stale,
        Err(_) => Answer::Failed,
    }
}

/// Probes every node in `nodes` until `done`.
pub async fn run(
    seed: u64,
    nodes: Vec<u64>,
    history: Shared,
    done: Arc<AtomicBool>,
) -> turmoil::Result {
    let mut tasks = Vec::new();
    for node in nodes {
        let history = history.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (node << 32) ^ 0x9e37_79b9);
            let client =
                Client::from_channel(&net::addr(node), net::channel(&net::addr(node)).map_err(|e| e.to_string())?, CALL_TIMEOUT);
            let mut served_before: Option<u64> = None;
            while !done.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(50..150))).await;
                let probe = fixtures::probe(&mut rng);
                let answer = ask(&client, &probe).await;
                let at_ms = now_ms();
                // Invariant 4, checked as the run goes (the full check runs
                // at the end): a regression can be followed by a panic.
                if let Answer::Served { seq, .. } = &answer {
                    if let Some(before) = served_before
                        && *seq < before
                    {
                        crate::history::live_violation(format!(
                            "invariant 4 monotonic serving: node {node} served seq {before}, then seq {seq} at {at_ms} ms"
                        ));
                    }
                    served_before = Some(*seq);
                }
                let mut history = history.lock();
                let line = match &answer {
                    Answer::Served {
                        seq, hash, allow, ..
                    } => format!(
                        "decision node={node} seq={seq} hash={} allow={allow}",
                        &hash[..hash.len().min(16)]
                    ),
                    Answer::Stale => format!("decision node={node} stale"),
                    Answer::Failed => format!("decision node={node} failed"),
                };
                history.event(at_ms, line);
                history.decisions.push(Decision {
                    node,
                    at_ms,
                    probe,
                    answer,
                });
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
