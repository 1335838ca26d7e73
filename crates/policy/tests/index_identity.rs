//! The policy index answers exactly as Cedar over the whole set: decision,
//! reasons and errors, on random worlds (entity types and attributes, entity
//! hierarchies, action groups), random policies (permit and forbid, every
//! scope form, `when`/`unless`, `is`, `in`, `has`, attributes that may be
//! missing or of the wrong type, so that evaluation errors) and random
//! requests (including entities the store does not hold).

use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request, Response};
use proptest::prelude::*;
use serde_json::{Value, json};
use stele_policy::{Decision, Outcome, PolicyIndex};

const GROUPS: usize = 4;
const USERS: usize = 5;
const FOLDERS: usize = 4;
const DOCS: usize = 5;
const ACTIONS: [&str; 4] = ["read", "write", "share", "delete"];
const ACTION_GROUPS: [&str; 2] = ["viewing", "editing"];

/// One random world: who is in which group, which folder holds what, which
/// attributes each entity has, the policies, and the requests to ask.
#[derive(Clone, Debug)]
struct World {
    /// For each group, its parent group (a lower index, so no cycles).
    group_parent: Vec<Option<usize>>,
    /// For each user: its groups, its `level` (missing or a string sometimes),
    /// its `dept`.
    users: Vec<(Vec<usize>, Attr, Option<u8>)>,
    folder_parent: Vec<Option<usize>>,
    docs: Vec<DocShape>,
    /// For each action: the action groups it belongs to.
    action_groups: Vec<Vec<usize>>,
    policies: Vec<PolicyShape>,
    requests: Vec<(u8, u8, u8, Option<bool>)>,
}

/// A document: its folder, its `level`, its owner, `public`.
type DocShape = (Option<usize>, Attr, Option<usize>, Option<bool>);

/// An attribute that is a number, missing, or of the wrong type.
#[derive(Clone, Copy, Debug)]
enum Attr {
    Long(i64),
    Missing,
    Text,
}

#[derive(Clone, Debug)]
struct PolicyShape {
    forbid: bool,
    principal: (u8, u8),
    action: (u8, Vec<u8>),
    resource: (u8, u8),
    conditions: Vec<(bool, u8)>,
}

fn attr() -> impl Strategy<Value = Attr> {
    prop_oneof![
        4 => (0i64..4).prop_map(Attr::Long),
        1 => Just(Attr::Missing),
        1 => Just(Attr::Text),
    ]
}

/// For each of `n` nodes, its parent: a lower index or none, so no cycles.
fn forest(n: usize) -> Vec<BoxedStrategy<Option<usize>>> {
    (0..n)
        .map(|i| {
            if i == 0 {
                Just(None).boxed()
            } else {
                proptest::option::of(0..i).boxed()
            }
        })
        .collect()
}

fn world() -> impl Strategy<Value = World> {
    let group_parent = forest(GROUPS);
    let folder_parent = forest(FOLDERS);
    let users = proptest::collection::vec(
        (
            proptest::collection::vec(0..GROUPS, 0..3),
            attr(),
            proptest::option::of(0u8..3),
        ),
        USERS,
    );
    let docs = proptest::collection::vec(
        (
            proptest::option::of(0..FOLDERS),
            attr(),
            proptest::option::of(0..USERS),
            proptest::option::of(any::<bool>()),
        ),
        DOCS,
    );
    let action_groups = proptest::collection::vec(
        proptest::collection::vec(0..ACTION_GROUPS.len(), 0..2),
        ACTIONS.len(),
    );
    let policy = (
        any::<bool>(),
        (0u8..8, any::<u8>()),
        (0u8..4, proptest::collection::vec(any::<u8>(), 1..3)),
        (0u8..8, any::<u8>()),
        proptest::collection::vec((any::<bool>(), 0u8..12), 0..3),
    )
        .prop_map(
            |(forbid, principal, action, resource, conditions)| PolicyShape {
                forbid,
                principal,
                action,
                resource,
                conditions,
            },
        );
    let policies = proptest::collection::vec(policy, 1..40);
    let requests = proptest::collection::vec(
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            proptest::option::of(any::<bool>()),
        ),
        1..12,
    );
    (
        group_parent,
        users,
        folder_parent,
        docs,
        action_groups,
        policies,
        requests,
    )
        .prop_map(
            |(group_parent, users, folder_parent, docs, action_groups, policies, requests)| World {
                group_parent,
                users,
                folder_parent,
                docs,
                action_groups,
                policies,
                requests,
            },
        )
}

fn uid(ty: &str, id: impl std::fmt::Display) -> String {
    format!("{ty}::\"{id}\"")
}

