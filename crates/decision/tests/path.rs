//! The decision path, alone: every reason a node does not decide, each
//! decision counted once, in the one place it is counted, and logged with
//! the version that made it.

use std::sync::Arc;
use std::time::Duration;

use stele_audit::{DecisionLog, Expected, LogConfig, Unlogged};
use stele_decision::{
    DecisionPath, Freshness, NotReady, OnStale, Question, Settings, StaleAnswers, Undecided,
};
use stele_ledger::{BundleFiles, Hash, Head, WallClock};
use stele_policy::{Outcome, Query, QueryError, Snapshot};
use stele_store::{Published, Served};

const SCHEMA: &str = "entity User; entity Doc;\n\
    action read appliesTo { principal: [User], resource: [Doc], context: { level: Long } };\n";
const POLICY: &str = "@id(\"readers\") permit(principal, action == Action::\"read\", resource) when { context.level >= 3 };\n";

fn bundle() -> BundleFiles {
    let mut files = BundleFiles::default();
    files
        .insert("schema.cedarschema".into(), SCHEMA.into())
        .unwrap();
    files.insert("access.cedar".into(), POLICY.into()).unwrap();
    files
}

fn head(seq: u64) -> Head {
    Head {
        seq,
        hash: Hash::of_bytes(&seq.to_be_bytes()),
    }
}

fn serve(published: &Published, seq: u64) {
    let snapshot = Arc::new(Snapshot::compile(&bundle()).unwrap());
    published.serve(Served::new(head(seq), snapshot));
}

fn question(level: i64) -> Result<Question, QueryError> {
    Query::parse(
        "User::\"alice\"",
        "Action::\"read\"",
        "Doc::\"d\"",
        Some(&format!("{{\"level\": {level}}}")),
    )
    .map(Question::from)
}

struct Fixture {
    published: Arc<Published>,
    freshness: Arc<Freshness>,
    path: DecisionPath,
}

fn fixture(on_stale: OnStale, log: Option<Arc<DecisionLog>>) -> Fixture {
    let published = Published::new();
    let freshness = Arc::new(Freshness::new(Duration::from_secs(5)));
    let settings = Settings {
        node_id: 3,
        on_stale,
        min_version_wait: Duration::from_millis(200),
        boot_id: 0xab,
    };
    let path = DecisionPath::new(settings, published.clone(), freshness.clone(), log);
    Fixture {
        published,
        freshness,
        path,
    }
}

/// Serving seq 1, with fresh evidence.
fn serving(on_stale: OnStale, log: Option<Arc<DecisionLog>>) -> Fixture {
    let fixture = fixture(on_stale, log);
    serve(&fixture.published, 1);
    fixture.freshness.note(Duration::ZERO, None);
    fixture
}

