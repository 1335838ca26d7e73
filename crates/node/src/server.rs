//! Starting a node: storage, Raft, the services, and serving them until
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::{ServerState, SnapshotPolicy};
use stele_audit::{DecisionLog, LogError};
use stele_decision::{DecisionPath, Freshness, Settings, StaleAnswers};
use stele_ledger::WallClock;
use stele_proto::v1::admin_server::AdminServer;
use stele_proto::v1::decision_server::DecisionServer;
use stele_proto::v1::ledger_server::LedgerServer;
use stele_proto::v1::raft_server::RaftServer;
use stele_store::{Backend, PolicyStateMachine, Published, Raft, TypeConfig};
use stele_tls::Caller;
use thiserror::Error;
use tokio_stream::Stream;
use tonic_health::ServingStatus;

use crate::access::AccessLayer;
use crate::admin_service::AdminService;
use crate::config::{ConfigError, NodeConfig};
use crate::decision_service::DecisionService;
use crate::dial::Dial;
use crate::ledger_service::LedgerService;
use crate::limits::{
    MAX_API_MESSAGE_BYTES, MAX_CONCURRENT_CALLS_PER_CONNECTION, MAX_DECISION_MESSAGE_BYTES,
    MAX_RAFT_MESSAGE_BYTES,
};
use crate::metrics::Metrics;
use crate::network::Network;
use crate::raft_service::RaftService;
use crate::removal::Removal;
use crate::state::NodeState;

