//! The policy index: built once per snapshot, it selects, for each request,
//! the few policies whose scope can match, so that Cedar evaluates those
//! rather than the whole set.
//!
//! A policy whose scope does not match a request is not satisfied and cannot
//! error (scope tests never error in Cedar: `in` on an unknown entity is just
//! equality). Leaving it out therefore changes neither the decision, nor the
//! reasons, nor the errors: the answer is Cedar's over the whole set. The
//! differential test `tests/index_identity.rs` checks exactly that.

use std::collections::HashSet;

use cedar_policy::{
    ActionConstraint, Authorizer, Entities, EntityTypeName, EntityUid, Policy, PolicySet,
    PrincipalConstraint, Request, ResourceConstraint, Response,
};
use rustc_hash::FxHashMap;

/// A scope test on the principal or the resource: Cedar's constraint with
/// the entity it names, if any.
#[derive(Clone, Debug)]
enum EntityScope {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    Is(EntityTypeName),
    IsIn(EntityTypeName, EntityUid),
}

impl From<PrincipalConstraint> for EntityScope {
    fn from(constraint: PrincipalConstraint) -> EntityScope {
        match constraint {
            PrincipalConstraint::Any => EntityScope::Any,
            PrincipalConstraint::Eq(uid) => EntityScope::Eq(uid),
            PrincipalConstraint::In(uid) => EntityScope::In(uid),
            PrincipalConstraint::Is(ty) => EntityScope::Is(ty),
            PrincipalConstraint::IsIn(ty, uid) => EntityScope::IsIn(ty, uid),
        }
    }
}

impl From<ResourceConstraint> for EntityScope {
    fn from(constraint: ResourceConstraint) -> EntityScope {
        match constraint {
            ResourceConstraint::Any => EntityScope::Any,
            ResourceConstraint::Eq(uid) => EntityScope::Eq(uid),
            ResourceConstraint::In(uid) => EntityScope::In(uid),
            ResourceConstraint::Is(ty) => EntityScope::Is(ty),
            ResourceConstraint::IsIn(ty, uid) => EntityScope::IsIn(ty, uid),
        }
    }
}

impl EntityScope {
    fn matches(&self, entity: &Lineage<'_>) -> bool {
        match self {
            EntityScope::Any => true,
            EntityScope::Eq(uid) => entity.uid == uid,
            EntityScope::In(uid) => entity.is_in(uid),
            EntityScope::Is(ty) => entity.uid.type_name() == ty,
            EntityScope::IsIn(ty, uid) => entity.uid.type_name() == ty && entity.is_in(uid),
        }
    }
}

fn action_matches(constraint: &ActionConstraint, action: &Lineage<'_>) -> bool {
    match constraint {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => action.uid == uid,
        ActionConstraint::In(uids) => uids.iter().any(|uid| action.is_in(uid)),
    }
}

/// A request entity with its ancestors in the snapshot's entities (a list:
/// requests meet a handful of ancestors, which a scan beats hashing).
struct Lineage<'a> {
    uid: &'a EntityUid,
    ancestors: Vec<&'a EntityUid>,
}

impl<'a> Lineage<'a> {
    fn of(uid: &'a EntityUid, entities: &'a Entities) -> Lineage<'a> {
        let ancestors = entities
            .ancestors(uid)
            .map(|ancestors| ancestors.collect())
            .unwrap_or_default();
        Lineage { uid, ancestors }
    }

    /// Cedar's `in`: reflexive, and transitive through the entity hierarchy.
    fn is_in(&self, uid: &EntityUid) -> bool {
        self.uid == uid || self.ancestors.contains(&uid)
    }

    /// The entity and its ancestors: the keys under which a policy scoped
    /// `==`/`in` this entity may be filed.
    fn keys(&self) -> impl Iterator<Item = &'a EntityUid> + '_ {
        std::iter::once(self.uid).chain(self.ancestors.iter().copied())
    }
}

/// Positions (into the index's policy list) filed under an entity, under an
/// entity type, or under nothing (unconstrained, always candidates).
///
/// Hashed with Fx, not SipHash: the keys come from signed bundles, not from
/// callers, and hashing took a fifth of the index's time.
#[derive(Default)]
struct Postings {
    by_entity: FxHashMap<EntityUid, Vec<u32>>,
    by_type: FxHashMap<EntityTypeName, Vec<u32>>,
    always: Vec<u32>,
}

impl Postings {
    fn file(&mut self, scope: &EntityScope, position: u32) {
        match scope {
            EntityScope::Any => self.always.push(position),
            EntityScope::Eq(uid) | EntityScope::In(uid) | EntityScope::IsIn(_, uid) => {
                self.file_under(uid, position)
            }
            EntityScope::Is(ty) => self.by_type.entry(ty.clone()).or_default().push(position),
        }
    }

    fn file_under(&mut self, uid: &EntityUid, position: u32) {
        self.by_entity
            .entry(uid.clone())
            .or_default()
            .push(position);
    }

