//! Decision time in process, stele's indexed snapshot against raw Cedar
//! (`Authorizer::is_authorized` over the whole set, the same request), on
//! synthetic RBAC and ABAC bundles of 10 to 100,000 policies; snapshot
//! compile time; the heap a compiled snapshot holds. Also the example
//! bundle's scenario requests (what `stele bench check` sends by default),
//! split into parsing a request and deciding it.
//!
//!     cargo bench --bench decision
//!     STELE_BENCH_MAX_POLICIES=10000 cargo bench --bench decision   # quicker

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use stele_policy::synthetic::{self, Shape};
use stele_policy::{EntityRef, Query, Snapshot, scenario_queries};

mod support;

/// Counts the bytes currently allocated, to weigh a compiled snapshot.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const COUNTS: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];
const REQUESTS: usize = 256;

fn counts() -> impl Iterator<Item = usize> {
    let max = std::env::var("STELE_BENCH_MAX_POLICIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    COUNTS.into_iter().filter(move |&n| n <= max)
}

fn queries(shape: Shape, policies: usize) -> Vec<Query> {
    synthetic::requests(shape, policies, REQUESTS)
        .iter()
        .map(|line| Query::from_json(line).unwrap())
        .collect()
}

fn decisions(c: &mut Criterion) {
    for (shape, name) in [(Shape::Rbac, "rbac"), (Shape::Abac, "abac")] {
        let mut group = c.benchmark_group(format!("decision_{name}"));
        for policies in counts() {
            let snapshot = Snapshot::compile(&synthetic::bundle(shape, policies)).unwrap();
            let queries = queries(shape, policies);
            let candidates: usize = queries
                .iter()
                .map(|q| snapshot.candidate_count(q).unwrap())
                .sum();
            eprintln!(
                "{name} {policies}: {:.1} policies handed to Cedar per request on average",
                candidates as f64 / queries.len() as f64
            );
            let mut next = queries.iter().cycle();
            group.bench_with_input(BenchmarkId::new("indexed", policies), &(), |b, _| {
                b.iter(|| snapshot.evaluate(next.next().unwrap()).unwrap())
            });
            // Raw Cedar at 10,000+ policies takes milliseconds a decision.
            if policies >= 10_000 {
                group
                    .sample_size(10)
                    .measurement_time(Duration::from_secs(4));
            }
            group.bench_with_input(
                BenchmarkId::new("baseline_raw_cedar", policies),
                &(),
                |b, _| b.iter(|| snapshot.evaluate_unindexed(next.next().unwrap()).unwrap()),
            );
            group
                .sample_size(100)
                .measurement_time(Duration::from_secs(5));
        }
        group.finish();
    }
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile_rbac");
    group.sample_size(10);
    for policies in counts() {
        let bundle = synthetic::bundle(Shape::Rbac, policies);
        let before = HELD.load(Ordering::Relaxed);
        let snapshot = Snapshot::compile(&bundle).unwrap();
        let held = HELD.load(Ordering::Relaxed) - before;
        eprintln!(
            "rbac {policies}: a compiled snapshot holds {:.1} MiB ({} bytes of bundle)",
            held as f64 / (1024.0 * 1024.0),
            bundle.total_bytes()
        );
        drop(snapshot);
        group.bench_with_input(
            BenchmarkId::from_parameter(policies),
            &bundle,
            |b, bundle| b.iter(|| Snapshot::compile(bundle).unwrap()),
        );
    }
    group.finish();
}

/// The example's scenario requests, as the node receives them: entity
/// references and a context object.
fn example_requests() -> Vec<(EntityRef, EntityRef, EntityRef, serde_json::Value)> {
    scenario_queries(&support::example())
        .unwrap()
        .iter()
        .map(|q| {
            let [principal, action, resource] = q.entity_refs();
            (principal, action, resource, q.context().clone())
        })
        .collect()
}

fn example(c: &mut Criterion) {
    let snapshot = Snapshot::compile(&support::example()).unwrap();
    let requests = example_requests();
    let queries: Vec<Query> = requests
        .iter()
        .map(|(p, a, r, context)| Query::from_parts(p, a, r, Some(context.clone())).unwrap())
        .collect();
    let mut group = c.benchmark_group("decision_example");
    let mut next = requests.iter().cycle();
    group.bench_function("parse_request", |b| {
        b.iter(|| {
            let (p, a, r, context) = next.next().unwrap();
            Query::from_parts(p, a, r, Some(context.clone())).unwrap()
        })
    });
    let mut next = queries.iter().cycle();
    group.bench_function("indexed", |b| {
        b.iter(|| snapshot.evaluate(next.next().unwrap()).unwrap())
    });
    group.bench_function("baseline_raw_cedar", |b| {
        b.iter(|| snapshot.evaluate_unindexed(next.next().unwrap()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, example, decisions, compile);
criterion_main!(benches);
