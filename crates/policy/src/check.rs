//! The bundle check admission runs (ledger's `BundleCheck`): the bundle must
//! load, compile, validate and pass every one of its scenarios; and the same
//! check over a whole ledger, on all cores.

use std::collections::BTreeMap;

use stele_ledger::{BundleFiles, ChainError, Hash, Ledger, Rejection};

use crate::error::BundleError;
use crate::scenario::{ScenarioReport, run_scenarios};
use crate::snapshot::Snapshot;

/// Stack for bundle-check threads: as much as a main thread gets, so a
/// deeply nested policy gets the same verdict on every thread.
const CHECK_THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// What a bundle that passed its check holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSummary {
    pub policies: usize,
    pub scenarios: ScenarioReport,
}

/// Compiles `bundle` and runs its scenarios; any failing scenario fails the
/// check.
pub fn check_bundle(bundle: &BundleFiles) -> Result<BundleSummary, BundleError> {
    let (snapshot, scenarios) = checked_snapshot(bundle)?;
    Ok(BundleSummary {
        policies: snapshot.policies().len(),
        scenarios,
    })
}

/// The bundle check, keeping what it compiled: a node serves the snapshot
/// of the bundle it admitted.
pub fn checked_snapshot(bundle: &BundleFiles) -> Result<(Snapshot, ScenarioReport), BundleError> {
    let snapshot = Snapshot::compile(bundle)?;
    let scenarios = run_scenarios(&snapshot, bundle)?;
    if !scenarios.failures.is_empty() {
        return Err(BundleError::Scenarios(scenarios.failures));
    }
    Ok((snapshot, scenarios))
}

/// The admission check, as the ledger calls it.
pub fn admission_check(bundle: &BundleFiles) -> Result<(), BundleError> {
    check_bundle(bundle).map(drop)
}

/// Runs the admission check on every distinct bundle of the versions after
/// `after_seq` of a ledger whose chain already verified (hashes and
/// signatures first: an unsigned file never gets Cedar to work), on all
/// cores. Names the first version whose bundle fails, as replaying
/// admission would.
pub fn check_ledger_bundles(ledger: &Ledger, after_seq: u64) -> Result<(), ChainError> {
    let mut distinct: BTreeMap<Hash, &BundleFiles> = BTreeMap::new();
    for (version, bundle) in ledger.entries().filter(|(v, _)| v.seq() > after_seq) {
        distinct
            .entry(version.header.bundle_digest)
            .or_insert(bundle);
    }
    let todo: Vec<(Hash, &BundleFiles)> = distinct.into_iter().collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = todo.len().div_ceil(workers).max(1);
    let verdicts: BTreeMap<Hash, Result<(), BundleError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                std::thread::Builder::new()
                    .stack_size(CHECK_THREAD_STACK_BYTES)
                    .spawn_scoped(scope, move || {
                        part.iter()
                            .map(|(digest, bundle)| (*digest, admission_check(bundle)))
                            .collect::<Vec<_>>()
                    })
                    .expect("spawning a bundle-check thread")
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a bundle check panicked"))
            .collect()
    });
    for version in ledger.versions().iter().filter(|v| v.seq() > after_seq) {
        if let Err(error) = &verdicts[&version.header.bundle_digest] {
            return Err(ChainError {
                seq: version.seq(),
                rejection: Rejection::BundleInvalid {
                    message: error.to_string(),
                },
            });
        }
    }
    Ok(())
}