    /// The lists a request entity selects: those filed under it or an
    /// ancestor, under its type, and the unconstrained one.
    fn lists<'s>(&'s self, entity: &Lineage<'_>) -> Vec<&'s [u32]> {
        let mut lists: Vec<&[u32]> = entity
            .keys()
            .filter_map(|key| self.by_entity.get(key).map(Vec::as_slice))
            .collect();
        if let Some(list) = self.by_type.get(entity.uid.type_name()) {
            lists.push(list);
        }
        lists.push(&self.always);
        lists
    }
}

struct Indexed {
    policy: Policy,
    principal: EntityScope,
    action: ActionConstraint,
    resource: EntityScope,
}

/// The policies of one snapshot, filed by principal, action and resource
/// scope, and the whole set they come from.
pub struct PolicyIndex {
    whole: PolicySet,
    policies: Vec<Indexed>,
    principal: Postings,
    action: Postings,
    resource: Postings,
    authorizer: Authorizer,
}

impl PolicyIndex {
    /// Files every policy under each of its three scope constraints. Cost:
    /// one pass over the policies, paid once per snapshot.
    pub fn build(whole: PolicySet) -> PolicyIndex {
        let mut index = PolicyIndex {
            whole,
            policies: Vec::new(),
            principal: Postings::default(),
            action: Postings::default(),
            resource: Postings::default(),
            authorizer: Authorizer::new(),
        };
        let mut indexed_policies = Vec::new();
        for policy in index.whole.policies() {
            let position = u32::try_from(indexed_policies.len()).expect("under 2^32 policies");
            let indexed = Indexed {
                policy: policy.clone(),
                principal: policy.principal_constraint().into(),
                action: policy.action_constraint(),
                resource: policy.resource_constraint().into(),
            };
            index.principal.file(&indexed.principal, position);
            match &indexed.action {
                ActionConstraint::Any => index.action.always.push(position),
                ActionConstraint::Eq(uid) => index.action.file_under(uid, position),
                ActionConstraint::In(uids) => {
                    for uid in uids {
                        index.action.file_under(uid, position);
                    }
                }
            }
            index.resource.file(&indexed.resource, position);
            indexed_policies.push(indexed);
        }
        index.policies = indexed_policies;
        index
    }

    /// The whole policy set, as compiled.
    pub fn whole(&self) -> &PolicySet {
        &self.whole
    }

    /// The positions of the policies whose scope matches the request, in
    /// index order. `None` when the request leaves an entity unknown (only
    /// partial evaluation does): then every policy is a candidate.
    fn candidates(&self, request: &Request, entities: &Entities) -> Option<Vec<u32>> {
        let principal = Lineage::of(request.principal()?, entities);
        let action = Lineage::of(request.action()?, entities);
        let resource = Lineage::of(request.resource()?, entities);
        // Walk the dimension that selects fewest, test the other two. One
        // that selects a handful is walked at once, sparing the lookups of
        // the rest; actions, usually the broadest, are looked up last.
        const FEW: usize = 8;
        let mut narrowest: Option<(usize, Vec<&[u32]>)> = None;
        for (postings, lineage) in [
            (&self.resource, &resource),
            (&self.principal, &principal),
            (&self.action, &action),
        ] {
            let lists = postings.lists(lineage);
            let size = lists.iter().map(|list| list.len()).sum::<usize>();
            if narrowest.as_ref().is_none_or(|(least, _)| size < *least) {
                narrowest = Some((size, lists));
            }
            if size <= FEW {
                break;
            }
        }
        let (_, narrowest) = narrowest.expect("three dimensions");
        let mut selected: Vec<u32> = narrowest
            .iter()
            .flat_map(|list| list.iter().copied())
            .filter(|&position| {
                let policy = &self.policies[position as usize];
                policy.principal.matches(&principal)
                    && action_matches(&policy.action, &action)
                    && policy.resource.matches(&resource)
            })
            .collect();
        selected.sort_unstable();
        // An action scope `in [a, b]` is filed twice: keep it once.
        selected.dedup();
        Some(selected)
    }

    /// Cedar's answer over the policies whose scope matches the request,
    /// which is Cedar's answer over the whole set.
    pub fn authorize(&self, request: &Request, entities: &Entities) -> Response {
        let Some(positions) = self.candidates(request, entities) else {
            return self
                .authorizer
                .is_authorized(request, &self.whole, entities);
        };
        if positions.is_empty() {
            // No policy in scope: Cedar's answer is a deny that no policy
            // determined and no policy erred in.
            return Response::new(cedar_policy::Decision::Deny, HashSet::new(), Vec::new());
        }
        let set = PolicySet::from_policies(
            positions
                .into_iter()
                .map(|position| self.policies[position as usize].policy.clone()),
        )
        .expect("policies of one valid set stay a valid set");
        self.authorizer.is_authorized(request, &set, entities)
    }

    /// How many policies a request would hand to Cedar (for benchmarks and
    /// tests of the index's selectivity).
    pub fn candidate_count(&self, request: &Request, entities: &Entities) -> usize {
        self.candidates(request, entities)
            .map_or(self.policies.len(), |c| c.len())
    }
}
