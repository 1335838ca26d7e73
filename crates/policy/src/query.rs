//! A question to evaluate: principal, action, resource and context.

use std::str::FromStr;

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, Request, Schema};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// A request that cannot be evaluated: a malformed entity, a context that is
/// not an object, or anything that does not fit the schema.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// An entity as JSON names it: `{"type": "User", "id": "alice"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRef {
    #[serde(rename = "type")]
    pub type_name: String,
    pub id: String,
}

impl EntityRef {
    fn to_uid(&self, role: &str) -> Result<EntityUid, QueryError> {
        let type_name = EntityTypeName::from_str(&self.type_name).map_err(|e| {
            QueryError(format!(
                "{role}: {:?} is not an entity type: {e}",
                self.type_name
            ))
        })?;
        Ok(EntityUid::from_type_name_and_id(
            type_name,
            EntityId::new(&self.id),
        ))
    }
}

/// The JSON shape of one query: a scenario, whose description and
/// expectations are accepted and ignored, so scenario lines can be replayed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryJson {
    #[serde(default, rename = "description")]
    _description: Option<IgnoredAny>,
    #[serde(default, rename = "decision")]
    _decision: Option<IgnoredAny>,
    #[serde(default, rename = "reasons")]
    _reasons: Option<IgnoredAny>,
    #[serde(default, rename = "errors")]
    _errors: Option<IgnoredAny>,
    principal: EntityRef,
    action: EntityRef,
    resource: EntityRef,
    #[serde(default)]
    context: Option<Value>,
}

/// A parsed query; it is checked against a schema when it is evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub principal: EntityUid,
    pub action: EntityUid,
    pub resource: EntityUid,
    /// A JSON object (Cedar's context JSON form).
    pub context: Value,
}

impl Query {
    /// From Cedar's textual form, `User::"alice"`, and an optional context
    /// JSON object.
    pub fn parse(
        principal: &str,
        action: &str,
        resource: &str,
        context: Option<&str>,
    ) -> Result<Query, QueryError> {
        let uid = |role: &str, text: &str| {
            EntityUid::from_str(text).map_err(|e| {
                QueryError(format!(
                    "{role} {text:?} is not an entity like User::\"alice\": {e}"
                ))
            })
        };
        let context = match context {
            None => Value::Object(Default::default()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| QueryError(format!("context is not valid JSON: {e}")))?,
        };
        Query::new(
            uid("principal", principal)?,
            uid("action", action)?,
            uid("resource", resource)?,
            context,
        )
    }

    /// From the JSON shape `{"principal":{"type","id"},"action":…,"resource":…,"context":{…}}`.
    pub fn from_json(text: &str) -> Result<Query, QueryError> {
        let json: QueryJson =
            serde_json::from_str(text).map_err(|e| QueryError(format!("not a query: {e}")))?;
        Query::from_parts(&json.principal, &json.action, &json.resource, json.context)
    }

    /// From entity references and an optional context object.
    pub fn from_parts(
        principal: &EntityRef,
        action: &EntityRef,
        resource: &EntityRef,
        context: Option<Value>,
    ) -> Result<Query, QueryError> {
        Query::new(
            principal.to_uid("principal")?,
            action.to_uid("action")?,
            resource.to_uid("resource")?,
            context.unwrap_or_else(|| Value::Object(Default::default())),
        )
    }

    fn new(
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: Value,
    ) -> Result<Query, QueryError> {
        if !context.is_object() {
            return Err(QueryError("context must be a JSON object".into()));
        }
        Ok(Query {
            principal,
            action,
            resource,
            context,
        })
    }

    /// The Cedar request, validated against `schema`: unknown entity types,
    /// actions that do not apply, and context that does not fit are errors.
    pub fn to_request(&self, schema: &Schema) -> Result<Request, QueryError> {
        let context = Context::from_json_value(self.context.clone(), Some((schema, &self.action)))
            .map_err(|e| QueryError(format!("context: {e}")))?;
        Request::new(
            self.principal.clone(),
            self.action.clone(),
            self.resource.clone(),
            context,
            Some(schema),
        )
        .map_err(|e| QueryError(e.to_string()))
    }
}
