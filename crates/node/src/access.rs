//! Who may call what, in one table: each gRPC method and HTTP route names
//! the role it needs (docs/SECURITY.md), and one function decides from the
//! caller's certificate. The gRPC table is enforced by a layer in front of
//! every service on the client port, so that no method can be served
//! without an entry: a method the table does not name is refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use stele_ledger::Reason;
use stele_tls::{Caller, Role};
use tonic::Status;

use crate::errors::with_reason;

/// Read only from a node's certificate; anyone else's is ignored.
pub use stele_client::FORWARDED_ROLES;

/// What a call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health probes.
    Nothing,
    /// One of these roles.
    AnyOf(&'static [Role]),
    /// The decide role, unless the node lets decisions in without a
    /// certificate (`--decide-without-certificate`).
    Decide,
}

const OPERATOR: Need = Need::AnyOf(&[Role::Operator]);
const READER: Need = Need::AnyOf(&[Role::Reader]);
const READER_OR_DECIDE: Need = Need::AnyOf(&[Role::Reader, Role::Decide]);

/// The role each gRPC method of the client port needs; `None`: not a
/// method of this port.
pub fn grpc_need(path: &str) -> Option<Need> {
    if path.starts_with("/grpc.health.v1.Health/") {
        return Some(Need::Nothing);
    }
    if path.starts_with("/grpc.reflection.v1.ServerReflection/") {
        return Some(OPERATOR);
    }
    let need = match path {
        "/stele.v1.Decision/Check" | "/stele.v1.Decision/CheckBatch" => Need::Decide,
        "/stele.v1.Ledger/Propose"
        | "/stele.v1.Ledger/Approve"
        | "/stele.v1.Ledger/Withdraw"
        | "/stele.v1.Ledger/Restore" => OPERATOR,
        "/stele.v1.Ledger/GetProposal"
        | "/stele.v1.Ledger/ListProposals"
        | "/stele.v1.Ledger/GetVersion"
        | "/stele.v1.Ledger/ListVersions"
        | "/stele.v1.Ledger/Export"
        | "/stele.v1.Ledger/WatchHead" => READER,
        "/stele.v1.Ledger/Head" | "/stele.v1.Admin/Status" => READER_OR_DECIDE,
        "/stele.v1.Admin/Bootstrap" | "/stele.v1.Admin/RecentRequests" => OPERATOR,
        _ => return None,
    };
    Some(need)
}

/// Whether a caller acts with `role`: a client, if its certificate grants
/// it; a node, if the caller it forwards for has it, or else for reader and
/// decide (what a node asks its peers: their status, their head). Checked
/// on every call: it allocates nothing.
pub fn holds(caller: &Caller, forwarded: Option<&str>, role: Role) -> bool {
    match caller {
        Caller::Insecure => true,
        Caller::Anonymous => false,
        Caller::Certified(certified) if certified.node.is_some() => match forwarded {
            Some(roles) => roles.split(',').any(|name| name == role.name()),
            None => matches!(role, Role::Reader | Role::Decide),
        },
        Caller::Certified(certified) => certified.has(role),
    }
}

/// Every role a caller acts with (see [`holds`]).
pub fn roles(caller: &Caller, forwarded: Option<&str>) -> BTreeSet<Role> {
    Role::ALL
        .into_iter()
        .filter(|role| holds(caller, forwarded, *role))
        .collect()
}

/// The roles the caller of a gRPC request acts with.
pub fn request_roles<T>(request: &tonic::Request<T>) -> BTreeSet<Role> {
    let caller = Caller::proven(request.extensions().get::<Caller>());
    roles(
        caller,
        forwarded_roles(request.metadata().get(FORWARDED_ROLES)),
    )
}

fn forwarded_roles<V>(value: Option<&V>) -> Option<&str>
where
    V: HeaderText + ?Sized,
{
    value.and_then(HeaderText::text)
}

/// A header value's text, for tonic's metadata and http's headers alike.
trait HeaderText {
    fn text(&self) -> Option<&str>;
}

