//! A question to evaluate: principal, action, resource and context.

use std::str::FromStr;

use cedar_policy::{
    Context, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression, Schema,
};
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
        let type_name = parse_type_name(&self.type_name).map_err(|e| {
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

/// An entity a request describes: its attributes as Cedar's entity JSON
/// writes them (`{"__entity": …}`, `{"__extn": …}` or plain values).
#[derive(Clone, Debug, PartialEq)]
pub struct Described {
    pub(crate) uid: EntityUid,
    pub attributes: serde_json::Map<String, Value>,
}

impl Described {
    pub fn new(
        entity: &EntityRef,
        attributes: serde_json::Map<String, Value>,
    ) -> Result<Described, QueryError> {
        Ok(Described {
            uid: entity.to_uid("entity")?,
            attributes,
        })
    }

    /// The entity, in Cedar's form when printed (`User::"alice"`).
    pub fn uid(&self) -> &impl std::fmt::Display {
        &self.uid
    }

    /// Cedar's entity JSON, without parents.
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({
            "uid": {
                "type": self.uid.type_name().to_string(),
                "id": self.uid.id().unescaped(),
            },
            "attrs": self.attributes,
            "parents": [],
        })
    }
}

/// Entity type names seen before, per thread: a request names three, and
/// Cedar's parser would otherwise run on each of them on every decision.
/// Type names are few (those of the schemas served); the cache stops
/// growing at `MAX_CACHED_TYPE_NAMES`.
fn parse_type_name(text: &str) -> Result<EntityTypeName, String> {
    const MAX_CACHED_TYPE_NAMES: usize = 1024;
    thread_local! {
        static PARSED: std::cell::RefCell<rustc_hash::FxHashMap<String, EntityTypeName>> =
            Default::default();
    }
    PARSED.with(|parsed| {
        if let Some(name) = parsed.borrow().get(text) {
            return Ok(name.clone());
        }
        let name = EntityTypeName::from_str(text).map_err(|e| e.to_string())?;
        let mut parsed = parsed.borrow_mut();
        if parsed.len() < MAX_CACHED_TYPE_NAMES {
            parsed.insert(text.to_string(), name.clone());
        }
        Ok(name)
    })
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
    pub(crate) principal: EntityUid,
    pub(crate) action: EntityUid,
    pub(crate) resource: EntityUid,
    /// A JSON object (Cedar's context JSON form).
    pub(crate) context: Value,
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

    /// From a request as the decision log keeps it (`--decision-log-requests`):
    /// `{"principal":"User::\"alice\"","action":…,"resource":…,"context":{…}}`,
    /// with the entities it described (`"entities":[{"uid","attrs"}]`).
    pub fn from_logged(request: &Value) -> Result<(Query, Vec<Described>), QueryError> {
        let text = |field: &str| {
            request[field]
                .as_str()
                .ok_or_else(|| QueryError(format!("a logged request without its {field}")))
        };
        let query = Query::parse(text("principal")?, text("action")?, text("resource")?, None)?;
        let context = match request.get("context") {
            None => Value::Object(Default::default()),
            Some(context) => context.clone(),
        };
        let query = Query::new(query.principal, query.action, query.resource, context)?;
        let mut described = Vec::new();
        for entity in request["entities"].as_array().into_iter().flatten() {
            let uid = entity["uid"]
                .as_str()
                .and_then(|uid| EntityUid::from_str(uid).ok())
                .ok_or_else(|| QueryError(format!("a logged entity without a uid: {entity}")))?;
            let attributes = match &entity["attrs"] {
                Value::Object(attributes) => attributes.clone(),
                _ => Default::default(),
            };
            described.push(Described { uid, attributes });
        }
        Ok((query, described))
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

    /// The principal, in Cedar's form when printed (`User::"alice"`).
    pub fn principal(&self) -> &impl std::fmt::Display {
        &self.principal
    }

    pub fn action(&self) -> &impl std::fmt::Display {
        &self.action
    }

    pub fn resource(&self) -> &impl std::fmt::Display {
        &self.resource
    }

    /// The context: a JSON object.
    pub fn context(&self) -> &Value {
        &self.context
    }

    /// The principal, action and resource as `{type, id}` (the id
    /// unescaped): how the API names them.
    pub fn entity_refs(&self) -> [EntityRef; 3] {
        [&self.principal, &self.action, &self.resource].map(|uid| EntityRef {
            type_name: uid.type_name().to_string(),
            id: uid.id().unescaped().to_string(),
        })
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
        // Fast path: a context of plain values needs no schema to be read.
        // If the schema accepts it as read, Cedar's schema-directed reading
        // gives the same context (every value has the type the schema
        // expects, and a plain value of that type reads one way); otherwise
        // Cedar's reading decides, and its error is the one reported.
        if let Some(context) = plain_context(&self.context) {
            let request = Request::new(
                self.principal.clone(),
                self.action.clone(),
                self.resource.clone(),
                context,
                Some(schema),
            );
            if let Ok(request) = request {
                return Ok(request);
            }
        }
        self.to_request_by_schema(schema)
    }

    /// Cedar's own reading of the context JSON, directed by the schema:
    /// entity references and extension values may be written implicitly.
    pub fn to_request_by_schema(&self, schema: &Schema) -> Result<Request, QueryError> {
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

/// The context as Cedar values, when it holds only booleans, integers,
/// strings, arrays and objects without `__` escapes (`__entity`, `__extn`,
/// `__expr`): values that read the same whatever type the schema expects, or
/// not at all. `None` otherwise.
fn plain_context(context: &Value) -> Option<Context> {
    let Value::Object(attributes) = context else {
        return None;
    };
    // Cedar reads the whole context as an escape too (`{"__extn": …}` is
    // an unknown, whatever else is beside it).
    if attributes.keys().any(|k| k.starts_with("__")) {
        return None;
    }
    let pairs = attributes
        .iter()
        .map(|(name, value)| Some((name.clone(), plain_value(value)?)))
        .collect::<Option<Vec<_>>>()?;
    Context::from_pairs(pairs).ok()
}

fn plain_value(value: &Value) -> Option<RestrictedExpression> {
    match value {
        Value::Bool(b) => Some(RestrictedExpression::new_bool(*b)),
        Value::Number(n) => n.as_i64().map(RestrictedExpression::new_long),
        Value::String(s) => Some(RestrictedExpression::new_string(s.clone())),
        Value::Array(items) => Some(RestrictedExpression::new_set(
            items.iter().map(plain_value).collect::<Option<Vec<_>>>()?,
        )),
        Value::Object(fields) if fields.keys().any(|k| k.starts_with("__")) => None,
        Value::Object(fields) => RestrictedExpression::new_record(
            fields
                .iter()
                .map(|(name, value)| Some((name.clone(), plain_value(value)?)))
                .collect::<Option<Vec<_>>>()?,
        )
        .ok(),
        Value::Null => None,
    }
}
