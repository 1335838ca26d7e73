//! OpenID AuthZEN Authorization API 1.0: its request and response shapes,
//! and how they map to Cedar.
//!
//! - `subject` → the principal `Type::"id"`, its type as given;
//! - `action.name` → `Action::"name"`;
//! - `resource` → `Type::"id"`;
//! - `properties` of the subject or resource → that entity's attributes for
//!   this request, unless the bundle holds the entity: then the bundle's
//!   attributes stand (`Snapshot::evaluate_described`); `action.properties`
//!   are ignored, since actions are the schema's;
//! - `context` → the Cedar context.
//!
//! Fields the spec does not define are ignored, as it asks.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use stele_decision::{Decided, Question};
use stele_policy::{Described, EntityRef, Outcome, Query, QueryError};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EntityJson {
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub id: Option<String>,
    pub properties: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ActionJson {
    pub name: Option<String>,
}

/// One evaluation; in a batch, any field left out takes the batch's.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EvaluationJson {
    pub subject: Option<EntityJson>,
    pub action: Option<ActionJson>,
    pub resource: Option<EntityJson>,
    pub context: Option<Map<String, Value>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantic {
    #[default]
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct OptionsJson {
    #[serde(default)]
    pub evaluations_semantic: Semantic,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EvaluationsJson {
    #[serde(flatten)]
    pub defaults: EvaluationJson,
    pub evaluations: Option<Vec<EvaluationJson>>,
    #[serde(default)]
    pub options: OptionsJson,
}

impl EvaluationJson {
    /// This evaluation with the batch's values where it has none.
    pub fn or(self, defaults: &EvaluationJson) -> EvaluationJson {
        EvaluationJson {
            subject: self.subject.or_else(|| defaults.subject.clone()),
            action: self.action.or_else(|| defaults.action.clone()),
            resource: self.resource.or_else(|| defaults.resource.clone()),
            context: self.context.or_else(|| defaults.context.clone()),
        }
    }

    /// The Cedar query, and the entities it describes. Errors name the
    /// missing or wrong field.
    pub fn to_question(&self) -> Result<Question, QueryError> {
        let entity = |role: &str, entity: &Option<EntityJson>| {
            let entity = entity
                .as_ref()
                .ok_or_else(|| QueryError(format!("{role} is missing")))?;
            let field = |name: &str, value: &Option<String>| {
                value
                    .clone()
                    .ok_or_else(|| QueryError(format!("{role}.{name} is missing")))
            };
            Ok::<_, QueryError>(EntityRef {
                type_name: field("type", &entity.type_name)?,
                id: field("id", &entity.id)?,
            })
        };
        let subject = entity("subject", &self.subject)?;
        let resource = entity("resource", &self.resource)?;
        let action_name = self
            .action
            .as_ref()
            .ok_or_else(|| QueryError("action is missing".into()))?
            .name
            .clone()
            .ok_or_else(|| QueryError("action.name is missing".into()))?;
        let action = EntityRef {
            type_name: "Action".into(),
            id: action_name,
        };
        let context = self.context.clone().map(Value::Object);
        let query = Query::from_parts(&subject, &action, &resource, context)?;
        let mut described = Vec::new();
        for (entity, json) in [(&subject, &self.subject), (&resource, &self.resource)] {
            if let Some(properties) = json.as_ref().and_then(|j| j.properties.clone()) {
                let entity = Described::new(entity, properties)?;
                // The same entity as subject and resource is described once.
                if !described.contains(&entity) {
                    described.push(entity);
                }
            }
        }
        Ok(Question { query, described })
    }
}

/// `{"decision": …, "context": {"version", "reasons", "errors", "decision_id", …}}`,
/// for a decision made by version `(seq, hash)`.
pub fn decision_json((seq, hash): (u64, &str), decided: &Decided, node_id: u64) -> Value {
    let decision = &decided.decision;
    let context = json!({
        "version": {"seq": seq, "hash": hash},
        "reasons": decision.reasons,
        "errors": decision.errors,
        "decision_id": decided.decision_id,
        "node_id": node_id,
    });
    json!({"decision": decision.decision == Outcome::Allow, "context": context})
}

/// A decision this node would not make (stale, no policy): fail closed,
/// saying why.
pub fn refused_json(reason: &str, node_id: u64) -> Value {
    json!({"decision": false, "context": {"reason": reason, "node_id": node_id}})
}

/// An evaluation in a batch that could not be evaluated: a deny, with the
/// spec's error shape.
pub fn invalid_json(message: &str) -> Value {
    json!({"decision": false, "context": {"error": {"status": 400, "message": message}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation(json: Value) -> EvaluationJson {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn maps_subject_action_resource_and_context_to_cedar() {
        let Question { query, described } = evaluation(json!({
            "subject": {"type": "User", "id": "alice", "properties": {"level": 3}},
            "action": {"name": "read", "properties": {"ignored": true}},
            "resource": {"type": "Doc", "id": "d1"},
            "context": {"ip": "10.0.0.1"},
            "unknown_field": "ignored",
        }))
        .to_question()
        .unwrap();
        assert_eq!(query.principal().to_string(), r#"User::"alice""#);
        assert_eq!(query.action().to_string(), r#"Action::"read""#);
        assert_eq!(query.resource().to_string(), r#"Doc::"d1""#);
        assert_eq!(query.context(), &json!({"ip": "10.0.0.1"}));
        assert_eq!(described.len(), 1);
        assert_eq!(described[0].uid().to_string(), r#"User::"alice""#);
        assert_eq!(described[0].attributes["level"], 3);
    }

    #[test]
    fn a_missing_field_is_named() {
        for (json, missing) in [
            (
                json!({"action": {"name": "r"}, "resource": {"type": "D", "id": "d"}}),
                "subject is missing",
            ),
            (
                json!({"subject": {"id": "a"}, "action": {"name": "r"}, "resource": {"type": "D", "id": "d"}}),
                "subject.type is missing",
            ),
            (
                json!({"subject": {"type": "U", "id": "a"}, "action": {}, "resource": {"type": "D", "id": "d"}}),
                "action.name is missing",
            ),
            (
                json!({"subject": {"type": "U", "id": "a"}, "action": {"name": "r"}, "resource": {"type": "D"}}),
                "resource.id is missing",
            ),
        ] {
            let error = evaluation(json).to_question().err().unwrap();
            assert_eq!(error.0, missing);
        }
    }

    #[test]
    fn batch_values_fill_what_an_evaluation_leaves_out() {
        let batch: EvaluationsJson = serde_json::from_value(json!({
            "subject": {"type": "User", "id": "alice"},
            "action": {"name": "read"},
            "evaluations": [
                {"resource": {"type": "Doc", "id": "d1"}},
                {"subject": {"type": "User", "id": "bob"}, "resource": {"type": "Doc", "id": "d2"}},
            ],
            "options": {"evaluations_semantic": "deny_on_first_deny"},
        }))
        .unwrap();
        assert_eq!(
            batch.options.evaluations_semantic,
            Semantic::DenyOnFirstDeny
        );
        let queries: Vec<Query> = batch
            .evaluations
            .unwrap()
            .into_iter()
            .map(|e| e.or(&batch.defaults).to_question().unwrap().query)
            .collect();
        assert_eq!(queries[0].principal().to_string(), r#"User::"alice""#);
        assert_eq!(queries[1].principal().to_string(), r#"User::"bob""#);
        assert_eq!(queries[1].action().to_string(), r#"Action::"read""#);
    }

    #[test]
    fn an_unknown_semantic_is_refused() {
        let parsed = serde_json::from_value::<EvaluationsJson>(
            json!({"options": {"evaluations_semantic": "majority"}}),
        );
        assert!(parsed.is_err());
    }
}
