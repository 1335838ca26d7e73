//! Scenarios: the expected answers a bundle carries in `tests/*.json`, in the
//! shape of Cedar's integration tests. A bundle is admitted only if every
//! scenario gives its expected answer.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use stele_ledger::BundleFiles;

use crate::decision::{Decision, Outcome};
use crate::error::BundleError;
use crate::layout::{FileRole, role_of};
use crate::query::{EntityRef, Query};
use crate::snapshot::Snapshot;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    queries: Vec<Scenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    description: String,
    principal: EntityRef,
    action: EntityRef,
    resource: EntityRef,
    #[serde(default)]
    context: Option<Value>,
    decision: Outcome,
    /// When given, must equal the set of determining policy ids.
    #[serde(default)]
    reasons: Option<Vec<String>>,
    /// When given, must equal the set of policy ids whose evaluation failed.
    #[serde(default)]
    errors: Option<Vec<String>>,
}

/// A scenario that did not give its expected answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioFailure {
    pub file: String,
    /// 1-based position in the file's `queries`.
    pub number: usize,
    pub description: String,
    pub problem: String,
}

impl fmt::Display for ScenarioFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} query {} ({:?}): {}",
            self.file, self.number, self.description, self.problem
        )
    }
}

/// How a bundle's scenarios went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScenarioReport {
    pub files: usize,
    pub passed: usize,
    pub failures: Vec<ScenarioFailure>,
}

/// Runs every scenario of `bundle` against its compiled `snapshot`. A
/// scenario file that does not parse is an error; a scenario that gives
/// another answer is a failure in the report.
pub fn run_scenarios(
    snapshot: &Snapshot,
    bundle: &BundleFiles,
) -> Result<ScenarioReport, BundleError> {
    let mut report = ScenarioReport::default();
    for (file, text) in bundle
        .files()
        .filter(|(path, _)| role_of(path) == Some(FileRole::Scenarios))
    {
        report.files += 1;
        let parsed = parse_file(file, text)?;
        for (index, scenario) in parsed.queries.iter().enumerate() {
            match run_one(snapshot, scenario) {
                Ok(()) => report.passed += 1,
                Err(problem) => report.failures.push(ScenarioFailure {
                    file: file.to_string(),
                    number: index + 1,
                    description: scenario.description.clone(),
                    problem,
                }),
            }
        }
    }
    Ok(report)
}

/// The requests of a bundle's scenarios, their expected answers left aside:
/// a workload of realistic requests (`stele bench check`, the benchmarks).
pub fn scenario_queries(bundle: &BundleFiles) -> Result<Vec<Query>, BundleError> {
    let mut queries = Vec::new();
    for (file, text) in bundle
        .files()
        .filter(|(path, _)| role_of(path) == Some(FileRole::Scenarios))
    {
        let parsed = parse_file(file, text)?;
        for (index, scenario) in parsed.queries.iter().enumerate() {
            queries.push(scenario.query().map_err(|e| {
                BundleError::Invalid(vec![format!("{file} query {}: {e}", index + 1)])
            })?);
        }
    }
    Ok(queries)
}

fn parse_file(file: &str, text: &str) -> Result<ScenarioFile, BundleError> {
    serde_json::from_str(text)
        .map_err(|e| BundleError::Invalid(vec![format!("{file}:{}:{}: {e}", e.line(), e.column())]))
}

impl Scenario {
    fn query(&self) -> Result<Query, crate::query::QueryError> {
        Query::from_parts(
            &self.principal,
            &self.action,
            &self.resource,
            self.context.clone(),
        )
    }
}

fn run_one(snapshot: &Snapshot, scenario: &Scenario) -> Result<(), String> {
    let query = scenario
        .query()
        .map_err(|e| format!("invalid query: {e}"))?;
    let request = query
        .to_request(snapshot.schema())
        .map_err(|e| format!("invalid query: {e}"))?;
    let response = snapshot.authorize(&request);
    let got = Decision::from_response(&response);
    let mut problems = Vec::new();
    if got.decision != scenario.decision {
        problems.push(format!(
            "expected {:?}, got {:?}",
            scenario.decision, got.decision
        ));
    }
    if let Some(expected) = &scenario.reasons {
        let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
        let actual: BTreeSet<&str> = got.reasons.iter().map(String::as_str).collect();
        if expected != actual {
            problems.push(format!("expected reasons {expected:?}, got {actual:?}"));
        }
    }
    if let Some(expected) = &scenario.errors {
        let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
        let failing: BTreeSet<String> = response
            .diagnostics()
            .errors()
            .map(|error| match error {
                cedar_policy::AuthorizationError::PolicyEvaluationError(e) => {
                    e.policy_id().to_string()
                }
            })
            .collect();
        let actual: BTreeSet<&str> = failing.iter().map(String::as_str).collect();
        if expected != actual {
            problems.push(format!(
                "expected errors in {expected:?}, got errors in {actual:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
