//! A node's metrics in Prometheus text form (`GET /metrics`): the decision
//! path's counters, the proposals this node decided, and gauges read from
//! the node's state when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use stele_audit::SignedHead;
use stele_decision::{Counted, LATENCY_BUCKETS};

/// What the node counts beside the decision path: proposals and approvals
/// it decided as leader, by verdict.
#[derive(Default)]
pub struct Metrics {
    proposals: Mutex<BTreeMap<&'static str, u64>>,
    /// Raft messages (and replies) refused before openraft saw them, by check.
    raft_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Calls refused because the caller lacks the role they need.
    access_denied: std::sync::atomic::AtomicU64,
}

impl Metrics {
    /// One call refused for want of a role.
    pub fn access_denied(&self) {
        self.access_denied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One Raft message or reply refused by a check of the Raft guard
    /// (identity, term, index, log_id, snapshot, stream).
    pub fn raft_refused(&self, check: &'static str) {
        let mut refused = self.raft_refused.lock().expect("metrics lock");
        *refused.entry(check).or_default() += 1;
    }

    /// One write decided: its proposal state, or the reason it was refused.
    pub fn proposal(&self, verdict: &'static str) {
        let mut proposals = self.proposals.lock().expect("metrics lock");
        *proposals.entry(verdict).or_default() += 1;
    }

    /// Everything, in Prometheus text exposition format: the decision
    /// counters, the proposals, then the gauges read at scrape time.
    pub fn render(&self, decisions: &Counted, gauges: &Gauges) -> String {
        let mut out = String::new();
        render_decisions(&mut out, decisions);
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
        family(
            &mut out,
            "stele_raft_refused_total",
            "counter",
            "Raft messages from peers, and replies to this node's, refused before Raft saw them, by the check that refused them (identity, term, index, log_id, snapshot, stream).",
        );
        for (check, count) in self.raft_refused.lock().expect("metrics lock").iter() {
            sample(
                &mut out,
                "stele_raft_refused_total",
                &[("check", check)],
                *count,
            );
        }
        counter(
            &mut out,
            "stele_access_denied_total",
            "gRPC calls and HTTP requests refused because the caller's certificate (or its absence) does not grant the role they need.",
            self.access_denied
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        gauges.render(&mut out);
        out
    }
}

fn render_decisions(out: &mut String, counted: &Counted) {
    family(
        out,
        "stele_decisions_total",
        "counter",
        "Decisions by outcome: allow and deny were evaluated; invalid could not be (bad input); refused were not answered (no policy, stale, behind the requested version, decision log unavailable).",
    );
    for (outcome, count) in [
        ("allow", counted.allowed),
        ("deny", counted.denied),
        ("invalid", counted.invalid),
        ("refused", counted.refused),
    ] {
        sample(out, "stele_decisions_total", &[("outcome", outcome)], count);
    }
    family(
        out,
        "stele_decision_duration_seconds",
        "histogram",
        "Time to evaluate one decision against the served snapshot.",
    );
    let mut cumulative = 0;
    for (bound, count) in LATENCY_BUCKETS.iter().zip(&counted.latency_buckets) {
        cumulative += count;
        let le = bound.to_string();
        sample(
            out,
            "stele_decision_duration_seconds_bucket",
            &[("le", &le)],
            cumulative,
        );
    }
    cumulative += counted.latency_buckets[LATENCY_BUCKETS.len()];
    sample(
        out,
        "stele_decision_duration_seconds_bucket",
        &[("le", "+Inf")],
        cumulative,
    );
    let sum = counted.latency_sum.as_secs_f64();
    writeln!(out, "stele_decision_duration_seconds_sum {sum}").expect("String");
    writeln!(out, "stele_decision_duration_seconds_count {cumulative}").expect("String");
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
    /// Pending proposals from the store or a snapshot dropped because they
    /// did not verify.
    pub pending_dropped: u64,
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

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "gauge", help);
    writeln!(out, "{name} {value}").expect("String");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    writeln!(out, "{name} {value}").expect("String");
}

impl Gauges {
    fn render(&self, out: &mut String) {
        gauge(out, "stele_node_id", "This node's id.", self.node_id);
        if let Some((seq, hash)) = &self.served {
            gauge(
                out,
                "stele_served_seq",
                "The seq of the policy version this node answers from.",
                seq,
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
        self.render_freshness(out);
        self.render_raft(out);
        counter(
            out,
            "stele_pending_dropped_total",
            "Pending proposals read from the store or a snapshot that did not verify (a forged signature, a parent that is not the head) and were dropped.",
            self.pending_dropped,
        );
        if let Some(log) = &self.log {
            log.render(out);
        }
    }

    fn render_freshness(&self, out: &mut String) {
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
            self.max_staleness.as_secs_f64(),
        );
        gauge(
            out,
            "stele_ready",
            "1 when this node serves a current policy version.",
            u8::from(self.ready),
        );
    }

    fn render_raft(&self, out: &mut String) {
        gauge(out, "stele_raft_term", "The Raft term.", self.raft_term);
        gauge(
            out,
            "stele_raft_leader_id",
            "The leader this node knows of (0: none).",
            self.raft_leader.unwrap_or(0),
        );
        gauge(
            out,
            "stele_raft_is_leader",
            "1 while this node leads.",
            u8::from(self.raft_is_leader),
        );
        gauge(
            out,
            "stele_raft_last_log_index",
            "The index of the last entry in this node's Raft log.",
            self.raft_last_log_index,
        );
        gauge(
            out,
            "stele_raft_applied_index",
            "The index of the last entry this node applied.",
            self.raft_applied_index,
        );
        if let Some(commit_index) = self.raft_commit_index {
            gauge(
                out,
                "stele_raft_commit_index",
                "The index of the last entry this node knows to be committed.",
                commit_index,
            );
            gauge(
                out,
                "stele_raft_apply_lag",
                "Committed entries this node has not applied yet.",
                commit_index.saturating_sub(self.raft_applied_index),
            );
        }
    }
}

impl LogGauges {
    fn render(&self, out: &mut String) {
        gauge(
            out,
            "stele_decision_log_queue_depth",
            "Decisions waiting to be written to the decision log.",
            self.queue_depth,
        );
        counter(
            out,
            "stele_decision_log_dropped_total",
            "Decisions answered but not logged (--decision-log-when-full drop); the log records each gap.",
            self.dropped,
        );
        counter(
            out,
            "stele_decision_log_lost_total",
            "Decisions answered and then lost when the decision log's writer failed: taken from its queue and not known to be written.",
            self.lost,
        );
        gauge(
            out,
            "stele_decision_log_failed",
            "1 when the decision log cannot be written: the node refuses decisions (or, told to drop, answers them unlogged).",
            u8::from(self.failed),
        );
        if let Some(signed) = self.signed {
            gauge(
                out,
                "stele_decision_log_signed_count",
                "Records covered by the last checkpoint the node signed (stele audit verify --expect-count).",
                signed.count,
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
            pending_dropped: 0,
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
        let mut buckets = [0; LATENCY_BUCKETS.len() + 1];
        buckets[0] = 1; // 3 µs
        buckets[3] = 1; // 30 µs
        buckets[LATENCY_BUCKETS.len()] = 1; // 1 s
        let counted = Counted {
            allowed: 1,
            denied: 2,
            invalid: 1,
            refused: 5,
            latency_buckets: buckets,
            latency_sum: Duration::from_micros(1_000_033),
        };
        let metrics = Metrics::default();
        metrics.proposal("committed");
        metrics.proposal("stale_parent");
        metrics.proposal("committed");
        let text = metrics.render(&counted, &gauges());
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
