//! Cluster administration: status, and the bootstrap from a signed
//! genesis. Membership has no call here: it changes only by `membership`
//! versions that M of the trust set signed (`reconcile`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::ServerState;
use openraft::error::{InitializeError, RaftError};
use stele_ledger::{ChainState, Hash, Kind, MemberSet, Proposal, Reason, Version, structural_only};
use stele_proto::v1::admin_server::Admin as AdminRpc;
use stele_proto::v1::{
    BootstrapRequest, BootstrapResponse, MemberStatus, RecentRequestsRequest,
    RecentRequestsResponse, StatusRequest, StatusResponse,
};
use stele_store::MemberAddrs;
use tonic::{Request, Response, Status};

use crate::errors::refuse;
use crate::state::NodeState;

pub struct AdminService {
    pub node: Arc<NodeState>,
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
        AdminService { node }
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
}

/// Most requests one RecentRequests call answers, and what it answers
/// when asked for none in particular.
pub const MAX_RECENT_REQUESTS: u32 = 10_000;
const DEFAULT_RECENT_REQUESTS: u32 = 1_000;
/// Most bytes of the log one call reads: four full segments.
const MAX_RECENT_LOG_BYTES: u64 = 256 << 20;
/// Most bytes of requests one answer carries, well inside the API limit.
const MAX_RECENT_ANSWER_BYTES: usize = 32 << 20;

#[tonic::async_trait]
impl AdminRpc for AdminService {
    async fn recent_requests(
        &self,
        request: Request<RecentRequestsRequest>,
    ) -> Result<Response<RecentRequestsResponse>, Status> {
        let (Some(log), Some(dir)) = (
            self.node.config.decision_log.as_ref(),
            self.node.config.decision_log_dir(),
        ) else {
            return Err(Status::failed_precondition(
                "this node keeps no decision log, so it has no requests to give",
            ));
        };
        let logs_requests = log.full_requests;
        let limit = match request.into_inner().limit {
            0 => DEFAULT_RECENT_REQUESTS,
            limit => limit.min(MAX_RECENT_REQUESTS),
        } as usize;
        let recent = stele_store::offload(move || {
            stele_audit::recent_requests(&dir, limit, MAX_RECENT_LOG_BYTES)
        })
        .await
        .map_err(|e| Status::internal(format!("reading the decision log: {e}")))?
        .map_err(|e| Status::internal(format!("reading the decision log: {e}")))?;
        // The newest that fit one answer.
        let mut requests: Vec<String> = Vec::new();
        let mut bytes = 0;
        for request in recent.requests.iter().rev() {
            let text = request.to_string();
            bytes += text.len() + 8;
            if bytes > MAX_RECENT_ANSWER_BYTES {
                break;
            }
            requests.push(text);
        }
        requests.reverse();
        Ok(Response::new(RecentRequestsResponse {
            requests,
            records: recent.records,
            without_request: recent.without_request,
            logs_requests,
        }))
    }

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

    async fn bootstrap(
        &self,
        request: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        let BootstrapRequest { genesis, ledger } = request.into_inner();
        let start = match (genesis.is_empty(), ledger.is_empty()) {
            (false, true) => self.genesis_start(&genesis)?,
            (true, false) => self.restore_start(ledger).await?,
            _ => {
                return Err(refuse(
                    Reason::Malformed,
                    "a bootstrap carries a genesis or a ledger to continue, exactly one",
                ));
            }
        };
        let Some(Start { genesis, members }) = start else {
            // The chain is there already: nothing to check or start (its
            // voters may have been re-keyed or replaced since).
            return Ok(Response::new(BootstrapResponse {
                initialized: false,
                genesis: self.pinned()?.to_hex(),
                voters: self.raft_voters(),
            }));
        };
        let voters = self.bootstrap_voters(&members).await?;
        let initialized = match self.node.raft.initialize(voters.clone()).await {
            Ok(()) => true,
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                // Started before, by this call or by someone else's Raft
                // messages: only the listed voters will do.
                self.refuse_other_start(&voters)?;
                false
            }
            Err(e) => {
                return Err(Status::failed_precondition(format!(
                    "this node cannot initialize a cluster: {e}"
                )));
            }
        };
        if initialized {
            tracing::info!(voters = ?voters.keys().collect::<Vec<_>>(), genesis = %genesis, "initialized Raft from the signed member set");
        }
        Ok(Response::new(BootstrapResponse {
            initialized,
            genesis: genesis.to_hex(),
            voters: self.raft_voters(),
        }))
    }
}

