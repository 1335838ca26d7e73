//! The decision path: a call opens a [`Session`] ([`DecisionPath::open`]:
//! wait for the version it asked for, then one atomic load of the served
//! snapshot, where the node's freshness and its log decide whether it
//! answers at all), then asks it its questions ([`Session::decide`]). One
//! batch is one session: every answer in it comes from the same version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stele_audit::{DecisionLog, ToLog};
use stele_ledger::Head;
use stele_policy::{Outcome, QueryError};
use stele_store::{Published, Served, ServedGuard};

use crate::counters::DecisionCounters;
use crate::freshness::{Freshness, Stale};
use crate::ids::DecisionIds;
use crate::logged::Asked;
use crate::outcome::{Decided, Question, Undecided};
use crate::readiness::{NotReady, Ready};

/// What a node does when it cannot show it is current.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStale {
    /// Answer with an explicit STALE error (the safe default).
    #[default]
    Fail,
    /// Answer anyway, flagging the decision `stale: true`.
    Serve,
}

/// Whether a caller's protocol can carry a stale flag with an answer. Over
/// gRPC it can (`stale: true`), so `--on-stale` decides; an AuthZEN caller
/// reads `decision` alone, so a stale node refuses it whatever `--on-stale`
/// says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleAnswers {
    Flagged,
    Refused,
}

/// What a call asks of the path before its questions.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    /// How many decisions the call asked for: counted as refused if the
    /// node does not answer it.
    pub decisions: u64,
    /// Answer only from this version seq or a newer one.
    pub min_version: Option<u64>,
    /// How long the caller said it would wait.
    pub deadline: Option<Duration>,
    pub answers: StaleAnswers,
}

/// Why the node would not answer now, before any question.
enum NotServing {
    Removed,
    NoPolicy,
    Unlogged(stele_audit::Unlogged),
    Stale { served_seq: u64, stale: Stale },
}

/// The decision path's own settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub node_id: u64,
    pub on_stale: OnStale,
    /// Longest wait for a `min_version` before refusing.
    pub min_version_wait: Duration,
    /// Drawn at each start: decision ids stay unique across restarts.
    pub boot_id: u32,
}

pub struct DecisionPath {
    node_id: u64,
    on_stale: OnStale,
    min_version_wait: Duration,
    published: Arc<Published>,
    freshness: Arc<Freshness>,
    log: Option<Arc<DecisionLog>>,
    ids: DecisionIds,
    counters: DecisionCounters,
    /// Set when the node learns it was removed from the cluster.
    removed: AtomicBool,
}

impl DecisionPath {
    pub fn new(
        settings: Settings,
        published: Arc<Published>,
        freshness: Arc<Freshness>,
        log: Option<Arc<DecisionLog>>,
    ) -> DecisionPath {
        DecisionPath {
            node_id: settings.node_id,
            on_stale: settings.on_stale,
            min_version_wait: settings.min_version_wait,
            published,
            freshness,
            log,
            ids: DecisionIds::new(settings.node_id, settings.boot_id),
            counters: DecisionCounters::default(),
            removed: AtomicBool::new(false),
        }
    }

    /// Whether this node was removed from the cluster: while it is, it
    /// decides nothing ([`Undecided::Removed`]) and is not ready.
    pub fn set_removed(&self, removed: bool) {
        self.removed.store(removed, Ordering::Relaxed);
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn counters(&self) -> &DecisionCounters {
        &self.counters
    }

    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// The decision log, when the node keeps one.
    pub fn log(&self) -> Option<&Arc<DecisionLog>> {
        self.log.as_ref()
    }

    /// A session for the call `ask` describes: [`DecisionPath::reach`] its
    /// min version, then [`DecisionPath::session`].
    pub async fn open(&self, ask: Ask) -> Result<Session<'_>, Undecided> {
        if let Some(min_version) = ask.min_version {
            self.reach(min_version, ask.deadline, ask.decisions).await?;
        }
        self.session(ask.decisions, ask.answers)
    }

