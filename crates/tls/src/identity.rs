//! What a certificate names: a node id, or a client's roles.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The SAN URI of node N: `stele://node/N`.
pub const NODE_URI: &str = "stele://node/";
/// The SAN URI of a role: `stele://role/NAME`.
pub const ROLE_URI: &str = "stele://role/";

/// What a client certificate allows (docs/SECURITY.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Propose, approve, administer membership; gRPC reflection.
    Operator,
    /// Ledger reads, Status, Export, WatchHead, /metrics.
    Reader,
    /// Decisions (gRPC and AuthZEN), and the membership part of Status.
    Decide,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Operator, Role::Reader, Role::Decide];

    pub const fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Reader => "reader",
            Role::Decide => "decide",
        }
    }

    /// The SAN URI that grants this role.
    pub fn uri(self) -> String {
        format!("{ROLE_URI}{}", self.name())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A role name that is none of stele's.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{0:?} is not a role: the roles are operator, reader and decide")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == text)
            .ok_or_else(|| UnknownRole(text.to_string()))
    }
}

/// The holder of a certificate the cluster's CA issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    /// The node it names, for a node's certificate.
    pub node: Option<u64>,
    /// The roles it grants, for a client's.
    pub roles: BTreeSet<Role>,
    /// Its subject's common name, for logs.
    pub name: String,
    /// SHA-256 of its SubjectPublicKeyInfo, in hex: stays the same when a
    /// certificate is renewed with `--reuse-key`.
    pub spki_sha256: String,
}

impl Certified {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

impl fmt::Display for Certified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(node) => write!(f, "node {node} ({})", self.name),
            None => {
                let roles: Vec<&str> = self.roles.iter().map(|r| r.name()).collect();
                write!(f, "{:?} with roles [{}]", self.name, roles.join(", "))
            }
        }
    }
}

/// Who is at the other end of a connection, as its transport proved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// `--insecure-plaintext`: nothing is proven, and nothing is checked.
    Insecure,
    /// TLS, without a client certificate.
    Anonymous,
    /// TLS, with a certificate of the cluster's CA.
    Certified(Arc<Certified>),
}

impl Caller {
    /// The caller a request's extension recorded; none recorded means the
    /// connection proved nothing, so the caller is anonymous.
    pub fn proven(recorded: Option<&Caller>) -> &Caller {
        static ANONYMOUS: Caller = Caller::Anonymous;
        recorded.unwrap_or(&ANONYMOUS)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Insecure => f.write_str("a plaintext caller"),
            Caller::Anonymous => f.write_str("a caller without a certificate"),
            Caller::Certified(certified) => certified.fmt(f),
        }
    }
}

/// A certificate that does not say who it is for in a way stele reads.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CertError {
    #[error("the certificate does not parse: {0}")]
    Parse(String),
    #[error("the certificate names {0:?}, which is not a node id (stele://node/N, N from 1)")]
    BadNodeId(String),
    #[error("the certificate names two nodes, {0} and {1}")]
    TwoNodes(u64, u64),
}

/// Reads a certificate's stele names. Whether it is valid (issued by the
/// CA, within its dates) is the TLS handshake's to check, before this.
pub fn read_certificate(der: &[u8]) -> Result<Certified, CertError> {
    let fields = crate::der::read(der)
        .ok_or_else(|| CertError::Parse("not a DER X.509 certificate".into()))?;
    let mut node = None;
    let mut roles = BTreeSet::new();
    for uri in fields.uris {
        if let Some(id) = uri.strip_prefix(NODE_URI) {
            let id: u64 = id
                .parse()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| CertError::BadNodeId(uri.to_string()))?;
            if let Some(other) = node.replace(id)
                && other != id
            {
                return Err(CertError::TwoNodes(other, id));
            }
        } else if let Some(role) = uri.strip_prefix(ROLE_URI) {
            // A role this build does not know grants nothing.
            if let Ok(role) = role.parse() {
                roles.insert(role);
            }
        }
    }
    Ok(Certified {
        node,
        roles,
        name: fields.common_name.unwrap_or("").to_string(),
        spki_sha256: hex::encode(Sha256::digest(fields.spki)),
    })
}
