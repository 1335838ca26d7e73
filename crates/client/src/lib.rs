//! # stele-client
//!
//! Talking to one stele node: one typed method per operation (decisions,
//! ledger reads and writes, administration), a lazily connected channel, a
//! deadline on every call (a frozen node makes a call fail, never hang),
//! and errors that say what happened: the node's typed [`Reason`], a
//! timeout, or a node that could not be reached. The `stele` command, the
//! node's forwarding to its leader, `stele dev` and the simulator all call
//! nodes through it.
//!
//! It depends on the generated API and the ledger only: no RocksDB, no
//! openraft. It pins one endpoint and never fails over silently.

mod error;
mod tls;

use std::sync::Arc;
use std::time::Duration;

pub use error::{DOMAIN, Error};
pub use stele_ledger::Reason;
use stele_ledger::limits::MAX_LEDGER_FILE_BYTES;
use stele_ledger::{BundleFiles, Head, Proposal, Version};
use stele_proto::MAX_API_MESSAGE_BYTES;
use stele_proto::v1::admin_client::AdminClient;
use stele_proto::v1::decision_client::DecisionClient;
use stele_proto::v1::ledger_client::LedgerClient;
use stele_proto::v1::{
    ApproveRequest, BootstrapRequest, BootstrapResponse, CheckBatchRequest, CheckBatchResponse,
    CheckRequest, CheckResponse, ExportRequest, GetProposalRequest, GetVersionRequest, HeadRequest,
    HeadResponse, ListProposalsRequest, ListProposalsResponse, ListVersionsRequest,
    ListVersionsResponse, ProposalReply, ProposalStatus, ProposeRequest, RecentRequestsRequest,
    RecentRequestsResponse, StatusRequest, StatusResponse, VersionRef, WatchHeadRequest,
    WithdrawRequest,
};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

/// gRPC metadata key marking a request a node already forwarded: the
/// receiver handles it itself or fails, so a request never loops.
pub const FORWARDED: &str = "x-stele-forwarded";
/// gRPC metadata key on a forwarded request: the roles of the caller the
/// forwarding node acts for, comma-separated. A node honours it only from
/// another node's certificate.
pub const FORWARDED_ROLES: &str = "x-stele-forwarded-roles";

/// A connection to one node, pinned: no silent failover.
#[derive(Clone)]
pub struct Client {
    endpoint: String,
    channel: Channel,
    timeout: Duration,
    /// Calls carry [`FORWARDED`] and these [`FORWARDED_ROLES`]: this is a
    /// node forwarding to its leader.
    forwarded: Option<String>,
}

/// How a client reaches nodes.
#[derive(Clone)]
pub enum Transport {
    /// TLS, the default: the node's certificate must be the cluster CA's
    /// and name the endpoint's host; the client presents its own.
    Tls(Arc<rustls::ClientConfig>),
    /// `--insecure-plaintext`: no TLS, for a node that serves none.
    InsecurePlaintext,
}

