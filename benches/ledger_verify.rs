//! How long verifying a whole ledger takes: decoding plus hash chain,
//! signatures and thresholds ("structure"), and the full verification
//! `stele ledger verify` runs, which also compiles every bundle and runs its
//! scenarios.
//!
//!     cargo bench --bench ledger_verify
//!
//! The ledger has STELE_BENCH_VERSIONS versions (default 10,000), each an
//! update of the example bundle with its own digest, signed 2 of 3.
//!
//! Baselines in the same run: SHA-256 over the file's bytes (the least any
//! integrity check must do), and raw Cedar loading every bundle (schema,
//! policies, strict validation, entities) on all cores, with no ledger, no
//! signatures and no scenarios.

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use stele_ledger::{
    Authorship, BundleFiles, Hash, Header, Kind, Ledger, SecretKey, TrustSet, Version, export,
    structural_only,
};
use stele_policy::check_ledger_bundles;
use support::{example, raw_cedar_load};

fn versions() -> u64 {
    std::env::var("STELE_BENCH_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// The example bundle with a comment that makes its digest unique.
fn variant(base: &BundleFiles, n: u64) -> BundleFiles {
    let mut out = BundleFiles::default();
    for (path, content) in base.files() {
        let content = if path == "access.cedar" {
            format!("{content}\n// version {n}\n")
        } else {
            content.to_string()
        };
        out.insert(path.to_string(), content).unwrap();
    }
    out
}

fn build_ledger(count: u64) -> String {
    let keys: Vec<SecretKey> = (1..=3).map(|n| SecretKey::from_seed([n; 32])).collect();
    let trust = TrustSet::new(keys.iter().map(SecretKey::public_key).collect(), 2).unwrap();
    let base = example();
    let mut ledger = Ledger::new();
    for seq in 1..=count {
        let bundle = variant(&base, seq);
        let by = Authorship {
            message: format!("version {seq}"),
            author: "bench".into(),
            created_at: 1_764_000_000 + seq,
        };
        let header = match ledger.head() {
            None => Header::genesis(bundle.digest(), trust.clone(), by),
            Some(head) => Header::after(head, bundle.digest(), Kind::Update, by),
        };
        let mut version = Version::unsigned(header);
        version.sign(&keys[(seq % 3) as usize]);
        version.sign(&keys[((seq + 1) % 3) as usize]);
        ledger.submit(version, bundle, &structural_only).unwrap();
    }
    export::encode(&ledger)
}

fn bench(c: &mut Criterion) {
    let count = versions();
    let file = build_ledger(count);
    eprintln!("ledger of {count} versions: {} bytes", file.len());
    let mut group = c.benchmark_group("ledger_verify");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_with_input(BenchmarkId::new("structure", count), &file, |b, file| {
        b.iter(|| export::read(file.as_bytes(), Ledger::new(), &structural_only).unwrap())
    });
    // As `stele ledger verify` does it: the chain first, then every bundle
    // compiled and tested on all cores.
    group.bench_with_input(BenchmarkId::new("full", count), &file, |b, file| {
        b.iter(|| {
            let ledger = export::read(file.as_bytes(), Ledger::new(), &structural_only).unwrap();
            check_ledger_bundles(&ledger, 0).unwrap();
            ledger
        })
    });
    group.bench_with_input(
        BenchmarkId::new("baseline_sha256_of_file", count),
        &file,
        |b, file| b.iter(|| Hash::of_bytes(file.as_bytes())),
    );
    let ledger = export::read(file.as_bytes(), Ledger::new(), &structural_only).unwrap();
    let bundles: Vec<&BundleFiles> = ledger.entries().map(|(_, bundle)| bundle).collect();
    group.bench_with_input(
        BenchmarkId::new("baseline_raw_cedar_load", count),
        &bundles,
        |b, bundles| b.iter(|| raw_cedar_load_all(bundles)),
    );
    group.finish();
}

/// Raw Cedar loading every bundle, on all cores.
fn raw_cedar_load_all(bundles: &[&BundleFiles]) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = bundles.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        for part in bundles.chunks(chunk) {
            scope.spawn(move || {
                for bundle in part {
                    raw_cedar_load(bundle);
                }
            });
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
