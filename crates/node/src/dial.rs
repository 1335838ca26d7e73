//! How a node opens gRPC channels to peers: TCP in production; a simulation
//! plugs in its own transport.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// Opens a (lazily connecting) channel to `host:port`.
pub type Dial = Arc<dyn Fn(&str) -> Result<Channel, String> + Send + Sync>;

/// Plain TCP, connecting on first use.
pub fn tcp() -> Dial {
    Arc::new(|addr: &str| {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("{addr:?} is not a host:port: {e}"))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        Ok(endpoint.connect_lazy())
    })
}
