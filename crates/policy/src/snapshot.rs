//! The compiled, immutable form of one bundle, and evaluation against it.

use cedar_policy::{Authorizer, Entities, Request, Response, Schema};
use stele_ledger::BundleFiles;

use crate::compile::{NamedPolicy, compile};
use crate::decision::Decision;
use crate::error::BundleError;
use crate::index::PolicyIndex;
use crate::layout::SCHEMA_FILE;
use crate::query::{Described, Query, QueryError};
use crate::scopes::AcceptedScopes;

/// A bundle compiled once and shared read-only by every decision.
pub struct Snapshot {
    schema: Schema,
    policies: Vec<NamedPolicy>,
    entities: Entities,
    index: PolicyIndex,
    accepted: AcceptedScopes,
}

impl Snapshot {
    /// Loads the schema, policies and entities, and validates the policies
    /// strictly against the schema. Scenarios are not run here (see
    /// [`crate::check_bundle`]).
    pub fn compile(bundle: &BundleFiles) -> Result<Snapshot, BundleError> {
        let compiled = compile(bundle)?;
        let schema_text = bundle.get(SCHEMA_FILE).expect("compile checked the layout");
        Ok(Snapshot {
            accepted: AcceptedScopes::of(&compiled.schema, schema_text),
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
        let request = self.request(query)?;
        Ok(Decision::from_response(&self.authorize(&request)))
    }

    /// Evaluates a query whose caller also describes some entities'
    /// attributes (AuthZEN's `properties`). An entity the bundle holds keeps
    /// the bundle's attributes: a caller cannot restate what the signed
    /// policy says. The others are added for this decision only, checked
    /// against the schema, without parents. Adding them copies the entity
    /// map, a cost that grows with the bundle's entities.
    pub fn evaluate_described(
        &self,
        query: &Query,
        described: &[Described],
    ) -> Result<Decision, QueryError> {
        let request = self.request(query)?;
        let mut added = Vec::new();
        for entity in described {
            if self.entities.get(&entity.uid).is_none() {
                added.push(entity.to_json());
            }
        }
        if added.is_empty() {
            return Ok(Decision::from_response(&self.authorize(&request)));
        }
        let entities = self
            .entities
            .clone()
            .add_entities_from_json_value(serde_json::Value::Array(added), Some(&self.schema))
            .map_err(|e| QueryError(format!("entity properties: {e}")))?;
        Ok(Decision::from_response(
            &self.index.authorize(&request, &entities),
        ))
    }

    /// The query as a Cedar request checked against the schema: by the
    /// scopes known accepted when it has no context, by Cedar otherwise.
    fn request(&self, query: &Query) -> Result<Request, QueryError> {
        match self.accepted.request(query) {
            Some(request) => Ok(request),
            None => query.to_request(&self.schema),
        }
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
        let request = self.request(query)?;
        Ok(self.index.candidate_count(&request, &self.entities))
    }

    pub(crate) fn authorize(&self, request: &Request) -> Response {
        self.index.authorize(request, &self.entities)
    }
}
