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
use thiserror::Error;
use tokio_stream::Stream;
use tonic_health::ServingStatus;

use crate::admin_service::AdminService;
use crate::config::{ConfigError, NodeConfig};
use crate::decision_service::DecisionService;
use crate::dial::Dial;
use crate::ledger_service::LedgerService;
use crate::limits::{MAX_API_MESSAGE_BYTES, MAX_RAFT_MESSAGE_BYTES};
use crate::metrics::Metrics;
use crate::network::Network;
use crate::raft_service::RaftService;
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
        let network = Network {
            dial: dial.clone(),
            freshness: freshness.clone(),
            metrics: metrics.clone(),
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
            }),
        })
    }

    /// The HTTP API (AuthZEN, health, metrics), to serve beside [`Node::serve`].
    pub fn http_router(&self) -> axum::Router {
        crate::http_api::router(self.state.clone())
    }

    /// Serves the API and the Raft transport on `incoming` until `shutdown`
    /// resolves, then stops Raft.
    pub async fn serve<I, IO, IE>(
        self,
        incoming: I,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError>
    where
        I: Stream<Item = Result<IO, IE>>,
        IO: tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + tonic::transport::server::Connected
            + Unpin
            + Send
            + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Node { state: node } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        let health_watch = spawn_health_watch(health, node.clone());
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
        );
        let (stop, mut stopping) = tokio::sync::watch::channel(false);
        let signalled = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        };
        let grace_over = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(
                DecisionServer::new(DecisionService {
                    decisions: node.decisions.clone(),
                })
                .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_API_MESSAGE_BYTES),
            )
            .add_service(
                LedgerServer::new(LedgerService { node: node.clone() })
                    .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_API_MESSAGE_BYTES),
            )
            .add_service(AdminServer::new(AdminService { node: node.clone() }))
            .add_service(
                RaftServer::new(raft_service)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(incoming, signalled);
        // A graceful stop waits for open streams (WatchHead never ends on
        // its own): bound the wait.
        let result = tokio::select! {
            result = server => result,
            () = grace_over => {
                tracing::warn!("open streams outlived the {SHUTDOWN_GRACE:?} grace period; stopping anyway");
                Ok(())
            }
        };
        health_watch.abort();
        let stopped = node.raft.shutdown().await;
        result.map_err(|e| NodeError::Serve(e.to_string()))?;
        stopped.map_err(|e| NodeError::Raft(e.to_string()))
    }
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
    if log_config.dir.as_os_str().is_empty() {
        log_config.dir = config.data_dir.join("decisions");
    }
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

/// Runs a node on RocksDB in `config.data_dir`, listening on TCP.
#[cfg(feature = "rocksdb")]
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    use tokio_stream::StreamExt;
    let (log_store, backend) = stele_store::rocks::open(&config.data_dir)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| NodeError::Listen {
            addr: config.listen.to_string(),
            error,
        })?;
    let http =
        match config.http {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|error| {
                NodeError::Listen {
                    addr: addr.to_string(),
                    error,
                }
            })?),
            None => None,
        };
    let node = Node::start(
        config,
        log_store,
        backend,
        crate::dial::tcp(),
        crate::state::system_clock(),
    )
    .await?;
    // One stop for both APIs: HTTP stops taking requests when gRPC does,
    // and finishes those it has, so that every decision answered is logged
    // before the log closes.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let http = http.map(|listener| {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY: {error}");
            }
        });
        let mut stopping = stopping.clone();
        tokio::spawn(
            axum::serve(listener, node.http_router())
                .with_graceful_shutdown(async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                })
                .into_future(),
        )
    });
    // Without TCP_NODELAY, a reply's frames wait on the client's delayed
    // ACK: about 40 ms per call.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY: {error}");
            }
        })
    });
    let decision_log = node.state.decisions.log().cloned();
    let signalled = async {
        shutdown.await;
        let _ = stop.send(true);
    };
    let served = node.serve(incoming, signalled).await;
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
