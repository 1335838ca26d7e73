//! Synthetic bundles of any policy count, in the two shapes the benchmarks
//! and load tests measure, with requests to ask them:
//!
//! - **RBAC**: one policy per role, `permit(principal in Role::"rN", action
//!   in [...], resource in Folder::"fN")`; each user holds three roles.
//! - **ABAC**: one policy per folder, `permit(principal, action ==
//!   Action::"read", resource in Folder::"fN") when { clearance and
//!   department }`, plus a few unscoped `forbid`s every request meets.
//!
//! The same arguments always give the same bundle and requests.

use std::fmt::Write;

use serde_json::{Value, json};
use stele_ledger::BundleFiles;

use crate::layout::{ENTITIES_FILE, SCHEMA_FILE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Rbac,
    Abac,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Rbac => "rbac",
            Shape::Abac => "abac",
        }
    }
}

/// A shape name that is neither `rbac` nor `abac`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown shape {0:?}: use rbac or abac")]
pub struct UnknownShape(pub String);

impl std::str::FromStr for Shape {
    type Err = UnknownShape;
    fn from_str(text: &str) -> Result<Shape, UnknownShape> {
        match text {
            "rbac" => Ok(Shape::Rbac),
            "abac" => Ok(Shape::Abac),
            other => Err(UnknownShape(other.to_string())),
        }
    }
}

/// The most policies a synthetic bundle holds: more would pass the bundle
/// size limit (64 MiB).
pub const MAX_POLICIES: usize = 200_000;

const USERS: usize = 1_000;
const DOCS: usize = 1_000;
const DEPARTMENTS: usize = 50;
const ABAC_FORBIDS: usize = 5;

const SCHEMA: &str = r#"entity Role;
entity User in [Role] { department: String, clearance: Long };
entity Folder;
entity Doc in [Folder] { classification: Long };
action read, write, share appliesTo { principal: User, resource: Doc };
"#;

/// A small deterministic generator (SplitMix64), so that the bundle depends
/// on nothing but its arguments.
struct Mix(u64);

impl Mix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// A bundle of `policies` policies (1 to [`MAX_POLICIES`]) of the given
/// shape: schema, one policy file, entities; no scenarios.
pub fn bundle(shape: Shape, policies: usize) -> BundleFiles {
    assert!(
        (1..=MAX_POLICIES).contains(&policies),
        "a synthetic bundle holds 1 to {MAX_POLICIES} policies, not {policies}"
    );
    let mut mix = Mix(policies as u64);
    let mut text = String::with_capacity(policies * 120);
    match shape {
        Shape::Rbac => {
            for n in 0..policies {
                let actions = ["Action::\"read\"", "Action::\"write\"", "Action::\"share\""];
                let count = 1 + mix.below(actions.len());
                writeln!(
                    text,
                    "@id(\"role-{n}\")\npermit(principal in Role::\"r{n}\", action in [{}], resource in Folder::\"f{n}\");",
                    actions[..count].join(", ")
                )
                .expect("writes to a String");
            }
        }
        Shape::Abac => {
            for n in 0..policies.saturating_sub(ABAC_FORBIDS).max(1) {
                writeln!(
                    text,
                    "@id(\"folder-{n}\")\npermit(principal, action == Action::\"read\", resource in Folder::\"f{n}\") when {{ principal.clearance >= resource.classification && principal.department == \"d{}\" }};",
                    n % DEPARTMENTS
                )
                .expect("writes to a String");
            }
            for n in 0..ABAC_FORBIDS.min(policies.saturating_sub(1)) {
                writeln!(
                    text,
                    "@id(\"forbid-{n}\")\nforbid(principal, action, resource) when {{ resource.classification > principal.clearance + {} }};",
                    n + 2
                )
                .expect("writes to a String");
            }
        }
    }
    let folders = policies;
    let roles = roles(folders);
    let mut entities = Vec::with_capacity(USERS + DOCS);
    for (user, roles) in roles.iter().enumerate() {
        let roles: Vec<Value> = roles
            .iter()
            .map(|role| json!({"type": "Role", "id": format!("r{role}")}))
            .collect();
        entities.push(json!({
            "uid": {"type": "User", "id": format!("u{user}")},
            "attrs": {"department": format!("d{}", user % DEPARTMENTS), "clearance": mix.below(5)},
            "parents": roles,
        }));
    }
    // Document N sits in the folder of user N's first role, so a request
    // for it by that user meets that role's policy.
    for doc in 0..DOCS {
        entities.push(json!({
            "uid": {"type": "Doc", "id": format!("doc{doc}")},
            "attrs": {"classification": mix.below(5)},
            "parents": [{"type": "Folder", "id": format!("f{}", roles[doc % USERS][0])}],
        }));
    }
    let mut bundle = BundleFiles::default();
    let files = [
        (SCHEMA_FILE.to_string(), SCHEMA.to_string()),
        ("policies.cedar".to_string(), text),
        (
            ENTITIES_FILE.to_string(),
            serde_json::to_string(&entities).expect("serializes"),
        ),
    ];
    for (path, content) in files {
        bundle
            .insert(path, content)
            .expect("a synthetic bundle stays within the bundle limits");
    }
    bundle
}

/// Each user's three roles (and so the folders of their policies).
fn roles(folders: usize) -> Vec<[usize; 3]> {
    let mut mix = Mix(folders as u64 ^ 0x5EED);
    (0..USERS)
        .map(|_| [mix.below(folders), mix.below(folders), mix.below(folders)])
        .collect()
}

/// `count` requests for a bundle of `shape` and `policies`, as query JSON
/// lines (`{"principal", "action", "resource"}`): a random user and action;
/// half of them ask for the document in that user's first role's folder,
/// the others for a random document.
pub fn requests(shape: Shape, policies: usize, count: usize) -> Vec<String> {
    let mut mix = Mix(!(policies as u64));
    let actions = ["read", "write", "share"];
    (0..count)
        .map(|n| {
            let user = mix.below(USERS);
            let principal = format!("u{user}");
            let doc = if n % 2 == 0 { user } else { mix.below(DOCS) };
            let action = match shape {
                Shape::Rbac => actions[mix.below(actions.len())],
                Shape::Abac => "read",
            };
            json!({
                "principal": {"type": "User", "id": principal},
                "action": {"type": "Action", "id": action},
                "resource": {"type": "Doc", "id": format!("doc{doc}")},
            })
            .to_string()
        })
        .collect()
}
