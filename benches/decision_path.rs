//! The decision path in process, without a transport: what `DecisionPath`
//! adds (a session's one atomic load, the freshness check, the decision id,
//! the counters, and with the log on, the record handed to the writer) to
//! the snapshot's own evaluation, measured in the same run on the 10,000
//! policy RBAC bundle and the example.
//!
//!     cargo bench --bench decision_path

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use stele_audit::{DecisionLog, LogConfig};
use stele_decision::{DecisionPath, Freshness, OnStale, Question, Settings, StaleAnswers};
use stele_ledger::{BundleFiles, Hash, Head, SecretKey};
use stele_policy::synthetic::{self, Shape};
use stele_policy::{Query, Snapshot, scenario_queries};
use stele_store::{Published, Served};

mod support;

/// A node's decision path serving `bundle`, current, with or without a
/// decision log (in `dir`).
fn path(bundle: &BundleFiles, log: Option<&std::path::Path>) -> (DecisionPath, Arc<Snapshot>) {
    let snapshot = Arc::new(Snapshot::compile(bundle).unwrap());
    let published = Published::new();
    let head = Head {
        seq: 1,
        hash: Hash::of_bytes(b"bench"),
    };
    published.serve(Served::new(head, snapshot.clone()));
    let freshness = Arc::new(Freshness::new(Duration::from_secs(3600)));
    freshness.note(Duration::ZERO, None);
    let log = log.map(|dir| {
        let config = LogConfig::new(dir.to_path_buf());
        let clock = stele_node::system_clock();
        Arc::new(DecisionLog::open(config, SecretKey::from_seed([1; 32]), 1, clock).unwrap())
    });
    let settings = Settings {
        node_id: 1,
        on_stale: OnStale::Fail,
        min_version_wait: Duration::from_secs(1),
        boot_id: 1,
    };
    (
        DecisionPath::new(settings, published, freshness, log),
        snapshot,
    )
}

fn bench_bundle(c: &mut Criterion, name: &str, bundle: &BundleFiles, queries: &[Query]) {
    let logs = tempfile::tempdir().unwrap();
    let (bare, snapshot) = path(bundle, None);
    let (logged, _) = path(bundle, Some(logs.path()));
    let mut group = c.benchmark_group(format!("decision_path_{name}"));
    let mut next = queries.iter().cycle();
    group.bench_function("baseline_snapshot_evaluate", |b| {
        b.iter(|| snapshot.evaluate(next.next().unwrap()).unwrap())
    });
    for (label, path) in [("path", &bare), ("path_logged", &logged)] {
        group.bench_function(label, |b| {
            b.iter(|| {
                let question = Question::from(next.next().unwrap().clone());
                let session = path.session(1, StaleAnswers::Flagged).unwrap();
                session.decide(Ok(question)).unwrap()
            })
        });
    }
    group.bench_function("clone_query", |b| {
        b.iter(|| Question::from(next.next().unwrap().clone()))
    });
    group.finish();
    if let Some(log) = logged.log() {
        log.close();
    }
}

fn bench(c: &mut Criterion) {
    let rbac = synthetic::bundle(Shape::Rbac, 10_000);
    let queries: Vec<Query> = synthetic::requests(Shape::Rbac, 10_000, 256)
        .iter()
        .map(|line| Query::from_json(line).unwrap())
        .collect();
    bench_bundle(c, "rbac_10000", &rbac, &queries);
    let example = support::example();
    let queries = scenario_queries(&example).unwrap();
    bench_bundle(c, "example", &example, &queries);
}

criterion_group!(benches, bench);
criterion_main!(benches);
