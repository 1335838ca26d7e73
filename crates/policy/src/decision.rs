//! The answer to a query, in the form every stele interface prints.

use cedar_policy::Response;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Allow,
    Deny,
}

/// Cedar's answer: the outcome, the determining policies (`reasons`) and the
/// evaluation errors, both sorted so that nothing printed, logged or hashed
/// depends on hash order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub decision: Outcome,
    pub reasons: Vec<String>,
    pub errors: Vec<String>,
}

impl Decision {
    pub fn from_response(response: &Response) -> Decision {
        let decision = match response.decision() {
            cedar_policy::Decision::Allow => Outcome::Allow,
            cedar_policy::Decision::Deny => Outcome::Deny,
        };
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        reasons.sort();
        let mut errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        errors.sort();
        Decision {
            decision,
            reasons,
            errors,
        }
    }
}