impl HeaderText for tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
    fn text(&self) -> Option<&str> {
        self.to_str().ok()
    }
}

impl HeaderText for http::HeaderValue {
    fn text(&self) -> Option<&str> {
        self.to_str().ok()
    }
}

/// The roles as [`FORWARDED_ROLES`] carries them.
pub fn forwarded_value(roles: &BTreeSet<Role>) -> String {
    roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
}

/// A call refused: who asked, and the role it needed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{caller} may not call {what}: it needs a client certificate from the cluster CA with the {needed} role"
)]
pub struct Denied {
    pub caller: String,
    pub what: String,
    pub needed: String,
}

/// Whether `caller` may make a call needing `need`; `what` (the method or
/// route) only names it in a refusal. Nothing is allocated unless refused.
pub fn authorize(
    caller: &Caller,
    forwarded: Option<&str>,
    need: Need,
    decide_requires_certificate: bool,
    what: &str,
) -> Result<(), Denied> {
    let allowed: &[Role] = match need {
        Need::Nothing => return Ok(()),
        Need::Decide if !decide_requires_certificate => return Ok(()),
        Need::Decide => &[Role::Decide],
        Need::AnyOf(roles) => roles,
    };
    if allowed.iter().any(|role| holds(caller, forwarded, *role)) {
        return Ok(());
    }
    Err(Denied {
        caller: caller.to_string(),
        what: what.to_string(),
        needed: allowed
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(" or "),
    })
}

/// The refusal as gRPC says it: PERMISSION_DENIED, reason
/// `PERMISSION_DENIED`, and the role needed in its metadata.
pub fn denied_status(denied: &Denied) -> Status {
    with_reason(
        Reason::PermissionDenied,
        denied.to_string(),
        [("needed_role".to_string(), denied.needed.clone())].into(),
    )
}

/// The access check in front of the client port's services.
#[derive(Clone)]
pub struct AccessLayer {
    pub decide_requires_certificate: bool,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whose forwarded roles count: only a node this node's membership
    /// lists acts as a node.
    pub raft: stele_store::Raft,
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    layer: AccessLayer,
}

impl<S, B> tower::Service<http::Request<B>> for Access<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.standing(&request) {
            // Only a member forwards: anyone else's header means nothing.
            // A node with no membership yet leads nobody, so nobody
            // forwards to it.
            Standing::NotANode | Standing::NoMembershipYet => {
                request.headers_mut().remove(FORWARDED_ROLES);
            }
            // A node certificate the membership does not list (a node
            // removed, or one issued for a node never added) acts with no
            // role at all, not even a node's own reader and decide.
            Standing::NotAMember => {
                request
                    .headers_mut()
                    .insert(FORWARDED_ROLES, http::HeaderValue::from_static(NO_ROLE));
            }
            Standing::Member => {}
        }
        match self.check(&request) {
            None => Box::pin(self.inner.call(request)),
            Some(status) => Box::pin(futures::future::ready(Ok(status.into_http()))),
        }
    }
}

/// Who a caller is to this node's membership.
pub enum Standing {
    NotANode,
    Member,
    NotAMember,
    /// This node has no membership yet (a node about to join, probed by
    /// the leader that adds it): a node of the cluster's CA has a node's
    /// own roles, and forwards for nobody.
    NoMembershipYet,
}

/// Where `caller` stands with the membership of the node `raft` runs.
pub fn standing(caller: &Caller, raft: &stele_store::Raft) -> Standing {
    let Caller::Certified(certified) = caller else {
        return Standing::NotANode;
    };
    let Some(id) = certified.node else {
        return Standing::NotANode;
    };
    match crate::current_members::lists(&raft.metrics().borrow(), id) {
        None => Standing::NoMembershipYet,
        Some(true) => Standing::Member,
        Some(false) => Standing::NotAMember,
    }
}

/// What a node certificate that is no member acts with: no role.
pub const NO_ROLE: &str = "";

impl<S> Access<S> {
    fn standing<B>(&self, request: &http::Request<B>) -> Standing {
        standing(
            Caller::proven(request.extensions().get::<Caller>()),
            &self.layer.raft,
        )
    }