fn uid_json(ty: &str, id: impl std::fmt::Display) -> Value {
    json!({"type": ty, "id": id.to_string()})
}

fn attr_json(attr: Attr) -> Option<Value> {
    match attr {
        Attr::Long(n) => Some(json!(n)),
        Attr::Missing => None,
        Attr::Text => Some(json!("high")),
    }
}

fn entities_json(world: &World) -> Value {
    let mut all = Vec::new();
    for (g, parent) in world.group_parent.iter().enumerate() {
        let parents: Vec<Value> = parent.iter().map(|p| uid_json("Group", p)).collect();
        all.push(json!({"uid": uid_json("Group", g), "attrs": {}, "parents": parents}));
    }
    for (u, (groups, level, dept)) in world.users.iter().enumerate() {
        let mut attrs = serde_json::Map::new();
        if let Some(level) = attr_json(*level) {
            attrs.insert("level".into(), level);
        }
        if let Some(dept) = dept {
            attrs.insert(
                "dept".into(),
                json!(["eng", "ops", "sales"][*dept as usize]),
            );
        }
        let parents: Vec<Value> = groups.iter().map(|g| uid_json("Group", g)).collect();
        all.push(json!({"uid": uid_json("User", u), "attrs": attrs, "parents": parents}));
    }
    for (f, parent) in world.folder_parent.iter().enumerate() {
        let parents: Vec<Value> = parent.iter().map(|p| uid_json("Folder", p)).collect();
        all.push(json!({"uid": uid_json("Folder", f), "attrs": {}, "parents": parents}));
    }
    for (d, (folder, level, owner, public)) in world.docs.iter().enumerate() {
        let mut attrs = serde_json::Map::new();
        if let Some(level) = attr_json(*level) {
            attrs.insert("level".into(), level);
        }
        if let Some(owner) = owner {
            attrs.insert("owner".into(), json!({"__entity": uid_json("User", owner)}));
        }
        if let Some(public) = public {
            attrs.insert("public".into(), json!(public));
        }
        let parents: Vec<Value> = folder.iter().map(|f| uid_json("Folder", f)).collect();
        all.push(json!({"uid": uid_json("Doc", d), "attrs": attrs, "parents": parents}));
    }
    for (a, groups) in world.action_groups.iter().enumerate() {
        let parents: Vec<Value> = groups
            .iter()
            .map(|g| uid_json("Action", ACTION_GROUPS[*g]))
            .collect();
        all.push(json!({"uid": uid_json("Action", ACTIONS[a]), "attrs": {}, "parents": parents}));
    }
    for group in ACTION_GROUPS {
        all.push(json!({"uid": uid_json("Action", group), "attrs": {}, "parents": []}));
    }
    Value::Array(all)
}

/// A principal or resource scope: `kind` picks the form, `pick` the entity.
fn entity_scope(
    var: &str,
    kind: u8,
    pick: u8,
    leaf: (&str, usize),
    group: (&str, usize),
) -> String {
    let leaf_uid = uid(leaf.0, pick as usize % leaf.1);
    let group_uid = uid(group.0, pick as usize % group.1);
    match kind {
        0 => var.to_string(),
        1 => format!("{var} == {leaf_uid}"),
        2 => format!("{var} in {group_uid}"),
        3 => format!("{var} is {}", leaf.0),
        4 => format!("{var} is {} in {group_uid}", leaf.0),
        5 => format!("{var} == {group_uid}"),
        6 => format!("{var} in {leaf_uid}"),
        // A type the request entity never has.
        _ => format!("{var} is {} in {group_uid}", group.0),
    }
}

fn action_scope(kind: u8, picks: &[u8]) -> String {
    let name = |pick: u8| {
        let all: Vec<&str> = ACTIONS
            .iter()
            .chain(ACTION_GROUPS.iter())
            .copied()
            .collect();
        uid("Action", all[pick as usize % all.len()])
    };
    match kind {
        0 => "action".into(),
        1 => format!("action == {}", name(picks[0])),
        2 => format!("action in {}", name(picks[0])),
        _ => {
            let list: Vec<String> = picks.iter().map(|p| name(*p)).collect();
            format!("action in [{}]", list.join(", "))
        }
    }
}

/// Conditions, several of which error on a missing attribute or a wrong type.
fn condition(kind: u8) -> &'static str {
    [
        "principal.level > resource.level",
        "resource has owner && resource.owner == principal",
        "resource.public",
        "principal in resource.owner",
        "context.flag",
        "principal.dept == \"eng\"",
        "principal has level && principal.level >= 2",
        "resource is Doc && resource in Folder::\"0\"",
        "principal is User && principal in Group::\"1\"",
        "resource.level + 1 > 2",
        "context has flag && context.flag",
        "principal.dept like \"e*\"",
    ][kind as usize % 12]
}

