//! A node's counters, and their Prometheus text form (`GET /metrics`).
//!
//! Counters are plain atomics bumped on the decision path (a few relaxed
//! adds per decision); everything else is read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stele_policy::Outcome;

use crate::decision_log::SignedHead;

/// Upper bounds of the decision latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3, 250e-3,
];

#[derive(Default)]
pub struct Metrics {
    allowed: AtomicU64,
    denied: AtomicU64,
    /// Requests that could not be evaluated (bad input).
    invalid: AtomicU64,
    /// Calls refused whole: no policy, stale, behind a minimum version.
    refused: AtomicU64,
    /// Per bucket of `LATENCY_BUCKETS`, then the overflow bucket.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_nanos: AtomicU64,
    /// Proposals and approvals this node decided, by verdict.
    proposals: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// One evaluated decision and how long evaluating it took.
    pub fn decided(&self, outcome: Outcome, took: Duration) {
        match outcome {
            Outcome::Allow => &self.allowed,
            Outcome::Deny => &self.denied,
        }
        .fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn invalid(&self) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, decisions: u64) {
        self.refused.fetch_add(decisions, Ordering::Relaxed);
    }

    pub fn proposal(&self, verdict: &str) {
        let mut proposals = self.proposals.lock().expect("metrics lock");
        *proposals.entry(verdict.to_string()).or_default() += 1;
    }

    /// The counters in Prometheus text exposition format, followed by the
    /// gauges the caller read at scrape time.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        family(
            &mut out,
            "stele_decisions_total",
            "counter",
            "Decisions by outcome: allow and deny were evaluated; invalid could not be (bad input); refused were not answered (no policy, stale, behind the requested version, decision log unavailable).",
        );
        for (outcome, counter) in [
            ("allow", &self.allowed),
            ("deny", &self.denied),
            ("invalid", &self.invalid),
            ("refused", &self.refused),
        ] {
            sample(
                &mut out,
                "stele_decisions_total",
                &[("outcome", outcome)],
                load(counter),
            );
        }
        family(
            &mut out,
            "stele_decision_duration_seconds",
            "histogram",
            "Time to evaluate one decision against the served snapshot.",
        );
        let mut cumulative = 0;
        for (bound, counter) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += load(counter);
            let le = bound.to_string();
            sample(
                &mut out,
                "stele_decision_duration_seconds_bucket",
                &[("le", &le)],
                cumulative,
            );
        }
        cumulative += load(&self.latency_buckets[LATENCY_BUCKETS.len()]);
        sample(
            &mut out,
            "stele_decision_duration_seconds_bucket",
            &[("le", "+Inf")],
            cumulative,
        );
        let sum = load(&self.latency_sum_nanos) as f64 / 1e9;
        writeln!(out, "stele_decision_duration_seconds_sum {sum}").expect("String");
        writeln!(out, "stele_decision_duration_seconds_count {cumulative}").expect("String");
        family(
            &mut out,
            "stele_proposals_total",
            "counter",
            "Proposals, approvals and rollbacks this node decided as leader, by verdict (pending, committed, already_committed, or the refusal reason).",
        );
        for (verdict, count) in self.proposals.lock().expect("metrics lock").iter() {
            sample(
                &mut out,
                "stele_proposals_total",
                &[("verdict", verdict)],
                *count,
            );
        }
        gauges.render(&mut out);
        out
    }
}

/// What a scrape reads from the node's state rather than from counters.
pub struct Gauges {
    pub node_id: u64,
    /// The served version: seq and hash.
    pub served: Option<(u64, String)>,
    /// Time since the last evidence that this node is current; `None` when
    /// it never had any.
    pub staleness: Option<Duration>,
    pub max_staleness: Duration,
    pub ready: bool,
    pub raft_term: u64,
    pub raft_leader: Option<u64>,
    pub raft_is_leader: bool,
    pub raft_last_log_index: u64,
    /// The highest entry this node knows to be committed; `None` when Raft
    /// did not answer (it is stopping).
    pub raft_commit_index: Option<u64>,
    pub raft_applied_index: u64,
    /// The decision log, when it is on.
    pub log: Option<LogGauges>,
}

pub struct LogGauges {
    pub queue_depth: u64,
    pub dropped: u64,
    /// Decisions answered and then lost when the writer failed.
    pub lost: u64,
    /// The writer failed: the node refuses decisions (or drops them).
    pub failed: bool,
    /// The last checkpoint signed: what `stele audit verify --expect-count
    /// --expect-head` checks a copy against.
    pub signed: Option<SignedHead>,
}

