//! The compiled, immutable form of one bundle, and evaluation against it.

use cedar_policy::{Authorizer, Entities, Request, Response, Schema};
use stele_ledger::BundleFiles;

use crate::compile::{NamedPolicy, compile};
use crate::decision::Decision;
use crate::error::BundleError;
use crate::index::PolicyIndex;
use crate::query::{Query, QueryError};

/// A bundle compiled once and shared read-only by every decision.
pub struct Snapshot {
    schema: Schema,
    policies: Vec<NamedPolicy>,
    entities: Entities,
    index: PolicyIndex,
}

impl Snapshot {
    /// Loads the schema, policies and entities, and validates the policies
    /// strictly against the schema. Scenarios are not run here (see
    /// [`crate::check_bundle`]).
    pub fn compile(bundle: &BundleFiles) -> Result<Snapshot, BundleError> {
        let compiled = compile(bundle)?;
        Ok(Snapshot {
            index: PolicyIndex::build(compiled.policy_set),
            schema: compiled.schema,
            policies: compiled.policies,
            entities: compiled.entities,
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The policies with their ids and files, in file and source order.
    pub fn policies(&self) -> &[NamedPolicy] {
        &self.policies
    }

    /// Evaluates one query: Cedar's answer over the whole policy set, found
    /// by evaluating only the policies whose scope matches (see
    /// [`PolicyIndex`]).
    pub fn evaluate(&self, query: &Query) -> Result<Decision, QueryError> {
        let request = query.to_request(&self.schema)?;
        Ok(Decision::from_response(&self.authorize(&request)))
    }

    /// Raw Cedar: Cedar reads the context and evaluates every policy. The
    /// baseline of the benchmarks and of the identity tests.
    pub fn evaluate_unindexed(&self, query: &Query) -> Result<Decision, QueryError> {
        let request = query.to_request_by_schema(&self.schema)?;
        let response =
            Authorizer::new().is_authorized(&request, self.index.whole(), &self.entities);
        Ok(Decision::from_response(&response))
    }

    /// How many policies the index hands Cedar for this query.
    pub fn candidate_count(&self, query: &Query) -> Result<usize, QueryError> {
        let request = query.to_request(&self.schema)?;
        Ok(self.index.candidate_count(&request, &self.entities))
    }

    pub(crate) fn authorize(&self, request: &Request) -> Response {
        self.index.authorize(request, &self.entities)
    }
}
