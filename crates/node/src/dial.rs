//! How a node opens gRPC channels to its peers: mutual TLS over TCP in
//! production (the peer must present the certificate of the node id it is
//! dialled as, whatever its host name), plaintext when asked for; a
//! simulation plugs in its own transport.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use stele_ledger::MemberSet;
use stele_store::NodeId;
use stele_tls::Loaded;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint, Uri};

/// Opens a (lazily connecting) channel to node `id` at `host:port`.
pub type Dial = Arc<dyn Fn(&str, NodeId) -> Result<Channel, BadAddress> + Send + Sync>;

/// A member address that cannot be dialled.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{addr:?} is not a host:port: {why}")]
pub struct BadAddress {
    pub addr: String,
    pub why: String,
}

/// How often an idle or busy connection to a peer is pinged, and how long
/// a ping may go unanswered before the connection is dropped and redialled.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a TLS handshake with a peer may take.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// The settings of every peer connection, whatever carries it. HTTP/2
/// keepalive matters: a connection whose packets vanish (a peer host that
/// lost power, a partition that swallowed segments) otherwise stays "open",
/// and every call on it times out until TCP gives up, minutes later; found
/// by the simulator (docs/SIMULATION.md).
pub fn endpoint(addr: &str) -> Result<Endpoint, BadAddress> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| BadAddress {
            addr: addr.to_string(),
            why: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(1))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// The key the ledger lists for each member (the SHA-256 of its
/// certificate's SubjectPublicKeyInfo, hex). Once it lists one for node N,
/// a peer dialled as node N must hold that key: a certificate from the
/// cluster's CA alone does not answer for a member.
#[derive(Debug, Default)]
pub struct ListedKeys(RwLock<BTreeMap<NodeId, String>>);

impl ListedKeys {
    /// The keys `members` lists (none when the ledger names no members).
    pub fn set(&self, members: Option<&MemberSet>) {
        let keys = members
            .map(|set| {
                set.members()
                    .iter()
                    .map(|m| (m.id, m.spki_sha256.to_hex()))
                    .collect()
            })
            .unwrap_or_default();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    pub fn get(&self, id: NodeId) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}

/// Whether the peer dialled as `node` presented `certificate` holding the
/// key listed for it (anything goes while none is listed).
pub fn check_listed_key(
    node: NodeId,
    listed: Option<&str>,
    certificate: Option<&[u8]>,
) -> Result<(), String> {
    let Some(listed) = listed else {
        return Ok(());
    };
    let holds = certificate
        .and_then(|der| stele_tls::identity::read_certificate(der).ok())
        .map(|certified| certified.spki_sha256);
    match holds {
        Some(holds) if holds == listed => Ok(()),
        holds => Err(format!(
            "the peer dialled as node {node} holds key {}, but the ledger lists {listed} for node {node}: a certificate of the cluster CA alone does not answer for a member",
            holds.as_deref().unwrap_or("none")
        )),
    }
}

/// TCP, connecting on first use: with mutual TLS when `tls` is given.
pub fn tcp(tls: Option<Arc<Loaded>>) -> Dial {
    tcp_pinned(tls, Arc::new(ListedKeys::default()))
}

/// As [`tcp`], and a peer must hold the key `listed` names for it.
pub fn tcp_pinned(tls: Option<Arc<Loaded>>, listed: Arc<ListedKeys>) -> Dial {
    Arc::new(move |addr: &str, node: NodeId| {
        let endpoint = endpoint(addr)?.tcp_nodelay(true);
        let Some(tls) = &tls else {
            return Ok(endpoint.connect_lazy());
        };
        let config = tls.peer_client_config(node).map_err(|e| BadAddress {
            addr: addr.to_string(),
            why: e.to_string(),
        })?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let target = addr.to_string();
        let listed = listed.clone();
        Ok(
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let connector = connector.clone();
                let target = target.clone();
                let listed = listed.clone();
                async move {
                    let stream = tokio::net::TcpStream::connect(&target).await?;
                    stream.set_nodelay(true)?;
                    // The name is not what is checked (the node id is), but
                    // rustls needs one for SNI.
                    let name = rustls::pki_types::ServerName::try_from("stele-node")
                        .expect("a valid name");
                    let tls = tokio::time::timeout(HANDSHAKE_DEADLINE, connector.connect(name, stream))
                        .await
                        .map_err(|_| {
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("TLS handshake with node {node} at {target} unfinished after {HANDSHAKE_DEADLINE:?}"),
                            )
                        })??;
                    let certificate = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|der| der.as_ref());
                    check_listed_key(node, listed.get(node).as_deref(), certificate).map_err(
                        |why| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why),
                    )?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                }
            })),
        )
    })
}