impl Gauges {
    fn render(&self, out: &mut String) {
        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            family(out, name, "gauge", help);
            writeln!(out, "{name} {value}").expect("String");
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            family(out, name, "counter", help);
            writeln!(out, "{name} {value}").expect("String");
        };
        gauge(
            out,
            "stele_node_id",
            "This node's id.",
            self.node_id.to_string(),
        );
        if let Some((seq, hash)) = &self.served {
            gauge(
                out,
                "stele_served_seq",
                "The seq of the policy version this node answers from.",
                seq.to_string(),
            );
            family(
                out,
                "stele_served_version",
                "gauge",
                "Always 1; its labels name the served version.",
            );
            sample(
                out,
                "stele_served_version",
                &[("seq", &seq.to_string()), ("hash", hash)],
                1,
            );
        }
        let staleness = self
            .staleness
            .map_or("+Inf".to_string(), |age| age.as_secs_f64().to_string());
        gauge(
            out,
            "stele_staleness_seconds",
            "Time since this node last had evidence it serves current policy (+Inf: never).",
            staleness,
        );
        gauge(
            out,
            "stele_max_staleness_seconds",
            "The staleness bound beyond which this node refuses decisions (or flags them, with --on-stale serve).",
            self.max_staleness.as_secs_f64().to_string(),
        );
        gauge(
            out,
            "stele_ready",
            "1 when this node serves a current policy version.",
            u8::from(self.ready).to_string(),
        );
        gauge(
            out,
            "stele_raft_term",
            "The Raft term.",
            self.raft_term.to_string(),
        );
        gauge(
            out,
            "stele_raft_leader_id",
            "The leader this node knows of (0: none).",
            self.raft_leader.unwrap_or(0).to_string(),
        );
        gauge(
            out,
            "stele_raft_is_leader",
            "1 while this node leads.",
            u8::from(self.raft_is_leader).to_string(),
        );
        gauge(
            out,
            "stele_raft_last_log_index",
            "The index of the last entry in this node's Raft log.",
            self.raft_last_log_index.to_string(),
        );
        gauge(
            out,
            "stele_raft_applied_index",
            "The index of the last entry this node applied.",
            self.raft_applied_index.to_string(),
        );
        if let Some(commit_index) = self.raft_commit_index {
            gauge(
                out,
                "stele_raft_commit_index",
                "The index of the last entry this node knows to be committed.",
                commit_index.to_string(),
            );
            gauge(
                out,
                "stele_raft_apply_lag",
                "Committed entries this node has not applied yet.",
                commit_index
                    .saturating_sub(self.raft_applied_index)
                    .to_string(),
            );
        }
        if let Some(log) = &self.log {
            gauge(
                out,
                "stele_decision_log_queue_depth",
                "Decisions waiting to be written to the decision log.",
                log.queue_depth.to_string(),
            );
            counter(
                out,
                "stele_decision_log_dropped_total",
                "Decisions answered but not logged (--decision-log-when-full drop); the log records each gap.",
                log.dropped,
            );
            counter(
                out,
                "stele_decision_log_lost_total",
                "Decisions answered and then lost when the decision log's writer failed: taken from its queue and not known to be written.",
                log.lost,
            );
            gauge(
                out,
                "stele_decision_log_failed",
                "1 when the decision log cannot be written: the node refuses decisions (or, told to drop, answers them unlogged).",
                u8::from(log.failed).to_string(),
            );
            if let Some(signed) = log.signed {
                gauge(
                    out,
                    "stele_decision_log_signed_count",
                    "Records covered by the last checkpoint the node signed (stele audit verify --expect-count).",
                    signed.count.to_string(),
                );
                family(
                    out,
                    "stele_decision_log_signed_head",
                    "gauge",
                    "Always 1; its label is the hash of the last record the last checkpoint covers (--expect-head).",
                );
                sample(
                    out,
                    "stele_decision_log_signed_head",
                    &[("hash", &signed.head.to_string())],
                    1,
                );
            }
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    writeln!(out, "# HELP {name} {help}").expect("String");
    writeln!(out, "# TYPE {name} {kind}").expect("String");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    out.push('{');
    for (i, (key, label)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write!(out, "{key}=\"{}\"", escape(label)).expect("String");
    }
    writeln!(out, "}} {value}").expect("String");
}

/// Prometheus label values escape backslash, quote and newline.
fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            node_id: 2,
            served: Some((7, "ab".repeat(32))),
            staleness: Some(Duration::from_millis(250)),
            max_staleness: Duration::from_secs(2),
            ready: true,
            raft_term: 3,
            raft_leader: Some(1),
            raft_is_leader: false,
            raft_last_log_index: 41,
            raft_commit_index: Some(40),
            raft_applied_index: 38,
            log: Some(LogGauges {
                queue_depth: 3,
                dropped: 1,
                lost: 4,
                failed: false,
                signed: Some(SignedHead {
                    count: 12,
                    head: stele_ledger::Hash::ZERO,
                }),
            }),
        }
    }

    #[test]
    fn decisions_fill_the_histogram_cumulatively() {
        let metrics = Metrics::default();
        metrics.decided(Outcome::Allow, Duration::from_micros(3));
        metrics.decided(Outcome::Deny, Duration::from_micros(30));
        metrics.decided(Outcome::Deny, Duration::from_secs(1));
        metrics.invalid();
        metrics.refused(5);
        metrics.proposal("committed");
        metrics.proposal("stale_parent");
        metrics.proposal("committed");
        let text = metrics.render(&gauges());
        for line in [
            "stele_decisions_total{outcome=\"allow\"} 1",
            "stele_decisions_total{outcome=\"deny\"} 2",
            "stele_decisions_total{outcome=\"invalid\"} 1",
            "stele_decisions_total{outcome=\"refused\"} 5",
            "stele_decision_duration_seconds_bucket{le=\"0.000005\"} 1",
            "stele_decision_duration_seconds_bucket{le=\"0.00005\"} 2",
            "stele_decision_duration_seconds_bucket{le=\"0.25\"} 2",
            "stele_decision_duration_seconds_bucket{le=\"+Inf\"} 3",
            "stele_decision_duration_seconds_count 3",
            "stele_proposals_total{verdict=\"committed\"} 2",
            "stele_proposals_total{verdict=\"stale_parent\"} 1",
            "stele_served_seq 7",
            "stele_staleness_seconds 0.25",
            "stele_raft_last_log_index 41",
            "stele_raft_commit_index 40",
            "stele_raft_apply_lag 2",
            "stele_raft_leader_id 1",
            "stele_decision_log_queue_depth 3",
            "stele_decision_log_dropped_total 1",
            "stele_decision_log_lost_total 4",
            "stele_decision_log_failed 0",
            "stele_decision_log_signed_count 12",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
