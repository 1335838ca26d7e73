//! The request scopes a schema accepts without a context, worked out once
//! per snapshot, so that the commonest request (no context) skips Cedar's
//! per-request schema check, a tenth of a node's time under load.
//!
//! Cedar checks a request against a schema in two parts: the scope (the
//! principal's and resource's types are declared and apply to the action;
//! an entity of an enumerated type is one of its values) and the context
//! (it fits the action's context type). Without enumerated types the scope
//! part depends only on the principal type, the action and the resource
//! type, and for an empty context the context part depends only on the
//! action. So when Cedar accepts `(P::"", a, R::"", {})` once, it accepts
//! every `(P::"…", a, R::"…", {})`. Anything not known accepted goes to
//! Cedar, whose error is the one reported.

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, Request, Schema};
use rustc_hash::FxHashMap;

use crate::query::Query;

/// Actions with more type pairs than this are left to Cedar: checking them
/// all when compiling would cost more than it saves.
const MAX_PAIRS_PER_ACTION: usize = 1024;

/// Per action, the principal and resource types Cedar accepts with an empty
/// context: every pair of them was checked by Cedar.
#[derive(Default)]
pub(crate) struct AcceptedScopes {
    by_action: FxHashMap<EntityUid, (Vec<EntityTypeName>, Vec<EntityTypeName>)>,
}

impl AcceptedScopes {
    /// Asks Cedar about every (principal type, action, resource type) the
    /// schema names. A schema that may declare an enumerated entity type
    /// (its text mentions `enum` anywhere) gets no shortcut at all: there
    /// the entity id matters too.
    pub(crate) fn of(schema: &Schema, schema_text: &str) -> AcceptedScopes {
        let mut accepted = AcceptedScopes::default();
        if schema_text.contains("enum") {
            return accepted;
        }
        for action in schema.actions() {
            let (Some(principals), Some(resources)) = (
                schema.principals_for_action(action),
                schema.resources_for_action(action),
            ) else {
                continue;
            };
            let principals: Vec<EntityTypeName> = principals.cloned().collect();
            let resources: Vec<EntityTypeName> = resources.cloned().collect();
            if principals.len() * resources.len() > MAX_PAIRS_PER_ACTION {
                continue;
            }
            let all_accepted = principals.iter().all(|principal| {
                resources.iter().all(|resource| {
                    Request::new(
                        placeholder(principal),
                        action.clone(),
                        placeholder(resource),
                        Context::empty(),
                        Some(schema),
                    )
                    .is_ok()
                })
            });
            if all_accepted {
                accepted
                    .by_action
                    .insert(action.clone(), (principals, resources));
            }
        }
        accepted
    }

    /// The request for a query with an empty context whose scope Cedar is
    /// known to accept; `None` when Cedar must check it.
    pub(crate) fn request(&self, query: &Query) -> Option<Request> {
        if !query.context.as_object().is_some_and(|c| c.is_empty()) {
            return None;
        }
        let (principals, resources) = self.by_action.get(&query.action)?;
        if !principals.contains(query.principal.type_name())
            || !resources.contains(query.resource.type_name())
        {
            return None;
        }
        Some(
            Request::new(
                query.principal.clone(),
                query.action.clone(),
                query.resource.clone(),
                Context::empty(),
                None,
            )
            .expect("a request without a schema has nothing to fail on"),
        )
    }
}

fn placeholder(type_name: &EntityTypeName) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(""))
}
