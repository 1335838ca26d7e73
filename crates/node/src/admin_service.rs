//! Cluster administration: status, bootstrap, learners and voters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::error::{InitializeError, RaftError};
use openraft::{ChangeMembers, ServerState};
use stele_ledger::Reason;
use stele_proto::v1::admin_server::Admin as AdminRpc;
use stele_proto::v1::{
    AddLearnerRequest, ChangeMembershipRequest, InitRequest, Member, MemberStatus,
    MembershipResponse, StatusRequest, StatusResponse, change_membership_request,
};
use stele_store::MemberAddrs;
use tonic::{Request, Response, Status};

use crate::current_members::{Members, members_of};
use crate::errors;
use crate::members::{MemberError, check_members};
use crate::membership_safety::{self, Change, Health};
use crate::state::NodeState;

pub struct AdminService {
    pub node: Arc<NodeState>,
    /// Held from a membership change's safety check until Raft has it:
    /// two changes checked at once against the same membership could
    /// each pass and together leave no quorum.
    membership_changes: tokio::sync::Mutex<()>,
}

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl AdminService {
    pub fn new(node: Arc<NodeState>) -> AdminService {
        AdminService {
            node,
            membership_changes: tokio::sync::Mutex::new(()),
        }
    }

    /// The membership as this node's log has it (empty before any).
    fn members(&self) -> Members {
        members_of(&self.node.raft.metrics().borrow()).unwrap_or_default()
    }

    fn membership(&self) -> MembershipResponse {
        let metrics = self.node.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let mut response = MembershipResponse::default();
        for (id, node) in membership.nodes() {
            let member = Member {
                id: *id,
                addr: node.addr.clone(),
                peer_addr: node.peer_addr.clone(),
            };
            if voters.contains(id) {
                response.voters.push(member);
            } else {
                response.learners.push(member);
            }
        }
        response
    }

    fn own_status(&self) -> MemberStatus {
        let metrics = self.node.raft.metrics().borrow().clone();
        let log = self.node.decisions.log().map(Arc::as_ref);
        let signed = log.and_then(|log| log.signed());
        MemberStatus {
            id: self.node.id(),
            addr: self.node.config.advertise(),
            peer_addr: self.node.config.peer_advertise(),
            role: role(metrics.state).into(),
            applied_seq: self.node.published.served().as_ref().map(|s| s.head.seq),
            stale: self.node.freshness.check().is_err(),
            log_key: log.map(|log| log.public_key().to_hex()).unwrap_or_default(),
            log_signed_count: signed.map(|signed| signed.count),
            log_signed_head: signed
                .map(|signed| signed.head.to_hex())
                .unwrap_or_default(),
            log_error: log
                .and_then(|log| log.failed())
                .map(str::to_string)
                .unwrap_or_default(),
            spki_sha256: self.node.spki_sha256.clone().unwrap_or_default(),
            voter: metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == self.node.id()),
        }
    }

    /// Member `id`'s own status, if it answers within the status timeout.
    async fn probe(&self, id: u64, addrs: &MemberAddrs) -> Option<MemberStatus> {
        self.node.own_status_of(id, &addrs.addr).await
    }

    /// How every other member is doing, as this leader sees it now: does
    /// it answer, and how far behind its log is.
    async fn health(&self) -> BTreeMap<u64, Health> {
        let metrics = self.node.raft.metrics().borrow().clone();
        let last_index = metrics.last_log_index.unwrap_or(0);
        let matched = metrics.replication.unwrap_or_default();
        let members: Vec<(u64, MemberAddrs)> = metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.node.id())
            .map(|(id, addrs)| (*id, addrs.clone()))
            .collect();
        let asks = members.into_iter().map(|(id, addrs)| {
            let behind = matched
                .get(&id)
                .copied()
                .flatten()
                .map(|log_id| last_index.saturating_sub(log_id.index));
            async move {
                let reachable = self.probe(id, &addrs).await.is_some();
                (id, Health { reachable, behind })
            }
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// Refuses `change` unless the cluster can still commit after it
    /// (`membership_safety`).
    async fn check_safe(&self, change: Change) -> Result<(), Status> {
        let refuse = |why: String| {
            errors::with_reason(
                Reason::MembershipUnsafe,
                format!("membership change refused: {why}"),
                Default::default(),
            )
        };
        // The cheap refusal first: no probes while a change is under way.
        if self.members().changing {
            return Err(refuse(
                "another change is still in progress; try again in a moment".into(),
            ));
        }
        let health = self.health().await;
        let members = self.members();
        membership_safety::check(
            &members.voters,
            &members.learners,
            self.node.id(),
            change,
            &health,
        )
        .map_err(|why| refuse(why.to_string()))
    }

    /// Refuses an unsigned membership change once the ledger names the
    /// members: from then on only a `membership` version, signed by M of
    /// the trust set, changes them (`reconcile`).
    fn refuse_if_ledger_names_members(&self) -> Result<(), Status> {
        match self.node.published.machine().chain().members() {
            None => Ok(()),
            Some(_) => Err(errors::with_reason(
                Reason::MembershipInLedger,
                "membership change refused: the ledger names this cluster's members, so they change only by a signed membership version (stele cluster add-learner|promote|remove ... --key K proposes one)".into(),
                Default::default(),
            )),
        }
    }

    async fn change(
        &self,
        changes: ChangeMembers<u64, MemberAddrs>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.node
            .raft
            .change_membership(changes, false)
            .await
            .map_err(|e| Status::failed_precondition(format!("membership change refused: {e}")))?;
        Ok(Response::new(self.membership()))
    }
}

#[tonic::async_trait]
impl AdminRpc for AdminService {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let roles = crate::access::request_roles(&request);
        let sees_logs = roles.contains(&stele_tls::Role::Reader);
        let metrics = self.node.raft.metrics().borrow().clone();
        let own = self.own_status();
        let mut members = vec![own];
        if !request.get_ref().local_only {
            let membership = metrics.membership_config.membership().clone();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            let others: Vec<(u64, MemberAddrs)> = membership
                .nodes()
                .filter(|(id, _)| **id != self.node.id())
                .map(|(id, node)| (*id, node.clone()))
                .collect();
            let asks = others.into_iter().map(|(id, addrs)| {
                let voter = voters.contains(&id);
                async move {
                    match self.probe(id, &addrs).await {
                        Some(answer) => MemberStatus { voter, ..answer },
                        None => MemberStatus {
                            id,
                            addr: addrs.addr,
                            peer_addr: addrs.peer_addr,
                            role: "unreachable".into(),
                            applied_seq: None,
                            stale: true,
                            voter,
                            log_key: String::new(),
                            log_signed_count: None,
                            log_signed_head: String::new(),
                            log_error: String::new(),
                            spki_sha256: String::new(),
                        },
                    }
                }
            });
            members.extend(futures::future::join_all(asks).await);
        }
        members.sort_by_key(|m| m.id);
        if !sees_logs {
            // The decide role sees membership (addresses, roles,
            // readiness), what a client needs to pick a node; the decision
            // logs' keys and checkpoints are for readers.
            for member in &mut members {
                member.log_key.clear();
                member.log_signed_count = None;
                member.log_signed_head.clear();
                member.log_error.clear();
            }
        }
        Ok(Response::new(StatusResponse {
            leader: metrics.current_leader,
            term: metrics.current_term,
            members,
            node_id: self.node.id(),
        }))
    }

    async fn init(
        &self,
        request: Request<InitRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let members = request.into_inner().members;
        check_members(
            members
                .iter()
                .map(|m| (m.id, m.addr.as_str(), m.peer_addr.as_str())),
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let members: BTreeMap<u64, MemberAddrs> = members
            .into_iter()
            .map(|m| {
                let addrs = MemberAddrs {
                    addr: m.addr,
                    peer_addr: m.peer_addr,
                };
                (m.id, addrs)
            })
            .collect();
        if members.is_empty() {
            return Err(Status::invalid_argument(
                "a cluster needs at least one member",
            ));
        }
        if !members.contains_key(&self.node.id()) {
            return Err(Status::invalid_argument(format!(
                "initialize the cluster at one of its members; this node ({}) is not among them",
                self.node.id()
            )));
        }
        self.node
            .raft
            .initialize(members)
            .await
            .map_err(|e| match e {
                RaftError::APIError(InitializeError::NotAllowed(_)) => {
                    Status::already_exists("the cluster is already initialized")
                }
                e => Status::failed_precondition(format!(
                    "this node cannot initialize a cluster: {e}"
                )),
            })?;
        Ok(Response::new(self.membership()))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.node
            .forward_or_serve(
                request,
                |leader, request| async move { leader.add_learner(request).await },
                |request| self.add_learner_here(request.into_inner()),
            )
            .await
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.node
            .forward_or_serve(
                request,
                |leader, request| async move { leader.change_membership(request).await },
                |request| self.change_membership_here(request.into_inner()),
            )
            .await
    }
}

impl AdminService {
    async fn add_learner_here(
        &self,
        request: AddLearnerRequest,
    ) -> Result<Response<MembershipResponse>, Status> {
        let member = request.member.ok_or_else(|| {
            Status::invalid_argument("the learner's id and addresses are missing")
        })?;
        let _one_at_a_time = self.membership_changes.lock().await;
        self.refuse_if_ledger_names_members()?;
        // Checked with the members there are: openraft keeps an existing
        // member's record, so re-adding an id would answer OK and change
        // nothing, and an address must not be two members'.
        let current = self.node.raft.metrics().borrow().membership_config.clone();
        let existing = current
            .membership()
            .nodes()
            .map(|(id, a)| (*id, a.addr.as_str(), a.peer_addr.as_str()));
        let new = [(member.id, member.addr.as_str(), member.peer_addr.as_str())];
        check_members(existing.chain(new)).map_err(|e| match e {
            MemberError::DuplicateId(id) => Status::already_exists(format!(
                "node {id} is already a member; to change its addresses, remove it and add it again"
            )),
            other => Status::invalid_argument(other.to_string()),
        })?;
        let addrs = MemberAddrs {
            addr: member.addr,
            peer_addr: member.peer_addr,
        };
        self.node
            .raft
            // Not blocking: openraft's blocking form waits for the learner
            // to catch up, forever if it is unreachable. Promotion checks
            // that it has (`membership_safety`).
            .add_learner(member.id, addrs, false)
            .await
            .map_err(|e| Status::failed_precondition(format!("adding the learner failed: {e}")))?;
        Ok(Response::new(self.membership()))
    }

    async fn change_membership_here(
        &self,
        request: ChangeMembershipRequest,
    ) -> Result<Response<MembershipResponse>, Status> {
        let _one_at_a_time = self.membership_changes.lock().await;
        self.refuse_if_ledger_names_members()?;
        let voters = self.members().voters;
        match request.change {
            Some(change_membership_request::Change::Promote(id)) => {
                self.check_safe(Change::Promote(id)).await?;
                self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                    .await
            }
            Some(change_membership_request::Change::Remove(id)) if voters.contains(&id) => {
                self.check_safe(Change::Remove(id)).await?;
                self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
                    .await
            }
            Some(change_membership_request::Change::Remove(id)) => {
                self.check_safe(Change::Remove(id)).await?;
                self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                    .await
            }
            None => Err(Status::invalid_argument(
                "say which member to promote or remove",
            )),
        }
    }
}