/// How long a stopping node waits for open calls and streams.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The most log entries one AppendEntries carries (see `Node::start`).
const MAX_PAYLOAD_ENTRIES: u64 = 32;
/// How often the health status follows freshness.
const HEALTH_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("invalid configuration: {0}")]
    RaftConfig(String),
    #[error("the decision log: {0}")]
    DecisionLog(#[from] LogError),
    #[error("{0}")]
    Open(#[from] stele_store::OpenError),
    #[error("storage: {0}")]
    Store(#[from] stele_store::StoreError),
    #[error("Raft: {0}")]
    Raft(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("serving: {0}")]
    Serve(String),
}

/// A started node: its shared state, ready to serve.
pub struct Node {
    pub state: Arc<NodeState>,
}

impl Node {
    /// Opens the state machine over `backend` (verifying the stored chain),
    /// and starts Raft.
    pub async fn start<L, B>(
        config: NodeConfig,
        log_store: L,
        backend: Arc<B>,
        dial: Dial,
        clock: WallClock,
    ) -> Result<Node, NodeError>
    where
        L: RaftLogStorage<TypeConfig>,
        B: Backend,
    {
        config.validate()?;
        let spki_sha256 = own_key_fingerprint(&config)?;
        let published = Published::new();
        let state_machine =
            PolicyStateMachine::open(backend.clone(), published.clone(), config.genesis)?;
        let freshness = Arc::new(Freshness::new(config.max_staleness));
        let raft_config = openraft::Config {
            cluster_name: "stele".into(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: config.election_timeout_min.as_millis() as u64,
            election_timeout_max: config.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            // Every proposal entry carries its bundle (a rollback carries its
            // target's). openraft reads this many entries at once to send a
            // follower: at its default of 300, a new leader over a log of
            // 1.5 MB bundles held 800 MB. Policy writes are rare; 32 is ample.
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            max_in_snapshot_log_to_keep: config.snapshot_every / 2,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::RaftConfig(e.to_string()))?;
        let metrics = Arc::new(Metrics::default());
        let removal = Arc::new(Removal::default());
        let network = Network {
            dial: dial.clone(),
            freshness: freshness.clone(),
            metrics: metrics.clone(),
            removal: removal.clone(),
        };
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        spawn_quorum_watch(&raft, freshness.clone());
        let decision_log = open_decision_log(&config, &clock)?;
        let settings = Settings {
            node_id: config.id,
            on_stale: config.on_stale,
            min_version_wait: config.min_version_wait,
            boot_id: rand::Rng::r#gen(&mut stele_store::ThreadRng),
        };
        let decisions = Arc::new(DecisionPath::new(
            settings,
            published.clone(),
            freshness.clone(),
            decision_log,
        ));
        crate::removal::spawn_watch(
            config.id,
            removal.clone(),
            raft.clone(),
            published.clone(),
            decisions.clone(),
        );
        Ok(Node {
            state: Arc::new(NodeState {
                config,
                raft,
                published,
                bundles: backend,
                freshness,
                decisions,
                dial,
                clock,
                peers: Default::default(),
                metrics,
                removal,
                spki_sha256,
            }),
        })
    }

    /// The HTTP API (AuthZEN, health, metrics), to serve beside [`Node::serve`].
    pub fn http_router(&self) -> axum::Router {
        crate::http_api::router(self.state.clone())
    }

    /// Serves the API on `clients` and the Raft transport on `peers` until
    /// `shutdown` resolves, then stops Raft. Each connection's
    /// `ConnectInfo` is its [`Caller`]: the client port checks the role
    /// each call needs, the peer port takes members only.
    pub async fn serve<C, P, IO, IE>(
        self,
        clients: C,
        peers: P,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError>
    where
        C: Stream<Item = Result<IO, IE>>,
        P: Stream<Item = Result<IO, IE>>,
        IO: tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + tonic::transport::server::Connected<ConnectInfo = Caller>
            + Unpin
            + Send
            + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Node { state: node } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        let health_watch = spawn_health_watch(health, node.clone());
        let reconciler = crate::reconcile::spawn(node.clone());
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(stele_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Serve(e.to_string()))?;
        let raft_service = RaftService::new(
            node.raft.clone(),
            node.freshness.clone(),
            node.published.clone(),
            node.config.genesis,
            node.metrics.clone(),
            node.removal.clone(),
        );
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let signalled = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        };
        let stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let mut grace = stopping.clone();
        let grace_over = async move {
            let _ = grace.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let access = AccessLayer {
            decide_requires_certificate: node.config.decide_requires_certificate,
            metrics: node.metrics.clone(),
            raft: node.raft.clone(),
        };
        let client_port = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(MAX_CONCURRENT_CALLS_PER_CONNECTION)
            .max_concurrent_streams(Some(MAX_CONCURRENT_CALLS_PER_CONNECTION as u32))
            .layer(access)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(
                DecisionServer::new(DecisionService {
                    decisions: node.decisions.clone(),
                })
                .max_decoding_message_size(MAX_DECISION_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_DECISION_MESSAGE_BYTES),
            )
            .add_service(
                LedgerServer::new(LedgerService { node: node.clone() })
                    .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_API_MESSAGE_BYTES),
            )
            .add_service(
                // A bootstrap may carry a whole ledger to continue.
                AdminServer::new(AdminService::new(node.clone()))
                    .max_decoding_message_size(MAX_API_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(clients, stopped(stopping.clone()));
        let peer_port = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(MAX_CONCURRENT_CALLS_PER_CONNECTION as u32))
            .add_service(
                RaftServer::new(raft_service)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(peers, stopped(stopping));
        let serving = async {
            let (clients, peers) = tokio::join!(client_port, peer_port);
            clients.and(peers)
        };
        // A graceful stop waits for open streams (WatchHead never ends on
        // its own): bound the wait.
        let result = tokio::select! {
            result = serving => result,
            ((), ()) = async { tokio::join!(signalled, grace_over) } => {
                tracing::warn!("open streams outlived the {SHUTDOWN_GRACE:?} grace period; stopping anyway");
                Ok(())
            }
        };
        health_watch.abort();
        reconciler.abort();
        let stopped = node.raft.shutdown().await;
        result.map_err(|e| NodeError::Serve(e.to_string()))?;
        stopped.map_err(|e| NodeError::Raft(e.to_string()))
    }
}

/// Keeps `listed` to the keys of the member set this node applied, for its
/// dialler to check every peer against.
#[cfg(feature = "rocksdb")]
fn spawn_listed_keys_watch(
    node: Arc<NodeState>,
    listed: Arc<crate::dial::ListedKeys>,
) -> tokio::task::JoinHandle<()> {
    let mut served = node.published.watch_served();
    tokio::spawn(async move {
        loop {
            listed.set(node.published.machine().chain().members());
            if served.changed().await.is_err() {
                return;
            }
        }
    })
}

/// SHA-256 of this node's TLS public key, from its certificate file
/// (`None` without TLS).
fn own_key_fingerprint(config: &NodeConfig) -> Result<Option<String>, NodeError> {
    let crate::config::Transport::Tls(files) = &config.transport else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(&files.cert)
        .map_err(|e| NodeError::Tls(format!("reading {}: {e}", files.cert.display())))?;
    stele_tls::issue::names(&pem)
        .map(|names| Some(names.spki_sha256))
        .map_err(|e| NodeError::Tls(format!("{}: {e}", files.cert.display())))
}

/// `grpc.health.v1`: the node and its Decision service are SERVING only
/// while it would answer a gRPC decision (the decision path's readiness:
/// a policy, a decision log that takes decisions, and freshness, unless the
/// operator chose `--on-stale serve`).
fn spawn_health_watch(
    health: tonic_health::server::HealthReporter,
    node: Arc<NodeState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = None;
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        loop {
            tick.tick().await;
            let serving = node.decisions.readiness(StaleAnswers::Flagged).is_ok();
            if last == Some(serving) {
                continue;
            }
            last = Some(serving);
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            health
                .set_service_status(
                    <DecisionServer<DecisionService> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
        }
    })
}

/// The decision log, when the configuration keeps one: in `DATA/decisions`
/// unless told otherwise, signed with the node's own key, stamped by the
/// node's clock.
fn open_decision_log(
    config: &NodeConfig,
    clock: &WallClock,
) -> Result<Option<Arc<DecisionLog>>, NodeError> {
    let Some(log_config) = &config.decision_log else {
        return Ok(None);
    };
    let mut log_config = log_config.clone();
    log_config.dir = config
        .decision_log_dir()
        .expect("the configuration keeps a decision log");
    log_config.blocking = stele_decision::block_in_place;
    let key = stele_audit::node_key(&config.data_dir)?;
    let log = DecisionLog::open(log_config.clone(), key, config.id, clock.clone())?;
    tracing::info!(
        dir = %log_config.dir.display(),
        key = %log.public_key(),
        "decision log on"
    );
    Ok(Some(Arc::new(log)))
}

/// Feeds freshness from openraft's metrics: how far the state machine has
/// applied, and, while this node leads, its last quorum acknowledgement. A
/// new leader counts as current only once it has applied an entry of its own
/// term, and so everything committed before it.
fn spawn_quorum_watch(raft: &Raft, freshness: Arc<Freshness>) {
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        while metrics.changed().await.is_ok() {
            let current = metrics.borrow_and_update().clone();
            if let Some(applied) = current.last_applied {
                freshness.applied(applied.index);
            }
            let applied_own_term = current
                .last_applied
                .is_some_and(|applied| applied.leader_id.term == current.current_term);
            if current.state == ServerState::Leader
                && applied_own_term
                && let Some(millis) = current.millis_since_quorum_ack
            {
                freshness.note(Duration::from_millis(millis), None);
            }
        }
    });
}

/// Binds `addr`, naming what for in the error.
#[cfg(feature = "rocksdb")]
async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| NodeError::Listen {
            addr: addr.to_string(),
            error,
        })
}

