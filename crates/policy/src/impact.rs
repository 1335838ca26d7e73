//! Which requests a change would answer differently: each request replayed
//! against the bundle in force and the proposed one, every flip counted
//! (Allow to Deny, Deny to Allow) and attributed to the policies whose
//! part in the answer changed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::decision::{Decision, Outcome};
use crate::query::{Described, Query};
use crate::snapshot::Snapshot;

/// Flips kept as examples, in request order.
pub const MAX_IMPACT_EXAMPLES: usize = 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Flips {
    pub allow_to_deny: usize,
    pub deny_to_allow: usize,
}

/// One request answered differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flip {
    /// Its line in the requests given (1-based).
    pub line: usize,
    pub request: String,
    pub before: Decision,
    pub after: Decision,
}

/// One request that one side (or both) cannot evaluate: it does not fit
/// that bundle's schema. A node refuses such a request, so a request the
/// change makes unevaluable is one it stops allowing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unevaluable {
    pub line: usize,
    pub request: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub requests: usize,
    pub unchanged: usize,
    #[serde(flatten)]
    pub flips: Flips,
    /// By policy id: the flips in whose answer that policy's part changed
    /// (it determined one answer and not the other).
    pub by_policy: BTreeMap<String, Flips>,
    pub examples: Vec<Flip>,
    /// Requests whose evaluability changes (or that neither side can
    /// evaluate); the first few are kept.
    pub unevaluable: usize,
    pub unevaluable_examples: Vec<Unevaluable>,
}

impl Impact {
    /// Replays one request (line `line` of the requests, `text` as given),
    /// with the entities it `described`, against `current` and `proposed`.
    pub fn replay(
        &mut self,
        line: usize,
        text: &str,
        (query, described): (&Query, &[Described]),
        current: &Snapshot,
        proposed: &Snapshot,
    ) {
        self.requests += 1;
        let evaluate = |snapshot: &Snapshot| match described {
            [] => snapshot.evaluate(query),
            _ => snapshot.evaluate_described(query, described),
        };
        let (before, after) = match (evaluate(current), evaluate(proposed)) {
            (Ok(before), Ok(after)) => (before, after),
            (before, after) => {
                self.unevaluable += 1;
                if self.unevaluable_examples.len() < MAX_IMPACT_EXAMPLES {
                    self.unevaluable_examples.push(Unevaluable {
                        line,
                        request: text.to_string(),
                        before: before.err().map(|e| e.to_string()),
                        after: after.err().map(|e| e.to_string()),
                    });
                }
                return;
            }
        };
        if before.decision == after.decision {
            self.unchanged += 1;
            return;
        }
        let count = |flips: &mut Flips| match after.decision {
            Outcome::Deny => flips.allow_to_deny += 1,
            Outcome::Allow => flips.deny_to_allow += 1,
        };
        count(&mut self.flips);
        let old: BTreeSet<&String> = before.reasons.iter().collect();
        let new: BTreeSet<&String> = after.reasons.iter().collect();
        for policy in old.symmetric_difference(&new) {
            count(self.by_policy.entry((*policy).clone()).or_default());
        }
        if self.examples.len() < MAX_IMPACT_EXAMPLES {
            self.examples.push(Flip {
                line,
                request: text.to_string(),
                before,
                after,
            });
        }
    }

    pub fn flipped(&self) -> usize {
        self.flips.allow_to_deny + self.flips.deny_to_allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_ledger::BundleFiles;

    fn snapshot(policies: &str) -> Snapshot {
        let mut bundle = BundleFiles::default();
        bundle
            .insert(
                "schema.cedarschema".into(),
                "entity User; entity Doc; action read appliesTo { principal: User, resource: Doc };"
                    .into(),
            )
            .unwrap();
        bundle.insert("p.cedar".into(), policies.into()).unwrap();
        Snapshot::compile(&bundle).unwrap()
    }

    fn query(user: &str) -> Query {
        Query::parse(
            &format!("User::\"{user}\""),
            "Action::\"read\"",
            "Doc::\"d\"",
            None,
        )
        .unwrap()
    }

    #[test]
    fn exactly_the_requests_a_change_flips_are_reported_with_their_policies() {
        let current = snapshot("@id(\"all\")\npermit (principal, action, resource);");
        let proposed = snapshot(
            "@id(\"all\")\npermit (principal, action, resource);\n@id(\"no-bob\")\nforbid (principal == User::\"bob\", action, resource);",
        );
        let mut impact = Impact::default();
        for (line, user) in ["alice", "bob", "carol", "bob"].iter().enumerate() {
            impact.replay(line + 1, user, (&query(user), &[]), &current, &proposed);
        }
        assert_eq!(impact.requests, 4);
        assert_eq!(impact.unchanged, 2);
        assert_eq!(
            impact.flips,
            Flips {
                allow_to_deny: 2,
                deny_to_allow: 0
            }
        );
        // "all" determined both answers before and neither after.
        assert_eq!(impact.by_policy["no-bob"].allow_to_deny, 2);
        assert_eq!(impact.by_policy["all"].allow_to_deny, 2);
        let lines: Vec<usize> = impact.examples.iter().map(|f| f.line).collect();
        assert_eq!(lines, [2, 4]);
    }
}