fn policy_text(shape: &PolicyShape) -> String {
    let principal = entity_scope(
        "principal",
        shape.principal.0,
        shape.principal.1,
        ("User", USERS),
        ("Group", GROUPS),
    );
    let action = action_scope(shape.action.0, &shape.action.1);
    let resource = entity_scope(
        "resource",
        shape.resource.0,
        shape.resource.1,
        ("Doc", DOCS),
        ("Folder", FOLDERS),
    );
    let mut text = format!(
        "{}({principal}, {action}, {resource})",
        if shape.forbid { "forbid" } else { "permit" }
    );
    for (unless, kind) in &shape.conditions {
        let keyword = if *unless { "unless" } else { "when" };
        text.push_str(&format!(" {keyword} {{ {} }}", condition(*kind)));
    }
    text.push(';');
    text
}

fn request(world: &World, (p, a, r, flag): (u8, u8, u8, Option<bool>)) -> Request {
    // Mostly users and docs; sometimes groups, folders, or entities the
    // store does not hold.
    let principal = match p % 8 {
        0 => uid("Group", p as usize % GROUPS),
        1 => uid("User", "ghost"),
        _ => uid("User", p as usize % world.users.len()),
    };
    let actions: Vec<&str> = ACTIONS
        .iter()
        .chain(ACTION_GROUPS.iter())
        .copied()
        .collect();
    let action = uid("Action", actions[a as usize % actions.len()]);
    let resource = match r % 8 {
        0 => uid("Folder", r as usize % FOLDERS),
        1 => uid("Doc", "ghost"),
        _ => uid("Doc", r as usize % world.docs.len()),
    };
    let context = match flag {
        Some(flag) => Context::from_json_value(json!({"flag": flag}), None).unwrap(),
        None => Context::empty(),
    };
    Request::new(
        EntityUid::from_str(&principal).unwrap(),
        EntityUid::from_str(&action).unwrap(),
        EntityUid::from_str(&resource).unwrap(),
        context,
        None,
    )
    .unwrap()
}

fn answer(response: &Response) -> Decision {
    Decision::from_response(response)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        ..ProptestConfig::default()
    })]

    #[test]
    fn indexed_answers_equal_cedars_over_the_whole_set(world in world()) {
        let text: String = world.policies.iter().map(policy_text).collect::<Vec<_>>().join("\n");
        let policies = PolicySet::from_str(&text).unwrap();
        let entities = Entities::from_json_value(entities_json(&world), None).unwrap();
        let index = PolicyIndex::build(policies.clone());
        let authorizer = Authorizer::new();
        for asked in &world.requests {
            let request = request(&world, *asked);
            let whole = answer(&authorizer.is_authorized(&request, &policies, &entities));
            let indexed = answer(&index.authorize(&request, &entities));
            prop_assert_eq!(&indexed, &whole, "policies:\n{}\nrequest: {:?}", text, request);
        }
    }
}

/// The index is selective: of many policies on distinct roles, a request
/// hands Cedar only those of its principal's roles (and the unconstrained).
#[test]
fn a_request_hands_cedar_only_the_policies_its_scope_can_match() {
    let mut text = String::new();
    let mut entities = Vec::new();
    for role in 0..1_000 {
        text.push_str(&format!(
            "permit(principal in Role::\"{role}\", action == Action::\"read\", resource in Folder::\"{role}\");\n"
        ));
        entities.push(json!({"uid": uid_json("Role", role), "attrs": {}, "parents": []}));
    }
    text.push_str("forbid(principal, action, resource) when { context has flag };\n");
    entities.push(json!({"uid": uid_json("User", "alice"), "attrs": {}, "parents": [uid_json("Role", 7), uid_json("Role", 9)]}));
    entities.push(
        json!({"uid": uid_json("Doc", "d"), "attrs": {}, "parents": [uid_json("Folder", 7)]}),
    );
    let policies = PolicySet::from_str(&text).unwrap();
    let entities = Entities::from_json_value(Value::Array(entities), None).unwrap();
    let index = PolicyIndex::build(policies.clone());
    let request = Request::new(
        EntityUid::from_str("User::\"alice\"").unwrap(),
        EntityUid::from_str("Action::\"read\"").unwrap(),
        EntityUid::from_str("Doc::\"d\"").unwrap(),
        Context::empty(),
        None,
    )
    .unwrap();
    // Role 7's policy (role 9's names another folder) and the forbid.
    assert_eq!(index.candidate_count(&request, &entities), 2);
    let decision = answer(&index.authorize(&request, &entities));
    assert_eq!(decision.decision, Outcome::Allow);
    assert_eq!(decision.reasons, ["policy7"]);
}
