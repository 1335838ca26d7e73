//! # stele-policy
//!
//! Everything Cedar: bundle directories and their layout, compiling a bundle
//! into an immutable [`Snapshot`] (policies validated strictly against the
//! schema), evaluating queries to a [`Decision`] equal to Cedar's
//! `Authorizer::is_authorized` (through a [`PolicyIndex`] of policy scopes,
//! so that decision time does not grow with the policy count), the scenario
//! runner admission relies on, diffs between bundles, the review an
//! approver reads (every changed line), and the impact of a change on a
//! set of requests.
//!
//! It builds on `stele-ledger` (bundle files and digests) and knows nothing of
//! chains, signatures, storage or the network.

mod check;
mod compile;
mod decision;
mod diagnostics;
mod diff;
mod error;
mod impact;
mod index;
pub mod layout;
mod query;
mod review;
mod scenario;
mod scopes;
mod snapshot;
pub mod synthetic;

pub use check::{
    BundleSummary, admission_check, check_bundle, check_ledger_bundles, checked_snapshot,
};
pub use compile::{NamedPolicy, parse_policies};
pub use decision::{Decision, Outcome};
pub use diff::{BundleDiff, diff};
pub use error::BundleError;
pub use impact::{Flip, Flips, Impact, MAX_IMPACT_EXAMPLES, Unevaluable};
pub use index::PolicyIndex;
pub use layout::load_dir;
pub use query::{Described, EntityRef, Query, QueryError};
pub use review::{
    ChangeKind, EntityChange, FileChange, PolicyChange, Review, TextChange, ValueChange, review,
};
pub use scenario::{ScenarioFailure, ScenarioReport, run_scenarios, scenario_queries};
pub use snapshot::Snapshot;
