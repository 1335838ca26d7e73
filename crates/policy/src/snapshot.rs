//! The compiled, immutable form of one bundle, and evaluation against it.

use cedar_policy::{Authorizer, Entities, PolicySet, Request, Response, Schema};
use stele_ledger::BundleFiles;

use crate::compile::{NamedPolicy, compile};
use crate::decision::Decision;
use crate::error::BundleError;
use crate::query::{Query, QueryError};

/// A bundle compiled once and shared read-only by every decision.
pub struct Snapshot {
    schema: Schema,
    policies: Vec<NamedPolicy>,
    policy_set: PolicySet,
    entities: Entities,
    authorizer: Authorizer,
}

impl Snapshot {
    /// Loads the schema, policies and entities, and validates the policies
    /// strictly against the schema. Scenarios are not run here (see
    /// [`crate::check_bundle`]).
    pub fn compile(bundle: &BundleFiles) -> Result<Snapshot, BundleError> {
        let compiled = compile(bundle)?;
        Ok(Snapshot {
            schema: compiled.schema,
            policies: compiled.policies,
            policy_set: compiled.policy_set,
            entities: compiled.entities,
            authorizer: Authorizer::new(),
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The policies with their ids and files, in file and source order.
    pub fn policies(&self) -> &[NamedPolicy] {
        &self.policies
    }

    /// Evaluates one query: Cedar's `is_authorized` over the whole policy set.
    pub fn evaluate(&self, query: &Query) -> Result<Decision, QueryError> {
        let request = query.to_request(&self.schema)?;
        Ok(Decision::from_response(&self.authorize(&request)))
    }

    pub(crate) fn authorize(&self, request: &Request) -> Response {
        self.authorizer
            .is_authorized(request, &self.policy_set, &self.entities)
    }
}
