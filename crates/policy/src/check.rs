//! The bundle check admission runs (ledger's `BundleCheck`): the bundle must
//! load, compile, validate and pass every one of its scenarios.

use std::cell::RefCell;
use std::collections::HashMap;

use stele_ledger::{BundleCheck, BundleFiles, Hash};

use crate::error::BundleError;
use crate::scenario::run_scenarios;
use crate::snapshot::Snapshot;

/// Compiles `bundle` and runs its scenarios.
pub fn check_bundle(bundle: &BundleFiles) -> Result<(), BundleError> {
    let snapshot = Snapshot::compile(bundle)?;
    let report = run_scenarios(&snapshot, bundle)?;
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(BundleError::Scenarios(report.failures))
    }
}

/// The admission check, as the ledger calls it.
pub fn admission_check(bundle: &BundleFiles) -> Result<(), String> {
    check_bundle(bundle).map_err(|error| error.to_string())
}

/// The admission check remembering verdicts by bundle digest: the check is
/// deterministic, so a chain that returns to a bundle (rollbacks, rotations)
/// need not compile it again.
#[derive(Default)]
pub struct CachedCheck {
    verdicts: RefCell<HashMap<Hash, Result<(), String>>>,
}

impl CachedCheck {
    /// Checks every distinct bundle not yet checked, on all cores, ahead of a
    /// chain replay: bundles are independent, the replay itself is not.
    pub fn prefill<'a>(&self, bundles: impl IntoIterator<Item = &'a BundleFiles>) {
        let mut todo: HashMap<Hash, &BundleFiles> = HashMap::new();
        for bundle in bundles {
            let digest = bundle.digest();
            if !self.verdicts.borrow().contains_key(&digest) {
                todo.insert(digest, bundle);
            }
        }
        let todo: Vec<(Hash, &BundleFiles)> = todo.into_iter().collect();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = todo.len().div_ceil(workers).max(1);
        let verdicts: Vec<(Hash, Result<(), String>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = todo
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(digest, bundle)| (*digest, admission_check(bundle)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().expect("a bundle check panicked"))
                .collect()
        });
        self.verdicts.borrow_mut().extend(verdicts);
    }
}

impl BundleCheck for CachedCheck {
    fn check(&self, bundle: &BundleFiles) -> Result<(), String> {
        let digest = bundle.digest();
        if let Some(verdict) = self.verdicts.borrow().get(&digest) {
            return verdict.clone();
        }
        let verdict = admission_check(bundle);
        self.verdicts.borrow_mut().insert(digest, verdict.clone());
        verdict
    }
}