#[tokio::test]
async fn a_fresh_node_decides_and_counts_each_decision_once() {
    let node = serving(OnStale::Fail, None);
    let session = node.path.session(2, StaleAnswers::Flagged).unwrap();
    assert_eq!(session.version(), (1, head(1).hash.to_hex().as_str()));
    assert_eq!(session.stale(), None);
    let allowed = session.decide(question(5)).unwrap();
    assert_eq!(allowed.decision.decision, Outcome::Allow);
    assert_eq!(allowed.decision.reasons, vec!["readers".to_string()]);
    assert_eq!(allowed.decision_id, "3-000000ab-0");
    let denied = session.decide(question(1)).unwrap();
    assert_eq!(denied.decision.decision, Outcome::Deny);
    assert_eq!(denied.decision_id, "3-000000ab-1");
    let counted = node.path.counters().read();
    assert_eq!(
        (
            counted.allowed,
            counted.denied,
            counted.invalid,
            counted.refused
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(counted.latency_buckets.iter().sum::<u64>(), 2);
}

#[tokio::test]
async fn a_bad_question_is_invalid_and_counted_as_such() {
    let node = serving(OnStale::Fail, None);
    let session = node.path.session(1, StaleAnswers::Flagged).unwrap();
    let unreadable = session.decide(Err(QueryError("principal is missing".into())));
    assert_eq!(
        unreadable,
        Err(Undecided::Invalid(QueryError(
            "principal is missing".into()
        )))
    );
    // Read, but not what the schema says: Cedar's validation refuses it.
    let off_schema = Query::parse(
        "User::\"alice\"",
        "Action::\"read\"",
        "Doc::\"d\"",
        Some("{\"level\": \"high\"}"),
    );
    let refused = session.decide(off_schema.map(Question::from)).unwrap_err();
    assert!(matches!(refused, Undecided::Invalid(_)), "{refused}");
    assert_eq!(refused.reason(), None);
    let counted = node.path.counters().read();
    assert_eq!(
        (counted.invalid, counted.allowed, counted.refused),
        (2, 0, 0)
    );
}

#[tokio::test]
async fn a_node_without_policy_refuses_every_decision_asked() {
    let node = fixture(OnStale::Fail, None);
    let refused = node.path.session(7, StaleAnswers::Flagged).err().unwrap();
    assert_eq!(refused, Undecided::NoPolicy);
    assert_eq!(refused.reason(), Some(stele_ledger::Reason::NoPolicy));
    assert_eq!(node.path.counters().read().refused, 7);
    assert_eq!(
        node.path.readiness(StaleAnswers::Flagged),
        Err(NotReady::NoPolicy)
    );
}

#[tokio::test]
async fn a_stale_node_refuses_unless_it_serves_stale_to_a_caller_it_can_tell() {
    for (on_stale, answers, serves) in [
        (OnStale::Fail, StaleAnswers::Flagged, false),
        (OnStale::Fail, StaleAnswers::Refused, false),
        (OnStale::Serve, StaleAnswers::Refused, false),
        (OnStale::Serve, StaleAnswers::Flagged, true),
    ] {
        let node = fixture(on_stale, None);
        serve(&node.published, 4);
        let case = format!("{on_stale:?} {answers:?}");
        match node.path.session(3, answers) {
            Ok(session) => {
                assert!(serves, "{case}");
                let stale = session.stale().expect("flagged stale");
                assert_eq!(stale.age, None, "{case}");
                session.decide(question(5)).unwrap();
                assert_eq!(node.path.counters().read().allowed, 1, "{case}");
            }
            Err(refused) => {
                assert!(!serves, "{case}");
                assert!(
                    matches!(refused, Undecided::Stale { served_seq: 4, .. }),
                    "{case}: {refused}"
                );
                assert!(refused.to_string().starts_with("STALE: "), "{refused}");
                assert_eq!(node.path.counters().read().refused, 3, "{case}");
            }
        }
        assert_eq!(
            node.path.readiness(answers).is_ok(),
            serves,
            "readiness agrees with the session: {case}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_version_not_reached_in_time_is_refused_for_every_decision_asked() {
    let node = serving(OnStale::Fail, None);
    let refused = node.path.reach(2, None, 5).await.unwrap_err();
    assert_eq!(
        refused,
        Undecided::BehindMinVersion {
            served_seq: 1,
            min_version: 2
        }
    );
    assert_eq!(node.path.counters().read().refused, 5);
    // A version that arrives while the caller waits is reached.
    let waiting = node.path.reach(2, Some(Duration::from_secs(1)), 1);
    let published = node.published.clone();
    let (reached, ()) = tokio::join!(waiting, async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        serve(&published, 2);
    });
    assert_eq!(reached, Ok(()));
    assert_eq!(node.path.counters().read().refused, 5);
}

fn clock() -> WallClock {
    Arc::new(|| 1_767_225_600_000)
}

#[tokio::test]
async fn every_decision_is_logged_with_the_version_that_made_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let key = stele_ledger::SecretKey::from_seed([9; 32]);
    let log = DecisionLog::open(LogConfig::new(dir.clone()), key, 3, clock()).unwrap();
    let log = Arc::new(log);
    let node = serving(OnStale::Fail, Some(log.clone()));
    let session = node.path.session(1, StaleAnswers::Flagged).unwrap();
    let decided = session.decide(question(5)).unwrap();
    log.close();
    let mut records = Vec::new();
    let public = stele_ledger::SecretKey::from_seed([9; 32]).public_key();
    stele_audit::verify(&dir, &public, &Expected::default(), |r| {
        records.push(r.clone())
    })
    .unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.decision_id, decided.decision_id);
    assert_eq!((record.seq, record.hash), (1, head(1).hash));
    assert_eq!(record.decision, "allow");
    assert_eq!(record.reasons, vec!["readers".to_string()]);
    assert_eq!(record.time_ms, 1_767_225_600_000, "the injected clock");
}

#[tokio::test]
async fn a_decision_the_log_will_not_take_is_not_answered() {
    let root = tempfile::tempdir().unwrap();
    let key = stele_ledger::SecretKey::from_seed([9; 32]);
    let log = DecisionLog::open(LogConfig::new(root.path().join("d")), key, 3, clock()).unwrap();
    let log = Arc::new(log);
    let node = serving(OnStale::Fail, Some(log.clone()));
    let session = node.path.session(1, StaleAnswers::Flagged).unwrap();
    log.close();
    let refused = session.decide(question(5)).unwrap_err();
    assert_eq!(refused, Undecided::Unlogged(Unlogged::Closed));
    assert_eq!(
        refused.reason(),
        Some(stele_ledger::Reason::DecisionLogUnavailable)
    );
    let counted = node.path.counters().read();
    assert_eq!(
        (counted.allowed, counted.refused),
        (0, 1),
        "refused once, never counted as answered"
    );
}