impl Client {
    /// `endpoint` is `HOST:PORT` or `https://HOST:PORT` (TLS), or, with
    /// [`Transport::InsecurePlaintext`], `HOST:PORT` or `http://HOST:PORT`.
    /// A client never falls back from TLS to plaintext. Nothing is sent
    /// until the first call.
    pub fn connect(
        endpoint: &str,
        transport: &Transport,
        timeout: Duration,
    ) -> Result<Client, Error> {
        let bad = |why: &str| Error::Endpoint {
            endpoint: endpoint.to_string(),
            why: why.to_string(),
        };
        let (scheme, address) = match endpoint.split_once("://") {
            Some((scheme, address)) => (Some(scheme), address),
            None => (None, endpoint),
        };
        let tls = match (scheme, transport) {
            (None | Some("https"), Transport::Tls(config)) => Some(config.clone()),
            (None | Some("http"), Transport::InsecurePlaintext) => None,
            (Some("http"), Transport::Tls(_)) => {
                return Err(bad(
                    "http:// is plaintext, and this client speaks TLS: give HOST:PORT (TLS), or pass --insecure-plaintext to talk to a node that serves none",
                ));
            }
            (Some("https"), Transport::InsecurePlaintext) => {
                return Err(bad(
                    "https:// is TLS, and --insecure-plaintext says not to use it: drop one of them",
                ));
            }
            (Some(_), _) => return Err(bad("the scheme must be https:// or http://")),
        };
        let endpoint_builder = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| bad(&e.to_string()))?
            // Longer than the call's own deadline, which covers connecting
            // (and the TLS handshake): a node that accepts and never
            // answers (frozen) is a timeout, not a connection error.
            .connect_timeout((timeout + Duration::from_secs(1)).min(Duration::from_secs(6)))
            .tcp_nodelay(true);
        let channel = match tls {
            None => endpoint_builder.connect_lazy(),
            Some(config) => {
                let host = address
                    .rsplit_once(':')
                    .map_or(address, |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|_| bad("the host is not a DNS name or an IP address"))?;
                endpoint_builder.connect_with_connector_lazy(tls::connector(
                    address.to_string(),
                    name,
                    config,
                    timeout,
                ))
            }
        };
        Ok(Client::from_channel(endpoint, channel, timeout))
    }

    /// A client over a channel opened elsewhere (a node's peer channel, a
    /// simulated network).
    pub fn from_channel(endpoint: &str, channel: Channel, timeout: Duration) -> Client {
        Client {
            endpoint: endpoint.to_string(),
            channel,
            timeout,
            forwarded: None,
        }
    }

    /// The same connection, with another deadline for each call.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// This connection as a node forwarding a caller's request uses it:
    /// each call is marked as forwarded, names the caller's `roles`
    /// (comma-separated), and waits as long as the caller said it would
    /// (`timeout`).
    pub fn forwarding(&self, timeout: Duration, roles: String) -> Client {
        Client {
            forwarded: Some(roles),
            ..self.with_timeout(timeout)
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A request with this client's deadline (and forwarding mark).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = self.untimed(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A request without a deadline (a watch), with the forwarding mark.
    fn untimed<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(roles) = &self.forwarded {
            let metadata = request.metadata_mut();
            metadata.insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
            if let Ok(roles) = roles.parse() {
                metadata.insert(FORWARDED_ROLES, roles);
            }
        }
        request
    }

    fn failed(&self) -> impl FnOnce(tonic::Status) -> Error + '_ {
        |status| Error::from_status(&self.endpoint, self.timeout, status)
    }

    fn decision(&self) -> DecisionClient<Channel> {
        DecisionClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_API_MESSAGE_BYTES)
    }

    fn ledger(&self) -> LedgerClient<Channel> {
        LedgerClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_API_MESSAGE_BYTES)
    }

    fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }

    // Decisions.

    pub async fn check(&self, request: CheckRequest) -> Result<CheckResponse, Error> {
        let reply = self.decision().check(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    pub async fn check_batch(
        &self,
        request: CheckBatchRequest,
    ) -> Result<CheckBatchResponse, Error> {
        let reply = self.decision().check_batch(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    // Ledger writes (any node: followers forward them to the leader).

    pub async fn propose(&self, request: ProposeRequest) -> Result<ProposalStatus, Error> {
        let reply = self.ledger().propose(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    /// Sends a proposal: committed at once with enough signatures, held
    /// pending with fewer (unless `commit_only`).
    pub async fn submit(
        &self,
        proposal: &Proposal,
        commit_only: bool,
    ) -> Result<ProposalStatus, Error> {
        self.propose(ProposeRequest {
            proposal: proposal.encode().into_bytes(),
            commit_only,
        })
        .await
    }

    /// Continues the chain of `ledger` (a ledger file's bytes) in this new
    /// cluster; see `Ledger.Restore`.
    pub async fn restore(&self, ledger: Vec<u8>) -> Result<ProposalStatus, Error> {
        let request = stele_proto::v1::RestoreRequest { ledger };
        let reply = self.ledger().restore(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    pub async fn approve(&self, request: ApproveRequest) -> Result<ProposalStatus, Error> {
        let reply = self.ledger().approve(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    pub async fn withdraw(&self, request: WithdrawRequest) -> Result<ProposalStatus, Error> {
        let reply = self.ledger().withdraw(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    // Ledger reads.

    pub async fn get_proposal(&self, request: GetProposalRequest) -> Result<ProposalReply, Error> {
        let reply = self.ledger().get_proposal(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    /// The pending proposal `id`, decoded and checked to be the one asked
    /// for: its hash covers every byte, so what is signed is what was read.
    pub async fn proposal(&self, id: &stele_ledger::Hash) -> Result<Proposal, Error> {
        let reply = self
            .get_proposal(GetProposalRequest {
                proposal_id: id.to_hex(),
            })
            .await?;
        let proposal = Proposal::decode(&reply.proposal)
            .map_err(|e| self.malformed("a proposal", e.to_string()))?;
        if proposal.version.hash() != *id {
            return Err(Error::WrongProposal {
                endpoint: self.endpoint.clone(),
                asked: *id,
                sent: proposal.version.hash(),
            });
        }
        Ok(proposal)
    }

    pub async fn list_proposals(&self) -> Result<ListProposalsResponse, Error> {
        let reply = self
            .ledger()
            .list_proposals(self.request(ListProposalsRequest {}))
            .await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    pub async fn head(&self, request: HeadRequest) -> Result<HeadResponse, Error> {
        let reply = self.ledger().head(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    /// The cluster's head, read through the leader (a new version's parent
    /// must be the cluster's head, not a lagging node's); `None` before the
    /// genesis.
    pub async fn cluster_head(&self) -> Result<Option<Head>, Error> {
        let reply = self.head(HeadRequest { linearizable: true }).await?;
        reply
            .head
            .as_ref()
            .map(|head| self.head_of(head))
            .transpose()
    }

    /// The version this node serves decisions from, by its own state.
    pub async fn served(&self) -> Result<Option<Head>, Error> {
        let reply = self
            .head(HeadRequest {
                linearizable: false,
            })
            .await?;
        reply
            .served
            .as_ref()
            .map(|head| self.head_of(head))
            .transpose()
    }

    fn head_of(&self, head: &VersionRef) -> Result<Head, Error> {
        Ok(Head {
            seq: head.seq,
            hash: head.hash.parse().map_err(|e: stele_ledger::HexError| {
                self.malformed("a head hash", e.to_string())
            })?,
        })
    }

    pub async fn get_version(
        &self,
        request: GetVersionRequest,
    ) -> Result<(Version, Option<BundleFiles>), Error> {
        let reply = self.ledger().get_version(self.request(request)).await;
        let reply = reply.map_err(self.failed())?.into_inner();
        let version = serde_json::from_slice(&reply.version)
            .map_err(|e| self.malformed("a version", e.to_string()))?;
        let bundle = match reply.bundle {
            Some(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| self.malformed("a bundle", e.to_string()))?,
            ),
            None => None,
        };
        Ok((version, bundle))
    }

    /// Version `seq` and its bundle.
    pub async fn version(&self, seq: u64) -> Result<(Version, BundleFiles), Error> {
        let (version, bundle) = self
            .get_version(GetVersionRequest {
                seq,
                with_bundle: true,
            })
            .await?;
        let bundle =
            bundle.ok_or_else(|| self.malformed("a version", "without its bundle".into()))?;
        Ok((version, bundle))
    }

    pub async fn list_versions(&self, request: ListVersionsRequest) -> Result<Vec<Version>, Error> {
        let reply = self.ledger().list_versions(self.request(request)).await;
        let ListVersionsResponse { versions } = reply.map_err(self.failed())?.into_inner();
        versions
            .iter()
            .map(|bytes| {
                serde_json::from_slice(bytes)
                    .map_err(|e| self.malformed("a version", e.to_string()))
            })
            .collect()
    }

    /// The heads this node serves, as they change: the current one first.
    /// A watch has no deadline; it lasts as long as the caller reads it.
    pub async fn watch_head(&self) -> Result<tonic::Streaming<HeadResponse>, Error> {
        let reply = self
            .ledger()
            .watch_head(self.untimed(WatchHeadRequest {}))
            .await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    /// The node's whole ledger, as a ledger file's bytes; a stream longer
    /// than a ledger file may be (`MAX_LEDGER_FILE_BYTES`) is refused, not
    /// held.
    pub async fn export(&self) -> Result<Vec<u8>, Error> {
        let reply = self.ledger().export(self.request(ExportRequest {})).await;
        let mut stream = reply.map_err(self.failed())?.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let data = chunk.map_err(self.failed())?.data;
            if (bytes.len() + data.len()) as u64 > MAX_LEDGER_FILE_BYTES {
                return Err(self.malformed(
                    "a ledger",
                    format!(
                        "longer than the limit of {MAX_LEDGER_FILE_BYTES} bytes for a ledger file"
                    ),
                ));
            }
            bytes.extend(data);
        }
        Ok(bytes)
    }

    // Administration.

    /// The newest requests the node's decision log holds whole.
    pub async fn recent_requests(&self, limit: u32) -> Result<RecentRequestsResponse, Error> {
        let request = RecentRequestsRequest { limit };
        let reply = self.admin().recent_requests(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    pub async fn status(&self, request: StatusRequest) -> Result<StatusResponse, Error> {
        let reply = self.admin().status(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    pub async fn bootstrap(&self, request: BootstrapRequest) -> Result<BootstrapResponse, Error> {
        let reply = self.admin().bootstrap(self.request(request)).await;
        Ok(reply.map_err(self.failed())?.into_inner())
    }

    fn malformed(&self, what: &'static str, why: String) -> Error {
        Error::Malformed {
            endpoint: self.endpoint.clone(),
            what,
            why,
        }
    }
}