#[cfg(feature = "rocksdb")]
/// The TLS configurations of a node's three ports (client, peer, HTTP),
/// or none in plaintext.
struct PortsTls {
    loaded: Arc<stele_tls::Loaded>,
    client: Arc<rustls::ServerConfig>,
    peer: Arc<rustls::ServerConfig>,
    http: Arc<rustls::ServerConfig>,
}

#[cfg(feature = "rocksdb")]
fn ports_tls(config: &NodeConfig) -> Result<Option<PortsTls>, NodeError> {
    use stele_tls::ClientAuth;
    let crate::config::Transport::Tls(files) = &config.transport else {
        tracing::warn!(
            "--insecure-plaintext: no TLS and no authentication on any port; anyone who reaches them can change the cluster (loopback only)"
        );
        return Ok(None);
    };
    let tls_error = |e: stele_tls::TlsError| NodeError::Tls(e.to_string());
    let loaded = Arc::new(files.load().map_err(tls_error)?);
    Ok(Some(PortsTls {
        client: loaded
            .server_config(ClientAuth::Optional, &[b"h2"])
            .map_err(tls_error)?,
        peer: loaded
            .server_config(ClientAuth::Required, &[b"h2"])
            .map_err(tls_error)?,
        http: loaded
            .server_config(ClientAuth::Optional, &[b"http/1.1"])
            .map_err(tls_error)?,
        loaded,
    }))
}