    /// Waits, up to the bound, until this node serves `min_version` or
    /// later; `deadline` is how long the caller said it would wait, and
    /// the answer comes before it, so the caller hears why. The served seq
    /// never decreases, so a session opened afterwards is new enough.
    /// `decisions` (how many the call asked for) are counted as refused
    /// when the version does not come.
    pub async fn reach(
        &self,
        min_version: u64,
        deadline: Option<Duration>,
        decisions: u64,
    ) -> Result<(), Undecided> {
        let reached = |head: &Option<Head>| head.is_some_and(|h| h.seq >= min_version);
        let mut watch = self.published.watch_served();
        if reached(&watch.borrow_and_update()) {
            return Ok(());
        }
        let bound = deadline.map_or(self.min_version_wait, |d| {
            d.saturating_sub(d / 10 + Duration::from_millis(20))
                .min(self.min_version_wait)
        });
        match tokio::time::timeout(bound, watch.wait_for(reached)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.refuse(
                decisions,
                Undecided::BehindMinVersion {
                    served_seq: self.served_seq(),
                    min_version,
                },
            )),
        }
    }

    /// A session on the snapshot served now, if this node answers now:
    /// it has a policy, its log can take decisions, and it can show it is
    /// current (or serves stale on purpose, to a caller that can be told).
    /// `decisions` are counted as refused when it does not answer.
    pub fn session(&self, decisions: u64, answers: StaleAnswers) -> Result<Session<'_>, Undecided> {
        let (served, stale) = self.serving(answers).map_err(|why| {
            let undecided = match why {
                NotServing::Removed => Undecided::Removed,
                NotServing::NoPolicy => Undecided::NoPolicy,
                NotServing::Unlogged(why) => Undecided::Unlogged(why),
                NotServing::Stale { served_seq, stale } => Undecided::Stale { stale, served_seq },
            };
            self.refuse(decisions, undecided)
        })?;
        Ok(Session {
            path: self,
            served,
            stale,
        })
    }

    /// Whether this node would decide now, for a caller whose answers are
    /// `answers`: what `/readyz`, `/metrics` and gRPC health report. The
    /// same checks as [`DecisionPath::session`], in the same order.
    pub fn readiness(&self, answers: StaleAnswers) -> Result<Ready, NotReady> {
        match self.serving(answers) {
            Ok((served, _)) => {
                let served = served.as_deref().expect("serving a version");
                Ok(Ready {
                    seq: served.head.seq,
                    hash: served.hash_hex.clone(),
                })
            }
            Err(NotServing::Removed) => Err(NotReady::Removed),
            Err(NotServing::NoPolicy) => Err(NotReady::NoPolicy),
            Err(NotServing::Unlogged(why)) => Err(NotReady::Unlogged(why)),
            Err(NotServing::Stale { served_seq, stale }) => {
                Err(NotReady::Stale { served_seq, stale })
            }
        }
    }

    /// The served version, and why it is served stale if it is: whether
    /// this node answers now. Membership first, then a policy, then a log
    /// that takes decisions, then freshness.
    fn serving(&self, answers: StaleAnswers) -> Result<(ServedGuard, Option<Stale>), NotServing> {
        if self.is_removed() {
            return Err(NotServing::Removed);
        }
        let served = self.published.served();
        let Some(current) = served.as_deref() else {
            return Err(NotServing::NoPolicy);
        };
        if let Some(why) = self.log.as_ref().and_then(|log| log.refuses()) {
            return Err(NotServing::Unlogged(why));
        }
        let served_seq = current.head.seq;
        match self.freshness.check() {
            Ok(()) => Ok((served, None)),
            Err(stale) if self.serves_stale(answers) => Ok((served, Some(stale))),
            Err(stale) => Err(NotServing::Stale { served_seq, stale }),
        }
    }

    fn serves_stale(&self, answers: StaleAnswers) -> bool {
        self.on_stale == OnStale::Serve && answers == StaleAnswers::Flagged
    }

    fn served_seq(&self) -> u64 {
        self.published.served().as_ref().map_or(0, |s| s.head.seq)
    }

    fn refuse(&self, decisions: u64, undecided: Undecided) -> Undecided {
        self.counters.refused(decisions);
        undecided
    }
}

/// Answers from one served version.
pub struct Session<'a> {
    path: &'a DecisionPath,
    served: ServedGuard,
    stale: Option<Stale>,
}

impl Session<'_> {
    fn served(&self) -> &Served {
        self.served
            .as_deref()
            .expect("a session opens only on a served version")
    }

    /// The version every answer of this session comes from: its seq and
    /// its hash in hex.
    pub fn version(&self) -> (u64, &str) {
        let served = self.served();
        (served.head.seq, &served.hash_hex)
    }

    /// Why the node cannot show it is current, when it answers anyway
    /// (`--on-stale serve`): each answer must say so.
    pub fn stale(&self) -> Option<Stale> {
        self.stale
    }

    /// Evaluates one question, hands the decision to the log, and counts
    /// it (by outcome, once the log took it). A question that could not be
    /// read, or not evaluated, is counted as invalid.
    pub fn decide(&self, question: Result<Question, QueryError>) -> Result<Decided, Undecided> {
        let counters = &self.path.counters;
        let invalid = |why: QueryError| {
            counters.invalid();
            Undecided::Invalid(why)
        };
        let question = question.map_err(invalid)?;
        let started = Instant::now();
        let snapshot = &self.served().snapshot;
        let decision = if question.described.is_empty() {
            snapshot.evaluate(&question.query)
        } else {
            snapshot.evaluate_described(&question.query, &question.described)
        }
        .map_err(invalid)?;
        let took = started.elapsed();
        let decision_id = self.path.ids.next();
        if let Some(log) = &self.path.log {
            let served = self.served();
            let seq = served.head.seq;
            #[cfg(stele_sim)]
            let seq =
                match stele_ledger::defects::active(stele_ledger::defects::Defect::LogWrongVersion)
                {
                    true => seq.saturating_sub(1),
                    false => seq,
                };
            log.record(ToLog {
                decision_id: &decision_id,
                seq,
                hash: served.head.hash,
                request: &Asked {
                    query: &question.query,
                    described: &question.described,
                },
                allowed: decision.decision == Outcome::Allow,
                reasons: &decision.reasons,
                errors: &decision.errors,
            })
            .map_err(|why| self.path.refuse(1, Undecided::Unlogged(why)))?;
        }
        counters.decided(decision.decision, took);
        Ok(Decided {
            decision,
            decision_id,
        })
    }
}
