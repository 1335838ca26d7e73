//! What admission's bundle check costs for one bundle (examples/zero-trust:
//! 15 policies, 43 scenarios), against raw Cedar loading the same files.
//!
//!     cargo bench --bench bundle_check

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use stele_policy::{Snapshot, check_bundle, run_scenarios};
use support::{example, raw_cedar_load};

fn bench(c: &mut Criterion) {
    let bundle = example();
    let mut group = c.benchmark_group("bundle_check");
    group.bench_function("compile", |b| {
        b.iter(|| Snapshot::compile(&bundle).unwrap())
    });
    let snapshot = Snapshot::compile(&bundle).unwrap();
    group.bench_function("scenarios", |b| {
        b.iter(|| run_scenarios(&snapshot, &bundle).unwrap())
    });
    group.bench_function("admission_check", |b| {
        b.iter(|| check_bundle(&bundle).unwrap())
    });
    group.bench_function("baseline_raw_cedar_load", |b| {
        b.iter(|| raw_cedar_load(&bundle))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