    fn check<B>(&self, request: &http::Request<B>) -> Option<Status> {
        let path = request.uri().path();
        let Some(need) = grpc_need(path) else {
            if path.starts_with("/stele.v1.Raft/") {
                return Some(Status::unimplemented(
                    "the Raft transport is served on the peer port (--peer-listen), not the client port",
                ));
            }
            return Some(Status::unimplemented(format!(
                "no method {path} on this port"
            )));
        };
        let caller = Caller::proven(request.extensions().get::<Caller>());
        let forwarded = forwarded_roles(request.headers().get(FORWARDED_ROLES));
        match authorize(
            caller,
            forwarded,
            need,
            self.layer.decide_requires_certificate,
            path.trim_start_matches('/'),
        ) {
            Ok(()) => None,
            Err(denied) => {
                self.layer.metrics.access_denied();
                tracing::info!("{denied}");
                Some(denied_status(&denied))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certified(node: Option<u64>, roles: &[Role]) -> Caller {
        Caller::Certified(Arc::new(stele_tls::Certified {
            node,
            roles: roles.iter().copied().collect(),
            name: "t".into(),
            spki_sha256: String::new(),
        }))
    }

    fn may(caller: &Caller, forwarded: Option<&str>, path: &str) -> bool {
        authorize(caller, forwarded, grpc_need(path).unwrap(), true, "x").is_ok()
    }

    #[test]
    fn each_role_reaches_its_own_methods_only() {
        let decide = certified(None, &[Role::Decide]);
        let reader = certified(None, &[Role::Reader]);
        let operator = certified(None, &[Role::Operator]);
        assert!(may(&decide, None, "/stele.v1.Decision/Check"));
        assert!(may(&decide, None, "/stele.v1.Admin/Status"));
        assert!(!may(&decide, None, "/stele.v1.Admin/Bootstrap"));
        assert!(!may(&decide, None, "/stele.v1.Ledger/Export"));
        assert!(may(&reader, None, "/stele.v1.Ledger/Export"));
        assert!(!may(&reader, None, "/stele.v1.Ledger/Propose"));
        assert!(!may(&reader, None, "/stele.v1.Decision/Check"));
        assert!(may(&operator, None, "/stele.v1.Admin/Bootstrap"));
        assert!(may(
            &operator,
            None,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!may(
            &reader,
            None,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!may(&Caller::Anonymous, None, "/stele.v1.Decision/Check"));
        assert!(may(
            &Caller::Anonymous,
            None,
            "/grpc.health.v1.Health/Check"
        ));
        assert!(may(&Caller::Insecure, None, "/stele.v1.Admin/Bootstrap"));
        assert_eq!(grpc_need("/stele.v1.Raft/AppendEntries"), None);
        // Decisions without a certificate, when the node allows them.
        let check = grpc_need("/stele.v1.Decision/Check").unwrap();
        assert!(authorize(&Caller::Anonymous, None, check, false, "x").is_ok());
    }

    #[test]
    fn a_node_acts_for_the_caller_it_forwards_and_a_client_cannot_claim_to() {
        let node = certified(Some(2), &[]);
        assert!(may(&node, None, "/stele.v1.Admin/Status"));
        assert!(!may(&node, None, "/stele.v1.Ledger/Propose"));
        assert!(may(&node, Some("operator"), "/stele.v1.Ledger/Propose"));
        assert!(!may(
            &node,
            Some("reader,decide"),
            "/stele.v1.Ledger/Propose"
        ));
        let reader = certified(None, &[Role::Reader]);
        assert!(!may(&reader, Some("operator"), "/stele.v1.Ledger/Propose"));
        let denied = authorize(
            &reader,
            None,
            grpc_need("/stele.v1.Ledger/Propose").unwrap(),
            true,
            "propose",
        )
        .unwrap_err();
        assert_eq!(denied.needed, "operator");
        let status = denied_status(&denied);
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(
            status.message().contains("operator role"),
            "{}",
            status.message()
        );
    }
}
