//! How a node opens gRPC channels to peers: TCP in production; a simulation
//! plugs in its own transport.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tonic::transport::{Channel, Endpoint};

/// Opens a (lazily connecting) channel to `host:port`.
pub type Dial = Arc<dyn Fn(&str) -> Result<Channel, BadAddress> + Send + Sync>;

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

/// Plain TCP, connecting on first use.
pub fn tcp() -> Dial {
    Arc::new(|addr: &str| Ok(endpoint(addr)?.tcp_nodelay(true).connect_lazy()))
}
