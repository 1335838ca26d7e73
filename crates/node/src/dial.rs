//! How a node opens gRPC channels to its peers: mutual TLS over TCP in
//! production (the peer must present the certificate of the node id it is
//! dialled as, whatever its host name), plaintext when asked for; a
//! simulation plugs in its own transport.

use std::sync::Arc;
use std::time::Duration;

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

/// TCP, connecting on first use: with mutual TLS when `tls` is given.
pub fn tcp(tls: Option<Arc<Loaded>>) -> Dial {
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
        Ok(
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let connector = connector.clone();
                let target = target.clone();
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
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                }
            })),
        )
    })
}