/// Runs a node on RocksDB in `config.data_dir`, listening on TCP: the
/// client port (`listen`), the peer port (`peer_listen`) and HTTP.
#[cfg(feature = "rocksdb")]
pub async fn run(
    mut config: NodeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    use crate::listener::accept;
    config.validate()?;
    config.check_plaintext_is_local()?;
    let tls = ports_tls(&config)?;
    let (log_store, backend) = stele_store::rocks::open(&config.data_dir)?;
    config.genesis = Some(backend.pin_genesis(config.genesis)?);
    let client_listener = bind(config.listen).await?;
    let peer_listener = bind(config.peer_listen).await?;
    let http = match config.http {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let listed_keys = Arc::new(crate::dial::ListedKeys::default());
    let dial = crate::dial::tcp_pinned(
        tls.as_ref().map(|tls| tls.loaded.clone()),
        listed_keys.clone(),
    );
    let limits = config.connections;
    let node = Node::start(
        config,
        log_store,
        backend,
        dial,
        crate::state::system_clock(),
    )
    .await?;
    let keys_watch = spawn_listed_keys_watch(node.state.clone(), listed_keys);
    // One stop for both APIs: HTTP stops taking requests when gRPC does,
    // and finishes those it has, so that every decision answered is logged
    // before the log closes.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let http = http.map(|listener| {
        let connections = accept(
            listener,
            tls.as_ref().map(|t| t.http.clone()),
            "http",
            limits,
        );
        tokio::spawn(crate::http_serve::serve(
            connections,
            node.http_router(),
            stopping.clone(),
        ))
    });
    let clients = accept(
        client_listener,
        tls.as_ref().map(|t| t.client.clone()),
        "client",
        limits,
    );
    let peers = accept(
        peer_listener,
        tls.as_ref().map(|t| t.peer.clone()),
        "peer",
        limits,
    );
    let decision_log = node.state.decisions.log().cloned();
    let signalled = async {
        shutdown.await;
        let _ = stop.send(true);
    };
    let served = node.serve(clients, peers, signalled).await;
    keys_watch.abort();
    let _ = stop.send(true);
    if let Some(mut http) = http
        && tokio::time::timeout(SHUTDOWN_GRACE, &mut http)
            .await
            .is_err()
    {
        tracing::warn!(
            "HTTP requests outlived the {SHUTDOWN_GRACE:?} grace period; stopping anyway"
        );
        http.abort();
    }
    if let Some(log) = decision_log {
        // Writes what is queued and signs a last checkpoint.
        let _ = tokio::task::spawn_blocking(move || log.close()).await;
    }
    served
}