/// What Raft starts from: the chain's genesis hash and the signed member
/// set whose voters it starts with.
struct Start {
    genesis: Hash,
    members: MemberSet,
}

impl AdminService {
    fn raft_voters(&self) -> Vec<u64> {
        self.node
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Refuses a Raft already started (before the genesis committed) with
    /// other members than the genesis's voters: a node certificate of the
    /// cluster CA can send an uninitialised node a membership of its own.
    fn refuse_other_start(&self, voters: &BTreeMap<u64, MemberAddrs>) -> Result<(), Status> {
        let metrics = self.node.raft.metrics().borrow().clone();
        if metrics.membership_config.log_id().is_none() {
            // openraft refuses to initialize a node that voted, too.
            return Err(Status::unavailable(
                "this node voted in an election but holds no membership yet: run `stele cluster init` at the node where Raft started, or again in a moment",
            ));
        }
        let membership = metrics.membership_config.membership();
        let nodes: BTreeMap<u64, MemberAddrs> = membership
            .nodes()
            .map(|(id, addrs)| (*id, addrs.clone()))
            .collect();
        let same = membership.get_joint_config().len() == 1
            && membership.voter_ids().collect::<BTreeSet<_>>() == voters.keys().copied().collect()
            && nodes == *voters;
        if same {
            return Ok(());
        }
        Err(refuse(
            Reason::MembershipUnsafe,
            format!(
                "Raft on this node was started with other members ({:?}) than the signed member set lists ({:?}), before it committed: someone holding a node certificate of this cluster's CA may have done it. Stop every node, start them on empty --data directories (with --genesis), and run `stele cluster init` again",
                nodes.keys().collect::<Vec<_>>(),
                voters.keys().collect::<Vec<_>>()
            ),
        ))
    }

    /// The genesis this node was started with (`--genesis`): without it, a
    /// node would start a cluster from any chain.
    fn pinned(&self) -> Result<Hash, Status> {
        self.node.config.genesis.ok_or_else(|| {
            refuse(
                Reason::GenesisMismatch,
                "this node was started without --genesis, so it would start a cluster from any genesis: restart it with --genesis HASH",
            )
        })
    }

    /// The members a genesis lists, once it is this node's (`--genesis`),
    /// unexpired, and shows M signatures of the trust set it declares.
    /// `None` when the chain holds it already.
    fn genesis_start(&self, bytes: &[u8]) -> Result<Option<Start>, Status> {
        let proposal = Proposal::decode(bytes).map_err(|e| {
            refuse(
                Reason::BadProposal,
                format!("the genesis is not a valid proposal file: {e}"),
            )
        })?;
        let version = &proposal.version;
        let hash = version.hash();
        let pinned = self.pinned()?;
        if self.node.published.machine().version(1).map(Version::hash) == Some(hash)
            && pinned == hash
        {
            return Ok(None);
        }
        if version.header.kind != Kind::Genesis {
            return Err(refuse(
                Reason::Malformed,
                format!(
                    "a cluster starts from a genesis, and this is a version of kind {}",
                    version.header.kind
                ),
            ));
        }
        if pinned != hash {
            return Err(refuse(
                Reason::GenesisMismatch,
                format!("this node accepts only the genesis {pinned} (its --genesis), not {hash}"),
            ));
        }
        // Expired, it could never commit, and every node is pinned to it.
        if version.header.expired_at((self.node.clock)()) {
            return Err(refuse(
                Reason::ProposalExpired,
                format!(
                    "the genesis {hash} expired (its signed expires_at has passed) and can never commit: make a new one, and start every node on an empty --data directory with its hash"
                ),
            ));
        }
        stele_ledger::ChainState::pinned_to(pinned)
            .admit(version, &proposal.bundle, &structural_only)
            .map_err(|why| refuse(why.reason(), format!("the genesis is refused: {why}")))?;
        let Some(members) = version.header.members.clone() else {
            return Err(refuse(
                Reason::Malformed,
                "this genesis names no members: make one that does (`stele ledger new ... --member ID=ADDR,PEER --cert node-ID.pem`), so that membership is signed from the start",
            ));
        };
        Ok(Some(Start {
            genesis: pinned,
            members,
        }))
    }

    /// The members the head of a ledger to continue lists, once the whole
    /// ledger verifies from this node's genesis and its head, a membership
    /// version, has not expired. `None` when the chain holds it already.
    async fn restore_start(&self, bytes: Vec<u8>) -> Result<Option<Start>, Status> {
        let pinned = self.pinned()?;
        // Already restored: no signature need be checked again.
        let machine = self.node.published.machine();
        let committed = |version: &Version| {
            machine.version(version.seq()).map(Version::hash) == Some(version.hash())
        };
        if bytes.len() <= stele_ledger::limits::MAX_RESTORE_LEDGER_BYTES
            && let Ok(entries) = stele_ledger::export::decode(&bytes)
            && entries.versions.last().is_some_and(committed)
        {
            return Ok(None);
        }
        // Every signature of the chain: off the async workers.
        let restore = stele_store::offload(move || {
            stele_ledger::restore::verify(&bytes, ChainState::pinned_to(pinned))
        })
        .await
        .map_err(|e| Status::internal(format!("verifying the ledger: {e}")))?
        .map_err(|why| refuse(why.reason(), format!("the ledger is refused: {why}")))?;
        let head = restore.head();
        // Expired, it could never commit: Raft would start for nothing.
        if head.header.expired_at((self.node.clock)()) {
            return Err(refuse(
                Reason::ProposalExpired,
                format!(
                    "the ledger's membership version (seq {}) expired (its signed expires_at has passed) and can never commit: make and sign it again",
                    head.seq()
                ),
            ));
        }
        Ok(Some(Start {
            genesis: pinned,
            members: restore.members().clone(),
        }))
    }

    /// The voters Raft starts with: those `members` lists, once it lists
    /// this node as a voter with the key it holds, and each voter that
    /// answers with its listed key. Anything else is refused before Raft
    /// sees it, so that no caller can start a cluster on members of their
    /// choosing.
    async fn bootstrap_voters(
        &self,
        members: &MemberSet,
    ) -> Result<BTreeMap<u64, MemberAddrs>, Status> {
        let own = self.node.id();
        if members
            .get(own)
            .is_none_or(|m| m.role != stele_ledger::Role::Voter)
        {
            return Err(refuse(
                Reason::MembershipUnsafe,
                format!(
                    "initialize the cluster at one of the voters it lists; this node ({own}) is not one"
                ),
            ));
        }
        crate::member_set_check::own_key_listed(members, own, self.node.spki_sha256.as_deref())
            .map_err(|why| refuse(Reason::MembershipUnsafe, why.to_string()))?;
        // A voter that answers with another key than the member set lists
        // would be refused by every peer once the set commits.
        if self.node.spki_sha256.is_some() {
            let others: Vec<_> = members
                .voter_ids()
                .filter(|id| *id != own)
                .filter_map(|id| members.get(id))
                .collect();
            let asks = others.iter().map(|member| async move {
                (
                    member,
                    crate::member_set_check::key_of(&self.node, member).await,
                )
            });
            for (member, key) in futures::future::join_all(asks).await {
                if let Some(holds) = key
                    && holds != member.spki_sha256.to_hex()
                {
                    return Err(refuse(
                        Reason::MembershipUnsafe,
                        format!(
                            "node {} at {} holds key {holds}, and the member set lists {}: once it commits, its peers would refuse it. List each node with its own certificate",
                            member.id, member.client, member.spki_sha256
                        ),
                    ));
                }
            }
        }
        Ok(members
            .voter_ids()
            .filter_map(|id| members.get(id))
            .map(|member| {
                let addrs = MemberAddrs {
                    addr: member.client.clone(),
                    peer_addr: member.peer.clone(),
                };
                (member.id, addrs)
            })
            .collect())
    }
}
